#!/usr/bin/python3
"""zmq-pub's replay records in the message store's database (replay_database: sqlite:PATH,
or with the argument `postgresql` a private PostgreSQL server on 127.0.0.1 started with
scripts/postgres-local in the build dir, stopped again if this test started it):
stdin -> zmq-pub, run twice on the same database: the second run numbers on from the
first one's last seq_id, and the replay endpoint answers for both runs' envelopes, byte for
byte as published; a second publisher name in the same database numbers its own from 1;
a database that cannot be opened stops the start, naming replay_database."""
import json
import os
import subprocess
import sys
import tempfile
import uuid

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
        sy.wait_log(r"replay endpoint bound", 30)
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


def postgres(action):
    """scripts/postgres-local ACTION on this test's own state dir; its stdout."""
    env = dict(os.environ, SWITCHYARD_POSTGRES_DIR=os.path.join(os.environ["SWITCHYARD_BUILD_ROOT"],
                                                                 "postgres-replay-test"))
    script = os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "scripts", "postgres-local")
    # Output to files, not pipes: the server `start` leaves running inherits them.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run([script, action], env=env, stdout=out, stderr=err, timeout=60)
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode().strip(), err.read().decode()
    if action != "status":
        check(r.returncode == 0, f"postgres-local {action}: {errors[-2000:]}")
    return r.returncode, text


def main():
    backend = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    started = False
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if backend == "postgresql":
                if postgres("status")[0] != 0:
                    postgres("start")
                    started = True
                db = postgres("url")[1]
            else:
                db = f"sqlite:{tmp}/replay.db"
            # Names of this run: a reused server keeps earlier runs' records.
            a, b = f"pub-a-{uuid.uuid4().hex[:8]}", f"pub-b-{uuid.uuid4().hex[:8]}"
            got1, (r1,) = run(tmp, db, a, 0, 5, [{"seq_id_range": [1, 100]}])
            check([json.loads(f)["seq_id"] for f in got1] == [1, 2, 3, 4, 5], f"run 1 seq_ids {got1}")
            check(r1 == got1, "run 1 replay")
            got2, (r2, by_id) = run(tmp, db, a, 5, 3, [{"seq_id_range": [1, 100]},
                                                       {"msg_ids": [f"2026-{a}-1", f"2026-{a}-6"]}])
            check([json.loads(f)["seq_id"] for f in got2] == [6, 7, 8], f"run 2 numbers on: {got2}")
            check(r2 == got1 + got2, "run 2 replays both runs, byte for byte")
            check(by_id == [got1[1], got2[1]], "msg_ids across runs")
            got3, (r3,) = run(tmp, db, b, 100, 2, [{"seq_id_range": [1, 100]}])
            check([json.loads(f)["seq_id"] for f in got3] == [1, 2], f"another publisher numbers its own: {got3}")
            check(r3 == got3, "the other publisher replays only its own")
        finally:
            if started:
                postgres("stop")

        bad = config(tmp, f"sqlite:{tmp}/no/such/dir/replay.db", "pub-c", free_port(), free_port())
        sy = Switchyard(["run", bad], stdin=subprocess.PIPE)
        rc = sy.wait(30)
        check(rc != 0 and "replay_database" in sy.stderr(), f"bad database: exit {rc}\n{sy.stderr()[-2000:]}")
    print("ok")


if __name__ == "__main__":
    main()
