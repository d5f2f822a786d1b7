#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""zmq-sub and zmq-pub before start-up, with real sockets:

1. `switchyard check` reports every malformed endpoint of both plugins in one run, each
   once, at its own file:line:column and place in the list (`endpoints[1]`).
2. `switchyard run` with a zmq-pub whose port another socket holds fails at start-up with
   an error that names the address ("cannot bind tcp://127.0.0.1:PORT ...: Address
   already in use"), not only libzmq's errno text.
3. `switchyard check --connect`: zmq-sub's endpoints are connected to (a python3-zmq
   publisher: ok; a closed port: FAILED naming the endpoint), zmq-pub's bind addresses are
   bound and closed again (a free port: ok, and free again afterwards; a busy one: FAILED
   naming the address).
4. `switchyard run` with a zmq-sub endpoint nothing listens on says so once, naming the
   endpoint, instead of retrying in silence."""
import os
import re
import socket
import subprocess
import sys
import tempfile

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import BIN, Switchyard, check, free_port, write_config  # noqa: E402


def run(args, timeout=60):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def test_check_every_endpoint(tmp):
    cfg = write_config(tmp, """version: 1
pipelines:
  p:
    input:
      type: zmq-sub
      endpoints: ["tcp://*:notaport", "bogus://x", "tcp://127.0.0.1:9940", "not-an-endpoint"]
    outputs:
      - type: zmq-pub
        endpoints:
          - "tcp://*:notaport"
          - "tcp://127.0.0.1:99999"
          - "tcp://*:0"
          - "ipc://"
""", "endpoints.yaml")
    rc, out = run(["check", cfg])
    check(rc == 2, f"check exit {rc}, want 2\n{out}")
    want = [
        r"endpoints\.yaml:6:19: pipelines\.p\.input\.endpoints\[0\]: 'tcp://\*:notaport' is not a usable endpoint: "
        r"'\*' \(every interface\) can only be bound",
        r"endpoints\.yaml:6:39: pipelines\.p\.input\.endpoints\[1\]: 'bogus://x' is not a usable endpoint: "
        r"unknown transport 'bogus'",
        r"endpoints\.yaml:6:76: pipelines\.p\.input\.endpoints\[3\]: 'not-an-endpoint' is not a usable endpoint",
        r"endpoints\.yaml:10:13: pipelines\.p\.outputs\[0\]\.endpoints\[0\]: 'tcp://\*:notaport' is not a usable "
        r"endpoint: port 'notaport' is not a number",
        r"endpoints\.yaml:11:13: pipelines\.p\.outputs\[0\]\.endpoints\[1\]: 'tcp://127\.0\.0\.1:99999' is not a "
        r"usable endpoint: port 99999 is out of range \(1 to 65535",
        r"endpoints\.yaml:13:13: pipelines\.p\.outputs\[0\]\.endpoints\[3\]: 'ipc://' is not a usable endpoint: no path",
    ]
    for pat in want:
        n = len(re.findall(pat, out))
        check(n == 1, f"{pat!r} found {n} times, want once\n{out}")
    check("endpoints[2]" not in out, f"a good endpoint was reported\n{out}")
    check(re.search(r"^6 error\(s\)$", out, re.M), f"want exactly 6 errors\n{out}")
    print("ok: check names every bad endpoint once, at its place")


def test_busy_port_at_start(tmp):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  p:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
""", "busy.yaml")
        p = subprocess.run([BIN, "run", cfg], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
        check(p.returncode not in (0, None), f"run exited {p.returncode} although the port is held\n{out}")
        want = rf"cannot bind tcp://127\.0\.0\.1:{port} \(endpoints\[0\]\): Address already in use"
        check(re.search(want, out), f"{want!r} not in the output\n{out}")
        check("cannot set up the PUB socket" not in out, out)
    finally:
        holder.close()
    print(f"ok: a busy port {port} is named at start-up")


def test_check_connect(tmp):
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    closed_port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy_port = holder.getsockname()[1]
    free = free_port()
    try:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  p:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{pub_port}", "tcp://127.0.0.1:{closed_port}", "tcp://no-such-host.invalid:9940"]
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{free}", "tcp://127.0.0.1:{busy_port}"]
""", "connect.yaml")
        rc, out = run(["check", "--connect", "--timeout", "10", cfg])
        check(rc == 1, f"check --connect exit {rc}, want 1\n{out}")
        sub = r"pipelines\.p\.input \(zmq-sub\)"
        pubp = r"pipelines\.p\.outputs\[0\] \(zmq-pub\)"
        want = [
            rf"^{sub}: tcp://127\.0\.0\.1:{pub_port}: ok$",
            rf"^{sub}: tcp://127\.0\.0\.1:{closed_port}: FAILED: cannot connect to 127\.0\.0\.1:{closed_port}: "
            r"Connection refused; nothing listens there",
            rf"^{sub}: tcp://no-such-host\.invalid:9940: FAILED: cannot resolve host 'no-such-host\.invalid'",
            rf"^{pubp}: tcp://127\.0\.0\.1:{free}: ok$",
            rf"^{pubp}: tcp://127\.0\.0\.1:{busy_port}: FAILED: cannot bind tcp://127\.0\.0\.1:{busy_port}: "
            r"Address already in use",
            r"connect\.yaml: 3 of 5 checks FAILED",
        ]
        for pat in want:
            n = len(re.findall(pat, out, re.M))
            check(n == 1, f"{pat!r} found {n} times, want once\n{out}")
        # The probe closed what it bound: the port is free again.
        with socket.socket() as s:
            s.bind(("127.0.0.1", free))
    finally:
        holder.close()
        pub.close()
    print("ok: check --connect reports each endpoint")


def test_unreachable_named(tmp):
    port = free_port()
    cfg = write_config(tmp, f"""version: 1
pipelines:
  p:
    input: {{type: zmq-sub, endpoints: ["tcp://127.0.0.1:{port}"]}}
    outputs: [{{type: stdout}}]
""", "unreachable.yaml")
    sy = Switchyard(["run", cfg])
    pub = None
    try:
        sy.wait_log(rf"cannot connect to tcp://127\.0\.0\.1:{port} yet", timeout=20)
        # The publisher comes up: the retries go on and connect, without more warnings.
        pub = zmq.Context.instance().socket(zmq.XPUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(f"tcp://127.0.0.1:{port}")
        sy.wait_log(rf"connected to tcp://127\.0\.0\.1:{port}", timeout=20)
    finally:
        rc = sy.stop()
        if pub is not None:
            pub.close()
    check(rc == 0, f"exit {rc}\n{sy.stderr()}")
    n = len(re.findall(r"cannot connect to tcp://", sy.stderr()))
    check(n == 1, f"the unreachable endpoint was logged {n} times, want once\n{sy.stderr()}")
    print("ok: an endpoint nothing listens on is named once")


def main():
    with tempfile.TemporaryDirectory(prefix="sy-zmq-check-") as tmp:
        test_check_every_endpoint(tmp)
        test_busy_port_at_start(tmp)
        test_check_connect(tmp)
        test_unreachable_named(tmp)


if __name__ == "__main__":
    main()
