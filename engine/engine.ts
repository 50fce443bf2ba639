import type { ClickHouseClient } from '@clickhouse/client';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Observable } from 'rxjs';
import { RegionSurge, type ResolvedRegionSurge } from '../operators/regionSurge.js';
import type { RuleSpec } from '../operators/rules.js';
import { clickHouseDatabase, ensureSchema, openClickHouse, rawInsertOf } from '../sinks/clickhouse.js';
import { ClickHouseWriter } from '../sinks/clickhouseWriter.js';
import { DeadLetterSink, MemoryDeadLetterSink } from '../sinks/deadLetters.js';
import { MemoryTriggerSink, NatsTriggerSink } from '../sinks/natsTriggers.js';
import { MemoryProfileStore, ProfileStore } from '../sinks/profileStore.js';
import { LedgeredTriggerSink, TriggerLedger, triggersStreamSeq } from '../sinks/triggerLedger.js';
import { restoreAggregates } from './aggregateRecovery.js';
import { aggregateFiles, loadAggregates } from './aggregatesFile.js';
import { Checkpointer, type CheckpointStats } from './checkpointer.js';
import { CheckpointError, type CheckpointStore } from './checkpointStore.js';
import type { Config } from './config.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';
import { type PipelineSinks, runPipeline } from './pipeline.js';
import { ensureStreams, natsNames } from './streams.js';
import type { BatchOutput, ControlRequest, EventSource } from './types.js';
import { WorkerPool } from './workerPool.js';

/** Connects to the NATS server(s) of the config. */
export function connectNats(config: Readonly<Config>): Promise<NatsConnection> {
  return connect({
    servers: config.nats.url.split(',').map((s) => s.trim()),
    name: 'cxstream',
    maxReconnectAttempts: -1,
    // Otherwise every request (each trigger publish, each KV put) captures a stack trace for its
    // possible timeout error: a third of the main thread's time in bench:e2e (bench/RESULTS.md).
    noAsyncTraces: true,
  });
}

/** The engine's outputs: NATS when connected, memory otherwise; ClickHouse always. */
export interface EngineSinks extends PipelineSinks {
  clickhouse: ClickHouseWriter;
  /** The ClickHouse client the writer uses (queries after a run: demo funnel). */
  clickhouseClient: ClickHouseClient;
  /** Triggers kept in memory when they are not published to NATS (demo without NATS, replays). */
  memoryTriggers: MemoryTriggerSink | null;
  close(): Promise<void>;
}

/**
 * Opens the sinks. With `nc`, triggers, dead letters and profiles go to NATS (streams and KV bucket
 * created when missing); without, they are kept in memory. ClickHouse schema is created when missing.
 */
export async function openSinks(config: Readonly<Config>, nc: NatsConnection | null): Promise<EngineSinks> {
  const client: ClickHouseClient = openClickHouse(config.clickhouse.url);
  const database = clickHouseDatabase(config.clickhouse.url);
  await ensureSchema(client, database);
  const clickhouse = new ClickHouseWriter(client, {
    database,
    rawInsert: rawInsertOf(client),
    flushIntervalMs: config.clickhouse.flushIntervalMs,
    maxBufferedRows: config.clickhouse.maxBufferedRows,
    onError: (err, info) => log.warn({ err, ...info }, 'ClickHouse insert failed; retrying with back-off'),
  });
  let memoryTriggers: MemoryTriggerSink | null = null;
  let triggers: PipelineSinks['triggers'];
  let deadLetters: PipelineSinks['deadLetters'];
  let profiles: PipelineSinks['profiles'];
  if (nc) {
    await ensureStreams(nc);
    // replays after a crash skip the trigger ids already on CX_TRIGGERS (runEngine reads them)
    triggers = new LedgeredTriggerSink(new NatsTriggerSink(nc), new TriggerLedger());
    deadLetters = new DeadLetterSink(nc);
    profiles = await ProfileStore.open(nc);
  } else {
    memoryTriggers = new MemoryTriggerSink();
    triggers = memoryTriggers;
    deadLetters = new MemoryDeadLetterSink();
    profiles = new MemoryProfileStore();
  }
  return {
    triggers,
    deadLetters,
    profiles,
    clickhouse,
    clickhouseClient: client,
    memoryTriggers,
    async close() {
      await clickhouse.close();
      await client.close();
    },
  };
}

/** What runs the pipeline needs besides its source. */
export interface RunOptions {
  config: Readonly<Config>;
  /** Validated rules (engine/rulesFile.ts `loadRules`). */
  rules: RuleSpec[];
  source: EventSource;
  sinks: PipelineSinks;
  /** Live streams tick profiles on the wall clock; replays go by event time. */
  live: boolean;
  metrics?: Metrics;
  onOutput?: (output: BatchOutput) => void;
  /** Aggregate rules (complaint_surge). @default those of `aggregateFiles()` (CXSTREAM_AGGREGATES) */
  aggregates?: readonly ResolvedRegionSurge[];
  /** Rule swaps and other tasks run in order with each partition's batches (engine/ruleReloader.ts). */
  controls$?: Observable<ControlRequest>;
  /** Replays: event time every partition moves to once the source completed (`replay --until`). */
  advanceTo?: number;
  /**
   * Exactly-once effects (docs/DELIVERY.md): restore the partitions from `store`, ack only what a
   * checkpoint covers, and skip triggers already published. Live JetStream sources only.
   */
  checkpoints?: {
    store: CheckpointStore;
    /** The NATS connection of the source and sinks (trigger ledger, consumer ack floor). */
    nc: NatsConnection | null;
    /** Durable consumer of the source: its ack floor must not be above the checkpoints. */
    durable: string;
    /** The source's `maxInFlight`: a checkpoint starts early when half of it waits for acks. */
    maxInFlight: number;
  };
}

/** Starts the partition workers and runs the pipeline until the source completes. */
export async function runEngine(options: RunOptions): Promise<void> {
  const { config, rules } = options;
  const pool = new WorkerPool({
    partitions: config.engine.partitions,
    rules,
    defaultTz: config.engine.defaultTz,
    profileIntervalMs: config.engine.profileIntervalMs,
    allowedLatenessMs: config.engine.allowedLatenessMs,
    idleAfterMs: config.engine.idleAfterMs,
    maxFutureSkewMs: config.engine.maxFutureSkewMs,
  });
  log.info({ partitions: pool.partitions, rules: rules.length }, 'engine started');
  try {
    const aggregates = (options.aggregates ?? loadAggregates(aggregateFiles())).map(
      (spec) => new RegionSurge(spec, pool.partitions, Date.now),
    );
    const checkpoints = options.checkpoints ? await recover(options, pool, aggregates) : undefined;
    let first = checkpoints !== undefined;
    await runPipeline({
      aggregates,
      controls$: options.controls$,
      advanceTo: options.advanceTo,
      checkpoints,
      source: options.source,
      pool,
      sinks: options.sinks,
      clock: Date.now,
      live: options.live,
      batchMaxEvents: config.engine.batchMaxEvents,
      tickIntervalMs: config.engine.tickIntervalMs,
      metrics: options.metrics,
      onOutput: (out) => {
        // the fault tests measure recovery up to this line
        if (first && (out.events.length > 0 || out.rejects.length > 0)) {
          first = false;
          log.info({ lastSeq: out.lastSeq }, 'processing');
        }
        options.onOutput?.(out);
      },
    });
  } finally {
    await pool.close();
  }
}

/**
 * Rebuilds the aggregates at the restored checkpoints' cut from ClickHouse (docs/DELIVERY.md), so
 * a crash neither loses their counts nor evaluates a window twice.
 */
async function recoverAggregates(options: RunOptions, aggregates: RegionSurge[], partitions: number) {
  const { sinks, config } = options;
  // EngineSinks (openSinks) carry the client the events were written with; other sinks have no history.
  const client = (sinks as Partial<EngineSinks>).clickhouseClient;
  if (!client) {
    log.warn(
      'aggregates start empty after a restart: the sinks have no ClickHouse client to rebuild them from',
    );
    return;
  }
  const stats = await restoreAggregates({
    aggregates,
    store: options.checkpoints!.store,
    partitions,
    client,
    database: clickHouseDatabase(config.clickhouse.url),
  });
  log.info({ ...stats, ms: Math.round(stats.ms) }, 'aggregates recovered');
}

/**
 * Restores the partitions from their checkpoints, the aggregates at their cut, and loads the trigger
 * ledger; what runPipeline needs.
 */
async function recover(options: RunOptions, pool: WorkerPool, aggregates: RegionSurge[]) {
  const { store, nc, durable, maxInFlight } = options.checkpoints!;
  const { config, metrics } = options;
  const jsm = nc ? await jetstreamManager(nc) : null;
  const checkpointer = new Checkpointer({
    pool,
    store,
    source: options.source,
    triggersSeq: jsm ? () => triggersStreamSeq(jsm) : undefined,
    eventsSeq: jsm ? () => jsm.streams.info(natsNames.eventsStream).then((i) => i.state.last_seq) : undefined,
    maxDeltas: config.checkpoint.maxDeltas,
  });
  const recovery = await checkpointer.recover();
  // before 'state recovered': supervisors and the fault harness take that line as ready
  if (aggregates.length > 0) await recoverAggregates(options, aggregates, pool.partitions);
  if (jsm) {
    const ackFloor = await jsm.consumers
      .info(natsNames.eventsStream, durable)
      .then((info) => info.ack_floor.stream_seq)
      .catch(() => 0);
    if (ackFloor > recovery.coveredSeq) {
      // acks never pass a durable checkpoint: the state is older than the consumer (wiped or another dir)
      throw new CheckpointError(
        `the consumer ${durable} has acked up to ${ackFloor}, but the checkpoints in ${store.location} ` +
          `cover only up to ${recovery.coveredSeq}: events in between would be missing from the state. ` +
          'Point the engine at its checkpoints, or delete the durable consumer to rebuild state from the stream.',
        store.location,
      );
    }
  }
  if (nc && options.sinks.triggers instanceof LedgeredTriggerSink) {
    options.sinks.triggers.ledger = await TriggerLedger.read(nc, recovery.triggersSeq);
  }
  log.info(
    {
      restored: recovery.restored.length,
      coveredSeq: recovery.coveredSeq,
      bytes: recovery.bytes,
      ms: Math.round(recovery.ms),
      publishedTriggerIds:
        options.sinks.triggers instanceof LedgeredTriggerSink ? options.sinks.triggers.ledger.size : 0,
      store: store.location,
    },
    'state recovered',
  );
  return {
    checkpointer,
    intervalMs: config.checkpoint.intervalMs,
    earlyAt: Math.max(1, Math.floor(maxInFlight / 2)),
    onCheckpoint: (stats: CheckpointStats) => {
      metrics?.checkpointSeconds.observe(stats.ms / 1000);
      metrics?.checkpointBytes.set(stats.bytes);
      metrics?.checkpointTime.set(Date.now() / 1000);
      log.debug(stats, 'checkpoint');
    },
    onError: (err: unknown) => log.warn({ err }, 'checkpoint failed; acks wait for the next one'),
  };
}
