"""Shared pieces of the bridge tests (tests/bridges): the example pipelines run by the real
`switchyard` binary, a private RabbitMQ, independent python3-zmq / python3-pika peers and
fedmsg signatures made and checked with python3-cryptography.

Reused, not copied: the broker and pika helpers of tests/amqp/amqp_fixture.py, the PKI of
tests/crypto/pyhelper.py, the ZeroMQ peers of tests/zmq/zmqtest.py. Every wait has a
deadline and waits on a condition."""
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
for sub in ("amqp", "crypto", "zmq"):
    sys.path.insert(0, os.path.join(HERE, "..", sub))

import amqp_fixture  # noqa: E402
import pyhelper  # noqa: E402
import zmqtest  # noqa: E402
import zmq  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

ROOT = amqp_fixture.ROOT
PIPELINES = os.path.join(ROOT, "examples", "pipelines")
log = amqp_fixture.log
wait_for = amqp_fixture.wait_for
unique = amqp_fixture.unique
free_port = zmqtest.free_port
canonical = pyhelper.canonical


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    import atexit
    atexit.register(shutil.rmtree, d, True)
    return d


def make_pki():
    """A test CA with leaves (tests/crypto/pyhelper.py): good.* signs as the fedmsg
    publisher, other.* is the bridge's signing identity."""
    d = tmpdir("sy-bridge-pki-")
    pyhelper.pki(d)
    return d


class FedmsgSigner:
    """Signs envelopes the way fedmsg's x509 backend does."""

    def __init__(self, key_file, crt_file):
        with open(key_file, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(crt_file, "rb") as f:
            pem = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.PEM)
        self.cert_field = wrap76(base64.b64encode(pem).decode())

    def sign(self, env):
        env = dict(env)
        env["crypto"] = "x509"
        env.pop("signature", None)
        env.pop("certificate", None)
        sig = self.key.sign(canonical(env).encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
        env["signature"] = wrap76(base64.b64encode(sig).decode())
        env["certificate"] = self.cert_field
        return env


def wrap76(s):
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\n"


def verify(env, ca_file):
    """Checks a signed envelope (a dict) with python3-cryptography over Python's canonical
    bytes, and that its certificate was issued by the CA. Returns the signer's CN."""
    env = dict(env)
    sig = base64.b64decode(env.pop("signature"))
    cert = x509.load_pem_x509_certificate(base64.b64decode(env.pop("certificate")))
    cert.public_key().verify(sig, canonical(env).encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
    with open(ca_file, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    check(cert.issuer == ca.subject, "certificate not issued by the test CA")
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                           cert.signature_hash_algorithm)
    return cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


def new_msg_id():
    return f"{time.gmtime().tm_year}-{uuid.uuid4()}"


def strip_year(mid):
    return re.sub(r"^[0-9]{4}-", "", mid)


# ---------------------------------------------------------------------------------------
# switchyard with an example pipeline



class Bridge(zmqtest.Switchyard):
    """`switchyard run examples/pipelines/NAME --stats-interval 1` with @env set."""

    def __init__(self, name, env):
        full = dict(os.environ)
        full.update(env)
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(full)
        try:  # zmqtest.Switchyard starts the child with the current environment
            super().__init__(["run", "--stats-interval", "1", os.path.join(PIPELINES, name)])
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def counters(self):
        """Last logged value of every counter: {(pipeline, plugin_type, name, reason): value}."""
        out = zmqtest.Counters()
        for pipeline, plugin, name, label, value in zmqtest.parse_stats(self.stderr()):
            kind = re.search(r"\(([^)]*)\)\s*$", plugin)
            out[(pipeline, kind.group(1) if kind else plugin, name, label)] = value
        return out

    def counter(self, pipeline, plugin, name, reason=""):
        return self.counters().get((pipeline, plugin, name, reason), 0)

    def wait_counter(self, pipeline, plugin, name, pred, timeout=60.0, reason=""):
        def ok():
            check(self.proc.poll() is None, "switchyard exited early:\n" + self.stderr()[-4000:])
            return pred(self.counter(pipeline, plugin, name, reason))
        try:
            wait_for(ok, timeout, f"{pipeline}/{plugin} {name}{{{reason}}}", interval=0.1)
        except AssertionError:
            log(self.stderr()[-6000:])
            raise

    def drops(self, pipeline, plugin):
        """{reason: count} of dropped{reason} and failed{reason} for one plugin."""
        out = {}
        for (p, k, n, r), v in self.counters().items():
            if p == pipeline and k == plugin and n in ("dropped", "failed") and v:
                out[r] = out.get(r, 0) + v
        return out

    def finish(self, timeout=60.0):
        rc = self.stop(timeout)
        check(rc == 0, f"switchyard exited with {rc}\n{self.stderr()[-4000:]}")
        check("stats:" in self.stderr(), "no stats at exit")
        return rc


def bridge_env(broker, pki, **extra):
    env = {
        "AMQP_URL": broker.url,
        "FEDMSG_CA": os.path.join(pki, "ca.crt"),
        "FEDMSG_NITPICKY": "false",
        "FEDMSG_CERT": os.path.join(pki, "other.crt"),
        "FEDMSG_KEY": os.path.join(pki, "other.key"),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


# ---------------------------------------------------------------------------------------
# AMQP peer

class Collector(threading.Thread):
    """A pika consumer of its own exclusive queue, bound with @bindings [(exchange, key)];
    keeps every delivery: (exchange, routing_key, properties, body)."""

    def __init__(self, broker, bindings):
        super().__init__(daemon=True)
        self.conn = broker.connection()
        self.ch = self.conn.channel()
        self.queue = self.ch.queue_declare("", exclusive=True).method.queue
        for exchange, key in bindings:
            self.ch.queue_bind(self.queue, exchange, key)
        self.got = []
        self.lock = threading.Lock()
        self.stopping = False
        self.error = None
        self.start()

    def run(self):
        try:
            for method, props, body in self.ch.consume(self.queue, auto_ack=True, inactivity_timeout=0.1):
                if method is not None:
                    with self.lock:
                        self.got.append((method.exchange, method.routing_key, props, body))
                if self.stopping:
                    break
            self.ch.cancel()
            self.conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.got)

    def wait_count(self, n, timeout=60.0):
        wait_for(lambda: len(self.snapshot()) >= n or self.error, timeout, f"{n} AMQP deliveries "
                 f"(have {len(self.snapshot())})")
        check(self.error is None, f"AMQP consumer failed: {self.error!r}")

    def close(self):
        self.stopping = True
        self.join(10)


def settle(getter, timeout=60.0, idle=2.0, at_least=0):
    """Waits until getter() has at least @at_least items and then @idle seconds pass with no
    new one (so duplicates and loops would have shown up). Returns the final list."""
    deadline = time.monotonic() + timeout
    last_n, last_t = -1, time.monotonic()
    while True:
        items = getter()
        now = time.monotonic()
        if len(items) != last_n:
            last_n, last_t = len(items), now
        if len(items) >= at_least and now - last_t >= idle:
            return items
        if now > deadline:
            raise AssertionError(f"not settled within {timeout}s: {len(items)} items, want {at_least}")
        time.sleep(0.05)


def publish_amqp(ch, exchange, topic, body, headers=None, message_id=None):
    import pika
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                 delivery_mode=2, message_id=message_id or str(uuid.uuid4()),
                                 headers=headers)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    ch.basic_publish(exchange, topic, data, props)
    return props.message_id


# ---------------------------------------------------------------------------------------
# ZeroMQ peers

class ZmqCollector(threading.Thread):
    """A SUB socket (python3-zmq) drained by a thread: keeps every [topic, envelope]."""

    def __init__(self, endpoint, topic=b""):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sub = zmqtest.Subscriber(endpoint, topic=topic, ctx=self.ctx)
        self.got = []
        self.lock = threading.Lock()
        self.stopping = False
        self.start()

    def run(self):
        while not self.stopping:
            if self.sub.sock.poll(100, zmq.POLLIN):
                frames = self.sub.sock.recv_multipart()
                with self.lock:
                    self.got.append(frames)

    def snapshot(self):
        with self.lock:
            return list(self.got)

    def wait_count(self, n, timeout=60.0):
        wait_for(lambda: len(self.snapshot()) >= n, timeout, f"{n} ZeroMQ messages (have {len(self.snapshot())})")

    def close(self):
        self.stopping = True
        self.join(10)
        self.sub.close()
        self.ctx.term()


def publisher(port, verbose=True):
    """The independent fedmsg publisher: a bound XPUB (zmqtest.Publisher) that reports
    every subscription (XPUB_VERBOSE) so a test can wait for all its subscribers."""
    pub = zmqtest.Publisher(f"tcp://127.0.0.1:{port}")
    if verbose:
        pub.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    return pub


def fedmsg_envelope(topic, msg, **kw):
    env = {"topic": topic, "msg": msg, "msg_id": kw.pop("msg_id", None) or new_msg_id(),
           "timestamp": kw.pop("timestamp", int(time.time())), "i": kw.pop("i", 1),
           "username": kw.pop("username", "fedmsg-pub")}
    env.update(kw)
    return env


def send_envelope(pub, env, raw=None):
    """Sends [topic, canonical envelope] (fedmsg's own wire layout); returns the bytes."""
    data = raw if raw is not None else canonical(env).encode()
    topic = env["topic"] if isinstance(env, dict) else env
    pub.send([topic.encode(), data])
    return data
