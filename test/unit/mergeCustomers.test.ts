/**
 * Identity stitching (operators/mergeCustomers.ts): merging the absorbed key's state into the
 * canonical key's.
 *
 * Property: events split between two keys, each key's events applied in time order, then merged,
 * give the profile of one customer who got all the events in time order. Not equal by design, and
 * tested with examples instead: purchase occasions on a day both keys ordered on (only the first and
 * latest occasion days of each side are known), the sentiment ring when the two keys' messages
 * interleave in time, session and unrecognized streak (stream order is not recorded), and the order
 * of keys within one day bucket (counts are compared exactly).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CapMemory, FireMarks } from '../../operators/deliveryPolicy.js';
import { mergeCaps, mergeFired, mergeMemories, mergeStates } from '../../operators/mergeCustomers.js';
import {
  countFires,
  type KeyedTimes,
  mergeKeyedTimes,
  mergeTimes,
} from '../../operators/patterns/windows.js';
import { type CustomerState, newCustomerState, profileOf, updateProfile } from '../../operators/profile.js';
import { compileRules } from '../../operators/ruleCompiler.js';
import type { Pattern } from '../../operators/ruleModel.js';
import type { RuleMemory } from '../../operators/ruleSet.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { CxEvent } from '../../operators/types.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const TZ = 'Asia/Shanghai';
/** 2024-03-01T00:00:00Z, a UTC day boundary. */
const T0 = Date.UTC(2024, 2, 1);
const noon = (d: number): number => T0 + d * DAY + 12 * HOUR;

let seq = 0;
function ev(type: string, ts: number, extra: Partial<CxEvent> = {}): CxEvent {
  seq++;
  return { id: `e${seq}`, ts, customer: 'x', type, channel: 'web', ...extra };
}

function stateOf(customer: string, events: CxEvent[]): CustomerState {
  const s = newCustomerState(customer);
  for (const e of events) updateProfile(s, e, TZ);
  return s;
}

function merged(a: CustomerState, b: CustomerState): CustomerState {
  const into = structuredClone(a);
  const fromCopy = structuredClone(b);
  mergeStates(into, b);
  expect(b).toEqual(fromCopy); // `from` is only read
  return into;
}

/** A keyed day bucket as sorted (day, key, count) triples: the order of keys within a day is not compared. */
function triples(b: { d: number[]; k: string[]; n: number[] }): string[] {
  return b.d.map((d, i) => `${d}|${b.k[i]}|${b.n[i]}`).sort();
}

function expectDaysSorted(b: { d: number[]; k?: string[] }): void {
  for (let i = 1; i < b.d.length; i++) expect(b.d[i]!).toBeGreaterThanOrEqual(b.d[i - 1]!);
  const seen = new Set(b.d.map((d, i) => `${d}|${b.k?.[i] ?? ''}`));
  expect(seen.size).toBe(b.d.length);
}

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

const eventArb = fc.record({
  type: fc.constantFrom('message', 'message', 'page_view', 'order', 'complaint', 'add_to_cart', 'call'),
  t: fc.oneof(
    { weight: 9, arbitrary: fc.integer({ min: 0, max: 60 * DAY }) },
    { weight: 1, arbitrary: fc.integer({ min: -400 * DAY, max: -1 }) },
  ),
  channel: fc.constantFrom('web', 'app', 'phone', 'wechat'),
  from: fc.constantFrom(undefined, 'customer', 'agent'),
  category: opt(fc.constantFrom('shoes', 'bags', 'hats', 'toys')),
  sentiment: opt(fc.integer({ min: -1000, max: 1000 }).map((x) => x / 1000)),
  amount: opt(fc.integer({ min: 0, max: 300_000 }).map((c) => c / 100)),
  region: opt(fc.constantFrom('north', 'south', 'east')),
  tz: fc.constantFrom('UTC', 'Asia/Tokyo', 'America/New_York'),
  session: opt(fc.constantFrom('s1', 's2', 's3')),
  recognized: opt(fc.boolean()),
  toB: fc.boolean(),
});

describe('mergeStates: two keys merged = one customer with all events (time order)', () => {
  it('profile and raw windows match', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(eventArb, { selector: (e) => e.t, maxLength: 80 }),
        fc.constantFrom(0, 3 * DAY + 5, 20 * DAY, 400 * DAY),
        (raw, later) => {
          const events = raw
            .map((r, i) => {
              const e: CxEvent = {
                id: `e${i}`,
                ts: T0 + r.t,
                customer: 'x',
                type: r.type,
                channel: r.channel,
              };
              // Every event has a tz: without one an event takes its key's last tz, which differs per key.
              e.tz = r.tz;
              if (r.region !== undefined) e.region = r.region;
              if (r.session !== undefined) e.session = r.session;
              if (r.type === 'message') {
                if (r.from !== undefined) e.from = r.from;
                if (r.sentiment !== undefined) e.sentiment = r.sentiment;
                if (r.recognized !== undefined) e.recognized = r.recognized;
              }
              if (r.type === 'page_view' && r.category !== undefined) e.category = r.category;
              if (r.type === 'order') {
                if (r.amount !== undefined) e.amount = r.amount;
                if (i % 2 === 0) e.orderId = `o${i}`;
              }
              return { e, toB: r.toB };
            })
            .sort((x, y) => x.e.ts - y.e.ts);
          const all = stateOf(
            'a',
            events.map((x) => x.e),
          );
          const a = stateOf(
            'a',
            events.filter((x) => !x.toB).map((x) => x.e),
          );
          const b = stateOf(
            'b',
            events.filter((x) => x.toB).map((x) => x.e),
          );
          const m = merged(a, b);

          expect(m.customer).toBe('a');
          for (const k of ['firstSeen', 'lastSeen', 'region', 'tz', 'orders', 'spendCents'] as const)
            expect(m[k], k).toEqual(all[k]);
          for (const k of ['firstOrderAt', 'lastOrderAt', 'lastOrderId', 'lastOrderAmount'] as const)
            expect(m[k], k).toEqual(all[k]);
          for (const k of [
            'firstOccasionAt',
            'firstOccasionDay',
            'lastOccasionAt',
            'lastOccasionDay',
          ] as const)
            expect(m[k], k).toEqual(all[k]);
          expect(m.sentimentLast).toEqual(all.sentimentLast);
          expect(m.sentimentLastTs).toEqual(all.sentimentLastTs);
          expect(m.orderTs).toEqual(all.orderTs);
          expect(m.orderCents).toEqual(all.orderCents);
          expect(m.activeHours).toEqual(all.activeHours);
          expect(m.negatives).toEqual(all.negatives);
          expect(m.complaints).toEqual(all.complaints);
          expect(triples(m.contacts)).toEqual(triples(all.contacts));
          expect(triples(m.views)).toEqual(triples(all.views));
          expectDaysSorted(m.contacts);
          expectDaysSorted(m.views);
          const lastContact = (s: CustomerState) =>
            Object.fromEntries(s.lastContactChannel.map((c, i) => [c, s.lastContactTs[i]]));
          expect(lastContact(m)).toEqual(lastContact(all));
          // Fewer than 21 sentiments in all: the ring holds all of them, in some order.
          if (all.sentiments.length < 20 || (a.sentiments.length === 0 && b.sentiments.length === 0))
            expect([...m.sentiments].sort()).toEqual([...all.sentiments].sort());

          const lastSeen = all.lastSeen ?? T0;
          for (const now of [lastSeen, lastSeen + later]) {
            const pm = profileOf(m, now);
            const pa = profileOf(all, now);
            for (const k of [
              'orders',
              'spend',
              'firstSeen',
              'lastSeen',
              'orders365d',
              'spend365d',
              'spend90d',
              'spend30d',
              'lastOrderAt',
              'lastOrderId',
              'lastOrderAmount',
              'recencyDays',
              'activeHours',
              'categoryViews30d',
              'negatives7d',
              'complaints30d',
              'preferredChannel',
              'region',
              'tier',
              'rfm',
              'sentimentLast',
            ] as const)
              expect(pm[k], k).toEqual(pa[k]);
            if (all.sentiments.length < 20) expect(pm.sentimentAvg).toBeCloseTo(pa.sentimentAvg ?? 0, 9);
            // Occasions: never fewer than the true count (shared days may count twice).
            expect(m.occasions).toBeGreaterThanOrEqual(all.occasions);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('mergeStates: examples', () => {
  it('merging into or from an empty state gives the other state', () => {
    const s = stateOf('a', [
      ev('order', noon(1), { amount: 10 }),
      ev('message', noon(2), { sentiment: -0.5 }),
    ]);
    expect(merged(s, newCustomerState('b'))).toEqual(s);
    expect(merged(newCustomerState('b'), s)).toEqual({ ...s, customer: 'b' });
  });

  it('occasions: a first or latest occasion day both keys ordered on counts once', () => {
    // a: days 1, 5, 9; b: days 9, 12 → 1, 5, 9, 12
    const a = stateOf(
      'a',
      [1, 5, 9].map((d) => ev('order', noon(d), { amount: 1 })),
    );
    const b = stateOf(
      'b',
      [9, 12].map((d) => ev('order', noon(d) - HOUR, { amount: 1 })),
    );
    const m = merged(a, b);
    expect(m.occasions).toBe(4);
    expect(m.firstOccasionAt).toBe(noon(1));
    expect(m.lastOccasionAt).toBe(noon(12) - HOUR);
    // both on days 1 and 9 (each side's first and latest)
    const c = stateOf(
      'c',
      [1, 9].map((d) => ev('order', noon(d) - HOUR, { amount: 1 })),
    );
    const mc = merged(a, c);
    expect(mc.occasions).toBe(3);
    expect(mc.firstOccasionAt).toBe(noon(1) - HOUR);
    expect(mc.lastOccasionAt).toBe(noon(9) - HOUR);
    // one side with a single day equal to the other's first and latest
    const one = stateOf('d', [ev('order', noon(3), { amount: 1 })]);
    const two = stateOf('e', [ev('order', noon(3) + HOUR, { amount: 1 })]);
    expect(merged(one, two).occasions).toBe(1);
  });

  it('occasions: a shared day in the middle of both histories counts twice (not exact by design)', () => {
    const a = stateOf(
      'a',
      [1, 5, 9].map((d) => ev('order', noon(d), { amount: 1 })),
    );
    const b = stateOf(
      'b',
      [3, 5, 7].map((d) => ev('order', noon(d) + HOUR, { amount: 1 })),
    );
    const all = stateOf(
      'x',
      [1, 3, 5, 5, 7, 9].map((d) => ev('order', noon(d), { amount: 1 })),
    );
    expect(all.occasions).toBe(5);
    expect(merged(a, b).occasions).toBe(6);
  });

  it('sentiments: the older side first, the last 20 kept as a ring updateProfile continues', () => {
    // a: 15 messages on days 1..15; b: 10 messages on days 20..29 (b is newer)
    const aEvents = Array.from({ length: 15 }, (_, i) =>
      ev('message', noon(1 + i), { sentiment: -(i + 1) / 100 }),
    );
    const bEvents = Array.from({ length: 10 }, (_, i) =>
      ev('message', noon(20 + i), { sentiment: (i + 1) / 100 }),
    );
    const a = stateOf('a', aEvents);
    const b = stateOf('b', bEvents);
    const all = stateOf('x', [...aEvents, ...bEvents]);
    for (const m of [merged(a, b), (() => merged(b, a))()]) {
      expect(profileOf(m, noon(30)).sentimentAvg).toBe(profileOf(all, noon(30)).sentimentAvg);
      expect(m.sentimentLast).toBe(0.1);
      // The next message replaces the oldest kept one, as in the single customer's ring.
      const next = ev('message', noon(31), { sentiment: 0.9 });
      const m2 = structuredClone(m);
      const all2 = structuredClone(all);
      updateProfile(m2, next, TZ);
      updateProfile(all2, next, TZ);
      expect(profileOf(m2, noon(31)).sentimentAvg).toBeCloseTo(profileOf(all2, noon(31)).sentimentAvg!, 12);
      expect([...m2.sentiments].sort()).toEqual([...all2.sentiments].sort());
    }
  });

  it('sentiments: interleaved in time, the older side counts as earlier (not exact by design)', () => {
    const aEvents = Array.from({ length: 20 }, (_, i) => ev('message', noon(2 * i), { sentiment: -0.5 }));
    const bEvents = Array.from({ length: 20 }, (_, i) => ev('message', noon(2 * i + 1), { sentiment: 0.5 }));
    const m = merged(stateOf('a', aEvents), stateOf('b', bEvents));
    // b's last message is newer: b's 20 are the last 20; one customer would keep 10 of each.
    expect(m.sentiments).toEqual(new Array(20).fill(500));
    expect(m.sentimentNext).toBe(0);
    expect(
      stateOf(
        'x',
        [...aEvents, ...bEvents].sort((x, y) => x.ts - y.ts),
      ).sentiments.sort(),
    ).toEqual([...new Array(10).fill(-500), ...new Array(10).fill(500)]);
  });

  it('session and unrecognized streak come from the key seen last (tie: the canonical)', () => {
    const a = stateOf('a', [ev('message', noon(1), { session: 'sa', recognized: false })]);
    const b = stateOf('b', [
      ev('message', noon(2), { session: 'sb', recognized: false }),
      ev('message', noon(2) + 1, { session: 'sb', recognized: false }),
    ]);
    expect(merged(a, b)).toMatchObject({ session: 'sb', unrecognizedStreak: 2 });
    expect(merged(b, a)).toMatchObject({ session: 'sb', unrecognizedStreak: 2 });
    const tie = stateOf('c', [ev('message', noon(1), { session: 'sc' })]);
    expect(merged(a, tie)).toMatchObject({ session: 'sa', unrecognizedStreak: 1 });
    expect(merged(tie, a)).toMatchObject({ session: 'sc', unrecognizedStreak: 0 });
    // The later key never had a session: the other's is kept.
    const browsing = stateOf('d', [ev('page_view', noon(5), { category: 'shoes' })]);
    expect(merged(browsing, a)).toMatchObject({ session: 'sa', unrecognizedStreak: 0 });
    expect(merged(a, browsing)).toMatchObject({ session: 'sa', unrecognizedStreak: 0 });
  });

  it('day buckets: the absorbed key counts as later within a day, as updateProfile orders keys', () => {
    const aEvents = [
      ev('page_view', noon(1), { category: 'a' }),
      ev('page_view', noon(1) + 1, { category: 'b' }),
    ];
    const bEvents = [
      ev('page_view', noon(1) + 2, { category: 'b' }),
      ev('page_view', noon(1) + 3, { category: 'c' }),
    ];
    const m = merged(stateOf('a', aEvents), stateOf('b', bEvents));
    expect(m.views).toEqual(stateOf('x', [...aEvents, ...bEvents]).views);
    expect(m.views.k).toEqual(['c', 'b', 'a']);
    expect(m.views.n).toEqual([1, 2, 1]);
  });

  it('orders at the same time: the canonical key first; the later last order gives id and amount', () => {
    const a = stateOf('a', [
      ev('order', noon(2), { amount: 1, orderId: 'A1' }),
      ev('order', noon(4), { amount: 2 }),
    ]);
    const b = stateOf('b', [
      ev('order', noon(2), { amount: 3 }),
      ev('order', noon(3), { amount: 4, orderId: 'B2' }),
    ]);
    const m = merged(a, b);
    expect(m.orderTs).toEqual([noon(2), noon(2), noon(3), noon(4)]);
    expect(m.orderCents).toEqual([100, 300, 400, 200]);
    expect(merged(b, a).orderCents).toEqual([300, 100, 400, 200]);
    expect(merged(b, a)).toMatchObject({ lastOrderAt: noon(4), lastOrderAmount: 2, firstOrderAt: noon(2) });
    const tie = stateOf('c', [ev('order', noon(4), { amount: 9, orderId: 'C' })]);
    expect(merged(a, tie).lastOrderAmount).toBe(2);
    expect(merged(tie, a)).toMatchObject({ lastOrderId: 'C', lastOrderAmount: 9 });
  });

  it('windows are pruned relative to the merged last seen', () => {
    const a = stateOf('a', [
      ev('complaint', noon(0)),
      ev('page_view', noon(0), { category: 'old' }),
      ev('order', noon(0), { amount: 5 }),
    ]);
    const b = stateOf('b', [ev('order', noon(0) + 366 * DAY, { amount: 7 })]);
    const m = merged(a, b);
    expect(m.complaints.d).toEqual([]);
    expect(m.views.d).toEqual([]);
    expect(m.orderTs).toEqual([noon(0) + 366 * DAY]);
    expect(m.orders).toBe(2);
    expect(m.spendCents).toBe(1200);
  });
});

describe('mergeFired', () => {
  it('keeps the later mark per rule and key, and a session from either mark', () => {
    const into: Record<string, FireMarks> = {
      r1: { '': { at: 100, session: 's1' }, k1: { at: 50 } },
      r2: { '': { at: 10 } },
    };
    const from: Record<string, FireMarks> = {
      r1: { '': { at: 90, session: 's9' }, k1: { at: 70, session: 's2' }, k2: { at: 5 } },
      r3: { x: { at: 1 } },
      r2: { '': { at: 10, session: 'tie' } },
    };
    const copy = structuredClone(from);
    mergeFired(into, from);
    expect(into).toEqual({
      r1: { '': { at: 100, session: 's1' }, k1: { at: 70, session: 's2' }, k2: { at: 5 } },
      r2: { '': { at: 10, session: 'tie' } },
      r3: { x: { at: 1 } },
    });
    expect(from).toEqual(copy);
    into.r3!.x!.at = 2;
    expect(from.r3!.x!.at).toBe(1); // copied, not shared
  });

  it('a later mark without a session keeps the other mark session', () => {
    const into: Record<string, FireMarks> = { r: { '': { at: 5, session: 'chat' } } };
    mergeFired(into, { r: { '': { at: 9 } } });
    expect(into).toEqual({ r: { '': { at: 9, session: 'chat' } } });
  });
});

describe('mergeCaps', () => {
  it('unions delivery times per group, sorted, keeping both of equal times', () => {
    const into: CapMemory = { promo: [10, 30], other: [5] };
    mergeCaps(into, { promo: [20, 30, 40], news: [7] });
    expect(into).toEqual({ promo: [10, 20, 30, 30, 40], other: [5], news: [7] });
  });
});

describe('window helpers', () => {
  it('mergeTimes sorts and keeps the newest max', () => {
    expect(mergeTimes([3, 1], [2, 5, 1])).toEqual([1, 1, 2, 3, 5]);
    expect(mergeTimes([1, 4], [2, 3, 5], 3)).toEqual([3, 4, 5]);
    expect(mergeTimes(undefined, undefined)).toEqual([]);
  });

  it('mergeKeyedTimes merges per key, into keys first', () => {
    const a: KeyedTimes = { keys: ['x', 'y'], times: [[1, 3], [2]] };
    const b: KeyedTimes = { keys: ['z', 'x'], times: [[9], [2]] };
    expect(mergeKeyedTimes(a, b)).toEqual({ keys: ['x', 'y', 'z'], times: [[1, 2, 3], [2], [9]] });
    expect(a).toEqual({ keys: ['x', 'y'], times: [[1, 3], [2]] });
    expect(mergeKeyedTimes(undefined, b)).toEqual(b);
  });
});

function patternOf(spec: RuleSpec): Pattern {
  return compileRules([spec]).rules[0]!.pattern;
}

describe('Pattern.mergeMemory', () => {
  it('count: counted, vetoes and anchors per key, so the merged window counts both keys', () => {
    const p = patternOf({
      id: 'cnt',
      count: { of: 'view', atLeast: 3, within: '10m', by: 'event.category' },
    });
    const into = { counted: { keys: ['shoes'], times: [[1000, 3000]] }, anchors: [5] };
    const from = {
      counted: { keys: ['bags', 'shoes'], times: [[1500], [2000]] },
      vetoes: { keys: ['bags'], times: [[10]] },
    };
    const m = p.mergeMemory!(into, from) as { counted: KeyedTimes; vetoes: KeyedTimes; anchors: number[] };
    expect(m).toEqual({
      counted: { keys: ['shoes', 'bags'], times: [[1000, 2000, 3000], [1500]] },
      vetoes: { keys: ['bags'], times: [[10]] },
      anchors: [5],
    });
    expect(countFires(m.counted, m.vetoes, m.anchors, 'shoes', 3000, 600_000, 3, false)).toBe(true);
    expect(countFires(into.counted, undefined, undefined, 'shoes', 3000, 600_000, 3, false)).toBe(true);
    expect(from.counted.times).toEqual([[1500], [2000]]);
  });

  it('sequence: both keys firsts', () => {
    const p = patternOf({ id: 'seq', sequence: { first: 'complaint', followedBy: 'rating', within: '1d' } });
    expect(p.mergeMemory!({ firsts: [10, 30] }, { firsts: [20] })).toEqual({ firsts: [10, 20, 30] });
    expect(p.mergeMemory!({}, { firsts: [20] })).toEqual({ firsts: [20] });
  });

  it('streak: the longer run', () => {
    const p = patternOf({ id: 'stk', streak: { of: 'message', where: 'true', count: 3 } });
    expect(p.mergeMemory!({ length: 1 }, { length: 2 })).toEqual({ length: 2 });
    expect(p.mergeMemory!({ length: 4 }, { length: 0 })).toEqual({ length: 4 });
    expect(p.mergeMemory!({}, { length: 2 })).toEqual({ length: 2 });
  });

  it('crossing: crossed on either key', () => {
    const p = patternOf({ id: 'vip', crosses: 'profile.spend >= 1000.0' });
    expect(p.mergeMemory!({ crossed: false }, { crossed: true })).toEqual({ crossed: true });
    expect(p.mergeMemory!({ crossed: true }, {})).toEqual({ crossed: true });
    expect(p.mergeMemory!({ crossed: false }, { crossed: false })).toEqual({ crossed: false });
  });

  it('purchaseCycle: the later reminded order', () => {
    const p = patternOf({ id: 'cyc', purchaseCycle: {} });
    expect(p.mergeMemory!({ remindedFor: 5 }, { remindedFor: 9 })).toEqual({ remindedFor: 9 });
    expect(p.mergeMemory!({ remindedFor: 9 }, { remindedFor: 5 })).toEqual({ remindedFor: 9 });
    expect(p.mergeMemory!({}, { remindedFor: 5 })).toEqual({ remindedFor: 5 });
  });

  it('patterns without memory have no mergeMemory', () => {
    for (const spec of [
      { id: 'ev' },
      { id: 'abs', absence: { after: 'add_to_cart', missing: 'order', within: '10m' } },
      { id: 'ina', inactivity: { for: '30d' } },
    ] as RuleSpec[])
      expect(patternOf(spec).mergeMemory).toBeUndefined();
  });
});

describe('mergeMemories', () => {
  it('merges per rule with its pattern, copies memory only the absorbed key has, keeps the canonical otherwise', () => {
    const seq = patternOf({
      id: 'seq',
      sequence: { first: 'complaint', followedBy: 'rating', within: '1d' },
    });
    const patterns: Record<string, Pattern> = {
      seq,
      plain: { kind: 'x', types: undefined, lane: 'arrival', onEvent() {} },
    };
    const into: RuleMemory = { seq: { firsts: [1] }, plain: { a: 1 }, gone: { g: 1 } };
    const from: RuleMemory = { seq: { firsts: [2] }, plain: { a: 2 }, gone: { g: 2 }, only: { o: [1] } };
    mergeMemories(into, from, (id) => patterns[id]);
    expect(into).toEqual({ seq: { firsts: [1, 2] }, plain: { a: 1 }, gone: { g: 1 }, only: { o: [1] } });
    (into.only as { o: number[] }).o.push(2);
    expect(from.only).toEqual({ o: [1] });
  });
});
