/**
 * The ClickHouse sink against the real engine (chDB in this process): schema, batched writer,
 * repeated inserts collapsing under FINAL, and the funnel on customers whose numbers are worked
 * out by hand below. One chDB directory for this file (one per process), a fresh database per test.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow, ProfileRow, Trigger } from '../../operators/types.js';
import { clickHouseDatabase, ensureSchema, openClickHouse, rawInsertOf } from '../../sinks/clickhouse.js';
import { EVENT_COLUMNS, encodeRows } from '../../sinks/clickhouseRows.js';
import { ClickHouseWriter } from '../../sinks/clickhouseWriter.js';
import { type FunnelRow, formatFunnel, queryFunnel } from '../../sinks/funnel.js';
import { VIEW_NAMES } from '../../sinks/views.js';
import { check } from '../harness/check.js';
import { eventRow } from '../harness/eventRows.js';

let dir: string;
let client: ClickHouseClient;
let dbCounter = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-ch-'));
  client = openClickHouse(`embedded:${dir}/nested/clickhouse`);
});

afterAll(async () => {
  await client?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function freshDatabase(): Promise<string> {
  const db = `cxtest_${process.pid}_${++dbCounter}`;
  await ensureSchema(client, db);
  return db;
}

async function rows<T>(query: string): Promise<T[]> {
  return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
}

async function count(query: string): Promise<number> {
  const [r] = await rows<{ n: string }>(query);
  return Number(r!.n);
}

const H = 3_600_000;
const D = 24 * H;
/** 2024-01-10 09:00:00 UTC. */
const T0 = Date.UTC(2024, 0, 10, 9);

const ev = eventRow;

/**
 * Twelve customers. Level = funnel steps reached (contact → add_to_cart → order within 7 days):
 *   c1  web/A/ad     session_start, cart +1h, order +2h                         → 3
 *   c2  web/A        customer message, cart +1d                                 → 2
 *   c3  app/B        call, order +1h (an order without a cart)                  → 1
 *   c4  app/B        session_start, cart +8d, order +8d1h (outside 7 days)      → 1
 *   c5  web          cart, order, no contact                                    → 0 (left out)
 *   c6  web          agent and bot messages only (not contacts), cart, order    → 0 (left out)
 *   c7  wechat/''    session_start on wechat (no variant), then web/A message,
 *                    cart +2h, order +3h: attributed to its FIRST contact       → 3
 *   c8  web/B        cart before the contact, contact +1h, order +2h            → 1
 *   c9  app/A        contact, cart, order 100 ms apart within one second        → 3
 *   c10 web/A        full funnel on 2024-01-20                                  → 3
 *   c11 phone/B      session_start 2024-01-12 23:59:59.999, cart 01-13 00:00   → 2 (1 up to 01-12)
 *   c12 email/C      session_start 2024-01-08 23:59:59.999, cart 01-09 00:00   → 2 (0 from 01-09)
 */
function funnelEvents(): EventRow[] {
  const jan = (d: number, ms = 0) => Date.UTC(2024, 0, d) + ms;
  return [
    ev('c1', 'session_start', T0, { variant: 'A', source: 'ad' }),
    ev('c1', 'add_to_cart', T0 + H, { variant: 'A', source: 'ad', sku: 'sku-1' }),
    ev('c1', 'order', T0 + 2 * H, { variant: 'A', source: 'ad', amount: 99.5 }),
    ev('c2', 'message', T0, { from: 'customer', variant: 'A', text: '有优惠吗' }),
    ev('c2', 'add_to_cart', T0 + D),
    ev('c3', 'call', T0, { channel: 'app', variant: 'B' }),
    ev('c3', 'order', T0 + H, { channel: 'app', amount: 10 }),
    ev('c4', 'session_start', T0, { channel: 'app', variant: 'B' }),
    ev('c4', 'add_to_cart', T0 + 8 * D, { channel: 'app' }),
    ev('c4', 'order', T0 + 8 * D + H, { channel: 'app', amount: 20 }),
    ev('c5', 'add_to_cart', T0),
    ev('c5', 'order', T0 + H, { amount: 30 }),
    ev('c6', 'message', T0, { from: 'agent', variant: 'A' }),
    ev('c6', 'message', T0 + 1, { from: 'bot', variant: 'A' }),
    ev('c6', 'add_to_cart', T0 + H),
    ev('c6', 'order', T0 + 2 * H, { amount: 40 }),
    ev('c7', 'session_start', T0, { channel: 'wechat' }),
    ev('c7', 'message', T0 + H, { from: 'customer', variant: 'A' }),
    ev('c7', 'add_to_cart', T0 + 2 * H),
    ev('c7', 'order', T0 + 3 * H, { amount: 50 }),
    ev('c8', 'add_to_cart', T0, { variant: 'B' }),
    ev('c8', 'session_start', T0 + H, { variant: 'B' }),
    ev('c8', 'order', T0 + 2 * H, { variant: 'B', amount: 60 }),
    ev('c9', 'session_start', T0 + 100, { channel: 'app', variant: 'A' }),
    ev('c9', 'add_to_cart', T0 + 200, { channel: 'app' }),
    ev('c9', 'order', T0 + 300, { channel: 'app', amount: 70 }),
    ev('c10', 'session_start', jan(20, 9 * H), { variant: 'A' }),
    ev('c10', 'add_to_cart', jan(20, 10 * H)),
    ev('c10', 'order', jan(20, 11 * H), { amount: 80 }),
    ev('c11', 'session_start', jan(13) - 1, { channel: 'phone', variant: 'B' }),
    ev('c11', 'add_to_cart', jan(13), { channel: 'phone' }),
    ev('c12', 'session_start', jan(9) - 1, { channel: 'email', variant: 'C' }),
    ev('c12', 'add_to_cart', jan(9), { channel: 'email' }),
  ];
}

const EXPECTED_ALL: FunnelRow[] = [{ key: 'all', consulted: 10, addedToCart: 7, ordered: 4 }];
const EXPECTED_BY_CHANNEL: FunnelRow[] = [
  { key: 'web', consulted: 4, addedToCart: 3, ordered: 2 }, // c1 c2 c8 c10
  { key: 'app', consulted: 3, addedToCart: 1, ordered: 1 }, // c3 c4 c9
  { key: 'email', consulted: 1, addedToCart: 1, ordered: 0 }, // c12
  { key: 'phone', consulted: 1, addedToCart: 1, ordered: 0 }, // c11
  { key: 'wechat', consulted: 1, addedToCart: 1, ordered: 1 }, // c7
];
const EXPECTED_BY_VARIANT: FunnelRow[] = [
  { key: 'A', consulted: 4, addedToCart: 4, ordered: 3 }, // c1 c2 c9 c10
  { key: 'B', consulted: 4, addedToCart: 1, ordered: 0 }, // c3 c4 c8 c11
  { key: '(none)', consulted: 1, addedToCart: 1, ordered: 1 }, // c7 (first contact had no variant)
  { key: 'C', consulted: 1, addedToCart: 1, ordered: 0 }, // c12
];
const EXPECTED_BY_SOURCE: FunnelRow[] = [
  { key: '(none)', consulted: 9, addedToCart: 6, ordered: 3 },
  { key: 'ad', consulted: 1, addedToCart: 1, ordered: 1 }, // c1
];
/** 2024-01-09 ..= 2024-01-12: c10 (01-20) out; c11 keeps only its contact; c12 loses its contact. */
const EXPECTED_RANGE_BY_CHANNEL: FunnelRow[] = [
  { key: 'app', consulted: 3, addedToCart: 1, ordered: 1 }, // c3 c4 c9
  { key: 'web', consulted: 3, addedToCart: 2, ordered: 1 }, // c1 c2 c8
  { key: 'phone', consulted: 1, addedToCart: 0, ordered: 0 }, // c11
  { key: 'wechat', consulted: 1, addedToCart: 1, ordered: 1 }, // c7
];

function trigger(i: number): Trigger {
  return {
    id: `cart_abandoned:c${i}:e${i}`,
    rule: 'cart_abandoned',
    customer: `c${i}`,
    firedAt: T0 + i * 1000 + 600_000,
    eventTime: T0 + i * 1000,
    reason: 'add_to_cart without order for 10m',
    priority: 50 + i / 10,
    payload: { sku: `sku-${i}`, coupon: '满100减10' },
    profile: { tier: 'New', rfm: { score: 1.5 } },
    subject: 'cx.triggers.cart_abandoned',
  };
}

function profile(customer: string, updatedAt: number, tier: string): ProfileRow {
  return {
    customer,
    updated_at: updatedAt,
    tier,
    rfm_score: 4.2,
    spend: 1234.5,
    orders: 3,
    tags: ['region:east', `tier:${tier}`],
    profile: JSON.stringify({ customer, tier }),
  };
}

describe('openClickHouse / ensureSchema', () => {
  it('creates the data directory and reads the database from the URL', () => {
    expect(existsSync(join(dir, 'nested/clickhouse'))).toBe(true);
    expect(clickHouseDatabase(`embedded:${dir}`)).toBe('cxstream');
    expect(clickHouseDatabase('http://u:p@127.0.0.1:8123/analytics')).toBe('analytics');
    expect(clickHouseDatabase('https://u:p@ch.example:8443')).toBe('cxstream');
    expect(() => openClickHouse('ftp://x')).toThrow(/embedded:DIR or http/);
    expect(() => openClickHouse('embedded:')).toThrow(/needs a directory/);
  });

  it('is idempotent and creates the tables of the contract and the views', async () => {
    const db = await freshDatabase();
    await ensureSchema(client, db);
    await ensureSchema(client, db);
    const tables = await rows<{ name: string; engine: string }>(
      `SELECT name, engine FROM system.tables WHERE database = '${db}' ORDER BY name`,
    );
    expect(tables.filter((t) => t.engine !== 'View')).toEqual([
      { name: 'events', engine: 'ReplacingMergeTree' },
      // one row per forget request (docs/PRIVACY.md): nothing to collapse
      { name: 'forget_audit', engine: 'MergeTree' },
      // which customer each merged key belongs to (docs/IDENTITY.md)
      { name: 'identities', engine: 'ReplacingMergeTree' },
      { name: 'profiles', engine: 'ReplacingMergeTree' },
      { name: 'triggers', engine: 'ReplacingMergeTree' },
    ]);
    expect(tables.filter((t) => t.engine === 'View').map((t) => t.name)).toEqual([...VIEW_NAMES].sort());
    const columns = await rows<{ table: string; name: string; type: string }>(
      `SELECT table, name, type FROM system.columns WHERE database = '${db}' ORDER BY table, position`,
    );
    const of = (table: string) =>
      Object.fromEntries(columns.filter((c) => c.table === table).map((c) => [c.name, c.type]));
    const events = of('events');
    // Every EventRow field is a column.
    for (const field of Object.keys(ev('x', 'message', 0))) expect(events).toHaveProperty(field);
    expect(events.ts).toBe("DateTime64(3, 'UTC')");
    expect(events.partition).toBe('UInt32');
    expect(events.seq).toBe('UInt64');
    expect(Object.keys(of('triggers'))).toEqual(
      expect.arrayContaining([
        'id',
        'rule',
        'customer',
        'fired_at',
        'event_time',
        'priority',
        'reason',
        'payload',
        'profile',
      ]),
    );
    expect(Object.keys(of('profiles'))).toEqual(
      expect.arrayContaining([
        'customer',
        'updated_at',
        'tier',
        'rfm_score',
        'spend',
        'orders',
        'tags',
        'profile',
      ]),
    );
    expect(of('identities')).toEqual({
      customer: 'String',
      alias: 'String',
      seq: 'UInt64',
      merged_at: "DateTime64(3, 'UTC')",
    });
    await expect(ensureSchema(client, 'bad-name; DROP')).rejects.toThrow(/letters, digits/);
    await expect(ensureSchema(client, db, { defaultTz: "UTC'; DROP" })).rejects.toThrow(/IANA name/);
  });

  it('adds local_hour and ticket_id to an events table of an earlier version: old rows read the hour in the default zone', async () => {
    const db = `cxtest_${process.pid}_${++dbCounter}`;
    await client.command({ query: `CREATE DATABASE ${db}` });
    // The events table as versions before local_hour created it (every other column as today).
    await client.command({ query: `CREATE TABLE ${db}.events AS ${await freshDatabase()}.events` });
    await client.command({ query: `ALTER TABLE ${db}.events DROP COLUMN local_hour, DROP COLUMN ticket_id` });
    const old = ev('old', 'message', Date.UTC(2024, 0, 10, 2, 30)); // 21:30 the day before in New York
    const { local_hour: _hour, ticket_id: _ticket, ...oldRow } = old;
    await client.insert({ table: `${db}.events`, values: [oldRow], format: 'JSONEachRow' });
    await ensureSchema(client, db, { defaultTz: 'America/New_York' });
    await ensureSchema(client, db, { defaultTz: 'America/New_York' });
    const writer = new ClickHouseWriter(client, { database: db, flushIntervalMs: 20 });
    await writer.writeEvents([
      ev('new', 'message', Date.UTC(2024, 0, 10, 2, 30), { local_hour: 10, ticket_id: 'T-1' }),
    ]);
    await writer.close();
    expect(
      await rows<{ customer: string; local_hour: number; ticket_id: string }>(
        `SELECT customer, local_hour, ticket_id FROM ${db}.events FINAL ORDER BY customer`,
      ),
    ).toEqual([
      { customer: 'new', local_hour: 10, ticket_id: 'T-1' },
      { customer: 'old', local_hour: 21, ticket_id: '' },
    ]);
  });
});

describe('ClickHouseWriter (chDB)', () => {
  it.each(['JSONCompactEachRow', 'JSONEachRow'] as const)(
    'stores every field as written (%s); a resolved write is visible to the next query',
    async (format) => {
      const db = await freshDatabase();
      const writer = new ClickHouseWriter(client, { database: db, flushIntervalMs: 20, format });
      const e = ev('w1', 'message', Date.UTC(2024, 4, 1, 12, 30, 45, 678), {
        channel: 'wechat',
        from: 'customer',
        region: 'east',
        tz: 'Asia/Shanghai',
        session: 's1',
        agent: 'a7',
        variant: 'B',
        source: 'search',
        amount: 12.34,
        sku: 'sku-9',
        category: 'baby',
        intent: 'invoice',
        sentiment: -0.5,
        recognized: false,
        status: 'open',
        score: 4,
        text: '请开发票，手机138****5678',
      });
      await Promise.all([
        writer.writeEvents([e]),
        writer.writeTriggers([trigger(1)]),
        writer.writeProfiles([profile('w1', T0, 'VIP')]),
      ]);
      const [stored] = await rows<Record<string, unknown>>(
        `SELECT *, toUnixTimestamp64Milli(ts) AS ms FROM ${db}.events FINAL`,
      );
      const { ts: _ts, seq: _seq, ...rest } = e;
      expect(stored).toMatchObject(rest);
      // UInt64 comes back as a number from chDB and as a string from a server: compare numbers.
      expect(Number(stored!.seq)).toBe(e.seq);
      expect(Number(stored!.ms)).toBe(e.ts);
      const [t] = await rows<Record<string, string>>(
        `SELECT *, toUnixTimestamp64Milli(fired_at) AS f, toUnixTimestamp64Milli(event_time) AS et FROM ${db}.triggers FINAL`,
      );
      expect(t).toMatchObject({
        id: trigger(1).id,
        rule: 'cart_abandoned',
        customer: 'c1',
        reason: trigger(1).reason,
      });
      expect(Number(t!.f)).toBe(trigger(1).firedAt);
      expect(Number(t!.et)).toBe(trigger(1).eventTime);
      expect(JSON.parse(t!.payload!)).toEqual(trigger(1).payload);
      expect(JSON.parse(t!.profile!)).toEqual(trigger(1).profile);
      const [p] = await rows<Record<string, unknown>>(
        `SELECT *, toUnixTimestamp64Milli(updated_at) AS u FROM ${db}.profiles FINAL`,
      );
      expect(p).toMatchObject({ customer: 'w1', tier: 'VIP', rfm_score: 4.2, spend: 1234.5, orders: 3 });
      expect(p!.tags).toEqual(['region:east', 'tier:VIP']);
      expect(Number(p!.u)).toBe(T0);
      expect(writer.stats()).toEqual({
        bufferedRows: 0,
        blockedRows: 0,
        insertedRows: 3,
        failedAttempts: 0,
        lastError: null,
      });
      await writer.close();
      await expect(writer.writeEvents([e])).rejects.toThrow(/closed/);
    },
  );

  it.each([
    ['JSONCompactEachRow', 'the client'],
    ['JSONEachRow', 'the client'],
    ['JSONCompactEachRow', "chDB's raw insert"],
    ['JSONEachRow', "chDB's raw insert"],
  ] as const)(
    'inserts rows workers encoded (%s, through %s), mixed with row objects, in order',
    async (format, through) => {
      const db = await freshDatabase();
      await client.command({ query: `SYSTEM STOP MERGES ${db}.events` });
      const rawInsert = through === 'the client' ? undefined : rawInsertOf(client);
      if (through !== 'the client') expect(rawInsert).toBeDefined();
      const writer = new ClickHouseWriter(client, {
        database: db,
        flushIntervalMs: 20,
        maxBatchRows: 3,
        format,
        rawInsert,
      });
      const events = Array.from({ length: 8 }, (_, i) =>
        ev(`x${i}`, 'message', T0 + i, {
          text: `第${i}条 "quoted" \\ back\nslash`,
          recognized: i % 2 === 0,
          amount: i,
        }),
      );
      const other = format === 'JSONEachRow' ? 'JSONCompactEachRow' : 'JSONEachRow';
      await expect(writer.writeEncodedEvents(encodeRows(events, EVENT_COLUMNS, other))).rejects.toThrow(
        /encoded as/,
      );
      await Promise.all([
        writer.writeEncodedEvents(encodeRows(events.slice(0, 2), EVENT_COLUMNS, format)),
        writer.writeEvents(events.slice(2, 4)),
        writer.writeEncodedEvents(encodeRows(events.slice(4, 8), EVENT_COLUMNS, format)),
      ]);
      const stored = await rows<{
        id: string;
        text: string;
        recognized: boolean;
        amount: number;
        ms: string;
      }>(
        `SELECT id, text, recognized, amount, toUnixTimestamp64Milli(ts) AS ms FROM ${db}.events FINAL ORDER BY ts`,
      );
      expect(stored.map((r) => ({ ...r, ms: Number(r.ms) }))).toEqual(
        events.map((e) => ({ id: e.id, text: e.text, recognized: e.recognized, amount: e.amount, ms: e.ts })),
      );
      // Encoded chunks are never split; object rows are, at maxBatchRows (3): 2 | 2 | 4 rows per insert.
      const parts = await rows<{ part: string; n: string }>(
        `SELECT _part AS part, count() AS n FROM ${db}.events GROUP BY _part`,
      );
      const block = (part: string) => Number(part.split('_')[1]);
      expect(parts.sort((a, b) => block(a.part) - block(b.part)).map((p) => Number(p.n))).toEqual([2, 2, 4]);
      expect(writer.stats()).toMatchObject({ insertedRows: 8, bufferedRows: 0, failedAttempts: 0 });
      await writer.close();
    },
  );

  it('splits a large write into batches of maxBatchRows, one insert at a time, in order', async () => {
    const db = await freshDatabase();
    await client.command({ query: `SYSTEM STOP MERGES ${db}.events` });
    // A timer that never comes during the test: only full batches may leave on their own.
    const writer = new ClickHouseWriter(client, {
      database: db,
      flushIntervalMs: 600_000,
      maxBatchRows: 100,
    });
    const many = Array.from({ length: 1050 }, (_, i) => ev(`b${i % 7}`, 'page_view', T0 + i));
    let settled = false;
    const written = writer.writeEvents(many).finally(() => {
      settled = true;
    });
    // 1050 >= maxBatchRows: the ten full batches leave at once; the last 50 rows wait for the timer.
    await check(async () => (await count(`SELECT count() AS n FROM ${db}.events`)) >= 1000);
    expect(await count(`SELECT count() AS n FROM ${db}.events`)).toBe(1000);
    expect(settled).toBe(false);
    await writer.flush();
    await written;
    // Merges are stopped, so each insert is still its own part: ten of 100 and one of 50, each
    // holding the next rows in the order they were written.
    const parts = await rows<{ part: string; n: string; lo: string; hi: string }>(
      `SELECT _part AS part, count() AS n, min(toUnixTimestamp64Milli(ts)) - ${T0} AS lo,
         max(toUnixTimestamp64Milli(ts)) - ${T0} AS hi
       FROM ${db}.events GROUP BY _part`,
    );
    // A part is named PARTITION_MINBLOCK_MAXBLOCK_LEVEL; block numbers follow insert order.
    const block = (part: string) => Number(part.split('_')[1]);
    parts.sort((a, b) => block(a.part) - block(b.part));
    expect(parts.map((p) => [Number(p.n), Number(p.lo), Number(p.hi)])).toEqual(
      Array.from({ length: 11 }, (_, i) => [i < 10 ? 100 : 50, i * 100, Math.min(i * 100 + 99, 1049)]),
    );
    await writer.close();
  });

  it('flushes on the timer, on flush(), and when the memory bound is reached', async () => {
    const db = await freshDatabase();
    const timed = new ClickHouseWriter(client, { database: db, flushIntervalMs: 30 });
    const started = Date.now();
    await timed.writeEvents([ev('f1', 'login', T0)]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    await timed.close();

    const slow = new ClickHouseWriter(client, { database: db, flushIntervalMs: 60_000 });
    let resolved = false;
    const pending = slow.writeEvents([ev('f2', 'login', T0)]).then(() => {
      resolved = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(resolved).toBe(false);
    expect(slow.stats().bufferedRows).toBe(1);
    await slow.flush();
    await pending;
    expect(resolved).toBe(true);
    await slow.close();

    // Two writes of 300 reach maxBufferedRows 500: both go at once instead of after 60 s.
    const bounded = new ClickHouseWriter(client, {
      database: db,
      flushIntervalMs: 60_000,
      maxBatchRows: 10_000,
      maxBufferedRows: 500,
    });
    const a = Array.from({ length: 300 }, (_, i) => ev('f3', 'page_view', T0 + i));
    const b = Array.from({ length: 300 }, (_, i) => ev('f4', 'page_view', T0 + i));
    const c = [ev('f5', 'page_view', T0)];
    await Promise.all([bounded.writeEvents(a), bounded.writeEvents(b), bounded.writeEvents(c)]);
    expect(await count(`SELECT count() AS n FROM ${db}.events FINAL`)).toBe(2 + 601);
    await bounded.close();
  });

  it('inserting the same rows again changes no result read with FINAL', async () => {
    const db = await freshDatabase();
    // Without background merges the duplicates stay in the table: only FINAL hides them.
    for (const t of ['events', 'triggers', 'profiles'])
      await client.command({ query: `SYSTEM STOP MERGES ${db}.${t}` });
    const events = funnelEvents();
    const triggers = [1, 2, 3].map(trigger);
    const profiles = [
      profile('c1', T0, 'New'),
      profile('c1', T0 + 60_000, 'VIP'),
      profile('c2', T0, 'Regular'),
    ];
    const results = async () => ({
      events: await count(`SELECT count() AS n FROM ${db}.events FINAL`),
      triggers: await count(`SELECT count() AS n FROM ${db}.triggers FINAL`),
      profiles: await count(`SELECT count() AS n FROM ${db}.profiles FINAL`),
      tiers: await rows(
        `SELECT customer, argMax(tier, updated_at) AS tier FROM ${db}.profiles FINAL GROUP BY customer ORDER BY customer`,
      ),
      funnel: await queryFunnel(client, { database: db, by: 'channel' }),
    });

    const first = new ClickHouseWriter(client, { database: db, flushIntervalMs: 10 });
    await Promise.all([
      first.writeEvents(events),
      first.writeTriggers(triggers),
      first.writeProfiles(profiles),
    ]);
    await first.close();
    const before = await results();
    expect(before.events).toBe(events.length);
    expect(before.triggers).toBe(3);
    expect(before.profiles).toBe(3);
    expect(before.tiers).toEqual([
      { customer: 'c1', tier: 'VIP' },
      { customer: 'c2', tier: 'Regular' },
    ]);
    expect(before.funnel).toEqual(EXPECTED_BY_CHANNEL);

    // A restart replays the stream: the same rows arrive again (in other batches, another order).
    const replay = new ClickHouseWriter(client, { database: db, flushIntervalMs: 10, maxBatchRows: 7 });
    await Promise.all([
      replay.writeEvents([...events].reverse()),
      replay.writeTriggers(triggers),
      replay.writeProfiles(profiles),
    ]);
    await replay.close();
    expect(await count(`SELECT count() AS n FROM ${db}.events`)).toBe(2 * events.length);
    expect(await results()).toEqual(before);

    // A merge collapses them for good.
    await client.command({ query: `SYSTEM START MERGES ${db}.events` });
    await client.command({ query: `OPTIMIZE TABLE ${db}.events FINAL` });
    expect(await count(`SELECT count() AS n FROM ${db}.events`)).toBe(events.length);
    expect(await results()).toEqual(before);
  });
});

describe('queryFunnel / formatFunnel', () => {
  let db: string;
  beforeAll(async () => {
    db = await freshDatabase();
    const writer = new ClickHouseWriter(client, { database: db, flushIntervalMs: 10 });
    await writer.writeEvents(funnelEvents());
    await writer.close();
  });

  it('counts customers per step without a split', async () => {
    expect(await queryFunnel(client, { database: db })).toEqual(EXPECTED_ALL);
  });

  it('splits by the first contact event’s channel, variant and source', async () => {
    expect(await queryFunnel(client, { database: db, by: 'channel' })).toEqual(EXPECTED_BY_CHANNEL);
    expect(await queryFunnel(client, { database: db, by: 'variant' })).toEqual(EXPECTED_BY_VARIANT);
    expect(await queryFunnel(client, { database: db, by: 'source' })).toEqual(EXPECTED_BY_SOURCE);
  });

  it('keeps events between from and to, both days inclusive (UTC)', async () => {
    expect(
      await queryFunnel(client, { database: db, by: 'channel', from: '2024-01-09', to: '2024-01-12' }),
    ).toEqual(EXPECTED_RANGE_BY_CHANNEL);
    // c10 alone on 01-20; c11's cart (01-13 00:00:00.000) is the first instant of the day after `to`.
    expect(await queryFunnel(client, { database: db, from: '2024-01-13' })).toEqual([
      { key: 'all', consulted: 1, addedToCart: 1, ordered: 1 },
    ]);
    expect(await queryFunnel(client, { database: db, to: '2024-01-08' })).toEqual([
      { key: 'all', consulted: 1, addedToCart: 0, ordered: 0 },
    ]);
    expect(await queryFunnel(client, { database: db, from: '2025-01-01' })).toEqual([]);
  });

  it('rejects bad options before querying', async () => {
    await expect(queryFunnel(client, { database: db, from: '2024-02-30' })).rejects.toThrow(
      /from must be a date/,
    );
    await expect(queryFunnel(client, { database: db, to: '12/01/2024' })).rejects.toThrow(
      /to must be a date/,
    );
    await expect(queryFunnel(client, { database: db, by: 'region' as 'channel' })).rejects.toThrow(
      /by must be one of/,
    );
  });

  it('formats an aligned table with rates and a total', () => {
    expect(formatFunnel(EXPECTED_BY_VARIANT, 'variant')).toBe(
      [
        'variant  consulted  added to cart  ordered  cart rate  order rate',
        '-------  ---------  -------------  -------  ---------  ----------',
        'A                4              4        3     100.0%       75.0%',
        'B                4              1        0      25.0%        0.0%',
        '(none)           1              1        1     100.0%      100.0%',
        'C                1              1        0     100.0%        0.0%',
        '-------  ---------  -------------  -------  ---------  ----------',
        'total           10              7        4      70.0%       40.0%',
        '',
      ].join('\n'),
    );
    expect(formatFunnel(EXPECTED_ALL)).toBe(
      [
        'key  consulted  added to cart  ordered  cart rate  order rate',
        '---  ---------  -------------  -------  ---------  ----------',
        'all         10              7        4      70.0%       40.0%',
        '',
      ].join('\n'),
    );
    expect(formatFunnel([{ key: '微信', consulted: 0, addedToCart: 0, ordered: 0 }], 'channel')).toBe(
      [
        'channel  consulted  added to cart  ordered  cart rate  order rate',
        '-------  ---------  -------------  -------  ---------  ----------',
        '微信             0              0        0          -           -',
        '',
      ].join('\n'),
    );
    expect(formatFunnel([], 'channel')).toContain('(no customer with a contact event in this range)');
  });
});
