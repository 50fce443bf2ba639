/**
 * `cxstream report`: the numbers it reads from the views on a small store worked out by hand, and
 * the file the CLI writes (through the endpoint of the process holding the store) opened in
 * headless Chromium: every chart drawn as SVG, nothing on the console, nothing fetched from the
 * network. The screenshots stay in test-artifacts/ (report.png, report-empty.png). Needs
 * `npm run build` (the CLI and the chart script are compiled) and Debian's chromium.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryServer } from '../../engine/query/queryServer.js';
import { collectReport } from '../../engine/report/reportData.js';
import { ensureSchema, openClickHouse } from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { renderPage } from '../harness/chromium.js';
import { runCli } from '../harness/cli.js';
import { eventRow as ev, triggerRow as trigger } from '../harness/eventRows.js';

const artifacts = resolve(import.meta.dirname, '../../test-artifacts');
const CHARTS = ['funnel', 'funnel-dimensions', 'scripts', 'trigger-response', 'complaints', 'staffing'];

let dir: string;
let store: string;
let client: ClickHouseClient;
let server: QueryServer;

const H = 3_600_000;
/** 2024-01-10 02:00 UTC = 10:00 in Shanghai. */
const T0 = Date.UTC(2024, 0, 10, 2);

/**
 *   r1 web/A/ad    session_start (east, local 10), cart +1h, order +2h (100)   → ordered
 *   r2 app/B       customer message (west, local 10), cart +1h                → carted
 *   r3 phone/B     call a day later (east, local 10), order +1h (50), no cart  → consulted
 *   k1 k2          complaints in east at 10:00 Shanghai; k3 in west at 13:00
 *   triggers       vip_routing r1 at T0 (r1 orders 2 h later), cart_abandoned r2 at +2h
 */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-report-'));
  store = join(dir, 'clickhouse');
  client = openClickHouse(`embedded:${store}`);
  await ensureSchema(client);
  const writer = new ClickHouseWriter(client, { flushIntervalMs: 10 });
  const east = { region: 'east', local_hour: 10 };
  await writer.writeEvents([
    ev('r1', 'session_start', T0, { ...east, variant: 'A', source: 'ad' }),
    ev('r1', 'add_to_cart', T0 + H, east),
    ev('r1', 'order', T0 + 2 * H, { ...east, amount: 100 }),
    ev('r2', 'message', T0, {
      channel: 'app',
      region: 'west',
      local_hour: 10,
      from: 'customer',
      variant: 'B',
    }),
    ev('r2', 'add_to_cart', T0 + H, { channel: 'app', region: 'west' }),
    ev('r3', 'call', T0 + 24 * H, { ...east, channel: 'phone', variant: 'B' }),
    ev('r3', 'order', T0 + 25 * H, { ...east, channel: 'phone', amount: 50 }),
    ev('k1', 'complaint', T0, east),
    ev('k2', 'complaint', T0 + 60_000, east),
    ev('k3', 'complaint', T0 + 3 * H, { region: 'west', local_hour: 13 }),
  ]);
  await writer.writeTriggers([trigger('vip_routing', 'r1', T0), trigger('cart_abandoned', 'r2', T0 + 2 * H)]);
  await writer.close();
  server = await QueryServer.start({ dir: store, port: 0, readonly: true });
  mkdirSync(artifacts, { recursive: true });
});

afterAll(async () => {
  await server?.close();
  await client?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('cxstream report', () => {
  it('reads every section from the views over the stored days', async () => {
    const data = await collectReport(client, { source: 'test', now: new Date(Date.UTC(2024, 5, 1)) });
    expect([data.from, data.to, data.days, data.tz]).toEqual([
      '2024-01-10',
      '2024-01-11',
      2,
      'Asia/Shanghai',
    ]);
    expect(data.totals).toEqual({ events: 10, customers: 6, orders: 2, revenue: 150, triggers: 2 });
    expect(data.funnel.find((r) => r.dimension === 'all')).toEqual({
      dimension: 'all',
      key: 'all',
      consulted: 3,
      added_to_cart: 2,
      ordered: 1,
      cart_pct: 66.7,
      cart_to_order_pct: 50,
      conversion_pct: 33.3,
    });
    // A: 1 of 1 (Wilson lower bound 20.7 %); B: 0 of 2
    expect(
      data.scripts.map((r) => [r.rank, r.variant, r.customers, r.ordered, r.conversion_low_pct]),
    ).toEqual([
      [1, 'A', 1, 1, 20.7],
      [2, 'B', 2, 0, 0],
    ]);
    expect(data.triggerResponse.map((r) => [r.rule, r.customers, r.response_pct])).toEqual([
      ['vip_routing', 1, 100],
      ['cart_abandoned', 1, 0],
    ]);
    expect(data.complaints).toEqual([
      { region: 'east', hour: 10, complaints: 2 },
      { region: 'west', hour: 13, complaints: 1 },
    ]);
    expect(data.staffing).toEqual([
      { local_hour: 10, channel: 'app', contacts: 1 },
      { local_hour: 10, channel: 'phone', contacts: 1 },
      { local_hour: 10, channel: 'web', contacts: 1 },
    ]);
    const day2 = await collectReport(client, { source: 'test', from: '2024-01-11', to: '2024-01-11' });
    expect(day2.totals).toEqual({ events: 2, customers: 1, orders: 1, revenue: 50, triggers: 0 });
    await expect(
      collectReport(client, { source: 't', from: '2024-01-12', to: '2024-01-11' }),
    ).rejects.toThrow(/--from 2024-01-12 is after --to 2024-01-11/);
  });

  it('writes one offline file whose charts all render in Chromium, through the process holding the store', async () => {
    const file = join(artifacts, 'report.html');
    const env = { CXSTREAM_CLICKHOUSE_URL: `embedded:${store}` };
    const cli = await runCli(['report', '--out', file], env);
    expect(cli.stderr).toContain(`through process ${process.pid} at ${server.url}`);
    expect([cli.code, cli.stdout]).toEqual([
      0,
      `report 2024-01-10 – 2024-01-11 (10 events, 6 customers): ${file}\n`,
    ]);
    const html = readFileSync(file, 'utf8');
    // Self-contained: nothing to load from anywhere.
    expect(html).not.toMatch(/<(script|link|img|iframe)[^>]+(src|href)=/i);
    expect(html).not.toMatch(/@import|url\(\s*['"]?https?:/i);
    expect(statSync(file).size).toBeLessThan(1_000_000);
    // The numbers are in the tables under the charts.
    expect(html).toContain(
      '<td>all</td><td>all</td><td class="n">3</td><td class="n">2</td><td class="n">1</td>',
    );
    const page = await renderPage(file, { screenshot: join(artifacts, 'report.png'), height: 4200 });
    expect(page.console).toEqual([]);
    expect(page.dom).toContain('<body data-charts="rendered">');
    expect(page.dom).toContain('<div id="report-errors"></div>');
    const figures = [
      ...page.dom.matchAll(/<figure class="chart" data-chart="([^"]+)"([^>]*)>([\s\S]*?)<\/figure>/g),
    ];
    expect(figures.map((f) => f[1])).toEqual(CHARTS);
    for (const [, name, attributes, inner] of figures) {
      expect(attributes, name).not.toContain('data-error');
      expect(inner, name).toMatch(/<svg[^>]*class="plot-[^"]*"/);
      // Marks were drawn: bars, cells or dots.
      expect(inner, name).toMatch(/<(rect|circle)\b/);
    }
    expect(statSync(join(artifacts, 'report.png')).size).toBeGreaterThan(20_000);
  });

  it('says so for a range without events instead of drawing empty charts', async () => {
    const file = join(artifacts, 'report-empty.html');
    const env = { CXSTREAM_CLICKHOUSE_URL: `embedded:${store}` };
    const cli = await runCli(['report', '--from', '2023-12-01', '--to', '2023-12-31', '--out', file], env);
    expect([cli.code, cli.stdout]).toEqual([
      0,
      `report 2023-12-01 – 2023-12-31 (no events in this range: the report says so): ${file}\n`,
    ]);
    const html = readFileSync(file, 'utf8');
    expect(html).toContain('id="empty-range"');
    expect(html).toContain('No events between 2023-12-01 and 2023-12-31');
    expect(html).not.toContain('<figure');
    expect(html).not.toContain('<script');
    const page = await renderPage(file, { screenshot: join(artifacts, 'report-empty.png'), height: 600 });
    expect(page.console).toEqual([]);
    expect(page.dom).not.toContain('<svg');
    const bad = await runCli(['report', '--from', '2024-02-30'], env);
    expect([bad.code, bad.stderr]).toEqual([
      2,
      'cxstream: --from must be a date like 2024-01-31 (got "2024-02-30")\n',
    ]);
  });
});
