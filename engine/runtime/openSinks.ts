import type { ClickHouseClient } from '@clickhouse/client';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  clickHouseDatabase,
  embeddedDir,
  ensureSchema,
  openClickHouse,
  rawInsertOf,
} from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { DeadLetterSink, MemoryDeadLetterSink } from '../../sinks/deadLetters.js';
import { MemoryTriggerSink, NatsTriggerSink } from '../../sinks/natsTriggers.js';
import { MemoryProfileStore, ProfileStore } from '../../sinks/profileStore.js';
import { LedgeredTriggerSink, TriggerLedger } from '../../sinks/triggerLedger.js';
import type { Config } from '../config/config.js';
import { ensureStreams } from '../nats/streams.js';
import { QueryServer } from '../query/queryServer.js';
import { log } from './log.js';
import type { PipelineSinks } from './pipeline.js';

/** The engine's outputs: NATS when connected, memory otherwise; ClickHouse always. */
export interface EngineSinks extends PipelineSinks {
  clickhouse: ClickHouseWriter;
  /** The ClickHouse client the writer uses (queries after a run: demo funnel). */
  clickhouseClient: ClickHouseClient;
  /** Triggers kept in memory when they are not published to NATS (demo without NATS, replays). */
  memoryTriggers: MemoryTriggerSink | null;
  /** ClickHouse's HTTP interface over the embedded store (read-only), null for a server or `serve.port` 0. */
  queryServer: QueryServer | null;
  close(): Promise<void>;
}

/**
 * Opens the sinks. With `nc`, triggers, dead letters and profiles go to NATS (streams and KV bucket
 * created when missing); without, they are kept in memory. ClickHouse schema is created when missing.
 * An embedded store is served read-only over ClickHouse's HTTP interface (`clickhouse.serve`) while
 * the sinks are open: the process locks the store, so that is the way in for analysts' tools.
 */
export async function openSinks(config: Readonly<Config>, nc: NatsConnection | null): Promise<EngineSinks> {
  const client: ClickHouseClient = openClickHouse(config.clickhouse.url);
  const database = clickHouseDatabase(config.clickhouse.url);
  await ensureSchema(client, database, { defaultTz: config.engine.defaultTz });
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
  const store = embeddedDir(config.clickhouse.url);
  const serve = config.clickhouse.serve;
  const queryServer =
    store !== null && serve.port > 0
      ? await QueryServer.start({ ...serve, dir: store, readonly: true, fallbackToFreePort: true })
      : null;
  return {
    triggers,
    deadLetters,
    profiles,
    clickhouse,
    clickhouseClient: client,
    memoryTriggers,
    queryServer,
    async close() {
      await clickhouse.close();
      await queryServer?.close();
      await client.close();
    },
  };
}
