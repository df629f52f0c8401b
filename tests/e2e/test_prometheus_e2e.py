"""A real Prometheus scrapes the gateway with honor_labels: true.

Pushed series must arrive in Prometheus with the job/instance labels of the
push (not the scrape job's `pushgateway` / the gateway's address), with the
pushed values, together with push_time_seconds; a DELETE makes them go stale.
"""

import time

import pytest
from prometheus_client import (
    CollectorRegistry, Counter, Gauge, delete_from_gateway, push_to_gateway,
)

from pgw_e2e import Prometheus, poll

SCRAPE_JOB = "pushgateway"
ARRIVAL_TIMEOUT = 30.0

pytestmark = pytest.mark.prometheus

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    honor_labels: true
    metrics_path: /metrics
    static_configs:
      - targets: ['{target}']
"""


@pytest.fixture
def prometheus(prometheus_bin, gateway, tmp_path, log_dir, processes):
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.format(job=SCRAPE_JOB, target=gateway.address))
    storage = tmp_path / "tsdb"
    storage.mkdir()
    p = Prometheus(log_dir, str(cfg), str(storage))
    processes.append(p)
    return p.start()


def by_job(result):
    out = {}
    for r in result:
        job = r["metric"].get("job")
        assert job not in out, "two series for job %r: %r" % (job, result)
        out[job] = r
    return out


def wait_for(prom, expr, want_jobs):
    """Poll an instant query until it returns series for all `want_jobs` (bounded)."""
    last = []

    def check():
        nonlocal last
        last = prom.query(expr)
        return want_jobs <= {r["metric"].get("job") for r in last}

    ok = poll(check, timeout=ARRIVAL_TIMEOUT, interval=0.25)
    assert ok, "%s: series for %s did not arrive within %.0fs; last result %r" % (
        expr, sorted(want_jobs), ARRIVAL_TIMEOUT, last)
    return by_job(last)


def test_prometheus_scrape_keeps_pushed_job_and_instance(gateway, prometheus):
    reg_a = CollectorRegistry()
    Gauge("e2e_records_processed", "Records processed by the batch.", registry=reg_a).set(1234)
    Counter("e2e_batch_errors", "Errors in the batch.", ["kind"], registry=reg_a).labels(
        kind="io").inc(2)
    reg_b = CollectorRegistry()
    Gauge("e2e_records_processed", "Records processed by the batch.", registry=reg_b).set(99.5)

    t0 = time.time()
    push_to_gateway(gateway.address, job="batch_a", registry=reg_a, grouping_key={"instance": "i1"})
    push_to_gateway(gateway.address, job="batch_b", registry=reg_b)
    t1 = time.time()

    # The scrape itself works and belongs to the scrape job.
    up = wait_for(prometheus, 'up{job="%s"}' % SCRAPE_JOB, {SCRAPE_JOB})
    assert up[SCRAPE_JOB]["metric"]["instance"] == gateway.address
    assert float(up[SCRAPE_JOB]["value"][1]) == 1.0, up

    got = wait_for(prometheus, "e2e_records_processed", {"batch_a", "batch_b"})
    assert set(got) == {"batch_a", "batch_b"}, got
    # honor_labels: the pushed labels win; no exported_* labels; the empty
    # instance of batch_b means "no instance label", not the gateway's address.
    assert got["batch_a"]["metric"] == {
        "__name__": "e2e_records_processed", "job": "batch_a", "instance": "i1"}
    assert got["batch_b"]["metric"] == {"__name__": "e2e_records_processed", "job": "batch_b"}
    assert float(got["batch_a"]["value"][1]) == 1234.0
    assert float(got["batch_b"]["value"][1]) == 99.5

    errors = wait_for(prometheus, "e2e_batch_errors_total", {"batch_a"})
    assert errors["batch_a"]["metric"] == {
        "__name__": "e2e_batch_errors_total", "job": "batch_a", "instance": "i1", "kind": "io"}
    assert float(errors["batch_a"]["value"][1]) == 2.0

    pt = wait_for(prometheus, 'push_time_seconds{job="batch_a"}', {"batch_a"})
    assert pt["batch_a"]["metric"] == {
        "__name__": "push_time_seconds", "job": "batch_a", "instance": "i1"}
    v = float(pt["batch_a"]["value"][1])
    assert t0 - 1 <= v <= t1 + 1, "push_time_seconds %r not within [%r, %r]" % (v, t0, t1)
    assert abs(v - time.time()) < ARRIVAL_TIMEOUT + 5

    # Nothing was ingested under the scrape job's name.
    assert prometheus.query('e2e_records_processed{job="%s"}' % SCRAPE_JOB) == []
    assert prometheus.query('{exported_job!=""}') == []

    # DELETE: the group disappears from the next scrape, so its series go stale.
    delete_from_gateway(gateway.address, job="batch_b")

    def gone():
        return prometheus.query('e2e_records_processed{job="batch_b"}') == []

    assert poll(gone, timeout=ARRIVAL_TIMEOUT, interval=0.25), \
        "batch_b still in Prometheus after DELETE: %r" % prometheus.query(
            'e2e_records_processed{job="batch_b"}')
    still = prometheus.query('e2e_records_processed{job="batch_a"}')
    assert len(still) == 1 and float(still[0]["value"][1]) == 1234.0, still

