/**
 * The analyst views (sinks/views.ts) on the real ClickHouse engine (chDB in a temporary directory),
 * each on a small data set of its own whose expected numbers are worked out by hand in the
 * comments. Every data set is inserted twice with merges stopped: the views read FINAL, so
 * repeated inserts after a crash must not change a number.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow, Trigger } from '../../operators/types.js';
import { ensureSchema, openClickHouse } from '../../sinks/clickhouse.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { eventRow as ev, triggerRow as trigger } from '../harness/eventRows.js';

let dir: string;
let client: ClickHouseClient;
let dbCounter = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-views-'));
  client = openClickHouse(`embedded:${dir}/clickhouse`);
});

afterAll(async () => {
  await client?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const MIN = 60_000;
const H = 60 * MIN;
const D = 24 * H;
/** 2024-01-10 09:00:00 UTC. */
const T0 = Date.UTC(2024, 0, 10, 9);
const JANUARY = "from_date = '2024-01-01', to_date = '2024-01-31'";

/** A fresh database holding `events` and `triggers`, each inserted twice (merges stopped). */
async function load(events: EventRow[], triggers: Trigger[] = []): Promise<string> {
  const db = `cxviews_${process.pid}_${++dbCounter}`;
  await ensureSchema(client, db);
  await client.command({ query: `SYSTEM STOP MERGES ${db}.events` });
  await client.command({ query: `SYSTEM STOP MERGES ${db}.triggers` });
  const writer = new ClickHouseWriter(client, { database: db, flushIntervalMs: 10 });
  for (let copy = 0; copy < 2; copy++) {
    await Promise.all([writer.writeEvents(events), writer.writeTriggers(triggers)]);
  }
  await writer.close();
  const [n] = await rows<{ n: string }>(`SELECT count() AS n FROM ${db}.events`);
  expect(Number(n!.n)).toBe(2 * events.length);
  return db;
}

async function rows<T>(query: string): Promise<T[]> {
  return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
}

/** Rows with their numeric strings (UInt64 in JSON) turned into numbers. */
async function numbers(query: string): Promise<Record<string, unknown>[]> {
  return (await rows<Record<string, unknown>>(query)).map((r) =>
    Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v]),
    ),
  );
}

describe('funnel view', () => {
  /**
   *   f1 web/A   page_view (source ad) 1 h before; session_start, cart +1h, order +2h      → 3
   *   f2 web/A   session_start, cart +1h                                                   → 2
   *   f3 app/A   customer message                                                          → 1
   *   f4 app/B   session_start (source search), cart +1h, order +3h                        → 3
   *   f5 phone/B call, order +1h (no cart)                                                 → 1
   */
  const events = () => [
    ev('f1', 'page_view', T0 - H, { source: 'ad' }),
    ev('f1', 'session_start', T0, { variant: 'A' }),
    ev('f1', 'add_to_cart', T0 + H),
    ev('f1', 'order', T0 + 2 * H, { amount: 10 }),
    ev('f2', 'session_start', T0, { variant: 'A' }),
    ev('f2', 'add_to_cart', T0 + H),
    ev('f3', 'message', T0, { channel: 'app', from: 'customer', variant: 'A' }),
    ev('f4', 'session_start', T0, { channel: 'app', variant: 'B', source: 'search' }),
    ev('f4', 'add_to_cart', T0 + H, { channel: 'app' }),
    ev('f4', 'order', T0 + 3 * H, { channel: 'app', amount: 20 }),
    ev('f5', 'call', T0, { channel: 'phone', variant: 'B' }),
    ev('f5', 'order', T0 + H, { channel: 'phone', amount: 30 }),
  ];

  it('counts each step per dimension, with the step conversions', async () => {
    const db = await load(events());
    const got = await numbers(`SELECT * FROM ${db}.funnel(${JANUARY}) ORDER BY dimension, key`);
    // cart_pct = cart / consulted, cart_to_order_pct = ordered / cart, conversion_pct = ordered / consulted
    const row = (
      dimension: string,
      key: string,
      c: number,
      a: number,
      o: number,
      p: [number, number | null, number],
    ) => ({
      dimension,
      key,
      consulted: c,
      added_to_cart: a,
      ordered: o,
      cart_pct: p[0],
      cart_to_order_pct: p[1],
      conversion_pct: p[2],
    });
    expect(got).toEqual([
      row('all', 'all', 5, 3, 2, [60, 66.7, 40]), // f1..f5; carts f1 f2 f4; orders f1 f4
      row('channel', 'app', 2, 1, 1, [50, 100, 50]), // f3 f4
      row('channel', 'phone', 1, 0, 0, [0, null, 0]), // f5: its order had no cart
      row('channel', 'web', 2, 2, 1, [100, 50, 50]), // f1 f2
      row('source', '(none)', 3, 1, 0, [33.3, 0, 0]), // f2 f3 f5
      row('source', 'ad', 1, 1, 1, [100, 100, 100]), // f1: first touch was the page view
      row('source', 'search', 1, 1, 1, [100, 100, 100]), // f4
      row('variant', 'A', 3, 2, 1, [66.7, 50, 33.3]), // f1 f2 f3
      row('variant', 'B', 2, 1, 1, [50, 100, 50]), // f4 f5
    ]);
  });

  it('returns the ClickHouse error for a bad or missing parameter', async () => {
    const db = await load(events());
    await expect(
      rows(`SELECT * FROM ${db}.funnel(from_date = 'last week', to_date = '2024-01-31')`),
    ).rejects.toMatchObject({ type: 'CANNOT_PARSE_DATE' });
    await expect(rows(`SELECT * FROM ${db}.funnel(from_date = '2024-01-01')`)).rejects.toMatchObject({
      type: 'UNKNOWN_QUERY_PARAMETER',
    });
  });
});

describe('script_ranking view', () => {
  /** `n` customers of `variant`, the first `ordered` of them with a cart and an order. */
  function cohort(variant: string, n: number, ordered: number): EventRow[] {
    return Array.from({ length: n }, (_, i) => {
      const c = `${variant}${i}`;
      const start = ev(c, 'session_start', T0 + i * MIN, { variant });
      return i < ordered
        ? [start, ev(c, 'add_to_cart', T0 + i * MIN + H), ev(c, 'order', T0 + i * MIN + 2 * H)]
        : [start];
    }).flat();
  }

  it('ranks variants by the lower bound of their conversion, not by the rate alone', async () => {
    const db = await load([
      ...cohort('A', 3, 1),
      ...cohort('C', 1, 1),
      ...cohort('D', 5, 4),
      ...cohort('', 2, 2),
    ]);
    // Wilson 95 % lower bound (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.96:
    //   D 4/5: (0.8 + 0.38416 - 1.96·0.26536) / 1.76832 = 0.3755  → 37.6
    //   C 1/1: (1 + 1.9208 - 1.96·0.98) / 4.8416          = 0.2065  → 20.7
    //   A 1/3: (0.33333 + 0.64027 - 1.96·0.42519) / 2.28053 = 0.0615 → 6.1
    // C converts 100 % of one customer, D 80 % of five: D ranks first. No variant: not ranked.
    expect(await numbers(`SELECT * FROM ${db}.script_ranking(${JANUARY}) ORDER BY rank`)).toEqual([
      {
        rank: 1,
        variant: 'D',
        customers: 5,
        added_to_cart: 4,
        ordered: 4,
        conversion_pct: 80,
        conversion_low_pct: 37.6,
      },
      {
        rank: 2,
        variant: 'C',
        customers: 1,
        added_to_cart: 1,
        ordered: 1,
        conversion_pct: 100,
        conversion_low_pct: 20.7,
      },
      {
        rank: 3,
        variant: 'A',
        customers: 3,
        added_to_cart: 1,
        ordered: 1,
        conversion_pct: 33.3,
        conversion_low_pct: 6.1,
      },
    ]);
    expect(
      await rows(`SELECT * FROM ${db}.script_ranking(from_date = '2024-02-01', to_date = '2024-02-29')`),
    ).toEqual([]);
  });
});

describe('trigger_response view', () => {
  /**
   * r1: u1 (order 2 days after), u2 (fired twice; orders 3 days before and 8 days after the first),
   *     u3 (orders exactly 7 days before and exactly 7 days after), u4 (no order).
   * r2: u1 a day later (the order 1 day after), u6 (no order of its own; u7 ordered), u5 in February.
   */
  const events = () => [
    ev('u1', 'order', T0 + 2 * D),
    ev('u2', 'order', T0 - 3 * D),
    ev('u2', 'order', T0 + 8 * D),
    ev('u3', 'order', T0 - 7 * D),
    ev('u3', 'order', T0 + 7 * D),
    ev('u7', 'order', T0 + H),
    ev('u1', 'add_to_cart', T0 + D), // not an order
  ];
  const triggers = () => [
    trigger('r1', 'u1', T0),
    trigger('r1', 'u2', T0),
    trigger('r1', 'u2', T0 + D),
    trigger('r1', 'u3', T0),
    trigger('r1', 'u4', T0),
    trigger('r2', 'u1', T0 + D),
    trigger('r2', 'u6', T0),
    trigger('r2', 'u5', Date.UTC(2024, 1, 5)),
  ];

  it('compares orders within 7 days after the first trigger with the 7 days before it', async () => {
    const db = await load(events(), triggers());
    expect(await numbers(`SELECT * FROM ${db}.trigger_response(${JANUARY}) ORDER BY rule`)).toEqual([
      // after: u1, u3 (7 days is within); before: u2, u3 (7 days is within)
      {
        rule: 'r1',
        customers: 4,
        triggers: 5,
        ordered_within_7d: 2,
        response_pct: 50,
        ordered_7d_before: 2,
        before_pct: 50,
        lift_pts: 0,
      },
      // after: u1 only (u7's order is not u6's); u5 fired in February
      {
        rule: 'r2',
        customers: 2,
        triggers: 2,
        ordered_within_7d: 1,
        response_pct: 50,
        ordered_7d_before: 0,
        before_pct: 0,
        lift_pts: 50,
      },
    ]);
    // From 01-11 only u2's second r1 trigger is in range: its 01-07 order is before, its 01-18
    // order is exactly 7 days after. r2 keeps u1.
    expect(
      await numbers(
        `SELECT rule, customers, triggers, ordered_within_7d, ordered_7d_before, lift_pts
         FROM ${db}.trigger_response(from_date = '2024-01-11', to_date = '2024-01-31') ORDER BY rule`,
      ),
    ).toEqual([
      { rule: 'r1', customers: 1, triggers: 1, ordered_within_7d: 1, ordered_7d_before: 1, lift_pts: 0 },
      { rule: 'r2', customers: 1, triggers: 1, ordered_within_7d: 1, ordered_7d_before: 0, lift_pts: 100 },
    ]);
  });
});

describe('complaint_hotspots view', () => {
  it('counts complaints and complaining customers per region and UTC hour', async () => {
    const db = await load([
      ev('k1', 'complaint', T0, { region: 'east' }),
      ev('k2', 'complaint', T0 + 10 * MIN, { region: 'east' }),
      ev('k1', 'complaint', T0 + H, { region: 'east' }),
      ev('k1', 'complaint', T0 + H + 59 * MIN, { region: 'east' }),
      ev('k3', 'complaint', T0 + 5 * MIN, { region: 'west' }),
      ev('k4', 'complaint', T0, { region: '' }),
      ev('k5', 'message', T0, { region: 'east' }), // not a complaint
    ]);
    expect(
      await numbers(
        `SELECT region, toString(hour) AS hour, complaints, customers FROM ${db}.complaint_hotspots ORDER BY region, hour`,
      ),
    ).toEqual([
      { region: '(none)', hour: '2024-01-10 09:00:00', complaints: 1, customers: 1 },
      { region: 'east', hour: '2024-01-10 09:00:00', complaints: 2, customers: 2 },
      { region: 'east', hour: '2024-01-10 10:00:00', complaints: 2, customers: 1 },
      { region: 'west', hour: '2024-01-10 09:00:00', complaints: 1, customers: 1 },
    ]);
  });
});

describe('staffing_load view', () => {
  it('counts contact events per day, customer-local hour, channel and region', async () => {
    const db = await load([
      // s1: two contacts at local 17 (session_start and a customer message); the agent's message,
      // the session end and the page view are not contacts.
      ev('s1', 'session_start', T0, { region: 'east', session: 'q', local_hour: 17 }),
      ev('s1', 'message', T0 + MIN, { region: 'east', session: 'q', from: 'customer', local_hour: 17 }),
      ev('s1', 'message', T0 + 2 * MIN, { region: 'east', session: 'q', from: 'agent', local_hour: 17 }),
      ev('s1', 'session_end', T0 + 3 * MIN, { region: 'east', session: 'q', local_hour: 17 }),
      ev('s1', 'page_view', T0 + 4 * MIN, { region: 'east', local_hour: 17 }),
      ev('s2', 'call', T0, { channel: 'app', region: 'east', local_hour: 17 }),
      ev('s3', 'message', T0 + D, { region: 'west', from: '', local_hour: 9 }),
      ev('s4', 'session_start', T0 + D, { region: 'east', local_hour: 17 }),
    ]);
    expect(
      await numbers(
        `SELECT toString(day) AS day, local_hour, channel, region, contacts, customers
         FROM ${db}.staffing_load ORDER BY day, local_hour, channel, region`,
      ),
    ).toEqual([
      { day: '2024-01-10', local_hour: 17, channel: 'app', region: 'east', contacts: 1, customers: 1 },
      { day: '2024-01-10', local_hour: 17, channel: 'web', region: 'east', contacts: 2, customers: 1 },
      { day: '2024-01-11', local_hour: 9, channel: 'web', region: 'west', contacts: 1, customers: 1 },
      { day: '2024-01-11', local_hour: 17, channel: 'web', region: 'east', contacts: 1, customers: 1 },
    ]);
  });
});

describe('service_quality view', () => {
  /** A session of `customer` from `start` lasting `minutes`, with `extra` events inside it. */
  function session(
    customer: string,
    id: string,
    start: number,
    minutes: number | null,
    extra: EventRow[] = [],
    channel = 'web',
  ) {
    const fields = { session: id, channel };
    return [
      ev(customer, 'session_start', start, fields),
      ...extra,
      ...(minutes === null ? [] : [ev(customer, 'session_end', start + minutes * MIN, fields)]),
    ];
  }
  const msg = (customer: string, id: string, at: number, fields: Partial<EventRow>) =>
    ev(customer, 'message', at, { session: id, ...fields });

  it('reports sessions, handling time, resolution and sentiment per agent and channel', async () => {
    const db = await load([
      // q1 a1: 10 min, sentiment -0.5 and 0.5; ticket T1 opened, resolved a day later (no session)
      ...session('p1', 'q1', T0, 10, [
        msg('p1', 'q1', T0 + MIN, { from: 'customer', sentiment: -0.5 }),
        msg('p1', 'q1', T0 + 2 * MIN, { from: 'agent', agent: 'a1', sentiment: 0.9 }),
        msg('p1', 'q1', T0 + 3 * MIN, { from: 'customer', sentiment: 0.5 }),
        ev('p1', 'ticket', T0 + 4 * MIN, { session: 'q1', status: 'open', ticket_id: 'T1', agent: 'a1' }),
      ]),
      ev('p1', 'ticket', T0 + D, { status: 'resolved', ticket_id: 'T1', agent: 'a1' }),
      // q2 a1: 20 min, sentiment -1; ticket T2 never resolved (T2 of p9 is another customer's)
      ...session('p2', 'q2', T0, 20, [
        msg('p2', 'q2', T0 + MIN, { from: 'customer', sentiment: -1, agent: 'a1' }),
        ev('p2', 'ticket', T0 + 2 * MIN, { session: 'q2', status: 'open', ticket_id: 'T2', agent: 'a1' }),
      ]),
      ev('p9', 'ticket', T0 + D, { status: 'resolved', ticket_id: 'T2' }),
      // q3: the bot alone, 5 min, no sentiment
      ...session('p3', 'q3', T0, 5),
      // q4: agents a2 then a3 (the last one counts), app, 30 min, sentiment 0.8
      ...session(
        'p4',
        'q4',
        T0,
        30,
        [
          msg('p4', 'q4', T0 + MIN, { from: 'agent', agent: 'a2', channel: 'app' }),
          msg('p4', 'q4', T0 + 2 * MIN, { from: 'customer', sentiment: 0.8, channel: 'app' }),
          msg('p4', 'q4', T0 + 3 * MIN, { from: 'agent', agent: 'a3', channel: 'app' }),
        ],
        'app',
      ),
      // q5 never ended, q6 started in February: neither counts
      ...session('p5', 'q5', T0, null, [msg('p5', 'q5', T0 + MIN, { from: 'agent', agent: 'a1' })]),
      ...session('p6', 'q6', Date.UTC(2024, 1, 2), 10, [
        msg('p6', 'q6', Date.UTC(2024, 1, 2, 0, 1), { agent: 'a1' }),
      ]),
      // q7 a1: 6 min, resolves an older ticket during the session
      ...session('p1', 'q7', T0 + 2 * H, 6, [
        ev('p1', 'ticket', T0 + 2 * H + MIN, {
          session: 'q7',
          status: 'resolved',
          ticket_id: 'T9',
          agent: 'a1',
        }),
      ]),
    ]);
    expect(await numbers(`SELECT * FROM ${db}.service_quality(${JANUARY}) ORDER BY agent, channel`)).toEqual([
      // q3: no agent, no ticket, no customer sentiment
      {
        agent: '(bot)',
        channel: 'web',
        sessions: 1,
        avg_handle_min: 5,
        with_ticket: 0,
        resolved: 0,
        resolution_pct: null,
        avg_sentiment: null,
      },
      // q1 q2 q7: (10 + 20 + 6) / 3 = 12 min; tickets in all three, resolved q1 and q7;
      // sentiment per session 0, -1, none → -0.5 (the agent's 0.9 is not the customer's)
      {
        agent: 'a1',
        channel: 'web',
        sessions: 3,
        avg_handle_min: 12,
        with_ticket: 3,
        resolved: 2,
        resolution_pct: 66.7,
        avg_sentiment: -0.5,
      },
      {
        agent: 'a3',
        channel: 'app',
        sessions: 1,
        avg_handle_min: 30,
        with_ticket: 0,
        resolved: 0,
        resolution_pct: null,
        avg_sentiment: 0.8,
      },
    ]);
  });
});

describe('top_intents view', () => {
  it('ranks the issue intents of each sku', async () => {
    const m = (customer: string, sku: string, intent: string, fields: Partial<EventRow> = {}) =>
      ev(customer, 'message', T0, { from: 'customer', sku, intent, ...fields });
    const db = await load([
      m('m1', 'X', 'quality'),
      m('m1', 'X', 'quality'),
      m('m2', 'X', 'quality'),
      ev('m3', 'complaint', T0, { sku: 'X', intent: 'quality' }),
      ev('m3', 'ticket', T0, { sku: 'X', intent: 'refund', status: 'open' }),
      ev('m3', 'ticket', T0 + D, { sku: 'X', intent: 'refund', status: 'resolved' }), // the same issue again
      m('a1', 'X', 'quality', { from: 'agent' }), // an agent's message is not an issue
      m('m4', 'X', 'refund'),
      m('m1', 'Y', 'price'),
      m('m2', 'Y', 'delivery'),
      m('m5', 'Y', ''), // no intent
      m('m5', '', 'price'), // no sku
      m('m6', 'Y', 'price', { ts: Date.UTC(2024, 1, 1) }), // February
    ]);
    expect(await numbers(`SELECT * FROM ${db}.top_intents(${JANUARY}) ORDER BY sku, rank`)).toEqual([
      // X: quality 3 messages + 1 complaint = 4 of 6 (m1 m2 m3); refund 1 ticket + 1 message (m3 m4)
      { sku: 'X', intent: 'quality', mentions: 4, customers: 3, share_pct: 66.7, rank: 1 },
      { sku: 'X', intent: 'refund', mentions: 2, customers: 2, share_pct: 33.3, rank: 2 },
      // Y: a tie, alphabetical
      { sku: 'Y', intent: 'delivery', mentions: 1, customers: 1, share_pct: 50, rank: 1 },
      { sku: 'Y', intent: 'price', mentions: 1, customers: 1, share_pct: 50, rank: 2 },
    ]);
  });
});

describe('category_interest view', () => {
  it('counts page views and orders per customer and category', async () => {
    const db = await load([
      ev('b1', 'page_view', T0, { category: 'baby' }),
      ev('b1', 'page_view', T0 + H, { category: 'baby' }),
      ev('b1', 'page_view', T0 + 2 * H, { category: 'baby' }),
      ev('b1', 'page_view', Date.UTC(2024, 1, 3), { category: 'baby' }), // February
      ev('b2', 'page_view', T0, { category: 'baby' }),
      ev('b2', 'order', T0 + H, { category: 'baby', amount: 99 }),
      ev('b2', 'page_view', T0, { category: 'toys' }),
      ev('b2', 'page_view', T0 + MIN, { category: 'toys' }),
      ev('b3', 'order', T0, { category: 'toys', amount: 5 }), // bought without a view: not interest
    ]);
    expect(
      await numbers(
        `SELECT customer, category, views, orders, toUnixTimestamp64Milli(last_view) AS last_view
         FROM ${db}.category_interest(${JANUARY}) ORDER BY customer, category`,
      ),
    ).toEqual([
      { customer: 'b1', category: 'baby', views: 3, orders: 0, last_view: T0 + 2 * H },
      { customer: 'b2', category: 'baby', views: 1, orders: 1, last_view: T0 },
      { customer: 'b2', category: 'toys', views: 2, orders: 0, last_view: T0 + MIN },
    ]);
    // The "viewed baby products 3 times and bought none" audience.
    expect(
      await rows(
        `SELECT customer FROM ${db}.category_interest(${JANUARY}) WHERE category = 'baby' AND views >= 3 AND orders = 0`,
      ),
    ).toEqual([{ customer: 'b1' }]);
  });
});
