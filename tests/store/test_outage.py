#!/usr/bin/python3
"""The store's database goes away mid-stream and comes back: nothing is lost, nothing stored
twice. A paced stdin feed (an input that cannot redeliver: the sink must keep what it could
not commit) -> store on the private PostgreSQL; the server is stopped for 3 s while
messages flow, then started again. Oracles: the router exits 0 after stdin ends; the table
holds the N ids once each; the sink counted the failed commit(s) and the reconnect, stored
exactly N, and its `connected` gauge is 1 again."""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pg_fixture import Postgres, log  # noqa: E402
from sytest import parse_stats, wait_for  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]
N = 6000


def main():
    pg = Postgres()
    url, name = pg.new_database("outage")
    tmp = tempfile.mkdtemp(prefix="sy-store-outage-")
    atexit.register(shutil.rmtree, tmp, True)
    cfg = os.path.join(tmp, "store.yaml")
    with open(cfg, "w") as f:
        f.write(f'version: 1\npipelines:\n  keep:\n    input: {{type: stdin}}\n'
                f'    outputs: [{{type: store, database: "{url}", batch_size: 100, batch_ms: 20}}]\n')
    err_path = os.path.join(tmp, "stderr.log")
    err = open(err_path, "wb")
    proc = subprocess.Popen([BIN, "run", "--stats-interval", "1", cfg], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=err)
    fed = [0]

    def feed():
        # ~1,000 msg/s (pacing, not synchronisation): the outage falls mid-stream.
        for i in range(N):
            proc.stdin.write((json.dumps({"topic": "org.example.outage", "body": {"n": i},
                                          "id": f"o-{i:05d}"}) + "\n").encode())
            fed[0] = i + 1
            if i % 50 == 49:
                proc.stdin.flush()
                time.sleep(0.05)
        proc.stdin.close()

    def count():
        try:
            return int(pg.psql("SELECT count(*) FROM messages", db=name))
        except AssertionError:
            return -1  # the server is down

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    wait_for(lambda: count() >= 1000, 30, "1,000 rows stored")
    log(f"stopping PostgreSQL at {count()} rows, {fed[0]} fed")
    pg.script("stop")
    t0 = time.monotonic()
    wait_for(lambda: b"was not committed" in open(err_path, "rb").read() or
             b"cannot connect" in open(err_path, "rb").read(), 20, "the sink saw the outage")
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))  # the outage lasts 3 s (the scenario, not a wait)
    log(f"starting PostgreSQL again; {fed[0]} fed")
    pg.script("start")
    th.join(60)
    assert not th.is_alive(), "the feed did not finish"
    rc = proc.wait(60)
    err.close()
    text = open(err_path, encoding="utf-8", errors="replace").read()
    assert rc == 0, text[-3000:]
    st = {}
    for _, plugin, key, label, value in parse_stats(text):
        if "store" in plugin:
            st[(key, label)] = value
    log("store:", st)
    total = count()
    distinct = int(pg.psql("SELECT count(DISTINCT msg_id) FROM messages", db=name))
    assert total == N and distinct == N, (total, distinct)
    assert st.get(("stored", "")) == N, st
    assert st.get(("commit_errors", ""), 0) + text.count("cannot connect") >= 1, st
    assert st.get(("reconnects", ""), 0) >= 1, st
    assert st.get(("connected", "")) == 1, st
    assert ("failed", "database_unavailable") not in st, st
    log(f"ok: {N} rows once each across a 3 s outage")


if __name__ == "__main__":
    main()
