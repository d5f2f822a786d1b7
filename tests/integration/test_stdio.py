#!/usr/bin/python3
"""stdin -> stdout through `switchyard run`: 100,000 JSON lines pass unchanged and in order;
bad lines are skipped, each logged with its line number and counted under its reason."""
import json
import os
import random
import re
import subprocess
import sys
import tempfile

BIN = os.environ["SWITCHYARD_BIN"]


def main():
    rng = random.Random(42)
    good, lines, bad = [], [], {}
    bad_kinds = [
        ("invalid_json", lambda i: '{"topic": "a", "body": {'),
        ("not_an_object", lambda i: '[1, 2, 3]'),
        ("not_an_object", lambda i: '"just a string"'),
        ("missing_topic", lambda i: '{"body": {"n": %d}}' % i),
        ("bad_headers", lambda i: '{"topic":"a.b","body":{},"headers":[1],"id":"x"}'),
        ("invalid_utf8", lambda i: '{"topic":"a.b","body":{"s":"\xff\xfe"},"headers":{},"id":"u"}'),
    ]
    for i in range(100_000):
        if i % 997 == 5:
            reason, make = bad_kinds[(i // 997) % len(bad_kinds)]
            lines.append(make(i))
            bad[len(lines)] = reason  # 1-based line number
        body = {"n": i, "s": "x" * rng.randint(0, 40), "f": 1.5e300, "u": "\u00e9\u2028\U0001f600",
                "big": 123456789012345678901234567890, "nest": {"a": [1, {"b": None}]}}
        line = json.dumps({"topic": f"org.example.t{i % 17}", "body": body,
                           "headers": {"h": i % 3}, "id": f"2026-{i:08d}"},
                          separators=(",", ":"), ensure_ascii=(i % 2 == 0))
        lines.append(line)
        good.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "p.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\npipelines:\n  copy:\n    input: {type: stdin}\n"
                    "    outputs: [{type: stdout}]\n")
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        data = data.replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe")  # make the invalid-UTF-8 lines really invalid
        proc = subprocess.run([BIN, "run", cfg], input=data, capture_output=True, timeout=240)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{err[-3000:]}"
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == "", "output does not end with a newline"
    out = out[:-1]
    assert len(out) == len(good), f"{len(out)} lines out, {len(good)} expected"
    for n, (a, b) in enumerate(zip(out, good)):
        assert a == b, f"line {n} changed:\n in: {b}\nout: {a}"

    # Every bad line is reported with its number, and counted under its reason.
    for lineno in bad:
        assert re.search(rf"line {lineno}: .*skipped", err), f"no log line for bad line {lineno}"
    expected = {}
    for reason in bad.values():
        expected[reason] = expected.get(reason, 0) + 1
    for reason, n in expected.items():
        m = re.search(r'dropped\{reason=' + reason + r'\}=(\d+)', err)
        assert m, f"no dropped counter for {reason} in:\n{err[-2000:]}"
        assert int(m.group(1)) == n, f"{reason}: counted {m.group(1)}, expected {n}"
    m = re.search(r'pipeline=copy plugin="outputs\[0\] \(stdout\)"(?: \S+)* sent=(\d+)', err)
    assert m and int(m.group(1)) == len(good), "sent counter does not match"
    print(f"ok: {len(good)} lines unchanged, {len(bad)} bad lines counted by reason {expected}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e, file=sys.stderr)
        sys.exit(1)
