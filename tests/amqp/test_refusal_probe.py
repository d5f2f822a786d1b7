#!/usr/bin/python3
"""A channel closure that does not say which message it refused is still settled one
message at a time (docs/delivery.md: permanent per-message refusals settle one
message, not the connection).

The user may configure and read everything but write nothing on amq.topic: every publish
is refused with 403 ACCESS_REFUSED "access to exchange 'amq.topic' ... refused", a text
that names no topic. amqp-publish cannot tell which of its unconfirmed messages the broker
refused, so it republishes them one at a time; each closure then has one candidate. All 20
messages end as Reject `forbidden`, exactly once each, with one channel per message (plus
at most the first, ambiguous one), on one connection: no reconnect, no republish loop, and
the pipeline ends as soon as stdin does.

The input comes in two writes, the second after the broker closed the first channel: the
messages that arrive while (or after) the suspects are probed go one at a time as well,
so they cost no second ambiguous closure."""
import re
import secrets
import subprocess
import json
import time

from amqp_fixture import Broker, Switchyard, log, unique, wait_for

N = 20


def main():
    broker = Broker()
    user = unique("sy-probe")
    password = secrets.token_hex(8)
    broker.ctl("add_user", user, password)
    broker.ctl("set_permissions", "-p", "/", user, ".*", "^$", ".*")  # write: nothing
    try:
        sy = Switchyard(f"""version: 1
pipelines:
  probe:
    input: {{type: stdin}}
    outputs:
      - {{type: amqp-publish, url: "amqp://{user}:{password}@127.0.0.1:{broker.port}/", exchange: amq.topic}}
""", stdin=subprocess.PIPE)
        lines = [json.dumps({"topic": f"org.example.probe.{i}", "body": {"n": i}, "id": f"p-{i:02d}"})
                 for i in range(N)]
        t0 = time.monotonic()
        half = N // 2
        sy.proc.stdin.write(("\n".join(lines[:half]) + "\n").encode())
        sy.proc.stdin.flush()
        wait_for(lambda: "closed by the broker" in sy.stderr() or "refused by the broker" in sy.stderr(), 10,
                 "the broker's first channel closure")
        sy.proc.stdin.write(("\n".join(lines[half:]) + "\n").encode())
        sy.proc.stdin.close()
        rc = sy.wait(30)
        elapsed = time.monotonic() - t0
        err = sy.stderr()
        assert rc == 0, f"exit {rc}\n{err[-3000:]}"
        st = sy.plugin_stats("amqp-publish")
        log(f"{elapsed:.2f}s:", {k: v for k, v in st.items() if v})
        assert st.get(("failed", "forbidden"), 0) == N, st
        assert st.get(("forbidden", ""), 0) == N and st.get(("refused_by_broker", ""), 0) == N, st
        assert st.get(("confirmed", ""), 0) == 0, st
        closures = st.get(("channel_closures", "403"), 0)
        assert N <= closures <= N + 1, st
        assert st.get(("reconnects", ""), 0) == 0 and st.get(("disconnects", ""), 0) == 0, st
        refused = re.findall(r"message (p-\d+) refused by the broker: 403", err)
        assert sorted(refused) == sorted(f"p-{i:02d}" for i in range(N)), refused
        assert elapsed < 10, elapsed
    finally:
        broker.ctl("delete_user", user)
    log("ok")


if __name__ == "__main__":
    main()
