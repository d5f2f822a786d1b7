#!/usr/bin/python3
"""zmq-sub's sockets are XSUB, which (unlike SUB) do not filter what they receive against
their subscriptions: ZMTP 3 publishers filter for their subscribers. A peer that ignores
the subscriptions (here a python3-zmq XPUB in manual mode that subscribes every connection
to everything) must still not get other topics through: zmq-sub checks the topic prefixes
itself and counts the rest as dropped{not_subscribed}."""
import json
import os
import sys
import tempfile

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import Switchyard, check, envelope, free_port, write_config  # noqa: E402

WANTED = "org.fedoraproject.dev.bodhi.update"
OTHER = "org.fedoraproject.dev.pagure.commit"


def main():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = zmq.Context.instance().socket(zmq.XPUB)
    pub.setsockopt(zmq.XPUB_MANUAL, 1)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  p:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      topics: [org.fedoraproject.dev.bodhi.]
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            check(pub.poll(20000, zmq.POLLIN), "no subscription arrived")
            sub = pub.recv()
            check(sub == b"\x01org.fedoraproject.dev.bodhi.", f"subscription {sub!r}")
            pub.setsockopt(zmq.SUBSCRIBE, b"")  # manual mode: this connection gets everything
            sent = []
            for k in range(20):
                topic = WANTED if k % 2 == 0 else OTHER
                msg_id = f"2026-{k}"
                pub.send_multipart([topic.encode(), envelope(b"{}", topic=topic, msg_id=msg_id, i=k + 1)])
                if topic == WANTED:
                    sent.append(msg_id)
            lines = sy.read_lines(10)
        finally:
            rc = sy.stop()
            pub.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        check([json.loads(l)["id"] for l in lines] == sent, "the subscribed topic arrives, in order")
        check(sy.rest() == [], "nothing else")
        stats = sy.stats()
        check(stats.get(("zmq-sub", "dropped", "not_subscribed")) == 10, f"10 not_subscribed: {stats}")
        check(stats.get(("zmq-sub", "zmq_received", "")) == 20, f"20 read: {stats}")
    print("ok: 10 of 20 messages on the subscribed prefix, 10 dropped as not_subscribed")


if __name__ == "__main__":
    main()
