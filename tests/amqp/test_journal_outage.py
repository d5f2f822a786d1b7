"""Z->A with the disk journal on: the broker is down for 60 s at 2,000 msg/s -> 0 lost, and
memory stays within the configured limits (docs/journal.md).

examples/pipelines/zmq-to-amqp.yaml (zmq-sub -> verifier -> loop-guard -> amqp-publish;
unsigned envelopes allowed through FEDMSG_ALLOW_UNSIGNED) with its `journal:` turned on
(fsync: batch, in a fresh directory) and `settings.queue_max_bytes: 4 MiB` (the output
queue also stops at its default 1,000 messages): the in-memory limit is far below the
120,000 messages of the outage, so they can only be kept on disk. The other side is real:
a private RabbitMQ (tests/amqp/amqp_fixture.py), stopped with `rabbitmqctl stop_app` and
started again with `start_app` (the durable queue keeps what it held), and the python3-zmq
hub of test_memory_alarm.py (XPUB, libzmq's default high-water mark, envelopes numbered by
`i` with the same number in the body's "n"), so that a message the router failed to read
shows up as a sequence gap.

Checked, after a warm-up (11,000 messages: loop-guard's id window is full, so its memory is
in the reference) and OUTAGE_S seconds of outage:
  * 0 lost: the hub's every message was read (seq_missing 0), none was dropped or counted
    lost, and the queue holds every `n` from 1 to the last one sent (duplicates, the
    messages amqp-publish had sent but not seen confirmed when the broker went, are
    counted and reported, never a gap);
  * the journal took the backlog: journal_appended = received, and the journal_backlog
    gauge, read while the broker is down, reached the messages sent during the outage
    minus what the output queue holds (1,000) and the last second's;
  * memory: RssAnon (the heap and every thread's arena) during the outage stays within
    "the configured limit + 20 %": the reference (RssAnon while messages flow, before the
    outage) plus 1.2 x (queue_max_bytes + amqp-publish's confirm_window x the bytes the core
    counts per queued message, the queue_bytes gauge over queue_depth).

OUTAGE_S (SY_OUTAGE_SECONDS) is 60 by default; every wait is on a condition with a deadline.
"""
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bridges"))
import bridgetest as bt  # noqa: E402
import test_memory_alarm as ma  # noqa: E402  (its hub, RSS sampler and reader)

RATE = 2000
OUTAGE_S = float(os.environ.get("SY_OUTAGE_SECONDS", "60"))
WARMUP_RATE = 2000
WARMUP_MESSAGES = 11000  # more than loop-guard's id window (10,000 ids)
QUEUE_MAX_BYTES = 4 << 20
CONFIRM_WINDOW = 256
PIPELINE = "zmq-to-amqp"


def journal_config(tmp):
    with open(os.path.join(bt.PIPELINES, "zmq-to-amqp.yaml")) as f:
        text = f.read()
    bt.check(f"confirm_window: {CONFIRM_WINDOW}" in text, "the example's confirm_window changed: update it here")
    journal = os.path.join(tmp, "journal")
    text, n = re.subn(r"(?m)^pipelines:\n  zmq-to-amqp:\n",
                      f"settings: {{queue_max_bytes: {QUEUE_MAX_BYTES}}}\n"
                      f"pipelines:\n  zmq-to-amqp:\n    journal: {{dir: '{journal}', fsync: batch}}\n", text)
    bt.check(n == 1, "the example's pipeline header changed: update journal_config()")
    bt.check("\n    # journal:" in text or "\n    journal:" in text, "no journal in the example")
    path = os.path.join(tmp, "zmq-to-amqp.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Drain(threading.Thread):
    """Consumes the queue (auto-ack) from the moment the broker is back, while the backlog
    replays, keeping the body's "n" of every message."""

    def __init__(self, broker, queue):
        super().__init__(daemon=True)
        self.conn = broker.connection()
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=5000)
        self.queue = queue
        self.got = []
        self.stopping = False
        self.error = None
        self.start()

    def run(self):
        pat = re.compile(rb'"n":\s*(\d+)')
        try:
            for method, _props, body in self.ch.consume(self.queue, auto_ack=True, inactivity_timeout=0.2):
                if method is not None:
                    m = pat.search(body)
                    self.got.append(int(m.group(1)) if m else -1)
                elif self.stopping:
                    break
            self.ch.cancel()
            self.conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e

    def finish(self, expect, timeout=120):
        """Every message once @expect arrived and the queue stayed empty for a second."""
        bt.wait_for(lambda: len(self.got) >= expect or self.error, timeout,
                    f"{expect} messages from the queue (have {len(self.got)})", interval=0.1)
        bt.settle(lambda: self.got, timeout=30, idle=1.0)
        self.stopping = True
        self.join(10)
        bt.check(self.error is None, f"the AMQP consumer failed: {self.error!r}")
        return list(self.got)


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    tmp = bt.tmpdir("sy-journal-outage-")
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    queue = bt.unique("journal-outage")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "zmq.topic", "#")
    conn.close()
    port = bt.free_port()
    hub = ma.Hub(port)
    hub.rate = WARMUP_RATE
    env = bt.bridge_env(broker, pki, FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{port}",
                        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bt.free_port()}",
                        FEDMSG_ALLOW_UNSIGNED="true")
    bridge = bt.Bridge(journal_config(tmp), env)
    sampler = None
    drain = None
    down = False
    per_msg_core = []
    backlog_peak = [0]  # the journal_backlog gauge's highest value while the broker is down
    outage = threading.Event()

    def g(name, plugin="amqp-publish", c=None, reason=""):
        c = c if c is not None else bridge.counters()
        return c.get((PIPELINE, plugin, name, reason), 0)

    try:
        hub.wait_subscriber()
        bridge.wait_counter(PIPELINE, "amqp-publish", "connects", lambda v: v >= 1, 60)
        sampler = ma.Sampler(bridge.proc.pid)
        t_start = time.monotonic()

        def monitor():
            while not sampler.stopping:
                c = bridge.counters()
                depth, qbytes = g("queue_depth", c=c), g("queue_bytes", c=c)
                if depth >= 100:
                    per_msg_core.append(qbytes / depth)
                if outage.is_set():
                    backlog_peak[0] = max(backlog_peak[0], g("journal_backlog", "", c))
                bt.log(f"t={time.monotonic() - t_start:5.1f} hub={hub.sent} received={g('received', 'zmq-sub', c)} "
                       f"seq_missing={g('seq_missing', 'zmq-sub', c)} appended={g('journal_appended', '', c)} "
                       f"backlog={g('journal_backlog', '', c)} sent={g('sent', c=c)} queue_depth={depth} "
                       f"rss={sampler.last()} KiB")
                time.sleep(1)  # one progress line a second, for the log
        threading.Thread(target=monitor, daemon=True).start()
        hub.start()
        bridge.wait_counter(PIPELINE, "amqp-publish", "sent", lambda v: v >= WARMUP_MESSAGES, 60)
        hub.rate = RATE
        # The reference: messages flowing at the test's rate, nothing held back yet.
        bt.wait_for(lambda: g("queue_depth") < 100 and g("received", "zmq-sub") >= hub.sent - 200, 30,
                    "the router to keep up at 2,000 msg/s", interval=0.05)
        base_kib = ma.rss_kib(bridge.proc.pid)
        broker.ctl("stop_app")
        down = True
        outage.set()
        t_down = time.monotonic()
        sent_at_down = hub.sent
        while time.monotonic() < t_down + OUTAGE_S:
            bt.check(bridge.proc.poll() is None, "switchyard exited during the outage:\n" + bridge.stderr()[-4000:])
            bt.check(hub.error is None, f"hub failed: {hub.error!r}")
            time.sleep(0.2)  # the outage's length is the experiment, not a synchronisation
        during = hub.sent - sent_at_down
        t_up = time.monotonic()
        peak_kib = sampler.peak(t_down, t_up)
        outage.clear()
        broker.ctl("start_app")
        broker.ctl("await_startup")
        down = False
        drain = Drain(broker, queue)
        bridge.wait_counter(PIPELINE, "amqp-publish", "connects", lambda v: v >= 2, 60)
        hub.stopping = True
        hub.join(10)
        published = hub.sent
        bt.wait_for(lambda: g("received", "zmq-sub") + g("seq_missing", "zmq-sub") >= published, 30,
                    "the router to read everything the hub sent", interval=0.2)
        # Everything read is published and confirmed: the backlog replays at the broker's pace.
        bt.wait_for(lambda: g("sent") >= g("received", "zmq-sub") and g("journal_backlog", "") == 0, 120,
                    "the journal's backlog to reach the broker", interval=0.2)
        sampler.stopping = True
        bridge.finish()
    except AssertionError:
        bt.log(bridge.stderr()[-4000:])
        raise
    finally:
        if down:
            broker.ctl("start_app")
        if drain:
            drain.stopping = True
        if sampler:
            sampler.stopping = True
        hub.close()
    c = bridge.counters()
    rec, missing, sent = g("received", "zmq-sub", c), g("seq_missing", "zmq-sub", c), g("sent", c=c)
    appended = g("journal_appended", "", c)
    dropped = {}
    for plugin in ("zmq-sub", "verifier", "loop-guard", "amqp-publish"):
        for r, v in bridge.drops(PIPELINE, plugin).items():
            dropped[f"{plugin}:{r}"] = v
    lost = {k: v for (p, _pl, n, k), v in c.items() if p == PIPELINE and n == "lost" and v}
    numbers = drain.finish(sent)
    distinct = set(numbers)
    duplicates = len(numbers) - len(distinct)
    missing_n = [n for n in range(1, published + 1) if n not in distinct]
    core_msg = max(per_msg_core) if per_msg_core else 0
    limit_kib = (QUEUE_MAX_BYTES + CONFIRM_WINDOW * core_msg) / 1024
    growth_kib = peak_kib - base_kib
    bt.log(f"outage {OUTAGE_S:.0f} s at {RATE} msg/s: {during} messages sent during it; published={published} "
           f"received={rec} seq_missing={missing} appended={appended} sent={sent} dropped={dropped} lost={lost} "
           f"backlog peak={backlog_peak[0]}; queue: {len(numbers)} messages, {duplicates} duplicate(s), "
           f"{len(missing_n)} missing")
    bt.log(f"RssAnon before the outage={base_kib} KiB, peak during it={peak_kib} KiB, growth={growth_kib} KiB; "
           f"configured limit={limit_kib:.0f} KiB (queue_max_bytes {QUEUE_MAX_BYTES} + {CONFIRM_WINDOW} x "
           f"{core_msg:.0f} B), +20 %: {limit_kib * 1.2:.0f} KiB")
    bt.check(missing == 0 and rec == published, f"the router missed messages: {missing} sequence gaps")
    bt.check(not dropped and not lost, f"dropped {dropped}, lost {lost}")
    bt.check(appended == rec, f"journal_appended {appended} != received {rec}")
    bt.check(during >= RATE * OUTAGE_S * 0.9, f"only {during} messages during the outage")
    # The gauge is read from the stats line (one a second) once a second: up to about 2.2 s
    # of messages may have come after the last reading, and 1,000 sit in the output queue.
    bt.check(backlog_peak[0] >= during - 1000 - 3 * RATE, f"the journal's backlog peaked at {backlog_peak[0]} "
             f"during the outage, for {during} messages sent during it")
    bt.check(not missing_n, f"{len(missing_n)} message(s) never reached the queue, e.g. {missing_n[:10]}")
    bt.check(core_msg > 0, "the output queue never held 100 messages during the outage")
    bt.check(growth_kib <= limit_kib * 1.2,
             f"RSS grew by {growth_kib} KiB during the outage, over the configured limit + 20 % "
             f"({limit_kib * 1.2:.0f} KiB)")
    bt.log("journal-outage: OK")


if __name__ == "__main__":
    main()
