"""Shared helpers of the amqp suite: a real private RabbitMQ (scripts/rabbitmq-local),
python3-pika as the independent peer, and the real `switchyard run` binary.

The broker comes from scripts/rabbitmq-local: the one already running in
$SWITCHYARD_RABBITMQ_DIR (or the default state dir), or one this test starts and stops.
These tests never skip."""
import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pika

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import Counters, free_port, parse_stats, wait_for  # noqa: E402,F401 (also for their importers)

ROOT = os.environ.get("SWITCHYARD_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SWITCHYARD_BIN", "")
SCRIPT = os.path.join(ROOT, "scripts", "rabbitmq-local")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Broker:
    """A node run by scripts/rabbitmq-local. `own=True` when this process started it."""

    def __init__(self, state_dir=None, tls_dir=None):
        self.env = dict(os.environ)
        if state_dir:
            self.env["SWITCHYARD_RABBITMQ_DIR"] = state_dir
        if tls_dir:
            self.env["SWITCHYARD_RABBITMQ_TLS_DIR"] = tls_dir
        self.own = False
        if subprocess.run([SCRIPT, "status"], env=self.env, capture_output=True).returncode != 0:
            log("amqp tests: no broker running; starting one with scripts/rabbitmq-local")
            self.script("start")
            self.own = True
            atexit.register(self.stop)
        out = self.script("env")
        self.vars = {}
        for m in re.finditer(r"^export (\w+)=(.*)$", out, re.M):
            self.vars[m.group(1)] = shlex.split(m.group(2))[0]
        self.port = int(self.vars["SWITCHYARD_RABBITMQ_AMQP_PORT"])
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.amqps_port = int(self.vars.get("SWITCHYARD_RABBITMQ_AMQPS_PORT", "0"))

    def script(self, *args, check=True):
        p = subprocess.run([SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=180)
        if check and p.returncode != 0:
            raise AssertionError(f"rabbitmq-local {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p.stdout

    def ctl(self, *args):
        return self.script("ctl", "-q", *args)

    def stop(self):
        if self.own:
            self.own = False
            self.script("stop", check=False)

    def connection(self, user="guest", password="guest", attempts=60):
        params = pika.ConnectionParameters(host="127.0.0.1", port=self.port,
                                           credentials=pika.PlainCredentials(user, password),
                                           heartbeat=30, blocked_connection_timeout=60)
        for i in range(attempts):
            try:
                return pika.BlockingConnection(params)
            except pika.exceptions.AMQPConnectionError:
                if i == attempts - 1:
                    raise
                time.sleep(0.5)

    def queue_counts(self, queue):
        """(ready, unacked, consumers) as the broker reports them."""
        out = self.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers")
        for line in out.splitlines():
            f = line.split("\t")
            if f and f[0] == queue:
                return int(f[1]), int(f[2]), int(f[3])
        raise AssertionError(f"queue {queue} not found:\n{out}")

    def restart_hard(self):
        """kill -9 of the broker, then start on the same state dir (same ports)."""
        self.script("kill")
        self.script("start")

    def restart_app(self):
        self.ctl("stop_app")
        self.ctl("start_app")
        self.ctl("await_startup")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Switchyard:
    """`switchyard run` with a config written to a temp dir; stdout to a file."""

    def __init__(self, config, stdin=subprocess.DEVNULL, env=None, tmp=None):
        assert BIN, "SWITCHYARD_BIN is not set (run the tests through meson)"
        if tmp is None:
            tmp = tempfile.mkdtemp(prefix="sy-amqp-")
            atexit.register(shutil.rmtree, tmp, True)
        self.tmp = tmp
        self.cfg = os.path.join(self.tmp, "pipeline.yaml")
        with open(self.cfg, "w") as f:
            f.write(config)
        self.out_path = os.path.join(self.tmp, "stdout.jsonl")
        self.err_path = os.path.join(self.tmp, "stderr.log")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([BIN, "run", "--stats-interval", "1000", self.cfg], stdin=stdin,
                                     stdout=self.out, stderr=self.err, env=full_env)
        # A failed assertion must not leave the process running after the test.
        atexit.register(self._kill_if_running)

    def _kill_if_running(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def lines(self):
        with open(self.out_path, "rb") as f:
            data = f.read()
        return [line for line in data.split(b"\n") if line]

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=120):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"switchyard did not exit within {timeout}s\n{self.stderr()[-4000:]}")
        self.out.close()
        self.err.close()
        return rc

    def stats(self):
        """Final counters from the stats log lines: {(name, reason): value}, last value wins."""
        res = Counters()
        for _, _, name, label, value in parse_stats(self.stderr()):
            res[(name, label)] = value
        return res

    def stat(self, name, reason=""):
        return self.stats().get((name, reason), 0)

    def plugin_stats(self, plugin):
        """Final counters of the plugin instances whose name contains `plugin` ("amqp-publish",
        "outputs[1]"): {(name, reason): value}, last value wins."""
        res = Counters()
        for _, name_of_plugin, name, label, value in parse_stats(self.stderr()):
            if plugin in name_of_plugin:
                res[(name, label)] = value
        return res


def drain(conn, queue, expect, timeout=120, idle=3.0):
    """Consumes `queue` until `expect` messages arrived and then `idle` seconds pass with none
    (so duplicates are seen too). Returns [(method, properties, body)]."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=500)
    got = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    for method, props, body in ch.consume(queue, inactivity_timeout=0.2):
        now = time.monotonic()
        if method is not None:
            got.append((method, props, body))
            ch.basic_ack(method.delivery_tag)
            last = now
        if len(got) >= expect and now - last > idle:
            break
        if now > deadline:
            break
    ch.cancel()
    ch.close()
    return got
