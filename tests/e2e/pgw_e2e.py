"""Process and HTTP helpers for the end-to-end suite.

Everything talks to 127.0.0.1 only. Every wait is bounded in time and in
iterations.
"""

import os
import shlex
import signal
import socket
import subprocess
import time

import requests

PGW_BIN = os.environ.get("PGW_BIN", "/work/main/target/release/pushgateway")
PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
START_TIMEOUT = float(os.environ.get("PGW_START_TIMEOUT", "20"))
STOP_TIMEOUT = float(os.environ.get("PGW_STOP_TIMEOUT", "10"))
HTTP_TIMEOUT = float(os.environ.get("PGW_HTTP_TIMEOUT", "10"))


def free_port():
    """A loopback port that was free a moment ago (collisions are retried by callers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_session():
    s = requests.Session()
    s.trust_env = False  # never send loopback traffic through a proxy
    return s


def poll(fn, timeout, interval=0.1, max_iter=None):
    """Call fn() until it returns a truthy value; return it, or the last value on timeout.

    Bounded by `timeout` seconds and by `max_iter` calls.
    """
    if max_iter is None:
        max_iter = int(timeout / interval) + 10
    deadline = time.monotonic() + timeout
    result = None
    for _ in range(max_iter):
        result = fn()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return result


def eventually(fn, timeout=5.0, interval=0.05):
    """Retry fn() until it stops raising AssertionError (bounded); re-raise the last one."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 10):
        try:
            return fn()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)
    return fn()


class Process:
    """A child server process with a log file, started in its own session."""

    name = "process"

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.proc = None
        self.port = None
        self.log_path = None
        self.session = new_session()

    # subclasses: command(port) -> argv, ready_path
    ready_path = "/-/ready"

    def command(self, port):
        raise NotImplementedError

    def start(self, attempts=5):
        last_err = None
        for _ in range(attempts):
            port = free_port()
            self.log_path = os.path.join(
                self.log_dir, "%s-%d-%d.log" % (self.name, port, int(time.time() * 1000)))
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    self.command(port), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            self.port = port
            ok, last_err = self._wait_ready()
            if ok:
                return self
            self._terminate()
        raise RuntimeError("%s did not become ready: %s\n--- log ---\n%s"
                           % (self.name, last_err, self.log_tail()))

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        err = None
        for _ in range(int(START_TIMEOUT / 0.02) + 10):
            if time.monotonic() >= deadline:
                break
            if self.proc.poll() is not None:
                return False, "process exited early with code %s" % self.proc.returncode
            try:
                r = self.session.get(self.url(self.ready_path), timeout=1, allow_redirects=False)
                if r.status_code == 200:
                    # Make sure our process answered (a port collision makes it exit on bind).
                    time.sleep(0.05)
                    if self.proc.poll() is None:
                        return True, None
                    return False, "process exited right after ready (port collision?)"
                err = "ready returned %d" % r.status_code
            except requests.RequestException as e:
                err = repr(e)
            time.sleep(0.02)
        return False, "timeout after %.0fs waiting for %s (%s)" % (START_TIMEOUT, self.ready_path, err)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig`, wait for exit; SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                return None
        return self.proc.returncode

    def kill(self):
        """SIGKILL and reap."""
        return self.stop(signal.SIGKILL, timeout=5)

    def _terminate(self):
        self.stop(signal.SIGTERM, timeout=STOP_TIMEOUT)

    def close(self):
        self._terminate()
        self.session.close()

    def log_tail(self, n=80):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except (OSError, TypeError):
            return "<no log>"

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def base(self):
        return "http://%s" % self.address

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return self.session.get(self.url(path), **kw)


class Gateway(Process):
    """The gateway under test (PGW_BIN; may carry extra arguments, split with shlex)."""

    name = "pgw"

    def __init__(self, log_dir, persistence_file="", flags=()):
        super().__init__(log_dir)
        self.persistence_file = persistence_file
        self.flags = list(flags)

    def command(self, port):
        return shlex.split(PGW_BIN) + [
            "--web.listen-address=127.0.0.1:%d" % port,
            "--persistence.file=%s" % self.persistence_file,
        ] + self.flags

    def scrape_text(self):
        r = self.get("/metrics")
        assert r.status_code == 200, "scrape failed: %d %r" % (r.status_code, r.text[:500])
        return r.text

    def api_metrics(self):
        r = self.get("/api/v1/metrics")
        assert r.status_code == 200, "GET /api/v1/metrics -> %d %r" % (r.status_code, r.text[:500])
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]


class Prometheus(Process):
    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(self, log_dir, config_file, storage_dir):
        super().__init__(log_dir)
        self.config_file = config_file
        self.storage_dir = storage_dir

    def command(self, port):
        return [
            PROMETHEUS_BIN,
            "--config.file=%s" % self.config_file,
            "--storage.tsdb.path=%s" % self.storage_dir,
            "--web.listen-address=127.0.0.1:%d" % port,
            "--log.level=info",
        ]

    def query(self, expr):
        """Instant query; returns the `result` list (vector)."""
        r = self.get("/api/v1/query", params={"query": expr})
        assert r.status_code == 200, "query %r -> %d %r" % (expr, r.status_code, r.text[:500])
        body = r.json()
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        return body["data"]["result"]
