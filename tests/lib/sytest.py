#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Helpers shared by the Python tests (one copy each): polling a condition with a deadline,
a free TCP port, GET of the operations endpoint, `switchyard check`, and the `stats:` lines of
`switchyard run`.

The tests put this directory on sys.path themselves:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))"""
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request


def wait_for(cond, timeout, what, interval=0.05):
    """Polls @cond every @interval seconds until it returns something truthy, and returns
    that; raises AssertionError naming @what after @timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    """(status, content type, body text) of GET @url. An HTTP error status is returned like
    any other (with its body); (None, None, "") when nothing answered (refused, reset)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None, None, ""


def run_check(*args, env=None, timeout=60):
    """`switchyard check ARGS...` (the binary in $SWITCHYARD_BIN): (exit status, stdout + stderr)."""
    p = subprocess.run([os.environ["SWITCHYARD_BIN"], "check", *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def read_output(proc, line=lambda raw: raw.decode("utf-8", "replace")):
    """Reads @proc's stdout and stderr on two daemon threads, each line through @line into
    a list; returns (stdout list, stderr list, the two threads)."""
    out, err = [], []

    def read(stream, into):
        for raw in stream:
            into.append(line(raw))
    threads = [threading.Thread(target=read, args=(s, o), daemon=True)
               for s, o in ((proc.stdout, out), (proc.stderr, err))]
    for t in threads:
        t.start()
    return out, err, threads


# A `stats:` line of `switchyard run`: one plugin instance, the counters that changed since
# the previous line (the totals at exit), each NAME=N or NAME{LABEL=VALUE}=N. A counter never
# logged has been zero throughout.
STATS_RE = re.compile(r'stats: pipeline=(\S+) plugin="([^"]*)"((?: [^\s={]+(?:\{[^}]*\})?=-?\d+)+)$', re.M)
COUNTER_RE = re.compile(r' (\w+)(?:\{\w+=([^}]*)\})?=(-?\d+)')


def parse_stats(text):
    """Every counter of every `stats:` line in @text, in order: [(pipeline, plugin, name,
    label value or "", value)]."""
    out = []
    for m in STATS_RE.finditer(text):
        for c in COUNTER_RE.finditer(m.group(3)):
            out.append((m.group(1), m.group(2), c.group(1), c.group(2) or "", int(c.group(3))))
    return out


class Counters(dict):
    """Counters read from `stats:` lines. A counter never logged has been zero throughout
    (a line shows only what changed, the totals at exit every counter not zero), so a
    missing key reads as 0, through [] and get() alike."""

    def __missing__(self, key):
        return 0

    def get(self, key, default=0):
        return super().get(key, default)
