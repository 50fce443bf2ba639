/**
 * The 3-node cluster harness (test/harness/natsCluster.ts): an R3 stream and an R3 KV bucket keep
 * taking writes while one node is SIGKILLed (the stream's leader, so a new one must be elected), and
 * the node restarted on its ports with its store catches up: 200 messages and the KV value, seen
 * through the whole cluster and through the restarted node alone (its own replica included).
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check } from '../harness/check.js';
import { reconnecting } from '../harness/nats.js';
import { NatsCluster } from '../harness/natsCluster.js';

const STREAM = 'CLUSTER_TEST';
const BUCKET = 'cluster_test';
const enc = new TextEncoder();

/** Retries `fn` until it succeeds (a write while the cluster elects a new leader), for up to `ms`. */
async function retrying<T>(fn: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Publishes messages `from`..`to - 1`; the message id makes a retried publish count once. */
async function publishRange(js: JetStreamClient, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    await retrying(() =>
      js.publish(`cluster.m.${i}`, enc.encode(`m${i}`), { msgID: `m-${i}`, timeout: 2_000 }),
    );
  }
}

/** What node's own replica of the stream holds, from its monitoring endpoint (not from the leader). */
async function localMessages(monitorUrl: string): Promise<number | undefined> {
  const res = await fetch(`${monitorUrl}/jsz?streams=true`);
  const jsz = (await res.json()) as {
    account_details?: Array<{ stream_detail?: Array<{ name: string; state: { messages: number } }> }>;
  };
  return jsz.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === STREAM)?.state
    .messages;
}

describe('3-node nats-server cluster with JetStream', () => {
  let cluster: NatsCluster | undefined;
  let nc: NatsConnection | undefined;
  let only: NatsConnection | undefined;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let victim = -1;

  beforeAll(async () => {
    cluster = await NatsCluster.start({ nodes: 3 });
    nc = await connect({ servers: cluster.servers, ...reconnecting });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
  });

  afterAll(async () => {
    await only?.close();
    await nc?.close();
    await cluster?.stop();
    await cluster?.stop(); // twice is fine
  });

  it('exposes every node', () => {
    const c = cluster!;
    expect(c.servers).toHaveLength(3);
    for (const s of c.servers) expect(s).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(new Set(c.servers).size).toBe(3);
    expect(c.url).toBe(c.servers.join(','));
  });

  it('keeps an R3 stream and KV bucket writable with a node killed, and the node catches up', async () => {
    const c = cluster!;
    await jsm.streams.add({ name: STREAM, subjects: ['cluster.>'], num_replicas: 3 });
    const kv = await new Kvm(nc!).create(BUCKET, { replicas: 3 });
    await kv.put('before', 'v0');
    await publishRange(js, 0, 100);

    // the stream's leader, so the stream has to elect another one to take the next writes
    const leader = (await jsm.streams.info(STREAM)).cluster?.leader;
    victim = c.servers.findIndex((_, i) => `n${i + 1}` === leader);
    expect(victim).toBeGreaterThanOrEqual(0);
    await c.kill(victim);
    expect(c.isRunning(victim)).toBe(false);

    const killedAt = Date.now();
    await publishRange(js, 100, 200);
    const writesMs = Date.now() - killedAt;
    await retrying(() => kv.put('during', 'written while a node was down'));
    expect((await jsm.streams.info(STREAM)).state.messages).toBe(200);

    const restartAt = Date.now();
    await c.restart(victim);
    console.log(
      JSON.stringify({
        killed: `n${victim + 1}`,
        writesWhileDownMs: writesMs,
        restartMs: Date.now() - restartAt,
      }),
    );

    // through the whole cluster, once the restarted node's replica caught up (restart() waits for
    // the node, not for each of its replicas)
    const info = await check(async () => {
      const i = await jsm.streams.info(STREAM);
      return i.cluster?.replicas?.every((r) => r.current) ? i : undefined;
    }, 15_000);
    expect(info.state.messages).toBe(200);
    expect((await kv.get('during'))?.string()).toBe('written while a node was down');

    // through the restarted node alone
    only = await connect({ servers: c.servers[victim]!, reconnect: false });
    const onlyJsm = await jetstreamManager(only);
    expect((await onlyJsm.streams.info(STREAM)).state.messages).toBe(200);
    const onlyKv = await new Kvm(only).open(BUCKET);
    expect((await onlyKv.get('during'))?.string()).toBe('written while a node was down');
    expect((await onlyKv.get('before'))?.string()).toBe('v0');
    // and its own replica (the monitoring endpoint reports the local store, not the leader's): a
    // follower learns that the last entry is committed from the leader's next heartbeat (~1 s), so
    // it may still be one message short when /healthz already says current
    await expect
      .poll(() => localMessages(c.monitorUrls[victim]!), { timeout: 5_000, interval: 100 })
      .toBe(200);
  }, 45_000);
});
