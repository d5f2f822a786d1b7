#!/usr/bin/python3
"""zmq-sub's gap backfill against a replay endpoint written in the test (python3-zmq, fedmsg's
wire format), one case per run (argument): `gap` (a gap in seq_id is asked for exactly and
backfilled in order, before the held messages), `error` (an error reply: unrecoverable),
`timeout` (no answer: unrecoverable after replay_timeout while another publisher flows on;
the next gap is asked for on a new REQ socket and backfilled), `duplicate` (late
duplicates dropped and counted), `hold` (more newer messages than replay_hold while the
answer is outstanding: the replay is given up at once and the held messages go on),
`restart` (the publisher restarts with its numbering from 1: on the new connection that is a
restart, not 3 duplicates; on one connection a lower seq_id stays a duplicate)."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subtest import (TOPIC, Publisher, ReplayServer, Switchyard, check, envelope, free_port, ids,  # noqa: E402
                     range_answer, write_config)

T = TOPIC.encode()


def run(case):
    pub_ep, other_ep, rep_ep = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    store = {k: envelope(k) for k in range(1, 20)}
    # One replayed envelope as a relay that re-serializes would send it (not canonical).
    store[5] = json.dumps(json.loads(store[5])).encode()
    check(b": " in store[5], "a non-canonical envelope")
    answers = {"gap": range_answer(store), "error": lambda q: [b"error: 'no match'"],
               "duplicate": range_answer(store), "hold": lambda q: None,
               "restart": range_answer(store)}
    if case == "timeout":
        first = []

        def answer(q):  # the first query gets no answer at all, the next ones do
            if not first:
                first.append(q)
                return None
            return range_answer(store)(q)
        answers["timeout"] = answer
    server = ReplayServer(rep_ep, answers[case])
    alpha = Publisher(pub_ep)
    other = Publisher(other_ep)
    timeout_ms = 2500 if case == "timeout" else 30000
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  replay:
    input:
      type: zmq-sub
      endpoints:
        alpha: "{pub_ep}"
        other: ["{other_ep}"]
      replay_endpoints:
        alpha: "{rep_ep}"
      replay_timeout: {timeout_ms}
      replay_hold: {3 if case == "hold" else 10000}
      reorder_window: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            alpha.wait_subscription()
            other.wait_subscription()
            send = lambda k: alpha.send([T, store[k]])  # noqa: E731
            if case == "gap":
                for k in (1, 2, 3, 7, 8):  # 4..6 never sent: the wire lost them
                    send(k)
                lines = sy.read_lines(8, timeout=20)
                check(ids(lines) == [f"alpha-{k}" for k in range(1, 9)], f"in order: {ids(lines)}")
                check(server.queries == [{"seq_id_range": [4, 6]}], f"queries {server.queries}")
                want = {"backfilled": 3, "unrecoverable": 0, "replay_queries": 1}
            elif case == "error":
                for k in (1, 5, 6):
                    send(k)
                lines = sy.read_lines(3, timeout=20)
                check(ids(lines) == ["alpha-1", "alpha-5", "alpha-6"], f"{ids(lines)}")
                check(server.queries == [{"seq_id_range": [2, 4]}], f"queries {server.queries}")
                check("answered error: 'no match'" in sy.stderr(), "the error reply is logged")
                want = {"backfilled": 0, "unrecoverable": 3, "replay_errors": 1}
            elif case == "timeout":
                send(1)
                send(4)  # 2, 3 missing: asked for, never answered
                other.send([T, envelope(1, name="other")])
                first_two = sy.read_lines(2, timeout=20)
                # The other publisher is not held up by alpha's outstanding replay (alpha-4 is
                # held until the timeout); the two sockets' messages come in either order.
                check(sorted(ids(first_two)) == ["alpha-1", "other-1"], f"other flows on: {ids(first_two)}")
                send(5)
                send(8)  # 6, 7 missing: asked for on a new REQ socket, answered
                lines = sy.read_lines(5, timeout=20)
                check(ids(lines) == ["alpha-4", "alpha-5", "alpha-6", "alpha-7", "alpha-8"], f"{ids(lines)}")
                check(server.queries == [{"seq_id_range": [2, 3]}, {"seq_id_range": [6, 7]}],
                      f"queries {server.queries}")
                check("within replay_timeout=2500 ms" in sy.stderr(), "the timeout is logged")
                want = {"backfilled": 2, "unrecoverable": 2, "replay_timeouts": 1, "replay_queries": 2}
            elif case == "hold":
                for k in (1, 5, 6, 7, 8):  # 5, 6, 7 held; 8 is one too many: given up, well before the timeout
                    send(k)
                lines = sy.read_lines(5, timeout=20)
                check(ids(lines) == ["alpha-1", "alpha-5", "alpha-6", "alpha-7", "alpha-8"], f"{ids(lines)}")
                check("more than replay_hold=3 newer messages arrived meanwhile" in sy.stderr(), "logged")
                want = {"backfilled": 0, "unrecoverable": 3, "replay_timeouts": 0, "replay_queries": 1}
            elif case == "restart":
                for k in (1, 2, 3):
                    send(k)
                check(ids(sy.read_lines(3, timeout=20)) == ["alpha-1", "alpha-2", "alpha-3"], "before")
                alpha.close()
                alpha = Publisher(pub_ep)  # a new process on the same endpoint
                alpha.wait_subscription()
                for k in (1, 2, 1):
                    send(k)
                send(3)
                lines = sy.read_lines(3, timeout=20)
                check(ids(lines) == ["alpha-1", "alpha-2", "alpha-3"], f"after the restart: {ids(lines)}")
                check("its numbering started again (a restart)" in sy.stderr(), "the restart is logged")
                want = {"replay_restarts": 1, "replay_duplicates": 1, "backfilled": 0, "unrecoverable": 0,
                        "replay_queries": 0}
            else:  # duplicate
                for k in (1, 2, 3, 2, 3, 4):
                    send(k)
                lines = sy.read_lines(4, timeout=20)
                check(ids(lines) == [f"alpha-{k}" for k in range(1, 5)], f"{ids(lines)}")
                check(server.queries == [], f"no query: {server.queries}")
                want = {"replay_duplicates": 2, "backfilled": 0, "unrecoverable": 0}
        finally:
            rc = sy.stop()
            alpha.close()
            other.close()
            server.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        check(sy.rest() == [], "nothing more was output")
        stats = sy.stats()
        for name, value in want.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{stats}")
        if case == "duplicate":
            check(stats.get(("zmq-sub", "dropped", "replay_duplicate")) == 2, f"dropped: {stats}")
        if case == "gap":
            check(f"backfilled seq_id 4 to 6 from {rep_ep}" in sy.stderr(), "the backfill is logged")
            # The `i` tracker saw only what the wire carried: 4..6 missing, nothing
            # duplicated or reordered by the backfill.
            for name, value in {"seq_missing": 3, "seq_gaps": 1, "seq_duplicates": 0, "seq_reordered": 0}.items():
                got = stats.get(("zmq-sub", name, ""))
                check(got == value, f"{name} = {got}, want {value}\n{stats}")
    print(f"ok: {case}")


if __name__ == "__main__":
    run(sys.argv[1])
