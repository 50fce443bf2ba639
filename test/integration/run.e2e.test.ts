import { join, resolve } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { openClickHouse } from '../../sinks/clickhouse.js';
import { check } from '../harness/check.js';
import { EngineProcess, engineBed, engineEnv } from '../harness/engineProcess.js';
import { readStream } from '../harness/readStream.js';

const root = resolve(import.meta.dirname, '../..');
// 2026-11-20 10:00 in Asia/Shanghai (the default customer time zone).
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const MIN = 60_000;

const ev = (
  id: string,
  customer: string,
  type: string,
  ts: number,
  extra: Partial<CxEvent> = {},
): CxEvent => ({
  id,
  ts,
  customer,
  type,
  channel: 'app',
  ...extra,
});

const events: CxEvent[] = [
  // c1 becomes VIP with a 1200 order, then contacts us and asks for an invoice.
  ev('e1', 'c1', 'order', T0, { amount: 1200, orderId: 'o-1', channel: 'web' }),
  ev('e2', 'c1', 'session_start', T0 + MIN, { session: 's-c1' }),
  ev('e3', 'c1', 'message', T0 + 2 * MIN, { session: 's-c1', text: '请帮我开发票，手机13812345678' }),
  // c2: three messages the bot does not understand, then an angry one, then the session ends.
  ev('e4', 'c2', 'session_start', T0, { session: 's-c2' }),
  ev('e5', 'c2', 'message', T0 + MIN, { session: 's-c2', recognized: false, text: 'hmm' }),
  ev('e6', 'c2', 'message', T0 + 2 * MIN, { session: 's-c2', recognized: false, text: 'what?' }),
  ev('e7', 'c2', 'message', T0 + 3 * MIN, { session: 's-c2', recognized: false, text: '??' }),
  ev('e8', 'c2', 'message', T0 + 4 * MIN, { session: 's-c2', sentiment: -0.9, text: 'this is useless' }),
  ev('e9', 'c2', 'session_end', T0 + 5 * MIN, { session: 's-c2' }),
  // c3 starts a session at 23:30 local time.
  ev('e10', 'c3', 'session_start', Date.UTC(2026, 10, 20, 15, 30), { session: 's-c3', channel: 'wechat' }),
];

const expected = [
  { rule: 'vip_routing', customer: 'c1', event: 'e2' },
  { rule: 'invoice_ticket', customer: 'c1', event: 'e3' },
  { rule: 'human_handoff', customer: 'c2', event: 'e7' },
  { rule: 'supervisor_escalation', customer: 'c2', event: 'e8' },
  { rule: 'satisfaction_survey', customer: 'c2', event: 'e9' },
  { rule: 'night_self_service', customer: 'c3', event: 'e10' },
];

describe('cxstream run, end to end', () => {
  const bed = engineBed('cxstream-e2e-');

  it('fires exactly the expected triggers, dead-letters bad events, and drains on SIGTERM', async () => {
    bed.engine = new EngineProcess(engineEnv(bed.server.url, bed.dir));
    await bed.engine.consuming(bed.nc);
    const jsm = await jetstreamManager(bed.nc);

    const js = jetstream(bed.nc);
    for (const e of events) {
      await js.publish(`cx.events.${e.channel}.${e.type}.${e.customer}`, pack(e), { msgID: e.id });
    }
    // Two bad events: not decodable at all, and valid JSON without `ts`.
    await js.publish('cx.events.web.message.c4', new TextEncoder().encode('{"id": "bad-1", oops'), {
      msgID: 'bad-1',
    });
    await js.publish(
      'cx.events.web.message.c4',
      new TextEncoder().encode(
        JSON.stringify({ id: 'bad-2', customer: 'c4', type: 'message', channel: 'web' }),
      ),
      { msgID: 'bad-2' },
    );
    const total = events.length + 2;

    // Everything is acked once every sink accepted it (ClickHouse rows included).
    await check(
      async () => {
        const info = await jsm.consumers.info('CX_EVENTS', 'cxstream');
        return info.delivered.stream_seq >= total && info.num_ack_pending === 0 && info.num_pending === 0;
      },
      30_000,
      () => bed.engine.stderrTail(),
    );

    const triggers = await readStream(bed.nc, 'CX_TRIGGERS');
    const rules = new Map(loadRules([join(root, 'config/rules.yaml')]).map((r) => [r.id, r]));
    expect(triggers.map((m) => m.subject).sort()).toEqual(
      expected.map((x) => `cx.triggers.${x.rule}`).sort(),
    );
    for (const x of expected) {
      const msg = triggers.find((m) => m.subject === `cx.triggers.${x.rule}`)!;
      const t = msg.json<Trigger>();
      const id = `${x.rule}:${x.customer}:${x.event}`;
      expect(t.id).toBe(id);
      expect(msg.headers?.get('Nats-Msg-Id')).toBe(id);
      expect(t.rule).toBe(x.rule);
      expect(t.customer).toBe(x.customer);
      expect(t.eventTime).toBe(events.find((e) => e.id === x.event)!.ts);
      expect(typeof t.firedAt).toBe('number');
      expect(typeof t.reason).toBe('string');
      expect(Object.keys(t).sort()).toEqual(
        [
          'customer',
          'eventTime',
          'firedAt',
          'id',
          'payload',
          'priority',
          'profile',
          'reason',
          'rule',
          'subject',
        ].sort(),
      );
      // the body names the subject it was published on (docs/CONTRACT.md "Trigger body")
      expect(t.subject).toBe(msg.subject);
      // c1 is VIP after one 1200 order today: r = 10, f = 0, m = 1 → score 4.3; c2 and c3 have no orders.
      const rfm = x.customer === 'c1' ? 4.3 : 0;
      expect(t.priority).toBeCloseTo((rules.get(x.rule)!.priority ?? 0) + rfm, 6);
    }
    const invoice = triggers.find((m) => m.subject === 'cx.triggers.invoice_ticket')!.json<Trigger>();
    expect(invoice.payload).toMatchObject({ orderId: 'o-1', amount: 1200 });

    const dead = await readStream(bed.nc, 'CX_DLQ');
    expect(dead.map((m) => m.headers?.get('Cx-Source-Seq')).sort()).toEqual([
      String(total - 1),
      String(total),
    ]);
    expect(dead[0]!.subject).toBe('cx.dlq.events');
    expect(new TextDecoder().decode(dead[0]!.data)).toBe('{"id": "bad-1", oops');
    expect(dead[0]!.headers?.get('Cx-Error')).toMatch(/JSON/i);
    expect(dead[1]!.headers?.get('Cx-Error')).toMatch(/ts/);
    // the publisher's headers stay on the dead letter, prefixed (docs/CONTRACT.md "Dead letters")
    expect(dead[0]!.headers?.get('Cx-Original-Nats-Msg-Id')).toBe('bad-1');
    expect(dead[1]!.headers?.get('Cx-Original-Nats-Msg-Id')).toBe('bad-2');
    expect(dead[0]!.headers?.get('Cx-Source-Subject')).toBe('cx.events.web.message.c4');

    expect(await bed.engine.stop()).toBe(0);

    // The engine released the embedded ClickHouse directory: read what it wrote.
    const ch = openClickHouse(`embedded:${bed.dir}/clickhouse`);
    try {
      const rows = await (
        await ch.query({
          query: 'SELECT id, text FROM cxstream.events FINAL ORDER BY id',
          format: 'JSONEachRow',
        })
      ).json<{ id: string; text: string }>();
      expect(rows.map((r) => r.id).sort()).toEqual(events.map((e) => e.id).sort());
      expect(rows.find((r) => r.id === 'e3')!.text).toBe('请帮我开发票，手机138****5678');
      const stored = await (
        await ch.query({ query: 'SELECT id FROM cxstream.triggers FINAL', format: 'JSONEachRow' })
      ).json<{ id: string }>();
      expect(stored.map((r) => r.id).sort()).toEqual(
        expected.map((x) => `${x.rule}:${x.customer}:${x.event}`).sort(),
      );
      const profiles = await (
        await ch.query({
          query:
            'SELECT customer, argMax(tier, updated_at) AS tier FROM cxstream.profiles FINAL GROUP BY customer ORDER BY customer',
          format: 'JSONEachRow',
        })
      ).json<{ customer: string; tier: string }>();
      expect(profiles).toEqual([
        { customer: 'c1', tier: 'VIP' },
        { customer: 'c2', tier: 'New' },
        { customer: 'c3', tier: 'New' },
      ]);
    } finally {
      await ch.close();
    }
  });
});
