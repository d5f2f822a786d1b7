#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""examples/custom-filter and examples/custom-sink build out of tree against an installed
switchyard, pass their own tests (written with the installed test kit), and run.

1. `meson install --destdir STAGE` from the build dir (headers, test kit, switchyard.pc,
   plugin.map, libswitchyard; --no-rebuild: the test depends on everything it installs);
2. configure and build each example with PKG_CONFIG_PATH + PKG_CONFIG_SYSROOT_DIR
   pointing into STAGE (nothing from the source tree), and run its `meson test`;
3. check their exports, then run `$SWITCHYARD_BIN run` on stdin -> topic-prefix -> stdout
   and stdin -> jsonl-file.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["SWITCHYARD_SOURCE_ROOT"]
BUILD = os.environ["SWITCHYARD_BUILD_ROOT"]
BIN = os.environ["SWITCHYARD_BIN"]
MESON = shutil.which("meson") or sys.exit("meson not found on PATH")
NINJA = shutil.which("ninja") or sys.exit("ninja not found on PATH")


def run(cmd, **kw):
    kw.setdefault("timeout", 300)
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} exited {p.returncode}\n--- stdout\n{p.stdout}\n"
              f"--- stderr\n{p.stderr}", file=sys.stderr)
        sys.exit(1)
    return p


with tempfile.TemporaryDirectory(prefix="sy-abi-oot-") as tmp:
    stage = os.path.join(tmp, "stage")
    run([MESON, "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", stage,
         "--tags", "devel,runtime"])
    pcs = glob.glob(os.path.join(stage, "**", "pkgconfig", "switchyard.pc"), recursive=True)
    if len(pcs) != 1:
        sys.exit(f"FAIL: expected one installed switchyard.pc under {stage}, found {pcs}")
    maps = glob.glob(os.path.join(stage, "**", "switchyard", "plugin.map"), recursive=True)
    if len(maps) != 1:
        sys.exit(f"FAIL: expected one installed plugin.map under {stage}, found {maps}")

    # The examples see only the staging install: copies outside the source tree, and
    # pkg-config pointed at the stage.
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
    env["PKG_CONFIG_SYSROOT_DIR"] = stage
    # The examples' test programs run against the staged libraries.
    libdirs = {os.path.dirname(p) for p in glob.glob(os.path.join(stage, "**", "libswitchyard*.so*"),
                                                      recursive=True)}
    env["LD_LIBRARY_PATH"] = ":".join(sorted(libdirs) + [env.get("LD_LIBRARY_PATH", "")])

    def build_example(name):
        example = os.path.join(tmp, name)
        shutil.copytree(os.path.join(SRC, "examples", name), example)
        exbuild = os.path.join(tmp, "build-" + name)
        # --werror: the installed headers must compile cleanly in a plugin author's build too.
        run([MESON, "setup", "-Dwerror=true", exbuild, example], env=env)
        run([NINJA, "-C", exbuild], env=env)
        # Its own tests, written with the installed test kit.
        p = run([MESON, "test", "-C", exbuild, "--print-errorlogs"], env=env)
        print(f"ok   {name}: built out of tree, its own meson test passed")
        return exbuild

    exbuild = build_example("custom-filter")
    plugin = os.path.join(exbuild, "switchyard-filter-topic-prefix.so")
    if not os.path.exists(plugin):
        sys.exit(f"FAIL: {plugin} was not built")
    # It compiled against the staged headers, not the source tree's.
    flags = run(["pkg-config", "--cflags", "switchyard"], env=env).stdout
    if stage not in flags or os.path.join(SRC, "core") in flags:
        sys.exit(f"FAIL: pkg-config flags do not point into the stage: {flags}")

    nm = run(["nm", "-D", "--defined-only", plugin]).stdout
    names = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    expected = {"switchyard_plugin_info", "switchyard_plugin_schema", "switchyard_plugin_create"}
    if names != expected:
        sys.exit(f"FAIL: the example exports {sorted(names)}, expected exactly {sorted(expected)}")
    print("ok   example built out of tree, exports exactly the three entry points")

    p = run([BIN, "plugins", "topic-prefix", "--plugin-path", exbuild])
    if ("topic-prefix 1.0.0 (filter" not in p.stdout
            or "Text prepended to every topic." not in p.stdout):
        sys.exit(f"FAIL: `switchyard plugins topic-prefix` output:\n{p.stdout}\n{p.stderr}")
    print("ok   switchyard plugins topic-prefix shows its schema")

    cfg = os.path.join(tmp, "demo.yaml")
    with open(cfg, "w") as f:
        f.write("version: 1\n"
                "pipelines:\n"
                "  demo:\n"
                "    input: {type: stdin}\n"
                "    filters:\n"
                "      - {type: topic-prefix, prefix: \"org.example.\"}\n"
                "    outputs: [{type: stdout}]\n")
    topics = ["a.b", "org.example.already", "c"]
    stdin = "".join(json.dumps({"topic": t, "body": {"n": i}}) + "\n"
                    for i, t in enumerate(topics))
    p = run([BIN, "run", cfg, "--plugin-path", exbuild], input=stdin, timeout=60)
    got = [json.loads(line)["topic"] for line in p.stdout.splitlines() if line.strip()]
    want = ["org.example.a.b", "org.example.already", "org.example.c"]
    if got != want:
        sys.exit(f"FAIL: output topics {got}, expected {want}\n--- stderr\n{p.stderr}")
    print(f"ok   stdin -> topic-prefix -> stdout gave {got}")

    # The out-of-tree sink: built and tested with the installed SDK and test kit only.
    sinkbuild = build_example("custom-sink")
    sink = os.path.join(sinkbuild, "switchyard-sink-jsonl-file.so")
    nm = run(["nm", "-D", "--defined-only", sink]).stdout
    names = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    if names != expected:
        sys.exit(f"FAIL: the sink exports {sorted(names)}, expected exactly {sorted(expected)}")
    p = run([BIN, "plugins", "jsonl-file", "--plugin-path", sinkbuild])
    if "allowed values: 'full', 'body'" not in p.stdout or "range: 0 to 1000000" not in p.stdout:
        sys.exit(f"FAIL: `switchyard plugins jsonl-file` lists no constraints:\n{p.stdout}")
    print("ok   switchyard plugins jsonl-file lists its allowed values and range")

    out = os.path.join(tmp, "out.jsonl")
    cfg = os.path.join(tmp, "sink.yaml")
    with open(cfg, "w") as f:
        f.write("version: 1\n"
                "pipelines:\n"
                "  demo:\n"
                "    input: {type: stdin}\n"
                f"    outputs: [{{type: jsonl-file, path: {json.dumps(out)}, format: body}}]\n")
    stdin = "".join(json.dumps({"topic": "t", "body": {"n": i}}) + "\n" for i in range(3))
    run([BIN, "run", cfg, "--plugin-path", sinkbuild], input=stdin, timeout=60)
    with open(out) as f:
        lines = [json.loads(line) for line in f]
    if lines != [{"n": 0}, {"n": 1}, {"n": 2}]:
        sys.exit(f"FAIL: jsonl-file wrote {lines}")
    print("ok   stdin -> jsonl-file wrote the three bodies")

    with open(cfg, "w") as f:
        f.write("version: 1\n"
                "pipelines:\n"
                "  demo:\n"
                "    input: {type: stdin}\n"
                f"    outputs: [{{type: jsonl-file, path: {json.dumps(out)}, format: xml}}]\n")
    p = subprocess.run([BIN, "check", cfg, "--plugin-path", sinkbuild], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 2 or ":5:" not in p.stderr or "expected one of 'full', 'body', got 'xml'" not in p.stderr:
        sys.exit(f"FAIL: `switchyard check` did not refuse format: xml\n{p.stderr}")
    print("ok   switchyard check refuses a value outside the sink's allowed values")
print("all checks passed")
