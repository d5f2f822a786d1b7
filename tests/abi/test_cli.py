#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard plugins` (the real binary) over the ABI fixtures.

Usage: test_cli.py FIXTURE_DIR   (env: SWITCHYARD_BIN)

Checks the listing, the refusal messages, that no refused fixture's ELF constructor ran
(marker files), that `plugins NAME` maps only that plugin, duplicate names, and that a
plugin whose create throws makes `switchyard check` fail with the plugin's message.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

BIN = os.environ["SWITCHYARD_BIN"]
FIX = os.path.abspath(sys.argv[1])
REFUSED = ["fx-major", "fx-minor", "fx-fingerprint", "fx-magic", "fx-nocreate", "fx-noinfo",
           "fx-misnamed", "fx-kind"]
failures = []


def host_abi():
    """(major, minor) from the ABI header the binary was built with."""
    text = open(os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "core/include/switchyard/abi.h")).read()
    return tuple(int(re.search(rf"#define SWITCHYARD_ABI_{k} (\d+)", text).group(1)) for k in ("MAJOR", "MINOR"))


ABI_MAJOR, ABI_MINOR = host_abi()
ABI = f"{ABI_MAJOR}.{ABI_MINOR}"


def check(cond, what, detail=""):
    if cond:
        print(f"ok   {what}")
    else:
        failures.append(what)
        print(f"FAIL {what}\n{detail}", file=sys.stderr)


def run(args, markers, **kw):
    env = dict(os.environ)
    env["SWITCHYARD_TEST_MARKER_DIR"] = markers
    env["SWITCHYARD_PLUGIN_PATH"] = ""  # only what --plugin-path names
    return subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=30, **kw)


def fixture(name):
    return os.path.join(FIX, f"switchyard-filter-{name}.so")


with tempfile.TemporaryDirectory(prefix="sy-abi-cli-") as tmp:
    markers = os.path.join(tmp, "markers")
    os.mkdir(markers)

    # 1. The listing.
    p = run(["plugins", "--plugin-path", FIX], markers)
    out = p.stdout + p.stderr
    check(p.returncode == 0, "plugins exits 0", out)
    lines = p.stdout.splitlines()
    check(lines and lines[0].split() == ["KIND", "NAME", "VERSION", "ABI", "FILE"],
          "listing has a header", p.stdout)
    good = [l.split() for l in lines if " fx-good " in l]
    check(good == [["filter", "fx-good", "0.0.1", ABI, fixture("fx-good")]],
          "fx-good listed with kind, version, ABI and file", p.stdout)
    check(any(" fx-throws " in l for l in lines), "fx-throws listed (it passes the checks)",
          p.stdout)
    for name in REFUSED:
        check(not any(f" {name} " in l for l in lines), f"{name} not listed", p.stdout)
        check(f"refused {fixture(name)}: " in p.stderr, f"{name} refusal on stderr", p.stderr)
    check(f"incompatible switchyard plugin 'fx-major': built for ABI {ABI_MAJOR + 1}.{ABI_MINOR}, this host has ABI {ABI}"
          in p.stderr, "ABI major message", p.stderr)
    check("build fingerprint 'gcc-0.0;bogus' differs from this host's" in p.stderr,
          "fingerprint message names both values", p.stderr)
    check("not a switchyard plugin: it does not export switchyard_plugin_info" in p.stderr,
          "not-a-plugin message", p.stderr)
    check(os.listdir(markers) == [], "listing ran no plugin code", str(os.listdir(markers)))

    # 2. One plugin's schema: maps that plugin only.
    p = run(["plugins", "fx-good", "--plugin-path", FIX], markers)
    check(p.returncode == 0, "plugins fx-good exits 0", p.stdout + p.stderr)
    for part in [f"fx-good 0.0.1 (filter, ABI {ABI})", "ABI test fixture (fx-good)",
                 "suffix (string, default \"\")", "Appended to every topic.", "token (string",
                 "[secret]", "A secret the fixture ignores."]:
        check(part in p.stdout, f"schema output shows {part!r}", p.stdout)
    check(sorted(os.listdir(markers)) == ["fx-good"], "only fx-good was mapped",
          str(os.listdir(markers)))

    # 3. A refused plugin cannot be described.
    p = run(["plugins", "fx-major", "--plugin-path", FIX], markers)
    check(p.returncode != 0, "plugins fx-major fails", p.stdout + p.stderr)
    check("no plugin named 'fx-major'" in p.stderr, "says there is no such plugin", p.stderr)
    check(f"{fixture('fx-major')} was refused: incompatible switchyard plugin 'fx-major': "
          f"built for ABI {ABI_MAJOR + 1}.{ABI_MINOR}" in p.stderr, "and why the file was refused", p.stderr)

    # 4. Duplicate names in two directories.
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    for d in (a, b):
        os.mkdir(d)
        shutil.copy(fixture("fx-good"), os.path.join(d, "switchyard-filter-fx-good.so"))
    p = run(["plugins", "--plugin-path", a, "--plugin-path", b], markers)
    check(p.returncode != 0, "duplicate names fail", p.stdout + p.stderr)
    check(f"two plugins are named 'fx-good': {a}/switchyard-filter-fx-good.so and "
          f"{b}/switchyard-filter-fx-good.so" in p.stderr, "duplicate error names both files",
          p.stderr)

    # 5. World-writable directory.
    ww = os.path.join(tmp, "ww")
    os.mkdir(ww)
    shutil.copy(fixture("fx-good"), os.path.join(ww, "switchyard-filter-fx-good.so"))
    os.chmod(ww, 0o777)
    p = run(["plugins", "--plugin-path", ww], markers)
    check(f"directory {ww} is world-writable (mode 0777)" in p.stderr,
          "world-writable directory refused", p.stderr)
    check(not any(" fx-good " in l for l in p.stdout.splitlines()), "and not listed", p.stdout)

    # 6. A create that throws stops `switchyard check` with the plugin's message.
    shutil.rmtree(markers)
    os.mkdir(markers)
    cfg = os.path.join(tmp, "throws.yaml")
    with open(cfg, "w") as f:
        f.write("version: 1\npipelines:\n  p:\n    input: {type: stdin}\n"
                "    filters: [{type: fx-throws}]\n    outputs: [{type: stdout}]\n")
    env_path = os.environ.get("SWITCHYARD_PLUGIN_PATH", "").split(":")
    args = ["check", cfg, "--plugin-path", FIX]
    for d in env_path:
        if d:
            args += ["--plugin-path", d]
    p = run(args, markers)
    check(p.returncode != 0, "check with a throwing plugin fails", p.stdout + p.stderr)
    check("fixture refuses to be created" in p.stderr, "with the plugin's message", p.stderr)
    check("fx-throws" in os.listdir(markers), "the throwing plugin was loaded",
          str(os.listdir(markers)))
    check(not any(n in os.listdir(markers) for n in REFUSED), "no refused fixture ran",
          str(os.listdir(markers)))

if failures:
    print(f"{len(failures)} check(s) failed: {failures}", file=sys.stderr)
    sys.exit(1)
print("all checks passed")
