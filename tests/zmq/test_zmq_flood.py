#!/usr/bin/python3
"""Done-when 3: for each class of bad input, 1,000 bad messages interleaved with 1,000 valid
ones through zmq-sub -> stdout: every valid message arrives, each bad one is counted under
its own reason, and the process stays up (a final valid message still gets through)."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()
MAX = 4096  # zmq-sub max_message_size in this test


def bad_classes():
    return {
        "wrong_frame_count": lambda n: [envelope(b"{}")] if n % 2 else [T, envelope(b"{}"), b"extra"],
        "topic_mismatch": lambda n: [T + b".other", envelope(b"{}")],
        "invalid_utf8": lambda n: [T, envelope(b'{"s":"\xff\xfe"}' if n % 2 else b'{"s":"\xed\xa0\x80"}')],
        "invalid_json": lambda n: [T, envelope(b"{}")[:-1 - n % 5]],
        "not_an_object": lambda n: [T, b"[1,2,3]" if n % 2 else b'"string"'],
        "missing_msg_id": lambda n: [T, b'{"msg":{},"topic":"%s"}' % T],
        "bad_msg_id": lambda n: [T, b'{"msg":{},"msg_id":%d,"topic":"%s"}' % (n, T)],
        "missing_topic": lambda n: [T, b'{"msg":{},"msg_id":"2026-x"}'],
        "oversize": lambda n: [T, envelope(b'{"pad":"%s"}' % (b"x" * (MAX + n % 100)))],
        "too_deep": lambda n: [T, envelope(b"[" * (64 + n % 10) + b"]" * (64 + n % 10))],
        "duplicate_keys": lambda n: [T, envelope(b'{"a":{"b":1,"b":2}}') if n % 2
                                     else envelope(b"{}", extra=b',"topic":"%s.evil"' % T)],
        "bad_headers": lambda n: [T, envelope(b"{}", extra=b',"headers":[1]')],
    }


def main():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = Publisher(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  flood:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
      max_message_size: {MAX}
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        valid_ids = []
        seq = 0
        try:
            pub.wait_subscription()
            classes = bad_classes()
            for reason, make in classes.items():
                for n in range(1000):
                    pub.send(make(n))
                    seq += 1
                    msg_id = f"2026-{reason}-{n}"
                    pub.send([T, envelope(b'{"n":%d,"pad":"%s"}' % (n, b"y" * (n * 3)), msg_id=msg_id,
                                          i=seq, username="flood")])
                    valid_ids.append(msg_id)
            lines = sy.read_lines(len(valid_ids), timeout=120)
            # Still up after the flood.
            seq += 1
            pub.send([T, envelope(b'{"last":true}', msg_id="2026-last", i=seq, username="flood")])
            last = sy.read_lines(1)
        finally:
            rc = sy.stop()
            pub.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        got = [json.loads(l)["id"] for l in lines]
        check(got == valid_ids, "every valid message arrives, in order")
        check(json.loads(last[0])["id"] == "2026-last", "the source survived the flood")
        stats = sy.stats()
        for reason in classes:
            v = stats.get(("zmq-sub", "dropped", reason))
            check(v == 1000, f"dropped{{reason={reason}}} = {v}, want 1000")
        total_drops = sum(v for k, v in stats.items() if k[0] == "zmq-sub" and k[1] == "dropped")
        check(total_drops == 1000 * len(classes), f"drops under other reasons: {stats}")
        check(stats.get(("zmq-sub", "zmq_received", "")) == 2000 * len(classes) + 1, "zmq_received")
        check(stats.get(("zmq-sub", "seq_missing", "")) == 0, "no gaps among valid messages")
        log = sy.stderr()
        check("dropped (too_deep)" in log and "dropped (wrong_frame_count)" in log, "drops are logged")
    print(f"ok: {len(classes)} bad classes x 1000 counted; {len(valid_ids) + 1} valid messages arrived")


if __name__ == "__main__":
    main()
