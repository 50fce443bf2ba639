/**
 * The schema's DDL as text: one server gets exactly the statements of the version before
 * `clickhouse.cluster` existed (test/golden/clickhouseSchema.single.json); a cluster gets every
 * statement ON CLUSTER, Replicated local tables with the same columns and keys, Distributed tables
 * under the single-server names over them, sharded by customer, and the views over those names.
 * test/integration/clickhouseCluster.test.ts parses and runs the cluster DDL in chDB.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  identitiesTableDdl,
  LOCAL_SUFFIX,
  SHARDING_KEY,
  schemaDdl,
  TABLE_NAMES,
} from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { VIEW_NAMES } from '../../sinks/views.js';

const golden = JSON.parse(
  readFileSync(new URL('../golden/clickhouseSchema.single.json', import.meta.url), 'utf8'),
) as string[];

const single = schemaDdl('cxstream');
const cluster = schemaDdl('cxstream', { cluster: 'analytics' });
const ON = 'ON CLUSTER `analytics`';

/** The statement that starts with `prefix` (exactly one). */
function one(statements: string[], prefix: string): string {
  const found = statements.filter((s) => s.startsWith(prefix));
  expect(found, prefix).toHaveLength(1);
  return found[0]!;
}

/** Column list and keys of a CREATE TABLE: what follows the engine name is compared apart. */
function parts(ddl: string): { columns: string; keys: string } {
  const columns = ddl.slice(ddl.indexOf('(') + 1, ddl.indexOf(') ENGINE = '));
  const keys = ddl.slice(ddl.indexOf('PARTITION BY'));
  return { columns, keys };
}

describe('ClickHouse schema DDL', () => {
  it('one server: the statements of the previous version, unchanged', () => {
    expect(schemaDdl('cxstream', { cluster: '' })).toEqual(golden);
    expect(single).toEqual(golden);
    expect(single.join('\n')).not.toMatch(/ON CLUSTER|Replicated|Distributed|_local/);
  });

  it('a cluster: every statement is ON CLUSTER the named cluster', () => {
    // database + (local + distributed) per table + 2 migrations on each of events_local and events + views
    expect(cluster).toHaveLength(1 + 2 * TABLE_NAMES.length + 4 + VIEW_NAMES.length);
    for (const ddl of cluster) expect(ddl).toMatch(/ ON CLUSTER `analytics`( |$)/);
    expect(cluster[0]).toBe(`CREATE DATABASE IF NOT EXISTS \`cxstream\` ${ON}`);
  });

  it('local tables: ReplicatedReplacingMergeTree under {shard}/{replica}, same columns, partitions and sorting keys', () => {
    for (const table of TABLE_NAMES) {
      const local = `${table}${LOCAL_SUFFIX}`;
      const ddl = one(cluster, `CREATE TABLE IF NOT EXISTS \`cxstream\`.${local} ${ON} (`);
      expect(ddl).toContain(
        `ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/${local}', '{replica}')`,
      );
      const today = one(single, `CREATE TABLE IF NOT EXISTS \`cxstream\`.${table} (`);
      expect(today).toContain(') ENGINE = ReplacingMergeTree\n');
      expect(parts(ddl)).toEqual(parts(today));
      // the sharding key's column is in the sorting key: duplicates are on one shard, in one part range
      expect(parts(ddl).keys).toMatch(/ORDER BY \((\w+, )*customer[,)]/);
    }
  });

  it('Distributed tables under the single-server names, over the locals, sharded by customer', () => {
    expect(SHARDING_KEY).toBe('cityHash64(customer)');
    for (const table of TABLE_NAMES) {
      const ddl = one(cluster, `CREATE TABLE IF NOT EXISTS \`cxstream\`.${table} ${ON} `);
      expect(ddl).toBe(
        `CREATE TABLE IF NOT EXISTS \`cxstream\`.${table} ${ON} AS \`cxstream\`.${table}_local
    ENGINE = Distributed('analytics', 'cxstream', '${table}_local', cityHash64(customer))`,
      );
    }
    // the locals come first: a Distributed table copies its columns from its local table
    const order = cluster.map((s) => s.split(/\s+/)[5]);
    for (const table of TABLE_NAMES)
      expect(order.indexOf(`\`cxstream\`.${table}_local`)).toBeLessThan(
        order.indexOf(`\`cxstream\`.${table}`),
      );
  });

  it('migrations reach both the local and the Distributed events table', () => {
    const alters = cluster.filter((s) => s.startsWith('ALTER TABLE'));
    const todays = single.filter((s) => s.startsWith('ALTER TABLE'));
    expect(alters).toEqual([
      ...todays.map((s) => s.replace('`cxstream`.events ', `\`cxstream\`.events_local ${ON} `)),
      ...todays.map((s) => s.replace('`cxstream`.events ', `\`cxstream\`.events ${ON} `)),
    ]);
  });

  it('views: the same bodies, ON CLUSTER, reading the Distributed names', () => {
    const views = cluster.filter((s) => s.startsWith('CREATE OR REPLACE VIEW'));
    const todays = single.filter((s) => s.startsWith('CREATE OR REPLACE VIEW'));
    expect(views).toHaveLength(VIEW_NAMES.length);
    expect(views).toEqual(todays.map((s) => s.replace(/^(CREATE OR REPLACE VIEW \S+) AS /, `$1 ${ON} AS `)));
    for (const v of views) {
      expect(v).not.toContain(LOCAL_SUFFIX);
      expect(v).toMatch(/`cxstream`\.(events|triggers|funnel)\b/);
    }
  });

  it('names the database in the Distributed engine and the cluster as given', () => {
    const ddl = schemaDdl('cx_prod', { cluster: 'two_shards' });
    expect(one(ddl, 'CREATE TABLE IF NOT EXISTS `cx_prod`.profiles ')).toContain(
      "Distributed('two_shards', 'cx_prod', 'profiles_local', cityHash64(customer))",
    );
  });

  it('refuses a cluster name that is not a plain identifier', () => {
    expect(() => schemaDdl('cxstream', { cluster: "x', 'y" })).toThrow(
      `ClickHouse cluster "x', 'y" must be letters, digits and _ (not starting with a digit)`,
    );
    expect(() => schemaDdl('cxstream', { cluster: '1st' })).toThrow(/ClickHouse cluster "1st"/);
  });
});

describe('ClickHouseWriter on Distributed tables', () => {
  /** A client that records each insert's settings and succeeds. */
  function recordingClient() {
    const settings: Array<Record<string, unknown> | undefined> = [];
    const client = {
      insert: async (p: { clickhouse_settings?: Record<string, unknown> }) => {
        settings.push(p.clickhouse_settings);
      },
      exec: async (p: { clickhouse_settings?: Record<string, unknown> }) => {
        settings.push(p.clickhouse_settings);
        return { stream: (async function* () {})() };
      },
    };
    return { client: client as never, settings };
  }

  const trigger = {
    id: 't1',
    rule: 'r',
    customer: 'c1',
    firedAt: 1,
    eventTime: 1,
    priority: 1,
    reason: '',
    subject: 'cx.triggers.r',
    payload: {},
    profile: {},
  } as never;

  it('every insert waits for the shards (insert_distributed_sync=1) on a cluster, and only there', async () => {
    for (const [distributed, format] of [
      [true, 'JSONCompactEachRow'],
      [true, 'JSONEachRow'],
      [false, 'JSONCompactEachRow'],
    ] as const) {
      const { client, settings } = recordingClient();
      const w = new ClickHouseWriter(client, { distributed, format, flushIntervalMs: 10 });
      await w.writeTriggers([trigger]);
      await w.writeEncodedEvents({ format, bytes: new TextEncoder().encode('[]\n'), length: 1 });
      await w.close();
      expect(settings).toHaveLength(2);
      for (const s of settings)
        expect(s?.insert_distributed_sync, `${distributed} ${format}`).toBe(distributed ? 1 : undefined);
    }
  });

  it('refuses chDB raw inserts into Distributed tables', () => {
    expect(() => new ClickHouseWriter({} as never, { distributed: true, rawInsert: async () => {} })).toThrow(
      'rawInsert is chDB (one process): it cannot insert into Distributed tables',
    );
  });

  it('the identities table: one ReplacingMergeTree, on a cluster replicated on every server (not sharded)', () => {
    expect(identitiesTableDdl('cxstream')).toMatch(
      /^CREATE TABLE IF NOT EXISTS `cxstream`\.identities \(.*\) ENGINE = ReplacingMergeTree ORDER BY \(customer, alias, seq\)$/s,
    );
    expect(identitiesTableDdl('cxstream', 'analytics')).toContain(`identities ${ON} (`);
    expect(identitiesTableDdl('cxstream', 'analytics')).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/identities', '{replica}') ORDER BY (customer, alias, seq)",
    );
  });
});
