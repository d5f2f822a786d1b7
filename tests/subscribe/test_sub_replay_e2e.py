#!/usr/bin/python3
"""Gap backfill end to end with Switchyard's own replay server: a python3-zmq publisher ->
switchyard A (zmq-sub -> zmq-pub with replay_endpoint) -> a forwarding hop (python3-zmq
XSUB/XPUB) -> switchyard B (zmq-sub with replay_endpoints) -> stdout.

1. Messages 1..10 arrive at B through the hop.
2. The hop is stopped: B's connection is cut. Messages 11..20 are published by A (its
   replay endpoint has them: asked directly, fedmsg's wire format) and never reach B.
3. The hop comes back on the same port; B reconnects, and the first message it gets after
   the gap makes it ask A's replay endpoint: B's output is every message, 1..N, once, in
   order. backfilled counts what the wire lost (= the `i` tracker's seq_missing), nothing
   is unrecoverable."""
import json
import os
import queue
import sys
import tempfile
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subtest import TOPIC, Publisher, Switchyard, check, free_port, wait_for, write_config  # noqa: E402
from zmqtest import envelope  # noqa: E402

T = TOPIC.encode()


class Hop:
    """A forwarding hop: XSUB connected to @upstream, XPUB bound at @bind; subscriptions go
    up, messages down. stop() closes both sockets (the connections drop)."""

    def __init__(self, upstream, bind):
        self.ctx = zmq.Context.instance()
        self.stop_ev = threading.Event()
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 0)
        deadline = time.monotonic() + 10
        while True:  # the port of the hop just stopped may still be held for a moment
            try:
                self.xpub.bind(bind)
                break
            except zmq.ZMQError as e:
                if e.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # retry back-off
        self.xsub = self.ctx.socket(zmq.XSUB)
        self.xsub.setsockopt(zmq.LINGER, 0)
        self.xsub.connect(upstream)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        poller = zmq.Poller()
        poller.register(self.xpub, zmq.POLLIN)
        poller.register(self.xsub, zmq.POLLIN)
        while not self.stop_ev.is_set():
            for s, _ in poller.poll(50):  # short, so that stop() is prompt
                other = self.xsub if s is self.xpub else self.xpub
                other.send_multipart(s.recv_multipart())
        self.xpub.close()
        self.xsub.close()

    def stop(self):
        self.stop_ev.set()
        self.t.join(10)


def replayed_ids(endpoint, lo, hi):
    """seq_ids that A's replay endpoint answers for [lo, hi] (fedmsg's get_replay, with a timeout)."""
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send(json.dumps({"seq_id_range": [lo, hi]}).encode())
        if not s.poll(5000):
            return []
        frames = s.recv_multipart()
        if frames[0].startswith(b"error: "):
            return []
        return [json.loads(f)["seq_id"] for f in frames]
    finally:
        s.close()


def main():
    p_in, p_out, p_rep, p_hop = (free_port() for _ in range(4))
    rep = f"tcp://127.0.0.1:{p_rep}"
    hop_ep = f"tcp://127.0.0.1:{p_hop}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg_a = write_config(tmp, f"""version: 1
pipelines:
  relay:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{p_in}"]
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{p_out}"]
        replay_endpoint: "{rep}"
        wait_for_subscriber: 30
""", "a.yaml")
        cfg_b = write_config(tmp, f"""version: 1
pipelines:
  subscriber:
    input:
      type: zmq-sub
      endpoints:
        relay: "{hop_ep}"
      replay_endpoints:
        relay: "{rep}"
      replay_timeout: 10000
    outputs:
      - type: stdout
""", "b.yaml")
        pub = Publisher(f"tcp://127.0.0.1:{p_in}")
        a = Switchyard(["run", cfg_a])
        hop = Hop(f"tcp://127.0.0.1:{p_out}", hop_ep)
        b = Switchyard(["run", cfg_b])
        sent = 0

        def send():
            nonlocal sent
            sent += 1
            pub.send([T, envelope(b'{"n":%d}' % sent, msg_id=f"m-{sent}", i=sent)])

        try:
            pub.wait_subscription()
            for _ in range(10):
                send()
            got = [json.loads(l)["id"] for l in b.read_lines(10, 30)]
            check(got == [f"m-{k}" for k in range(1, 11)], f"1..10 through the hop: {got}")

            hop.stop()  # B's connection is cut
            b.wait_log(r"connection to tcp://127\.0\.0\.1:%d closed" % p_hop)
            for _ in range(10):
                send()
            wait_for(lambda: replayed_ids(rep, 11, 20) == list(range(11, 21)), 20, "A has published 11..20")

            hop = Hop(f"tcp://127.0.0.1:{p_out}", hop_ep)
            b.wait_log(r"reconnected to tcp://127\.0\.0\.1:%d" % p_hop)
            # Until B's subscription has gone up through the hop, what A publishes is lost on
            # the wire too (and replayed): publish until B outputs something.
            first = None
            deadline = time.monotonic() + 20
            while first is None:
                check(time.monotonic() < deadline, "nothing reached B after the hop came back\n" + b.stderr()[-3000:])
                send()
                try:
                    first = b.lines.get(timeout=0.3)
                except queue.Empty:
                    pass
            rest = b.read_lines(sent - 11, 30)
            got = [json.loads(l)["id"] for l in [first] + rest]
            check(got == [f"m-{k}" for k in range(11, sent + 1)], f"11..{sent} in order: {got}")
        finally:
            rc_b = b.stop()
            hop.stop()
            rc_a = a.stop()
            pub.close()
        check(rc_a == 0 and rc_b == 0, f"exit {rc_a}, {rc_b}\n{b.stderr()[-3000:]}")
        check(b.rest() == [], "nothing more was output")
        stats = b.stats()
        wire = stats.get(("zmq-sub", "zmq_received", ""))
        backfilled = stats.get(("zmq-sub", "backfilled", ""))
        check(backfilled >= 10 and backfilled + wire == sent, f"backfilled {backfilled} + wire {wire} != {sent}\n{stats}")
        check(stats.get(("zmq-sub", "unrecoverable", "")) == 0, f"nothing unrecoverable: {stats}")
        check(stats.get(("zmq-sub", "replay_duplicates", "")) == 0, f"no duplicate: {stats}")
        check(stats.get(("zmq-sub", "seq_missing", "")) == backfilled, f"seq_missing is what the wire lost: {stats}")
        check(stats.get(("zmq-sub", "seq_duplicates", "")) == 0 and stats.get(("zmq-sub", "seq_reordered", "")) == 0,
              f"the backfill is no duplicate or reorder to the i tracker: {stats}")
    print(f"ok: {backfilled} missed message(s) backfilled in order, {sent} in all")


if __name__ == "__main__":
    main()
