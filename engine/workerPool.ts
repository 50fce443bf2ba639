import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { RuleSpec } from '../operators/rules.js';
import type { RowFormat } from '../sinks/clickhouseRows.js';
import type {
  BatchOutput,
  EventBatchTask,
  RawEvent,
  SnapshotResult,
  SnapshotTask,
  WorkerOptions,
  WorkerTask,
} from './types.js';

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
  /** Events more than this ahead of the wall clock are dead-lettered. @default 300_000 */
  maxFutureSkewMs?: number;
  /** How workers encode event rows: the ClickHouse writer's `format`. @default 'JSONCompactEachRow' */
  rowFormat?: RowFormat;
}

/**
 * One single-thread piscina pool per partition: piscina would otherwise run a task on any free
 * thread, and a customer's state must live in exactly one. Tasks of a partition run in order.
 */
export class WorkerPool {
  private readonly pools: Piscina[];

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
        maxFutureSkewMs: options.maxFutureSkewMs ?? 300_000,
        rowFormat: options.rowFormat ?? 'JSONCompactEachRow',
      };
      return new Piscina({
        filename,
        workerData,
        minThreads: 1,
        maxThreads: 1,
        concurrentTasksPerWorker: 1,
        idleTimeout: Number.POSITIVE_INFINITY,
        // Atomics.wait between tasks would freeze timers inside the worker (piscina #346).
        atomics: 'disabled',
      });
    });
  }

  get partitions(): number {
    return this.pools.length;
  }

  /** Runs a batch of raw events on their partition; the payload bytes are transferred, not cloned. */
  runEvents(partition: number, events: readonly RawEvent[], now: number): Promise<BatchOutput> {
    const task = packEvents(events, now);
    return this.pool(partition).run(task, {
      transferList: [
        task.bytes.buffer as ArrayBuffer,
        task.ends.buffer as ArrayBuffer,
        task.seqs.buffer as ArrayBuffer,
      ],
    });
  }

  /** Runs a task that is not a batch of events (tick, rule swap) on one partition. */
  run(partition: number, task: Exclude<WorkerTask, EventBatchTask | SnapshotTask>): Promise<BatchOutput> {
    return this.pool(partition).run(task);
  }

  /** Runs the same task on every partition. */
  broadcast(task: Exclude<WorkerTask, EventBatchTask | SnapshotTask>): Promise<BatchOutput[]> {
    return Promise.all(this.pools.map((pool) => pool.run(task)));
  }

  /** Encodes a partition's state in its worker, after the tasks already queued there (checkpoints). */
  snapshot(partition: number): Promise<SnapshotResult> {
    return this.pool(partition).run({ kind: 'snapshot' } satisfies SnapshotTask);
  }

  /** Replaces a partition's state with a snapshot's (recovery); the bytes are transferred. */
  restore(partition: number, state: Uint8Array): Promise<BatchOutput> {
    // A copy we own (new Uint8Array copies; Buffer#slice would not): the caller's bytes may be a
    // view into a larger buffer, and transferring detaches it.
    const own = new Uint8Array(state);
    return this.pool(partition).run({ kind: 'restore', state: own }, { transferList: [own.buffer] });
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.destroy()));
  }

  private pool(partition: number): Piscina {
    const pool = this.pools[partition];
    if (pool === undefined)
      throw new RangeError(`partition ${partition} out of range 0..${this.pools.length - 1}`);
    return pool;
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
    ? resolve(dirname(here), '../dist/engine/worker.js')
    : resolve(dirname(here), 'worker.js');
  if (!existsSync(file)) throw new Error(`worker entry ${file} not found: run \`npm run build\` first`);
  return file;
}
