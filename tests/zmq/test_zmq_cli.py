#!/usr/bin/python3
"""Done-when 5: `switchyard tail` and `switchyard logger` against each other (both bind /
connect directions) and against independent python3-zmq peers; `logger` fails loudly when
nobody subscribed."""
import datetime
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Subscriber, Switchyard, check, envelope, free_port  # noqa: E402

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
YEAR = datetime.datetime.now(datetime.timezone.utc).year


def logger(args, stdin_text=None):
    return Switchyard(["logger"] + args, stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL), \
        stdin_text


def run_logger(args, stdin_text=None):
    sy, text = logger(args, stdin_text)
    if text is not None:
        sy.proc.stdin.write(text.encode("utf-8"))
        sy.proc.stdin.close()
    rc = sy.wait(60)
    return rc, sy


def parse(line):
    out = json.loads(line)
    check(re.fullmatch(f"{YEAR}-{UUID4}", out["id"]), f"id {out['id']}")
    return out


def tail_connects_logger_binds():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    tail = Switchyard(["tail", endpoint])  # connects, retrying until the logger binds
    try:
        rc, lg = run_logger(["--endpoint", endpoint, "--bind", "--topic", TOPIC, "--wait", "30",
                             "--message", "hello w\u00f6rld \U0001f600"])
        check(rc == 0, f"logger exit {rc}\n{lg.stderr()[-2000:]}")
        out = parse(tail.read_lines(1)[0])
    finally:
        trc = tail.stop()
    check(trc == 0, f"tail exit {trc}\n{tail.stderr()[-2000:]}")
    check(out["topic"] == TOPIC, out)
    check(out["body"] == {"log": "hello w\u00f6rld \U0001f600"}, out)
    print("ok: tail (connect) <- logger (bind)")


def tail_binds_logger_connects():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    tail = Switchyard(["tail", "--bind", endpoint, "--topic", "org.fedoraproject.dev.logger"])
    try:
        tail.wait_log(r"bound tcp://")
        lines = ["line one", "line two \u00e9", "", "line three"]  # the empty line is skipped
        rc, lg = run_logger(["--endpoint", endpoint, "--topic", "org.fedoraproject.dev.logger.log",
                             "--wait", "30"], "\n".join(lines) + "\n")
        check(rc == 0, f"logger exit {rc}\n{lg.stderr()[-2000:]}")
        outs = [parse(l) for l in tail.read_lines(3)]
    finally:
        trc = tail.stop()
    check(trc == 0, f"tail exit {trc}\n{tail.stderr()[-2000:]}")
    check([o["body"]["log"] for o in outs] == ["line one", "line two \u00e9", "line three"], outs)
    check(all(o["topic"] == "org.fedoraproject.dev.logger.log" for o in outs), outs)
    print("ok: tail (bind, like fedmsg-relay inbound) <- logger (connect, active mode)")


def tail_against_python_publisher():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = Publisher(endpoint)
    tail = Switchyard(["tail", endpoint, "--topic", TOPIC])
    try:
        check(pub.wait_subscription() == TOPIC.encode(), "tail subscribes to its --topic")
        raws = [b'{"n":1,"big":123456789012345678901234567890}', '{"s":"\u00e9\U0001f600"}'.encode(), b"[1.0]"]
        for n, raw in enumerate(raws):
            pub.send([TOPIC.encode(), envelope(raw, msg_id=f"2026-py-{n}", i=n + 1)])
        lines = tail.read_lines(len(raws))
    finally:
        trc = tail.stop()
        pub.close()
    check(trc == 0, f"tail exit {trc}")
    for n, (raw, line) in enumerate(zip(raws, lines)):
        check(json.loads(line)["id"] == f"2026-py-{n}", line)
        check(b',"body":' + raw + b',' in line, f"body bytes {line!r}")
    print("ok: tail <- python publisher")


def logger_against_python_subscriber():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = Subscriber(endpoint, bind=True)
    try:
        docs = ['{"a": 1, "big": 123456789012345678901234567890}', '{"s": "\u00e9"}', "[1, 2.50]"]
        lg, text = logger(["--endpoint", endpoint, "--topic", TOPIC, "--json-input", "--username", "ci-bot",
                           "--wait", "30"], "\n".join(docs) + "\n")
        lg.proc.stdin.write(text.encode("utf-8"))
        lg.proc.stdin.close()
        # Keep using the SUB socket while the logger connects: libzmq sends a bound SUB's
        # subscriptions to a new peer only when the application calls into the socket.
        frames = sub.recv_n(len(docs), timeout=60)
        rc = lg.wait(60)
        check(rc == 0, f"logger exit {rc}\n{lg.stderr()[-2000:]}")
    finally:
        sub.close()
    for n, (doc, (f0, f1)) in enumerate(zip(docs, frames)):
        env = json.loads(f1)
        check(f0 == TOPIC.encode() and env["topic"] == TOPIC, f"topic {f0!r}")
        check(set(env) == {"topic", "msg", "msg_id", "timestamp", "i", "username"}, sorted(env))
        check(env["i"] == n + 1 and env["username"] == "ci-bot", env)
        check(env["msg"] == json.loads(doc), env)
        check(doc.encode("utf-8") in f1, "the JSON input is embedded byte-exact")
        check(re.fullmatch(f"{YEAR}-{UUID4}", env["msg_id"]), env["msg_id"])
    print("ok: logger (connect) -> python subscriber (bind)")


def logger_without_subscriber_fails():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    rc, lg = run_logger(["--endpoint", endpoint, "--bind", "--topic", TOPIC, "--wait", "0.3", "--message", "x"])
    check(rc == 1, f"logger exit {rc}, want 1 when nobody subscribed\n{lg.stderr()[-2000:]}")
    check("no_subscriber" in lg.stderr(), lg.stderr()[-2000:])
    print("ok: logger reports messages nobody received")


def main():
    tail_connects_logger_binds()
    tail_binds_logger_connects()
    tail_against_python_publisher()
    logger_against_python_subscriber()
    logger_without_subscriber_fails()


if __name__ == "__main__":
    main()
