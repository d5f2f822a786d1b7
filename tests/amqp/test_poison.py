#!/usr/bin/python3
"""A poison message does not jam the pipeline.

The broker's max_message_size is lowered to 1 MiB; a source queue (with a dead-letter
exchange) holds 60 small messages and two 2 MiB bodies among them (after the 30th and the
45th; prefetch 10 makes the second reach the output only after the first was settled). amqp-consume ->
amqp-publish moves them, twice:
  A. with `max_message_size: 1048576` on amqp-publish: the big one is refused before it is
     published (failed{oversize}), no channel is closed;
  B. without (the default 128 MiB): the broker closes the channel with 406
     PRECONDITION_FAILED; only that message is refused (never republished), the rest go on
     on a new channel of the same connection; the limit named in the broker's text is
     learnt, so the second big one is refused before publishing (one 406 in all).
Both runs: all 60 small ones delivered, the big ones dead-lettered (nacked without requeue),
the source queue empty, no reconnect, and SIGTERM ends the process promptly."""
import json
import re
import time

import pika

from amqp_fixture import Broker, Switchyard, drain, log, unique, wait_for

SMALL = 60
BIG_AT = (30, 45)  # positions among the small ones
LIMIT = 1048576
DEFAULT_LIMIT = 134217728


def run(broker, with_option):
    label = "option" if with_option else "broker-406"
    # Filled while the broker still takes big messages: a channel keeps the limit it was
    # opened with, so this comes before pika's channel, and the router's come after the change.
    broker.ctl("eval", f"application:set_env(rabbit, max_message_size, {DEFAULT_LIMIT}).")
    conn = broker.connection()
    ch = conn.channel()
    src, dst, dlq, dlx = unique("sy-poison-src"), unique("sy-poison-dst"), unique("sy-poison-dlq"), unique("sy-dlx")
    ch.exchange_declare(dlx, "fanout", durable=True)
    ch.queue_declare(dlq, durable=True)
    ch.queue_bind(dlq, dlx)
    ch.queue_declare(src, durable=True, arguments={"x-dead-letter-exchange": dlx})
    ch.queue_declare(dst, durable=True)
    ch.queue_bind(dst, "amq.topic", src)  # deliveries keep their routing key (the queue name)

    small_ids, big_ids = set(), []
    for i in range(SMALL):
        if i in BIG_AT:
            big_ids.append(f"big-{label}-{i}")
            body = json.dumps({"pad": "x" * (2 * LIMIT)}).encode()
            ch.basic_publish("", src, body, pika.BasicProperties(message_id=big_ids[-1], delivery_mode=2))
        mid = f"small-{label}-{i:03d}"
        small_ids.add(mid)
        ch.basic_publish("", src, json.dumps({"n": i}).encode(), pika.BasicProperties(message_id=mid, delivery_mode=2))
    total = SMALL + len(BIG_AT)
    wait_for(lambda: broker.queue_counts(src)[0] == total, 30, "source queue filled")
    broker.ctl("eval", f"application:set_env(rabbit, max_message_size, {LIMIT}).")

    option = f"\n        max_message_size: {LIMIT}" if with_option else ""
    sy = Switchyard(f"""version: 1
pipelines:
  poison:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {src}
      arguments: {{x-dead-letter-exchange: {dlx}}}
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        exchange: amq.topic{option}
""")
    wait_for(lambda: broker.queue_counts(src)[:2] == (0, 0), 30, f"{label}: source queue settled")
    wait_for(lambda: broker.queue_counts(dlq)[0] == len(BIG_AT), 10, f"{label}: the big ones dead-lettered")
    wait_for(lambda: broker.queue_counts(dst)[0] >= SMALL, 10, f"{label}: small ones delivered")
    t0 = time.monotonic()
    rc = sy.stop(30)
    stop_s = time.monotonic() - t0
    err = sy.stderr()
    assert rc == 0, f"{label}: exit {rc}\n{err[-3000:]}"
    pub = sy.plugin_stats("amqp-publish")
    con = sy.plugin_stats("amqp-consume")
    log(f"{label}: stopped in {stop_s:.2f}s; publish {dict((k, v) for k, v in pub.items() if v)}; "
        f"consume {dict((k, v) for k, v in con.items() if v)}")
    assert stop_s < 5, f"{label}: shutdown took {stop_s:.1f}s"

    got = drain(conn, dst, SMALL, timeout=30, idle=1.0)
    ids = [p.message_id for _, p, _ in got]
    assert set(ids) == small_ids, (sorted(small_ids - set(ids))[:5], sorted(set(ids) - small_ids)[:5])
    dups = len(ids) - len(set(ids))
    assert dups <= pub.get(("republished", ""), 0), (dups, pub)
    dead = drain(conn, dlq, len(BIG_AT), timeout=10, idle=0.5)
    assert [p.message_id for _, p, _ in dead] == big_ids, [p.message_id for _, p, _ in dead]
    for _, props, _ in dead:
        death = props.headers["x-death"][0]
        assert death["reason"] == "rejected" and death["queue"] == src, death

    # Exact figures: the big ones refused, nothing else failed, no reconnect, no republish loop.
    nbig = len(BIG_AT)
    assert pub.get(("failed", "oversize"), 0) == nbig, pub
    assert pub.get(("oversize", ""), 0) == nbig, pub
    assert pub.get(("confirmed", ""), 0) == len(ids), pub
    assert pub.get(("reconnects", ""), 0) == 0 and pub.get(("disconnects", ""), 0) == 0, pub
    assert con.get(("reconnects", ""), 0) == 0 and con.get(("disconnects", ""), 0) == 0, con
    assert con.get(("nacked", "reject"), 0) == nbig and con.get(("nacked", "requeue"), 0) == 0, con
    assert con.get(("acked", ""), 0) == SMALL, con
    assert con.get(("deliveries", ""), 0) == total, con
    if with_option:
        assert pub.get(("published", ""), 0) == SMALL, pub  # the big ones never left
        assert pub.get(("channel_closures", "406"), 0) == 0, pub
        assert pub.get(("refused_by_broker", ""), 0) == 0, pub
    else:
        assert pub.get(("channel_closures", "406"), 0) == 1, pub
        assert pub.get(("refused_by_broker", ""), 0) == 1, pub
        assert len(re.findall(rf"message {big_ids[0]} refused by the broker: 406", err)) == 1, err[-3000:]
        assert re.search(rf"message {big_ids[1]}: body of \d+ bytes is larger than the broker's limit of {LIMIT}",
                         err), err[-3000:]
        # The first big one published once, plus the neighbours that were unconfirmed on that channel.
        assert pub.get(("published", ""), 0) == SMALL + 1 + pub.get(("republished", ""), 0), pub
    for q in (src, dst, dlq):
        ch.queue_delete(q)
    ch.exchange_delete(dlx)
    conn.close()


def main():
    broker = Broker()
    try:
        run(broker, True)
        run(broker, False)
    finally:
        broker.ctl("eval", f"application:set_env(rabbit, max_message_size, {DEFAULT_LIMIT}).")
    log("ok")


if __name__ == "__main__":
    main()
