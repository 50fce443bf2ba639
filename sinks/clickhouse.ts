/**
 * Opening ClickHouse (embedded chDB or a server over HTTP) and the `cxstream` schema.
 *
 * Both paths go through `@clickhouse/client`, so the writer and the queries are the same code
 * whether the engine runs in-process or a server is configured (docs/CONTRACT.md "ClickHouse").
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { EmbeddedStoreInUseError, embeddedStoreHolder } from './embeddedStore.js';

export { embeddedDir } from './embeddedStore.js';

import { viewStatements } from './views.js';

/** Database used when the URL names none. */
export const DEFAULT_DATABASE = 'cxstream';

const EMBEDDED_PREFIX = 'embedded:';

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

/** Inserts rows already encoded in `format` into `table` (`db.table`, plain identifiers). */
export type RawInsert = (insert: {
  table: string;
  columns: readonly string[];
  format: 'JSONCompactEachRow' | 'JSONEachRow';
  values: Uint8Array;
}) => Promise<void>;

/** chDB's raw insert of each client opened on `embedded:` (see {@link rawInsertOf}). */
const rawInserts = new WeakMap<ClickHouseClient, RawInsert>();

/**
 * The raw insert of a client opened on `embedded:DIR`: chDB's `rawInsert` hands the bytes to the
 * engine as they are, where `@clickhouse/client`'s insert makes one JavaScript string of the body
 * first (a fifth of the main thread in bench:e2e). Undefined for a server (its HTTP insert streams
 * the bytes anyway).
 */
export function rawInsertOf(client: ClickHouseClient): RawInsert | undefined {
  return rawInserts.get(client);
}

/**
 * Opens a client for `url`: `embedded:DIR` runs chDB in this process on the data directory DIR
 * (created if missing); `http(s)://user:pass@host:port/db` talks to a server.
 *
 * The client is not bound to the URL's database (a server refuses every request, even
 * `CREATE DATABASE`, whose `database` parameter names a missing database): queries qualify their
 * tables with {@link clickHouseDatabase}`(url)` instead.
 */
export function openClickHouse(url: string): ClickHouseClient {
  if (url.startsWith(EMBEDDED_PREFIX)) {
    const dir = url.slice(EMBEDDED_PREFIX.length);
    if (dir === '') throw new Error(`ClickHouse URL "${url}" needs a directory after "embedded:"`);
    const path = resolve(dir);
    mkdirSync(path, { recursive: true });
    // chdb types its connection against @clickhouse/client-common while @clickhouse/client bundles
    // its own copy of the same types; they differ only in identity, the runtime contract is the same.
    const chdb = openChdb(path);
    const client = createClient({ connection: chdb as unknown as ClientConnection });
    rawInserts.set(client, async ({ table, columns, format, values }) => {
      await chdb.chdb.rawInsert({ table, columns: [...columns], format, values });
    });
    return client;
  }
  const parsed = parseServerUrl(url);
  return createClient({
    url: parsed.origin,
    username: parsed.username,
    password: parsed.password,
    request_timeout: 30_000,
    // Every failure reaches the caller (a rejected promise, or the writer's onError on each retry):
    // the client's own stderr lines would only repeat them outside the engine's log.
    log: { level: ClickHouseLogLevel.OFF },
  });
}

/** chDB on `path`; {@link EmbeddedStoreInUseError} when another process has the directory open. */
function openChdb(path: string): ReturnType<typeof createChdbConnection> {
  try {
    return createChdbConnection({ path });
  } catch (e) {
    const pid = embeddedStoreHolder(path);
    if (pid !== undefined) throw new EmbeddedStoreInUseError(path, pid, { cause: e });
    throw e;
  }
}

/** The database a ClickHouse URL names (`/db` path of a server URL), else `cxstream`. */
export function clickHouseDatabase(url: string): string {
  if (url.startsWith(EMBEDDED_PREFIX)) return DEFAULT_DATABASE;
  return parseServerUrl(url).database;
}

/** Options of {@link ensureSchema}. */
export interface SchemaOptions {
  /**
   * Zone of `events.local_hour` for rows stored before that column existed: their hour is computed
   * on read from `ts` in this zone, while rows written since carry the hour in their own `tz`.
   * @default 'Asia/Shanghai'
   */
  defaultTz?: string;
  /**
   * Name of a ClickHouse cluster (`remote_servers` of the servers' config): the schema is created
   * `ON CLUSTER` it, as Replicated local tables `<table>_local` under Distributed tables named as on
   * a single server (docs/CLICKHOUSE.md "Cluster"). '' = one server.
   * @default ''
   */
  cluster?: string;
}

/** What a Distributed table shards its rows by: a customer's rows all live on one shard. */
export const SHARDING_KEY = 'cityHash64(customer)';

/** Suffix of the shard-local tables under the Distributed ones of a cluster schema. */
export const LOCAL_SUFFIX = '_local';

/** The tables of the schema, in creation order. */
export const TABLE_NAMES = ['events', 'triggers', 'profiles'] as const;

/**
 * Creates the database, the tables and the analyst views if they do not exist, and brings tables
 * of earlier versions up to date; safe to call on every start.
 * @param database @default 'cxstream'
 */
export async function ensureSchema(
  client: ClickHouseClient,
  database = DEFAULT_DATABASE,
  options: SchemaOptions = {},
): Promise<void> {
  for (const ddl of schemaDdl(database, options)) await client.command({ query: ddl });
  // after the schema of earlier versions, so that their DDL stays as it was (test/golden)
  await client.command({ query: auditTableDdl(database, options.cluster) });
  await client.command({ query: identitiesTableDdl(database, options.cluster) });
}

/**
 * Every statement {@link ensureSchema} runs, in order: the database, the tables, the migrations of
 * tables of earlier versions, the views. With `options.cluster`, each is `ON CLUSTER` it.
 */
export function schemaDdl(database = DEFAULT_DATABASE, options: SchemaOptions = {}): string[] {
  const db = quoteIdentifier(database);
  const defaultTz = quoteTimeZone(options.defaultTz ?? 'Asia/Shanghai');
  const cluster = options.cluster ?? '';
  if (cluster === '') {
    return [
      `CREATE DATABASE IF NOT EXISTS ${db}`,
      ...tableBodies(defaultTz).map(
        (t) => `CREATE TABLE IF NOT EXISTS ${db}.${t.name} (${t.columns}) ENGINE = ReplacingMergeTree
    ${t.keys}`,
      ),
      ...migrations(`${db}.events`, defaultTz),
      ...viewStatements(db),
    ];
  }
  const on = `ON CLUSTER ${quoteIdentifier(cluster, 'ClickHouse cluster')}`;
  const statements = [`CREATE DATABASE IF NOT EXISTS ${db} ${on}`];
  for (const t of tableBodies(defaultTz)) {
    const local = `${t.name}${LOCAL_SUFFIX}`;
    // {shard} and {replica} are each server's macros; {database} is expanded by the server too.
    const path = `/clickhouse/tables/{shard}/{database}/${local}`;
    statements.push(
      `CREATE TABLE IF NOT EXISTS ${db}.${local} ${on} (${t.columns}) ENGINE = ReplicatedReplacingMergeTree('${path}', '{replica}')
    ${t.keys}`,
      `CREATE TABLE IF NOT EXISTS ${db}.${t.name} ${on} AS ${db}.${local}
    ENGINE = Distributed('${cluster}', '${database}', '${local}', ${SHARDING_KEY})`,
    );
  }
  // A Distributed table has its own column list: both get a new column.
  for (const table of [`${db}.events${LOCAL_SUFFIX}`, `${db}.events`])
    statements.push(...migrations(`${table} ${on}`, defaultTz));
  statements.push(...viewStatements(db, on));
  return statements;
}

/**
 * `events.local_hour`, after the columns of the first version because that is where `ADD COLUMN`
 * puts it on tables of earlier versions. Rows stored before it existed read the DEFAULT (the hour in the default zone,
 * the best guess without the event's own zone); the writer sends the value for every new row.
 */
function localHourColumn(defaultTz: string): string {
  return `local_hour UInt8 DEFAULT toHour(ts, ${defaultTz})`;
}

/** Changes to tables created by earlier versions; each is a no-op on a current table. */
function migrations(events: string, defaultTz: string): string[] {
  return [
    `ALTER TABLE ${events} ADD COLUMN IF NOT EXISTS ${localHourColumn(defaultTz)}`,
    `ALTER TABLE ${events} ADD COLUMN IF NOT EXISTS ticket_id String AFTER local_hour`,
  ];
}

/** A time zone name as an SQL string literal, after checking it looks like an IANA name. */
function quoteTimeZone(tz: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz)) {
    throw new Error(`time zone "${tz}" must be an IANA name like Asia/Shanghai`);
  }
  return `'${tz}'`;
}

/** A table of the schema: its name, its column list (inside the parentheses) and its keys. */
interface TableBody {
  name: (typeof TABLE_NAMES)[number];
  columns: string;
  /** PARTITION BY and ORDER BY, the same on a single server and on a cluster's local tables. */
  keys: string;
}

/**
 * The tables (docs/CLICKHOUSE.md explains the choices).
 *
 * Every table is a ReplacingMergeTree whose sorting key identifies a row by what is deterministic
 * in it (event id, trigger id, customer + snapshot time), so rows inserted again after a crash or a
 * retried insert collapse; readers use FINAL. The partition expression uses a column of the
 * sorting key, so duplicates always sit in the same partition and do collapse on merge. Every
 * sorting key has `customer`, the sharding key of a cluster: duplicates also sit on one shard.
 */
function tableBodies(defaultTz: string): TableBody[] {
  return [
    {
      name: 'events',
      columns: `
      partition UInt32,
      seq UInt64,
      id String,
      ts DateTime64(3, 'UTC'),
      customer String,
      type LowCardinality(String),
      channel LowCardinality(String),
      \`from\` LowCardinality(String),
      region LowCardinality(String),
      tz LowCardinality(String),
      session String,
      agent String,
      variant LowCardinality(String),
      source LowCardinality(String),
      amount Nullable(Float64),
      sku String,
      category LowCardinality(String),
      intent LowCardinality(String),
      sentiment Nullable(Float64),
      recognized Nullable(Bool),
      status LowCardinality(String),
      score Nullable(Float64),
      text String,
      ${localHourColumn(defaultTz)},
      ticket_id String
    `,
      keys: `PARTITION BY toYYYYMM(ts)
    ORDER BY (customer, ts, id)`,
    },
    {
      name: 'triggers',
      columns: `
      id String,
      rule LowCardinality(String),
      customer String,
      fired_at DateTime64(3, 'UTC'),
      event_time DateTime64(3, 'UTC'),
      priority Float64,
      reason String,
      subject LowCardinality(String),
      payload String,
      profile String
    `,
      keys: `PARTITION BY toYYYYMM(event_time)
    ORDER BY (rule, customer, event_time, id)`,
    },
    {
      name: 'profiles',
      columns: `
      customer String,
      updated_at DateTime64(3, 'UTC'),
      tier LowCardinality(String),
      rfm_score Float64,
      spend Float64,
      orders UInt32,
      tags Array(String),
      profile String
    `,
      keys: `PARTITION BY toYYYYMM(updated_at)
    ORDER BY (customer, updated_at)`,
    },
  ];
}

/** The audit table of forget requests, created with the schema. */
export const AUDIT_TABLE = 'forget_audit';

/**
 * The audit table's DDL (`ensureSchema` runs it after the schema's statements). On a cluster it is
 * one ReplicatedMergeTree table on every server (no shards: a forget request is one row, and the
 * table must answer "was this hash forgotten" from any server).
 */
export function auditTableDdl(database: string, cluster = ''): string {
  const db = quoteIdentifier(database);
  const columns = `(
      customer_hash String,
      at DateTime64(3, 'UTC'),
      removed Map(String, UInt64)
    )`;
  if (cluster === '')
    return `CREATE TABLE IF NOT EXISTS ${db}.${AUDIT_TABLE} ${columns} ENGINE = MergeTree ORDER BY (at, customer_hash)`;
  const on = `ON CLUSTER ${quoteIdentifier(cluster, 'ClickHouse cluster')}`;
  return `CREATE TABLE IF NOT EXISTS ${db}.${AUDIT_TABLE} ${on} ${columns} ENGINE = ReplicatedMergeTree('/clickhouse/tables/{database}/${AUDIT_TABLE}', '{replica}') ORDER BY (at, customer_hash)`;
}

/** Which customer each merged key belongs to (identity stitching, docs/IDENTITY.md), created with the schema. */
export const IDENTITIES_TABLE = 'identities';

/**
 * The identities table's DDL (`ensureSchema` runs it after the schema's statements): one row per
 * (canonical customer, alias, merge), written at each merge for every key that merge moved, so the
 * latest row of an alias (`argMax(customer, seq)`) names its customer now. Rows written again
 * after a crash collapse (ReplacingMergeTree on the whole key). On a cluster it is one
 * ReplicatedReplacingMergeTree table on every server, like the audit table: small, and joined
 * from any server.
 */
export function identitiesTableDdl(database: string, cluster = ''): string {
  const db = quoteIdentifier(database);
  const columns = `(
      customer String,
      alias String,
      seq UInt64,
      merged_at DateTime64(3, 'UTC')
    )`;
  const keys = 'ORDER BY (customer, alias, seq)';
  if (cluster === '')
    return `CREATE TABLE IF NOT EXISTS ${db}.${IDENTITIES_TABLE} ${columns} ENGINE = ReplacingMergeTree ${keys}`;
  const on = `ON CLUSTER ${quoteIdentifier(cluster, 'ClickHouse cluster')}`;
  return `CREATE TABLE IF NOT EXISTS ${db}.${IDENTITIES_TABLE} ${on} ${columns} ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/${IDENTITIES_TABLE}', '{replica}') ${keys}`;
}

/** Back-quotes a database or table name after checking it is a plain identifier. */
export function quoteIdentifier(name: string, what = 'ClickHouse name'): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new Error(`${what} "${name}" must be letters, digits and _ (not starting with a digit)`);
  }
  return `\`${name}\``;
}

interface ServerUrl {
  origin: string;
  username: string;
  password: string;
  database: string;
}

function parseServerUrl(url: string): ServerUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new Error(`ClickHouse URL "${url}" must be embedded:DIR or http(s)://user:pass@host:port/db`, {
      cause: e,
    });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`ClickHouse URL "${url}" must be embedded:DIR or http(s)://user:pass@host:port/db`);
  }
  const path = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, ''));
  return {
    origin: u.origin,
    username: u.username === '' ? 'default' : decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: path === '' ? DEFAULT_DATABASE : path,
  };
}
