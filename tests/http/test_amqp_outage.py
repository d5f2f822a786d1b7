#!/usr/bin/python3
"""http-in -> amqp-publish against the private RabbitMQ (scripts/rabbitmq-local through
tests/amqp/amqp_fixture.py), read back with python3-pika:

  1. a valid POST is answered 202 only after the broker confirmed it: the message is in the
     queue when the 202 arrives (basic_get right after it finds it, with its id);
  2. a batch POST of JSON lines: 202, every line in the queue in order;
  3. a sender posts message after message (sending a message again, same id, after every
     503 and its Retry-After) while the broker is stopped (stop_app) for a few seconds:
     503 with Retry-After while it is down (the first after `timeout`, the next ones at once,
     "stalled", as nothing settles), 202 again after start_app;
  4. with the broker down again, 20 requests wait for their confirms (the pipeline's
     in_flight is 20 on the operations endpoint): one more is refused at once, 503 busy
     (max_in_flight 20); at SIGTERM the 20 are answered 503 stopping when the drain
     timeout passes (1 s), before their own timeout (3 s), and the router exits 0;
  5. 0 accepted messages lost: every id ever answered 202 is in the queue (a message
     answered 503 may be there too, or twice: the sender resends it, at least once)."""
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "amqp"))
from amqp_fixture import Broker, drain, unique  # noqa: E402

from httptest import TOKEN_CI, Client, Router, cleanup, expect, free_port, log, tmpdir, wait_for  # noqa: E402
from sytest import http_get  # noqa: E402


def in_flight(ops_port):
    status, _, text = http_get(f"http://127.0.0.1:{ops_port}/metrics")
    m = re.search(r'^switchyard_in_flight\{[^}]*pipeline="ingest"[^}]*\} (\d+)', text or "", re.M)
    return int(m.group(1)) if status == 200 and m else None


def main():
    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()
    queue = unique("sy-http-in")
    prefix = unique("org.example.http").replace("-", "_")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "amq.topic", prefix + ".#")
    tmp = tmpdir("sy-http-amqp-")
    port, ops_port = free_port(), free_port()
    r = Router(f"""version: 1
settings:
  drain_timeout: 1
  http: {{listen: "127.0.0.1:{ops_port}"}}
pipelines:
  ingest:
    input:
      type: http-in
      listen: 127.0.0.1:{port}
      timeout: 3
      retry_after: 1
      max_in_flight: 20
      max_batch: 20
      threads: 32
      senders:
        - {{name: ci, token_env: SY_TEST_TOKEN_CI, topics: [{prefix}]}}
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        exchange: amq.topic
        heartbeat: 2
        reconnect_max_delay: 1
        retry: {{max_backoff: 1, max_duration: 0}}
""", tmp, env={"SY_TEST_TOKEN_CI": TOKEN_CI})
    accepted = []          # ids answered 202, in order
    refused_503 = []       # (id, error, Retry-After)
    try:
        c = Client(port, token=TOKEN_CI, timeout=20)
        c.ready()
        # 1. 202 after the confirm: the message is already in the queue
        expect(c.post({"topic": f"{prefix}.one", "body": {"n": 0}, "id": "single-0"}), 202)
        method, props, body = ch.basic_get(queue, auto_ack=False)
        assert method is not None, "the message answered 202 is not in the queue"
        assert props.message_id == "single-0" and json.loads(body) == {"n": 0}, (props, body)
        ch.basic_nack(method.delivery_tag, requeue=True)
        accepted.append("single-0")
        # 2. a batch
        lines = [{"topic": f"{prefix}.batch", "body": {"i": i}, "id": f"batch-{i}"} for i in range(20)]
        doc = expect(c.post_lines(lines), 202)
        assert doc["ids"] == [f"batch-{i}" for i in range(20)], doc
        accepted += doc["ids"]

        # 3. an outage while a sender keeps posting
        stop = threading.Event()
        after_recovery = []
        recovered = threading.Event()

        def sender():
            i = 0
            while not stop.is_set():
                mid = f"seq-{i}"
                st, hdrs, doc = c.post({"topic": f"{prefix}.seq", "body": {"i": i}, "id": mid})
                if st == 202:
                    accepted.append(mid)
                    if recovered.is_set():
                        after_recovery.append(mid)
                    i += 1
                elif st == 503:
                    refused_503.append((mid, doc.get("error"), hdrs.get("Retry-After")))
                    time.sleep(float(hdrs.get("Retry-After", "1")))
                else:
                    raise AssertionError(f"{mid}: unexpected {st} {doc}")
        t = threading.Thread(target=sender)
        t.start()
        try:
            wait_for(lambda: len(accepted) >= 40, 20, "messages accepted before the outage")
            log(f"{len(accepted)} accepted; stopping the broker (stop_app)")
            broker.ctl("stop_app")
            t0 = time.monotonic()
            wait_for(lambda: refused_503, 20, "a 503 while the broker is down")
            log(f"first 503 {time.monotonic() - t0:.1f} s after stop_app: {refused_503[0]}")
            wait_for(lambda: len(refused_503) >= 2, 20, "a second 503 while the broker is down")
            n_down = len(refused_503)
            broker.ctl("start_app")
            broker.ctl("await_startup")
            recovered.set()
            wait_for(lambda: len(after_recovery) >= 20, 40, "20 messages answered 202 after the recovery")
        finally:
            stop.set()
            t.join(60)
        assert not t.is_alive(), "the sender is stuck"
        assert all(rr[2] == "1" for rr in refused_503), f"every 503 has Retry-After: 1: {refused_503[:5]}"
        assert refused_503[0][1] == "timeout", refused_503[:3]
        assert all(rr[1] in ("timeout", "stalled") for rr in refused_503), refused_503[:5]
        assert refused_503[1][1] == "stalled", f"the second 503 of the outage comes at once: {refused_503[:3]}"
        log(f"{n_down} 503 while down, {len(refused_503)} in all; {len(after_recovery)} accepted after recovery")

        # 4. max_in_flight, then shutdown while requests wait for their confirms
        broker.ctl("stop_app")
        answers = {}

        def post_last(i):
            answers[i] = c.post({"topic": f"{prefix}.last", "body": {}, "id": f"last-{i}"})
        waiting = [threading.Thread(target=post_last, args=(i,)) for i in range(20)]
        for w in waiting:
            w.start()
        wait_for(lambda: in_flight(ops_port) == 20, 10, "20 requests in flight")
        t0 = time.monotonic()
        st, hdrs, doc = c.post({"topic": f"{prefix}.last", "body": {}, "id": "last-busy"})
        took = time.monotonic() - t0
        assert st == 503 and doc["error"] == "busy" and hdrs.get("Retry-After") == "1", (st, doc)
        assert took < 1, f"a request beyond max_in_flight took {took:.2f} s to be refused"
        refused_503.append(("last-busy", "busy", "1"))
        log(f"beyond max_in_flight: 503 busy in {took * 1000:.0f} ms")
        t0 = time.monotonic()
        r.proc.send_signal(signal.SIGTERM)
        for w in waiting:
            w.join(20)
        took = time.monotonic() - t0
        got = sorted({(a[0], a[2].get("error"), a[1].get("Retry-After")) for a in answers.values()})
        log(f"20 requests waiting at SIGTERM: {got} within {took:.2f} s")
        assert len(answers) == 20 and got == [(503, "stopping", "1")], answers
        assert took < 2.5, f"answered {took:.2f} s after SIGTERM: the drain timeout is 1 s, the requests' 3 s"
        refused_503 += [(f"last-{i}", "stopping", "1") for i in range(20)]
        r.proc.wait(30)  # (a second SIGTERM would stop it without draining)
    finally:
        rc = r.stop()
        broker.ctl("start_app")
        broker.ctl("await_startup")
    err = r.stderr()
    assert rc == 0, f"exit status {rc}\n{err[-3000:]}"
    # 5. nothing accepted is lost
    conn = broker.connection()
    got = drain(conn, queue, expect=len(set(accepted)), timeout=30, idle=1.0)
    ids = [p.message_id for _, p, _ in got]
    missing = sorted(set(accepted) - set(ids), key=lambda x: (len(x), x))
    dups = len(ids) - len(set(ids))
    log(f"{len(set(accepted))} ids answered 202, {len(ids)} messages in the queue ({dups} duplicates), "
        f"missing: {missing[:10]}")
    assert not missing, f"accepted but not in the queue: {missing[:20]}"
    seq = [x for x in ids if x.startswith("seq-")]
    first = {}
    for pos, x in enumerate(seq):
        first.setdefault(x, pos)
    order = sorted(first, key=lambda x: first[x])
    assert order == sorted(order, key=lambda x: int(x[4:])), "first copies in the order posted"
    counters = r.counters("ingest")
    log(f"http-in counters: {counters}")
    assert counters.get(("accepted_messages", "")) == len(accepted), (counters, len(accepted))
    assert sum(counters.get(("refused", k), 0) for k in ("timeout", "stalled", "stopping", "busy")) == len(refused_503), \
        (counters, refused_503)
    ch = conn.channel()
    ch.queue_delete(queue)
    conn.close()
    cleanup(tmp)
    print("ok")


if __name__ == "__main__":
    main()
