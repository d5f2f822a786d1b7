#!/usr/bin/python3
"""Stdin -> amqp-publish -> a python3-pika consumer: every message carries the
fedora-messaging properties and headers (docs/plugins/amqp-publish.md), routing key = topic (plus
routing_key_prefix), body byte-exact; with `mandatory`, messages no queue takes are counted
as unroutable, and the pipeline only ends once every publish is confirmed."""
import json
import re
import subprocess

from amqp_fixture import Broker, Switchyard, drain, log, unique

N = 2000
UNROUTABLE = 50


def main():
    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()
    queue = unique("sy-publish")
    topic_base = unique("org.example.p")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "amq.topic", "pre.fix." + topic_base + ".#")

    lines, expect = [], {}
    for i in range(N):
        topic = f"{topic_base}.t{i % 5}"
        body = json.dumps({"n": i, "s": "v\u00e9"}, ensure_ascii=False)
        headers = {"x-h": "1", "n": 3, "neg": -7, "big": 2**40, "f": 1.5, "ok": True, "none": None,
                   "nested": {"a": [1, "b"]}}
        if i % 10 == 0:
            headers["priority"] = 4
        mid = f"2026-{i:08d}"
        lines.append(json.dumps({"topic": topic, "body": json.loads(body), "headers": headers, "id": mid},
                                ensure_ascii=False))
        expect[mid] = (topic, headers)
    for i in range(UNROUTABLE):  # no queue is bound for these
        lines.append(json.dumps({"topic": unique("nobody.listens"), "body": {"u": i}, "id": f"u-{i}"}))

    cfg = f"""version: 1
pipelines:
  in2amqp:
    input: {{type: stdin}}
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        exchange: amq.topic
        routing_key_prefix: "pre.fix."
        mandatory: true
        confirm_window: 100
"""
    sy = Switchyard(cfg, stdin=subprocess.PIPE)
    sy.proc.stdin.write(("\n".join(lines) + "\n").encode())
    sy.proc.stdin.close()
    rc = sy.wait(180)
    err = sy.stderr()
    assert rc == 0, f"switchyard exited {rc}\n{err[-3000:]}"
    st = sy.stats()
    log("stats:", {k: v for k, v in st.items() if v})
    assert st.get(("confirmed", ""), 0) == N, st
    assert st.get(("unroutable", ""), 0) == UNROUTABLE, st
    assert "guest:guest" not in err, "password appears in the log"

    got = drain(conn, queue, N, timeout=60, idle=1.0)
    assert len(got) == N, f"{len(got)} of {N} arrived"
    sent_at = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
    seen = set()
    for method, props, body in got:
        mid = props.message_id
        assert mid in expect, mid
        assert mid not in seen, f"duplicate {mid}"
        seen.add(mid)
        topic, headers = expect[mid]
        assert method.routing_key == "pre.fix." + topic, method.routing_key
        assert method.exchange == "amq.topic"
        assert props.content_type == "application/json", props.content_type
        assert props.content_encoding == "utf-8", props.content_encoding
        assert props.delivery_mode == 2, props.delivery_mode
        h = props.headers
        assert h["fedora_messaging_schema"] == "base.message", h
        assert h["fedora_messaging_schema_package"] == "fedora_messaging", h
        assert h["fedora_messaging_severity"] == 20 and isinstance(h["fedora_messaging_severity"], int), h
        assert sent_at.match(h["sent-at"]), h["sent-at"]
        if "priority" in headers:
            assert props.priority == 4 and h["priority"] == 4, (props.priority, h)
        else:
            assert props.priority is None and h["priority"] == 0, (props.priority, h)
        for k, v in headers.items():
            assert h[k] == v, (k, h[k], v)
        assert props.user_id is None and props.timestamp is None
        n = int(mid.split("-")[1])
        assert json.loads(body) == {"n": n, "s": "v\u00e9"}, body
    ch = conn.channel()
    ch.queue_delete(queue)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
