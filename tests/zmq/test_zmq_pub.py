#!/usr/bin/python3
"""Done-when 2:
* stdin -> zmq-pub -> python3-zmq subscriber: [topic, json] frames whose envelopes carry
  exactly `topic msg msg_id timestamp i username` (+ `headers` when the message has
  some), as fedmsg builds them (docs/plugins/zmq-pub.md), serialised with sorted keys and compact separators;
* python publisher -> zmq-sub -> zmq-pub -> python subscriber: every envelope leaves
  byte-identical to what entered, whatever its layout."""
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import Publisher, Subscriber, Switchyard, check, envelope, free_port, write_config  # noqa: E402

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def stdin_to_pub(tmp):
    port = free_port()
    cfg = write_config(tmp, f"""version: 1
pipelines:
  pub:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        username: "bridge-\u00e9"
        wait_for_subscriber: 30
""", "pub.yaml")
    lines, expect = [], []
    for n in range(300):
        body = {"n": n, "s": "w\u00f6rld \U0001f600", "big": 123456789012345678901234567890}
        rec = {"topic": f"org.fedoraproject.dev.demo.n{n % 5}", "body": body}
        if n % 3 == 0:
            rec["id"] = f"2019-{n}"            # kept
        elif n % 3 == 1:
            rec["id"] = f"plain-{n}"           # gets the year prefix
        # else: no id -> YYYY-uuid4
        if n % 4 == 0:
            rec["headers"] = {"custom": "x", "n": n}
        lines.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=False))
        expect.append(rec)
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    year = datetime.datetime.now(datetime.timezone.utc).year
    before = int(time.time())
    sy = Switchyard(["run", cfg], stdin=subprocess.PIPE)
    try:
        sy.proc.stdin.write(("\n".join(lines) + "\n").encode("utf-8"))
        sy.proc.stdin.close()
        frames = sub.recv_n(len(lines))
        rc = sy.wait(60)
    finally:
        sub.close()
        if sy.proc.poll() is None:
            sy.stop()
    after = int(time.time())
    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    for n, (rec, (f0, f1)) in enumerate(zip(expect, frames)):
        env = json.loads(f1)
        want_keys = {"topic", "msg", "msg_id", "timestamp", "i", "username"}
        if "headers" in rec:
            want_keys.add("headers")
            check(env["headers"] == rec["headers"], f"headers {env['headers']}")
        check(set(env) == want_keys, f"keys {sorted(env)}")
        check(f0 == rec["topic"].encode(), f"frame 0 {f0!r}")
        check(env["topic"] == rec["topic"], "envelope topic == frame 0")
        check(env["msg"] == rec["body"], f"msg {env['msg']}")
        check(env["i"] == n + 1, f"i {env['i']} for message {n}")
        check(env["username"] == "bridge-\u00e9", f"username {env['username']!r}")
        check(type(env["timestamp"]) is int and before <= env["timestamp"] <= after,
              f"timestamp {env['timestamp']!r}")
        if n % 3 == 0:
            check(env["msg_id"] == f"2019-{n}", env["msg_id"])
        elif n % 3 == 1:
            check(env["msg_id"] == f"{year}-plain-{n}", env["msg_id"])
        else:
            check(re.fullmatch(f"{year}-{UUID4}", env["msg_id"]), env["msg_id"])
        # Sorted keys and compact separators like fedmsg's canonical encoder, with the body
        # and headers bytes embedded exactly as they came in (not re-serialised).
        raw = lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode("utf-8")  # noqa: E731
        want = b"{"
        if "headers" in rec:
            want += b'"headers":' + raw(rec["headers"]) + b","
        want += (b'"i":%d,"msg":' % (n + 1) + raw(rec["body"]) + b',"msg_id":' + json.dumps(env["msg_id"]).encode() +
                 b',"timestamp":%d,"topic":' % env["timestamp"] + json.dumps(rec["topic"]).encode() +
                 b',"username":"bridge-\\u00e9"}')
        check(f1 == want, f"envelope layout:\n{f1!r}\n{want!r}")
    ids = [json.loads(f1)["msg_id"] for _, f1 in frames]
    check(len(set(ids)) == len(ids), "msg_ids are unique")
    stats = sy.stats()
    check(stats.get(("zmq-pub", "envelopes_built", "")) == len(lines), f"built: {stats}")
    print(f"ok: stdin -> zmq-pub, {len(lines)} envelopes as fedmsg builds them")


def pass_through(tmp):
    in_port, out_port = free_port(), free_port()
    cfg = write_config(tmp, f"""version: 1
pipelines:
  relay:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{in_port}"]
      hwm: 0
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{out_port}"]
        hwm: 0
        no_drop: true
        wait_for_subscriber: 30
""", "relay.yaml")
    pub = Publisher(f"tcp://127.0.0.1:{in_port}")
    sub = Subscriber(f"tcp://127.0.0.1:{out_port}")
    sy = Switchyard(["run", cfg])
    sent = []
    try:
        pub.wait_subscription()
        layouts = [
            lambda n: envelope(b'{"n":%d}' % n, i=n + 1),
            # json.dumps default layout, insertion order, as the AMQP->ZMQ bridge sends
            lambda n: json.dumps({"topic": "org.fedoraproject.dev.demo.test", "msg": {"h\u00e9": [1, 2.50, n]},
                                  "timestamp": 1795348400, "msg_id": f"2026-{n}", "i": n + 1,
                                  "username": "amqp-bridge"}).encode(),
            # raw UTF-8, big numbers, a signature-like tail, odd whitespace
            lambda n: ('{ "topic" : "org.fedoraproject.dev.demo.test", "msg" : {"s":"\u00e9\U0001f600",'
                       f'"big":123456789012345678901234567890,"f":1e+16,"z":-0.0,"n":{n}}},'
                       f'"msg_id":"2026-x{n}", "i":{n + 1}, "timestamp":1.5, "crypto":"x509",'
                       '"signature":"abc\\n", "certificate":"Zm9v\\n", "headers": {"a": 1}}').encode("utf-8"),
        ]
        for n in range(600):
            raw = layouts[n % len(layouts)](n)
            pub.send([b"org.fedoraproject.dev.demo.test", raw])
            sent.append(raw)
        got = sub.recv_n(len(sent))
    finally:
        rc = sy.stop()
        pub.close()
        sub.close()
    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    for n, (raw, (f0, f1)) in enumerate(zip(sent, got)):
        check(f0 == b"org.fedoraproject.dev.demo.test", f"frame 0 {f0!r}")
        check(f1 == raw, f"message {n} changed:\n{raw!r}\n{f1!r}")
    stats = sy.stats()
    check(stats.get(("zmq-pub", "envelopes_passed_through", "")) == len(sent), f"stats: {stats}")
    check(stats.get(("zmq-pub", "envelopes_built", ""), 0) == 0, f"stats: {stats}")
    print(f"ok: zmq-sub -> zmq-pub, {len(sent)} envelopes byte-identical")


def no_drop_backpressure(tmp):
    """no_drop: a subscriber that does not read makes zmq-pub wait, not drop."""
    port = free_port()
    cfg = write_config(tmp, f"""version: 1
pipelines:
  slow:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        hwm: 10
        no_drop: true
        wait_for_subscriber: 30
""", "slow.yaml")
    count = 3000
    pad = "x" * 4000
    lines = [json.dumps({"topic": "org.fedoraproject.dev.demo.slow", "body": {"n": n, "pad": pad}})
             for n in range(count)]
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    sub.sock.setsockopt(zmq.RCVHWM, 10)
    sy = Switchyard(["run", cfg], stdin=subprocess.PIPE)
    try:
        feeder = threading.Thread(target=lambda: (sy.proc.stdin.write(("\n".join(lines) + "\n").encode()),
                                                  sy.proc.stdin.close()), daemon=True)
        feeder.start()
        # Not reading: the pipes fill up (12 MB of messages against hwm 10 + TCP buffers).
        sy.wait_log(r"pipe is full .*waiting \(no_drop\)", timeout=60)
        frames = sub.recv_n(count, timeout=120)
        rc = sy.wait(60)
    finally:
        sub.close()
        if sy.proc.poll() is None:
            sy.stop()
    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    check([json.loads(f1)["i"] for _, f1 in frames] == list(range(1, count + 1)), "every message, in order")
    stats = sy.stats()
    check(stats.get(("zmq-pub", "send_blocked", ""), 0) >= 1, f"stats {stats}")
    drops = {k: v for k, v in stats.items() if k[0] == "zmq-pub" and k[1] == "dropped" and v}
    check(not drops, f"drops: {drops}")
    print(f"ok: no_drop turned a full pipe into backpressure ({stats[('zmq-pub', 'send_blocked', '')]} waits)")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        stdin_to_pub(tmp)
        pass_through(tmp)
        no_drop_backpressure(tmp)


if __name__ == "__main__":
    main()
