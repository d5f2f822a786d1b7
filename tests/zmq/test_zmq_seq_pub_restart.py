#!/usr/bin/python3
"""A publisher that restarts on the same endpoint and sends at once.

A python3-zmq publisher process is replaced 20 times on one endpoint (close, bind again,
`i` from 1 again). Each incarnation starts sending at once, without waiting for zmq-sub to
reconnect and subscribe, so its first messages are lost (slow joiner), and its `i` stays
below the old incarnation's highest. The new connection tells zmq-sub that the publisher
may be a new process: `seq_restarts` is 20, the lost leading messages of each incarnation
are `seq_missing` exactly, and nothing is counted as a duplicate. Then the same in bind
mode (relay inbound: the publisher connects to zmq-sub) with 5 restarts."""
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


def run(restarts, bind):
    """@bind: zmq-sub binds and the publisher connects (relay inbound), else the reverse."""
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      bind: {"true" if bind else "false"}
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
            if bind:
                sy.wait_log(r"bound tcp://")
            for inc in range(restarts + 1):
                pub = Publisher(endpoint, bind=not bind)
                if inc == 0:
                    pub.wait_subscription()  # the baseline: nothing lost before it
                # Bind mode: the publisher connects and subscribes within a millisecond, so
                # make sure each incarnation's first received `i` is not 1 (a restart at 1 is
                # recognised without the connection): it lost 1..5 before connecting.
                i = 5 if bind and inc > 0 else 0
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
        for inc in range(restarts + 1):
            got = received[inc]
            first = got[0]
            check(got == list(range(first, sent[inc] + 1)), f"incarnation {inc}: in order from i={first}")
            if inc == 0:
                check(first == 1, "the first incarnation loses nothing")
            lost += first - 1
        check(lost > 0, "some leading messages were lost (the publisher did not wait)")
        stats = sy.stats()
        want = {"seq_restarts": restarts, "seq_missing": lost, "seq_duplicates": 0, "seq_late": 0,
                "seq_reordered": 0, "seq_open": 0, "publishers": 1}
        for name, value in want.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{sy.stderr()[-3000:]}")
    print(f"ok ({'bind' if bind else 'connect'} mode): {restarts} publisher restarts counted, "
          f"{lost} lost leading messages counted missing exactly")


def main():
    run(RESTARTS, bind=False)
    run(5, bind=True)  # relay inbound: the new connection is an accepted one, keyed by peer address


if __name__ == "__main__":
    main()
