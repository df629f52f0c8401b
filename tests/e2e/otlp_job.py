"""A short-lived job instrumented with the OpenTelemetry Python SDK, exporting OTLP/HTTP
protobuf to the gateway once, when its MeterProvider shuts down.

    python3 otlp_job.py ENDPOINT SERVICE TEMPORALITY FIRST RUNS [INSTANCE]

Performs RUNS job runs numbered FIRST..FIRST+RUNS-1 (TEMPORALITY is `cumulative` or
`delta`). Each run is one job execution: a fresh MeterProvider, one of every instrument kind,
one export at the end. The last run leaves the export to the SDK's exit handler
(`shutdown_on_exit`), as a job that just ends does; the others shut their provider down
explicitly, as a job framework running several jobs in one process would.

What run g records (the e2e test computes its expectations from the same rules):
  counter            e2e.jobs.processed  {job}   add(g + 1), queue.name=q1, in a span
  up-down counter    e2e.queue.depth     1       add(2), add(-1)
  histogram          e2e.request.duration s      0.05, 0.5, 5 (buckets 0.1, 1, 10)
  exp. histogram     e2e.payload.size    By      100, 1000
  gauge              e2e.temperature     Cel     20 + g % 5
  gauge              e2e.cache.hit       1       0.25
  gauge              e2e.throughput      By/s    1000
"""

import sys

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import (
    AlwaysOnExemplarFilter, Counter, Histogram, MeterProvider, UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation, ExponentialBucketHistogramAggregation, View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def run(endpoint, service, temporality, g, instance, at_exit):
    t = {"cumulative": AggregationTemporality.CUMULATIVE,
         "delta": AggregationTemporality.DELTA}[temporality]
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        timeout=10,
        # Every kind in the chosen temporality (the SDK's "delta" preset would keep
        # up-down counters cumulative).
        preferred_temporality={Counter: t, UpDownCounter: t, Histogram: t},
    )
    # No periodic export within a run: the only export is the final one at shutdown. (An
    # infinite interval would start no export thread, and then shutdown exports nothing.)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    # The Python SDK gives every process a random service.instance.id (one group per process);
    # an explicit empty one makes all runs of the job share one group.
    attrs = {"service.name": service, "deployment.environment": "e2e",
             "service.instance.id": instance}
    provider = MeterProvider(
        resource=Resource.create(attrs),
        metric_readers=[reader],
        exemplar_filter=AlwaysOnExemplarFilter(),
        shutdown_on_exit=at_exit,
        views=[
            View(instrument_name="e2e.request.duration",
                 aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.1, 1.0, 10.0])),
            View(instrument_name="e2e.payload.size",
                 aggregation=ExponentialBucketHistogramAggregation()),
        ],
    )
    meter = provider.get_meter("e2e.otlp.job", "1.0")
    # Recorded in a sampled span: the counter's exemplar carries its trace and span ids.
    with TracerProvider().get_tracer("e2e").start_as_current_span("run"):
        meter.create_counter("e2e.jobs.processed", unit="{job}",
                             description="Jobs processed.").add(g + 1, {"queue.name": "q1"})
    depth = meter.create_up_down_counter("e2e.queue.depth", unit="1", description="Queue depth.")
    depth.add(2)
    depth.add(-1)
    duration = meter.create_histogram("e2e.request.duration", unit="s",
                                      description="Request duration.")
    for v in (0.05, 0.5, 5.0):
        duration.record(v)
    size = meter.create_histogram("e2e.payload.size", unit="By", description="Payload size.")
    for v in (100, 1000):
        size.record(v)
    meter.create_gauge("e2e.temperature", unit="Cel", description="Temperature.").set(20 + g % 5)
    meter.create_gauge("e2e.cache.hit", unit="1", description="Cache hit ratio.").set(0.25)
    meter.create_gauge("e2e.throughput", unit="By/s", description="Throughput.").set(1000)
    if not at_exit:
        # Collects and exports; a failed export is logged (the test looks for that).
        provider.shutdown()


def main():
    endpoint, service, temporality, first, runs = sys.argv[1:6]
    instance = sys.argv[6] if len(sys.argv) > 6 else ""
    first, runs = int(first), int(runs)
    for g in range(first, first + runs):
        run(endpoint, service, temporality, g, instance, at_exit=(g == first + runs - 1))


if __name__ == "__main__":
    main()
