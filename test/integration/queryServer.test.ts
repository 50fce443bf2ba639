/**
 * The query endpoint (engine/query/queryServer.ts) in this process, next to an engine-like writer
 * on the same embedded store, exercised with the official client (@clickhouse/client) and plain
 * HTTP: formats, query parameters, errors as ClickHouse reports them, read-only refusals, result
 * and time limits, passwords, compression, the queue, and queries while rows are being inserted.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClickHouseClient, ClickHouseError, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDPOINT_FILE, servedEndpoint } from '../../engine/query/queryEndpoint.js';
import { QueryServer } from '../../engine/query/queryServer.js';
import { ensureSchema, openClickHouse } from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { eventRow } from '../harness/eventRows.js';

let dir: string;
let store: string;
let engine: ClickHouseClient;
let server: QueryServer;
let client: ClickHouseClient;
const opened: Array<{ close(): Promise<void> }> = [];

const T0 = Date.UTC(2024, 0, 10, 9);

function clientOf(url: string, extra: Parameters<typeof createClient>[0] = {}): ClickHouseClient {
  const c = createClient({ url, log: { level: ClickHouseLogLevel.OFF }, ...extra });
  opened.push(c);
  return c;
}

async function start(options: Partial<Parameters<typeof QueryServer.start>[0]> = {}): Promise<QueryServer> {
  const s = await QueryServer.start({ dir: store, port: 0, readonly: true, ...options });
  opened.push(s);
  return s;
}

/** The error a client call rejects with. */
async function failure(p: Promise<unknown>): Promise<ClickHouseError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof ClickHouseError)) throw new Error(`expected a ClickHouseError, got ${String(e)}`);
  return e;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-qs-'));
  store = join(dir, 'clickhouse');
  engine = openClickHouse(`embedded:${store}`);
  await ensureSchema(engine);
  const writer = new ClickHouseWriter(engine, { flushIntervalMs: 10 });
  await writer.writeEvents([
    eventRow('c1', 'session_start', T0, { variant: 'A' }),
    eventRow('c1', 'add_to_cart', T0 + 1000),
    eventRow('c1', 'order', T0 + 2000, { amount: 5 }),
    eventRow('c2', 'message', T0, { from: 'customer', variant: 'B' }),
  ]);
  await writer.close();
  server = await start({ maxResultRows: 5, maxExecutionTimeSec: 1 });
  client = clientOf(server.url);
});

afterAll(async () => {
  for (const c of opened.reverse()) await c.close();
  await engine?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('query endpoint over the embedded store', () => {
  it('records where it serves in the store directory', () => {
    expect(JSON.parse(readFileSync(join(store, ENDPOINT_FILE), 'utf8'))).toEqual({
      url: server.url,
      pid: process.pid,
      readonly: true,
      password: false,
    });
    expect(servedEndpoint(store)?.url).toBe(server.url);
  });

  it('answers in JSON, JSONEachRow and TabSeparated', async () => {
    const json = await (
      await client.query({
        query: 'SELECT customer, count() AS n FROM cxstream.events FINAL GROUP BY customer ORDER BY customer',
        format: 'JSON',
      })
    ).json<{ customer: string; n: number }>();
    expect(json.data).toEqual([
      // UInt64 as JSON numbers: output_format_json_quote_64bit_integers is 0 in ClickHouse 26
      { customer: 'c1', n: 3 },
      { customer: 'c2', n: 1 },
    ]);
    expect(json.meta).toEqual([
      { name: 'customer', type: 'String' },
      { name: 'n', type: 'UInt64' },
    ]);
    expect(json.rows).toBe(2);
    const eachRow = await (
      await client.query({
        query:
          "SELECT key, consulted, ordered FROM cxstream.funnel(from_date = '2024-01-01', to_date = '2024-01-31') WHERE dimension = 'variant' ORDER BY key",
        format: 'JSONEachRow',
      })
    ).json();
    expect(eachRow).toEqual([
      { key: 'A', consulted: 1, ordered: 1 },
      { key: 'B', consulted: 1, ordered: 0 },
    ]);
    const tsv = await (
      await client.query({ query: "SELECT 'a\\tb' AS s, 2 AS n", format: 'TabSeparatedWithNames' })
    ).text();
    expect(tsv).toBe('s\tn\na\\tb\t2\n');
  });

  it("answers in Native, the format of clickhouse-go's HTTP protocol (Grafana's data source)", async () => {
    const res = await fetch(`${server.url}/?default_format=Native`, {
      method: 'POST',
      body: 'SELECT 1 AS x',
    });
    expect([res.status, res.headers.get('content-type')]).toEqual([200, 'application/octet-stream']);
    // One column, one row: "x" of type "UInt8", value 1.
    const bytes = [...new Uint8Array(await res.arrayBuffer())];
    expect(bytes).toEqual([1, 1, 1, ...Buffer.from('x'), 5, ...Buffer.from('UInt8'), 1]);
  });

  it('binds query parameters, in the URL and as a multipart form', async () => {
    const tricky = "tab\there, quote ' back\\slash, 发票";
    const query = 'SELECT {s:String} AS s, {n:UInt32} * 2 AS n, {a:Array(String)} AS a, {d:Date} AS d';
    const params = { s: tricky, n: 21, a: ["x'y", 'z'], d: '2024-01-31' };
    const expected = [{ s: tricky, n: 42, a: ["x'y", 'z'], d: '2024-01-31' }];
    expect(await (await client.query({ query, query_params: params, format: 'JSONEachRow' })).json()).toEqual(
      expected,
    );
    const multipart = clientOf(server.url, { use_multipart_params: true });
    expect(
      await (await multipart.query({ query, query_params: params, format: 'JSONEachRow' })).json(),
    ).toEqual(expected);
    // A parameterized view with its parameters bound from the request's.
    const rows = await (
      await client.query({
        query:
          'SELECT consulted FROM cxstream.funnel(from_date = {from:Date}, to_date = {to:Date}) WHERE dimension = {d:String}',
        query_params: { from: '2024-01-10', to: '2024-01-10', d: 'all' },
        format: 'JSONEachRow',
      })
    ).json();
    expect(rows).toEqual([{ consulted: 2 }]);
  });

  it('reports errors as ClickHouse does: status, X-ClickHouse-Exception-Code and the message', async () => {
    expect(await failure(client.query({ query: 'SELECT * FROM cxstream.nope' }))).toMatchObject({
      code: '60',
      type: 'UNKNOWN_TABLE',
    });
    expect(await failure(client.query({ query: 'SELEC 1' }))).toMatchObject({
      code: '62',
      type: 'SYNTAX_ERROR',
    });
    // A view parameter that is not a date: the engine's error, not a stack trace.
    expect(
      await failure(
        client.query({
          query: "SELECT * FROM cxstream.funnel(from_date = 'last week', to_date = '2024-01-31')",
        }),
      ),
    ).toMatchObject({ code: '38', type: 'CANNOT_PARSE_DATE' });
    const cases: Array<[string, number, string]> = [
      ['SELECT * FROM cxstream.nope', 404, '60'],
      ['SELEC 1', 400, '62'],
      ["SELECT * FROM cxstream.funnel(from_date = '2024-01-01')", 500, '456'],
      ['', 400, '62'],
    ];
    for (const [query, status, code] of cases) {
      const res = await fetch(`${server.url}/`, { method: 'POST', body: query });
      expect([res.status, res.headers.get('x-clickhouse-exception-code')]).toEqual([status, code]);
      expect(await res.text()).toMatch(
        new RegExp(`^Code: ${code}\\. DB::Exception: .*\\([A-Z_]+\\)\\n$`, 's'),
      );
    }
    const missing = await fetch(`${server.url}/play`);
    expect(missing.status).toBe(404);
  });

  it('answers curl-style GETs and health checks', async () => {
    expect(await (await fetch(`${server.url}/ping`)).text()).toBe('Ok.\n');
    expect(await (await fetch(`${server.url}/`)).text()).toBe('Ok.\n');
    const res = await fetch(
      `${server.url}/?query=${encodeURIComponent('SELECT count() FROM cxstream.events FINAL')}`,
    );
    expect([res.status, await res.text(), res.headers.get('x-clickhouse-format')]).toEqual([
      200,
      '4\n',
      'TabSeparated',
    ]);
    const json = await fetch(
      `${server.url}/?query=${encodeURIComponent('SELECT 1 AS one FORMAT JSONEachRow')}&add_http_cors_header=1`,
    );
    expect(json.headers.get('content-type')).toMatch(/json/);
    expect(json.headers.get('access-control-allow-origin')).toBe('*');
    expect(await json.json()).toEqual({ one: 1 });
  });

  it('refuses writes, DDL and changes of settings when read-only', async () => {
    const refused = [
      client.insert({
        table: 'cxstream.events',
        values: [{ id: 'x', customer: 'x' }],
        format: 'JSONEachRow',
      }),
      client.command({ query: 'CREATE TABLE cxstream.evil (x UInt8) ENGINE = Memory' }),
      client.command({ query: 'DROP TABLE cxstream.events' }),
      client.command({ query: "ALTER TABLE cxstream.events DELETE WHERE customer = 'c1'" }),
      client.query({ query: 'SELECT 1 SETTINGS readonly = 0' }),
      client.query({ query: 'SELECT 1', clickhouse_settings: { readonly: '0' } }),
    ];
    for (const e of await Promise.all(refused.map(failure)))
      expect(e).toMatchObject({ code: '164', type: 'READONLY' });
    const res = await fetch(`${server.url}/`, { method: 'POST', body: 'DROP TABLE cxstream.events' });
    expect([res.status, res.headers.get('x-clickhouse-exception-code')]).toEqual([403, '164']);
    const [n] = await (
      await engine.query({ query: 'SELECT count() AS n FROM cxstream.events', format: 'JSONEachRow' })
    ).json<{ n: number }>();
    expect(Number(n!.n)).toBe(4);
  });

  it('limits result size and execution time; a request may only lower the limits', async () => {
    const numbers = (n: number, settings = {}) =>
      client.query({
        query: `SELECT number FROM numbers(${n})`,
        format: 'JSONEachRow',
        clickhouse_settings: settings,
      });
    expect(await (await numbers(5)).json()).toHaveLength(5);
    expect(await failure(numbers(6))).toMatchObject({ code: '396', type: 'TOO_MANY_ROWS_OR_BYTES' });
    expect(await failure(numbers(6, { max_result_rows: '1000' }))).toMatchObject({ code: '396' });
    expect(await failure(numbers(6, { max_result_rows: '0' }))).toMatchObject({ code: '396' });
    expect(await failure(numbers(4, { max_result_rows: '3' }))).toMatchObject({ code: '396' });
    const started = Date.now();
    const slow = client.query({
      query: 'SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 0',
      clickhouse_settings: { max_threads: 1, max_execution_time: 100 },
    });
    expect(await failure(slow)).toMatchObject({ code: '159', type: 'TIMEOUT_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(10_000);
    const res = await fetch(`${server.url}/?query=${encodeURIComponent('SELECT number FROM numbers(6)')}`);
    expect([res.status, res.headers.get('x-clickhouse-exception-code')]).toEqual([500, '396']);
  });

  it('requires the password when one is set', async () => {
    const locked = await start({ password: 's3cret', user: 'analyst' });
    const anonymous = await fetch(`${locked.url}/?query=SELECT%201`);
    expect([anonymous.status, anonymous.headers.get('x-clickhouse-exception-code')]).toEqual([401, '194']);
    expect(
      await failure(
        clientOf(locked.url, { username: 'analyst', password: 'wrong' }).query({ query: 'SELECT 1' }),
      ),
    ).toMatchObject({ code: '516', type: 'AUTHENTICATION_FAILED' });
    expect(
      await failure(
        clientOf(locked.url, { username: 'default', password: 's3cret' }).query({ query: 'SELECT 1' }),
      ),
    ).toMatchObject({ code: '516' });
    const ok = clientOf(locked.url, { username: 'analyst', password: 's3cret' });
    expect(await (await ok.query({ query: 'SELECT 1 AS x', format: 'JSONEachRow' })).json()).toEqual([
      { x: 1 },
    ]);
    const headers = await fetch(`${locked.url}/?query=SELECT%202`, {
      headers: { 'X-ClickHouse-User': 'analyst', 'X-ClickHouse-Key': 's3cret' },
    });
    expect(await headers.text()).toBe('2\n');
  });

  it('compresses responses the client asks to be compressed', async () => {
    const gzip = clientOf(server.url, { compression: { response: true } });
    const rows = await (
      await gzip.query({ query: 'SELECT number FROM numbers(5)', format: 'JSONEachRow' })
    ).json();
    expect(rows).toHaveLength(5);
    const raw = await fetch(`${server.url}/?enable_http_compression=1`, {
      method: 'POST',
      body: 'SELECT 42',
      headers: { 'accept-encoding': 'br' },
    });
    expect(raw.headers.get('content-encoding')).toBe('br');
    expect(await raw.text()).toBe('42\n'); // fetch decodes br
  });

  it('queues queries beyond maxConcurrentQueries and refuses beyond the queue', async () => {
    const narrow = await start({ maxConcurrentQueries: 1, maxQueuedQueries: 1 });
    const c = clientOf(narrow.url);
    const sleeping = () =>
      c.query({ query: 'SELECT sleep(0.5)', format: 'TabSeparated' }).then((r) => r.text());
    const first = sleeping();
    await new Promise((r) => setTimeout(r, 100));
    const second = sleeping();
    await new Promise((r) => setTimeout(r, 50));
    const third = await failure(sleeping());
    expect(third).toMatchObject({ code: '202', type: 'TOO_MANY_SIMULTANEOUS_QUERIES' });
    expect(await first).toBe('0\n');
    expect(await second).toBe('0\n');
  });

  it('answers concurrent queries while the engine inserts', async () => {
    const writer = new ClickHouseWriter(engine, { flushIntervalMs: 5, maxBatchRows: 200 });
    const batches = 30;
    let done = false;
    const writing = (async () => {
      for (let b = 0; b < batches; b++) {
        await writer.writeEvents(
          Array.from({ length: 200 }, (_, i) =>
            eventRow(`w${i % 50}`, 'page_view', T0 + b * 1000 + i, { region: 'east' }),
          ),
        );
      }
      await writer.close();
      done = true;
    })();
    const seen: number[] = [];
    const reader = async () => {
      while (!done) {
        const [r] = await (
          await client.query({
            query: "SELECT count() AS n FROM cxstream.events WHERE region = 'east'",
            format: 'JSONEachRow',
          })
        ).json<{ n: string }>();
        seen.push(Number(r!.n));
      }
    };
    await Promise.all([writing, reader(), reader(), reader(), reader()]);
    const [last] = await (
      await client.query({
        query: "SELECT count() AS n FROM cxstream.events FINAL WHERE region = 'east'",
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    expect(Number(last!.n)).toBe(batches * 200);
    expect(seen.length).toBeGreaterThan(4);
    expect(seen.every((n) => n % 200 === 0 && n <= batches * 200)).toBe(true);
  });

  it('removes its record when it stops', async () => {
    const s = await QueryServer.start({ dir: store, port: 0, readonly: true });
    expect(servedEndpoint(store)?.url).toBe(s.url);
    await s.close();
    expect(existsSync(join(store, ENDPOINT_FILE))).toBe(false);
    expect(servedEndpoint(store)).toBeNull();
  });
});
