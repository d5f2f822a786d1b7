#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard tail --amqp` (like `fedora-messaging consume`) and `switchyard logger --amqp`
(like `fedora-messaging publish`) against the private RabbitMQ (scripts/rabbitmq-local),
with python3-pika as the other side:

- tail --amqp URL --bind EXCHANGE=KEY (twice): a private server-named queue, exclusive,
  auto-delete, not durable, bound as asked, gone when tail exits; it shows what pika
  published to either exchange with a matching key, and nothing else;
- record --amqp --queue NAME: that queue, transient and auto-delete, into a file;
- logger --amqp URL --exchange X: pika receives fedora-messaging messages;
- logger --amqp --cert/--key, then tail --amqp --validate: the signed fedmsg envelope
  crosses AMQP and its signature is reported valid, with username and i."""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "amqp"))
sys.path.insert(0, os.path.join(HERE, "..", "zmq"))
sys.path.insert(0, os.path.join(HERE, "..", "crypto"))
import pika  # noqa: E402
import pyhelper  # noqa: E402
from amqp_fixture import Broker, unique, wait_for  # noqa: E402
from zmqtest import Switchyard, check  # noqa: E402

PREFIX = unique("org.test.cli")


def private_queues(broker):
    """{name: (exclusive, auto_delete, durable)} of the server-named queues."""
    out = broker.ctl("list_queues", "name", "exclusive", "auto_delete", "durable")
    res = {}
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) == 4 and f[0].startswith("amq.gen-"):
            res[f[0]] = tuple(v == "true" for v in f[1:])
    return res


def start_tail(broker, args):
    tail = Switchyard(["tail", "--amqp", broker.url] + args)
    tail.wait_log(r"tail: started, reading from AMQP", timeout=30)  # queue declared, bound, consuming
    return tail


def test_tail_consumes_a_private_queue(broker, conn):
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", exchange_type="topic", durable=True)
    before = set(private_queues(broker))
    tail = start_tail(broker, ["--bind", f"amq.topic={PREFIX}.a.#", "--bind", f"zmq.topic={PREFIX}.z.*",
                               "--json", "--limit", "3"])
    try:
        mine = {q: v for q, v in private_queues(broker).items() if q not in before}
        check(list(mine.values()) == [(True, True, False)], f"one exclusive auto-delete transient queue: {mine}")
        queue = next(iter(mine))
        bindings = broker.ctl("list_bindings", "source_name", "destination_name", "routing_key")
        for ex, key in (("amq.topic", f"{PREFIX}.a.#"), ("zmq.topic", f"{PREFIX}.z.*")):
            check(f"{ex}\t{queue}\t{key}" in bindings, f"{ex} {key} not bound:\n{bindings}")
        headers = {"fedora_messaging_schema": "base.message", "fedora_messaging_severity": 20,
                   "sent-at": "2026-01-02T03:04:05+00:00"}
        for ex, key, n in (("amq.topic", f"{PREFIX}.b.x", 0), ("amq.topic", f"{PREFIX}.a.x.y", 1),
                           ("zmq.topic", f"{PREFIX}.z.x.y", 0), ("zmq.topic", f"{PREFIX}.z.x", 2),
                           ("amq.topic", f"{PREFIX}.a", 3)):
            ch.basic_publish(ex, key, json.dumps({"n": n}).encode(),
                             pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                                  message_id=f"id-{n}-{key}", headers=headers, delivery_mode=2))
        lines = [json.loads(l) for l in tail.read_lines(3, timeout=30)]
        rc = tail.wait(30)
    finally:
        if tail.proc.poll() is None:
            tail.stop()
    check(rc == 0, f"tail exit {rc}\n{tail.stderr()[-2000:]}")
    check([(l["topic"], l["body"], l["id"]) for l in lines] ==
          [(f"{PREFIX}.a.x.y", {"n": 1}, f"id-1-{PREFIX}.a.x.y"), (f"{PREFIX}.z.x", {"n": 2}, f"id-2-{PREFIX}.z.x"),
           (f"{PREFIX}.a", {"n": 3}, f"id-3-{PREFIX}.a")], lines)
    check(all(l["headers"]["fedora_messaging_schema"] == "base.message" and l["signature"] == "unsigned"
              for l in lines), lines)
    wait_for(lambda: queue not in private_queues(broker), 30, "the private queue to go with tail")
    print("ok: tail --amqp --bind EXCHANGE=KEY: private exclusive auto-delete queue, bound as asked, gone at exit")


def test_tail_named_queue(broker, conn):
    """--queue NAME: that queue, transient and auto-delete (gone with tail), record's too."""
    name = unique("sy-tail-cli")
    key = f"{PREFIX}.named"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rec.jsonl")
        rec = Switchyard(["record", out, "--amqp", broker.url, "--queue", name, "--bind", f"amq.topic={key}",
                          "--limit", "1"])
        try:
            rec.wait_log(r"record: started, reading from AMQP, writing to ", timeout=30)
            queues = broker.ctl("list_queues", "name", "durable", "auto_delete")
            check(f"{name}\tfalse\ttrue" in queues, f"{name} not transient auto-delete:\n{queues}")
            conn.channel().basic_publish("amq.topic", key, b'{"named": 1}',
                                         pika.BasicProperties(content_type="application/json", message_id="named-1"))
            rc = rec.wait(30)
        finally:
            if rec.proc.poll() is None:
                rec.stop()
        check(rc == 0, f"record exit {rc}\n{rec.stderr()[-2000:]}")
        with open(out) as f:
            lines = [json.loads(l) for l in f]
        check([(l["topic"], l["body"], l["id"]) for l in lines] == [(key, {"named": 1}, "named-1")], lines)
    wait_for(lambda: name not in broker.ctl("list_queues", "name").split(), 30, f"queue {name} to go")
    print("ok: record --amqp --queue NAME: a transient auto-delete queue of that name, gone at exit")


def bound_queue(conn, key):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(q, "amq.topic", key)
    return ch, q


def get_one(ch, q):
    got = []
    wait_for(lambda: got.append(ch.basic_get(q, auto_ack=True)) or got[-1][0] is not None, 30, "a message")
    return got[-1]


def test_logger_publishes(broker, conn):
    topic = f"{PREFIX}.logger.log"
    ch, q = bound_queue(conn, topic)
    # The password from a file, not on the command line.
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as pw:
        pw.write("guest\n")
        pw.flush()
        lg = Switchyard(["logger", "--amqp", f"amqp://guest@127.0.0.1:{broker.port}/", "--password-file", pw.name,
                         "--topic", topic, "--message", '{"hello": "w\u00f6rld"}'])
        rc = lg.wait(60)
    check(rc == 0, f"logger exit {rc}\n{lg.stderr()[-2000:]}")
    method, props, body = get_one(ch, q)
    check(method.exchange == "amq.topic" and method.routing_key == topic, method)
    check(json.loads(body) == {"hello": "w\u00f6rld"}, body)
    check(props.content_type == "application/json" and props.content_encoding == "utf-8", props)
    check(props.headers["fedora_messaging_schema"] == "base.message", props.headers)
    check(props.message_id, props)
    ch.close()
    print("ok: logger --amqp (--password-file) publishes a fedora-messaging message that pika receives")


def test_signed_logger_to_validating_tail(broker, conn, pki):
    topic = f"{PREFIX}.signed.log"
    ch, q = bound_queue(conn, topic)  # pika sees the same message
    tail = start_tail(broker, ["--bind", f"amq.topic={topic}", "--json", "--limit", "2", "--validate",
                               "--ca", os.path.join(pki, "ca.crt")])
    try:
        for name in ("good", "foreign"):
            lg = Switchyard(["logger", "--amqp", broker.url, "--topic", topic, "--message", f"signed by {name}",
                             "--cert", os.path.join(pki, name + ".crt"), "--key", os.path.join(pki, name + ".key"),
                             "--username", "ci-bot"])
            rc = lg.wait(60)
            check(rc == 0, f"logger exit {rc}\n{lg.stderr()[-2000:]}")
        lines = [json.loads(l) for l in tail.read_lines(2, timeout=30)]
        rc = tail.wait(30)
    finally:
        if tail.proc.poll() is None:
            tail.stop()
    check(rc == 0, f"tail exit {rc}\n{tail.stderr()[-2000:]}")
    check([(l["body"], l["username"], l["i"], l["signature"], l.get("signature_error")) for l in lines] ==
          [({"log": "signed by good"}, "ci-bot", 1, "valid", None),
           ({"log": "signed by foreign"}, "ci-bot", 1, "invalid", "untrusted_certificate")], lines)
    _, props, body = get_one(ch, q)
    check(json.loads(body) == {"log": "signed by good"} and props.headers.get("fedmsg_signature"), props.headers)
    ch.close()
    print("ok: logger --amqp --cert/--key -> tail --amqp --validate: the signature crosses AMQP and is checked")


def main():
    broker = Broker()
    conn = broker.connection()
    try:
        with tempfile.TemporaryDirectory(prefix="sy-amqp-cli-pki-") as pki:
            pyhelper.pki(pki)
            test_tail_consumes_a_private_queue(broker, conn)
            test_tail_named_queue(broker, conn)
            test_logger_publishes(broker, conn)
            test_signed_logger_to_validating_tail(broker, conn, pki)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
