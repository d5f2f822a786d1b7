#!/usr/bin/python3
"""pika publishes 10,000 messages to amq.topic; amqp-consume -> stdout receives every one
(topic, body, headers, id), the queue ends empty with nothing unacknowledged. Malformed
bodies (not JSON, invalid UTF-8) are rejected without requeue: they land in the queue's
dead-letter queue and are counted, never printed."""
import json
import time

import pika

from amqp_fixture import Broker, Switchyard, drain, log, unique, wait_for

N = 10_000


def main():
    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()
    queue = unique("sy-consume")
    dlx = unique("sy-dlx")
    dlq = dlx + "-q"
    prefix = unique("org.example.c")
    ch.exchange_declare(dlx, "fanout", durable=False, auto_delete=True)
    ch.queue_declare(dlq, auto_delete=False)
    ch.queue_bind(dlq, dlx)
    args = {"x-dead-letter-exchange": dlx}
    # Declared by the test with the arguments the plugin will re-declare (must be equal).
    ch.queue_declare(queue, durable=True, arguments=args)
    ch.queue_bind(queue, "amq.topic", prefix + ".#")

    sent = {}
    bad = [b"not json at all", b'{"a": 1', b'{"s": "\xff\xfe"}']
    # Bad bodies sit among good ones: they are nacked at once while the acks around them
    # go out batched (multiple=true); a multiple ack that covered a nacked tag would make
    # the broker close the channel (unknown delivery tag) and redeliver (duplicates below).
    bad_at = {100: 0, N // 2: 1, N - 10: 2}
    for i in range(N):
        if i in bad_at:
            b = bad[bad_at[i]]
            ch.basic_publish("amq.topic", f"{prefix}.bad", b, pika.BasicProperties(message_id=f"bad-{bad_at[i]}"))
        mid = f"id-{i:05d}"
        body = {"n": i, "s": "v\u00e9", "f": 1.5}
        headers = {"x-h": "1", "n": i, "nested": {"a": [1, "b", True]}, "big": 2**40}
        ch.basic_publish("amq.topic", f"{prefix}.t{i % 7}", json.dumps(body).encode(),
                         pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                              delivery_mode=2, message_id=mid, headers=headers))
        sent[mid] = (f"{prefix}.t{i % 7}", body, headers)
    conn.close()

    cfg = f"""version: 1
pipelines:
  a2out:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {queue}
      arguments: {{x-dead-letter-exchange: {dlx}}}
      bindings:
        - {{exchange: amq.topic, routing_keys: ["{prefix}.#"]}}
      prefetch: 50
    outputs: [{{type: stdout}}]
"""
    sy = Switchyard(cfg)
    t0 = time.monotonic()
    wait_for(lambda: len(sy.lines()) >= N or sy.proc.poll() is not None, 180, f"{N} messages on stdout")
    log(f"consumed {N} in {time.monotonic() - t0:.1f}s")
    # Settled means acked: wait until the broker shows nothing left.
    wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 60, "queue empty and nothing unacked")
    rc = sy.stop()
    assert rc == 0, f"switchyard exited {rc}\n{sy.stderr()[-3000:]}"

    lines = sy.lines()
    seen = {}
    for line in lines:
        m = json.loads(line)
        seen[m["id"]] = seen.get(m["id"], 0) + 1
        topic, body, headers = sent[m["id"]]
        assert m["topic"] == topic, (m["topic"], topic)
        assert m["body"] == body, (m["body"], body)
        assert m["headers"] == headers, (m["headers"], headers)
    missing = set(sent) - set(seen)
    dups = sum(c - 1 for c in seen.values())
    assert not missing, f"{len(missing)} messages lost, e.g. {sorted(missing)[:5]}"
    assert dups == 0, f"{dups} duplicates without any fault"
    assert len(lines) == N

    ready, unacked, _ = broker.queue_counts(queue)
    assert (ready, unacked) == (0, 0), (ready, unacked)
    # Malformed bodies: rejected (not requeued) -> dead-lettered, counted by reason.
    conn = broker.connection()
    dead = drain(conn, dlq, len(bad), timeout=30, idle=0.5)
    assert sorted(d[2] for d in dead) == sorted(bad), dead
    st = sy.stats()
    log("stats:", {k: v for k, v in st.items() if v})
    assert st.get(("dropped", "invalid_json"), 0) == 2, st
    assert st.get(("dropped", "invalid_utf8"), 0) == 1, st
    assert st.get(("acked", ""), 0) == N, st
    # Acks went out batched: fewer ack frames than messages.
    assert 0 < st.get(("multiple_acks", ""), 0) < N, st
    ch = conn.channel()
    ch.queue_delete(queue)
    ch.queue_delete(dlq)
    ch.exchange_delete(dlx)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
