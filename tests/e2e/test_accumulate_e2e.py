"""Accumulating groups with real clients, a real Prometheus and real replicas.

1,000 "invocations" of a serverless-style job from 16 concurrent workers, each with the real
Python prometheus_client and a fresh registry (a counter incremented by a random amount,
histogram observations, a gauge), pushed with push_to_gateway to
http://127.0.0.1:PORT/accumulate, plus the real Go client (Debian's client_golang, built in
GOPATH mode, offline) pushing with push.New(...).Add(). Every push carries an
Idempotency-Key and is retried with it on failure, as the docs recommend. A real Prometheus
must see exactly the sums; after a SIGKILL and a restart on the same --persistence.file
the sums are unchanged. Then the same against three replicas on one NATS JetStream bucket:
exact sums on every replica, and an Idempotency-Key retried on another replica counts once.

Amounts are multiples of 1/4 so that float sums are exact in any order.
"""

import json
import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway
from prometheus_client.exposition import default_handler
from prometheus_client.parser import text_string_to_metric_families

from pgw_e2e import Gateway, Prometheus, poll
from test_cluster import NatsServer, nats_bin, replica  # noqa: F401 (fixture)

INVOCATIONS = 1000
WORKERS = 16
GO_INVOCATIONS = 200
BOUNDS = (0.1, 0.5, 1.0, 5.0)
JOB = "lambda"
HERE = os.path.dirname(os.path.abspath(__file__))
RULES = "- match: '{job=\"%s\"}'\n  gauges: max\n" % JOB


class Totals:
    """What the clients pushed successfully, in total."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counter = 0.0
        self.count = 0
        self.sum = 0.0
        self.buckets = {b: 0 for b in BOUNDS}
        self.gauge_max = 0.0

    def add(self, inc, observations, gauge):
        with self.lock:
            self.counter += inc
            for v in observations:
                self.count += 1
                self.sum += v
                for b in BOUNDS:
                    if v <= b:
                        self.buckets[b] += 1
            self.gauge_max = max(self.gauge_max, gauge)

    def add_go(self, t):
        with self.lock:
            self.counter += t["counter"]
            self.count += t["count"]
            self.sum += t["sum"]
            for b in BOUNDS:
                self.buckets[b] += t["buckets"][_go_bound(b)]
            self.gauge_max = max(self.gauge_max, t["gauge_max"])

    def expected(self):
        """{(name, le): value} as a scrape shows them."""
        out = {
            ("acc_requests_total", None): self.counter,
            ("acc_duration_seconds_count", None): float(self.count),
            ("acc_duration_seconds_sum", None): self.sum,
            ("acc_duration_seconds_bucket", float("inf")): float(self.count),
            ("acc_batch_size", None): self.gauge_max,
        }
        for b in BOUNDS:
            out[("acc_duration_seconds_bucket", b)] = float(self.buckets[b])
        return out


def _go_bound(b):
    return "%g" % b


def _key(name, le):
    """A sample's key: its name and its `le` as a float (Prometheus 3 normalizes `le`)."""
    return (name, None if le is None else float(le))


def keyed_handler(key):
    """A push_to_gateway handler that sends an Idempotency-Key."""

    def handler(url, method, timeout, headers, data):
        return default_handler(url, method, timeout, list(headers) + [("Idempotency-Key", key)],
                               data)

    return handler


def invoke(urls, i, totals, failures, retries):
    """One invocation: a fresh registry, pushed to urls[i % len(urls)] + /accumulate."""
    rnd = random.Random(i)
    reg = CollectorRegistry()
    c = Counter("acc_requests", "Requests handled.", registry=reg)
    h = Histogram("acc_duration_seconds", "Handling time.", buckets=BOUNDS, registry=reg)
    g = Gauge("acc_batch_size", "Batch size.", registry=reg)
    inc = rnd.randint(1, 40) / 4
    c.inc(inc)
    obs = [rnd.randint(0, 31) / 4 for _ in range(rnd.randint(1, 3))]
    for v in obs:
        h.observe(v)
    size = float(rnd.randint(0, 999))
    g.set(size)
    url = urls[i % len(urls)] + "/accumulate"
    handler = keyed_handler("py-%s" % uuid.uuid4())
    for attempt in range(5):
        try:
            push_to_gateway(url, job=JOB, registry=reg, handler=handler, timeout=10)
            totals.add(inc, obs, size)
            return
        except Exception as e:  # retried with the same key
            err = e
            retries.append(repr(e))
            time.sleep(0.05 * (attempt + 1))
    failures.append(repr(err))


@pytest.fixture(scope="module")
def go_client(tmp_path_factory):
    """The Go client program, built once (GOPATH mode against Debian's sources, offline)."""
    go = shutil.which("go")
    gopath = "/usr/share/gocode"
    if not go or not os.path.isdir(gopath + "/src/github.com/prometheus/client_golang"):
        pytest.fail("go and Debian's client_golang sources are needed (apt-get install "
                    "golang-go golang-github-prometheus-client-golang-dev; .ci/run does)",
                    pytrace=False)
    out = str(tmp_path_factory.mktemp("go") / "go_accumulate")
    env = dict(os.environ, GOPATH=gopath, GO111MODULE="off", GOFLAGS="", GOPROXY="off")
    if not os.access(os.path.expanduser("~"), os.W_OK):
        env["GOCACHE"] = str(tmp_path_factory.mktemp("gocache"))
    subprocess.run([go, "build", "-o", out, "."], cwd=os.path.join(HERE, "go_accumulate"),
                   env=env, check=True, timeout=300)
    return out


def run_load(urls, go_client, totals):
    """Python and Go invocations at the same time; returns the failures."""
    failures, retries = [], []
    go = subprocess.Popen(
        [go_client, "-n", str(GO_INVOCATIONS), "-workers", str(WORKERS), "-key",
         "-seed", str(random.randint(1, 1 << 30))] + [u + "/accumulate" for u in urls],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda i: invoke(urls, i, totals, failures, retries),
                      range(INVOCATIONS)))
    out, err = go.communicate(timeout=120)
    assert go.returncode == 0, err.decode()
    t = json.loads(out)
    assert t["failures"] == 0, err.decode()
    totals.add_go(t)
    print("%d Python pushes retried (with their key)%s; Go stderr: %r" % (
        len(retries), ": %s" % retries[:3] if retries else "", err.decode()[:300]))
    return failures


def scraped(gw):
    """{(name, le): value} of the job's acc_* samples in a gateway scrape."""
    out = {}
    for fam in text_string_to_metric_families(gw.scrape_text()):
        for s in fam.samples:
            if s.name.startswith("acc_") and s.labels.get("job") == JOB \
                    and not s.name.endswith("_created"):
                out[_key(s.name, s.labels.get("le"))] = s.value
    return out


def assert_sums(got, totals):
    want = totals.expected()
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    assert not missing, "expected %r, got %r" % (
        missing, {k: got.get(k) for k in missing})


CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['{target}']
"""


@pytest.mark.prometheus
def test_serverless_invocations_add_up_in_prometheus_and_survive_sigkill(
        gateway_factory, go_client, prometheus_bin, tmp_path, log_dir, processes):
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    db = str(tmp_path / "pgw.db")
    gw = gateway_factory(persistence_file=db, flags=["--push.rules=%s" % rules])
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.replace("{target}", gw.address))
    storage = tmp_path / "tsdb"
    storage.mkdir()
    prom = Prometheus(log_dir, str(cfg), str(storage))
    processes.append(prom)
    prom.start()

    totals = Totals()
    failures = run_load([gw.base], go_client, totals)
    assert not failures, failures[:5]
    assert_sums(scraped(gw), totals)

    # Prometheus sees exactly the sums (after its next scrape).
    want = totals.expected()

    def prometheus_has_sums():
        got = {}
        for r in prom.query('{__name__=~"acc_.*",job="%s"}' % JOB):
            m = r["metric"]
            if m["__name__"].endswith("_created"):
                continue
            got[_key(m["__name__"], m.get("le"))] = float(r["value"][1])
        return all(got.get(k) == v for k, v in want.items()), got

    ok = poll(lambda: prometheus_has_sums()[0], timeout=30, interval=0.5)
    assert ok, "Prometheus: want %r, got %r" % (want, prometheus_has_sums()[1])
    assert float(prom.query('acc_requests_total{job="%s"}' % JOB)[0]["value"][1]) == \
        totals.counter

    # SIGKILL, restart on the same file: the sums are unchanged.
    gw.kill()
    gw2 = gateway_factory(persistence_file=db, flags=["--push.rules=%s" % rules])
    assert_sums(scraped(gw2), totals)


def test_three_replicas_on_nats_add_up_exactly(nats_bin, gateway_factory, go_client,  # noqa: F811
                                               tmp_path, log_dir, processes):
    n = NatsServer(log_dir, str(tmp_path / "js"))
    processes.append(n)
    n.start()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    gws = [replica(gateway_factory, n.nats_url, extra=["--push.rules=%s" % rules])
           for _ in range(3)]
    totals = Totals()
    failures = run_load([g.base for g in gws], go_client, totals)
    assert not failures, failures[:5]
    for g in gws:
        ok = poll(lambda: all(scraped(g).get(k) == v for k, v in totals.expected().items()),
                  timeout=20, interval=0.2)
        if not ok:
            assert_sums(scraped(g), totals)

    # An Idempotency-Key seen by one replica is honoured by the others (it is part of the
    # group's compare-and-set record): a retry sent to another replica adds nothing.
    body = "# TYPE acc_requests_total counter\nacc_requests_total 0.5\n"
    for g in gws:
        r = g.session.post(g.url("/accumulate/metrics/job/%s" % JOB), data=body,
                           headers={"Idempotency-Key": "retried-everywhere"}, timeout=10)
        assert r.status_code == 200, r.text
    totals.counter += 0.5
    for g in gws:
        ok = poll(lambda: scraped(g).get(_key("acc_requests_total", None)) == totals.counter,
                  timeout=20, interval=0.2)
        assert ok, (scraped(g).get(_key("acc_requests_total", None)), totals.counter)
