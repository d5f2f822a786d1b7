#!/usr/bin/python3
"""The Debian package, built and tried as an operator gets it.

Builds switchyard and switchyard-dev with `dpkg-buildpackage -us -uc -b` from a copy of the
source tree (the tree itself stays clean), checks lintian reports no error, then installs
the package: with `dpkg -i` when running as root, no switchyard package is installed
already and dpkg keeps /usr/share (the CI machine), else unpacked with `dpkg -x` into a
scratch root. Then:
`switchyard --version`, the plugins found in the install directory, the stdio example run
end to end, `man` finding the page of the command and of every subcommand `--help` lists,
`systemd-analyze verify` on the installed unit, the sysusers and tmpfiles entries applied,
and the bash completion completing a subcommand. A package it installed is purged at the
end, with the system user it created.

The build copies the tree to a fixed directory under the build root, so ccache (when
installed) serves a second run from the cache. docs/install.md describes the package.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(os.environ["SWITCHYARD_SOURCE_ROOT"])
WORK = Path(os.environ["SWITCHYARD_BUILD_ROOT"]) / "tests" / "packaging" / "work"
# Seconds for dpkg-buildpackage (meson's timeout for the whole test is 600); a loaded
# machine may need more: SWITCHYARD_PACKAGING_BUILD_TIMEOUT.
BUILD_TIMEOUT = float(os.environ.get("SWITCHYARD_PACKAGING_BUILD_TIMEOUT", "480"))
PLUGINS = {"zmq-sub", "zmq-pub", "amqp-consume", "amqp-publish", "stdin", "stdout",
           "signer", "verifier", "loop-guard", "verify-missing", "store", "http-in"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, *, check=True, timeout=120, **kw):
    """Runs CMD, returns the CompletedProcess (text); on failure says what ran and why."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run([str(c) for c in cmd], text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def copy_tree(dest):
    """The tracked and untracked-but-not-ignored files of the working tree (so build
    directories and caches stay out), or everything but build*/ and .git without git."""
    if (SOURCE / ".git").exists() and shutil.which("git"):
        out = run(["git", "-C", SOURCE, "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard"]).stdout
        names = [n for n in out.split("\0") if n]
        for name in names:
            src = SOURCE / name
            if not src.is_file():  # deleted in the working tree, or a submodule
                continue
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    else:
        shutil.copytree(SOURCE, dest, symlinks=True, ignore=shutil.ignore_patterns(
            "build*", "_build*", ".git", "__pycache__", "*.pyc", ".cache"))


def build_package():
    """Builds the binary packages; returns {package name: .deb path}."""
    if WORK.exists():
        shutil.rmtree(WORK)
    version = run(["dpkg-parsechangelog", "-l", SOURCE / "debian" / "changelog",
                   "-S", "Version"]).stdout.strip()
    tree = WORK / f"switchyard-{version}"
    tree.mkdir(parents=True)
    copy_tree(tree)

    env = dict(os.environ)
    # noopt (-O0): a cold build takes about a third of the CPU time of -O2; what is
    # checked here is the packaging, not the optimiser.
    env["DEB_BUILD_OPTIONS"] = f"parallel={os.cpu_count() or 1} noopt"
    env.pop("MAKEFLAGS", None)
    env.pop("MESON_TESTTHREADS", None)
    if shutil.which("ccache"):
        # debhelper points HOME into the package tree; keep the user's cache.
        cache = run(["ccache", "-k", "cache_dir"]).stdout.strip()
        env["CCACHE_DIR"] = cache
    log(f"dpkg-buildpackage -us -uc -b in {tree}")
    started = time.monotonic()
    with open(WORK / "build.log", "w") as logf:
        # Its own process group, so that a timeout (ours, or meson's SIGTERM) stops the
        # compilers too, not only dpkg-buildpackage.
        p = subprocess.Popen(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env,
                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)

        def stop(*_):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise AssertionError(f"dpkg-buildpackage stopped after "
                                 f"{time.monotonic() - started:.0f} s; see {WORK / 'build.log'}")
        signal.signal(signal.SIGTERM, stop)
        try:
            p.wait(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop()
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    build_log = (WORK / "build.log").read_text(errors="replace")
    if p.returncode != 0:
        raise AssertionError(f"dpkg-buildpackage exited {p.returncode}; the end of "
                             f"{WORK / 'build.log'}:\n" + "\n".join(build_log.splitlines()[-60:]))
    log(f"built in {time.monotonic() - started:.0f} s")

    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    debs = {name: WORK / f"{name}_{version}_{arch}.deb" for name in ("switchyard", "switchyard-dev")}
    for name, deb in debs.items():
        assert deb.is_file(), f"{deb} missing after the build; files: {sorted(os.listdir(WORK))}"
    changes = WORK / f"switchyard_{version}_{arch}.changes"
    assert changes.is_file(), f"{changes} missing"
    return version, debs, changes


def check_contents(debs):
    """What each package holds, by path."""
    listing = run(["dpkg-deb", "-c", debs["switchyard"]]).stdout
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    expected = {
        "/usr/bin/switchyard",
        "/usr/share/man/man1/switchyard.1.gz",
        "/usr/share/doc/switchyard/copyright",
        "/usr/share/doc/switchyard/migration-guide.md",  # uncompressed: the unit names it
        "/usr/share/doc/switchyard/configuration.md",
        "/usr/share/doc/switchyard/install.md",
        "/usr/share/bash-completion/completions/switchyard",
        "/lib/systemd/system/switchyard@.service",
        "/usr/lib/sysusers.d/switchyard.conf",
        "/usr/lib/tmpfiles.d/switchyard.conf",
        "/usr/share/switchyard/examples/bridge.yaml",
        "/usr/share/switchyard/examples/stdio.yaml",
        "/usr/share/switchyard/examples/verify-missing.env.example",
    }
    missing = sorted(expected - paths)
    assert not missing, f"switchyard package lacks {missing}"
    unwanted = sorted(p for p in paths if p.startswith("/usr/share/doc/switchyard/docs")
                      or p.startswith("/usr/include") or p.endswith("/LICENSE")
                      or p.startswith("/usr/share/doc/switchyard/man"))
    assert not unwanted, f"switchyard package should not hold {unwanted}"
    plugin_files = [p for p in paths if re.search(r"/switchyard/plugins/switchyard-.*\.so$", p)]
    assert len(plugin_files) == len(PLUGINS), f"plugins in the package: {sorted(plugin_files)}"

    dev = run(["dpkg-deb", "-c", debs["switchyard-dev"]]).stdout
    for want in ("/usr/include/switchyard/plugin.hpp", "/usr/include/switchyard/sdk.hpp",
                 "/switchyard.pc", "/usr/share/switchyard/plugin.map"):
        assert want in dev, f"switchyard-dev lacks {want}"


def check_lintian(changes):
    if not shutil.which("lintian"):
        raise AssertionError("lintian is not installed (scripts/lib/setup.sh installs it)")
    p = run(["lintian", "--no-cfg", "--fail-on", "error", changes], check=False, timeout=300)
    print(p.stdout, end="")
    errors = [line for line in p.stdout.splitlines() if line.startswith("E:")]
    assert not errors and p.returncode == 0, \
        f"lintian reported errors (exit {p.returncode}):\n" + "\n".join(errors) + p.stderr


def installed(package):
    p = run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
    return p.returncode == 0 and "install ok installed" in p.stdout


def dpkg_excludes():
    """path-exclude filters of dpkg's configuration (slim container images drop manual pages
    and documentation this way), which dpkg -i applies and dpkg -x does not."""
    found = []
    for conf in sorted(Path("/etc/dpkg/dpkg.cfg.d").glob("*")) + [Path("/etc/dpkg/dpkg.cfg")]:
        try:
            lines = conf.read_text(errors="replace").splitlines()
        except OSError:
            continue
        found += [f"{conf}: {line.strip()}" for line in lines
                  if line.strip().startswith("path-exclude") and "/usr/share/" in line]
    return found


def user_exists(name):
    return run(["getent", "passwd", name], check=False).returncode == 0


def man_text(man_args, page):
    env = dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat", MAN_KEEP_FORMATTING="")
    env.pop("MANPATH", None)
    path = run(["man", *man_args, "-w", page], env=env).stdout.strip()
    text = run(["man", *man_args, page], env=env).stdout
    return path, re.sub(r".\x08", "", text)


def subcommands(cmd, env):
    out = run([*cmd, "--help"], env=env).stdout
    subs, on = [], False
    for line in out.splitlines():
        if line.startswith("Subcommands:"):
            on = True
        elif on and re.match(r"^  [a-z]", line):
            subs.append(line.split()[0])
        elif on and line and not line.startswith(" "):
            on = False
    assert subs, f"no subcommand in `switchyard --help`:\n{out}"
    return subs


def try_installed(root, version):
    """ROOT is / after dpkg -i, else the scratch root of dpkg -x."""
    triplet = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()
    binary = root / "usr/bin/switchyard"
    env = dict(os.environ)
    env.pop("SWITCHYARD_PLUGIN_PATH", None)
    plugin_args = []
    if root != Path("/"):
        env["LD_LIBRARY_PATH"] = str(root / "usr/lib" / triplet)
        plugin_args = ["--plugin-path", root / "usr/lib" / triplet / "switchyard/plugins"]

    out = run([binary, "--version"], env=env).stdout
    assert out.strip() == f"switchyard {version}", f"--version printed {out!r}"
    log(f"--version: {out.strip()}")

    table = run([binary, "plugins", *plugin_args], env=env).stdout
    names = {line.split()[1] for line in table.splitlines()[1:] if line.strip()}
    assert names == PLUGINS, f"plugins found: {sorted(names)}\n{table}"
    for line in table.splitlines()[1:]:
        assert f"/usr/lib/{triplet}/switchyard/plugins/" in line, f"not installed: {line}"

    msg = '{"topic":"org.example.hello","body":{"n":1},"headers":{},"id":"1"}\n'
    p = run([binary, "run", *plugin_args, root / "usr/share/switchyard/examples/stdio.yaml"],
            env=env, input=msg, timeout=30)
    assert p.stdout == msg, f"stdio example copied {p.stdout!r}, expected {msg!r}\n{p.stderr}"

    man_args = [] if root == Path("/") else ["-M", root / "usr/share/man"]
    path, text = man_text(man_args, "switchyard")
    assert path == str(root / "usr/share/man/man1/switchyard.1.gz"), f"man -w: {path}"
    assert "switchyard - plugin-based message router" in text, text[:2000]
    assert "EXIT STATUS" in text and "SWITCHYARD_PLUGIN_PATH" in text, text
    subs = subcommands([binary], env)
    for sub in subs:
        help_text = run([binary, sub, "--help"], env=env).stdout
        path, text = man_text(man_args, f"switchyard-{sub}")
        assert path.endswith(f"/man1/switchyard-{sub}.1.gz"), f"man -w switchyard-{sub}: {path}"
        # Every option of the subcommand's --help is on its page.
        for opt in sorted(set(re.findall(r"^\s+(?:-\w,)?(--[a-z][-a-z]*)", help_text, re.M))):
            assert opt in text, f"switchyard-{sub}(1) lacks {opt}:\n{text}"
        assert f"switchyard-{sub} - " in text, text[:600]
    log(f"man pages: switchyard and {len(subs)} subcommands ({', '.join(subs)})")

    # The completion, with the installed command first on PATH.
    script = ('source "$1"; COMP_WORDS=(switchyard ch); COMP_CWORD=1; _switchyard; '
              'echo "${COMPREPLY[*]}"; COMP_WORDS=(switchyard run --log-l); COMP_CWORD=2; '
              '_switchyard; echo "${COMPREPLY[*]}"')
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "switchyard").symlink_to(binary)
        cenv = dict(env, PATH=f"{tmp}:{env['PATH']}")
        out = run(["bash", "-c", script, "bash",
                   root / "usr/share/bash-completion/completions/switchyard"], env=cenv).stdout
    assert out.splitlines() == ["check", "--log-level"], f"completion gave {out!r}"


def verify_unit(root):
    """systemd-analyze verify on an instance of the installed template unit. In a scratch
    root the unit's command paths point into it and man looks there; the host's own units
    (sysinit.target, ...) are what the unit is checked against in both cases."""
    text = (root / "lib/systemd/system/switchyard@.service").read_text()
    env = dict(os.environ)
    if root != Path("/"):
        text = text.replace("/usr/bin/switchyard", str(root / "usr/bin/switchyard"))
        env["MANPATH"] = str(root / "usr/share/man")
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "switchyard@bridge.service"
        instance.write_text(text)
        p = run(["systemd-analyze", "verify", instance], check=False, timeout=60, env=env)
    out = p.stdout + p.stderr
    print(out, end="")
    assert p.returncode == 0, f"systemd-analyze verify exited {p.returncode}:\n{out}"
    # Any complaint about our unit fails the test, even one verify does not count as error.
    ours = [line for line in out.splitlines() if "switchyard" in line]
    assert not ours, "systemd-analyze verify complained:\n" + "\n".join(ours)
    log("systemd-analyze verify: clean")


def account(root):
    """uid and gid of the switchyard user in ROOT/etc/passwd, checked."""
    passwd = (root / "etc/passwd").read_text()
    entry = [line for line in passwd.splitlines() if line.startswith("switchyard:")]
    assert len(entry) == 1, f"switchyard user: {entry}"
    fields = entry[0].split(":")
    assert fields[5] == "/var/lib/switchyard" and fields[6].endswith("nologin"), entry
    return int(fields[2]), int(fields[3])


def check_accounts(root):
    """The sysusers user and the tmpfiles directories (dpkg -i ran both)."""
    if root != Path("/"):
        (root / "etc").mkdir(exist_ok=True)  # sysusers writes passwd and group there
        run(["systemd-sysusers", f"--root={root}"])
    uid, gid = account(root)
    if root != Path("/"):
        if os.geteuid() != 0:
            log("not root: the tmpfiles entries cannot chown here; checked only as root")
            return
        run(["systemd-tmpfiles", f"--root={root}", "--create",
             root / "usr/lib/tmpfiles.d/switchyard.conf"])
    for path, mode, owner in ((root / "etc/switchyard", 0o750, (0, gid)),
                              (root / "var/lib/switchyard", 0o750, (uid, gid))):
        st = path.stat()
        assert (st.st_mode & 0o7777, (st.st_uid, st.st_gid)) == (mode, owner), \
            f"{path}: mode {oct(st.st_mode & 0o7777)} owner {st.st_uid}:{st.st_gid}, " \
            f"expected {oct(mode)} {owner[0]}:{owner[1]}"


def main():
    for tool in ("dpkg-buildpackage", "dh", "help2man", "man", "systemd-analyze"):
        if not shutil.which(tool):
            raise AssertionError(f"{tool} is not installed (scripts/lib/setup.sh installs it)")
    version, debs, changes = build_package()
    check_contents(debs)
    check_lintian(changes)

    excludes = dpkg_excludes()
    use_dpkg = (os.geteuid() == 0 and not excludes
                and not installed("switchyard") and not installed("switchyard-dev"))
    if use_dpkg:
        had_user = user_exists("switchyard")
        had_dirs = {d: d.exists() for d in (Path("/etc/switchyard"), Path("/var/lib/switchyard"))}
        log(f"dpkg -i {debs['switchyard'].name}")
        try:
            run(["dpkg", "-i", debs["switchyard"]], timeout=120,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            root = Path("/")
            try_installed(root, version)
            verify_unit(root)
            check_accounts(root)
        finally:
            log("dpkg -P switchyard")
            run(["dpkg", "-P", "switchyard"], timeout=120)
            assert not installed("switchyard")
            if not had_user and user_exists("switchyard"):
                run(["userdel", "switchyard"])
                run(["groupdel", "switchyard"], check=False)  # gone with the user already
            for d, existed in had_dirs.items():
                if not existed and d.exists():
                    shutil.rmtree(d)
    else:
        root = WORK / "root"
        why = ("not root" if os.geteuid() else
               f"dpkg would leave out files: {excludes}" if excludes else
               "a switchyard package is installed already")
        log(f"dpkg -x into {root} ({why})")
        for deb in debs.values():
            run(["dpkg", "-x", deb, root])
        try_installed(root, version)
        verify_unit(root)
        check_accounts(root)
    log("OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
