#!/usr/bin/python3
"""amqp-publish's lease (`lease:`): RabbitMQ elects the active instance, and hands over on
kill -9. Three `switchyard run` processes (stdin -> amqp-publish with the same
lease.queue, tick_ms 200, each with its HTTP endpoint); the gauge lease_active is read from
each one's /metrics.

  0. a lease on a pipeline whose input can redeliver (amqp-consume), and a lease queue
     that exists with other arguments, are refused at start (exit 3, saying why);
  1. A and B started: within 5 s exactly one is active, and for the next 2 s (ten ticks,
     more than two lease timeouts) every sample shows exactly one of them active;
     the broker agrees: the lease queue is a quorum queue with single active consumer,
     two consumers, one of them active;
  2. kill -9 of the active one: the other is active within 5 s of the kill (measured, and
     printed), never both;
  3. C started against the survivor: it stands by (0 for 3 s) while the survivor stays
     active, and a message written to its stdin meanwhile is not published;
  4. the survivor frozen (SIGSTOP, heartbeat 2 s): C takes over once the broker gives up
     on it; a message written to the frozen one's stdin is never published, and woken up
     (SIGCONT) it stands by and stays so;
  5. SIGTERM of C: the old survivor takes over within 5 s; both exit 0 and their logs say
     when they acquired and lost the lease.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

from amqp_fixture import Broker, Switchyard, log, unique, wait_for
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import free_port, http_get  # noqa: E402

TICK_MS = 200
TIMEOUT_MS = 800
HEARTBEAT = 2
GAUGE_RE = re.compile(r'^switchyard_lease_active\{[^}]*\} (-?\d+)$', re.M)


def lease_active(port):
    """The lease_active gauge of the instance on @port: 0, 1, or None (no answer yet)."""
    status, _, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    if status != 200:
        return None
    m = GAUGE_RE.search(body)
    return int(m.group(1)) if m else None


def instance(broker, queue, topic, port):
    return Switchyard(f"""version: 1
settings:
  http: {{listen: "127.0.0.1:{port}"}}
pipelines:
  ha:
    input: {{type: stdin}}
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        exchange: amq.topic
        reconnect_max_delay: 1
        heartbeat: {HEARTBEAT}
        lease: {{queue: {queue}, tick_ms: {TICK_MS}, timeout_ms: {TIMEOUT_MS}}}
""", stdin=subprocess.PIPE)


def main():
    broker = Broker()
    lease_q = unique("sy-ha-lease")
    out_q = unique("sy-ha-out")
    topic = unique("org.example.ha")
    conn = broker.connection()
    ch = conn.channel()
    ch.queue_declare(out_q, durable=True)
    ch.queue_bind(out_q, "amq.topic", topic)

    # 0. refused for an input that can redeliver (a standby would acknowledge and lose it).
    bad = Switchyard(f"""version: 1
pipelines:
  amqp-in:
    input: {{type: amqp-consume, url: "{broker.url}", queue: {out_q}}}
    outputs:
      - type: amqp-publish
        url: "{broker.url}"
        lease: {{queue: {lease_q}}}
""")
    rc = bad.wait(30)
    assert rc == 3 and "lease is for an input that cannot redeliver" in bad.stderr(), (rc, bad.stderr()[-2000:])

    # ... and a lease queue that exists with other arguments (a classic queue) is refused
    # at start too, naming the fix.
    classic = unique("sy-ha-classic")
    ch.queue_declare(classic, durable=True)
    bad = instance(broker, classic, topic, free_port())
    bad.proc.stdin.close()
    rc = bad.wait(30)
    assert rc == 3 and f"rabbitmqctl delete_queue {classic}" in bad.stderr(), (rc, bad.stderr()[-2000:])
    ch.queue_delete(classic)

    ports = {"A": free_port(), "B": free_port()}
    procs = {name: instance(broker, lease_q, topic, port) for name, port in ports.items()}

    # 1. one active, the other standing by.
    def one_active():
        vals = {n: lease_active(p) for n, p in ports.items()}
        return vals if None not in vals.values() and sorted(vals.values()) == [0, 1] else None
    vals = wait_for(one_active, 5, "exactly one of A and B active", interval=0.1)
    active = next(n for n, v in vals.items() if v == 1)
    standby = next(n for n, v in vals.items() if v == 0)
    log(f"elected: {active} active, {standby} standing by")
    t_end = time.monotonic() + 2
    while time.monotonic() < t_end:
        vals = {n: lease_active(p) for n, p in ports.items()}
        assert vals == {active: 1, standby: 0}, f"the election moved or doubled without a failure: {vals}"
        time.sleep(0.05)  # sampling pace, not synchronisation
    out = broker.ctl("list_queues", "name", "type", "arguments")
    line = next(row for row in out.splitlines() if row.split("\t")[0] == lease_q)
    assert "quorum" in line and "x-single-active-consumer" in line, line
    # The broker's view: two consumers of the lease queue, one of them active.
    out = broker.ctl("list_consumers", "queue_name", "active")
    rows = [row.split("\t") for row in out.splitlines() if row.split("\t")[0] == lease_q]
    assert sorted(r[1] for r in rows) == ["false", "true"], out

    # 2. kill -9 of the active instance: the standby takes over.
    t_kill = time.monotonic()
    procs[active].proc.kill()
    procs[active].proc.wait()

    def took_over():
        v = lease_active(ports[standby])
        return v == 1
    wait_for(took_over, 5, f"{standby} active after the kill of {active}", interval=0.02)
    takeover = time.monotonic() - t_kill
    log(f"takeover after kill -9: {takeover * 1000:.0f} ms")
    print(f"TAKEOVER_MS={takeover * 1000:.0f}", flush=True)
    assert takeover < 5, takeover

    # 3. a third instance stands by while the survivor holds the lease.
    survivor = standby
    port_c = free_port()
    c = instance(broker, lease_q, topic, port_c)
    wait_for(lambda: lease_active(port_c) == 0, 10, "C up and standing by", interval=0.1)
    # A message handed to the standby is not published.
    c.proc.stdin.write((json.dumps({"topic": topic, "body": {"n": 1}, "id": "held-by-standby"}) + "\n").encode())
    c.proc.stdin.flush()
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        assert lease_active(port_c) == 0, "C became active while the survivor holds the lease"
        assert lease_active(ports[survivor]) == 1, "the survivor lost the lease to a newcomer"
        time.sleep(0.05)  # sampling pace
    m, _, _ = ch.basic_get(out_q, auto_ack=False)
    if m is not None:
        # Only the runtime's standby mode (a pipeline without a journal drops its input while
        # standing by) or the sink itself may decide; either way nothing is published.
        raise AssertionError("a standby instance published a message")

    # 4. the survivor frozen (SIGSTOP: its connections stay open and silent, as with a
    # stalled host): the broker drops it after two heartbeats and C takes over. A message
    # written to the frozen one's stdin is never published: woken up (SIGCONT) it stands by.
    t_stop = time.monotonic()
    procs[survivor].proc.send_signal(signal.SIGSTOP)
    procs[survivor].proc.stdin.write(
        (json.dumps({"topic": topic, "body": {"n": 2}, "id": "written-while-frozen"}) + "\n").encode())
    procs[survivor].proc.stdin.flush()
    wait_for(lambda: lease_active(port_c) == 1, 2 * HEARTBEAT + 5, "C active after the survivor froze",
             interval=0.05)
    log(f"takeover after SIGSTOP (heartbeat {HEARTBEAT} s): {(time.monotonic() - t_stop) * 1000:.0f} ms")
    procs[survivor].proc.send_signal(signal.SIGCONT)
    wait_for(lambda: lease_active(ports[survivor]) == 0, 5, "the woken survivor standing by", interval=0.05)
    t_end = time.monotonic() + 2
    while time.monotonic() < t_end:
        assert lease_active(port_c) == 1, "C lost the lease to the woken survivor"
        assert lease_active(ports[survivor]) == 0, "the woken survivor took the lease back"
        time.sleep(0.05)  # sampling pace
    m, _, body = ch.basic_get(out_q, auto_ack=False)
    assert m is None, f"a standing-by instance published: {body!r}"

    # 5. SIGTERM of C (active): the old survivor takes over again.
    t_term = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    rc = c.wait(60)
    assert rc == 0, (rc, c.stderr()[-3000:])
    wait_for(lambda: lease_active(ports[survivor]) == 1, 5, "the survivor active after SIGTERM of C",
             interval=0.02)
    log(f"takeover after SIGTERM: {(time.monotonic() - t_term) * 1000:.0f} ms")
    err = c.stderr()
    assert re.search(r"lease on queue '[^']+' acquired after \d+ ms standing by", err), err[-3000:]
    assert "lease on queue" in procs[survivor].stderr() and " lost: " in procs[survivor].stderr()

    procs[survivor].proc.stdin.close()
    rc = procs[survivor].wait(60)
    assert rc == 0, (rc, procs[survivor].stderr()[-3000:])
    ch.queue_delete(lease_q)
    ch.queue_delete(out_q)
    conn.close()
    broker.stop()
    log("ok")


if __name__ == "__main__":
    main()
