# SPDX-License-Identifier: MIT
"""Paired A/B comparison of the CPU time per message of two builds of the bridge.

On a machine shared with other work, CPU time per message moves by 5-30 % from one run to
the next, more than most changes save. Here the runs of build A and build B alternate
(A B B A A B B A ...), so that both see the same load on average, and each pair gives one
ratio B / A. What it prints per case: the median CPU s per 1,000 messages of each build, the
median of the pair ratios with their minimum and maximum, and how many of the pairs have
B below A.

  /usr/bin/python3 tests/bench/bench_ab.py --bench-bin BUILD_B/tests/bench/sy-bench \\
      --a BUILD_A --b BUILD_B [--pairs 6] [--cases z2a-plain-1024 a2z-p10 ...]

BUILD_A and BUILD_B are build directories (core/cli/switchyard and the plugins of that
build are used). The broker comes from $SWITCHYARD_TEST_AMQP_URL, else a private node is
started (as tests/bench/bench.py does). Nothing here asserts: the figures are reported.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import bench

# name -> (direction, size, verify/sign, prefetch)
CASES = {
    'z2a-plain-200': ('z2a', 200, False, None),
    'z2a-plain-1024': ('z2a', 1024, False, None),
    'z2a-plain-10240': ('z2a', 10240, False, None),
    'z2a-verify-200': ('z2a', 200, True, None),
    'z2a-verify-1024': ('z2a', 1024, True, None),
    'z2a-verify-10240': ('z2a', 10240, True, None),
    'a2z-p10': ('a2z', 1024, False, 10),
    'a2z-p100': ('a2z', 1024, False, 100),
    'a2z-p1000': ('a2z', 1024, False, 1000),
}


def plugin_path(build):
    """SWITCHYARD_PLUGIN_PATH of a build tree, as `meson devenv` gives it."""
    out = subprocess.run(['meson', 'devenv', '-C', build, '--dump'], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith('SWITCHYARD_PLUGIN_PATH='):
            return line.split('=', 1)[1].strip().strip('"').strip("'")
    raise RuntimeError(f'{build}: no SWITCHYARD_PLUGIN_PATH in meson devenv --dump')


class AB(bench.Bench):
    def use(self, build):
        # core/cli/switchyard; core/switchyard in builds from before the command had its folder.
        self.a.switchyard_bin = next(p for p in (os.path.join(build, 'core', 'cli', 'switchyard'),
                                                 os.path.join(build, 'core', 'switchyard')) if os.path.exists(p))
        self.sy_env = dict(os.environ, SWITCHYARD_PLUGIN_PATH=plugin_path(build))

    def once(self, name):
        direction, size, crypto, prefetch = CASES[name]
        if direction == 'z2a':
            r = self.z2a_run(f'ab-{name}', size, crypto)
        else:
            r = self.a2z_run(f'ab-{name}', crypto, self.a.a2z_messages, prefetch=prefetch)
        if r['loss'] != 0:
            raise RuntimeError(f'{name}: {r["loss"]} message(s) lost')
        return r['cpu_per_1000'], r['rate']


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--bench-bin', required=True)
    ap.add_argument('--a', required=True, help='build directory of the reference (A)')
    ap.add_argument('--b', required=True, help='build directory of the change (B)')
    ap.add_argument('--pairs', type=int, default=6)
    ap.add_argument('--seconds', type=float, default=3.0, help='length of each Z->A run')
    ap.add_argument('--a2z-messages', type=int, default=30000)
    ap.add_argument('--cases', nargs='*', default=['z2a-plain-1024', 'z2a-verify-1024', 'a2z-p10'],
                    choices=sorted(CASES))
    ap.add_argument('--out', help='write the runs and the summary as JSON here')
    a = ap.parse_args()
    a.profile = None
    work = tempfile.mkdtemp(prefix='sy-bench-ab-')
    url = os.environ.get('SWITCHYARD_TEST_AMQP_URL')
    stop_broker = None
    b = None
    result = {}
    try:
        if not url:
            url, stop_broker = bench.start_private_broker(work)
        b = AB(a, work, url)
        b.make_pki()
        builds = {'A': os.path.abspath(a.a), 'B': os.path.abspath(a.b)}
        for name in a.cases:
            runs = {'A': [], 'B': []}
            rates = {'A': [], 'B': []}
            for i in range(a.pairs):
                order = 'AB' if i % 2 == 0 else 'BA'
                for which in order:
                    b.use(builds[which])
                    cpu, rate = b.once(name)
                    runs[which].append(cpu)
                    rates[which].append(rate)
                bench.log(f'{name} pair {i + 1}: A {runs["A"][-1]:.4f}  B {runs["B"][-1]:.4f}')
            ratios = [y / x for x, y in zip(runs['A'], runs['B'])]
            s = {'A': runs['A'], 'B': runs['B'], 'median_A': statistics.median(runs['A']),
                 'median_B': statistics.median(runs['B']), 'ratio_median': statistics.median(ratios),
                 'ratio_min': min(ratios), 'ratio_max': max(ratios), 'b_lower': sum(r < 1 for r in ratios),
                 'rates_A': rates['A'], 'rates_B': rates['B']}
            result[name] = s
            print(f'{name}: CPU s/1000 msgs A {s["median_A"]:.4f}  B {s["median_B"]:.4f}  '
                  f'B/A per pair: median {s["ratio_median"]:.3f} (min {s["ratio_min"]:.3f}, '
                  f'max {s["ratio_max"]:.3f}), B lower in {s["b_lower"]}/{a.pairs}; msg/s median '
                  f'A {statistics.median(rates["A"]):,.0f}  B {statistics.median(rates["B"]):,.0f}', flush=True)
        if a.out:
            with open(a.out, 'w') as f:
                json.dump(result, f, indent=1)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if b:
            b.p.stop_all()
        if stop_broker:
            stop_broker()
        subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    sys.exit(main())
