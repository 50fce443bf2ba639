import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { IdentityLimits } from '../../operators/identity.js';
import { allKeyGroups, DEFAULT_KEY_GROUPS, keyGroupOf, ownedShare } from '../../operators/keyGroups.js';
import type { PrivacyOptions } from '../../operators/privacy.js';
import type { RuleSpec } from '../../operators/rules.js';
import { type Tombstone, TombstoneSet } from '../../operators/tombstones.js';
import type { RowFormat } from '../../sinks/clickhouseRows.js';
import type { WorkerChains } from '../checkpoint/restorePlan.js';
import type { RawEvent } from '../source/eventSource.js';
import type { CustomerView } from './customerView.js';
import { log } from './log.js';
import type {
  BatchOutput,
  EventBatchTask,
  ExplainTask,
  PartitionStatus,
  RestoredSeqs,
  RestoreTask,
  SnapshotResult,
  SnapshotTask,
  StatusTask,
  WorkerOptions,
  WorkerTask,
} from './workerProtocol.js';

/** Options of the partition workers. */
export interface WorkerPoolOptions {
  partitions: number;
  /** Key groups of the deployment (operators/keyGroups.ts). @default 128 */
  keyGroups?: number;
  /**
   * The key groups this instance owns, sorted (several instances share a deployment:
   * docs/SCALING.md); its workers split them. @default all of them
   */
  ownedKeyGroups?: readonly number[];
  rules: RuleSpec[];
  /** @default 'Asia/Shanghai' */
  defaultTz?: string;
  /** @default 60_000 */
  profileIntervalMs?: number;
  /** Customers each worker keeps as objects (operators/customerStore.ts). @default 20_000 */
  hotCustomers?: number;
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
  /** Limits on an event's `ids` (the config's `identity`). @default DEFAULT_IDENTITY_LIMITS */
  identity?: IdentityLimits;
  /** How workers encode event rows: the ClickHouse writer's `format`. @default 'JSONCompactEachRow' */
  rowFormat?: RowFormat;
  /** Masking of personal data (the config's `privacy`). @default the default fields, no allowances */
  privacy?: PrivacyOptions;
  /** Forgotten customers known at start (KV `cx_tombstones`). @default none */
  tombstones?: readonly Tombstone[];
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
 * What the pool needs to restart a partition's thread in place: its latest checkpoint restored
 * into the fresh thread (engine/checkpoint/checkpointer.ts `restorePartition`), and how often it may.
 */
export interface RestartInPlace {
  /** Restores the partition's latest stored checkpoint into its (fresh) thread through `restore`. */
  recover(partition: number, restore: (chains: WorkerChains) => Promise<RestoredSeqs>): Promise<void>;
  /** Restarts of one partition allowed within `windowMs`; one more fails the engine. @default 3 */
  maxRestarts?: number;
  /** @default 600000 */
  windowMs?: number;
  /** Called after each restart (metrics, logs). */
  onRestart?: (partition: number, replayedTasks: number, ms: number) => void;
}

/** A task sent to a partition since its last stored checkpoint, kept to run again after a restart. */
interface LoggedTask {
  no: number;
  /** Raw events and the batch's wall clock, or a control task. */
  events?: readonly RawEvent[];
  now?: number;
  control?: Exclude<WorkerTask, EventBatchTask | SnapshotTask | RestoreTask>;
  /** Its output went back to the caller (a replay recomputes it and drops it). */
  returned: boolean;
}

/**
 * One single-thread piscina pool per partition: piscina would otherwise run a task on any free
 * thread, and a customer's state must live in exactly one. Tasks of a partition run in order and
 * are numbered (a checkpoint waits for the outputs of every task before its snapshot).
 *
 * A thread that dies (an out-of-memory abort, a native crash) is replaced by piscina with an empty
 * one. With {@link RestartInPlace}, the pool restores the partition's latest checkpoint into it and
 * runs again every task sent since that checkpoint, in order: the tasks whose outputs went out are
 * recomputed and dropped (the processing is deterministic), the ones that failed with the thread
 * return their outputs as if nothing happened. The other partitions go on meanwhile. Without it, or
 * beyond `maxRestarts` in `windowMs`, the task fails with {@link WorkerLostError}.
 */
export class WorkerPool {
  /** Key groups of the deployment; each worker owns a contiguous range of them. */
  readonly keyGroups: number;
  /** The key groups this instance owns (all of them unless several instances share the deployment). */
  readonly ownedKeyGroups: readonly number[];
  private readonly pools: Piscina[];
  /** Per partition: the number of the last task sent. */
  private readonly sent: number[];
  /** Per partition: tasks since the last stored checkpoint (only with restart in place). */
  private readonly logs: LoggedTask[][];
  /** Per partition: the restart in progress (tasks wait for it before they are sent). */
  private readonly restarts: Array<Promise<Map<number, BatchOutput>> | null>;
  /** Per partition: times of recent restarts. */
  private readonly restartTimes: number[][];
  /** The aggregates selection sent to every worker: a restarted thread gets it again first. */
  private counting: Exclude<WorkerTask, EventBatchTask | SnapshotTask | RestoreTask> | null = null;
  private restartInPlace: RestartInPlace | null = null;
  /** Every tombstone: those of the start and of each forget task sent (a restored thread gets them all). */
  private readonly tombstones: Tombstone[];
  /** The same, for lookups on the main thread ({@link isForgotten}). */
  private readonly forgotten = new TombstoneSet();
  /**
   * Per partition: threads piscina started, and the one the partition's state lives in. A result of
   * a thread that replaced a dead one is refused until the partition was restored into it (above all
   * a snapshot, which a checkpoint would store over the good one).
   */
  private readonly threads: number[];
  private readonly stateIn: number[];
  /** Per partition: resolves the wait for a replacement thread. */
  private readonly threadWaiters: Array<Array<() => void>>;

  constructor(options: WorkerPoolOptions) {
    const filename = workerFile();
    this.keyGroups = options.keyGroups ?? DEFAULT_KEY_GROUPS;
    this.ownedKeyGroups = [...(options.ownedKeyGroups ?? allKeyGroups(this.keyGroups))];
    this.tombstones = [...(options.tombstones ?? [])];
    for (const t of this.tombstones) this.forgotten.add(t);
    this.sent = new Array<number>(options.partitions).fill(0);
    this.logs = Array.from({ length: options.partitions }, () => []);
    this.restarts = new Array(options.partitions).fill(null);
    this.restartTimes = Array.from({ length: options.partitions }, () => []);
    this.threads = new Array<number>(options.partitions).fill(0);
    this.stateIn = new Array<number>(options.partitions).fill(1);
    this.threadWaiters = Array.from({ length: options.partitions }, () => []);
    this.pools = Array.from({ length: options.partitions }, (_, partition) => {
      const workerData: WorkerOptions = {
        partition,
        partitions: options.partitions,
        keyGroups: this.keyGroups,
        owns: ownedShare(this.ownedKeyGroups, partition, options.partitions),
        rules: options.rules,
        defaultTz: options.defaultTz ?? 'Asia/Shanghai',
        profileIntervalMs: options.profileIntervalMs ?? 60_000,
        hotCustomers: options.hotCustomers,
        allowedLatenessMs: options.allowedLatenessMs ?? 5_000,
        idleAfterMs: options.idleAfterMs ?? 10_000,
        maxFutureSkewMs: options.maxFutureSkewMs,
        minEventTs: options.minEventTs,
        identity: options.identity,
        rowFormat: options.rowFormat ?? 'JSONCompactEachRow',
        privacy: options.privacy,
        tombstones: this.tombstones,
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
        // Atomics.wait between tasks would freeze timers inside the worker: a thread blocked waiting
        // for its next task runs no timers or callbacks.
        atomics: 'disabled',
        // Tasks beyond the thread's capacity wait in piscina's queue; without this, a task that could
        // not be placed goes back to the queue's tail, behind later ones: a partition's batches would
        // run out of stream order.
        stricterFIFO: true,
      });
      // a reply of a thread being ended (a late task) must not take the process down
      pool.on('error', (err: unknown) => log.warn({ err, partition }, 'worker thread error'));
      // emitted before the new thread runs any task, so every later result is checked
      pool.on('workerCreate', () => {
        this.threads[partition]!++;
        for (const wake of this.threadWaiters[partition]!.splice(0)) wake();
      });
      return pool;
    });
  }

  /** Whether the customer was forgotten (at start, or by a forget task since): its events are skipped. */
  isForgotten(customer: string): boolean {
    return this.forgotten.has(customer);
  }

  get partitions(): number {
    return this.pools.length;
  }

  /**
   * The worker holding a customer, or -1 when another instance of the deployment owns its key group.
   */
  partitionOf(customer: string): number {
    if (this.workerOfKeyGroup === null) {
      this.workerOfKeyGroup = new Int32Array(this.keyGroups).fill(-1);
      for (let p = 0; p < this.partitions; p++)
        for (const kg of this.keyGroupsOf(p)) this.workerOfKeyGroup[kg] = p;
    }
    return this.workerOfKeyGroup[keyGroupOf(customer, this.keyGroups)]!;
  }
  private workerOfKeyGroup: Int32Array | null = null;

  /** The key groups a partition's worker owns. */
  keyGroupsOf(partition: number): number[] {
    return ownedShare(this.ownedKeyGroups, partition, this.partitions);
  }

  /**
   * Keeps every task since the last stored checkpoint, so a partition whose thread dies is restored
   * and replayed in place (see the class comment). Call before the first task.
   */
  enableRestartInPlace(restart: RestartInPlace): void {
    this.restartInPlace = restart;
  }

  /** A checkpoint holding partition `partition` up to task `task` was stored: its log can forget them. */
  checkpointed(partition: number, task: number): void {
    const log = this.logs[partition]!;
    let n = 0;
    while (n < log.length && log[n]!.no <= task) n++;
    if (n > 0) log.splice(0, n);
  }

  /** Runs a batch of raw events on their partition; the payload bytes are transferred, not cloned. */
  runEvents(partition: number, events: readonly RawEvent[], now: number): Promise<BatchOutput> {
    return this.numbered(partition, { no: 0, events, now, returned: false });
  }

  /** Runs a task that is not a batch of events (tick, rule swap) on one partition. */
  run(
    partition: number,
    task: Exclude<WorkerTask, EventBatchTask | SnapshotTask | RestoreTask | ExplainTask | StatusTask>,
  ): Promise<BatchOutput> {
    if (task.kind === 'forget' && !this.tombstones.some((t) => t.hash === task.tombstone.hash)) {
      this.tombstones.push(task.tombstone);
      this.forgotten.add(task.tombstone);
    }
    return this.numbered(partition, { no: 0, control: task, returned: false });
  }

  /** Runs the same task on every partition. */
  broadcast(
    task: Exclude<WorkerTask, EventBatchTask | SnapshotTask | RestoreTask | ExplainTask | StatusTask>,
  ): Promise<BatchOutput[]> {
    if (task.kind === 'aggregates') this.counting = task;
    return Promise.all(this.pools.map((_, p) => this.run(p, task)));
  }

  /**
   * Encodes a partition's state in its worker, after the tasks already sent there (checkpoints):
   * all of it, or with `delta` the customers changed since its previous snapshot.
   */
  async snapshot(partition: number, delta = false): Promise<SnapshotResult> {
    await this.restarts[partition];
    const afterTask = this.sent[partition]!;
    const result = await this.send<SnapshotResult>(partition, {
      kind: 'snapshot',
      delta,
    } satisfies SnapshotTask);
    this.checkReplaced(partition);
    return { ...result, afterTask };
  }

  /**
   * One customer's state and recent decisions, read in the partition's worker between two of its
   * tasks (live explain); null when the partition holds no state for the customer. Not numbered: it
   * changes nothing, so checkpoints do not wait for it and a restart does not replay it.
   */
  explain(partition: number, customer: string): Promise<CustomerView | null> {
    return this.read<CustomerView | null>(partition, { kind: 'explain', customer } satisfies ExplainTask);
  }

  /**
   * The position and size of each key group the partition owns, read in its worker between two of
   * its tasks (`cx.admin.status`, the per-key-group metrics); not numbered, as {@link explain}.
   */
  status(partition: number): Promise<PartitionStatus> {
    return this.read<PartitionStatus>(partition, { kind: 'status' } satisfies StatusTask);
  }

  /** Runs a task that only reads the worker's state, after any restart in progress. */
  private async read<T>(partition: number, task: ExplainTask | StatusTask): Promise<T> {
    await this.restarts[partition];
    const result = await this.send<T>(partition, task);
    this.checkReplaced(partition);
    return result;
  }

  /**
   * Replaces a worker's state with checkpointed ones (recovery): chains of a full snapshot and its
   * deltas, each with the key groups to take from it. Resolves with each key group's restored sequence.
   */
  async restore(partition: number, chains: WorkerChains): Promise<RestoredSeqs> {
    const seqs = await this.sendRestore(partition, chains);
    this.checkReplaced(partition);
    return seqs;
  }

  /**
   * Ends the threads, once the tasks under way returned (at most 10 s): a thread ended with a task
   * in flight answers a task piscina no longer knows (an engine stopped early: its key groups moved).
   */
  async close(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 10_000);
      }),
    ]);
    clearTimeout(timer);
    await Promise.all(this.pools.map((pool) => pool.destroy()));
  }

  /** Numbers a task, logs it (restart in place) and runs it; after a thread loss, restarts the partition. */
  private async numbered(partition: number, entry: LoggedTask): Promise<BatchOutput> {
    this.pool(partition); // range check
    await this.restarts[partition];
    entry.no = ++this.sent[partition]!;
    if (this.restartInPlace) this.logs[partition]!.push(entry);
    try {
      const out = await this.execute(partition, entry);
      this.checkReplaced(partition);
      entry.returned = true;
      return { ...out, task: entry.no };
    } catch (e) {
      if (!this.restartInPlace || !(isThreadLoss(e) || isWorkerLost(e))) throw e;
      const outputs = await this.restart(partition);
      const out = outputs.get(entry.no);
      if (out === undefined) throw e;
      entry.returned = true;
      return { ...out, task: entry.no };
    }
  }

  /** Restores the partition in its fresh thread and replays its log; the outputs of tasks not returned yet. */
  private restart(partition: number): Promise<Map<number, BatchOutput>> {
    const running = this.restarts[partition];
    if (running) return running;
    const restart = this.restartInPlace!;
    const started = performance.now();
    const attempt = (async () => {
      const times = this.restartTimes[partition]!;
      const now = Date.now();
      while (times.length > 0 && now - times[0]! > (restart.windowMs ?? 600_000)) times.shift();
      if (times.length >= (restart.maxRestarts ?? 3)) throw new WorkerLostError(partition, times.length);
      times.push(now);
      // piscina starts a replacement as the old thread exits: the state goes into that one
      await this.replacement(partition);
      this.stateIn[partition] = this.threads[partition]!;
      await restart.recover(partition, (chains) => this.sendRestore(partition, chains));
      if (this.counting) await this.send(partition, this.counting);
      const outputs = new Map<number, BatchOutput>();
      const log = this.logs[partition]!;
      for (const entry of log) {
        const out = await this.execute(partition, entry);
        if (!entry.returned) outputs.set(entry.no, out);
      }
      this.checkReplaced(partition);
      restart.onRestart?.(partition, log.length, performance.now() - started);
      return outputs;
    })();
    this.restarts[partition] = attempt;
    // later tasks wait for the restart, then run on the restored thread (or fail with it)
    void attempt.then(
      () => {
        this.restarts[partition] = null;
      },
      () => {},
    );
    return attempt;
  }

  private execute(partition: number, entry: LoggedTask): Promise<BatchOutput> {
    if (entry.events === undefined) return this.send<BatchOutput>(partition, entry.control!);
    const task = packEvents(entry.events, entry.now!);
    return this.send<BatchOutput>(partition, task, {
      transferList: [
        task.bytes.buffer as ArrayBuffer,
        task.ends.buffer as ArrayBuffer,
        task.seqs.buffer as ArrayBuffer,
      ],
    });
  }

  private async sendRestore(partition: number, chains: WorkerChains): Promise<RestoredSeqs> {
    // Copies we own (new Uint8Array copies; Buffer#slice would not): the caller's bytes may be views
    // into a larger buffer or go to several workers, and transferring detaches them.
    const own = chains.map((c) => ({
      keyGroups: c.keyGroups,
      states: c.states.map((s) => new Uint8Array(s)),
    }));
    return await this.send<RestoredSeqs>(
      partition,
      { kind: 'restore', chains: own, tombstones: [...this.tombstones] },
      { transferList: own.flatMap((c) => c.states.map((s) => s.buffer as ArrayBuffer)) },
    );
  }

  private send<T>(
    partition: number,
    task: WorkerTask,
    options?: { transferList: ArrayBuffer[] },
  ): Promise<T> {
    const run = this.pool(partition).run(task, options) as Promise<T>;
    this.running.add(run);
    void run.then(
      () => this.running.delete(run),
      () => this.running.delete(run),
    );
    return run;
  }
  /** Tasks sent and not settled: `close` waits for them. */
  private readonly running = new Set<Promise<unknown>>();

  /** A result of a thread that replaced a dead one, before the partition was restored, is refused. */
  private checkReplaced(partition: number): void {
    if (this.threads[partition] !== this.stateIn[partition]) throw new WorkerLostError(partition);
  }

  /** Resolves once piscina has started a thread after the one the partition's state was in. */
  private replacement(partition: number): Promise<void> {
    if (this.threads[partition]! > this.stateIn[partition]!) return Promise.resolve();
    return new Promise((resolve) => this.threadWaiters[partition]!.push(resolve));
  }

  private pool(partition: number): Piscina {
    const pool = this.pools[partition];
    if (pool === undefined)
      throw new RangeError(`partition ${partition} out of range 0..${this.pools.length - 1}`);
    return pool;
  }
}

function isWorkerLost(e: unknown): boolean {
  return e instanceof Error && e.name === 'WorkerLostError';
}

/** Whether a task failed because its thread went away (not because the task threw). */
function isThreadLoss(e: unknown): boolean {
  return e instanceof Error && /worker exited|Terminating worker thread|terminated/i.test(e.message);
}

/** A partition's worker thread died: its in-memory state is lost. */
export class WorkerLostError extends Error {
  override readonly name = 'WorkerLostError';
  constructor(
    readonly partition: number,
    /** Restarts already done within the window (restart in place gave up), or undefined without it. */
    readonly restarts?: number,
  ) {
    super(
      restarts === undefined
        ? `the worker thread of partition ${partition} died and was replaced; its state is lost. ` +
            'The engine must restart to recover the partition from its checkpoint'
        : `the worker thread of partition ${partition} died again after ${restarts} restarts in place; ` +
            'giving up (engine.workerRestarts): the engine exits and recovers from its checkpoint',
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
  let canonical: string[] | undefined;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    bytes.set(e.data, offset);
    offset += e.data.byteLength;
    ends[i] = offset;
    seqs[i] = e.seq;
    subjects[i] = e.subject;
    if (e.customer !== undefined) {
      canonical ??= new Array<string>(events.length).fill('');
      canonical[i] = e.customer;
    }
  }
  const task: EventBatchTask = { kind: 'events', now, seqs, subjects, bytes, ends };
  if (canonical !== undefined) task.canonical = canonical;
  return task;
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
