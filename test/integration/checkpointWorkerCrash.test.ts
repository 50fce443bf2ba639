/**
 * A crashed worker thread (docs/DELIVERY.md "A crashed worker thread"): the thread of a partition
 * dies while a batch runs on it.
 * - With restart in place (the engine's default), the pool restores the partition's checkpoint into
 *   the fresh thread and runs again every task since: the pipeline goes on, the other partition is
 *   not stopped, and the triggers are exactly those of a run without the crash, each once.
 * - Beyond the allowed restarts, or without checkpoints, the task fails: the pipeline fails, nothing
 *   past the last checkpoint is acked, and a restarted engine recovers exactly. The pool refuses
 *   every result of the empty thread piscina puts in place of the dead one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Piscina } from 'piscina';
import { type Observable, Subject } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../engine/checkpoint/checkpointer.js';
import { LocalCheckpointStore } from '../../engine/checkpoint/checkpointStore.js';
import { SnapshotCodec } from '../../engine/checkpoint/snapshotCodec.js';
import { runPipeline } from '../../engine/runtime/pipeline.js';
import { WorkerLostError, WorkerPool } from '../../engine/runtime/workerPool.js';
import type { BatchOutput, ControlRequest } from '../../engine/runtime/workerProtocol.js';
import type { RawEvent } from '../../engine/source/eventSource.js';
import { ownerOfCustomer } from '../../operators/keyGroups.js';
import { tombstoneOf } from '../../operators/tombstones.js';
import type { Trigger } from '../../operators/types.js';
import { check } from '../harness/check.js';
import { everyOrder, ManualSource, orderEvent } from '../harness/manualSource.js';
import { nullSinks } from '../harness/sinks.js';

const dir = mkdtempSync(join(tmpdir(), 'cxstream-ckpt-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The real pool, whose partition-0 thread is terminated while the first batch after `armed` runs on it. */
class CrashingPool extends WorkerPool {
  /** Crashes left to cause: each terminates partition 0's thread under the next batch sent to it. */
  armed = 0;
  crashes = 0;
  constructor() {
    super({ partitions: 2, rules });
  }
  override runEvents(partition: number, events: readonly RawEvent[], now: number): Promise<BatchOutput> {
    const result = super.runEvents(partition, events, now);
    if (this.armed > 0 && partition === 0) {
      this.armed--;
      this.crashes++;
      // as an out-of-memory abort or a native crash would: the thread is gone mid-task
      setImmediate(() => {
        const thread = (this as unknown as { pools: Piscina[] }).pools[0]!.threads[0];
        void thread?.terminate();
      });
    }
    return result;
  }
}

// one order per customer: every event fires one trigger (`every_order:<customer>:<id>`)
const rules = everyOrder;
const order = (seq: number): RawEvent => orderEvent(seq, `c${seq % 5000}`);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => order(from + i));

function run(
  pool: WorkerPool,
  source: ManualSource,
  checkpointer: Checkpointer,
  triggers: Trigger[],
  controls$?: Observable<ControlRequest>,
) {
  return runPipeline({
    controls$,
    source,
    pool,
    sinks: nullSinks(triggers),
    clock: () => 0,
    live: false,
    batchMaxEvents: 20_000,
    checkpoints: {
      checkpointer,
      intervalMs: 3_600_000,
      earlyAt: 1e9,
      onError: (e) => {
        throw e;
      },
    },
  });
}

const everyTrigger = (from: number, to: number) =>
  range(from, to).map((e) => `every_order:c${e.seq % 5000}:e${e.seq}`);

/** The highest sequence a worker's state holds (over its key groups), from a snapshot of it. */
async function lastSeqOf(pool: WorkerPool, partition: number): Promise<number> {
  const sections = new SnapshotCodec().sections((await pool.snapshot(partition)).state)!;
  return Math.max(...sections.groups.map((g) => g.lastSeq));
}

describe('a crashed worker thread', () => {
  it('is restarted in place from its checkpoint: the stream goes on, every trigger exactly once', async () => {
    const store = new LocalCheckpointStore(join(dir, 'in-place'));
    const pool = new CrashingPool();
    const source = new ManualSource();
    const checkpointer = new Checkpointer({ pool, store, source });
    await checkpointer.recover();
    const restarts: Array<{ partition: number; tasks: number }> = [];
    pool.enableRestartInPlace({
      recover: (p, restore) => checkpointer.restorePartition(p, restore),
      onRestart: (partition, tasks) => restarts.push({ partition, tasks }),
    });
    const triggers: Trigger[] = [];
    const running = run(pool, source, checkpointer, triggers);
    source.chunks.next(range(1, 1_000));
    await check(() => triggers.length === 1_000, 30_000);
    expect((await checkpointer.checkpoint()).coveredSeq).toBe(1_000);
    // two crashes, one after the other, each under a batch in flight on partition 0
    pool.armed = 1;
    source.chunks.next(range(1_001, 5_000));
    await check(() => restarts.length === 1, 30_000);
    source.chunks.next(range(5_001, 7_000));
    pool.armed = 1;
    source.chunks.next(range(7_001, 11_000));
    await check(() => restarts.length === 2 && triggers.length >= 11_000, 30_000);
    await source.stop();
    await running;
    expect(pool.crashes).toBe(2);
    expect(restarts.map((r) => r.partition)).toEqual([0, 0]);
    const ids = triggers.map((t) => t.id);
    expect(ids.length).toBe(new Set(ids).size);
    expect([...ids].sort()).toEqual(everyTrigger(1, 11_000).sort());
    expect(Math.max(...source.acked)).toBe(11_000);
    // the restored thread's state is the real one: its snapshot holds every customer of partition 0
    expect(await lastSeqOf(pool, 0)).toBeGreaterThan(10_000);
    await pool.close();
  }, 120_000);

  it('keeps a customer forgotten before the last checkpoint out of a thread restarted in place', async () => {
    // a customer of partition 0 (the crashing one): orders c<k> at sequences k, 5000 + k, ...
    const k = Array.from({ length: 100 }, (_, i) => i + 1).find(
      (i) => ownerOfCustomer(`c${i}`, 128, 2) === 0,
    )!;
    const gone = `c${k}`;
    const store = new LocalCheckpointStore(join(dir, 'forget'));
    const pool = new CrashingPool();
    const source = new ManualSource();
    const checkpointer = new Checkpointer({ pool, store, source });
    await checkpointer.recover();
    const restarts: number[] = [];
    pool.enableRestartInPlace({
      recover: (p, restore) => checkpointer.restorePartition(p, restore),
      onRestart: (partition) => restarts.push(partition),
    });
    const triggers: Trigger[] = [];
    const controls = new Subject<ControlRequest>();
    const running = run(pool, source, checkpointer, triggers, controls);
    source.chunks.next(range(1, 1_000));
    await check(() => triggers.length === 1_000, 30_000);
    // forgotten, then a checkpoint: the forget task leaves the pool's log, the tombstone stays
    const outs = await new Promise<BatchOutput[]>((resolve) =>
      controls.next({
        task: { kind: 'forget', customer: gone, tombstone: tombstoneOf(gone) },
        resolve,
        waitForEarlier: true,
      }),
    );
    expect(outs[0]!.forgotten).toEqual({ found: true, timers: 0, waitingEvents: 0 });
    expect(outs[1]!.forgotten).toBeNull();
    expect((await checkpointer.checkpoint()).coveredSeq).toBe(1_000);
    // partition 0's thread dies under the next batch: the fresh one gets the tombstone with the restore
    pool.armed = 1;
    source.chunks.next(range(1_001, 11_000));
    await check(() => restarts.length === 1 && triggers.length >= 11_000 - 2, 30_000);
    await source.stop();
    await running;
    const ids = triggers.map((t) => t.id);
    const expected = everyTrigger(1, 11_000).filter(
      (id) => !id.startsWith(`every_order:${gone}:`) || id === `every_order:${gone}:e${k}`,
    );
    expect([...ids].sort()).toEqual(expected.sort());
    await pool.close();
  }, 120_000);

  it('gives up beyond the allowed restarts: the pipeline fails without acking past the checkpoint; a restart recovers exactly', async () => {
    const store = new LocalCheckpointStore(join(dir, 'state'));
    const pool = new CrashingPool();
    const source = new ManualSource();
    const checkpointer = new Checkpointer({ pool, store, source });
    await checkpointer.recover();
    pool.enableRestartInPlace({
      recover: (p, restore) => checkpointer.restorePartition(p, restore),
      maxRestarts: 0,
    });
    const triggers: Trigger[] = [];
    const running = run(pool, source, checkpointer, triggers);
    source.chunks.next(range(1, 1_000));
    await check(() => triggers.length === 1_000, 30_000);
    expect((await checkpointer.checkpoint()).coveredSeq).toBe(1_000);

    // a large batch keeps partition 0's thread busy when it is terminated
    pool.armed = 1;
    source.chunks.next(range(1_001, 30_000));
    const failure = await running.then(
      () => null,
      (e: unknown) => e,
    );
    expect(pool.crashes).toBe(1);
    expect(failure).toBeInstanceOf(WorkerLostError);
    // nothing beyond the checkpoint was acked; the checkpoint was not moved by the crash
    expect(Math.max(...source.acked)).toBe(1_000);
    expect((await store.load(0))?.coveredSeq).toBe(1_000);
    // piscina replaced the thread with an empty one: nothing it computes is used, least of all a
    // snapshot that a checkpoint still running would store over the good one
    await expect(pool.snapshot(0)).rejects.toBeInstanceOf(WorkerLostError);
    expect(await lastSeqOf(pool, 1)).toBeGreaterThan(1_000);
    await pool.close();

    // the supervisor's restart: recover from the checkpoint, the stream redelivers from the ack floor
    const pool2 = new WorkerPool({ partitions: 2, rules });
    const source2 = new ManualSource();
    const checkpointer2 = new Checkpointer({ pool: pool2, store, source: source2 });
    expect((await checkpointer2.recover()).coveredSeq).toBe(1_000);
    const running2 = run(pool2, source2, checkpointer2, triggers);
    source2.chunks.next(range(1_001, 30_000));
    await source2.stop();
    await running2;
    await pool2.close();

    // exactly once across the crash: published triggers of both runs, compared by id
    const ids = triggers.map((t) => t.id);
    const expected = everyTrigger(1, 30_000);
    const published = new Set(ids);
    const wanted = new Set(expected);
    expect(expected.filter((id) => !published.has(id))).toEqual([]);
    // the crashed run's partition-1 triggers past the checkpoint are published again on replay: the
    // engine's trigger ledger (sinks/triggerLedger.ts, tested by the fault suite) suppresses those
    expect(ids.filter((id) => !wanted.has(id))).toEqual([]);
    expect(Math.max(...source2.acked)).toBe(30_000);
  }, 120_000);
});
