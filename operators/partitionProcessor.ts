import { CustomerStore, type StoreCut } from './customerStore.js';
import { type DecodeOptions, decodeEvent } from './decodeEvent.js';
import type { IdentityLimits } from './identity.js';
import {
  checkKeyGroups,
  customerOfSubject,
  DEFAULT_KEY_GROUPS,
  fnv1a,
  keyGroupOf,
  keyGroupsOf,
} from './keyGroups.js';
import { localHour } from './localTime.js';
import { frozenCopy, mergeEntry } from './mergeEntry.js';
import { OrderedEvents, type PendingEvent } from './orderedEvents.js';
import {
  type CustomerEntry,
  type KeyGroupSnapshot,
  type PartitionSnapshot,
  SNAPSHOT_VERSION,
  type StoredEntry,
  type Structures,
} from './partitionState.js';
import { type PrivacyOptions, PrivacyPolicy } from './privacy.js';
import { type CustomerState, newCustomerState, type Profile, profileOf, updateProfile } from './profile.js';
import type { TimerRecord } from './ruleModel.js';
import {
  type CustomerScope,
  compileRules,
  type DeliveryCounters,
  type RuleErrors,
  type RuleRun,
  RuleSet,
  type RuleSpec,
} from './rules.js';
import { upgradeSnapshot } from './snapshotUpgrade.js';
import { type TimerList, TimerQueue } from './timers.js';
import { type Tombstone, TombstoneSet } from './tombstones.js';
import type { CxEvent, EventRow, ProfileRow, Reject, Trigger } from './types.js';
import { Watermark, type WatermarkState } from './watermark.js';

/** How a partition processes its events. */
export interface PartitionOptions {
  /** This worker's number among `partitions`. @default 0 */
  partition?: number;
  /** Workers of the deployment: this one owns the key groups of its range; absent: it owns them all. */
  partitions?: number;
  /** Key groups of the deployment (operators/keyGroups.ts). @default 128 */
  keyGroups?: number;
  /** The key groups this processor owns, when not its range of `keyGroups` among `partitions`. */
  owns?: readonly number[];
  rules: RuleSpec[];
  /** Time zone for customer-local time when neither the event nor the customer has a `tz`. @default 'Asia/Shanghai' */
  defaultTz?: string;
  /** Minimum event time between two published snapshots of one customer. @default 60_000 */
  profileIntervalMs?: number;
  /** Watermark = highest event time seen − this; older events are late. @default 5_000 */
  allowedLatenessMs?: number;
  /** Wall-clock time without events at the live edge after which `tick(now)` moves the watermark with the clock. @default 10_000 */
  idleAfterMs?: number;
  /**
   * An event whose `ts` is more than this ahead of `now` (the wall clock of its batch) is rejected:
   * it would move the watermark into the future and fire every pending timer. Off by default here,
   * because callers that pass a `now` that is not the wall clock (tests, benchmarks, explain) would
   * reject everything; the engine sets `engine.maxFutureSkewMs` (5 minutes).
   * @default Infinity
   */
  maxFutureSkewMs?: number;
  /**
   * Events whose `ts` is before this (epoch ms) are rejected with a reason suggesting milliseconds
   * (epoch seconds read as 1970). Off by default here for the same reason as `maxFutureSkewMs`;
   * the engine sets `engine.minEventTime` (2000-01-01). @default 1
   */
  minEventTs?: number;
  /** Limits on an event's `ids` (the config's `identity`): an event beyond them is dead-lettered. */
  identity?: IdentityLimits;
  /** Which fields are masked where values leave the partition (docs/PRIVACY.md). @default the default fields, no allowances */
  privacy?: PrivacyOptions;
  /**
   * Customers kept as objects (spread over the owned key groups); the least recently used beyond
   * it are kept as their msgpack bytes and decoded when needed (operators/customerStore.ts). 0
   * keeps only those with events waiting for the ordered lane or a timer. @default 20_000
   */
  hotCustomers?: number;
  /** Forgotten customers: their events are skipped and their restored state dropped (operators/tombstones.ts). */
  tombstones?: readonly Tombstone[];
}

/** What {@link PartitionProcessor.forget} removed from the live state of one customer. */
export interface ForgetResult {
  /** Whether the processor held the customer's state. */
  found: boolean;
  /** Pending timers of the customer (they will never fire). */
  timers: number;
  /** Events waiting for the ordered lane, or held behind one of the customer's timers. */
  waitingEvents: number;
}

/** A customer as {@link PartitionProcessor.detach} hands it to the merge. */
export interface DetachedCustomer {
  key: string;
  /** Its entry as it was when frozen; null without state (or when `absorbed`). */
  entry: CustomerEntry | null;
  /** The key is the canonical customer of this merge and has absorbed the others already. */
  absorbed: boolean;
}

/** Everything one call produced; the engine hands it to the sinks. */
export interface PartitionOutput extends DeliveryCounters {
  triggers: Trigger[];
  events: EventRow[];
  profiles: ProfileRow[];
  rejects: Reject[];
  lastSeq: number;
  /** Events that arrived behind the watermark (beyond the allowed lateness). */
  lateEvents: number;
  /** Events of forgotten customers, skipped (operators/tombstones.ts). */
  tombstoned: number;
  /** The lowest watermark of the owned key groups after the call. */
  watermark: number;
  /** Per owned key group with something to tell: its watermark after the call (aggregates follow them). */
  watermarks: Map<number, number>;
}

/**
 * One key group's live state: its customers, timers, ordered lane and watermark. Nothing in it
 * depends on another key group, so where it runs does not change what it produces.
 */
class KeyGroup {
  /** Customers changed since the last snapshot: what the next delta holds. */
  changed = new Set<string>();
  /** Highest stream sequence applied. */
  lastSeq = 0;
  /**
   * Highest sequence of the restored checkpoint: a sequence at or below it is a redelivery of an
   * event the state already holds, and is skipped. Any other sequence at or below `lastSeq` means
   * events reached the key group out of order, which would lose one of them: an error.
   */
  restoredSeq = 0;
  /** `lastSeq` and watermark value at the last snapshot: a delta leaves out a key group where nothing moved. */
  snapshotAt = { lastSeq: -1, watermark: Number.NaN, maxEventTime: Number.NaN };
  /** Shared structures the stored snapshots hold: the next delta stores those added after them. */
  structuresSaved = 0;
  readonly queue = new TimerQueue();
  readonly ordered = new OrderedEvents();

  constructor(
    readonly kg: number,
    readonly watermark: Watermark,
    readonly customers: CustomerStore,
    /** A customer's timers as the queue pops one (decoding the customer when cold). */
    readonly resolveTimers: (customer: string) => Record<string, TimerRecord> | undefined,
  ) {}
}

/**
 * A key group's section at a cut: its customers as two columns (ids, and entries as held: bytes, or
 * objects still to encode) instead of a pair per customer. A full cut of a million customers then
 * adds two arrays to the heap, not a million pairs that live, and are promoted, until the snapshot
 * is encoded (bench/RESULTS.md "Full checkpoints at 1M": the pairs cost most of its GC).
 */
export interface KeyGroupCut extends Omit<KeyGroupSnapshot, 'customers' | 'pending'>, StoreCut {}

/**
 * A snapshot at its cut, for a worker that encodes it in slices: the customers still held as
 * objects are in it as objects, and must be encoded with {@link encode} before they change (copy
 * on write, `PartitionProcessor.beforeChange`); {@link finish} then adds the shared structures the
 * bytes refer to.
 */
export interface SnapshotCut {
  readonly header: Omit<PartitionSnapshot, 'groups'>;
  readonly sections: KeyGroupCut[];
  /** The entry's bytes as it is now (the key group's store keeps them until the customer changes). */
  encode(kg: number, customer: string, entry: CustomerEntry): Uint8Array;
  /**
   * Adds its key group's shared structures to section `s`, once every entry in it is encoded (a
   * later one of the key group may add more: the next snapshot holds those).
   */
  finish(s: number): void;
}

/** A checkpoint chain to restore: a full snapshot and its deltas, and which of its key groups to take. */
export interface RestoreChain {
  snapshots: readonly PartitionSnapshot[];
  /** The key groups to take from it (the owned ones among them); absent: every owned one it holds. */
  keyGroups?: ReadonlySet<number>;
}

/** One key group's position and size (`PartitionProcessor.keyGroupStats`); times are epoch ms, −Infinity before its first event. */
export interface KeyGroupStats {
  kg: number;
  /** Highest stream sequence applied (0 before the first). */
  lastSeq: number;
  watermark: number;
  maxEventTime: number;
  /** Customers held, and those of them held as objects (the others as bytes). */
  customers: number;
  hotCustomers: number;
  /** Timer queue entries, stale ones included: an upper bound of the pending timers. */
  timersQueued: number;
}

/** Timer id of a customer's profile publication: after every other timer of the same millisecond. */
const PUBLISH_TIMER = '~publish';

/**
 * The keyed state and per-event logic of one worker: decode → profile → rules → rows, for the key
 * groups it owns (each with its own customers, timers, ordered lane and watermark).
 *
 * Two lanes: on arrival an event updates the profile and runs the on-event rules (routing answers
 * at once); the patterns that depend on time order (absence, sequence, count, streak, inactivity,
 * purchase cycle) see events in event-time order once the key group's watermark has passed them,
 * interleaved with their timers (an event before a timer due at the same millisecond). So an event
 * never cancels or restarts a timer due before it, and arrival order within the allowed lateness
 * does not change what fires.
 *
 * Pure with respect to time (the caller passes `now`): the same events in the same order give the
 * same triggers and rows, whatever the batches, checkpoints and restores in between, and whichever
 * worker owns which key groups.
 */
export class PartitionProcessor {
  readonly partition: number;
  readonly keyGroups: number;
  private readonly defaultTz: string;
  private readonly profileIntervalMs: number;
  private readonly maxFutureSkewMs: number;
  private readonly decodeOptions: DecodeOptions;
  private readonly watermarkOptions: { allowedLatenessMs?: number; idleAfterMs?: number };
  private readonly groups = new Map<number, KeyGroup>();
  private readonly privacy: PrivacyPolicy;
  private readonly hotCustomers: number;
  /** Forgotten customers (`forget`, or known at start): their events and restored state are dropped. */
  private readonly tombstones = new TombstoneSet();
  /** Customers of restored checkpoints dropped because they were forgotten (since start). */
  droppedOnRestore = 0;
  /**
   * Called with a customer's entry just before it changes (an event, a timer, a publication, a rule
   * swap): a snapshot still being encoded in slices encodes the entry first (copy on write).
   */
  beforeChange: ((entry: CustomerEntry) => void) | undefined = undefined;
  private rules: RuleSet;
  // Reused per event and per timer: the hot path allocates no context objects.
  private readonly scope: CustomerScope;
  private readonly run: RuleRun;
  // The profile of the customer being evaluated, built on first use (rules that read it, publishing):
  // most events neither fire a rule that reads it nor publish. Reused, so no closure per event.
  private current: CustomerState = newCustomerState('');
  private currentProfile: Profile | undefined;
  private readonly profileOfCurrent = () => this.currentProfileOf() as unknown as Record<string, unknown>;

  constructor(options: PartitionOptions) {
    this.partition = options.partition ?? 0;
    this.keyGroups = options.keyGroups ?? DEFAULT_KEY_GROUPS;
    checkKeyGroups(this.keyGroups);
    this.defaultTz = options.defaultTz ?? 'Asia/Shanghai';
    this.profileIntervalMs = options.profileIntervalMs ?? 60_000;
    this.maxFutureSkewMs = options.maxFutureSkewMs ?? Number.POSITIVE_INFINITY;
    this.decodeOptions = { minTs: options.minEventTs ?? 1, identity: options.identity };
    this.watermarkOptions = {
      allowedLatenessMs: options.allowedLatenessMs,
      idleAfterMs: options.idleAfterMs,
    };
    this.hotCustomers = options.hotCustomers ?? 20_000;
    for (const t of options.tombstones ?? []) this.tombstones.add(t);
    const owns =
      options.owns ??
      (options.partitions === undefined
        ? Array.from({ length: this.keyGroups }, (_, kg) => kg)
        : keyGroupsOf(this.partition, options.partitions, this.keyGroups));
    for (const kg of owns) {
      if (!Number.isInteger(kg) || kg < 0 || kg >= this.keyGroups)
        throw new RangeError(`key group ${kg} out of range 0..${this.keyGroups - 1}`);
    }
    for (const kg of owns) this.groups.set(kg, this.newKeyGroup(kg, owns.length, []));
    this.rules = new RuleSet(compileRules(options.rules));
    this.privacy = new PrivacyPolicy(options.privacy);
    this.scope = { customer: '', state: newCustomerState(''), memory: {}, fired: {}, caps: {}, timers: {} };
    this.run = {
      queue: new TimerQueue(),
      watermark: Number.NEGATIVE_INFINITY,
      firedAt: 0,
      defaultTz: this.defaultTz,
      triggers: [],
      counters: { droppedByCap: 0, droppedByQuietHours: 0, deferred: 0 },
      privacy: this.privacy,
    };
  }

  /** A key group with no customers yet (`structures`: those of its restored bytes). */
  private newKeyGroup(kg: number, owned: number, structures: Structures): KeyGroup {
    const hot = this.hotCustomers === 0 ? 0 : Math.ceil(this.hotCustomers / owned);
    const store = new CustomerStore(hot, structures);
    return new KeyGroup(kg, new Watermark(this.watermarkOptions), store, (customer) => {
      const entry = store.get(customer);
      if (entry === undefined) return undefined;
      // the queue may change a record (fire it, move it): a snapshot being encoded takes it first,
      // and bytes the store keeps for the entry are no longer its own
      this.beforeChange?.(entry);
      store.touched(customer);
      return entry.timers;
    });
  }

  /** The key groups this processor owns, ascending. */
  get ownedKeyGroups(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  /** The lowest watermark of the owned key groups (items before it are final everywhere here). */
  get currentWatermark(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const g of this.groups.values()) if (g.watermark.value < min) min = g.watermark.value;
    return this.groups.size === 0 ? Number.NEGATIVE_INFINITY : min;
  }

  /** Highest event time applied in a key group (−Infinity before its first). */
  maxEventTimeOf(kg: number): number {
    return this.groups.get(kg)?.watermark.maxSeen ?? Number.NEGATIVE_INFINITY;
  }

  /** Highest stream sequence applied in a key group (0 before its first). */
  lastSeqOf(kg: number): number {
    return this.groups.get(kg)?.lastSeq ?? 0;
  }

  /**
   * Per owned key group, ascending: its position and size, for `cxstream status` and the per-key-group
   * metrics. Cheap (no customer is decoded): `timersQueued` is the timer queue's length, which
   * includes stale entries the queue drops lazily, so it is an upper bound of the pending timers.
   */
  keyGroupStats(): KeyGroupStats[] {
    return this.ownedKeyGroups.map((kg) => {
      const g = this.groups.get(kg)!;
      return {
        kg,
        lastSeq: g.lastSeq,
        watermark: g.watermark.value,
        maxEventTime: g.watermark.maxSeen,
        customers: g.customers.size,
        hotCustomers: g.customers.hotSize,
        timersQueued: g.queue.size,
      };
    });
  }

  /** Highest event time applied (−Infinity before the first). */
  get maxEventTime(): number {
    let max = Number.NEGATIVE_INFINITY;
    for (const g of this.groups.values()) if (g.watermark.maxSeen > max) max = g.watermark.maxSeen;
    return max;
  }

  /** Pending timers of all customers (heap entries may be more: stale ones are dropped lazily). */
  get pendingTimers(): number {
    let n = 0;
    for (const g of this.groups.values())
      for (const [customer] of g.customers.items()) for (const _ in g.customers.peek(customer)!.timers) n++;
    return n;
  }

  /** One customer's entry (read-only use: explain, tests; a decoded copy when held as bytes); undefined when not held. */
  customer(customer: string): Readonly<CustomerEntry> | undefined {
    return this.groups.get(keyGroupOf(customer, this.keyGroups))?.customers.peek(customer);
  }

  /** Customers held as objects (the others are held as bytes). */
  get hotSize(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.customers.hotSize;
    return n;
  }

  /** Number of customers held. */
  get size(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.customers.size;
    return n;
  }

  /** The rule set (explain listens to its decisions). */
  get ruleSet(): RuleSet {
    return this.rules;
  }

  /** Rule expressions that failed at runtime (they count as false), per rule id. */
  get ruleErrors(): ReadonlyMap<string, RuleErrors> {
    return this.rules.errors;
  }

  /**
   * The state as plain data, for a checkpoint: a section per owned key group with every customer,
   * or with `delta` only those changed since the previous snapshot (and no section for a key group
   * whose customers, last sequence and watermark did not move). Either way the next delta starts
   * from here, so a snapshot that is not stored must be followed by a full one. Every customer is
   * in it as its bytes (held ones as they are, the others encoded now).
   */
  snapshot(delta = false): PartitionSnapshot {
    const cut = this.snapshotCut(delta);
    const groups: KeyGroupSnapshot[] = cut.sections.map(({ names, values, sizes, bytes, ...section }) => ({
      ...section,
      customers: names.map((customer, i) => {
        const entry = values[i]!;
        return [
          customer,
          typeof entry === 'number'
            ? bytes.subarray(entry, entry + sizes[i]!)
            : entry instanceof Uint8Array
              ? entry
              : cut.encode(section.kg, customer, entry),
        ];
      }),
    }));
    cut.sections.forEach((section, i) => {
      cut.finish(i);
      groups[i]!.structures = section.structures;
    });
    return { ...cut.header, groups };
  }

  /**
   * The state at this point, as {@link snapshot} but with the customers held as objects still
   * objects (shared with the live state): a worker encodes them in slices while it goes on.
   */
  snapshotCut(delta = false): SnapshotCut {
    const sections: KeyGroupCut[] = [];
    for (const kg of this.ownedKeyGroups) {
      const g = this.groups.get(kg)!;
      const watermark = g.watermark.state();
      const moved =
        g.changed.size > 0 ||
        g.lastSeq !== g.snapshotAt.lastSeq ||
        watermark.value !== g.snapshotAt.watermark ||
        watermark.maxEventTime !== g.snapshotAt.maxEventTime;
      if (delta && !moved) continue; // the chain's earlier section still holds all of it
      const cut = g.customers.cut(delta ? g.changed : undefined);
      let timers: TimerList;
      if (delta) {
        // the timers of the changed customers (the full snapshot before holds the others')
        timers = { dues: [], customers: [], ids: [] };
        for (const customer of cut.names) {
          const entry = g.customers.peek(customer)!;
          for (const id in entry.timers) {
            timers.dues.push(entry.timers[id]!.queuedAt);
            timers.customers.push(customer);
            timers.ids.push(id);
          }
        }
      } else timers = g.queue.entries();
      g.changed = new Set();
      g.snapshotAt = { lastSeq: g.lastSeq, watermark: watermark.value, maxEventTime: watermark.maxEventTime };
      sections.push({
        kg,
        lastSeq: g.lastSeq,
        watermark,
        ...cut,
        structuresFrom: delta ? g.structuresSaved : 0,
        structures: [],
        timers,
      });
    }
    return {
      header: { version: SNAPSHOT_VERSION, keyGroups: this.keyGroups, delta },
      sections,
      encode: (kg, customer, entry) => this.groups.get(kg)!.customers.encodeClean(customer, entry),
      finish: (s) => {
        const section = sections[s]!;
        const g = this.groups.get(section.kg)!;
        const all = g.customers.structures;
        section.structures = all.slice(section.structuresFrom);
        g.structuresSaved = all.length;
      },
    };
  }

  /**
   * Replaces the state with a full snapshot's and the deltas taken after it, in order (recovery);
   * events up to each key group's `lastSeq` count as applied. Snapshots of older formats are upgraded.
   */
  restore(full: PartitionSnapshot, ...deltas: PartitionSnapshot[]): void {
    this.restoreChains([{ snapshots: [full, ...deltas] }]);
  }

  /**
   * Replaces the state with that of several chains (a full snapshot and its deltas each), e.g. the
   * records of another grouping of key groups: each owned key group is taken from the chains that
   * hold it (merged when several do, as the partitions of a version without key groups were).
   * A chain gives only its `keyGroups` when it names them; sections of key groups this processor does
   * not own are ignored.
   */
  restoreChains(chains: ReadonlyArray<RestoreChain>): void {
    const restored = new Map<number, RestoredGroup>();
    for (const chain of chains) {
      const upgraded = chain.snapshots.map((s) => upgradeSnapshot(s, this.defaultTz, this.keyGroups));
      upgraded.forEach((snapshot, i) => {
        if (snapshot.keyGroups !== this.keyGroups) {
          throw new Error(
            `snapshot of ${snapshot.keyGroups} key groups cannot restore a processor of ${this.keyGroups}`,
          );
        }
        if ((snapshot.delta === true) !== i > 0) {
          throw new Error(`restore takes a full snapshot followed by deltas; snapshot ${i} is not one`);
        }
      });
      // This chain's key groups: the full sections, then each delta's customers on top.
      const own = new Map<number, RestoredGroup>();
      for (const snapshot of upgraded)
        for (const section of snapshot.groups) {
          if (!this.groups.has(section.kg) || chain.keyGroups?.has(section.kg) === false) continue;
          let g = own.get(section.kg);
          if (g === undefined) {
            g = {
              lastSeq: 0,
              watermark: section.watermark,
              customers: new Map(),
              structures: undefined,
              timers: [],
              pending: new Set(),
            };
            own.set(section.kg, g);
          }
          g.lastSeq = Math.max(g.lastSeq, section.lastSeq);
          g.watermark = section.watermark;
          addSection(g, section);
        }
      for (const [kg, g] of own) {
        const before = restored.get(kg);
        if (before === undefined) {
          restored.set(kg, g);
          continue;
        }
        // Several chains of one key group: partitions of a version without key groups (objects only).
        if (before.structures !== undefined || g.structures !== undefined)
          throw new Error(`key group ${kg} is in several checkpoint chains of the current format`);
        before.lastSeq = Math.max(before.lastSeq, g.lastSeq);
        before.watermark = {
          maxEventTime: Math.max(before.watermark.maxEventTime, g.watermark.maxEventTime),
          value: Math.max(before.watermark.value, g.watermark.value),
        };
        for (const item of g.customers) before.customers.set(...item);
        before.timers.push(...g.timers);
        for (const customer of g.pending) before.pending.add(customer);
      }
    }
    const owned = this.groups.size;
    for (const kg of this.groups.keys()) {
      const section = restored.get(kg);
      const g = this.newKeyGroup(kg, owned, section?.structures ?? []);
      this.groups.set(kg, g);
      if (section === undefined) continue;
      g.structuresSaved = g.customers.structures.length;
      const dropped: string[] = [];
      for (const [customer, entry] of section.customers) {
        // A checkpoint taken before the customer was forgotten: dropped here, so a restore gives what
        // a replay of the purged stream gives, and the next full checkpoint does not hold it.
        if (this.tombstones.has(customer)) {
          dropped.push(customer);
          continue;
        }
        if (entry instanceof Uint8Array) g.customers.setEncoded(customer, entry);
        else g.customers.set(customer, entry);
      }
      for (const list of section.timers) g.queue.load(list);
      // also entries of forgotten customers that a record holds without the customer (stale ones)
      if (this.tombstones.size > 0) g.queue.removeCustomers((c) => this.tombstones.has(c));
      this.droppedOnRestore += dropped.length;
      const pending: PendingEvent[] = [];
      for (const customer of section.pending)
        for (const p of g.customers.get(customer)?.pending ?? []) pending.push(p);
      pending.sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq);
      for (const p of pending) g.ordered.push(p);
      g.lastSeq = section.lastSeq;
      g.restoredSeq = section.lastSeq;
      g.watermark.restore(section.watermark);
      g.customers.compact();
    }
  }

  /** Adds forgotten customers (a restarted worker gets every tombstone again before its restore). */
  addTombstones(tombstones: readonly Tombstone[]): void {
    for (const t of tombstones) this.tombstones.add(t);
  }

  /**
   * Forgets a customer (`cxstream forget`): its state, its timers (they never fire: the queue finds
   * no record when their entries surface) and its events waiting in the ordered lane or held behind
   * a timer are removed, and from now on its events are skipped (the tombstone). Null when the
   * customer's key group is not owned here (the tombstone is kept all the same: key groups move
   * between workers at a restore).
   *
   * The next delta checkpoint cannot say the customer is gone (a delta holds changed customers, not
   * removed ones): the caller takes a full checkpoint next, and until then a restore drops the
   * customer by its tombstone.
   */
  forget(customer: string, tombstone: Tombstone): ForgetResult | null {
    this.tombstones.add(tombstone);
    const g = this.groups.get(keyGroupOf(customer, this.keyGroups));
    if (g === undefined) return null;
    const stored = g.customers.stored(customer);
    if (stored === undefined) return { found: false, timers: 0, waitingEvents: 0 };
    const entry = stored instanceof Uint8Array ? g.customers.decode(stored) : stored;
    // a snapshot being encoded in slices still holds the entry: it takes it as it was at its cut
    // (the full checkpoint after the forget replaces that record)
    if (!(stored instanceof Uint8Array)) this.beforeChange?.(stored);
    const timers = Object.keys(entry.timers).filter((id) => id !== PUBLISH_TIMER).length;
    const waiting = g.ordered.removeCustomer(customer) + entry.held.length;
    g.queue.removeCustomers((c) => c === customer);
    g.customers.delete(customer);
    g.changed.delete(customer);
    return { found: true, timers, waitingEvents: waiting };
  }

  /**
   * Identity stitching, first step of a merge at stream sequence `seq` (docs/IDENTITY.md): each of
   * `keys` owned here is frozen and its entry returned as it was (null: no state). A frozen customer
   * keeps a copy of its entry and fires, publishes and waits for nothing: its timers and its events
   * waiting for the ordered lane go with the copy to the canonical customer's worker ({@link absorb}).
   * Idempotent: a customer frozen by this merge returns the same copy, and the canonical customer
   * that already absorbed it answers `absorbed` (a merge redone after a restore changes nothing).
   */
  detach(keys: readonly string[], seq: number): DetachedCustomer[] {
    const out: DetachedCustomer[] = [];
    for (const key of keys) {
      const g = this.groups.get(keyGroupOf(key, this.keyGroups));
      if (g === undefined) continue;
      const entry = g.customers.get(key);
      if (entry === undefined) {
        out.push({ key, entry: null, absorbed: false });
        continue;
      }
      if (entry.merges?.includes(seq)) {
        out.push({ key, entry: null, absorbed: true });
        continue;
      }
      if (entry.frozen !== undefined) {
        if (entry.frozen.seq !== seq)
          throw new Error(`customer ${key} was merged at sequence ${entry.frozen.seq}, not ${seq}`);
        out.push({ key, entry: frozenCopy.unpack(entry.frozen.copy) as CustomerEntry, absorbed: false });
        continue;
      }
      this.touch(g, entry);
      const copy = frozenCopy.pack(entry);
      g.ordered.removeCustomer(key);
      g.queue.removeCustomers((c) => c === key);
      g.changed.add(key);
      const state = entry.state;
      g.customers.set(key, {
        ...newEntry(key),
        state,
        publishedAt: entry.publishedAt,
        // the merges it absorbed before: one redone after a restore finds it done
        ...(entry.merges !== undefined && { merges: entry.merges }),
        frozen: { seq, copy },
      });
      out.push({ key, entry: frozenCopy.unpack(copy) as CustomerEntry, absorbed: false });
    }
    return out;
  }

  /**
   * Identity stitching, second step: when `canonical` is owned here, it becomes the merge of the
   * entries {@link detach} returned (its own among them; `parts` in key order): profile state, rule
   * memory, cooldown marks and caps merge (operators/mergeCustomers.ts), timers and waiting events
   * move here and what is due fires now, and the merged profile is published. Idempotent per `seq`.
   */
  absorb(
    canonical: string,
    parts: readonly DetachedCustomer[],
    seq: number,
    now: number | null,
  ): PartitionOutput {
    const out = this.emptyOutput();
    const g = this.groups.get(keyGroupOf(canonical, this.keyGroups));
    if (g === undefined) return this.finish(out, false);
    const current = g.customers.get(canonical);
    if (current?.merges?.includes(seq)) return this.finish(out, false);
    const own = parts.find((p) => p.key === canonical)?.entry ?? null;
    if (current !== undefined && current.frozen === undefined && own === null)
      throw new Error(`customer ${canonical} has state that was not detached for the merge at ${seq}`);
    const others = parts.filter((p) => p.key !== canonical && p.entry !== null);
    const entry: CustomerEntry = own ?? newEntry(canonical);
    delete entry.frozen;
    if (current !== undefined) this.touch(g, current);
    const aliases = new Set(entry.state.aliases ?? []);
    for (const part of others) {
      const from = part.entry!;
      mergeEntry(entry, from, (rule) => this.rules.patternOf(rule));
      aliases.add(part.key);
      for (const a of from.state.aliases ?? []) aliases.add(a);
      for (const p of from.pending) p.event.customer = canonical;
      for (const h of from.held) h.event.customer = canonical;
    }
    for (const part of parts) if (part.key !== canonical) aliases.add(part.key);
    entry.state.aliases = [...aliases].sort();
    entry.merges = [...(entry.merges ?? []), seq];
    g.customers.set(canonical, entry);
    g.changed.add(canonical);
    // the merged customer as it is now goes out at once (below); what is due fires, held events go on
    delete entry.timers[PUBLISH_TIMER];
    for (const [id, record] of Object.entries(entry.timers)) g.queue.restore(canonical, id, record);
    for (const p of entry.pending) g.ordered.push(p);
    if (entry.state.lastSeen !== null)
      this.publishProfile(g, entry, profileOf(entry.state, entry.state.lastSeen), entry.state.lastSeen, out);
    this.processDue(g, out, now);
    if (this.release(g, entry, now, out)) this.processDue(g, out, now);
    return this.finish(out, false);
  }

  /**
   * Replaces the rule set; customer state and the timers of rules that stay are kept, timers of
   * removed rules are dropped (pattern memory of removed rules is ignored).
   */
  setRules(specs: RuleSpec[]): void {
    const rules = new RuleSet(compileRules(specs));
    rules.onDecision = this.rules.onDecision;
    const removed = this.rules.specs.some((spec) => !rules.has(spec.id));
    this.rules = rules;
    // Finding the timers of removed rules decodes every customer held as bytes (~30–100 µs each):
    // only when a rule was removed, not for a reload that changes rules in place.
    if (!removed) return;
    for (const g of this.groups.values()) {
      for (const [customer] of g.customers.items()) {
        const timers = g.customers.peek(customer)!.timers;
        for (const id in timers) {
          const rule = timers[id]!.rule;
          if (rule === '' || rules.has(rule)) continue;
          const entry = g.customers.get(customer)!;
          this.touch(g, entry);
          delete entry.timers[id];
        }
      }
      g.customers.compact();
    }
  }

  /**
   * Event time has reached `eventTime` (never backwards) in every owned key group: events and timers
   * at or before it are processed, e.g. at the end of a replay so that silent customers' timers
   * fire. `now` is stamped as `firedAt` (null: each trigger's own event time).
   */
  advanceTo(eventTime: number, now: number | null = null): PartitionOutput {
    const out = this.emptyOutput();
    for (const g of this.groups.values()) {
      g.watermark.advanceTo(eventTime);
      this.processDue(g, out, now);
    }
    return this.finish(out, true);
  }

  /**
   * Applies events in stream order. `payload(i)` returns the bytes of event i.
   * `now` is the wall-clock time stamped on triggers as `firedAt`.
   */
  applyBatch(
    seqs: ArrayLike<number>,
    subjects: readonly string[],
    payload: (i: number) => Uint8Array,
    now: number,
    canonical?: readonly string[],
  ): PartitionOutput {
    const out = this.emptyOutput();
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      const subject = subjects[i]!;
      // identity stitching: the customer the key was merged into, '' for the subject's own
      const merged = canonical?.[i] ?? '';
      const customer = merged === '' ? customerOfSubject(subject) : merged;
      const fnv = fnv1a(customer);
      const kg = fnv % this.keyGroups; // keyGroupOf(customer), the FNV reused for the tombstones
      const g = this.groups.get(kg);
      if (g === undefined) {
        throw new Error(`an event of key group ${kg} reached the worker of key groups ${this.ownedRange()}`);
      }
      if (seq <= g.lastSeq) {
        if (seq <= g.restoredSeq) continue; // redelivered after a restore: already applied
        throw new SequenceError(kg, seq, g.lastSeq);
      }
      g.lastSeq = seq;
      if (
        this.tombstones.has(customer, fnv) ||
        (merged !== '' && this.tombstones.has(customerOfSubject(subject)))
      ) {
        // A forgotten customer: skipped before decoding, as if the stream had never held it (it does
        // not move the watermark either), so a replay gives the same whether or not the purge of
        // CX_EVENTS happened before it.
        out.tombstoned++;
        continue;
      }
      out.watermarks.set(kg, 0);
      const stored = g.customers.stored(customer);
      if (stored !== undefined && !(stored instanceof Uint8Array) && stored.appliedThrough !== undefined) {
        // restored from a version whose sequences were per partition (the store keeps such entries
        // as objects until this is settled)
        if (seq <= stored.appliedThrough) continue;
        this.touch(g, stored);
        delete stored.appliedThrough;
      }
      const bytes = payload(i);
      const decoded = decodeEvent(bytes, subject, this.decodeOptions);
      if (typeof decoded === 'string') {
        out.rejects.push({ seq, subject, data: bytes.slice(), reason: decoded });
        continue;
      }
      if (decoded.ts - now > this.maxFutureSkewMs) {
        // A clock-skewed producer: accepting it would make the watermark jump ahead of real time.
        out.rejects.push({
          seq,
          subject,
          data: bytes.slice(),
          reason:
            `clock skew: ts ${decoded.ts} is ${decoded.ts - now} ms ahead of the wall clock ` +
            `(engine.maxFutureSkewMs ${this.maxFutureSkewMs})`,
        });
        continue;
      }
      if (merged !== '') decoded.customer = merged;
      try {
        this.applyEvent(g, decoded, seq, now, out);
      } catch (e) {
        // A bug or a pathological event must not stall the partition: dead-letter it with the error.
        out.rejects.push({
          seq,
          subject,
          data: bytes.slice(),
          reason: `processing failed: ${(e as Error).message}`,
        });
      }
    }
    // Quiet is judged per worker, not per key group: a key group holds a few customers, and one
    // without an event for idleAfterMs is common while the stream is busy; moving its watermark to
    // the wall clock then would fire a backfill's timers early (the fault suite's backfill did).
    if (seqs.length > 0) for (const g of this.groups.values()) g.watermark.active(now);
    return this.finish(out, false);
  }

  /**
   * Wall-clock tick: `clock` is the wall clock when the source is connected and caught up (the live
   * edge), null otherwise; after `idleAfterMs` without any event to this worker at the live edge,
   * the watermarks of its key groups follow it. `flush` (end of a replay) publishes every changed profile.
   */
  tick(clock: number | null, flush: boolean): PartitionOutput {
    const out = this.emptyOutput();
    for (const g of this.groups.values()) {
      g.watermark.idle(clock);
      this.processDue(g, out, clock);
      if (!flush) continue;
      for (const [customer, stored] of g.customers.items()) {
        if (!(stored instanceof Uint8Array ? g.customers.decode(stored) : stored).dirty) continue;
        const entry = g.customers.get(customer)!;
        this.touch(g, entry);
        delete entry.timers[PUBLISH_TIMER];
        this.publishProfile(
          g,
          entry,
          profileOf(entry.state, entry.state.lastSeen!),
          entry.state.lastSeen!,
          out,
        );
      }
    }
    return this.finish(out, true);
  }

  private applyEvent(g: KeyGroup, event: CxEvent, seq: number, now: number, out: PartitionOutput): void {
    let entry = g.customers.get(event.customer);
    if (entry === undefined) {
      entry = newEntry(event.customer);
      g.customers.set(event.customer, entry);
    }
    if (entry.frozen !== undefined)
      throw new Error(`customer ${event.customer} was merged into another at sequence ${entry.frozen.seq}`);
    // What the watermark passes now is final before this event is applied: being later, it could
    // not have changed it.
    const late = g.watermark.isLate(event.ts);
    if (late) out.lateEvents++;
    g.watermark.observe(event.ts);
    this.processDue(g, out, now);
    this.touch(g, entry);
    if (event.ts > this.frontierOf(entry)) {
      // Later than one of the customer's pending timers: applied once that timer has fired (or moved),
      // so the timer sees the customer exactly as of its due time.
      entry.held.push({ seq, event });
      return;
    }
    this.apply(g, entry, event, seq, late, now, out);
    if (this.release(g, entry, now, out)) this.processDue(g, out, now);
  }

  /** Applies an event to its customer: profile, on-event rules, the ordered lane, rows, publication. */
  private apply(
    g: KeyGroup,
    entry: CustomerEntry,
    event: CxEvent,
    seq: number,
    late: boolean,
    now: number | null,
    out: PartitionOutput,
  ): void {
    this.touch(g, entry);
    this.beforeStateChange(g, entry, event.ts, out);
    updateProfile(entry.state, event, this.defaultTz);
    // Rules read the customer-local hour: the event's zone, else the customer's last known, else the default.
    event.localHour = localHour(event.ts, event.tz ?? entry.state.tz ?? this.defaultTz, this.defaultTz);
    this.current = entry.state;
    this.currentProfile = undefined;
    const run = this.prepareRun(g, out, now ?? event.ts);
    const scope = this.scopeOf(entry);
    this.rules.evaluate(event, this.profileOfCurrent, scope, run);
    if (this.rules.wantsOrdered(event.type)) {
      if (late) this.rules.evaluateLate(event, this.profileOfCurrent, scope, run);
      else {
        // On time: the ordered lane sees it once the watermark passes it.
        const pending: PendingEvent = { seq, event };
        entry.pending.push(pending);
        g.ordered.push(pending);
      }
    }
    out.events.push(this.privacy.row(eventRow(event, g.kg, seq)));
    const asOf = entry.state.lastSeen!;
    if (asOf - entry.publishedAt >= this.profileIntervalMs) {
      delete entry.timers[PUBLISH_TIMER];
      this.current = entry.state;
      this.publishProfile(g, entry, this.currentProfileOf(), asOf, out);
    } else if (!entry.dirty) {
      entry.dirty = true;
      // Published once the watermark passes the end of its interval (event time, never the wall clock).
      const due = entry.publishedAt + this.profileIntervalMs;
      g.queue.arm(entry.timers, event.customer, PUBLISH_TIMER, {
        kind: 'publish',
        rule: '',
        key: '',
        due,
        queuedAt: due,
      });
    }
    this.currentProfile = undefined;
  }

  /**
   * An event at `ts` is about to change the customer's state. What is due to see the state as it is
   * now sees it now, so that when it happens does not depend on when the watermark gets there: a
   * dirty profile whose publication is due before `ts` is published, and the ordered lane's pending
   * events of the customer keep the profile as of their arrival.
   */
  private beforeStateChange(g: KeyGroup, entry: CustomerEntry, ts: number, out: PartitionOutput): void {
    if (entry.dirty && ts > entry.publishedAt + this.profileIntervalMs) {
      const due = entry.publishedAt + this.profileIntervalMs;
      delete entry.timers[PUBLISH_TIMER];
      this.publishProfile(g, entry, profileOf(entry.state, entry.state.lastSeen!), due, out);
    }
    const last = entry.pending.at(-1);
    if (last !== undefined && last.profile === undefined) {
      // Only the latest pending events can still be without one: each later event froze those before it.
      const profile = profileOf(entry.state, entry.state.lastSeen!);
      for (let i = entry.pending.length - 1; i >= 0 && entry.pending[i]!.profile === undefined; i--)
        entry.pending[i]!.profile = profile;
    }
  }

  /**
   * Applies the customer's held events that are no longer later than a pending timer (in stream
   * order); true when one was applied.
   */
  private release(g: KeyGroup, entry: CustomerEntry, now: number | null, out: PartitionOutput): boolean {
    let released = false;
    while (entry.held.length > 0) {
      const frontier = this.frontierOf(entry);
      const i = entry.held.findIndex((h) => h.event.ts <= frontier);
      if (i < 0) break;
      const [h] = entry.held.splice(i, 1);
      this.apply(g, entry, h!.event, h!.seq, false, now, out);
      released = true;
    }
    return released;
  }

  /**
   * Processes, in time order, the key group's ordered-lane events and timers before its watermark:
   * an event before a timer due at the same millisecond (it may cancel it), events by stream sequence.
   */
  private processDue(g: KeyGroup, out: PartitionOutput, now: number | null): void {
    const wm = g.watermark.value;
    for (;;) {
      const te = g.ordered.peekTime();
      if (g.queue.peekDue() < Math.min(wm, te)) {
        const next = g.queue.popDue(Math.min(wm, te), g.resolveTimers);
        if (next !== undefined) {
          this.fireTimer(g, next[0], next[2], out, now);
          continue;
        }
      }
      if (te < wm) {
        this.orderedEvent(g, g.ordered.shift()!, out, now);
        continue;
      }
      return;
    }
  }

  private orderedEvent(g: KeyGroup, p: PendingEvent, out: PartitionOutput, now: number | null): void {
    const entry = g.customers.get(p.event.customer)!;
    this.touch(g, entry);
    // pending events of a customer leave in the order they were added
    const i = entry.pending.indexOf(p);
    if (i >= 0) entry.pending.splice(i, 1);
    this.current = entry.state;
    this.currentProfile = p.profile;
    const run = this.prepareRun(g, out, now ?? p.event.ts);
    this.rules.evaluateOrdered(p.event, this.profileOfCurrent, this.scopeOf(entry), run);
    this.currentProfile = undefined;
    this.release(g, entry, now, out);
  }

  private fireTimer(
    g: KeyGroup,
    customer: string,
    record: TimerRecord,
    out: PartitionOutput,
    now: number | null,
  ): void {
    const entry = g.customers.get(customer)!;
    this.touch(g, entry);
    if (record.kind === 'publish') {
      if (entry.dirty)
        this.publishProfile(g, entry, profileOf(entry.state, entry.state.lastSeen!), record.due, out);
      return;
    }
    this.rules.fireTimer(record, this.scopeOf(entry), this.prepareRun(g, out, now ?? record.due));
    this.release(g, entry, now, out);
  }

  /**
   * The customer's frontier: its earliest pending timer (other than profile publication), or the
   * earliest time a timer could come from an event still waiting in the ordered lane. Events after
   * it wait (`held`), so every timer sees the customer exactly as of its due time.
   */
  private frontierOf(entry: CustomerEntry): number {
    let f = Number.POSITIVE_INFINITY;
    for (const id in entry.timers) {
      if (id === PUBLISH_TIMER) continue;
      const due = entry.timers[id]!.due;
      if (due < f) f = due;
    }
    const delay = this.rules.minTimerDelay;
    if (delay !== Number.POSITIVE_INFINITY)
      for (const p of entry.pending) if (p.event.ts + delay < f) f = p.event.ts + delay;
    return f;
  }

  private prepareRun(g: KeyGroup, out: PartitionOutput, firedAt: number): RuleRun {
    const run = this.run;
    run.queue = g.queue;
    run.watermark = g.watermark.value;
    run.firedAt = firedAt;
    run.triggers = out.triggers;
    run.counters = out;
    return run;
  }

  /** The entry is about to change: the hook sees it as it was, and the next delta will hold it. */
  private touch(g: KeyGroup, entry: CustomerEntry): void {
    this.beforeChange?.(entry);
    g.customers.touched(entry.state.customer);
    g.changed.add(entry.state.customer);
  }

  private currentProfileOf(): Profile {
    this.currentProfile ??= profileOf(this.current, this.current.lastSeen!);
    return this.currentProfile;
  }

  /** Publishes the profile (`at`: the event time of the publication, the start of the next interval). */
  private publishProfile(
    g: KeyGroup,
    entry: CustomerEntry,
    internal: Profile,
    at: number,
    out: PartitionOutput,
  ): void {
    const profile = this.privacy.profile(internal);
    this.touch(g, entry);
    entry.publishedAt = at;
    entry.dirty = false;
    out.profiles.push({
      customer: profile.customer,
      updated_at: profile.lastSeen,
      tier: profile.tier,
      rfm_score: profile.rfm.score,
      spend: profile.spend,
      orders: profile.orders,
      tags: profile.tags,
      profile: JSON.stringify(profile),
    });
  }

  private scopeOf(entry: CustomerEntry): CustomerScope {
    const scope = this.scope;
    scope.customer = entry.state.customer;
    scope.state = entry.state;
    scope.memory = entry.memory;
    scope.fired = entry.fired;
    scope.caps = entry.caps;
    scope.timers = entry.timers;
    return scope;
  }

  private ownedRange(): string {
    const kgs = this.ownedKeyGroups;
    return kgs.length === 0 ? '(none)' : `${kgs[0]}..${kgs.at(-1)}`;
  }

  private emptyOutput(): PartitionOutput {
    return {
      triggers: [],
      events: [],
      profiles: [],
      rejects: [],
      lastSeq: 0,
      lateEvents: 0,
      tombstoned: 0,
      droppedByCap: 0,
      droppedByQuietHours: 0,
      deferred: 0,
      watermark: Number.NEGATIVE_INFINITY,
      watermarks: new Map(),
    };
  }

  /** Fills in the positions: the key groups that had events (or, with `all`, every owned one). */
  private finish(out: PartitionOutput, all: boolean): PartitionOutput {
    let lastSeq = 0;
    for (const g of this.groups.values()) {
      g.customers.compact();
      if (g.lastSeq > lastSeq) lastSeq = g.lastSeq;
      if (all || out.watermarks.has(g.kg)) out.watermarks.set(g.kg, g.watermark.value);
    }
    out.lastSeq = lastSeq;
    out.watermark = this.currentWatermark;
    return out;
  }
}

/** The entry of a customer never seen before. */
function newEntry(customer: string): CustomerEntry {
  return {
    state: newCustomerState(customer),
    memory: {},
    fired: {},
    caps: {},
    timers: {},
    pending: [],
    held: [],
    publishedAt: Number.NEGATIVE_INFINITY,
    dirty: false,
  };
}

/**
 * A key group got a stream sequence at or below one it already applied, and not a redelivery of its
 * restored checkpoint: events reached it out of order. Applying or skipping it would both be wrong
 * (skipping loses an event), so the batch fails and the run stops.
 */
export class SequenceError extends Error {
  override readonly name = 'SequenceError';
  constructor(
    readonly keyGroup: number,
    readonly seq: number,
    readonly lastSeq: number,
  ) {
    super(
      `key group ${keyGroup} got stream sequence ${seq} after ${lastSeq}: events reached it out of order; ` +
        'stopping rather than skip an event',
    );
  }
}

/** The `cxstream.events` row of an event (`partition`: its key group): flat, defaults for missing fields (masked by the caller). */
function eventRow(e: CxEvent, partition: number, seq: number): EventRow {
  return {
    id: e.id,
    ts: e.ts,
    customer: e.customer,
    type: e.type,
    channel: e.channel,
    from: e.from ?? 'customer',
    region: e.region ?? '',
    tz: e.tz ?? '',
    session: e.session ?? '',
    agent: e.agent ?? '',
    variant: e.variant ?? '',
    source: e.source ?? '',
    amount: e.amount ?? null,
    sku: e.sku ?? '',
    category: e.category ?? '',
    intent: e.intent ?? '',
    sentiment: e.sentiment ?? null,
    recognized: e.recognized ?? null,
    status: e.status ?? '',
    score: e.score ?? null,
    text: e.text ?? '',
    local_hour: e.localHour as number, // set by applyEvent before the row is built
    ticket_id: typeof e.ticketId === 'string' ? e.ticketId : '', // not validated by decodeEvent
    partition,
    seq,
  };
}

/** A key group gathered from a checkpoint chain (or several, from versions without key groups). */
interface RestoredGroup {
  lastSeq: number;
  watermark: WatermarkState;
  customers: Map<string, StoredEntry>;
  /** Shared structures of the entries held as bytes (format 6). */
  structures: Structures | undefined;
  /** Timer entries to put in the queue. */
  timers: TimerList[];
  /** Customers with events waiting for the ordered lane. */
  pending: Set<string>;
}

/** Adds a section (full, or a delta on top of what `g` holds) to a restored key group. */
function addSection(g: RestoredGroup, section: KeyGroupSnapshot): void {
  if (section.structures !== undefined) {
    const from = section.structuresFrom ?? 0;
    const list = g.structures ?? [];
    if (from > list.length) {
      throw new Error(
        `key group ${section.kg}: a delta's shared structures start at ${from}, the chain before it holds ${list.length}`,
      );
    }
    list.length = from;
    for (const keys of section.structures) list.push(keys);
    g.structures = list;
  }
  const objects: TimerList = { dues: [], customers: [], ids: [] };
  for (const [customer, entry] of section.customers) {
    g.customers.set(customer, entry);
    g.pending.delete(customer);
    if (entry instanceof Uint8Array) continue;
    // formats up to 5: timers and pending events are read from the entries
    for (const [id, record] of Object.entries(entry.timers)) {
      record.queuedAt = record.due;
      objects.dues.push(record.due);
      objects.customers.push(customer);
      objects.ids.push(id);
    }
    if (entry.pending.length > 0) g.pending.add(customer);
  }
  if (objects.dues.length > 0) g.timers.push(objects);
  if (section.timers !== undefined) g.timers.push(section.timers);
  for (const customer of section.pending ?? []) g.pending.add(customer);
}
