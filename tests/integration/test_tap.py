#!/usr/bin/python3
"""The runtime tap: `switchyard tap URL [PIPELINE]` and GET /tap against a running
`switchyard run` (stdin -> stdout, messages fed all along), with bounded output.

Checked:
  * `tap URL copy --limit 5` prints exactly 5 JSON lines of that pipeline, in the order the
    messages passed, each with time, pipeline, topic, id, headers and the body as it is,
    then says on stderr that it ended at its limit;
  * --body-bytes cuts a longer body (truncated: true, body_bytes = the real size);
  * --seconds ends a tap of an idle pipeline on time, with no message;
  * GET /tap streams application/x-ndjson, ending with {"end": ...} whose `sampled`
    equals the message lines received;
  * bad requests: an unknown pipeline (404 naming the running ones), a bad limit (400), a
    tap that is not enabled in the configuration (404 saying which key enables it);
  * the tap takes nothing away: every fed line still comes out of stdout, in order."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import free_port, wait_for  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Run:
    """`switchyard run` of a stdin -> stdout pipeline named `copy`, fed by a thread."""

    def __init__(self, tmp, name, tap):
        self.port = free_port()
        self.cfg = os.path.join(tmp, f"{name}.yaml")
        with open(self.cfg, "w") as f:
            f.write("version: 1\n"
                    "settings:\n"
                    f"  http: {{listen: \"127.0.0.1:{self.port}\"{', tap: true' if tap else ''}}}\n"
                    "pipelines:\n"
                    "  copy:\n"
                    "    input: {type: stdin}\n"
                    "    outputs: [{type: stdout}]\n")
        self.out_path = os.path.join(tmp, f"{name}.out")
        self.err_path = os.path.join(tmp, f"{name}.err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([BIN, "run", self.cfg], stdin=subprocess.PIPE, stdout=self.out, stderr=self.err)
        self.fed = []
        self.lock = threading.Lock()
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.big = False  # the next messages carry a 300-byte string
        self.thread = threading.Thread(target=self.feed, daemon=True)
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 30, "the HTTP endpoint")
        check(self.proc.poll() is None, "switchyard run exited:\n" + self.stderr())
        self.thread.start()

    def feed(self):
        n = 0
        while not self.stopping.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                continue
            body = {"n": n, "s": "x" * 300} if self.big else {"n": n}
            line = json.dumps({"topic": f"org.example.tap.t{n % 3}", "body": body, "headers": {"h": n % 2},
                               "id": f"id-{n:06d}"}, separators=(",", ":"))
            with self.lock:
                self.fed.append(line)
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
            n += 1
            time.sleep(0.002)  # ~500 messages a second: pacing, not synchronisation

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def finish(self):
        self.stopping.set()
        self.thread.join(10)
        self.proc.stdin.close()
        rc = self.proc.wait(60)
        self.out.close()
        self.err.close()
        return rc


def tap(url, *args, timeout=60):
    t0 = time.monotonic()
    p = subprocess.run([BIN, "tap", url, *args], capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


def main():
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(tmp, "on", tap=True)
        off = Run(tmp, "off", tap=False)
        try:
            url = f"http://127.0.0.1:{run.port}"
            wait_for(lambda: len(run.fed) >= 50, 30, "messages to flow")

            # A bounded sample of one pipeline, in order.
            p, _ = tap(url, "copy", "--limit", "5", "--seconds", "30")
            check(p.returncode == 0, f"tap exit {p.returncode}: {p.stderr}")
            lines = p.stdout.splitlines()
            check(len(lines) == 5, f"5 lines expected, got {len(lines)}:\n{p.stdout}")
            got = [json.loads(line) for line in lines]
            with run.lock:
                fed = {json.loads(line)["id"]: json.loads(line) for line in run.fed}
            ns = []
            for m in got:
                check(set(m) == {"time", "pipeline", "topic", "id", "headers", "body", "body_bytes", "truncated"},
                      f"members of {m}")
                check(m["pipeline"] == "copy", f"pipeline of {m}")
                src = fed.get(m["id"])
                check(src is not None, f"{m['id']} was never fed")
                check(m["topic"] == src["topic"] and m["body"] == src["body"] and m["headers"] == src["headers"],
                      f"tapped {m} differs from fed {src}")
                check(m["truncated"] is False and m["body_bytes"] == len(json.dumps(src["body"], separators=(",", ":"))),
                      f"size of {m}")
                check(m["time"].endswith("Z") and len(m["time"]) == 24, f"time {m['time']}")
                ns.append(m["body"]["n"])
            check(ns == sorted(ns) and len(set(ns)) == 5, f"tapped in order: {ns}")
            check("5 message(s), 0 skipped" in p.stderr and "ended: limit" in p.stderr, f"tap stderr: {p.stderr}")
            log(f"ok: tap --limit 5 printed 5 messages in order ({ns})")

            # Long bodies are cut.
            run.big = True
            time.sleep(0.1)  # let the messages already queued pass (pacing only: checked below)
            p, _ = tap(url, "copy", "--limit", "20", "--body-bytes", "10")
            check(p.returncode == 0, f"tap exit {p.returncode}: {p.stderr}")
            cut = [json.loads(line) for line in p.stdout.splitlines()]
            check(len(cut) == 20, f"20 lines expected, got {len(cut)}")
            big = [m for m in cut if m["truncated"]]
            check(big, f"no truncated body among {cut}")
            for m in big:
                full = json.dumps(fed_body(run, m["id"]), separators=(",", ":"))
                check(m["body"] == full[:10] and m["body_bytes"] == len(full) and len(full) > 10, f"cut body {m}")
            run.big = False
            log(f"ok: --body-bytes 10 cut {len(big)} long bodies to 10 bytes")

            # An idle pipeline: the tap ends at --seconds with nothing.
            run.paused.set()
            time.sleep(0.3)  # what was fed before the pause passes (pacing only)
            p, took = tap(url, "copy", "--seconds", "1.5")
            check(p.returncode == 0, f"tap exit {p.returncode}: {p.stderr}")
            check(p.stdout == "", f"no message expected while paused:\n{p.stdout}")
            check("0 message(s)" in p.stderr and "ended: seconds" in p.stderr, f"tap stderr: {p.stderr}")
            check(1.4 <= took < 6, f"--seconds 1.5 took {took:.2f} s")
            run.paused.clear()
            log(f"ok: --seconds 1.5 on an idle pipeline ended after {took:.2f} s with no message")

            # The HTTP side: chunked JSON lines, then the end line.
            with urllib.request.urlopen(f"{url}/tap?pipeline=copy&limit=7&seconds=30", timeout=30) as r:
                check(r.status == 200, f"status {r.status}")
                check(r.headers.get("Content-Type", "").startswith("application/x-ndjson"),
                      f"content type {r.headers.get('Content-Type')}")
                raw = [line for line in r.read().decode().split("\n") if line]
            end = json.loads(raw[-1])
            check(list(end) == ["end"] and end["end"]["reason"] == "limit" and end["end"]["sampled"] == 7
                  and len(raw) == 8, f"GET /tap: {raw}")
            log("ok: GET /tap streamed 7 lines and the end line")

            # Bad requests.
            p, _ = tap(url, "nope", "--limit", "1")
            check(p.returncode == 1 and "404" in p.stderr and "no pipeline 'nope'" in p.stderr and "copy" in p.stderr,
                  f"unknown pipeline: {p.returncode} {p.stderr}")
            try:
                urllib.request.urlopen(f"{url}/tap?limit=0", timeout=10)
                check(False, "limit=0 was accepted")
            except urllib.error.HTTPError as e:
                body = e.read().decode()
                check(e.code == 400 and "limit=0" in body, f"limit=0: {e.code} {body}")
            p, _ = tap(f"127.0.0.1:{off.port}", "--limit", "1")
            check(p.returncode == 1 and "the tap is off" in p.stderr and "settings.http" in p.stderr,
                  f"tap off: {p.returncode} {p.stderr}")
            p, _ = tap("http://127.0.0.1:1/x")
            check(p.returncode == 2 and "without a path" in p.stderr, f"bad URL: {p.returncode} {p.stderr}")
            log("ok: unknown pipeline 404, bad limit 400, tap off 404, bad URL refused")
        finally:
            rc = run.finish()
            rc_off = off.finish()
        check(rc == 0 and rc_off == 0, f"switchyard exit {rc}/{rc_off}\n{run.stderr()[-3000:]}")
        with open(run.out_path, "rb") as f:
            out = f.read().decode().splitlines()
        check(out == run.fed, f"stdout has {len(out)} lines, {len(run.fed)} were fed (or the order changed)")
        log(f"ok: all {len(out)} fed lines came out of stdout, in order")


def fed_body(run, mid):
    with run.lock:
        for line in run.fed:
            m = json.loads(line)
            if m["id"] == mid:
                return m["body"]
    raise AssertionError(f"{mid} was never fed")


if __name__ == "__main__":
    main()
