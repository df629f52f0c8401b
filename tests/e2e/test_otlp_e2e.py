"""OpenTelemetry jobs push to the gateway's OTLP receiver; a real Prometheus scrapes it.

Short-lived jobs instrumented with the real OpenTelemetry Python SDK (`otlp_job.py`,
exporting OTLP/HTTP protobuf once per run, at shutdown or process exit) record a counter, an
up-down counter, a histogram, an exponential histogram and gauges: 200 runs with cumulative
temporality (4 processes, one `service.instance.id` each) and 200 with delta temporality (4
processes of one service without an instance id). Prometheus (with native histograms and
exemplar storage) must see the names Prometheus' own OTLP translation gives, the last
cumulative values, and the delta counts summed.
"""

import os
import subprocess
import sys

import pytest

from pgw_e2e import Prometheus, poll

pytestmark = pytest.mark.prometheus

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "otlp_job.py")
WORKERS = 4
RUNS_PER_WORKER = 50
RUNS = WORKERS * RUNS_PER_WORKER
JOB_TIMEOUT = 120
ARRIVAL_TIMEOUT = 30.0

# The Prometheus names of what otlp_job.py records, each traced to the rule of
# github.com/prometheus/otlptranslator (v1.0.0, used by Prometheus 3) that makes it, under
# the default UnderscoreEscapingWithSuffixes strategy.
NAMES = {
    # Counter "e2e.jobs.processed", unit "{job}": the name is split into tokens at characters
    # outside [a-zA-Z0-9:] (normalizeName), a unit in braces is an annotation and adds no
    # suffix (buildUnitSuffixes), a monotonic sum gets "total" as its last token.
    "counter": "e2e_jobs_processed_total",
    # UpDownCounter "e2e.queue.depth", unit "1": a non-monotonic sum is a gauge
    # (otelMetricTypeToPromMetricType) but of MetricTypeNonMonotonicCounter, so no "_total";
    # unit "1" maps to no unit word, and "_ratio" is only added for MetricTypeGauge.
    "updown": "e2e_queue_depth",
    # Histogram "e2e.request.duration", unit "s": unitMap "s" -> "seconds"; explicit buckets
    # become a classic histogram (_bucket/_sum/_count, addHistogramDataPoints).
    "histogram": "e2e_request_duration_seconds",
    # Exponential histogram "e2e.payload.size", unit "By": unitMap "By" -> "bytes"; a native
    # histogram (addExponentialHistogramDataPoints).
    "exponential": "e2e_payload_size_bytes",
    # Gauge "e2e.temperature", unit "Cel": unitMap "Cel" -> "celsius".
    "gauge": "e2e_temperature_celsius",
    # Gauge "e2e.cache.hit", unit "1": a gauge with unit "1" gets "_ratio".
    "ratio": "e2e_cache_hit_ratio",
    # Gauge "e2e.throughput", unit "By/s": main unit "bytes", "/s" -> perUnitMap "second"
    # as "per_second" (addUnitTokens).
    "per_unit": "e2e_throughput_bytes_per_second",
    # Resource attributes other than service.name/namespace/instance.id
    # (addResourceTargetInfo); "deployment.environment" -> label "deployment_environment".
    "target_info": "target_info",
}

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


def run_jobs(endpoint, service, temporality, instances):
    """WORKERS job processes of RUNS_PER_WORKER runs each, in parallel; bounded in time."""
    procs = []
    for k in range(WORKERS):
        argv = [sys.executable, JOB, endpoint, service, temporality,
                str(k * RUNS_PER_WORKER), str(RUNS_PER_WORKER)]
        if instances:
            argv.append("w%d" % k)
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    failures = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=JOB_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            failures.append("timed out: %s" % out.decode(errors="replace")[-2000:])
            continue
        text = out.decode(errors="replace")
        # The exporter logs failed exports (and partial successes) instead of raising.
        if p.returncode != 0 or "Failed to export" in text or "partial" in text.lower():
            failures.append("exit %s: %s" % (p.returncode, text[-2000:]))
    assert not failures, "\n".join(failures)


@pytest.fixture
def otlp_gateway(gateway_factory):
    return gateway_factory(flags=["--web.enable-otlp-receiver"])


@pytest.fixture
def prometheus(prometheus_bin, otlp_gateway, tmp_path, log_dir, processes):
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.format(target=otlp_gateway.address))
    storage = tmp_path / "tsdb"
    storage.mkdir()

    class NativePrometheus(Prometheus):
        def command(self, port):
            return super().command(port) + [
                "--enable-feature=native-histograms,exemplar-storage"]

    p = NativePrometheus(log_dir, str(cfg), str(storage))
    processes.append(p)
    return p.start()


def value_of(prom, expr, want):
    """Poll until `expr` has exactly one sample equal to `want` (bounded); return it."""
    last = []

    def check():
        nonlocal last
        last = prom.query(expr)
        return len(last) == 1 and float(last[0]["value"][1]) == want

    ok = poll(check, timeout=ARRIVAL_TIMEOUT, interval=0.25)
    assert ok, "%s: want %r, last result %r" % (expr, want, last)
    return last[0]


def test_python_sdk_jobs_cumulative_and_delta(otlp_gateway, prometheus):
    endpoint = otlp_gateway.url("/api/v1/otlp/v1/metrics")
    run_jobs(endpoint, "otlp-cumulative", "cumulative", instances=True)
    run_jobs(endpoint, "otlp-delta", "delta", instances=False)
    n = NAMES

    # Cumulative: every run exports what it recorded since it started, so each worker's
    # group holds its last run (g = k*50 + 49).
    for k in range(WORKERS):
        last_g = k * RUNS_PER_WORKER + RUNS_PER_WORKER - 1
        sel = '{job="otlp-cumulative",instance="w%d"}' % k
        s = value_of(prometheus, n["counter"] + sel, last_g + 1)
        assert s["metric"]["queue_name"] == "q1", s
        value_of(prometheus, n["updown"] + sel, 1)
        value_of(prometheus, n["histogram"] + "_count" + sel, 3)
        value_of(prometheus, n["gauge"] + sel, 20 + last_g % 5)
        value_of(prometheus, "histogram_count(%s%s)" % (n["exponential"], sel), 2)

    # Delta: the 200 runs add up in one group (no instance id).
    sel = '{job="otlp-delta",instance=""}'
    value_of(prometheus, n["counter"] + sel, RUNS * (RUNS + 1) // 2)
    value_of(prometheus, n["updown"] + sel, RUNS)
    value_of(prometheus, n["histogram"] + "_count" + sel, 3 * RUNS)
    value_of(prometheus, n["histogram"] + "_sum" + sel, pytest.approx(5.55 * RUNS))
    value_of(prometheus, '%s_bucket{job="otlp-delta",le=~"1(\\\\.0)?"}' % n["histogram"],
             2 * RUNS)
    value_of(prometheus, "histogram_count(%s%s)" % (n["exponential"], sel), 2 * RUNS)
    value_of(prometheus, "histogram_sum(%s%s)" % (n["exponential"], sel), 1100 * RUNS)
    # A gauge is last-value-wins: one of the values the runs set.
    value_of(prometheus, "count(%s%s)" % (n["gauge"], sel), 1)
    t = float(prometheus.query(n["gauge"] + sel)[0]["value"][1])
    assert t in {20, 21, 22, 23, 24}, t

    # Names from units and types, and target_info, for both jobs.
    for job in ("otlp-cumulative", "otlp-delta"):
        value_of(prometheus, 'count(%s{job="%s"})' % (n["ratio"], job),
                 WORKERS if job == "otlp-cumulative" else 1)
        value_of(prometheus, 'max(%s{job="%s"})' % (n["ratio"], job), 0.25)
        value_of(prometheus, 'max(%s{job="%s"})' % (n["per_unit"], job), 1000)
        ti = value_of(prometheus, 'max by (deployment_environment, telemetry_sdk_language) '
                      '(%s{job="%s"})' % (n["target_info"], job), 1)
        assert ti["metric"] == {"deployment_environment": "e2e",
                                "telemetry_sdk_language": "python"}, ti

    # Every series of the jobs carries one of the expected names, nothing else.
    got = {s["metric"]["__name__"] for s in prometheus.query('{job=~"otlp-.*"}')}
    want = {n["counter"], n["updown"], n["gauge"], n["ratio"], n["per_unit"],
            n["target_info"], n["exponential"], n["histogram"] + "_bucket",
            n["histogram"] + "_sum", n["histogram"] + "_count",
            "push_time_seconds", "push_failure_time_seconds"}
    assert got == want, got ^ want

    # Exemplars (the SDK's AlwaysOn filter) reach Prometheus through the protobuf scrape.
    r = prometheus.get("/api/v1/query_exemplars", params={
        "query": n["counter"] + '{job="otlp-cumulative"}', "start": "0", "end": "9999999999"})
    assert r.status_code == 200, r.text
    exemplars = [e for s in r.json()["data"] for e in s["exemplars"]]
    assert exemplars, r.json()
    # The run's span: trace_id (32 hex digits) and span_id (16), as getPromExemplars sets them.
    labels = exemplars[-1]["labels"]
    assert len(labels.get("trace_id", "")) == 32 and len(labels.get("span_id", "")) == 16, labels
