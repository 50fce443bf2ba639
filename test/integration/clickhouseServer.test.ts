/**
 * The HTTP path of the ClickHouse sink against a real server: Debian's clickhouse-server, killed
 * while rows are being written and started again. The writer must retry with capped back-off,
 * hold writers back at the memory bound, and lose no row.
 *
 * Why the table here is not the one ensureSchema creates: the server packaged by Debian is 18.16,
 * which has no DateTime64 and needs a setting for LowCardinality. So `ts` is UInt64 epoch
 * milliseconds (the writer sends epoch ms, which DateTime64(3) reads as the same instant and
 * UInt64 stores as is), LowCardinality(String) is String and Nullable(Bool) is Nullable(UInt8).
 * 18.16 also reads no JSONCompactEachRow, the writer's default format, so the writer here sends
 * JSONEachRow (its other format). The engine (ReplacingMergeTree), the sorting key and the insert
 * path (HTTP through @clickhouse/client) are the same. Schema, both formats and the queries are
 * tested on chDB (clickhouse.test.ts); this file tests the transport.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../../operators/types.js';
import { clickHouseDatabase, openClickHouse } from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { check } from '../harness/check.js';

const SERVER_BIN = '/usr/sbin/clickhouse-server';

/** A private clickhouse-server on free loopback ports with its data in a temporary directory. */
class ClickHouseServer {
  #proc: ChildProcess | null = null;

  private constructor(
    readonly dir: string,
    readonly httpPort: number,
  ) {}

  /** `http://default:@127.0.0.1:PORT` */
  get url(): string {
    return `http://default:@127.0.0.1:${this.httpPort}`;
  }

  static async start(): Promise<ClickHouseServer> {
    if (!existsSync(SERVER_BIN)) {
      throw new Error(`${SERVER_BIN} is missing: install it with "apt-get install clickhouse-server"`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'cxstream-chsrv-'));
    for (const sub of ['data', 'tmp', 'user_files', 'format_schemas']) mkdirSync(join(dir, sub));
    const [httpPort, tcpPort] = [await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'config.xml'),
      `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/server.log</log><errorlog>${dir}/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
`,
    );
    writeFileSync(
      join(dir, 'users.xml'),
      `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
`,
    );
    const server = new ClickHouseServer(dir, httpPort);
    await server.run();
    return server;
  }

  /** Starts the server process (again) on the same ports and data, and waits until it answers. */
  async run(): Promise<void> {
    const proc = spawn(SERVER_BIN, [`--config-file=${join(this.dir, 'config.xml')}`], {
      cwd: this.dir,
      stdio: 'ignore',
    });
    this.#proc = proc;
    let exited: number | string | null = null;
    proc.on('exit', (code, signal) => {
      exited = code ?? signal;
    });
    await check(
      async () => {
        if (exited !== null) throw new Error(`clickhouse-server exited (${exited}): ${this.errorLog()}`);
        const res = await fetch(`http://127.0.0.1:${this.httpPort}/ping`);
        return (await res.text()).startsWith('Ok');
      },
      30_000,
      () => this.errorLog(),
    );
  }

  /** SIGKILL: a crash, nothing flushed or answered. */
  async kill(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  /** Kills the server and deletes its data: nothing in it is needed, so no graceful shutdown. */
  async stop(): Promise<void> {
    await this.#signal('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  errorLog(): string {
    const file = join(this.dir, 'server.err.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-20).join('\n') : '';
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const proc = this.#proc;
    this.#proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

let server: ClickHouseServer;
let client: ClickHouseClient;
let db: string;

beforeAll(async () => {
  server = await ClickHouseServer.start();
  const url = `${server.url}/cxtest_http`;
  client = openClickHouse(url);
  db = clickHouseDatabase(url);
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  // ensureSchema's events table, in types 18.16 has (see the top of this file).
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.events (
      partition UInt32, seq UInt64, id String, ts UInt64, customer String, type String, channel String,
      \`from\` String, region String, tz String, session String, agent String, variant String, source String,
      amount Nullable(Float64), sku String, category String, intent String, sentiment Nullable(Float64),
      recognized Nullable(UInt8), status String, score Nullable(Float64), text String
    ) ENGINE = ReplacingMergeTree() PARTITION BY intDiv(ts, 2592000000) ORDER BY (customer, ts, id)`,
  });
});

afterAll(async () => {
  await client?.close();
  await server?.stop();
});

const T0 = Date.UTC(2024, 0, 10, 9);

function row(seq: number): EventRow {
  return {
    partition: seq % 4,
    seq,
    id: `e${seq}`,
    ts: T0 + seq,
    customer: `c${seq % 97}`,
    type: seq % 5 === 0 ? 'order' : 'page_view',
    channel: 'web',
    from: '',
    region: 'east',
    tz: 'Asia/Shanghai',
    session: '',
    agent: '',
    variant: '',
    source: '',
    amount: seq % 5 === 0 ? seq / 10 : null,
    sku: '',
    category: '',
    intent: '',
    sentiment: null,
    recognized: seq % 2 === 0,
    status: '',
    score: null,
    text: `消息 ${seq}`,
    local_hour: 17,
    ticket_id: '',
  };
}

describe('ClickHouseWriter over HTTP (clickhouse-server 18.16)', () => {
  it('retries with capped back-off through a server crash, holds writers back, loses nothing', async () => {
    const CHUNK = 50;
    const CHUNKS = 80;
    const MAX_BUFFERED = 1000;
    /** Writes in flight at once, as the pipeline's mergeMap allows: more than the buffer holds. */
    const CONCURRENCY = 30;
    const retries: Array<{ attempt: number; retryInMs: number }> = [];
    const writer = new ClickHouseWriter(client, {
      database: db,
      flushIntervalMs: 50,
      maxBatchRows: 200,
      maxBufferedRows: MAX_BUFFERED,
      format: 'JSONEachRow',
      retry: { initialMs: 50, maxMs: 400 },
      onError: (_e, info) => retries.push({ attempt: info.attempt, retryInMs: info.retryInMs }),
    });

    let issued = 0;
    let maxBuffered = 0;
    const outstanding: Array<Promise<void>> = [];
    const settled = new Set<number>();
    const writeChunk = async (): Promise<void> => {
      if (outstanding.length >= CONCURRENCY) await outstanding.shift();
      const chunk = issued++;
      const rows = Array.from({ length: CHUNK }, (_, i) => row(chunk * CHUNK + i + 1));
      outstanding.push(writer.writeEvents(rows).then(() => void settled.add(chunk)));
      maxBuffered = Math.max(maxBuffered, writer.stats().bufferedRows);
    };

    // One producer for the whole test, as the pipeline would be: it never pauses on its own.
    const producer = (async () => {
      while (issued < CHUNKS) {
        await writeChunk();
        await new Promise((r) => setTimeout(r, 2));
      }
      await Promise.all(outstanding);
    })();

    // Crash while rows are flowing: an insert may be in flight, its answer lost.
    await check(() => settled.size >= 10, 20_000);
    await server.kill();
    // Back-pressure: the producer stalls with writers blocked, and the buffer stays bounded.
    await check(
      () => writer.stats().blockedRows > 0 && writer.stats().failedAttempts >= 6,
      20_000,
      () => JSON.stringify(writer.stats()),
    );
    const settledWhileDown = settled.size;
    const stalledAt = issued;
    await new Promise((r) => setTimeout(r, 500));
    expect(issued).toBe(stalledAt);
    expect(issued).toBeLessThan(CHUNKS);
    expect(settled.size).toBe(settledWhileDown);
    expect(writer.stats().lastError).toMatch(/events/);
    expect(writer.stats().bufferedRows).toBeLessThanOrEqual(MAX_BUFFERED + CHUNK);

    // Back to life: everything drains and the producer finishes.
    await server.run();
    await producer;
    await writer.close();

    expect(settled.size).toBe(CHUNKS);
    expect(maxBuffered).toBeLessThanOrEqual(MAX_BUFFERED + CHUNK);
    const total = CHUNK * CHUNKS;
    const stats = writer.stats();
    expect(stats).toMatchObject({ bufferedRows: 0, blockedRows: 0, insertedRows: total, lastError: null });
    expect(stats.failedAttempts).toBe(retries.length);

    // Back-off doubles from initialMs and stays at maxMs, each step jittered to [½, 1½) of it.
    expect(retries[0]!.attempt).toBe(1);
    for (const r of retries) {
      const step = Math.min(400, 50 * 2 ** (r.attempt - 1));
      expect(r.retryInMs).toBeGreaterThanOrEqual(step / 2);
      expect(r.retryInMs).toBeLessThan(step * 1.5);
    }
    expect(retries.some((r) => r.retryInMs >= 200)).toBe(true);

    // Every row exactly once under FINAL (a retry after a lost answer may have stored a batch twice).
    const [stored] = await (
      await client.query({
        query: `SELECT count() AS n, uniqExact(id) AS ids, min(seq) AS lo, max(seq) AS hi, sum(seq) AS sum
                FROM ${db}.events FINAL`,
        format: 'JSONEachRow',
      })
    ).json<Record<string, string>>();
    expect(Object.fromEntries(Object.entries(stored!).map(([k, v]) => [k, Number(v)]))).toEqual({
      n: total,
      ids: total,
      lo: 1,
      hi: total,
      sum: (total * (total + 1)) / 2,
    });
    const [sample] = await (
      await client.query({
        query: `SELECT * FROM ${db}.events FINAL WHERE id = 'e10'`,
        format: 'JSONEachRow',
      })
    ).json<Record<string, unknown>>();
    expect(sample).toMatchObject({
      id: 'e10',
      customer: 'c10',
      type: 'order',
      amount: 1,
      recognized: 1,
      text: '消息 10',
    });
    expect(Number(sample!.ts)).toBe(T0 + 10);
  }, 120_000);
});
