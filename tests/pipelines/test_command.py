#!/usr/bin/python3
"""`switchyard test` itself: a failing case reports exactly which output, field or drop
counter differs (expected vs got) and exits 1; a broken test file exits 2 with each problem
at file:line:column and key path; a broken pipeline file too. Uses examples/pipelines/
stdio.yaml (no PKI, no broker)."""
import os
import subprocess
import sys
import tempfile

SRC = os.environ["SWITCHYARD_SOURCE_ROOT"]
BIN = os.environ["SWITCHYARD_BIN"]
STDIO = os.path.join(SRC, "examples", "pipelines", "stdio.yaml")
TMP = tempfile.mkdtemp(prefix="sy-pipetest-cmd-")


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(*files):
    r = subprocess.run([BIN, "test", *files], capture_output=True, text=True, timeout=60)
    print(r.stdout, end="")
    print(r.stderr, end="", file=sys.stderr)
    return r


def expect_lines(got, want, what):
    got = got.splitlines()
    if got != want:
        sys.exit(f"FAIL: {what}:\n  got:  {got}\n  want: {want}")


def failing_case():
    f = write("failing.yaml", f"""pipeline_file: {STDIO}
tests:
  - name: passes
    input:
      - message: {{topic: a.b, body: {{n: 1}}, id: "1"}}
    outputs:
      outputs[0]:
        - {{topic: a.b, body.n: 1}}
  - name: wrong field, wrong count, unexpected drop
    input:
      - message: {{topic: a.b, body: {{n: 1, tags: [x, y]}}, headers: {{k: v}}, id: "1"}}
      - line: 'not json'
      - message: {{topic: a.c, body: {{}}}}
    outputs:
      stdout:
        - topic: a.b
          body.n: 2
          body.tags: {{contains: z}}
          headers.k: {{regex: '^w'}}
          headers.missing: {{exists: true}}
          nosuchfield: 1
        - {{topic: a.c}}
        - {{topic: a.d}}
    counters:
      outputs[0].sent: 3
      outputs[0].sentt: 1
""")
    r = run(f)
    check(r.returncode == 1, f"a failing case exits 1, got {r.returncode}")
    expect_lines(r.stdout, [
        f"ok      {f}: passes",
        f"FAILED  {f}: wrong field, wrong count, unexpected drop",
        "          outputs[0] (stdout): expected 3 messages, got 2",
        "          outputs[0] (stdout) message 1: body.n: expected 2, got 1",
        '          outputs[0] (stdout) message 1: body.tags: expected to contain "z", got ["x","y"]',
        '          outputs[0] (stdout) message 1: headers.k: expected to match /^w/, got "v"',
        "          outputs[0] (stdout) message 1: headers.missing: expected present, got absent",
        "          outputs[0] (stdout) message 1: nosuchfield: no such field (this output has: body, headers, id, line, topic)",
        "          outputs[0] (stdout) message 3: missing (expected at 23:11)",
        "          outputs[0].sent: expected 3, got 2",
        "          outputs[0].sentt: expected 1, got 0 (no such counter at outputs[0]; there are: errors, sent)",
        "          unexpected dropped{reason=invalid_json}: 1 (not listed under drops)",
        "1 passed, 1 failed",
    ], "the failing case's report")


def broken_file():
    f = write("broken.yaml", f"""pipeline_file: {STDIO}
tests:
  - name: one
    ouputs: {{}}
    input:
      - message: {{topic: a.b}}
        extra: 1
    outputs:
      outputs[3]: []
      outputs[0]:
        - {{body: {{regex: '(('}}}}
    drops:
      sent: 1
      dropped{{outcome=x}}: 1
  - name: one
""")
    r = run(f)
    check(r.returncode == 2, f"a broken test file exits 2, got {r.returncode}")
    expect_lines(r.stderr, [
        f"{f}:4:5: tests[0].ouputs: unknown key 'ouputs' in a test case (did you mean 'outputs'?); "
        "allowed keys: name, pipeline, input, outputs, drops, counters",
        f"{f}:11:26: tests[0].outputs.outputs[0][0].body.regex: invalid regular expression '((': "
        + regex_error("(("),
        f"{f}:13:7: tests[0].drops.sent: 'sent' is not a drop counter (dropped, failed, errors, lost, "
        "retry_exhausted); put it under counters",
        f"{f}:14:7: tests[0].drops.dropped{{outcome=x}}: the label of 'dropped' is 'reason', not 'outcome'",
        f"{f}:15:11: tests[1].name: two test cases are named 'one'",
        "5 errors",
    ], "the broken file's diagnostics")
    check(r.stdout.splitlines()[-1] == "0 passed, 0 failed, 1 test file with errors", "summary")

    # Problems found against the pipeline: the input's keys, an output it does not have.
    f = write("broken2.yaml", f"""pipeline_file: {STDIO}
tests:
  - name: one
    input:
      - message: {{topic: a.b}}
        extra: 1
    outputs:
      outputs[3]: []
""")
    r = run(f)
    check(r.returncode == 2, f"exit 2, got {r.returncode}")
    expect_lines(r.stderr, [
        f"{f}:6:9: tests[0].input[0].extra: unknown key 'extra' in an input message of stdin; allowed keys: line, message",
        f"{f}:8:7: tests[0].outputs.outputs[3]: pipeline 'copy' has no output 'outputs[3]' (it has: outputs[0] (stdout))",
        "2 errors",
    ], "problems against the pipeline")

    f = write("syntax.yaml", "pipeline_file: x.yaml\ntests: [\n")
    r = run(f)
    check(r.returncode == 2, f"a YAML syntax error exits 2, got {r.returncode}")
    check(r.stderr.startswith(f"{f}:3:1: YAML syntax error: "), f"syntax error at file:line:col: {r.stderr!r}")


def regex_error(pattern):
    # std::regex's own words for the problem (libstdc++), as the command prints them.
    return "Mismatched '(' and ')' in regular expression"


def broken_pipeline():
    cfg = write("bad-pipeline.yaml", "version: 1\npipelines:\n  p:\n    input: {type: stdin, nope: 1}\n"
                "    outputs: [{type: stdout}]\n")
    f = write("uses-bad.yaml", "pipeline_file: bad-pipeline.yaml\ntests:\n  - name: x\n")
    r = run(f)
    check(r.returncode == 2, f"a broken pipeline file exits 2, got {r.returncode}")
    lines = r.stderr.splitlines()
    check(lines[0] == f"{f}:1:16: pipeline_file: the pipeline configuration {cfg} has errors:", f"first line {lines[0]!r}")
    check(lines[1].startswith(f"{cfg}:4:26: pipelines.p.input.nope: unknown key 'nope'"), f"second line {lines[1]!r}")

    # A network input is replaced during the test, but its entry is still checked by the
    # plugin itself, with the same words as `switchyard run` and `check`.
    cfg = write("bad-endpoint.yaml", "version: 1\npipelines:\n  p:\n"
                "    input: {type: zmq-sub, endpoints: [\"tcp://nohost\"]}\n    outputs: [{type: stdout}]\n")
    f = write("uses-bad-endpoint.yaml", "pipeline_file: bad-endpoint.yaml\ntests:\n  - name: x\n")
    r = run(f)
    check(r.returncode == 2, f"a bad endpoint exits 2, got {r.returncode}")
    expect_lines(r.stderr, [
        f"{f}:1:16: pipeline_file: the pipeline configuration {cfg} has errors:",
        f"{cfg}:4:40: pipelines.p.input.endpoints[0]: 'tcp://nohost' is not a usable endpoint: no port: "
        "write tcp://HOST:PORT",
        "1 error",
    ], "the real zmq-sub's diagnostic")


def main():
    failing_case()
    broken_file()
    broken_pipeline()
    print("ok")


if __name__ == "__main__":
    main()
