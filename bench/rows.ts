/**
 * `cxstream.events` rows as RowBinary against the JSON text the workers send today, end to end:
 * encode cost and size per row, insert rate into chDB, and the rows read back must be the same.
 *
 *   npm run bench:rows -- [--rows N] [--reps R] [--record]
 *   BENCH_CH_URL=http://default:@127.0.0.1:8123 npm run bench:rows   (also a server, over HTTP)
 *
 * Rows come from the processor as in a worker: a generated day (engine/demo/traffic.ts, ~20 events
 * per customer) through PartitionProcessor.applyBatch with the default rules and privacy policy,
 * 1000 events per call. Encoding is timed per 1000-row chunk, as a worker encodes a task's rows.
 * Inserts take 50 000 rows (the writer's maxBatchRows) concatenated from those chunks, into fresh
 * tables made by ensureSchema (the engine's DDL), one database per variant.
 *
 * chDB insert paths: JSON goes through `connection.chdb.rawInsert`, the engine's path (rawInsertOf
 * in sinks/clickhouse.ts). That entry refuses binary formats (chdb 3.4 whitelists text formats), and
 * `@clickhouse/client`'s exec/insert through chDB decode the body as UTF-8 (RowBinary arrives
 * mangled). chdb's native raw-insert entry under that whitelist (`InsertRawAsyncConnection`, not
 * public API) takes a RowBinary prefix but is not binary-safe: a row whose `seq` is 2570 (bytes
 * 0a 0a) fails with CANNOT_READ_ALL_DATA. So RowBinary goes through a temporary file read by
 * `INSERT ... FROM INFILE ... FORMAT RowBinary` (public SQL; the file write is timed with it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { pack } from 'msgpackr';
import { loadConfig } from '../engine/config/config.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { PartitionProcessor } from '../operators/partitionProcessor.js';
import type { EventRow } from '../operators/types.js';
import { ensureSchema, openClickHouse, quoteIdentifier } from '../sinks/clickhouse.js';
import { EVENT_COLUMNS, encodeEventRows } from '../sinks/clickhouseRows.js';
import { flag, jsonLine, recordRun, runInfo, table } from './report.js';
import { encodeEventRowBinary } from './rowBinary.js';

const ROWS = flag('rows', 'BENCH_ROWS', 200_000);
const REPS = flag('reps', 'BENCH_REPS', 3);
const TASK_ROWS = 1000;
const INSERT_ROWS = 50_000;
const COLUMNS = EVENT_COLUMNS.map((c) => quoteIdentifier(c)).join(', ');

type Format = 'JSONCompactEachRow' | 'JSONEachRow' | 'RowBinary';
const FORMATS: Format[] = ['JSONCompactEachRow', 'JSONEachRow', 'RowBinary'];

function encode(rows: readonly EventRow[], format: Format): Uint8Array {
  return format === 'RowBinary' ? encodeEventRowBinary(rows) : encodeEventRows(rows, format).bytes;
}

/** Rows as the worker builds them, in task-sized chunks. */
function workerRows(n: number): EventRow[][] {
  const rules = loadRules(loadConfig().rules);
  const events = generateTraffic({ customers: Math.ceil(n / 15), seed: 11 });
  const processor = new PartitionProcessor({ partition: 0, rules });
  // The processor holds some events back (ordering, lateness): rows are taken as they come out.
  const rows: EventRow[] = [];
  for (let at = 0; rows.length < n; at += TASK_ROWS) {
    if (at >= events.length) throw new Error(`${events.length} generated events gave ${rows.length} rows`);
    const batch = events.slice(at, at + TASK_ROWS);
    const seqs = batch.map((_, j) => at + j + 1);
    const payloads = batch.map((e) => pack(e) as Uint8Array);
    rows.push(...processor.applyBatch(seqs, batch.map(subjectOf), (j) => payloads[j]!, 0).events);
  }
  const chunks: EventRow[][] = [];
  for (let at = 0; at < n; at += TASK_ROWS) chunks.push(rows.slice(at, Math.min(n, at + TASK_ROWS)));
  return chunks;
}

/** Median of the per-round encode times (µs/row) of each format, rounds alternating formats. */
function timeEncoding(chunks: EventRow[][], rounds: number): Map<Format, number> {
  const times = new Map<Format, number[]>(FORMATS.map((f) => [f, []]));
  const rows = chunks.reduce((n, c) => n + c.length, 0);
  for (let r = 0; r < rounds + 1; r++) {
    for (const format of r % 2 === 0 ? FORMATS : [...FORMATS].reverse()) {
      const t0 = performance.now();
      for (const c of chunks) encode(c, format);
      const us = ((performance.now() - t0) * 1000) / rows;
      if (r > 0) times.get(format)!.push(us); // round 0 warms up
    }
  }
  return new Map(FORMATS.map((f) => [f, median(times.get(f)!)]));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Per chunk of INSERT_ROWS rows: the task chunks' bytes concatenated, as the writer sends them. */
function insertBatches(encoded: Uint8Array[]): Uint8Array[] {
  const per = INSERT_ROWS / TASK_ROWS;
  const out: Uint8Array[] = [];
  for (let i = 0; i < encoded.length; i += per) out.push(Buffer.concat(encoded.slice(i, i + per)));
  return out;
}

/** One way into a table: its name, the format it sends, how it inserts one batch. */
interface Variant {
  name: string;
  format: Format;
  insert: (table: string, bytes: Uint8Array) => Promise<unknown>;
}

/** Inserts every batch of `variant` into its fresh table `REPS` times; returns rows/s per rep. */
async function timeInserts(
  variants: Variant[],
  batchesOf: (f: Format) => Uint8Array[],
  tableOf: (v: Variant) => string,
  truncate: (table: string) => Promise<unknown>,
): Promise<Map<string, number[]>> {
  const rates = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const t = tableOf(v);
      await truncate(t);
      const batches = batchesOf(v.format);
      const t0 = performance.now();
      for (const b of batches) await v.insert(t, b);
      const s = (performance.now() - t0) / 1000;
      rates.get(v.name)!.push(ROWS / s);
    }
  }
  return rates;
}

/** Fails unless every table holds the same rows as the first, ROWS of them. */
function sameRows(exports: Map<string, Uint8Array>): void {
  const [firstName, first] = [...exports][0]!;
  const lines = first.reduce((n, b) => n + (b === 0x0a ? 1 : 0), 0);
  if (lines !== ROWS) throw new Error(`${firstName} holds ${lines} rows, expected ${ROWS}`);
  for (const [name, bytes] of exports) {
    if (!Buffer.from(bytes).equals(Buffer.from(first))) {
      throw new Error(`rows differ: ${name} against ${firstName} (${bytes.length} vs ${first.length} bytes)`);
    }
  }
}

const EXPORT = `SELECT ${COLUMNS} FROM %T ORDER BY customer, ts, id, seq FORMAT TabSeparated`;
const CHECKSUM = 'SELECT count(), sum(cityHash64(toString(tuple(*)))) FROM %T FORMAT TabSeparated';

async function chdbRun(encoded: Map<Format, Uint8Array[]>): Promise<Map<string, number[]>> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-rows-'));
  const connection = createChdbConnection({ path: dir });
  const client = createClient({ connection: connection as never }) as ClickHouseClient;
  try {
    const variants: Variant[] = [
      ...(['JSONCompactEachRow', 'JSONEachRow'] as const).map((format) => ({
        name: `${format} rawInsert`,
        format,
        insert: (t: string, values: Uint8Array) =>
          connection.chdb.rawInsert({ table: t, columns: [...EVENT_COLUMNS], format, values }),
      })),
      {
        name: 'RowBinary INFILE',
        format: 'RowBinary',
        insert: (t, values) => {
          const file = join(dir, 'rows.bin');
          writeFileSync(file, values);
          return connection.chdb.queryAsync(
            `INSERT INTO ${t} (${COLUMNS}) FROM INFILE '${file}' FORMAT RowBinary`,
          );
        },
      },
    ];
    const tableOf = (v: Variant) => `db${variants.indexOf(v)}.events`;
    for (const v of variants) await ensureSchema(client, tableOf(v).split('.')[0]);
    const batches = new Map(FORMATS.map((f) => [f, insertBatches(encoded.get(f)!)]));
    const rates = await timeInserts(
      variants,
      (f) => batches.get(f)!,
      tableOf,
      (t) => connection.chdb.queryAsync(`TRUNCATE TABLE ${t}`),
    );
    const exports = new Map<string, Uint8Array>();
    for (const v of variants) {
      const t = tableOf(v);
      exports.set(v.name, (await connection.chdb.queryAsync(EXPORT.replace('%T', t))).bytes());
      const sum = (await connection.chdb.queryAsync(CHECKSUM.replace('%T', t))).text().trim();
      jsonLine('checksum', { target: 'chdb', variant: v.name, countAndSum: sum });
    }
    sameRows(exports);
    return rates;
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A server over HTTP (`BENCH_CH_URL`): JSONEachRow and RowBinary, each as the writer sends
 * worker-encoded rows (`exec` with the bytes as the body). The table has the engine's columns in
 * types ClickHouse 18.16 (Debian's, used in tests) has: `ts` UInt64 epoch ms (the same 8 bytes as
 * DateTime64(3) in RowBinary), Bool as UInt8, LowCardinality(String) as String.
 */
async function serverRun(url: string, encoded: Map<Format, Uint8Array[]>): Promise<Map<string, number[]>> {
  const client = openClickHouse(url);
  const db = 'bench_rows';
  const exec = async (query: string, body?: Uint8Array): Promise<string> => {
    const r = await client.exec({
      query,
      ...(body ? { values: Readable.from([body], { objectMode: false }) } : {}),
    });
    const parts: Buffer[] = [];
    for await (const c of r.stream) parts.push(c as Buffer);
    return Buffer.concat(parts).toString('utf8');
  };
  try {
    await exec(`CREATE DATABASE IF NOT EXISTS ${db}`);
    const variants: Variant[] = (['JSONEachRow', 'RowBinary'] as const).map((format) => ({
      name: `${format} exec`,
      format,
      insert: (t, body) => exec(`INSERT INTO ${t} (${COLUMNS}) FORMAT ${format}`, body),
    }));
    const tableOf = (v: Variant) => `${db}.events_${v.format}`;
    for (const v of variants) {
      await exec(`DROP TABLE IF EXISTS ${tableOf(v)}`);
      await exec(`CREATE TABLE ${tableOf(v)} (
        partition UInt32, seq UInt64, id String, ts UInt64, customer String, type String, channel String,
        \`from\` String, region String, tz String, session String, agent String, variant String, source String,
        amount Nullable(Float64), sku String, category String, intent String, sentiment Nullable(Float64),
        recognized Nullable(UInt8), status String, score Nullable(Float64), text String, local_hour UInt8,
        ticket_id String
      ) ENGINE = ReplacingMergeTree() PARTITION BY intDiv(ts, 2592000000) ORDER BY (customer, ts, id)`);
    }
    const batches = new Map(FORMATS.map((f) => [f, insertBatches(encoded.get(f)!)]));
    const rates = await timeInserts(
      variants,
      (f) => batches.get(f)!,
      tableOf,
      (t) => exec(`TRUNCATE TABLE ${t}`),
    );
    const exports = new Map<string, Uint8Array>();
    for (const v of variants) {
      exports.set(v.name, Buffer.from(await exec(EXPORT.replace('%T', tableOf(v)))));
    }
    sameRows(exports);
    for (const v of variants) await exec(`DROP TABLE ${tableOf(v)}`);
    return rates;
  } finally {
    await client.close();
  }
}

const info = runInfo();
jsonLine('run', { ...info, rows: ROWS, reps: REPS });
const chunks = workerRows(ROWS);
const encoded = new Map(FORMATS.map((f) => [f, chunks.map((c) => encode(c, f))]));
const bytesPerRow = new Map(
  FORMATS.map((f) => [f, encoded.get(f)!.reduce((n, b) => n + b.length, 0) / ROWS]),
);
const encodeUs = timeEncoding(chunks, 5);
const insertRates = await chdbRun(encoded);
const serverUrl = process.env.BENCH_CH_URL;
if (serverUrl) for (const [k, v] of await serverRun(serverUrl, encoded)) insertRates.set(`server ${k}`, v);

const base = 'JSONCompactEachRow';
const encodeTable = table(
  ['format', 'encode µs/row', 'bytes/row', 'encode ×JSONCompact', 'bytes ×JSONCompact'],
  FORMATS.map((f) => [
    f,
    encodeUs.get(f)!,
    bytesPerRow.get(f)!,
    encodeUs.get(f)! / encodeUs.get(base)!,
    bytesPerRow.get(f)! / bytesPerRow.get(base)!,
  ]),
);
const baseRate = median(insertRates.get(`${base} rawInsert`)!);
const insertTable = table(
  ['insert (chDB unless "server")', 'rows/s median', 'min', 'max', '×JSONCompact rawInsert'],
  [...insertRates].map(([name, rates]) => [
    name,
    median(rates),
    Math.min(...rates),
    Math.max(...rates),
    median(rates) / baseRate,
  ]),
);
for (const f of FORMATS)
  jsonLine('encode', { format: f, usPerRow: encodeUs.get(f), bytesPerRow: bytesPerRow.get(f) });
for (const [name, rates] of insertRates) jsonLine('insert', { variant: name, rowsPerSecond: rates });
const body = `${ROWS} event rows, encoded per ${TASK_ROWS}, inserted per ${INSERT_ROWS}, ${REPS} reps; rows read back identical\n\n${encodeTable}\n\n${insertTable}\n\nload average at end: ${runInfo().loadAverage.join(' / ')}`;
console.log(`\n${body}`);
recordRun('bench:rows', info, body);
