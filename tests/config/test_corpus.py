#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Broken configurations through the real command (docs/configuration.md, "Limits").

For every tests/config/bad/*.yaml, `$SWITCHYARD_BIN check FILE` must exit 2 within a
few seconds and print exactly the diagnostics listed in the file's trailing comments,
each exactly once, and count them truthfully in its "N error(s)[, M warning(s)]" trailer:

    # expect: LINE:COL TEXT      one line per error; the error must read
                                 "FILE:LINE:COL: ..." and contain TEXT (" ... " in TEXT
                                 stands for any characters)
    # warn: LINE:COL TEXT        one line per warning ("FILE:LINE:COL: PATH: warning: ...")
    # forbid: TEXT               TEXT must appear nowhere in the output (secrets)
    # args: ARGS                 more arguments for `check` (e.g. --strict)
    # needs-env: NAME=VALUE      set in the environment of `check` (e.g. a fixture's path)

A file's ${SY_CORPUS_DIR} expands to the corpus directory (its fixtures live in
bad/files/).

Generated cases (too big to commit) follow: deep nesting, oversized files, too many
nodes, random bytes and truncated/mutated copies of a valid file. Plugins come from
SWITCHYARD_PLUGIN_PATH (set by meson's sy_test_env).
"""
import glob
import os
import random
import re
import subprocess
import sys
import tempfile
import time

BIN = os.environ["SWITCHYARD_BIN"]
BAD_DIR = sys.argv[1]
TIME_LIMIT_S = 3.0

ENV = dict(os.environ)
ENV.pop("SY_CORPUS_UNSET", None)
ENV["SY_CORPUS_SET"] = "set"
ENV["SY_CORPUS_NL"] = "two\nlines"

passed = 0
failed = 0


def report(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"FAIL {name}")
        for p in problems:
            print(f"    {p}")
    else:
        passed += 1
        print(f"ok   {name}")


def run_check(path, args=(), env=None):
    start = time.monotonic()
    proc = subprocess.run([BIN, "check", *args, path], capture_output=True, text=True,
                          errors="replace", env=env or ENV, timeout=30)
    return proc, time.monotonic() - start


TRAILER = re.compile(r"(\d+) error\(s\)(?:, (\d+) warning\(s\))?(?: \(.*\))?")


def diagnostics(proc, path, problems, with_warnings=False):
    """The error lines printed for @path (and, with @with_warnings, the warning lines as a
    second list); checks the "N error(s)[, M warning(s)]" trailer against the lines, and
    that every one of them carries file:line:column."""
    lines = proc.stderr.splitlines()
    m = TRAILER.fullmatch(lines[-1]) if lines else None
    if not m:
        problems.append(f"no 'N error(s)' trailer; stderr: {proc.stderr[-2000:]!r}")
        return ([], []) if with_warnings else []
    count = int(m.group(1))
    n_warn = int(m.group(2) or 0)
    printed = lines[-1 - count - n_warn:-1] if count + n_warn else []
    diags = [d for d in printed if ": warning: " not in d]
    warns = [d for d in printed if ": warning: " in d]
    if len(printed) != count + n_warn or len(diags) != count or len(warns) != n_warn:
        problems.append(f"trailer says {count} errors and {n_warn} warnings, found "
                        f"{len(diags)} error lines and {len(warns)} warning lines")
    pos = re.compile(re.escape(path) + r":[1-9]\d*:[1-9]\d*: ")
    for d in printed:
        if not pos.match(d):
            problems.append(f"no file:line:column: {d!r}")
    # Each problem once: the same line printed twice is a repeat, not a second problem.
    for d in sorted(set(printed)):
        if printed.count(d) > 1:
            problems.append(f"printed {printed.count(d)} times: {d}")
    return (diags, warns) if with_warnings else diags


def expect_exit_2(proc, elapsed, problems):
    if proc.returncode != 2:
        problems.append(f"exit code {proc.returncode}, expected 2; stderr: {proc.stderr[-2000:]!r}")
    if elapsed > TIME_LIMIT_S:
        problems.append(f"took {elapsed:.2f} s (limit {TIME_LIMIT_S} s)")


def matches(diag, prefix, text):
    if not diag.startswith(prefix):
        return False
    rest = diag[len(prefix):]
    at = 0
    for piece in text.split(" ... "):
        found = rest.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


# ---------------------------------------------------------------------------------------
# The committed corpus

files = sorted(glob.glob(os.path.join(BAD_DIR, "*.yaml")))
if len(files) < 25:
    report("corpus size", [f"only {len(files)} files in {BAD_DIR}"])

for path in files:
    path = os.path.abspath(path)
    name = os.path.basename(path)
    problems = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:  # 47 is not UTF-8
        text = f.read()
    expects = re.findall(r"^# expect: (\d+):(\d+) (.*)$", text, re.M)
    warn_expects = re.findall(r"^# warn: (\d+):(\d+) (.*)$", text, re.M)
    forbids = re.findall(r"^# forbid: (.*)$", text, re.M)
    args = [a for line in re.findall(r"^# args: (.*)$", text, re.M) for a in line.split()]
    env = dict(ENV, SY_CORPUS_DIR=os.path.dirname(path))
    for name, value in re.findall(r"^# needs-env: (\w+)=(.*)$", text, re.M):
        env[name] = value.replace("${SY_CORPUS_DIR}", os.path.dirname(path))
    if not expects and not warn_expects:
        problems.append("the file has no '# expect:' or '# warn:' line")
    proc, elapsed = run_check(path, args, env)
    expect_exit_2(proc, elapsed, problems)
    diags, warns = diagnostics(proc, path, problems, with_warnings=True)
    for kind, got, wanted in (("errors", diags, expects), ("warnings", warns, warn_expects)):
        if len(got) != len(wanted):
            problems.append(f"{len(got)} {kind}, expected {len(wanted)}")
        unmatched = list(got)
        for line, col, want in wanted:
            prefix = f"{path}:{line}:{col}: "
            hit = next((d for d in unmatched if matches(d, prefix, want)), None)
            if hit is None:
                problems.append(f"missing: {line}:{col} {want}")
            else:
                unmatched.remove(hit)  # each expectation takes one line: each exactly once
        for d in unmatched:
            problems.append(f"unexpected: {d}")
    for secret in forbids:
        if secret in proc.stderr or secret in proc.stdout:
            problems.append(f"forbidden text {secret!r} was printed")
    report(name, problems)

# ---------------------------------------------------------------------------------------
# Generated cases

VALID = """version: 1
settings:
  queue_max_messages: 100
pipelines:
  p:
    input: {type: stdin, path: "/tmp/in.jsonl"}
    outputs:
      - type: stdout
        path: /tmp/out.jsonl
"""

tmp = tempfile.mkdtemp(prefix="sy-corpus-")


def generated(name, content, want=None, mode="w"):
    """@content must be refused with exit 2; @want (regex) must match a diagnostic."""
    path = os.path.join(tmp, name)
    with open(path, mode) as f:
        f.write(content)
    problems = []
    proc, elapsed = run_check(path)
    expect_exit_2(proc, elapsed, problems)
    diags = diagnostics(proc, path, problems)
    if not diags:
        problems.append("no diagnostic")
    if want and not any(re.search(want, d) for d in diags):
        problems.append(f"no diagnostic matches {want!r}: {diags[:5]}")
    report(f"generated {name}", problems)
    os.unlink(path)


# The valid base file really is valid (otherwise the mutations below prove nothing).
base = os.path.join(tmp, "valid.yaml")
with open(base, "w") as f:
    f.write(VALID)
proc, _ = run_check(base)
report("generated valid.yaml is accepted",
       [] if proc.returncode == 0 else [f"exit {proc.returncode}: {proc.stderr[-2000:]!r}"])

generated("deep-flow.yaml", "version: 1\npipelines: " + "[" * 10000 + "]" * 10000 + "\n",
          r":2:\d+: nested more than \d+ levels")
generated("deep-block.yaml",
          "version: 1\n" + "".join(" " * i + "a:\n" for i in range(2000)),
          r": nested (more than \d+ levels|too deeply)")
generated("deep-flow-map.yaml", "version: 1\npipelines: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n",
          r":2:\d+: nested more than \d+ levels")
generated("ten-mib.yaml", VALID + "#" + "x" * (10 << 20) + "\n",
          r":1:1: the file is \d+ bytes; configurations larger than 4 MiB are refused")
generated("too-many-nodes.yaml", "version: 1\nx: [" + "1," * 250000 + "1]\n",
          r":2:\d+: the document has more than \d+ YAML nodes")
generated("many-aliases.yaml",
          "version: 1\nx: &a [1]\ny: [" + ", ".join(["*a"] * 100000) + "]\n" + VALID[11:],
          r"unknown key 'x'")
generated("nul-bytes.yaml", b"version: 1\n\x00\x00\x00pipelines: {}\n", None, mode="wb")

rng = random.Random(19)
generated("random-bytes.yaml", bytes(rng.randrange(256) for _ in range(65536)), None, mode="wb")

# Truncated and mutated copies of the valid file: never a crash or a hang; when refused,
# every diagnostic has its position.
mutants = []
for cut in range(5, len(VALID) - 1, 9):
    mutants.append(("truncated-%d" % cut, VALID[:cut]))
for i in range(40):
    chars = list(VALID)
    for _ in range(3):
        chars[rng.randrange(len(chars))] = rng.choice("\t\"'{}[]:,-&*!%@`|>#\n ")
    mutants.append(("mutated-%d" % i, "".join(chars)))
for name, content in mutants:
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(content)
    problems = []
    proc, elapsed = run_check(path)
    if proc.returncode not in (0, 2):
        problems.append(f"exit code {proc.returncode}; stderr: {proc.stderr[-2000:]!r}")
    if elapsed > TIME_LIMIT_S:
        problems.append(f"took {elapsed:.2f} s")
    if proc.returncode == 2:
        diagnostics(proc, path, problems)
    report(f"generated {name}", problems)
    os.unlink(path)

os.unlink(base)
os.rmdir(tmp)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
