#!/usr/bin/python3
"""/health/ready follows the broker: a running bridge with both AMQP plugins (amqp-consume
-> stdout, stdin -> amqp-publish), heartbeat 2 s, the HTTP endpoint on.

  1. ready: 200 once both plugins are connected, and a message crosses;
  2. the broker frozen (SIGSTOP: its TCP connections stay open and silent, as with a dead
     host): 503 within two heartbeat intervals of the freeze, for the consumer waiting in
     its read and the idle publisher alike (the body names both), found by the heartbeat
     alone; then SIGCONT, and 200 again;
  3. the broker stopped (stop_app closes the connections): 503 within two heartbeat
     intervals, the body naming both plugins; start_app: 200 again within 30 s, and a
     message crosses again;
  4. a memory alarm (set_vm_memory_high_watermark): once the bridge publishes, the broker
     blocks that connection and the 503 names amqp-publish as blocked (the consumer stays
     ready); the alarm cleared, 200 again and the message held meanwhile arrives.

The deadlines are the contract (docs/operations.md, Health); 0.5 s is allowed on top of
them for this test's own polling (every 0.1 s) and an HTTP round trip on a busy machine."""
import json
import os
import signal
import subprocess
import sys
import time

import pika

from amqp_fixture import ROOT, Broker, Switchyard, log, unique, wait_for
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import free_port, http_get  # noqa: E402

HEARTBEAT = 2
SLACK = 0.5


def ready(port):
    """(status, body) of GET /health/ready; status None when nothing answered."""
    return http_get(f"http://127.0.0.1:{port}/health/ready", timeout=5)[::2]


def wait_status(port, status, timeout, what, body_ok=lambda body: True):
    """Polls until /health/ready answers @status with a body @body_ok accepts; returns
    (seconds it took, body)."""
    t0 = time.monotonic()
    last = [None]

    def ok():
        last[0] = ready(port)
        return last[0][0] == status and body_ok(last[0][1])
    try:
        wait_for(ok, timeout, what, interval=0.1)
    except AssertionError:
        raise AssertionError(f"{what}: still {last[0]} after {timeout} s")
    return time.monotonic() - t0, last[0][1]


def names_both(body):
    """The 503 body is JSON naming both AMQP plugins as not connected."""
    try:
        problems = json.loads(body).get("problems", [])
    except ValueError:
        return False
    named = " ".join(json.dumps(p) for p in problems)
    return "amqp-consume" in named and "amqp-publish" in named


def blocked_publisher(body):
    """The 503 body names amqp-publish as blocked, and only that."""
    try:
        problems = json.loads(body).get("problems", [])
    except ValueError:
        return False
    return len(problems) == 1 and "amqp-publish" in problems[0].get("plugin", "") \
        and "blocked" in problems[0].get("reason", "")


def beam_pid():
    state = os.environ.get("SWITCHYARD_RABBITMQ_DIR") or os.path.join(ROOT, "build", "rabbitmq-local")
    with open(os.path.join(state, "rabbitmq.pid")) as f:
        return int(f.read().strip())


def crosses(conn, bridge, qin, qout, topic_in, n):
    """A message published to the consumer's queue reaches stdout, and one written to stdin
    reaches qout."""
    ch = conn.channel()
    mid = f"in-{n}"
    ch.basic_publish("", qin, json.dumps({"n": n}).encode(),
                     pika.BasicProperties(message_id=mid, content_type="application/json",
                                          headers={"fedora_messaging_schema": "base.message"}))
    wait_for(lambda: any(mid.encode() in line for line in bridge.lines()), 30, f"{mid} on stdout")
    line = json.dumps({"topic": topic_in, "body": {"n": n}, "id": f"out-{n}"}) + "\n"
    bridge.proc.stdin.write(line.encode())
    bridge.proc.stdin.flush()
    got = []

    def arrived():
        m, _, body = ch.basic_get(qout, auto_ack=True)
        if m is not None:
            got.append(json.loads(body))
        return any(b.get("n") == n for b in got)
    wait_for(arrived, 30, f"out-{n} in {qout}", interval=0.1)
    ch.close()


def main():
    broker = Broker()
    conn = broker.connection()
    ch = conn.channel()
    qin, qout = unique("sy-health-in"), unique("sy-health-out")
    topic_out = unique("org.example.health")
    ch.queue_declare(qin, durable=True)
    ch.queue_declare(qout, durable=True)
    ch.queue_bind(qout, "amq.topic", topic_out)
    ch.close()
    port = free_port()
    bridge = Switchyard(f"""version: 1
settings:
  http: {{listen: "127.0.0.1:{port}"}}
pipelines:
  from-amqp:
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {qin}
      heartbeat: {HEARTBEAT}
      reconnect_max_delay: 1
    outputs: [{{type: stdout}}]
  to-amqp:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "{broker.url}", exchange: amq.topic, heartbeat: {HEARTBEAT},
          reconnect_max_delay: 1}}
""", stdin=subprocess.PIPE)
    frozen = None
    alarm = False
    try:
        took, _ = wait_status(port, 200, 30, "ready at start")
        log(f"ok: ready (200) {took:.1f} s after start")
        crosses(conn, bridge, qin, qout, topic_out, 1)
        log("ok: a message crossed both ways")

        # A frozen broker: nothing closes the connections; only the heartbeat can tell.
        conn.close()  # our own peer would time out too
        frozen = beam_pid()
        os.kill(frozen, signal.SIGSTOP)
        # Each plugin notices on its own (its own connection, its own heartbeat): wait until
        # the answer names both, within the deadline.
        took, body = wait_status(port, 503, 2 * HEARTBEAT + 5, "503 naming both plugins, broker frozen", names_both)
        log(f"frozen broker: 503 naming both plugins after {took:.2f} s: {body}")
        assert took <= 2 * HEARTBEAT + SLACK, \
            f"503 came {took:.2f} s after the freeze, more than two heartbeats ({2 * HEARTBEAT} s)"
        os.kill(frozen, signal.SIGCONT)
        frozen = None
        took, _ = wait_status(port, 200, 30, "ready again after the freeze")
        log(f"ok: 503 within two heartbeats of a freeze, 200 again {took:.1f} s after SIGCONT")

        # A stopped broker: it closes the connections.
        broker.ctl("stop_app")
        took, body = wait_status(port, 503, 2 * HEARTBEAT + 5, "503 naming both plugins, broker stopped", names_both)
        log(f"stopped broker: 503 naming both plugins {took:.2f} s after stop_app returned: {body}")
        assert took <= 2 * HEARTBEAT + SLACK, \
            f"503 came {took:.2f} s after stop_app, more than two heartbeats ({2 * HEARTBEAT} s)"
        broker.ctl("start_app")
        broker.ctl("await_startup")
        took, _ = wait_status(port, 200, 30, "ready again after start_app")
        log(f"ok: 200 again {took:.1f} s after the broker was back")
        conn = broker.connection()
        crosses(conn, bridge, qin, qout, topic_out, 2)
        log("ok: messages cross again")

        # A memory alarm: the broker blocks the connections that publish (only amqp-publish's).
        broker.ctl("set_vm_memory_high_watermark", "0.0000001")
        alarm = True
        bridge.proc.stdin.write((json.dumps({"topic": topic_out, "body": {"n": 3}, "id": "out-3"}) + "\n").encode())
        bridge.proc.stdin.flush()
        _, body = wait_status(port, 503, 60, "503 naming amqp-publish as blocked", blocked_publisher)
        log(f"ok: memory alarm: 503 {body}")
        broker.ctl("set_vm_memory_high_watermark", "0.4")
        alarm = False
        took, _ = wait_status(port, 200, 60, "ready again after the alarm")
        ch = conn.channel()
        wait_for(lambda: (lambda m: m[0] is not None and json.loads(m[2]).get("n") == 3)(
            ch.basic_get(qout, auto_ack=True)), 30, "out-3 in the queue after the alarm", interval=0.1)
        log(f"ok: 200 again {took:.1f} s after the alarm cleared; the message held meanwhile arrived")
        conn.close()
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        if alarm:
            broker.ctl("set_vm_memory_high_watermark", "0.4")
        bridge.proc.stdin.close()
        rc = bridge.stop()
    assert rc == 0, f"switchyard exit {rc}\n{bridge.stderr()[-3000:]}"
    c = bridge.plugin_stats("amqp-consume")
    p = bridge.plugin_stats("amqp-publish")
    assert c[("reconnects", "")] >= 2 and p[("reconnects", "")] >= 2, f"reconnects: consume {c}, publish {p}"
    log(f"ok: reconnects consume={c[('reconnects', '')]} publish={p[('reconnects', '')]}")


if __name__ == "__main__":
    main()
