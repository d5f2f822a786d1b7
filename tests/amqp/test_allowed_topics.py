#!/usr/bin/python3
"""A local topic pre-check keeps forbidden topics away from the broker.

A user may write only ^org\\.example\\. on amq.topic (topic permissions, as in
test_forbidden.py). stdin -> amqp-publish with `allowed_topics` set to the same pattern
sends 10,000 messages of which 100 use a forbidden topic, interleaved: the 100 are refused
locally (failed{forbidden_topic}), the broker never sees them (no 403, no channel closed,
nothing republished), and all 9,900 allowed ones arrive exactly once (0 duplicates)."""
import collections
import json
import secrets
import subprocess

from amqp_fixture import Broker, Switchyard, drain, log, unique

N = 10000


def main():
    broker = Broker()
    user = unique("sy-allowed")
    password = "canary-" + secrets.token_hex(8)
    broker.ctl("add_user", user, password)
    broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    broker.ctl("set_topic_permissions", "-p", "/", user, "amq.topic", r"^org\.example\.", ".*")
    try:
        run(broker, user, password)
    finally:
        broker.ctl("delete_user", user)


def run(broker, user, password):
    conn = broker.connection()
    ch = conn.channel()
    queue = unique("sy-allowed")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "amq.topic", "#")  # would see forbidden topics too, had one leaked
    tag = unique("t")
    lines, allowed, forbidden = [], set(), set()
    for i in range(N):
        mid = f"m-{i:05d}"
        if i % 100 == 37:
            topic = f"org.evil.{tag}.{i}"
            forbidden.add(mid)
        else:
            topic = f"org.example.{tag}.{i % 9}"
            allowed.add(mid)
        lines.append(json.dumps({"topic": topic, "body": {"n": i}, "id": mid}))
    assert len(forbidden) == 100

    cfg = f"""version: 1
pipelines:
  precheck:
    input: {{type: stdin}}
    outputs:
      - type: amqp-publish
        url: "amqp://{user}:${{SY_TEST_AMQP_PASSWORD}}@127.0.0.1:{broker.port}/"
        exchange: amq.topic
        allowed_topics: ['^org\\.example\\.']
"""
    sy = Switchyard(cfg, stdin=subprocess.PIPE, env={"SY_TEST_AMQP_PASSWORD": password})
    sy.proc.stdin.write(("\n".join(lines) + "\n").encode())
    sy.proc.stdin.close()
    rc = sy.wait(60)
    err = sy.stderr()
    assert rc == 0, f"switchyard exited {rc}\n{err[-3000:]}"
    st = sy.plugin_stats("amqp-publish")
    log("stats:", {k: v for k, v in st.items() if v})
    assert password not in err, "the password appears in the log"
    assert st.get(("forbidden_topic", ""), 0) == len(forbidden), st
    assert st.get(("failed", "forbidden_topic"), 0) == len(forbidden), st
    # Nothing forbidden reached the broker: no 403, no channel closed, nothing republished.
    assert st.get(("forbidden", ""), 0) == 0 and st.get(("failed", "forbidden"), 0) == 0, st
    assert not any(k[0] == "channel_closures" and v for k, v in st.items()), st
    assert st.get(("republished", ""), 0) == 0, st
    assert st.get(("published", ""), 0) == len(allowed), st
    assert st.get(("confirmed", ""), 0) == len(allowed), st
    assert "refused by the broker" not in err

    got = drain(conn, queue, len(allowed), timeout=60, idle=1.0)
    ids = collections.Counter(p.message_id for _, p, _ in got)
    assert not (set(ids) & forbidden), "a forbidden message was routed"
    missing = allowed - set(ids)
    assert not missing, f"{len(missing)} allowed messages lost, e.g. {sorted(missing)[:5]}"
    dups = sum(c - 1 for c in ids.values())
    log(f"{len(ids)} allowed delivered, {dups} duplicates")
    assert dups == 0, ids.most_common(3)
    conn.channel().queue_delete(queue)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
