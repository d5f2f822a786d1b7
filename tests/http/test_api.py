#!/usr/bin/python3
"""http-in's API over plain HTTP on loopback and over HTTPS with client certificates, with
real sockets and Debian's python3 http.client/ssl as the sender; the output is the stdout
sink writing to a file (Delivered once written), so a 202 can be checked against the file.

  - valid POST: 202 with the id, and the message is in the output file when the 202 comes;
    a POST without id gets a fresh YEAR-UUID id;
  - batch (application/x-ndjson): 202 with every id, all lines written in order; a batch
    with one bad line is refused whole (400 naming the line), nothing written; more lines
    than max_batch: 413;
  - refusals with their JSON reason: 403 topic not allowed for the sender, 400 bad bodies
    (which field, what is wrong), 413 oversize (Content-Length and chunked), 415, 401 (no
    token, bad token), 404; a filter's drop: 422 "dropped"; with Expect: 100-continue a
    refusal comes instead of "100 Continue" (the body is never sent), a good request gets
    100 then 202;
  - a flood of bad requests (bad tokens, oversize, bad JSON from 8 threads) never costs a
    good one: every good request interleaved with it is answered 202 within 2 s;
  - HTTPS: a client certificate from client_ca_file with the sender's CN: 202; no
    certificate and no token: 401; a certificate (same CN) from another CA: 401
    bad_client_certificate; a token over TLS: 202;
  - reload (SIGHUP) of the changed plain pipeline: it listens again and takes messages;
  - counters: requests = accepted + sum of refused{reason}, each reason as counted here."""
import json
import os
import re
import signal
import socket
import threading
import time

from httptest import (TOKEN_CI, TOKEN_OPS, Client, Router, cleanup, expect, free_port, log, make_pki, tmpdir,
                      wait_for)

YEAR_UUID = re.compile(r"^\d{4}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def config(port, tls_port, pki, tmp):
    return f"""
version: 1
pipelines:
  plain:
    input:
      type: http-in
      listen: 127.0.0.1:{port}
      max_body: 4096
      max_batch: 5
      timeout: 10
      senders:
        - {{name: ci, token_env: SY_TEST_TOKEN_CI, topics: [org.example.ci, "org.example.*.done"]}}
        - {{name: ops, token_file: {tmp}/ops.token, topics: ["*"]}}
    filters:
      - {{type: loop-guard, window: 0}}
    outputs:
      - {{type: stdout, path: {tmp}/plain.jsonl, buffer_bytes: 0}}
  tls:
    input:
      type: http-in
      listen: 127.0.0.1:{tls_port}
      tls: {{cert_file: {pki}/server.crt, key_file: {pki}/server.key, client_ca_file: {pki}/ca.crt}}
      senders:
        - {{name: runner, client_cn: ci-runner, topics: [org.example.ci]}}
        - {{name: ops, token_file: {tmp}/ops.token, topics: ["*"]}}
    outputs:
      - {{type: stdout, path: {tmp}/tls.jsonl, buffer_bytes: 0}}
"""


def written(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [json.loads(x) for x in f.read().split(b"\n") if x]


def main():
    tmp = tmpdir("sy-http-api-")
    pki = os.path.join(tmp, "pki")
    os.mkdir(pki)
    make_pki(pki)
    with open(os.path.join(tmp, "ops.token"), "w") as f:
        f.write(TOKEN_OPS + "\n")
    port, tls_port = free_port(), free_port()
    r = Router(config(port, tls_port, pki, tmp), tmp, env={"SY_TEST_TOKEN_CI": TOKEN_CI})
    counted = {}

    def count(reason, n=1):
        counted[reason] = counted.get(reason, 0) + n

    try:
        ci = Client(port, token=TOKEN_CI)
        ci.ready()
        plain_out = os.path.join(tmp, "plain.jsonl")

        # --- valid POSTs: 202 only once the output wrote them
        doc = expect(ci.post({"topic": "org.example.ci.build", "body": {"n": 1}, "headers": {"h": "v"},
                              "id": "2026-own-id-1"}), 202)
        assert doc["id"] == "2026-own-id-1" and doc["status"] == "accepted", doc
        got = written(plain_out)
        assert [m["id"] for m in got] == ["2026-own-id-1"], f"written when 202 came: {got}"
        assert got[0]["topic"] == "org.example.ci.build" and got[0]["body"] == {"n": 1}, got
        assert got[0]["headers"] == {"h": "v"}, got
        doc = expect(ci.post({"topic": "org.example.ci", "body": {"n": 2}}), 202)
        assert YEAR_UUID.match(doc["id"]), f"fresh id is YEAR-UUID: {doc}"
        assert doc["id"].startswith(time.strftime("%Y", time.gmtime())), doc
        assert written(plain_out)[-1]["id"] == doc["id"]
        expect(ci.post({"topic": "org.example.x.done", "body": {}}), 202)   # the glob entry
        accepted = 3

        # --- batch of JSON lines
        batch = [{"topic": "org.example.ci.b", "body": {"i": i}, "id": f"batch-{i}"} for i in range(5)]
        doc = expect(ci.post_lines(batch), 202)
        assert doc["ids"] == [f"batch-{i}" for i in range(5)], doc
        assert [m["id"] for m in written(plain_out)[-5:]] == doc["ids"], "batch written in order"
        accepted += 1
        n_written = len(written(plain_out))
        bad_batch = batch[:2] + [{"topic": "org.example.ci.b", "body": [1]}] + batch[3:]
        expect(ci.post_lines(bad_batch), 400, "bad_body", 'line 3: "body" must be a JSON object')
        count("bad_body")
        expect(ci.post_lines(batch + batch[:1]), 413, "too_many_messages", "max_batch (5)")
        count("too_many_messages")
        forbidden_line = batch[:1] + [{"topic": "org.other.x", "body": {}}]
        expect(ci.post_lines(forbidden_line), 403, "forbidden_topic", "line 2:")
        count("forbidden_topic")
        assert len(written(plain_out)) == n_written, "a refused batch writes nothing"

        # --- refusals
        expect(ci.post({"topic": "org.example.cix", "body": {}}), 403, "forbidden_topic",
               "sender 'ci' may not post topic 'org.example.cix'")
        count("forbidden_topic")
        for body, detail in ((b"{not json", "not valid JSON at offset 1"),
                             (b"[1,2]", "must be a JSON object"),
                             ({"body": {}}, '"topic" must be a non-empty string'),
                             ({"topic": "org.example.ci"}, '"body" is missing'),
                             ({"topic": "org.example.ci", "body": {}, "headers": 3}, '"headers" must be a JSON object'),
                             ({"topic": "org.example.ci", "body": {}, "id": 7}, '"id" must be a non-empty string'),
                             ({"topic": "org.example.ci", "body": {}, "extra": 1}, 'unknown field "extra"'),
                             (b'{"topic":"org.example.ci","body":{"s":"\xff"}}', "Invalid encoding"),
                             (b'{"topic":"org.example.ci","body":{"d":' + b"[" * 1500 + b"]" * 1500 + b"}}",
                              "nested deeper than 512 levels")):
            expect(ci.post(body), 400, "bad_body", detail)
            count("bad_body")
        big = {"topic": "org.example.ci", "body": {"pad": "x" * 5000}}
        st, hdrs, doc = expect(ci.post(big), 413, "oversize", "max_body (4096 bytes)")
        count("oversize")
        # chunked (no Content-Length): refused while the body is read
        st, _, doc = ci.request("POST", "/v1/messages", body=iter([json.dumps(big).encode()]))
        assert st == 413 and doc["error"] == "oversize", (st, doc)
        count("oversize")
        expect(ci.post({"topic": "org.example.ci", "body": {}}, ctype="text/plain"), 415, "wrong_content_type")
        count("wrong_content_type")
        st, hdrs, doc = ci.post({"topic": "org.example.ci", "body": {}}, token="")
        assert st == 401 and doc["error"] == "no_credentials" and "Bearer" in hdrs.get("WWW-Authenticate", ""), doc
        count("no_credentials")
        expect(ci.post({"topic": "org.example.ci", "body": {}}, token="x" * 34), 401, "bad_token")
        count("bad_token")
        expect(ci.request("GET", "/nowhere", ctype=None), 404, "not_found")
        count("not_found")
        # Expect: 100-continue: a refusal comes instead of "100 Continue", before any body
        def expect_continue(token, body):
            head = (f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n").encode()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(head)
                first = s.recv(65536)
                if first.startswith(b"HTTP/1.1 100"):
                    s.sendall(body)
                data = first
                while True:
                    more = s.recv(65536)
                    if not more:
                        return data
                    data += more
        body = json.dumps({"topic": "org.example.ci", "body": {"pad": "e" * 2000}, "id": "expect-1"}).encode()
        got = expect_continue("y" * 40, body)
        assert got.startswith(b"HTTP/1.1 401") and b'"bad_token"' in got, got
        count("bad_token")
        got = expect_continue(TOKEN_CI, body)
        assert got.startswith(b"HTTP/1.1 100 Continue") and b"HTTP/1.1 202" in got, got
        accepted += 1
        assert written(plain_out)[-1]["id"] == "expect-1"
        # a filter's drop: 422 with the filter's reason, not written
        expect(ci.post({"topic": "org.example.ci", "body": {}, "headers": {"x-switchyard-bridged": "1"}}), 422,
               "dropped", "loop_header")
        count("dropped")
        # the other sender, with its token from token_file, may post any topic
        ops = Client(port, token=TOKEN_OPS)
        expect(ops.post({"topic": "org.other.anything", "body": {}}), 202)
        accepted += 1

        # --- a flood of bad requests never costs a good one
        stop = threading.Event()
        flood_counts = {"bad_token": 0, "oversize": 0, "bad_body": 0}
        lock = threading.Lock()

        def flood(kind):
            c = Client(port, token=TOKEN_CI, timeout=10)
            while not stop.is_set():
                if kind == "bad_token":
                    st = c.post({"topic": "org.example.ci", "body": {}}, token="y" * 40)[0]
                elif kind == "oversize":
                    st = c.post({"topic": "org.example.ci", "body": {"p": "z" * 8000}})[0]
                else:
                    st = c.post(b"{{{{")[0]
                assert st in (400, 401, 413), st
                with lock:
                    flood_counts[kind] += 1
        threads = [threading.Thread(target=flood, args=(k,)) for k in list(flood_counts) * 3]
        for t in threads:
            t.start()
        worst = 0.0
        try:
            time.sleep(0.2)
            for i in range(30):
                t0 = time.monotonic()
                expect(ci.post({"topic": "org.example.ci.flood", "body": {"i": i}, "id": f"flood-{i}"}), 202)
                worst = max(worst, time.monotonic() - t0)
                accepted += 1
        finally:
            stop.set()
            for t in threads:
                t.join()
        for k, v in flood_counts.items():
            count(k, v)
        log(f"flood: {flood_counts} bad requests; 30 good ones all 202, slowest {worst * 1000:.0f} ms")
        assert worst < 2.0, f"a good request took {worst:.2f} s during the flood"
        assert sum(flood_counts.values()) > 100, flood_counts
        ids = [m["id"] for m in written(plain_out)]
        assert [i for i in ids if i.startswith("flood-")] == [f"flood-{i}" for i in range(30)], ids

        # --- HTTPS with client certificates
        tls_out = os.path.join(tmp, "tls.jsonl")
        runner = Client(tls_port, pki=pki, cert="client")
        runner.ready()
        doc = expect(runner.post({"topic": "org.example.ci.tls", "body": {"ok": 1}, "id": "tls-1"}), 202)
        assert [m["id"] for m in written(tls_out)] == ["tls-1"]
        expect(Client(tls_port, pki=pki).post({"topic": "org.example.ci", "body": {}}), 401, "no_credentials")
        expect(Client(tls_port, pki=pki, cert="rogue").post({"topic": "org.example.ci", "body": {}}), 401,
               "bad_client_certificate", "signed by the CA of tls.client_ca_file")
        expect(runner.post({"topic": "org.other", "body": {}}), 403, "forbidden_topic")
        expect(Client(tls_port, pki=pki, token=TOKEN_OPS).post({"topic": "org.other", "body": {}, "id": "tls-2"}), 202)
        assert [m["id"] for m in written(tls_out)] == ["tls-1", "tls-2"]
        tls_refused = 3

        # --- reload (SIGHUP) with a changed plain pipeline: it listens again on its port and
        # takes messages (the old version stopped listening and drained first)
        with open(r.cfg) as f:
            text = f.read()
        with open(r.cfg, "w") as f:
            f.write(text.replace("timeout: 10", "timeout: 9"))
        r.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: 1 unchanged (tls), 1 changed (plain)" in r.stderr(), 20, "the reload")
        ci.ready()
        expect(ci.post({"topic": "org.example.ci", "body": {}, "id": "after-reload"}), 202)
        assert written(plain_out)[-1]["id"] == "after-reload"
        accepted += 1
    finally:
        rc = r.stop()
    err = r.stderr()
    assert rc == 0, f"exit status {rc}\n{err[-3000:]}"
    assert TOKEN_CI not in err and TOKEN_OPS not in err, "a token appeared in the log"
    plain = r.counters("plain")
    refused = {label: v for (name, label), v in plain.items() if name == "refused"}
    log(f"counters of the plain pipeline's input: {plain}")
    assert refused == counted, f"refused{{reason}}: got {refused}, expected {counted}"
    assert plain.get(("accepted", "")) == accepted, (plain, accepted)
    assert plain.get(("requests", "")) == accepted + sum(counted.values()), plain
    tls = r.counters("tls")
    assert tls.get(("accepted", "")) == 2 and sum(v for (n, _), v in tls.items() if n == "refused") == tls_refused, tls
    cleanup(tmp)
    print("ok")


if __name__ == "__main__":
    main()
