import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { type CustomerState, newCustomerState, profileOf, updateProfile } from '../../operators/profile.js';
import type { CxEvent } from '../../operators/types.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const SH = 'Asia/Shanghai';
/** 2024-01-01T00:00:00Z, a UTC day boundary. */
const T0 = Date.UTC(2024, 0, 1);
/** Noon UTC of day `d` after T0. */
const noon = (d: number): number => T0 + d * DAY + 12 * HOUR;

let seq = 0;
function ev(type: string, ts: number, extra: Partial<CxEvent> = {}): CxEvent {
  seq++;
  return { id: `e${seq}`, ts, customer: 'c1', type, channel: 'web', ...extra };
}

function stateOf(events: CxEvent[], defaultTz = SH): CustomerState {
  const s = newCustomerState('c1');
  for (const e of events) updateProfile(s, e, defaultTz);
  return s;
}

const order = (ts: number, amount: number, extra: Partial<CxEvent> = {}): CxEvent =>
  ev('order', ts, { amount, ...extra });
const msg = (ts: number, extra: Partial<CxEvent> = {}): CxEvent => ev('message', ts, extra);

describe('profile: a new customer', () => {
  it('has empty values and the New tier', () => {
    const p = profileOf(newCustomerState('c9'), T0);
    expect(p).toEqual({
      customer: 'c9',
      firstSeen: 0,
      lastSeen: 0,
      lastOrderAt: null,
      lastOrderId: null,
      lastOrderAmount: null,
      orders: 0,
      spend: 0,
      orders365d: 0,
      spend365d: 0,
      spend90d: 0,
      spend30d: 0,
      recencyDays: null,
      rfm: { r: 0, f: 0, m: 0, score: 0 },
      tier: 'New',
      purchaseCycleDays: null,
      preferredChannel: null,
      activeHours: new Array(24).fill(0),
      categoryViews30d: {},
      sentimentAvg: null,
      sentimentLast: null,
      negatives7d: 0,
      unrecognizedStreak: 0,
      complaints30d: 0,
      region: null,
      session: null,
      tags: ['tier:New', 'rfm:low'],
    });
  });
});

describe('profile: seen times and orders', () => {
  it('keeps min/max event time for out-of-order events', () => {
    const s = stateOf([
      ev('login', noon(5)),
      ev('login', noon(2)),
      ev('login', noon(9)),
      ev('login', noon(3)),
    ]);
    const p = profileOf(s, noon(9));
    expect(p.firstSeen).toBe(noon(2));
    expect(p.lastSeen).toBe(noon(9));
  });

  it('counts lifetime orders and spend; the last order is the latest in event time', () => {
    const s = stateOf([
      order(noon(1), 120.5, { orderId: 'o-1' }),
      order(noon(10), 80, { orderId: 'o-10' }),
      order(noon(4), 10), // late: counts, but is not the last order
    ]);
    const p = profileOf(s, noon(10));
    expect(p.orders).toBe(3);
    expect(p.spend).toBe(210.5);
    expect(p.lastOrderAt).toBe(noon(10));
    expect(p.lastOrderId).toBe('o-10');
    expect(p.lastOrderAmount).toBe(80);
  });

  it('uses the event id when the order has no orderId, and null amount when it has none', () => {
    const e = ev('order', noon(1));
    const p = profileOf(stateOf([e]), noon(1));
    expect(p.lastOrderId).toBe(e.id);
    expect(p.lastOrderAmount).toBeNull();
    expect(p.orders).toBe(1);
    expect(p.spend).toBe(0);
  });

  it('sums money exactly (in cents)', () => {
    const p = profileOf(stateOf([order(noon(1), 0.1), order(noon(1), 0.2)]), noon(1));
    expect(p.spend).toBe(0.3);
  });

  it.each([
    ['spend30d', 30],
    ['spend90d', 90],
    ['spend365d', 365],
  ] as const)('%s includes an order just inside the window and drops it just outside', (field, days) => {
    const ts = noon(400);
    const s = stateOf([order(ts, 50)]);
    expect(profileOf(s, ts + days * DAY - 1)[field]).toBe(50);
    expect(profileOf(s, ts + days * DAY)[field]).toBe(0);
    expect(profileOf(s, ts + days * DAY).spend).toBe(50);
  });

  it('orders365d counts orders with ts > now - 365 days', () => {
    const s = stateOf([order(noon(0), 1), order(noon(100), 1), order(noon(200), 1)]);
    expect(profileOf(s, noon(365) - 1).orders365d).toBe(3);
    expect(profileOf(s, noon(365)).orders365d).toBe(2);
    expect(profileOf(s, noon(565)).orders365d).toBe(0);
  });

  it('prunes orders older than 365 days before the latest event, but keeps them in lifetime totals', () => {
    const s = stateOf([order(noon(0), 10), order(noon(10), 20), ev('login', noon(370))]);
    expect(s.orderTs).toEqual([noon(10)]);
    // A very late order beyond the window is counted for life but never kept.
    updateProfile(s, order(noon(1), 5), SH);
    expect(s.orderTs).toEqual([noon(10)]);
    const p = profileOf(s, noon(370));
    expect(p.orders).toBe(3);
    expect(p.spend).toBe(35);
    expect(p.orders365d).toBe(1);
    expect(p.spend365d).toBe(20);
  });

  it('recencyDays is whole days since the last order, never negative', () => {
    const s = stateOf([order(noon(10), 5)]);
    expect(profileOf(s, noon(10)).recencyDays).toBe(0);
    expect(profileOf(s, noon(17) - 1).recencyDays).toBe(6);
    expect(profileOf(s, noon(17)).recencyDays).toBe(7);
    expect(profileOf(s, noon(5)).recencyDays).toBe(0);
  });

  it('purchaseCycleDays is the mean gap between orders (needs 2), in any arrival order', () => {
    expect(profileOf(stateOf([order(noon(0), 1)]), noon(0)).purchaseCycleDays).toBeNull();
    const p = profileOf(stateOf([order(noon(30), 1), order(noon(0), 1), order(noon(10), 1)]), noon(30));
    expect(p.purchaseCycleDays).toBe(15);
    const q = profileOf(stateOf([order(noon(0), 1), order(noon(1) + 12 * HOUR, 1)]), noon(2));
    expect(q.purchaseCycleDays).toBe(1.5);
  });
});

describe('profile: RFM and tier', () => {
  it('tier: 999.99 is Regular, 1000 is VIP, no order is New', () => {
    expect(profileOf(stateOf([order(noon(0), 999.99)]), noon(0)).tier).toBe('Regular');
    expect(profileOf(stateOf([order(noon(0), 1000)]), noon(0)).tier).toBe('VIP');
    expect(
      profileOf(stateOf([order(noon(0), 333.33), order(noon(0), 333.33), order(noon(0), 333.34)]), noon(0))
        .tier,
    ).toBe('VIP');
    expect(profileOf(stateOf([ev('login', noon(0))]), noon(0)).tier).toBe('New');
  });

  it('tier uses lifetime spend, m uses spend365d', () => {
    const s = stateOf([order(noon(0), 1500), order(noon(400), 10)]);
    const p = profileOf(s, noon(400));
    expect(p.tier).toBe('VIP');
    expect(p.rfm.m).toBe(0);
  });

  it('r drops one point per whole week since the last order, 0 without orders', () => {
    const s = stateOf([order(noon(0), 1)]);
    expect(profileOf(s, noon(6)).rfm.r).toBe(10);
    expect(profileOf(s, noon(7)).rfm.r).toBe(9);
    expect(profileOf(s, noon(69)).rfm.r).toBe(1);
    expect(profileOf(s, noon(70)).rfm.r).toBe(0);
    expect(profileOf(s, noon(300)).rfm.r).toBe(0);
    expect(profileOf(stateOf([ev('login', noon(0))]), noon(0)).rfm.r).toBe(0);
  });

  it('f = floor(orders365d / 5), capped at 10', () => {
    const orders = (n: number): CxEvent[] => Array.from({ length: n }, (_, i) => order(noon(i % 300), 1));
    expect(profileOf(stateOf(orders(4)), noon(300)).rfm.f).toBe(0);
    expect(profileOf(stateOf(orders(5)), noon(300)).rfm.f).toBe(1);
    expect(profileOf(stateOf(orders(49)), noon(300)).rfm.f).toBe(9);
    expect(profileOf(stateOf(orders(60)), noon(300)).rfm.f).toBe(10);
  });

  it('m = floor(spend365d / 1000), capped at 10', () => {
    expect(profileOf(stateOf([order(noon(0), 999.99)]), noon(0)).rfm.m).toBe(0);
    expect(profileOf(stateOf([order(noon(0), 1000)]), noon(0)).rfm.m).toBe(1);
    expect(profileOf(stateOf([order(noon(0), 9999.99)]), noon(0)).rfm.m).toBe(9);
    expect(profileOf(stateOf([order(noon(0), 50_000)]), noon(0)).rfm.m).toBe(10);
  });

  it('score = 0.4 r + 0.3 f + 0.3 m, banded high >= 7, mid >= 4, low below', () => {
    const high = profileOf(stateOf([order(noon(0), 10_000)]), noon(0));
    expect(high.rfm).toEqual({ r: 10, f: 0, m: 10, score: 7 });
    expect(high.tags).toContain('rfm:high');

    const mid = profileOf(stateOf([order(noon(0), 999.99)]), noon(0));
    expect(mid.rfm).toEqual({ r: 10, f: 0, m: 0, score: 4 });
    expect(mid.tags).toContain('rfm:mid');

    const almostHigh = profileOf(stateOf([order(noon(0), 9999.99)]), noon(0));
    expect(almostHigh.rfm.score).toBe(6.7);
    expect(almostHigh.tags).toContain('rfm:mid');

    const low = profileOf(stateOf([order(noon(0), 1000)]), noon(7));
    expect(low.rfm).toEqual({ r: 9, f: 0, m: 1, score: 3.9 });
    expect(low.tags).toContain('rfm:low');
  });
});

describe('profile: contacts, channels and hours', () => {
  it('counts session_start, call and customer messages as contacts; not agent/bot messages or views', () => {
    const ts = T0 + 2 * HOUR; // 10:00 Shanghai
    const s = stateOf([
      ev('session_start', ts),
      ev('call', ts),
      msg(ts),
      msg(ts, { from: 'customer' }),
      msg(ts, { from: 'agent' }),
      msg(ts, { from: 'bot' }),
      ev('page_view', ts, { category: 'toys' }),
      ev('order', ts, { amount: 1 }),
    ]);
    const p = profileOf(s, ts);
    expect(p.activeHours[10]).toBe(4);
    expect(p.activeHours.reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('buckets contacts by the event tz, else the default tz, and unknown zones as the default', () => {
    const ts = T0 + 14 * HOUR; // 22:00 Shanghai, 09:00 New York (EST)
    const p = profileOf(
      stateOf([
        ev('call', ts),
        ev('call', ts, { tz: 'America/New_York' }),
        ev('call', ts, { tz: 'Not/AZone' }),
        ev('call', ts, { tz: 'UTC' }),
      ]),
      ts,
    );
    expect(p.activeHours[22]).toBe(2);
    expect(p.activeHours[9]).toBe(1);
    expect(p.activeHours[14]).toBe(1);
  });

  it('preferredChannel: most contacts in 90 days; ties go to the most recent contact', () => {
    const s = stateOf([
      ev('call', noon(0), { channel: 'phone' }),
      ev('call', noon(0) + 1, { channel: 'phone' }),
      ev('call', noon(0) + 2, { channel: 'phone' }),
      ev('session_start', noon(50), { channel: 'app' }),
      msg(noon(60), { channel: 'wechat' }),
      msg(noon(61), { channel: 'app' }),
      msg(noon(62), { channel: 'wechat', from: 'agent' }),
    ]);
    expect(profileOf(s, noon(61)).preferredChannel).toBe('phone');
    // Day-0 phone bucket still overlaps (now − 90d, now] until day 91 begins.
    expect(profileOf(s, T0 + 91 * DAY - 1).preferredChannel).toBe('phone');
    // Then app (2) beats wechat (1).
    expect(profileOf(s, T0 + 91 * DAY).preferredChannel).toBe('app');
    updateProfile(s, msg(noon(63), { channel: 'wechat' }), SH);
    // app 2, wechat 2: wechat had the most recent contact.
    expect(profileOf(s, T0 + 91 * DAY).preferredChannel).toBe('wechat');
    // A late app contact does not make app the most recent.
    updateProfile(s, msg(noon(55), { channel: 'app' }), SH);
    updateProfile(s, msg(noon(40), { channel: 'wechat' }), SH);
    expect(profileOf(s, T0 + 91 * DAY).preferredChannel).toBe('wechat');
  });
});

describe('profile: page views, sentiment, complaints (day buckets)', () => {
  it('categoryViews30d counts views whose UTC day overlaps the last 30 days', () => {
    const s = stateOf([
      ev('page_view', noon(0), { category: 'baby' }),
      ev('page_view', noon(0) + HOUR, { category: 'baby' }),
      ev('page_view', noon(20), { category: 'toys' }),
      ev('page_view', noon(21)), // no category: ignored
    ]);
    expect(profileOf(s, noon(21)).categoryViews30d).toEqual({ baby: 2, toys: 1 });
    // Bucket granularity is one day: day 0 still overlaps until day 31 begins.
    expect(profileOf(s, T0 + 31 * DAY - 1).categoryViews30d).toEqual({ baby: 2, toys: 1 });
    expect(profileOf(s, T0 + 31 * DAY).categoryViews30d).toEqual({ toys: 1 });
    expect(profileOf(s, T0 + 51 * DAY).categoryViews30d).toEqual({});
  });

  it('takes categories from events safely, even "__proto__"', () => {
    const p = profileOf(stateOf([ev('page_view', noon(0), { category: '__proto__' })]), noon(0));
    expect(Object.keys(p.categoryViews30d)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(p.categoryViews30d)).toBe(Object.prototype);
    expect(p.tags).toContain('likes:__proto__');
  });

  it('drops view buckets that fall out of the window once newer events arrive; late ones beyond it are ignored', () => {
    const s = stateOf([ev('page_view', noon(0), { category: 'baby' }), ev('login', noon(40))]);
    expect(s.views.d).toEqual([]);
    updateProfile(s, ev('page_view', noon(5), { category: 'baby' }), SH);
    expect(s.views.d).toEqual([]);
    updateProfile(s, ev('page_view', noon(10), { category: 'baby' }), SH);
    expect(profileOf(s, noon(40)).categoryViews30d).toEqual({ baby: 1 });
  });

  it('sentimentAvg is the mean of the last 20 customer-message sentiments; sentimentLast the latest', () => {
    const events: CxEvent[] = [];
    for (let i = 0; i < 5; i++) events.push(msg(noon(0) + i, { sentiment: -1 }));
    for (let i = 0; i < 20; i++) events.push(msg(noon(1) + i, { sentiment: i % 2 === 0 ? 0.5 : 0 }));
    events.push(msg(noon(2), { from: 'agent', sentiment: -1 }));
    events.push(msg(noon(2), { sentiment: Number.NaN }));
    const p = profileOf(stateOf(events), noon(2));
    expect(p.sentimentAvg).toBeCloseTo(0.25, 12);
    expect(p.sentimentLast).toBe(0);
    const q = profileOf(
      stateOf([msg(noon(3), { sentiment: 0.8 }), msg(noon(2), { sentiment: -0.2 })]),
      noon(3),
    );
    expect(q.sentimentLast).toBe(0.8);
    expect(q.sentimentAvg).toBeCloseTo(0.3, 12);
  });

  it('negatives7d counts customer messages with sentiment < -0.3 over 7 days (day buckets)', () => {
    const s = stateOf([
      msg(noon(0), { sentiment: -0.31 }),
      msg(noon(0), { sentiment: -0.3 }), // not below -0.3
      msg(noon(3), { sentiment: -0.9 }),
      msg(noon(3), { sentiment: -0.9, from: 'agent' }),
    ]);
    expect(profileOf(s, noon(3)).negatives7d).toBe(2);
    expect(profileOf(s, T0 + 8 * DAY - 1).negatives7d).toBe(2);
    expect(profileOf(s, T0 + 8 * DAY).negatives7d).toBe(1);
    expect(profileOf(s, T0 + 11 * DAY).negatives7d).toBe(0);
  });

  it('complaints30d counts complaint events over 30 days (day buckets)', () => {
    const s = stateOf([ev('complaint', noon(0)), ev('complaint', noon(0)), ev('complaint', noon(29))]);
    expect(profileOf(s, noon(29)).complaints30d).toBe(3);
    expect(profileOf(s, T0 + 31 * DAY - 1).complaints30d).toBe(3);
    expect(profileOf(s, T0 + 31 * DAY).complaints30d).toBe(1);
    expect(profileOf(s, T0 + 60 * DAY).complaints30d).toBe(0);
  });
});

describe('profile: sessions and the unrecognized streak', () => {
  it('counts consecutive unrecognized customer messages; a recognized (or unmarked) one resets', () => {
    const s = newCustomerState('c1');
    const at = (i: number): number => noon(0) + i * 1000;
    updateProfile(s, msg(at(1), { session: 's1', recognized: false }), SH);
    updateProfile(s, msg(at(2), { session: 's1', recognized: false }), SH);
    updateProfile(s, msg(at(3), { session: 's1', from: 'bot' }), SH); // bot messages do not count
    updateProfile(s, msg(at(4), { recognized: false }), SH); // no session id: same session
    expect(profileOf(s, at(4)).unrecognizedStreak).toBe(3);
    expect(profileOf(s, at(4)).session).toBe('s1');
    updateProfile(s, msg(at(5), { session: 's1', recognized: true }), SH);
    expect(profileOf(s, at(5)).unrecognizedStreak).toBe(0);
    updateProfile(s, msg(at(6), { session: 's1', recognized: false }), SH);
    updateProfile(s, msg(at(7), { session: 's1' }), SH); // recognized missing: resets
    expect(profileOf(s, at(7)).unrecognizedStreak).toBe(0);
  });

  it('a new session (session_start or another session id) resets the streak', () => {
    const s = newCustomerState('c1');
    const at = (i: number): number => noon(0) + i * 1000;
    updateProfile(s, msg(at(1), { session: 's1', recognized: false }), SH);
    updateProfile(s, msg(at(2), { session: 's1', recognized: false }), SH);
    updateProfile(s, msg(at(3), { session: 's2', recognized: false }), SH);
    expect(profileOf(s, at(3)).unrecognizedStreak).toBe(1);
    expect(profileOf(s, at(3)).session).toBe('s2');
    updateProfile(s, msg(at(4), { session: 's2', recognized: false }), SH);
    expect(profileOf(s, at(4)).unrecognizedStreak).toBe(2);
    updateProfile(s, ev('session_start', at(5)), SH);
    expect(profileOf(s, at(5)).unrecognizedStreak).toBe(0);
    expect(profileOf(s, at(5)).session).toBe('s2');
    updateProfile(s, msg(at(6), { recognized: false }), SH);
    updateProfile(s, ev('session_start', at(7), { session: 's3' }), SH);
    expect(profileOf(s, at(7)).unrecognizedStreak).toBe(0);
    expect(profileOf(s, at(7)).session).toBe('s3');
  });

  it('region is the latest region in event time', () => {
    const s = stateOf([
      ev('login', noon(5), { region: 'east' }),
      ev('login', noon(1), { region: 'west' }),
      ev('login', noon(6)),
    ]);
    expect(profileOf(s, noon(6)).region).toBe('east');
    expect(s.tz).toBeNull();
  });
});

describe('profile: tags', () => {
  it('lists basic, behaviour and value tags in a fixed order', () => {
    const ts = T0 + 14 * HOUR; // 22:00 Shanghai
    const s = stateOf([
      ev('session_start', ts, { region: 'north', channel: 'wechat' }),
      msg(ts + 1, { channel: 'wechat' }),
      ev('page_view', ts, { category: 'toys' }),
      ev('page_view', ts, { category: 'baby' }),
      ev('page_view', ts, { category: 'baby' }),
      ev('page_view', ts, { category: 'books' }),
      ev('page_view', ts, { category: 'audio' }),
      order(ts, 10_000),
    ]);
    expect(profileOf(s, ts).tags).toEqual([
      'region:north',
      'channel:wechat',
      'night_owl',
      'likes:baby',
      'likes:audio',
      'likes:books',
      'tier:VIP',
      'rfm:high',
    ]);
  });

  it('night_owl needs more than half of contacts between 22:00 and 08:00 customer-local', () => {
    const night = T0 + 14 * HOUR; // 22:00 Shanghai, 09:00 New York
    const day = T0 + 4 * HOUR; // 12:00 Shanghai, 23:00 New York
    const tags = (events: CxEvent[], tz: string): string[] => profileOf(stateOf(events, tz), night).tags;
    expect(tags([ev('call', night), ev('call', night + 1)], SH)).toContain('night_owl');
    expect(tags([ev('call', night), ev('call', night + 1)], 'America/New_York')).not.toContain('night_owl');
    expect(
      tags([ev('call', night, { tz: SH }), ev('call', night, { tz: SH })], 'America/New_York'),
    ).toContain('night_owl');
    expect(tags([ev('call', night), ev('call', day)], SH)).not.toContain('night_owl');
    expect(tags([ev('call', night), ev('call', night), ev('call', day)], SH)).toContain('night_owl');
    // 07:59 is night, 08:00 is day, 22:00 is night (Shanghai = UTC+8).
    expect(tags([ev('call', T0 - 1)], SH)).toContain('night_owl');
    expect(tags([ev('call', T0)], SH)).not.toContain('night_owl');
    expect(tags([ev('call', T0 - 10 * HOUR)], SH)).toContain('night_owl');
    expect(tags([ev('call', T0 - 10 * HOUR - 1)], SH)).not.toContain('night_owl');
  });

  it('likes: top three categories by views, ties by name', () => {
    const views = ['d', 'c', 'b', 'a', 'a', 'e', 'e'].map((c) => ev('page_view', noon(0), { category: c }));
    expect(profileOf(stateOf(views), noon(0)).tags.filter((t) => t.startsWith('likes:'))).toEqual([
      'likes:a',
      'likes:e',
      'likes:b',
    ]);
  });

  it('churn_risk when 30 days or more have passed since the last event', () => {
    const s = stateOf([ev('login', noon(0))]);
    expect(profileOf(s, noon(30) - 1).tags).not.toContain('churn_risk');
    expect(profileOf(s, noon(30)).tags).toContain('churn_risk');
  });
});

describe('profile: order independence', () => {
  const arbEvent = fc.record({
    day: fc.integer({ min: 0, max: 800 }),
    ms: fc.integer({ min: 0, max: DAY - 1 }),
    type: fc.constantFrom('order', 'message', 'page_view', 'call', 'session_start', 'complaint', 'login'),
    cents: fc.integer({ min: 0, max: 500_000 }),
    channel: fc.constantFrom('web', 'app', 'phone'),
  });

  it('orders, spend, spend365d, firstSeen and lastSeen do not depend on arrival order', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { minLength: 1, maxLength: 60 }), fc.nat(), (specs, seed) => {
        const events = specs.map((x, i) => ({
          id: `e${i}`,
          ts: T0 + x.day * DAY + x.ms,
          customer: 'c1',
          type: x.type,
          channel: x.channel,
          ...(x.type === 'order' ? { amount: x.cents / 100 } : {}),
        }));
        const sorted = [...events].sort((a, b) => a.ts - b.ts);
        // A seeded shuffle, so fast-check can shrink and replay it.
        const shuffled = [...events];
        let r = seed;
        for (let i = shuffled.length - 1; i > 0; i--) {
          r = (r * 1_103_515_245 + 12_345) % 2_147_483_648;
          const j = r % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const now = sorted.at(-1)!.ts;
        const a = profileOf(stateOf(sorted), now);
        const b = profileOf(stateOf(shuffled), now);
        expect({ o: b.orders, s: b.spend, s365: b.spend365d, f: b.firstSeen, l: b.lastSeen }).toEqual({
          o: a.orders,
          s: a.spend,
          s365: a.spend365d,
          f: a.firstSeen,
          l: a.lastSeen,
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('profile: state size and cost', () => {
  /** A month of a typical customer: ~10 sessions, a few orders, views, complaints. */
  function typicalMonth(): CxEvent[] {
    const events: CxEvent[] = [];
    for (let d = 0; d < 30; d += 3) {
      const ts = noon(d);
      const session = `s${d}`;
      events.push(ev('session_start', ts, { session, region: 'east', tz: SH, channel: 'app' }));
      events.push(msg(ts + 1000, { session, sentiment: 0.2, recognized: true, channel: 'app' }));
      events.push(msg(ts + 2000, { session, sentiment: -0.5, recognized: false, channel: 'app' }));
      events.push(ev('page_view', ts + 3000, { category: d % 2 ? 'baby' : 'toys', channel: 'app' }));
      events.push(ev('session_end', ts + 4000, { session, channel: 'app' }));
      if (d % 9 === 0) events.push(order(ts + 5000, 199.9, { orderId: `order-${d}` }));
    }
    events.push(ev('complaint', noon(20)));
    events.push(ev('call', noon(21), { channel: 'phone' }));
    return events;
  }

  it('a typical customer snapshots to under 1 KB and restores to the same profile', () => {
    const s = stateOf(typicalMonth());
    const bytes = pack(s);
    expect(bytes.length).toBeLessThan(1024);
    const restored = unpack(bytes) as CustomerState;
    expect(profileOf(restored, noon(30))).toEqual(profileOf(s, noon(30)));
    // The restored state keeps working.
    updateProfile(restored, order(noon(31), 1), SH);
    expect(profileOf(restored, noon(31)).orders).toBe(5);
  });
});
