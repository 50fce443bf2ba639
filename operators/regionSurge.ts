/**
 * Aggregate rule keyed by a field other than the customer (docs/SCENARIOS.md `complaint_surge`): counts
 * events of one type per key (e.g. `region`) in event-time buckets and fires when the last window
 * holds at least `threshold` of them and at least `factor` × the key's mean per window over the
 * preceding baseline. The counted events come from every partition, so this runs on the main thread
 * over the workers' event rows; the format and semantics are in docs/AGGREGATES.md.
 *
 * Deterministic whatever the interleaving of partitions: a window is evaluated only once every
 * partition's watermark has passed its end, and a row older than its own partition's watermark
 * (decided from that partition's stream order alone) is counted as late and left out.
 */
import { parseDuration } from './duration.js';
import type { EventRow, Trigger } from './types.js';

/** EventRow fields an aggregate can be keyed by. */
export const SURGE_KEY_FIELDS = [
  'region',
  'channel',
  'category',
  'sku',
  'intent',
  'agent',
  'variant',
  'source',
] as const;

/** A field of {@link SURGE_KEY_FIELDS}. */
export type SurgeKeyField = (typeof SURGE_KEY_FIELDS)[number];

/**
 * An event of a counted type, as a partition worker reports it for the aggregates (stream order):
 * `before` is the highest event time its partition had seen before it (lateness is judged by it).
 */
export type CountedRow = { ts: number; type: string; before: number } & Partial<
  Record<SurgeKeyField, string>
>;

/** What one partition output tells the aggregates. */
export interface CountedBatch {
  /** Events of the counted types, in stream order, with the key fields the aggregates use. */
  rows: readonly CountedRow[];
  /** Highest event time the partition has seen (over all types), -Infinity before any. */
  maxTs: number;
  /** The partition's watermark when its worker reports one (idle partitions move it with the clock). */
  watermark?: number;
}

/** What partition workers pick out of their event rows for the aggregates. */
export interface CountedSelection {
  /** Event types counted by some aggregate. */
  types: string[];
  /** Key fields those aggregates need. */
  fields: SurgeKeyField[];
}

/** The selection the workers need for these aggregates. */
export function countedSelection(specs: readonly ResolvedRegionSurge[]): CountedSelection {
  return {
    types: [...new Set(specs.map((s) => s.type))],
    fields: [...new Set(specs.map((s) => s.by))],
  };
}

/**
 * Picks the counted rows out of a partition's event rows (in stream order), given the highest event
 * time the partition had seen before them; runs in the worker so only these rows cross threads.
 */
export function selectCounted(
  rows: readonly EventRow[],
  selection: CountedSelection,
  maxTsBefore: number,
): CountedBatch {
  const out: CountedRow[] = [];
  let maxTs = maxTsBefore;
  for (const row of rows) {
    if (selection.types.includes(row.type)) {
      const counted: CountedRow = { ts: row.ts, type: row.type, before: maxTs };
      for (const f of selection.fields) counted[f] = row[f];
      out.push(counted);
    }
    if (row.ts > maxTs) maxTs = row.ts;
  }
  return { rows: out, maxTs };
}

/** One surge rule as written in `config/aggregates.yaml` (plain data). */
export interface RegionSurgeSpec {
  /** `[a-z0-9_]+`; trigger rule name and default subject `cx.triggers.<id>`. */
  id: string;
  /** The trigger's `reason`. @default the id */
  description?: string;
  /** Event type counted. @default 'complaint' */
  type?: string;
  /** Event field the counts are kept by; events without it are not counted. @default 'region' */
  by?: SurgeKeyField;
  /** Length of the window whose count is tested. @default '1h' */
  window?: string;
  /** Hop of the window: windows end on multiples of it (epoch-aligned); also the bucket size. @default '5m' */
  step?: string;
  /** Span before the window whose mean per window is the key's baseline. @default '24h' */
  baseline?: string;
  /** Least count in the window. @default 10 */
  threshold?: number;
  /** Least ratio of the window's count to the baseline mean per window. @default 3 */
  factor?: number;
  /** No refire for the same key within this time (window ends). @default '1h' */
  cooldown?: string;
  /** Watermark = highest event time of a partition minus this, when the workers report none. @default '0s' */
  lateness?: string;
  /** Trigger priority (no customer value is added: the key is not a customer). @default 0 */
  priority?: number;
  /** Output subject. @default `cx.triggers.<id>` */
  subject?: string;
}

/** A {@link RegionSurgeSpec} with defaults filled and durations in ms (frozen). */
export interface ResolvedRegionSurge {
  id: string;
  reason: string;
  type: string;
  by: SurgeKeyField;
  windowMs: number;
  stepMs: number;
  baselineMs: number;
  threshold: number;
  factor: number;
  cooldownMs: number;
  latenessMs: number;
  priority: number;
  subject: string;
}

/** A surge spec that cannot be used; `path` is the key inside the spec (for file:line). */
export class RegionSurgeSpecError extends Error {
  override name = 'RegionSurgeSpecError';
  constructor(
    readonly path: string[],
    message: string,
  ) {
    super(message);
  }
}

/** Counters of what the aggregate did with the rows it saw. */
export interface RegionSurgeStats {
  /** Rows of the counted type that were counted. */
  counted: number;
  /** Rows of the counted type older than their partition's watermark: left out. */
  late: number;
  /** Rows of the counted type without the key field. */
  unkeyed: number;
  /** Triggers fired. */
  fired: number;
}

/** Fills defaults and checks a spec; throws {@link RegionSurgeSpecError} naming the field. */
export function resolveRegionSurge(spec: RegionSurgeSpec): ResolvedRegionSurge {
  const duration = (key: keyof RegionSurgeSpec, fallback: string, allowZero = false): number => {
    const text = (spec[key] as string | undefined) ?? fallback;
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch (e) {
      throw new RegionSurgeSpecError([key], `${key}: ${(e as Error).message}`);
    }
    if (ms <= 0 && !allowZero) throw new RegionSurgeSpecError([key], `${key} must be longer than 0`);
    return ms;
  };
  if (typeof spec.id !== 'string' || !/^[a-z0-9_]+$/.test(spec.id))
    throw new RegionSurgeSpecError(['id'], 'id must match [a-z0-9_]+');
  const stepMs = duration('step', '5m');
  const windowMs = duration('window', '1h');
  const baselineMs = duration('baseline', '24h');
  const cooldownMs = duration('cooldown', '1h', true);
  const latenessMs = duration('lateness', '0s', true);
  for (const [key, ms] of [
    ['window', windowMs],
    ['baseline', baselineMs],
  ] as const) {
    // Buckets are one step long: a window that is not a whole number of them would be rounded.
    if (ms % stepMs !== 0) throw new RegionSurgeSpecError([key], `${key} must be a multiple of step`);
  }
  const threshold = spec.threshold ?? 10;
  if (!Number.isInteger(threshold) || threshold < 1)
    throw new RegionSurgeSpecError(['threshold'], 'threshold must be an integer >= 1');
  const factor = spec.factor ?? 3;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 0)
    throw new RegionSurgeSpecError(['factor'], 'factor must be a number >= 0');
  const by = spec.by ?? 'region';
  if (!SURGE_KEY_FIELDS.includes(by))
    throw new RegionSurgeSpecError(['by'], `by must be one of: ${SURGE_KEY_FIELDS.join(', ')}`);
  const priority = spec.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isFinite(priority))
    throw new RegionSurgeSpecError(['priority'], 'priority must be a number');
  return Object.freeze({
    id: spec.id,
    reason: spec.description ?? spec.id,
    type: spec.type ?? 'complaint',
    by,
    windowMs,
    stepMs,
    baselineMs,
    threshold,
    factor,
    cooldownMs,
    latenessMs,
    priority,
    subject: spec.subject ?? `cx.triggers.${spec.id}`,
  });
}

/**
 * What a {@link RegionSurge} held at a checkpoint cut, rebuilt from stored event rows after a crash
 * (engine/checkpoint/aggregateRecovery.ts): per partition, its events up to the cut's sequence.
 */
export interface RegionSurgeCut {
  /** Per partition: highest event time of its events up to the cut (-Infinity when none). */
  maxTs: readonly number[];
  /**
   * Per partition: its rows of the counted type up to the cut, in stream order, each with the
   * highest event time of the partition's events before it (`before`, as the worker reports it).
   * Rows older than the window and baseline of the first window still to evaluate may be left out.
   */
  rows: ReadonlyArray<readonly CountedRow[]>;
  /**
   * Window end (ms) of each key's latest firing; firings after the cut's evaluated windows are
   * ignored (the run after the cut fires them again, and the trigger ledger drops the repeat).
   */
  lastFired: ReadonlyMap<string, number>;
}

/** Counts of one key: bucket index (event time / step) → count, with the indexes kept sorted. */
interface KeyCounts {
  counts: Map<number, number>;
  /** Bucket indexes present in `counts`, ascending. */
  keys: number[];
  /** Window end (ms) of the last firing. */
  lastFiredEnd: number;
}

/**
 * The surge aggregate of one spec over `partitions` partitions. Feed it each partition's outputs in
 * that partition's order ({@link observe}); it returns the triggers that became due.
 */
export class RegionSurge {
  readonly spec: ResolvedRegionSurge;
  private readonly byKey = new Map<string, KeyCounts>();
  /** Per partition: watermark used to judge lateness and to release windows. */
  private readonly watermarks: Float64Array;
  /** Per partition: highest event time seen (the watermark when workers report none). */
  private readonly maxTs: Float64Array;
  /** Last window end index (end ms / step) evaluated for every key. */
  private evaluatedThrough = Number.NEGATIVE_INFINITY;
  private readonly counters: RegionSurgeStats = { counted: 0, late: 0, unkeyed: 0, fired: 0 };
  private readonly windowBuckets: number;
  private readonly baselineBuckets: number;

  /**
   * @param clock wall clock stamped on triggers as `firedAt` (injected: operators never read time)
   */
  constructor(
    spec: RegionSurgeSpec | ResolvedRegionSurge,
    partitions: number,
    private readonly clock: () => number,
  ) {
    this.spec = 'windowMs' in spec ? spec : resolveRegionSurge(spec);
    this.watermarks = new Float64Array(partitions).fill(Number.NEGATIVE_INFINITY);
    this.maxTs = new Float64Array(partitions).fill(Number.NEGATIVE_INFINITY);
    this.windowBuckets = this.spec.windowMs / this.spec.stepMs;
    this.baselineBuckets = this.spec.baselineMs / this.spec.stepMs;
  }

  /** What was counted, left out and fired so far. */
  get stats(): Readonly<RegionSurgeStats> {
    return { ...this.counters };
  }

  /** The lowest partition watermark: windows ending at or before it have been evaluated. */
  get watermark(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const w of this.watermarks) if (w < min) min = w;
    return min;
  }

  /**
   * Takes one output of `partition`, in that partition's order: its counted rows and highest event
   * time, and the watermark its worker reports (when it reports one); returns the triggers of every
   * window this completed.
   */
  observe(partition: number, batch: CountedBatch): Trigger[] {
    if (partition < 0 || partition >= this.watermarks.length)
      throw new RangeError(`partition ${partition} out of range 0..${this.watermarks.length - 1}`);
    const { type, by, latenessMs, stepMs } = this.spec;
    // The watermark before this batch; within it, each row is judged by the event time before it.
    const reported = this.watermarks[partition]!;
    for (const row of batch.rows) {
      if (row.type !== type) continue;
      if (row.ts < reported || row.ts < row.before - latenessMs) {
        this.counters.late++;
        continue;
      }
      const key = row[by];
      if (key === undefined || key === '') this.counters.unkeyed++;
      else {
        this.add(key, Math.floor(row.ts / stepMs));
        this.counters.counted++;
      }
    }
    let wm = reported;
    if (batch.maxTs - latenessMs > wm) wm = batch.maxTs - latenessMs;
    if (batch.watermark !== undefined && batch.watermark > wm) wm = batch.watermark;
    this.watermarks[partition] = wm;
    if (batch.maxTs > this.maxTs[partition]!) this.maxTs[partition] = batch.maxTs;
    return this.evaluate(this.watermark);
  }

  /**
   * Every partition's watermark moves to at least `time` (end of a finite replay, `--until`);
   * returns the triggers of the windows this completed.
   */
  advanceTo(time: number): Trigger[] {
    for (let p = 0; p < this.watermarks.length; p++)
      if (this.watermarks[p]! < time) this.watermarks[p] = time;
    return this.evaluate(this.watermark);
  }

  /**
   * End of the step holding the latest event of any partition: where a finished replay stops
   * evaluating (the window holding its last event is complete, later ones would only see its tail).
   */
  get lastWindowEnd(): number {
    const max = this.maxEventTime;
    return Number.isFinite(max) ? (Math.floor(max / this.spec.stepMs) + 1) * this.spec.stepMs : max;
  }

  /** Highest event time seen by any partition (-Infinity before the first row). */
  get maxEventTime(): number {
    let max = Number.NEGATIVE_INFINITY;
    for (const t of this.maxTs) if (t > max) max = t;
    return max;
  }

  /**
   * Resumes from a checkpoint cut instead of the start of the stream: the counts, watermarks,
   * evaluated windows and cooldowns become those a crash-free run had after observing the same
   * events, so observing the events after the cut gives the same triggers. Only on a fresh instance.
   */
  restore(cut: RegionSurgeCut): void {
    const P = this.watermarks.length;
    if (this.byKey.size > 0 || this.counters.counted + this.counters.late + this.counters.unkeyed > 0)
      throw new Error('RegionSurge.restore needs an aggregate that has not observed anything');
    if (cut.maxTs.length !== P || cut.rows.length !== P)
      throw new RangeError(`a cut of ${cut.maxTs.length}/${cut.rows.length} partitions for ${P} partitions`);
    const { type, by, latenessMs, stepMs } = this.spec;
    for (let p = 0; p < P; p++) {
      for (const row of cut.rows[p]!) {
        // The observed run judged each row against the partition's watermark before its batch, which
        // is never above `before - lateness`: this criterion alone gives the same decision.
        if (row.type !== type || row.ts < row.before - latenessMs) continue;
        const key = row[by];
        if (key !== undefined && key !== '') this.add(key, Math.floor(row.ts / stepMs));
      }
      const maxTs = cut.maxTs[p]!;
      this.maxTs[p] = maxTs;
      this.watermarks[p] = maxTs - latenessMs;
    }
    const wm = this.watermark;
    if (!Number.isFinite(wm)) return;
    // The observed run evaluated every window ending at or before its lowest watermark.
    const last = Math.floor(wm / stepMs);
    for (const [key, end] of cut.lastFired) {
      if (end > last * stepMs) continue;
      let k = this.byKey.get(key);
      if (k === undefined) {
        k = { counts: new Map(), keys: [], lastFiredEnd: end };
        this.byKey.set(key, k);
      } else if (end > k.lastFiredEnd) k.lastFiredEnd = end;
    }
    this.evaluatedThrough = last;
    this.evict(last);
  }

  /**
   * Earliest event time a {@link restore} needs rows from, given the lowest partition watermark at
   * the cut: the window and baseline of the first window still to evaluate (-Infinity: all).
   */
  restoreFrom(lowestWatermark: number): number {
    if (!Number.isFinite(lowestWatermark)) return Number.NEGATIVE_INFINITY;
    return (
      (Math.floor(lowestWatermark / this.spec.stepMs) + 1 - this.windowBuckets - this.baselineBuckets) *
      this.spec.stepMs
    );
  }

  private add(key: string, bucket: number): void {
    let k = this.byKey.get(key);
    if (k === undefined) {
      k = { counts: new Map(), keys: [], lastFiredEnd: Number.NEGATIVE_INFINITY };
      this.byKey.set(key, k);
    }
    const n = k.counts.get(bucket);
    if (n !== undefined) {
      k.counts.set(bucket, n + 1);
      return;
    }
    k.counts.set(bucket, 1);
    // Rows arrive nearly in time order: appending is the common case.
    const keys = k.keys;
    if (keys.length === 0 || keys[keys.length - 1]! < bucket) keys.push(bucket);
    else keys.splice(lowerBound(keys, bucket), 0, bucket);
  }

  /** Evaluates every window end in (evaluatedThrough, watermark] for every key. */
  private evaluate(watermark: number): Trigger[] {
    if (!Number.isFinite(watermark)) return [];
    const last = Math.floor(watermark / this.spec.stepMs);
    if (last <= this.evaluatedThrough) return [];
    const fired: Trigger[] = [];
    for (const [key, k] of this.byKey) this.evaluateKey(key, k, last, fired);
    this.evaluatedThrough = last;
    this.evict(last);
    if (fired.length > 1)
      fired.sort((a, b) => a.eventTime - b.eventTime || (a.customer < b.customer ? -1 : 1));
    this.counters.fired += fired.length;
    return fired;
  }

  /** Window ends e (in steps) from evaluatedThrough + 1 to `last`: window = buckets [e - W, e). */
  private evaluateKey(key: string, k: KeyCounts, last: number, out: Trigger[]): void {
    const { threshold, factor, cooldownMs, stepMs } = this.spec;
    const W = this.windowBuckets;
    const B = this.baselineBuckets;
    const keys = k.keys;
    if (keys.length === 0) return;
    let e = Number.isFinite(this.evaluatedThrough) ? this.evaluatedThrough + 1 : keys[0]! + 1;
    while (e <= last) {
      let i = lowerBound(keys, e - W);
      if (i === keys.length) return;
      if (keys[i]! >= e) {
        // Nothing in this window: skip to the first end whose window holds the next bucket.
        e = keys[i]! + 1;
        continue;
      }
      let count = 0;
      for (; i < keys.length && keys[i]! < e; i++) count += k.counts.get(keys[i]!)!;
      const end = e * stepMs;
      if (count >= threshold && end - k.lastFiredEnd >= cooldownMs) {
        let base = 0;
        for (let j = lowerBound(keys, e - W - B); j < keys.length && keys[j]! < e - W; j++)
          base += k.counts.get(keys[j]!)!;
        // count >= factor × (base × W / B), kept in integers where the factor allows.
        if (count * B >= factor * base * W) {
          k.lastFiredEnd = end;
          out.push(this.trigger(key, e, count, (base * W) / B));
        }
      }
      e++;
    }
  }

  /** Drops buckets no window after `last` can reach (its window and baseline). */
  private evict(last: number): void {
    const oldest = last + 1 - this.windowBuckets - this.baselineBuckets;
    for (const [key, k] of this.byKey) {
      const cut = lowerBound(k.keys, oldest);
      if (cut === 0) continue;
      for (let i = 0; i < cut; i++) k.counts.delete(k.keys[i]!);
      k.keys.splice(0, cut);
      // A key stays while its cooldown could still hold a firing back.
      if (k.keys.length === 0 && last * this.spec.stepMs - k.lastFiredEnd >= this.spec.cooldownMs)
        this.byKey.delete(key);
    }
  }

  private trigger(key: string, endIndex: number, count: number, baselineMean: number): Trigger {
    const s = this.spec;
    const end = endIndex * s.stepMs;
    return {
      id: `${s.id}:${key}:${end}`,
      rule: s.id,
      customer: `${s.by}:${key}`,
      firedAt: this.clock(),
      eventTime: end,
      reason: s.reason,
      priority: s.priority,
      payload: {
        [s.by]: key,
        type: s.type,
        windowStart: end - s.windowMs,
        windowEnd: end,
        count,
        baselineMean: Math.round(baselineMean * 1e6) / 1e6,
        threshold: s.threshold,
        factor: s.factor,
      },
      profile: {},
      subject: s.subject,
    };
  }
}

/** First index i with keys[i] >= x (keys ascending). */
function lowerBound(keys: readonly number[], x: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
