/**
 * Memory per customer and checkpoint cost of one partition's state.
 *
 *   npm run bench:state -- [--customers C] [--slice S] [--hot H] [--record]
 *   (or BENCH_CUSTOMERS; default 1 000 000 customers)
 *
 * Drives a PartitionProcessor (default rules) directly with generated traffic (engine/demo/traffic.ts,
 * one day per customer), S customers at a time so the generated events never crowd the heap, then
 * with the events dropped and a full GC measures heap and RSS growth per customer. Then the
 * checkpoint path of engine/runtime/worker.ts in one piece: `processor.snapshotCut()` encoded by the
 * engine's SnapshotCodec (encode time, size), the bytes written and fsynced to a file, read back,
 * decoded and restored into a fresh processor.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pack } from 'msgpackr';
import { SnapshotCodec } from '../engine/checkpoint/snapshotCodec.js';
import { loadConfig } from '../engine/config/config.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { PartitionProcessor } from '../operators/partitionProcessor.js';
import { flag, fmt, jsonLine, recordRun, runInfo, table } from './report.js';

const CUSTOMERS = flag('customers', 'BENCH_CUSTOMERS', 1_000_000);
const SLICE = flag('slice', 'BENCH_SLICE', 25_000);
const BATCH = 1000;
/** Customers the processor keeps decoded (operators/customerStore.ts); absent: its default. */
const HOT = process.argv.some((a) => a.startsWith('--hot')) ? flag('hot', 'BENCH_HOT', 0) : undefined;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:state does)');

function settle(): NodeJS.MemoryUsage {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage();
}

/** Customer ids unique across slices: the generator names them c000001.. in every slice. */
function renumber(customer: string, offset: number): string {
  return `c${String(offset + Number(customer.slice(1))).padStart(7, '0')}`;
}

function main(): void {
  const info = runInfo();
  jsonLine('run', { ...info, customers: CUSTOMERS, slice: SLICE });
  const rules = loadRules(loadConfig().rules);
  const processor = new PartitionProcessor({ partition: 0, rules, hotCustomers: HOT });
  const before = settle();

  let seq = 0;
  let events = 0;
  let applySeconds = 0;
  const started = performance.now();
  for (let offset = 0; offset < CUSTOMERS; offset += SLICE) {
    const n = Math.min(SLICE, CUSTOMERS - offset);
    // Each slice is its own day of traffic for its customers, seeded differently.
    const day = generateTraffic({ customers: n, seed: 42 + offset / SLICE });
    const subjects: string[] = new Array(day.length);
    const payloads: Uint8Array[] = new Array(day.length);
    for (let i = 0; i < day.length; i++) {
      const e = day[i]!;
      e.customer = renumber(e.customer, offset);
      subjects[i] = subjectOf(e);
      payloads[i] = pack(e);
    }
    const t = performance.now();
    for (let i = 0; i < day.length; i += BATCH) {
      const m = Math.min(BATCH, day.length - i);
      const seqs = new Float64Array(m);
      for (let j = 0; j < m; j++) seqs[j] = ++seq;
      processor.applyBatch(seqs, subjects.slice(i, i + m), (j) => payloads[i + j]!, Date.now());
    }
    applySeconds += (performance.now() - t) / 1000;
    events += day.length;
    if ((offset / SLICE) % 8 === 0) {
      jsonLine('progress', {
        customers: processor.size,
        events,
        seconds: (performance.now() - started) / 1000,
      });
    }
  }
  const after = settle();
  const customers = processor.size;
  const heapPerCustomer = (after.heapUsed - before.heapUsed) / customers;
  const rssPerCustomer = (after.rss - before.rss) / customers;
  jsonLine('memory', {
    customers,
    hotCustomers: processor.hotSize,
    events,
    applyRate: events / applySeconds,
    heapUsedBytes: after.heapUsed - before.heapUsed,
    rssBytes: after.rss - before.rss,
    heapPerCustomer,
    rssPerCustomer,
  });

  // The checkpoint path of engine/runtime/worker.ts (which encodes the same chunks in slices), and of recovery.
  const codec = new SnapshotCodec();
  let t = performance.now();
  const bytes = codec.encodeCut(processor.snapshotCut());
  const encodeSeconds = (performance.now() - t) / 1000;
  const dir = mkdtempSync(join(tmpdir(), 'cxstream-bench-state-'));
  const file = join(dir, 'partition-0.ckpt');
  t = performance.now();
  const fd = openSync(file, 'w');
  writeSync(fd, bytes);
  fsyncSync(fd);
  closeSync(fd);
  const writeSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const read = readFileSync(file);
  const readSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const snapshot = codec.decode(read);
  const decodeSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const restored = new PartitionProcessor({ partition: 0, rules });
  restored.restore(snapshot);
  const restoreSeconds = (performance.now() - t) / 1000;
  rmSync(dir, { recursive: true, force: true });
  if (restored.size !== customers) throw new Error(`restored ${restored.size} customers of ${customers}`);
  const checkpoint = {
    customers,
    bytes: bytes.byteLength,
    bytesPerCustomer: bytes.byteLength / customers,
    encodeSeconds,
    writeSeconds,
    readSeconds,
    decodeSeconds,
    restoreSeconds,
    checkpointSeconds: encodeSeconds + writeSeconds,
    recoverSeconds: readSeconds + decodeSeconds + restoreSeconds,
  };
  jsonLine('checkpoint', checkpoint);

  const body = [
    `${fmt(customers)} customers (${fmt(processor.hotSize)} of them held as objects, the others as bytes), ${fmt(events)} events (one generated day each), default rules (${rules.length}); apply ${fmt(events / applySeconds)} events/s in one thread`,
    '',
    table(
      ['measure', 'value', 'target', 'met'],
      [
        ['heap per customer (bytes)', heapPerCustomer, '≤ 1024', heapPerCustomer <= 1024 ? 'yes' : 'no'],
        ['RSS per customer (bytes)', rssPerCustomer, '≤ 1024', rssPerCustomer <= 1024 ? 'yes' : 'no'],
        ['snapshot size (MB)', bytes.byteLength / 1e6, '', ''],
        ['snapshot bytes per customer', checkpoint.bytesPerCustomer, '', ''],
        ['encode (s)', encodeSeconds, '', ''],
        ['write + fsync (s)', writeSeconds, '', ''],
        [
          'checkpoint = encode + write (s)',
          checkpoint.checkpointSeconds,
          '≤ 2',
          checkpoint.checkpointSeconds <= 2 ? 'yes' : 'no',
        ],
        ['read (s)', readSeconds, '', ''],
        ['decode (s)', decodeSeconds, '', ''],
        ['restore (s)', restoreSeconds, '', ''],
        ['recover = read + decode + restore (s)', checkpoint.recoverSeconds, '', ''],
      ],
    ),
  ].join('\n');
  console.log(`\n${body}`);
  recordRun('bench:state', info, body);
}

main();
