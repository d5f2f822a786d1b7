"""A private PostgreSQL server for the store's tests (scripts/postgres-local): the one already
running in $SWITCHYARD_POSTGRES_DIR (default: <build dir>/postgres-local), or one this test
starts and stops at exit. CI has no PostgreSQL running: the tests start it, never skip."""
import atexit
import os
import re
import shlex
import subprocess
import sys
import uuid

ROOT = os.environ.get("SWITCHYARD_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SWITCHYARD_BUILD_ROOT") or os.path.join(ROOT, "build")
SCRIPT = os.path.join(ROOT, "scripts", "postgres-local")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Postgres:
    def __init__(self):
        self.env = dict(os.environ)
        self.env.setdefault("SWITCHYARD_POSTGRES_DIR", os.path.join(BUILD, "postgres-local"))
        self.own = False
        if subprocess.run([SCRIPT, "status"], env=self.env, capture_output=True).returncode != 0:
            log("store tests: no PostgreSQL running; starting one with scripts/postgres-local")
            self.script("start")
            self.own = True
            atexit.register(self.stop)
        self.vars = {}
        for m in re.finditer(r"^export (\w+)=(.*)$", self.script("env"), re.M):
            self.vars[m.group(1)] = shlex.split(m.group(2))[0]
        self.url = self.vars["SWITCHYARD_POSTGRES_URL"]

    def script(self, *args, check=True):
        p = subprocess.run([SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"postgres-local {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p.stdout

    def psql(self, sql, db="switchyard"):
        return self.script("psql", "-d", db, "-tAc", sql).strip()

    def new_database(self, prefix="sy"):
        """A fresh empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.psql(f"CREATE DATABASE {name} OWNER switchyard", db="postgres")
        return self.url.rsplit("/", 1)[0] + "/" + name, name

    def stop(self):
        if self.own:
            self.own = False
            self.script("stop", check=False)
