/**
 * Personal data through the real pipeline (`cxstream replay --publish`: worker threads, NATS,
 * embedded ClickHouse): an event with personal data in every listed field leaves no trace of it in
 * the ClickHouse `events`, `triggers` and `profiles` rows, the trigger bodies on CX_TRIGGERS or the
 * KV profile, except the one payload entry the config allows for its subject.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsServer } from '../../engine/nats/natsServer.js';
import type { CxEvent } from '../../operators/types.js';
import { openClickHouse } from '../../sinks/clickhouse.js';
import { replayPublished, writeConfig } from '../harness/cli.js';
import { readStream } from '../harness/readStream.js';

const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);

/** Personal data in each listed field, and what must never leave the engine of it. */
const message: CxEvent = {
  id: 'm1',
  ts: T0,
  customer: 'c1',
  type: 'message',
  channel: 'wechat',
  session: 's1',
  orderId: 'SO20241101',
  text: '我叫张三，手机13812345678，护照E12345678，订单SO20241101金额¥1299.00',
  name: '张三',
  phone: '13812345678',
  email: 'zhang.san@example.com',
  address: '北京市朝阳区建国路88号',
  remark: '收货人：李四，座机010-87654321',
  // an extra field listed with a kind, and a code field the profile copies, listed as an address
  mobile: '１３９８７６５４３２１',
  region: '北京市朝阳区建国路88号',
};
const order: CxEvent = {
  id: 'o1',
  ts: T0 + 60_000,
  customer: 'c1',
  type: 'order',
  channel: 'web',
  amount: 1299,
  orderId: 'SO20241101',
  region: '北京市朝阳区建国路88号',
};
const SECRETS = [
  '张三',
  '13812345678',
  'E12345678',
  'zhang.san',
  '建国路',
  '李四',
  '87654321',
  '１３９８７６５４３２１',
  '13987654321',
];
/** The secrets found in `text`. */
const leaked = (text: string) => SECRETS.filter((s) => text.includes(s));

const RULES = `rules:
  - id: contact_all
    on: [message]
    payload:
      text: event.text
      name: event.name
      phone: event.phone
      email: event.email
      address: event.address
      remark: event.remark
      mobile: event.mobile
      region: event.region
      orderId: event.orderId
      summary: event.name + " " + event.phone
    profile: [region, tags, spend]
  - id: callback
    on: [message]
    subject: cx.triggers.callback
    payload:
      phone: event.phone
      name: event.name
      text: event.text
`;

describe('personal data through the pipeline', () => {
  let dir: string;
  let server: NatsServer;
  let nc: NatsConnection;
  let ch: ClickHouseClient;
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-privacy-'));
    server = await NatsServer.start();
    writeFileSync(
      join(dir, 'events.ndjson'),
      `${[message, order].map((e) => JSON.stringify(e)).join('\n')}\n`,
    );
    writeFileSync(join(dir, 'rules.yaml'), RULES);
    writeConfig(dir, server.url, [
      'privacy:',
      '  maskFields: [text, name, phone, email, address, remark, mobile:phone, region:address]',
      '  unmaskedPayload: [cx.triggers.callback:phone]',
    ]);
    await replayPublished(dir);
    nc = await connect({ servers: server.url });
    ch = openClickHouse(`embedded:${join(dir, 'clickhouse')}`);
  }, 120_000);

  afterAll(async () => {
    process.env = saved;
    await ch?.close();
    await nc?.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const rows = async (query: string) =>
    (await ch.query({ query, format: 'JSONEachRow' })).json<Record<string, unknown>>();

  it('stores the events rows masked, in every column', async () => {
    const events = await rows('SELECT * FROM cxstream.events FINAL ORDER BY ts');
    expect(events.map((r) => r.id)).toEqual(['m1', 'o1']);
    expect(events[0]).toMatchObject({
      text: '我叫张*，手机138****5678，护照E*****678，订单SO20241101金额¥1299.00',
      region: '北京市朝阳区******',
      session: 's1',
    });
    expect(leaked(JSON.stringify(events))).toEqual([]);
  });

  it('publishes trigger bodies without personal data, but for the entry the subject allows', async () => {
    const bodies = (await readStream(nc, 'CX_TRIGGERS')).map((m) => ({
      subject: m.subject,
      body: m.string(),
    }));
    expect(bodies.map((b) => b.subject).sort()).toEqual(['cx.triggers.callback', 'cx.triggers.contact_all']);
    const all = bodies.find((b) => b.subject === 'cx.triggers.contact_all')!;
    expect(leaked(all.body)).toEqual([]);
    const t = JSON.parse(all.body);
    expect(t.payload).toEqual({
      text: '我叫张*，手机138****5678，护照E*****678，订单SO20241101金额¥1299.00',
      name: '张*',
      phone: '138****5678',
      email: 'z***@example.com',
      address: '北京市朝阳区******',
      remark: '收货人：李*，座机010-****4321',
      mobile: '１３９****４３２１',
      region: '北京市朝阳区******',
      orderId: 'SO20241101',
      summary: '张* 138****5678',
    });
    expect(t.profile.region).toBe('北京市朝阳区******');
    expect(t.profile.tags).toContain('region:北京市朝阳区******');
    const callback = bodies.find((b) => b.subject === 'cx.triggers.callback')!;
    expect(JSON.parse(callback.body).payload).toEqual({
      phone: '13812345678', // allowed: cx.triggers.callback:phone
      name: '张*',
      text: '我叫张*，手机138****5678，护照E*****678，订单SO20241101金额¥1299.00',
    });
    expect(leaked(callback.body.replace('"phone":"13812345678"', ''))).toEqual([]);

    const stored = await rows('SELECT rule, payload, profile FROM cxstream.triggers FINAL ORDER BY rule');
    expect(stored.map((r) => r.rule)).toEqual(['callback', 'contact_all']);
    expect(JSON.parse(stored[1]!.payload as string)).toEqual(t.payload);
    expect(leaked(JSON.stringify(stored[1]))).toEqual([]);
    expect(JSON.parse(stored[0]!.payload as string).phone).toBe('13812345678');
  });

  it('writes the profile to KV and ClickHouse without personal data', async () => {
    const kv = await new Kvm(nc).open('cx_profiles');
    const entry = await kv.get('c1');
    const profile = entry!.string();
    expect(leaked(profile)).toEqual([]);
    expect(JSON.parse(profile)).toMatchObject({
      customer: 'c1',
      region: '北京市朝阳区******',
      lastOrderId: 'SO20241101',
      spend: 1299,
    });
    expect(JSON.parse(profile).tags).toContain('region:北京市朝阳区******');
    const stored = await rows('SELECT * FROM cxstream.profiles FINAL');
    expect(stored.length).toBeGreaterThan(0);
    expect(leaked(JSON.stringify(stored))).toEqual([]);
  });
});
