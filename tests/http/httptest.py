"""Shared helpers of the http-in tests: a throw-away PKI made with openssl, `switchyard run`
on a config, and an HTTP(S) client (Debian's python3 http.client and ssl) that returns
(status, headers, parsed JSON body). Nothing here is committed key material: every key is
made in a temp dir by the test that uses it."""
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import free_port, parse_stats, wait_for  # noqa: E402,F401 (also for importers)

BIN = os.environ.get("SWITCHYARD_BIN", "")
TOKEN_CI = "ci-token-0123456789abcdef0123456789"
TOKEN_OPS = "ops-token-fedcba9876543210fedcba98"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.crt signs server.crt (127.0.0.1) and client.crt (CN ci-runner); rogue-ca.crt signs
    rogue.crt (also CN ci-runner, so only the CA tells them apart)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN={ca}",
                "-days", "2", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name, cn, ca, ext in (("server", "127.0.0.1", "ca", True), ("client", "ci-runner", "ca", False),
                              ("rogue", "ci-runner", "rogue-ca", False)):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                *(["-extfile", "san.ext"] if ext else []), cwd=d)
    return d


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    return d


class Router:
    """`switchyard run CONFIG` with its stderr in a file."""

    def __init__(self, config, tmp, env=None):
        assert BIN, "SWITCHYARD_BIN is not set (run the tests through meson)"
        self.cfg = os.path.join(tmp, "pipeline.yaml")
        with open(self.cfg, "w") as f:
            f.write(config)
        self.out_path = os.path.join(tmp, "stdout.jsonl")
        self.err_path = os.path.join(tmp, "stderr.log")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([BIN, "run", "--stats-interval", "1000", self.cfg],
                                     stdout=self.out, stderr=self.err, env=dict(os.environ, **(env or {})))

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self):
        with open(self.out_path, "rb") as f:
            return [json.loads(x) for x in f.read().split(b"\n") if x]

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"switchyard did not exit within {timeout}s\n{self.stderr()[-3000:]}")
        self.out.close()
        self.err.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def counters(self, pipeline, plugin="http-in"):
        """Final counters of a plugin instance of @pipeline: {(name, label): value}, last
        value wins."""
        res = {}
        for pipe, who, name, label, value in parse_stats(self.stderr()):
            if pipe == pipeline and plugin in who:
                res[(name, label)] = value
        return res


class Client:
    """One request per connection, like a sender behind a firewall would do."""

    def __init__(self, port, pki=None, cert=None, token=None, timeout=30):
        self.port, self.token, self.timeout = port, token, timeout
        self.ctx = None
        if pki is not None:
            self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
            if cert:
                self.ctx.load_cert_chain(os.path.join(pki, f"{cert}.crt"), os.path.join(pki, f"{cert}.key"))

    def request(self, method, path, body=b"", ctype="application/json", token=None, headers=None):
        if self.ctx is not None:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=self.timeout)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        h = {"Content-Type": ctype} if ctype else {}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        h.update(headers or {})
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            try:
                doc = json.loads(data) if data else None
            except ValueError:
                doc = {"raw": data.decode("utf-8", "replace")}
            return r.status, dict(r.getheaders()), doc
        finally:
            c.close()

    def post(self, msg, **kw):
        body = msg if isinstance(msg, (bytes, str)) else json.dumps(msg)
        return self.request("POST", "/v1/messages", body=body, **kw)

    def post_lines(self, msgs, **kw):
        body = "".join(json.dumps(m) + "\n" for m in msgs)
        return self.request("POST", "/v1/messages", body=body, ctype="application/x-ndjson", **kw)

    def ready(self, timeout=20):
        def up():
            try:
                return self.request("GET", "/v1/health", ctype=None)[0] == 200
            except (OSError, http.client.HTTPException):
                return False
        wait_for(up, timeout, f"http-in listening on 127.0.0.1:{self.port}")


def expect(got, status, error=None, detail_has=None):
    st, _, doc = got
    assert st == status, f"expected HTTP {status}, got {st}: {doc}"
    if error is not None:
        assert doc and doc.get("error") == error, f"expected error {error!r}: {doc}"
    if detail_has is not None:
        assert detail_has in doc.get("detail", ""), f"expected {detail_has!r} in the detail: {doc}"
    return doc


def cleanup(d):
    shutil.rmtree(d, ignore_errors=True)


def deadline(seconds):
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end
