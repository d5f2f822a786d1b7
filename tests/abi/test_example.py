#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""examples/custom-filter builds out of tree against an installed switchyard, and runs.

1. `meson install --destdir STAGE` from the build dir (headers, switchyard.pc, plugin.map,
   libswitchyard; --no-rebuild: the test depends on everything it installs);
2. configure and build examples/custom-filter with PKG_CONFIG_PATH + PKG_CONFIG_SYSROOT_DIR
   pointing into STAGE (nothing from the source tree);
3. check its exports, then run `$SWITCHYARD_BIN run` on stdin -> topic-prefix -> stdout.
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

    # The example sees only the staging install: a copy outside the source tree, and
    # pkg-config pointed at the stage.
    example = os.path.join(tmp, "custom-filter")
    shutil.copytree(os.path.join(SRC, "examples", "custom-filter"), example)
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
    env["PKG_CONFIG_SYSROOT_DIR"] = stage
    exbuild = os.path.join(tmp, "build")
    # --werror: the installed headers must compile cleanly in a plugin author's build too.
    run([MESON, "setup", "-Dwerror=true", exbuild, example], env=env)
    run([NINJA, "-C", exbuild], env=env)
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
print("all checks passed")
