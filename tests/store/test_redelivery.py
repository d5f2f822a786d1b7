#!/usr/bin/python3
"""10,000 messages stored once each while RabbitMQ redelivers (argument: sqlite or postgresql).

python3-pika publishes 10,000 messages (message_id m-00000 ...), paced, into a durable queue,
500 of them twice on purpose (same message_id, as a publisher retrying would). amqp-consume ->
store takes them; once a third is stored the router is killed with kill -9 (committed rows
whose acks never left are redelivered), then started again on the same queue. Oracles: the
queue ends empty with nothing unacknowledged; the table holds exactly the 10,000 ids, each
once; the second run counted duplicates (redeliveries and the deliberate copies) and
delivered them (acked), and stored + duplicates add up to what it received."""
import atexit
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "amqp"))
import pika  # noqa: E402
from amqp_fixture import Broker, Switchyard, log, unique, wait_for  # noqa: E402
from pg_fixture import Postgres  # noqa: E402

N = 10000
DUP_EVERY = 20  # 500 deliberate duplicates


def main():
    backend = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="sy-store-redeliver-")
    atexit.register(shutil.rmtree, tmp, True)
    if backend == "sqlite":
        path = os.path.join(tmp, "messages.db")
        url = "sqlite:" + path

        def count(distinct=False):
            if not os.path.exists(path):
                return 0
            with sqlite3.connect(path, timeout=10) as c:
                try:
                    q = "SELECT count(DISTINCT msg_id) FROM messages" if distinct else "SELECT count(*) FROM messages"
                    return c.execute(q).fetchone()[0]
                except sqlite3.OperationalError:  # the table is not created yet
                    return 0

        def all_ids():
            with sqlite3.connect(path, timeout=10) as c:
                return [r[0] for r in c.execute("SELECT msg_id FROM messages")]
    else:
        pg = Postgres()
        url, name = pg.new_database("redeliver")

        def count(distinct=False):
            try:
                return int(pg.psql("SELECT count(DISTINCT msg_id) FROM messages" if distinct
                                   else "SELECT count(*) FROM messages", db=name))
            except AssertionError:
                return 0

        def all_ids():
            return pg.psql("SELECT msg_id FROM messages", db=name).split("\n")

    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()
    q, topic = unique("sy-store"), unique("org.example.store")
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, "amq.topic", topic + ".#")
    conn.close()
    published = [0]

    def publish():
        # Paced at about 2,000 msg/s (pacing, not synchronisation): the kill below lands
        # mid-stream whatever the database's speed.
        c = broker.connection()
        pch = c.channel()
        for i in range(N):
            props = pika.BasicProperties(delivery_mode=2, message_id=f"m-{i:05d}", content_type="application/json",
                                         headers={"sent-by": f"user{i % 7}"})
            body = ('{"n": %d}' % i).encode()
            for _ in range(2 if i % DUP_EVERY == 0 else 1):
                pch.basic_publish("amq.topic", f"{topic}.k{i % 5}", body, props)
                published[0] += 1
            if i % 100 == 99:
                time.sleep(0.05)
        c.close()

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    cfg = f"""version: 1
pipelines:
  keep:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {q}
      bindings: [{{exchange: amq.topic, routing_keys: ["{topic}.#"]}}]
      prefetch: 1000
    outputs:
      - {{type: store, database: "{url}", batch_size: 250, batch_ms: 50}}
"""
    first = Switchyard(cfg, tmp=tempfile.mkdtemp(prefix="run1-", dir=tmp))
    wait_for(lambda: count() >= N // 3, 60, "a third stored by the first run")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    at_kill = count()
    ready, unacked, _ = (0, 0, 0)
    wait_for(lambda: broker.queue_counts(q)[1] == 0, 30, "the killed consumer's deliveries requeued")
    ready, unacked, _ = broker.queue_counts(q)
    log(f"kill -9 with {at_kill} rows stored; queue: {ready} ready, {unacked} unacked")
    assert at_kill < N, "everything was stored before the kill: the test proves nothing"

    second = Switchyard(cfg, tmp=tempfile.mkdtemp(prefix="run2-", dir=tmp))
    th.join(60)
    assert not th.is_alive() and published[0] == N + N // DUP_EVERY, published
    wait_for(lambda: count() >= N, 90, f"{N} rows stored")
    wait_for(lambda: broker.queue_counts(q)[:2] == (0, 0), 60, "queue empty, nothing unacked")
    rc = second.stop()
    assert rc == 0, f"second run exited {rc}\n{second.stderr()[-3000:]}"
    st = second.plugin_stats("store")
    inp = second.plugin_stats("input")
    log("second run, store:", {k: v for k, v in st.items() if v})
    log("second run, input:", {k: v for k, v in inp.items() if v})

    rows, distinct = count(), count(distinct=True)
    assert rows == N and distinct == N, (rows, distinct)
    ids = all_ids()
    assert sorted(ids) == [f"m-{i:05d}" for i in range(N)], "ids differ from those published"
    stored, dups = st.get(("stored", ""), 0), st.get(("duplicates", ""), 0)
    assert stored == N - at_kill, (stored, N, at_kill)
    # The second run received what was left: every message not acked by the first one.
    assert stored + dups == st.get(("sent", ""), 0), st
    assert dups >= 1, st
    assert st.get(("failed", "invalid_row"), 0) == 0 and st.get(("commit_errors", ""), 0) == 0, st
    log(f"ok: {N} rows, each once; second run stored {stored}, duplicates {dups}")
    conn = broker.connection()
    conn.channel().queue_delete(q)
    conn.close()


if __name__ == "__main__":
    main()
