#!/usr/bin/python3
"""scripts/demo, five times in a row, every run passing: the three demos (stdin -> stdout;
logger -> relay -> tail over ZeroMQ; both bridges of examples/pipelines/bridge.yaml with
verify-missing on a RabbitMQ) with the build under test (`--no-build`, SWITCHYARD_BUILD_DIR),
the suite's private broker (SWITCHYARD_RABBITMQ_DIR, left running) and no pause between
messages (SWITCHYARD_DEMO_PACE=0).

A run passes when the script exits 0 and says what it promises: tail got 5 of 5 messages,
5 of 5 crossed each way with none back and no duplicate, verify-missing matched the 10 demo
messages, and the demo finished. A demo that races a subscription fails here sooner or later."""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "amqp"))
import amqp_fixture as af  # noqa: E402

RUNS = 5


def main():
    broker = af.Broker()
    build = os.environ["SWITCHYARD_BUILD_ROOT"]
    env = dict(os.environ)
    env.update({
        "SWITCHYARD_BUILD_DIR": build,
        "SWITCHYARD_RABBITMQ_DIR": broker.env.get("SWITCHYARD_RABBITMQ_DIR")
        or os.path.join(af.ROOT, "build", "rabbitmq-local"),  # scripts/rabbitmq-local's default
        "SWITCHYARD_DEMO_PACE": "0",
    })
    times = []
    for run in range(1, RUNS + 1):
        t0 = time.monotonic()
        p = subprocess.run([os.path.join(af.ROOT, "scripts", "demo"), "--no-build"], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=150)
        times.append(time.monotonic() - t0)
        out = p.stdout + p.stderr
        where = f"run {run} of {RUNS} (exit {p.returncode}):\n{out[-6000:]}"
        assert p.returncode == 0, where
        assert "switchyard tail received 5 of 5 messages" in out, where
        assert len(re.findall(r"hello fedmsg [1-5]\b", p.stdout)) == 5, where
        assert "crossed: 5/5 fedmsg -> AMQP, 5/5 AMQP -> fedmsg; came back: 0; duplicates: 0" in out, where
        assert len(re.findall(r"^  matched \S+ \(topic org\.fedoraproject\.demo\.", p.stdout, re.M)) == 10, where
        assert "was only received via" not in p.stdout, where
        assert "policy_denied" not in out, where
        assert "==> demo finished" in out, where
        # The suite's broker was used, not a second one started, and it is still running.
        assert "using the RabbitMQ node already running in" in out, where
        af.log(f"demo run {run}: passed in {times[-1]:.1f} s")
    assert subprocess.run([af.SCRIPT, "status"], env=env, capture_output=True).returncode == 0, "broker stopped"
    print(f"ok: {RUNS} runs in a row, {', '.join(f'{t:.1f}' for t in times)} s")


if __name__ == "__main__":
    main()
