import type { ClickHouseClient } from '@clickhouse/client';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { RuleSpec } from '../operators/rules.js';
import { clickHouseDatabase, ensureSchema, openClickHouse } from '../sinks/clickhouse.js';
import { ClickHouseWriter } from '../sinks/clickhouseWriter.js';
import { DeadLetterSink, MemoryDeadLetterSink } from '../sinks/deadLetters.js';
import { MemoryTriggerSink, NatsTriggerSink } from '../sinks/natsTriggers.js';
import { MemoryProfileStore, ProfileStore } from '../sinks/profileStore.js';
import type { Config } from './config.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';
import { type PipelineSinks, runPipeline } from './pipeline.js';
import { ensureStreams } from './streams.js';
import type { BatchOutput, EventSource } from './types.js';
import { WorkerPool } from './workerPool.js';

/** Connects to the NATS server(s) of the config. */
export function connectNats(config: Readonly<Config>): Promise<NatsConnection> {
  return connect({
    servers: config.nats.url.split(',').map((s) => s.trim()),
    name: 'cxstream',
    maxReconnectAttempts: -1,
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
    flushIntervalMs: config.clickhouse.flushIntervalMs,
    maxBufferedRows: config.clickhouse.maxBufferedRows,
  });
  let memoryTriggers: MemoryTriggerSink | null = null;
  let triggers: PipelineSinks['triggers'];
  let deadLetters: PipelineSinks['deadLetters'];
  let profiles: PipelineSinks['profiles'];
  if (nc) {
    await ensureStreams(nc);
    const js = jetstream(nc);
    triggers = new NatsTriggerSink(js);
    deadLetters = new DeadLetterSink(js);
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
}

/** Starts the partition workers and runs the pipeline until the source completes. */
export async function runEngine(options: RunOptions): Promise<void> {
  const { config, rules } = options;
  const pool = new WorkerPool({
    partitions: config.engine.partitions,
    rules,
    defaultTz: config.engine.defaultTz,
    profileIntervalMs: config.engine.profileIntervalMs,
  });
  log.info({ partitions: pool.partitions, rules: rules.length }, 'engine started');
  try {
    await runPipeline({
      source: options.source,
      pool,
      sinks: options.sinks,
      clock: Date.now,
      live: options.live,
      batchMaxEvents: config.engine.batchMaxEvents,
      batchMaxWaitMs: config.engine.batchMaxWaitMs,
      tickIntervalMs: config.engine.tickIntervalMs,
      metrics: options.metrics,
      onOutput: options.onOutput,
    });
  } finally {
    await pool.close();
  }
}
