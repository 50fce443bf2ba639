/**
 * What an operator and an integrator meet, against the real `cxstream` binary and a private
 * nats-server: `setup` before the engine (idempotent, reports differences, `--update`), the
 * documented start-up order, honest `/readyz` and `/healthz` across a nats-server outage, the
 * metrics, the admin reload action, `profile CUSTOMER`, overlap and version refusals.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../engine/nats/natsServer.js';
import { check } from '../harness/check.js';
import { freePort, runCli } from '../harness/cli.js';
import { EngineProcess, engineEnv } from '../harness/engineProcess.js';
import { cxEvent } from '../harness/events.js';
import { cleanup, reconnecting, setup, type TestNats } from '../harness/nats.js';

// 2026-11-20 12:00 in Asia/Shanghai (the default customer time zone)
const T0 = Date.UTC(2026, 10, 20, 4, 0, 0);
const MIN = 60_000;

const ev = cxEvent;

describe('operations: setup, start-up order, probes, metrics, profile', () => {
  let t: TestNats;
  let server: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  let engine: EngineProcess | undefined;

  beforeAll(async () => {
    t = await setup({ dirPrefix: 'cxstream-ops-', connect: reconnecting });
    ({ server, nc, dir } = t);
  });

  afterAll(async () => {
    await engine?.kill();
    await cleanup(t);
  });

  it('setup creates streams, consumer and bucket once, reports differences, and --update applies the config', async () => {
    const env = engineEnv(server.url, dir);
    // before setup a publisher has nowhere to store events: the start-up order matters
    await expect(jetstream(nc).publish('cx.events.web.order.early', '{}')).rejects.toThrow();

    const first = await runCli(['setup'], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const report = (outcome: string) =>
      [
        'stream CX_EVENTS',
        'stream CX_TRIGGERS',
        'stream CX_DLQ',
        'bucket cx_profiles',
        'bucket cx_tombstones',
        'consumer CX_EVENTS/cxstream',
      ]
        .map((what) => `${what}: ${outcome}\n`)
        .join('');
    expect(first.stdout).toBe(report('created'));
    const again = await runCli(['setup'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(report('exists'));

    const jsm = await jetstreamManager(nc);
    const events = await jsm.streams.info('CX_EVENTS');
    expect(events.config.max_age).toBe(nanos(7 * 24 * 60 * MIN));
    await jsm.streams.update('CX_EVENTS', { ...events.config, duplicate_window: nanos(MIN) });
    const differs = await runCli(['setup'], env);
    expect(differs.stdout).toContain(
      "stream CX_EVENTS: exists, differs from the config (left as is; `cxstream setup --update` applies the config's limits)\n  duplicate_window 1 min (config 10 min)\n",
    );
    // the shorter window is also a warning, for a run that never sees `setup`'s report
    expect(differs.stderr).toContain(
      'stream CX_EVENTS has a duplicate window of 1 min, shorter than streams.events.duplicateWindowMs',
    );
    const updated = await runCli(['setup', '--update'], env);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toContain(
      'stream CX_EVENTS: updated\n  was duplicate_window 1 min (config 10 min)\n',
    );
    expect((await jsm.streams.info('CX_EVENTS')).config.duplicate_window).toBe(nanos(10 * MIN));

    // after setup, events published before the engine's first start wait for it on the durable consumer
    await jetstream(nc).publish('cx.events.web.page_view.c0', pack(ev('early-1', 'c0', 'page_view', T0)));
  });

  it('is ready only once recovered and consuming, not while NATS is down; healthy throughout; metrics and reload', async () => {
    const port = await freePort();
    engine = new EngineProcess(engineEnv(server.url, dir, { CXSTREAM_METRICS_PORT: String(port) }));
    const base = `http://127.0.0.1:${port}`;
    const firstReady = await check(
      async () => {
        const r = await fetch(`${base}/readyz`).catch(() => null);
        return r?.status === 200 ? Date.now() : null;
      },
      30_000,
      () => engine!.stderrTail(),
      10,
    );
    const recovered = await check(() => engine!.line('state recovered'), 5_000);
    // pino's own timestamp of the line: ready came after the state was recovered, not before
    expect(firstReady).toBeGreaterThanOrEqual(recovered.time as number);
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok\n');

    // the event published before the first start was consumed
    const jsm = await jetstreamManager(nc);
    await check(
      async () => (await jsm.consumers.info('CX_EVENTS', 'cxstream')).ack_floor.stream_seq >= 1,
      20_000,
    );

    // in-flight goes back to 0 once acked; late events are counted
    const js = jetstream(nc);
    await js.publish('cx.events.web.page_view.c9', pack(ev('late-a', 'c9', 'page_view', T0 + 60 * MIN)));
    await js.publish('cx.events.web.page_view.c9', pack(ev('late-b', 'c9', 'page_view', T0)));
    await check(async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return (
        /^cx_late_events_total 1$/m.test(text) &&
        /^cx_in_flight_events 0$/m.test(text) &&
        /^cx_events_total 3$/m.test(text)
      );
    }, 20_000);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('cx_process_cpu_seconds_total');
    expect(metrics).not.toContain('cx_process_process_');

    // the admin action of SIGHUP, from this machine without a token (the server listens on loopback)
    const reload = await fetch(`${base}/admin/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);
    expect(await reload.json()).toMatchObject({ status: 'applied' });

    // nats-server down: not ready (a restart would not help), still healthy
    await server.kill();
    await check(async () => (await fetch(`${base}/readyz`)).status === 503, 10_000);
    expect(await (await fetch(`${base}/readyz`)).text()).toContain('NATS not connected');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await server.restart();
    await check(
      async () => (await fetch(`${base}/readyz`)).status === 200,
      30_000,
      () => engine!.stderrTail(),
    );
    expect(engine.running).toBe(true);
  });

  it('profile CUSTOMER prints the stored profile, also for ids that are not valid KV keys', async () => {
    const env = engineEnv(server.url, dir);
    const js = jetstream(nc);
    await js.publish(
      'cx.events.web.order.cust@7',
      pack({ ...ev('o-7', 'cust@7', 'order', T0), amount: 1200 }),
    );
    const profile = await check(
      async () => {
        const r = await runCli(['profile', 'cust@7'], env);
        return r.code === 0 ? r : null;
      },
      30_000,
      () => engine!.stderrTail(),
      500,
    );
    expect(JSON.parse(profile.stdout)).toMatchObject({ customer: 'cust@7', orders: 1, tier: 'VIP' });
    expect((await runCli(['profile', '--key', 'cust@7'])).stdout).toBe('=Y3VzdEA3\n');
    expect((await runCli(['profile', '--key', 'c-1_A'])).stdout).toBe('c-1_A\n');
    const missing = await runCli(['profile', 'nobody-here'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      'no profile for customer "nobody-here" (key nobody-here) in bucket cx_profiles',
    );

    expect(await engine!.stop()).toBe(0);
    engine = undefined;
  });

  it('refuses to start on checkpoints of a newer cxstream, and names the stream in the way of its own', async () => {
    const stateDir = join(dir, 'newer-state');
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(
      join(stateDir, 'partition-0.ckpt'),
      pack({ format: 'cxstream.checkpoint', version: 4, writtenBy: '99.0.0', partition: 0, partitions: 2 }),
    );
    const newer = await runCli(['run'], engineEnv(server.url, dir, { CXSTREAM_STATE_DIR: stateDir }));
    expect(newer.code).toBe(1);
    expect(newer.stderr).toContain(
      `partition-0.ckpt was written by cxstream 99.0.0, newer than this cxstream`,
    );

    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete('CX_TRIGGERS');
    await jsm.streams.add({ name: 'EVERYTHING_CX', subjects: ['cx.triggers.>', 'cx.audit.>'] });
    const overlap = await runCli(['run'], engineEnv(server.url, dir));
    expect(overlap.code).toBe(2);
    expect(overlap.stderr).toContain(
      'cannot create stream CX_TRIGGERS for subjects cx.triggers.>: they overlap with EVERYTHING_CX (subjects cx.triggers.>, cx.audit.>)',
    );
    await jsm.streams.delete('EVERYTHING_CX');
  });
});
