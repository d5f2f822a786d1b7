#!/usr/bin/python3
"""zmq-pub's replay endpoint against a client written to fedmsg's get_replay wire format
(Debian's python3-zmq): a python publisher -> zmq-sub -> zmq-pub (replay_endpoint) -> a
python subscriber, then every query type (seq_id, seq_ids, seq_id_range inclusive,
msg_id, msg_ids, time, several keys OR-ed) and the error replies (bad JSON, not an
object, unknown key, wrong type, no match, a request of two frames). The envelopes
replayed equal byte for byte what the subscriber received; seq_ids count from 1 with no
gap; each published envelope is the original text with `"seq_id":N` inserted in canonical
key position; the counters and gauges say what happened."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replaytest import (Publisher, Subscriber, Switchyard, check, envelope, free_port, get_replay,  # noqa: E402
                        http_get, metric, replay_error, wait_for, write_config)

N = 60
T0 = 1700000000


def main():
    p_in, p_out, p_replay, p_http = free_port(), free_port(), free_port(), free_port()
    replay = f"tcp://127.0.0.1:{p_replay}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  relay:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{p_in}"]
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{p_out}"]
        replay_endpoint: "{replay}"
        replay_max_reply: 1000
        wait_for_subscriber: 30
""")
        sub = Subscriber(f"tcp://127.0.0.1:{p_out}")
        pub = Publisher(f"tcp://127.0.0.1:{p_in}")
        sy = Switchyard(["run", cfg, "--http", f"127.0.0.1:{p_http}"])
        try:
            sy.wait_log(r"replay endpoint bound tcp://127\.0\.0\.1:%d" % p_replay)
            pub.wait_subscription()
            sent = []
            for n in range(N):
                # Timestamps two apart, so a time range has edges between messages too.
                env = envelope(b'{"n":%d,"s":"\\u00e9"}' % n, topic=f"org.fedoraproject.dev.demo.t{n % 3}",
                               msg_id=f"2026-replay-{n}", i=n + 1, timestamp=T0 + 2 * n)
                topic = f"org.fedoraproject.dev.demo.t{n % 3}".encode()
                pub.send([topic, env])
                sent.append((topic, env))
            got = sub.recv_n(N)
            # Published: the original bytes with "seq_id":n inserted before "timestamp".
            for n, ((topic, env), (f0, f1)) in enumerate(zip(sent, got)):
                want = env.replace(b',"timestamp":', b',"seq_id":%d,"timestamp":' % (n + 1), 1)
                check(f0 == topic, f"frame 0 of {n}: {f0!r}")
                check(f1 == want, f"message {n}:\n{f1!r}\n!=\n{want!r}")
            by_seq = {n + 1: got[n][1] for n in range(N)}

            def frames(query):
                envs, raw = get_replay(replay, query)
                check([e["seq_id"] for e in envs] == sorted(e["seq_id"] for e in envs), f"order {query}")
                for e, r in zip(envs, raw):
                    check(r == by_seq[e["seq_id"]], f"replayed bytes differ for seq_id {e['seq_id']}")
                return [e["seq_id"] for e in envs]

            check(frames({"seq_id": 7}) == [7], "seq_id")
            check(frames({"seq_ids": [30, 2, 30, 500]}) == [2, 30], "seq_ids")
            check(frames({"seq_id_range": [10, 14]}) == [10, 11, 12, 13, 14], "seq_id_range is inclusive")
            check(frames({"seq_id_range": [58, 100]}) == [58, 59, 60], "seq_id_range past the end")
            check(frames({"seq_id_range": [1, N]}) == list(range(1, N + 1)), "the whole range")
            check(frames({"msg_id": "2026-replay-19"}) == [20], "msg_id")
            check(frames({"msg_ids": ["2026-replay-40", "nope", "2026-replay-4"]}) == [5, 41], "msg_ids")
            check(frames({"time": [T0 + 20, T0 + 24]}) == [11, 12, 13], "time, inclusive")
            check(frames({"time": [T0 + 21, T0 + 23.5]}) == [12], "time, float bounds")
            check(frames({"seq_id": 50, "msg_id": "2026-replay-0", "seq_id_range": [3, 4]}) == [1, 3, 4, 50],
                  "several keys are OR-ed")

            known = "(known: seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time)"
            check(replay_error(replay, [b"{not json"]) == "error: 'not JSON (invalid_json)'", "bad JSON")
            check(replay_error(replay, [b"[1, 2]"]) == "error: 'not a JSON object'", "not an object")
            check(replay_error(replay, [b'{"seq":1}']) == f"error: 'unknown key \"seq\" {known}'", "unknown key")
            check(replay_error(replay, [b'{"seq_id_range":[1]}']) ==
                  "error: 'seq_id_range must be a list of two integers'", "short range")
            check(replay_error(replay, [b'{"seq_id":"3"}']) == "error: 'seq_id must be an integer'", "type")
            check(replay_error(replay, [b"{}"]).startswith("error: 'empty query"), "empty query")
            check(replay_error(replay, [b'{"seq_id":999}']) == "error: 'no match'", "no match")
            check(replay_error(replay, [b'{"msg_id":"2026-nope"}']) == "error: 'no match'", "no match (msg_id)")
            check(replay_error(replay, [b'{"seq_id":1}', b"x"]) == "error: 'the query must be one frame, got 2'",
                  "two frames")
            try:
                get_replay(replay, {"seq_id": 0})
                raise AssertionError("get_replay did not raise on the error reply")
            except ValueError as e:
                check(str(e) == "error: 'no match'", f"get_replay raised {e}")

            def gauges():
                text = http_get(f"http://127.0.0.1:{p_http}/metrics")[2]
                return (metric(text, "switchyard_replay_store_messages"),
                        metric(text, "switchyard_replay_store_bytes"))
            total = sum(len(f) for f in by_seq.values())
            wait_for(lambda: gauges() == (N, total), 10, f"the store gauges at {N} messages, {total} bytes")
        finally:
            sub.close()
            pub.close()
            rc = sy.stop()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        st = sy.stats()
        check(st[("zmq-pub", "replay_requests", "")] == 20, f"replay_requests {st[('zmq-pub', 'replay_requests', '')]}")
        served = 1 + 2 + 5 + 3 + N + 1 + 2 + 3 + 1 + 4
        check(st[("zmq-pub", "replay_served", "")] == served, f"replay_served {st[('zmq-pub', 'replay_served', '')]}")
        check(st[("zmq-pub", "replay_errors", "bad_query")] == 6, "replay_errors{bad_query}")
        check(st[("zmq-pub", "replay_errors", "no_match")] == 3, "replay_errors{no_match}")
        check(st[("zmq-pub", "replay_errors", "multipart")] == 1, "replay_errors{multipart}")
        check(st[("zmq-pub", "replay_store_failed", "")] == 0, "replay_store_failed")
    print("ok")


if __name__ == "__main__":
    main()
