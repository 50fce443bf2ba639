/**
 * Forgetting a customer, the parts without servers: the request body, the subject token a purge
 * filter is built from, the tombstone's hash, and the processor: the live state, timers and waiting
 * events removed, later events skipped, a restored checkpoint's entry dropped, and the other
 * customers' output the same as if the forgotten one had never been in the stream.
 */
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { BadRequest, customerOfRequest } from '../../engine/runtime/admin.js';
import { FORGET_SUBJECT, subjectToken } from '../../engine/runtime/forget.js';
import { fnv1a } from '../../operators/keyGroups.js';
import { type PartitionOutput, PartitionProcessor } from '../../operators/partitionProcessor.js';
import { customerHash, TombstoneSet, tombstoneOf } from '../../operators/tombstones.js';
import type { CxEvent } from '../../operators/types.js';
import { cxEvent } from '../harness/events.js';

const rules = loadRules(['config/rules.yaml']);
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const MIN = 60_000;

const ev = cxEvent;

/** Events as the stream holds them, with their sequence numbers. */
type Stored = { seq: number; event: CxEvent };

function apply(p: PartitionProcessor, stored: Stored[]): PartitionOutput {
  return p.applyBatch(
    stored.map((s) => s.seq),
    stored.map((s) => `cx.events.${s.event.channel}.${s.event.type}.${s.event.customer}`),
    (i) => pack(stored[i]!.event),
    1_000,
  );
}

// x and y interleaved, event times rising (nothing late): x's cart timer is pending at the forget
const history: CxEvent[] = [
  ev('x1', 'x', 'session_start', T0, { session: 'sx' }),
  ev('y1', 'y', 'session_start', T0 + 1000, { session: 'sy' }),
  ev('x2', 'x', 'add_to_cart', T0 + 2000, { sku: 'S1' }),
  ev('y2', 'y', 'add_to_cart', T0 + 3000, { sku: 'S2' }),
  ev('x3', 'x', 'message', T0 + 4000, { text: '开发票' }),
  ev('y3', 'y', 'order', T0 + 5000, { amount: 3000, orderId: 'o1' }),
];
const later: CxEvent[] = [
  ev('x4', 'x', 'add_to_cart', T0 + 6 * MIN, { sku: 'S3' }),
  ev('y4', 'y', 'add_to_cart', T0 + 7 * MIN, { sku: 'S4' }),
  ev('y5', 'y', 'page_view', T0 + 8 * MIN),
];
const numbered = (events: CxEvent[], from: number): Stored[] =>
  events.map((event, i) => ({ seq: from + i, event }));
const first = numbered(history, 1);
const second = numbered(later, first.length + 1);
const ids = (outs: PartitionOutput[], customer: string) =>
  outs.flatMap((o) => o.triggers.filter((t) => t.customer === customer).map((t) => t.id)).sort();
const rows = (outs: PartitionOutput[], customer: string) =>
  outs.flatMap((o) => o.events.filter((r) => r.customer === customer).map((r) => r.id));

describe('forget: request and hash', () => {
  it('reads the customer of a request, and says what a request looks like otherwise', () => {
    expect(customerOfRequest('{"customer":"c1"}', FORGET_SUBJECT)).toBe('c1');
    const shape = `send JSON {"customer": "<id>"} to ${FORGET_SUBJECT}`;
    expect(() => customerOfRequest('', FORGET_SUBJECT)).toThrow(`empty request: ${shape}`);
    expect(() => customerOfRequest('c1', FORGET_SUBJECT)).toThrow(
      /^the request is not JSON \(.*\): send JSON/,
    );
    expect(() => customerOfRequest('{"customer": ""}', FORGET_SUBJECT)).toThrow(
      `"customer" must be a non-empty string: ${shape}`,
    );
    expect(() => customerOfRequest('{"customer": 7}', FORGET_SUBJECT)).toThrow(BadRequest);
    expect(() => customerOfRequest('null', FORGET_SUBJECT)).toThrow(BadRequest);
  });

  it('takes only keys that can be the last token of an event subject (the purge filter is built from it)', () => {
    for (const ok of ['c1', 'cust@7', '张三', 'a*b', '=x']) expect(subjectToken(ok)).toBe(ok);
    for (const bad of ['a.b', 'a b', 'tab\tkey', '*', '>', 'x.>'])
      expect(() => subjectToken(bad), bad).toThrow(/cannot be the last token of an event subject/);
  });

  it('keeps SHA-256 of the key (pinned: other systems compute the same) and its FNV-1a', () => {
    expect(customerHash('c1')).toBe('d0f631ca1ddba8db3bcfcb9e057cdc98d0379f1bee00e75a545147a27dadd982');
    expect(customerHash('张三')).toMatch(/^[0-9a-f]{64}$/);
    expect(tombstoneOf('c1')).toEqual({ hash: customerHash('c1'), fnv: fnv1a('c1') });
    const set = new TombstoneSet();
    expect(set.has('c1')).toBe(false);
    set.add(tombstoneOf('c1'));
    expect([set.has('c1'), set.has('c2'), set.has('C1'), set.size]).toEqual([true, false, false, 1]);
  });
});

describe('forget: the processor', () => {
  it('removes the state, timers and waiting events; later events are skipped; the others are untouched', () => {
    const p = new PartitionProcessor({ keyGroups: 4, rules });
    const outs = [apply(p, first)];
    const held = p.customer('x')!;
    expect(Object.keys(held.timers).length).toBeGreaterThan(0);
    const waiting = held.pending.length + held.held.length;
    expect(p.forget('x', tombstoneOf('x'))).toEqual({
      found: true,
      timers: Object.keys(held.timers).filter((id) => id !== '~publish').length,
      waitingEvents: waiting,
    });
    expect(p.customer('x')).toBeUndefined();
    expect(p.forget('x', tombstoneOf('x'))).toEqual({ found: false, timers: 0, waitingEvents: 0 });
    const after = apply(p, second);
    expect(after.tombstoned).toBe(1);
    outs.push(after, p.advanceTo(T0 + 3 * 60 * MIN), p.tick(null, true));
    // nothing of x after the forget: no timer fired, no row, no profile
    expect(
      outs
        .slice(1)
        .flatMap((o) => [...o.triggers, ...o.events, ...o.profiles].filter((r) => r.customer === 'x')),
    ).toEqual([]);
    expect(p.customer('x')).toBeUndefined();
    // a full snapshot does not hold x, nor the heap entries of its timers (lazy deletion would keep them)
    const snapshot = p.snapshot();
    expect(snapshot.groups.flatMap((g) => g.customers.map(([c]) => c))).toEqual(['y']);
    expect(snapshot.groups.flatMap((g) => g.timers!.customers)).not.toContain('x');

    // y's output is that of a stream that never held x
    const q = new PartitionProcessor({ keyGroups: 4, rules });
    const without = (s: Stored[]) => s.filter((x) => x.event.customer !== 'x');
    const clean = [
      apply(q, without(first)),
      apply(q, without(second)),
      q.advanceTo(T0 + 3 * 60 * MIN),
      q.tick(null, true),
    ];
    expect(ids(outs, 'y')).toEqual(ids(clean, 'y'));
    expect(ids(outs, 'y').length).toBeGreaterThan(0);
    expect(rows(outs, 'y')).toEqual(rows(clean, 'y'));
  });

  it('drops a forgotten customer from a restored checkpoint, timers included, and skips its redelivered events', () => {
    const p = new PartitionProcessor({ keyGroups: 4, rules });
    apply(p, first);
    const before = p.snapshot(); // taken before the forget: holds x and its cart timer
    const r = new PartitionProcessor({ keyGroups: 4, rules, tombstones: [tombstoneOf('x')] });
    r.restore(before);
    expect(r.droppedOnRestore).toBe(1);
    expect(r.customer('x')).toBeUndefined();
    expect(r.customer('y')).toBeDefined();
    expect(before.groups.flatMap((g) => g.timers!.customers)).toContain('x');
    expect(r.snapshot().groups.flatMap((g) => g.timers!.customers)).not.toContain('x');
    // the whole stream again (a replay from an older ack floor): x's events skipped, y's already applied
    const again = apply(r, [...first, ...second]);
    expect(again.tombstoned).toBe(1); // x4: x1..x3 are at or below the restored sequence
    const end = r.advanceTo(T0 + 3 * 60 * MIN);
    expect([...again.triggers, ...end.triggers, ...again.events].filter((t) => t.customer === 'x')).toEqual(
      [],
    );
    expect(r.customer('x')).toBeUndefined();
  });
});
