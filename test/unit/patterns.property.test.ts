/**
 * Property tests of the pattern operators through the PartitionProcessor: random interleavings of
 * three customers' events, out-of-order times (some within, some beyond the allowed lateness) and
 * duplicate deliveries (a sequence number sent again after a restart from a checkpoint), checked against small reference models that
 * keep everything in plain arrays and re-scan them.
 */
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { RuleSpec } from '../../operators/rules.js';

const T = 10_000; // pattern window
const L = 2_000; // allowed lateness
const BASE = Date.UTC(2026, 0, 5, 4); // 12:00 Shanghai: no quiet hours involved
const END = BASE + 10_000_000;

interface Ev {
  seq: number;
  id: string;
  c: string;
  type: string;
  ts: number;
}

/** A stream: events at a steady pace with jitter (late ones), some deliveries repeated. */
const streamArb = (types: string[]) =>
  fc
    .array(
      fc.record({
        c: fc.constantFrom('c0', 'c1', 'c2'),
        type: fc.constantFrom(...types),
        jitter: fc.integer({ min: -6_000, max: 1_000 }),
        gap: fc.integer({ min: 0, max: 4_000 }),
        dup: fc.integer({ min: 0, max: 9 }),
      }),
      { maxLength: 60 },
    )
    .map((raw) => {
      const out: Ev[] = [];
      let t = BASE;
      raw.forEach((r, i) => {
        t += r.gap;
        out.push({ seq: i + 1, id: `e${i + 1}`, c: r.c, type: r.type, ts: t + r.jitter });
        // Redelivery of an earlier message (same seq): must be skipped.
        if (r.dup === 0 && i > 0) out.push(out[Math.floor(i / 2)]!);
      });
      return out;
    });

/** Trigger ids the processor produces for the stream, after a final advance of the watermark. */
function actual(spec: RuleSpec, events: Ev[]): string[] {
  const make = () => new PartitionProcessor({ partition: 0, rules: [spec], allowedLatenessMs: L });
  let p = make();
  const ids: string[] = [];
  let last = 0;
  for (const e of events) {
    if (e.seq <= last) {
      // A redelivery happens after a restart: the state comes back from its checkpoint (taken here).
      const restored = make();
      restored.restore(unpack(pack(p.snapshot())));
      p = restored;
    }
    last = Math.max(last, e.seq);
    const out = p.applyBatch(
      [e.seq],
      [`cx.events.web.${e.type}.${e.c}`],
      () => pack({ id: e.id, ts: e.ts, customer: e.c, type: e.type, channel: 'web' }),
      0,
    );
    ids.push(...out.triggers.map((t) => t.id));
  }
  ids.push(...p.advanceTo(END).triggers.map((t) => t.id));
  return ids.sort();
}

/** Runs a reference model: `step(e, late, wm)` per new event, `due(wm)` before each and at the end. */
function reference(
  events: Ev[],
  step: (e: Ev, late: boolean, wm: number) => void,
  fireDue: (wm: number) => void,
): void {
  let last = 0;
  let max = Number.NEGATIVE_INFINITY;
  let wm = Number.NEGATIVE_INFINITY;
  for (const e of events) {
    if (e.seq <= last) continue;
    last = e.seq;
    const late = e.ts < wm;
    max = Math.max(max, e.ts);
    wm = Math.max(wm, max - L);
    fireDue(wm);
    step(e, late, wm);
  }
  fireDue(END);
}

describe('pattern operators against reference models', () => {
  it('absence: A not followed by B within T, restarted by a newer A', () => {
    const spec: RuleSpec = { id: 'abs', absence: { after: 'A', missing: 'B', within: '10s' } };
    fc.assert(
      fc.property(streamArb(['A', 'B', 'X']), (events) => {
        const fired: string[] = [];
        const pending = new Map<string, { a: number; due: number }>();
        const lastA = new Map<string, number>();
        const bs = new Map<string, number[]>();
        reference(
          events,
          (e, _late, wm) => {
            if (e.type === 'B') {
              const p = pending.get(e.c);
              if (p && p.a <= e.ts && e.ts <= p.due) pending.delete(e.c);
              bs.set(e.c, [...(bs.get(e.c) ?? []), e.ts]);
            }
            if (e.type === 'A' && e.ts > (lastA.get(e.c) ?? Number.NEGATIVE_INFINITY)) {
              lastA.set(e.c, e.ts);
              const due = e.ts + T;
              const answered = (bs.get(e.c) ?? []).some((b) => b >= e.ts && b <= due);
              if (due > wm && !answered) pending.set(e.c, { a: e.ts, due });
              else pending.delete(e.c);
            }
          },
          (wm) => {
            for (const [c, p] of [...pending]) {
              if (p.due <= wm) {
                fired.push(`abs:${c}:t${p.due}`);
                pending.delete(c);
              }
            }
          },
        );
        expect(actual(spec, events)).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('sequence: B fires when an A lies within T before it (not for late Bs)', () => {
    const spec: RuleSpec = { id: 'seq', sequence: { first: 'A', followedBy: 'B', within: '10s' } };
    fc.assert(
      fc.property(streamArb(['A', 'B', 'X']), (events) => {
        const fired: string[] = [];
        const as: Ev[] = [];
        reference(
          events,
          (e, late) => {
            if (e.type === 'B' && !late && as.some((a) => a.c === e.c && a.ts <= e.ts && a.ts >= e.ts - T))
              fired.push(`seq:${e.c}:${e.id}`);
            if (e.type === 'A') as.push(e);
          },
          () => {},
        );
        expect(actual(spec, events)).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('count: at least 3 X within T (sliding), not for late Xs', () => {
    const spec: RuleSpec = { id: 'cnt', count: { of: 'X', atLeast: 3, within: '10s' } };
    fc.assert(
      fc.property(streamArb(['X', 'Y']), (events) => {
        const fired: string[] = [];
        const xs: Ev[] = [];
        reference(
          events,
          (e, late) => {
            if (e.type !== 'X') return;
            xs.push(e);
            const n = xs.filter((x) => x.c === e.c && x.ts > e.ts - T && x.ts <= e.ts).length;
            if (!late && n >= 3) fired.push(`cnt:${e.c}:${e.id}`);
          },
          () => {},
        );
        expect(actual(spec, events)).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });

  it('inactivity: fires T after the newest event, once per silent spell; late events do not re-arm', () => {
    const spec: RuleSpec = { id: 'idle', inactivity: { for: '10s' } };
    fc.assert(
      fc.property(streamArb(['X', 'Y']), (events) => {
        const fired: string[] = [];
        const lastSeen = new Map<string, number>();
        const pending = new Map<string, number>();
        reference(
          events,
          (e, late, wm) => {
            const before = lastSeen.get(e.c) ?? Number.NEGATIVE_INFINITY;
            if (e.ts < before) return;
            lastSeen.set(e.c, e.ts);
            if (!late && e.ts + T > wm) pending.set(e.c, e.ts + T);
          },
          (wm) => {
            for (const [c, due] of [...pending]) {
              if (due <= wm) {
                fired.push(`idle:${c}:t${due}`);
                pending.delete(c);
              }
            }
          },
        );
        expect(actual(spec, events)).toEqual(fired.sort());
      }),
      { numRuns: 300 },
    );
  });
});
