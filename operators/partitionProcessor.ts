import { decodeEvent } from './decodeEvent.js';
import { localHour } from './localTime.js';
import { maskPii } from './mask.js';
import { type CustomerState, newCustomerState, type Profile, profileOf, updateProfile } from './profile.js';
import {
  type CustomerScope,
  compileRules,
  type DeliveryCounters,
  type RuleMemory,
  type RuleRun,
  type RuleSet,
  type RuleSpec,
} from './rules.js';
import { TimerQueue, type TimerRecord } from './timers.js';
import type { CxEvent, EventRow, ProfileRow, Reject, Trigger } from './types.js';
import { Watermark, type WatermarkState } from './watermark.js';

/** How a partition processes its events. */
export interface PartitionOptions {
  /** This partition's number (stamped on every row as its source). */
  partition: number;
  rules: RuleSpec[];
  /** Time zone for customer-local time when an event has no `tz`. @default 'Asia/Shanghai' */
  defaultTz?: string;
  /** Minimum event time between two published snapshots of one customer. @default 60_000 */
  profileIntervalMs?: number;
  /** Watermark = highest event time seen − this; older events are late. @default 5_000 */
  allowedLatenessMs?: number;
  /** Wall-clock time without events after which `tick(now)` moves the watermark with the clock. @default 10_000 */
  idleAfterMs?: number;
  /**
   * An event whose `ts` is more than this ahead of `now` (the wall clock of its batch) is rejected:
   * it would move the watermark into the future and fire every pending timer. Off by default here,
   * because callers that pass a `now` that is not the wall clock (tests, benchmarks, explain) would
   * reject everything; the engine sets `engine.maxFutureSkewMs` (5 minutes).
   * @default Infinity
   */
  maxFutureSkewMs?: number;
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
}

/**
 * A partition's state as plain data (msgpack-able): what a checkpoint stores. A full snapshot holds
 * every customer; a delta only those changed since the snapshot before it, and is restored on top of
 * the full one it follows and the deltas in between.
 */
export interface PartitionSnapshot {
  /** Format version; a reader refuses versions it does not know. */
  version: 3;
  partition: number;
  /** Only the customers changed since the previous snapshot (full or delta) of this processor. */
  delta: boolean;
  /** Highest stream sequence applied. */
  lastSeq: number;
  /** Event-time watermark and the highest event time seen. */
  watermark: WatermarkState;
  customers: Array<[customer: string, entry: CustomerEntry]>;
}

/** Snapshot format this code writes. */
export const SNAPSHOT_VERSION = 3;
/** Formats this code reads: version 2 is version 3 without deltas (every snapshot full). */
const READABLE_VERSIONS: readonly number[] = [2, 3];

/** One customer as the partition holds it. */
export interface CustomerEntry {
  state: CustomerState;
  rules: RuleMemory;
  /** Pending timers by id (absence, inactivity, purchase cycle, quiet-hours deferrals). */
  timers: Record<string, TimerRecord>;
  /** Event time (`lastSeen`) of the last published snapshot; -Infinity before the first. */
  publishedAt: number;
  /** Changed since the last published snapshot. */
  dirty: boolean;
}

/**
 * The keyed state and per-event logic of one partition: decode → profile → rules → rows.
 * Pure with respect to time (the caller passes `now`), so replaying the same events gives
 * the same triggers and rows.
 */
export class PartitionProcessor {
  readonly partition: number;
  private readonly defaultTz: string;
  private readonly profileIntervalMs: number;
  private readonly maxFutureSkewMs: number;
  private readonly customers = new Map<string, CustomerEntry>();
  /** Customers changed since the last snapshot: what the next delta holds. */
  private changed = new Set<CustomerEntry>();
  /**
   * Called with a customer's entry just before it changes (an event, a timer, a publication, a rule
   * swap): a snapshot still being encoded in slices encodes the entry first (copy on write).
   */
  beforeChange: ((entry: CustomerEntry) => void) | undefined = undefined;
  private rules: RuleSet;
  /** Highest stream sequence applied. */
  private lastSeq = 0;
  /**
   * Highest sequence of the restored checkpoint: a sequence at or below it is a redelivery of an
   * event the state already holds, and is skipped. Any other sequence at or below `lastSeq` means
   * events reached the partition out of order, which would lose one of them: an error.
   */
  private restoredSeq = 0;
  private readonly watermark: Watermark;
  private readonly queue = new TimerQueue();
  // Reused per event and per timer: the hot path allocates no context objects.
  private readonly scope: CustomerScope;
  private readonly run: RuleRun;
  private readonly resolveTimers = (customer: string) => this.customers.get(customer)?.timers;
  // The profile of the event being applied, built on first use (rules that read it, publishing):
  // most events neither fire a rule that reads it nor publish. Reused, so no closure per event.
  private current: CustomerState = newCustomerState('');
  private currentProfile: Profile | undefined;
  private readonly profileOfCurrent = () => this.currentProfileOf() as unknown as Record<string, unknown>;

  constructor(options: PartitionOptions) {
    this.partition = options.partition;
    this.defaultTz = options.defaultTz ?? 'Asia/Shanghai';
    this.profileIntervalMs = options.profileIntervalMs ?? 60_000;
    this.maxFutureSkewMs = options.maxFutureSkewMs ?? Number.POSITIVE_INFINITY;
    this.watermark = new Watermark({
      allowedLatenessMs: options.allowedLatenessMs,
      idleAfterMs: options.idleAfterMs,
    });
    this.rules = compileRules(options.rules);
    this.scope = { customer: '', state: newCustomerState(''), memory: {}, timers: {} };
    this.run = {
      queue: this.queue,
      watermark: Number.NEGATIVE_INFINITY,
      late: false,
      firedAt: 0,
      defaultTz: this.defaultTz,
      triggers: [],
      counters: { droppedByCap: 0, droppedByQuietHours: 0, deferred: 0 },
    };
  }

  /** The event-time watermark (timers due at or before it have fired). */
  get currentWatermark(): number {
    return this.watermark.value;
  }

  /** Pending timers of all customers (heap entries may be more: stale ones are dropped lazily). */
  get pendingTimers(): number {
    let n = 0;
    for (const entry of this.customers.values()) for (const _ in entry.timers) n++;
    return n;
  }

  /** One customer's entry (read-only use: explain, tests); undefined when not held. */
  customer(customer: string): Readonly<CustomerEntry> | undefined {
    return this.customers.get(customer);
  }

  /** Number of customers held. */
  get size(): number {
    return this.customers.size;
  }

  /** Rule conditions that failed at runtime (they count as false), per rule id. */
  get ruleErrors(): ReadonlyMap<string, number> {
    return this.rules.errors;
  }

  /**
   * The partition's state as plain data, for a checkpoint: every customer, or with `delta` only those
   * changed since the previous snapshot. Either way the next delta starts from here, so a snapshot
   * that is not stored must be followed by a full one. Shares objects with the live state: encode it
   * before the next call.
   */
  snapshot(delta = false): PartitionSnapshot {
    const customers: Array<[string, CustomerEntry]> = [];
    if (delta) for (const entry of this.changed) customers.push([entry.state.customer, entry]);
    else for (const item of this.customers) customers.push(item);
    this.changed = new Set();
    return {
      version: SNAPSHOT_VERSION,
      partition: this.partition,
      delta,
      lastSeq: this.lastSeq,
      watermark: this.watermark.state(),
      customers,
    };
  }

  /**
   * Replaces the state with a full snapshot's and the deltas taken after it, in order (recovery);
   * events up to the last one's `lastSeq` count as applied.
   */
  restore(full: PartitionSnapshot, ...deltas: PartitionSnapshot[]): void {
    for (const [i, snapshot] of [full, ...deltas].entries()) {
      if (!READABLE_VERSIONS.includes(snapshot.version)) {
        throw new Error(
          `snapshot format ${snapshot.version} is not supported (this version reads ${READABLE_VERSIONS.join(', ')})`,
        );
      }
      if (snapshot.partition !== this.partition) {
        throw new Error(
          `snapshot of partition ${snapshot.partition} cannot restore partition ${this.partition}`,
        );
      }
      if ((snapshot.delta === true) !== i > 0) {
        throw new Error(`restore takes a full snapshot followed by deltas; snapshot ${i} is not one`);
      }
    }
    this.customers.clear();
    this.changed = new Set();
    this.queue.clear();
    for (const snapshot of [full, ...deltas])
      for (const [customer, entry] of snapshot.customers) this.customers.set(customer, entry);
    for (const [customer, entry] of this.customers)
      for (const [id, record] of Object.entries(entry.timers)) this.queue.restore(customer, id, record);
    const last = deltas.at(-1) ?? full;
    this.lastSeq = last.lastSeq;
    this.restoredSeq = last.lastSeq;
    this.watermark.restore(last.watermark);
  }

  /**
   * Replaces the rule set; customer state and the timers of rules that stay are kept, timers of
   * removed rules are dropped (rule memory of removed rules is ignored).
   */
  setRules(specs: RuleSpec[]): void {
    const rules = compileRules(specs);
    this.rules = rules;
    for (const entry of this.customers.values())
      for (const id in entry.timers) {
        if (rules.has(entry.timers[id]!.rule)) continue;
        this.touch(entry);
        delete entry.timers[id];
      }
  }

  /**
   * Moves the watermark to `eventTime` (never backwards) and fires the timers that came due, e.g.
   * at the end of a replay so that silent customers' timers fire. `now` is stamped as `firedAt`
   * (null: each trigger's own event time).
   */
  advanceTo(eventTime: number, now: number | null = null): PartitionOutput {
    const out = this.emptyOutput();
    this.watermark.advanceTo(eventTime);
    this.fireDue(out, now);
    out.lastSeq = this.lastSeq;
    return out;
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
  ): PartitionOutput {
    const out = this.emptyOutput();
    if (seqs.length > 0) this.watermark.active(now);
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      if (seq <= this.lastSeq) {
        if (seq <= this.restoredSeq) continue; // redelivered after a restore: already applied
        throw new SequenceError(this.partition, seq, this.lastSeq);
      }
      this.lastSeq = seq;
      const bytes = payload(i);
      const subject = subjects[i]!;
      const decoded = decodeEvent(bytes, subject);
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
      try {
        this.applyEvent(decoded, seq, now, out);
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
    out.lastSeq = this.lastSeq;
    return out;
  }

  /**
   * Publishes changed profiles that are due. `clock` is the current time (null in replays, where
   * only event time counts); `flush` publishes every changed profile (drain, end of replay).
   */
  tick(clock: number | null, flush: boolean): PartitionOutput {
    const out = this.emptyOutput();
    if (clock !== null) {
      this.watermark.idle(clock);
      this.fireDue(out, clock);
    }
    const current = Math.max(this.watermark.maxSeen, clock ?? Number.NEGATIVE_INFINITY);
    for (const entry of this.customers.values()) {
      if (entry.dirty && (flush || current - entry.publishedAt >= this.profileIntervalMs)) {
        this.publishProfile(entry, profileOf(entry.state, entry.state.lastSeen!), out);
      }
    }
    out.lastSeq = this.lastSeq;
    return out;
  }

  private applyEvent(event: CxEvent, seq: number, now: number, out: PartitionOutput): void {
    let entry = this.customers.get(event.customer);
    if (entry === undefined) {
      entry = {
        state: newCustomerState(event.customer),
        rules: {},
        timers: {},
        publishedAt: Number.NEGATIVE_INFINITY,
        dirty: false,
      };
      this.customers.set(event.customer, entry);
    }
    this.touch(entry);
    // Due timers fire before the event that moved the watermark past them is applied: such an
    // event is later than their due time, so it could not have cancelled them.
    const late = this.watermark.isLate(event.ts);
    if (late) out.lateEvents++;
    this.watermark.observe(event.ts);
    this.fireDue(out, now);
    // Rules read the customer-local hour (night rules); computed once here with the default tz fallback.
    event.localHour = localHour(event.ts, event.tz ?? this.defaultTz, this.defaultTz);
    updateProfile(entry.state, event, this.defaultTz);
    const asOf = entry.state.lastSeen!; // set by updateProfile
    this.current = entry.state;
    this.currentProfile = undefined;
    const run = this.run;
    run.watermark = this.watermark.value;
    run.late = late;
    run.firedAt = now;
    run.triggers = out.triggers;
    run.counters = out;
    this.rules.evaluate(event, this.profileOfCurrent, this.scopeOf(entry), run);
    out.events.push(eventRow(event, this.partition, seq));
    if (asOf - entry.publishedAt >= this.profileIntervalMs)
      this.publishProfile(entry, this.currentProfileOf(), out);
    else entry.dirty = true;
    this.currentProfile = undefined;
  }

  /** The entry is about to change: the hook sees it as it was, and the next delta will hold it. */
  private touch(entry: CustomerEntry): void {
    this.beforeChange?.(entry);
    this.changed.add(entry);
  }

  private currentProfileOf(): Profile {
    this.currentProfile ??= profileOf(this.current, this.current.lastSeen!);
    return this.currentProfile;
  }

  private publishProfile(entry: CustomerEntry, profile: Profile, out: PartitionOutput): void {
    this.touch(entry);
    entry.publishedAt = profile.lastSeen;
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

  /** Fires every timer due at or before the watermark, in (due, customer, id) order. */
  private fireDue(out: PartitionOutput, now: number | null): void {
    const wm = this.watermark.value;
    if (this.queue.peekDue() > wm) return;
    const run = this.run;
    run.watermark = wm;
    run.late = false;
    run.triggers = out.triggers;
    run.counters = out;
    for (;;) {
      const next = this.queue.popDue(wm, this.resolveTimers);
      if (next === undefined) break;
      const [customer, , record] = next;
      run.firedAt = now ?? record.due;
      const entry = this.customers.get(customer)!;
      this.touch(entry);
      this.rules.fireTimer(record, this.scopeOf(entry), run);
    }
  }

  private scopeOf(entry: CustomerEntry): CustomerScope {
    const scope = this.scope;
    scope.customer = entry.state.customer;
    scope.state = entry.state;
    scope.memory = entry.rules;
    scope.timers = entry.timers;
    return scope;
  }

  private emptyOutput(): PartitionOutput {
    return {
      triggers: [],
      events: [],
      profiles: [],
      rejects: [],
      lastSeq: this.lastSeq,
      lateEvents: 0,
      droppedByCap: 0,
      droppedByQuietHours: 0,
      deferred: 0,
    };
  }
}

/**
 * A partition got a stream sequence at or below one it already applied, and not a redelivery of its
 * restored checkpoint: events reached it out of order. Applying or skipping it would both be wrong
 * (skipping loses an event), so the batch fails and the run stops.
 */
export class SequenceError extends Error {
  override readonly name = 'SequenceError';
  constructor(
    readonly partition: number,
    readonly seq: number,
    readonly lastSeq: number,
  ) {
    super(
      `partition ${partition} got stream sequence ${seq} after ${lastSeq}: events reached it out of order; ` +
        'stopping rather than skip an event',
    );
  }
}

/** The `cxstream.events` row of an event: flat, defaults for missing fields, free text masked. */
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
    text: e.text === undefined ? '' : maskPii(e.text),
    partition,
    seq,
  };
}
