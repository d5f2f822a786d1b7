# SPDX-License-Identifier: MIT
"""The `instructions` phase of tests/bench/bench.py: user-space instructions per message of
each bridge, counted by valgrind's callgrind.

CPU time per message (the `.cpu` rows) is what an operator pays, but on a shared or virtual
machine it moves by 5-10 % between identical runs, so a change of that size cannot be seen
in it. An instruction count does not depend on the machine's load: each bridge runs under
callgrind once with 1 message and once with N, and (count(N) - count(1)) / (N - 1) is what
one more message costs, without start-up and shutdown. It covers user space only (the
bridge, its plugins and the libraries they call: RapidJSON, rabbitmq-c, libzmq, OpenSSL);
the kernel's share (the syscalls) is only in the CPU rows.
"""
import os
import shutil

# key, direction, verify/sign, prefetch (A->Z), signed (fewer messages: RSA under valgrind is slow)
CASES = (
    ('z2a.plain.1024', 'z2a', False, None, False),
    ('z2a.verify.1024', 'z2a', True, None, False),
    ('a2z.plain.p10.1024', 'a2z', False, 10, False),
    ('a2z.plain.p1000.1024', 'a2z', False, 1000, False),
    ('a2z.sign.1024', 'a2z', True, None, True),
)


def callgrind_total(path):
    """The total instruction count of a callgrind output file (its `summary:` line)."""
    with open(path) as f:
        for line in f:
            if line.startswith('summary:') or line.startswith('totals:'):
                return int(line.split()[1])
    raise RuntimeError(f'{path}: no summary line')


def start_valgrind(b, yaml_text, name):
    path = os.path.join(b.work, f'instr-{name}.yaml')
    with open(path, 'w') as f:
        f.write(yaml_text)
    out = os.path.join(b.work, f'instr-{name}.callgrind')
    argv = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}', b.a.switchyard_bin, 'run', path,
            '--log-level', 'warn']
    return b.p.start(argv, f'valgrind-{name}', env=b.sy_env), out


def z2a_count(b, m, verify, name, bench):
    b.setup_queue('bench-z2a', bench.Z2A_TOPIC + '.#')
    epfile = os.path.join(b.work, f'ep-instr-{name}.txt')
    if os.path.exists(epfile):
        os.unlink(epfile)
    gargs = ['zmq-gen', '--pubs', 1, '--endpoints-file', epfile, '--size', 1024, '--count', m,
             '--topic', bench.Z2A_TOPIC, '--wait', 300, '--nodrop']
    if verify:
        gargs += ['--sign', f'{b.pki}/bench.key', f'{b.pki}/bench.crt', '--pool', 500]
    gen = b.p.start(b.tool(*gargs), 'zmq-gen')
    endpoints = bench.wait_for(lambda: os.path.exists(epfile) and open(epfile).read().split(), 60,
                               'the generator endpoints')
    sy, out = start_valgrind(b, b.z2a_yaml(endpoints, verify), name)
    # The generator sends once the bridge subscribed; everything it sent ends in the queue.
    g = b.p.result(gen, 900)
    c = b.run_tool('amqp-count', '--url', b.url, '--queue', 'bench-z2a', '--expect', m, '--idle', 10,
                   '--timeout', 900, timeout=1000)
    b.stop_switchyard(sy)
    if g['sent'] != m or c['count'] != m:
        raise RuntimeError(f'instructions {name}: sent {g["sent"]}, arrived {c["count"]} of {m}')
    return callgrind_total(out)


def a2z_count(b, m, sign, prefetch, name, bench):
    b.fill_a2z(m)
    ep = f'tcp://127.0.0.1:{bench.free_port()}'
    cnt = b.p.start(b.tool('zmq-count', '--connect', ep, '--expect', m, '--idle', 10, '--timeout', 900,
                           '--hwm', max(m, 1000)), 'zmq-count')
    sy, out = start_valgrind(b, b.a2z_yaml('bench-a2z', ep, sign, prefetch), name)
    c = b.p.result(cnt, 1000)
    b.stop_switchyard(sy)
    if c['received'] != m:
        raise RuntimeError(f'instructions {name}: received {c["received"]} of {m}')
    return callgrind_total(out)


def run(b, bench):
    """Records instr.KEY (instructions per message) for each case. @p bench is bench.py."""
    if not shutil.which('valgrind'):
        bench.log('instructions: valgrind is not installed (scripts/bench installs it); phase skipped')
        return
    for key, direction, flag, prefetch, signed in CASES:
        n = b.a.instr_signed_messages if signed else b.a.instr_messages
        counts = []
        for m in (1, n):
            name = f'{key}.{m}'
            if direction == 'z2a':
                counts.append(z2a_count(b, m, flag, name, bench))
            else:
                counts.append(a2z_count(b, m, flag, prefetch, name, bench))
        per_msg = (counts[1] - counts[0]) / (n - 1)
        b.record(f'instr.{key}', per_msg, 'instr/msg')
        bench.log(f'instructions {key}: {per_msg:,.0f} per message ({counts[0]:,} for 1 message, '
                  f'{counts[1]:,} for {n})')
