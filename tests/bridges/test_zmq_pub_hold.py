#!/usr/bin/python3
"""A sink that cannot deliver yet does not ack.

amqp-consume -> zmq-pub with nobody subscribed: zmq-pub hands each message back to the
runtime for a retry (no_subscriber) instead of settling it as dropped, so the durable
queue keeps it. A graceful restart while the queue holds them gives them back (nothing
acked); when a python3-zmq SUB finally connects, every message reaches it exactly once:
0 lost, 0 dropped, 0 duplicates, the queue ends empty.

Once some subscriber is there, a topic nobody subscribed to is still retried for
subscriber_grace seconds (a second subscriber reconnecting a moment later gets its
messages: 0 dropped), and after that dropped as fedmsg does, counted and acked
(subscriber_grace: 0 -> exactly the unsubscribed ones dropped{no_subscriber}).

For an input that cannot redeliver (stdin) fedmsg's drop-when-nobody-listens stays, counted.
"""
import json
import os
import subprocess
import time

import bridgetest as bt
import zmqtest

N = 300
PREFETCH = 50


def config(tmp, broker, queue, topic, port, grace=10, name="a2z.yaml"):
    return zmqtest.write_config(tmp, f"""version: 1
settings: {{drain_timeout: 60}}
pipelines:
  a2z:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {queue}
      durable: true
      bindings: [{{exchange: amq.topic, routing_keys: ["{topic}.#"]}}]
      prefetch: {PREFETCH}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        subscriber_grace: {grace}
        retry: {{initial_backoff: 0.1, max_backoff: 1}}
""", name)


def held_without_subscriber(router):
    """Waits until the router holds a full prefetch window for a retry, none acked."""
    router.wait_counter("a2z", "zmq-pub", "retried", lambda v: v >= PREFETCH, timeout=30,
                        reason="no_subscriber")
    bt.check(router.counter("a2z", "zmq-pub", "dropped", reason="no_subscriber") == 0,
             "dropped while nobody subscribed")
    bt.check(router.counter("a2z", "amqp-consume", "completed", reason="dropped") == 0, "acked as dropped")
    bt.check(router.counter("a2z", "amqp-consume", "completed", reason="delivered") == 0, "acked as delivered")


def amqp_input(tmp):
    broker = bt.amqp_fixture.Broker()
    conn = broker.connection()
    ch = conn.channel()
    queue = bt.unique("sy-zpub-hold")
    topic = bt.unique("org.fedoraproject.dev.hold")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "amq.topic", topic + ".#")
    ch.confirm_delivery()
    ids = []
    for n in range(N):
        ids.append(bt.publish_amqp(ch, "amq.topic", f"{topic}.n{n % 3}", {"n": n}, message_id=f"hold-{n:04d}"))
    bt.check(broker.queue_counts(queue)[0] == N, "queue pre-filled")
    port = bt.free_port()
    cfg = config(tmp, broker, queue, topic, port)
    sub = None
    first = bt.Bridge(cfg, {})
    second = None
    try:
        held_without_subscriber(first)
        ready, unacked, _ = broker.queue_counts(queue)
        bt.check(ready + unacked == N, f"the queue keeps them all: ready {ready} unacked {unacked}")
        # Graceful restart while the queue holds them: what the first process held goes back,
        # as soon as each held message's retry is due (max_backoff 1 s), not after the
        # 60 s drain timeout.
        t0 = time.monotonic()
        first.finish()
        took = time.monotonic() - t0
        bt.check(took < 30, f"the stop took {took:.1f} s")
        bt.log(f"the first process stopped in {took:.1f} s")
        bt.check(first.counter("a2z", "amqp-consume", "completed", reason="dropped") == 0, "acked as dropped")
        bt.check(first.counter("a2z", "amqp-consume", "completed", reason="delivered") == 0, "acked")
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (N, 0), 30, f"{N} ready again after the restart")

        second = bt.Bridge(cfg, {})
        held_without_subscriber(second)
        sub = bt.ZmqCollector(f"tcp://127.0.0.1:{port}")
        got = bt.settle(sub.snapshot, timeout=60, idle=2.0, at_least=N)
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue empty, nothing unacked")
        second.finish()
    finally:
        for r in (first, second):
            if r is not None and r.proc.poll() is None:
                r.stop()
        if sub is not None:
            sub.close()
    envs = [json.loads(f1) for _, f1 in got]
    year_ids = sorted(e["msg_id"].split("-", 1)[1] for e in envs)
    bt.check(len(envs) == N, f"{len(envs)} received for {N}")
    bt.check(year_ids == sorted(ids), "every message exactly once")
    for (f0, _), e in zip(got, envs):
        bt.check(f0.decode() == e["topic"], "frame 0")
    c = second.counters()
    bt.check(second.counter("a2z", "amqp-consume", "completed", reason="delivered") == N,
             f"all {N} acked as delivered by the second process: {c}")
    bt.check(second.counter("a2z", "amqp-consume", "completed", reason="dropped") == 0, "none acked as dropped")
    bt.check(second.counter("a2z", "zmq-pub", "dropped", reason="no_subscriber") == 0, "no drops")
    bt.check(second.counter("a2z", "zmq-pub", "sent") == N, "sent")
    ch.queue_delete(queue)
    conn.close()
    bt.log(f"ok: {N} messages held through a restart with no subscriber, then delivered once each")


def grace(tmp):
    broker = bt.amqp_fixture.Broker()
    conn = broker.connection()
    ch = conn.channel()
    ch.confirm_delivery()
    queue = bt.unique("sy-zpub-grace")
    topic = bt.unique("org.fedoraproject.dev.grace")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "amq.topic", topic + ".#")
    subs = []
    routers = []

    def publish(sub_topic, count):
        return {bt.publish_amqp(ch, "amq.topic", f"{topic}.{sub_topic}", {"k": sub_topic, "n": n},
                                message_id=f"{sub_topic}-{n:03d}") for n in range(count)}

    def received(sub):
        return {json.loads(f1)["msg_id"].split("-", 1)[1] for _, f1 in sub.snapshot()}

    try:
        # 1. Within the grace: the first subscriber wants .a only; .b waits for its own.
        port = bt.free_port()
        sub_a = bt.ZmqCollector(f"tcp://127.0.0.1:{port}", topic=f"{topic}.a".encode())
        subs.append(sub_a)
        router = bt.Bridge(config(tmp, broker, queue, topic, port, grace=60, name="grace60.yaml"), {})
        routers.append(router)
        router.wait_counter("a2z", "zmq-pub", "subscriptions", lambda v: v == 1, timeout=30)
        want_a, want_b = publish("a", 20), publish("b", 20)
        sub_a.wait_count(20, 30)
        router.wait_counter("a2z", "zmq-pub", "retried", lambda v: v >= 20, timeout=30, reason="no_subscriber")
        sub_b = bt.ZmqCollector(f"tcp://127.0.0.1:{port}", topic=f"{topic}.b".encode())
        subs.append(sub_b)
        sub_b.wait_count(20, 30)
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue empty")
        router.finish()
        bt.check(received(sub_a) == want_a and received(sub_b) == want_b, "each subscriber got its own")
        bt.check(len(sub_a.snapshot()) == 20 and len(sub_b.snapshot()) == 20, "once each")
        bt.check(router.counter("a2z", "zmq-pub", "dropped", reason="no_subscriber") == 0, "dropped in the grace")
        bt.check(router.counter("a2z", "amqp-consume", "completed", reason="delivered") == 40, "acked")

        # 2. Past the grace (0 here): a topic no present subscription matches is dropped.
        port = bt.free_port()
        sub_c = bt.ZmqCollector(f"tcp://127.0.0.1:{port}", topic=f"{topic}.a".encode())
        subs.append(sub_c)
        router = bt.Bridge(config(tmp, broker, queue, topic, port, grace=0, name="grace0.yaml"), {})
        routers.append(router)
        router.wait_counter("a2z", "zmq-pub", "subscriptions", lambda v: v == 1, timeout=30)
        want_a, _ = publish("a", 20), publish("c", 20)
        sub_c.wait_count(20, 30)
        router.wait_counter("a2z", "zmq-pub", "dropped", lambda v: v == 20, timeout=30, reason="no_subscriber")
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue empty")
        router.finish()
        bt.check(received(sub_c) == want_a and len(sub_c.snapshot()) == 20, "the subscribed topic, once each")
        bt.check(router.counter("a2z", "zmq-pub", "dropped", reason="no_subscriber") == 20, "exactly the .c ones")
        bt.check(router.counter("a2z", "amqp-consume", "completed", reason="dropped") == 20, "acked as dropped")
        bt.check(router.counter("a2z", "amqp-consume", "completed", reason="delivered") == 20, "acked")
    finally:
        for r in routers:
            if r.proc.poll() is None:
                r.stop()
        for sub in subs:
            sub.close()
        ch.queue_delete(queue)
        conn.close()
    bt.log("ok: unsubscribed topics retried within subscriber_grace (20 reached a late subscriber), "
           "dropped after it (20 dropped{no_subscriber})")


def stdin_input(tmp):
    """No redelivery possible: dropped at once, counted (fedmsg's behaviour)."""
    port = bt.free_port()
    cfg = zmqtest.write_config(tmp, f"""version: 1
pipelines:
  in:
    input: {{type: stdin}}
    outputs:
      - {{type: zmq-pub, endpoints: ["tcp://127.0.0.1:{port}"]}}
""", "stdin.yaml")
    sy = zmqtest.Switchyard(["run", cfg], stdin=subprocess.PIPE)
    lines = "".join(json.dumps({"topic": "org.fedoraproject.dev.nobody", "body": {"n": n}}) + "\n"
                    for n in range(40))
    sy.proc.stdin.write(lines.encode())
    sy.proc.stdin.close()
    rc = sy.wait(60)
    bt.check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    st = sy.stats()
    bt.check(st.get(("zmq-pub", "dropped", "no_subscriber")) == 40, f"stats {st}")
    bt.check(st.get(("zmq-pub", "retried", "no_subscriber"), 0) == 0, f"stats {st}")
    bt.check("dropped (no_subscriber)" in sy.stderr(), "logged")
    bt.log("ok: stdin input, nobody subscribed: 40 dropped, counted")


def main():
    tmp = bt.tmpdir("sy-zpub-hold-")
    stdin_input(tmp)
    amqp_input(tmp)
    grace(tmp)
    print("ok")


if __name__ == "__main__":
    main()
