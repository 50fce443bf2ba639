/**
 * Engine status: the NATS request `cx.admin.status` (docs/CONTRACT.md "Admin requests"), answered by
 * the running engine, what `cxstream status` asks, and the per-key-group metrics (cx_keygroup_*).
 *
 * What it shows is this instance only: the process, each worker's key groups with their position
 * (last applied stream sequence, watermark) and size (customers, timers), the stream and consumer
 * positions from JetStream, and the last checkpoint. Every worker answers between two of its batches
 * (a `status` task changes nothing, as explain's), so asking costs each worker one short task.
 *
 * Request body: empty (or anything; it is not read). Reply body: JSON, one of
 * `{"status": "ok", "engine": EngineStatus}` or `{"status": "error", "message"}`.
 */
import { hostname } from 'node:os';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Checkpointer, RecoveryInfo } from '../checkpoint/checkpointer.js';
import { type Config, cxstreamVersion } from '../config/config.js';
import { natsNames } from '../nats/streams.js';
import {
  AdminRequestError,
  type AdminServer,
  adminRequest,
  adminRequestAll,
  answerRequests,
} from './admin.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';
import type { WorkerPool } from './workerPool.js';
import type { KeyGroupStatus, PartitionStatus } from './workerProtocol.js';

/** The subject of status requests (under `cx.admin.>`, which the engine subscribes to). */
export const STATUS_SUBJECT = 'cx.admin.status';

/**
 * Per worker: events the main thread routed to it and events of the batches whose output came back
 * from it, since the engine started; their difference is what waits for the worker (in the batch
 * being built or in its queue). Counted on the main thread only, so a worker restarted in place
 * does not reset it.
 */
export class WorkerBacklog {
  readonly routed: number[];
  readonly applied: number[];

  constructor(partitions: number) {
    this.routed = new Array<number>(partitions).fill(0);
    this.applied = new Array<number>(partitions).fill(0);
  }

  /** Events routed to worker `p` and not applied yet. */
  of(p: number): number {
    return this.routed[p]! - this.applied[p]!;
  }
}

/** One worker (partition thread) and the key groups it owns. */
export interface WorkerStatus {
  partition: number;
  /** Events routed to the worker since the engine started ({@link WorkerBacklog}); null when not counted. */
  routed: number | null;
  /** Of those, the ones it has not applied yet; null when not counted. */
  backlog: number | null;
  /** Its key groups as ranges, e.g. `0-63` (contiguous by construction; several ranges would say so). */
  ranges: string;
  /** Customers held in all its key groups, and those of them held as objects (the others as bytes). */
  customers: number;
  hotCustomers: number;
  keyGroups: KeyGroupStatus[];
}

/**
 * The source stream and the engine's durable consumer, as JetStream reports them. Lag is per
 * instance, not per key group: the stream interleaves every key group, so a key group's last applied
 * sequence below the stream's last one does not mean its events wait (docs/OPERATIONS.md).
 */
export interface StreamStatus {
  stream: string;
  durable: string;
  /** The stream's last sequence. */
  lastSeq: number;
  /** Highest stream sequence the consumer delivered to this engine. */
  deliveredSeq: number;
  /** The consumer's ack floor: every event at or below it is covered by a durable checkpoint. */
  ackFloor: number;
  /** Events in the stream not yet delivered to this engine (`num_pending`). */
  pending: number;
  /** Events above the ack floor (`lastSeq − ackFloor`): what a crash now would replay, pending ones included. */
  unacked: number;
}

/** The checkpoints: what the state was recovered from, and the latest this instance stored. */
export interface CheckpointStatus {
  store: string;
  /**
   * What the engine restored at start: the lowest `coveredSeq` of the records (0: it started
   * empty), the workers restored from a record, the bytes read and the time it took.
   */
  recovered: { coveredSeq: number; workers: number; bytes: number; ms: number };
  /** The latest checkpoint since the engine started (null: none yet). */
  last: {
    /** Wall-clock time of the checkpoint (epoch ms). */
    at: number;
    /** Every event at or below this sequence is in the stored state (and acked). */
    coveredSeq: number;
    /** Workers that stored a full record, and those that stored a delta. */
    full: number;
    deltas: number;
    bytes: number;
    ms: number;
  } | null;
  /**
   * Per worker, the chain of records a restore would read now: when its full record was taken (null
   * when unknown) and the deltas after it; null when its next record will be full.
   */
  chains: Array<{ partition: number; fullAt: number | null; deltas: number } | null>;
}

/** What `cx.admin.status` answers. */
export interface EngineStatus {
  instance: {
    host: string;
    pid: number;
    version: string;
    /** When the process started (epoch ms). */
    startedAt: number;
    /** When the state was recovered and the engine began answering (epoch ms). */
    recoveredAt: number;
    /** The NATS server the engine is connected to (the answer came over it). */
    nats: string;
    /** The deployment this instance shares with others, and its name there (docs/SCALING.md); absent: it runs alone. */
    deployment?: { name: string; instance: string };
  };
  keyGroups: number;
  partitions: number;
  workers: WorkerStatus[];
  /** Null when not read (replays, a file source) or when JetStream did not answer (`streamError`). */
  stream: StreamStatus | null;
  streamError?: string;
  /** Null without checkpoints (replays). */
  checkpoint: CheckpointStatus | null;
}

/** The engine's answer to a status request. */
export type StatusReply = { status: 'ok'; engine: EngineStatus } | { status: 'error'; message: string };

/** Key groups as ranges: `[0,1,2,5,7,8]` → `0-2, 5, 7-8`. */
export function keyGroupRanges(kgs: readonly number[]): string {
  const sorted = [...kgs].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** A worker's answer with its totals and ranges (and its events, when counted). */
export function workerStatus(answer: PartitionStatus, backlog?: WorkerBacklog): WorkerStatus {
  let customers = 0;
  let hotCustomers = 0;
  for (const g of answer.keyGroups) {
    customers += g.customers;
    hotCustomers += g.hotCustomers;
  }
  return {
    partition: answer.partition,
    routed: backlog?.routed[answer.partition] ?? null,
    backlog: backlog?.of(answer.partition) ?? null,
    ranges: keyGroupRanges(answer.keyGroups.map((g) => g.kg)),
    customers,
    hotCustomers,
    keyGroups: answer.keyGroups,
  };
}

/** Every worker's answer, in partition order (each read between two of its tasks). */
function readWorkers(pool: Pick<WorkerPool, 'status' | 'partitions'>): Promise<PartitionStatus[]> {
  return Promise.all(Array.from({ length: pool.partitions }, (_, p) => pool.status(p)));
}

/** Reads the source stream's and the durable consumer's positions from JetStream. */
export function streamReader(nc: NatsConnection, durable: string): () => Promise<StreamStatus> {
  let jsm: Promise<JetStreamManager> | null = null;
  return async () => {
    jsm ??= jetstreamManager(nc);
    const manager = await jsm.catch((e: unknown) => {
      jsm = null; // asked again next time
      throw e;
    });
    const stream = natsNames.eventsStream;
    const [info, consumer] = await Promise.all([
      manager.streams.info(stream),
      manager.consumers.info(stream, durable),
    ]);
    const lastSeq = info.state.last_seq;
    const ackFloor = consumer.ack_floor.stream_seq;
    return {
      stream,
      durable,
      lastSeq,
      deliveredSeq: consumer.delivered.stream_seq,
      ackFloor,
      pending: consumer.num_pending,
      unacked: Math.max(0, lastSeq - ackFloor),
    };
  };
}

/** What the status server reads besides the workers. */
export interface StatusSources {
  pool: Pick<WorkerPool, 'status' | 'partitions' | 'keyGroups'>;
  /** The stream and consumer positions (absent: not read). */
  stream?: () => Promise<StreamStatus>;
  /** Events routed to each worker and applied by it (absent: not counted). */
  backlog?: WorkerBacklog;
  /** The deployment this instance shares (absent: it runs alone). */
  deployment?: { name: string; instance: string };
  /** The checkpointer and where it stores (absent: no checkpoints). */
  checkpoints?: {
    checkpointer: Pick<Checkpointer, 'lastCheckpoint' | 'chainStatus'>;
    store: string;
    recovery: RecoveryInfo;
  };
}

/** The whole status, as the engine answers it. */
async function engineStatus(
  nc: NatsConnection,
  sources: StatusSources,
  recoveredAt: number,
): Promise<EngineStatus> {
  const { pool } = sources;
  const streamRead = sources.stream?.().then(
    (s) => ({ stream: s }),
    (e: unknown) => ({ stream: null, streamError: (e as Error)?.message ?? String(e) }),
  );
  const [answers, stream] = await Promise.all([readWorkers(pool), streamRead ?? { stream: null }]);
  const last = sources.checkpoints?.checkpointer.lastCheckpoint ?? null;
  return {
    instance: {
      host: hostname(),
      pid: process.pid,
      version: cxstreamVersion,
      startedAt: Math.round(performance.timeOrigin),
      recoveredAt,
      nats: nc.getServer(),
      ...(sources.deployment && { deployment: sources.deployment }),
    },
    keyGroups: pool.keyGroups,
    partitions: pool.partitions,
    // main-thread counts, read together: routed never falls behind applied
    workers: answers.map((a) => workerStatus(a, sources.backlog)),
    ...stream,
    checkpoint: sources.checkpoints
      ? {
          store: sources.checkpoints.store,
          recovered: {
            coveredSeq: sources.checkpoints.recovery.coveredSeq,
            workers: sources.checkpoints.recovery.restored.length,
            bytes: sources.checkpoints.recovery.bytes,
            ms: Math.round(sources.checkpoints.recovery.ms),
          },
          last:
            last === null
              ? null
              : {
                  at: last.createdAt,
                  coveredSeq: last.coveredSeq,
                  full: pool.partitions - last.deltas,
                  deltas: last.deltas,
                  bytes: last.bytes,
                  ms: Math.round(last.ms),
                },
          chains: sources.checkpoints.checkpointer.chainStatus.map((c, partition) =>
            c === null ? null : { partition, ...c },
          ),
        }
      : null,
  };
}

/**
 * Subscribes to {@link STATUS_SUBJECT} and answers each request from every worker (between two of
 * its tasks) and JetStream. Start it once the state is recovered: before, no one answers.
 */
export function serveStatus(nc: NatsConnection, sources: StatusSources): AdminServer {
  const recoveredAt = Date.now();
  return answerRequests(nc, STATUS_SUBJECT, 'status', async (): Promise<StatusReply> => {
    try {
      return { status: 'ok', engine: await engineStatus(nc, sources, recoveredAt) };
    } catch (e) {
      log.warn({ err: e }, 'status request failed');
      return { status: 'error', message: (e as Error)?.message ?? String(e) };
    }
  });
}

/**
 * How often the per-key-group metrics are read from the workers: a cadence, not per event, so a
 * busy worker pays one short task per interval; Prometheus scrapes every 15–60 s.
 */
export const KEY_GROUP_METRICS_INTERVAL_MS = 5000;

/** Sets the per-key-group gauges from the workers' answers. */
export function setKeyGroupMetrics(metrics: Metrics, answers: readonly PartitionStatus[]): void {
  for (const answer of answers) {
    const partition = String(answer.partition);
    for (const g of answer.keyGroups) {
      const labels = { key_group: String(g.kg), partition };
      metrics.keyGroupAppliedSeq.set(labels, g.lastSeq);
      metrics.keyGroupCustomers.set(labels, g.customers);
      metrics.keyGroupTimers.set(labels, g.timersQueued);
      // absent until the key group's first event: −Infinity is no useful sample
      if (g.watermark !== null) metrics.keyGroupWatermark.set(labels, g.watermark);
      if (g.maxEventTime !== null) metrics.keyGroupMaxEventTime.set(labels, g.maxEventTime);
    }
  }
}

/**
 * Reads every worker's key groups now and every `intervalMs` into the cx_keygroup_* gauges (and the
 * backlog into cx_worker_backlog_events), until the returned function is called. A read still under way (a worker in a long batch) skips the turn.
 */
export function followKeyGroups(
  metrics: Metrics,
  pool: Pick<WorkerPool, 'status' | 'partitions'>,
  backlog?: WorkerBacklog,
  intervalMs = KEY_GROUP_METRICS_INTERVAL_MS,
): () => void {
  let reading = false;
  const read = (): void => {
    if (backlog)
      for (let p = 0; p < pool.partitions; p++)
        metrics.workerBacklog.set({ partition: String(p) }, backlog.of(p));
    if (reading) return;
    reading = true;
    readWorkers(pool)
      .then(
        (answers) => setKeyGroupMetrics(metrics, answers),
        (err: unknown) => log.debug({ err }, 'key group metrics not read'),
      )
      .finally(() => {
        reading = false;
      });
  };
  read();
  const timer = setInterval(read, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** What {@link startStatus} started: the backlog counts the pipeline keeps, and the stop of it all. */
export interface StatusService {
  backlog: WorkerBacklog;
  close(): Promise<void>;
}

/**
 * Starts what reads the engine's status once its state is recovered: the answers to
 * {@link STATUS_SUBJECT} on `admin` (when given) and the cx_keygroup_* gauges (with `metrics`).
 * `checkpoints` are the run's options (the NATS connection, durable and store) and `recovered` what
 * recovery returned; either is absent without checkpoints.
 */
export function startStatus(options: {
  pool: Pick<WorkerPool, 'status' | 'partitions' | 'keyGroups'>;
  admin?: NatsConnection;
  metrics?: Metrics;
  checkpoints?: { nc: NatsConnection | null; durable: string; store: { location: string } };
  recovered?: { checkpointer: Pick<Checkpointer, 'lastCheckpoint' | 'chainStatus'>; recovery: RecoveryInfo };
  deployment?: { name: string; instance: string };
}): StatusService {
  const { pool, checkpoints, recovered } = options;
  const backlog = new WorkerBacklog(pool.partitions);
  const server = options.admin
    ? serveStatus(options.admin, {
        pool,
        backlog,
        deployment: options.deployment,
        stream: checkpoints?.nc ? streamReader(checkpoints.nc, checkpoints.durable) : undefined,
        checkpoints:
          checkpoints && recovered ? { ...recovered, store: checkpoints.store.location } : undefined,
      })
    : null;
  const stopMetrics = options.metrics ? followKeyGroups(options.metrics, pool, backlog) : () => {};
  return {
    backlog,
    async close() {
      stopMetrics();
      await server?.close();
    },
  };
}

/** Asks the running engine for its status (`cxstream status`); an `AdminRequestError` when it cannot tell. */
export async function requestStatus(config: Readonly<Config>, timeoutMs: number): Promise<EngineStatus> {
  const reply = await adminRequest<StatusReply>(config, STATUS_SUBJECT, '', timeoutMs);
  if (reply.status === 'ok') return reply.engine;
  throw new AdminRequestError(`the engine could not tell its status: ${reply.message}`);
}

/**
 * Asks every instance of the configured deployment (`cluster.deployment`) for its status, sorted by
 * instance name; instances of other deployments on the same NATS are left out.
 */
export async function requestDeploymentStatus(
  config: Readonly<Config>,
  timeoutMs: number,
): Promise<EngineStatus[]> {
  const replies = await adminRequestAll<StatusReply>(config, STATUS_SUBJECT, '', timeoutMs);
  const failed = replies.find((r) => r.status !== 'ok');
  if (failed && failed.status === 'error')
    throw new AdminRequestError(`an instance could not tell its status: ${failed.message}`);
  const name = config.cluster.deployment;
  const mine = replies
    .map((r) => (r as { engine: EngineStatus }).engine)
    .filter((e) => e.instance.deployment?.name === name);
  if (mine.length === 0)
    throw new AdminRequestError(
      `no instance of deployment "${name}" answered on ${STATUS_SUBJECT} (${replies.length} other engine${replies.length === 1 ? '' : 's'} did)`,
    );
  return mine.sort((a, b) => a.instance.deployment!.instance.localeCompare(b.instance.deployment!.instance));
}
