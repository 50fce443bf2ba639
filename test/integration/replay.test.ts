/**
 * What-if replay: an NDJSON history and a rule file through the real engine (worker threads) with
 * `--dry-run`: exact counts per rule and per day (Asia/Shanghai), a deterministic sample, and
 * nothing written.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExplain } from '../../engine/cli/explain.js';
import { parseUntil, runReplay } from '../../engine/cli/replay.js';
import { keyGroupOf } from '../../operators/keyGroups.js';
import type { CxEvent } from '../../operators/types.js';
import { eventMaker } from '../harness/events.js';

/** Epoch ms of a wall time in Asia/Shanghai (UTC+8, no DST). */
const sh = (day: number, hour: number, minute = 0) => Date.UTC(2026, 10, day, hour - 8, minute);

const RULES = `rules:
  - id: big_order
    on: [order]
    when: event.amount >= 100
  - id: any_message
    on: [message]
    cooldown: 1h
`;

const ev = eventMaker();

const events: CxEvent[] = [
  ev('c1', 'order', sh(20, 10), { amount: 150 }), // big_order, 11-20
  ev('c1', 'message', sh(20, 10, 5)), // any_message, 11-20
  ev('c1', 'order', sh(20, 10, 20), { amount: 50 }), // below 100
  ev('c1', 'message', sh(20, 10, 30)), // cooldown
  ev('c1', 'message', sh(20, 11, 10)), // any_message, 11-20
  ev('c2', 'order', sh(21, 1), { amount: 200 }), // big_order, 11-21 local (11-20 in UTC)
  ev('c3', 'message', sh(21, 9)), // any_message, 11-21
  // Ten complaints in region east within ten minutes: complaint_surge (config/aggregates.yaml).
  ...Array.from({ length: 10 }, (_, i) => ev(`k${i}`, 'complaint', sh(21, 12, i), { region: 'east' })),
  // Nine in west: no surge.
  ...Array.from({ length: 9 }, (_, i) => ev(`w${i}`, 'complaint', sh(21, 12, 30 + i), { region: 'west' })),
];

describe('cxstream replay --dry-run', () => {
  let dir: string;
  const saved = { ...process.env };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-replay-'));
    writeFileSync(join(dir, 'events.ndjson'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    writeFileSync(join(dir, 'rules.yaml'), RULES);
    process.env.CXSTREAM_CLICKHOUSE_URL = `embedded:${join(dir, 'clickhouse')}`;
    process.env.CXSTREAM_ENGINE_PARTITIONS = '3';
    delete process.env.CXSTREAM_AGGREGATES;
  });

  afterAll(() => {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints exact counts per rule and per day and writes nothing', async () => {
    let text = '';
    const out = new Writable({
      write(chunk, _enc, cb) {
        text += chunk;
        cb();
      },
    });
    const report = await runReplay({
      file: join(dir, 'events.ndjson'),
      rules: [join(dir, 'rules.yaml')],
      dryRun: true,
      sample: 6,
      out,
    });
    expect(report.tz).toBe('Asia/Shanghai');
    expect(report.total).toBe(6);
    expect(Object.fromEntries(report.byRule)).toEqual({ big_order: 2, any_message: 3, complaint_surge: 1 });
    expect(Object.fromEntries([...report.byDay].map(([d, m]) => [d, Object.fromEntries(m)]))).toEqual({
      '2026-11-20': { big_order: 1, any_message: 2 },
      '2026-11-21': { big_order: 1, any_message: 1, complaint_surge: 1 },
    });
    // The earliest six by event time: all of them; the surge's window ends at 12:10 local, the
    // first 5-minute end holding all ten complaints; its customer is the region.
    expect(report.sample.map((t) => t.id)).toEqual([
      'big_order:c1:e1',
      'any_message:c1:e2',
      'any_message:c1:e5',
      'big_order:c2:e6',
      'any_message:c3:e7',
      `complaint_surge:east:${sh(21, 12, 10)}`,
    ]);
    expect(report.sample.at(-1)!.customer).toBe('region:east');
    expect(text).toContain('dry run: nothing was published or written; 6 triggers would have fired');
    expect(text).toContain('days in Asia/Shanghai');
    expect(text).toMatch(/any_message\s+3\s+2\s+1\n/);
    expect(text).toMatch(/complaint_surge\s+1\s+0\s+1\n/);
    expect(existsSync(join(dir, 'clickhouse'))).toBe(false);
  }, 60_000);

  it('--until lets the timers of silent customers come due at the end', async () => {
    writeFileSync(join(dir, 'silent.yaml'), 'rules:\n  - id: silent_week\n    inactivity:\n      for: 7d\n');
    const replay = (until?: string) =>
      runReplay({
        file: join(dir, 'events.ndjson'),
        rules: [join(dir, 'silent.yaml')],
        dryRun: true,
        until,
        out: new Writable({ write: (_c, _e, cb) => cb() }),
      });
    // 22 customers: only c1 was last seen before 2026-11-21 00:00 local (7 days before 11-28 00:00);
    // the last of all (w8) at 2026-11-21 12:38.
    expect((await replay()).byRule.get('silent_week')).toBeUndefined();
    expect((await replay('2026-11-28')).byRule.get('silent_week')).toBe(1);
    const all = await replay('2026-11-29');
    expect(all.byRule.get('silent_week')).toBe(22);
    expect(all.byRule.get('complaint_surge')).toBe(1);
  }, 60_000);

  it('reads --until as 00:00 of the day in the default time zone, or ISO 8601 with a zone', () => {
    expect(parseUntil('2026-11-21', 'Asia/Shanghai')).toBe(sh(21, 0));
    expect(parseUntil('2026-11-21T12:00:00Z', 'Asia/Shanghai')).toBe(Date.UTC(2026, 10, 21, 12));
    expect(() => parseUntil('21/11/2026', 'Asia/Shanghai')).toThrow(/--until must be/);
  });
});

/** A writable that keeps what is written to it, in `sink.text`. */
const capture = () => {
  const sink = { text: '' };
  const out = new Writable({
    write(chunk, _e, cb) {
      sink.text += chunk;
      cb();
    },
  });
  return { sink, out };
};

describe('cxstream explain', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-explain-'));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes `name`.yaml and `name`.ndjson and explains customer c1 from them. */
  const explainC1 = async (name: string, rules: string, events: object[]) => {
    writeFileSync(join(dir, `${name}.yaml`), rules);
    writeFileSync(join(dir, `${name}.ndjson`), `${events.map((l) => JSON.stringify(l)).join('\n')}\n`);
    const { sink, out } = capture();
    const report = await runExplain({
      customer: 'c1',
      file: join(dir, `${name}.ndjson`),
      rules: [join(dir, `${name}.yaml`)],
      out,
    });
    return { report, text: sink.text };
  };

  it('tells per rule what fired, what the condition gave, what held it back and what is pending', async () => {
    const rules = `rules:
  - id: escalate
    priority: 100
    on: [message]
    when: has(event.sentiment) && event.sentiment <= -0.8
    group: routing
  - id: handoff
    priority: 90
    on: [message]
    when: has(event.sentiment) && event.sentiment < -0.6
    group: routing
  - id: invoice
    on: [message]
    when: event.text.contains("invoice")
    cooldown: 24h
  - id: cart
    absence: { after: add_to_cart, missing: order, within: 10m }
  - id: refund
    on: [refund]
`;
    const t = (m: number) => sh(20, 10, m);
    const lines = [
      { id: 'm1', ts: t(0), customer: 'c1', type: 'message', channel: 'app', text: 'invoice please' },
      { id: 'x1', ts: t(0), customer: 'c2', type: 'message', channel: 'app', text: 'invoice too' },
      { id: 'm2', ts: t(1), customer: 'c1', type: 'message', channel: 'app', text: 'invoice again' },
      // No text: `event.text.contains` is an error, counted as false.
      { id: 'm3', ts: t(2), customer: 'c1', type: 'message', channel: 'app', sentiment: -0.9 },
      { id: 'a1', ts: t(3), customer: 'c1', type: 'add_to_cart', channel: 'app', sku: 'S1' },
    ];
    const { report, text } = await explainC1('events', rules, lines);
    expect(report.events).toBe(4);
    const rule = (id: string) => report.rules.find((r) => r.id === id)!;
    const linesOf = (id: string) => rule(id).lines.map((l) => [l.what, l.count, l.at]);
    expect(rule('escalate').fired.map((x) => x.id)).toEqual(['escalate:c1:m3']);
    expect(linesOf('handoff')).toEqual([
      ['when-false', 2, t(0)],
      ['arbitration', 1, t(2)],
    ]);
    expect(rule('handoff').verdict).toBe('not fired: lost arbitration to escalate');
    expect(linesOf('invoice')).toEqual([
      ['fired', 1, t(0)],
      ['cooldown', 1, t(1)],
      ['when-error', 1, t(2)],
      ['holding', 1, t(3)],
    ]);
    expect(rule('cart').kind).toBe('absence');
    expect(rule('cart').fired).toEqual([]);
    expect(rule('cart').pending).toEqual([{ kind: 'absence', key: '', due: t(13) }]);
    expect(rule('cart').verdict).toBe('not fired: waiting for a timer due 2026-11-20 10:13:00');
    expect(rule('refund').lines).toEqual([]);
    expect(text).toContain(
      '  2026-11-20 10:00:00  not fired  2× to 10:01:00: condition false: has(event.sentiment) && ' +
        'event.sentiment < -0.6 — saw event.sentiment = absent',
    );
    expect(text).toContain(
      '  2026-11-20 10:02:00  not fired  lost arbitration in group "routing" to escalate (priority 100 over 90) on event m3',
    );
    expect(text).toContain(
      '  2026-11-20 10:01:00  held       cooldown 24h: fired at 2026-11-20 10:00:00, free again at 2026-11-21 10:00:00',
    );
    expect(text).toContain(
      'rule error in the condition (counts as false): No such key: text — when: event.text.contains("invoice")',
    );
    expect(text).toContain('no event of the types they look at: refund (refund)');
    // Times in the zone of replay's report; event time ended at the file's last event (a1, 10:03).
    expect(text).toContain("customer c1: 4 events replayed (times in Asia/Shanghai, the customer's zone)");
    expect(text).toContain(
      'waiting    timer due 2026-11-20 10:13:00: add_to_cart a1 at 2026-11-20 10:03:00 and no order since',
    );

    // With --until past the timer's due time, the absence fires.
    const later = await runExplain({
      customer: 'c1',
      file: join(dir, 'events.ndjson'),
      rules: [join(dir, 'events.yaml')],
      until: '2026-11-21',
      out: new Writable({ write: (_c, _e, cb) => cb() }),
    });
    const cart = later.rules.find((r) => r.id === 'cart')!;
    expect(cart.fired.map((x) => x.eventTime)).toEqual([t(13)]);
    expect(cart.pending).toEqual([]);
  });
  it('says why a pattern did not match: a veto, a first step missing or never followed, a streak part-way', async () => {
    const rules = `rules:
  - id: coupon
    count: { of: page_view, atLeast: 3, within: 1d, by: event.sku, unless: order }
  - id: seq
    sequence: { first: add_to_cart, followedBy: order, within: 1h }
  - id: streak
    streak: { of: message, count: 3, where: event.sentiment < 0 }
  - id: vip
    crosses: profile.spend >= 1000
`;
    const t = (m: number) => sh(20, 10, m);
    const c1 = { customer: 'c1', channel: 'app' };
    const lines = [
      { id: 'v1', ts: t(0), type: 'page_view', sku: 'S1', ...c1 },
      { id: 'v2', ts: t(1), type: 'page_view', sku: 'S1', ...c1 },
      { id: 'o1', ts: t(2), type: 'order', sku: 'S1', amount: 50, ...c1 },
      { id: 'v3', ts: t(3), type: 'page_view', sku: 'S1', ...c1 },
      { id: 'a1', ts: t(4), type: 'add_to_cart', sku: 'S1', ...c1 },
      { id: 'm1', ts: t(5), type: 'message', sentiment: -0.5, ...c1 },
      { id: 'm2', ts: t(6), type: 'message', sentiment: -0.5, ...c1 },
      // another customer moves event time on by more than the sequence's hour
      { id: 'z1', ts: t(200), type: 'page_view', customer: 'c2', channel: 'app' },
    ];
    const { report, text } = await explainC1('patterns', rules, lines);
    const verdicts = Object.fromEntries(report.rules.map((r) => [r.id, r.verdict]));
    expect(verdicts).toEqual({
      coupon: 'not fired: vetoed by order',
      seq: 'not fired: add_to_cart seen, no order within 1h',
      streak: 'not fired: streak at 2 of 3',
      vip: 'not fired: profile.spend >= 1000 never became true',
    });
    expect(text).toContain(
      '3 of 3 page_view (key "S1") in the last 1d; vetoed by order at 2026-11-20 10:02:00',
    );
    expect(text).toContain(
      'not fired  order o1: no add_to_cart in the 1h before it (the first step must come first)',
    );
  });
});

describe('the end of event time: replay and explain agree', () => {
  let dir: string;
  const saved = { ...process.env };
  // cart1's add_to_cart arms a 10-minute absence; the file goes on for an hour with another
  // customer, in another key group, so cart1's key group has no later event.
  const other = Array.from({ length: 50 }, (_, i) => `o${i}`).find(
    (c) => keyGroupOf(c, 128) !== keyGroupOf('cart1', 128),
  )!;
  const lines = [
    ev('cart1', 'add_to_cart', sh(22, 10), { sku: 'S1' }),
    ev(other, 'page_view', sh(22, 10, 30)),
    ev(other, 'page_view', sh(22, 11)),
    // Years ahead of the clock: dead-lettered by replay, so it does not move event time either.
    ev('future', 'page_view', Date.UTC(2100, 0, 1)),
  ];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-end-'));
    writeFileSync(join(dir, 'events.ndjson'), `${lines.map((e) => JSON.stringify(e)).join('\n')}\n`);
    writeFileSync(
      join(dir, 'cart.yaml'),
      'rules:\n  - id: cart\n    absence: { after: add_to_cart, missing: order, within: 10m }\n',
    );
    process.env.CXSTREAM_ENGINE_PARTITIONS = '3';
    process.env.CXSTREAM_AGGREGATES = '';
  });

  afterAll(() => {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it("replay without --until ends at the file's last event time: the cart timer fires", async () => {
    const { sink, out } = capture();
    const report = await runReplay({
      file: join(dir, 'events.ndjson'),
      rules: [join(dir, 'cart.yaml')],
      dryRun: true,
      out,
    });
    expect(report.end).toBe(sh(22, 11));
    expect(report.endIsLastEvent).toBe(true);
    expect(report.sample.map((t) => [t.id, t.eventTime])).toEqual([
      [`cart:cart1:t${sh(22, 10, 10)}`, sh(22, 10, 10)],
    ]);
    expect(sink.text).toMatch(/dead letters\s+1\n/);
    expect(sink.text).toContain(
      "event time at the end: 2026-11-22 11:00:00 (Asia/Shanghai), the file's last event; --until DATE goes further",
    );
  }, 60_000);

  it('explain of that customer fires the same trigger, and names the same end', async () => {
    const { sink, out } = capture();
    const report = await runExplain({
      customer: 'cart1',
      file: join(dir, 'events.ndjson'),
      rules: [join(dir, 'cart.yaml')],
      out,
    });
    const cart = report.rules.find((r) => r.id === 'cart')!;
    expect(cart.fired.map((t) => [t.id, t.eventTime])).toEqual([
      [`cart:cart1:t${sh(22, 10, 10)}`, sh(22, 10, 10)],
    ]);
    expect(cart.pending).toEqual([]);
    expect(sink.text).toContain(
      "customer cart1: 1 events replayed (times in Asia/Shanghai, the customer's zone)",
    );
    expect(sink.text).toContain(
      "event time at the end: 2026-11-22 11:00:00 (Asia/Shanghai), the file's last event",
    );
    expect(sink.text).toContain(
      `  2026-11-22 10:10:00  fired      cart:cart1:t${sh(22, 10, 10)} (timer armed by add_to_cart`,
    );
  });

  it('--until before the timer is due keeps it pending, in both', async () => {
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const until = '2026-11-22T02:05:00Z'; // 10:05 in Shanghai
    const replay = await runReplay({
      file: join(dir, 'events.ndjson'),
      rules: [join(dir, 'cart.yaml')],
      dryRun: true,
      until,
      out: quiet,
    });
    expect(replay.total).toBe(0);
    expect(replay.endIsLastEvent).toBe(false);
    const explain = await runExplain({
      customer: 'cart1',
      file: join(dir, 'events.ndjson'),
      rules: [join(dir, 'cart.yaml')],
      until,
      out: quiet,
    });
    expect(explain.rules[0]!.pending.map((p) => p.due)).toEqual([sh(22, 10, 10)]);
  }, 60_000);

  it('explain of a customer the file does not have says so', async () => {
    await expect(
      runExplain({ customer: 'nobody', file: join(dir, 'events.ndjson'), out: new Writable() }),
    ).rejects.toThrow(`customer nobody not in file ${join(dir, 'events.ndjson')}`);
  });
});
