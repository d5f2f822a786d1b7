#!/usr/bin/python3
"""An orderly shutdown drains what ZeroMQ holds.

A python3-zmq publisher numbers its messages (`i` = position). The router's output is held
up (nobody reads its stdout for a while), so its queue fills, submit() blocks and the
messages pile up in zmq-sub's socket (hwm 0: libzmq reads the TCP stream into the socket).
The test waits until the socket holds every message sent so far (the TCP queues of the
connection are empty on both ends), keeps the publisher sending, sends SIGTERM and only
then lets stdout flow.

Run 1 (drain_timeout 10 s): every message the publisher sent before the SIGTERM is written
to stdout, in order, exactly once; everything zmq-sub read is forwarded or counted:
zmq_received = lines + dropped{shutdown} + failed{shutdown}, exactly.
Run 2 (drain_timeout 1 s, stdout held up until the drain has ended): the pipeline stops
taking messages before the socket is empty; what is not forwarded is counted, exactly, and
what is forwarded is a gap-free prefix.
Run 3: a publisher that ignores the unsubscription keeps sending; the drain stops after
10 s, what the socket holds then is counted, and the router exits (bounded shutdown)."""
import json
import os
import signal
import sys
import tempfile
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()
HELD = 3000  # messages the router's socket holds at SIGTERM (at least)


class GatedSwitchyard(Switchyard):
    """Its stdout is not read until open_gate(): the stdout sink blocks on a full pipe."""

    def __init__(self, args):
        self.gate = threading.Event()
        super().__init__(args)

    def _read_out(self):
        self.gate.wait()
        super()._read_out()

    def open_gate(self):
        self.gate.set()


def tcp_queues(port):
    """(tx_queue, rx_queue) of every IPv4 TCP socket on localhost with @port at either end."""
    out = []
    with open("/proc/net/tcp", encoding="ascii") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == port or int(remote.split(":")[1], 16) == port:
                tx, rx = (int(x, 16) for x in queues.split(":"))
                out.append((tx, rx))
    return out


def wait_tcp_empty(port, timeout=30.0):
    """Waits until both ends of the connection have nothing queued, five checks in a row
    (the publisher's libzmq I/O thread writes what its pipe holds as soon as TCP takes it)."""
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 5:
        q = tcp_queues(port)
        calm = calm + 1 if q and all(tx == 0 and rx == 0 for tx, rx in q) else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"TCP queues did not empty: {q}")
        time.sleep(0.01)  # polling a condition with a deadline


def run(drain_timeout):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = Publisher(endpoint)
    state = {"next": 1, "stop": False}

    def send_one():
        i = state["next"]
        pub.send([T, envelope(b'{"n":%d,"pad":"%s"}' % (i, b"p" * 200), msg_id=f"id-{i}", i=i)])
        state["next"] = i + 1

    def keep_sending():
        # Under load: about 5,000 msg/s until the router has exited.
        while not state["stop"]:
            for _ in range(50):
                send_one()
            time.sleep(0.01)  # pacing the load, not synchronising

    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
settings:
  queue_max_messages: 10
  drain_timeout: {drain_timeout}
pipelines:
  drain:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = GatedSwitchyard(["run", cfg])
        sender = None
        try:
            pub.wait_subscription()
            for _ in range(HELD):
                send_one()
            # The router's socket now holds (or has read) every message sent so far.
            wait_tcp_empty(port)
            sent_before_term = state["next"] - 1
            sender = threading.Thread(target=keep_sending, daemon=True)
            sender.start()
            while state["next"] <= sent_before_term + 500:  # load is flowing
                time.sleep(0.005)  # polling a condition
            sy.proc.send_signal(signal.SIGTERM)
            if drain_timeout >= 5:
                sy.open_gate()
            else:
                # The drain ends at the deadline with stdout still blocked; only then flow.
                sy.wait_log(r"shutdown: read \d+ message\(s\) from the ZeroMQ sockets", timeout=30)
                sy.open_gate()
            rc = sy.wait(60)
        finally:
            state["stop"] = True
            if sender is not None:
                sender.join(10)
            sy.open_gate()
            if sy.proc.poll() is None:
                sy.proc.kill()
            pub.close()
        err = sy.stderr()
        check(rc == 0, f"exit status {rc}\n{err[-3000:]}")
        lines = sy.rest()
        ids = [json.loads(l)["id"] for l in lines]
        forwarded = len(ids)
        check(ids == [f"id-{i}" for i in range(1, forwarded + 1)],
              f"stdout is a gap-free, duplicate-free prefix: {ids[:3]}..{ids[-3:]}")
        stats = sy.stats()

        def stat(plugin, name, reason=""):
            return stats.get((plugin, name, reason), 0)

        received = stat("zmq-sub", "zmq_received")
        dropped = stat("zmq-sub", "dropped", "shutdown")
        failed = sum(v for (p, n, _), v in stats.items() if p == "stdout" and n == "failed")
        other_drops = sum(v for (p, n, r), v in stats.items()
                          if p == "zmq-sub" and n == "dropped" and r != "shutdown")
        check(other_drops == 0, f"no other drops: {stats}")
        check(received == forwarded + dropped + failed,
              f"zmq_received {received} = forwarded {forwarded} + dropped{{shutdown}} {dropped} "
              f"+ failed {failed}\n{err[-3000:]}")
        check(received >= sent_before_term, f"read {received} of {sent_before_term} held")
        # The runtime's side of the same books: what was submitted was delivered or lost.
        check(stat("zmq-sub", "received") == received - dropped, f"submitted: {stats}")
        check(stat("zmq-sub", "completed", "delivered") == forwarded, f"delivered: {stats}")
        check(stat("zmq-sub", "lost", "shutdown") == failed, f"lost{{shutdown}}: {stats}")
        return sent_before_term, received, forwarded, dropped, failed, state["next"] - 1


def run_deaf_publisher():
    """A publisher that ignores unsubscriptions (XPUB_MANUAL) keeps sending during the drain:
    zmq-sub gives up submitting after 10 s, counts what its socket holds as
    dropped{shutdown} for at most 1 s more, and the router exits."""
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.XPUB_MANUAL, 1)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    state = {"next": 1, "stop": False}

    def keep_sending():
        while not state["stop"]:
            for _ in range(50):
                i = state["next"]
                try:
                    pub.send_multipart([T, envelope(b'{"n":%d}' % i, msg_id=f"id-{i}", i=i)], zmq.NOBLOCK)
                except zmq.Again:
                    break
                state["next"] = i + 1
            time.sleep(0.01)  # pacing the load, not synchronising

    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
settings:
  drain_timeout: 30
pipelines:
  deaf:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        sender = threading.Thread(target=keep_sending, daemon=True)
        try:
            check(pub.poll(20000, zmq.POLLIN), "no subscription")
            sub = pub.recv()
            check(sub[:1] == b"\x01", sub)
            pub.setsockopt(zmq.SUBSCRIBE, sub[1:])  # manual mode: accept it, ignore the rest
            sender.start()
            sy.read_lines(1000)
            t0 = time.monotonic()
            sy.proc.send_signal(signal.SIGTERM)
            rc = sy.wait(60)
            took = time.monotonic() - t0
        finally:
            state["stop"] = True
            if sender.is_alive():
                sender.join(10)
            if sy.proc.poll() is None:
                sy.proc.kill()
            pub.close()
        err = sy.stderr()
        check(rc == 0, f"exit status {rc}\n{err[-3000:]}")
        check(took < 20, f"the drain is bounded: exit {took:.1f} s after SIGTERM")
        check("did not run empty within 10 s" in err, "the cut-off is logged")
        ids = [json.loads(l)["id"] for l in sy.rest()]
        stats = sy.stats()
        received = stats.get(("zmq-sub", "zmq_received", ""), 0)
        dropped = stats.get(("zmq-sub", "dropped", "shutdown"), 0)
        failed = sum(v for (p, n, _), v in stats.items() if p == "stdout" and n == "failed")
        forwarded = 1000 + len(ids)
        check(received == forwarded + dropped + failed,
              f"zmq_received {received} = forwarded {forwarded} + dropped{{shutdown}} {dropped} + failed {failed}")
        print(f"ok: deaf publisher: exit {took:.1f} s after SIGTERM, {received} read, {forwarded} forwarded, "
              f"dropped{{shutdown}} {dropped}, failed {failed}")


def main():
    held, received, forwarded, dropped, failed, sent = run(10)
    check(forwarded >= held, f"all {held} held messages forwarded, got {forwarded}")
    check(dropped == 0 and failed == 0, f"nothing counted as lost: dropped {dropped}, failed {failed}")
    print(f"ok: drain: {held} held at SIGTERM, {received} read of {sent} sent, {forwarded} forwarded")

    held, received, forwarded, dropped, failed, sent = run(1)
    check(forwarded < held and dropped + failed > 0,
          f"the 1 s drain deadline cut the drain short: {forwarded} forwarded of {held}")
    print(f"ok: short drain: {received} read, {forwarded} forwarded, dropped{{shutdown}} {dropped}, "
          f"failed {failed}")

    run_deaf_publisher()


if __name__ == "__main__":
    main()
