import { decodeEvent } from './decodeEvent.js';
import { localHour } from './localTime.js';
import { maskPii } from './mask.js';
import { type CustomerState, newCustomerState, type Profile, profileOf, updateProfile } from './profile.js';
import { compileRules, type RuleMemory, type RuleSet, type RuleSpec } from './rules.js';
import type { CxEvent, EventRow, ProfileRow, Reject, Trigger } from './types.js';

/** How a partition processes its events. */
export interface PartitionOptions {
  /** This partition's number (stamped on every row as its source). */
  partition: number;
  rules: RuleSpec[];
  /** Time zone for customer-local time when an event has no `tz`. @default 'Asia/Shanghai' */
  defaultTz?: string;
  /** Minimum event time between two published snapshots of one customer. @default 60_000 */
  profileIntervalMs?: number;
}

/** Everything one call produced; the engine hands it to the sinks. */
export interface PartitionOutput {
  triggers: Trigger[];
  events: EventRow[];
  profiles: ProfileRow[];
  rejects: Reject[];
  lastSeq: number;
}

/** A partition's whole state as plain data (msgpack-able): what a checkpoint stores. */
export interface PartitionSnapshot {
  /** Format version; a reader refuses versions it does not know. */
  version: 1;
  partition: number;
  /** Highest stream sequence applied. */
  lastSeq: number;
  watermark: number;
  customers: Array<[customer: string, entry: CustomerEntry]>;
}

/** Snapshot format this code writes and reads. */
export const SNAPSHOT_VERSION = 1;

/** One customer as the partition holds it. */
export interface CustomerEntry {
  state: CustomerState;
  rules: RuleMemory;
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
  private readonly customers = new Map<string, CustomerEntry>();
  private rules: RuleSet;
  /** Highest stream sequence applied; lower or equal ones are redeliveries and are skipped. */
  private lastSeq = 0;
  /** Highest event time seen in this partition. */
  private watermark = Number.NEGATIVE_INFINITY;

  constructor(options: PartitionOptions) {
    this.partition = options.partition;
    this.defaultTz = options.defaultTz ?? 'Asia/Shanghai';
    this.profileIntervalMs = options.profileIntervalMs ?? 60_000;
    this.rules = compileRules(options.rules);
  }

  /** Number of customers held. */
  get size(): number {
    return this.customers.size;
  }

  /** Rule conditions that failed at runtime (they count as false), per rule id. */
  get ruleErrors(): ReadonlyMap<string, number> {
    return this.rules.errors;
  }

  /** The partition's state as plain data, for a checkpoint. Shares objects with the live state: encode it before the next call. */
  snapshot(): PartitionSnapshot {
    return {
      version: SNAPSHOT_VERSION,
      partition: this.partition,
      lastSeq: this.lastSeq,
      watermark: this.watermark,
      customers: [...this.customers],
    };
  }

  /** Replaces the state with a snapshot's (recovery); events up to `snapshot.lastSeq` count as applied. */
  restore(snapshot: PartitionSnapshot): void {
    if (snapshot.version !== SNAPSHOT_VERSION) {
      throw new Error(`snapshot format ${snapshot.version} is not supported (this version reads ${SNAPSHOT_VERSION})`);
    }
    if (snapshot.partition !== this.partition) {
      throw new Error(`snapshot of partition ${snapshot.partition} cannot restore partition ${this.partition}`);
    }
    this.customers.clear();
    for (const [customer, entry] of snapshot.customers) this.customers.set(customer, entry);
    this.lastSeq = snapshot.lastSeq;
    this.watermark = snapshot.watermark;
  }

  /** Replaces the rule set; customer state is kept (rule memory of removed rules is ignored). */
  setRules(specs: RuleSpec[]): void {
    this.rules = compileRules(specs);
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
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      if (seq <= this.lastSeq) continue; // redelivered: already applied
      this.lastSeq = seq;
      const bytes = payload(i);
      const subject = subjects[i]!;
      const decoded = decodeEvent(bytes, subject);
      if (typeof decoded === 'string') {
        out.rejects.push({ seq, subject, data: bytes.slice(), reason: decoded });
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
    const current = Math.max(this.watermark, clock ?? Number.NEGATIVE_INFINITY);
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
        publishedAt: Number.NEGATIVE_INFINITY,
        dirty: false,
      };
      this.customers.set(event.customer, entry);
    }
    if (event.ts > this.watermark) this.watermark = event.ts;
    // Rules read the customer-local hour (night rules); computed once here with the default tz fallback.
    event.localHour = localHour(event.ts, event.tz ?? this.defaultTz, this.defaultTz);
    updateProfile(entry.state, event, this.defaultTz);
    const asOf = entry.state.lastSeen!; // set by updateProfile
    const profile = profileOf(entry.state, asOf);
    this.rules.evaluate(event, profile as unknown as Record<string, unknown>, entry.rules, now, out.triggers);
    out.events.push(eventRow(event, this.partition, seq));
    if (asOf - entry.publishedAt >= this.profileIntervalMs) this.publishProfile(entry, profile, out);
    else entry.dirty = true;
  }

  private publishProfile(entry: CustomerEntry, profile: Profile, out: PartitionOutput): void {
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

  private emptyOutput(): PartitionOutput {
    return { triggers: [], events: [], profiles: [], rejects: [], lastSeq: this.lastSeq };
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
