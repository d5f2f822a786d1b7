#!/usr/bin/python3
"""SIGHUP when a pipeline's new version cannot run beside the old one, or cannot start at
all (docs/operations.md, "Reload"); no broker needed.

  z:  zmq-sub (connects to a python publisher) -> zmq-pub (binds P_OUT)

1. The new version changes zmq-pub's hwm and binds the same P_OUT: it cannot bind while
   the old version holds the port, so the old one is drained first and the new one then
   starts; messages flow again through P_OUT.
2. The next file binds zmq-pub to a port a python socket holds: the new version cannot
   start even after the old one drained, so the previous version runs again, and the
   log says so; messages flow again through P_OUT.
3. Throughout, the process keeps running; at SIGTERM it exits 0."""
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import Publisher, Subscriber, Switchyard, TOPIC, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()


def config(p_in, p_out, hwm):
    return f"""version: 1
pipelines:
  z:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{p_in}"]
    outputs:
      - type: zmq-pub
        bind: true
        endpoints: ["tcp://127.0.0.1:{p_out}"]
        hwm: {hwm}
"""


def flows(pub, sub, tag, timeout=30.0):
    """Sends envelopes until one comes out of P_OUT (subscriptions are re-made after the
    restart of the pipeline's output); returns how many were sent."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        pub.send([T, envelope(b'{"probe":"%s-%d"}' % (tag.encode(), n), i=None)])
        if sub.sock.poll(100):
            frames = sub.sock.recv_multipart()
            check(tag.encode() in frames[1], f"unexpected message {frames!r}")
            return n
    raise AssertionError(f"nothing came out of the pipeline ({tag}) within {timeout} s")


def reload(sy, path, text, count):
    """Writes @text to @path, sends SIGHUP and waits for reload summary number @count."""
    with open(path + ".new", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".new", path)
    sy.proc.send_signal(1)  # SIGHUP
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [l for l in sy.stderr().splitlines() if " reload: " in l and "unchanged" in l]
        if len(lines) >= count:
            return lines[count - 1]
        check(sy.proc.poll() is None, "switchyard exited on SIGHUP\n" + sy.stderr()[-3000:])
        time.sleep(0.02)  # polling a condition with a deadline
    raise AssertionError("no reload summary\n" + sy.stderr()[-3000:])


def main():
    p_in, p_out = free_port(), free_port()
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p_busy = busy.getsockname()[1]
    pub = Publisher(f"tcp://127.0.0.1:{p_in}")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_config(tmp, config(p_in, p_out, 1000))
        sy = Switchyard(["run", path])
        try:
            sy.wait_log(r"bound tcp://127\.0\.0\.1:%d" % p_out)
            pub.wait_subscription()
            sub = Subscriber(f"tcp://127.0.0.1:{p_out}")
            flows(pub, sub, "v1")

            # 1. Same address, changed hwm: drained first, then the new version.
            summary = reload(sy, path, config(p_in, p_out, 2000), 1)
            check("0 unchanged, 1 changed (z), 0 added, 0 removed" in summary, summary)
            check("failed" not in summary, summary)
            sy.wait_log(r"pipeline 'z': the new version did not start beside the old one .*draining the old one first")
            flows(pub, sub, "v2")

            # 2. A port already taken: the previous version runs again.
            summary = reload(sy, path, config(p_in, p_busy, 3000), 2)
            check("0 unchanged, 0 changed, 0 added, 0 removed; 1 failed: z: the new version cannot start (" in summary,
                  summary)
            check(f"127.0.0.1:{p_busy}" in summary and "the previous version runs again" in summary, summary)
            check(" error " in next(l for l in sy.stderr().splitlines() if "1 failed" in l), "not logged as an error")
            flows(pub, sub, "v2-again")

            rc = sy.stop()
            check(rc == 0, f"exit status {rc}\n{sy.stderr()[-3000:]}")
        except BaseException:
            print(sy.stderr()[-6000:], file=sys.stderr)
            if sy.proc.poll() is None:
                sy.proc.kill()
            raise
        finally:
            busy.close()
            pub.close()
    print("ok")


if __name__ == "__main__":
    main()
