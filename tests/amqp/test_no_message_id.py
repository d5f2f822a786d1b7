#!/usr/bin/python3
"""An AMQP message without a message_id is acked and dropped.

pika publishes 30 messages: 10 with a message_id, 10 without the property, 10 with an empty
one. amqp-consume -> stdout:
  * default (`missing_message_id: drop`): only the 10 with an id are emitted; the 20 others
    are counted as dropped{no_message_id}, acked (the queue ends empty, nothing unacked),
    and logged (rate-limited: at most 5 lines per 10 s plus a count of the rest);
  * `missing_message_id: generate`: all 30 are emitted, the 20 with a fresh UUID4 each."""
import json
import re
import uuid

import pika

from amqp_fixture import Broker, Switchyard, log, unique, wait_for

N = 10


def publish_all(ch, queue, label):
    for i in range(N):
        ch.basic_publish("", queue, json.dumps({"i": i, "kind": "id"}).encode(),
                         pika.BasicProperties(message_id=f"{label}-{i}"))
        ch.basic_publish("", queue, json.dumps({"i": i, "kind": "none"}).encode(), pika.BasicProperties())
        ch.basic_publish("", queue, json.dumps({"i": i, "kind": "empty"}).encode(),
                         pika.BasicProperties(message_id=""))


def config(broker, queue, extra=""):
    return f"""version: 1
pipelines:
  ids:
    input: {{type: amqp-consume, url: "{broker.url}", queue: {queue}{extra}}}
    outputs: [{{type: stdout}}]
"""


def main():
    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()

    # 1. default: drop
    queue = unique("sy-noid")
    ch.queue_declare(queue, durable=True)
    publish_all(ch, queue, "keep")
    sy = Switchyard(config(broker, queue))
    wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue drained and acked")
    wait_for(lambda: len(sy.lines()) >= N, 10, "the messages with an id")
    assert sy.stop(20) == 0, sy.stderr()[-3000:]
    out = [json.loads(x) for x in sy.lines()]
    st = sy.plugin_stats("amqp-consume")
    log("drop:", {k: v for k, v in st.items() if v})
    assert sorted(m["id"] for m in out) == sorted(f"keep-{i}" for i in range(N)), out
    assert all(m["body"]["kind"] == "id" for m in out), out
    assert st.get(("dropped", "no_message_id"), 0) == 2 * N, st
    assert st.get(("acked", ""), 0) == 3 * N and st.get(("nacked", "reject"), 0) == 0, st
    assert st.get(("nacked", "requeue"), 0) == 0, st
    err = sy.stderr()
    lines = re.findall(r"has no usable message_id; acked and dropped", err)
    assert 1 <= len(lines) <= 5, len(lines)  # rate-limited
    assert broker.queue_counts(queue)[:2] == (0, 0)
    ch.queue_delete(queue)

    # 2. missing_message_id: generate
    queue = unique("sy-noid-gen")
    ch.queue_declare(queue, durable=True)
    publish_all(ch, queue, "gen")
    sy = Switchyard(config(broker, queue, ", missing_message_id: generate"))
    wait_for(lambda: len(sy.lines()) >= 3 * N, 30, "every message")
    wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 10, "queue drained and acked")
    assert sy.stop(20) == 0, sy.stderr()[-3000:]
    out = [json.loads(x) for x in sy.lines()]
    st = sy.plugin_stats("amqp-consume")
    log("generate:", {k: v for k, v in st.items() if v})
    assert len(out) == 3 * N, len(out)
    kept = sorted(m["id"] for m in out if m["body"]["kind"] == "id")
    assert kept == sorted(f"gen-{i}" for i in range(N)), kept
    generated = [m["id"] for m in out if m["body"]["kind"] != "id"]
    assert len(generated) == 2 * N and len(set(generated)) == 2 * N, generated
    assert all(uuid.UUID(g).version == 4 for g in generated), generated
    assert st.get(("generated_ids", ""), 0) == 2 * N, st
    assert st.get(("dropped", "no_message_id"), 0) == 0, st
    ch.queue_delete(queue)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
