#!/usr/bin/python3
"""zmq-pub's in-memory replay store keeps the last replay_max_messages envelopes: stdin ->
zmq-pub (envelopes the sink builds) with replay_max_messages 10 and replay_max_reply 4,
25 messages: the subscriber gets seq_ids 1..25; the 15 oldest are forgotten (queries for
them answer `error: 'no match'`), a range over everything returns the last 10 byte for
byte as published, cut to the first 4 by replay_max_reply; the gauges say 10 messages.
Also: a bad replay configuration is refused by `switchyard check` with the key, and
`check --connect` says whether the replay endpoint can be bound; the example
examples/pipelines/zmq-pub-replay.yaml passes `switchyard check`."""
import json
import os
import subprocess
import sys
import tempfile

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replaytest import (Subscriber, Switchyard, check, free_port, get_replay, http_get, metric,  # noqa: E402
                        replay_error, wait_for, write_config)
from sytest import run_check  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]


def run_bounds(tmp):
    p_out, p_replay, p_http = free_port(), free_port(), free_port()
    replay = f"tcp://127.0.0.1:{p_replay}"
    cfg = write_config(tmp, f"""version: 1
pipelines:
  pub:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{p_out}"]
        replay_endpoint: "{replay}"
        replay_max_messages: 10
        replay_max_reply: 4
        wait_for_subscriber: 30
""", "bounds.yaml")
    sub = Subscriber(f"tcp://127.0.0.1:{p_out}")
    sy = Switchyard(["run", cfg, "--http", f"127.0.0.1:{p_http}"], stdin=subprocess.PIPE)
    try:
        # Compact bodies: zmq-pub embeds the body bytes as they are.
        lines = [json.dumps({"topic": "org.fedoraproject.dev.demo.b", "body": {"n": n}, "id": f"2026-b{n}"},
                            separators=(",", ":")) for n in range(25)]
        sy.proc.stdin.write(("\n".join(lines) + "\n").encode())
        sy.proc.stdin.flush()
        got = sub.recv_n(25)
        envs = [json.loads(f1) for _, f1 in got]
        check([e["seq_id"] for e in envs] == list(range(1, 26)), f"seq_ids {[e.get('seq_id') for e in envs]}")
        check([e["msg"]["n"] for e in envs] == list(range(25)), "order")
        # A built envelope is canonical JSON, seq_id included.
        for e, (_, f1) in zip(envs, got):
            check(f1 == json.dumps(e, sort_keys=True, separators=(",", ":")).encode(), f"not canonical: {f1!r}")
        for old in (1, 8, 15):
            check(replay_error(replay, [b'{"seq_id":%d}' % old]) == "error: 'no match'", f"seq_id {old} forgotten")
        check(replay_error(replay, [b'{"msg_id":"2026-b0"}']) == "error: 'no match'", "msg_id forgotten")
        envs_r, raw = get_replay(replay, {"seq_id_range": [1, 25]})
        check([e["seq_id"] for e in envs_r] == [16, 17, 18, 19], f"range cut {[e['seq_id'] for e in envs_r]}")
        check(raw == [f1 for _, f1 in got[15:19]], "replayed bytes")
        envs_r, _ = get_replay(replay, {"seq_ids": [25, 3, 20]})
        check([e["seq_id"] for e in envs_r] == [20, 25], "seq_ids among the kept")
        total = sum(len(f1) for _, f1 in got[15:])
        wait_for(lambda: (metric(http_get(f"http://127.0.0.1:{p_http}/metrics")[2],
                                 "switchyard_replay_store_messages"),
                          metric(http_get(f"http://127.0.0.1:{p_http}/metrics")[2],
                                 "switchyard_replay_store_bytes")) == (10, total),
                 10, f"gauges at 10 messages, {total} bytes")
        sy.proc.stdin.close()
        rc = sy.wait(30)
    finally:
        sub.close()
        if sy.proc.poll() is None:
            sy.stop()
    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    st = sy.stats()
    check(st[("zmq-pub", "replay_errors", "no_match")] == 4, "no_match count")
    check(st[("zmq-pub", "replay_served", "")] == 6, "served count")


def check_configs(tmp):
    port = free_port()
    bad = write_config(tmp, f"""version: 1
pipelines:
  pub:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        replay_endpoint: "tcp://127.0.0.1:{port}"
        replay_max_reply: 0
""", "bad.yaml")
    rc, out = run_check(bad)
    check(rc != 0, f"check accepted a bad replay configuration\n{out}")
    check("replay_endpoint" in out and "also in endpoints" in out, f"no replay_endpoint problem\n{out}")
    check("replay_max_reply" in out and "must be 1 or more" in out, f"no replay_max_reply problem\n{out}")
    nodb = write_config(tmp, f"""version: 1
pipelines:
  pub:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        replay_database: "sqlite:{tmp}/r.db"
""", "nodb.yaml")
    rc, out = run_check(nodb)
    check(rc != 0 and "replay_database" in out and "needs 'replay_endpoint'" in out,
          f"replay_database without replay_endpoint\n{out}")
    # check --connect: the replay endpoint bindable, then held by another socket.
    p_replay = free_port()
    good = write_config(tmp, f"""version: 1
pipelines:
  pub:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        replay_endpoint: "tcp://127.0.0.1:{p_replay}"
""", "good.yaml")
    rc, out = run_check("--connect", good)
    check(rc == 0 and f"tcp://127.0.0.1:{p_replay}" in out, f"check --connect\n{out}")
    holder = zmq.Context.instance().socket(zmq.REP)
    holder.setsockopt(zmq.LINGER, 0)
    holder.bind(f"tcp://127.0.0.1:{p_replay}")
    try:
        rc, out = run_check("--connect", good)
    finally:
        holder.close()
    check(rc != 0 and f"tcp://127.0.0.1:{p_replay}" in out and "in use" in out,
          f"check --connect with the replay port taken\n{out}")
    example = os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "examples", "pipelines", "zmq-pub-replay.yaml")
    rc, out = run_check(example)
    check(rc == 0, f"check {example}\n{out}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        run_bounds(tmp)
        check_configs(tmp)
    print("ok")


if __name__ == "__main__":
    main()
