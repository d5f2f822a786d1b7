#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`switchyard tail`, `record` and `logger` with fedmsg's habits, over real ZeroMQ sockets
against independent python3-zmq peers; signatures made and checked with
python3-cryptography, keys made with openssl at test time (tests/crypto/pyhelper.py).

tail: username, timestamp, i and the signature verdict in every format (JSON lines,
--terse, --pretty with and without colour), --include/--exclude, --limit, --validate with
--ca/--crl/--policy/--nitpicky/--valid-only. record: JSON lines the stdin plugin reads
back. logger: --message as JSON or text, --plain, --cert/--key signing."""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "zmq"))
sys.path.insert(0, os.path.join(HERE, "..", "crypto"))
import pyhelper  # noqa: E402
from zmqtest import BIN, Publisher, Subscriber, Switchyard, check, free_port  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

TOPIC = "org.fedoraproject.dev.bodhi.update.comment"
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def canonical(env):
    return json.dumps(env, sort_keys=True, separators=(",", ":"))


def wrap76(s):
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\n"


def sign(env, pki, name):
    """fedmsg's x509 signature with the key pair NAME of the test PKI."""
    with open(os.path.join(pki, name + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(pki, name + ".crt"), "rb") as f:
        pem = f.read()
    env = dict(env, crypto="x509")
    sig = key.sign(canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
    env["signature"] = wrap76(base64.b64encode(sig).decode())
    env["certificate"] = wrap76(base64.b64encode(pem).decode())
    return env


def py_verify(env, ca_file):
    env = dict(env)
    sig = base64.b64decode(env.pop("signature"))
    cert = x509.load_pem_x509_certificate(base64.b64decode(env.pop("certificate")))
    cert.public_key().verify(sig, canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
    with open(ca_file, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    check(cert.issuer == ca.subject, "not issued by the test CA")
    return cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


def env_of(n, topic=TOPIC, **kw):
    e = {"topic": topic, "msg": {"n": n, "s": "\u00e9"}, "msg_id": f"2026-00000000-0000-4000-8000-{n:012d}",
         "timestamp": 1700000000 + n, "i": n, "username": f"user{n}"}
    e.update(kw)
    return e


def send(pub, env):
    pub.send([env["topic"].encode(), canonical(env).encode()])


def tail_session(args, envs, limit, n_lines=None, topic_prefix=b""):
    """Starts `tail ARGS ENDPOINT --limit LIMIT` against a Python publisher, sends ENVS once
    it subscribed, and returns (its N_LINES stdout lines (default LIMIT), exit status,
    stderr)."""
    n_out = limit if n_lines is None else n_lines
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = Publisher(endpoint)
    tail = Switchyard(["tail", endpoint, "--limit", str(limit)] + args)
    try:
        check(pub.wait_subscription() == topic_prefix, "tail subscribed")
        for e in envs:
            send(pub, e)
        lines = [l.decode() for l in tail.read_lines(n_out, timeout=40)]
        rc = tail.wait(30)  # --limit: it exits by itself
    finally:
        if tail.proc.poll() is None:
            tail.stop()
        pub.close()
    return lines, rc, tail.stderr()


def test_json_fields(pki):
    signed = sign(env_of(1), pki, "good")
    unsigned = env_of(2, username=None)
    del unsigned["username"]
    lines, rc, err = tail_session(["--json"], [signed, unsigned], 2)
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    a, b = (json.loads(l) for l in lines)
    check(a == {"topic": TOPIC, "body": {"n": 1, "s": "\u00e9"}, "headers": {}, "id": signed["msg_id"],
                "timestamp": 1700000001, "username": "user1", "i": 1, "signature": "signed"}, a)
    check(b == {"topic": TOPIC, "body": {"n": 2, "s": "\u00e9"}, "headers": {}, "id": unsigned["msg_id"],
                "timestamp": 1700000002, "username": None, "i": 2, "signature": "unsigned"}, b)
    print("ok: tail --json shows username, timestamp, i and whether a message is signed")


def test_validate(pki):
    ca, crl = os.path.join(pki, "ca.crt"), os.path.join(pki, "crl.pem")
    good = sign(env_of(1), pki, "good")
    tampered = dict(sign(env_of(2), pki, "good"), username="mallory")
    foreign = sign(env_of(3), pki, "foreign")
    revoked = sign(env_of(4), pki, "revoked")
    unsigned = env_of(5)
    other_topic = sign(env_of(6, topic="org.fedoraproject.dev.other"), pki, "good")
    envs = [good, tampered, foreign, revoked, unsigned, other_topic]
    lines, rc, err = tail_session(["--json", "--validate", "--ca", ca, "--crl", crl], envs, len(envs))
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    got = [(json.loads(l)["i"], json.loads(l)["signature"], json.loads(l).get("signature_error")) for l in lines]
    check(got == [(1, "valid", None), (2, "invalid", "bad_signature"), (3, "invalid", "untrusted_certificate"),
                  (4, "invalid", "revoked"), (5, "invalid", "unsigned"), (6, "valid", None)], got)
    print("ok: tail --validate shows each verdict, in order (not nitpicky by default, like fedmsg)")

    with tempfile.TemporaryDirectory() as tmp:
        policy = os.path.join(tmp, "policy.yaml")
        with open(policy, "w") as f:
            f.write(f"verifier:\n  routing_policy:\n    {TOPIC}: [good.example.org]\n  nitpicky: true\n")
        lines, rc, err = tail_session(["--terse", "--validate", "--ca", ca, "--policy", policy],
                                      [good, other_topic, sign(env_of(7), pki, "other")], 3)
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    check([re.search(r" sig=(\S+(?: \(\w+\))?) ", l).group(1) for l in lines] ==
          ["valid", "invalid (policy_denied)", "invalid (policy_denied)"], lines)
    print("ok: tail --validate --policy (import-fedmsg-config's verifier entry) applies the routing policy")

    lines, rc, err = tail_session(["--json", "--validate", "--ca", ca, "--valid-only"],
                                  [tampered, foreign, good, unsigned, other_topic], 2)
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    check([json.loads(l)["i"] for l in lines] == [1, 6], lines)
    print("ok: tail --validate --valid-only shows only valid messages (fedmsg-tail's behaviour)")


def test_select_and_formats():
    heartbeat = env_of(1, topic="org.fedoraproject.dev.fedmsg._heartbeat")
    wanted = env_of(2, topic="org.fedoraproject.dev.bodhi.update.request")
    other = env_of(3, topic="org.fedoraproject.dev.koji.build.tag")
    excluded = env_of(4, topic="org.fedoraproject.dev.bodhi.update.comment")
    last = env_of(5, topic="org.fedoraproject.dev.koji.task.open")
    args = ["--include", r"\.bodhi\.", "--include", "koji.task", "--exclude", "comment$", "--terse", "--color", "never"]
    lines, rc, err = tail_session(args, [heartbeat, wanted, other, excluded, last], 2)
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    check(lines == [
        f'2023-11-14 22:13:22 UTC org.fedoraproject.dev.bodhi.update.request user=user2 i=2 sig=unsigned '
        f'id={wanted["msg_id"]} {{"n":2,"s":"\\u00e9"}}\n',
        f'2023-11-14 22:13:25 UTC org.fedoraproject.dev.koji.task.open user=user5 i=5 sig=unsigned '
        f'id={last["msg_id"]} {{"n":5,"s":"\\u00e9"}}\n'], lines)
    print("ok: tail --include/--exclude (regular expressions searched in the topic) and --terse")

    lines, rc, err = tail_session(["--pretty", "--color", "never"], [env_of(7)], 1, n_lines=6)
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    check("".join(lines) == (
        f"{TOPIC}  2023-11-14 22:13:27 UTC\n"
        f"  id: {env_of(7)['msg_id']}  username: user7  i: 7  signature: unsigned\n"
        "  body: {\n"
        '    "n": 7,\n'
        '    "s": "\u00e9"\n'
        "  }\n"), lines)
    lines, rc, err = tail_session(["--pretty", "--color", "always"], [env_of(8)], 1, n_lines=6)
    check(rc == 0, f"tail exit {rc}\n{err[-2000:]}")
    check('    \x1b[34m"n"\x1b[0m: \x1b[33m8\x1b[0m,\n' in lines, lines)
    check(lines[0] == f"\x1b[1m{TOPIC}\x1b[0m  2023-11-14 22:13:28 UTC\n", lines)
    print("ok: tail --pretty, plain and coloured")


def test_terminal_default():
    """On a terminal (a pty here) tail defaults to --pretty, coloured; NO_COLOR turns the
    colours off."""
    import pty
    import select
    import time
    for no_color, want in ((False, f"\x1b[1m{TOPIC}\x1b[0m  2023-11-14 22:13:29 UTC"),
                           (True, f"{TOPIC}  2023-11-14 22:13:29 UTC")):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        pub = Publisher(endpoint)
        master, slave = pty.openpty()
        env = dict(os.environ)
        env.pop("NO_COLOR", None)
        if no_color:
            env["NO_COLOR"] = "1"
        proc = subprocess.Popen([BIN, "tail", endpoint, "--limit", "1"], stdout=slave, stderr=subprocess.PIPE,
                                env=env)
        os.close(slave)
        out = b""
        try:
            check(pub.wait_subscription() == b"", "tail subscribed")
            send(pub, env_of(9))
            deadline = time.monotonic() + 30
            while b"  }" not in out and time.monotonic() < deadline:
                if select.select([master], [], [], 1)[0]:
                    try:
                        out += os.read(master, 65536)
                    except OSError:  # the child closed the terminal
                        break
            rc = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            pub.close()
        check(rc == 0, f"tail exit {rc}")
        text = out.decode().replace("\r\n", "\n")
        check(text.startswith(want + "\n"), repr(text))
    print("ok: on a terminal tail is --pretty, coloured unless NO_COLOR is set")


def test_record(pki):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = Publisher(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rec.jsonl")
        rec = Switchyard(["record", out, endpoint, "--limit", "3"])
        try:
            check(pub.wait_subscription() == b"", "record subscribed")
            envs = [sign(env_of(1), pki, "good"), env_of(2), env_of(3, msg=[1, 2.50])]
            for e in envs:
                send(pub, e)
            rc = rec.wait(40)
        finally:
            if rec.proc.poll() is None:
                rec.stop()
            pub.close()
        check(rc == 0, f"record exit {rc}\n{rec.stderr()[-2000:]}")
        check("3 message(s) written to " + out in rec.stderr(), rec.stderr()[-2000:])
        with open(out, encoding="utf-8") as f:
            recorded = [json.loads(l) for l in f]
        check([(r["id"], r["i"], r["signature"]) for r in recorded] ==
              [(envs[0]["msg_id"], 1, "signed"), (envs[1]["msg_id"], 2, "unsigned"), (envs[2]["msg_id"], 3, "unsigned")],
              recorded)
        # The stdin plugin reads the recording back (replay).
        cfg = os.path.join(tmp, "replay.yaml")
        with open(cfg, "w") as f:
            f.write(f"version: 1\npipelines:\n  p:\n    input: {{type: stdin, path: {json.dumps(out)}}}\n"
                    "    outputs: [{type: stdout}]\n")
        p = subprocess.run([BIN, "run", cfg], capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, p.stderr[-2000:])
        replayed = [json.loads(l) for l in p.stdout.splitlines()]
        check([(r["topic"], r["body"], r["id"]) for r in replayed] ==
              [(e["topic"], e["msg"], e["msg_id"]) for e in envs], replayed)
    print("ok: record FILE writes JSON lines that `run` with the stdin plugin replays")


def run_logger(args):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = Subscriber(endpoint, bind=True)
    try:
        lg = Switchyard(["logger", "--endpoint", endpoint, "--topic", TOPIC, "--wait", "30"] + args)
        f0, f1 = sub.recv(40)
        rc = lg.wait(60)
    finally:
        sub.close()
    check(rc == 0, f"logger exit {rc}\n{lg.stderr()[-2000:]}")
    check(f0 == TOPIC.encode(), f0)
    return json.loads(f1)


def test_logger(pki):
    check(run_logger(["--message", '{"hello": "world"}'])["msg"] == {"hello": "world"}, "JSON object")
    check(run_logger(["--message", "[1, 2]"])["msg"] == [1, 2], "JSON array")
    check(run_logger(["--message", "42"])["msg"] == {"log": "42"}, "a JSON scalar is text")
    check(run_logger(["--message", '{"hello": '])["msg"] == {"log": '{"hello": '}, "not JSON")
    check(run_logger(["--message", '{"a": 1}', "--plain"])["msg"] == {"log": '{"a": 1}'}, "--plain")
    print("ok: logger --message: a JSON object or array is the payload, anything else {\"log\": ...}")

    env = run_logger(["--message", '{"signed": true}', "--cert", os.path.join(pki, "good.crt"),
                      "--key", os.path.join(pki, "good.key"), "--username", "ci-bot"])
    check(py_verify(env, os.path.join(pki, "ca.crt")) == "good.example.org", "signature")
    check(env["msg"] == {"signed": True} and env["username"] == "ci-bot" and env["i"] == 1, env)
    check(env["crypto"] == "x509" and re.fullmatch(r"\d{4}-" + UUID4, env["msg_id"]), env)
    print("ok: logger --cert/--key signs like fedmsg (checked with python3-cryptography)")


def test_logger_gives_up():
    """A broker that cannot be reached: logger --amqp gives up --timeout seconds after its
    input ended (plus the 10 s drain), exit status 1, instead of retrying for ever."""
    import time
    t0 = time.monotonic()
    p = subprocess.run([BIN, "logger", "--amqp", f"amqp://guest:guest@127.0.0.1:{free_port()}/", "--topic", TOPIC,
                        "--message", "x", "--timeout", "1"], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    check(p.returncode == 1, f"exit {p.returncode}\n{p.stderr[-2000:]}")
    check("messages not published within --timeout 1 s after the input ended: giving up" in p.stderr, p.stderr[-2000:])
    check("1 message(s) not published (0 dropped, 1 failed)" in p.stderr, p.stderr[-2000:])
    check(took < 30, f"took {took:.1f} s")
    print(f"ok: logger --amqp gives up after --timeout when the broker is unreachable ({took:.1f} s)")


def test_bad_arguments():
    def run(*args):
        return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)
    cases = [
        (["tail"], "no source: give ZeroMQ endpoints"),
        (["tail", "tcp://127.0.0.1:1", "--validate"], "--validate needs --ca FILE"),
        (["tail", "tcp://127.0.0.1:1", "--ca", "x"], "only apply with --validate"),
        (["tail", "tcp://127.0.0.1:1", "--include", "a("], "--include 'a(': not a valid regular expression"),
        (["tail", "tcp://127.0.0.1:1", "--bind", "amq.topic"], "--bind 'amq.topic': expected EXCHANGE=ROUTING_KEY"),
        (["tail", "tcp://127.0.0.1:1", "--bind", "amq.topic=#"], "--bind EXCHANGE=ROUTING_KEY needs --amqp URL"),
        (["tail", "--amqp", "amqp://h/", "tcp://127.0.0.1:1"], "--amqp consumes from AMQP"),
        (["tail", "tcp://127.0.0.1:1", "--json", "--terse"], "--terse"),
        (["tail", "tcp://127.0.0.1:1", "--password-file", "pw"], "--queue and --password-file need --amqp URL"),
        (["logger", "--topic", "t"], "no destination: give --endpoint"),
        (["logger", "--topic", "t", "--endpoint", "tcp://127.0.0.1:1", "--cert", "c"], "signing needs both --cert and --key"),
        (["logger", "--topic", "t", "--endpoint", "tcp://127.0.0.1:1", "--amqp", "amqp://h/"], "not both"),
        (["logger", "--topic", "t", "--endpoint", "tcp://127.0.0.1:1", "--password-file", "pw"],
         "--password-file applies to --amqp"),
        (["record"], "file is required"),
    ]
    for args, words in cases:
        p = run(*args)
        check(p.returncode == 2, f"{args}: exit {p.returncode}\n{p.stderr}")
        check(words in p.stderr, f"{args}: {words!r} not in:\n{p.stderr}")
    print("ok: bad tail/logger/record arguments: exit 2 with what to do")


def main():
    with tempfile.TemporaryDirectory(prefix="sy-tail-pki-") as pki:
        pyhelper.pki(pki)
        test_bad_arguments()
        test_json_fields(pki)
        test_validate(pki)
        test_select_and_formats()
        test_terminal_default()
        test_record(pki)
        test_logger(pki)
        test_logger_gives_up()


if __name__ == "__main__":
    main()
