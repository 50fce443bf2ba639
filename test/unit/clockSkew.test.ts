import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent } from '../../operators/types.js';
import { cxEvent } from '../harness/events.js';

const rules = loadRules(['config/rules.yaml']);
const T0 = Date.UTC(2026, 10, 20, 4, 0, 0); // 12:00 Asia/Shanghai: no quiet hours
const MIN = 60_000;

let seq = 0;
function apply(p: PartitionProcessor, events: CxEvent[], now: number) {
  const payloads = events.map((e) => pack(e));
  return p.applyBatch(
    events.map(() => ++seq),
    events.map((e) => `cx.events.${e.channel}.${e.type}.${e.customer}`),
    (i) => payloads[i]!,
    now,
  );
}
const ev = cxEvent;

describe('clock-skewed events (engine.maxFutureSkewMs)', () => {
  it('dead-letters an event too far ahead of the wall clock instead of moving the watermark and firing timers', () => {
    const p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules, maxFutureSkewMs: 5 * MIN });
    apply(p, [ev('a1', 'c1', 'add_to_cart', T0)], T0);
    p.advanceTo(T0); // the ordered lane arms the cart timer
    expect(p.pendingTimers).toBeGreaterThan(0);
    const watermark = p.currentWatermark;

    // a producer whose clock is an hour ahead: accepted, it would fire c1's 10-minute cart timer now
    const skewed = apply(p, [ev('f1', 'c2', 'page_view', T0 + 60 * MIN)], T0 + 1000);
    expect(skewed.rejects.map((r) => [r.seq, r.reason])).toEqual([
      [
        seq,
        `clock skew: ts ${T0 + 60 * MIN} is ${60 * MIN - 1000} ms ahead of the wall clock (engine.maxFutureSkewMs ${5 * MIN})`,
      ],
    ]);
    expect(skewed.events).toEqual([]);
    expect(skewed.triggers).toEqual([]);
    expect(p.currentWatermark).toBe(watermark);
    expect(p.customer('c2')).toBeUndefined();

    // within the allowed skew: applied as usual
    const near = apply(p, [ev('n1', 'c3', 'page_view', T0 + 4 * MIN)], T0);
    expect(near.rejects).toEqual([]);
    expect(near.events.map((r) => r.id)).toEqual(['n1']);

    // the cart timer fires when real event time reaches it, not before
    const later = apply(p, [ev('l1', 'c3', 'page_view', T0 + 11 * MIN)], T0 + 11 * MIN);
    expect(later.triggers.map((t) => [t.rule, t.customer, t.eventTime])).toEqual([
      ['cart_abandoned', 'c1', T0 + 10 * MIN],
    ]);
  });

  it('is off unless configured (callers that pass a non-wall-clock now, e.g. explain)', () => {
    const p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules });
    const out = apply(p, [ev('f2', 'c1', 'page_view', T0 + 24 * 60 * MIN)], 0);
    expect(out.rejects).toEqual([]);
    expect(out.events).toHaveLength(1);
  });
});

describe('events before engine.minEventTime (epoch seconds sent as milliseconds)', () => {
  it('dead-letters them with a reason that suggests milliseconds, and keeps state and watermark as they were', () => {
    const p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules, minEventTs: Date.UTC(2000, 0, 1) });
    apply(p, [ev('a1', 'c1', 'add_to_cart', T0)], T0);
    const watermark = p.currentWatermark;
    const seconds = Math.floor(T0 / 1000);
    const out = apply(p, [ev('s1', 'c2', 'order', seconds)], T0);
    expect(out.rejects.map((r) => r.reason)).toEqual([
      `ts ${seconds} is before 2000-01-01T00:00:00.000Z (engine.minEventTime); it looks like epoch seconds ` +
        `(${new Date(seconds * 1000).toISOString()}): send epoch milliseconds, ${seconds * 1000}`,
    ]);
    expect(out.events).toEqual([]);
    expect(p.customer('c2')).toBeUndefined();
    expect(p.currentWatermark).toBe(watermark);
  });
});
