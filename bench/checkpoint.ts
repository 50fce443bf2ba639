/**
 * Checkpoint time and size per customer count: a partition's state with N customers (each with a
 * session, two messages and an order applied, so profile windows, RFM inputs and rule memory are
 * filled), then encode (msgpack, as the worker does), durable write (LocalCheckpointStore: temp
 * file + fsync + rename + fsync dir), read and restore. One partition holds everything, so the
 * figures are the worst case of one worker; P partitions split them.
 *
 * Then the incremental case the engine runs between full checkpoints: DELTA_EVENTS more events
 * (default 20 000: two seconds at 10k events/s), each for a different customer (the worst case), a
 * delta snapshot of the customers they changed, its durable write, and a restore of the chain
 * (full + delta). Last, a full checkpoint in steady state: after DELTA_EVENTS more events for other
 * customers, which it encodes; the customers unchanged since the snapshot before are copied.
 *
 *   npm run bench:checkpoint -- [customers...]   (default: 100000 1000000; env DELTA_EVENTS)
 *
 * It also prints the memory the state takes per customer (heap, outside the heap, RSS).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCheckpointStore } from '../engine/checkpoint/checkpointStore.js';
import { SnapshotCodec } from '../engine/checkpoint/snapshotCodec.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { PartitionProcessor } from '../operators/partitionProcessor.js';
import { applyCustomers, eventBytes, T0 } from './customerEvents.js';

const counts = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const rules = loadRules([join(import.meta.dirname, '../config/rules.yaml')]);
// the worker's snapshot codec (engine/runtime/worker.ts)
const codec = new SnapshotCodec();
const DELTA_EVENTS = Number(process.env.DELTA_EVENTS ?? 20_000);

/**
 * Applies DELTA_EVENTS messages from `from` on, 10 ms apart, each to another customer (104729 is
 * prime: the stride from `offset` repeats no customer before all were met); returns the last sequence.
 */
function applyMessages(
  processor: PartitionProcessor,
  customers: number,
  seq: number,
  offset: number,
  from: number,
): number {
  const seqs = new Float64Array(DELTA_EVENTS);
  const subjects: string[] = [];
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < DELTA_EVENTS; i++) {
    const c = (i * 104_729 + offset) % customers;
    seqs[i] = ++seq;
    subjects.push(`cx.events.web.message.c${c}`);
    payloads.push(eventBytes(seq, `c${c}`, c, 'message', from + i * 10));
  }
  processor.applyBatch(seqs, subjects, (i) => payloads[i]!, T0);
  return seq;
}

/** Memory after full collections (when run with --expose-gc). */
function settledMemory(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) gc?.();
  return process.memoryUsage();
}

for (const customers of counts.length > 0 ? counts : [100_000, 1_000_000]) {
  const processor = new PartitionProcessor({ partition: 0, rules });
  const memoryBefore = settledMemory();
  let seq = applyCustomers(processor, customers);
  const memoryAfter = settledMemory();
  /** Growth per customer, in bytes. */
  const perCustomer = (key: keyof NodeJS.MemoryUsage) =>
    Math.round((memoryAfter[key] - memoryBefore[key]) / customers);

  const dir = mkdtempSync(join(tmpdir(), 'cxstream-bench-ckpt-'));
  const store = new LocalCheckpointStore(dir);
  // The first encode of a run pays for JIT warm-up and encodes every customer held as an object; the
  // second finds those unchanged since (their bytes kept), as a full checkpoint right after another
  // would. The engine's periodic full checkpoints look like the one after the delta below.
  let t = performance.now();
  codec.encodeCut(processor.snapshotCut());
  const firstEncodeMs = performance.now() - t;
  t = performance.now();
  const state = codec.encodeCut(processor.snapshotCut());
  const encodeMs = performance.now() - t;
  /** Durable write of a record covering `seq` (full: delta 0); its time in ms. */
  const save = async (state: Uint8Array, delta: number): Promise<number> => {
    const start = performance.now();
    const record = { partition: 0, partitions: 1, triggersSeq: 0, base: 'bench' };
    await store.save({ ...record, coveredSeq: seq, lastSeq: seq, createdAt: Date.now(), delta, state });
    return performance.now() - start;
  };
  const writeMs = await save(state, 0);
  t = performance.now();
  const loaded = await store.load(0);
  const readMs = performance.now() - t;
  t = performance.now();
  const restored = new PartitionProcessor({ partition: 0, rules });
  restored.restore(codec.decode(loaded!.state));
  const restoreMs = performance.now() - t;

  // The incremental checkpoint: DELTA_EVENTS messages, 10 minutes later, each for another customer
  // (the worst case: a delta holds one customer per event).
  seq = applyMessages(processor, customers, seq, 17, T0 + 3_600_000);
  t = performance.now();
  const delta = processor.snapshotCut(true);
  const deltaCustomers = delta.sections.reduce((n, g) => n + g.names.length, 0);
  const deltaState = codec.encodeCut(delta);
  const deltaEncodeMs = performance.now() - t;
  const deltaWriteMs = await save(deltaState, 1);
  t = performance.now();
  const chain = await store.load(0);
  const chainRestored = new PartitionProcessor({ partition: 0, rules });
  chainRestored.restore(codec.decode(chain!.state), ...chain!.deltas.map((d) => codec.decode(d)));
  const chainReadRestoreMs = performance.now() - t;

  // The full checkpoint the engine takes every few deltas, in steady state: DELTA_EVENTS more
  // events for other customers since the delta (those it must encode), every other customer copied.
  seq = applyMessages(processor, customers, seq, 53, T0 + 3_700_000);
  t = performance.now();
  const steadyState = codec.encodeCut(processor.snapshotCut());
  const steadyEncodeMs = performance.now() - t;
  const steadyWriteMs = await save(steadyState, 0);
  rmSync(dir, { recursive: true, force: true });
  const result = {
    bench: 'checkpoint',
    customers,
    events: seq,
    bytes: state.byteLength,
    bytesPerCustomer: Math.round(state.byteLength / customers),
    // state in memory (with --expose-gc, after full collections): heap, memory outside it (the bytes), process
    heapPerCustomer: perCustomer('heapUsed'),
    externalPerCustomer: perCustomer('external'),
    rssPerCustomer: perCustomer('rss'),
    firstEncodeMs: Math.round(firstEncodeMs),
    encodeMs: Math.round(encodeMs),
    writeMs: Math.round(writeMs),
    readMs: Math.round(readMs),
    restoreMs: Math.round(restoreMs),
    restoredCustomers: restored.size,
    deltaEvents: DELTA_EVENTS,
    deltaCustomers,
    deltaBytes: deltaState.byteLength,
    deltaEncodeMs: Math.round(deltaEncodeMs),
    deltaWriteMs: Math.round(deltaWriteMs),
    chainReadRestoreMs: Math.round(chainReadRestoreMs),
    steadyEncodeMs: Math.round(steadyEncodeMs),
    steadyWriteMs: Math.round(steadyWriteMs),
    date: new Date().toISOString(),
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
    cpus: cpus().length,
  };
  console.log(JSON.stringify(result));
  console.error(
    `${customers} customers: memory per customer: heap ${result.heapPerCustomer} B, outside the heap ` +
      `${result.externalPerCustomer} B, RSS ${result.rssPerCustomer} B; ` +
      `snapshot ${(state.byteLength / 1e6).toFixed(1)} MB, encode ${result.encodeMs} ms ` +
      `(first ${result.firstEncodeMs} ms), ` +
      `durable write ${result.writeMs} ms, read ${result.readMs} ms, restore ${result.restoreMs} ms; ` +
      `delta of ${result.deltaCustomers} customers (${DELTA_EVENTS} events): ` +
      `${(deltaState.byteLength / 1e6).toFixed(1)} MB, encode ${result.deltaEncodeMs} ms, ` +
      `durable write ${result.deltaWriteMs} ms; read + restore of full + delta ${result.chainReadRestoreMs} ms; ` +
      `full after ${DELTA_EVENTS} more events: encode ${result.steadyEncodeMs} ms, durable write ${result.steadyWriteMs} ms`,
  );
}
