#!/usr/bin/python3
"""Gaps across router restarts (kill -9).

A python3-zmq publisher sends numbered messages (its `i` counter) at about 1,000 per second
without pause, while the router (zmq-sub -> stdout, with `state_file`) is killed with
SIGKILL about every 2 s and started again: 8 kills, 9 processes. Whatever the publisher
sent while no router was connected is lost. Each new process loads the per-publisher state
its predecessor saved and reports that window as a gap, so the sum of `seq_missing` over
the processes equals the ids that never came out, exactly.

What a killed process leaves behind: the state file is rewritten after every poll that
changed it (state_interval 0), atomically (rename). Before each kill the test pauses the
publisher until the router has passed on everything it sent, saved it (the file shows the
last `i`) and printed counters with nothing left open; only the gap reporting across the
restart is under test, not what a kill -9 loses inside the router (that is the runtime's
in-flight loss, docs/delivery.md). The first router waits for the subscription (no
slow-joiner loss before the baseline), and finds a corrupt state file: logged, kept aside as
FILE.corrupt, fresh start. A state file that cannot be written ends the router at start
with exit status 3 (a restart cannot help)."""
import os
import json
import signal
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, free_port, write_config  # noqa: E402

T = TOPIC.encode()
KILLS = 8
RUN_SECONDS = 1.5  # of sending per router process, before the pause that precedes the kill
DOWN_LOSS = 20     # at least this many messages are sent before the next router starts


class Sender(threading.Thread):
    """Sends i = 1, 2, ... about once per millisecond while not paused; owns the socket."""

    def __init__(self, pub):
        super().__init__(daemon=True)
        self.pub = pub
        self.cond = threading.Condition()
        self.paused = True
        self.idle = True
        self.stopping = False
        self.i = 0
        self.error = None
        self.start()

    def run(self):
        try:
            while True:
                with self.cond:
                    self.idle = self.paused
                    self.cond.notify_all()
                    while self.paused and not self.stopping:
                        self.cond.wait()
                    if self.stopping:
                        return
                    self.idle = False
                self.i += 1
                self.pub.send([T, envelope(b'{}', msg_id=f"2026-kill-{self.i}", i=self.i, username="alpha")])
                time.sleep(0.001)  # the publisher's rate, not a synchronisation
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e

    def pause(self):
        """Stops sending; returns the last `i` sent."""
        with self.cond:
            self.paused = True
            check(self.cond.wait_for(lambda: self.idle or self.error, 10), "sender did not pause")
        check(self.error is None, f"sender failed: {self.error}")
        return self.i

    def resume(self):
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def finish(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.join(10)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.02)  # polling a condition with a deadline


def saved_highest(path, key):
    """The highest `i` the state file holds for @key and whether values are open, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines[1:]:
        fields = line.split(" ")
        if len(fields) == 6 and urllib.parse.unquote(fields[0]) == key:
            return int(fields[2]), fields[3] != fields[2]
    return None


def unwritable_state_file(tmp):
    """A state file that cannot be written is a configuration error: exit status 3 at once."""
    cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{free_port()}"]
      state_file: {tmp}/no/such/dir/seq.state
    outputs:
      - type: stdout
""", name="bad.yaml")
    sy = Switchyard(["run", cfg])
    rc = sy.wait(20)
    check(rc == 3, f"exit {rc}, want 3\n{sy.stderr()[-2000:]}")
    check("cannot write the sequence state file" in sy.stderr(), sy.stderr()[-2000:])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        unwritable_state_file(tmp)
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    key = f"{endpoint}|alpha"
    pub = Publisher(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "seq.state")
        cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
      state_file: {state}
    outputs:
      - type: stdout
""")
        with open(state, "wb") as f:  # a corrupt state file: logged, and the router starts fresh
            f.write(b"switchyard-zmq-sub-seq 1\ngarbage \xff\x00 1 2\n")
        out = []        # ids passed on, over all processes
        reported = []   # seq_missing of each process
        sender = None
        sy = None
        try:
            for run in range(KILLS + 1):
                sy = Switchyard(["run", "--stats-interval", "0.2", cfg])
                first = len(out)  # this process's first output line
                if run == 0:
                    sy.wait_log(r"sequence state file .* is unusable \(line 2: expected 6 fields\); starting fresh")
                    check(os.path.exists(state + ".corrupt"), "the corrupt file is kept aside")
                    pub.wait_subscription()
                    sender = Sender(pub)
                    sender.resume()
                started = time.monotonic()
                while time.monotonic() - started < RUN_SECONDS:
                    out.extend(json.loads(l)["id"] for l in sy.read_lines(1, timeout=20))
                last = sender.pause()
                marker = f"2026-kill-{last}"
                while out[-1] != marker:
                    out.extend(json.loads(l)["id"] for l in sy.read_lines(1, timeout=20))
                wait_for(lambda: saved_highest(state, key) == (last, False), 10, f"state file at i={last}")
                # A stats line (only changed counters) showing every line this process wrote:
                # it was logged after the last message, so every counter shown is current
                # (a counter never logged is zero).
                wait_for(lambda: sy.stats().get(("stdout", "sent", "")) == len(out) - first, 10,
                         "a stats line after the last message")
                stats = sy.stats()
                check(stats.get(("zmq-sub", "seq_open", ""), 0) == 0, f"nothing open: {stats}")
                for name in ("seq_restarts", "seq_duplicates", "seq_late", "seq_reordered"):
                    check(stats.get(("zmq-sub", name, ""), 0) == 0, f"run {run}: {name} = {stats.get(('zmq-sub', name, ''))}")
                reported.append(stats.get(("zmq-sub", "seq_missing", ""), 0))
                if run < KILLS:
                    sy.proc.send_signal(signal.SIGKILL)
                    check(sy.wait() == -signal.SIGKILL, "killed")
                    sender.resume()  # sent while no router listens: lost
                    wait_for(lambda: sender.i >= last + DOWN_LOSS, 10, "messages sent while the router is down")
                else:
                    rc = sy.stop()
                    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
                    final = sy.stats()
                    check(final.get(("zmq-sub", "seq_missing", ""), 0) == reported[-1], "exit stats agree")
                    check(sy.rest() == [], "nothing after the last marker")
        finally:
            if sender is not None:
                sender.finish()
            if sy is not None and sy.proc.poll() is None:
                sy.proc.kill()
                sy.proc.wait()
            pub.close()
        sent = last
        check(len(out) == len(set(out)), "no message passed on twice")
        lost = sent - len(out)
        check(lost > 0 and reported[0] == 0, f"loss happened across the restarts only: {reported}")
        check(all(r >= DOWN_LOSS for r in reported[1:]), f"every restart reported its gap: {reported}")
        check(sum(reported) == lost, f"reported missing {sum(reported)} ({reported}) != truly lost {lost}")
    print(f"ok: {KILLS} kills, {lost} of {sent} messages lost while no router ran, all reported ({reported})")


if __name__ == "__main__":
    main()
