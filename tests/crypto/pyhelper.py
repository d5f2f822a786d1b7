#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Python side of the crypto tests (run with Debian's /usr/bin/python3).

  corpus SEED COUNT      generated envelopes: for each, the JSON text we feed the C++
                         canonicalizer and Python's json.dumps(json.loads(text),
                         sort_keys=True, separators=(',', ':')); framed as
                         "<len_in> <len_out>\\n<in><out>" records on stdout
  pki DIR                test CA, leaf key pairs, a CRL and a foreign CA, made with openssl
  leaf DIR NAME SECONDS  one more leaf NAME.key/NAME.crt from the CA of DIR (after pki), valid
                         from a minute ago until SECONDS from now; prints its notAfter as
                         seconds since the epoch
  sign KEY CRT [--oneline]   reads an envelope on stdin, signs it the way fedmsg's x509
                         backend does, writes it with json.dumps' default (non-canonical) layout
  verify                 reads a signed envelope on stdin, checks the signature with
                         python3-cryptography (PKCS#1 v1.5, SHA-1) over Python's canonical
                         bytes; prints the certificate's CN; exit 1 when invalid
"""
import base64
import json
import os
import random
import struct
import subprocess
import sys


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'))


# ---------------------------------------------------------------------------------------
# corpus

SPECIAL_CHARS = ['\u00e9', '\u4e2d', '\uffff', '\ufeff', '\ue000', '\u2028', '\u2029', '\u007f',
                 '\u0000', '\u0001', '\u001f', '\b', '\f', '\n', '\r', '\t', '"', '\\', '/',
                 '\U0001F600', '\U0001D11E', '\U0010FFFF', '\U00010000', '\u0080', '\u07ff',
                 '\u0800', '\ud7ff', ' ', '~']
BOUNDARY_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 0.1, 1 / 3, 100.0, 1e15, 1e16, 1e17, 9999999999999998.0,
                   1e-4, 1e-5, 0.0001, 0.00009999, 0.00011, 1.5e300, -1.5e300, 5e-324, 2.2250738585072014e-308,
                   1.7976931348623157e308, 123456789012345678.0, 1234567890123456.7, 1400000000.0,
                   1700000000.123, float('nan'), float('inf'), float('-inf'), 3.141592653589793,
                   1e22, 1e21, 1e23, 0.30000000000000004, 2 ** 53, 2.0 ** 63, 1e-7, 12345.678e-10]
BOUNDARY_INTS = [0, 1, -1, 2 ** 31, -2 ** 31 - 1, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1,
                 2 ** 64 - 1, 2 ** 64, 2 ** 64 + 1, 10 ** 30, -10 ** 40, 12345678901234567890123,
                 int('9' * 300), -int('7' * 299)]
# Number spellings whose Python value differs from their text.
RAW_NUMBER_TOKENS = ['1E2', '1.0e2', '1e+2', '-0', '-0.0', '0e0', '-0E-0', '100e-2', '1.50', '1.000000000000000000001',
                     '0.1e-3', '12345678901234567890123', '-12345678901234567890123', '1e308', '1e-400', '-1e-400',
                     '2.5E-5', '0.000001', '1e15', '1e16', '123456789012345678901234567890.5',
                     '4.9406564584124654e-324', '2.4703282292062328e-324', '1.7976931348623158e308',
                     'NaN', 'Infinity', '-Infinity', '3.14159265358979323846', '0.30000000000000004',
                     '1' + '0' * 25, '1.' + '0' * 40 + '1']


def rand_string(rng, max_len=12):
    out = []
    for _ in range(rng.randint(0, max_len)):
        r = rng.random()
        if r < 0.45:
            out.append(chr(rng.randint(0x20, 0x7e)))
        elif r < 0.7:
            out.append(rng.choice(SPECIAL_CHARS))
        elif r < 0.8:
            out.append(chr(rng.randint(0, 0x1f)))
        elif r < 0.92:
            c = rng.randint(0x80, 0xffff)
            if 0xd800 <= c <= 0xdfff:
                c = 0xe000 + (c & 0xff)
            out.append(chr(c))
        else:
            out.append(chr(rng.randint(0x10000, 0x10ffff)))
    return ''.join(out)


def rand_float(rng):
    r = rng.random()
    if r < 0.3:
        return rng.choice(BOUNDARY_FLOATS)
    if r < 0.6:
        # any finite double, from its bits
        while True:
            f = struct.unpack('<d', struct.pack('<Q', rng.getrandbits(64)))[0]
            if f == f and f not in (float('inf'), float('-inf')):
                return f
    if r < 0.8:
        # around the positional/scientific switch points
        return rng.choice([1.0, -1.0]) * rng.random() * 10.0 ** rng.choice([-6, -5, -4, -3, 14, 15, 16, 17])
    return round(rng.uniform(-1e6, 1e6), rng.randint(0, 6))


def rand_int(rng):
    r = rng.random()
    if r < 0.4:
        return rng.choice(BOUNDARY_INTS)
    if r < 0.7:
        return rng.randint(-1000, 1000)
    return rng.randint(-10 ** rng.randint(1, 80), 10 ** rng.randint(1, 80))


def rand_value(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.45:
        k = rng.random()
        if k < 0.3:
            return rand_string(rng)
        if k < 0.55:
            return rand_int(rng)
        if k < 0.8:
            return rand_float(rng)
        return rng.choice([None, True, False])
    if r < 0.72:
        return [rand_value(rng, depth - 1) for _ in range(rng.randint(0, 5))]
    return {rand_string(rng, 6): rand_value(rng, depth - 1) for _ in range(rng.randint(0, 6))}


def rand_envelope(rng, n):
    env = {
        'topic': 'org.fedoraproject.dev.corpus.' + rand_string(rng, 8),
        'msg': rand_value(rng, rng.randint(0, 7)),
        'msg_id': '%d-%08x-0000-4000-8000-%012x' % (rng.randint(2012, 2030), n, rng.getrandbits(48)),
        'timestamp': rng.choice([rng.randint(1300000000, 1800000000), rng.uniform(1.3e9, 1.8e9),
                                 round(rng.uniform(1.3e9, 1.8e9), 3)]),
        'i': rng.randint(1, 10 ** 6),
        'username': rng.choice(['root', 'apache', 'amqp-bridge', rand_string(rng, 8)]),
    }
    if rng.random() < 0.3:
        env['headers'] = rng.choice([{}, None, {rand_string(rng, 5): rand_string(rng)}])
    if rng.random() < 0.1:
        env['crypto'] = 'x509'
    if rng.random() < 0.05:
        env[''] = []  # empty key, empty list
    # keys that sort differently by code point and by UTF-16 unit
    if rng.random() < 0.1:
        env['msg'] = {'\uffff': 1, '\U0001F600': 2, '\ue000': 3, 'z': {}, 'A': [], '\u00e9': ''}
    return env


def to_text(rng, env):
    style = rng.randint(0, 3)
    if style == 0:
        return json.dumps(env)
    if style == 1:
        return json.dumps(env, ensure_ascii=False)
    if style == 2:
        return json.dumps(env, indent=rng.choice([1, 2, '\t']), ensure_ascii=rng.random() < 0.5)
    items = list(env.items())
    rng.shuffle(items)
    return json.dumps(dict(items), separators=(',', ':'), ensure_ascii=rng.random() < 0.5)


def corpus(seed, count):
    rng = random.Random(seed)
    out = sys.stdout.buffer
    for n in range(count):
        if n % 10 == 9:
            # raw number spellings embedded in an envelope
            toks = rng.sample(RAW_NUMBER_TOKENS, 6)
            text = ('{"topic":"t","msg":{"n":[' + ','.join(toks) + ']},"x":' + rng.choice(toks) +
                    ' , "lone":"a\\udc00b"}')
        elif n % 97 == 13:
            depth = rng.randint(50, 120)
            text = '[' * depth + '{"deep":-0.0}' + ']' * depth
        else:
            text = to_text(rng, rand_envelope(rng, n))
        expected = canonical(json.loads(text)).encode('ascii')
        data = text.encode('utf-8')
        out.write(b'%d %d\n' % (len(data), len(expected)))
        out.write(data)
        out.write(expected)


# ---------------------------------------------------------------------------------------
# PKI

CA_CNF = """
[ca]
default_ca = CA_default
[CA_default]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
certificate = {d}/ca.crt
private_key = {d}/ca.key
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
[policy_any]
commonName = supplied
"""


def openssl(*args, cwd):
    subprocess.run(['openssl'] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def pki(d):
    os.makedirs(os.path.join(d, 'newcerts'), exist_ok=True)
    with open(os.path.join(d, 'ca.cnf'), 'w') as f:
        f.write(CA_CNF.format(d=d))
    open(os.path.join(d, 'index.txt'), 'w').close()
    with open(os.path.join(d, 'serial'), 'w') as f:
        f.write('1000\n')
    with open(os.path.join(d, 'crlnumber'), 'w') as f:
        f.write('1000\n')
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
            '-days', '3650', '-subj', '/CN=switchyard-test-ca', cwd=d)
    leaves = {'good': None, 'revoked': None, 'expired': ('20200101000000Z', '20200201000000Z'),
              'other': None}
    for name, dates in leaves.items():
        openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', name + '.key', '-out', name + '.csr',
                '-subj', '/CN=%s.example.org' % name, cwd=d)
        extra = ['-startdate', dates[0], '-enddate', dates[1]] if dates else []
        openssl('ca', '-batch', '-notext', '-config', 'ca.cnf', '-in', name + '.csr', '-out', name + '.crt',
                *extra, cwd=d)
    # a CRL from before the revocation, then the real one
    openssl('ca', '-batch', '-config', 'ca.cnf', '-gencrl', '-out', 'crl-empty.pem', cwd=d)
    openssl('ca', '-batch', '-config', 'ca.cnf', '-revoke', 'revoked.crt', cwd=d)
    openssl('ca', '-batch', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem', cwd=d)
    # a CA nobody trusts, and a leaf it signed
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'foreign-ca.key', '-out', 'foreign-ca.crt',
            '-days', '3650', '-subj', '/CN=foreign-ca', cwd=d)
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'foreign.key', '-out', 'foreign.csr',
            '-subj', '/CN=good.example.org', cwd=d)
    openssl('x509', '-req', '-in', 'foreign.csr', '-CA', 'foreign-ca.crt', '-CAkey', 'foreign-ca.key',
            '-CAcreateserial', '-days', '365', '-out', 'foreign.crt', cwd=d)
    for f in os.listdir(d):
        if f.endswith('.key'):
            os.chmod(os.path.join(d, f), 0o600)


def leaf(d, name, seconds):
    import calendar
    import time
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', name + '.key', '-out', name + '.csr',
            '-subj', '/CN=%s.example.org' % name, cwd=d)
    os.chmod(os.path.join(d, name + '.key'), 0o600)
    # The dates are taken after the (slow) key generation, so the certificate really is
    # valid for about SECONDS from now.
    now = int(time.time())
    fmt = '%Y%m%d%H%M%SZ'
    start = time.strftime(fmt, time.gmtime(now - 60))
    end_epoch = now + seconds
    end = time.strftime(fmt, time.gmtime(end_epoch))
    openssl('ca', '-batch', '-notext', '-config', 'ca.cnf', '-in', name + '.csr', '-out', name + '.crt',
            '-startdate', start, '-enddate', end, cwd=d)
    assert calendar.timegm(time.strptime(end, fmt)) == end_epoch
    print(end_epoch)


# ---------------------------------------------------------------------------------------
# sign / verify with python3-cryptography, the way fedmsg's x509_ng backend does

def sign(key_file, crt_file, oneline):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    env = json.loads(sys.stdin.read())
    env['crypto'] = 'x509'
    env.pop('signature', None)
    env.pop('certificate', None)
    with open(key_file, 'rb') as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    sig = key.sign(canonical(env).encode('utf-8'), padding.PKCS1v15(), hashes.SHA1())
    with open(crt_file, 'rb') as f:
        pem = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.PEM)
    s, c = base64.b64encode(sig).decode(), base64.b64encode(pem).decode()
    if not oneline:
        s = '\n'.join(s[i:i + 76] for i in range(0, len(s), 76)) + '\n'
        c = '\n'.join(c[i:i + 76] for i in range(0, len(c), 76)) + '\n'
    env['signature'] = s
    env['certificate'] = c
    sys.stdout.write(json.dumps(env))  # default separators, insertion order: not canonical


def verify():
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    env = json.loads(sys.stdin.read())
    sig = base64.b64decode(env.pop('signature'))
    cert = x509.load_pem_x509_certificate(base64.b64decode(env.pop('certificate')))
    try:
        cert.public_key().verify(sig, canonical(env).encode('utf-8'), padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        print('invalid')
        return 1
    print(cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value)
    return 0


def main(argv):
    cmd = argv[1]
    if cmd == 'corpus':
        corpus(int(argv[2]), int(argv[3]))
    elif cmd == 'pki':
        pki(argv[2])
    elif cmd == 'leaf':
        leaf(argv[2], argv[3], int(argv[4]))
    elif cmd == 'sign':
        sign(argv[2], argv[3], '--oneline' in argv[4:])
    elif cmd == 'verify':
        return verify()
    else:
        print('unknown command', cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
