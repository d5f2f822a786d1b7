#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every built plugin exports exactly the three entry points (docs/plugin-abi.md).

Usage: check_exports.py PLUGIN.so...   (meson passes every target of sy_plugins)

Hidden visibility alone still exports standard-library template instantiations and
GNU-unique symbols; the version script (core/plugin.map) is what keeps the list short.
"""
import subprocess
import sys

EXPECTED = {"switchyard_plugin_info", "switchyard_plugin_schema", "switchyard_plugin_create"}


def exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2])
        elif len(parts) == 2:  # absolute symbols may come without an address
            names.add(parts[1])
    return names


def main(paths):
    if not paths:
        print("no plugins given: expected the paths of every built plugin", file=sys.stderr)
        return 1
    failures = 0
    for path in paths:
        names = exported(path)
        extra = sorted(names - EXPECTED)
        missing = sorted(EXPECTED - names)
        if extra or missing:
            failures += 1
            print(f"FAIL {path}:", file=sys.stderr)
            if extra:
                print(f"  exports {len(extra)} extra symbol(s): {', '.join(extra[:20])}"
                      f"{' ...' if len(extra) > 20 else ''}", file=sys.stderr)
            if missing:
                print(f"  does not export: {', '.join(missing)}", file=sys.stderr)
            print("  link it with sy_plugin_kwargs (version script core/plugin.map)",
                  file=sys.stderr)
        else:
            print(f"ok   {path}")
    print(f"{len(paths) - failures}/{len(paths)} plugins export exactly the three entry points")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
