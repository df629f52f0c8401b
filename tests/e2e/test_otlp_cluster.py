"""OTLP exports to a replicated gateway: delta points from jobs exporting to two replicas at once
add up exactly (the accumulating push is a compare-and-set on the NATS bucket), and every
replica serves the same sums; without NATS an export fails with 503 and Retry-After, which
OTLP clients retry.
"""

import subprocess
import sys

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from pgw_e2e import poll
from test_cluster import nats, nats_bin, replica  # noqa: F401 (fixtures)
from test_otlp_e2e import JOB, NAMES

RUNS_PER_WORKER = 25
TIMEOUT = 20.0


def sample(gw, name, job):
    for line in gw.scrape_text().splitlines():
        if line.startswith(name + "{") and 'job="%s"' % job in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_delta_exports_to_two_replicas_add_up(nats, gateway_factory):
    gws = [replica(gateway_factory, nats.nats_url, extra=["--web.enable-otlp-receiver"])
           for _ in range(2)]
    procs = []
    for k in range(4):
        endpoint = gws[k % 2].url("/api/v1/otlp/v1/metrics")
        procs.append(subprocess.Popen(
            [sys.executable, JOB, endpoint, "otlp-replicated", "delta",
             str(k * RUNS_PER_WORKER), str(RUNS_PER_WORKER)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and b"Failed to export" not in out, out.decode()[-2000:]
    runs = 4 * RUNS_PER_WORKER
    want = runs * (runs + 1) // 2
    for gw in gws:
        got = poll(lambda: sample(gw, NAMES["counter"], "otlp-replicated") == want,
                   timeout=TIMEOUT)
        assert got, (gw.address, sample(gw, NAMES["counter"], "otlp-replicated"), want)
        assert sample(gw, NAMES["histogram"] + "_count", "otlp-replicated") == 3 * runs

    # Without NATS: 503 with Retry-After and a google.rpc.Status body; nothing changes.
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "otlp-replicated"
    m = rm.scope_metrics.add().metrics.add()
    m.name = "probe"
    m.gauge.data_points.add().as_double = 1
    body = req.SerializeToString()
    nats.stop()

    def refused():
        r = gws[0].session.post(gws[0].url("/api/v1/otlp/v1/metrics"), data=body,
                                headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        return r if r.status_code == 503 else None

    r = poll(refused, timeout=TIMEOUT, interval=0.2)
    assert r is not None, "no 503 without NATS"
    assert r.headers.get("Retry-After") and r.headers["Content-Type"] == "application/x-protobuf"
    assert sample(gws[1], NAMES["counter"], "otlp-replicated") == want
    assert sample(gws[1], "probe", "otlp-replicated") is None
