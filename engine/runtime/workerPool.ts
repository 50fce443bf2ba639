import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { RuleSpec } from '../../operators/rules.js';
import type { RowFormat } from '../../sinks/clickhouseRows.js';
import type { RawEvent } from '../source/eventSource.js';
import type {
  BatchOutput,
  EventBatchTask,
  SnapshotResult,
  SnapshotTask,
  WorkerOptions,
  WorkerTask,
} from './workerProtocol.js';

/** Options of the partition workers. */
export interface WorkerPoolOptions {
  partitions: number;
  rules: RuleSpec[];
  /** @default 'Asia/Shanghai' */
  defaultTz?: string;
  /** @default 60_000 */
  profileIntervalMs?: number;
  /** @default 5_000 */
  allowedLatenessMs?: number;
  /** @default 10_000 */
  idleAfterMs?: number;
  /**
   * Events more than this ahead of the batch's `now` are dead-lettered (the engine passes
   * `engine.maxFutureSkewMs`). @default no limit
   */
  maxFutureSkewMs?: number;
  /**
   * Events with an earlier `ts` (epoch ms) are dead-lettered, with a reason that suggests
   * milliseconds (the engine passes `engine.minEventTime`). @default any positive ts
   */
  minEventTs?: number;
  /** How workers encode event rows: the ClickHouse writer's `format`. @default 'JSONCompactEachRow' */
  rowFormat?: RowFormat;
}

/** Tasks sent to a partition's thread before the earlier ones returned (the pipeline keeps this many in flight). */
export const TASKS_IN_FLIGHT = 2;

/**
 * Young generation of a partition thread (V8 semi-spaces of 64 MB instead of 16 MB): a worker
 * allocates a few short-lived objects per value of every event, and fewer scavenges gave 10–31 %
 * more events per CPU-second on the processor's fixed work (bench/RESULTS.md, 2026-11-23). Costs
 * up to ~190 MB of memory per thread. The main thread gets the same from bin/cxstream.js.
 */
const YOUNG_GENERATION_MB = 192;

/**
 * One single-thread piscina pool per partition: piscina would otherwise run a task on any free
 * thread, and a customer's state must live in exactly one. Tasks of a partition run in order.
 */
export class WorkerPool {
  private readonly pools: Piscina[];
  /**
   * Partitions whose thread died (a crash mid-task) and that piscina replaced with a fresh one: the
   * fresh thread has lost the partition's state, so none of its results may be used — above all not
   * a snapshot, which a checkpoint would store over the good one (docs/DELIVERY.md "Poison input").
   */
  private readonly replaced = new Set<number>();

  constructor(options: WorkerPoolOptions) {
    const filename = workerFile();
    this.pools = Array.from({ length: options.partitions }, (_, partition) => {
      const workerData: WorkerOptions = {
        partition,
        partitions: options.partitions,
        rules: options.rules,
        defaultTz: options.defaultTz ?? 'Asia/Shanghai',
        profileIntervalMs: options.profileIntervalMs ?? 60_000,
        allowedLatenessMs: options.allowedLatenessMs ?? 5_000,
        idleAfterMs: options.idleAfterMs ?? 10_000,
        maxFutureSkewMs: options.maxFutureSkewMs,
        minEventTs: options.minEventTs,
        rowFormat: options.rowFormat ?? 'JSONCompactEachRow',
      };
      const pool = new Piscina({
        filename,
        workerData,
        minThreads: 1,
        maxThreads: 1,
        // The next batch already waits in the thread while the main thread handles the last result;
        // the thread still runs them one at a time, in order (the task is synchronous).
        concurrentTasksPerWorker: TASKS_IN_FLIGHT,
        idleTimeout: Number.POSITIVE_INFINITY,
        resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
        // Atomics.wait between tasks would freeze timers inside the worker (piscina #346).
        atomics: 'disabled',
        // Tasks beyond the thread's capacity wait in piscina's queue; without this, a task that could
        // not be placed goes back to the queue's tail, behind later ones: a partition's batches would
        // run out of stream order.
        stricterFIFO: true,
      });
      // emitted before the new thread runs any task, so every later result is checked in `runOn`
      let threads = 0;
      pool.on('workerCreate', () => {
        if (++threads > 1) this.replaced.add(partition);
      });
      return pool;
    });
  }

  get partitions(): number {
    return this.pools.length;
  }

  /** Runs a batch of raw events on their partition; the payload bytes are transferred, not cloned. */
  runEvents(partition: number, events: readonly RawEvent[], now: number): Promise<BatchOutput> {
    const task = packEvents(events, now);
    return this.runOn(partition, task, {
      transferList: [
        task.bytes.buffer as ArrayBuffer,
        task.ends.buffer as ArrayBuffer,
        task.seqs.buffer as ArrayBuffer,
      ],
    });
  }

  /** Runs a task that is not a batch of events (tick, rule swap) on one partition. */
  run(partition: number, task: Exclude<WorkerTask, EventBatchTask | SnapshotTask>): Promise<BatchOutput> {
    return this.runOn(partition, task);
  }

  /** Runs the same task on every partition. */
  broadcast(task: Exclude<WorkerTask, EventBatchTask | SnapshotTask>): Promise<BatchOutput[]> {
    return Promise.all(this.pools.map((_, p) => this.runOn<BatchOutput>(p, task)));
  }

  /**
   * Encodes a partition's state in its worker, after the tasks already queued there (checkpoints):
   * all of it, or with `delta` the customers changed since its previous snapshot.
   */
  snapshot(partition: number, delta = false): Promise<SnapshotResult> {
    return this.runOn(partition, { kind: 'snapshot', delta } satisfies SnapshotTask);
  }

  /** Replaces a partition's state with a full snapshot's and its deltas' (recovery); the bytes are transferred. */
  restore(partition: number, states: readonly Uint8Array[]): Promise<BatchOutput> {
    // Copies we own (new Uint8Array copies; Buffer#slice would not): the caller's bytes may be views
    // into a larger buffer, and transferring detaches it.
    const own = states.map((s) => new Uint8Array(s));
    return this.runOn(
      partition,
      { kind: 'restore', states: own },
      { transferList: own.map((s) => s.buffer) },
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.destroy()));
  }

  /** Runs a task on the partition's thread; fails once that thread was replaced (its state is gone). */
  private async runOn<T>(
    partition: number,
    task: WorkerTask,
    options?: { transferList: ArrayBuffer[] },
  ): Promise<T> {
    const result = (await this.pool(partition).run(task, options)) as T;
    if (this.replaced.has(partition)) throw new WorkerLostError(partition);
    return result;
  }

  private pool(partition: number): Piscina {
    const pool = this.pools[partition];
    if (pool === undefined)
      throw new RangeError(`partition ${partition} out of range 0..${this.pools.length - 1}`);
    return pool;
  }
}

/** A partition's worker thread died: its in-memory state is lost; restart the engine to recover from the checkpoint. */
export class WorkerLostError extends Error {
  override readonly name = 'WorkerLostError';
  constructor(readonly partition: number) {
    super(
      `the worker thread of partition ${partition} died and was replaced; its state is lost. ` +
        'The engine must restart to recover the partition from its checkpoint',
    );
  }
}

/** Packs raw events into one transferable buffer plus offsets. */
export function packEvents(events: readonly RawEvent[], now: number): EventBatchTask {
  let size = 0;
  for (const e of events) size += e.data.byteLength;
  const bytes = new Uint8Array(size);
  const ends = new Uint32Array(events.length);
  const seqs = new Float64Array(events.length);
  const subjects = new Array<string>(events.length);
  let offset = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    bytes.set(e.data, offset);
    offset += e.data.byteLength;
    ends[i] = offset;
    seqs[i] = e.seq;
    subjects[i] = e.subject;
  }
  return { kind: 'events', now, seqs, subjects, bytes, ends };
}

/** The compiled worker entry: next to this file in dist/, or dist/ from the TypeScript sources (tests). */
function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  const file = here.endsWith('.ts')
    ? resolve(dirname(here), '../../dist/engine/runtime/worker.js')
    : resolve(dirname(here), 'worker.js');
  if (!existsSync(file)) throw new Error(`worker entry ${file} not found: run \`npm run build\` first`);
  return file;
}
