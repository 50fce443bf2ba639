import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The engine's Prometheus metrics, on their own registry. */
export class Metrics {
  readonly registry = new Registry();
  readonly events = new Counter({
    name: 'cx_events_total',
    help: 'Events applied by the workers',
    registers: [this.registry],
  });
  readonly triggers = new Counter({
    name: 'cx_triggers_total',
    help: 'Triggers fired, per rule',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });
  readonly ruleErrors = new Counter({
    name: 'cx_rule_errors_total',
    help: 'Rule expressions that failed at run time (counted as false), per rule; the first message of each rule is logged once',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });
  readonly lateEvents = new Counter({
    name: 'cx_late_events_total',
    help: 'Events that arrived behind their partition watermark (beyond engine.allowedLatenessMs)',
    registers: [this.registry],
  });
  readonly sinkRetries = new Counter({
    name: 'cx_sink_retries_total',
    help: 'NATS sink calls retried (a broker outage is ridden through up to nats.maxOutageMs)',
    labelNames: ['sink'] as const,
    registers: [this.registry],
  });
  readonly workerRestarts = new Counter({
    name: 'cx_worker_restarts_total',
    help: 'Partition worker threads restarted in place from their last checkpoint',
    labelNames: ['partition'] as const,
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'cx_dead_letters_total',
    help: 'Events sent to the dead-letter subject',
    registers: [this.registry],
  });
  readonly profiles = new Counter({
    name: 'cx_profiles_published_total',
    help: 'Profile snapshots published',
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'cx_batch_seconds',
    help: 'Time from a batch leaving the router to its outputs accepted by every sink',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'cx_in_flight_events',
    help: 'Events pulled from the source and not yet acked',
    registers: [this.registry],
  });
  readonly checkpointSeconds = new Histogram({
    name: 'cx_checkpoint_seconds',
    help: 'Time of a checkpoint: encode every partition, wait for its outputs, store durably',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly checkpointBytes = new Gauge({
    name: 'cx_checkpoint_bytes',
    help: 'Size of the latest checkpoint (all partitions)',
    registers: [this.registry],
  });
  readonly checkpointTime = new Gauge({
    name: 'cx_checkpoint_timestamp_seconds',
    help: 'Wall-clock time of the latest checkpoint (checkpoint age = now - this)',
    registers: [this.registry],
  });
  readonly clickhouseBufferedRows = new Gauge({
    name: 'cx_clickhouse_buffered_rows',
    help: 'Rows queued for ClickHouse and not yet inserted (back-pressure at clickhouse.maxBufferedRows)',
    registers: [this.registry],
  });
  readonly clickhouseFailures = new Counter({
    name: 'cx_clickhouse_insert_failures_total',
    help: 'ClickHouse insert attempts that failed (each is retried with back-off)',
    registers: [this.registry],
  });
  readonly lag = new Gauge({
    name: 'cx_source_pending_events',
    help: 'Events in the stream not yet delivered to cxstream (consumer lag)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cx_process_' });
  }
}

/** Serves `/metrics`, `/healthz` (process up) and `/readyz` (pipeline running) on `port` (0 = any free). */
export async function serveMetrics(metrics: Metrics, port: number, ready: () => boolean): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    } else if (req.url === '/healthz') {
      res.writeHead(200).end('ok\n');
    } else if (req.url === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}
