import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { lastValueFrom, type Subscription, toArray } from 'rxjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../engine/nats/natsServer.js';
import type { EventSource, RawEvent } from '../../engine/source/eventSource.js';
import { jetstreamSource } from '../../engine/source/jetstreamSource.js';
import { check as poll } from '../harness/check.js';
import { cleanup, reconnecting, setup, type TestNats } from '../harness/nats.js';

let t: TestNats;
let server: NatsServer;
let nc: NatsConnection;
let durableCounter = 0;
let durable = '';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

beforeAll(async () => {
  t = await setup({ streams: true, connect: reconnecting });
  ({ server, nc } = t);
});

afterAll(() => cleanup(t));

beforeEach(async () => {
  // each test reads its own fresh stream contents with its own durable
  const jsm = await jetstreamManager(nc);
  await jsm.streams.purge('CX_EVENTS');
  durable = `t${++durableCounter}`;
});

const sources: EventSource[] = [];
const subscriptions: Subscription[] = [];
afterEach(async () => {
  for (const s of subscriptions.splice(0)) s.unsubscribe();
  for (const s of sources.splice(0)) await s.stop(0);
});

/** Publishes events `from`..`from + count - 1` (core publish, as bulk loaders do) and waits until stored. */
async function publish(count: number, from = 0): Promise<void> {
  for (let i = from; i < from + count; i++) {
    nc.publish(`cx.events.web.message.c${i % 7}`, encoder.encode(`event-${i}`));
  }
  await nc.flush();
  const jsm = await jetstreamManager(nc);
  // the stream is purged before each test, so it holds exactly the events published by the test
  await check(async () => (await jsm.streams.info('CX_EVENTS')).state.messages >= from + count);
}

/** The harness's `check`, every 20 ms, with 20 s by default: a restarted server takes its time. */
function check<T>(fn: () => T | Promise<T>, timeoutMs = 20_000) {
  return poll(fn, timeoutMs, undefined, 20);
}

function source(opts: Partial<Parameters<typeof jetstreamSource>[0]> = {}): EventSource {
  const s = jetstreamSource({ nc, durable, chunkWaitMs: 5, ...opts });
  sources.push(s);
  return s;
}

/** Collects chunks; `autoDone` marks each chunk done as it arrives. */
function collect(s: EventSource, autoDone: (chunk: RawEvent[]) => boolean = () => true) {
  const chunks: RawEvent[][] = [];
  const events = () => chunks.flat();
  let completed = false;
  subscriptions.push(
    s.chunks$.subscribe({
      next: (chunk) => {
        chunks.push(chunk);
        if (autoDone(chunk)) s.done(chunk.map((e) => e.seq));
      },
      complete: () => {
        completed = true;
      },
    }),
  );
  return { chunks, events, isCompleted: () => completed };
}

async function consumerInfo() {
  const jsm = await jetstreamManager(nc);
  return jsm.consumers.info('CX_EVENTS', durable);
}

/**
 * Everything the durable delivered is acked and nothing is left to deliver: nothing can arrive any
 * more, so what a source emitted can be counted.
 */
async function settled(): Promise<boolean> {
  const { num_ack_pending, num_pending } = await consumerInfo();
  return num_ack_pending === 0 && num_pending === 0;
}

describe('jetstreamSource', () => {
  it('emits exactly what was published, in stream order, in chunks of at most chunkSize', async () => {
    await publish(2500);
    const s = source({ chunkSize: 1000, chunkWaitMs: 1_500 });
    const got = collect(s);
    await check(() => got.events().length >= 2500);
    const events = got.events();
    expect(events.map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: 2500 }, (_, i) => `event-${i}`),
    );
    expect(events.map((e) => e.subject).slice(0, 2)).toEqual([
      'cx.events.web.message.c0',
      'cx.events.web.message.c1',
    ]);
    for (let i = 1; i < events.length; i++) expect(events[i]!.seq).toBe(events[i - 1]!.seq + 1);
    // full chunks, then the rest once chunkWaitMs passed
    expect(got.chunks.map((c) => c.length)).toEqual([1000, 1000, 500]);
    expect(s.stats()).toMatchObject({ received: 2500 });
  });

  it('reports what is still pending on the stream while behind, and is caught up once everything arrived', async () => {
    await publish(3000);
    const s = source({ chunkSize: 100, maxInFlight: 300 });
    const got = collect(s, () => false);
    await check(() => got.events().length === 300);
    const behind = s.stats();
    expect(behind.pending).toBeGreaterThan(0);
    expect(await s.caughtUp()).toBe(false);
    const drain = setInterval(() => {
      for (const chunk of got.chunks.splice(0)) s.done(chunk.map((e) => e.seq));
    }, 5);
    try {
      await check(() => s.stats().received === 3000 && s.stats().inFlight === 0);
    } finally {
      clearInterval(drain);
    }
    expect(s.stats()).toMatchObject({ pending: 0 });
    expect(await s.caughtUp()).toBe(true);
  });

  it('is not caught up while the server is away, and again once it is back and nothing was missed', async () => {
    await publish(10);
    const s = source();
    const got = collect(s);
    await check(() => got.events().length === 10);
    await check(async () => await s.caughtUp());
    await server.kill();
    await check(async () => !(await s.caughtUp()));
    await server.restart();
    await check(async () => await s.caughtUp(), 30_000);
  });

  it('completes without pulling when stopped before it was subscribed (SIGTERM during start-up)', async () => {
    const s = source();
    await s.stop(1000);
    const chunks = await lastValueFrom(s.chunks$.pipe(toArray()));
    expect(chunks).toEqual([]);
    expect(s.stats().received).toBe(0);
  });

  it('emits a partial chunk after chunkWaitMs', async () => {
    const s = source({ chunkSize: 1000, chunkWaitMs: 20 });
    const got = collect(s);
    await publish(3);
    await check(() => got.events().length === 3);
    expect(got.chunks.length).toBeGreaterThanOrEqual(1);
  });

  it('acks everything done: num_ack_pending drops to 0 and a new source on the durable gets nothing', async () => {
    await publish(1200);
    const s = source({ chunkSize: 100 });
    const got = collect(s);
    await check(() => got.events().length === 1200);
    await check(async () => (await consumerInfo()).num_ack_pending === 0);
    await s.stop(5_000);
    expect(got.isCompleted()).toBe(true);
    const info = await consumerInfo();
    expect(info.ack_floor.stream_seq).toBe(got.events().at(-1)!.seq);
    expect(s.stats()).toMatchObject({ received: 1200, acked: 1200, inFlight: 0, pending: 0 });

    const again = source({ chunkSize: 100 });
    const got2 = collect(again);
    // it gets the new events, and nothing from before: once they are acked nothing is outstanding
    await publish(5, 1200);
    await check(() => got2.events().length === 5);
    await check(settled);
    expect(got2.events().map((e) => decoder.decode(e.data))).toEqual([
      'event-1200',
      'event-1201',
      'event-1202',
      'event-1203',
      'event-1204',
    ]);
  });

  it('acks only the contiguous done prefix; what was not done is redelivered to a new source', async () => {
    await publish(300);
    const s = source({ chunkSize: 50, ackWaitMs: 1_000 });
    // complete every chunk except the third one (events 100..149)
    let index = 0;
    const got = collect(s, () => index++ !== 2);
    await check(() => got.events().length === 300);
    // the acks sent reached the server: the floor is at the prefix, the 200 after it still pending
    await nc.flush();
    const info = await check(async () => {
      const i = await consumerInfo();
      return i.ack_floor.stream_seq === got.events()[99]!.seq ? i : null;
    });
    expect(info.num_ack_pending).toBe(200);
    expect(s.stats().inFlight).toBe(200);
    await s.stop(0);

    // Events published meanwhile are delivered before the server redelivers the unacked ones:
    // the new source must notice the gap and still emit 100..349 in stream order, each once.
    await publish(50, 300);
    const again = source({ chunkSize: 50, ackWaitMs: 1_000 });
    const got2 = collect(again);
    await check(() => got2.events().length >= 250);
    // everything delivered is acked, so nothing can come again: then count
    await check(settled);
    expect(got2.events().map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: 250 }, (_, i) => `event-${i + 100}`),
    );
  });

  it('redelivery within one source after the ack wait does not emit an event twice', async () => {
    await publish(40);
    const s = source({ chunkSize: 10, ackWaitMs: 500 });
    const held: number[][] = [];
    const got = collect(s, (chunk) => {
      held.push(chunk.map((e) => e.seq));
      return false;
    });
    await check(() => got.events().length === 40);
    // the server redelivers every one of the 40 after the ack wait (80 deliveries sent); once the
    // client has read what was sent before a round trip, the source has seen them all
    await check(async () => (await consumerInfo()).delivered.consumer_seq >= 80);
    await nc.flush();
    await new Promise(setImmediate);
    expect(got.events().length).toBe(40);
    for (const seqs of held) s.done(seqs);
    await check(async () => (await consumerInfo()).num_ack_pending === 0);
    expect(s.stats()).toMatchObject({ received: 40, acked: 40, inFlight: 0 });
  });

  it('never has more than maxInFlight events outstanding', async () => {
    await publish(2000);
    const maxInFlight = 150;
    const s = source({ chunkSize: 40, maxInFlight });
    const queue: number[][] = [];
    let peak = 0;
    const got = collect(s, (chunk) => {
      queue.push(chunk.map((e) => e.seq));
      peak = Math.max(peak, s.stats().inFlight);
      return false;
    });
    // a slow downstream: finishes one chunk every few ms, out of order now and then
    const worker = setInterval(() => {
      const i = queue.length > 1 && Math.random() < 0.3 ? 1 : 0;
      const [seqs] = queue.splice(i, 1);
      if (seqs) s.done(seqs);
      peak = Math.max(peak, s.stats().inFlight);
    }, 2);
    try {
      await check(() => got.events().length === 2000, 30_000);
      await check(() => s.stats().inFlight === 0 || queue.length > 0);
    } finally {
      clearInterval(worker);
    }
    for (const seqs of queue.splice(0)) s.done(seqs);
    expect(peak).toBeLessThanOrEqual(maxInFlight);
    expect(peak).toBeGreaterThan(maxInFlight / 2);
    expect(got.events().map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: 2000 }, (_, i) => `event-${i}`),
    );
    await check(async () => (await consumerInfo()).num_ack_pending === 0);
  });

  it('stop() drains: emits what was pulled, completes, and resolves once all of it is done and acked', async () => {
    await publish(500);
    const s = source({ chunkSize: 100 });
    const pendingDone: number[][] = [];
    const got = collect(s, (chunk) => {
      pendingDone.push(chunk.map((e) => e.seq));
      return false;
    });
    await check(() => got.events().length > 0);
    let resolved = false;
    const stopping = s.stop(10_000).then(() => {
      resolved = true;
    });
    await check(() => got.isCompleted());
    const emitted = got.events().length;
    await new Promise((r) => setTimeout(r, 100));
    expect(resolved).toBe(false);
    for (const seqs of pendingDone.splice(0)) s.done(seqs);
    await stopping;
    expect(got.events().length).toBe(emitted);
    expect(s.stats().inFlight).toBe(0);
    expect((await consumerInfo()).ack_floor.stream_seq).toBe(got.events().at(-1)!.seq);
  });

  it('stop() resolves after its timeout when events are never done', async () => {
    await publish(10);
    const s = source();
    const got = collect(s, () => false);
    await check(() => got.events().length === 10);
    const t0 = Date.now();
    await s.stop(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(s.stats().inFlight).toBe(10);
  });

  it('skips sequences deleted from the stream without waiting for them', async () => {
    await publish(20);
    const jsm = await jetstreamManager(nc);
    const first = (await jsm.streams.info('CX_EVENTS')).state.first_seq;
    await jsm.streams.deleteMessage('CX_EVENTS', first + 5);
    await jsm.streams.deleteMessage('CX_EVENTS', first + 6);
    const s = source({ chunkSize: 4 });
    const got = collect(s);
    await check(() => got.events().length === 18);
    expect(got.events().map((e) => e.seq)).not.toContain(first + 5);
    await check(async () => (await consumerInfo()).num_ack_pending === 0);
  });

  it('recreates a consumer deleted under it and goes on without losing or repeating events', async () => {
    await publish(100);
    const s = source({ chunkSize: 10 });
    const got = collect(s);
    await check(() => got.events().length === 100);
    await check(async () => (await consumerInfo()).num_ack_pending === 0);
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.delete('CX_EVENTS', durable);
    await publish(100, 100);
    await check(() => got.events().length >= 200, 40_000);
    await check(settled);
    expect(got.events().map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: 200 }, (_, i) => `event-${i}`),
    );
  });

  it('survives a nats-server restart: everything arrives once, in order, and is acked', async () => {
    await publish(1000);
    const s = source({ chunkSize: 100, ackWaitMs: 2_000 });
    const got = collect(s);
    await check(() => got.events().length === 1000);
    await server.restart();
    await check(async () => {
      try {
        await nc.flush();
        return true;
      } catch {
        return false;
      }
    });
    await publish(1000, 1000);
    await check(() => got.events().length >= 2000, 45_000);
    await check(settled);
    expect(got.events().map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: 2000 }, (_, i) => `event-${i}`),
    );
  });

  it('survives nats-server being killed mid-stream: nothing lost, nothing twice, all acked', async () => {
    await publish(20_000);
    const s = source({ chunkSize: 200, maxInFlight: 2_000, ackWaitMs: 2_000 });
    const queue: number[][] = [];
    const got = collect(s, (chunk) => {
      queue.push(chunk.map((e) => e.seq));
      return false;
    });
    const worker = setInterval(() => {
      for (const seqs of queue.splice(0, 2)) s.done(seqs);
    }, 5);
    try {
      await check(() => got.events().length >= 3_000);
      await server.kill();
      await new Promise((r) => setTimeout(r, 300));
      await server.restart();
      await check(() => got.events().length >= 20_000, 60_000);
      await check(() => queue.length === 0);
      await check(async () => (await consumerInfo()).num_ack_pending === 0, 20_000);
    } finally {
      clearInterval(worker);
    }
    expect(got.events().map((e) => decoder.decode(e.data))).toEqual(
      Array.from({ length: 20_000 }, (_, i) => `event-${i}`),
    );
    expect(s.stats()).toMatchObject({ received: 20_000, acked: 20_000, inFlight: 0 });
  });
});
