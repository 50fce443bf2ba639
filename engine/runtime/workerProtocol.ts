/**
 * Messages between the main thread and the partition workers (piscina), in one place
 * as piscina keeps its RequestMessage / ResponseMessage.
 */

import type { IdentityLimits } from '../../operators/identity.js';
import type { DetachedCustomer, ForgetResult } from '../../operators/partitionProcessor.js';
import type { PrivacyOptions } from '../../operators/privacy.js';
import type { CountedBatch, CountedSelection } from '../../operators/regionSurge.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { Tombstone } from '../../operators/tombstones.js';
import type { ProfileRow, Reject, Trigger } from '../../operators/types.js';
import type { EncodedRows, RowFormat } from '../../sinks/clickhouseRows.js';

/** Options every partition worker starts with (piscina `workerData`). */
export interface WorkerOptions {
  /** This worker's number: it owns its range of key groups among `partitions` (operators/keyGroups.ts). */
  partition: number;
  partitions: number;
  /** Key groups of the deployment. */
  keyGroups: number;
  /** The key groups this worker owns (its share of its instance's). */
  owns: number[];
  rules: RuleSpec[];
  /** Customer-local time zone when an event has no `tz`. */
  defaultTz: string;
  /** Minimum event time between two published snapshots of one customer's profile. */
  profileIntervalMs: number;
  /** Customers kept as objects (absent: the processor's default). */
  hotCustomers?: number;
  /** Watermark = highest event time seen − this (ms). */
  allowedLatenessMs: number;
  /** Wall-clock ms without events after which the watermark follows the clock. */
  idleAfterMs: number;
  /** Events more than this ahead of the batch's wall clock are dead-lettered (absent: the processor's default). */
  maxFutureSkewMs?: number;
  /** Events with an earlier `ts` (epoch ms) are dead-lettered (absent: any positive ts). */
  minEventTs?: number;
  /** Limits on an event's `ids` (the config's `identity`). */
  identity?: IdentityLimits;
  /** How the worker encodes `cxstream.events` rows (the ClickHouse writer's insert format). */
  rowFormat: RowFormat;
  /** Masking of personal data (the config's `privacy`; absent: the defaults). */
  privacy?: PrivacyOptions;
  /** Forgotten customers known at start (KV `cx_tombstones`): their events and restored state are dropped. */
  tombstones?: Tombstone[];
}

/** A micro-batch of one partition's events, packed so the bytes transfer instead of cloning. */
export interface EventBatchTask {
  kind: 'events';
  /** Wall-clock time on the main thread when the batch was sent (ms). */
  now: number;
  seqs: Float64Array;
  subjects: string[];
  /** All payloads back to back; payload i is bytes[ends[i-1] .. ends[i]). */
  bytes: Uint8Array;
  ends: Uint32Array;
  /** Identity stitching: per event, the customer its key was merged into ('' for its own key); absent when none was. */
  canonical?: string[];
}

/**
 * A wall-clock tick of a live stream, or the end of a replay (`flush`: publish every changed profile).
 * A quiet partition moves its watermark with `now` (engine/operators watermark "live edge").
 */
export interface TickTask {
  kind: 'tick';
  /** Wall clock while the source is connected and caught up (the live edge); null otherwise and in replays. */
  now: number | null;
  flush: boolean;
}

/** Swap the rule set without losing customer state. */
export interface RulesTask {
  kind: 'rules';
  rules: RuleSpec[];
}

/** Encode the partition's state for a checkpoint (msgpack, encoded in the worker). */
export interface SnapshotTask {
  kind: 'snapshot';
  /** Only the customers changed since the previous snapshot (see `PartitionSnapshot.delta`). */
  delta: boolean;
}

/** Replace the worker's state with checkpointed ones (recovery, a restarted worker). */
export interface RestoreTask {
  kind: 'restore';
  /**
   * Chains of encoded `PartitionSnapshot`s as {@link SnapshotTask}s returned them, each a full one and
   * its deltas in order, and the key groups to take from it (the worker takes those it owns).
   */
  chains: Array<{ keyGroups: number[]; states: Uint8Array[] }>;
  /**
   * Every tombstone the pool knows, added before the state is restored: a thread restarted in
   * place started with the tombstones of the engine's start only.
   */
  tombstones?: Tombstone[];
}

/**
 * Move the partition's event time to `to` (end of a replay with `--until`): timers due by then fire.
 * Workers whose processor has no `advanceTo` answer with an empty output.
 */
export interface AdvanceTask {
  kind: 'advance';
  to: number;
}

/** Which event rows the worker reports in `BatchOutput.counted` for the main-thread aggregates. */
export interface AggregatesTask {
  kind: 'aggregates';
  selection: CountedSelection;
}

/**
 * Read one customer's state and recent decisions (live explain, engine/runtime/liveExplain.ts);
 * answers a `CustomerView`, or null when the partition holds no state for the customer. Changes nothing.
 */
export interface ExplainTask {
  kind: 'explain';
  customer: string;
}

/**
 * Read the position and size of every key group the worker owns (`cx.admin.status`, the per-key-group
 * metrics; engine/runtime/liveStatus.ts); answers a {@link PartitionStatus}. Changes nothing.
 */
export interface StatusTask {
  kind: 'status';
}

/** A key group as a {@link StatusTask} reports it: times are epoch ms, null before its first event. */
export interface KeyGroupStatus {
  kg: number;
  /** Highest stream sequence applied (0 before the first). */
  lastSeq: number;
  watermark: number | null;
  maxEventTime: number | null;
  customers: number;
  /** Customers held as objects; the others are held as msgpack bytes. */
  hotCustomers: number;
  /** Timer queue entries, stale ones included: an upper bound of the pending timers. */
  timersQueued: number;
}

/** What a {@link StatusTask} answers: the worker's key groups, ascending. */
export interface PartitionStatus {
  partition: number;
  keyGroups: KeyGroupStatus[];
}

/**
 * Forget a customer (engine/runtime/forget.ts): every partition keeps the tombstone, the owner
 * removes the customer's state, timers and waiting events. Sent in order with the batches, so
 * everything before it in the stream was applied and everything after it is skipped.
 */
export interface ForgetTask {
  kind: 'forget';
  customer: string;
  tombstone: Tombstone;
}

/**
 * Identity stitching, first step of a merge (engine/identity/identityStage.ts): the owners of `keys`
 * freeze them and return their entries as they were. Sent in order with the batches.
 */
export interface DetachTask {
  kind: 'detach';
  keys: string[];
  /** Stream sequence of the event that merges them. */
  seq: number;
}

/** Identity stitching, second step: the owner of `canonical` merges the detached entries into it. */
export interface AbsorbTask {
  kind: 'absorb';
  canonical: string;
  parts: DetachedCustomer[];
  seq: number;
}

export type WorkerTask =
  | EventBatchTask
  | ForgetTask
  | DetachTask
  | AbsorbTask
  | ExplainTask
  | StatusTask
  | TickTask
  | RulesTask
  | SnapshotTask
  | RestoreTask
  | AdvanceTask
  | AggregatesTask;

/**
 * A task for every partition that the pipeline sends in order with the event batches (between two
 * batches of each partition), e.g. a rule swap; `resolve` gets the outputs once all are delivered.
 */
export interface ControlRequest {
  task: ControlTask;
  /** Called with every partition's output once all are delivered (rule swaps wait for it). */
  resolve?(outputs: BatchOutput[]): void;
  reject?(error: unknown): void;
  /**
   * Resolve only once the outputs of every earlier task of each partition are delivered as well
   * (forget: rows of the customer still on their way to ClickHouse must land before they are deleted).
   */
  waitForEarlier?: boolean;
  /**
   * Resolve as soon as every partition ran the task, before its outputs are delivered (an identity
   * merge needs the detached state at once; its outputs go to the sinks like any other).
   */
  settleOnRun?: boolean;
}

/** A task every partition runs between two of its batches. */
export type ControlTask = RulesTask | AdvanceTask | TickTask | ForgetTask | DetachTask | AbsorbTask;

/** Run-time errors of one rule's expressions in a partition: new ones, and the rule's first message. */
export interface RuleErrorReport {
  rule: string;
  /** Errors since the previous report. */
  count: number;
  /** The first error message of this rule in this partition. */
  first: string;
}

/** What a {@link RestoreTask} returns: the highest sequence each owned key group holds, as [kg, seq]. */
export type RestoredSeqs = Array<[kg: number, lastSeq: number]>;

/** What a {@link SnapshotTask} returns: the encoded state (a section per key group the worker owns). */
export interface SnapshotResult {
  /** The key groups of the state. */
  keyGroups: number[];
  /** The state includes every task of the partition up to this number (worker pool numbering). */
  afterTask: number;
  /** msgpack of `PartitionSnapshot`; transferred, not cloned. */
  state: Uint8Array;
}

/** A key group's rows for the aggregates and its watermark (idle key groups move it with the clock). */
export interface KeyGroupCounted extends CountedBatch {
  kg: number;
  watermark: number;
}

/** What a partition produced for one task; the main thread hands it to the sinks. */
export interface BatchOutput {
  triggers: Trigger[];
  /** `cxstream.events` rows, encoded in the worker so the main thread only moves the text. */
  events: EncodedRows;
  /** Profile snapshots for the KV store. */
  profiles: ProfileRow[];
  /** The same snapshots as `cxstream.profiles` rows, encoded in the worker (absent: the writer encodes `profiles`). */
  profileRows?: EncodedRows;
  rejects: Reject[];
  /** Highest stream sequence applied by this partition so far. */
  lastSeq: number;
  /** Number of the task (per partition, counted by the worker pool) this output came from; 0 = none. */
  task: number;
  /** Rows for the main-thread aggregates (complaint_surge), per key group, once an {@link AggregatesTask} asked for them. */
  counted?: KeyGroupCounted[];
  /** Events that arrived behind the watermark (beyond the allowed lateness). */
  lateEvents?: number;
  /** Events of forgotten customers, skipped. */
  tombstoned?: number;
  /** A {@link ForgetTask}'s result: null when the customer's key group is not this partition's. */
  forgotten?: ForgetResult | null;
  /** A {@link DetachTask}'s result: the keys of the task this partition owns. */
  detached?: DetachedCustomer[];
  /** Rule expressions that failed at run time since the last output that reported them. */
  ruleErrors?: RuleErrorReport[];
  /** Triggers dropped by a frequency cap. */
  droppedByCap?: number;
  /** Triggers dropped by quiet hours with `action: drop`. */
  droppedByQuietHours?: number;
  /** Triggers deferred to the end of quiet hours (delivered later by a timer). */
  deferred?: number;
}
