#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/seed-*) from the
project's own test inputs: the string literals of the codec, replay, http-in and
configuration tests, the configuration test corpus and example pipelines, and AMQP
property lists encoded by python3-pika the way a broker sends them. Run it again after
adding test inputs (docs/security.md); existing seeds are kept, new ones added.

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import decimal
import hashlib
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAX_SEED = 64 * 1024

RAW = re.compile(r'R"([^(\s]{0,16})\((.*?)\)\1"', re.S)
QUOTED = re.compile(r'(?<![A-Za-z0-9_R])"((?:[^"\\\n]|\\.)*)"')
PYSTR = re.compile(r"""(?<![A-Za-z0-9_])b?(?:'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)")""")


def c_unescape(s):
    out = bytearray()
    i = 0
    simple = {'n': 10, 't': 9, 'r': 13, '0': 0, '\\': 92, '"': 34, "'": 39, 'b': 8, 'f': 12, 'v': 11, 'a': 7}
    while i < len(s):
        c = s[i]
        if c != '\\' or i + 1 == len(s):
            out += c.encode('utf-8')
            i += 1
            continue
        n = s[i + 1]
        if n == 'x':
            m = re.match(r'[0-9a-fA-F]{1,2}', s[i + 2:])
            out.append(int(m.group(0), 16) if m else 0)
            i += 2 + (len(m.group(0)) if m else 0)
        elif n in 'uU':
            width = 4 if n == 'u' else 8
            try:
                out += chr(int(s[i + 2:i + 2 + width], 16)).encode('utf-8', 'surrogatepass')
            except ValueError:
                out += s[i:i + 2].encode()
            i += 2 + width
        else:
            out.append(simple.get(n, ord(n) if ord(n) < 128 else 63))
            i += 2
    return bytes(out)


def literals(path, raw_only=False):
    text = open(os.path.join(ROOT, path), encoding='utf-8', errors='replace').read()
    found = [m.group(2).encode('utf-8') for m in RAW.finditer(text)]
    if not raw_only:
        found += [c_unescape(m.group(1)) for m in QUOTED.finditer(RAW.sub('', text))]
    return found


def py_literals(path):
    text = open(os.path.join(ROOT, path), encoding='utf-8', errors='replace').read()
    return [c_unescape(m.group(1) if m.group(1) is not None else m.group(2)) for m in PYSTR.finditer(text)]


def files(pattern_dir, exts):
    d = os.path.join(ROOT, pattern_dir)
    return [open(os.path.join(d, f), 'rb').read() for f in sorted(os.listdir(d)) if f.endswith(exts)]


def jsonish(b):
    s = b.strip()
    return len(s) >= 2 and s[:1] in (b'{', b'[')


def write(target, seeds):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    n = 0
    for s in seeds:
        if not s or len(s) > MAX_SEED:
            continue
        name = 'seed-' + hashlib.sha1(s).hexdigest()[:16]
        p = os.path.join(d, name)
        if not os.path.exists(p):
            with open(p, 'wb') as f:
                f.write(s)
            n += 1
    print(f'{target}: {n} new seeds, {len(os.listdir(d))} in corpus/{target}')


def amqp_seeds():
    import pika  # python3-pika, as the tests' AMQP peers
    signed = {
        'fedmsg_timestamp': 1700000000, 'fedmsg_i': 3, 'fedmsg_username': 'apache',
        'fedmsg_crypto': 'x509', 'fedmsg_signature': 'c2ln', 'fedmsg_certificate': 'Y2VydA==',
        'fedmsg_msg_id': '2026-5e7b7d8a-0000-4000-8000-000000000042',
        'fedmsg_extra': json.dumps({'headers': {'a': 1}, 'seq_id': 9}, sort_keys=True, separators=(',', ':')),
    }
    headers = [
        None,
        {},
        {'fedora_messaging_schema': 'base.message', 'fedora_messaging_schema_package': 'fedora_messaging',
         'fedora_messaging_severity': 20, 'sent-at': '2026-12-06T03:00:00+00:00', 'priority': 0},
        signed,
        dict(signed, fedmsg_extra='[1]'),
        {'priority': 300, 'big': 2 ** 40, 'neg': -5, 'f': decimal.Decimal('1.5'), 't': True, 'n': None,
         'nested': {'x': [1, 'two', {'three': decimal.Decimal('3.25')}]}, 'bytes': b'\xff\xfe'},
        {'x-death': [{'count': 1, 'reason': 'rejected', 'queue': 'q', 'time': 1700000000}]},
    ]
    seeds = []
    for k, h in enumerate(headers):
        props = pika.spec.BasicProperties(
            content_type='application/json', content_encoding='utf-8', delivery_mode=2,
            message_id=['2026-5e7b7d8a-0000-4000-8000-000000000042', 'not-a-uuid', '\u00e9', None][k % 4],
            timestamp=[1700000000, None][k % 2], priority=[None, 5][k % 2], headers=h,
            type=['org.fedoraproject.prod.bodhi.update', None, 'fuzz.x.y'][k % 3])
        seeds.append(b''.join(props.encode()))
    return seeds


def main():
    env = []
    for p in ['tests/zmq/test_fedmsg_codec.cpp', 'tests/unit/test_envelope_scan.cpp',
              'tests/crypto/test_canonical_json.cpp', 'tests/unit/test_utf8.cpp',
              'tests/replay/test_replay_codec.cpp', 'tests/crypto/test_crypto_filters.cpp']:
        env += literals(p)
    for p in ['tests/bridges/test_bad_input.py', 'tests/zmq/test_zmq_sub.py', 'tests/crypto/pyhelper.py']:
        env += [s for s in py_literals(p) if jsonish(s)]
    env = [s for s in env if jsonish(s) or len(s) > 2]
    write('envelope', env)

    ver = [b'\x01' + s for s in env if s.lstrip().startswith(b'{')]
    ver += [b'\x00', b'\x00' + bytes([0, 0, 10, 32]), b'\x00' + bytes([1, 0, 1, 32]) * 3,
            b'\x00' + bytes([2, 0, 40, 0]), b'\x00' + bytes([0, 1, 20, 65, 2, 0, 200, 0])]
    write('verifier', ver)

    cfg = files('tests/config/bad', ('.yaml', '.yml'))
    cfg += files('examples/pipelines', ('.yaml', '.yml'))
    cfg += [s for s in literals('tests/config/test_config.cpp', raw_only=True) if b':' in s]
    cfg += [s for s in literals('tests/config/test_config_more.cpp', raw_only=True) if b':' in s]
    cfg += [b'version: 1\npipelines:\n  p:\n    input: {type: src, address: "${FUZZ_HOST}", port: ${FUZZ_PORT}}\n'
            b'    filters: [{type: filter, prefix: "${FUZZ_EMPTY:-x}"}]\n    outputs:\n      - type: sink\n'
            b'        path: "${FUZZ_UNSET}"\n']
    write('config', cfg)

    write('amqp', amqp_seeds())

    http = literals('tests/http/test_http_in_unit.cpp')
    http += [s for s in py_literals('tests/http/test_api.py') if jsonish(s)]
    http = [s for s in http if jsonish(s)]
    http.append(b'\n'.join(s for s in http[:6] if b'\n' not in s) + b'\n\n  \n')
    write('http', http)

    rep = literals('tests/replay/test_replay_codec.cpp')
    for p in ['tests/replay/replaytest.py', 'tests/replay/test_replay_server.py']:
        rep += [s for s in py_literals(p) if jsonish(s)]
    rep = [s for s in rep if jsonish(s) or s.startswith(b'error: ')]
    write('replay', rep)


if __name__ == '__main__':
    sys.exit(main())
