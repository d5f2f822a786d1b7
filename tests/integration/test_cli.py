#!/usr/bin/python3
"""The switchyard command as a new user meets it: `plugins`, `plugins NAME`, `check`."""
import os
import re
import subprocess
import sys
import tempfile

BIN = os.environ["SWITCHYARD_BIN"]



def host_abi():
    """(major, minor) from the ABI header the binary was built with."""
    text = open(os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "core/include/switchyard/abi.h")).read()
    return tuple(int(re.search(rf"#define SWITCHYARD_ABI_{k} (\d+)", text).group(1)) for k in ("MAJOR", "MINOR"))


ABI_MAJOR, ABI_MINOR = host_abi()
ABI = f"{ABI_MAJOR}.{ABI_MINOR}"

def run(*args, **kw):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, **kw)


def test_plugins_list():
    p = run("plugins")
    assert p.returncode == 0, p.stderr
    rows = {}
    for line in p.stdout.splitlines()[1:]:
        kind, name, version, abi, path = line.split(None, 4)
        rows[name] = (kind, version, abi, path)
    for name, kind in [("stdin", "source"), ("stdout", "sink"), ("test-source", "source"),
                       ("test-sink", "sink")]:
        assert name in rows, f"{name} missing from:\n{p.stdout}"
        assert rows[name][0] == kind
        assert re.fullmatch(r"\d+\.\d+\.\d+", rows[name][1])
        assert rows[name][2] == ABI
        assert rows[name][3].endswith(f"switchyard-{kind}-{name}.so") and os.path.isfile(rows[name][3])


def test_plugins_schema():
    p = run("plugins", "stdout")
    assert p.returncode == 0, p.stderr
    assert "stdout" in p.stdout and "sink" in p.stdout
    assert re.search(r"path \(string, default \"-\"\)\n\s+File to append to", p.stdout), p.stdout
    assert re.search(r"buffer_bytes \(integer, default 65536\)", p.stdout), p.stdout
    p = run("plugins", "test-sink")
    assert re.search(r"name \(string, required\)", p.stdout), p.stdout
    p = run("plugins", "no-such-plugin")
    assert p.returncode != 0 and "no-such-plugin" in p.stderr


FIVE_ERRORS = """\
version: 1
pipelines:
  p:
    input: {type: stdin, max_line_bytes: lots}
    filters:
      - type: no-such-filter
    outputs:
      - type: test-sink
        retry_every: 2
        colour: red
        retry_every: 3
"""


def test_check_reports_all_five():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "bad.yaml")
        with open(cfg, "w") as f:
            f.write(FIVE_ERRORS)
        p = run("check", cfg)
        assert p.returncode == 2, f"exit {p.returncode}\n{p.stdout}{p.stderr}"
        err = p.stderr
        expect = [
            # (line, column, key path, words in the message)
            (4, 42, "pipelines.p.input.max_line_bytes", "integer"),
            (6, 9, "pipelines.p.filters[0]", "unknown plugin 'no-such-filter'"),
            (10, 9, "pipelines.p.outputs[0].colour", "unknown key 'colour'"),
            (11, 9, "pipelines.p.outputs[0].retry_every", "duplicate key"),
            (8, 9, "pipelines.p.outputs[0]", "missing required key 'name'"),
        ]
        for line, col, path, words in expect:
            pat = re.escape(f"{cfg}:{line}:") + r"\d+" + re.escape(f": {path}") + r".*" + re.escape(words)
            assert re.search(pat, err), f"no diagnostic {cfg}:{line}:*: {path} ... {words} in:\n{err}"
        assert "allowed:" in err or "allowed keys" in err, err  # unknown key lists allowed keys


def test_check_ok():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "ok.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\npipelines:\n  p:\n    input: {type: stdin}\n    outputs: [{type: stdout}]\n")
        p = run("check", cfg)
        assert p.returncode == 0, p.stderr
        assert "OK" in p.stdout


def test_ack_outcomes_reach_the_source():
    """A loaded (.so) source hears each message's outcome from a loaded sink."""
    with tempfile.TemporaryDirectory() as tmp:
        rec = os.path.join(tmp, "outcomes.txt")
        cfg = os.path.join(tmp, "p.yaml")
        with open(cfg, "w") as f:
            f.write(f"version: 1\npipelines:\n  p:\n    input: {{type: test-source, count: 500, record_file: {rec}}}\n"
                    "    outputs: [{type: test-sink, name: s, retry_every: 5, reject_every: 7}]\n")
        p = run("run", cfg)
        assert p.returncode == 0, p.stderr
        outcomes = {}
        with open(rec) as f:
            for line in f:
                n, outcome, reason = line.split()
                outcomes[int(n)] = (outcome, reason)
        assert len(outcomes) == 500
        for n, (o, r) in outcomes.items():
            if n % 5 == 0:
                assert (o, r) == ("retry", "test_retry"), (n, o, r)
            elif n % 7 == 0:
                assert (o, r) == ("reject", "test_reject"), (n, o, r)
            else:
                assert (o, r) == ("delivered", "-"), (n, o, r)


def test_sigterm_stops_and_drains():
    """SIGTERM: inputs stop, what was read is written out, exit 0, totals logged."""
    import json
    import signal
    import time
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "p.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\npipelines:\n  p:\n    input: {type: stdin}\n    outputs: [{type: stdout}]\n")
        proc = subprocess.Popen([BIN, "run", cfg, "--log-format", "json"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(1000):
            proc.stdin.write(b'{"topic":"t","body":{"n":%d},"headers":{},"id":"%d"}\n' % (i, i))
        proc.stdin.flush()
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 1000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            got.append(line)
        assert len(got) == 1000, f"only {len(got)} lines before SIGTERM"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # stdin stays open: only the signal can stop it
        out, err = proc.communicate(timeout=20)
        assert time.monotonic() - t0 < 10, "took too long to stop"
        assert proc.returncode == 0, f"exit {proc.returncode}: {err.decode()[-2000:]}"
        records = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
        assert all({"time", "level", "message"} <= r.keys() for r in records), records[:3]
        messages = [r["message"] for r in records]
        assert any("SIGTERM" in m for m in messages), messages
        assert any('sent=1000' in m for m in messages), messages


def test_refused_plugin_is_named_in_check():
    """A config naming a plugin whose only file was refused says why, not just 'unknown'."""
    import shutil
    stdout_so = None
    for d in os.environ["SWITCHYARD_PLUGIN_PATH"].split(":"):
        cand = os.path.join(d, "switchyard-sink-stdout.so")
        if os.path.isfile(cand):
            stdout_so = cand
    assert stdout_so, "stdout plugin not found in SWITCHYARD_PLUGIN_PATH"
    with tempfile.TemporaryDirectory() as tmp:
        bad_dir = os.path.join(tmp, "plugins")
        os.mkdir(bad_dir)
        shutil.copy(stdout_so, bad_dir)
        os.chmod(os.path.join(bad_dir, "switchyard-sink-stdout.so"), 0o757)
        cfg = os.path.join(tmp, "p.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\npipelines:\n  p:\n    input: {type: test-source}\n    outputs: [{type: stdout}]\n")
        other = [d for d in os.environ["SWITCHYARD_PLUGIN_PATH"].split(":") if not os.path.isfile(os.path.join(d, "switchyard-sink-stdout.so"))]
        env = dict(os.environ, SWITCHYARD_PLUGIN_PATH=":".join([bad_dir] + other))
        p = subprocess.run([BIN, "check", cfg], capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 2, p.stderr
        assert re.search(r"p\.yaml:5:\d+: pipelines\.p\.outputs\[0\]\.type: unknown plugin 'stdout' \(refused .*world-writable", p.stderr), p.stderr


def test_bad_config_file_and_arguments():
    p = run("check", "/nonexistent/config.yaml")
    assert p.returncode == 2 and "cannot read" in p.stderr, p.stderr
    p = run("run")
    assert p.returncode != 0 and "file" in (p.stderr + p.stdout).lower()
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("switchyard ")


def test_global_options_anywhere():
    """--log-level, --log-format and --plugin-path work before and after the subcommand."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "ok.yaml")
        with open(cfg, "w") as f:
            f.write("version: 1\npipelines:\n  p:\n    input: {type: stdin}\n    outputs: [{type: stdout}]\n")
        for args in (["--log-level", "debug", "check", cfg], ["check", cfg, "--log-level", "debug"],
                     ["--log-level=debug", "check", "--log-format", "json", cfg]):
            p = run(*args)
            assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stderr}"
            assert p.stdout == f"{cfg}: OK\n", (args, p.stdout)
            assert "plugin 'stdin' loaded from" in p.stderr, f"{args}: no debug line in:\n{p.stderr}"
        p = run("--log-format", "json", "--log-level", "debug", "check", cfg)
        import json
        records = [json.loads(line) for line in p.stderr.splitlines() if line.strip()]
        assert any(r["level"] == "debug" and "plugin 'stdin' loaded from" in r["message"] for r in records), p.stderr
        p = run("check", cfg, "--log-level", "info")
        assert "loaded from" not in p.stderr, p.stderr
        p = run("--log-level", "loud", "check", cfg)
        assert p.returncode == 2 and "unknown log level 'loud'" in p.stderr, p.stderr


def plugin_dir_with(tmp, kind, name):
    """A private plugin directory holding one plugin of the build tree."""
    import shutil
    for d in os.environ["SWITCHYARD_PLUGIN_PATH"].split(":"):
        cand = os.path.join(d, f"switchyard-{kind}-{name}.so")
        if os.path.isfile(cand):
            own = os.path.join(tmp, "plugins")
            os.mkdir(own)
            shutil.copy(cand, own)
            return own
    raise AssertionError(f"{name} not found in SWITCHYARD_PLUGIN_PATH")


def test_plugin_path_does_not_swallow_the_name():
    """`plugins --plugin-path DIR NAME` describes NAME (the option takes one value per use)."""
    with tempfile.TemporaryDirectory() as tmp:
        own = plugin_dir_with(tmp, "sink", "test-sink")
        env = dict(os.environ, SWITCHYARD_PLUGIN_PATH="")
        for args in (["plugins", "--plugin-path", own, "test-sink"], ["--plugin-path", own, "plugins", "test-sink"],
                     ["plugins", "test-sink", "--plugin-path", own]):
            p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, env=env)
            assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stderr}"
            assert p.stdout.startswith("test-sink "), f"{args}: not the plugin's description:\n{p.stdout}"
            assert "KIND" not in p.stdout, f"{args}: printed the table:\n{p.stdout}"
        # Repeated, one directory per use.
        other = os.path.join(tmp, "empty")
        os.mkdir(other)
        p = subprocess.run([BIN, "plugins", "--plugin-path", other, "--plugin-path", own], capture_output=True,
                           text=True, timeout=60, env=env)
        assert p.returncode == 0 and re.search(r"^sink\s+test-sink\s", p.stdout, re.M), p.stdout + p.stderr


def test_did_you_mean():
    p = run("plugins", "stout")
    assert p.returncode == 2, p.stderr
    assert "switchyard: no plugin named 'stout'; did you mean 'stdout'?" in p.stderr, p.stderr
    p = run("plugins", "tset-sink")  # a swap is one edit
    assert "did you mean 'test-sink'?" in p.stderr, p.stderr
    p = run("plugins", "nothing-like-it")
    assert p.returncode == 2 and "did you mean" not in p.stderr, p.stderr
    p = run("chekc", "x.yaml")
    assert p.returncode == 2, p.stderr
    assert p.stderr == "switchyard: unknown command 'chekc'; did you mean 'check'?\n", p.stderr
    p = run("--log-level", "debug", "tali", "tcp://127.0.0.1:1")
    assert "unknown command 'tali'; did you mean 'tail'?" in p.stderr, p.stderr
    p = run("frobnicate")
    assert p.returncode == 2 and "unknown command 'frobnicate' (commands: run, check, plugins" in p.stderr, p.stderr


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"ok   {name}")
            except AssertionError as e:
                failed += 1
                print(f"FAIL {name}: {e}", file=sys.stderr)
    sys.exit(1 if failed else 0)
