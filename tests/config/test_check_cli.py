#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard check` as an operator meets it (docs/configuration.md, "Checking a
configuration"): warnings are printed in the errors' form and pass, unless --strict;
--connect runs only after a clean check and prints one line per probe result, ok or
FAILED naming the endpoint, and exits 1 when one failed. The peers are real sockets: a
python3-zmq PUB socket that listens, a port nothing listens on, a port another process
holds. `run` logs each warning once."""
import os
import socket
import subprocess
import sys
import tempfile

import zmq

BIN = os.environ["SWITCHYARD_BIN"]
HERE = os.path.dirname(os.path.abspath(__file__))
CA = os.path.join(HERE, "bad", "files", "corpus-ca.pem")


def check(path, *args):
    p = subprocess.run([BIN, "check", *args, path], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def expect(cond, what, out=""):
    if not cond:
        print(f"FAIL {what}\n{out}")
        sys.exit(1)
    print(f"ok   {what}")


def closed_port():
    """A port nothing listens on: bound and closed again (the kernel does not hand it out
    again at once, and nothing else on this machine listens on random high ports)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    with tempfile.TemporaryDirectory(prefix="sy-check-cli-") as tmp:
        # A verifier without crl_file: one warning, nothing wrong.
        warn_file = write(tmp, "warn.yaml", f"""version: 1
pipelines:
  p:
    input: {{type: stdin}}
    filters:
      - type: verifier
        ca_file: {CA}
        routing_policy: {{org.example.topic: [publisher.example.org]}}
    outputs: [{{type: stdout}}]
""")
        warning = (f"{warn_file}:6:9: pipelines.p.filters[0].crl_file: warning: no crl_file: revocation is "
                   "NOT checked")
        rc, out, err = check(warn_file)
        lines = err.splitlines()
        expect(rc == 0 and out == f"{warn_file}: OK (1 warning)\n" and len(lines) == 2
               and lines[0].startswith(warning) and lines[1] == "0 error(s), 1 warning(s)",
               "a warning is printed as FILE:LINE:COL: PATH: warning: ..., and check passes", out + err)

        rc, out, err = check(warn_file, "--strict")
        lines = err.splitlines()
        expect(rc == 2 and out == "" and len(lines) == 2 and lines[0].startswith(warning)
               and lines[1] == "0 error(s), 1 warning(s) (--strict: warnings fail the check)",
               "--strict: the same warning fails the check (exit 2)", out + err)

        # `run` logs each warning once at start-up, however many filter workers.
        run_file = write(tmp, "run.yaml", f"""version: 1
pipelines:
  p:
    workers: 4
    input: {{type: stdin}}
    filters:
      - type: verifier
        ca_file: {CA}
        allow_unsigned: true
        routing_policy: {{org.example.topic: [publisher.example.org]}}
    outputs: [{{type: stdout}}]
""")
        p = subprocess.run([BIN, "run", run_file], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        crl = f"warning {run_file}:7:9: pipelines.p.filters[0].crl_file: no crl_file"
        unsigned = f"warning {run_file}:9:25: pipelines.p.filters[0].allow_unsigned: allow_unsigned is true"
        expect(p.returncode == 0 and p.stderr.count(crl) == 1 and p.stderr.count(unsigned) == 1
               and p.stderr.count("no crl_file") == 1 and p.stderr.count("allow_unsigned is true") == 1,
               "run: each warning logged once at start-up, with 4 workers", p.stderr)

        # --connect after a broken file: the errors, no probe.
        bad = write(tmp, "bad.yaml", """version: 1
pipelines:
  p:
    input: {type: zmq-sub, endpoints: ["tcp://127.0.0.1:notaport"]}
    outputs: [{type: stdout}]
""")
        rc, out, err = check(bad, "--connect")
        expect(rc == 2 and out == "" and err.splitlines()[-1] == "1 error(s)"
               and f"{bad}:4:40: pipelines.p.input.endpoints[0]: " in err,
               "--connect on a file with errors: the errors, exit 2, nothing probed", out + err)

        # Nothing to probe (stdin, stdout): a clean, empty report.
        plain = write(tmp, "plain.yaml", "version: 1\npipelines:\n  p:\n    input: {type: stdin}\n"
                                         "    outputs: [{type: stdout}]\n")
        rc, out, err = check(plain, "--connect")
        expect(rc == 0 and out == f"{plain}: OK, connected (0 checks passed)\n" and err == "",
               "--connect with plugins that have nothing to probe", out + err)

        # Real peers: a listening publisher (ok), a closed port (FAILED), and a bind address
        # another process holds (FAILED); one line each, in configuration order.
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        held_port = held.getsockname()[1]
        dead_port = closed_port()
        try:
            peers = write(tmp, "peers.yaml", f"""version: 1
pipelines:
  in:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{pub_port}", "tcp://127.0.0.1:{dead_port}"]
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{held_port}"]
""")
            rc, out, err = check(peers, "--connect", "--timeout", "5")
        finally:
            held.close()
            pub.close(0)
            ctx.term()
        lines = out.splitlines()
        sub = "pipelines.in.input (zmq-sub)"
        opub = "pipelines.in.outputs[0] (zmq-pub)"
        expect(rc == 1 and len(lines) == 4
               and lines[0] == f"{sub}: tcp://127.0.0.1:{pub_port}: ok"
               and lines[1].startswith(f"{sub}: tcp://127.0.0.1:{dead_port}: FAILED: ")
               and "Connection refused" in lines[1]
               and lines[2].startswith(f"{opub}: tcp://127.0.0.1:{held_port}: FAILED: ")
               and "Address already in use" in lines[2]
               and lines[3] == f"{peers}: 2 of 3 checks FAILED",
               "--connect: one line per endpoint, ok or FAILED naming it; exit 1", out + err)
    print("all passed")


main()
