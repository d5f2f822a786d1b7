#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The plugin-API headers may only change together with the ABI version.

tests/abi/abi-headers.sha256 records the ABI version (from abi.h) and the SHA-256 of every
header whose content is part of the plugin ABI. This test fails when a header's hash
differs from the record while the version stayed the same: someone changed the ABI
without telling plugins. When you change one of these headers on purpose:

  1. decide whether the change is additive (bump SWITCHYARD_ABI_MINOR) or incompatible
     (bump SWITCHYARD_ABI_MAJOR, reset MINOR to 0) in core/include/switchyard/abi.h;
     comments-only or formatting changes need no bump but still need step 2;
  2. run  tests/abi/check_headers.py --update  and commit the new record with the change.

Usage: check_headers.py [--record FILE] [--update]
"""
import argparse
import hashlib
import os
import re
import sys

HEADERS = [
    "core/include/switchyard/abi.h",
    "core/include/switchyard/plugin.hpp",
    "core/include/switchyard/sdk.hpp",
    "core/include/switchyard/message.hpp",
]
HERE = os.path.dirname(os.path.abspath(__file__))


def abi_version(root):
    text = open(os.path.join(root, HEADERS[0]), encoding="utf-8").read()
    major = re.search(r"#define\s+SWITCHYARD_ABI_MAJOR\s+(\d+)", text)
    minor = re.search(r"#define\s+SWITCHYARD_ABI_MINOR\s+(\d+)", text)
    if not major or not minor:
        sys.exit("cannot find SWITCHYARD_ABI_MAJOR/MINOR in abi.h")
    return f"{major.group(1)}.{minor.group(1)}"


def digests(root):
    out = {}
    for h in HEADERS:
        with open(os.path.join(root, h), "rb") as f:
            out[h] = hashlib.sha256(f.read()).hexdigest()
    return out


def read_record(path):
    version, hashes = None, {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("abi "):
            version = line.split()[1]
            continue
        digest, name = line.split(None, 1)
        hashes[name] = digest
    return version, hashes


def write_record(path, version, hashes):
    with open(path, "w", encoding="utf-8") as f:
        f.write("# SHA-256 of the plugin-API headers at the ABI version below.\n"
                "# Checked by tests/abi/check_headers.py; update with --update after a\n"
                "# deliberate change (and an ABI version bump unless comments-only).\n")
        f.write(f"abi {version}\n")
        for h in HEADERS:
            f.write(f"{hashes[h]}  {h}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", default=os.path.join(HERE, "abi-headers.sha256"))
    ap.add_argument("--update", action="store_true")
    args = ap.parse_args()
    root = os.environ.get("SWITCHYARD_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))

    version = abi_version(root)
    current = digests(root)
    if args.update:
        write_record(args.record, version, current)
        print(f"recorded ABI {version} with {len(current)} header hashes in {args.record}")
        return 0

    rec_version, recorded = read_record(args.record)
    changed = [h for h in HEADERS if recorded.get(h) != current[h]]
    if not changed and rec_version == version:
        print(f"ok: plugin-API headers match the record for ABI {version}")
        return 0
    if changed and rec_version == version:
        print(f"FAIL: plugin-API header(s) changed but the ABI version is still {version}:",
              file=sys.stderr)
        for h in changed:
            print(f"  {h}", file=sys.stderr)
        print("If the change alters anything a compiled plugin relies on (types, layouts,\n"
              "virtual functions, inline code, macros), bump SWITCHYARD_ABI_MINOR (additive)\n"
              "or SWITCHYARD_ABI_MAJOR (incompatible) in core/include/switchyard/abi.h.\n"
              "Then (also for comment-only changes) run:\n"
              "  tests/abi/check_headers.py --update\n"
              "and commit tests/abi/abi-headers.sha256 with the change.", file=sys.stderr)
        return 1
    print(f"FAIL: abi.h says ABI {version} but the record was made for ABI {rec_version}"
          f"{' and header(s) changed: ' + ', '.join(changed) if changed else ''}.\n"
          "Run  tests/abi/check_headers.py --update  and commit the new record.",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
