#!/usr/bin/python3
"""zmq-pub's replay records in the message store's database (replay_database: sqlite:PATH):
stdin -> zmq-pub, run twice on the same database: the second run numbers on from the
first one's last seq_id, and the replay endpoint answers for both runs' envelopes, byte for
byte as published; a second publisher name in the same database numbers its own from 1;
a database that cannot be opened stops the start, naming replay_database."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replaytest import Subscriber, Switchyard, check, free_port, get_replay, replay_error, write_config  # noqa: E402


def config(tmp, db, name, p_out, p_replay):
    return write_config(tmp, f"""version: 1
pipelines:
  pub:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{p_out}"]
        replay_endpoint: "tcp://127.0.0.1:{p_replay}"
        replay_database: "{db}"
        replay_name: "{name}"
        wait_for_subscriber: 30
""", f"{name}.yaml")


def run(tmp, db, name, first, count, queries):
    """One `switchyard run`: publishes messages first..first+count-1, returns the frames the
    subscriber got and the replies to @queries (asked while it runs)."""
    p_out, p_replay = free_port(), free_port()
    cfg = config(tmp, db, name, p_out, p_replay)
    sub = Subscriber(f"tcp://127.0.0.1:{p_out}")
    sy = Switchyard(["run", cfg], stdin=subprocess.PIPE)
    try:
        lines = [json.dumps({"topic": "org.fedoraproject.dev.demo.db", "body": {"n": n}, "id": f"2026-{name}-{n}"},
                            separators=(",", ":")) for n in range(first, first + count)]
        sy.proc.stdin.write(("\n".join(lines) + "\n").encode())
        sy.proc.stdin.flush()
        got = [f1 for _, f1 in sub.recv_n(count)]
        replies = [get_replay(f"tcp://127.0.0.1:{p_replay}", q)[1] for q in queries]
        missing = replay_error(f"tcp://127.0.0.1:{p_replay}", [b'{"seq_id":1000}'])
        sy.proc.stdin.close()
        rc = sy.wait(30)
    finally:
        sub.close()
        if sy.proc.poll() is None:
            sy.stop()
    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    check(missing == "error: 'no match'", missing)
    return got, replies


def main():
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:{tmp}/replay.db"
        got1, (r1,) = run(tmp, db, "pub-a", 0, 5, [{"seq_id_range": [1, 100]}])
        check([json.loads(f)["seq_id"] for f in got1] == [1, 2, 3, 4, 5], f"run 1 seq_ids {got1}")
        check(r1 == got1, "run 1 replay")
        got2, (r2, by_id) = run(tmp, db, "pub-a", 5, 3, [{"seq_id_range": [1, 100]}, {"msg_ids": ["2026-pub-a-1",
                                                                                                 "2026-pub-a-6"]}])
        check([json.loads(f)["seq_id"] for f in got2] == [6, 7, 8], f"run 2 numbers on: {got2}")
        check(r2 == got1 + got2, "run 2 replays both runs, byte for byte")
        check(by_id == [got1[1], got2[1]], "msg_ids across runs")
        got3, (r3,) = run(tmp, db, "pub-b", 100, 2, [{"seq_id_range": [1, 100]}])
        check([json.loads(f)["seq_id"] for f in got3] == [1, 2], f"another publisher numbers its own: {got3}")
        check(r3 == got3, "pub-b replays only its own")

        bad = config(tmp, f"sqlite:{tmp}/no/such/dir/replay.db", "pub-c", free_port(), free_port())
        sy = Switchyard(["run", bad], stdin=subprocess.PIPE)
        rc = sy.wait(30)
        check(rc != 0 and "replay_database" in sy.stderr(), f"bad database: exit {rc}\n{sy.stderr()[-2000:]}")
    print("ok")


if __name__ == "__main__":
    main()
