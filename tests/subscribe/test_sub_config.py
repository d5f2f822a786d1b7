#!/usr/bin/python3
"""zmq-sub's replay and SRV keys before start-up: the example pipeline passes `switchyard
check`; each bad value is reported at its own place with what to do, all in one run:
a replay_endpoints name that names no endpoint, a bad replay address, a bad address in
the map form of endpoints, replay and srv in bind mode, neither endpoints nor srv."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subtest import check, write_config  # noqa: E402
from zmqtest import BIN, SOURCE_ROOT  # noqa: E402


def run(args):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def main():
    example = os.path.join(SOURCE_ROOT, "examples", "pipelines", "zmq-sub-replay-srv.yaml")
    rc, out = run(["check", example])
    check(rc == 0, f"the example passes check: exit {rc}\n{out}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, """version: 1
pipelines:
  a:
    input:
      type: zmq-sub
      endpoints:
        alpha: tcp://127.0.0.1:9940
        beta: [tcp://127.0.0.1:9950, "tcp://nohost"]
      replay_endpoints:
        alpha: tcp://127.0.0.1:9941
        gamma: tcp://127.0.0.1:9942
        beta: "tcp://*:9943"
    outputs: [{type: stdout}]
  b:
    input:
      type: zmq-sub
      bind: true
      endpoints: ["tcp://*:2003"]
      replay_endpoints: {x: tcp://127.0.0.1:1}
      srv: [_fedmsg._tcp.example.org]
    outputs: [{type: stdout}]
  c:
    input: {type: zmq-sub, topics: [a.]}
    outputs: [{type: stdout}]
""", "bad.yaml")
        rc, out = run(["check", cfg])
    check(rc == 2, f"check exit {rc}, want 2\n{out}")
    want = [
        r"bad\.yaml:8:\d+: pipelines\.a\.input\.endpoints\.beta\[1\]: 'tcp://nohost' is not a usable endpoint",
        r"bad\.yaml:11:\d+: pipelines\.a\.input\.replay_endpoints\.gamma: 'gamma' names no endpoint: use a key of "
        r"endpoints",
        r"bad\.yaml:12:\d+: pipelines\.a\.input\.replay_endpoints\.beta: 'tcp://\*:9943' is not a usable endpoint",
        r"pipelines\.b\.input\.replay_endpoints: replay needs connect mode",
        r"pipelines\.b\.input\.srv: srv discovers publishers to connect to: it cannot be used with bind: true",
        r"pipelines\.c\.input\.endpoints: 'endpoints' needs at least one address, e\.g\. tcp://HOST:9940 \(or give "
        r"srv",
    ]
    for w in want:
        check(re.search(w, out), f"missing /{w}/ in\n{out}")
    print("ok: the example passes; each bad key is reported at its place")


if __name__ == "__main__":
    main()
