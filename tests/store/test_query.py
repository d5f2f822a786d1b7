#!/usr/bin/python3
"""`switchyard query` on what the store sink kept, for SQLite and for a private PostgreSQL:
messages from stdin (topic, sent-by, sent-at headers) -> store; then queries by topic
pattern, time, user, limit and order return exactly the right rows, as JSON lines; bad
arguments get a clear error and exit 2."""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pg_fixture import Postgres, log  # noqa: E402
from sytest import run_check  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]
TOPICS = ["org.fedoraproject.prod.git.receive", "org.fedoraproject.prod.bodhi.update",
          "org.fedoraproject.stg.git.receive", "org.centos.prod.ci.pipeline"]
USERS = ["alice", "bob", None]
T0 = 1764547200  # 2025-12-01T00:00:00Z
N = 120


def iso(t):
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def messages():
    out = []
    for i in range(N):
        headers = {"sent-at": iso(T0 + 60 * i)}
        user = USERS[i % 3]
        if user:
            headers["sent-by"] = user
        out.append({"topic": TOPICS[i % 4], "body": {"n": i, "text": "h\u00e9"}, "headers": headers,
                    "id": f"m-{i:04d}"})
    return out


def store(url, msgs, tmp):
    cfg = os.path.join(tmp, "store.yaml")
    with open(cfg, "w") as f:
        f.write(f"""version: 1
pipelines:
  keep:
    input: {{type: stdin}}
    outputs:
      - {{type: store, database: "{url}", batch_size: 50}}
""")
    data = "".join(json.dumps(m) + "\n" for m in msgs)
    p = subprocess.run([BIN, "run", "--stats-interval", "1000", cfg], input=data.encode(), capture_output=True,
                       timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    return err


def query(url, *args, rc=0):
    p = subprocess.run([BIN, "query", url, *args], capture_output=True, timeout=30, text=True)
    assert p.returncode == rc, f"query {args}: rc {p.returncode}\n{p.stderr}"
    if rc != 0:
        return p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def ids(rows):
    return [r["id"] for r in rows]


def expect(msgs, pred, desc=False, limit=None):
    sel = [m for i, m in enumerate(msgs) if pred(i, m)]
    if desc:
        sel.reverse()
    if limit:
        sel = sel[:limit]
    return [m["id"] for m in sel]


def check(url, tmp):
    msgs = messages()
    err = store(url, msgs, tmp)
    assert f"stored={N}" in err, err
    # Everything once more: all duplicates, nothing stored twice.
    err = store(url, msgs, tmp)
    assert f"duplicates={N}" in err and "stored=" not in err.split("outputs[0] (store)")[-1].split("\n")[0], err

    rows = query(url, "--limit", "0", "--order", "asc")
    assert ids(rows) == [m["id"] for m in msgs], ids(rows)[:5]
    r7 = rows[7]
    assert r7 == {"id": "m-0007", "topic": TOPICS[3], "timestamp": T0 + 420, "username": "bob",
                  "body": {"n": 7, "text": "h\u00e9"},
                  "headers": {"sent-at": iso(T0 + 420), "sent-by": "bob"}}, r7
    assert rows[2]["username"] is None

    # Default: newest first, at most 100.
    got = ids(query(url))
    assert got == expect(msgs, lambda i, m: True, desc=True, limit=100), got[:3]
    # Topic patterns: * spans dots; several --topic are OR'ed.
    got = ids(query(url, "--topic", "org.fedoraproject.prod.*", "--order", "asc", "--limit", "0"))
    assert got == expect(msgs, lambda i, m: m["topic"].startswith("org.fedoraproject.prod.")), got
    got = ids(query(url, "--topic", "*.git.receive", "--topic", "org.centos.prod.ci.pipeline", "--order", "asc",
                    "--limit", "0"))
    assert got == expect(msgs, lambda i, m: i % 4 != 1), got
    # Time: --since inclusive, --until exclusive, ISO 8601 or epoch seconds.
    got = ids(query(url, "--since", iso(T0 + 600), "--until", str(T0 + 1200), "--order", "asc"))
    assert got == [f"m-{i:04d}" for i in range(10, 20)], got
    got = ids(query(url, "--since", "2025-12-01T01:00:00+01:00", "--until", "2025-12-01T00:05:00Z",
                    "--order", "asc"))
    assert got == [f"m-{i:04d}" for i in range(0, 5)], got
    # User, combined with a topic and a limit, newest first.
    got = ids(query(url, "--user", "alice", "--topic", "org.fedoraproject.*", "--limit", "5"))
    assert got == expect(msgs, lambda i, m: i % 3 == 0 and i % 4 != 3, desc=True, limit=5), got
    got = ids(query(url, "--user", "alice", "--user", "bob", "--limit", "0", "--order", "asc"))
    assert got == expect(msgs, lambda i, m: i % 3 != 2), got
    assert query(url, "--user", "nobody") == []

    # Bad arguments: exit 2 with the fix.
    e = query(url, "--since", "last week", rc=2)
    assert "--since 'last week' is not a time" in e and "ISO 8601" in e, e
    e = query("mysql://x", rc=2)
    assert "is not a database URL" in e and "sqlite:PATH" in e, e
    e = query(url, "--order", "up", rc=2)


def check_configs(tmp):
    """The example pipeline passes `switchyard check` (and --connect on SQLite); bad keys are
    reported with their file:line:column and the fix."""
    root = os.environ.get("SWITCHYARD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    example = os.path.join(root, "examples", "pipelines", "store.yaml")
    env = dict(os.environ, STORE_DATABASE="sqlite:" + os.path.join(tmp, "example.db"))
    rc, out = run_check(example, env=env)
    assert rc == 0, out
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write('version: 1\npipelines:\n  p:\n    input: {type: stdin}\n'
                '    outputs: [{type: store, database: "mysql://x", batch_size: 0}]\n')
    rc, out = run_check(bad)
    assert rc == 2, out
    assert "bad.yaml:5:39: pipelines.p.outputs[0].database: 'mysql://x' is not a database URL" in out, out
    assert "pipelines.p.outputs[0].batch_size: must be between 1 and 100000" in out, out
    good = os.path.join(tmp, "good.yaml")
    with open(good, "w") as f:
        f.write('version: 1\npipelines:\n  p:\n    input: {type: stdin}\n'
                f'    outputs: [{{type: store, database: "sqlite:{tmp}/no/such/dir/x.db"}}]\n')
    rc, out = run_check("--connect", good)
    assert rc == 1 and "no/such/dir/x.db" in out and "FAILED" in out, out


def main():
    tmp = tempfile.mkdtemp(prefix="sy-store-query-")
    atexit.register(shutil.rmtree, tmp, True)
    check_configs(tmp)
    check("sqlite:" + os.path.join(tmp, "messages.db"), tmp)
    log("sqlite: ok")
    pg = Postgres()
    url, _ = pg.new_database("query")
    check(url, tmp)
    log("postgresql: ok")
    # The password never shows in an error.
    bad = url.replace(":switchyard@", ":wrongpass@")
    e = query(bad, rc=1)
    assert "wrongpass" not in e and "***" in e, e


if __name__ == "__main__":
    main()
