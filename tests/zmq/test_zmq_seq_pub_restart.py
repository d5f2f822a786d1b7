#!/usr/bin/python3
"""Issue 12, case 10b: a publisher that restarts on the same endpoint and sends at once.

A python3-zmq publisher process is replaced 20 times on one endpoint (close, bind again,
`i` from 1 again). Each incarnation starts sending at once, without waiting for zmq-sub to
reconnect and subscribe, so its first messages are lost (slow joiner), and its `i` stays
below the old incarnation's highest. The new connection tells zmq-sub that the publisher
may be a new process: `seq_restarts` is 20, the lost leading messages of each incarnation
are `seq_missing` exactly, and nothing is counted as a duplicate."""
import json
import os
import queue
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()
RESTARTS = 20
AFTER_SEEN = 3000  # sent by each incarnation once its first message came out (more than a
#                    reconnect can lose, so that the next incarnation starts below it)


def main():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        received = {}  # incarnation -> list of i, in arrival order
        sent = {}

        def take(line):
            mid = json.loads(line)["id"]  # 2026-inc<k>-<i>
            _, inc, i = mid.split("-")
            received.setdefault(int(inc[3:]), []).append(int(i))

        try:
            for inc in range(RESTARTS + 1):
                pub = Publisher(endpoint)
                if inc == 0:
                    pub.wait_subscription()  # the baseline: nothing lost before it
                i = 0
                # Send at once, about one message per millisecond, until the first one
                # of this incarnation came out; then a burst, then exit.
                deadline = time.monotonic() + 20
                while inc not in received:
                    check(time.monotonic() < deadline, f"incarnation {inc}: nothing received\n{sy.stderr()[-3000:]}")
                    i += 1
                    pub.send([T, envelope(b'{}', msg_id=f"2026-inc{inc}-{i}", i=i, username="alpha")])
                    try:
                        take(sy.lines.get(timeout=0.001))  # pacing the sender, and reading output
                    except queue.Empty:
                        pass
                for _ in range(AFTER_SEEN):
                    i += 1
                    pub.send([T, envelope(b'{}', msg_id=f"2026-inc{inc}-{i}", i=i, username="alpha")])
                sent[inc] = i
                # Everything this incarnation sent after its first received message arrives.
                while received[inc][-1] != i:
                    take(sy.read_lines(1, timeout=20)[0])
                pub.close()
        finally:
            rc = sy.stop()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        for line in sy.rest():
            take(line)
        lost = 0
        for inc in range(RESTARTS + 1):
            got = received[inc]
            first = got[0]
            check(got == list(range(first, sent[inc] + 1)), f"incarnation {inc}: in order from i={first}")
            if inc == 0:
                check(first == 1, "the first incarnation loses nothing")
            lost += first - 1
        check(lost > 0, "some leading messages were lost (the publisher did not wait)")
        stats = sy.stats()
        want = {"seq_restarts": RESTARTS, "seq_missing": lost, "seq_duplicates": 0, "seq_late": 0,
                "seq_reordered": 0, "seq_open": 0, "publishers": 1}
        for name, value in want.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{sy.stderr()[-3000:]}")
    print(f"ok: {RESTARTS} publisher restarts counted, {lost} lost leading messages counted missing exactly")


if __name__ == "__main__":
    main()
