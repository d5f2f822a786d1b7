#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard journal check|inspect` on a journal whose tail was torn and whose middle has a
flipped byte: check reports each problem with its file and offset (exit 1), inspect still
lists every good record; a clean journal checks clean (exit 0); bad usage exits 2."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from damage import tear_and_flip  # noqa: E402
BIN = os.environ["SWITCHYARD_BIN"]
MAKE = sys.argv[1]


def run(*args):
    p = subprocess.run([BIN, "journal", *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def inspect(d):
    rc, out, err = run("inspect", d, "--json")
    assert rc == 0, (rc, out, err)
    return json.loads(out)


def main():
    with tempfile.TemporaryDirectory(prefix="sy-jcli-") as tmp:
        d = os.path.join(tmp, "j")
        # m1..m5, a release record for 1..2, m6, m7
        subprocess.run([MAKE, d, "5", "2", "2"], check=True, timeout=30)
        seg = os.path.join(d, "%020d.seg" % 1)
        assert os.path.isfile(seg), os.listdir(d)

        rc, out, err = run("check", d)
        assert rc == 0, (rc, out, err)
        assert "0 problems" in out, out
        j = inspect(d)
        assert [r["seq"] for r in j["records"]] == [3, 4, 5, 6, 7], j
        assert [r["message_id"] for r in j["records"]] == ["msg-3", "msg-4", "msg-5", "msg-6", "msg-7"], j
        assert j["records"][0]["topic"] == "org.example.j3", j
        assert j["live"] == 5 and j["released"] == 2 and j["segments"] == 1, j
        assert j["bytes"] == os.path.getsize(seg), j
        assert j["problems"] == [], j
        rc, text, err = run("inspect", d)
        assert rc == 0 and "msg-3" in text and "live: 5, released: 2, problems: 0" in text, (rc, text, err)

        sizes = {r["seq"]: r["size"] for r in j["records"]}
        last_off, m4_off = tear_and_flip(seg, sizes)

        rc, out, err = run("check", d)
        assert rc == 1, (rc, out, err)
        lines = [l for l in out.splitlines() if l.startswith("problem: ")]
        assert len(lines) == 2, out
        assert lines[0].startswith("problem: %s: offset %d: CRC mismatch" % (seg, m4_off)), out
        assert lines[1].startswith("problem: %s: offset %d: torn record: 20 of %d bytes" % (seg, last_off, sizes[7])), out
        assert "2 problems" in out, out

        j = inspect(d)
        assert [r["seq"] for r in j["records"]] == [3, 5, 6], j
        assert [(p["file"], p["offset"]) for p in j["problems"]] == [(seg, m4_off), (seg, last_off)], j
        assert j["problems"][1]["skipped_bytes"] == 20, j

        # Bad usage: no such dir, no dir at all, an unknown action.
        rc, out, err = run("check", os.path.join(tmp, "missing"))
        assert rc == 2 and os.path.join(tmp, "missing") in err, (rc, out, err)
        assert run("check")[0] == 2
        assert run("frobnicate", d)[0] == 2
    print("ok")


if __name__ == "__main__":
    main()
