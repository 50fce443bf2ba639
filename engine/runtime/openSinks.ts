import type { ClickHouseClient } from '@clickhouse/client';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  clickHouseDatabase,
  embeddedDir,
  ensureSchema,
  openClickHouse,
  rawInsertOf,
} from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { ConnectionWatch } from '../../sinks/connectionWatch.js';
import { DeadLetterSink, MemoryDeadLetterSink } from '../../sinks/deadLetters.js';
import { MemoryTriggerSink, NatsTriggerSink } from '../../sinks/natsTriggers.js';
import { MemoryProfileStore, ProfileStore } from '../../sinks/profileStore.js';
import { LedgeredTriggerSink, TriggerLedger } from '../../sinks/triggerLedger.js';
import type { Config } from '../config/config.js';
import { settingName } from '../config/environment.js';
import { SettingError } from '../config/errors.js';
import { redactUrl, urlSecrets, withoutSecrets } from '../config/redact.js';
import { ensureStreams } from '../nats/streams.js';
import { QueryServer } from '../query/queryServer.js';
import { hideSecrets, log } from './log.js';
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

/** Options of {@link openSinks}. */
export interface OpenSinksOptions {
  /**
   * The stream the events come from (`CX_EVENTS` for `cxstream run`): dead letters then keep the
   * original message's headers, read back by sequence. Absent for file replays. @default none
   */
  sourceStream?: string;
}

/**
 * Opens the sinks. With `nc`, triggers, dead letters and profiles go to NATS (streams and KV bucket
 * created when missing, with the configured limits); without, they are kept in memory. ClickHouse
 * schema is created when missing. An embedded store is served read-only over ClickHouse's HTTP
 * interface (`clickhouse.serve`) while the sinks are open: the process locks the store, so that is
 * the way in for analysts' tools.
 * @throws SettingError naming ClickHouse and its URL (without password) when it cannot be reached
 */
export async function openSinks(
  config: Readonly<Config>,
  nc: NatsConnection | null,
  options: OpenSinksOptions = {},
): Promise<EngineSinks> {
  const client: ClickHouseClient = openClickHouse(config.clickhouse.url);
  const database = clickHouseDatabase(config.clickhouse.url);
  try {
    await ensureSchema(client, database, {
      defaultTz: config.engine.defaultTz,
      cluster: config.clickhouse.cluster,
    });
  } catch (e) {
    await client.close().catch(() => {});
    throw clickHouseStartError(e, config.clickhouse.url, config.clickhouse.cluster);
  }
  const clickhouse = new ClickHouseWriter(client, {
    database,
    rawInsert: rawInsertOf(client),
    distributed: config.clickhouse.cluster !== '',
    flushIntervalMs: config.clickhouse.flushIntervalMs,
    maxBufferedRows: config.clickhouse.maxBufferedRows,
    onError: (err, info) => log.warn({ err, ...info }, 'ClickHouse insert failed; retrying with back-off'),
  });
  let memoryTriggers: MemoryTriggerSink | null = null;
  let triggers: PipelineSinks['triggers'];
  let ledgered: LedgeredTriggerSink | null = null;
  let deadLetters: PipelineSinks['deadLetters'];
  let profiles: PipelineSinks['profiles'];
  if (nc) {
    await ensureStreams(nc, config.streams);
    // replays after a crash skip the trigger ids already on CX_TRIGGERS (runEngine reads them)
    ledgered = new LedgeredTriggerSink(new NatsTriggerSink(nc), new TriggerLedger(), nc);
    triggers = ledgered;
    deadLetters = new DeadLetterSink(nc, { sourceStream: options.sourceStream });
    profiles = await ProfileStore.open(nc);
  } else {
    memoryTriggers = new MemoryTriggerSink();
    triggers = memoryTriggers;
    deadLetters = new MemoryDeadLetterSink();
    profiles = new MemoryProfileStore();
  }
  const jsm = nc ? await jetstreamManager(nc) : null;
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
    // asked only after a publish found no responders: a deleted stream fails the engine at once
    streamMissing: async (subject) => {
      if (!jsm || !nc) return false;
      try {
        await ConnectionWatch.of(nc).call(() => jsm.streams.find(subject));
        return false;
      } catch (e) {
        return /no stream matches subject/i.test((e as Error).message);
      }
    },
    clickhouse,
    clickhouseClient: client,
    memoryTriggers,
    queryServer,
    async close() {
      ledgered?.close();
      await clickhouse.close();
      await queryServer?.close();
      await client.close();
    },
  };
}

/** What the servers lack for `clickhouse.cluster`, when the error says so (else undefined). */
function clusterStartError(
  e: unknown,
  message: string,
  text: string,
  where: string,
  cluster: string,
): SettingError | undefined {
  const setting = `cluster ${cluster} (${settingName('clickhouse.cluster')})`;
  const fail = (what: string, retryable: boolean) =>
    new SettingError(`${what}: ${message}`, 'clickhouse.cluster', 'ClickHouse', retryable, { cause: e });
  if (/requested cluster .* not found|cluster_doesnt_exist/.test(text))
    return fail(`the ClickHouse ${setting} is not in the remote_servers of ${where}`, false);
  if (/no macro/.test(text))
    return fail(
      `the servers of ${setting} need the shard and replica macros for the Replicated tables (docs/CLICKHOUSE.md "Cluster")`,
      false,
    );
  if (/no_zookeeper|without zookeeper|no zookeeper configuration/.test(text))
    return fail(
      `the servers of ${setting} need ClickHouse Keeper (or ZooKeeper) for ON CLUSTER and the Replicated tables (docs/CLICKHOUSE.md "Cluster")`,
      false,
    );
  if (/distributed ddl queries are prohibited/.test(text))
    return fail(
      `the ClickHouse user of ${where} may not run ON CLUSTER (allow_distributed_ddl) for ${setting}`,
      false,
    );
  if (/distributed_ddl_task_timeout/.test(text))
    return fail(
      `a server of ${setting} did not apply the schema in time (distributed_ddl_task_timeout; it applies it once it is back): start again when every server is up`,
      true,
    );
  return undefined;
}

/** Why ClickHouse could not be opened, naming ClickHouse, its URL without password and the setting. */
function clickHouseStartError(e: unknown, url: string, cluster: string): SettingError {
  const err = e as Error & { code?: string | number; type?: string };
  const message = hideSecrets(withoutSecrets(err.message ?? String(e), urlSecrets(url)));
  const where = `ClickHouse at ${redactUrl(url)} (${settingName('clickhouse.url')})`;
  const text = `${message} ${String(err.code ?? '')} ${err.type ?? ''}`.toLowerCase();
  if (cluster !== '') {
    const clusterError = clusterStartError(e, message, text, where, cluster);
    if (clusterError) return clusterError;
  }
  if (
    /econnrefused|enotfound|eai_again|ehostunreach|etimedout|timeout|socket hang up|econnreset/.test(text)
  ) {
    return new SettingError(
      `cannot connect to ${where}: ${message}. Is the ClickHouse server running there? Or use embedded:DIR ` +
        'for the in-process engine.',
      'clickhouse.url',
      'ClickHouse',
      true,
      { cause: e },
    );
  }
  if (/authentication|password|required_password|access denied|516|wrong password/.test(text)) {
    return new SettingError(
      `${where} refused the user or password of the URL: ${message}`,
      'clickhouse.url',
      'ClickHouse',
      false,
      { cause: e },
    );
  }
  return new SettingError(
    `cannot set up the schema on ${where}: ${message}`,
    'clickhouse.url',
    'ClickHouse',
    false,
    {
      cause: e,
    },
  );
}
