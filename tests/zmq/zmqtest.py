"""Shared pieces of the ZeroMQ integration tests: an independent python3-zmq fedmsg peer,
free ports, and a `switchyard` child process whose output and counters can be read.

Every wait has a deadline and waits on a condition (a line arrived, a subscription
arrived); nothing sleeps to synchronise."""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import Counters, free_port, parse_stats, wait_for  # noqa: E402,F401 (also for their importers)

BIN = os.environ["SWITCHYARD_BIN"]
SOURCE_ROOT = os.environ.get("SWITCHYARD_SOURCE_ROOT", "")
TOPIC = "org.fedoraproject.dev.demo.test"


def envelope(msg_raw, *, topic=TOPIC, msg_id=None, i=1, username="pytest", timestamp=1700000000,
             extra=b""):
    """The bytes of a fedmsg envelope with @msg_raw (bytes) embedded verbatim, the way fedmsg
    lays it out (sorted keys, compact)."""
    if msg_id is None:
        msg_id = f"2026-{uuid.uuid4()}"
    head = b'{"i":%d,"msg":' % i if i is not None else b'{"msg":'
    return (head + msg_raw + b',"msg_id":' + json.dumps(msg_id).encode() +
            b',"timestamp":' + str(timestamp).encode() + b',"topic":' + json.dumps(topic).encode() +
            b',"username":' + json.dumps(username).encode() + extra + b"}")


class Publisher:
    """A fedmsg publisher on an XPUB socket, so that it can wait for the subscription
    handshake instead of losing its first messages (slow joiner)."""

    def __init__(self, endpoint, bind=True, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.SNDHWM, 0)  # unlimited: the tests count every message
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        self.sock.setsockopt(zmq.LINGER, 5000)
        if bind:
            # A socket closed a moment ago on this endpoint releases it asynchronously.
            deadline = time.monotonic() + 10
            while True:
                try:
                    self.sock.bind(endpoint)
                    break
                except zmq.ZMQError as e:
                    if e.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # retry back-off
        else:
            self.sock.connect(endpoint)

    def wait_subscription(self, timeout=20.0):
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError("no subscription arrived within %.0f s" % timeout)
        sub = self.sock.recv()
        assert sub[:1] == b"\x01", sub
        return sub[1:]

    def send(self, frames, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() > deadline:
                    raise AssertionError("publisher blocked for %.0f s" % timeout)
                self.sock.poll(100, zmq.POLLOUT)

    def close(self):
        self.sock.close()


class Subscriber:
    def __init__(self, endpoint, bind=False, topic=b"", ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        if bind:
            self.sock.bind(endpoint)
        else:
            self.sock.connect(endpoint)

    def recv(self, timeout=20.0):
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError("nothing received within %.0f s" % timeout)
        return self.sock.recv_multipart()

    def recv_n(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("received %d of %d messages" % (len(out), n))
            out.append(self.recv(left))
        return out

    def close(self):
        self.sock.close()


class Switchyard:
    """A running `switchyard` command; stdout lines and stderr are collected by threads."""

    def __init__(self, args, stdin=subprocess.DEVNULL, cwd=None):
        self.proc = subprocess.Popen([BIN] + args, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd)
        self.lines = queue.Queue()
        self.err = []
        self._t_out = threading.Thread(target=self._read_out, daemon=True)
        self._t_err = threading.Thread(target=self._read_err, daemon=True)
        self._t_out.start()
        self._t_err.start()

    def _read_out(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line.decode("utf-8", "replace"))

    def stderr(self):
        return "".join(self.err)

    def wait_log(self, pattern, timeout=20.0):
        """Waits until a stderr line matches @pattern (a regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(rx.search(l) for l in list(self.err)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)  # polling a condition with a deadline, not synchronising on time
        raise AssertionError("no log line matching %r\n%s" % (pattern, self.stderr()[-4000:]))

    def read_lines(self, n, timeout=60.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("got %d of %d output lines\n%s" % (len(out), n, self.stderr()[-4000:]))
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        return rc

    def wait(self, timeout=30.0):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("switchyard did not exit\n" + self.stderr()[-4000:])
        self._t_out.join(10)
        self._t_err.join(10)
        return rc

    def rest(self):
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def stats(self):
        """The last value of every counter logged: {(plugin_type, name, reason): value}."""
        result = Counters()
        for _, plugin, name, label, value in parse_stats(self.stderr()):
            kind = re.search(r"\(([^)]*)\)\s*$", plugin)
            result[(kind.group(1) if kind else plugin, name, label)] = value
        return result


def write_config(directory, text, name="p.yaml"):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def check(cond, message):
    if not cond:
        raise AssertionError(message)
