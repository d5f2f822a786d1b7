#!/usr/bin/python3
"""http-in's configuration checks and `switchyard check --connect`:

  1. the example pipeline examples/pipelines/https-ingest.yaml passes `switchyard check`;
  2. a configuration with one of each problem: every problem reported in one run, each at
     its key (plain HTTP on a non-loopback address, a sender without topics, client_cn
     without client_ca_file, an inline token, token_file and token_env together, an unknown
     tls key, a bad listen address in a second pipeline, max_batch above max_in_flight);
  3. plain HTTP on loopback: accepted with a warning;
  4. --connect: a good TLS configuration (made here with openssl) gives one ok line per
     check; a port another socket holds, a key that does not match the certificate and a
     missing token file each give a FAILED line naming the file or address;
  5. `switchyard run` with a missing token variable, or a key that does not match the
     certificate, exits 3 naming the variable or the files;
  6. two pipelines listening on one port: exit 1, the second names the address in use."""
import os
import re
import socket

from httptest import Router, cleanup, free_port, log, make_pki, tmpdir
from sytest import run_check

SRC = os.environ["SWITCHYARD_SOURCE_ROOT"]


def check(tmp, name, text, *args):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return run_check(*args, path)


def has(out, pattern):
    assert re.search(pattern, out, re.M), f"{pattern!r} not in:\n{out}"


def main():
    tmp = tmpdir("sy-http-check-")
    try:
        # 1. the example
        rc, out = run_check(os.path.join(SRC, "examples", "pipelines", "https-ingest.yaml"))
        assert rc == 0, f"example: exit {rc}\n{out}"
        log("example pipeline: check ok")

        # 2. every problem at its key, in one run
        rc, out = check(tmp, "bad.yaml", """version: 1
pipelines:
  a:
    input:
      type: http-in
      listen: 0.0.0.0:8443
      max_batch: 50
      max_in_flight: 10
      senders:
        - {name: one, token_env: T1}
        - {name: two, client_cn: two.example.org, topics: [x]}
        - {name: three, token: "s3cret-s3cret-s3cret", topics: [x]}
        - {name: four, token_file: /x, token_env: T4, topics: [x]}
    outputs: [{type: stdout}]
  b:
    input:
      type: http-in
      listen: "127.0.0.1"
      tls: {cert_file: /c, key_file: /k, ca_file: /ca}
      senders: [{name: one, token_env: T1, topics: ["*"]}]
    outputs: [{type: stdout}]
""")
        assert rc != 0, out
        for pat in (r"bad\.yaml:6:\d+: .*plain HTTP on '0\.0\.0\.0:8443'.*add tls",
                    r"bad\.yaml:\d+:\d+: .*senders\[0\].* needs topics",
                    r"bad\.yaml:\d+:\d+: .*client_cn needs client certificates: set tls\.client_ca_file",
                    r"bad\.yaml:\d+:\d+: .*use token_file or token_env",
                    r"bad\.yaml:\d+:\d+: .*token_file and token_env .* keep one",
                    r"bad\.yaml:\d+:\d+: .*max_batch \(50\) is above max_in_flight \(10\)",
                    r"bad\.yaml:18:\d+: .*'127\.0\.0\.1' is not ADDR:PORT",
                    r"bad\.yaml:\d+:\d+: .*unknown key 'tls\.ca_file'"):
            has(out, pat)
        assert "s3cret" not in out, "the inline token was printed"
        log("bad configuration: every problem reported at its key")

        # 3. plain HTTP on loopback: a warning
        port = free_port()
        loop = f"""version: 1
pipelines:
  p:
    input:
      type: http-in
      listen: 127.0.0.1:{port}
      senders: [{{name: one, token_env: SY_TEST_MISSING_TOKEN, topics: ["*"]}}]
    outputs: [{{type: stdout}}]
"""
        rc, out = check(tmp, "loop.yaml", loop)
        assert rc == 0, out
        has(out, r"warning.*no tls: plain HTTP, acceptable on loopback only")

        # 4. --connect
        pki = os.path.join(tmp, "pki")
        os.mkdir(pki)
        make_pki(pki)
        with open(os.path.join(tmp, "tok"), "w") as f:
            f.write("a-token-of-enough-length-1234\n")
        good = f"""version: 1
pipelines:
  p:
    input:
      type: http-in
      listen: 127.0.0.1:{port}
      tls: {{cert_file: {pki}/server.crt, key_file: {pki}/KEY, client_ca_file: {pki}/ca.crt}}
      senders:
        - {{name: one, token_file: {tmp}/TOKEN, topics: ["*"]}}
        - {{name: two, client_cn: ci-runner, topics: ["*"]}}
    outputs: [{{type: stdout}}]
"""
        rc, out = check(tmp, "good.yaml", good.replace("KEY", "server.key").replace("TOKEN", "tok"), "--connect")
        assert rc == 0, out
        has(out, rf"listen 127\.0\.0\.1:{port}: ok$")
        has(out, r"tls cert_file .*server\.crt, key_file .*server\.key, client_ca_file .*ca\.crt: ok$")
        has(out, r"sender one: token_file .*tok: ok$")
        with socket.socket() as held:
            held.bind(("127.0.0.1", port))
            held.listen()
            rc, out = check(tmp, "bad-connect.yaml",
                            good.replace("KEY", "client.key").replace("TOKEN", "missing"), "--connect")
        assert rc != 0, out
        has(out, rf"listen 127\.0\.0\.1:{port}: FAILED: cannot bind 127\.0\.0\.1:{port}: Address already in use")
        has(out, r"FAILED: the key '.*client\.key' does not match the certificate '.*server\.crt'")
        has(out, r"sender one: token_file .*missing: FAILED: .*cannot read token_file '.*missing'")
        log("check --connect: ok lines, and FAILED for the held port, the wrong key, the missing token")

        # 5. run without the token: exit 3, naming the variable
        r = Router(loop, tmp)
        rc = r.proc.wait(30)
        err = r.stderr()
        r.stop()
        assert rc == 3, f"exit {rc}\n{err}"
        has(err, r"environment variable SY_TEST_MISSING_TOKEN is not set")
        log("run without the token: exit 3")
        r = Router(good.replace("KEY", "client.key").replace("TOKEN", "tok"), tmp)
        rc = r.proc.wait(30)
        err = r.stderr()
        r.stop()
        assert rc == 3, f"exit {rc}\n{err}"
        has(err, r"tls\.key_file.*the key '.*client\.key' does not match the certificate|"
                 r"the key '.*client\.key' does not match the certificate .*")
        log("run with a key that does not match: exit 3")

        # 6. two pipelines listening on one port: the second cannot start (no SO_REUSEPORT)
        two = loop + loop.replace("  p:", "  q:").replace("version: 1\npipelines:\n", "")
        r = Router(two, tmp, env={"SY_TEST_MISSING_TOKEN": "a-token-of-enough-length-1234"})
        rc = r.proc.wait(30)
        err = r.stderr()
        r.stop()
        assert rc == 1, f"exit {rc}\n{err}"
        has(err, rf"cannot bind 127\.0\.0\.1:{port}: Address already in use; free the port or choose another")
        log("two listeners on one port: exit 1")
    finally:
        cleanup(tmp)
    print("ok")


if __name__ == "__main__":
    main()
