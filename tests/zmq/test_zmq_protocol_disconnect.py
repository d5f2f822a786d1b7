#!/usr/bin/python3
"""One oversized ZeroMQ frame must not cut a publisher off for good.

zmq-sub with max_message_size 65536 (so ZMQ_MAXMSGSIZE = 131072). libzmq 4.3.4 drops a
connection that carries a bigger frame as a protocol error and, on the connecting side,
never retries it. zmq-sub sees that on its socket monitor, counts it, reconnects, and the
messages the dead connection took with it show up as a sequence gap of the right size.

Connect mode (zmq-sub connects to a python3-zmq XPUB):
  1..10 small; 11 at 100 KB (above max_message_size, below the socket's limit: dropped as
  oversize, no disconnect); 12..21 small; 22 at 200 KB (protocol error) with 23..30 right
  behind it; the router subscribes again within 1 s; 31..50 small; the same once more with
  51 at 200 KB, 52..60 behind it, 61..80 after the re-subscription.
  Expected: stdout = 1..10, 12..21, 31..50, 61..80 exactly; protocol_disconnects 2,
  reconnects 2, dropped{oversize} 1, seq_gaps 3, seq_missing 20 = the 20 never emitted.

Bind mode (a python3-zmq XPUB connects to zmq-sub): here the publisher's own libzmq sees an
ordinary connection loss and reconnects by itself; zmq-sub only counts the disconnect, and
whatever was lost is reported as a gap equal to the true loss (from the test's ledger)."""
import json
import os
import sys
import tempfile
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()


def frame(i, size=0):
    return [T, envelope(b'{"n":%d,"pad":"%s"}' % (i, b"x" * size), msg_id=f"id-{i}", i=i)]


def config(tmp, endpoint, bind):
    return write_config(tmp, f"""version: 1
pipelines:
  p:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      bind: {"true" if bind else "false"}
      hwm: 0
      max_message_size: 65536
    outputs:
      - type: stdout
""")


def ids_of(lines):
    return [json.loads(l)["id"] for l in lines]


def wait_resubscribed(pub, timeout=10.0):
    """Waits until the XPUB sees the subscription of a new connection: the old one's
    unsubscription (0x00) comes first, then the new subscription (0x01)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not pub.sock.poll(int(left * 1000), zmq.POLLIN):
            raise AssertionError("no new subscription within %.0f s" % timeout)
        if pub.sock.recv()[:1] == b"\x01":
            return


def stat(stats, name, reason=""):
    return stats.get(("zmq-sub", name, reason), 0)


def connect_mode():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = Publisher(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        sy = Switchyard(["run", config(tmp, endpoint, False)])
        got = []
        reconnect_s = []
        try:
            pub.wait_subscription()
            for i in range(1, 11):
                pub.send(frame(i))
            got += sy.read_lines(10)
            pub.send(frame(11, 100_000))  # oversize for the codec, not for the socket
            for i in range(12, 22):
                pub.send(frame(i))
            got += sy.read_lines(10)  # the connection survived the 100 KB frame
            for big, first_after, last in ((22, 31, 50), (51, 61, 80)):
                t0 = time.monotonic()
                pub.send(frame(big, 200_000))  # protocol error: libzmq drops the connection
                for i in range(big + 1, first_after):
                    pub.send(frame(i))  # behind it in the same TCP stream: lost with it
                wait_resubscribed(pub)
                reconnect_s.append(time.monotonic() - t0)
                for i in range(first_after, last + 1):
                    pub.send(frame(i))
                got += sy.read_lines(last - first_after + 1)
        finally:
            rc = sy.stop()
            pub.close()
        err = sy.stderr()
        check(rc == 0, f"exit {rc}\n{err[-3000:]}")
        want = list(range(1, 11)) + list(range(12, 22)) + list(range(31, 51)) + list(range(61, 81))
        check(ids_of(got) == [f"id-{i}" for i in want], f"delivered: {ids_of(got)}")
        check(sy.rest() == [], "nothing else on stdout")
        check(all(s < 1.0 for s in reconnect_s), f"re-subscribed within 1 s: {reconnect_s}")
        stats = sy.stats()
        lost = 80 - len(want)
        figures = {"protocol_disconnects": 2, "reconnects": 2, "disconnects": 2, "seq_gaps": 3,
                   "seq_missing": lost, "seq_restarts": 0, "seq_duplicates": 0,
                   "zmq_received": len(want) + 1}
        for name, value in figures.items():
            check(stat(stats, name) == value, f"{name} = {stat(stats, name)}, want {value}\n{stats}")
        check(stat(stats, "dropped", "oversize") == 1, f"dropped{{oversize}} = 1: {stats}")
        check(err.count("closed by a protocol error") >= 1, "protocol disconnects are logged (1 line/s)")
        print(f"ok: connect mode: 2 protocol disconnects, re-subscribed after "
              f"{', '.join('%.3f s' % s for s in reconnect_s)}, {lost} lost = seq_missing")


def bind_mode():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        sy = Switchyard(["run", config(tmp, endpoint, True)])
        pub = None
        got = []
        try:
            sy.wait_log(r"bound tcp://")
            pub = Publisher(endpoint, bind=False)
            mon = pub.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            pub.wait_subscription()
            for i in range(1, 11):
                pub.send(frame(i))
            got += sy.read_lines(10)
            pub.send(frame(11, 200_000))
            for i in range(12, 21):
                pub.send(frame(i))
            # The publisher's libzmq reconnects by itself: DISCONNECTED, then a handshake.
            seen = []
            deadline = time.monotonic() + 10
            while seen[-2:] != [zmq.EVENT_DISCONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED]:
                left = deadline - time.monotonic()
                check(left > 0 and mon.poll(int(left * 1000)), f"publisher did not reconnect: {seen}")
                seen.append(recv_monitor_message(mon)["event"])
            for i in range(21, 41):
                pub.send(frame(i))
            deadline = time.monotonic() + 20
            while not got or json.loads(got[-1])["id"] != "id-40":
                got += sy.read_lines(1, timeout=max(0.1, deadline - time.monotonic()))
            pub.sock.disable_monitor()
            mon.close()
        finally:
            rc = sy.stop()
            if pub is not None:
                pub.close()
        err = sy.stderr()
        check(rc == 0, f"exit {rc}\n{err[-3000:]}")
        ids = ids_of(got)
        check(len(set(ids)) == len(ids), "no duplicates")
        check(ids[:10] == [f"id-{i}" for i in range(1, 11)], "before the oversized frame: all")
        check(ids[-20:] == [f"id-{i}" for i in range(21, 41)], "after the reconnect: all")
        lost = 40 - len(ids)
        stats = sy.stats()
        check(lost >= 1, "at least the oversized message is lost")
        check(stat(stats, "seq_missing") == lost and stat(stats, "seq_gaps") == 1,
              f"seq_missing = {stat(stats, 'seq_missing')}, seq_gaps = {stat(stats, 'seq_gaps')}, "
              f"true loss {lost}\n{stats}")
        check(stat(stats, "disconnects") == 1, f"disconnects = 1: {stats}")
        check(stat(stats, "protocol_disconnects") == 0, "bind mode: the publisher reconnects itself")
        print(f"ok: bind mode: publisher back by itself, {lost} lost = seq_missing")


def main():
    connect_mode()
    bind_mode()


if __name__ == "__main__":
    main()
