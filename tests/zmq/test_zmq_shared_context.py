#!/usr/bin/python3
"""One ZeroMQ context per engine: a `switchyard run` with two pipelines, each zmq-sub (two
endpoints) -> zmq-pub, relays both streams byte-exact while all four plugins share one
context, so the process has exactly one libzmq I/O thread and one reaper thread (a context
each would make four of both), the zmq-sub monitors of both pipelines live side by side in
that context, and the process exits cleanly (the context ends after its last socket)."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Subscriber, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()
N = 50


def zmq_threads(pid):
    """Names of the libzmq background threads of @pid ("ZMQbg/IO/0", "ZMQbg/Reaper")."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
                name = f.read().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if name.startswith("ZMQbg/"):
            names.append(name)
    return sorted(names)


def relayed(pub, sub, tag, timeout=30.0):
    """Sends probes through one pipeline until one arrives (its subscription reached
    zmq-pub), then N envelopes, and checks that all of them come out byte-exact."""
    n = 0
    while True:
        n += 1
        check(n < timeout * 10, f"{tag}: no probe came through")
        pub.send([T, envelope(b'{"probe":%d}' % n, msg_id=f"2026-{tag}-probe-{n}", i=None)])
        if sub.sock.poll(100):
            sub.sock.recv_multipart()
            break
    raws = [envelope(b'{"%s":%d}' % (tag.encode(), k), msg_id=f"2026-{tag}-{k}", i=k + 1) for k in range(N)]
    for raw in raws:
        pub.send([T, raw])
    got = []
    while len(got) < N:
        frames = sub.recv()
        if b'"probe"' not in frames[1]:  # probes still on their way are not counted
            got.append(frames)
    for k, (raw, (f0, f1)) in enumerate(zip(raws, got)):
        check(f0 == T and f1 == raw, f"{tag}: message {k} changed: {raw!r} -> {f1!r}")


def main():
    ports = {name: free_port() for name in ("a1", "a2", "b1", "b2", "out_a", "out_b")}
    ep = {name: f"tcp://127.0.0.1:{port}" for name, port in ports.items()}
    pubs = {name: Publisher(ep[name]) for name in ("a1", "a2", "b1", "b2")}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  a:
    input: {{type: zmq-sub, endpoints: ["{ep['a1']}", "{ep['a2']}"]}}
    outputs:
      - {{type: zmq-pub, endpoints: ["{ep['out_a']}"], no_subscriber: drop}}
  b:
    input: {{type: zmq-sub, endpoints: ["{ep['b1']}", "{ep['b2']}"]}}
    outputs:
      - {{type: zmq-pub, endpoints: ["{ep['out_b']}"], no_subscriber: drop}}
""")
        sy = Switchyard(["run", cfg])
        subs = []
        try:
            for name in ("a1", "a2", "b1", "b2"):
                pubs[name].wait_subscription()
            sy.wait_log(r"bound tcp://127\.0\.0\.1:%d" % ports["out_a"])
            sy.wait_log(r"bound tcp://127\.0\.0\.1:%d" % ports["out_b"])
            subs = [Subscriber(ep["out_a"]), Subscriber(ep["out_b"])]
            relayed(pubs["a1"], subs[0], "a1")
            relayed(pubs["a2"], subs[0], "a2")
            relayed(pubs["b1"], subs[1], "b1")
            relayed(pubs["b2"], subs[1], "b2")
            threads = zmq_threads(sy.proc.pid)
            check(threads == ["ZMQbg/IO/0", "ZMQbg/Reaper"],
                  f"one shared context should run one I/O thread and one reaper, found {threads}")
        finally:
            rc = sy.stop()
            for s in subs:
                s.close()
            for p in pubs.values():
                p.close()
        check(rc == 0, f"switchyard exited with {rc}\n{sy.stderr()[-4000:]}")
    print(f"ok: two pipelines, four zmq plugins, one ZeroMQ context ({threads})")


if __name__ == "__main__":
    main()
