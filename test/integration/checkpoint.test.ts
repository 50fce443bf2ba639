/**
 * Checkpoints with real worker threads: the store's durability format, acks held until a
 * checkpoint covers them, and a restored partition continuing exactly where its checkpoint was.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../engine/checkpoint/checkpointer.js';
import {
  type CheckpointRecord,
  type CheckpointStore,
  encodeCheckpoint,
  isCheckpointError,
  LocalCheckpointStore,
  NatsCheckpointStore,
} from '../../engine/checkpoint/checkpointStore.js';
import { KeyGroupCountError } from '../../engine/checkpoint/restorePlan.js';
import { SnapshotCodec } from '../../engine/checkpoint/snapshotCodec.js';
import { runPipeline } from '../../engine/runtime/pipeline.js';
import { WorkerPool } from '../../engine/runtime/workerPool.js';
import type { PartitionSnapshot } from '../../operators/partitionState.js';
import type { Trigger } from '../../operators/types.js';
import { check } from '../harness/check.js';
import { everyOrder, ManualSource, orderEvent } from '../harness/manualSource.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';
import { nullSinks } from '../harness/sinks.js';
import { snapshotContent } from '../harness/snapshotContent.js';

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
  base: 'b1',
  delta: 0,
  state: new Uint8Array([1, 2, 3]),
  ...extra,
});

let t: TestNats;
let nc: NatsConnection;
beforeAll(async () => {
  t = await setup();
  nc = t.nc;
});
afterAll(() => cleanup(t));

const stores: Array<[string, () => Promise<CheckpointStore>]> = [
  ['LocalCheckpointStore', async () => new LocalCheckpointStore(tempDir())],
  [
    'NatsCheckpointStore',
    async () => NatsCheckpointStore.open(nc, { bucket: `ckpt_${Math.random().toString(36).slice(2)}` }),
  ],
];

describe.each(stores)('%s chains', (_, open) => {
  it('loads a full record with its deltas in order, under the positions of the latest delta', async () => {
    const store = await open();
    await store.save(record(0, { coveredSeq: 10, state: new Uint8Array([1]) }));
    await store.save(record(0, { delta: 1, coveredSeq: 20, lastSeq: 19, state: new Uint8Array([2]) }));
    await store.save(record(0, { delta: 2, coveredSeq: 30, lastSeq: 29, state: new Uint8Array([3]) }));
    await store.save(record(1, { base: 'other' }));
    expect(await store.partitions()).toEqual([0, 1]);
    const loaded = await store.load(0);
    expect(loaded).toMatchObject({ coveredSeq: 30, lastSeq: 29, base: 'b1', delta: 2 });
    expect([...loaded!.state]).toEqual([1]);
    expect(loaded!.deltas.map((d) => [...d])).toEqual([[2], [3]]);
    expect((await store.load(1))?.deltas).toEqual([]);
  });

  it('a full record starts a new chain: deltas of the old one are removed, or ignored if left', async () => {
    const store = await open();
    await store.save(record(0));
    await store.save(record(0, { delta: 1, state: new Uint8Array([2]) }));
    await store.save(record(0, { base: 'b2', coveredSeq: 40, state: new Uint8Array([4]) }));
    expect((await store.load(0))?.deltas).toEqual([]);
    // as if a crash had left a delta of the old chain behind
    await store.save(record(0, { delta: 2, coveredSeq: 50, state: new Uint8Array([5]) }));
    const loaded = await store.load(0);
    expect(loaded).toMatchObject({ coveredSeq: 40, base: 'b2', delta: 0 });
    expect(loaded!.deltas).toEqual([]);
  });

  it('refuses a chain with a missing delta', async () => {
    const store = await open();
    await store.save(record(0));
    await store.save(record(0, { delta: 1 }));
    await store.save(record(0, { delta: 3 }));
    await expect(store.load(0)).rejects.toThrow(/delta 2 of the chain b1 is missing/);
  });
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
    // a record written before deltas existed (envelope version 1) is a full one
    const { base: _b, delta: _d, ...v1 } = record(1, { coveredSeq: 7 });
    writeFileSync(join(dir, 'partition-1.ckpt'), pack({ format: 'cxstream.checkpoint', version: 1, ...v1 }));
    expect(await store.load(1)).toMatchObject({ coveredSeq: 7, base: '', delta: 0, deltas: [] });
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
    expect((e0 as Error).message).toMatch(/format version 99.*reads versions 1, 2/);
    await expect(store.load(1)).rejects.toThrow(/not a cxstream checkpoint/);
    // a truncated file (a crash cannot leave one, but a disk can)
    writeFileSync(join(dir, 'partition-0.ckpt'), encodeCheckpoint(record(0)).subarray(0, 10));
    await expect(store.load(0)).rejects.toThrow(/not readable/);
  });
});

const rules = everyOrder;
const order = orderEvent;
const sinks = nullSinks;

/**
 * An engine on `store`: two partitions (unless told), recovered from the store, running a pipeline whose
 * checkpoints the test takes (the periodic ones are an hour apart) plus the last one at the end.
 */
async function startEngine(
  store: CheckpointStore,
  opts: {
    sinks?: ReturnType<typeof sinks>;
    onError?: (e: unknown) => void;
    partitions?: number;
    keyGroups?: number;
  } = {},
) {
  const pool = new WorkerPool({ partitions: opts.partitions ?? 2, keyGroups: opts.keyGroups, rules });
  const source = new ManualSource();
  const checkpointer = new Checkpointer({ pool, store, source });
  const recovery = await checkpointer.recover();
  const triggers: Trigger[] = [];
  const run = runPipeline({
    source,
    pool,
    sinks: (opts.sinks ?? sinks(triggers)) as never,
    clock: () => 0,
    live: false,
    checkpoints: {
      checkpointer,
      intervalMs: 3_600_000,
      earlyAt: 1e9,
      onError:
        opts.onError ??
        ((e) => {
          throw e;
        }),
    },
  });
  return { pool, source, checkpointer, recovery, triggers, run };
}

describe('Checkpointer', () => {
  it('acks only what a durable checkpoint covers, and a restored partition skips what it applied', async () => {
    const store = new LocalCheckpointStore(tempDir());
    const { pool, source, checkpointer, recovery: none, triggers, run } = await startEngine(store);
    expect(none.restored).toEqual([]);
    source.chunks.next([order(1, 'a'), order(2, 'b'), order(3, 'c'), order(4, 'a')]);
    // delivered but not checkpointed: nothing acked yet
    await check(() => triggers.length === 4);
    expect(source.acked).toEqual([]);
    const stats = await checkpointer.checkpoint();
    expect(stats).toMatchObject({ coveredSeq: 4, deltas: 0 });
    expect(source.acked.sort()).toEqual([1, 2, 3, 4]);
    source.chunks.next([order(5, 'b')]);
    await check(() => triggers.length === 5);
    await source.stop();
    await run; // the last checkpoint covers seq 5
    expect(source.acked.sort()).toEqual([1, 2, 3, 4, 5]);
    // the last checkpoint stored deltas: the state is restored from a full record and a delta
    const saved = await store.load(0);
    expect(saved).toMatchObject({ coveredSeq: 5, delta: 1 });
    expect(saved!.deltas).toHaveLength(1);
    await pool.close();

    // a new engine: restored state, then the stream replays 3..6; only 6 is new
    const {
      pool: pool2,
      source: source2,
      recovery,
      triggers: triggers2,
      run: run2,
    } = await startEngine(store);
    expect(recovery.restored).toEqual([0, 1]);
    expect(recovery.coveredSeq).toBe(5);
    source2.chunks.next([order(3, 'c'), order(4, 'a'), order(5, 'b'), order(6, 'a')]);
    await source2.stop();
    await run2;
    expect(triggers2.map((t) => t.id)).toEqual(['every_order:a:e6']);
    await pool2.close();

    // the same checkpoints restore on three workers (and then on one), key group by key group
    const three = await startEngine(store, { partitions: 3 });
    expect(three.recovery.restored).toEqual([0, 1, 2]);
    expect(three.recovery.coveredSeq).toBe(6);
    three.source.chunks.next([order(6, 'a'), order(7, 'b'), order(8, 'c')]);
    await three.source.stop();
    await three.run;
    expect(three.triggers.map((t) => t.id).sort()).toEqual(['every_order:b:e7', 'every_order:c:e8']);
    await three.pool.close();
    // the records of two workers were replaced by those of three
    expect(await store.partitions()).toEqual([0, 1, 2]);
    const one = await startEngine(store, { partitions: 1 });
    expect(one.recovery.coveredSeq).toBe(8);
    one.source.chunks.next([order(8, 'c'), order(9, 'a')]);
    await one.source.stop();
    await one.run;
    expect(one.triggers.map((t) => t.id)).toEqual(['every_order:a:e9']);
    await one.pool.close();
    expect(await store.partitions()).toEqual([0]);

    // the key-group count is fixed: other checkpoints are refused with what to do
    const pool3 = new WorkerPool({ partitions: 1, keyGroups: 64, rules });
    const e = await new Checkpointer({ pool: pool3, store, source: new ManualSource() })
      .recover()
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KeyGroupCountError);
    expect((e as Error).message).toMatch(/written with 128 key groups.*configured with 64/);
    await pool3.close();
  });
});

describe('Checkpointer deltas', () => {
  it('a delta holds the changed customers; after a failed save the next checkpoint is full; a chain restores the state', async () => {
    const local = new LocalCheckpointStore(tempDir());
    let failSaves = false;
    const store: CheckpointStore = {
      location: local.location,
      partitions: () => local.partitions(),
      load: (p) => local.load(p),
      remove: (p) => local.remove(p),
      save: async (r) => {
        if (failSaves) throw new Error('disk full');
        await local.save(r);
      },
    };
    const { pool, source, checkpointer, triggers, run } = await startEngine(store, { onError: () => {} });
    const customers = Array.from({ length: 40 }, (_, i) => `c${i}`);
    let seq = 0;
    const send = async (who: string[]) => {
      source.chunks.next(who.map((c) => order(++seq, c)));
      await check(() => triggers.length === seq);
    };
    await send(customers);
    expect(await checkpointer.checkpoint()).toMatchObject({ deltas: 0, coveredSeq: 40 });
    const fullBytes = checkpointer.lastCheckpoint!.bytes;
    await send(['c1', 'c2']);
    const delta = await checkpointer.checkpoint();
    expect(delta).toMatchObject({ deltas: 2, coveredSeq: 42 });
    expect(delta.bytes).toBeLessThan(fullBytes / 4);
    // a failed save: the changes of c3 were in a snapshot that is not stored
    await send(['c3']);
    failSaves = true;
    await expect(checkpointer.checkpoint()).rejects.toThrow(/disk full/);
    failSaves = false;
    await send(['c4']);
    expect(await checkpointer.checkpoint()).toMatchObject({ deltas: 0, coveredSeq: 44 });
    await send(['c5', 'c6']);
    await source.stop();
    await run; // the last checkpoint: a delta
    expect(checkpointer.lastCheckpoint).toMatchObject({ deltas: 2, coveredSeq: 46 });

    const codec = new SnapshotCodec();
    const stateOf = async (p: WorkerPool) =>
      Promise.all([0, 1].map(async (i) => codec.decode((await p.snapshot(i)).state)));
    const expected = await stateOf(pool);
    await pool.close();
    const pool2 = new WorkerPool({ partitions: 2, rules });
    expect(
      await new Checkpointer({ pool: pool2, store, source: new ManualSource() }).recover(),
    ).toMatchObject({
      restored: [0, 1],
      coveredSeq: 46,
    });
    const restored = await stateOf(pool2);
    await pool2.close();
    const count = (s: PartitionSnapshot) => s.groups.reduce((n, g) => n + g.customers.length, 0);
    expect(restored.map(count)).toEqual(expected.map(count));
    expect(restored.map(snapshotContent)).toEqual(expected.map(snapshotContent));
  });
});

describe('snapshots encoded in slices', () => {
  it('hold the state at the cut although batches that change it run between the slices', async () => {
    const codec = new SnapshotCodec();
    // 20 000 customers: the encode takes many 5 ms slices; the second batch changes 5 000 of them
    const first = Array.from({ length: 20_000 }, (_, i) => order(i + 1, `c${i}`));
    const second = Array.from({ length: 5_000 }, (_, i) => order(20_001 + i, `c${i * 4}`));
    const [sliced, quiet] = [
      new WorkerPool({ partitions: 1, rules }),
      new WorkerPool({ partitions: 1, rules }),
    ];
    try {
      await sliced.runEvents(0, first, 0);
      await quiet.runEvents(0, first, 0);
      const [snapshot, out] = await Promise.all([sliced.snapshot(0), sliced.runEvents(0, second, 0)]);
      expect(out.triggers).toHaveLength(5_000);
      const expected = codec.decode((await quiet.snapshot(0)).state);
      const got = codec.decode(snapshot.state);
      const byCustomer = (s: typeof got) =>
        new Map(snapshotContent(s).groups.flatMap((g) => [...g.customers]));
      const lastSeq = (s: typeof got) => Math.max(...s.groups.map((g) => g.lastSeq));
      expect(lastSeq(got)).toBe(20_000);
      expect(byCustomer(got).size).toBe(20_000);
      expect(byCustomer(got)).toEqual(byCustomer(expected));
      const headers = (s: typeof got) => snapshotContent(s).groups.map(({ customers: _, ...h }) => h);
      expect(headers(got)).toEqual(headers(expected));
      // and the state after both batches is there too: the next full snapshot holds the second batch
      const after = codec.decode((await sliced.snapshot(0)).state);
      expect(lastSeq(after)).toBe(25_000);
      expect(byCustomer(after).get('c4')?.state.orders).toBe(2);
    } finally {
      await Promise.all([sliced.close(), quiet.close()]);
    }
  });
});

describe('Checkpointer with a sink that does not accept (ClickHouse down)', () => {
  it('acks nothing the sink has not accepted: a checkpoint meanwhile covers only what was delivered', async () => {
    // the ClickHouse writer's promise resolves only once rows are stored; here: only when released
    let down = false;
    const waiting: Array<() => void> = [];
    const triggers: Trigger[] = [];
    const base = sinks(triggers);
    const { pool, source, checkpointer, run } = await startEngine(new LocalCheckpointStore(tempDir()), {
      sinks: {
        ...base,
        clickhouse: {
          ...base.clickhouse,
          writeEncodedEvents: () => (down ? new Promise<void>((r) => waiting.push(r)) : Promise.resolve()),
        },
      },
    });
    source.chunks.next([order(1, 'a'), order(2, 'b')]);
    await check(() => triggers.length === 2);
    expect((await checkpointer.checkpoint()).coveredSeq).toBe(2);
    down = true;
    source.chunks.next([order(3, 'a'), order(4, 'b')]);
    await check(() => waiting.length > 0 && triggers.length === 4);
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
