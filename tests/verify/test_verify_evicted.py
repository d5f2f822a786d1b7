"""Verify-missing past max_entries: an evicted id never becomes a false
one-sided report, and nothing is reported twice. Real peers: a private RabbitMQ
(tests/amqp/amqp_fixture.py), python3-zmq as the fedmsg publisher, python3-pika as the AMQP
publisher.

1. The reproduction, through `switchyard verify-missing --max-entries 10`: 20 ids on ZeroMQ,
   then the same 20 on AMQP (before the fix: matched=0 only_via_amqp=10). Now the 10 evicted
   ids are counted unverified (and logged), their AMQP twins are late matches, the other 10
   match, and the only report is a ZeroMQ-only sentinel sent at the end.
2. The memory of evicted ids overflowing too (`max_evicted: 5`, `switchyard run` on the
   command's own --print-config output with that key added): every one of the 20 ids ends
   up unverified on both sides, none is reported, and a truly ZeroMQ-only sentinel still is;
   exact per-side counters.

The order matters for exact figures (all ZeroMQ copies before any AMQP copy), so each batch
waits for the `seen` counters of the previous one; the window (6 s) is only a margin for
that, it plays no part in the eviction. Every wait is on a condition with a deadline."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "amqp"))
import amqp_fixture as af  # noqa: E402
import test_verify_missing as tvm  # noqa: E402

import pika  # noqa: E402

WINDOW = 6
N = 20
MAX_ENTRIES = 10


class Run:
    """One switchyard process (verify-missing command or run), stderr to a file."""

    def __init__(self, args, tmp, name):
        self.err_path = os.path.join(tmp, name + ".stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([af.BIN] + args, stdout=subprocess.DEVNULL, stderr=self.err)

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        assert self.proc.poll() is None, "switchyard exited early:\n" + self.stderr()[-4000:]
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("switchyard did not stop within 60 s")
        finally:
            self.err.close()
        assert rc == 0, f"exit status {rc}\n{self.stderr()[-4000:]}"


def summary(text):
    """The last summary line of `switchyard verify-missing`, as a dict."""
    lines = [ln for ln in text.splitlines() if "verify-missing: matched=" in ln]
    if not lines:
        return None
    m = re.search(r"matched=(\d+) only_via_zeromq=(\d+) only_via_amqp=(\d+) .*evicted=(\d+) unverifiable=(\d+) "
                  r"seen zeromq=(\d+) amqp=(\d+)", lines[-1])
    keys = ("matched", "only_zmq", "only_amqp", "evicted", "unverifiable", "seen_zmq", "seen_amqp")
    return dict(zip(keys, map(int, m.groups())))


def counters(text):
    """{(side, name): last value} of the unlabelled counters of the verify-missing plugins,
    from the `stats:` lines of `switchyard run` (a counter never logged is zero)."""
    out = {}
    for pipeline, plugin, name, label, value in af.parse_stats(text):
        if pipeline.startswith("verify-") and plugin.endswith("(verify-missing)") and not label:
            out[(pipeline.split("-")[1], name)] = value
    return out


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def unverified_logged(text):
    """Ids named in eviction/blind warnings, plus the number in '... and N more' lines."""
    named = re.findall(r"message (\S+) \(seen via \w+, topic [^)]*\) was evicted before its window closed", text)
    named += re.findall(r"message (\S+) was seen only via \w+ \(topic [^)]*\) but is not reported", text)
    more = sum(int(n) for n in re.findall(r"\.\.\. and (\d+) more id\(s\) not verified for want of memory", text))
    return named, more


class Peers:
    def __init__(self, broker):
        self.port = tvm.free_port()
        self.pub = tvm.FedmsgPublisher(f"tcp://127.0.0.1:{self.port}")
        self.conn = broker.connection()
        self.ch = self.conn.channel()
        self.ch.exchange_declare("zmq.topic", "topic", durable=True)  # bound by the command's defaults
        self.queue = af.unique("verify-evicted")

    def amqp(self, message_id):
        self.ch.basic_publish("amq.topic", tvm.TOPIC, json.dumps({"hello": "amqp"}),
                              pika.BasicProperties(message_id=message_id, content_type="application/json"))

    def ready(self, broker, run):
        self.pub.wait_subscriber()
        af.wait_for(lambda: run.alive() and tvm.queue_consumers(broker, self.queue) == 1, 60,
                    "the verify-missing queue consumer")

    def close(self):
        self.pub.close()
        self.conn.close()


def command_args(peers, broker, report, extra=()):
    return ["verify-missing", "--zmq-endpoint", f"tcp://127.0.0.1:{peers.port}", "--amqp-url", broker.url,
            "--queue", peers.queue, "--window", str(WINDOW), "--retain", "60", "--startup-grace", "0",
            "--max-entries", str(MAX_ENTRIES), "--report", report, *extra]


def reproduction(broker, tmp):
    peers = Peers(broker)
    report = os.path.join(tmp, "repro.jsonl")
    run = Run(command_args(peers, broker, report, ["--stats-interval", "0.2"]), tmp, "repro")
    try:
        peers.ready(broker, run)
        ids = [uuid.uuid4().hex for _ in range(N)]
        for k in ids:
            peers.pub.send(f"2026-{k}")
        af.wait_for(lambda: run.alive() and (summary(run.stderr()) or {}).get("seen_zmq") == N, 20,
                    "20 ids seen on ZeroMQ")
        for k in ids:
            peers.amqp(k)
        af.wait_for(lambda: run.alive() and (summary(run.stderr()) or {}).get("seen_amqp") == N, 20,
                    "20 ids seen on AMQP")
        # A ZeroMQ-only sentinel: once it is reported, every window above has closed.
        sentinel = uuid.uuid4().hex
        peers.pub.send(f"2026-{sentinel}")
        af.wait_for(lambda: run.alive() and any(r["id"].endswith(sentinel) for r in records(report)),
                    WINDOW + 20, "the report of the sentinel")
    finally:
        run.stop()
        peers.close()
    log = run.stderr()
    s = summary(log)
    af.log("reproduction:", s)
    # Before: matched=0 only_via_amqp=10. Now: no false report at all.
    assert s == {"matched": 10, "only_zmq": 1, "only_amqp": 0, "evicted": 10, "unverifiable": 0,
                 "seen_zmq": N + 1, "seen_amqp": N}, s
    assert [(r["id"], r["full_id"]) for r in records(report)] == [(sentinel, f"2026-{sentinel}")], records(report)
    # Each eviction is logged (a few by name per sweep, the rest counted), the oldest first.
    named, more = unverified_logged(log)
    assert len(named) + more == 10, (named, more)
    assert set(named) <= {f"2026-{k}" for k in ids[:10]}, named
    assert f"2026-{ids[0]}" in named, named
    # The 10 AMQP twins of evicted ids are late matches, each logged once.
    late = re.findall(r"message (\S+) arrived via AMQP after its twin had been counted unverified", log)
    assert sorted(late) == sorted(ids[:10]), late
    assert "was only received via AMQP" not in log


def overflow(broker, tmp):
    """max_evicted 5: the memory of evicted ids overflows as well; still no report."""
    peers = Peers(broker)
    report = os.path.join(tmp, "overflow.jsonl")
    printed = subprocess.run([af.BIN] + command_args(peers, broker, report, ["--print-config"]),
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    cfg_text, n = re.subn(r"(\n(\s+)max_entries: 10\n)", r"\1\2max_evicted: 5\n", printed.stdout)
    assert n == 2, printed.stdout
    cfg = os.path.join(tmp, "overflow.yaml")
    with open(cfg, "w") as f:
        f.write(cfg_text)
    run = Run(["run", "--stats-interval", "0.2", cfg], tmp, "overflow")

    def c(side, name):
        return counters(run.stderr()).get((side, name), 0)

    try:
        peers.ready(broker, run)
        ids = [uuid.uuid4().hex for _ in range(N)]
        for k in ids:
            peers.pub.send(f"2026-{k}")
        af.wait_for(lambda: run.alive() and c("zmq", "seen") == N, 20, "20 ids seen on ZeroMQ")
        for k in ids:
            peers.amqp(k)
        af.wait_for(lambda: run.alive() and c("amqp", "seen") == N, 20, "20 ids seen on AMQP")
        # The last AMQP ids stay in memory, blind, until their window closes; the sentinel,
        # sent after them, is reported after that.
        sentinel = uuid.uuid4().hex
        peers.pub.send(f"2026-{sentinel}")
        af.wait_for(lambda: run.alive() and any(r["id"].endswith(sentinel) for r in records(report)),
                    WINDOW + 20, "the report of the sentinel")
        af.wait_for(lambda: c("zmq", "unmatched") == 1, 10, "the stats line after the report")
    finally:
        run.stop()
        peers.close()
    log = run.stderr()
    got = {k: v for k, v in counters(log).items() if k[1] not in ("pending", "evicted_ids")}
    af.log("overflow:", got)
    want = {}
    for side in ("zmq", "amqp"):
        for name in ("seen", "matched", "unmatched", "unmatched_zmq_loss", "duplicates", "late", "evicted",
                     "unverifiable", "unverified", "late_matched", "forgotten"):
            want[(side, name)] = 0
    # The same figures as the unit test "the integration test's overflow figures".
    want.update({("zmq", "seen"): 21, ("amqp", "seen"): 20, ("zmq", "unmatched"): 1,
                 ("zmq", "evicted"): 20, ("zmq", "unverified"): 20, ("zmq", "forgotten"): 20,
                 ("amqp", "evicted"): 11, ("amqp", "unverified"): 20, ("amqp", "forgotten"): 6})
    got = {k: got.get(k, 0) for k in want}  # a counter never logged has been 0 throughout
    assert got == want, {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert [(r["id"], r["full_id"]) for r in records(report)] == [(sentinel, f"2026-{sentinel}")], records(report)
    assert "was only received via AMQP" not in log
    named, more = unverified_logged(log)
    assert len(named) + more == 40, (named, more)


def main():
    broker = af.Broker()
    tmp = tempfile.mkdtemp(prefix="sy-verify-evicted-")
    try:
        t0 = time.monotonic()
        reproduction(broker, tmp)
        af.log(f"reproduction: OK ({time.monotonic() - t0:.1f} s)")
        t0 = time.monotonic()
        overflow(broker, tmp)
        af.log(f"overflow: OK ({time.monotonic() - t0:.1f} s)")
    finally:
        shutil.rmtree(tmp, True)
    af.log("verify-missing-evicted: OK")


if __name__ == "__main__":
    main()
