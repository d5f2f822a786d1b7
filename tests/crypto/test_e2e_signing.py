#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""End to end through `switchyard run` with the plugins loaded from the build tree:

1. Python PUB -> zmq-sub -> signer -> zmq-pub: a Python SUB socket receives the messages and verifies each
   with python3-cryptography over Python's canonical bytes (the frame topic must equal the
   envelope topic).
2. Python PUB -> zmq-sub -> verifier -> stdout: messages signed in Python with a trusted
   key come out; interleaved forged ones (revoked key, foreign CA, tampered) never do.
Keys, CA and CRL are made with openssl at test time.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyhelper  # noqa: E402

BIN = os.environ['SWITCHYARD_BIN']
TOPIC = 'org.fedoraproject.dev.e2e.test'
DEADLINE = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def py_verify(envelope_text):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    env = json.loads(envelope_text)
    sig = base64.b64decode(env.pop('signature'))
    cert = x509.load_pem_x509_certificate(base64.b64decode(env.pop('certificate')))
    cert.public_key().verify(sig, pyhelper.canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
    return env, cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


def py_sign(pki, who, env):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    env = dict(env, crypto='x509')
    with open(os.path.join(pki, who + '.key'), 'rb') as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(pki, who + '.crt'), 'rb') as f:
        pem = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.PEM)
    sig = key.sign(pyhelper.canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
    env['signature'] = base64.b64encode(sig).decode()
    env['certificate'] = base64.b64encode(pem).decode()
    return env


def run_switchyard(config_path, **kw):
    return subprocess.Popen([BIN, 'run', config_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_signer(tmp, pki):
    """A signing relay: unsigned fedmsg in (zmq-sub), signed fedmsg out (zmq-pub)."""
    in_port, out_port = free_port(), free_port()
    cfg = os.path.join(tmp, 'sign.yaml')
    with open(cfg, 'w') as f:
        f.write(f"""version: 1
pipelines:
  sign:
    input: {{type: zmq-sub, endpoints: ["tcp://127.0.0.1:{in_port}"]}}
    filters:
      - type: signer
        cert_file: {pki}/good.crt
        key_file: {pki}/good.key
    outputs:
      - {{type: zmq-pub, endpoints: ["tcp://127.0.0.1:{out_port}"], bind: true}}
""")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(f'tcp://127.0.0.1:{in_port}')
    proc = run_switchyard(cfg)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b'')
    sub.connect(f'tcp://127.0.0.1:{out_port}')
    received = []
    try:
        deadline = time.monotonic() + DEADLINE
        n = 0
        # PUB/SUB joins late on both hops: publish until messages arrive.
        while len(received) < 5 and time.monotonic() < deadline:
            n += 1
            env = {'topic': TOPIC, 'msg': {'n': n, 'text': 'h\u00e9llo \U0001F600', 'f': 1.50},
                   'msg_id': f'2024-e2e-{n}', 'timestamp': 1700000000, 'i': n, 'username': 'apache'}
            # Python's default layout (", " and ": "), not canonical
            pub.send_multipart([TOPIC.encode(), json.dumps(env).encode()])
            while sub.poll(100):
                received.append(sub.recv_multipart())
        assert len(received) >= 5, f'only {len(received)} messages received (switchyard alive: {proc.poll() is None})'
        for frames in received:
            assert len(frames) == 2, frames
            env, cn = py_verify(frames[1].decode('ascii'))
            assert cn == 'good.example.org', cn
            assert frames[0].decode() == env['topic'] == TOPIC
            assert env['crypto'] == 'x509' and env['username'] == 'apache', env
            assert env['msg']['text'] == 'h\u00e9llo \U0001F600'
            assert env['msg_id'] == '2024-e2e-%d' % env['msg']['n'], env['msg_id']
    finally:
        stop(proc)
        sub.close(0)
        pub.close(0)
        ctx.term()
    print(f'signer: {len(received)} messages verified by python3-cryptography')


def test_verifier(tmp, pki):
    port = free_port()
    cfg = os.path.join(tmp, 'verify.yaml')
    with open(cfg, 'w') as f:
        f.write(f"""version: 1
pipelines:
  verify:
    input: {{type: zmq-sub, endpoints: ["tcp://127.0.0.1:{port}"]}}
    filters:
      - type: verifier
        ca_file: {pki}/ca.crt
        crl_file: {pki}/crl.pem
        routing_policy: {{{TOPIC}: [good.example.org]}}
    outputs:
      - {{type: stdout}}
""")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(f'tcp://127.0.0.1:{port}')
    proc = run_switchyard(cfg)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    forged_ids = set()
    good_ids = []
    try:
        deadline = time.monotonic() + DEADLINE
        n = 0
        while time.monotonic() < deadline:
            n += 1
            base = {'topic': TOPIC, 'msg': {'n': n, 'x': 1.5}, 'timestamp': 1700000000, 'i': n,
                    'username': 'e2e'}
            forged = [
                py_sign(pki, 'revoked', dict(base, msg_id=f'2024-revoked-{n}')),
                py_sign(pki, 'foreign', dict(base, msg_id=f'2024-foreign-{n}')),
                dict(py_sign(pki, 'good', dict(base, msg_id=f'2024-tampered-{n}')), i=n + 1),
                py_sign(pki, 'other', dict(base, msg_id=f'2024-other-{n}')),
            ]
            for env in forged:
                forged_ids.add(env['msg_id'])
                pub.send_multipart([TOPIC.encode(), json.dumps(env).encode()])
            good = py_sign(pki, 'good', dict(base, msg_id=f'2024-good-{n}'))
            good_ids.append(good['msg_id'])
            pub.send_multipart([TOPIC.encode(), json.dumps(good).encode()])
            time.sleep(0.1)  # pacing of the publisher, not synchronisation
            if sum(1 for line in list(lines) if b'2024-good-' in line) >= 3:
                break
    finally:
        stop(proc)
        reader.join(timeout=5)
        pub.close(0)
        ctx.term()
    out = [json.loads(line) for line in lines if line.strip()]
    got = [m['id'] for m in out]
    assert sum(1 for i in got if i.startswith('2024-good-')) >= 3, (got, proc.stderr.read().decode()[-2000:])
    assert not forged_ids.intersection(got), forged_ids.intersection(got)
    assert all(i in good_ids for i in got), got
    print(f'verifier: {len(got)} valid messages passed, {len(forged_ids)} forged ones published, none passed')


def main():
    with tempfile.TemporaryDirectory(prefix='sy-e2e-crypto-') as tmp:
        pki = os.path.join(tmp, 'pki')
        os.makedirs(pki)
        pyhelper.pki(pki)
        test_signer(tmp, pki)
        test_verifier(tmp, pki)
    return 0


if __name__ == '__main__':
    sys.exit(main())
