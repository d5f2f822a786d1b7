#!/usr/bin/python3
"""Done-when 1: an independent python3-zmq publisher sends fedmsg envelopes with varied
payloads through `switchyard run` (zmq-sub -> stdout); after the subscription handshake
every message arrives, in order, with topic, id, headers and the exact bytes of `msg`."""
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402


def payloads():
    fixed = [
        b'{"k":"v\\u00e9"}',
        '{"raw":"v\u00e9 \u2603 \u2028 \U0001f600"}'.encode("utf-8"),
        b'{"esc":"\\ud83d\\ude00 \\u00e9 \\/ \\"q\\" \\u0001"}',
        b'{"big":123456789012345678901234567890,"neg":-98765432109876543210,"zero":-0}',
        b'{"f":[1e+16,1.0,-0.0,1E2,0.00001,3.14159265358979323846,1.7976931348623157e308,5e-324]}',
        b'{"a":' + b"[" * 30 + b'{"b":null,"t":true,"f":false}' + b"]" * 30 + b"}",
        json.dumps({"x": [1, 2], "y": {"z": "w\u00f6rld"}}).encode(),  # Python's default layout
        b'{ "spaced" :\t[ 1 , 2 ]\r}',  # (a raw \n would split the stdout sink's JSON line)
        b'"a bare string"',
        b"[1,2,3]",
        b"12345678901234567890123",
        b"null",
        b"{}",
    ]
    rng = random.Random(7)
    alphabet = "abc \u00e9\u4e2d\U0001f600\"\\\n\t/"
    for n in range(500):
        obj = {"n": n, "s": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
               "f": rng.random() * 10 ** rng.randint(-10, 30), "i": rng.randint(-2 ** 70, 2 ** 70),
               "l": [rng.randint(0, 9) for _ in range(rng.randint(0, 5))]}
        fixed.append(json.dumps(obj, ensure_ascii=bool(n % 2), sort_keys=bool(n % 3),
                                separators=(",", ":") if n % 5 else (", ", ": ")).encode("utf-8"))
    return fixed


def main():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = Publisher(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  sub:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            check(pub.wait_subscription() == b"", "zmq-sub subscribes to everything by default")
            sent = []
            for n, raw in enumerate(payloads()):
                topic = f"org.fedoraproject.dev.demo.t{n % 7}.\u00e9"
                headers = b',"headers":{"h":%d,"x":"y"}' % n if n % 4 == 0 else b""
                msg_id = f"2026-id-{n}-\u00e9"
                pub.send([topic.encode(), envelope(raw, topic=topic, msg_id=msg_id, i=n + 1, extra=headers)])
                sent.append((topic, msg_id, raw, headers))
            lines = sy.read_lines(len(sent))
            for (topic, msg_id, raw, headers), line in zip(sent, lines):
                try:
                    out = json.loads(line)
                except ValueError as e:
                    raise AssertionError(f"bad output line {line!r}: {e}")
                check(out["topic"] == topic, f"topic {out['topic']!r} != {topic!r}")
                check(out["id"] == msg_id, f"id {out['id']!r} != {msg_id!r}")
                check(b',"body":' + raw + b',"headers":' in line, f"body not byte-exact: {raw!r} in {line!r}")
                want_headers = json.loads(headers[len(b',"headers":'):]) if headers else {}
                check(out["headers"] == want_headers, f"headers {out['headers']} != {want_headers}")
        finally:
            rc = sy.stop()
            pub.close()
        check(rc == 0, f"exit code {rc}\n{sy.stderr()[-3000:]}")
        check(sy.rest() == [], "no extra output")
        stats = sy.stats()
        check(stats.get(("zmq-sub", "zmq_received", "")) == len(sent), f"zmq_received: {stats}")
        drops = {k: v for k, v in stats.items() if k[0] == "zmq-sub" and k[1] == "dropped" and v}
        check(not drops, f"unexpected drops {drops}")
        check(stats.get(("zmq-sub", "seq_missing", ""), 0) == 0, "no sequence gaps")
    print(f"ok: {len(sent)} messages arrived intact")


if __name__ == "__main__":
    main()
