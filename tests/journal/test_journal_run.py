#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A corrupted journal tail is reported and skipped by `switchyard run`.

A journal holds m1..m5 (m1 and m2 released), then m6 and m7; m7 is torn (the file ends in
the middle of it) and a byte of m4 is flipped. `switchyard run` (zmq-sub -> stdout, the
journal on) starts anyway, logs both problems with the file and the byte offset, and
replays the good unreleased records, m3, m5 and m6, in order, before anything new. Once
they are delivered and released the damaged segment is deleted: `switchyard journal check`
then finds the journal clean."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "tests", "zmq"))
from zmqtest import BIN, Switchyard, check, free_port, write_config  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from damage import tear_and_flip  # noqa: E402

MAKE = sys.argv[1]


def journal(*args):
    p = subprocess.run([BIN, "journal", *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout


def main():
    with tempfile.TemporaryDirectory(prefix="sy-jrun-") as tmp:
        d = os.path.join(tmp, "journal")
        subprocess.run([MAKE, d, "5", "2", "2"], check=True, timeout=30)
        seg = os.path.join(d, "%020d.seg" % 1)
        rc, out = journal("inspect", d, "--json")
        sizes = {r["seq"]: r["size"] for r in json.loads(out)["records"]}
        last_off, m4_off = tear_and_flip(seg, sizes)
        check(journal("check", d)[0] == 1, "the journal is damaged before the run")

        cfg = write_config(tmp, f"""version: 1
pipelines:
  zj:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{free_port()}"]
    journal:
      dir: {d}
      fsync: batch
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            lines = sy.read_lines(3, timeout=30)
            ids = [json.loads(l)["id"] for l in lines]
            check(ids == ["msg-3", "msg-5", "msg-6"], f"replayed {ids}\n{sy.stderr()[-3000:]}")
            sy.wait_log(rf"journal {seg}: CRC mismatch in a record of {sizes[4]} bytes at byte {m4_off} ")
            sy.wait_log(rf"journal {seg}: torn record: 20 of {sizes[7]} bytes at byte {last_off} \(20 byte")
        finally:
            rc = sy.stop()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        check(sy.rest() == [], "nothing but the three replayed records")
        rc, out = journal("check", d)
        check(rc == 0, f"after the replay the damaged segment is gone: {out}")
        j = json.loads(journal("inspect", d, "--json")[1])
        check(j["live"] == 0 and j["problems"] == [], j)
    print("ok")


if __name__ == "__main__":
    main()
