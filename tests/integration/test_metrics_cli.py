#!/usr/bin/python3
"""The operations endpoint of `switchyard run` on a stdin -> stdout pipeline (no broker):
GET /metrics parsed by Debian's python3-prometheus-client, /health/live, /health/ready,
/pipelines, `switchyard top`, and the errors of a bad or busy address.

Checked:
  * `--http` wins over settings.http.listen (the file's port stays closed);
  * /metrics is the text format 0.0.4 (Content-Type), every family has HELP and TYPE and
    a switchyard_ name; after N messages: received_total, sent_total and
    completed_total{outcome="delivered"} are N with labels pipeline, plugin and place, the
    latency histogram counts N with cumulative buckets ending in +Inf = N, in_flight and
    queue_depth are 0, build_info carries the version, process_start_time is now-ish;
  * /health/live and /health/ready answer 200 with JSON; /pipelines names the pipeline
    running, its plugins with their counters and the last message time (ISO 8601, ms);
  * an unknown path answers 404 naming the served ones;
  * `switchyard top URL --iterations 2` prints two plain-text tables (stdout is a pipe)
    with a row per pipeline and plugin and a receive rate above 0 while messages flow;
  * a port that is taken: exit 1 naming the address and the cause, before any pipeline
    starts; a bad --http value: exit 2 with the reason; `check` accepts a bare port."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from sytest import free_port, http_get, wait_for  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]
N = 25


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def scrape(url):
    """{(sample name, frozenset(labels)): value} and {family name: family} of /metrics."""
    status, ctype, text = http_get(url + "/metrics")
    check(status == 200, f"/metrics answered {status}")
    check(ctype == "text/plain; version=0.0.4; charset=utf-8", f"Content-Type {ctype}")
    samples, families = {}, {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families, text


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class Run:
    """`switchyard run FILE --http ADDR` of a stdin -> stdout pipeline named `copy`."""

    def __init__(self, cfg, http):
        self.proc = subprocess.Popen([BIN, "run", cfg, "--http", http], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.err = []
        self.t = threading.Thread(target=lambda: self.err.extend(l.decode() for l in self.proc.stderr), daemon=True)
        self.t.start()
        self.n = 0
        self.lock = threading.Lock()

    def send(self, count):
        with self.lock:
            for _ in range(count):
                line = json.dumps({"topic": "org.example.metrics", "body": {"n": self.n}, "id": f"m-{self.n}"})
                self.proc.stdin.write(line.encode() + b"\n")
                self.n += 1
            self.proc.stdin.flush()

    def stderr(self):
        return "".join(self.err)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        file_port, port = free_port(), free_port()
        cfg = os.path.join(tmp, "copy.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\n"
                    f"settings:\n  http:\n    listen: \"127.0.0.1:{file_port}\"\n"
                    "pipelines:\n  copy:\n    input: {type: stdin}\n    outputs: [{type: stdout}]\n")
        run = Run(cfg, f"127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: http_get(url + "/health/ready")[0] == 200 or run.proc.poll() is not None, 30,
                     "/health/ready to answer 200")
            check(run.proc.poll() is None, "switchyard run exited:\n" + run.stderr())
            check(f"http: serving /metrics, /health/live, /health/ready and /pipelines on http://127.0.0.1:{port}/"
                  in run.stderr(), run.stderr())
            check(http_get(f"http://127.0.0.1:{file_port}/metrics")[0] is None, "--http wins over the file's address")
            status, ctype, body = http_get(url + "/health/ready")
            check(ctype == "application/json" and json.loads(body) == {"status": "ready", "pipelines": 1}, body)
            status, _, body = http_get(url + "/health/live")
            check(status == 200 and json.loads(body)["status"] == "live", body)

            run.send(N)
            key = dict(pipeline="copy", plugin="stdout", place="outputs[0]")
            wait_for(lambda: value(scrape(url)[0], "switchyard_sent_total", **key) == N, 30, f"{N} sent")
            wait_for(lambda: value(scrape(url)[0], "switchyard_in_flight", pipeline="copy") == 0, 30, "nothing in flight")
            samples, families, text = scrape(url)
            for name, fam in families.items():
                check(name.startswith("switchyard_"), f"family {name}")
                check(fam.documentation and fam.type in ("counter", "gauge", "histogram"), f"{name}: HELP/TYPE")
            check(f"# TYPE switchyard_received_total counter" in text, "counters are named with _total")
            check(families["switchyard_received"].type == "counter", families["switchyard_received"].type)
            check(families["switchyard_queue_depth"].type == "gauge", "queue_depth gauge")
            check(families["switchyard_queue_bytes"].type == "gauge", "queue_bytes gauge")
            check(families["switchyard_pipeline_latency_seconds"].type == "histogram", "latency histogram")
            inp = dict(pipeline="copy", plugin="stdin", place="input")
            check(value(samples, "switchyard_received_total", **inp) == N, "received")
            check(value(samples, "switchyard_completed_total", **inp, outcome="delivered") == N, "completed{outcome}")
            check(value(samples, "switchyard_queue_depth", **key) == 0, "queue_depth")
            check(value(samples, "switchyard_queue_bytes", **key) == 0, "queue_bytes")
            lat = "switchyard_pipeline_latency_seconds"
            check(value(samples, lat + "_count", pipeline="copy") == N, "latency count = delivered")
            check(0 < value(samples, lat + "_sum", pipeline="copy") < 30 * N, "latency sum")
            buckets = sorted((float(dict(k)["le"]), v) for (n, k), v in samples.items() if n == lat + "_bucket")
            check(len(buckets) == 17 and buckets[-1] == (float("inf"), N), f"buckets {buckets}")
            check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"cumulative buckets {buckets}")
            version = [dict(k) for (n, k), v in samples.items() if n == "switchyard_build_info" and v == 1]
            check(len(version) == 1 and version[0]["version"], f"build_info {version}")
            started = value(samples, "switchyard_process_start_time_seconds")
            check(time.time() - 300 < started <= time.time(), f"start time {started}")

            status, ctype, body = http_get(url + "/pipelines")
            check(status == 200 and ctype == "application/json", f"/pipelines {status} {ctype}")
            p = json.loads(body)["pipelines"]
            check(len(p) == 1 and p[0]["name"] == "copy" and p[0]["state"] == "running" and p[0]["ready"], body)
            check(p[0]["last_message"].endswith("Z") and len(p[0]["last_message"]) == 24, p[0]["last_message"])
            check(p[0]["gauges"]["in_flight"] == 0 and p[0]["latency_seconds"]["count"] == N, body)
            places = [(x["place"], x["type"]) for x in p[0]["plugins"]]
            check(places == [("input", "stdin"), ("outputs[0]", "stdout")], places)
            check(p[0]["plugins"][0]["counters"]["received"] == N, body)
            check(p[0]["plugins"][0]["counters"]["completed"] == {"delivered": N}, body)
            check(p[0]["plugins"][1]["counters"]["sent"] == N, body)

            status, _, body = http_get(url + "/nope")
            check(status == 404 and "/metrics" in body and "/health/ready" in body, f"404: {status} {body}")

            # top, while messages flow (a feeder sends 10 every 20 ms until top ends).
            done = threading.Event()

            def feed():
                while not done.is_set():
                    run.send(10)
                    time.sleep(0.02)  # pacing the feed, not synchronising

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            try:
                t0 = time.monotonic()
                top = subprocess.run([BIN, "top", url, "--iterations", "2", "--interval", "0.5"],
                                     capture_output=True, text=True, timeout=30)
                took = time.monotonic() - t0
            finally:
                done.set()
                feeder.join(10)
            check(top.returncode == 0, f"top: {top.returncode} {top.stderr}")
            check("\033[" not in top.stdout, "plain text when stdout is not a terminal")
            tables = top.stdout.split("\n\n")
            check(len(tables) == 2 and 0.9 < took < 20, f"two tables in {took:.1f}s:\n{top.stdout}")
            for t in tables:
                lines = t.splitlines()
                check(lines[0].startswith(f"switchyard top {url}/metrics  every 0.5 s"), lines[0])
                check(lines[1].split() == ["PIPELINE", "/", "PLUGIN", "RECV/s", "SENT/s", "DROP/s", "QUEUE",
                                           "IN-FLIGHT", "P50", "ms", "P99", "ms"], lines[1])
                row = lines[2].split()
                check(row[0] == "copy" and float(row[1]) > 0 and float(row[2]) > 0 and row[3] == "0.0", lines[2])
                check(lines[3].split()[:3] == ["input", "(stdin)", row[1]], lines[3])
                check(lines[4].split()[:2] == ["outputs[0]", "(stdout)"] and lines[4].split()[3] == row[2], lines[4])
            log(top.stdout)

            run.proc.stdin.close()
            check(run.proc.wait(30) == 0, "run exits 0 at the end of input:\n" + run.stderr())
        finally:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()

        # A taken port: exit 1 before any pipeline starts, naming the address and the cause.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            taken = busy.getsockname()[1]
            p = subprocess.run([BIN, "run", cfg, "--http", f"127.0.0.1:{taken}"], input=b"", capture_output=True,
                               timeout=30)
            err = p.stderr.decode()
            check(p.returncode == 1, f"exit {p.returncode}: {err}")
            check(f"start failed: http: cannot listen on 127.0.0.1:{taken}: Address already in use" in err, err)
            check("another process listens there" in err, err)
        # Bad --http values: exit 2 with the reason, nothing started.
        for arg, why in [("127.0.0.1:99999", "port 99999 is out of range"),
                         ("localhost", "'localhost' has no port"),
                         ("::1:9100", "write an IPv6 address in brackets"),
                         ("300.1.1.1:80", "'300.1.1.1' is not an IPv4 address or a host name")]:
            p = subprocess.run([BIN, "run", cfg, "--http", arg], input=b"", capture_output=True, timeout=30)
            err = p.stderr.decode()
            check(p.returncode == 2 and why in err, f"--http {arg}: exit {p.returncode}: {err}")
        # A bare port is a valid setting.
        with open(cfg, "w") as f:
            f.write("version: 1\nsettings:\n  http: {listen: 9100}\n"
                    "pipelines:\n  copy:\n    input: {type: stdin}\n    outputs: [{type: stdout}]\n")
        p = subprocess.run([BIN, "check", cfg], capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, f"check of a bare port: {p.returncode} {p.stderr}")
    log("ok")


if __name__ == "__main__":
    main()
