"""The example systemd units (examples/systemd/*.service) pass `systemd-analyze verify`, as
instances of the template, with /usr/bin/switchyard replaced by the binary just built (the
unit is checked, not the installation), and keep the properties the deployment relies on."""
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.environ["SWITCHYARD_SOURCE_ROOT"]
BIN = os.environ["SWITCHYARD_BIN"]
BUILD = os.environ["SWITCHYARD_BUILD_ROOT"]
ANALYZE = sys.argv[1]


def main():
    units = sorted(glob.glob(os.path.join(ROOT, "examples", "systemd", "*.service")))
    assert units, "no units in examples/systemd"
    for path in units:
        with open(path) as f:
            text = f.read()
        for needed in ("User=switchyard", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                       "ExecStart=/usr/bin/switchyard run "):
            assert needed in text, f"{path}: missing {needed}"
        assert "/etc/switchyard/%i.yaml" in text, f"{path}: does not take the pipeline from /etc/switchyard/%i.yaml"
        with tempfile.TemporaryDirectory() as d:
            name = os.path.basename(path).replace("@.service", "@bridge.service")
            target = os.path.join(d, name)
            with open(target, "w") as f:
                f.write(text.replace("/usr/bin/switchyard", BIN))
            # Documentation=man:... is checked with man(1): the pages this build wrote
            # (docs/man), not installed ones, through a MANPATH of their own.
            man1 = os.path.join(d, "man", "man1")
            os.makedirs(man1)
            for page in glob.glob(os.path.join(BUILD, "docs", "man", "*.1")):
                os.symlink(page, os.path.join(man1, os.path.basename(page)))
            for ref in re.findall(r"man:([\w.-]+)\((\d)\)", text):
                assert os.path.exists(os.path.join(man1, f"{ref[0]}.{ref[1]}")), \
                    f"{path}: Documentation= names man:{ref[0]}({ref[1]}), which this build did not write"
            p = subprocess.run([ANALYZE, "verify", target], capture_output=True, text=True,
                               env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice", MANPATH=os.path.join(d, "man")),
                               cwd=d, timeout=60)
            # Any line about our unit is a problem (unknown key, bad value, missing binary).
            ours = [ln for ln in (p.stdout + p.stderr).splitlines() if re.search(re.escape(name), ln)]
            assert p.returncode == 0 and not ours, f"{path}: systemd-analyze verify failed ({p.returncode}):\n" \
                f"{p.stdout}{p.stderr}"
        print(f"{os.path.basename(path)}: systemd-analyze verify OK")


if __name__ == "__main__":
    main()
