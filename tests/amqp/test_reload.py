#!/usr/bin/python3
"""SIGHUP under load: reload without loss (docs/operations.md, "Reload").

Four AMQP -> AMQP pipelines run in one `switchyard run` while python3-pika publishes to
all their input queues at a steady pace and consumes their output queues:

  steady  QA -> XO (TA)        the same in every file: must never be touched
  moving  QB -> XO (TB)        changed by the second file: routing_key_prefix "v2."
  gone    QD -> XO (TD)        removed by the second file
  extra   QC -> XO (v2.TC)     added by the second file

Then a third file that changes `steady` (valid) and breaks `moving` (unknown key) must
change nothing. Oracles:
  * nothing lost: every message published to QA/QB/QC is in an output queue; every
    message published to QD is in OD or still in QD;
  * `steady` untouched: the broker sees the same consumer (tag and channel) on QA before
    and after both reloads, its log says it connected once, no message of it is
    duplicated, its counters at exit cover the whole run (received = everything sent);
  * the reload's summary names each pipeline's fate; the old `moving` and `gone` drain;
    then /health/ready is 200 (the new versions' gauges, none of the removed pipeline's)
    and /pipelines lists steady, moving and extra, running;
  * after the reload `moving` routes with the new prefix; the broken file is refused with
    file:line:column and key path, and `steady` keeps routing as before."""
import collections
import json
import os
import re
import signal
import sys
import threading
import time

import pika

from amqp_fixture import Broker, Switchyard, log, parse_stats, unique, wait_for
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import free_port, http_get  # noqa: E402


def config(url, qs, xo, version, http):
    """The configuration file of @version: 1, 2, or 3 (2 with a valid change to steady and
    a broken moving)."""
    def consume(q, key):
        return (f'{{type: amqp-consume, url: "{url}", queue: {q}, prefetch: 50, heartbeat: 10,\n'
                f'             bindings: [{{exchange: amq.topic, routing_keys: ["{key}"]}}]}}')

    def publish(prefix="", extra=""):
        return (f'{{type: amqp-publish, url: "{url}", exchange: {xo}, confirm_window: 64, heartbeat: 10'
                f'{", routing_key_prefix: " + repr(prefix) if prefix else ""}{extra}}}')

    steady_prefix = "v3." if version == 3 else ""
    text = f"""version: 1
settings:
  http: {{listen: "127.0.0.1:{http}"}}
pipelines:
  steady:
    input: {consume(qs['QA'], qs['TA'])}
    outputs:
      - {publish(steady_prefix)}
  moving:
    input: {consume(qs['QB'], qs['TB'])}
    outputs:
      - {publish("v2." if version >= 2 else "", ", exchnage: typo" if version == 3 else "")}
"""
    if version == 1:
        text += f"""  gone:
    input: {consume(qs['QD'], qs['TD'])}
    outputs:
      - {publish()}
"""
    else:
        text += f"""  extra:
    input: {consume(qs['QC'], qs['TC'])}
    outputs:
      - {publish("v2.")}
"""
    return text


def get(port, path):
    """(status, decoded JSON body) of GET http://127.0.0.1:port/path; nothing answering fails."""
    status, _, body = http_get(f"http://127.0.0.1:{port}{path}", timeout=5)
    assert status is not None, f"GET {path}: nothing answers on port {port}"
    return status, json.loads(body)


def write_atomically(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Publisher(threading.Thread):
    """Publishes one message to each of the keys every 5 ms (confirmed), ids KEY-000001..."""

    def __init__(self, broker, keys):
        super().__init__(daemon=True)
        self.broker, self.keys = broker, keys
        self.sent = collections.defaultdict(list)
        self.stop_evt = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = self.broker.connection()
            ch = conn.channel()
            ch.confirm_delivery()
            i = 0
            nxt = time.monotonic()
            while not self.stop_evt.is_set():
                i += 1
                for name, key in self.keys.items():
                    mid = f"{name}-{i:06d}"
                    ch.basic_publish("amq.topic", key, b'{"n": %d}' % i,
                                     pika.BasicProperties(delivery_mode=2, message_id=mid,
                                                          content_type="application/json"))
                    self.sent[name].append(mid)
                nxt += 0.005
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e


class Collector(threading.Thread):
    """Consumes the output queues; records (queue, message id, routing key)."""

    def __init__(self, broker, queues):
        super().__init__(daemon=True)
        self.broker, self.queues = broker, queues
        self.got = collections.defaultdict(list)
        self.lock = threading.Lock()
        self.stop_evt = threading.Event()
        self.error = None

    def count(self, q):
        with self.lock:
            return len(self.got[q])

    def ids(self, q):
        with self.lock:
            return [m for m, _ in self.got[q]]

    def run(self):
        try:
            conn = self.broker.connection()
            ch = conn.channel()
            ch.basic_qos(prefetch_count=500)
            for q in self.queues:
                def on(chan, method, props, body, q=q):
                    with self.lock:
                        self.got[q].append((props.message_id, method.routing_key))
                    chan.basic_ack(method.delivery_tag)
                ch.basic_consume(q, on)
            while not self.stop_evt.is_set():
                conn.process_data_events(time_limit=0.1)
            conn.close()
        except Exception as e:
            self.error = e


def consumers_of(broker, queue):
    out = broker.ctl("list_consumers", "queue_name", "channel_pid", "consumer_tag")
    return sorted(tuple(line.split("\t")[1:]) for line in out.splitlines() if line.split("\t")[0] == queue)


def main():
    broker = Broker()
    qs = {k: unique(f"sy-reload-{k.lower()}") for k in ("QA", "QB", "QC", "QD", "OA", "OB1", "OB2", "OC", "OD",
                                                         "OA3")}
    qs.update({k: unique(f"org.example.reload.{k.lower()}") for k in ("TA", "TB", "TC", "TD")})
    xo = unique("sy-reload-out")
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare(xo, "topic", durable=True)
    for q, key in (("QA", "TA"), ("QB", "TB"), ("QC", "TC"), ("QD", "TD")):
        ch.queue_declare(qs[q], durable=True)
        ch.queue_bind(qs[q], "amq.topic", qs[key])
    outs = {"OA": qs["TA"], "OB1": qs["TB"], "OB2": "v2." + qs["TB"], "OC": "v2." + qs["TC"], "OD": qs["TD"],
            "OA3": "v3." + qs["TA"]}
    for q, key in outs.items():
        ch.queue_declare(qs[q], durable=True)
        ch.queue_bind(qs[q], xo, key)
    conn.close()

    http = free_port()
    sy = Switchyard(config(broker.url, qs, xo, 1, http))
    try:
        scenario(broker, sy, qs, xo, outs, http)
    except BaseException:
        log("switchyard's log (end):\n" + sy.stderr()[-6000:])
        raise


def scenario(broker, sy, qs, xo, outs, http):
    wait_for(lambda: sy.stderr().count("consuming queue") >= 3, 60, "the three v1 pipelines consuming")
    collector = Collector(broker, [qs[q] for q in outs])
    collector.start()
    pub = Publisher(broker, {"a": qs["TA"], "b": qs["TB"], "c": qs["TC"], "d": qs["TD"]})
    pub.start()
    wait_for(lambda: collector.count(qs["OA"]) >= 200 and collector.count(qs["OD"]) >= 200, 60,
             "v1 under load")
    before = consumers_of(broker, qs["QA"])
    assert len(before) == 1, before

    # Reload 1: moving changes, gone goes, extra comes, steady stays.
    write_atomically(sy.cfg, config(broker.url, qs, xo, 2, http))
    t0 = time.monotonic()
    sy.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: " in sy.stderr() and re.search(r"reload: \d", sy.stderr()), 60, "the reload")
    log(f"reload 1 done in {time.monotonic() - t0:.2f} s (as seen by the test)")
    summary = re.search(r"reload: (\d.*)$", sy.stderr(), re.M).group(1)
    assert summary.startswith("1 unchanged (steady), 1 changed (moving), 1 added (extra), 1 removed (gone) ("), summary
    wait_for(lambda: "the old version of pipeline 'moving' drained and stopped" in sy.stderr()
             and "the old version of pipeline 'gone' drained and stopped" in sy.stderr(), 30, "old versions drained")
    wait_for(lambda: collector.count(qs["OB2"]) >= 200 and collector.count(qs["OC"]) >= 200, 60,
             "moving's new version and extra under load")
    # The new versions' gauges are the ones health reads: ready, and the removed pipeline gone.
    wait_for(lambda: get(http, "/health/ready")[0] == 200, 30, "/health/ready 200 after the reload")
    _, status = get(http, "/pipelines")
    assert sorted(p["name"] for p in status["pipelines"]) == ["extra", "moving", "steady"], status
    assert all(p["state"] == "running" and p["ready"] for p in status["pipelines"]), status

    # Reload 2: a broken file (moving: an unknown key) that also changes steady validly.
    v3 = config(broker.url, qs, xo, 3, http)
    write_atomically(sy.cfg, v3)
    line_no = next(i for i, line in enumerate(v3.splitlines(), 1) if "exchnage" in line)
    col = v3.splitlines()[line_no - 1].index("exchnage") + 1
    sy.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "the running configuration stays" in sy.stderr(), 60, "the broken file refused")
    err = sy.stderr()
    expected = f"reload: {sy.cfg}:{line_no}:{col}: pipelines.moving.outputs[0].exchnage: "
    assert expected in err, f"expected {expected!r} in:\n{err[-3000:]}"
    assert re.search(r"reload: 1 error\(s\) in the new configuration; the running configuration stays", err), err[-2000:]
    a_mark, b_mark = collector.count(qs["OA"]), collector.count(qs["OB2"])
    wait_for(lambda: collector.count(qs["OA"]) >= a_mark + 200 and collector.count(qs["OB2"]) >= b_mark + 200, 60,
             "steady and moving still running after the broken file")

    pub.stop_evt.set()
    pub.join(30)
    assert pub.error is None, pub.error
    sent = pub.sent
    log("published:", {k: len(v) for k, v in sent.items()})

    # Nothing lost.
    def arrived(q_names, name):
        return set().union(*(collector.ids(qs[q]) for q in q_names)) >= set(sent[name])
    wait_for(lambda: arrived(["OA"], "a") and arrived(["OB1", "OB2"], "b") and arrived(["OC"], "c"), 60,
             "every message of steady, moving and extra in the output queues")
    time.sleep(0.5)  # let duplicates, if any, arrive (they are then counted below)
    after = consumers_of(broker, qs["QA"])
    rc = sy.stop()
    collector.stop_evt.set()
    collector.join(30)
    assert collector.error is None, collector.error
    assert rc == 0, f"switchyard exited {rc}\n{sy.stderr()[-3000:]}"

    conn = broker.connection()
    ch = conn.channel()
    left_d = []
    while True:
        method, props, _ = ch.basic_get(qs["QD"], auto_ack=True)
        if method is None:
            break
        left_d.append(props.message_id)
    od = collector.ids(qs["OD"])
    missing_d = set(sent["d"]) - set(od) - set(left_d)
    log(f"gone: {len(od)} routed before its removal, {len(left_d)} left in its queue")
    assert not missing_d, f"{len(missing_d)} messages of the removed pipeline lost, e.g. {sorted(missing_d)[:5]}"
    for q in ("QA", "QB", "QC"):
        ready, unacked, _ = broker.queue_counts(qs[q])
        assert (ready, unacked) == (0, 0), (q, ready, unacked)

    # steady: untouched.
    assert before == after, f"steady's consumer changed: {before} -> {after}"
    oa = collections.Counter(collector.ids(qs["OA"]))
    assert len(oa) == len(sent["a"]) and sum(oa.values()) == len(sent["a"]), \
        f"steady: {len(oa)} distinct of {len(sent['a'])}, {sum(oa.values()) - len(oa)} duplicates"
    assert collector.count(qs["OA3"]) == 0, "the broken file's change to steady was applied"
    assert sy.stderr().count(f"consuming queue '{qs['QA']}'") == 1, "steady connected more than once"
    totals = {(p, plugin, n, label): v for p, plugin, n, label, v in parse_stats(sy.stderr())}
    assert totals.get(("steady", "input (amqp-consume)", "received", "")) == len(sent["a"]), \
        [(k, v) for k, v in totals.items() if k[0] == "steady"]

    # moving: nothing lost across the versions; the new version routes with the new prefix.
    ob1, ob2 = collector.ids(qs["OB1"]), collector.ids(qs["OB2"])
    b_all = collections.Counter(ob1 + ob2)
    dups = sum(b_all.values()) - len(b_all)
    log(f"moving: {len(ob1)} by the old version, {len(ob2)} by the new one, {dups} duplicates")
    assert set(b_all) == set(sent["b"]), "moving lost messages"
    assert dups == 0, f"moving: {dups} duplicates"
    assert len(ob1) > 0 and len(ob2) > 0
    last_b = sent["b"][-100:]
    assert set(last_b) <= set(ob2), "moving's last messages did not go through its new version"
    # extra: everything published to its queue, also before it existed, went through it.
    assert collections.Counter(collector.ids(qs["OC"])) == collections.Counter(sent["c"]), "extra lost or duplicated"

    ch = conn.channel()
    for q in qs:
        if q.startswith(("Q", "O")):
            ch.queue_delete(qs[q])
    ch.exchange_delete(xo)
    conn.close()
    log("".join(line + "\n" for line in sy.stderr().splitlines() if "reload" in line))
    log("ok")


if __name__ == "__main__":
    main()
