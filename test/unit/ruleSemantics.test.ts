/**
 * The exact semantics of the default rules at their edges (docs/RULES.md "Time, lateness and
 * timers", "Delivery"), each from its minimal case: timers and later events, the inclusive window,
 * sessions, customer-local time, the order in which the cap admits released triggers, what a
 * dropped trigger uses up, and purchase occasions.
 */
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { decodeEvent } from '../../operators/decodeEvent.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent, Trigger } from '../../operators/types.js';

const rules = loadRules(['config/rules.yaml']);
const only = (...ids: string[]) => rules.filter((r) => ids.includes(r.id));
const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Epoch ms of a wall time in Asia/Shanghai (UTC+8) on 2026-03-02 + `day`. */
const sh = (hour: number, minute = 0, second = 0, ms = 0, day = 0) =>
  Date.UTC(2026, 2, 2 + day, hour - 8, minute, second, ms);

/** One partition fed like a worker is: consecutive sequences, msgpack payloads. */
class Feed {
  readonly p: PartitionProcessor;
  readonly all: Trigger[] = [];
  private seq = 0;
  dropped = 0;

  constructor(ids: string[]) {
    this.p = new PartitionProcessor({ partition: 0, rules: only(...ids) });
  }

  send(id: string, type: string, ts: number, extra: Partial<CxEvent> = {}, customer = 'c1'): Trigger[] {
    const e: CxEvent = { id, ts, customer, type, channel: 'app', ...extra };
    const out = this.p.applyBatch([++this.seq], [`cx.events.app.${type}.${customer}`], () => pack(e), 0);
    this.dropped += out.droppedByCap;
    this.all.push(...out.triggers);
    return out.triggers;
  }

  advance(t: number): Trigger[] {
    const out = this.p.advanceTo(t);
    this.dropped += out.droppedByCap;
    this.all.push(...out.triggers);
    return out.triggers;
  }

  ids(rule?: string): string[] {
    return this.all.filter((t) => rule === undefined || t.rule === rule).map((t) => t.id);
  }
}

describe('a newer event never cancels or restarts a timer due before it', () => {
  it('a second cart 1 ms after the first window closed: the first reminder fires at its due time, the second window is its own', () => {
    const f = new Feed(['cart_abandoned']);
    f.send('a1', 'add_to_cart', sh(14, 51));
    f.send('a2', 'add_to_cart', sh(15, 1, 0, 1));
    f.advance(sh(18));
    // The first at 15:01:00.000; the second, due 15:11:00.001, is held back by the 24 h cooldown.
    expect(f.ids()).toEqual([`cart_abandoned:c1:t${sh(15, 1)}`]);
  });

  it('an order after the first window closed does not cancel its reminder', () => {
    const f = new Feed(['cart_abandoned']);
    f.send('a1', 'add_to_cart', sh(14, 51));
    f.send('o1', 'order', sh(15, 1, 0, 1), { amount: 5 });
    f.advance(sh(18));
    expect(f.ids()).toEqual([`cart_abandoned:c1:t${sh(15, 1)}`]);
  });

  it('churn_risk and high_value_silent fire although the customer comes back 1 ms after the silence', () => {
    const f = new Feed(['churn_risk', 'high_value_silent']);
    f.send('o1', 'order', sh(12), { amount: 2500 });
    f.send('v1', 'page_view', sh(12, 0, 0, 1, 14));
    f.send('v2', 'page_view', sh(12, 0, 0, 2, 44));
    f.advance(sh(12, 0, 0, 2, 44));
    expect(f.ids().sort()).toEqual([
      `churn_risk:c1:t${sh(12, 0, 0, 1, 44)}`,
      `high_value_silent:c1:t${sh(12, 0, 0, 0, 14)}`,
      // the view at day 14 starts a new silent spell, 14 days long again
      `high_value_silent:c1:t${sh(12, 0, 0, 1, 28)}`,
    ]);
    // the timer saw the customer as of its due time: not the event 1 ms after it
    const silent = f.all.find((t) => t.rule === 'high_value_silent')!;
    expect(silent.profile.lastSeen).toBe(sh(12));
  });

  it('the purchase-cycle reminder due before an order is not moved by it', () => {
    const f = new Feed(['repurchase_reminder']);
    f.send('o1', 'order', sh(12), { amount: 5 });
    f.send('o2', 'order', sh(12, 0, 0, 0, 10), { amount: 5 }); // cycle 10 d → due day 19
    f.send('o3', 'order', sh(12, 0, 0, 1, 19), { amount: 5 }); // 1 ms after the due time
    f.advance(sh(12, 0, 0, 2, 19));
    expect(f.ids()).toEqual([`repurchase_reminder:c1:t${sh(12, 0, 0, 0, 19)}`]);
  });

  it('the result of an in-order stream does not depend on the allowed lateness', () => {
    const run = (allowedLatenessMs: number) => {
      const p = new PartitionProcessor({ partition: 0, rules: only('cart_abandoned'), allowedLatenessMs });
      const events: CxEvent[] = [
        { id: 'a1', ts: sh(14, 51), customer: 'c1', type: 'add_to_cart', channel: 'app' },
        { id: 'a2', ts: sh(15, 1, 0, 1), customer: 'c1', type: 'add_to_cart', channel: 'app' },
      ];
      const ids = events.flatMap((e, i) =>
        p.applyBatch([i + 1], ['cx.events.app.add_to_cart.c1'], () => pack(e), 0).triggers.map((t) => t.id),
      );
      return [...ids, ...p.advanceTo(sh(18)).triggers.map((t) => t.id)];
    };
    expect(run(0)).toEqual([`cart_abandoned:c1:t${sh(15, 1)}`]);
    expect(run(5 * SEC)).toEqual(run(0));
    expect(run(HOUR)).toEqual(run(0));
  });
});

describe('"within 10m" includes exactly 10 minutes: timers fire once the watermark has passed them', () => {
  it('an order exactly at the due time cancels the reminder, also when another customer moved the watermark to it', () => {
    const f = new Feed(['cart_abandoned']);
    f.send('a1', 'add_to_cart', sh(14));
    f.send('x1', 'page_view', sh(14, 10, 5), {}, 'c2'); // watermark = 14:10:00.000 = the due time
    f.send('o1', 'order', sh(14, 10), { amount: 5 }); // on time: not before the watermark
    f.advance(sh(18));
    expect(f.ids()).toEqual([]);
  });
});

describe('sessions', () => {
  it('a firing without a session does not make once-per-session forget the session', () => {
    const f = new Feed(['vip_routing']);
    f.send('o1', 'order', sh(10), { amount: 1500 });
    f.send('c1', 'call', sh(11), { session: 's2' }); // routed in s2
    f.send('c2', 'call', sh(13)); // no session, 2 h later: routed by the 30-minute fallback
    f.send('m1', 'message', sh(13, 5), { session: 's2' }); // back in s2: already routed there
    expect(f.ids()).toEqual(['vip_routing:c1:c1', 'vip_routing:c1:c2']);
  });

  it('an empty session is no session: dropped when the event is decoded', () => {
    const e = decodeEvent(
      pack({ id: 'e', ts: sh(10), customer: 'c1', type: 'message', channel: 'app', session: '' }),
      'cx.events.app.message.c1',
    );
    expect(typeof e === 'object' && 'session' in e).toBe(false);
    // so it neither starts a session (the unrecognized streak goes on) nor counts as one for the rules
    const f = new Feed(['human_handoff']);
    f.send('m1', 'message', sh(10), { session: 's1', recognized: false });
    f.send('m2', 'message', sh(10, 1), { session: '', recognized: false });
    f.send('m3', 'message', sh(10, 2), { session: 's1', recognized: false });
    expect(f.ids()).toEqual(['human_handoff:c1:m3']);
  });

  it('only the customer’s own messages and session_start move the session of the unrecognized streak', () => {
    const f = new Feed(['human_handoff']);
    f.send('m1', 'message', sh(10), { session: 's1', recognized: false });
    f.send('m2', 'message', sh(10, 1), { session: 's1', recognized: false });
    f.send('b1', 'message', sh(10, 2), { session: 'bot-9', from: 'bot', text: 'how can I help?' });
    f.send('m3', 'message', sh(10, 3), { session: 's1', recognized: false });
    expect(f.ids()).toEqual(['human_handoff:c1:m3']);
  });
});

describe('customer-local time is the event’s tz, else the customer’s last known, else the default', () => {
  it('a New York customer’s 23:30 session without a tz gets the night greeting', () => {
    const f = new Feed(['night_self_service']);
    const ny = (h: number, m = 0) => Date.UTC(2026, 2, 10, h + 4, m); // EDT, UTC−4
    f.send('v1', 'page_view', ny(12), { tz: 'America/New_York' });
    f.send('s1', 'session_start', ny(23, 30), { session: 's1' });
    expect(f.ids()).toEqual(['night_self_service:c1:s1']);
  });
});

describe('the cap admits triggers released together in the order they originally fired', () => {
  it('three of four night-time marketing triggers reach the customer at 09:00: the earliest three', () => {
    const f = new Feed(['category_interest', 'cart_abandoned']);
    // Three categories reach three views at 21:10 (e3), 21:20 (e6) and 21:30 (e10); a cart at
    // 21:05 is due 21:15. All are deferred to 09:00 and released together.
    const views: Array<[string, string, number]> = [
      ['e1', 'toys', sh(21, 1)],
      ['e2', 'toys', sh(21, 2)],
      ['e3', 'toys', sh(21, 10)],
      ['e4', 'baby', sh(21, 11)],
      ['e5', 'baby', sh(21, 12)],
      ['e6', 'baby', sh(21, 20)],
      ['e7', 'books', sh(21, 21)],
      ['e8', 'books', sh(21, 22)],
      ['e10', 'books', sh(21, 30)],
    ];
    f.send('a1', 'add_to_cart', sh(21, 5));
    for (const [id, category, ts] of views) f.send(id, 'page_view', ts, { category });
    f.advance(sh(9, 0, 0, 0, 1));
    expect(f.ids()).toEqual([
      'category_interest:c1:e3',
      `cart_abandoned:c1:t${sh(21, 15)}`,
      'category_interest:c1:e6',
    ]);
    expect(f.dropped).toBe(1);
  });

  it('on the same millisecond, higher priority first, then rule id', () => {
    const f = new Feed(['cart_abandoned', 'category_interest']);
    // both fire at 21:10: cart_abandoned (priority 25) before category_interest (15)
    f.send('a1', 'add_to_cart', sh(21));
    for (const [i, t] of [sh(21, 1), sh(21, 2), sh(21, 10)].entries())
      f.send(`v${i}`, 'page_view', t, { category: 'toys' });
    f.advance(sh(9, 0, 0, 0, 1));
    expect(f.all.map((t) => t.rule)).toEqual(['cart_abandoned', 'category_interest']);
  });
});

describe('a trigger the cap drops uses up nothing', () => {
  it('no cooldown: the dropped category fires on its next view once the cap has room', () => {
    const f = new Feed(['category_interest']);
    let n = 0;
    const views = (category: string, start: number) => {
      for (let k = 0; k < 3; k++) f.send(`e${++n}`, 'page_view', start + k * MIN, { category });
    };
    views('a', sh(10));
    views('b', sh(11));
    views('c', sh(12));
    views('d', sh(13)); // the fourth within 24 h: dropped
    f.advance(sh(14));
    expect(f.all.map((t) => t.payload.category)).toEqual(['a', 'b', 'c']);
    expect(f.dropped).toBe(1);
    f.send('late-d', 'page_view', sh(10, 30, 0, 0, 1), { category: 'd' }); // the cap has room again
    f.advance(sh(11, 0, 0, 0, 1));
    expect(f.all.map((t) => t.payload.category)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('purchase occasions', () => {
  it('orders on one customer-local day are one occasion; a cycle under a day never reminds', () => {
    const split = new Feed(['repurchase_reminder']);
    split.send('o1', 'order', sh(12), { amount: 5 });
    split.send('o2', 'order', sh(12, 0, 1), { amount: 5 }); // a split order, one second later
    split.send('o3', 'order', sh(23, 59, 59, 0, 0), { amount: 5 }); // same local day
    split.advance(sh(12, 0, 0, 0, 30));
    expect(split.ids()).toEqual([]);

    const midnight = new Feed(['repurchase_reminder']);
    midnight.send('o1', 'order', sh(23, 59), { amount: 5 });
    midnight.send('o2', 'order', sh(0, 1, 0, 0, 1), { amount: 5 }); // next local day, 2 minutes later
    midnight.advance(sh(12, 0, 0, 0, 30));
    expect(midnight.ids()).toEqual([]);

    const weekly = new Feed(['repurchase_reminder']);
    weekly.send('o1', 'order', sh(12), { amount: 5 });
    weekly.send('o1b', 'order', sh(12, 30), { amount: 5 });
    weekly.send('o2', 'order', sh(12, 0, 0, 0, 7), { amount: 5 });
    weekly.advance(sh(12, 0, 0, 0, 30));
    // two occasions a week apart: reminded 0.9 × 7 days after the last order
    expect(weekly.all.map((t) => t.eventTime)).toEqual([sh(12, 0, 0, 0, 7) + Math.round(0.9 * 7 * DAY)]);
    expect(weekly.all[0]!.payload.purchaseCycleDays).toBe(7);
  });
});
