#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The traffic of scripts/demo's bridge part: a fedmsg publisher (python3-zmq, signing the
way fedmsg's x509 backend does) and an AMQP publisher (python3-pika), and a watcher on each
far side that prints every message as it arrives there.

    demo_bridges.py AMQP_URL FEDMSG_BIND BRIDGE_PUB PKI_DIR COUNT [IDS_FILE [VERIFY_LOG]]

FEDMSG_BIND: where our fedmsg publisher binds (the bridge and verify-missing connect to it);
BRIDGE_PUB: the AMQP->ZeroMQ bridge's PUB socket; IDS_FILE gets the ids of the demo messages;
VERIFY_LOG: verify-missing's log (with --log-matches), to wait until it matches the warm-up
messages of both directions before the demo starts. SWITCHYARD_DEMO_PACE: seconds between
two messages (0.3). Exits 0 when every message crossed once and none came back to the bus it
came from."""
import base64
import json
import os
import signal
import sys
import time
import uuid

import pika
import zmq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

FEDMSG_TOPIC = "org.fedoraproject.demo.fedmsg.hello"
AMQP_TOPIC = "org.fedoraproject.demo.amqp.hello"
BOLD, DIM, GREEN, CYAN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[36m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = CYAN = RED = RESET = ""


def say(text):
    print(text, flush=True)


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def wrap76(s):
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\n"


class Signer:
    def __init__(self, key_file, crt_file):
        with open(key_file, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(crt_file, "rb") as f:
            self.cert = wrap76(base64.b64encode(f.read()).decode())

    def sign(self, env):
        env = dict(env, crypto="x509")
        sig = self.key.sign(canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
        env["signature"] = wrap76(base64.b64encode(sig).decode())
        env["certificate"] = self.cert
        return env


def signed_by(env, ca):
    """CN of a valid signature from a certificate our CA issued, or None."""
    try:
        env = dict(env)
        sig = base64.b64decode(env.pop("signature"))
        cert = x509.load_pem_x509_certificate(base64.b64decode(env.pop("certificate")))
        cert.public_key().verify(sig, canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                               cert.signature_hash_algorithm)
        return cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    except Exception:  # noqa: BLE001 - any failure means "not verified"
        return None


def strip_year(mid):
    return mid[5:] if len(mid) > 5 and mid[:4].isdigit() and mid[4] == "-" else mid


class Demo:
    def __init__(self, url, fedmsg_bind, bridge_pub, pki):
        with open(f"{pki}/ca.crt", "rb") as f:
            self.ca = x509.load_pem_x509_certificate(f.read())
        self.signer = Signer(f"{pki}/publisher.key", f"{pki}/publisher.crt")
        self.zctx = zmq.Context()
        # XPUB (verbose): every subscriber's subscription reaches us, so we can wait for the
        # bridge and verify-missing to be connected instead of losing the first messages.
        self.pub = self.zctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.pub.setsockopt(zmq.LINGER, 2000)
        self.pub.bind(fedmsg_bind)
        self.sub = self.zctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(bridge_pub)
        self.poller = zmq.Poller()
        self.poller.register(self.pub, zmq.POLLIN)
        self.poller.register(self.sub, zmq.POLLIN)
        self.subscribers = 0
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        q = self.ch.queue_declare("", exclusive=True).method.queue
        # Both exchanges: a fedmsg message must arrive on zmq.topic (bridged), an AMQP one
        # only on amq.topic (published by us) and never on zmq.topic (that would be a loop).
        self.ch.queue_bind(q, "zmq.topic", "#")
        self.ch.basic_consume(q, self.on_amqp, auto_ack=True)
        self.i = 0
        self.sent_fedmsg, self.sent_amqp = {}, {}  # match key -> n
        self.crossed_to_amqp, self.crossed_to_zmq = set(), set()
        self.came_back = 0
        self.duplicates = 0
        self.warm_ids = set()  # warm-up messages (not shown)
        self.warm_fedmsg, self.warm_amqp = [], []
        self.warm_to_amqp = self.warm_to_zmq = False

    # -- the two watchers --------------------------------------------------------------
    def on_amqp(self, ch, method, props, body):
        key = strip_year(props.message_id or "")
        if key in self.warm_ids:
            self.warm_to_amqp = True
            return
        if key in self.sent_amqp:
            self.came_back += 1
            say(f"  {RED}LOOP: AMQP message {props.message_id} came back on zmq.topic{RESET}")
            return
        if key not in self.sent_fedmsg:
            return
        if key in self.crossed_to_amqp:
            self.duplicates += 1
            return
        self.crossed_to_amqp.add(key)
        say(f"  {GREEN}ZeroMQ -> AMQP{RESET}  exchange={method.exchange} key={method.routing_key} "
            f"message_id={props.message_id}\n{DIM}                  body={body.decode()}{RESET}")

    def on_zmq(self, frames):
        env = json.loads(frames[1])
        key = strip_year(env.get("msg_id", ""))
        if key in self.warm_ids:
            self.warm_to_zmq = True
            return
        if key in self.sent_fedmsg:
            self.came_back += 1
            say(f"  {RED}LOOP: fedmsg message {env['msg_id']} came back on the bridge's ZeroMQ socket{RESET}")
            return
        if key not in self.sent_amqp:
            return
        if key in self.crossed_to_zmq:
            self.duplicates += 1
            return
        self.crossed_to_zmq.add(key)
        cn = signed_by(env, self.ca)
        sig = f"signature OK ({cn})" if cn else f"{RED}signature NOT valid{RESET}"
        say(f"  {CYAN}AMQP -> ZeroMQ{RESET}  topic={frames[0].decode()} msg_id={env['msg_id']} "
            f"username={env.get('username')} {sig}\n"
            f"{DIM}                  msg={json.dumps(env['msg'], sort_keys=True)} headers={json.dumps(env.get('headers', {}))}{RESET}")

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self.conn.process_data_events(time_limit=0)
            left = end - time.monotonic()
            for sock, _ in self.poller.poll(max(0, min(50, int(left * 1000)))):
                if sock is self.pub:
                    if self.pub.recv()[:1] == b"\x01":
                        self.subscribers += 1
                else:
                    self.on_zmq(self.sub.recv_multipart())
            if left <= 0:
                return

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: timed out after {timeout}s waiting for {what}")
            self.pump(0.1)

    # -- the two publishers ------------------------------------------------------------
    def send_fedmsg(self, n, key=None):
        key = key or str(uuid.uuid4())
        self.i += 1
        env = {"topic": FEDMSG_TOPIC, "msg": {"text": f"hello from fedmsg #{n}", "n": n},
               "msg_id": f"{time.gmtime().tm_year}-{key}", "i": self.i, "timestamp": int(time.time()),
               "username": "demo", "headers": {}}
        self.pub.send_multipart([FEDMSG_TOPIC.encode(), json.dumps(self.signer.sign(env)).encode()])
        return key, env["msg_id"]

    def send_amqp(self, n, key=None):
        key = key or str(uuid.uuid4())
        self.ch.basic_publish("amq.topic", AMQP_TOPIC,
                              json.dumps({"text": f"hello from AMQP #{n}", "n": n}),
                              pika.BasicProperties(message_id=key, content_type="application/json",
                                                   headers={"fedora_messaging_schema": "base.message",
                                                            "fedora_messaging_severity": 20}))
        return key


def main(argv):
    # Ctrl-C: die of the signal, so that scripts/demo runs its clean-up trap at once.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    url, fedmsg_bind, bridge_pub, pki, count = argv[1], argv[2], argv[3], argv[4], int(argv[5])
    verify_log = argv[7] if len(argv) > 7 else None
    pace = float(os.environ.get("SWITCHYARD_DEMO_PACE", "0.3"))
    d = Demo(url, fedmsg_bind, bridge_pub, pki)
    # Ready when the ZeroMQ->AMQP bridge and verify-missing subscribed to our publisher, and a
    # warm-up message crossed each way (the bridge's PUB socket has us as a subscriber), and
    # verify-missing matched one of each direction (its subscription to the bridge's PUB
    # socket has arrived too). ZeroMQ says when a subscription reached a PUB socket only to
    # that socket, so for the sockets that are not ours a message that made it is the proof.
    d.wait(lambda: d.subscribers >= 2, 60, "the bridge and verify-missing to subscribe to the fedmsg publisher")

    def verify_matched():
        if verify_log is None:
            return True
        with open(verify_log, errors="replace") as f:
            matched = [line for line in f if " matched " in line]
        return (any(k in line for k in d.warm_fedmsg for line in matched)
                and any(k in line for k in d.warm_amqp for line in matched))

    def warm_up():
        k1, _ = d.send_fedmsg(0)
        k2 = d.send_amqp(0)
        d.warm_ids.update((k1, k2))
        d.warm_fedmsg.append(k1)
        d.warm_amqp.append(k2)
        d.pump(0.5)
        return d.warm_to_amqp and d.warm_to_zmq and verify_matched()
    d.wait(warm_up, 60, "warm-up messages to cross both ways and verify-missing to match them")

    say(f"{BOLD}fedmsg -> AMQP: {count} signed fedmsg messages on {fedmsg_bind}, watched on exchange zmq.topic{RESET}")
    for n in range(1, count + 1):
        key, mid = d.send_fedmsg(n)
        d.sent_fedmsg[key] = n
        say(f"  sent on ZeroMQ   topic={FEDMSG_TOPIC} msg_id={mid}")
        d.pump(pace)
    d.wait(lambda: len(d.crossed_to_amqp) == count, 30, "the fedmsg messages on zmq.topic")

    say(f"{BOLD}AMQP -> fedmsg: {count} messages to exchange amq.topic, watched on {bridge_pub}{RESET}")
    for n in range(1, count + 1):
        key = d.send_amqp(n)
        d.sent_amqp[key] = n
        say(f"  sent on AMQP     exchange=amq.topic key={AMQP_TOPIC} message_id={key}")
        d.pump(pace)
    d.wait(lambda: len(d.crossed_to_zmq) == count, 30, "the AMQP messages on ZeroMQ")

    # Anything coming back would arrive within moments of the crossing; watch a little longer.
    d.pump(2.0)
    ok = d.came_back == 0 and d.duplicates == 0
    colour = GREEN if ok else RED
    say(f"{colour}{BOLD}crossed: {len(d.crossed_to_amqp)}/{count} fedmsg -> AMQP, {len(d.crossed_to_zmq)}/{count} "
        f"AMQP -> fedmsg; came back: {d.came_back}; duplicates: {d.duplicates}{RESET}")
    # The ids, for the verify-missing check that follows.
    with open(argv[6] if len(argv) > 6 else "/dev/null", "w") as f:
        for k in list(d.sent_fedmsg) + list(d.sent_amqp):
            f.write(k + "\n")
    d.conn.close()
    d.pub.close()
    d.sub.close()
    d.zctx.term()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
