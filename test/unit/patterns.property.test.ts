/**
 * Property tests of the pattern operators through the PartitionProcessor.
 *
 * 1. Arrival order does not matter within the allowed lateness: streams whose events arrive out of
 *    time order by less than the lateness give exactly what a small declarative model computes
 *    from the events sorted by time (the order Flink CEP matches in).
 * 2. Late events (beyond the lateness) follow the documented rules: they may cancel an absence
 *    timer they fall inside, they are remembered by sequence and count windows, they start and
 *    complete nothing.
 * Reference models keep everything in plain arrays and re-scan them.
 */
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { RuleSpec } from '../../operators/rules.js';

const T = 10_000; // pattern window
const L = 2_000; // allowed lateness
const BASE = Date.UTC(2026, 0, 5, 4); // 12:00 Shanghai: no quiet hours involved

interface Ev {
  seq: number;
  id: string;
  c: string;
  type: string;
  ts: number;
}

/**
 * Events at a pace with gaps around the pattern window, each arriving up to the lateness after its
 * time: the stream (arrival order) is out of time order, but no event is late.
 */
const onTimeArb = (types: string[]) =>
  fc
    .array(
      fc.record({
        c: fc.constantFrom('c0', 'c1', 'c2'),
        type: fc.constantFrom(...types),
        gap: fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.constantFrom(0, 1, T - 1, T, T + 1, 3 * T)),
        delay: fc.integer({ min: 0, max: L - 1 }),
      }),
      { maxLength: 60 },
    )
    .map((raw) => {
      let t = BASE;
      const timed = raw.map((r, i) => {
        t += r.gap;
        return { i, c: r.c, type: r.type, ts: t, arrives: t + r.delay };
      });
      timed.sort((a, b) => a.arrives - b.arrives || a.i - b.i);
      return timed.map((e, k): Ev => ({ seq: k + 1, id: `e${e.i}`, c: e.c, type: e.type, ts: e.ts }));
    });

/** The processor's trigger ids for the stream, after event time reached `end`. */
function actual(spec: RuleSpec, events: Ev[], end: number): string[] {
  const p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules: [spec], allowedLatenessMs: L });
  const ids: string[] = [];
  for (const e of events) {
    const out = p.applyBatch(
      [e.seq],
      [`cx.events.web.${e.type}.${e.c}`],
      () => pack({ id: e.id, ts: e.ts, customer: e.c, type: e.type, channel: 'web' }),
      0,
    );
    ids.push(...out.triggers.map((t) => t.id));
  }
  ids.push(...p.advanceTo(end).triggers.map((t) => t.id));
  return ids.sort();
}

/** Each customer's events in time order (stream order on equal times), as the ordered lane sees them. */
function sortedByCustomer(events: Ev[]): Map<string, Ev[]> {
  const by = new Map<string, Ev[]>();
  for (const e of [...events].sort((a, b) => a.ts - b.ts || a.seq - b.seq)) {
    if (!by.has(e.c)) by.set(e.c, []);
    by.get(e.c)!.push(e);
  }
  return by;
}

const endOf = (events: Ev[]) => Math.max(BASE, ...events.map((e) => e.ts)) + 2 * T;

describe('patterns see events in time order within the allowed lateness', () => {
  it('absence: A not followed by B within T (inclusive); an A inside the window restarts it', () => {
    const spec: RuleSpec = { id: 'abs', absence: { after: 'A', missing: 'B', within: '10s' } };
    fc.assert(
      fc.property(onTimeArb(['A', 'B', 'X']), fc.integer({ min: 0, max: 3 * T }), (events, extra) => {
        const end = Math.max(BASE, ...events.map((e) => e.ts)) + extra;
        const fired: string[] = [];
        for (const [c, list] of sortedByCustomer(events)) {
          let pending: { anchor: number; due: number } | null = null;
          for (const e of list) {
            // a timer due before this event has fired by the time it is seen
            if (pending && pending.due < e.ts) {
              fired.push(`abs:${c}:t${pending.due}`);
              pending = null;
            }
            if (e.type === 'B' && pending && pending.anchor <= e.ts && e.ts <= pending.due) pending = null;
            if (e.type === 'A') pending = { anchor: e.ts, due: e.ts + T };
          }
          if (pending && pending.due <= end) fired.push(`abs:${c}:t${pending.due}`);
        }
        expect(actual(spec, events, end)).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('sequence: B fires when an A lies within T before it (time order; equal times by stream order)', () => {
    const spec: RuleSpec = { id: 'seq', sequence: { first: 'A', followedBy: 'B', within: '10s' } };
    fc.assert(
      fc.property(onTimeArb(['A', 'B', 'X']), (events) => {
        const fired: string[] = [];
        for (const [c, list] of sortedByCustomer(events)) {
          const as: number[] = [];
          for (const e of list) {
            if (e.type === 'B' && as.some((a) => a <= e.ts && a >= e.ts - T)) fired.push(`seq:${c}:${e.id}`);
            if (e.type === 'A') as.push(e.ts);
          }
        }
        expect(actual(spec, events, endOf(events))).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('count: at least 3 X within T (sliding), none when a Y falls in the window', () => {
    const spec: RuleSpec = { id: 'cnt', count: { of: 'X', atLeast: 3, within: '10s', unless: 'Y' } };
    fc.assert(
      fc.property(onTimeArb(['X', 'Y', 'Z']), (events) => {
        const fired: string[] = [];
        for (const [c, list] of sortedByCustomer(events)) {
          const xs: number[] = [];
          const ys: number[] = [];
          for (const e of list) {
            if (e.type === 'Y') ys.push(e.ts);
            if (e.type !== 'X') continue;
            xs.push(e.ts);
            const inWindow = (t: number) => t > e.ts - T && t <= e.ts;
            if (xs.filter(inWindow).length >= 3 && !ys.some(inWindow)) fired.push(`cnt:${c}:${e.id}`);
          }
        }
        expect(actual(spec, events, endOf(events))).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('streak: the third consecutive A in time order; a B resets it', () => {
    const spec: RuleSpec = { id: 'stk', streak: { of: 'A', where: 'true', count: 3, resetOn: 'B' } };
    fc.assert(
      fc.property(onTimeArb(['A', 'B', 'X']), (events) => {
        const fired: string[] = [];
        for (const [c, list] of sortedByCustomer(events)) {
          let n = 0;
          for (const e of list) {
            if (e.type === 'B') n = 0;
            if (e.type === 'A' && ++n === 3) fired.push(`stk:${c}:${e.id}`);
          }
        }
        expect(actual(spec, events, endOf(events))).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('inactivity: fires T after each event not followed by another within T (an event exactly at T continues the spell)', () => {
    const spec: RuleSpec = { id: 'ina', inactivity: { for: '10s' } };
    fc.assert(
      fc.property(onTimeArb(['A', 'X']), fc.integer({ min: 0, max: 3 * T }), (events, extra) => {
        const end = Math.max(BASE, ...events.map((e) => e.ts)) + extra;
        const fired: string[] = [];
        for (const [c, list] of sortedByCustomer(events)) {
          list.forEach((e, i) => {
            const due = e.ts + T;
            const next = list[i + 1];
            if ((next === undefined || next.ts > due) && due <= end && (next?.ts ?? due) !== e.ts)
              fired.push(`ina:${c}:t${due}`);
          });
        }
        // equal times: one spell, one firing
        expect(actual(spec, events, end)).toEqual([...new Set(fired)].sort());
      }),
      { numRuns: 300 },
    );
  });
});

describe('late events (beyond the allowed lateness)', () => {
  const feed = (spec: RuleSpec, events: Array<[c: string, type: string, ts: number]>, end: number) =>
    actual(
      spec,
      events.map(([c, type, ts], i) => ({ seq: i + 1, id: `e${i + 1}`, c, type, ts })),
      end,
    );

  it('absence: a late B inside the pending window still cancels it; a late A starts nothing', () => {
    const spec: RuleSpec = { id: 'abs', absence: { after: 'A', missing: 'B', within: '10s' } };
    // A at 0; another customer moves the watermark to 5 s; B at 1 s arrives late (4 s behind) and cancels.
    expect(
      feed(
        spec,
        [
          ['c1', 'A', BASE],
          ['c2', 'X', BASE + 5_000 + L],
          ['c1', 'B', BASE + 1_000],
        ],
        BASE + 60_000,
      ),
    ).toEqual([]);
    // A late A (3 s behind the watermark) arms no timer.
    expect(
      feed(
        spec,
        [
          ['c2', 'X', BASE + 5_000 + L],
          ['c1', 'A', BASE + 2_000],
        ],
        BASE + 60_000,
      ),
    ).toEqual([]);
  });

  it('sequence: a late A is remembered for a later B; a late B completes nothing', () => {
    const spec: RuleSpec = { id: 'seq', sequence: { first: 'A', followedBy: 'B', within: '10s' } };
    expect(
      feed(
        spec,
        [
          ['c2', 'X', BASE + 5_000 + L],
          ['c1', 'A', BASE + 1_000],
          ['c1', 'B', BASE + 6_000],
        ],
        BASE + 60_000,
      ),
    ).toEqual(['seq:c1:e3']);
    expect(
      feed(
        spec,
        [
          ['c1', 'A', BASE],
          ['c2', 'X', BASE + 5_000 + L],
          ['c1', 'B', BASE + 1_000],
        ],
        BASE + 60_000,
      ),
    ).toEqual([]);
  });

  it('count: a late X counts toward a later firing but fires nothing itself', () => {
    const spec: RuleSpec = { id: 'cnt', count: { of: 'X', atLeast: 3, within: '10s' } };
    const events: Array<[string, string, number]> = [
      ['c1', 'X', BASE],
      ['c1', 'X', BASE + 4_000],
      ['c2', 'Z', BASE + 5_000 + L],
      ['c1', 'X', BASE + 1_000], // late: the third X, but it does not fire
    ];
    expect(feed(spec, events, BASE + 60_000)).toEqual([]);
    expect(feed(spec, [...events, ['c1', 'X', BASE + 8_000]], BASE + 60_000)).toEqual(['cnt:c1:e5']);
  });
});
