/**
 * Checkpoints with real worker threads: the store's durability format, acks held until a
 * checkpoint covers them, and a restored partition continuing exactly where its checkpoint was.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpointer, PartitionCountError } from '../../engine/checkpointer.js';
import {
  type CheckpointRecord,
  encodeCheckpoint,
  isCheckpointError,
  LocalCheckpointStore,
} from '../../engine/checkpointStore.js';
import { runPipeline } from '../../engine/pipeline.js';
import type { RawEvent } from '../../engine/types.js';
import { WorkerPool } from '../../engine/workerPool.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { Trigger } from '../../operators/types.js';
import { ManualSource } from '../harness/manualSource.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'cxstream-ckpt-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const record = (partition: number, extra: Partial<CheckpointRecord> = {}): CheckpointRecord => ({
  partition,
  partitions: 2,
  coveredSeq: 10,
  lastSeq: 9,
  triggersSeq: 3,
  createdAt: 1,
  state: new Uint8Array([1, 2, 3]),
  ...extra,
});

describe('LocalCheckpointStore', () => {
  it('round-trips records, replaces them whole, and removes leftovers of a crashed save', async () => {
    const dir = tempDir();
    const store = new LocalCheckpointStore(dir);
    expect(await store.load(0)).toBeNull();
    await store.save(record(0));
    await store.save(record(0, { coveredSeq: 20, state: new Uint8Array([9]) }));
    await store.save(record(1));
    writeFileSync(join(dir, 'partition-1.ckpt.tmp-123'), 'half a file');
    expect(await store.partitions()).toEqual([0, 1]);
    expect(readdirSync(dir).sort()).toEqual(['partition-0.ckpt', 'partition-1.ckpt']);
    const loaded = await store.load(0);
    expect(loaded?.coveredSeq).toBe(20);
    expect([...loaded!.state]).toEqual([9]);
  });

  it('refuses unknown versions and foreign files with a clear error', async () => {
    const dir = tempDir();
    const store = new LocalCheckpointStore(dir);
    writeFileSync(join(dir, 'partition-0.ckpt'), pack({ format: 'cxstream.checkpoint', version: 99 }));
    writeFileSync(join(dir, 'partition-1.ckpt'), pack({ something: 'else' }));
    const e0 = await store.load(0).catch((e: unknown) => e);
    expect(isCheckpointError(e0)).toBe(true);
    expect((e0 as Error).message).toMatch(/format version 99.*reads version 1/);
    await expect(store.load(1)).rejects.toThrow(/not a cxstream checkpoint/);
    // a truncated file (a crash cannot leave one, but a disk can)
    writeFileSync(join(dir, 'partition-0.ckpt'), encodeCheckpoint(record(0)).subarray(0, 10));
    await expect(store.load(0)).rejects.toThrow(/not readable/);
  });
});

const rules: RuleSpec[] = [{ id: 'every_order', on: ['order'], priority: 1 } as RuleSpec];
const encoder = new TextEncoder();
const order = (seq: number, customer: string): RawEvent => ({
  seq,
  subject: `cx.events.web.order.${customer}`,
  data: encoder.encode(
    JSON.stringify({
      id: `e${seq}`,
      ts: 1_800_000_000_000 + seq * 1000,
      customer,
      type: 'order',
      channel: 'web',
      amount: 10,
    }),
  ),
});

function sinks(triggers: Trigger[]) {
  return {
    triggers: { publish: async (t: Trigger[]) => void triggers.push(...t) },
    deadLetters: { publish: async () => {} },
    profiles: { put: async () => {} },
    clickhouse: {
      writeEncodedEvents: async () => {},
      writeTriggers: async () => {},
      writeProfiles: async () => {},
      flush: async () => {},
    },
  };
}

describe('Checkpointer', () => {
  it('acks only what a durable checkpoint covers, and a restored partition skips what it applied', async () => {
    const dir = tempDir();
    const store = new LocalCheckpointStore(dir);
    const pool = new WorkerPool({ partitions: 2, rules });
    const source = new ManualSource();
    const checkpointer = new Checkpointer({ pool, store, source });
    expect((await checkpointer.recover()).restored).toEqual([]);
    const triggers: Trigger[] = [];
    const run = runPipeline({
      source,
      pool,
      sinks: sinks(triggers) as never,
      clock: () => 0,
      live: false,
      batchMaxWaitMs: 1,
      // no periodic checkpoints in this test: one is taken below, one when the source completes
      checkpoints: {
        checkpointer,
        intervalMs: 3_600_000,
        earlyAt: 1e9,
        onError: (e) => {
          throw e;
        },
      },
    });
    source.chunks.next([order(1, 'a'), order(2, 'b'), order(3, 'c'), order(4, 'a')]);
    // delivered but not checkpointed: nothing acked yet
    await waitFor(() => triggers.length === 4);
    expect(source.acked).toEqual([]);
    const stats = await checkpointer.checkpoint();
    expect(stats.coveredSeq).toBe(4);
    expect(source.acked.sort()).toEqual([1, 2, 3, 4]);
    source.chunks.next([order(5, 'b')]);
    await waitFor(() => triggers.length === 5);
    await source.stop();
    await run; // the last checkpoint covers seq 5
    expect(source.acked.sort()).toEqual([1, 2, 3, 4, 5]);
    const saved = await store.load(0);
    expect(saved?.coveredSeq).toBe(5);
    await pool.close();

    // a new engine: restored state, then the stream replays 3..6; only 6 is new
    const pool2 = new WorkerPool({ partitions: 2, rules });
    const source2 = new ManualSource();
    const checkpointer2 = new Checkpointer({ pool: pool2, store, source: source2 });
    const recovery = await checkpointer2.recover();
    expect(recovery.restored).toEqual([0, 1]);
    expect(recovery.coveredSeq).toBe(5);
    const triggers2: Trigger[] = [];
    const run2 = runPipeline({
      source: source2,
      pool: pool2,
      sinks: sinks(triggers2) as never,
      clock: () => 0,
      live: false,
      batchMaxWaitMs: 1,
      checkpoints: {
        checkpointer: checkpointer2,
        intervalMs: 3_600_000,
        earlyAt: 1e9,
        onError: (e) => {
          throw e;
        },
      },
    });
    source2.chunks.next([order(3, 'c'), order(4, 'a'), order(5, 'b'), order(6, 'a')]);
    await source2.stop();
    await run2;
    expect(triggers2.map((t) => t.id)).toEqual(['every_order:a:e6']);
    await pool2.close();

    // the same checkpoints cannot restore a different partition count
    const pool3 = new WorkerPool({ partitions: 3, rules });
    const e = await new Checkpointer({ pool: pool3, store, source: new ManualSource() })
      .recover()
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PartitionCountError);
    expect((e as Error).message).toMatch(/written with 2 partitions.*configured with 3/);
    await pool3.close();
  });
});

describe('Checkpointer with a sink that does not accept (ClickHouse down)', () => {
  it('acks nothing the sink has not accepted: a checkpoint meanwhile covers only what was delivered', async () => {
    const store = new LocalCheckpointStore(tempDir());
    const pool = new WorkerPool({ partitions: 2, rules });
    const source = new ManualSource();
    const checkpointer = new Checkpointer({ pool, store, source });
    await checkpointer.recover();
    const triggers: Trigger[] = [];
    // the ClickHouse writer's promise resolves only once rows are stored; here: only when released
    let down = false;
    const waiting: Array<() => void> = [];
    const base = sinks(triggers);
    const run = runPipeline({
      source,
      pool,
      sinks: {
        ...base,
        clickhouse: {
          ...base.clickhouse,
          writeEncodedEvents: () => (down ? new Promise<void>((r) => waiting.push(r)) : Promise.resolve()),
        },
      } as never,
      clock: () => 0,
      live: false,
      batchMaxWaitMs: 1,
      checkpoints: {
        checkpointer,
        intervalMs: 3_600_000,
        earlyAt: 1e9,
        onError: (e) => {
          throw e;
        },
      },
    });
    source.chunks.next([order(1, 'a'), order(2, 'b')]);
    await waitFor(() => triggers.length === 2);
    expect((await checkpointer.checkpoint()).coveredSeq).toBe(2);
    down = true;
    source.chunks.next([order(3, 'a'), order(4, 'b')]);
    await waitFor(() => waiting.length > 0 && triggers.length === 4);
    // outputs of 3 and 4 are not all accepted: a checkpoint must not cover (nor ack) them. It waits
    // for their delivery, because the states it took include them.
    let covered = -1;
    const pending = checkpointer.checkpoint().then((s) => {
      covered = s.coveredSeq;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(covered).toBe(-1);
    expect(source.acked.sort()).toEqual([1, 2]);
    // ClickHouse is back: that checkpoint completes (covering what was delivered when it began),
    // and the next one covers and acks 3 and 4
    down = false;
    for (const release of waiting.splice(0)) release();
    await pending;
    expect(covered).toBe(2);
    expect(source.acked.sort()).toEqual([1, 2]);
    expect((await checkpointer.checkpoint()).coveredSeq).toBe(4);
    expect(source.acked.sort()).toEqual([1, 2, 3, 4]);
    await source.stop();
    await run;
    await pool.close();
  });
});

async function waitFor(fn: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}
