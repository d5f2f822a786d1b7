#!/usr/bin/python3
"""libswitchyard-store-db's unit test (test_store_db.cpp) against a real PostgreSQL server
started privately on 127.0.0.1 (scripts/postgres-local), in a fresh database."""
import os
import subprocess
import sys

from pg_fixture import Postgres, log


def main():
    binary = sys.argv[1]
    pg = Postgres()
    url, _ = pg.new_database("unit")
    env = dict(os.environ, SWITCHYARD_TEST_POSTGRES_URL=url)
    p = subprocess.run([binary], env=env, timeout=120)
    if p.returncode != 0:
        log(f"test_store_db against {url} failed")
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
