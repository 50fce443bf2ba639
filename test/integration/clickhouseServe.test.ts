/**
 * `cxstream clickhouse serve` as its own process (the compiled CLI: `npm run build` first): an
 * engine's ClickHouse writer and schema over HTTP against it, the server SIGKILLed and started again
 * on the same directory and port while rows flow, and `cxstream funnel` reading through it while it
 * holds the store.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDPOINT_FILE } from '../../engine/query/queryEndpoint.js';
import type { EventRow, Trigger } from '../../operators/types.js';
import { ensureSchema } from '../../sinks/clickhouse.js';
import { EVENT_COLUMNS, encodeRows } from '../../sinks/clickhouseRows.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { check } from '../harness/check.js';
import { freePort, runCli, ServeProcess } from '../harness/cli.js';
import { eventRow } from '../harness/eventRows.js';

let dir: string;
let store: string;
let port: number;
let server: ServeProcess;
const clients: ClickHouseClient[] = [];

const T0 = Date.UTC(2024, 0, 10, 9);

/** A client as the engine opens one for an http:// URL, optionally compressing its inserts. */
function http(compressRequests = false): ClickHouseClient {
  const c = createClient({
    url: `http://127.0.0.1:${port}`,
    request_timeout: 30_000,
    compression: { request: compressRequests },
    log: { level: ClickHouseLogLevel.OFF },
  });
  clients.push(c);
  return c;
}

async function count(client: ClickHouseClient, query: string): Promise<number> {
  const [r] = await (await client.query({ query, format: 'JSONEachRow' })).json<{ n: string }>();
  return Number(r!.n);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-serve-'));
  store = join(dir, 'clickhouse');
  port = await freePort();
  server = await ServeProcess.start(store, port);
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function trigger(i: number): Trigger {
  return {
    id: `r:c${i}:${i}`,
    rule: 'cart_abandoned',
    customer: `c${i}`,
    firedAt: T0 + i,
    eventTime: T0 + i,
    reason: 'test',
    priority: 1,
    payload: { i },
    profile: {},
    subject: 'cx.triggers.cart_abandoned',
  };
}

describe('cxstream clickhouse serve', () => {
  it("takes an engine's schema and inserts over HTTP: both formats, encoded rows, compressed bodies", async () => {
    const client = http();
    await ensureSchema(client);
    await ensureSchema(client);
    const rows = (from: number, n: number): EventRow[] =>
      Array.from({ length: n }, (_, i) =>
        eventRow(`c${(from + i) % 7}`, 'page_view', T0 + from + i, { text: '发票 "q" \\' }),
      );
    const compact = new ClickHouseWriter(client, { flushIntervalMs: 10 });
    await Promise.all([
      compact.writeEncodedEvents(encodeRows(rows(0, 100), EVENT_COLUMNS, 'JSONCompactEachRow')),
      compact.writeEvents(rows(100, 100)),
      compact.writeTriggers([trigger(1), trigger(2)]),
      compact.writeProfiles([
        {
          customer: 'c1',
          updated_at: T0,
          tier: 'VIP',
          rfm_score: 1,
          spend: 2,
          orders: 3,
          tags: ['a'],
          profile: '{}',
        },
      ]),
    ]);
    await compact.close();
    const eachRow = new ClickHouseWriter(http(true), { flushIntervalMs: 10, format: 'JSONEachRow' });
    await Promise.all([
      eachRow.writeEncodedEvents(encodeRows(rows(200, 100), EVENT_COLUMNS, 'JSONEachRow')),
      eachRow.writeEvents(rows(300, 100)),
    ]);
    await eachRow.close();
    expect(await count(client, 'SELECT count() AS n FROM cxstream.events FINAL')).toBe(400);
    expect(
      await count(client, 'SELECT count() AS n FROM cxstream.events WHERE text = \'发票 "q" \\\\\''),
    ).toBe(400);
    expect(await count(client, 'SELECT count() AS n FROM cxstream.triggers FINAL')).toBe(2);
    expect(await count(client, 'SELECT count() AS n FROM cxstream.profiles FINAL')).toBe(1);
    // GET only reads, as in ClickHouse; the same INSERT as a POST is taken.
    const insert = `INSERT INTO cxstream.profiles (customer, updated_at) VALUES ('g', 1)`;
    const get = await fetch(`http://127.0.0.1:${port}/?query=${encodeURIComponent(insert)}`);
    expect([get.status, get.headers.get('x-clickhouse-exception-code')]).toEqual([403, '164']);
    expect((await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: insert })).status).toBe(200);
    expect(await count(client, 'SELECT count() AS n FROM cxstream.profiles FINAL')).toBe(2);
  });

  it('loses nothing when killed and started again on the same directory and port while rows flow', async () => {
    const client = http();
    const before = await count(client, 'SELECT count() AS n FROM cxstream.events FINAL');
    const failures: string[] = [];
    const writer = new ClickHouseWriter(client, {
      flushIntervalMs: 20,
      maxBatchRows: 500,
      retry: { initialMs: 50, maxMs: 500 },
      onError: (e) => failures.push(e.message),
    });
    const total = 40 * 250;
    const writing = (async () => {
      for (let b = 0; b < 40; b++) {
        await writer.writeEncodedEvents(
          encodeRows(
            Array.from({ length: 250 }, (_, i) =>
              eventRow(`k${i % 13}`, 'order', T0 + 1_000_000 + b * 250 + i),
            ),
            EVENT_COLUMNS,
            'JSONCompactEachRow',
          ),
        );
      }
    })();
    await check(
      async () => (await count(client, 'SELECT count() AS n FROM cxstream.events')) > before + 2000,
      30_000,
    );
    await server.kill();
    await check(() => failures.length > 0, 10_000);
    expect(existsSync(join(store, ENDPOINT_FILE))).toBe(true); // left behind by the killed process
    server = await ServeProcess.start(store, port);
    await writing;
    await writer.close();
    expect(await count(client, 'SELECT count() AS n FROM cxstream.events FINAL')).toBe(before + total);
    expect(failures.length).toBeGreaterThan(0);
  });

  it('is where cxstream funnel reads a store it holds; a second process cannot open the store', async () => {
    const client = http();
    const writer = new ClickHouseWriter(client, { flushIntervalMs: 10 });
    await writer.writeEvents([
      eventRow('f1', 'session_start', T0, { variant: 'A' }),
      eventRow('f1', 'add_to_cart', T0 + 1000),
      eventRow('f1', 'order', T0 + 2000),
      eventRow('f2', 'session_start', T0, { variant: 'B' }),
    ]);
    await writer.close();
    const env = { CXSTREAM_CLICKHOUSE_URL: `embedded:${store}` };
    const funnel = await runCli(
      ['funnel', '--by', 'variant', '--from', '2024-01-10', '--to', '2024-01-10'],
      env,
    );
    expect(funnel.stderr).toContain(`through process`);
    expect(funnel.stderr).toContain(server.url);
    expect(funnel.code).toBe(0);
    expect(funnel.stdout.split('\n').slice(2, 4)).toEqual([
      'A                1              1        1     100.0%      100.0%',
      'B                1              0        0       0.0%        0.0%',
    ]);
    const second = await runCli(['clickhouse', 'serve', '--dir', store, '--port', String(await freePort())]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/the store .* is held by process \d+/);
    // Stopped, it removes its record, and funnel opens the directory itself.
    expect(await server.stop()).toBe(0);
    expect(existsSync(join(store, ENDPOINT_FILE))).toBe(false);
    const direct = await runCli(['funnel', '--from', '2024-01-10', '--to', '2024-01-10'], env);
    expect(direct.code).toBe(0);
    expect(direct.stderr).not.toContain('through process');
    expect(direct.stdout).toMatch(/^all\s+2\s+1\s+1/m);
    server = await ServeProcess.start(store, port);
  });

  it("lets cxstream funnel find the demo's store when the default one does not exist", async () => {
    const cwd = join(dir, 'checkout');
    const demo = await ServeProcess.start(join(cwd, '.cxstream/demo/clickhouse'), await freePort());
    const client = createClient({ url: demo.url, log: { level: ClickHouseLogLevel.OFF } });
    await ensureSchema(client);
    const writer = new ClickHouseWriter(client, { flushIntervalMs: 10 });
    await writer.writeEvents([eventRow('d1', 'call', T0), eventRow('d1', 'order', T0 + 1000)]);
    await writer.close();
    await client.close();
    // While the demo's store is held (demo --serve), and once it is not.
    const unset = { CXSTREAM_CLICKHOUSE_URL: '' };
    for (const holder of ['served', 'closed']) {
      if (holder === 'closed') expect(await demo.stop()).toBe(0);
      const funnel = await runCli(['funnel'], unset, { cwd });
      expect(funnel.stderr).toContain(
        'reading embedded store ./.cxstream/demo/clickhouse (the data of `cxstream demo`: nothing in ./.cxstream/clickhouse yet)',
      );
      expect(funnel.stdout).toMatch(/^all\s+1\s+0\s+0/m);
    }
    expect(existsSync(join(cwd, '.cxstream/clickhouse'))).toBe(false);
    const explicit = await runCli(
      ['funnel'],
      { CXSTREAM_CLICKHOUSE_URL: 'embedded:./.cxstream/clickhouse' },
      { cwd },
    );
    expect(explicit.code).toBe(1);
    expect(explicit.stderr).toContain(
      'cxstream: no data in the embedded ClickHouse store ./.cxstream/clickhouse: ',
    );
  });
});
