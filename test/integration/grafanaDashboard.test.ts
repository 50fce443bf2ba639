/**
 * docs/grafana-dashboard.json: a dashboard for Grafana's ClickHouse data source. No Grafana runs
 * here, so this checks what can go wrong on our side: the JSON is a dashboard of that data source,
 * and every panel's SQL, with the data source's macros expanded as the plugin expands them, runs on
 * the real engine against the shipped views and returns rows.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSchema, openClickHouse } from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { eventRow as ev, triggerRow } from '../harness/eventRows.js';

interface Panel {
  id: number;
  title: string;
  datasource: { type: string };
  targets: Array<{ rawSql: string; datasource: { type: string } }>;
}
const dashboard = JSON.parse(
  readFileSync(resolve(import.meta.dirname, '../../docs/grafana-dashboard.json'), 'utf8'),
) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; query: string }> };
};

let dir: string;
let client: ClickHouseClient;
const T0 = Date.UTC(2024, 0, 10, 2);
const H = 3_600_000;
/** The dashboard's time range in the test: all of January 2024 (epoch seconds, as the plugin uses). */
const FROM = Date.UTC(2024, 0, 1) / 1000;
const TO = Date.UTC(2024, 1, 1) / 1000 - 1;

/** The dashboard's variable for the funnel split. */
const DIMENSION = /\$\{dimension\}/g;

/** Grafana's and the ClickHouse plugin's substitutions: $__timeFilter, $__fromTime, $__toTime, variables. */
function expand(sql: string, dimension: string): string {
  return sql
    .replace(/\$__timeFilter\((\w+)\)/g, `$1 >= toDateTime(${FROM}) AND $1 <= toDateTime(${TO})`)
    .replaceAll('$__fromTime', `toDateTime(${FROM})`)
    .replaceAll('$__toTime', `toDateTime(${TO})`)
    .replace(DIMENSION, dimension);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-grafana-'));
  client = openClickHouse(`embedded:${dir}/clickhouse`);
  await ensureSchema(client);
  const writer = new ClickHouseWriter(client, { flushIntervalMs: 10 });
  const s = { session: 's1', agent: 'a1', region: 'east', local_hour: 10 };
  await writer.writeEvents([
    ev('c1', 'page_view', T0 - H, { source: 'ad', category: 'baby', region: 'east' }),
    ev('c1', 'page_view', T0 - H + 1, { category: 'baby' }),
    ev('c1', 'page_view', T0 - H + 2, { category: 'baby' }),
    ev('c1', 'session_start', T0, { ...s, variant: 'A' }),
    ev('c1', 'message', T0 + 1, { ...s, from: 'customer', sku: 'X', intent: 'quality', sentiment: -0.5 }),
    ev('c1', 'ticket', T0 + 2, { ...s, status: 'open', ticket_id: 'T1' }),
    ev('c1', 'session_end', T0 + 600_000, s),
    ev('c1', 'add_to_cart', T0 + H),
    ev('c1', 'order', T0 + 2 * H, { amount: 10 }),
    ev('c2', 'complaint', T0, { region: 'west' }),
  ]);
  await writer.writeTriggers([triggerRow('cart_abandoned', 'c1', T0 + H / 2)]);
  await writer.close();
});

afterAll(async () => {
  await client?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('docs/grafana-dashboard.json', () => {
  it("is a dashboard of Grafana's ClickHouse data source, picked by a variable", () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.datasource.type, p.title).toBe('grafana-clickhouse-datasource');
      for (const t of p.targets) expect(t.datasource.type, p.title).toBe('grafana-clickhouse-datasource');
    }
    expect(dashboard.templating.list.map((v) => [v.name, v.query])).toEqual([
      ['datasource', 'grafana-clickhouse-datasource'],
      ['dimension', 'channel,source,variant'],
    ]);
  });

  it('has panels whose SQL runs on the views and returns rows', async () => {
    const empty: string[] = [];
    for (const p of dashboard.panels) {
      for (const dimension of p.targets[0]!.rawSql.replace(DIMENSION, '') !== p.targets[0]!.rawSql
        ? ['channel', 'source', 'variant']
        : ['-']) {
        const query = expand(p.targets[0]!.rawSql, dimension);
        const rows = await (
          await client.query({ query, format: 'JSONEachRow' }).catch((e: Error) => {
            throw new Error(`panel "${p.title}": ${e.message}\n${query}`);
          })
        ).json();
        if (rows.length === 0) empty.push(`${p.title} (${dimension})`);
      }
    }
    expect(empty).toEqual([]);
  });
});
