#!/usr/bin/python3
"""zmq-sub fairness: a publisher with a large backlog does not starve another one. The
switchyard process is stopped (SIGSTOP) while one publisher queues 20,000 messages and a
second one queues a single message, then continued: the quiet publisher's message must be
read long before the flood is through (the source takes a bounded turn per socket and
keeps a socket with messages left on its ready list)."""
import json
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zmq  # noqa: E402
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, write_config  # noqa: E402

T = TOPIC.encode()
FLOOD = 20000
# The quiet message must come before at least this many flood messages (the source takes
# 64 per turn; a wide margin for what the io thread had read before the quiet connection).
MIN_AFTER = 5000


def main():
    ctx = zmq.Context()
    flood = Publisher("tcp://127.0.0.1:*", ctx=ctx)
    quiet = Publisher("tcp://127.0.0.1:*", ctx=ctx)
    eps = [p.sock.getsockopt(zmq.LAST_ENDPOINT).decode() for p in (flood, quiet)]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  fair:
    input:
      type: zmq-sub
      endpoints: ["{eps[0]}", "{eps[1]}"]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        stopped = False
        try:
            flood.wait_subscription()
            quiet.wait_subscription()
            os.kill(sy.proc.pid, signal.SIGSTOP)
            stopped = True
            pad = b"x" * 200
            for i in range(1, FLOOD + 1):
                flood.send([T, envelope(b'{"pad":"%s"}' % pad, msg_id=f"2026-flood-{i}", i=i,
                                        username="flood")])
            quiet.send([T, envelope(b"{}", msg_id="2026-quiet", i=1, username="quiet")])
            os.kill(sy.proc.pid, signal.SIGCONT)
            stopped = False
            lines = sy.read_lines(FLOOD + 1, timeout=120)
        finally:
            if stopped:
                os.kill(sy.proc.pid, signal.SIGCONT)
            rc = sy.stop()
            for p in (flood, quiet):
                p.sock.setsockopt(zmq.LINGER, 0)
                p.close()
            ctx.term()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        ids = [json.loads(l)["id"] for l in lines]
        check(ids.count("2026-quiet") == 1, "the quiet message arrives once")
        pos = ids.index("2026-quiet")
        flood_ids = [x for x in ids if x != "2026-quiet"]
        check(flood_ids == [f"2026-flood-{i}" for i in range(1, FLOOD + 1)], "the flood, complete and in order")
        after = FLOOD - pos
        check(after >= MIN_AFTER, f"quiet message at position {pos}: only {after} flood messages after it")
    print(f"ok: the quiet publisher's message came at position {pos} of {FLOOD + 1}")


if __name__ == "__main__":
    main()
