#!/usr/bin/python3
"""`switchyard run` under systemd's notify protocol, with this test playing systemd: a Unix
datagram socket as NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID set for the child.

* READY=1 comes once every pipeline started: the input's TCP port accepts a connection at
  the first attempt right after it, and a python3-zmq publisher that connects then gets its
  message through; STATUS= carries the one-line summary, refreshed with the counts.
* WATCHDOG=1 comes at half the WATCHDOG_USEC interval, from the run loop.
* SIGTERM: STOPPING=1 before the process exits, with status 0.
* SIGHUP (a reload of the unchanged file): RELOADING=1, then READY=1 again.
* A pipeline whose input ended while another runs: STATUS= says "1 of 2 pipelines running".
* WATCHDOG_PID naming another process: no WATCHDOG=1 at all (the watchdog is not ours).
* `switchyard tail` never notifies, even with NOTIFY_SOCKET set."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import BIN, TOPIC, Publisher, check, envelope, free_port, wait_for, write_config  # noqa: E402
from sytest import read_output  # noqa: E402 (zmqtest puts tests/lib on sys.path)

WATCHDOG_USEC = 2_000_000  # systemd would kill a service that stays silent for 2 s


class FakeSystemd:
    """The notification socket: every datagram with the monotonic time it arrived."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.got = []  # [(time, {key: value})], one entry per datagram
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            with self.lock:
                self.got.append((time.monotonic(), fields))

    def all(self):
        with self.lock:
            return list(self.got)

    def find(self, key, value=None, start=0):
        """Index of the first datagram from @start on that sets @key (to @value), or None."""
        for n, (_, f) in enumerate(self.all()[start:], start):
            if key in f and (value is None or f[key] == value):
                return n
        return None

    def wait(self, key, value=None, start=0, timeout=30.0):
        wait_for(lambda: self.find(key, value, start) is not None, timeout, f"{key}={value or '...'}")
        return self.find(key, value, start)

    def close(self):
        """Stops listening, keeping what is still queued in the socket."""
        if self.stopped:
            return
        self.stopped = True
        self.thread.join(5)
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.got.append((time.monotonic(), fields))
        self.sock.close()


class Child:
    """switchyard with the notify environment, as systemd starts a Type=notify service;
    WATCHDOG_PID is the child's own pid (the shell execs it) unless @watchdog_pid is given."""

    def __init__(self, args, notify, watchdog_pid=None):
        env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
        pid = str(watchdog_pid) if watchdog_pid else "$$"
        self.proc = subprocess.Popen(["/bin/sh", "-c", f'WATCHDOG_PID={pid} exec "$0" "$@"', BIN] + args,
                                     env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out, self.err, self.threads = read_output(self.proc)

    def stderr(self):
        return "".join(self.err)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("switchyard did not exit after SIGTERM\n" + self.stderr()[-3000:])
        for t in self.threads:
            t.join(10)
        return rc


def config(tmp, port):
    return write_config(tmp, f"""version: 1
pipelines:
  notified:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{port}"]
      bind: true
    outputs:
      - type: stdout
""")


def notify_run(tmp):
    port = free_port()
    cfg = config(tmp, port)
    notify = FakeSystemd(tmp)
    sy = Child(["run", cfg], notify)
    try:
        ready = notify.wait("READY", "1")
        # The input's socket is bound before READY=1: a connection succeeds at once, no retry.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        status = notify.all()[ready][1].get("STATUS", "")
        check(status == "1 pipeline running; in 0, out 0, dropped 0", f"first STATUS: {status!r}")
        pub = Publisher(f"tcp://127.0.0.1:{port}", bind=False)
        try:
            check(pub.wait_subscription() == b"", "zmq-sub subscribed")
            for n in range(3):
                pub.send([TOPIC.encode(), envelope(b'{"n":%d}' % n, i=n + 1)])
            wait_for(lambda: len(sy.out) == 3, 20, "3 messages on stdout")
        finally:
            pub.close()
        notify.wait("STATUS", "1 pipeline running; in 3, out 3, dropped 0", ready, timeout=15)

        # WATCHDOG=1 at half the interval: three more after READY, each 1 s (+ a loop turn) apart.
        wait_for(lambda: sum("WATCHDOG" in f for _, f in notify.all()[ready:]) >= 4, 15, "4 WATCHDOG=1")
        pings = [t for t, f in notify.all()[ready:] if f.get("WATCHDOG") == "1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        check(all(0.9 <= g < WATCHDOG_USEC / 1e6 for g in gaps), f"WATCHDOG=1 every half interval: {gaps}")

        # SIGHUP (systemctl reload): RELOADING=1, then READY=1 once the file was re-read.
        hup = len(notify.all())
        sy.proc.send_signal(signal.SIGHUP)
        reloading = notify.wait("RELOADING", "1", hup)
        notify.wait("READY", "1", reloading + 1)
        check(re.search(r"reload: .*1 unchanged", sy.stderr()), "the unchanged file was reloaded")
        check(sy.proc.poll() is None, "still running after SIGHUP")

        before_stop = len(notify.all())
        check(notify.find("STOPPING") is None, "no STOPPING=1 before the signal")
        rc = sy.stop()
        check(rc == 0, f"exit status {rc}\n{sy.stderr()[-3000:]}")
        notify.close()
        check(notify.find("STOPPING", "1", before_stop) is not None, f"STOPPING=1 before exit: {notify.all()[before_stop:]}")
        check(re.search(r"systemd watchdog: every 1000 ms", sy.stderr()), "watchdog interval logged")
        print(f"ok: READY=1 with the port open, {len(pings)} WATCHDOG=1 {[round(g, 2) for g in gaps]} s apart, "
              f"STATUS= refreshed, RELOADING=1/READY=1 on SIGHUP, STOPPING=1")
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
        notify.close()


def ended_pipeline(tmp):
    """A pipeline whose input ended (stdin at EOF) while another runs: STATUS= says so."""
    notify = FakeSystemd(tmp)
    cfg = write_config(tmp, f"""version: 1
pipelines:
  notified:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{free_port()}"]
      bind: true
    outputs:
      - type: stdout
  once:
    input: {{type: stdin}}
    outputs: [{{type: stdout}}]
""", name="two.yaml")
    sy = Child(["run", cfg], notify)
    try:
        notify.wait("READY", "1")
        notify.wait("STATUS", "1 of 2 pipelines running; in 0, out 0, dropped 0", timeout=15)
        check(sy.stop() == 0, sy.stderr()[-3000:])
        print("ok: STATUS= counts the pipelines still running")
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
        notify.close()


def foreign_watchdog(tmp):
    """WATCHDOG_PID names another process: READY=1 and STOPPING=1 but no WATCHDOG=1."""
    notify = FakeSystemd(tmp)
    sy = Child(["run", config(tmp, free_port())], notify, watchdog_pid=1)
    try:
        notify.wait("READY", "1")
        check(sy.stop() == 0, sy.stderr()[-3000:])
        notify.close()
        check(notify.find("STOPPING", "1") is not None, "STOPPING=1")
        check(notify.find("WATCHDOG") is None, f"no WATCHDOG=1 for another pid: {notify.all()}")
        print("ok: no watchdog pings when WATCHDOG_PID is another process")
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
        notify.close()


def tail_is_silent(tmp):
    """Only `switchyard run` notifies: tail, with the same environment, sends nothing."""
    notify = FakeSystemd(tmp)
    sy = Child(["tail", f"tcp://127.0.0.1:{free_port()}"], notify)
    try:
        wait_for(lambda: "tail: started" in sy.stderr(), 30, "tail: started")
        check(sy.stop() == 0, sy.stderr()[-3000:])
        notify.close()  # everything tail could have sent is in the socket by now
        check(notify.all() == [], f"tail notified systemd: {notify.all()}")
        print("ok: tail does not notify")
    finally:
        if sy.proc.poll() is None:
            sy.proc.kill()
        notify.close()


def main():
    for part in (notify_run, ended_pipeline, foreign_watchdog, tail_is_silent):
        with tempfile.TemporaryDirectory() as tmp:
            part(tmp)


if __name__ == "__main__":
    main()
