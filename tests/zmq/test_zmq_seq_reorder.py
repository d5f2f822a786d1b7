#!/usr/bin/python3
"""Reordering is not loss.

A python3-zmq publisher sends `i` = 1..3000 of one publisher slightly out of order (values
held back by 1 to 8 positions, as a parallel signer does) with 41 values truly missing.
zmq-sub judges a gap only after its reorder window (default: 64 values or 1 s): the late
values count as `seq_reordered`, and `seq_missing` equals the truly missing values, exactly.
Then the window's time limit: a gap left open for longer than `reorder_time` is counted
missing, and its value arriving afterwards is `seq_late` (not reordered)."""
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()
N = 3000


def plan(seed):
    """The order to send in, the truly missing values, and how many arrive after a higher one."""
    rng = random.Random(seed)
    missing = set()
    while len(missing) < 41:
        missing.add(rng.randint(20, N - 20))
    missing.update({N - 10, N - 9})  # a run of two near the end (judged by time or at stop)
    values = [v for v in range(1, N + 1) if v not in missing]
    # Hold some values back by 1..8 positions (never the first ten: a publisher's very first
    # message sets its baseline).
    order = list(values)
    k = 10
    while k < len(order) - 10:
        if rng.random() < 0.08:
            d = rng.randint(1, 8)
            order.insert(k + d, order.pop(k))
            k += d + 1
        else:
            k += 1
    reordered = 0
    top = 0
    for v in order:
        if v < top:
            reordered += 1
        top = max(top, v)
    runs = sum(1 for v in missing if v - 1 not in missing)
    return order, missing, reordered, runs


def main():
    order, missing, reordered, runs = plan(14)
    check(reordered > 100, f"the plan reorders enough ({reordered})")
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = Publisher(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
      reorder_time: 1000
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", "--stats-interval", "0.2", cfg])
        try:
            pub.wait_subscription()
            ids = []
            for v in order:
                ids.append(f"2026-reorder-{v}")
                pub.send([T, envelope(b'{"v":%d}' % v, msg_id=ids[-1], i=v, username="alpha")])
            lines = sy.read_lines(len(ids))
            check([json.loads(l)["id"] for l in lines] == ids, "every message passed on, in arrival order")

            # The time limit: N+2 skips N+1, which stays away for longer than reorder_time.
            pub.send([T, envelope(b'{}', msg_id="2026-reorder-skip", i=N + 2, username="alpha")])
            sy.read_lines(1)
            deadline = time.monotonic() + 20
            while True:
                st = sy.stats()
                if st.get(("zmq-sub", "seq_missing", "")) == len(missing) + 1 and st.get(("zmq-sub", "seq_open", "")) == 0:
                    break
                check(time.monotonic() < deadline, f"the open gap was not judged: {st}")
                time.sleep(0.05)  # polling a condition with a deadline
            pub.send([T, envelope(b'{}', msg_id="2026-reorder-late", i=N + 1, username="alpha")])
            sy.read_lines(1)
        finally:
            rc = sy.stop()
            pub.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        stats = sy.stats()
        want = {"seq_missing": len(missing) + 1, "seq_gaps": runs + 1, "seq_reordered": reordered, "seq_late": 1,
                "seq_duplicates": 0, "seq_restarts": 0, "seq_open": 0}
        for name, value in want.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{sy.stderr()[-3000:]}")
    print(f"ok: {reordered} reordered, {len(missing)} truly missing counted exactly, 1 late after the window")


if __name__ == "__main__":
    main()
