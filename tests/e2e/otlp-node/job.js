// A short-lived job instrumented with the OpenTelemetry JS SDK (@opentelemetry/sdk-metrics),
// exporting OTLP/HTTP protobuf (@opentelemetry/exporter-metrics-otlp-proto) to the gateway
// once per run, when the run's MeterProvider shuts down.
//
//   node job.js ENDPOINT SERVICE TEMPORALITY FIRST RUNS [INSTANCE]
//
// Records what tests/e2e/otlp_job.py records (see there) for runs FIRST..FIRST+RUNS-1, with
// TEMPORALITY `cumulative` or `delta` for every instrument.
'use strict';

const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality, AggregationType } =
  require('@opentelemetry/sdk-metrics');
const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-proto');
const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');

async function run(endpoint, service, temporality, g, instance) {
  const exporter = new OTLPMetricExporter({
    url: endpoint,
    timeoutMillis: 10000,
    temporalityPreference: temporality === 'delta'
      ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
  });
  const attrs = { 'service.name': service, 'deployment.environment': 'e2e' };
  if (instance) attrs['service.instance.id'] = instance;
  const provider = new MeterProvider({
    // The SDK's own attributes (telemetry.sdk.*) plus the job's.
    resource: defaultResource().merge(resourceFromAttributes(attrs)),
    // No periodic export within a run: the only export happens at shutdown.
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3600000 })],
    views: [
      { instrumentName: 'e2e.request.duration',
        aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
                       options: { boundaries: [0.1, 1, 10] } } },
      { instrumentName: 'e2e.payload.size',
        aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } },
    ],
  });
  const meter = provider.getMeter('e2e.otlp.job', '1.0');
  meter.createCounter('e2e.jobs.processed', { unit: '{job}', description: 'Jobs processed.' })
    .add(g + 1, { 'queue.name': 'q1' });
  const depth = meter.createUpDownCounter('e2e.queue.depth', { unit: '1', description: 'Queue depth.' });
  depth.add(2);
  depth.add(-1);
  const duration = meter.createHistogram('e2e.request.duration', { unit: 's', description: 'Request duration.' });
  for (const v of [0.05, 0.5, 5]) duration.record(v);
  const size = meter.createHistogram('e2e.payload.size', { unit: 'By', description: 'Payload size.' });
  for (const v of [100, 1000]) size.record(v);
  meter.createGauge('e2e.temperature', { unit: 'Cel', description: 'Temperature.' }).record(20 + (g % 5));
  meter.createGauge('e2e.cache.hit', { unit: '1', description: 'Cache hit ratio.' }).record(0.25);
  meter.createGauge('e2e.throughput', { unit: 'By/s', description: 'Throughput.' }).record(1000);
  // shutdown() collects and exports once; a failed export makes it reject.
  await provider.shutdown();
}

async function main() {
  const [endpoint, service, temporality, first, runs, instance] = process.argv.slice(2);
  const f = Number(first);
  for (let g = f; g < f + Number(runs); g++) {
    await run(endpoint, service, temporality, g, instance || '');
  }
}

main().catch((e) => {
  console.error('job failed:', e);
  process.exit(1);
});
