#!/usr/bin/python3
"""TLS with client certificates (R21 in small). A throw-away CA, a server certificate for
localhost and a client certificate are made with openssl; a private TLS node is started
(scripts/rabbitmq-local with SWITCHYARD_RABBITMQ_TLS_DIR). The client's user has no
password, so only SASL EXTERNAL can log in. Checks:
  * amqp-publish over amqps:// with EXTERNAL delivers every message (pika checks);
  * amqp-consume over amqps:// with EXTERNAL receives every message;
  * with the wrong CA, the connection fails with a clear error and is retried at a bounded
    rate (no hot loop)."""
import calendar
import json
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time

import pika

from amqp_fixture import Broker, Switchyard, drain, log, unique, wait_for

N = 300


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d, client_cn):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=switchyard-test-ca", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "wrong-ca.key", "-out",
            "wrong-ca.pem", "-days", "2", "-subj", "/CN=switchyard-test-ca", cwd=d)
    for name, cn, ext in (("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"),
                          ("client", client_cn, "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + cn, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)
    for f in os.listdir(d):
        if f.endswith(".key"):
            os.chmod(os.path.join(d, f), 0o600)


@contextlib.contextmanager
def tls_node(prefix):
    """A private TLS node with its own test PKI (make_certs) and a client user that can only
    log in with EXTERNAL (its certificate): yields (tmp, certs, broker); stops and removes
    it all on exit."""
    tmp = tempfile.mkdtemp(prefix=prefix + "-")
    os.chmod(tmp, 0o755)  # the node runs as the rabbitmq user
    certs = os.path.join(tmp, "certs")
    os.mkdir(certs)
    client_cn = unique(prefix + "-client")
    make_certs(certs, client_cn)
    broker = Broker(state_dir=os.path.join(tmp, "rabbitmq"), tls_dir=certs)
    try:
        assert broker.amqps_port, "the TLS node has no amqps port"
        broker.ctl("add_user", client_cn, "unused")
        broker.ctl("clear_password", client_cn)  # EXTERNAL is the only way in
        broker.ctl("set_permissions", "-p", "/", client_cn, ".*", ".*", ".*")
        yield tmp, certs, broker
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    with tls_node("sy-tls") as (_tmp, certs, broker):
        run(broker, certs)


def tls_block(certs, ca="ca.pem"):
    return (f"{{ca_file: {certs}/{ca}, cert_file: {certs}/client.pem, key_file: {certs}/client.key}}")


def run(broker, certs):
    url = f"amqps://localhost:{broker.amqps_port}/"
    conn = broker.connection()
    ch = conn.channel()
    qp, qc = unique("sy-tls-pub"), unique("sy-tls-con")
    tp, tc = unique("org.example.tp"), unique("org.example.tc")
    ch.queue_declare(qp, durable=True)
    ch.queue_bind(qp, "amq.topic", tp)

    # 1. publish over TLS with EXTERNAL
    pub = Switchyard(f"""version: 1
pipelines:
  in2amqps:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{url}", exchange: amq.topic, tls: {tls_block(certs)}}}
""", stdin=subprocess.PIPE)
    lines = [json.dumps({"topic": tp, "body": {"n": i}, "id": f"t-{i}"}) for i in range(N)]
    pub.proc.stdin.write(("\n".join(lines) + "\n").encode())
    pub.proc.stdin.close()
    rc = pub.wait(120)
    assert rc == 0, f"publisher exited {rc}\n{pub.stderr()[-3000:]}"
    assert pub.stat("confirmed") == N, pub.stats()
    # The client certificate's expiry, as openssl reads its notAfter.
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", f"{certs}/client.pem"],
                         capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
    not_after = calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y %Z"))
    assert pub.stat("tls_cert_not_after_timestamp_seconds") == not_after, (not_after, pub.stats())
    got = drain(conn, qp, N, timeout=60, idle=1.0)
    assert {p.message_id for _, p, _ in got} == {f"t-{i}" for i in range(N)}

    # 2. consume over TLS with EXTERNAL
    con = Switchyard(f"""version: 1
pipelines:
  amqps2out:
    input:
      type: amqp-consume
      url: "{url}"
      queue: {qc}
      bindings: [{{exchange: amq.topic, routing_keys: ["{tc}"]}}]
      tls: {tls_block(certs)}
    outputs: [{{type: stdout}}]
""")
    wait_for(lambda: con.stat("connects") >= 1 or "consuming queue" in con.stderr(), 60, "TLS consumer connected")
    for i in range(N):
        ch.basic_publish("amq.topic", tc, json.dumps({"n": i}).encode(), pika.BasicProperties(message_id=f"c-{i}"))
    wait_for(lambda: len(con.lines()) >= N, 60, "TLS consumer received all")
    wait_for(lambda: broker.queue_counts(qc)[:2] == (0, 0), 30, "TLS queue drained")
    assert con.stop() == 0, con.stderr()[-3000:]
    assert {json.loads(x)["id"] for x in con.lines()} == {f"c-{i}" for i in range(N)}

    # 3. wrong CA: clear error, bounded retry rate
    bad = Switchyard(f"""version: 1
pipelines:
  badca:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{url}", exchange: amq.topic, tls: {tls_block(certs, "wrong-ca.pem")}}}
""", stdin=subprocess.PIPE)
    t0 = time.monotonic()
    wait_for(lambda: len(re.findall(r"cannot connect to", bad.stderr())) >= 3, 30, "three failed attempts")
    time.sleep(4)  # observation window for the retry rate, not synchronisation
    elapsed = time.monotonic() - t0
    bad.proc.stdin.close()
    bad.stop()
    errs = re.findall(r"cannot connect to \S+: (.*)", bad.stderr())
    log(f"wrong CA: {len(errs)} attempts in {elapsed:.1f}s; first error: {errs[0]}")
    assert re.search(r"ssl|certificate|verif", errs[0], re.I), errs[0]
    # Backoff 0.5 s, 1 s, 2 s, 4 s ... (+-25 %): far below one attempt per second on average.
    assert len(errs) <= elapsed / 1.0 + 2, (len(errs), elapsed)
    assert "unused" not in bad.stderr()

    ch.queue_delete(qp)
    ch.queue_delete(qc)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
