"""Shared pieces of zmq-sub's replay and SRV tests: canonical fedmsg envelopes with a
`seq_id`, and a python3-zmq replay endpoint written to fedmsg's wire format (one JSON
query frame in; one envelope per frame out, or a single `error: '...'` frame)."""
import atexit
import json
import os
import socket
import subprocess
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zmq"))
from zmqtest import (TOPIC, Publisher, Switchyard, check, free_port, wait_for,  # noqa: E402,F401
                     write_config)


def envelope(seq_id, *, name="alpha", i=None, topic=TOPIC):
    """A canonical envelope (sorted keys, compact) of publisher @name with @seq_id (None:
    without one); `i` follows seq_id unless given. Its msg_id is NAME-SEQ."""
    env = {"i": seq_id if i is None else i, "msg": {"n": seq_id}, "msg_id": f"{name}-{seq_id}",
           "timestamp": 1700000000, "topic": topic, "username": name}
    if seq_id is not None:
        env["seq_id"] = seq_id
    else:
        env["msg_id"] = f"{name}-noseq-{i}"
    return json.dumps(env, sort_keys=True, separators=(",", ":")).encode()


class ReplayServer:
    """A replay endpoint at @endpoint in a thread: a ROUTER socket, which a REQ client
    cannot tell from fedmsg's REP, so that a query can go unanswered and the next one
    still be read. @answer(query dict) returns the reply frames (a list of bytes), or None
    for no reply at all (the client times out)."""

    def __init__(self, endpoint, answer):
        self.endpoint = endpoint
        self.answer = answer
        self.queries = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        if not self._ready.wait(10):
            raise AssertionError("replay server did not start")

    def _run(self):
        ctx = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.endpoint)
        self._ready.set()
        while not self._stop.is_set():
            if not sock.poll(50):  # a short poll so that close() is prompt
                continue
            peer, empty, body = sock.recv_multipart()
            q = json.loads(body)
            self.queries.append(q)
            frames = self.answer(q)
            if frames is not None:
                sock.send_multipart([peer, empty] + frames)
        sock.close()
        ctx.term()

    def close(self):
        self._stop.set()
        self._t.join(10)


def range_answer(store):
    """An answer function serving `seq_id_range` queries from @store {seq_id: envelope}."""
    def answer(q):
        lo, hi = q["seq_id_range"]
        frames = [store[k] for k in sorted(store) if lo <= k <= hi]
        return frames or [b"error: 'no match'"]
    return answer


def ids(lines):
    return [json.loads(l)["id"] for l in lines]


class Dnsmasq:
    """Debian's dnsmasq on 127.0.0.1:@port serving SRV records only (no resolv.conf, no
    /etc/hosts, no configuration file), each record (name, target, port, priority, weight)."""

    def __init__(self, port, records):
        self.port = port
        args = ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
                "--local-ttl=1", "--log-facility=-"]
        if os.geteuid() == 0:
            args.append("--user=root")
        for name, target, tport, prio, weight in records:
            args.append(f"--srv-host={name},{target},{tport},{prio},{weight}")
        # A port freed a moment ago (the previous dnsmasq) may still be held briefly.
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            atexit.register(self.stop)  # never left running by a failed test
            if self._answers(deadline):
                return
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.stop()
            if time.monotonic() > deadline:
                raise AssertionError(f"dnsmasq did not start on port {port}: {err}")
            time.sleep(0.1)  # retry back-off

    def _answers(self, deadline):
        """True once the server answers a DNS query on its port (a UDP probe)."""
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04test\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline and self.proc.poll() is None:
                s.sendto(query, ("127.0.0.1", self.port))
                try:
                    data = s.recv(512)
                    if data[:2] == b"\x12\x34":
                        return True
                except (socket.timeout, ConnectionRefusedError):
                    pass
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
