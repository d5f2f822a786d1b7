#!/usr/bin/python3
"""Topic permission denial mid-stream (R10): a user allowed to publish only
^org\\.example\\. on amq.topic sends 3,000 messages of which 1 % use a forbidden topic,
interleaved. Each forbidden one is failed as `forbidden` exactly once and never retried;
every allowed one arrives, including those in flight on the channel each 403 closed. The
password comes from ${ENV} and never appears in the log."""
import collections
import json
import re
import secrets
import subprocess

from amqp_fixture import Broker, Switchyard, drain, log, unique

N = 3000


def main():
    broker = Broker()
    user = unique("sy-bridge")
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
    queue = unique("sy-forbidden")
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, "amq.topic", "#")  # sees allowed and (if it leaked) forbidden topics
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

    cfg = f"""version: 1
pipelines:
  in2amqp:
    input: {{type: stdin}}
    outputs:
      - type: amqp-publish
        url: "amqp://{user}:${{SY_TEST_AMQP_PASSWORD}}@127.0.0.1:{broker.port}/"
        exchange: amq.topic
        confirm_window: 100
"""
    sy = Switchyard(cfg, stdin=subprocess.PIPE, env={"SY_TEST_AMQP_PASSWORD": password})
    sy.proc.stdin.write(("\n".join(lines) + "\n").encode())
    sy.proc.stdin.close()
    rc = sy.wait(180)
    err = sy.stderr()
    assert rc == 0, f"switchyard exited {rc}\n{err[-3000:]}"
    st = sy.stats()
    log("stats:", {k: v for k, v in st.items() if v})
    assert password not in err, "the password appears in the log"
    assert st.get(("forbidden", ""), 0) == len(forbidden), st
    assert st.get(("failed", "forbidden"), 0) == len(forbidden), st
    assert st.get(("confirmed", ""), 0) == len(allowed), st
    # Never retried: each forbidden message was refused exactly once.
    refused = collections.Counter(re.findall(r"message (m-\d+) refused by the broker", err))
    assert set(refused) == forbidden, (sorted(set(refused) ^ forbidden)[:10])
    assert all(c == 1 for c in refused.values()), refused.most_common(3)

    got = drain(conn, queue, len(allowed), timeout=60, idle=1.0)
    ids = collections.Counter(p.message_id for _, p, _ in got)
    assert not (set(ids) & forbidden), "a forbidden message was routed"
    missing = allowed - set(ids)
    assert not missing, f"{len(missing)} allowed messages lost, e.g. {sorted(missing)[:5]}"
    dups = sum(c - 1 for c in ids.values())
    log(f"{len(ids)} allowed delivered, {dups} duplicates (republished after a 403 closed the channel), "
        f"republished counter {st.get(('republished', ''), 0)}")
    assert dups <= st.get(("republished", ""), 0)
    conn.channel().queue_delete(queue)
    conn.close()
    log("ok")


if __name__ == "__main__":
    main()
