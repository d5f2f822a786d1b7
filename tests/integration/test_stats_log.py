#!/usr/bin/python3
"""The counters in the log of `switchyard run --stats-interval`: one line per plugin instance
with only the counters that changed since the previous line (an idle router writes none),
the totals at exit (every counter that is not zero), labels named as in
core/src/metric_names.cpp (`completed{outcome=...}`, `dropped{reason=...}`); in the JSON
format the same records carry the counters as fields and every record has a timestamp with
milliseconds. stdin -> stdout pipeline, fed and read by this test."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import read_output, wait_for  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]
INTERVAL = 0.2
STATS_RE = re.compile(r'stats: pipeline=(\S*) plugin="([^"]*)"((?: [^\s={]+(?:\{[^}]*\})?=-?\d+)+)$')
TOKEN_RE = re.compile(r' ([^\s={]+(?:\{[^}]*\})?)=(-?\d+)')
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
GOOD = b'{"topic":"t","body":{"n":%d},"headers":{},"id":"%d"}\n'


class Run:
    def __init__(self, cfg, *extra):
        self.proc = subprocess.Popen([BIN, "run", "--stats-interval", str(INTERVAL), cfg, *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err, self.threads = read_output(
            self.proc, lambda raw: (time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        for t in self.threads:
            t.join(10)
        assert rc == 0, f"exit {rc}\n" + "\n".join(l for _, l in self.err[-30:])
        return rc


def parse(message):
    """(pipeline, plugin, {token: value}) of a stats message, or None."""
    m = STATS_RE.search(message)
    if not m:
        return None
    return m.group(1), m.group(2), {t: int(v) for t, v in TOKEN_RE.findall(m.group(3))}


def check_only_changes(lines):
    """Every counter an interval line shows differs from the last value shown for it (zero
    before the first), and no line is empty."""
    last = {}
    for pipeline, plugin, counters in lines:
        assert counters, f"an empty stats line for {plugin}"
        for token, value in counters.items():
            key = (pipeline, plugin, token)
            assert value != last.get(key, 0), f"{plugin} {token}={value} logged without a change"
            last[key] = value


def text_format(tmp, cfg):
    run = Run(cfg)
    try:
        run.write(b"".join(GOOD % (n, n) for n in range(5)) + b"not json\n")
        wait_for(lambda: len(run.out) == 5, 20, "5 lines out")

        def stats():
            return [(t, parse(l)) for t, l in list(run.err) if parse(l)]

        out_plugin = 'outputs[0] (stdout)'
        wait_for(lambda: any(s[1] == out_plugin and s[2].get("sent") == 5 for _, s in stats()), 20,
                 "a stats line with sent=5")
        # Idle: at least five ticks pass with nothing to report, and nothing is logged.
        seen = len(stats())
        idle_from = time.monotonic()
        wait_for(lambda: time.monotonic() - idle_from > 5 * INTERVAL, 10, "five idle ticks")
        assert len(stats()) == seen, f"an idle router logged {stats()[seen:]}"
        run.write(GOOD % (5, 5))
        wait_for(lambda: any(s[1] == out_plugin and s[2].get("sent") == 6 for _, s in stats()), 20,
                 "a stats line with sent=6")
        intervals = [s for _, s in stats()]
        check_only_changes(intervals)
        stop_mark = len(run.err)
        run.stop()
        totals = [parse(l) for _, l in run.err[stop_mark:] if parse(l)]
        plugins = [s[1] for s in totals]
        assert len(plugins) == len(set(plugins)), f"one totals line per plugin: {plugins}"
        by_plugin = {s[1]: s[2] for s in totals if s[0] == "copy"}
        assert by_plugin["input (stdin)"] == {"completed{outcome=delivered}": 6, "dropped{reason=invalid_json}": 1,
                                              "lines": 7, "received": 6}, by_plugin
        assert by_plugin[out_plugin].get("sent") == 6, by_plugin
        # A zero in the totals is a gauge back at zero since it was logged otherwise.
        shown = {(p, k, t) for p, k, c in intervals for t, v in c.items() if v != 0}
        for p, k, c in totals:
            for t, v in c.items():
                assert v != 0 or (p, k, t) in shown, f"totals: {k} {t}=0 was never logged otherwise"
        print(f"ok: text: {len(intervals)} interval lines, only changes, none while idle; totals {by_plugin}")
    finally:
        if run.proc.poll() is None:
            run.proc.kill()


def json_format(tmp, cfg):
    run = Run(cfg, "--log-format", "json")
    try:
        run.write(b"".join(GOOD % (n, n) for n in range(3)) + b"[1]\n")
        wait_for(lambda: len(run.out) == 3, 20, "3 lines out")
        run.stop()
        records = [json.loads(l) for _, l in run.err]
        for r in records:
            assert TIME_RE.match(r["time"]), f"time with milliseconds: {r['time']}"
            assert {"level", "logger", "message"} <= r.keys(), r
        stats = [r for r in records if r["message"].startswith("stats: ")]
        assert stats and all(r.get("stats") in ("interval", "totals") for r in stats), stats
        for r in stats:
            pipeline, plugin, counters = parse(r["message"])
            assert (r["pipeline"], r["plugin"], r["counters"]) == (pipeline, plugin, counters), \
                f"the fields say what the message says: {r}"
            assert all(isinstance(v, int) for v in r["counters"].values()), r
        totals = {r["plugin"]: r["counters"] for r in stats if r["stats"] == "totals" and r["pipeline"] == "copy"}
        assert totals["input (stdin)"] == {"completed{outcome=delivered}": 3, "dropped{reason=not_an_object}": 1,
                                           "lines": 4, "received": 3}, totals
        assert totals["outputs[0] (stdout)"]["sent"] == 3, totals
        print(f"ok: json: {len(records)} records with millisecond times, {len(stats)} stats records with fields")
    finally:
        if run.proc.poll() is None:
            run.proc.kill()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "p.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\npipelines:\n  copy:\n    input: {type: stdin}\n    outputs: [{type: stdout}]\n")
        text_format(tmp, cfg)
        json_format(tmp, cfg)


if __name__ == "__main__":
    main()
