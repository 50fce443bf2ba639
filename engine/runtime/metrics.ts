import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { cxstreamVersion, isLoopback } from '../config/config.js';
import { log } from './log.js';

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
    help: 'Events that arrived behind their partition watermark (beyond engine.allowedLatenessMs); applied, but too late for the time-ordered patterns',
    registers: [this.registry],
  });
  readonly tombstonedEvents = new Counter({
    name: 'cx_tombstoned_events_total',
    help: 'Events of forgotten customers (cxstream forget), acked and not applied',
    registers: [this.registry],
  });
  readonly identityMerges = new Counter({
    name: 'cx_identity_merges_total',
    help: 'Customers merged into another by identity stitching (docs/IDENTITY.md); a merge redone after a restart counts again',
    registers: [this.registry],
  });
  readonly clusterKeyGroups = new Gauge({
    name: 'cx_cluster_key_groups_owned',
    help: 'Key groups this instance of a shared deployment processes now (0 while it rebalances; docs/SCALING.md)',
    registers: [this.registry],
  });
  readonly clusterRuns = new Counter({
    name: 'cx_cluster_runs_total',
    help: 'Times this instance of a shared deployment started over with a new share of key groups, by why: start, members (a rebalance), fenced (its leases were lost)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly identitySharedIds = new Counter({
    name: 'cx_identity_shared_ids_total',
    help: 'Identifiers presented by more than identity.maxKeysPerId customer keys: shared, they link nobody from then on',
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

  // Per key group (engine.keyGroups series each, 128 by default; docs/CONTRACT.md "HTTP"), read from
  // the workers every few seconds (engine/runtime/liveStatus.ts followKeyGroups), not per event.
  readonly keyGroupAppliedSeq = this.keyGroupGauge(
    'cx_keygroup_applied_seq',
    'Highest stream sequence applied in the key group (0 before its first event)',
  );
  readonly keyGroupWatermark = this.keyGroupGauge(
    'cx_keygroup_watermark_ms',
    "The key group's watermark, epoch ms of event time (absent before its first event)",
  );
  readonly keyGroupMaxEventTime = this.keyGroupGauge(
    'cx_keygroup_max_event_time_ms',
    'Latest event time applied in the key group, epoch ms (absent before its first event)',
  );
  readonly keyGroupCustomers = this.keyGroupGauge('cx_keygroup_customers', 'Customers held in the key group');
  readonly keyGroupTimers = this.keyGroupGauge(
    'cx_keygroup_timers_queued',
    "Entries in the key group's timer queue (stale ones included: an upper bound of the pending timers)",
  );

  readonly workerBacklog = new Gauge({
    name: 'cx_worker_backlog_events',
    help: 'Events routed to the worker and not yet applied by it (waiting for a batch or in its queue)',
    labelNames: ['partition'] as const,
    registers: [this.registry],
  });

  readonly buildInfo = new Gauge({
    name: 'cx_build_info',
    help: 'Always 1; the version label tells which cxstream runs (useful during an upgrade)',
    labelNames: ['version'] as const,
    registers: [this.registry],
  });

  /** A gauge per key group, labelled with the worker that owns it. */
  private keyGroupGauge(name: string, help: string): Gauge<'key_group' | 'partition'> {
    return new Gauge({
      name,
      help,
      labelNames: ['key_group', 'partition'] as const,
      registers: [this.registry],
    });
  }

  constructor() {
    // prom-client's own names already start with process_ or nodejs_: the prefix makes them
    // cx_process_cpu_seconds_total, cx_nodejs_heap_size_used_bytes, ...
    collectDefaultMetrics({ register: this.registry, prefix: 'cx_' });
    this.buildInfo.set({ version: cxstreamVersion }, 1);
  }
}

/** Options of {@link serveHttp}. */
export interface HttpOptions {
  /** Port; 0 = any free one. */
  port: number;
  /** Address to listen on. Beyond loopback, set `token`. @default '127.0.0.1' */
  host?: string;
  /**
   * Bearer token (`Authorization: Bearer <token>`) that /metrics and the admin actions require
   * when set; probes never need it. Without one, actions are accepted only from loopback clients
   * of a server bound to loopback. @default '' (none)
   */
  token?: string;
  /** `/readyz`: 200 when this returns no reason, else 503 with the reasons. */
  notReady: () => string[];
  /** `/healthz`: 200 when this returns null, else 503 with the reason. */
  unhealthy: () => string | null;
  /** Admin actions, answered on `POST <path>` with the JSON of what the function returns. */
  actions?: Readonly<Record<string, () => Promise<unknown>>>;
  /** Where the start-up warning about an open address goes. @default the engine's log (warn) */
  warn?: (fields: object, message: string) => void;
}

/**
 * The engine's HTTP server: `/metrics` (Prometheus), `/healthz` (liveness: the process should not
 * be restarted), `/readyz` (readiness: connected, state recovered, consuming) and the admin actions
 * (`POST`). It listens on `host` (loopback by default); a host reachable from elsewhere without a
 * token is logged as a warning at start, because /metrics would be open and actions refused.
 */
export async function serveHttp(metrics: Metrics, options: HttpOptions): Promise<Server> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? '';
  const loopbackOnly = isLoopback(host);
  if (!loopbackOnly && token === '') {
    (options.warn ?? ((fields, message) => log.warn(fields, message)))(
      { host, port: options.port },
      `metrics.host ${host} is reachable from other machines and metrics.token is not set: /metrics is open ` +
        'to anyone who can reach it and admin actions are refused; set metrics.token (CXSTREAM_METRICS_TOKEN) ' +
        'or bind to 127.0.0.1',
    );
  }
  const authorized = (req: IncomingMessage): boolean => {
    if (token === '') return true;
    const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const mayAct = (req: IncomingMessage): boolean => {
    if (token !== '') return authorized(req);
    // no token: only a client on this machine talking to a server that listens only on this machine
    return loopbackOnly && isLoopback(req.socket.remoteAddress ?? '');
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const text = (status: number, body: string) =>
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
    if (path === '/healthz') {
      const reason = options.unhealthy();
      text(reason === null ? 200 : 503, reason === null ? 'ok\n' : `unhealthy: ${reason}\n`);
    } else if (path === '/readyz') {
      const reasons = options.notReady();
      text(
        reasons.length === 0 ? 200 : 503,
        reasons.length === 0 ? 'ready\n' : `not ready: ${reasons.join('; ')}\n`,
      );
    } else if (path === '/metrics') {
      if (!authorized(req)) return void text(401, 'a bearer token is required (metrics.token)\n');
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (e: Error) => text(500, e.message),
      );
    } else if (path !== undefined && options.actions && Object.hasOwn(options.actions, path)) {
      if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST' }).end();
      if (!mayAct(req)) {
        return void text(
          token === '' ? 403 : 401,
          token === ''
            ? 'admin actions from other machines need metrics.token\n'
            : 'a bearer token is required\n',
        );
      }
      options.actions[path]!().then(
        (result) =>
          res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(result)}\n`),
        (e: Error) => text(500, `${e.message}\n`),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  return server;
}
