"""`switchyard verify-missing` end to end, with a short window (2 s): a private RabbitMQ
(scripts/rabbitmq-local through tests/amqp/amqp_fixture.py), python3-zmq as the fedmsg
publisher and python3-pika as the AMQP publisher.

Checks:
  * a message on both buses is matched (fedmsg `2026-<uuid>` against AMQP `<uuid>`, and an
    AMQP message whose full id travels in the fedmsg_msg_id header, UUID mode);
  * a ZeroMQ-only and an AMQP-only message are each reported once, with the right side, as a
    warning line and a JSON-lines record, named by the id without its year prefix (the full
    id in full_id);
  * a duplicate is counted, on each side;
  * an AMQP-only message seen while our ZeroMQ subscription detected a sequence gap says so;
  * the queue is non-durable, auto-delete, with a 60 s message TTL, and goes away at exit.
Every wait is on a condition with a deadline."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "amqp"))
import amqp_fixture as af  # noqa: E402

import pika  # noqa: E402
import zmq  # noqa: E402

TOPIC = "org.fedoraproject.dev.verify.test"
WINDOW = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FedmsgPublisher:
    """XPUB, so that we can wait for the subscription instead of losing the first messages."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.bind(endpoint)
        self.i = 0

    def wait_subscriber(self, timeout=30):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poller.poll(200):
                frame = self.sock.recv()
                if frame[:1] == b"\x01":
                    return
        raise AssertionError("verify-missing never subscribed to the ZeroMQ publisher")

    def send(self, msg_id, skip=0):
        self.i += 1 + skip
        env = {"topic": TOPIC, "msg": {"n": self.i}, "msg_id": msg_id, "i": self.i,
               "timestamp": int(time.time()), "username": "verify-test"}
        self.sock.send_multipart([TOPIC.encode(), json.dumps(env, sort_keys=True).encode()])

    def close(self):
        self.sock.close()
        self.ctx.term()


def check_configs(tmp):
    """The example file and the command's generated configuration pass `switchyard check`;
    a malformed option is a usage error (exit 2) before anything starts."""
    root = os.environ["SWITCHYARD_SOURCE_ROOT"]
    p = subprocess.run([af.BIN, "check", os.path.join(root, "examples", "pipelines", "verify-missing.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and ": OK" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([af.BIN, "verify-missing", "--zmq-endpoint", "tcp://127.0.0.1:9", "--amqp-url",
                        "amqp://u:p$x@127.0.0.1:9/", "--report", "/tmp/r $x.jsonl", "--print-config"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    cfg = os.path.join(tmp, "printed.yaml")
    with open(cfg, "w") as f:
        f.write(p.stdout)
    for needed in ("durable: false", "auto_delete: true", "x-message-ttl: 60000", '"zmq.topic"', '"amq.topic"',
                   "side: zmq", "side: amqp"):
        assert needed in p.stdout, (needed, p.stdout)
    p = subprocess.run([af.BIN, "check", cfg], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([af.BIN, "verify-missing", "--zmq-endpoint", "tcp://127.0.0.1:9", "--amqp-url",
                        "amqp://127.0.0.1:9/", "--binding", "no-colon"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "EXCHANGE:ROUTING_KEY" in p.stderr, (p.returncode, p.stderr)


def main():
    broker = af.Broker()
    tmp = tempfile.mkdtemp(prefix="sy-verify-")
    try:
        check_configs(tmp)
        run(broker, tmp)
    finally:
        shutil.rmtree(tmp, True)
    af.log("verify-missing: OK")


def run(broker, tmp):
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    queue = af.unique("verify-missing")
    port = free_port()
    pub = FedmsgPublisher(f"tcp://127.0.0.1:{port}")
    report = os.path.join(tmp, "report.jsonl")
    err_path = os.path.join(tmp, "stderr.log")
    err = open(err_path, "wb")
    proc = subprocess.Popen(
        [af.BIN, "verify-missing", "--zmq-endpoint", f"tcp://127.0.0.1:{port}", "--amqp-url", broker.url,
         "--queue", queue, "--window", str(WINDOW), "--retain", "30", "--startup-grace", "0",
         "--report", report, "--log-matches", "--stats-interval", "0"],
        stdout=subprocess.DEVNULL, stderr=err)

    def stderr():
        with open(err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def records():
        if not os.path.exists(report):
            return []
        with open(report) as f:
            return [json.loads(line) for line in f if line.strip()]

    try:
        # Ready: subscribed on ZeroMQ; consuming on AMQP (bindings are made before basic.consume).
        pub.wait_subscriber()
        af.wait_for(lambda: queue_consumers(broker, queue) == 1, 60, "the verify-missing queue consumer")

        # The queue is what fedmsg-migration-tools declared: non-durable, auto-delete, TTL 60 s.
        out = broker.ctl("list_queues", "name", "durable", "auto_delete", "arguments")
        line = [ln for ln in out.splitlines() if ln.split("\t")[0] == queue]
        assert len(line) == 1, out
        name, durable, auto_delete, arguments = line[0].split("\t")
        assert durable == "false" and auto_delete == "true", line
        assert "x-message-ttl" in arguments and "60000" in arguments, line

        def amqp(message_id, exchange="amq.topic", headers=None):
            ch.basic_publish(exchange, TOPIC, json.dumps({"hello": "amqp"}),
                             pika.BasicProperties(message_id=message_id, content_type="application/json",
                                                  headers=headers or {}))

        a, b, c, d, e, f, g, h = (str(uuid.uuid4()) for _ in range(8))
        # A: both buses, year prefix only on ZeroMQ.
        pub.send(f"2026-{a}")
        amqp(a)
        # B: ZeroMQ only.
        pub.send(f"2026-{b}")
        # C: AMQP only (as the ZeroMQ->AMQP bridge publishes it: zmq.topic, year prefix kept).
        amqp(f"2026-{c}", exchange="zmq.topic")
        # D: both, twice on ZeroMQ (a duplicate there).
        pub.send(f"2026-{d}")
        pub.send(f"2026-{d}")
        amqp(d)
        # E: both, twice on AMQP.
        amqp(e)
        pub.send(f"2026-{e}")
        amqp(e)
        # F: UUID mode: message_id is some other UUID, the full fedmsg id is in fedmsg_msg_id.
        amqp(str(uuid.uuid4()), exchange="zmq.topic", headers={"fedmsg_msg_id": f"2026-{f}"})
        pub.send(f"2026-{f}")
        # G: ZeroMQ only, sent last: once it is reported, every window above has closed.
        pub.send(f"2026-{g}")
        af.wait_for(lambda: any(r["id"].endswith(g) for r in records()), 30, "the report of G")

        for k in (a, d, e, f):
            assert re.search(r"matched \S*" + k, stderr()), f"{k} not matched:\n{stderr()[-3000:]}"
        recs = records()
        by_id = {}
        for r in recs:
            by_id.setdefault(r["id"], []).append(r)
        # Reports name the id without its year prefix, the key both buses share; the id as
        # received is kept in full_id.
        assert set(by_id) == {b, c, g}, recs
        rb, = by_id[b]
        rc, = by_id[c]
        assert (rb["full_id"], rc["full_id"], by_id[g][0]["full_id"]) == (f"2026-{b}", f"2026-{c}", f"2026-{g}"), recs
        assert rb["side"] == "zmq" and rb["missing_from"] == "amqp" and rb["topic"] == TOPIC, rb
        assert rc["side"] == "amqp" and rc["missing_from"] == "zmq" and rc["topic"] == TOPIC, rc
        assert rc["zmq_loss_detected"] is False and rc["zmq_gap_missing"] == 0, rc
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rb["first_seen"]), rb
        assert f"message {b} was only received via ZeroMQ (full id 2026-{b}, first seen " in stderr()
        assert f"message {c} was only received via AMQP (full id 2026-{c}, first seen " in stderr()

        # H: AMQP only, while our ZeroMQ subscription saw a sequence gap (i jumps by 4).
        # The message that reveals the gap is on both buses (matched).
        x = str(uuid.uuid4())
        pub.send(f"2026-{x}", skip=3)
        amqp(x)
        af.wait_for(lambda: "missing before i=" in stderr(), 20, "zmq-sub's gap warning")
        amqp(h)
        af.wait_for(lambda: any(r["id"] == h for r in records()), 30, "the report of H")
        rh = [r for r in records() if r["id"] == h]
        assert len(rh) == 1 and rh[0]["side"] == "amqp" and rh[0]["full_id"] == h, rh
        assert rh[0]["zmq_loss_detected"] is True and rh[0]["zmq_gap_missing"] == 3, rh
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("verify-missing did not stop within 60 s")
        err.close()
        pub.close()
    log = stderr()
    assert rc == 0, f"exit status {rc}\n{log[-3000:]}"
    # Every record stays a single one after the shutdown too.
    ids = [r["id"] for r in records()]
    assert len(ids) == len(set(ids)), ids
    summary = re.findall(r"verify-missing: matched=(\d+) only_via_zeromq=(\d+) only_via_amqp=(\d+) "
                         r"\(of which during ZeroMQ loss: (\d+)\) duplicates zeromq=(\d+) amqp=(\d+)", log)
    assert summary, log[-3000:]
    matched, only_zmq, only_amqp, loss, dup_zmq, dup_amqp = map(int, summary[-1])
    assert (matched, only_zmq, only_amqp, loss, dup_zmq, dup_amqp) == (5, 2, 2, 1, 1, 1), summary[-1]
    # The auto-delete queue is gone once its consumer left.
    af.wait_for(lambda: queue not in broker.ctl("list_queues", "name").split(), 30, "the queue to be deleted")
    conn.close()


def queue_consumers(broker, queue):
    out = broker.ctl("list_queues", "name", "consumers")
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == queue:
            return int(f[1])
    return 0


if __name__ == "__main__":
    main()
