import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { PartitionProcessor, SequenceError } from '../../operators/partitionProcessor.js';
import type { PartitionSnapshot } from '../../operators/partitionState.js';
import type { CxEvent } from '../../operators/types.js';

const rules = loadRules(['config/rules.yaml']);
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0); // 10:00 Asia/Shanghai
const MIN = 60_000;

function ev(id: string, customer: string, type: string, ts: number, extra: Partial<CxEvent> = {}): CxEvent {
  return { id, ts, customer, type, channel: 'app', ...extra };
}

/** Feeds events as msgpack with consecutive sequence numbers starting at `firstSeq`. */
function apply(p: PartitionProcessor, events: CxEvent[], firstSeq = 1, raw?: Uint8Array[]) {
  const payloads = raw ?? events.map((e) => pack(e));
  const subjects = events.map((e) => `cx.events.${e.channel}.${e.type}.${e.customer}`);
  const seqs = events.map((_, i) => firstSeq + i);
  return p.applyBatch(seqs, subjects, (i) => payloads[i]!, 1_000);
}

/**
 * What a processor's snapshot holds, decoded: each key group's position and its customers' entries
 * (the bytes themselves depend on the order in which shapes were first encoded).
 */
function contentOf(p: PartitionProcessor) {
  return p.snapshot().groups.map(({ kg, lastSeq, watermark, customers }) => ({
    kg,
    lastSeq,
    watermark,
    customers: new Map(customers.map(([c]) => [c, p.customer(c)])),
  }));
}

/** The customers of a snapshot, over its key-group sections. */
function customersOf(snapshot: PartitionSnapshot): string[] {
  return snapshot.groups.flatMap((g) => g.customers.map(([c]) => c));
}

describe('PartitionProcessor', () => {
  it('turns events into rows, triggers and due profiles, and rejects bad bytes with the reason', () => {
    const p = new PartitionProcessor({ partition: 3, keyGroups: 1, rules });
    const events = [
      ev('e1', 'c1', 'order', T0, { amount: 1500, orderId: 'o1' }),
      ev('e2', 'c1', 'session_start', T0 + 30_000, { session: 's1' }),
      ev('e3', 'c2', 'message', T0, { text: 'call me 13812345678' }),
    ];
    const raw: Uint8Array[] = events.map((e) => pack(e));
    raw.push(new TextEncoder().encode('not an event'));
    const out = apply(p, [...events, ev('x', 'c9', 'message', T0)], 1, raw);
    // the `partition` column is the event's key group (one key group here)
    expect(out.events.map((r) => [r.id, r.partition, r.seq])).toEqual([
      ['e1', 0, 1],
      ['e2', 0, 2],
      ['e3', 0, 3],
    ]);
    expect(out.events[2]!.text).toBe('call me 138****5678');
    expect(out.triggers.map((t) => t.id)).toEqual(['vip_routing:c1:e2']);
    expect(out.triggers[0]!.firedAt).toBe(1_000);
    expect(out.rejects).toHaveLength(1);
    expect(out.rejects[0]).toMatchObject({ seq: 4, subject: 'cx.events.app.message.c9' });
    expect(out.rejects[0]!.reason).toMatch(/msgpack|JSON/);
    // First event of each customer publishes its profile; c1's second is within the minute.
    expect(out.profiles.map((r) => [r.customer, r.tier])).toEqual([
      ['c1', 'VIP'],
      ['c2', 'New'],
    ]);
    expect(out.lastSeq).toBe(4);
  });

  it('publishes a changed profile at most once per profile interval of event time, and all on flush', () => {
    const p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules, profileIntervalMs: 60_000 });
    apply(p, [ev('e1', 'c1', 'page_view', T0, { category: 'baby' })], 1);
    expect(
      apply(p, [ev('e2', 'c1', 'page_view', T0 + 59_999, { category: 'baby' })], 2).profiles,
    ).toHaveLength(0);
    expect(p.tick(null, false).profiles).toHaveLength(0);
    const due = apply(p, [ev('e3', 'c1', 'page_view', T0 + 60_000, { category: 'toys' })], 3).profiles;
    expect(due).toHaveLength(1);
    expect(JSON.parse(due[0]!.profile).categoryViews30d).toEqual({ baby: 2, toys: 1 });
    apply(p, [ev('e4', 'c1', 'page_view', T0 + 70_000, { category: 'toys' })], 4);
    // Published once the watermark passes the end of its interval (event time, not the wall clock):
    // here another customer's event moves it there.
    expect(apply(p, [ev('x1', 'c2', 'page_view', T0 + 125_000)], 5).profiles.map((r) => r.customer)).toEqual([
      'c2',
    ]);
    const later = apply(p, [ev('x2', 'c2', 'page_view', T0 + 125_001)], 6).profiles;
    expect(later.map((r) => r.customer)).toEqual(['c1']);
    expect(JSON.parse(later[0]!.profile).categoryViews30d).toEqual({ baby: 2, toys: 2 });
    // A flush (end of a replay) publishes whatever changed: c2 since its first event.
    expect(p.tick(null, true).profiles.map((r) => r.customer)).toEqual(['c2']);
  });

  it('skips the sequences its restored checkpoint holds (redeliveries after a restart)', () => {
    const a = new PartitionProcessor({ partition: 0, keyGroups: 1, rules });
    const events = [ev('e1', 'c1', 'session_end', T0, { session: 's1' })];
    expect(apply(a, events, 7).triggers).toHaveLength(1);
    const b = new PartitionProcessor({ partition: 0, keyGroups: 1, rules });
    b.restore(unpack(pack(a.snapshot())));
    const again = apply(b, events, 7);
    expect(again.triggers).toHaveLength(0);
    expect(again.events).toHaveLength(0);
    expect(apply(b, [ev('e2', 'c1', 'order', T0 + MIN, { amount: 5 })], 8).events).toHaveLength(1);
  });

  it('stops with a SequenceError on a sequence at or below one it applied that is not a redelivery', () => {
    const p = new PartitionProcessor({ partition: 4, keyGroups: 1, rules });
    apply(p, [ev('e1', 'c1', 'page_view', T0), ev('e2', 'c2', 'page_view', T0)], 1001);
    // sequences 1..1000 arriving after 1001..1002: out of order; skipping them would lose them
    expect(() => apply(p, [ev('e0', 'c3', 'page_view', T0)], 1000)).toThrow(SequenceError);
    expect(() => apply(p, [ev('e0', 'c3', 'page_view', T0)], 1000)).toThrow(
      /key group 0 got stream sequence 1000 after 1002/,
    );
  });

  it('restores from a msgpack snapshot and goes on exactly as the original', () => {
    const a = new PartitionProcessor({ partition: 1, keyGroups: 1, rules });
    const history = [
      ev('e1', 'c1', 'order', T0, { amount: 600 }),
      ev('e2', 'c1', 'session_start', T0 + MIN, { session: 's1' }),
      ev('e3', 'c1', 'message', T0 + 2 * MIN, { session: 's1', recognized: false }),
      ev('e4', 'c1', 'message', T0 + 3 * MIN, { session: 's1', recognized: false }),
    ];
    apply(a, history, 1);
    const b = new PartitionProcessor({ partition: 1, keyGroups: 1, rules });
    b.restore(unpack(pack(a.snapshot())));
    const next = [
      ev('e5', 'c1', 'message', T0 + 4 * MIN, { session: 's1', recognized: false }),
      ev('e6', 'c1', 'order', T0 + 5 * MIN, { amount: 600 }),
      ev('e7', 'c1', 'call', T0 + 6 * MIN, { session: 's1' }),
    ];
    const fromA = apply(a, next, 5);
    const fromB = apply(b, next, 5);
    expect(fromB).toEqual(fromA);
    expect(fromA.triggers.map((t) => t.rule)).toEqual(['human_handoff', 'vip_routing']);
    expect(() => new PartitionProcessor({ partition: 2, keyGroups: 2, rules }).restore(a.snapshot())).toThrow(
      /snapshot of 1 key groups cannot restore a processor of 2/,
    );
  });

  it('snapshots pending timers and deferred triggers: the restored partition fires them exactly like the original', () => {
    const a = new PartitionProcessor({ partition: 1, keyGroups: 1, rules });
    const evening = Date.UTC(2026, 10, 20, 12, 55); // 20:55 Shanghai: the cart timer comes due in quiet hours
    const first = apply(a, [
      ev('e1', 'c3', 'order', T0 - 10 * 86_400_000, { amount: 10 }),
      ev('e2', 'c3', 'order', T0, { amount: 10 }),
      ev('e3', 'c2', 'add_to_cart', T0, { sku: 'A' }),
      ev('e4', 'c1', 'add_to_cart', evening, { sku: 'B' }),
    ]);
    // The last event moved the watermark past c2's cart timer: it fired before that event was applied.
    expect(first.triggers.map((t) => `${t.rule}:${t.customer}`)).toEqual(['cart_abandoned:c2']);
    expect(a.advanceTo(evening + 11 * MIN).deferred).toBe(1); // c1's cart comes due at 21:05: deferred
    expect(a.pendingTimers).toBeGreaterThan(0);
    const b = new PartitionProcessor({ partition: 1, keyGroups: 1, rules });
    b.restore(unpack(pack(a.snapshot())));
    expect(b.pendingTimers).toBe(a.pendingTimers);
    const later = T0 + 60 * 86_400_000;
    const fromA = a.advanceTo(later);
    const fromB = b.advanceTo(later);
    expect(fromB).toEqual(fromA);
    expect(fromA.triggers.map((t) => `${t.rule}:${t.customer}`).sort()).toEqual(
      [
        'cart_abandoned:c1',
        'churn_risk:c1',
        'churn_risk:c2',
        'churn_risk:c3',
        'repurchase_reminder:c3',
      ].sort(),
    );
    expect(a.pendingTimers).toBe(0);
  });

  it('restores from a full snapshot and deltas (changed customers only) exactly as the original goes on', () => {
    const a = new PartitionProcessor({ partition: 1, keyGroups: 1, rules });
    const restoreFrom = (...snapshots: ReturnType<PartitionProcessor['snapshot']>[]) => {
      const [full, ...deltas] = snapshots.map((s) => unpack(pack(s)));
      const b = new PartitionProcessor({ partition: 1, keyGroups: 1, rules });
      b.restore(full, ...deltas);
      return b;
    };
    apply(a, [
      ev('e1', 'c1', 'order', T0, { amount: 600 }),
      ev('e2', 'c2', 'add_to_cart', T0, { sku: 'A' }),
      ev('e3', 'c3', 'session_start', T0, { session: 's3' }),
    ]);
    const full = a.snapshot();
    expect(customersOf(full).sort()).toEqual(['c1', 'c2', 'c3']);
    apply(a, [ev('e4', 'c2', 'order', T0 + MIN, { amount: 5 })], 4);
    const delta1 = a.snapshot(true);
    // c2's order; c1 and c3 because the ordered lane saw their events once the watermark passed them
    expect(customersOf(delta1).sort()).toEqual(['c1', 'c2', 'c3']);
    // c1 and c3 change only by timers firing (churn after 30 days of silence); c4 is new
    const firing = a.advanceTo(T0 + 31 * 86_400_000);
    expect(firing.triggers.map((t) => t.customer)).toContain('c3');
    apply(a, [ev('e5', 'c4', 'message', T0 + 31 * 86_400_000, { text: 'hi' })], 5);
    const delta2 = a.snapshot(true);
    expect(customersOf(delta2).sort()).toEqual(['c1', 'c2', 'c3', 'c4']);
    expect(customersOf(a.snapshot(true))).toEqual([]);
    const b = restoreFrom(full, delta1, delta2);
    expect(contentOf(b)).toEqual(contentOf(a));
    const next = [
      ev('e6', 'c2', 'add_to_cart', T0 + 32 * 86_400_000, { sku: 'B' }),
      ev('e7', 'c4', 'add_to_cart', T0 + 32 * 86_400_000, { sku: 'C' }),
    ];
    const later = T0 + 90 * 86_400_000;
    const fromA = [apply(a, next, 6), a.advanceTo(later)];
    const fromB = [apply(b, next, 6), b.advanceTo(later)];
    expect(fromB).toEqual(fromA);
    expect(() => restoreFrom(delta1)).toThrow(/full snapshot followed by deltas/);
    expect(() => restoreFrom(full, full)).toThrow(/full snapshot followed by deltas/);
  });

  it('drops the timers of rules removed by setRules and keeps the others', () => {
    const p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules });
    apply(p, [ev('e1', 'c1', 'add_to_cart', T0)]);
    p.advanceTo(T0); // the ordered lane sees the cart
    // Typical: the two silence timers every customer has, plus one per pending absence.
    expect(Object.keys(p.customer('c1')!.timers).sort()).toEqual([
      'cart_abandoned',
      'churn_risk',
      'high_value_silent',
    ]);
    p.setRules(rules.filter((r) => r.id !== 'cart_abandoned'));
    expect(Object.keys(p.customer('c1')!.timers).sort()).toEqual(['churn_risk', 'high_value_silent']);
    expect(p.advanceTo(T0 + 86_400_000).triggers).toEqual([]);
  });
});
