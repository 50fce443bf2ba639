/**
 * A partition's state as plain data: what a checkpoint stores (msgpack) and a restore reads.
 * Older formats are upgraded by operators/snapshotUpgrade.ts.
 */
import type { PendingEvent } from './orderedEvents.js';
import type { CustomerState } from './profile.js';
import type { TimerRecord } from './ruleModel.js';
import type { CustomerScope, RuleMemory } from './ruleSet.js';
import type { TimerList } from './timers.js';
import type { WatermarkState } from './watermark.js';

/**
 * A worker's state as plain data (msgpack-able): what a checkpoint stores, one section per key group
 * (operators/keyGroups.ts), so a key group restores wherever it is owned next. A full snapshot holds
 * every customer; a delta only those changed since the snapshot before it, and is restored on top of
 * the full one it follows and the deltas in between. A full snapshot has a section for every key group
 * the worker owns; a delta only for those whose customers, sequence or watermark moved.
 */
export interface PartitionSnapshot {
  /** Format version; a reader refuses versions it does not know, and upgrades older ones. */
  version: typeof SNAPSHOT_VERSION;
  /** Key-group count of the deployment: customers are in key group hash(customer) mod this. */
  keyGroups: number;
  /** Only the customers changed since the previous snapshot (full or delta) of this processor. */
  delta: boolean;
  groups: KeyGroupSnapshot[];
}

/** One key group's part of a snapshot. */
export interface KeyGroupSnapshot {
  kg: number;
  /** Highest stream sequence applied to the key group. */
  lastSeq: number;
  /** Event-time watermark and the highest event time seen. */
  watermark: WatermarkState;
  /**
   * Each customer's entry as its msgpack bytes (format 6, operators/customerStore.ts), read with
   * `structures`; as an object in formats up to 5 (and at a worker's cut, for entries still to encode).
   */
  customers: Array<[customer: string, entry: StoredEntry]>;
  /**
   * Format 6: the key group's shared msgpack structures from index `structuresFrom` on (a full
   * snapshot has them all, a delta those added since the snapshot before it).
   */
  structuresFrom?: number;
  structures?: Structures;
  /**
   * Format 6: timers to put back in the key group's queue, so a restore need not decode the entries:
   * a full snapshot holds the queue as it was (stale entries too, dropped when they surface), a delta
   * the timers of its customers. Without it (formats up to 5) they are read from the entries.
   */
  timers?: TimerList;
  /** Format 6: customers with events waiting for the ordered lane (decoded on restore to queue them). */
  pending?: string[];
}

/** A customer as the store holds it: the entry, or its encoded bytes. */
export type StoredEntry = CustomerEntry | Uint8Array;

/** Shared msgpack structures: each the key list of one object shape. */
export type Structures = string[][];

/** Snapshot format this code writes (older ones are upgraded on restore: operators/snapshotUpgrade.ts). */
export const SNAPSHOT_VERSION = 6;
/** Snapshot formats this code restores (checkpoints refuse others before a worker sees them). */
export const READABLE_SNAPSHOT_VERSIONS: readonly number[] = [2, 3, 4, 5, SNAPSHOT_VERSION];

/** One customer as the partition holds it (plain data). */
export interface CustomerEntry {
  state: CustomerState;
  /** Pattern memory per rule. */
  memory: RuleMemory;
  /** Cooldown and once-per-session marks per rule. */
  fired: CustomerScope['fired'];
  /** Delivery times per cap group. */
  caps: CustomerScope['caps'];
  /** Pending timers by id (pattern timers, quiet-hours deferrals, profile publication). */
  timers: Record<string, TimerRecord>;
  /** Events applied on arrival that the ordered lane has not seen yet (the watermark has not passed them). */
  pending: PendingEvent[];
  /** Events later than a pending timer of the customer, applied once that timer has fired (stream order). */
  held: PendingEvent[];
  /** Event time of the last published snapshot; -Infinity before the first. */
  publishedAt: number;
  /** Changed since the last published snapshot. */
  dirty: boolean;
  /**
   * Restored from a checkpoint of a version without key groups, whose sequences were per partition:
   * the customer's events up to this sequence are already in the entry (skipped when redelivered).
   */
  appliedThrough?: number;
  /** Identity stitching: the merges (stream sequences) in which this customer absorbed others (docs/IDENTITY.md). */
  merges?: number[];
  /**
   * Identity stitching: absorbed into another customer by the merge at `seq`. `copy` is the entry as
   * it was then (msgpack; a redone merge after a restore gets the same copy); the live fields are
   * cleared, so the entry fires, publishes and waits for nothing.
   */
  frozen?: { seq: number; copy: Uint8Array };
}
