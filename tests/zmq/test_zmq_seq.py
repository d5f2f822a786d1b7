#!/usr/bin/python3
"""Done-when 4: loss accounting over fedmsg's `i`. Publishers that skip `i` values give
exact gap counts; a publisher process that really restarts (new socket on the same
endpoint, `i` back to 1) is counted as a restart, not a gap; duplicates and late
arrivals are told apart; publishers (endpoint, username) are tracked independently."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()


def main():
    p1, p2 = free_port(), free_port()
    e1, e2 = f"tcp://127.0.0.1:{p1}", f"tcp://127.0.0.1:{p2}"
    alpha = Publisher(e1)
    other = Publisher(e2)
    sent = []

    def send(pub, i, user):
        msg_id = f"2026-{user}-{len(sent)}"
        pub.send([T, envelope(b'{"i":%d}' % i, msg_id=msg_id, i=i, username=user)])
        sent.append(msg_id)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["{e1}", "{e2}"]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            alpha.wait_subscription()
            other.wait_subscription()
            # alpha: 1..10, 11..15 lost, 16..20, 21 lost, 22..30          -> 2 gaps, 6 missing
            # beta (same socket, other username): 1..30, interleaved        -> nothing
            # alpha (same username, other endpoint): 1..30                  -> nothing
            for i in range(1, 31):
                if not (11 <= i <= 15 or i == 21):
                    send(alpha, i, "alpha")
                send(alpha, i, "beta")
                send(other, i, "alpha")
            # alpha sends 30 again (duplicate), skips 32, and 32 arrives right after 33.
            send(alpha, 30, "alpha")
            send(alpha, 31, "alpha")
            send(alpha, 33, "alpha")
            send(alpha, 32, "alpha")
            sy.read_lines(len(sent))

            # alpha restarts for real: new process-like socket on the same endpoint, i from 1.
            alpha.close()
            alpha = Publisher(e1)
            alpha.wait_subscription()  # zmq-sub reconnected and subscribed again
            for i in range(1, 6):
                send(alpha, i, "alpha")
            lines = sy.read_lines(5)
        finally:
            rc = sy.stop()
            alpha.close()
            other.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        check([json.loads(l)["id"] for l in lines] == sent[-5:], "messages after the restart arrive")
        stats = sy.stats()
        # 32 arrived inside the reorder window (a parallel signer upstream): reordered, never missing.
        want = {"seq_gaps": 2, "seq_missing": 6, "seq_restarts": 1, "seq_duplicates": 1,
                "seq_reordered": 1, "seq_late": 0, "seq_untracked": 0, "seq_open": 0}
        for name, value in want.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{stats}")
        check(stats.get(("zmq-sub", "publishers", "")) == 3, f"3 publishers: {stats}")
        check(stats.get(("zmq-sub", "zmq_received", "")) == len(sent), "every message was received")
    print("ok: gaps, duplicates, reorders and a restart counted exactly")


if __name__ == "__main__":
    main()
