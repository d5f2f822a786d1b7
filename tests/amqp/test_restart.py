#!/usr/bin/python3
"""Broker restarts mid-stream, both directions at once (R05/R06 in small):

  publish side: a paced stdin feed -> amqp-publish -> durable queue Q1
  consume side: durable queue Q2 (pre-filled) -> amqp-consume (prefetch 1) -> stdout

During the run the broker is killed with kill -9 and restarted, later stopped and started
with stop_app/start_app. Both plugins must reconnect by themselves. Oracles:
  * every message amqp-publish confirmed is in Q1 (it confirmed all of them: the stdin
    source cannot redeliver, so the sink must keep and republish what was unconfirmed);
  * every message of Q2 reaches stdout; Q2 ends empty with nothing unacked;
  * duplicates are counted and reported (allowed: at-least-once), never hidden."""
import collections
import json
import subprocess
import threading
import time

import pika

from amqp_fixture import Broker, Switchyard, drain, log, unique, wait_for

N_CON = 6000
fed = [0]


def feeder(proc, topic, faults_done, broken):
    # ~600 msg/s (pacing, not synchronisation) until both faults are over, then 1,200 more:
    # the stream spans both restarts whatever their duration.
    try:
        i = 0
        extra = None
        while extra is None or i < extra:
            line = json.dumps({"topic": topic, "body": {"n": i}, "id": f"p-{i:06d}"}) + "\n"
            proc.stdin.write(line.encode())
            i += 1
            fed[0] = i
            if i % 60 == 0:
                proc.stdin.flush()
                time.sleep(0.1)
            if extra is None and faults_done.is_set():
                extra = i + 1200
        proc.stdin.close()
    except BrokenPipeError:
        broken.set()


def main():
    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()
    q1, q2 = unique("sy-restart-pub"), unique("sy-restart-con")
    t1, t2 = unique("org.example.rp"), unique("org.example.rc")
    ch.queue_declare(q1, durable=True)
    ch.queue_bind(q1, "amq.topic", t1)
    ch.queue_declare(q2, durable=True)
    ch.queue_bind(q2, "amq.topic", t2)
    ch.confirm_delivery()
    for i in range(N_CON):
        ch.basic_publish("amq.topic", t2, json.dumps({"n": i}).encode(),
                         pika.BasicProperties(delivery_mode=2, message_id=f"c-{i:06d}"))
    conn.close()

    pub = Switchyard(f"""version: 1
pipelines:
  in2amqp:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{broker.url}", exchange: amq.topic, confirm_window: 200, heartbeat: 10}}
""", stdin=subprocess.PIPE)
    con = Switchyard(f"""version: 1
pipelines:
  amqp2out:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {q2}
      bindings: [{{exchange: amq.topic, routing_keys: ["{t2}"]}}]
      prefetch: 1
      heartbeat: 10
    outputs: [{{type: stdout}}]
""")
    stop_evt = threading.Event()
    faults_done = threading.Event()
    th = threading.Thread(target=feeder, args=(pub.proc, t1, faults_done, stop_evt), daemon=True)
    th.start()

    wait_for(lambda: len(con.lines()) >= 500, 60, "consumer under way")
    t0 = time.monotonic()
    log(f"kill -9 of the broker; consumer at {len(con.lines())} lines")
    broker.restart_hard()
    log(f"broker back after {time.monotonic() - t0:.1f}s")
    wait_for(lambda: con.stderr().count("consuming queue") >= 2, 60, "consumer reconnected after kill -9")
    wait_for(lambda: pub.stderr().count("connected to") >= 2, 60, "publisher reconnected after kill -9")
    t0 = time.monotonic()
    log(f"stop_app/start_app; consumer at {len(con.lines())} lines")
    broker.restart_app()
    log(f"app back after {time.monotonic() - t0:.1f}s; {fed[0]} lines fed to the publisher so far")
    faults_done.set()

    th.join(120)
    N_PUB = fed[0]
    assert not stop_evt.is_set(), "switchyard (publish) closed its stdin early"
    rc = pub.wait(180)
    assert rc == 0, f"publisher exited {rc}\n{pub.stderr()[-3000:]}"
    wait_for(lambda: len({json.loads(x)["id"] for x in con.lines()}) >= N_CON, 180, "all consumed")
    wait_for(lambda: broker.queue_counts(q2)[:2] == (0, 0), 60, "Q2 empty, nothing unacked")
    rc = con.stop()
    assert rc == 0, f"consumer exited {rc}\n{con.stderr()[-3000:]}"

    ps, cs = pub.stats(), con.stats()
    log("publisher stats:", {k: v for k, v in ps.items() if v})
    log("consumer stats:", {k: v for k, v in cs.items() if v})
    assert ps.get(("confirmed", ""), 0) == N_PUB, ps
    assert ps.get(("reconnects", ""), 0) >= 2, ps
    assert cs.get(("reconnects", ""), 0) >= 2, cs

    # Publish side: everything confirmed is in Q1.
    conn = broker.connection()
    got = drain(conn, q1, N_PUB, timeout=120, idle=2.0)
    ids = collections.Counter(p.message_id for _, p, _ in got)
    missing = {f"p-{i:06d}" for i in range(N_PUB)} - set(ids)
    dups = sum(c - 1 for c in ids.values())
    log(f"publish side: {len(ids)} distinct, {dups} duplicates (republished unconfirmed)")
    assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
    assert dups <= ps.get(("republished", ""), 0), (dups, ps)

    # Consume side: nothing lost; duplicates are redeliveries after the restarts.
    out = collections.Counter(json.loads(x)["id"] for x in con.lines())
    missing = {f"c-{i:06d}" for i in range(N_CON)} - set(out)
    dups = sum(c - 1 for c in out.values())
    log(f"consume side: {len(out)} distinct, {dups} duplicates (redelivered); "
        f"redelivered counter {cs.get(('redelivered', ''), 0)}")
    assert not missing, f"{len(missing)} lost on the consume side, e.g. {sorted(missing)[:5]}"
    assert dups <= cs.get(("redelivered", ""), 0), (dups, cs)
    ch = conn.channel()
    ch.queue_delete(q1)
    ch.queue_delete(q2)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
