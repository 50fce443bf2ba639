import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSettingError } from '../../engine/config/errors.js';
import { ensureStreams, streamSettings, subjectsOverlap } from '../../engine/nats/streams.js';
import type { ProfileRow, Reject, Trigger } from '../../operators/types.js';
import { DeadLetterSink, MemoryDeadLetterSink } from '../../sinks/deadLetters.js';
import { MemoryTriggerSink, NatsTriggerSink, publishPipelined } from '../../sinks/natsTriggers.js';
import {
  customerOfProfileKey,
  MemoryProfileStore,
  ProfileStore,
  profileKey,
} from '../../sinks/profileStore.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';

let t: TestNats;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  t = await setup({ streams: true });
  nc = t.nc;
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});

afterAll(() => cleanup(t));

function trigger(n: number, rule = 'cart_abandoned'): Trigger {
  return {
    id: `${rule}:c${n}:e${n}`,
    rule,
    customer: `c${n}`,
    firedAt: 1_700_000_000_000 + n,
    eventTime: 1_699_999_000_000 + n,
    reason: 'add_to_cart without order within 10m',
    priority: 5.5,
    payload: { sku: `sku-${n}`, coupon: 'TEN' },
    profile: { tier: 'VIP', 'rfm.score': 7.2 },
    subject: `cx.triggers.${rule}`,
  };
}

async function streamMessages(stream: string) {
  const info = await jsm.streams.info(stream);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m) out.push(m);
  }
  return out;
}

describe('ensureStreams', () => {
  const DAY_NS = 86_400_000_000_000;

  it('creates the contract streams and bucket with the default limits, and leaves existing ones as they are', async () => {
    const events = await jsm.streams.info('CX_EVENTS');
    expect(events.config.subjects).toEqual(['cx.events.>']);
    expect(events.config.storage).toBe('file');
    expect(events.config.max_age).toBe(7 * DAY_NS);
    expect(events.config.duplicate_window).toBe(600_000_000_000);
    expect(events.config.num_replicas).toBe(1);
    const triggers = await jsm.streams.info('CX_TRIGGERS');
    expect(triggers.config.subjects).toEqual(['cx.triggers.>']);
    expect(triggers.config.max_age).toBe(7 * DAY_NS);
    const dlq = await jsm.streams.info('CX_DLQ');
    expect(dlq.config.subjects).toEqual(['cx.dlq.>']);
    expect(dlq.config.max_age).toBe(30 * DAY_NS);
    const kv = await new Kvm(nc).open('cx_profiles');
    expect((await kv.status()).history).toBe(1);

    await jsm.streams.update('CX_EVENTS', { ...events.config, max_msgs: 123_456 });
    const steps = await ensureStreams(nc, streamSettings({ events: { duplicateWindowMs: 5_000 } }));
    const after = await jsm.streams.info('CX_EVENTS');
    expect(after.config.max_msgs).toBe(123_456);
    expect(after.config.duplicate_window).toBe(events.config.duplicate_window);
    expect(steps.find((s) => s.name === 'CX_EVENTS')).toEqual({
      kind: 'stream',
      name: 'CX_EVENTS',
      outcome: 'differs',
      differences: ['duplicate_window 10 min (config 5 s)'],
    });
    expect(steps.find((s) => s.name === 'CX_TRIGGERS')?.outcome).toBe('exists');
  });

  it('creates missing streams with the limits asked for, and applies them to existing ones on update', async () => {
    await jsm.streams.delete('CX_TRIGGERS');
    await ensureStreams(
      nc,
      streamSettings({ triggers: { duplicateWindowMs: 5_000, maxAgeMs: 3_600_000, maxBytes: 1 << 30 } }),
    );
    const created = (await jsm.streams.info('CX_TRIGGERS')).config;
    expect(created.duplicate_window).toBe(5_000_000_000);
    expect(created.max_age).toBe(3_600_000_000_000);
    expect(created.max_bytes).toBe(1 << 30);
    const steps = await ensureStreams(nc, streamSettings(), { update: true });
    expect(steps.find((s) => s.name === 'CX_TRIGGERS')).toMatchObject({ outcome: 'updated' });
    const updated = (await jsm.streams.info('CX_TRIGGERS')).config;
    expect(updated.duplicate_window).toBe(600_000_000_000);
    expect(updated.max_age).toBe(7 * DAY_NS);
    expect(updated.max_bytes).toBe(-1);
    expect((await ensureStreams(nc)).map((s) => s.outcome)).toEqual([
      'exists',
      'exists',
      'exists',
      'exists',
      'exists',
    ]);
  });

  it('names the stream in the way and what to do when another stream holds the subjects', async () => {
    await jsm.streams.delete('CX_DLQ');
    await jsm.streams.add({ name: 'LEGACY_ALL', subjects: ['cx.dlq.>', 'legacy.>'] });
    try {
      const failure = await ensureStreams(nc).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isSettingError(failure)).toBe(true);
      const message = (failure as Error).message;
      expect(message).toContain('cannot create stream CX_DLQ for subjects cx.dlq.>');
      expect(message).toContain('LEGACY_ALL (subjects cx.dlq.>, legacy.>)');
      expect(message).toMatch(/remove that stream or narrow its subjects/i);
    } finally {
      await jsm.streams.delete('LEGACY_ALL');
      await ensureStreams(nc);
    }
  });

  it('subjectsOverlap: what one stream may not share with another', () => {
    expect(subjectsOverlap('cx.>', 'cx.triggers.>')).toBe(true);
    expect(subjectsOverlap('cx.*.a', 'cx.triggers.>')).toBe(true);
    expect(subjectsOverlap('cx.*', 'cx.triggers.>')).toBe(false);
    expect(subjectsOverlap('cx', 'cx.>')).toBe(false);
    expect(subjectsOverlap('cx.events.>', 'cx.triggers.>')).toBe(false);
    expect(subjectsOverlap('>', 'cx.dlq.events')).toBe(true);
    expect(subjectsOverlap('cx.dlq.events', 'cx.dlq.events')).toBe(true);
  });
});

describe('NatsTriggerSink', () => {
  it('publishes the contract fields to the trigger subject with Nats-Msg-Id = id', async () => {
    await jsm.streams.purge('CX_TRIGGERS');
    const sink = new NatsTriggerSink(js);
    await sink.publish([trigger(1), trigger(2, 'vip_routing')]);
    const stored = await streamMessages('CX_TRIGGERS');
    expect(stored.map((m) => m.subject)).toEqual(['cx.triggers.cart_abandoned', 'cx.triggers.vip_routing']);
    expect(stored[0]!.header.get('Nats-Msg-Id')).toBe('cart_abandoned:c1:e1');
    const body = stored[0]!.json<Record<string, unknown>>();
    expect(Object.keys(body)).toEqual([
      'id',
      'rule',
      'customer',
      'subject',
      'firedAt',
      'eventTime',
      'reason',
      'priority',
      'payload',
      'profile',
    ]);
    expect(body).toEqual(trigger(1));
    expect(body.subject).toBe(stored[0]!.subject);
  });

  it('stores a trigger once when it is published again (de-duplication by Nats-Msg-Id)', async () => {
    await jsm.streams.purge('CX_TRIGGERS');
    const sink = new NatsTriggerSink(js);
    // a rule of its own: ids stay de-duplicated for the window, even across the purge above
    const batch = Array.from({ length: 20 }, (_, i) => trigger(i, 'dedup'));
    await sink.publish(batch);
    await sink.publish(batch);
    await sink.publish([trigger(3, 'dedup')]);
    const info = await jsm.streams.info('CX_TRIGGERS');
    expect(info.state.messages).toBe(20);
  });

  it('keeps order with a small in-flight bound and rejects when a publish fails', async () => {
    await jsm.streams.purge('CX_TRIGGERS');
    const sink = new NatsTriggerSink(js, { maxInFlight: 3 });
    await sink.publish(Array.from({ length: 50 }, (_, i) => trigger(i, 'ordering')));
    const stored = await streamMessages('CX_TRIGGERS');
    expect(stored.map((m) => m.json<Trigger>().customer)).toEqual(
      Array.from({ length: 50 }, (_, i) => `c${i}`),
    );

    // a subject no stream stores: JetStream has no responder for it
    const lost = { ...trigger(99), subject: 'nowhere.cart_abandoned' };
    await expect(sink.publish([trigger(98), lost])).rejects.toThrow();
  });

  it('MemoryTriggerSink collects what it is given', async () => {
    const sink = new MemoryTriggerSink();
    await sink.publish([trigger(1)]);
    await sink.publish([trigger(2), trigger(3)]);
    expect(sink.triggers.map((t) => t.id)).toEqual([
      'cart_abandoned:c1:e1',
      'cart_abandoned:c2:e2',
      'cart_abandoned:c3:e3',
    ]);
  });
});

describe('publishPipelined', () => {
  it('never has more than maxInFlight sends pending and reports the first failure after all settled', async () => {
    let pending = 0;
    let peak = 0;
    const settled: number[] = [];
    const send = (n: number) => {
      pending++;
      peak = Math.max(peak, pending);
      return new Promise<void>((resolve, reject) =>
        setTimeout(() => {
          pending--;
          settled.push(n);
          if (n === 7 || n === 9) reject(new Error(`failed ${n}`));
          else resolve();
        }, 1),
      );
    };
    await publishPipelined(
      Array.from({ length: 5 }, (_, i) => i),
      2,
      send,
    );
    expect(peak).toBe(2);
    peak = 0;
    await expect(publishPipelined([5, 6, 7, 8, 9, 10, 11, 12], 3, send)).rejects.toThrow('failed 7');
    expect(pending).toBe(0);
    expect(peak).toBeLessThanOrEqual(3);
    // after the failure no new sends start
    expect(settled).not.toContain(12);
  });
});

describe('DeadLetterSink', () => {
  it('stores the original bytes with Cx-Error (masked), Cx-Source-Seq, Cx-Source-Subject and de-duplicates by seq', async () => {
    await jsm.streams.purge('CX_DLQ');
    const sink = new DeadLetterSink(js);
    const rejects: Reject[] = [
      {
        seq: 42,
        subject: 'cx.events.web.order.c1',
        data: new Uint8Array([0xc1, 0xff, 0x00, 0x7b]),
        reason: 'not msgpack',
      },
      {
        seq: 43,
        subject: 'cx.events.web.order.c2',
        data: new TextEncoder().encode('{}'),
        reason: 'missing id\nand ts',
      },
      {
        seq: 44,
        subject: 'cx.events.web.order.c3',
        data: new TextEncoder().encode('{"phone": "13812345678"}'),
        reason: 'processing failed: cannot read "13812345678" of 我叫张三',
      },
    ];
    await sink.publish(rejects);
    await sink.publish(rejects.slice(0, 1));
    const stored = await streamMessages('CX_DLQ');
    expect(stored).toHaveLength(3);
    const [a, b, c] = stored;
    expect(a!.subject).toBe('cx.dlq.events');
    expect([...a!.data]).toEqual([0xc1, 0xff, 0x00, 0x7b]);
    expect(a!.header.get('Cx-Error')).toBe('not msgpack');
    expect(a!.header.get('Cx-Source-Seq')).toBe('42');
    expect(a!.header.get('Cx-Source-Subject')).toBe('cx.events.web.order.c1');
    expect(a!.header.get('Nats-Msg-Id')).toBe('dlq:42');
    expect(b!.header.get('Cx-Error')).toBe('missing id and ts');
    // the body stays as sent (a fixed event is republished from it); the reason is masked
    expect(new TextDecoder().decode(c!.data)).toBe('{"phone": "13812345678"}');
    expect(c!.header.get('Cx-Error')).toBe('processing failed: cannot read "138****5678" of 我叫张*');
  });

  it('keeps the original message headers, prefixed with Cx-Original-, read back from the source stream', async () => {
    await jsm.streams.purge('CX_DLQ');
    const h = headers();
    h.set('Nats-Msg-Id', 'evt-77');
    h.set('Traceparent', '00-abc-def-01');
    h.append('X-Tag', 'one');
    h.append('X-Tag', 'two');
    const ack = await js.publish('cx.events.web.order.c77', new TextEncoder().encode('{oops'), {
      headers: h,
    });
    const plain = await js.publish('cx.events.web.order.c78', new TextEncoder().encode('{oops'));
    const third = await js.publish('cx.events.web.order.c79', new TextEncoder().encode('{}'), { headers: h });
    const sink = new DeadLetterSink(js, { sourceStream: 'CX_EVENTS' });
    const bytes = new TextEncoder().encode('{oops');
    await sink.publish([
      { seq: ack.seq, subject: 'cx.events.web.order.c77', data: bytes, reason: 'bad' },
      { seq: plain.seq, subject: 'cx.events.web.order.c78', data: bytes, reason: 'bad' },
      // the stream holds another message at that sequence: no headers are borrowed from it
      { seq: third.seq, subject: 'cx.events.web.order.elsewhere', data: bytes, reason: 'bad' },
    ]);
    const stored = await streamMessages('CX_DLQ');
    expect(stored).toHaveLength(3);
    const [withHeaders, plainOne, mismatched] = stored;
    expect(withHeaders!.header.get('Cx-Original-Nats-Msg-Id')).toBe('evt-77');
    expect(withHeaders!.header.get('Cx-Original-Traceparent')).toBe('00-abc-def-01');
    expect(withHeaders!.header.values('Cx-Original-X-Tag')).toEqual(['one', 'two']);
    expect(withHeaders!.header.get('Nats-Msg-Id')).toBe(`dlq:${ack.seq}`);
    expect(withHeaders!.header.get('Cx-Source-Subject')).toBe('cx.events.web.order.c77');
    const originals = (m: (typeof stored)[number]) =>
      [...m.header.keys()].filter((k) => k.startsWith('Cx-Original-'));
    expect(originals(plainOne!)).toEqual([]);
    expect(originals(mismatched!)).toEqual([]);
  });

  it('MemoryDeadLetterSink collects what it is given', async () => {
    const sink = new MemoryDeadLetterSink();
    await sink.publish([{ seq: 1, subject: 's', data: new Uint8Array([1]), reason: 'r' }]);
    expect(sink.rejects).toHaveLength(1);
  });
});

function row(customer: string, profile: Record<string, unknown>): ProfileRow {
  return {
    customer,
    updated_at: 1_700_000_000_000,
    tier: String(profile.tier ?? 'New'),
    rfm_score: 1,
    spend: 0,
    orders: 0,
    tags: [],
    profile: JSON.stringify(profile),
  };
}

describe('ProfileStore', () => {
  it('puts and gets profiles by customer, the last row per customer winning', async () => {
    const store = await ProfileStore.open(nc);
    await store.put([row('c1', { tier: 'New' }), row('c2', { tier: 'Regular' }), row('c1', { tier: 'VIP' })]);
    expect(await store.get('c1')).toEqual({ tier: 'VIP' });
    expect(await store.get('c2')).toEqual({ tier: 'Regular' });
    expect(await store.get('nobody')).toBeNull();
  });

  it('sends only the latest profile per customer of the puts within its flush interval', async () => {
    const store = await ProfileStore.open(nc, { flushIntervalMs: 200 });
    const sent: string[] = [];
    const sub = nc.subscribe('$KV.cx_profiles.>', {
      callback: (_e, m) => {
        sent.push(`${m.subject}=${m.string()}`);
      },
    });
    const first = [
      store.put([row('k1', { v: 1 }), row('k2', { v: 1 })]),
      store.put([row('k1', { v: 2 })]),
      store.put([row('k3', { v: 1 }), row('k1', { v: 3 })]),
    ];
    await Promise.all(first);
    // puts after a flush started go with the next one, which the bucket sees later
    await Promise.all([store.put([row('k1', { v: 4 })]), store.put([row('k2', { v: 2 })])]);
    await nc.flush();
    sub.unsubscribe();
    expect(sent).toEqual([
      '$KV.cx_profiles.k2={"v":1}',
      '$KV.cx_profiles.k3={"v":1}',
      '$KV.cx_profiles.k1={"v":3}',
      '$KV.cx_profiles.k1={"v":4}',
      '$KV.cx_profiles.k2={"v":2}',
    ]);
    expect(await store.get('k1')).toEqual({ v: 4 });
    expect(await store.get('k2')).toEqual({ v: 2 });
  });

  it('stores customers whose ids NATS KV keys cannot hold, under profileKey()', async () => {
    const store = await ProfileStore.open(nc);
    const odd = [
      'alice@example.com',
      'wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M',
      '张三',
      'a.b',
      '.lead',
      'sp ace',
      '=x',
      'a/b',
    ];
    await store.put(odd.map((c, i) => row(c, { n: i })));
    for (const [i, c] of odd.entries()) expect(await store.get(c)).toEqual({ n: i });
    // other systems look a profile up by the same key
    const kv = await new Kvm(nc).open('cx_profiles');
    expect((await kv.get(profileKey('alice@example.com')))?.json()).toEqual({ n: 0 });
    expect(profileKey('c-1_A')).toBe('c-1_A');
  });

  it('deletes a profile (forget)', async () => {
    const store = await ProfileStore.open(nc);
    await store.put([row('gone', { tier: 'VIP' })]);
    await store.delete('gone');
    expect(await store.get('gone')).toBeNull();
    await store.delete('never-there');
  });

  it('profileKey is a valid KV key and reversible for any customer id', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, unit: 'grapheme' }), (customer) => {
        const key = profileKey(customer);
        expect(key).toMatch(/^[-/=.\w]+$/);
        expect(key.startsWith('.') || key.endsWith('.')).toBe(false);
        expect(customerOfProfileKey(key)).toBe(customer);
      }),
    );
  });

  it('MemoryProfileStore behaves the same', async () => {
    const store = new MemoryProfileStore();
    await store.put([row('c1', { tier: 'New' }), row('c1', { tier: 'VIP' })]);
    expect(await store.get('c1')).toEqual({ tier: 'VIP' });
    await store.delete('c1');
    expect(await store.get('c1')).toBeNull();
  });
});
