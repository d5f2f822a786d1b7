"""Memory stays bounded while the broker refuses to take messages (docs/delivery.md).

examples/pipelines/zmq-to-amqp.yaml as shipped (zmq-sub -> verifier -> loop-guard ->
amqp-publish, hwm 2000, default queue limits; unsigned envelopes allowed through
FEDMSG_ALLOW_UNSIGNED so that the Python publisher need not sign 2,000 messages a second)
against a private RabbitMQ (tests/amqp/amqp_fixture.py). An independent python3-zmq
publisher plays a fedmsg hub: a PUB socket (XPUB, to see the subscription) with libzmq's
default high-water mark, which drops when the router stops reading, as a real hub does;
2,000 msg/s of 200-byte bodies (373-byte ZeroMQ messages), numbered by the envelope's `i`.

After a warm-up (10,500 messages at 1,000 msg/s, then a quiet moment: the reference is
taken while messages flow and nothing is held) the hub goes to 2,000 msg/s and the broker
raises a memory alarm (`set_vm_memory_high_watermark 0.0000001`)
and restores 0.4 once the router has been blocked for ALARM_S seconds. Checked:
  * the router sees the alarm (amqp-publish's `blocked` counter);
  * the input blocks or drops as documented and every loss is counted: published =
    received + seq_missing (the hub's drops, seen as sequence gaps; the hub sends one more
    message whenever the router stalls short of the total, so that a loss at the tail is
    revealed too), received = sent + dropped, and the broker holds every message sent;
  * RssAnon (/proc/PID/status: the heap and every thread's arena, not the program's and
    libraries' pages), sampled every 100 ms, grows during the alarm by no more than the
    configured limits + 20 %: the output queue, one batch and amqp-publish's confirm window
    at the bytes the core counts per queued message (queue_bytes / queue_depth), and libzmq's
    receive queue (hwm) at a message's bytes plus libzmq's own per-message structures.

Measured on the shared 2-core machine (2026-12-05), before the fixes: growth 13-18 MiB
against 2.5 MiB allowed. Nearly all of it was libzmq's zero-copy receive (heaptrack: 12.3
MiB peak from libzmq's decoder): every read allocates an 8 KiB batch buffer that stays
pinned while any message cut from it waits in the pipe, so a queued 373-byte message cost
3.5-6 KiB; with `hwm: 0` the same cost is unbounded (103 MiB after 13 s blocked,
SY_ALARM_HWM=0: the issue's 400 MB over 60 s). zmq-sub now turns zero-copy off
(ZMQ_ZERO_COPY_RECV = 0), and the runtime counts a queued message's whole footprint (1,488
bytes here, where Message::byteSize() said 720). After both: growth 2.9 MiB against 3.8
MiB allowed.

ALARM_S defaults to 8 s (the issue measured 60 s): libzmq's queue is full about a second
after the router stops reading, so the bound (or its absence, with SY_ALARM_HWM=0) shows
within seconds. Every wait is on a condition with a deadline."""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bridges"))
import bridgetest as bt  # noqa: E402
import zmq  # noqa: E402

RATE = int(os.environ.get("SY_ALARM_RATE", "2000"))
ALARM_S = float(os.environ.get("SY_ALARM_SECONDS", "8"))
WARMUP_RATE = 1000  # well below what a busy 2-core machine keeps up with (about 1,700): no backlog
WARMUP_MESSAGES = 10500  # more than loop-guard's id window (10,000 ids): its memory is in the reference
QUIET_RATE = 200  # while the reference is taken: messages flowing, nothing held
BODY_BYTES = 200
TOPIC = "org.fedoraproject.dev.memory.alarm"
PIPELINE = "zmq-to-amqp"
# The example's values (examples/pipelines/zmq-to-amqp.yaml) and the core's defaults
# (docs/configuration.md): what the budget below is made of.
QUEUE_MAX_MESSAGES = 1000
QUEUE_MAX_BYTES = 64 << 20
CONFIRM_WINDOW = 256
HWM = 2000
BATCH = 128  # messages an output thread takes from its queue at once
# What libzmq keeps per queued message besides its bytes: two frames (topic, envelope),
# each a 64-byte zmq_msg_t in the pipe plus a content header (~40 B) and a malloc header
# (16 B) for its data.
LIBZMQ_MSG_OVERHEAD = 2 * (64 + 40 + 16)


def rss_kib(pid, field="RssAnon"):
    """Resident memory of @pid: RssAnon (the heap and every thread's malloc arena, without
    the pages of the program and its libraries, which traffic touches once) or VmRSS."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []  # (monotonic, kib)
        self.stopping = False
        self.start()

    def run(self):
        while not self.stopping:
            try:
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            except (OSError, AssertionError):
                return
            time.sleep(0.1)  # the sampling period, not a synchronisation

    def last(self):
        return self.samples[-1][1] if self.samples else 0

    def peak(self, t0, t1):
        return max((k for t, k in self.samples if t0 <= t <= t1), default=0)

    def at(self, t):
        best = [k for tt, k in self.samples if tt <= t]
        return best[-1] if best else 0


class Hub(threading.Thread):
    """A fedmsg hub: XPUB (to see the subscription; no XPUB_NODROP) with the default
    SNDHWM, sending RATE envelopes a second, `i` counting from 1, until told to stop."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(f"tcp://127.0.0.1:{port}")
        self.sent = 0
        self.rate = WARMUP_RATE
        self.stopping = False
        self.error = None
        self.payload = "x" * (BODY_BYTES - 40)

    def wait_subscriber(self, timeout=30):
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise AssertionError("the router never subscribed")
        assert self.sock.recv()[:1] == b"\x01"

    def envelope(self, i):
        env = bt.fedmsg_envelope(TOPIC, {"n": i, "payload": self.payload}, i=i, username="memory-hub")
        return [TOPIC.encode(), bt.canonical(env).encode()]

    def run(self):
        try:
            credit, last = 0.0, time.monotonic()
            while not self.stopping:
                now = time.monotonic()
                credit += (now - last) * self.rate
                last = now
                while credit >= 1 and not self.stopping:
                    credit -= 1
                    self.sent += 1
                    self.sock.send_multipart(self.envelope(self.sent))  # drops at SNDHWM, as a hub does
                time.sleep(0.002)  # pacing the send rate
        except Exception as e:  # reported by the main thread
            self.error = e

    def close(self):
        self.stopping = True
        self.join(10)
        self.sock.close()
        self.ctx.term()


def example_config(tmp):
    """examples/pipelines/zmq-to-amqp.yaml as shipped; SY_ALARM_HWM (investigation only)
    replaces its `hwm: 2000`."""
    with open(os.path.join(bt.PIPELINES, "zmq-to-amqp.yaml")) as f:
        text = f.read()
    bt.check(f"hwm: {HWM}" in text, "the example's hwm changed: update HWM here")
    if os.environ.get("SY_ALARM_HWM"):
        text = text.replace(f"hwm: {HWM}", "hwm: " + os.environ["SY_ALARM_HWM"])
    path = os.path.join(tmp, "zmq-to-amqp.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    tmp = bt.tmpdir("sy-memory-alarm-")
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    queue = bt.unique("memory-alarm")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "zmq.topic", "#")
    port = bt.free_port()
    hub = Hub(port)
    env = bt.bridge_env(broker, pki, FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{port}",
                        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bt.free_port()}",
                        FEDMSG_ALLOW_UNSIGNED="true")
    bridge = bt.Bridge(example_config(tmp), env)
    sampler = None
    alarm_on = False
    per_msg_core = []  # queue_bytes / queue_depth samples: a queued message's bytes as the core counts them

    def g(name, plugin="amqp-publish", c=None):
        c = c if c is not None else bridge.counters()
        return c.get((PIPELINE, plugin, name, ""), 0)

    def drops():
        out = {}
        for plugin in ("zmq-sub", "verifier", "loop-guard", "amqp-publish"):
            for r, v in bridge.drops(PIPELINE, plugin).items():
                out[f"{plugin}:{r}"] = v
        return out

    try:
        hub.wait_subscriber()
        bridge.wait_counter(PIPELINE, "amqp-publish", "connects", lambda v: v >= 1, 60)
        sampler = Sampler(bridge.proc.pid)
        t_start = time.monotonic()
        idle_kib, idle_vmrss = rss_kib(bridge.proc.pid), rss_kib(bridge.proc.pid, "VmRSS")

        def monitor():
            while not sampler.stopping:
                c = bridge.counters()
                depth, qbytes = g("queue_depth", c=c), g("queue_bytes", c=c)
                if depth >= 100:
                    per_msg_core.append(qbytes / depth)
                bt.log(f"t={time.monotonic() - t_start:5.1f} hub={hub.sent} received={g('received', 'zmq-sub', c)} "
                       f"seq_missing={g('seq_missing', 'zmq-sub', c)} published={g('published', c=c)} "
                       f"sent={g('sent', c=c)} queue_depth={depth} queue_bytes={qbytes} "
                       f"unconfirmed={g('unconfirmed', c=c)} rss={sampler.last()} KiB")
                time.sleep(1)  # one progress line a second, for the log
        threading.Thread(target=monitor, daemon=True).start()
        hub.start()
        # Warm-up: messages flow, allocators and loop-guard's id window reach their working
        # size; then, at a quiet rate, the reference is taken once nothing is held.
        bridge.wait_counter(PIPELINE, "amqp-publish", "sent", lambda v: v >= WARMUP_MESSAGES, 60)
        hub.rate = QUIET_RATE
        bt.wait_for(lambda: g("queue_depth") == 0 and g("received", "zmq-sub") >= hub.sent - 5, 60,
                    "the router to hold nothing", interval=0.05)
        # The reference: messages flowing, nothing held back yet.
        base_kib, base_vmrss = rss_kib(bridge.proc.pid), rss_kib(bridge.proc.pid, "VmRSS")
        depth_before = g("queue_depth")
        hub.rate = RATE
        # rabbitmqctl itself takes seconds on a busy machine: the alarm is timed from the
        # moment the router is blocked to the moment it is unblocked.
        t_ctl = time.monotonic()
        broker.ctl("set_vm_memory_high_watermark", "0.0000001")
        alarm_on = True
        bridge.wait_counter(PIPELINE, "amqp-publish", "blocked", lambda v: v >= 1, 60)
        t_blocked = time.monotonic()
        blocked_after = t_blocked - t_ctl
        while time.monotonic() < t_blocked + ALARM_S:
            bt.check(bridge.proc.poll() is None, "switchyard exited during the alarm:\n" + bridge.stderr()[-4000:])
            bt.check(hub.error is None, f"hub failed: {hub.error!r}")
            time.sleep(0.2)  # the alarm's length is the experiment, not a synchronisation
        published_at_clear = g("published")
        broker.ctl("set_vm_memory_high_watermark", "0.4")
        alarm_on = False
        bt.wait_for(lambda: g("published") > published_at_clear, 60, "publishing to resume", interval=0.1)
        t_unblocked = time.monotonic()
        peak_kib = sampler.peak(t_blocked, t_unblocked)
        peak_vmrss = rss_kib(bridge.proc.pid, "VmRSS")
        hub.stopping = True
        hub.join(10)
        # Losses at the tail (the hub dropping its last messages) are revealed by a later `i`:
        # whenever the router has made no progress for 2 s and has not accounted for
        # everything, the hub sends one more message (it too may be dropped while the hub's
        # queue is full; then the next one reveals it).
        last = [None, time.monotonic()]

        def accounted():
            v = g("received", "zmq-sub") + g("seq_missing", "zmq-sub")
            if v == hub.sent and g("sent") + sum(drops().values()) >= g("received", "zmq-sub"):
                return True
            if v != last[0]:
                last[0], last[1] = v, time.monotonic()
            elif time.monotonic() - last[1] >= 2.0:
                hub.sent += 1
                hub.sock.send_multipart(hub.envelope(hub.sent))
                last[1] = time.monotonic()
            return False
        try:
            bt.wait_for(accounted, 180, "everything published to be received or counted missing, and settled",
                        interval=0.2)
            published = hub.sent
            bt.wait_for(lambda: broker.queue_counts(queue)[0] >= g("sent"), 60, "the broker to hold every message sent")
        except AssertionError:
            bt.log(f"published={published}", {k: v for k, v in bridge.counters().items() if v})
            raise
        sampler.stopping = True
        bridge.finish()
    finally:
        if alarm_on:
            broker.ctl("set_vm_memory_high_watermark", "0.4")
        if sampler:
            sampler.stopping = True
        hub.close()
    c = bridge.counters()
    rec, missing, sent = g("received", "zmq-sub", c), g("seq_missing", "zmq-sub", c), g("sent", c=c)
    dropped = drops()
    in_queue = broker.queue_counts(queue)[0]
    growth_kib = peak_kib - base_kib
    frame = len(b"".join(hub.envelope(1)))
    core_msg = max(per_msg_core) if per_msg_core else 0
    # What the configuration allows the router to hold (docs/architecture.md, "at most the
    # queue, plus one batch, plus the sink's window"; docs/plugins/zmq-sub.md, hwm messages
    # per publisher), at the bytes the core itself counts per queued message (the
    # queue_bytes gauge) and, in libzmq's receive queue, a ZeroMQ message's bytes plus
    # libzmq's own per-message structures.
    queue_part = min(QUEUE_MAX_MESSAGES * core_msg, QUEUE_MAX_BYTES)
    budget_kib = (queue_part + (BATCH + CONFIRM_WINDOW) * core_msg + HWM * (frame + LIBZMQ_MSG_OVERHEAD)) / 1024
    bt.log(f"alarm {ALARM_S:.0f} s at {RATE} msg/s: published={published} received={rec} seq_missing={missing} "
           f"sent={sent} dropped={dropped} broker queue={in_queue}; blocked seen {blocked_after:.1f} s after "
           f"rabbitmqctl started, unblocked {t_unblocked - t_blocked:.1f} s later")
    bt.log(f"RssAnon idle={idle_kib} KiB before the alarm={base_kib} KiB (output queue {depth_before} deep) "
           f"peak during the alarm={peak_kib} KiB growth={growth_kib} KiB; VmRSS idle={idle_vmrss} KiB "
           f"before={base_vmrss} KiB after={peak_vmrss} KiB; "
           f"frame={frame} B, core bytes per queued message={core_msg:.0f} B, "
           f"budget={budget_kib:.0f} KiB (+20 %: {budget_kib * 1.2:.0f} KiB)")
    # Accounting first: nothing lost without a count, everything not dropped delivered.
    bt.check(published == rec + missing, f"published {published} != received {rec} + seq_missing {missing}")
    bt.check(rec == sent + sum(dropped.values()), f"received {rec} != sent {sent} + dropped {dropped}")
    bt.check(in_queue == sent, f"the broker holds {in_queue}, the router sent {sent}")
    bt.check(blocked_after <= 30, f"the alarm was noticed {blocked_after:.1f} s after rabbitmqctl was run")
    bt.check(core_msg > 0, "the output queue never held 100 messages: the input did not block")
    # Memory.
    bt.check(growth_kib <= budget_kib * 1.2,
             f"RSS grew by {growth_kib} KiB during the alarm, over the configured limits + 20 % "
             f"({budget_kib * 1.2:.0f} KiB)")
    conn.close()
    bt.log("memory-alarm: OK")


if __name__ == "__main__":
    main()
