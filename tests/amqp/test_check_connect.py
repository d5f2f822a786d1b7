#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard check` and `switchyard check --connect` with amqp-consume and amqp-publish,
the latter against the real private RabbitMQ (scripts/rabbitmq-local), python3-pika as the
independent peer:

0. `check` (no broker involved) reports every problem of the keys in one run, each once at
   its file:line:column: unknown tls keys, a certificate without its key, unreadable or
   non-PEM TLS files, bindings without routing keys, an unknown exchange type, a bad
   allowed_topics pattern; a client key that is not the certificate's is a warning.
1. A good configuration: each plugin reports its URL (without the password) and each queue
   and exchange it would use as ok, exit 0; an exchange that start-up would declare is
   reported as absent but fine, and the probe declared nothing (it is still absent).
2. A wrong password: the URL's line FAILS naming the URL and the broker's refusal, never
   the password; exit 1.
3. Entities that are missing where start-up would not declare them (a passive queue, a
   binding's exchange, an exchange with declare_exchange: false): one FAILED line each,
   naming the entity and the URL."""
import os
import re
import subprocess
import sys
import tempfile

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amqp_fixture import BIN, Broker, log, unique  # noqa: E402


def check_connect(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([BIN, "check", "--connect", "--timeout", "10", path], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def expect_once(out, patterns):
    for pat in patterns:
        n = len(re.findall(pat, out, re.M))
        assert n == 1, f"{pat!r} found {n} times, want once\n{out}"


def exchange_exists(broker, name):
    conn = broker.connection()
    try:
        conn.channel().exchange_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    finally:
        if conn.is_open:
            conn.close()


def check_problems(tmp):
    """0: the configuration problems, all in one run."""
    certs = os.path.join(tmp, "certs")
    os.mkdir(certs)
    for who in ("a", "b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key",
                        "-out", f"{who}.crt", "-subj", f"/CN={who}", "-days", "2"], cwd=certs, check=True,
                       capture_output=True)
    with open(os.path.join(certs, "junk.pem"), "w") as f:
        f.write("not a certificate\n")
    path = os.path.join(tmp, "problems.yaml")
    with open(path, "w") as f:
        f.write(f"""version: 1
pipelines:
  p:
    input:
      type: amqp-consume
      url: "amqps://u:the-secret@broker.example:5671/%2F"
      queue: q
      tls: {{ca_file: {tmp}/no-such-ca.pem, cert_file: {certs}/a.crt, colour: red}}
      bindings:
        - {{exchange: amq.topic}}
    outputs:
      - type: amqp-publish
        url: "amqps://u:the-secret@broker.example:5671/%2F"
        tls: {{ca_file: {certs}/junk.pem, cert_file: {certs}/a.crt, key_file: {certs}/b.key}}
        exchange_type: topc
        allowed_topics: ["(unclosed"]
""")
    p = subprocess.run([BIN, "check", path], capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 2, f"exit {p.returncode}\n{out}"
    con = r"pipelines\.p\.input"
    pub = r"pipelines\.p\.outputs\[0\]"
    expect_once(out, [
        rf"problems\.yaml:8:22: {con}\.tls\.ca_file: cannot read the CA file '[^']*no-such-ca\.pem': No such file",
        rf"problems\.yaml:8:\d+: {con}\.tls\.cert_file: tls\.cert_file '[^']*a\.crt' has no tls\.key_file",
        rf"problems\.yaml:8:\d+: {con}\.tls\.colour: unknown key tls\.colour; allowed: ca_file, cert_file, key_file",
        rf"problems\.yaml:10:11: {con}\.bindings\[0\]: binding for exchange 'amq\.topic' has no routing_keys",
        rf"problems\.yaml:14:24: {pub}\.tls\.ca_file: '[^']*junk\.pem' holds no PEM certificate",
        rf"problems\.yaml:14:\d+: {pub}\.tls\.key_file: (warning: )?'[^']*b\.key' is not the private key of the "
        r"certificate '[^']*a\.crt'",
        rf"problems\.yaml:15:24: {pub}\.exchange_type: unknown exchange_type 'topc'",
        rf"problems\.yaml:16:26: {pub}\.allowed_topics\[0\]: '\(unclosed' is not a valid regular expression",
        r"^7 error\(s\), 1 warning\(s\)",
    ])
    assert "the-secret" not in out, f"the password is printed\n{out}"
    log("check: every problem of both plugins in one run")


def main():
    with tempfile.TemporaryDirectory(prefix="sy-amqp-check-") as tmp:
        check_problems(tmp)
    broker = Broker()
    port = broker.port
    shown = re.escape(f"amqp://guest@127.0.0.1:{port}/")
    queue = unique("sy-probe-q")
    later = unique("sy-probe-later")
    conn = broker.connection()
    conn.channel().queue_declare(queue, durable=True)
    conn.close()
    con = r"pipelines\.p\.input \(amqp-consume\)"
    pub = r"pipelines\.p\.outputs\[0\] \(amqp-publish\)"
    with tempfile.TemporaryDirectory(prefix="sy-amqp-probe-") as tmp:
        # 1. good
        rc, out = check_connect(tmp, "good.yaml", f"""version: 1
pipelines:
  p:
    input:
      type: amqp-consume
      url: "amqp://guest:guest@127.0.0.1:{port}/"
      queue: {queue}
      bindings: [{{exchange: amq.topic, routing_keys: ["org.example.#"]}}]
    outputs:
      - {{type: amqp-publish, url: "amqp://guest:guest@127.0.0.1:{port}/", exchange: {later}}}
""")
        assert rc == 0, f"exit {rc}\n{out}"
        expect_once(out, [
            rf"^{con}: {shown}: ok$",
            rf"^{con}: queue '{queue}' on {shown}: ok$",
            rf"^{con}: exchange 'amq\.topic' on {shown}: ok$",
            rf"^{pub}: {shown}: ok$",
            rf"^{pub}: exchange '{later}' on {shown} \(absent: start-up declares it\): ok$",
            r"good\.yaml: OK, connected \(5 checks passed\)",
        ])
        assert not exchange_exists(broker, later), "the probe declared the exchange"
        log("good configuration: 5 checks ok, nothing declared")

        # 2. wrong password
        rc, out = check_connect(tmp, "password.yaml", f"""version: 1
pipelines:
  p:
    input: {{type: amqp-consume, url: "amqp://guest:not-the-password@127.0.0.1:{port}/", queue: {queue}}}
    outputs:
      - {{type: amqp-publish, url: "amqp://guest:not-the-password@127.0.0.1:{port}/"}}
""")
        assert rc == 1, f"exit {rc}\n{out}"
        expect_once(out, [
            rf"^{con}: {shown}: FAILED: .*ACCESS_REFUSED.*password",
            rf"^{pub}: {shown}: FAILED: .*ACCESS_REFUSED.*password",
            r"password\.yaml: 2 of 2 checks FAILED",
        ])
        assert "not-the-password" not in out, f"the password is printed\n{out}"
        log("wrong password: FAILED naming the URL, not the password")

        # 3. missing entities start-up would not declare
        missing_q = unique("sy-probe-missing-q")
        missing_x = unique("sy-probe-missing-x")
        rc, out = check_connect(tmp, "missing.yaml", f"""version: 1
pipelines:
  p:
    input:
      type: amqp-consume
      url: "amqp://guest:guest@127.0.0.1:{port}/"
      queue: {missing_q}
      passive: true
      bindings: [{{exchange: {missing_x}, routing_keys: ["#"]}}, {{exchange: amq.topic, routing_keys: ["#"]}}]
    outputs:
      - {{type: amqp-publish, url: "amqp://guest:guest@127.0.0.1:{port}/", exchange: {missing_x},
         declare_exchange: false}}
""")
        assert rc == 1, f"exit {rc}\n{out}"
        expect_once(out, [
            rf"^{con}: {shown}: ok$",
            rf"^{con}: queue '{missing_q}' on {shown}: FAILED: no such queue .*404.*; fix: declare it on the broker",
            rf"^{con}: exchange '{missing_x}' on {shown}: FAILED: no such exchange .*404.*; fix: declare it",
            rf"^{con}: exchange 'amq\.topic' on {shown}: ok$",
            rf"^{pub}: exchange '{missing_x}' on {shown}: FAILED: no such exchange .*declare_exchange: true",
            r"missing\.yaml: 3 of 6 checks FAILED",
        ])
        log("missing entities: each FAILED, named with the URL")
    print("ok")


if __name__ == "__main__":
    main()
