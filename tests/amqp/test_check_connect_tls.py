#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard check --connect` over amqps:// against a private TLS node (scripts/rabbitmq-local
with SWITCHYARD_RABBITMQ_TLS_DIR), certificates made with openssl at test time:

1. the right CA and a client certificate (SASL EXTERNAL): the URL's line is ok, so the TLS
   handshake, the hostname check and the login passed; exit 0;
2. a CA that did not sign the broker's certificate: the URL's line FAILS with a
   certificate-verification reason; exit 1;
3. no client certificate where the node requires one: FAILED, saying so (not "a SSL error
   occurred")."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amqp_fixture import BIN, log  # noqa: E402
from test_tls import tls_block, tls_node  # noqa: E402


def check_connect(tmp, name, url, tls):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(f"""version: 1
pipelines:
  p:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{url}", exchange: amq.topic, tls: {tls}}}
""")
    p = subprocess.run([BIN, "check", "--connect", "--timeout", "10", path], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def main():
    with tls_node("sy-probe-tls") as (tmp, certs, broker):
        url = f"amqps://localhost:{broker.amqps_port}/"
        line = re.escape(f"pipelines.p.outputs[0] (amqp-publish): {url}")

        rc, out = check_connect(tmp, "good.yaml", url, tls_block(certs))
        assert rc == 0, f"exit {rc}\n{out}"
        assert len(re.findall(rf"^{line}: ok$", out, re.M)) == 1, out
        assert len(re.findall(rf"exchange 'amq\.topic' on {re.escape(url)}: ok$", out, re.M)) == 1, out
        log("right CA and client certificate: handshake and login ok")

        rc, out = check_connect(tmp, "wrong-ca.yaml", url, tls_block(certs, "wrong-ca.pem"))
        assert rc == 1, f"exit {rc}\n{out}"
        assert len(re.findall(rf"^{line}: FAILED: .*(certificate|verif)", out, re.M | re.I)) == 1, out
        log("wrong CA: FAILED naming the URL and the verification")

        rc, out = check_connect(tmp, "no-cert.yaml", f"amqps://guest:guest@localhost:{broker.amqps_port}/",
                                f"{{ca_file: {certs}/ca.pem}}")
        shown = re.escape(f"pipelines.p.outputs[0] (amqp-publish): amqps://guest@localhost:{broker.amqps_port}/")
        assert rc == 1, f"exit {rc}\n{out}"
        assert len(re.findall(rf"^{shown}: FAILED: .*requires a TLS client certificate", out, re.M)) == 1, out
        assert "a SSL error occurred" not in out, out
        log("no client certificate: FAILED saying the node requires one")
    print("ok")


if __name__ == "__main__":
    main()
