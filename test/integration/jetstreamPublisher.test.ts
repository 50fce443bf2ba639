import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsServer } from '../../engine/nats/natsServer.js';
import { ConnectionWatch } from '../../sinks/connectionWatch.js';
import {
  isJetStreamPublishError,
  type JetStreamMessage,
  type JetStreamPublishError,
  JetStreamPublisher,
} from '../../sinks/jetstreamPublisher.js';
import { check } from '../harness/check.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';

let t: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  t = await setup();
  nc = t.nc;
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'PUB', subjects: ['pub.>'] });
});

afterAll(() => cleanup(t));

const enc = new TextEncoder();

function messages(n: number, prefix: string, subject = 'pub.a'): JetStreamMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    subject,
    data: enc.encode(`m${i}`),
    msgId: `${prefix}-${i}`,
  }));
}

/** A core subscriber standing in for JetStream: it keeps the messages and answers when told to. */
async function heldResponder(subject: string): Promise<{ held: Msg[]; answer(body: string): void }> {
  const held: Msg[] = [];
  nc.subscribe(subject, {
    callback: (_e, m) => {
      held.push(m);
    },
  });
  // The subscription must reach the server before another connection publishes to it.
  await nc.flush();
  return {
    held,
    answer(body) {
      const m = held.shift();
      if (!m) throw new Error('nothing held');
      m.respond(enc.encode(body));
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<JetStreamPublishError> {
  try {
    await p;
  } catch (e) {
    expect(isJetStreamPublishError(e)).toBe(true);
    return e as JetStreamPublishError;
  }
  throw new Error('expected a rejection');
}

describe('JetStreamPublisher', () => {
  it('resolves once JetStream acked every message, stored in order, and counts the acks', async () => {
    await jsm.streams.purge('PUB');
    const publisher = new JetStreamPublisher(nc, { maxInFlight: 16 });
    const summary = await publisher.publishAll(messages(200, 'order'), (m) => m);
    expect(summary).toEqual({ stored: 200, duplicates: 0 });
    expect(publisher.counts).toEqual({ acked: 200, duplicates: 0, failed: 0 });
    expect(publisher.inFlight).toBe(0);
    const info = await jsm.streams.info('PUB');
    expect(info.state.messages).toBe(200);
    const last = await jsm.streams.getMessage('PUB', { seq: info.state.last_seq });
    expect(last?.string()).toBe('m199');
    expect(last?.header.get('Nats-Msg-Id')).toBe('order-199');
    publisher.close();
  });

  it('reports a message JetStream already holds under its Nats-Msg-Id as a duplicate, not an error', async () => {
    await jsm.streams.purge('PUB');
    const publisher = new JetStreamPublisher(nc);
    await publisher.publishAll(messages(10, 'dup'), (m) => m);
    const again = await publisher.publishAll(messages(12, 'dup'), (m) => m);
    expect(again).toEqual({ stored: 2, duplicates: 10 });
    expect(await publisher.publish(messages(1, 'dup')[0]!)).toBe(true);
    expect(publisher.counts).toEqual({ acked: 12, duplicates: 11, failed: 0 });
    expect((await jsm.streams.info('PUB')).state.messages).toBe(12);
    publisher.close();
  });

  it('fails with no-responders (503) when no stream stores the subject', async () => {
    const publisher = new JetStreamPublisher(nc);
    const err = await rejection(
      publisher.publishAll([...messages(3, 'ok'), { subject: 'nowhere.x', data: enc.encode('x') }], (m) => m),
    );
    expect(err.failure).toBe('no-responders');
    expect(err.code).toBe(503);
    expect(err.subject).toBe('nowhere.x');
    expect(publisher.counts.failed).toBe(1);
    expect(publisher.counts.acked).toBe(3);
    publisher.close();
  });

  it('fails with the JetStream API error of an error PubAck', async () => {
    await jsm.streams.purge('PUB');
    const publisher = new JetStreamPublisher(nc);
    const h = headers();
    h.set('Nats-Expected-Last-Sequence', '999');
    const err = await rejection(publisher.publish({ subject: 'pub.b', data: enc.encode('x'), headers: h }));
    expect(err.failure).toBe('api');
    expect(err.code).toBe(10071); // wrong last sequence
    expect(err.message).toContain('wrong last sequence');
    expect((await jsm.streams.info('PUB')).state.messages).toBe(0);
    publisher.close();
  });

  it('fails a message whose ack does not come within the timeout, and ignores the late ack', async () => {
    const responder = await heldResponder('silent.a');
    const publisher = new JetStreamPublisher(nc, { timeoutMs: 100 });
    const err = await rejection(
      publisher.publish({ subject: 'silent.a', data: enc.encode('x'), msgId: 't1' }),
    );
    expect(err.failure).toBe('timeout');
    expect(err.msgId).toBe('t1');
    expect(publisher.inFlight).toBe(0);
    responder.answer('{"stream":"S","seq":1}');
    await nc.flush();
    expect(publisher.counts).toEqual({ acked: 0, duplicates: 0, failed: 1 });
    publisher.close();
  });

  it('keeps at most maxInFlight messages unanswered and sends the next one as each ack arrives', async () => {
    const responder = await heldResponder('held.a');
    const publisher = new JetStreamPublisher(nc, { maxInFlight: 3 });
    let done = false;
    const all = publisher
      .publishAll(messages(8, 'bp', 'held.a'), (m) => m)
      .finally(() => {
        done = true;
      });
    await check(() => responder.held.length === 3);
    await nc.flush(); // a round trip: anything more sent would have arrived by now
    expect(responder.held.length).toBe(3);
    expect(publisher.inFlight).toBe(3);

    responder.answer('{"stream":"S","seq":1}');
    await check(() => responder.held.length === 3 && publisher.counts.acked === 1);
    await nc.flush();
    expect(responder.held.map((m) => m.string())).toEqual(['m1', 'm2', 'm3']);
    expect(publisher.inFlight).toBe(3);

    // a second publisher call waits behind the first one's queue
    const single = publisher.publish({ subject: 'held.a', data: enc.encode('later') });
    for (let i = 2; i <= 9; i++) {
      await check(() => responder.held.length > 0);
      expect(publisher.inFlight).toBeLessThanOrEqual(3);
      responder.answer(`{"stream":"S","seq":${i},"duplicate":${i === 5}}`);
    }
    expect(await all).toEqual({ stored: 7, duplicates: 1 });
    expect(done).toBe(true);
    expect(await single).toBe(false);
    publisher.close();
  });

  it('stops sending after a failure and rejects once the messages already sent were answered', async () => {
    const responder = await heldResponder('held.b');
    const publisher = new JetStreamPublisher(nc, { maxInFlight: 2 });
    const all = publisher.publishAll(messages(6, 'stop', 'held.b'), (m) => m);
    await check(() => responder.held.length === 2);
    responder.answer(
      '{"error":{"code":500,"err_code":10077,"description":"message size exceeds maximum allowed"}}',
    );
    await nc.flush();
    await nc.flush(); // the freed slot is not used: m2 is never sent
    expect(responder.held.map((m) => m.string())).toEqual(['m1']);
    responder.answer('{"stream":"S","seq":2}');
    const err = await rejection(all);
    expect(err.failure).toBe('api');
    expect(err.code).toBe(10077);
    expect(err.msgId).toBe('stop-0');
    await nc.flush();
    expect(responder.held).toHaveLength(0);
    expect(publisher.counts).toEqual({ acked: 1, duplicates: 0, failed: 1 });
    publisher.close();
  });

  it('fails pending messages when the connection closes', async () => {
    const other = await connect({ servers: t.server.url });
    const responder = await heldResponder('held.c');
    const publisher = new JetStreamPublisher(other);
    const failed = rejection(publisher.publish({ subject: 'held.c', data: enc.encode('x') }));
    await check(() => responder.held.length === 1);
    await other.close();
    expect((await failed).failure).toBe('closed');
    expect((await rejection(publisher.publish({ subject: 'held.c', data: enc.encode('y') }))).failure).toBe(
      'closed',
    );
  });

  it('stores string and byte bodies, ids and subjects byte for byte', async () => {
    await jsm.streams.purge('PUB');
    const publisher = new JetStreamPublisher(nc, { maxInFlight: 64 });
    const own = headers();
    own.set('X-Own', 'yes');
    const big = 'é'.repeat(200_000); // 400 kB of UTF-8
    const sent: JetStreamMessage[] = [
      { subject: 'pub.text', data: '{"a":1}', msgId: 'text-1' },
      { subject: 'pub.bytes', data: enc.encode('bytes'), msgId: 'bytes-1' },
      { subject: 'pub.none', data: 'no id' },
      { subject: 'pub.ü', data: 'ünïcödé ✓ 🎉', msgId: 'id-ü-🎉' },
      { subject: 'pub.own', data: 'own headers', msgId: 'own-1', headers: own },
      { subject: 'pub.trim', data: 'trimmed id', msgId: ' padded ' }, // nats.js trims header values
      { subject: 'pub.empty', data: '', msgId: 'empty-1' },
      { subject: 'pub.big', data: big, msgId: 'big-1' },
      ...Array.from({ length: 100 }, (_, i) => ({ subject: 'pub.many', data: `n${i}`, msgId: `many-${i}` })),
    ];
    expect(await publisher.publishAll(sent, (m) => m)).toEqual({ stored: sent.length, duplicates: 0 });
    const info = await jsm.streams.info('PUB');
    expect(info.state.messages).toBe(sent.length);
    const stored = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage('PUB', { seq });
      stored.push({ subject: m!.subject, body: m!.string(), id: m!.header?.get('Nats-Msg-Id') ?? '' });
    }
    expect(stored).toEqual(
      sent.map((m) => ({
        subject: m.subject,
        body: typeof m.data === 'string' ? m.data : new TextDecoder().decode(m.data),
        id: m.msgId?.trim() ?? '',
      })),
    );
    const ownStored = await jsm.streams.getMessage('PUB', { seq: info.state.first_seq + 4 });
    expect(ownStored?.header.get('X-Own')).toBe('yes');
    // the same ids again: every one a duplicate
    expect(await publisher.publishAll(sent.slice(0, 4), (m) => m)).toEqual({ stored: 1, duplicates: 3 });
    publisher.close();
  });

  it('fails a message above the server max_payload as a send failure, after the ones before it were acked', async () => {
    const publisher = new JetStreamPublisher(nc);
    const max = nc.info?.max_payload ?? 1024 * 1024;
    const err = await rejection(
      publisher.publishAll(
        [
          { subject: 'pub.a', data: 'fine', msgId: 'max-1' },
          { subject: 'pub.a', data: 'x'.repeat(max + 1), msgId: 'max-2' },
          { subject: 'pub.a', data: 'never sent', msgId: 'max-3' },
        ],
        (m) => m,
      ),
    );
    expect(err.failure).toBe('send');
    expect(err.msgId).toBe('max-2');
    expect(publisher.counts).toMatchObject({ acked: 1, failed: 1 });
    publisher.close();
  });

  it('is built from a JetStream client, taking its connection', async () => {
    await jsm.streams.purge('PUB');
    const publisher = JetStreamPublisher.of(jetstream(nc));
    expect(await publisher.publish({ subject: 'pub.c', data: enc.encode('x'), msgId: 'from-js' })).toBe(
      false,
    );
    expect((await jsm.streams.info('PUB')).state.messages).toBe(1);
    publisher.close();
  });
});

describe('JetStreamPublisher across a nats-server restart', () => {
  // a timeout far above the test's own deadline: only the connection can end these waits in time
  const TIMEOUT_MS = 60_000;

  it('fails a message waiting for its ack at once when the connection drops, not at the timeout', async () => {
    const own = await NatsServer.start();
    const watcher = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const pub = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      // a responder that never answers keeps the message waiting for its ack
      const held: Msg[] = [];
      watcher.subscribe('held.restart', {
        callback: (_e, m) => {
          held.push(m);
        },
      });
      await watcher.flush();
      const publisher = new JetStreamPublisher(pub, { timeoutMs: TIMEOUT_MS });
      const started = Date.now();
      const failed = rejection(publisher.publish({ subject: 'held.restart', data: enc.encode('x') }));
      await check(() => held.length === 1);
      await own.kill();
      const e = await failed;
      expect(e.failure).toBe('disconnected');
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(publisher.inFlight).toBe(0);
    } finally {
      await pub.close();
      await watcher.close();
      await own.stop();
    }
  });

  it('holds a message published while disconnected and sends it once reconnected', async () => {
    const own = await NatsServer.start();
    const pub = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const ownJsm = await jetstreamManager(pub);
      await ownJsm.streams.add({ name: 'RESTART', subjects: ['restart.>'] });
      const publisher = new JetStreamPublisher(pub, { timeoutMs: TIMEOUT_MS });
      await own.kill();
      await check(() => !ConnectionWatch.of(pub).connected);
      const started = Date.now();
      const sent = publisher.publish({ subject: 'restart.a', data: enc.encode('x'), msgId: 'r1' });
      await new Promise((r) => setTimeout(r, 500));
      await own.restart();
      // nats.js drops what was written while disconnected: without waiting, this ends at the timeout
      expect(await sent).toBe(false);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await ownJsm.streams.info('RESTART')).state.messages).toBe(1);
    } finally {
      await pub.close();
      await own.stop();
    }
  });
});
