/**
 * The cluster schema (`clickhouse.cluster`) against a real ClickHouse parser and engine, chDB: no
 * server cluster can run here (no Keeper, no remote_servers), so
 * - every statement is parsed as it is (formatQuery), ON CLUSTER and engines included;
 * - then run with stand-ins for what needs a cluster: ON CLUSTER dropped, a plain ReplacingMergeTree
 *   for ReplicatedReplacingMergeTree (same columns and keys), a Merge table over the local table for
 *   the Distributed one (same name, columns copied the same way, FINAL passed to the local table).
 *   The local tables must come out as the single-server tables, and every view must give the same
 *   answers over them as over a single-server schema holding the same rows, each inserted twice.
 * What the stand-ins cannot check (Keeper paths, macros, sharding, the Distributed engine) is
 * covered as text by test/unit/clickhouseSchema.test.ts and documented in docs/CLICKHOUSE.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, defaultConfig } from '../../engine/config/config.js';
import { isSettingError } from '../../engine/config/errors.js';
import { openSinks } from '../../engine/runtime/openSinks.js';
import { ensureSchema, openClickHouse, schemaDdl, TABLE_NAMES } from '../../sinks/clickhouse.js';
import { VIEW_NAMES } from '../../sinks/views.js';
import { eventRow } from '../harness/eventRows.js';

let dir: string;
let client: ClickHouseClient;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-chcluster-'));
  client = openClickHouse(`embedded:${dir}/clickhouse`);
});

afterAll(async () => {
  await client?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function rows<T>(query: string): Promise<T[]> {
  return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
}

/** chDB's parse and format of `sql`; rejects a syntax error. */
async function formatQuery(sql: string): Promise<string> {
  const result = await client.query({
    query: 'SELECT formatQuery({sql:String}) AS f',
    query_params: { sql },
    format: 'JSONEachRow',
  });
  const [r] = await result.json<{ f: string }>();
  return r!.f;
}

/** `statement` with the stand-ins for a cluster; throws when a rewrite does not apply. */
function standIn(statement: string, cluster: string, db: string): string {
  const on = ` ON CLUSTER \`${cluster}\``;
  if (!statement.includes(on)) throw new Error(`no ON CLUSTER in: ${statement.slice(0, 80)}`);
  let s = statement.replace(on, '');
  const replicated =
    /ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/(\w+)', '\{replica\}'\)/;
  const distributed = new RegExp(
    `ENGINE = Distributed\\('${cluster}', '${db}', '(\\w+)', cityHash64\\(customer\\)\\)`,
  );
  if (replicated.test(s)) s = s.replace(replicated, 'ENGINE = ReplacingMergeTree');
  else if (distributed.test(s))
    s = s.replace(distributed, (_, local: string) => `ENGINE = Merge('${db}', '^${local}$')`);
  else if (/ENGINE|Replicated|Distributed/.test(s))
    throw new Error(`unexpected engine in: ${s.slice(0, 200)}`);
  return s;
}

const T0 = Date.UTC(2024, 0, 10, 9);
const H = 3_600_000;

/** A few customers across the views' inputs: contacts, carts, orders, complaints, a session with a ticket. */
function sampleEvents() {
  const e = eventRow;
  return [
    e('c1', 'session_start', T0, { session: 's1', variant: 'A', source: 'ad' }),
    e('c1', 'message', T0 + 60_000, { session: 's1', sentiment: 0.5, sku: 'k1', intent: 'size' }),
    e('c1', 'ticket', T0 + 120_000, { session: 's1', ticket_id: 'tk1', status: 'open', agent: 'ann' }),
    e('c1', 'session_end', T0 + 180_000, { session: 's1' }),
    e('c1', 'add_to_cart', T0 + H, { category: 'baby' }),
    e('c1', 'order', T0 + 2 * H, { amount: 30, category: 'baby' }),
    e('c2', 'call', T0, { channel: 'phone', variant: 'B', region: 'north' }),
    e('c2', 'complaint', T0 + H, { region: 'north', sku: 'k1', intent: 'late' }),
    e('c2', 'ticket', T0 + 3 * H, { ticket_id: 'tk1', status: 'resolved' }),
    e('c3', 'page_view', T0, { category: 'baby' }),
    e('c3', 'page_view', T0 + H, { category: 'baby' }),
  ].map((r) => ({ ...r, local_hour: 17 }));
}

function sampleTriggers() {
  return [
    {
      id: 'tr1',
      rule: 'cart_abandon',
      customer: 'c1',
      fired_at: T0 + H,
      event_time: T0 + H,
      priority: 1,
      reason: 'cart',
      subject: 'cx.triggers.cart_abandon',
      payload: '{}',
      profile: '{}',
    },
  ];
}

function sampleProfiles() {
  return [
    {
      customer: 'c1',
      updated_at: T0 + 2 * H,
      tier: 'gold',
      rfm_score: 4,
      spend: 30,
      orders: 1,
      tags: ['baby'],
      profile: '{}',
    },
  ];
}

/** Inserts the samples twice (merges stopped), into `<table><suffix>` of `db`. */
async function insertTwice(db: string, suffix: string): Promise<void> {
  const values: Record<string, object[]> = {
    events: sampleEvents(),
    triggers: sampleTriggers(),
    profiles: sampleProfiles(),
  };
  for (const t of TABLE_NAMES) {
    await client.command({ query: `SYSTEM STOP MERGES ${db}.${t}${suffix}` });
    for (let i = 0; i < 2; i++)
      await client.insert({ table: `${db}.${t}${suffix}`, values: values[t]!, format: 'JSONEachRow' });
  }
}

/** Every view's rows, sorted (parameterized ones over January 2024). */
async function viewResults(db: string): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const v of VIEW_NAMES) {
    const params = ['complaint_hotspots', 'staffing_load'].includes(v)
      ? ''
      : "(from_date = '2024-01-01', to_date = '2024-01-31')";
    const r = await rows<Record<string, unknown>>(`SELECT * FROM ${db}.${v}${params}`);
    out[v] = r.map((x) => JSON.stringify(x)).sort();
  }
  return out;
}

describe('cluster schema in chDB', () => {
  const cluster = 'analytics';

  it('every statement parses, ON CLUSTER and engines as written', async () => {
    const ddl = schemaDdl('cxc', { cluster });
    const formatted: string[] = [];
    for (const statement of ddl) {
      const f = await formatQuery(statement);
      expect(f).toContain('ON CLUSTER analytics');
      formatted.push(f);
    }
    expect(formatted[1]).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')",
    );
    expect(formatted[2]).toContain(
      "ENGINE = Distributed('analytics', 'cxc', 'events_local', cityHash64(customer))",
    );
    // the parser does catch a typo: a column list cut short is refused
    await expect(formatQuery(ddl[1]!.slice(0, 120))).rejects.toThrow(/Syntax error/);
  });

  it('runs with stand-ins: local tables like the single-server ones, views answer the same, duplicates collapse', async () => {
    await ensureSchema(client, 'cxs');
    for (const statement of schemaDdl('cxc', { cluster }))
      await client.command({ query: standIn(statement, cluster, 'cxc') });

    const tables = await rows<{
      database: string;
      name: string;
      engine: string;
      partition_key: string;
      sorting_key: string;
    }>(
      "SELECT database, name, engine, partition_key, sorting_key FROM system.tables WHERE database IN ('cxs', 'cxc') AND engine NOT IN ('View') ORDER BY database, name",
    );
    for (const t of TABLE_NAMES) {
      const today = tables.find((x) => x.database === 'cxs' && x.name === t)!;
      const local = tables.find((x) => x.database === 'cxc' && x.name === `${t}_local`)!;
      expect(local.engine).toBe('ReplacingMergeTree');
      expect([local.partition_key, local.sorting_key]).toEqual([today.partition_key, today.sorting_key]);
      expect(tables.find((x) => x.database === 'cxc' && x.name === t)!.engine).toBe('Merge');
      const columns = (db: string, name: string) =>
        rows<{ name: string; type: string; default_expression: string }>(
          `SELECT name, type, default_expression FROM system.columns WHERE database = '${db}' AND table = '${name}' ORDER BY position`,
        );
      const todayColumns = await columns('cxs', t);
      expect(await columns('cxc', `${t}_local`)).toEqual(todayColumns);
      expect(await columns('cxc', t)).toEqual(todayColumns);
    }

    await insertTwice('cxs', '');
    await insertTwice('cxc', '_local');
    for (const t of TABLE_NAMES) {
      const [plain] = await rows<{ n: string }>(`SELECT count() AS n FROM cxc.${t}`);
      const [final] = await rows<{ n: string }>(`SELECT count() AS n FROM cxc.${t} FINAL`);
      const expected = { events: 11, triggers: 1, profiles: 1 }[t];
      expect([Number(plain!.n), Number(final!.n)], t).toEqual([2 * expected, expected]);
    }
    const single = await viewResults('cxs');
    const standIns = await viewResults('cxc');
    expect(standIns).toEqual(single);
    // the views do see the rows (an empty answer everywhere would compare equal too)
    for (const v of [
      'funnel',
      'complaint_hotspots',
      'service_quality',
      'category_interest',
      'trigger_response',
    ])
      expect(single[v], v).not.toHaveLength(0);
  });

  it('a cluster the server does not know: the engine start names clickhouse.cluster, not retryable', async () => {
    // loadConfig refuses a cluster over embedded:DIR; the config is built by hand to reach a real
    // server's answer (chDB has no remote_servers: every cluster is unknown to it)
    const base = defaultConfig();
    const config: Config = {
      ...base,
      clickhouse: {
        ...base.clickhouse,
        url: `embedded:${dir}/clickhouse`,
        cluster: 'analytics',
        serve: { ...base.clickhouse.serve, port: 0 },
      },
    };
    const error = await openSinks(config, null).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSettingError(error)).toBe(true);
    expect(error).toMatchObject({ setting: 'clickhouse.cluster', system: 'ClickHouse', retryable: false });
    expect((error as Error).message).toMatch(
      /^the ClickHouse cluster analytics \(clickhouse\.cluster \/ CXSTREAM_CLICKHOUSE_CLUSTER\) is not in the remote_servers of ClickHouse at embedded:\S+ \(clickhouse\.url \/ CXSTREAM_CLICKHOUSE_URL\): Requested cluster 'analytics' not found/,
    );
  });
});
