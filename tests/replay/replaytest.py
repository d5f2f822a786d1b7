"""Shared pieces of the replay tests: fedmsg's replay client, as fedmsg's `get_replay`
speaks the wire (a REQ socket, ONE frame holding the query as canonical JSON, then
recv_multipart; here with a receive timeout, which the reference lacks), on top of the
ZeroMQ test helpers (tests/zmq/zmqtest.py)."""
import json
import os
import sys

import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zmq"))
from zmqtest import (Publisher, Subscriber, Switchyard, check, envelope, free_port,  # noqa: E402,F401
                     wait_for, write_config)
from sytest import http_get  # noqa: E402,F401


def canonical(value):
    """fedmsg.encoding.dumps: sorted keys, compact separators, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")


def replay_raw(endpoint, frames, timeout=10.0):
    """Sends @frames (a list of bytes) on a new REQ socket and returns the reply's frames."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError("no replay reply from %s within %.0f s" % (endpoint, timeout))
        return sock.recv_multipart()
    finally:
        sock.close()


def get_replay(endpoint, query, timeout=10.0):
    """fedmsg's get_replay: the envelopes (parsed) of the reply, in order; an error reply
    (a frame that is not JSON) raises ValueError with its text, as the reference does.
    Returns (envelopes, raw frames)."""
    frames = replay_raw(endpoint, [canonical(query)], timeout)
    out = []
    for f in frames:
        try:
            out.append(json.loads(f))
        except ValueError:
            raise ValueError(f.decode("utf-8", "replace"))
    return out, frames


def replay_error(endpoint, frames, timeout=10.0):
    """The text of the single error frame a request gets (asserts that it is one)."""
    reply = replay_raw(endpoint, frames, timeout)
    check(len(reply) == 1 and reply[0].startswith(b"error: '"), "expected one error frame, got %r" % reply[:3])
    return reply[0].decode()


def metric(text, name):
    """The value of the first sample of metric @name in Prometheus text @text (None if absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
