"""The OpenTelemetry JS SDK pushes to the gateway's OTLP receiver.

`otlp-node/job.js` (@opentelemetry/sdk-metrics with @opentelemetry/exporter-metrics-otlp-proto,
installed by `npm ci` from the committed package-lock.json) records what `otlp_job.py` records,
20 runs cumulative (2 processes, one `service.instance.id` each) and 20 runs delta (2 processes,
no instance id). The gateway's scrape must carry the names of test_otlp_e2e.NAMES (Prometheus'
translation), the last cumulative values and the delta sums.
"""

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_otlp_e2e import NAMES

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "otlp-node")
WORKERS = 2
RUNS_PER_WORKER = 10
RUNS = WORKERS * RUNS_PER_WORKER
JOB_TIMEOUT = 120


def run_node_jobs(endpoint, service, temporality, instances):
    procs = []
    for k in range(WORKERS):
        argv = ["node", "job.js", endpoint, service, temporality,
                str(k * RUNS_PER_WORKER), str(RUNS_PER_WORKER)]
        if instances:
            argv.append("n%d" % k)
        procs.append(subprocess.Popen(argv, cwd=NODE_DIR, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    failures = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=JOB_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        if p.returncode != 0:
            failures.append("exit %s: %s" % (p.returncode, out.decode(errors="replace")[-2000:]))
    assert not failures, "\n".join(failures)


def samples(gateway):
    """{(sample name, frozenset(labels)): value} of the gateway's text scrape."""
    out = {}
    for fam in text_string_to_metric_families(gateway.scrape_text()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def one(all_samples, name, **labels):
    """The value of the one sample `name` whose labels include `labels`."""
    hits = [v for (n, ls), v in all_samples.items()
            if n == name and set(labels.items()) <= set(ls)]
    assert len(hits) == 1, "%s%r: %r" % (name, labels, hits)
    return hits[0]


def test_node_sdk_jobs_cumulative_and_delta(gateway_factory):
    if shutil.which("node") is None:
        pytest.fail("node not found (.ci/run installs nodejs)", pytrace=False)
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@opentelemetry", "sdk-metrics")):
        pytest.fail("run `npm ci` in %s (.ci/run does)" % NODE_DIR, pytrace=False)
    gw = gateway_factory(flags=["--web.enable-otlp-receiver"])
    endpoint = gw.url("/api/v1/otlp/v1/metrics")
    run_node_jobs(endpoint, "node-cumulative", "cumulative", instances=True)
    run_node_jobs(endpoint, "node-delta", "delta", instances=False)
    s = samples(gw)
    n = NAMES

    for k in range(WORKERS):
        last_g = k * RUNS_PER_WORKER + RUNS_PER_WORKER - 1
        sel = {"job": "node-cumulative", "instance": "n%d" % k}
        assert one(s, n["counter"], queue_name="q1", **sel) == last_g + 1
        assert one(s, n["updown"], **sel) == 1
        assert one(s, n["histogram"] + "_count", **sel) == 3
        assert one(s, n["histogram"] + "_bucket", le="1", **sel) == 2
        assert one(s, n["gauge"], **sel) == 20 + last_g % 5
        # A native histogram has only its count and sum in the text format.
        assert one(s, n["exponential"] + "_count", **sel) == 2
        assert one(s, n["ratio"], **sel) == 0.25
        assert one(s, n["per_unit"], **sel) == 1000

    sel = {"job": "node-delta", "instance": ""}
    assert one(s, n["counter"], **sel) == RUNS * (RUNS + 1) // 2
    # The JS exporter's delta preference keeps up-down counters cumulative (as the OTel
    # specification says): every run exports 1, the last one wins.
    assert one(s, n["updown"], **sel) == 1
    assert one(s, n["histogram"] + "_count", **sel) == 3 * RUNS
    assert one(s, n["histogram"] + "_bucket", le="0.1", **sel) == RUNS
    assert one(s, n["histogram"] + "_sum", **sel) == pytest.approx(5.55 * RUNS)
    assert one(s, n["exponential"] + "_count", **sel) == 2 * RUNS
    assert one(s, n["exponential"] + "_sum", **sel) == 1100 * RUNS
    assert one(s, n["gauge"], **sel) in {20, 21, 22, 23, 24}

    for job in ("node-cumulative", "node-delta"):
        ti = [dict(ls) for (name, ls) in s if name == n["target_info"] and ("job", job) in ls]
        assert ti and all(t["deployment_environment"] == "e2e"
                          and t["telemetry_sdk_language"] == "nodejs" for t in ti), ti

    got = {name for (name, ls) in s if dict(ls).get("job", "").startswith("node-")}
    want = {n["counter"], n["updown"], n["gauge"], n["ratio"], n["per_unit"], n["target_info"],
            n["histogram"] + "_bucket", n["histogram"] + "_sum", n["histogram"] + "_count",
            n["exponential"] + "_bucket", n["exponential"] + "_sum",
            n["exponential"] + "_count", "push_time_seconds", "push_failure_time_seconds"}
    assert got == want, got ^ want
