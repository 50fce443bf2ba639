import { type DecodeOptions, decodeEvent } from './decodeEvent.js';
import { localHour } from './localTime.js';
import { OrderedEvents, type PendingEvent } from './orderedEvents.js';
import { type CustomerEntry, type PartitionSnapshot, SNAPSHOT_VERSION } from './partitionState.js';
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
import { TimerQueue } from './timers.js';
import type { CxEvent, EventRow, ProfileRow, Reject, Trigger } from './types.js';
import { Watermark } from './watermark.js';

/** How a partition processes its events. */
export interface PartitionOptions {
  /** This partition's number (stamped on every row as its source). */
  partition: number;
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
  /** Which fields are masked where values leave the partition (docs/PRIVACY.md). @default the default fields, no allowances */
  privacy?: PrivacyOptions;
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
  /** The partition's watermark after the call (main-thread aggregates follow it). */
  watermark: number;
}

/** Timer id of a customer's profile publication: after every other timer of the same millisecond. */
const PUBLISH_TIMER = '~publish';

/**
 * The keyed state and per-event logic of one partition: decode → profile → rules → rows.
 *
 * Two lanes: on arrival an event updates the profile and runs the on-event rules (routing answers
 * at once); the patterns that depend on time order (absence, sequence, count, streak, inactivity,
 * purchase cycle) see events in event-time order once the watermark has passed them, interleaved
 * with their timers (an event before a timer due at the same millisecond). So an event never
 * cancels or restarts a timer due before it, and arrival order within the allowed lateness does
 * not change what fires.
 *
 * Pure with respect to time (the caller passes `now`): the same events in the same order give the
 * same triggers and rows, whatever the batches, checkpoints and restores in between.
 */
export class PartitionProcessor {
  readonly partition: number;
  private readonly defaultTz: string;
  private readonly profileIntervalMs: number;
  private readonly maxFutureSkewMs: number;
  private readonly decodeOptions: DecodeOptions;
  private readonly privacy: PrivacyPolicy;
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
  private readonly ordered = new OrderedEvents();
  // Reused per event and per timer: the hot path allocates no context objects.
  private readonly scope: CustomerScope;
  private readonly run: RuleRun;
  private readonly resolveTimers = (customer: string) => this.customers.get(customer)?.timers;
  // The profile of the customer being evaluated, built on first use (rules that read it, publishing):
  // most events neither fire a rule that reads it nor publish. Reused, so no closure per event.
  private current: CustomerState = newCustomerState('');
  private currentProfile: Profile | undefined;
  private readonly profileOfCurrent = () => this.currentProfileOf() as unknown as Record<string, unknown>;

  constructor(options: PartitionOptions) {
    this.partition = options.partition;
    this.defaultTz = options.defaultTz ?? 'Asia/Shanghai';
    this.profileIntervalMs = options.profileIntervalMs ?? 60_000;
    this.maxFutureSkewMs = options.maxFutureSkewMs ?? Number.POSITIVE_INFINITY;
    this.decodeOptions = { minTs: options.minEventTs ?? 1 };
    this.watermark = new Watermark({
      allowedLatenessMs: options.allowedLatenessMs,
      idleAfterMs: options.idleAfterMs,
    });
    this.rules = new RuleSet(compileRules(options.rules));
    this.privacy = new PrivacyPolicy(options.privacy);
    this.scope = { customer: '', state: newCustomerState(''), memory: {}, fired: {}, caps: {}, timers: {} };
    this.run = {
      queue: this.queue,
      watermark: Number.NEGATIVE_INFINITY,
      firedAt: 0,
      defaultTz: this.defaultTz,
      triggers: [],
      counters: { droppedByCap: 0, droppedByQuietHours: 0, deferred: 0 },
      privacy: this.privacy,
    };
  }

  /** The event-time watermark (items before it are final). */
  get currentWatermark(): number {
    return this.watermark.value;
  }

  /** Highest event time applied (−Infinity before the first). */
  get maxEventTime(): number {
    return this.watermark.maxSeen;
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

  /** The rule set (explain listens to its decisions). */
  get ruleSet(): RuleSet {
    return this.rules;
  }

  /** Rule expressions that failed at runtime (they count as false), per rule id. */
  get ruleErrors(): ReadonlyMap<string, RuleErrors> {
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
   * events up to the last one's `lastSeq` count as applied. Snapshots of older formats are upgraded.
   */
  restore(full: PartitionSnapshot, ...deltas: PartitionSnapshot[]): void {
    const chain = [full, ...deltas].map((s) => upgradeSnapshot(s, this.defaultTz));
    chain.forEach((snapshot, i) => {
      if (snapshot.partition !== this.partition) {
        throw new Error(
          `snapshot of partition ${snapshot.partition} cannot restore partition ${this.partition}`,
        );
      }
      if ((snapshot.delta === true) !== i > 0) {
        throw new Error(`restore takes a full snapshot followed by deltas; snapshot ${i} is not one`);
      }
    });
    this.customers.clear();
    this.changed = new Set();
    this.queue.clear();
    this.ordered.clear();
    for (const snapshot of chain)
      for (const [customer, entry] of snapshot.customers) this.customers.set(customer, entry);
    const pending: PendingEvent[] = [];
    for (const [customer, entry] of this.customers) {
      for (const [id, record] of Object.entries(entry.timers)) this.queue.restore(customer, id, record);
      for (const p of entry.pending) pending.push(p);
    }
    pending.sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq);
    for (const p of pending) this.ordered.push(p);
    const last = chain.at(-1)!;
    this.lastSeq = last.lastSeq;
    this.restoredSeq = last.lastSeq;
    this.watermark.restore(last.watermark);
  }

  /**
   * Replaces the rule set; customer state and the timers of rules that stay are kept, timers of
   * removed rules are dropped (pattern memory of removed rules is ignored).
   */
  setRules(specs: RuleSpec[]): void {
    const rules = new RuleSet(compileRules(specs));
    rules.onDecision = this.rules.onDecision;
    this.rules = rules;
    for (const entry of this.customers.values())
      for (const id in entry.timers) {
        const rule = entry.timers[id]!.rule;
        if (rule === '' || rules.has(rule)) continue;
        this.touch(entry);
        delete entry.timers[id];
      }
  }

  /**
   * Event time has reached `eventTime` (never backwards): events and timers at or before it are
   * processed, e.g. at the end of a replay so that silent customers' timers fire. `now` is stamped as `firedAt`
   * (null: each trigger's own event time).
   */
  advanceTo(eventTime: number, now: number | null = null): PartitionOutput {
    const out = this.emptyOutput();
    this.watermark.advanceTo(eventTime);
    this.processDue(out, now);
    return this.finish(out);
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
    return this.finish(out);
  }

  /**
   * Wall-clock tick: `clock` is the wall clock when the source is connected and caught up (the live
   * edge), null otherwise; after `idleAfterMs` of quiet at the live edge the watermark follows it.
   * `flush` (end of a replay) publishes every changed profile.
   */
  tick(clock: number | null, flush: boolean): PartitionOutput {
    const out = this.emptyOutput();
    this.watermark.idle(clock);
    this.processDue(out, clock);
    if (flush) {
      for (const entry of this.customers.values()) {
        if (!entry.dirty) continue;
        delete entry.timers[PUBLISH_TIMER];
        this.publishProfile(entry, profileOf(entry.state, entry.state.lastSeen!), entry.state.lastSeen!, out);
      }
    }
    return this.finish(out);
  }

  private applyEvent(event: CxEvent, seq: number, now: number, out: PartitionOutput): void {
    let entry = this.customers.get(event.customer);
    if (entry === undefined) {
      entry = {
        state: newCustomerState(event.customer),
        memory: {},
        fired: {},
        caps: {},
        timers: {},
        pending: [],
        held: [],
        publishedAt: Number.NEGATIVE_INFINITY,
        dirty: false,
      };
      this.customers.set(event.customer, entry);
    }
    // What the watermark passes now is final before this event is applied: being later, it could
    // not have changed it.
    const late = this.watermark.isLate(event.ts);
    if (late) out.lateEvents++;
    this.watermark.observe(event.ts);
    this.processDue(out, now);
    this.touch(entry);
    if (event.ts > this.frontierOf(entry)) {
      // Later than one of the customer's pending timers: applied once that timer has fired (or moved),
      // so the timer sees the customer exactly as of its due time.
      entry.held.push({ seq, event });
      return;
    }
    this.apply(entry, event, seq, late, now, out);
    if (this.release(entry, now, out)) this.processDue(out, now);
  }

  /** Applies an event to its customer: profile, on-event rules, the ordered lane, rows, publication. */
  private apply(
    entry: CustomerEntry,
    event: CxEvent,
    seq: number,
    late: boolean,
    now: number | null,
    out: PartitionOutput,
  ): void {
    this.touch(entry);
    updateProfile(entry.state, event, this.defaultTz);
    // Rules read the customer-local hour: the event's zone, else the customer's last known, else the default.
    event.localHour = localHour(event.ts, event.tz ?? entry.state.tz ?? this.defaultTz, this.defaultTz);
    this.current = entry.state;
    this.currentProfile = undefined;
    const run = this.prepareRun(out, now ?? event.ts);
    const scope = this.scopeOf(entry);
    this.rules.evaluate(event, this.profileOfCurrent, scope, run);
    if (this.rules.wantsOrdered(event.type)) {
      if (late) this.rules.evaluateLate(event, this.profileOfCurrent, scope, run);
      else {
        // On time: the ordered lane sees it once the watermark passes it.
        const pending: PendingEvent = { seq, event };
        entry.pending.push(pending);
        this.ordered.push(pending);
      }
    }
    out.events.push(this.privacy.row(eventRow(event, this.partition, seq)));
    const asOf = entry.state.lastSeen!;
    if (asOf - entry.publishedAt >= this.profileIntervalMs) {
      delete entry.timers[PUBLISH_TIMER];
      this.current = entry.state;
      this.publishProfile(entry, this.currentProfileOf(), asOf, out);
    } else if (!entry.dirty) {
      entry.dirty = true;
      // Published once the watermark passes the end of its interval (event time, never the wall clock).
      const due = entry.publishedAt + this.profileIntervalMs;
      this.queue.arm(entry.timers, event.customer, PUBLISH_TIMER, {
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
   * Applies the customer's held events that are no longer later than a pending timer (in stream
   * order); true when one was applied.
   */
  private release(entry: CustomerEntry, now: number | null, out: PartitionOutput): boolean {
    let released = false;
    while (entry.held.length > 0) {
      const frontier = this.frontierOf(entry);
      const i = entry.held.findIndex((h) => h.event.ts <= frontier);
      if (i < 0) break;
      const [h] = entry.held.splice(i, 1);
      this.apply(entry, h!.event, h!.seq, false, now, out);
      released = true;
    }
    return released;
  }

  /**
   * Processes, in time order, the ordered-lane events and the timers before the watermark: an event
   * before a timer due at the same millisecond (it may cancel it), events by stream sequence.
   */
  private processDue(out: PartitionOutput, now: number | null): void {
    const wm = this.watermark.value;
    for (;;) {
      const te = this.ordered.peekTime();
      if (this.queue.peekDue() < Math.min(wm, te)) {
        const next = this.queue.popDue(Math.min(wm, te), this.resolveTimers);
        if (next !== undefined) {
          this.fireTimer(next[0], next[2], out, now);
          continue;
        }
      }
      if (te < wm) {
        this.orderedEvent(this.ordered.shift()!, out, now);
        continue;
      }
      return;
    }
  }

  private orderedEvent(p: PendingEvent, out: PartitionOutput, now: number | null): void {
    const entry = this.customers.get(p.event.customer)!;
    this.touch(entry);
    // pending events of a customer leave in the order they were added
    const i = entry.pending.indexOf(p);
    if (i >= 0) entry.pending.splice(i, 1);
    this.current = entry.state;
    this.currentProfile = undefined;
    const run = this.prepareRun(out, now ?? p.event.ts);
    this.rules.evaluateOrdered(p.event, this.profileOfCurrent, this.scopeOf(entry), run);
    this.currentProfile = undefined;
    this.release(entry, now, out);
  }

  private fireTimer(customer: string, record: TimerRecord, out: PartitionOutput, now: number | null): void {
    const entry = this.customers.get(customer)!;
    this.touch(entry);
    if (record.kind === 'publish') {
      if (entry.dirty)
        this.publishProfile(entry, profileOf(entry.state, entry.state.lastSeen!), record.due, out);
      return;
    }
    this.rules.fireTimer(record, this.scopeOf(entry), this.prepareRun(out, now ?? record.due));
    this.release(entry, now, out);
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

  private prepareRun(out: PartitionOutput, firedAt: number): RuleRun {
    const run = this.run;
    run.watermark = this.watermark.value;
    run.firedAt = firedAt;
    run.triggers = out.triggers;
    run.counters = out;
    return run;
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

  /** Publishes the profile (`at`: the event time of the publication, the start of the next interval). */
  private publishProfile(entry: CustomerEntry, internal: Profile, at: number, out: PartitionOutput): void {
    const profile = this.privacy.profile(internal);
    this.touch(entry);
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
      watermark: this.watermark.value,
    };
  }

  private finish(out: PartitionOutput): PartitionOutput {
    out.lastSeq = this.lastSeq;
    out.watermark = this.watermark.value;
    return out;
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

/** The `cxstream.events` row of an event: flat, defaults for missing fields (masked by the caller). */
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
