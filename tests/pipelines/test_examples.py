#!/usr/bin/python3
"""`switchyard test` runs the example pipelines' tests (examples/pipelines/tests/*.yaml)
with a test PKI made here (tests/crypto/pyhelper.py): every case passes, one ok line per
case, and the run opens no network socket (strace watches socket, bind, connect, listen)."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["SWITCHYARD_SOURCE_ROOT"]
sys.path.insert(0, os.path.join(SRC, "tests", "crypto"))
import pyhelper  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def main():
    files = sorted(glob.glob(os.path.join(SRC, "examples", "pipelines", "tests", "*.yaml")))
    check(len(files) >= 6, f"example tests found: {files}")
    cases = []
    for f in files:
        with open(f) as fh:  # every case starts with "  - name: ..." in these files
            cases += [(f, m.group(1)) for m in re.finditer(r"^  - name: (.*)$", fh.read(), re.M)]
    pki = tempfile.mkdtemp(prefix="sy-pipetest-pki-")
    try:
        pyhelper.pki(pki)
        env = dict(os.environ, PIPELINE_TEST_PKI=pki)
        trace = os.path.join(pki, "strace.log")
        cmd = ["strace", "-f", "-qq", "-o", trace, "-e", "trace=socket,bind,connect,listen", BIN, "test", *files]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        print(r.stdout)
        print(r.stderr, file=sys.stderr)
        check(r.returncode == 0, f"exit status {r.returncode}, expected 0")
        lines = r.stdout.splitlines()
        want = [f"ok      {f}: {name}" for f, name in cases]
        check(lines[:-1] == want, "one ok line per case, in file order")
        check(lines[-1] == f"{len(cases)} passed, 0 failed", f"summary: {lines[-1]!r}")
        with open(trace) as fh:
            calls = fh.read()
        # AF_UNIX is allowed: the C library asks nscd for the user name (zmq-pub's default
        # envelope username); a network socket, bind or listen is not.
        net = [l for l in calls.splitlines() if re.search(r"AF_INET6?\b|\blisten\(", l)
               or (re.search(r"\b(bind|connect)\(", l) and "AF_UNIX" not in l)]
        check(not net, "no network socket, bind, connect or listen: " + "\n".join(net[:5]))
    finally:
        shutil.rmtree(pki, ignore_errors=True)
    print(f"ok: {len(cases)} cases of {len(files)} example test files passed, no socket opened")


if __name__ == "__main__":
    main()
