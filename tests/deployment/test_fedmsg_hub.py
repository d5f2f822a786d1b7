#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The README's Debian-style deployment works as shipped: examples/pipelines/fedmsg-hub.yaml
(relay with replay, HTTPS ingest, store), run unmodified by the real `switchyard` with only
the variables its header documents, against independent peers: a python3-zmq publisher
connecting to the relay's inbound as fedmsg-logger does, Debian's python3 http.client/ssl
posting over HTTPS, a python3-zmq subscriber on the outbound port, and a client of fedmsg's
replay wire format.

* every message, published on ZeroMQ or posted over HTTPS (202), reaches the subscriber once,
  numbered with consecutive seq_ids;
* `switchyard query` on the hub's database lists each of them exactly once, by topic;
* the replay endpoint answers a seq_id_range with the very envelopes the subscriber got;
* a refused topic is answered 403 and goes nowhere;
* SIGTERM stops the hub with status 0."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import atexit
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "replay"))
sys.path.insert(0, os.path.join(HERE, "..", "http"))
from replaytest import (Publisher, Subscriber, Switchyard, check, envelope, free_port,  # noqa: E402
                        get_replay, http_get, wait_for)
from httptest import Client, make_pki  # noqa: E402
from sytest import run_check  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]
EXAMPLE = os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "examples", "pipelines", "fedmsg-hub.yaml")
PREFIX = "org.example.test"
N_ZMQ = 40
N_HTTP = 40
TOKEN = "hub-ci-token-00112233445566778899aabb"


def documented():
    with open(EXAMPLE) as f:
        text = f.read()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\bHUB_[A-Z_]+\b", header)), set(re.findall(r"\$\{([A-Z0-9_]+)", body))


def query(db, *args):
    p = subprocess.run([BIN, "query", db, *args], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"switchyard query {args}: {p.returncode}\n{p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines()]


def main():
    tmp = tempfile.mkdtemp(prefix="sy-hub-")
    atexit.register(shutil.rmtree, tmp, True)
    in_header, read = documented()
    check(read <= in_header, f"variables read but not documented in the header: {read - in_header}")

    pki = make_pki(os.path.join(tmp))
    shutil.copy(os.path.join(pki, "server.crt"), os.path.join(tmp, "hub.crt"))
    shutil.copy(os.path.join(pki, "server.key"), os.path.join(tmp, "hub.key"))
    tokens = os.path.join(tmp, "tokens")
    os.mkdir(tokens, 0o700)
    with open(os.path.join(tokens, "ci"), "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(os.path.join(tokens, "ci"), 0o600)

    p_in, p_out, p_replay, p_https, p_http = (free_port() for _ in range(5))
    db = "sqlite:" + os.path.join(tmp, "hub.db")
    env = {
        "HUB_INBOUND": f"tcp://127.0.0.1:{p_in}", "HUB_INBOUND_CONNECT": f"tcp://127.0.0.1:{p_in}",
        "HUB_OUTBOUND": f"tcp://127.0.0.1:{p_out}", "HUB_OUTBOUND_CONNECT": f"tcp://127.0.0.1:{p_out}",
        "HUB_REPLAY": f"tcp://127.0.0.1:{p_replay}", "HUB_REPLAY_CONNECT": f"tcp://127.0.0.1:{p_replay}",
        "HUB_HTTPS_LISTEN": f"127.0.0.1:{p_https}", "HUB_TLS_DIR": tmp, "HUB_TOKEN_DIR": tokens,
        "HUB_TOPIC_PREFIX": PREFIX, "HUB_DATABASE": db,
    }
    check(set(env) <= in_header, f"the test sets undocumented variables {set(env) - in_header}")
    for k in read:
        os.environ.pop(k, None)
    os.environ.update(env)

    rc, out = run_check(EXAMPLE)
    check(rc == 0, f"switchyard check failed:\n{out}")

    hub = Switchyard(["run", "--stats-interval", "1000", "--http", f"127.0.0.1:{p_http}", EXAMPLE])
    consumer = None
    try:
        # Ready: every input and output connected (the archive's zmq-sub to the relay, the
        # ingest's zmq-pub to the inbound), http-in listening.
        wait_for(lambda: http_get(f"http://127.0.0.1:{p_http}/health/ready")[0] == 200, 30, "the hub ready")
        consumer = Subscriber(f"tcp://127.0.0.1:{p_out}")
        publisher = Publisher(f"tcp://127.0.0.1:{p_in}", bind=False)
        publisher.wait_subscription()
        client = Client(p_https, pki=pki, token=TOKEN)

        # The path is open end to end once a warm-up message reached both the consumer and
        # the store (subscriptions travel asynchronously; wait for them, not for luck).
        warm = []

        def warmed():
            mid = f"warm-{len(warm)}"
            warm.append(mid)
            publisher.send([f"{PREFIX}.warm".encode(),
                            envelope(b'{"warm":true}', topic=f"{PREFIX}.warm", msg_id=mid, i=len(warm))])
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                try:
                    topic, body = consumer.recv(timeout=0.2)
                except AssertionError:
                    continue
                if json.loads(body)["msg_id"] in warm:
                    return True
            return False
        wait_for(warmed, 30, "a warm-up message through the relay to the subscriber", interval=0)
        wait_for(lambda: any(r["id"] in warm for r in query(db, "--topic", f"{PREFIX}.warm")), 30,
                 "a warm-up message in the store")

        zmq_ids = [f"2026-zmq-{i:04d}" for i in range(N_ZMQ)]
        for i, mid in enumerate(zmq_ids):
            topic = f"{PREFIX}.logger.msg"
            publisher.send([topic.encode(), envelope(b'{"n":%d}' % i, topic=topic, msg_id=mid, i=len(warm) + i + 1)])
        http_ids = [f"2026-http-{i:04d}" for i in range(N_HTTP)]
        half = N_HTTP // 2
        for mid in http_ids[:half]:
            st, _, doc = client.post({"topic": f"{PREFIX}.ci.build", "body": {"id": mid}, "id": mid})
            check(st == 202, f"POST {mid}: {st} {doc}")
        st, _, doc = client.post_lines([{"topic": f"{PREFIX}.ci.build", "body": {"id": m}, "id": m}
                                        for m in http_ids[half:]])
        check(st == 202, f"batch POST: {st} {doc}")
        st, _, doc = client.post({"topic": f"{PREFIX}.admin.reboot", "body": {}, "id": "2026-refused"})
        check(st == 403, f"a topic outside the sender's: {st} {doc}")

        # The subscriber gets every message once, numbered.
        want = set(zmq_ids) | set(http_ids)
        got = {}
        deadline = time.monotonic() + 30
        while set(got) != want:
            check(time.monotonic() < deadline, f"subscriber missing {sorted(want - set(got))[:5]}")
            try:
                topic, body = consumer.recv(timeout=1)
            except AssertionError:
                continue
            env_ = json.loads(body)
            if env_["msg_id"] in warm:
                continue
            check(env_["msg_id"] in want and env_["msg_id"] not in got, f"unexpected or twice: {env_['msg_id']}")
            got[env_["msg_id"]] = (env_["seq_id"], body)
        seqs = sorted(s for s, _ in got.values())
        check(seqs == list(range(seqs[0], seqs[0] + len(want))), f"seq_ids not consecutive: {seqs[:5]}...")
        check("2026-refused" not in got, "the refused message was published")

        # The store has each exactly once.
        def stored():
            rows = query(db, "--topic", f"{PREFIX}.*", "--limit", "1000")
            return rows if {r["id"] for r in rows} >= want else None
        rows = wait_for(stored, 30, "every message in the store")
        ids = [r["id"] for r in rows if r["id"] in want]
        check(len(ids) == len(want) == len(set(ids)), f"stored {len(ids)} rows for {len(want)} messages")
        check(not any(r["id"] == "2026-refused" for r in rows), "the refused message was stored")
        http_rows = query(db, "--topic", f"{PREFIX}.ci.*", "--limit", "1000")
        check({r["id"] for r in http_rows} == set(http_ids), "query by the ingest's topic")

        # The replay endpoint answers with the very envelopes the subscriber got.
        envs, frames = get_replay(f"tcp://127.0.0.1:{p_replay}", {"seq_id_range": [seqs[0], seqs[-1]]})
        check(len(frames) == len(want), f"replay returned {len(frames)} of {len(want)}")
        by_id = {e["msg_id"]: f for e, f in zip(envs, frames)}
        for mid, (_, body) in got.items():
            check(by_id.get(mid) == body, f"replayed envelope of {mid} differs from the published one")
        print(f"hub: {len(want)} messages (ZeroMQ {N_ZMQ}, HTTPS {N_HTTP}) published once each, "
              f"seq_id {seqs[0]}..{seqs[-1]}, stored once, replayed byte for byte", flush=True)
    finally:
        if consumer is not None:
            consumer.close()
        rc = hub.stop()
    check(rc == 0, f"switchyard exited {rc}\n{hub.stderr()[-3000:]}")


if __name__ == "__main__":
    main()
