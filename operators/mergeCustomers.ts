/**
 * Identity stitching: when an event shows that two customer keys are one person, the state of the
 * absorbed key (`from`) is merged into the state of the canonical key (`into`). Pure functions on
 * plain data; `into` is modified, `from` is only read and nothing of it is kept by reference.
 *
 * Profile (`mergeStates`), as if one customer had seen both keys' events:
 * - Counts and sums add: orders, spend, the active-hours histogram, and the day buckets of contacts,
 *   page views, negative messages and complaints (same day and key: counts add). The customer key
 *   of `into` is kept.
 * - Times: first seen, first order and the first purchase occasion are the earlier of the two; last
 *   seen, last order and the latest purchase occasion the later. The orders of the last 365 days
 *   are merged in time order (equal times: the canonical's first).
 * - "Latest" values come from the side where they are later in event time, the canonical on a tie:
 *   region and time zone (by the time each was seen), last order id and amount (by last order
 *   time), last sentiment (by its time), and per contact channel its latest contact time.
 * - Session and the unrecognized-message streak come from the side seen last (latest event time;
 *   tie: the canonical). If that side never had a session, the other side's session is kept.
 * - Sentiments: the last 20 are kept in stream order; the stream order across the two keys is not
 *   known, so the side whose last sentiment is older counts as earlier and the other side's follow.
 * - Purchase occasions (customer-local days with orders) add, minus the days both sides are known
 *   to share: a side's first and latest occasion days are kept, so when one of those is also a
 *   first or latest occasion day of the other side it is counted once. Days in between are not
 *   kept, so two orders on the same day in the middle of both sides' histories count as two
 *   occasions (the purchase cycle is then a little shorter than it should be).
 * - Afterwards windows are pruned relative to the merged last-seen time, exactly as a customer's
 *   own events prune them.
 * With each key's events applied in time order, the merged profile equals that of one customer who
 * got all the events in time order, except for: purchase occasions on days both keys ordered on
 * (above), the sentiment ring when the two keys' messages interleave in time (its order, so which 20
 * are kept), session and unrecognized streak (they follow stream order, which is not recorded), and
 * the order of keys within one day bucket (as if the absorbed key's events came after the
 * canonical's; counts and everything derived from them are exact).
 *
 * Delivery policy:
 * - Cooldown marks (`mergeFired`): per rule and key, the mark with the later firing time (tie: the
 *   canonical's), so a cooldown either key started still holds; its session is that mark's, or the
 *   other mark's session if it has none (as a firing without a session keeps the one before).
 * - Frequency caps (`mergeCaps`): per cap group, both keys' delivery times together, sorted: the
 *   merged customer gets no more than the cap allows, counting the deliveries to either key.
 *
 * Rule memory (`mergeMemories`): per rule, the rule's pattern merges the two memories
 * (`Pattern.mergeMemory`); a pattern without it keeps the canonical's memory when it has one, else
 * the absorbed key's. A rule only the absorbed key has memory of keeps that memory.
 */
import type { CapMemory, FireMarks } from './deliveryPolicy.js';
import { type CustomerState, pruneWindows } from './profile.js';
import type { FireMark, Pattern } from './ruleModel.js';
import type { RuleMemory } from './ruleSet.js';

const DAY = 86_400_000;
const SENTIMENT_RING = 20;

type KeyedDayCounts = CustomerState['contacts'];
type DayCounts = CustomerState['negatives'];

/** Merges the absorbed customer's profile state `from` into `into` (keeps `into.customer`). */
export function mergeStates(into: CustomerState, from: Readonly<CustomerState>): void {
  if (from.lastSeen === null) return; // nothing was ever applied to `from`
  // Which side was seen last (tie: into), before firstSeen/lastSeen change.
  const fromLater = into.lastSeen === null || from.lastSeen > into.lastSeen;

  if (into.firstSeen === null || (from.firstSeen !== null && from.firstSeen < into.firstSeen))
    into.firstSeen = from.firstSeen;
  if (into.lastSeen === null || from.lastSeen > into.lastSeen) into.lastSeen = from.lastSeen;

  if (from.regionTs > into.regionTs) {
    into.region = from.region;
    into.regionTs = from.regionTs;
  }
  if (from.tzTs > into.tzTs) {
    into.tz = from.tz;
    into.tzTs = from.tzTs;
  }

  if (fromLater) {
    if (from.session !== null) into.session = from.session;
    into.unrecognizedStreak = from.unrecognizedStreak;
  } else if (into.session === null) {
    into.session = from.session;
  }

  mergeOrders(into, from);
  mergeOccasions(into, from);

  for (let h = 0; h < into.activeHours.length; h++) into.activeHours[h]! += from.activeHours[h] ?? 0;
  into.contacts = mergeKeyedDays(into.contacts, from.contacts);
  into.views = mergeKeyedDays(into.views, from.views);
  into.negatives = mergeDays(into.negatives, from.negatives);
  into.complaints = mergeDays(into.complaints, from.complaints);
  for (let c = 0; c < from.lastContactChannel.length; c++) {
    const channel = from.lastContactChannel[c]!;
    const ts = from.lastContactTs[c]!;
    const i = into.lastContactChannel.indexOf(channel);
    if (i < 0) {
      into.lastContactChannel.push(channel);
      into.lastContactTs.push(ts);
    } else if (ts > into.lastContactTs[i]!) {
      into.lastContactTs[i] = ts;
    }
  }

  mergeSentiments(into, from);

  pruneWindows(into, Math.floor(into.lastSeen / DAY));
}

function mergeOrders(into: CustomerState, from: Readonly<CustomerState>): void {
  into.orders += from.orders;
  into.spendCents += from.spendCents;
  if (into.firstOrderAt === null || (from.firstOrderAt !== null && from.firstOrderAt < into.firstOrderAt))
    into.firstOrderAt = from.firstOrderAt;
  if (from.lastOrderAt !== null && (into.lastOrderAt === null || from.lastOrderAt > into.lastOrderAt)) {
    into.lastOrderAt = from.lastOrderAt;
    into.lastOrderId = from.lastOrderId;
    into.lastOrderAmount = from.lastOrderAmount;
  }
  // Both lists are sorted by time: merge them (equal times: into's first).
  const ts: number[] = [];
  const cents: number[] = [];
  let i = 0;
  let j = 0;
  while (i < into.orderTs.length || j < from.orderTs.length) {
    if (j >= from.orderTs.length || (i < into.orderTs.length && into.orderTs[i]! <= from.orderTs[j]!)) {
      ts.push(into.orderTs[i]!);
      cents.push(into.orderCents[i++]!);
    } else {
      ts.push(from.orderTs[j]!);
      cents.push(from.orderCents[j++]!);
    }
  }
  into.orderTs = ts;
  into.orderCents = cents;
}

/**
 * Occasions add, minus the days known to be on both sides: each side's first and latest occasion
 * days. Other shared days are not known (counted twice).
 */
function mergeOccasions(into: CustomerState, from: Readonly<CustomerState>): void {
  if (from.occasions === 0) return;
  if (into.occasions === 0) {
    into.occasions = from.occasions;
    into.firstOccasionAt = from.firstOccasionAt;
    into.lastOccasionAt = from.lastOccasionAt;
    into.firstOccasionDay = from.firstOccasionDay;
    into.lastOccasionDay = from.lastOccasionDay;
    return;
  }
  const mine = new Set([into.firstOccasionDay, into.lastOccasionDay]);
  let shared = 0;
  for (const d of new Set([from.firstOccasionDay, from.lastOccasionDay])) if (mine.has(d)) shared++;
  into.occasions += from.occasions - shared;
  // firstOccasionAt / lastOccasionAt: the first order of that day, so the earlier on a shared day.
  if (from.firstOccasionDay < into.firstOccasionDay) {
    into.firstOccasionDay = from.firstOccasionDay;
    into.firstOccasionAt = from.firstOccasionAt;
  } else if (
    from.firstOccasionDay === into.firstOccasionDay &&
    from.firstOccasionAt! < into.firstOccasionAt!
  ) {
    into.firstOccasionAt = from.firstOccasionAt;
  }
  if (from.lastOccasionDay > into.lastOccasionDay) {
    into.lastOccasionDay = from.lastOccasionDay;
    into.lastOccasionAt = from.lastOccasionAt;
  } else if (from.lastOccasionDay === into.lastOccasionDay && from.lastOccasionAt! < into.lastOccasionAt!) {
    into.lastOccasionAt = from.lastOccasionAt;
  }
}

/**
 * Merges per (day, key) counts, sorted by day. Within a day the profile keeps keys newest first
 * (a new key goes before the day's others): the result is what `updateProfile` gives when `from`'s
 * events come after `into`'s, i.e. `from`'s new keys (in its order) before `into`'s keys.
 */
function mergeKeyedDays(a: KeyedDayCounts, b: Readonly<KeyedDayCounts>): KeyedDayCounts {
  const out: KeyedDayCounts = { d: [], k: [], n: [] };
  let i = 0;
  let j = 0;
  while (i < a.d.length || j < b.d.length) {
    const day = j >= b.d.length ? a.d[i]! : i >= a.d.length ? b.d[j]! : Math.min(a.d[i]!, b.d[j]!);
    let iEnd = i;
    while (iEnd < a.d.length && a.d[iEnd] === day) iEnd++;
    let jEnd = j;
    while (jEnd < b.d.length && b.d[jEnd] === day) jEnd++;
    for (let y = j; y < jEnd; y++) {
      let found = false;
      for (let x = i; x < iEnd; x++) if (a.k[x] === b.k[y]) found = true;
      if (!found) {
        out.d.push(day);
        out.k.push(b.k[y]!);
        out.n.push(b.n[y]!);
      }
    }
    for (let x = i; x < iEnd; x++) {
      let n = a.n[x]!;
      for (let y = j; y < jEnd; y++) if (b.k[y] === a.k[x]) n += b.n[y]!;
      out.d.push(day);
      out.k.push(a.k[x]!);
      out.n.push(n);
    }
    i = iEnd;
    j = jEnd;
  }
  return out;
}

/** Merges per-day counts, sorted by day (one entry per day). */
function mergeDays(a: DayCounts, b: Readonly<DayCounts>): DayCounts {
  const out: DayCounts = { d: [], n: [] };
  let i = 0;
  let j = 0;
  while (i < a.d.length || j < b.d.length) {
    if (j >= b.d.length || (i < a.d.length && a.d[i]! < b.d[j]!)) {
      out.d.push(a.d[i]!);
      out.n.push(a.n[i++]!);
    } else if (i >= a.d.length || b.d[j]! < a.d[i]!) {
      out.d.push(b.d[j]!);
      out.n.push(b.n[j++]!);
    } else {
      out.d.push(a.d[i]!);
      out.n.push(a.n[i++]! + b.n[j++]!);
    }
  }
  return out;
}

/** A sentiment ring's values oldest first (the ring is full once it holds 20; `sentimentNext` is its oldest). */
function ringInOrder(s: Readonly<CustomerState>): number[] {
  const r = s.sentiments;
  if (r.length < SENTIMENT_RING) return r.slice();
  return [...r.slice(s.sentimentNext), ...r.slice(0, s.sentimentNext)];
}

/**
 * The side whose last sentiment is older (tie: `from`, so that the side giving `sentimentLast` is
 * also the newest in the ring) first; the last 20 kept, written as a ring with its oldest at 0.
 */
function mergeSentiments(into: CustomerState, from: Readonly<CustomerState>): void {
  if (from.sentiments.length === 0) return;
  const fromNewer = from.sentimentLastTs > into.sentimentLastTs;
  const both = fromNewer
    ? [...ringInOrder(into), ...ringInOrder(from)]
    : [...ringInOrder(from), ...ringInOrder(into)];
  const kept = both.slice(-SENTIMENT_RING);
  into.sentiments = kept;
  into.sentimentNext = kept.length % SENTIMENT_RING;
  if (fromNewer) {
    into.sentimentLast = from.sentimentLast;
    into.sentimentLastTs = from.sentimentLastTs;
  }
}

/**
 * Merges cooldown marks per rule and key: the later firing wins (tie: `into`), so a cooldown either
 * side started still holds; its session is the winner's, else the other mark's.
 */
export function mergeFired(into: Record<string, FireMarks>, from: Readonly<Record<string, FireMarks>>): void {
  for (const rule of Object.keys(from)) {
    const theirs = from[rule]!;
    const mine = into[rule];
    if (mine === undefined) {
      into[rule] = structuredClone(theirs);
      continue;
    }
    for (const key of Object.keys(theirs)) {
      const a = Object.hasOwn(mine, key) ? mine[key] : undefined;
      const b = theirs[key]!;
      if (a === undefined) {
        setMark(mine, key, { ...b });
        continue;
      }
      const [win, other] = b.at > a.at ? [b, a] : [a, b];
      const session = win.session ?? other.session;
      setMark(mine, key, session === undefined ? { at: win.at } : { at: win.at, session });
    }
  }
}

/** Sets `marks[key]` as an own data property (keys come from rule expressions over events). */
function setMark(marks: FireMarks, key: string, mark: FireMark): void {
  Object.defineProperty(marks, key, { value: mark, enumerable: true, writable: true, configurable: true });
}

/**
 * Merges frequency-cap memory: per cap group, both sides' delivery times, sorted (a time on both
 * sides is two deliveries). `takeCap` drops what its window no longer needs on the next delivery.
 */
export function mergeCaps(into: CapMemory, from: Readonly<CapMemory>): void {
  for (const group of Object.keys(from)) {
    into[group] = [...(into[group] ?? []), ...from[group]!].sort((x, y) => x - y);
  }
}

/**
 * Merges pattern memory per rule: both sides have memory of a rule → its pattern's `mergeMemory`
 * (without one, or for a rule no longer known, `into`'s memory stays); only `from` has → a copy of it.
 */
export function mergeMemories(
  into: RuleMemory,
  from: Readonly<RuleMemory>,
  patternOf: (ruleId: string) => Pattern | undefined,
): void {
  for (const rule of Object.keys(from)) {
    const theirs = from[rule]!;
    const mine = into[rule];
    if (mine === undefined) {
      into[rule] = structuredClone(theirs);
      continue;
    }
    const pattern = patternOf(rule);
    if (pattern?.mergeMemory !== undefined) into[rule] = pattern.mergeMemory(mine, theirs);
  }
}
