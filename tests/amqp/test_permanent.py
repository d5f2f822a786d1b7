#!/usr/bin/python3
"""Permanent connection errors fail fast, transient ones retry.

At start-up amqp-publish and amqp-consume make one bounded connection attempt and classify
what went wrong. Each of these makes `switchyard run` exit with status 3 (a restart cannot
help; the systemd unit does not restart it) within 10 s, naming the cause and the fix:
  * a wrong password (403 ACCESS_REFUSED at login),
  * a vhost that does not exist (530 NOT_ALLOWED),
  * an inequivalent declaration (406 PRECONDITION_FAILED: a queue with other arguments, an
    exchange of another type),
  * amqps:// without a client certificate against a node that requires one (the cause is
    named: never just "a SSL error occurred"), and a client key that does not fit the
    certificate.
A broker that is simply down at start is transient: the process keeps running and retries.
After a successful start, the same permanent errors are retried with capped backoff and a
loud error line per attempt (here: the password changed and the connection was closed)."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from amqp_fixture import Broker, Switchyard, log, unique, wait_for
from test_tls import make_certs

EXIT_PERMANENT = 3


def run_config(cfg, expect_text, name):
    """Runs `cfg`, expects exit status 3 within 10 s and every regex of `expect_text` in stderr."""
    t0 = time.monotonic()
    sy = Switchyard(cfg, stdin=subprocess.PIPE)
    try:
        rc = sy.proc.wait(10)
    except subprocess.TimeoutExpired:
        sy.proc.kill()
        sy.wait(10)
        raise AssertionError(f"{name}: still running after 10 s\n{sy.stderr()[-3000:]}")
    sy.wait(5)
    elapsed = time.monotonic() - t0
    err = sy.stderr()
    log(f"{name}: exit {rc} after {elapsed:.2f}s: {[l for l in err.splitlines() if 'cannot connect' in l][:1]}")
    assert rc == EXIT_PERMANENT, f"{name}: exit status {rc}, expected {EXIT_PERMANENT}\n{err[-3000:]}"
    for pat in expect_text:
        assert re.search(pat, err), f"{name}: {pat!r} not in the output\n{err[-3000:]}"
    assert "retrying in" not in err, f"{name}: retried instead of failing\n{err[-3000:]}"
    return err


def pipeline_pub(url, extra=""):
    return f"""version: 1
pipelines:
  p:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{url}", exchange: amq.topic{extra}}}
"""


def pipeline_con(url, queue, extra=""):
    return f"""version: 1
pipelines:
  p:
    input: {{type: amqp-consume, url: "{url}", queue: {queue}{extra}}}
    outputs: [{{type: stdout}}]
"""


def main():
    broker = Broker()
    port = broker.port
    good = f"amqp://guest:guest@127.0.0.1:{port}/"
    bad_pw = f"amqp://guest:not-the-password@127.0.0.1:{port}/"
    no_vhost = f"amqp://guest:guest@127.0.0.1:{port}/{unique('no-such-vhost')}"
    queue = unique("sy-perm-q")
    xname = unique("sy-perm-x")
    conn = broker.connection()
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, arguments={"x-max-length": 10})
    ch.exchange_declare(xname, "fanout", durable=True)

    # 1. wrong password
    for cfg, who in ((pipeline_pub(bad_pw), "publish"), (pipeline_con(bad_pw, queue), "consume")):
        err = run_config(cfg, [r"403", r"ACCESS_REFUSED", r"password"], f"wrong password ({who})")
        assert "not-the-password" not in err, "the password appears in the log"
    # 2. missing vhost
    for cfg, who in ((pipeline_pub(no_vhost), "publish"), (pipeline_con(no_vhost, queue), "consume")):
        run_config(cfg, [r"530", r"NOT_ALLOWED", r"vhost '[^']*no-such-vhost", r"add_vhost"], f"missing vhost ({who})")
    # 3. inequivalent declarations
    run_config(pipeline_con(good, queue, ", arguments: {x-max-length: 20}"),
               [r"406", r"PRECONDITION_FAILED", r"inequivalent arg 'x-max-length'", f"queue '{queue}' already exists"],
               "inequivalent queue arguments (consume)")
    run_config(f"""version: 1
pipelines:
  p:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{good}", exchange: {xname}, exchange_type: topic}}
""", [r"406", r"inequivalent arg 'type'", f"exchange '{xname}' already exists"],
        "inequivalent exchange type (publish)")
    ch.queue_delete(queue)
    ch.exchange_delete(xname)
    conn.close()  # step 5 closes every connection of the node

    # 4. a broker that is down at start: transient, keeps retrying
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    down = Switchyard(pipeline_pub(f"amqp://guest:guest@127.0.0.1:{dead_port}/"), stdin=subprocess.PIPE)
    wait_for(lambda: len(re.findall(r"cannot connect to .*retrying in", down.stderr())) >= 2, 10,
             "two failed attempts against a closed port")
    assert down.proc.poll() is None, f"exited although the broker is only down\n{down.stderr()[-2000:]}"
    assert "this will not fix itself" not in down.stderr()
    down.proc.stdin.close()
    assert down.stop(20) == 0, down.stderr()[-2000:]

    # 5. after a successful start: the password changes and the connection is closed ->
    #    retried with capped backoff and a loud error per attempt, never a hot loop
    user = unique("sy-perm-user")
    broker.ctl("add_user", user, "first-password")
    broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    try:
        url = f"amqp://{user}:first-password@127.0.0.1:{port}/"
        later = Switchyard(pipeline_pub(url, ", reconnect_max_delay: 1"), stdin=subprocess.PIPE)
        wait_for(lambda: "connected to" in later.stderr(), 10, "the first connection")
        broker.ctl("change_password", user, "second-password")
        t0 = time.monotonic()
        broker.ctl("close_all_connections", "test: password changed")
        loud = re.compile(r"error .*cannot connect to .*403.*this will not fix itself; retrying in (\d+) ms")
        wait_for(lambda: len(loud.findall(later.stderr())) >= 3, 15, "three loud errors")
        elapsed = time.monotonic() - t0
        assert later.proc.poll() is None, "exited after a successful start"
        delays = [int(d) for d in loud.findall(later.stderr())]
        log(f"after start: {len(delays)} loud errors in {elapsed:.1f}s, delays {delays}")
        assert all(d <= 1000 for d in delays), delays  # capped by reconnect_max_delay
        assert elapsed >= sum(delays[:2]) / 1000.0 * 0.9, (elapsed, delays)  # paced, not a hot loop
        later.proc.stdin.close()
        assert later.stop(20) == 0, later.stderr()[-2000:]
        assert "first-password" not in later.stderr() and "second-password" not in later.stderr()
    finally:
        broker.ctl("delete_user", user)

    # 6. amqps:// without a client certificate, against a node that requires one
    tmp = tempfile.mkdtemp(prefix="sy-amqp-perm-tls-")
    os.chmod(tmp, 0o755)  # the node runs as the rabbitmq user
    certs = os.path.join(tmp, "certs")
    os.mkdir(certs)
    make_certs(certs, unique("sy-perm-client"))
    tls = Broker(state_dir=os.path.join(tmp, "rabbitmq"), tls_dir=certs)
    try:
        assert tls.amqps_port, "the TLS node has no amqps port"
        url = f"amqps://guest:guest@localhost:{tls.amqps_port}/"
        block = f", tls: {{ca_file: {certs}/ca.pem}}, sasl: plain"
        for cfg, who in ((pipeline_pub(url, block), "publish"), (pipeline_con(url, unique("q"), block), "consume")):
            err = run_config(cfg, [r"requires a TLS client certificate", r"tls\.cert_file"],
                             f"amqps without client certificate ({who})")
            assert "a SSL error occurred" not in err, err[-2000:]
        # A client certificate whose key is not its own: refused before any connection.
        block = f", tls: {{ca_file: {certs}/ca.pem, cert_file: {certs}/client.pem, key_file: {certs}/server.key}}"
        run_config(pipeline_pub(url, block), [r"cannot use the client certificate", r"key values mismatch",
                                              r"unencrypted PEM private key"], "client key of another certificate")
    finally:
        tls.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    log("ok")


if __name__ == "__main__":
    main()
