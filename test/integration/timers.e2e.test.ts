import { jetstream } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { check } from '../harness/check.js';
import { EngineProcess, engineBed, engineEnv } from '../harness/engineProcess.js';
import { readStream } from '../harness/readStream.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const SHANGHAI = 8 * HOUR;
// Local midnight (Asia/Shanghai, the default customer tz) three days ago: everything below is past.
const today = Math.floor((Date.now() + SHANGHAI) / DAY) * DAY - SHANGHAI;
const BASE = today - 3 * DAY;
/** Customer-local time: `day` days after BASE at hh:mm. */
const at = (day: number, hh: number, mm = 0) => BASE + day * DAY + hh * HOUR + mm * MIN;

let n = 0;
const ev = (customer: string, type: string, ts: number, extra: Partial<CxEvent> = {}): CxEvent => ({
  id: `${customer}-${++n}`,
  ts,
  customer,
  type,
  channel: 'app',
  ...extra,
});

const views = (customer: string, category: string, day: number, hh: number, mm: number) =>
  [0, 1, 2].map((i) => ev(customer, 'page_view', at(day, hh, mm + i), { category }));

const events: CxEvent[] = [
  ev('cA', 'add_to_cart', at(0, 10), { sku: 'A1' }), // abandoned: fires at 10:10
  ev('cB', 'add_to_cart', at(0, 10), { sku: 'B1' }),
  ev('cB', 'order', at(0, 10, 5), { amount: 50, orderId: 'oB' }), // converted: cancelled
  ev('cC', 'add_to_cart', at(0, 10), { sku: 'C1' }),
  ev('cC', 'add_to_cart', at(0, 10, 8), { sku: 'C2' }), // restarts the 10 minutes: fires at 10:18
  ev('cD', 'add_to_cart', at(0, 22), { sku: 'D1' }), // due 22:10, quiet hours: deferred to 09:00
  ev('cE', 'session_start', at(0, 11), { session: 'sE' }),
  ev('cE', 'session_end', at(0, 11, 20), { session: 'sE' }), // survey now, unresolved at 11:50
  ev('cF', 'complaint', at(0, 12)),
  ev('cF', 'rating', at(0, 15), { score: 1 }), // complaint then poor rating within 24 h
  ev('cG', 'session_start', at(0, 10), { session: 'sG' }),
  ev('cG', 'session_end', at(0, 10, 10), { session: 'sG' }),
  ev('cG', 'login', at(0, 12)),
  ev('cG', 'login', at(1, 12)),
  ev('cG', 'login', at(1, 13)), // third login within 7 days after the consultation
  ...views('cH', 'baby', 0, 10, 0), // three views of one category
  // Four categories of interest within an hour: the cap lets 3 outbound marketing triggers through.
  ...views('cI', 'a', 0, 10, 0),
  ...views('cI', 'b', 0, 10, 10),
  ...views('cI', 'c', 0, 10, 20),
  ...views('cI', 'd', 0, 10, 30),
  ev('cJ', 'page_view', at(-32, 10), { category: 'x' }), // silent for 30 days: churn risk
  ev('cK', 'order', at(-17, 10), { amount: 2500, orderId: 'oK' }), // high value, silent 14 days
  ev('cL', 'order', at(-20, 10), { amount: 100, orderId: 'oL1' }),
  ev('cL', 'order', at(-10, 10), { amount: 100, orderId: 'oL2' }), // cycle 10 d: reminder at +9 d
].sort((a, b) => a.ts - b.ts);

const id = (customer: string, i: number) => events.filter((e) => e.customer === customer)[i]!.id;
const timer = (rule: string, customer: string, due: number) => ({
  rule,
  customer,
  id: `${rule}:${customer}:t${due}`,
  eventTime: due,
});
const onEvent = (rule: string, customer: string, eventId: string) => ({
  rule,
  customer,
  id: `${rule}:${customer}:${eventId}`,
  eventTime: events.find((e) => e.id === eventId)!.ts,
});

const expected = [
  timer('cart_abandoned', 'cA', at(0, 10, 10)),
  timer('cart_abandoned', 'cC', at(0, 10, 18)),
  timer('cart_abandoned', 'cD', at(0, 22, 10)),
  onEvent('satisfaction_survey', 'cE', id('cE', 1)),
  timer('consult_unresolved', 'cE', at(0, 11, 50)),
  onEvent('complaint_winback', 'cF', id('cF', 1)),
  onEvent('satisfaction_survey', 'cG', id('cG', 1)),
  timer('consult_unresolved', 'cG', at(0, 10, 40)),
  onEvent('high_intent_revisit', 'cG', id('cG', 4)),
  onEvent('category_interest', 'cH', id('cH', 2)),
  onEvent('category_interest', 'cI', id('cI', 2)),
  onEvent('category_interest', 'cI', id('cI', 5)),
  onEvent('category_interest', 'cI', id('cI', 8)),
  timer('churn_risk', 'cJ', at(-2, 10)),
  timer('high_value_silent', 'cK', at(-3, 10)),
  timer('repurchase_reminder', 'cL', at(-1, 10)),
];

describe('timers end to end: drained history, then the silent customers come due', () => {
  const bed = engineBed('cxstream-timers-');

  it('fires exactly the expected triggers, with the deferral and the cap', async () => {
    bed.engine = new EngineProcess(
      engineEnv(bed.server.url, bed.dir, {
        CXSTREAM_ENGINE_IDLE_AFTER_MS: '1000',
        CXSTREAM_ENGINE_TICK_INTERVAL_MS: '200',
      }),
    );
    await bed.engine.consuming(bed.nc);
    const js = jetstream(bed.nc);
    for (const e of events)
      await js.publish(`cx.events.${e.channel}.${e.type}.${e.customer}`, pack(e), { msgID: e.id });

    const triggers = await check(
      async () => {
        const msgs = await readStream(bed.nc, 'CX_TRIGGERS');
        return msgs.length >= expected.length ? msgs : null;
      },
      60_000,
      () => bed.engine.stderrTail(),
    );
    // Nothing more arrives once everything due has fired (a deferral or a cap leak would show here).
    await new Promise((r) => setTimeout(r, 1500));
    const all = (await readStream(bed.nc, 'CX_TRIGGERS')).map((m) => ({
      subject: m.subject,
      t: m.json<Trigger>(),
    }));
    expect(all.length).toBe(triggers.length);

    const got = all.map(({ t }) => ({
      rule: t.rule,
      customer: t.customer,
      id: t.id,
      eventTime: t.eventTime,
    }));
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect(got.sort(byId)).toEqual([...expected].sort(byId));
    for (const { subject, t } of all) expect(subject).toBe(`cx.triggers.${t.rule}`);

    // The night cart went out at the next 09:00 local at the earliest, not at 22:10.
    const deferred = all.find(({ t }) => t.customer === 'cD')!.t;
    expect(deferred.firedAt).toBeGreaterThanOrEqual(at(1, 9));
    // The cap held back the fourth category of cI ('d').
    expect(all.filter(({ t }) => t.customer === 'cI').map(({ t }) => t.payload.category)).toEqual([
      'a',
      'b',
      'c',
    ]);

    expect(await bed.engine.stop()).toBe(0);
  });
});
