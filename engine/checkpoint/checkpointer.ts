/**
 * Checkpoint coordination: when a message may be acked.
 *
 * With `AckPolicy.All` an ack of sequence N acks everything below it, so the source may only ack a
 * prefix that is (a) delivered: every event's outputs accepted by the sinks, and (b) covered:
 * every partition's durable checkpoint includes its events of that prefix. The pipeline reports
 * (a) here instead of acking; a checkpoint establishes (b) and then releases the acks:
 *
 * 1. D = the delivered prefix now; T = CX_TRIGGERS' last sequence now.
 * 2. Each worker encodes its state (after the batches already queued to it): lastSeq L_p ≥ every
 *    event of p at or below D, because those were applied before they were delivered.
 * 3. Wait until every output of the tasks each worker ran before its snapshot is delivered (event
 *    batches, ticks, rule swaps): a state must never be stored before the outputs it caused are
 *    delivered, or a crash would skip those events on replay and lose their outputs.
 * 4. Store every partition's record (coveredSeq = D) durably, then ack D. A partition without
 *    events in the range is covered trivially: its state holds all of its (zero) events there.
 *
 * Recovery restores each partition's record; JetStream redelivers everything above the ack floor
 * (≤ every coveredSeq) and each processor skips sequences ≤ its restored lastSeq.
 *
 * Incremental: a partition's record is a delta (the customers changed since its previous snapshot)
 * while its chain is short — at most `maxDeltas` deltas, together smaller than the full record they
 * follow, so a restore reads at most about twice the state — and full otherwise. A checkpoint that
 * fails after the workers took their snapshots breaks every chain (the changes in those snapshots
 * were not stored): the next one is full.
 */
import { randomUUID } from 'node:crypto';
import type { RestoredSeqs, SnapshotResult } from '../runtime/workerProtocol.js';
import { AckTracker } from '../source/ackTracker.js';
import type { EventSource } from '../source/eventSource.js';
import type { CheckpointStore, LoadedCheckpoint } from './checkpointStore.js';
import { planRestore, type WorkerChains } from './restorePlan.js';

/** What a checkpoint needs of the worker pool. */
export interface CheckpointPool {
  readonly partitions: number;
  readonly keyGroups: number;
  /** The key groups a partition's worker owns. */
  keyGroupsOf(partition: number): number[];
  snapshot(partition: number, delta: boolean): Promise<SnapshotResult>;
  restore(partition: number, chains: WorkerChains): Promise<RestoredSeqs>;
  /** The partition's record holding its tasks up to `task` is stored (a restart in place replays from there). */
  checkpointed?(partition: number, task: number): void;
}

/** Options of {@link Checkpointer}. */
export interface CheckpointerOptions {
  pool: CheckpointPool;
  store: CheckpointStore;
  /** Acked (`done`) only for what a checkpoint covers. */
  source: EventSource;
  /** CX_TRIGGERS' last sequence now; 0 when triggers do not go to NATS. @default () => 0 */
  triggersSeq?: () => Promise<number>;
  /** CX_EVENTS' last sequence now (read at recovery). @default () => 0 */
  eventsSeq?: () => Promise<number>;
  /** Wall clock for `createdAt`. @default Date.now */
  clock?: () => number;
  /** Deltas after a full record before the next full one; 0 = every checkpoint full. @default 100 */
  maxDeltas?: number;
}

/** A partition's chain of records: the full one and the deltas saved after it. */
interface Chain {
  base: string;
  /** Deltas saved so far. */
  deltas: number;
  fullBytes: number;
  deltaBytes: number;
}

/** What one checkpoint did. */
export interface CheckpointStats {
  /** Events at or below this sequence are covered and were acked. */
  coveredSeq: number;
  /** Bytes of state stored (all partitions). */
  bytes: number;
  /** Partitions that stored a delta (the others a full record). */
  deltas: number;
  /** Wall-clock time of the checkpoint (ms): the records' `createdAt`. */
  createdAt: number;
  /** Time to encode, wait for delivery, and store (ms). */
  ms: number;
  /** Part of `ms` spent storing (ms). */
  storeMs: number;
}

/** What {@link Checkpointer.recover} found. */
export interface RecoveryInfo {
  /** Workers restored from a checkpoint (the others start empty). */
  restored: number[];
  /**
   * Per key group: the highest stream sequence its restored state holds (0: none). Null when the
   * records were written by a version without key groups (sequences were per partition then).
   */
  keyGroupSeqs: number[] | null;
  /** Lowest coveredSeq (0 when a partition had none): the ack floor must not be above it. */
  coveredSeq: number;
  /** Lowest CX_TRIGGERS sequence of the records (0 when a partition had none): read trigger ids above it. */
  triggersSeq: number;
  /** Bytes of state read. */
  bytes: number;
  /** The records the key groups come from (name, coverage, key groups held), for the log. */
  sources: Array<{ record: string; coveredSeq: number; keyGroups: number }>;
  ms: number;
}

/**
 * The other instances' records that no restore would ever read: for each of their key groups another
 * record is newer (higher `coveredSeq`). An instance that gave its key groups away leaves such records.
 */
function obsoleteRecords(records: readonly LoadedCheckpoint[]): LoadedCheckpoint[] {
  const newest = new Map<number, number>();
  for (const r of records)
    for (const kg of r.kgs ?? []) newest.set(kg, Math.max(newest.get(kg) ?? 0, r.coveredSeq));
  return records.filter((r) => r.foreign && r.kgs?.every((kg) => newest.get(kg)! > r.coveredSeq));
}

/** Coordinates partition checkpoints with the acks of the source (see the file comment). */
export class Checkpointer {
  private readonly pool: CheckpointPool;
  private readonly store: CheckpointStore;
  private readonly source: EventSource;
  private readonly triggersSeq: () => Promise<number>;
  private readonly eventsSeq: () => Promise<number>;
  /**
   * After a recovery, triggers of earlier incarnations were published above `recoveredTriggersSeq`
   * for events up to `replayUntil` (the stream's end at recovery). Until the checkpoints cover those
   * events, records keep the recovered sequence: a state restored behind those publications must
   * still find them in the ledger after the next crash.
   */
  private recoveredTriggersSeq = Number.POSITIVE_INFINITY;
  private replayUntil = 0;
  private readonly clock: () => number;
  /** Delivery of the source's events: its "ack" is our delivered prefix. */
  private readonly delivery: AckTracker<null>;
  private deliveredSeq = 0;
  /** Delivered batches whose sequences are not yet acked at the source (ascending per batch). */
  private uncommitted: Array<ArrayLike<number>> = [];
  private uncommittedCount = 0;
  /** Per partition: coveredSeq of its latest durable record. */
  private readonly covered: number[];
  /** Per partition: the chain the next delta extends; null = the next record is full. */
  private readonly chains: Array<Chain | null>;
  /** Records of another grouping found at recovery: removed after the first checkpoint stored. */
  private stale: number[] = [];
  /** Other instances' records found at recovery that newer records replace for every key group: removed likewise. */
  private obsolete: LoadedCheckpoint[] = [];
  private readonly maxDeltas: number;
  private running: Promise<CheckpointStats> | null = null;
  private last: CheckpointStats | null = null;
  private schedule: {
    timer: ReturnType<typeof setTimeout> | null;
    fire: () => void;
    earlyAt: number;
  } | null = null;
  /** Resolves once every output of a partition's tasks up to a number is delivered (the pipeline's). */
  private outputsDelivered: (partition: number, task: number) => Promise<void> = async () => {};

  constructor(options: CheckpointerOptions) {
    this.pool = options.pool;
    this.store = options.store;
    this.source = options.source;
    this.triggersSeq = options.triggersSeq ?? (async () => 0);
    this.eventsSeq = options.eventsSeq ?? (async () => 0);
    this.clock = options.clock ?? Date.now;
    this.covered = new Array<number>(options.pool.partitions).fill(0);
    this.chains = new Array<Chain | null>(options.pool.partitions).fill(null);
    this.maxDeltas = options.maxDeltas ?? 100;
    this.delivery = new AckTracker<null>((_, lastSeq) => {
      this.deliveredSeq = lastSeq;
    });
  }

  /** Delivered events not yet acked (they wait for the next checkpoint). */
  get pendingAcks(): number {
    return this.uncommittedCount;
  }

  /** The latest checkpoint's figures, or null before the first. */
  get lastCheckpoint(): CheckpointStats | null {
    return this.last;
  }

  /**
   * Per worker: its chain of stored records as the next checkpoint extends it: when its full record
   * was taken (null when unknown, e.g. a record of an older version) and the deltas stored after it;
   * null when its next record is a full one (before the first, after a failed checkpoint).
   */
  get chainStatus(): Array<{ fullAt: number | null; deltas: number } | null> {
    return this.chains.map((c) => {
      if (c === null) return null;
      // full records are named `<createdAt>-<random>` (take below)
      const fullAt = Number.parseInt(c.base, 10);
      return { fullAt: Number.isFinite(fullAt) ? fullAt : null, deltas: c.deltas };
    });
  }

  /**
   * Loads the stored records and restores each worker's key groups from them, whatever grouping
   * wrote them (engine/checkpoint/restorePlan.ts). Refuses records of another key-group count or
   * format. Call before the first event reaches the workers.
   */
  async recover(): Promise<RecoveryInfo> {
    const started = performance.now();
    const P = this.pool.partitions;
    const present = await this.store.partitions();
    const records = await this.loadAll(present);
    const plan = planRestore(records, this.workerKeyGroups(), this.pool.keyGroups, this.store.location);
    this.obsolete = obsoleteRecords(records);
    // Records of another grouping are removed once the current workers' are stored.
    this.stale = present.filter((p) => p >= P);
    if (records.length > 0) {
      this.recoveredTriggersSeq = plan.triggersSeq;
      this.replayUntil = await this.eventsSeq();
    }
    const keyGroupSeqs = new Array<number>(this.pool.keyGroups).fill(0);
    const restored: number[] = [];
    await Promise.all(
      plan.workers.map(async (chains, p) => {
        if (chains.length === 0) return;
        for (const [kg, seq] of await this.pool.restore(p, chains)) keyGroupSeqs[kg] = seq;
        restored.push(p);
      }),
    );
    for (let p = 0; p < P; p++) {
      const kgs = this.pool.keyGroupsOf(p);
      this.covered[p] =
        kgs.length > 0 ? Math.min(...kgs.map((kg) => plan.coveredSeqs[kg]!)) : plan.coveredSeq;
      // a restored worker has no changes yet: its next delta extends its stored chain (same grouping)
      const own = plan.continues[p] ?? null;
      this.chains[p] =
        own === null || own.base === ''
          ? null
          : {
              base: own.base,
              deltas: own.delta,
              fullBytes: own.state.byteLength,
              deltaBytes: own.deltas.reduce((n, d) => n + d.byteLength, 0),
            };
    }
    return {
      restored: restored.sort((a, b) => a - b),
      keyGroupSeqs: plan.legacy ? null : keyGroupSeqs,
      coveredSeq: plan.coveredSeq,
      triggersSeq: plan.triggersSeq,
      bytes: plan.bytes,
      sources: plan.sources,
      ms: performance.now() - started,
    };
  }

  /**
   * A worker's thread was replaced (it died): restores its key groups from the stored records into
   * it through `restore`, after any checkpoint being stored, so the worker pool can replay the tasks
   * since (engine/runtime/workerPool.ts "restart in place"). Its next record is a full one.
   */
  async restorePartition(
    partition: number,
    restore: (chains: WorkerChains) => Promise<RestoredSeqs>,
  ): Promise<void> {
    await this.running?.catch(() => {});
    const records = await this.loadAll(await this.store.partitions());
    const chains = planRestore(records, this.workerKeyGroups(), this.pool.keyGroups, this.store.location)
      .workers[partition]!;
    if (chains.length > 0) await restore(chains);
    this.chains[partition] = null;
  }

  /** The stored records: this instance's partitions', and the deployment's other instances'. */
  private async loadAll(partitions: readonly number[]): Promise<LoadedCheckpoint[]> {
    const records: LoadedCheckpoint[] = [];
    for (const p of partitions) {
      const r = await this.store.load(p);
      if (r !== null) records.push(r);
    }
    if (this.store.foreign) records.push(...(await this.store.foreign()));
    return records;
  }

  /** Each worker's key groups. */
  private workerKeyGroups(): number[][] {
    return Array.from({ length: this.pool.partitions }, (_, p) => this.pool.keyGroupsOf(p));
  }

  /** A chunk of events left the source, in stream order (before routing). */
  track(seqs: ArrayLike<number>): void {
    this.delivery.track(seqs, null);
  }

  /** The outputs of these events were accepted by every sink; they are acked at the next checkpoint. */
  delivered(seqs: ArrayLike<number>): void {
    this.delivery.done(seqs);
    this.uncommitted.push(seqs);
    this.uncommittedCount += seqs.length;
    // so many waiting acks would soon stall the source (maxInFlight): checkpoint now
    if (this.schedule && this.uncommittedCount >= this.schedule.earlyAt) this.schedule.fire();
  }

  /**
   * Checkpoints every `intervalMs`, and at once when `earlyAt` delivered events wait for their ack.
   * A failed one is reported to `onError` and retried at the next turn (acks simply wait).
   * `outputsDelivered` tells when the outputs of a partition's tasks are delivered (the pipeline's).
   */
  start(options: {
    intervalMs: number;
    earlyAt: number;
    outputsDelivered: (partition: number, task: number) => Promise<void>;
    onCheckpoint?: (stats: CheckpointStats) => void;
    onError: (error: unknown) => void;
  }): void {
    this.outputsDelivered = options.outputsDelivered;
    let busy = false;
    const fire = (): void => {
      if (busy || !this.schedule) return;
      busy = true;
      if (this.schedule.timer) clearTimeout(this.schedule.timer);
      this.schedule.timer = null;
      void this.checkpoint()
        .then((stats) => options.onCheckpoint?.(stats), options.onError)
        .finally(() => {
          busy = false;
          if (this.schedule) this.schedule.timer = setTimeout(fire, options.intervalMs);
        });
    };
    this.schedule = { timer: setTimeout(fire, options.intervalMs), fire, earlyAt: options.earlyAt };
  }

  /** Stops the periodic checkpoints (a running one completes). */
  stop(): void {
    if (this.schedule?.timer) clearTimeout(this.schedule.timer);
    this.schedule = null;
  }

  /** Checkpoints every partition and acks what the checkpoint covers. Concurrent calls share one checkpoint. */
  checkpoint(): Promise<CheckpointStats> {
    if (!this.running) {
      this.running = this.take()
        .catch((e: unknown) => {
          // the workers may have taken their snapshots: what changed before is in none that was stored
          this.chains.fill(null);
          throw e;
        })
        .finally(() => {
          this.running = null;
        });
    }
    return this.running;
  }

  private async take(): Promise<CheckpointStats> {
    const started = performance.now();
    const delivered = this.deliveredSeq;
    let triggersSeq = await this.triggersSeq();
    // the coverage this checkpoint will have: max(delivered, covered[p]) for every p
    if (Math.max(delivered, Math.min(...this.covered)) < this.replayUntil) {
      triggersSeq = Math.min(triggersSeq, this.recoveredTriggersSeq);
    }
    const P = this.pool.partitions;
    const delta = this.chains.map(
      (c) => c !== null && c.deltas < this.maxDeltas && c.deltaBytes < c.fullBytes,
    );
    const snapshots = await Promise.all(
      Array.from({ length: P }, (_, p) => this.pool.snapshot(p, delta[p]!)),
    );
    await Promise.all(snapshots.map((s, p) => this.outputsDelivered(p, s.afterTask)));
    const storing = performance.now();
    const createdAt = this.clock();
    let bytes = 0;
    const chains = snapshots.map((s, p): Chain => {
      const chain = this.chains[p];
      if (delta[p] && chain)
        return { ...chain, deltas: chain.deltas + 1, deltaBytes: chain.deltaBytes + s.state.byteLength };
      return {
        base: `${createdAt}-${randomUUID().slice(0, 8)}`,
        deltas: 0,
        fullBytes: s.state.byteLength,
        deltaBytes: 0,
      };
    });
    await Promise.all(
      snapshots.map((s, p) => {
        bytes += s.state.byteLength;
        return this.store.save({
          partition: p,
          partitions: P,
          keyGroups: this.pool.keyGroups,
          kgs: s.keyGroups,
          coveredSeq: Math.max(delivered, this.covered[p]!),
          triggersSeq,
          createdAt,
          base: chains[p]!.base,
          delta: chains[p]!.deltas,
          state: s.state,
        });
      }),
    );
    chains.forEach((c, p) => {
      this.chains[p] = c;
      this.pool.checkpointed?.(p, snapshots[p]!.afterTask);
    });
    for (let p = 0; p < P; p++) this.covered[p] = Math.max(delivered, this.covered[p]!);
    // every key group is now in a record of this grouping: the earlier grouping's records can go
    for (const p of this.stale) if (p >= P) await this.store.remove(p);
    this.stale = [];
    for (const r of this.obsolete) await this.store.removeForeign?.(r);
    this.obsolete = [];
    const coveredSeq = Math.min(...this.covered);
    this.commit(coveredSeq);
    const ended = performance.now();
    this.last = {
      coveredSeq,
      bytes,
      deltas: delta.filter(Boolean).length,
      createdAt,
      ms: ended - started,
      storeMs: ended - storing,
    };
    return this.last;
  }

  /**
   * Stores a full record of every partition now (after a checkpoint under way): `forget` removed a
   * customer, which a delta cannot say, and the full save removes the deltas of the chain before.
   */
  async fullCheckpoint(): Promise<CheckpointStats> {
    await this.running?.catch(() => {});
    this.chains.fill(null);
    return await this.checkpoint();
  }

  /** Hands the source every delivered sequence at or below `seq`: it acks the contiguous prefix. */
  private commit(seq: number): void {
    const keep: Array<ArrayLike<number>> = [];
    let kept = 0;
    for (const seqs of this.uncommitted) {
      const n = seqs.length;
      if (n === 0) continue;
      if (seqs[n - 1]! <= seq) {
        this.source.done(seqs);
        continue;
      }
      const acked: number[] = [];
      const rest: number[] = [];
      for (let i = 0; i < n; i++) (seqs[i]! <= seq ? acked : rest).push(seqs[i]!);
      if (acked.length > 0) this.source.done(acked);
      keep.push(rest);
      kept += rest.length;
    }
    this.uncommitted = keep;
    this.uncommittedCount = kept;
  }
}
