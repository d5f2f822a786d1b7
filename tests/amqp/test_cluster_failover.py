#!/usr/bin/python3
"""Broker failover and A->Z scale-out on a real 3-node RabbitMQ cluster
(scripts/rabbitmq-cluster), one kill -9 of the node leading both quorum queues while both
directions carry traffic:

  A->Z: pika (confirms, on node 2) -> quorum queue QA -> two amqp-consume -> zmq-pub
        instances, competing consumers, each on its own PUB endpoint -> python3-zmq SUBs
  Z->A: python3-zmq XPUB -> zmq-sub -> amqp-publish -> amq.topic -> quorum queue QZ,
        consumed live by pika on node 3

Both bridges list the three nodes in `url`; the instances that were on the killed node must
move to another one. What the test can claim:
  * A->Z: every message pika published and the cluster confirmed reaches a ZeroMQ
    subscriber (0 lost among broker-confirmed messages; duplicates are allowed and
    reported: deliveries unacked on the dead node come again);
  * Z->A: every envelope the ZeroMQ publisher sent after the bridge's subscription reached
    it arrives in QZ: the bridge kept what the dead node had not confirmed and published
    it again on another node (duplicates reported, same message_id). The router process is
    not killed here, so this says nothing about messages lost with the router itself (the
    journal's tests do);
  * clients resume on another node within 5 s: for each direction, the time from the kill
    to the first message sent after the kill that crossed the bridge.
It cannot claim anything about messages pika saw unconfirmed (they may or may not arrive).

The cluster is the one running in $SWITCHYARD_RABBITMQ_CLUSTER_DIR, or one this test starts
(and stops). Never skipped."""
import atexit
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pika
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "zmq"))
from amqp_fixture import ROOT, log, unique, wait_for  # noqa: E402
import zmqtest  # noqa: E402

SCRIPT = os.path.join(ROOT, "scripts", "rabbitmq-cluster")
RATE = 100            # messages per second in each direction
BEFORE_KILL = 3.0     # seconds of traffic before the kill
AFTER_KILL = 7.0      # and after it
RESUME_LIMIT = 5.0


class Cluster:
    def __init__(self):
        self.env = dict(os.environ)
        self.env.setdefault("SWITCHYARD_RABBITMQ_CLUSTER_DIR",
                            os.path.join(os.environ.get("SWITCHYARD_BUILD_ROOT", os.path.join(ROOT, "build")),
                                         "rabbitmq-cluster"))
        self.own = self.run("status", check=False).returncode != 0
        if self.own:
            log("no cluster running; starting 3 nodes with scripts/rabbitmq-cluster")
            t = time.monotonic()
            self.run("start", "3")
            log(f"cluster started in {time.monotonic() - t:.1f} s")
        self.urls = self.run("urls").stdout.split()
        self.ports = [int(u.rsplit(":", 1)[1].strip("/")) for u in self.urls]

    def run(self, *args, check=True):
        p = subprocess.run([SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=240)
        if check and p.returncode != 0:
            raise AssertionError(f"rabbitmq-cluster {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def connection(self, node):
        params = pika.ConnectionParameters(host="127.0.0.1", port=self.ports[node - 1],
                                           credentials=pika.PlainCredentials("guest", "guest"), heartbeat=30)
        return pika.BlockingConnection(params)

    def leader(self, queue):
        return int(self.run("leader", queue).stdout.strip())

    def members(self, queue):
        out = self.run("ctl", "1", "-q", "list_queues", "name", "members", "--no-table-headers").stdout
        for line in out.splitlines():
            f = line.split("\t")
            if f[0] == queue:
                return set(re.findall(r"[\w.-]+@[\w.-]+", f[1]))
        raise AssertionError(f"queue {queue} not listed:\n{out}")

    def replicate(self, queue):
        """Makes sure quorum queue `queue` has a member on each of the 3 nodes: one declared
        while a node was still coming up is placed on the others only, and would lose its
        majority with the kill. Adds what is missing (rabbitmq-queues add_member)."""
        nodes = set(re.findall(r"SWITCHYARD_RABBITMQ_NODE_\d+='([^']+)'", self.run("env").stdout))
        missing = nodes - self.members(queue)
        for node in sorted(missing):
            log(f"queue {queue} has no member on {node}: adding one")
            self.run("queues", "1", "add_member", queue, node)
        if missing:
            wait_for(lambda: self.members(queue) == nodes, 30, f"a member of {queue} on each node")
        # A member is listed before its Raft server runs: wait until each of the three is
        # leader or follower and has caught up, or the kill may leave fewer than a majority.
        wait_for(lambda: self.in_sync(queue, nodes), 30, f"every member of {queue} running and caught up")

    def in_sync(self, queue, nodes):
        p = self.run("queues", "1", "quorum_status", queue, "--formatter", "json", "-q", check=False)
        try:
            rows = json.loads(p.stdout)
        except ValueError:
            return False
        states = {r.get("Node Name"): r.get("Raft State") for r in rows}
        commits = {r.get("Commit Index") for r in rows}
        ok = (set(states) == nodes and all(s in ("leader", "follower") for s in states.values())
              and len(commits) == 1)
        if not ok:
            log(f"queue {queue}: waiting for its members: {rows}")
        return ok


def url_list(cluster, first):
    """The three URLs starting with node `first` (YAML flow list)."""
    order = [first] + [n for n in (1, 2, 3) if n != first]
    return "[" + ", ".join(f'"{cluster.urls[n - 1]}"' for n in order) + "]"


class ZmqSink(threading.Thread):
    """A SUB socket on one bridge instance's PUB endpoint: (receive time, msg_id) per message."""

    def __init__(self, ctx, endpoint):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.got = []
        self.lock = threading.Lock()
        self.stopping = False
        self.start()

    def run(self):
        while not self.stopping:
            if self.sock.poll(100, zmq.POLLIN):
                _, env = self.sock.recv_multipart()[:2]
                with self.lock:
                    # zmq-pub's new envelope prefixes the id with the year, as fedmsg does
                    mid = json.loads(env)["msg_id"]
                    self.got.append((time.monotonic(), re.sub(r"^\d{4}-", "", mid)))

    def snapshot(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.stopping = True
        self.join(10)
        self.sock.close()


class QueueReader(threading.Thread):
    """pika on node 3, consuming quorum queue QZ live: (receive time, message_id)."""

    def __init__(self, cluster, queue, node):
        super().__init__(daemon=True)
        self.conn = cluster.connection(node)
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=200)
        self.queue = queue
        self.got = []
        self.lock = threading.Lock()
        self.stopping = False
        self.error = None
        self.start()

    def run(self):
        try:
            for method, props, _ in self.ch.consume(self.queue, inactivity_timeout=0.1):
                if method is not None:
                    with self.lock:
                        self.got.append((time.monotonic(), props.message_id))
                    self.ch.basic_ack(method.delivery_tag)
                if self.stopping:
                    break
            self.ch.cancel()
            self.conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.got)


def resume_time(received, sent_at, kill_at):
    """Seconds from the kill to the arrival of the first message sent after it."""
    after = [t for t, mid in received if sent_at.get(mid, 0) > kill_at]
    return (min(after) - kill_at) if after else None


def fmt(t):
    return "never" if t is None else f"{t:.2f}"


def dupes(ids):
    return sum(c - 1 for c in collections.Counter(ids).values() if c > 1)


def main():
    cluster = Cluster()
    tmp = tempfile.mkdtemp(prefix="sy-cluster-")
    atexit.register(shutil.rmtree, tmp, True)
    qa, qz = unique("sy-cluster-a2z"), unique("sy-cluster-z2a")
    ta, tz = unique("org.example.a2z"), unique("org.example.z2a")

    # Both quorum queues declared on node 1, so node 1 leads both.
    admin = cluster.connection(1)
    ch = admin.channel()
    for q, t in ((qa, ta), (qz, tz)):
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(q, "amq.topic", t)
    admin.close()
    for q in (qa, qz):
        cluster.replicate(q)
    victim = cluster.leader(qa)
    if cluster.leader(qz) != victim:
        raise AssertionError(f"the two queues have different leaders: {victim} and {cluster.leader(qz)}")
    others = [n for n in (1, 2, 3) if n != victim]
    log(f"node {victim} leads both queues; killing it during the traffic")

    # A->Z: two instances, competing consumers of QA; the first starts on the leader.
    ports = [zmqtest.free_port(), zmqtest.free_port()]
    a2z = []
    for i, first in enumerate((victim, others[0])):
        cfg = zmqtest.write_config(tmp, f"""version: 1
pipelines:
  a2z:
    input:
      type: amqp-consume
      url: {url_list(cluster, first)}
      queue: {qa}
      queue_type: quorum
      bindings: [{{exchange: amq.topic, routing_keys: ["{ta}"]}}]
      prefetch: 20
      heartbeat: 5
    outputs:
      - {{type: zmq-pub, endpoints: ["tcp://127.0.0.1:{ports[i]}"], bind: true, username: bridge}}
""", f"a2z-{i}.yaml")
        a2z.append(zmqtest.Switchyard(["run", "--stats-interval", "1000", cfg]))
    # Z->A: one bridge publishing to amq.topic, on the leader first.
    zport = zmqtest.free_port()
    pub = zmqtest.Publisher(f"tcp://127.0.0.1:{zport}")
    cfg = zmqtest.write_config(tmp, f"""version: 1
pipelines:
  z2a:
    input: {{type: zmq-sub, endpoints: ["tcp://127.0.0.1:{zport}"], topics: [""]}}
    outputs:
      - type: amqp-publish
        url: {url_list(cluster, victim)}
        exchange: amq.topic
        message_id_mode: keep
        confirm_window: 100
        heartbeat: 5
""", "z2a.yaml")
    z2a = zmqtest.Switchyard(["run", "--stats-interval", "1000", cfg])
    procs = a2z + [z2a]
    try:
        for p in procs:
            p.wait_log(r"connected to ", timeout=60)
        pub.wait_subscription(30)
        ctx = zmq.Context()
        sinks = [ZmqSink(ctx, f"tcp://127.0.0.1:{p}") for p in ports]
        reader = QueueReader(cluster, qz, others[1])

        # Warm-up: both SUBs joined (a message through each instance), QZ reachable.
        pconn = cluster.connection(others[0])
        pch = pconn.channel()
        pch.confirm_delivery()
        w = 0
        deadline = time.monotonic() + 60
        while not all(s.snapshot() for s in sinks):
            if time.monotonic() > deadline:
                raise AssertionError("the ZeroMQ subscribers got nothing from one of the instances in 60 s")
            pch.basic_publish("amq.topic", ta, b'{"warm": true}',
                              pika.BasicProperties(delivery_mode=2, message_id=f"warm-a-{w}"))
            w += 1
            time.sleep(0.05)  # pacing of the warm-up, not synchronisation
        pub.send([tz.encode(), zmqtest.envelope(b'{"warm": true}', topic=tz, msg_id="warm-z")])
        wait_for(lambda: any(m == "warm-z" for _, m in reader.snapshot()), 30, "the Z->A warm-up message in QZ")
        warm_a = sum(len(s.snapshot()) for s in sinks)

        # The traffic, both directions, paced; node `victim` killed after BEFORE_KILL s.
        sent_a, confirmed_a, unconfirmed_a, sent_z = {}, [], [], {}
        kill_at = [None]

        def z_sender():
            i = 0
            start = time.monotonic()
            while kill_at[0] is None or time.monotonic() < kill_at[0] + AFTER_KILL:
                mid = f"z-{i:06d}"
                sent_z[mid] = time.monotonic()
                pub.send([tz.encode(), zmqtest.envelope(b'{"n": %d}' % i, topic=tz, msg_id=mid)])
                i += 1
                time.sleep(max(0.0, start + i / RATE - time.monotonic()))  # pacing

        def killer():
            time.sleep(BEFORE_KILL)  # when to inject the fault, not synchronisation
            t = time.monotonic()
            cluster.run("kill", str(victim))  # returns once the node's process is gone
            kill_at[0] = time.monotonic()
            log(f"killed node {victim} (took {kill_at[0] - t:.2f} s)")

        zt = threading.Thread(target=z_sender, daemon=True)
        kt = threading.Thread(target=killer, daemon=True)
        zt.start()
        kt.start()
        i = 0
        start = time.monotonic()
        while kill_at[0] is None or time.monotonic() < kill_at[0] + AFTER_KILL:
            mid = f"a-{i:06d}"
            sent_a[mid] = time.monotonic()
            try:
                pch.basic_publish("amq.topic", ta, json.dumps({"n": i}).encode(),
                                  pika.BasicProperties(delivery_mode=2, message_id=mid), mandatory=True)
                confirmed_a.append(mid)
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError):
                unconfirmed_a.append(mid)
            i += 1
            time.sleep(max(0.0, start + i / RATE - time.monotonic()))  # pacing
        zt.join(30)
        kt.join(30)
        pconn.close()
        log(f"A->Z: {len(sent_a)} published, {len(confirmed_a)} confirmed, {len(unconfirmed_a)} not; "
            f"Z->A: {len(sent_z)} sent")

        def a_ids():
            return [m for s in sinks for _, m in s.snapshot() if m.startswith("a-")]

        def z_ids():
            return [m for _, m in reader.snapshot() if m.startswith("z-")]

        want_a, want_z = set(confirmed_a), set(sent_z)
        try:
            wait_for(lambda: want_a <= set(a_ids()), 30, "every confirmed A->Z message at a ZeroMQ subscriber")
            wait_for(lambda: want_z <= set(z_ids()), 30, "every Z->A message in QZ")
        except AssertionError:
            log(f"missing A->Z: {len(want_a - set(a_ids()))} {sorted(want_a - set(a_ids()))[:5]}; "
                f"missing Z->A: {len(want_z - set(z_ids()))} {sorted(want_z - set(z_ids()))[:5]}")
            for p in procs:
                # The repeated warnings (nacks, retries) last, once each kind, so the rest shows.
                lines = p.stderr().splitlines()
                rare = [ln for ln in lines if "similar line" not in ln and "nacked by the broker" not in ln]
                log("---- bridge stderr (first 40 other lines, then the last 5):\n" + "\n".join(rare[:40] + lines[-5:]))
            for n in others:  # whether a new channel on a surviving node is confirmed
                try:
                    dc = cluster.connection(n)
                    dch = dc.channel()
                    dch.confirm_delivery()
                    dch.basic_publish("amq.topic", tz, b"{}", pika.BasicProperties(message_id=f"diag-{n}"), mandatory=True)
                    log(f"a new channel on node {n}: confirmed")
                    dc.close()
                except Exception as e:  # noqa: BLE001
                    log(f"a new channel on node {n}: {e!r}")
            for q in (qa, qz):
                for n in others:
                    log(f"quorum_status {q} from node {n}: " +
                        cluster.run("queues", str(n), "quorum_status", q, "--formatter", "json", "-q", check=False).stdout)
            raise
        # Duplicates still on their way are counted too: wait until nothing arrives for 2 s.
        last = [None]

        def quiet():
            n = len(a_ids()) + len(z_ids())
            if last[0] is None or last[0][0] != n:
                last[0] = (n, time.monotonic())
                return False
            return time.monotonic() - last[0][1] >= 2.0
        wait_for(quiet, 60, "the traffic to settle")
        if reader.error:
            raise AssertionError(f"the QZ reader on node {others[1]} failed: {reader.error!r}")

        got_a, got_z = a_ids(), z_ids()
        lost_a = want_a - set(got_a)
        lost_z = want_z - set(got_z)
        per_instance = [len([m for _, m in s.snapshot() if m.startswith("a-")]) for s in sinks]
        # Resumed: the first message sent after the node was gone that crossed, through any
        # A->Z instance, through the instance that was on the killed node, and Z->A.
        ra = resume_time([x for s in sinks for x in s.snapshot()], sent_a, kill_at[0])
        ra_moved = resume_time(sinks[0].snapshot(), sent_a, kill_at[0])
        rz = resume_time(reader.snapshot(), sent_z, kill_at[0])
        log(f"A->Z: {len(set(got_a))} distinct of {len(want_a)} confirmed arrived, {dupes(got_a)} duplicate(s), "
            f"per instance {per_instance} (after {warm_a} warm-up); resumed {fmt(ra)} s after the kill, through the "
            f"instance that was on the killed node {fmt(ra_moved)} s")
        log(f"Z->A: {len(set(got_z))} distinct of {len(want_z)} sent arrived, {dupes(got_z)} duplicate(s); "
            f"resumed {fmt(rz)} s after the kill")
        for p in procs:
            moved = [line for line in p.stderr().splitlines() if "connected to" in line]
            log("bridge: " + " | ".join(line[-110:] for line in moved))
        if lost_a:
            raise AssertionError(f"A->Z lost {len(lost_a)} confirmed message(s): {sorted(lost_a)[:10]}")
        if lost_z:
            raise AssertionError(f"Z->A lost {len(lost_z)} message(s): {sorted(lost_z)[:10]}")
        if not all(n > 0 for n in per_instance):
            raise AssertionError(f"both A->Z instances should have carried messages: {per_instance}")
        if ra is None or ra > RESUME_LIMIT:
            raise AssertionError(f"A->Z did not resume within {RESUME_LIMIT} s of the kill: {ra}")
        if ra_moved is None or ra_moved > RESUME_LIMIT:
            raise AssertionError(f"the A->Z instance on the killed node did not resume within {RESUME_LIMIT} s: "
                                 f"{ra_moved}")
        if rz is None or rz > RESUME_LIMIT:
            raise AssertionError(f"Z->A did not resume within {RESUME_LIMIT} s of the kill: {rz}")
        # The instances that were on the killed node moved to another one and said so.
        victim_url = cluster.urls[victim - 1].replace("guest:guest@", "guest:***@")
        for p in (a2z[0], z2a):
            lines = [line for line in p.stderr().splitlines() if "connected to amqp" in line]
            if len(lines) < 2 or victim_url in lines[-1] or victim_url not in lines[0]:
                raise AssertionError("expected a first connection to the killed node and a later one elsewhere:\n"
                                     + "\n".join(lines))
        # `check --connect` with the node still down: one line per node, the dead one FAILED.
        cfg = zmqtest.write_config(tmp, f"""version: 1
pipelines:
  a2z:
    input: {{type: amqp-consume, url: {url_list(cluster, 1)}, queue: {qa}, queue_type: quorum}}
    outputs: [{{type: stdout}}]
""", "check.yaml")
        p = subprocess.run([zmqtest.BIN, "check", "--connect", cfg], capture_output=True, text=True, timeout=60)
        lines = [line for line in p.stdout.splitlines() if "(amqp-consume): amqp://" in line]
        want = [f"amqp://guest@127.0.0.1:{cluster.ports[n - 1]}/: " + ("FAILED" if n == victim else "ok")
                for n in (1, 2, 3)]
        if p.returncode != 1 or len(lines) != 3 or any(w not in line for w, line in zip(want, lines)):
            raise AssertionError(f"check --connect with node {victim} down ({p.returncode}):\n{p.stdout}{p.stderr}")
        reader.stopping = True
        reader.join(10)
        for s in sinks:
            s.close()
        ctx.term()
        for p in procs:
            rc = p.stop(60)
            if rc != 0:
                raise AssertionError(f"a bridge exited with {rc}:\n{p.stderr()[-3000:]}")
        print(f"ok: A->Z 0 lost of {len(want_a)} confirmed ({dupes(got_a)} dup), resumed in {ra:.2f} s "
              f"(the moved instance in {ra_moved:.2f} s); "
              f"Z->A 0 lost of {len(want_z)} ({dupes(got_z)} dup), resumed in {rz:.2f} s")
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        pub.close()
        if cluster.own:
            cluster.run("stop", check=False)
        else:
            # A cluster that was running is left as it was found: all nodes up, no test queues.
            cluster.run("restart", str(victim), check=False)
            try:
                c = cluster.connection(others[0])
                for q in (qa, qz):
                    c.channel().queue_delete(q)
                c.close()
            except pika.exceptions.AMQPError as e:
                log(f"could not delete the test queues: {e!r}")


if __name__ == "__main__":
    main()
