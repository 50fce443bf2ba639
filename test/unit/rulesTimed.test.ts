/**
 * The time-based default rules of config/rules.yaml through the real PartitionProcessor: msgpack
 * events in stream order, the watermark, timers, quiet hours, caps.
 */
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { keyGroupOf } from '../../operators/keyGroups.js';
import { type PartitionOutput, PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { CxEvent, Trigger } from '../../operators/types.js';

const rules = loadRules(['config/rules.yaml']);
const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 2, 2, 4); // 12:00 Asia/Shanghai
const WALL = 5_000_000_000_000; // wall clock stamped as firedAt (far from event time on purpose)

/** One partition fed like a worker is: consecutive sequences, msgpack payloads. */
class Feed {
  readonly p: PartitionProcessor;
  private seq = 0;
  private n = 0;
  private latest = Number.NEGATIVE_INFINITY;
  readonly all: Trigger[] = [];
  readonly outs: PartitionOutput[] = [];

  constructor(specs: RuleSpec[] = rules, options: { allowedLatenessMs?: number; idleAfterMs?: number } = {}) {
    this.p = new PartitionProcessor({ partition: 0, keyGroups: 1, rules: specs, ...options });
  }

  send(type: string, ts: number, extra: Partial<CxEvent> = {}, customer = 'c1'): Trigger[] {
    this.n++;
    this.latest = Math.max(this.latest, ts);
    const e: CxEvent = { id: `e${this.n}`, ts, customer, type, channel: 'app', ...extra };
    this.seq++;
    return this.keep(
      this.p.applyBatch([this.seq], [`cx.events.app.${type}.${customer}`], () => pack(e), WALL),
    );
  }

  advance(t: number): Trigger[] {
    return this.keep(this.p.advanceTo(t));
  }

  /** Moves event time to the latest event sent: the ordered lane sees every event so far. */
  settle(): Trigger[] {
    return this.advance(this.latest);
  }

  tick(now: number): Trigger[] {
    return this.keep(this.p.tick(now, false));
  }

  rules(customer = 'c1'): string[] {
    return this.all.filter((t) => t.customer === customer).map((t) => t.rule);
  }

  sum(field: 'lateEvents' | 'droppedByCap' | 'deferred' | 'droppedByQuietHours'): number {
    return this.outs.reduce((n, o) => n + o[field], 0);
  }

  private keep(out: PartitionOutput): Trigger[] {
    this.outs.push(out);
    this.all.push(...out.triggers);
    return out.triggers;
  }
}

const only = (...ids: string[]) => rules.filter((r) => ids.includes(r.id));

describe('cart_abandoned (absence, restart, cancel)', () => {
  it('fires 10 minutes after add_to_cart for a silent customer once the watermark passes, with the cart in the payload', () => {
    const f = new Feed(only('cart_abandoned'));
    f.send('add_to_cart', T0, { sku: 'A1', category: 'baby' });
    expect(f.advance(T0 + 10 * MIN - 1)).toEqual([]);
    const [t] = f.advance(T0 + 10 * MIN);
    expect(t).toMatchObject({
      id: `cart_abandoned:c1:t${T0 + 10 * MIN}`,
      eventTime: T0 + 10 * MIN,
      firedAt: T0 + 10 * MIN,
      payload: { sku: 'A1', category: 'baby', channel: 'app' },
    });
    expect(f.advance(T0 + DAY)).toEqual([]);
  });

  it('is cancelled by an order just inside the window, not by one just outside', () => {
    const inside = new Feed(only('cart_abandoned'));
    inside.send('add_to_cart', T0);
    inside.send('order', T0 + 10 * MIN, { amount: 10 });
    inside.advance(T0 + DAY);
    expect(inside.rules()).toEqual([]);

    const outside = new Feed(only('cart_abandoned'));
    outside.send('add_to_cart', T0);
    // The order 1 ms too late does not cancel; the timer fires once the watermark passes the due time.
    outside.send('order', T0 + 10 * MIN + 1, { amount: 10 });
    outside.advance(T0 + DAY);
    expect(outside.rules()).toEqual(['cart_abandoned']);
  });

  it('restarts on every add_to_cart: one trigger, 10 minutes after the last', () => {
    const f = new Feed(only('cart_abandoned'));
    f.send('add_to_cart', T0);
    f.send('add_to_cart', T0 + 5 * MIN);
    f.send('add_to_cart', T0 + 9 * MIN);
    f.advance(T0 + 18 * MIN);
    expect(f.all).toEqual([]);
    f.advance(T0 + 19 * MIN);
    expect(f.all.map((t) => t.id)).toEqual([`cart_abandoned:c1:t${T0 + 19 * MIN}`]);
  });

  it('fires inside applyBatch when another customer’s event moves the watermark past the due time, before applying it', () => {
    const f = new Feed(only('cart_abandoned'));
    f.send('add_to_cart', T0);
    // The watermark reaches the due time but does not pass it: an order exactly then would still cancel.
    expect(f.send('page_view', T0 + 10 * MIN + 5 * SEC, {}, 'c2')).toEqual([]);
    const out = f.send('page_view', T0 + 10 * MIN + 5 * SEC + 1, {}, 'c2');
    expect(out.map((t) => [t.rule, t.customer, t.firedAt])).toEqual([['cart_abandoned', 'c1', WALL]]);
  });

  it('fires on an idle wall-clock tick, not before idleAfterMs without events', () => {
    const f = new Feed(only('cart_abandoned'), { idleAfterMs: 10 * SEC });
    const wall0 = T0 + 11 * MIN; // the engine's clock: a little after the event
    f.p.applyBatch(
      [1],
      ['cx.events.app.add_to_cart.c1'],
      () => pack({ id: 'a', ts: T0, customer: 'c1', type: 'add_to_cart', channel: 'app' }),
      wall0 - 20 * SEC,
    );
    expect(f.tick(wall0 - 15 * SEC)).toEqual([]); // 5 s idle
    expect(f.tick(wall0)).toHaveLength(1); // 20 s idle: watermark = wall0 − 5 s ≥ due
    expect(f.p.currentWatermark).toBe(wall0 - 5 * SEC);
  });

  it('judges quiet per worker: events of other key groups keep a quiet key group from following the wall clock', () => {
    const p = new PartitionProcessor({ partition: 0, rules: only('cart_abandoned'), idleAfterMs: 10 * SEC });
    const wall0 = T0 + 11 * MIN;
    const batch = (seq: number, customer: string, type: string, ts: number, wall: number) =>
      p.applyBatch(
        [seq],
        [`cx.events.app.${type}.${customer}`],
        () => pack({ id: `e${seq}`, ts, customer, type, channel: 'app' }),
        wall,
      );
    expect(keyGroupOf('c1', 128)).not.toBe(keyGroupOf('c2', 128));
    batch(1, 'c1', 'add_to_cart', T0, wall0 - 20 * SEC);
    p.tick(wall0 - 20 * SEC, false); // the live edge: the wait for quiet starts
    // c2 (another key group) keeps the worker busy: c1's key group has been silent for 20 s
    for (let i = 0; i < 4; i++) batch(2 + i, 'c2', 'page_view', T0 + i * SEC, wall0 - 15 * SEC + i * 5 * SEC);
    expect(p.tick(wall0, false).triggers).toEqual([]);
    // then 10 s without any event: every key group follows the wall clock
    expect(p.tick(wall0 + 10 * SEC, false).triggers.map((t) => [t.rule, t.customer])).toEqual([
      ['cart_abandoned', 'c1'],
    ]);
  });

  it('uses an order late but within lateness to cancel; one beyond lateness neither cancels nor fires it twice', () => {
    const within = new Feed(only('cart_abandoned'));
    within.send('add_to_cart', T0);
    within.send('page_view', T0 + 10 * MIN + 4 * SEC, {}, 'c2'); // watermark due − 1 s
    within.send('order', T0 + 10 * MIN - 500); // behind the newest event, but not behind the watermark
    within.advance(T0 + DAY);
    expect(within.rules()).toEqual([]);
    expect(within.sum('lateEvents')).toBe(0);

    const beyond = new Feed(only('cart_abandoned'));
    beyond.send('add_to_cart', T0);
    beyond.send('page_view', T0 + 20 * MIN, {}, 'c2'); // watermark passes the due time: fires
    expect(beyond.rules()).toEqual(['cart_abandoned']);
    beyond.send('order', T0 + 9 * MIN); // beyond lateness
    beyond.send('add_to_cart', T0 + 1 * MIN); // older than the anchor: no restart
    beyond.advance(T0 + DAY);
    expect(beyond.rules()).toEqual(['cart_abandoned']);
    expect(beyond.sum('lateEvents')).toBe(2);
  });

  it('has a 24 h cooldown', () => {
    const f = new Feed(only('cart_abandoned'));
    f.send('add_to_cart', T0);
    f.advance(T0 + HOUR);
    f.send('add_to_cart', T0 + 2 * HOUR);
    f.advance(T0 + 3 * HOUR);
    f.send('add_to_cart', T0 + DAY - MIN); // fires at T0 + 24 h + 9 min: 1 min short of the cooldown
    f.advance(T0 + DAY + HOUR);
    f.send('add_to_cart', T0 + DAY + 2 * HOUR);
    f.advance(T0 + 2 * DAY);
    expect(f.all.map((t) => t.eventTime)).toEqual([T0 + 10 * MIN, T0 + DAY + 2 * HOUR + 10 * MIN]);
  });

  it('is deferred in quiet hours to 09:00 local, keeping its id and eventTime; firedAt is the delivery', () => {
    const f = new Feed(only('cart_abandoned'));
    const evening = Date.UTC(2026, 2, 2, 12, 55); // 20:55 Shanghai; due 21:05 is quiet
    f.send('add_to_cart', evening);
    expect(f.advance(evening + 10 * MIN)).toEqual([]);
    expect(f.sum('deferred')).toBe(1);
    const nine = Date.UTC(2026, 2, 3, 1); // 09:00 Shanghai next day
    expect(f.advance(nine - 1)).toEqual([]);
    const [t] = f
      .tick(nine + 20 * SEC) /* not idle yet: first tick */
      .concat(f.advance(nine));
    expect(t).toMatchObject({
      id: `cart_abandoned:c1:t${evening + 10 * MIN}`,
      eventTime: evening + 10 * MIN,
      firedAt: nine,
    });
  });

  it('uses the customer’s own time zone for quiet hours', () => {
    const f = new Feed(only('cart_abandoned'));
    const evening = Date.UTC(2026, 2, 2, 12, 55); // 20:55 Shanghai, but 13:55 in Berlin
    f.send('add_to_cart', evening, { tz: 'Europe/Berlin' });
    expect(f.advance(evening + 10 * MIN)).toHaveLength(1);
  });
});

describe('consult_unresolved', () => {
  it('fires 30 min after session_end without an order; an order cancels; silent customers fire', () => {
    const f = new Feed(only('consult_unresolved'));
    f.send('session_end', T0, { session: 's1' });
    f.send('order', T0 + 30 * MIN, { amount: 5 });
    f.send('session_end', T0 + 2 * HOUR, { session: 's2' }, 'c2');
    f.advance(T0 + DAY);
    expect(f.all.map((t) => [t.customer, t.eventTime, t.payload.session])).toEqual([
      ['c2', T0 + 2 * HOUR + 30 * MIN, 's2'],
    ]);
  });
});

describe('repurchase_reminder (purchase-cycle timing)', () => {
  it('fires at 0.9 × the mean cycle after the last order, once per cycle, re-timed by each order', () => {
    const f = new Feed(only('repurchase_reminder'));
    f.send('order', T0, { amount: 100 });
    f.send('order', T0 + 10 * DAY, { amount: 100 });
    // cycle 10 d → due 9 d after the last order
    expect(f.advance(T0 + 19 * DAY - 1)).toEqual([]);
    const [t] = f.advance(T0 + 19 * DAY);
    expect(t).toMatchObject({ eventTime: T0 + 19 * DAY, payload: { purchaseCycleDays: 10 } });
    expect(f.advance(T0 + 60 * DAY)).toEqual([]); // once per cycle
    f.send('order', T0 + 61 * DAY, { amount: 100 }); // cycle (61 d / 2) = 30.5 d → due + 27.45 d
    const due = T0 + 61 * DAY + Math.round((0.9 * 61 * DAY) / 2);
    expect(f.advance(due - 1)).toEqual([]);
    // due is 22:48 Shanghai: quiet hours, delivered at 09:00 with its own event time.
    expect(f.advance(due)).toEqual([]);
    expect(f.sum('deferred')).toBe(1);
    expect(f.advance(due + 12 * HOUR).map((t) => t.eventTime)).toEqual([due]);
  });

  it('needs two orders, and an order before the due time re-times it', () => {
    const f = new Feed(only('repurchase_reminder'));
    f.send('order', T0, { amount: 100 });
    expect(f.advance(T0 + 100 * DAY)).toEqual([]);
    f.send('order', T0 + 110 * DAY, { amount: 100 }); // cycle 110 d → due +99 d
    f.send('order', T0 + 120 * DAY, { amount: 100 }); // cycle 60 d → due +54 d
    f.advance(T0 + 120 * DAY + 54 * DAY);
    expect(f.all.map((t) => t.eventTime)).toEqual([T0 + 174 * DAY]);
  });
});

describe('churn_risk and high_value_silent (inactivity)', () => {
  it('churn_risk fires after 30 days without any event, once per inactive spell, and re-arms after activity', () => {
    const f = new Feed(only('churn_risk'));
    f.send('page_view', T0);
    f.send('page_view', T0 + DAY);
    expect(f.advance(T0 + 31 * DAY - 1)).toEqual([]);
    expect(f.advance(T0 + 31 * DAY).map((t) => t.id)).toEqual([`churn_risk:c1:t${T0 + 31 * DAY}`]);
    expect(f.advance(T0 + 90 * DAY)).toEqual([]);
    f.send('login', T0 + 100 * DAY);
    expect(f.advance(T0 + 130 * DAY)).toHaveLength(1);
  });

  it('high_value_silent needs spend90d >= 2000 as of the 14th silent day', () => {
    const f = new Feed(only('high_value_silent'));
    f.send('order', T0, { amount: 2000 });
    f.send('order', T0, { amount: 1999.99 }, 'c2');
    f.advance(T0 + 14 * DAY);
    expect(f.all.map((t) => [t.customer, t.payload.spend90d])).toEqual([['c1', 2000]]);
  });

  it('an event older than the newest one does not restart the silence; a late one never fires it twice', () => {
    const f = new Feed(only('churn_risk'));
    f.send('page_view', T0 + DAY);
    f.send('page_view', T0); // older: lastSeen stays
    f.advance(T0 + 31 * DAY);
    expect(f.all).toHaveLength(1);
    f.send('page_view', T0 + 2 * DAY); // beyond lateness: does not start a new spell (no second firing)
    f.advance(T0 + 40 * DAY);
    expect(f.all).toHaveLength(1);
    expect(f.sum('lateEvents')).toBe(2);
  });
});

describe('complaint_winback (sequence)', () => {
  it.each([
    [24 * HOUR, 2, true],
    [24 * HOUR + 1, 2, false],
    [HOUR, 3, false],
    [HOUR, 1, true],
  ])('rating %i ms after the complaint with score %i → fires %s', (after, score, fires) => {
    const f = new Feed(only('complaint_winback'));
    f.send('complaint', T0);
    f.send('rating', T0 + after, { score });
    expect(f.rules()).toEqual([]); // fires once the watermark passes the rating
    f.settle();
    expect(f.rules()).toEqual(fires ? ['complaint_winback'] : []);
  });

  it('needs the complaint first, has a 7 day cooldown', () => {
    const f = new Feed(only('complaint_winback'));
    f.send('rating', T0, { score: 1 });
    f.send('complaint', T0 + HOUR);
    f.send('rating', T0 + 2 * HOUR, { score: 1 });
    f.send('complaint', T0 + 3 * DAY);
    f.send('rating', T0 + 3 * DAY + HOUR, { score: 1 });
    f.send('complaint', T0 + 8 * DAY);
    f.send('rating', T0 + 8 * DAY + HOUR, { score: 1 });
    f.settle();
    expect(f.all.map((t) => t.eventTime)).toEqual([T0 + 2 * HOUR, T0 + 8 * DAY + HOUR]);
  });
});

describe('high_intent_revisit (count after an anchor)', () => {
  it('fires on the third login within 7 days after a session_end; logins before it do not count', () => {
    const f = new Feed(only('high_intent_revisit'));
    f.send('login', T0 - HOUR);
    f.send('session_end', T0);
    f.send('login', T0 + DAY);
    f.send('login', T0 + 2 * DAY);
    f.send('login', T0 + 7 * DAY);
    expect(f.settle().map((t) => t.rule)).toEqual(['high_intent_revisit']);
  });

  it('does not fire when the third login is just outside the 7 days', () => {
    const f = new Feed(only('high_intent_revisit'));
    f.send('session_end', T0);
    f.send('login', T0 + DAY);
    f.send('login', T0 + 2 * DAY);
    f.send('login', T0 + 7 * DAY + 1);
    f.settle();
    expect(f.rules()).toEqual([]);
  });
});

describe('category_interest (count per key with a veto)', () => {
  it('fires on the third view of one category within 30 days, per category', () => {
    const f = new Feed(only('category_interest'));
    f.send('page_view', T0, { category: 'baby' });
    f.send('page_view', T0 + DAY, { category: 'toys' });
    f.send('page_view', T0 + 2 * DAY, { category: 'baby' });
    f.send('page_view', T0 + 3 * DAY, { category: 'toys' });
    f.settle();
    expect(f.rules()).toEqual([]);
    f.send('page_view', T0 + 29 * DAY, { category: 'baby' });
    const [t] = f.settle();
    expect(t).toMatchObject({ rule: 'category_interest', payload: { category: 'baby', views: 3 } });
    // 30 days after the first view it is out of the window.
    f.send('page_view', T0 + 31 * DAY, { category: 'toys' });
    expect(f.settle()).toEqual([]);
  });

  it('is vetoed by an order in that category within the window, not by one in another category', () => {
    const f = new Feed(only('category_interest'));
    for (const c of ['baby', 'toys']) {
      f.send('page_view', T0, { category: c });
      f.send('page_view', T0 + HOUR, { category: c });
    }
    f.send('order', T0 + 2 * HOUR, { category: 'baby', amount: 10 });
    f.send('page_view', T0 + 3 * HOUR, { category: 'baby' });
    f.send('page_view', T0 + 3 * HOUR, { category: 'toys' });
    f.settle();
    expect(f.all.map((t) => t.payload.category)).toEqual(['toys']);
  });

  it('has a 30 day cooldown per category', () => {
    const f = new Feed(only('category_interest'));
    for (let i = 0; i < 6; i++) f.send('page_view', T0 + i * HOUR, { category: 'baby' });
    f.settle();
    expect(f.all).toHaveLength(1);
  });
});

describe('outbound marketing cap', () => {
  it('drops the 4th outbound marketing trigger within 24 h and counts it; the next day is free again', () => {
    const f = new Feed(only('category_interest', 'cart_abandoned'));
    for (const [i, c] of ['a', 'b', 'c'].entries())
      for (let k = 0; k < 3; k++) f.send('page_view', T0 + i * HOUR + k * MIN, { category: c });
    f.settle();
    expect(f.rules()).toEqual(['category_interest', 'category_interest', 'category_interest']);
    f.send('add_to_cart', T0 + 5 * HOUR);
    f.advance(T0 + 6 * HOUR);
    expect(f.all).toHaveLength(3);
    expect(f.sum('droppedByCap')).toBe(1);
    // 24 h after the first delivery one slot is free again.
    for (let k = 0; k < 3; k++) f.send('page_view', T0 + DAY + k * MIN, { category: 'd' });
    f.settle();
    expect(f.all).toHaveLength(4);
  });
});

describe('arbitration through the processor', () => {
  it('supervisor_escalation beats human_handoff on the same message', () => {
    const f = new Feed(only('supervisor_escalation', 'human_handoff'));
    f.send('message', T0, { session: 's1', sentiment: -0.9 });
    expect(f.rules()).toEqual(['supervisor_escalation']);
  });
});

describe('the whole default rule set', () => {
  it('runs a mixed stream without rule errors and drains silent timers', () => {
    const f = new Feed();
    f.send('session_start', T0, { session: 's1' });
    f.send('message', T0 + MIN, { session: 's1', text: 'hello' });
    f.send('add_to_cart', T0 + 2 * MIN, { sku: 'A1', category: 'baby' });
    f.send('session_end', T0 + 3 * MIN, { session: 's1' });
    f.send('order', T0 + 4 * DAY, { amount: 30, category: 'baby' }, 'c2');
    f.advance(T0 + 60 * DAY);
    expect([...f.p.ruleErrors]).toEqual([]);
    expect(f.rules().sort()).toEqual([
      'cart_abandoned',
      'churn_risk',
      'consult_unresolved',
      'satisfaction_survey',
    ]);
    expect(f.rules('c2')).toEqual(['churn_risk']);
  });
});

describe('streak and quiet hours drop (patterns not in the default set)', () => {
  const streak: RuleSpec = {
    id: 'bot_struggles',
    streak: {
      of: 'message',
      where: 'has(event.recognized) && !event.recognized',
      count: 3,
      resetOn: ['session_start'],
    },
  };

  it('streak fires when N consecutive events satisfy `where`; a failing one or resetOn resets', () => {
    const f = new Feed([streak]);
    f.send('message', T0, { recognized: false });
    f.send('message', T0 + 1, { recognized: false });
    f.send('message', T0 + 2, { recognized: true });
    f.send('message', T0 + 3, { recognized: false });
    f.send('message', T0 + 4, { recognized: false });
    f.send('session_start', T0 + 5);
    f.send('message', T0 + 6, { recognized: false });
    f.send('message', T0 + 7, { recognized: false });
    f.settle();
    expect(f.rules()).toEqual([]);
    f.send('message', T0 + 8, { recognized: false });
    f.send('message', T0 + 9, { recognized: false }); // 4th: the streak already fired
    f.settle();
    expect(f.all.map((t) => t.eventTime)).toEqual([T0 + 8]);
  });

  it('quietHours action drop discards and counts', () => {
    const f = new Feed([
      { id: 'nightly', on: ['login'], quietHours: { from: '21:00', to: '09:00', action: 'drop' } },
    ]);
    f.send('login', Date.UTC(2026, 2, 2, 14)); // 22:00 Shanghai
    f.send('login', Date.UTC(2026, 2, 3, 1)); // 09:00 Shanghai: `to` is not quiet
    f.advance(T0 + 10 * DAY);
    expect(f.all.map((t) => t.eventTime)).toEqual([Date.UTC(2026, 2, 3, 1)]);
    expect(f.sum('droppedByQuietHours')).toBe(1);
  });
});
