# SPDX-License-Identifier: MIT
"""The `store` phase of tests/bench/bench.py: the store sink's insert rate against a raw
batched insert of the same rows into the same database, in the same run.

The input is one file of N JSON lines (1 KB-ish messages with an id, a sent-by and a sent-at
header). The pipeline, `switchyard run` of stdin -> store (batch_size 500), is timed from
the process start to its exit after the last commit (start-up and the stdin parsing
included). The ceiling, tests/bench/sy-bench-store, reads the same file, makes the same rows
before its clock starts and inserts them in batches of 500 with the library's insert (what
the sink calls), into a fresh database of the same kind. SQLite always; PostgreSQL on a
private server (scripts/postgres-local, started here when none runs and stopped after).
For PostgreSQL the alternative insert, one prepared INSERT per row in a transaction per
batch, is measured too (not a goal: it says why the sink uses one unnest() statement).
"""
import json
import os
import subprocess
import tempfile
import time

BATCH = 500


def make_input(path, n):
    with open(path, 'w') as f:
        for i in range(n):
            body = {'n': i, 'package': f'pkg{i % 997}', 'comment': 'x' * 800}
            headers = {'sent-by': f'user{i % 50}', 'sent-at': '2026-12-06T01:00:00+00:00'}
            f.write(json.dumps({'topic': f'org.fedoraproject.prod.bench.k{i % 10}', 'body': body,
                                'headers': headers, 'id': f'2026-bench-{i:08d}'}) + '\n')


class Pg:
    def __init__(self, b):
        root = os.environ.get('SWITCHYARD_SOURCE_ROOT', os.path.join(os.path.dirname(__file__), '..', '..'))
        self.script = os.path.join(root, 'scripts', 'postgres-local')
        self.env = dict(os.environ)
        self.env.setdefault('SWITCHYARD_POSTGRES_DIR',
                            os.path.join(os.environ.get('SWITCHYARD_BUILD_ROOT', b.work), 'bench', 'postgres'))
        self.own = subprocess.run([self.script, 'status'], env=self.env, capture_output=True).returncode != 0
        if self.own:
            subprocess.run([self.script, 'start'], env=self.env, check=True, capture_output=True, timeout=120)
        self.url = subprocess.run([self.script, 'url'], env=self.env, check=True, capture_output=True,
                                  text=True).stdout.strip()
        self.n = 0

    def new_db(self):
        self.n += 1
        name = f'bench_{os.getpid()}_{self.n}'
        subprocess.run([self.script, 'psql', '-d', 'postgres', '-c', f'DROP DATABASE IF EXISTS {name}'],
                       env=self.env, check=True, capture_output=True)
        subprocess.run([self.script, 'psql', '-d', 'postgres', '-c', f'CREATE DATABASE {name} OWNER switchyard'],
                       env=self.env, check=True, capture_output=True)
        return self.url.rsplit('/', 1)[0] + '/' + name

    def stop(self):
        if self.own:
            subprocess.run([self.script, 'stop'], env=self.env, capture_output=True)


def sink_rate(b, url, path, n):
    cfg = os.path.join(b.work, 'store-bench.yaml')
    with open(cfg, 'w') as f:
        f.write(f'version: 1\npipelines:\n  keep:\n    input: {{type: stdin}}\n'
                f'    outputs: [{{type: store, database: "{url}", batch_size: {BATCH}, batch_ms: 100}}]\n')
    with open(path, 'rb') as inp:
        t0 = time.monotonic()
        p = subprocess.run([b.a.switchyard_bin, 'run', cfg, '--stats-interval', '1000'],
                           stdin=inp, capture_output=True, env=b.sy_env, timeout=600)
        s = time.monotonic() - t0
    if p.returncode != 0 or f'stored={n}' not in p.stderr.decode():
        raise RuntimeError(f'store pipeline failed ({p.returncode}): {p.stderr.decode()[-2000:]}')
    return n / s


def raw_rate(b, url, path, n, mode=None):
    tool = os.path.join(os.path.dirname(os.path.abspath(b.a.bench_bin)), 'sy-bench-store')
    argv = [tool, url, path, str(BATCH)] + ([mode] if mode else [])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f'sy-bench-store failed: {p.stderr}')
    rows, _, rate = p.stdout.split()
    assert int(rows) == n, p.stdout
    return float(rate)


def run(b, _bench_module):
    n = 20000 if b.a.quick else 100000
    path = os.path.join(b.work, f'store-input-{n}.jsonl')
    if not os.path.exists(path):
        make_input(path, n)
    def sqlite_url():
        # A fresh file each time, also across repetitions.
        return 'sqlite:' + os.path.join(tempfile.mkdtemp(prefix='store-', dir=b.work), 'messages.db')

    # Raw first, then the sink, each on a fresh database: the same conditions.
    b.record('ceiling.store.sqlite', raw_rate(b, sqlite_url(), path, n), 'msg/s')
    b.record('store.sqlite', sink_rate(b, sqlite_url(), path, n), 'msg/s')
    pg = Pg(b)
    try:
        b.record('ceiling.store.postgresql', raw_rate(b, pg.new_db(), path, n), 'msg/s')
        b.record('store.postgresql', sink_rate(b, pg.new_db(), path, n), 'msg/s')
        b.record('ceiling.store.postgresql_loop', raw_rate(b, pg.new_db(), path, n, 'pg-loop'), 'msg/s')
    finally:
        pg.stop()


def rows(row, med, ok08):
    for db, name in (('sqlite', 'SQLite (WAL, synchronous=NORMAL)'), ('postgresql', 'PostgreSQL 15, loopback')):
        row(f'raw batched insert of the same rows (sy-bench-store, batches of {BATCH}), {name}',
            f'ceiling.store.{db}', 'msg/s')
        row(f'store sink (stdin -> store, batch_size {BATCH}), {name}', f'store.{db}', 'msg/s',
            med(f'ceiling.store.{db}'), 'raw insert', '>= 0.8x', ok08)
    row(f'PostgreSQL: one prepared INSERT per row, transaction per {BATCH} (not used)',
        'ceiling.store.postgresql_loop', 'msg/s', med('ceiling.store.postgresql'), 'unnest insert')
