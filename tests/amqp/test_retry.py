#!/usr/bin/python3
"""A retry belongs to the output that failed.

  nack    zmq-sub -> amqp-publish into a queue with x-max-length 1000 and
          x-overflow reject-publish and no consumer: the broker nacks what does not fit.
          Nothing may be lost: the output keeps the nacked messages (bounded by the queue
          limits, so zmq-sub stops reading and the publisher's socket keeps the rest) and
          publishes them again with backoff until a consumer makes room.
  fanout  amqp-consume -> two amqp-publish outputs, one of them unroutable for a while
          (mandatory + `unroutable: retry`): the healthy output gets every message exactly
          once, the failing one gets each message after the binding appears, and at the
          backoff's cap no message is retried more than once a second.

The broker is a real private RabbitMQ (scripts/rabbitmq-local); python3-zmq publishes and
python3-pika consumes. Usage: test_retry.py nack|fanout"""
import os
import sys
import tempfile
import time
import uuid

import pika

from amqp_fixture import ROOT, Broker, drain, log, unique, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "zmq"))
import zmqtest  # noqa: E402


def run(config_text):
    tmp = tempfile.mkdtemp(prefix="sy-retry-")
    cfg = zmqtest.write_config(tmp, config_text)
    return zmqtest.Switchyard(["run", "--stats-interval", "1", cfg])


def counter(sy, plugin, name, reason=""):
    return sy.stats().get((plugin, name, reason), 0)


def counter_at(sy, place, name, reason=""):
    """Last logged value of one counter of the plugin instance at @place ("outputs[1]")."""
    value = 0
    for _, plugin, counter_name, label, v in zmqtest.parse_stats(sy.stderr()):
        if plugin.startswith(place + " ") and counter_name == name and label == reason:
            value = v
    return value


def z2a_into(broker, queue_args, prefix):
    """A queue declared with @p queue_args bound to a new exchange, a ZeroMQ publisher and a
    zmq-sub -> amqp-publish bridge into that exchange: (channel, exchange, queue, pub, sy)."""
    conn = broker.connection()
    ch = conn.channel()
    exchange = unique("retry-x")
    queue = unique(prefix)
    ch.exchange_declare(exchange, "topic", auto_delete=False)
    ch.queue_declare(queue, arguments=queue_args)
    ch.queue_bind(queue, exchange, "#")
    port = zmqtest.free_port()
    pub = zmqtest.Publisher(f"tcp://127.0.0.1:{port}")
    sy = run(f"""
version: 1
pipelines:
  z2a:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{port}"]
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        exchange: {exchange}
        declare_exchange: false
""")
    return ch, exchange, queue, pub, sy


def test_nack(broker):
    ch, exchange, queue, pub, sy = z2a_into(broker, {"x-max-length": 1000, "x-overflow": "reject-publish"}, "retry-q")
    try:
        pub.wait_subscription(timeout=30)
        total = 5000
        ids = []
        for i in range(1, total + 1):
            mid = f"2026-{uuid.uuid4()}"
            ids.append(mid)
            pub.send([zmqtest.TOPIC.encode(),
                      zmqtest.envelope(b'{"n":%d}' % i, msg_id=mid, i=i, username="retry-test")])
        # No consumer: the queue fills to its limit and the broker nacks the rest. The output
        # must hold the nacked messages and keep retrying them, not settle them.
        wait_for(lambda: broker.queue_counts(queue)[0] == 1000, 60, "the queue to fill to 1000")
        wait_for(lambda: counter(sy, "amqp-publish", "nacked") > 0, 30, "the broker's first nack")
        first_nack = time.monotonic()
        wait_for(lambda: counter(sy, "amqp-publish", "retried", "nacked") >= 2000, 60,
                 "the output to retry the nacked messages")
        # The scenario: no consumer for 30 s while the broker keeps nacking.
        wait_for(lambda: time.monotonic() - first_nack >= 30, 40, "30 s without a consumer", interval=0.5)
        assert sy.proc.poll() is None, sy.stderr()[-4000:]
        held = counter(sy, "amqp-publish", "retry_held")
        log(f"nack: after 30 s without a consumer: {held} message(s) held for a retry, "
            f"{counter(sy, 'amqp-publish', 'retried', 'nacked')} retries so far")
        # Bounded by the queue (queue_max_messages, 1000, counts held messages too), plus the
        # one batch the output thread has taken (128) and the sink's confirm_window (256).
        queued = counter(sy, "amqp-publish", "queue_depth")
        assert held + queued <= 1000 + 128 + 256, f"{held} held + {queued} queued: unbounded"
        # The channel had acks before the queue filled: a full queue is no reason to reconnect.
        assert counter(sy, "amqp-publish", "nack_reconnects") == 0
        assert counter(sy, "amqp-publish", "connects") == 1
        # Now a consumer makes room: everything must arrive, once.
        got = drain(broker.connection(), queue, total, timeout=120)
        bodies = [p.message_id for _, p, _ in got]
        missing = set(ids) - set(bodies)
        log(f"nack: received {len(bodies)} ({len(set(bodies))} distinct), missing {len(missing)}")
        assert not missing, f"{len(missing)} of {total} messages lost"
        rc = sy.stop(60)
        assert rc == 0, f"exit {rc}\n{sy.stderr()[-4000:]}"
        stats = sy.stats()
        log("nack: counters", {k: v for k, v in stats.items() if v})
        assert counter(sy, "zmq-sub", "received") == total
        assert counter(sy, "zmq-sub", "seq_missing") == 0
        assert counter(sy, "amqp-publish", "sent") == total
        for (plugin, name, reason), v in stats.items():
            assert not (name in ("lost", "retry_exhausted", "dropped") and v), (plugin, name, reason, v)
        # Duplicates are possible in at-least-once only if a confirm was lost; none here.
        assert len(bodies) == total, f"{len(bodies) - total} duplicates"
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
            sy.wait()
        pub.close()


def test_fanout(broker):
    conn = broker.connection()
    ch = conn.channel()
    n = 100
    src_q = unique("retry-in")
    ex_a, ex_b = unique("retry-a"), unique("retry-b")
    q_a, q_b = unique("retry-qa"), unique("retry-qb")
    ch.queue_declare(src_q, durable=True)
    ch.exchange_declare(ex_a, "topic")
    ch.exchange_declare(ex_b, "topic")
    ch.queue_declare(q_a)
    ch.queue_declare(q_b)
    ch.queue_bind(q_a, ex_a, "#")
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for mid in ids:
        ch.basic_publish("", src_q, b'{"hello":"world"}',
                         pika.BasicProperties(message_id=mid, content_type="application/json",
                                              delivery_mode=2, headers={"fedora_messaging_schema": "base.message"}))
    sy = run(f"""
version: 1
pipelines:
  fan:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {src_q}
      prefetch: {n}
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        exchange: {ex_a}
        declare_exchange: false
      - type: amqp-publish
        url: "{broker.url}"
        exchange: {ex_b}
        declare_exchange: false
        mandatory: true
        unroutable: retry
        retry: {{initial_backoff: 0.1, max_backoff: 1}}
""")
    try:
        # Output B has nowhere to route: every message is returned and retried, and waits.
        wait_for(lambda: counter_at(sy, "outputs[1]", "retried", "unroutable") >= 5 * n, 60,
                 "every message to be retried at output B a few times")
        # At the cap (1 s) a message is retried at most once a second.
        t1, r1 = time.monotonic(), counter_at(sy, "outputs[1]", "retried", "unroutable")
        wait_for(lambda: time.monotonic() - t1 >= 5, 10, "five seconds at the cap", interval=0.2)
        t2, r2 = time.monotonic(), counter_at(sy, "outputs[1]", "retried", "unroutable")
        window = t2 - t1 + 2  # the stats lines are up to a second old at each end
        log(f"fanout: {r2 - r1} retries of {n} messages in {t2 - t1:.1f} s")
        assert 0 < r2 - r1 <= n * (window + 1), f"{r2 - r1} retries in {t2 - t1:.1f} s: hot loop"
        # Nothing was acked or requeued meanwhile: the input holds every delivery.
        ready, unacked, _ = broker.queue_counts(src_q)
        assert (ready, unacked) == (0, n), (ready, unacked)
        # The healthy output got each message once, while B kept failing.
        a_now = broker.queue_counts(q_a)[0]
        assert a_now == n, f"output A has {a_now}, expected {n} (no duplicates)"
        # B becomes routable: every message reaches it, and the input acks each once.
        ch.queue_bind(q_b, ex_b, "#")
        wait_for(lambda: broker.queue_counts(q_b)[0] == n, 30, "output B to deliver everything")
        wait_for(lambda: broker.queue_counts(src_q)[:2] == (0, 0), 30, "the input to ack everything")
        rc = sy.stop(60)
        assert rc == 0, f"exit {rc}\n{sy.stderr()[-4000:]}"
        got_a = drain(broker.connection(), q_a, n, timeout=30, idle=1)
        got_b = drain(broker.connection(), q_b, n, timeout=30, idle=1)
        ids_a = sorted(p.message_id for _, p, _ in got_a)
        ids_b = sorted(p.message_id for _, p, _ in got_b)
        assert ids_a == sorted(ids), f"output A: {len(ids_a)} messages, {len(set(ids_a))} distinct"
        assert ids_b == sorted(ids), f"output B: {len(ids_b)} messages, {len(set(ids_b))} distinct"
        stats = sy.stats()
        log("fanout: counters", {k: v for k, v in stats.items() if v})
        assert stats.get(("amqp-consume", "completed", "delivered"), 0) == n
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
            sy.wait()


def test_nack_new_channel(broker):
    """A channel that has had nothing but nacks since it opened (as one opened while a
    quorum queue's leader was being replaced can) is replaced after 2 s: amqp-publish
    reconnects, counted nack_reconnects, and nothing is lost once the queue takes messages.
    Played here by a queue that rejects everything (x-max-length 0, reject-publish) until
    the test declares it again without the limit."""
    ch, exchange, queue, pub, sy = z2a_into(broker, {"x-max-length": 0, "x-overflow": "reject-publish"}, "retry-q0")
    try:
        pub.wait_subscription(timeout=30)
        total = 20
        ids = [f"2026-{uuid.uuid4()}" for _ in range(total)]
        for i, mid in enumerate(ids, 1):
            pub.send([zmqtest.TOPIC.encode(),
                      zmqtest.envelope(b'{"n":%d}' % i, msg_id=mid, i=i, username="retry-test")])
        wait_for(lambda: counter(sy, "amqp-publish", "nacked") > 0, 30, "the broker's first nack")
        wait_for(lambda: counter(sy, "amqp-publish", "nack_reconnects") >= 1, 30,
                 "a reconnect after 2 s of nothing but nacks")
        wait_for(lambda: counter(sy, "amqp-publish", "connects") >= 2, 30, "the new connection")
        assert "every publish nacked for 2 s" in sy.stderr(), sy.stderr()[-3000:]
        # Now the queue takes messages: everything arrives.
        ch.queue_delete(queue)
        ch.queue_declare(queue)
        ch.queue_bind(queue, exchange, "#")
        got = drain(broker.connection(), queue, total, timeout=60)
        bodies = {p.message_id for _, p, _ in got}
        assert bodies == set(ids), f"{len(set(ids) - bodies)} of {total} missing"
        rc = sy.stop(60)
        assert rc == 0, f"exit {rc}\n{sy.stderr()[-4000:]}"
        assert counter(sy, "zmq-sub", "completed", "delivered") == total
        log(f"nack-new-channel: {counter(sy, 'amqp-publish', 'nack_reconnects')} reconnect(s), "
            f"{counter(sy, 'amqp-publish', 'nacked')} nacks, all {total} delivered")
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
            sy.wait()
        pub.close()
        ch.connection.close()


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    broker = Broker()
    if which == "nack":
        test_nack(broker)
    elif which == "nack-new-channel":
        test_nack_new_channel(broker)
    elif which == "fanout":
        test_fanout(broker)
    else:
        sys.exit("usage: test_retry.py nack|nack-new-channel|fanout")
    print(f"{which}: ok")


if __name__ == "__main__":
    main()
