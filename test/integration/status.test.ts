/**
 * `cxstream status` against the real `cxstream run` process and a private nats-server: the engine
 * answers `cx.admin.status` with every key group exactly once, each at the last sequence published
 * to it, the stream and consumer positions and its last checkpoint; /metrics carries the same per
 * key group; and with no engine the command says so (exit 1).
 */
import { jetstream } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { EngineStatus } from '../../engine/runtime/liveStatus.js';
import { keyGroupOf } from '../../operators/keyGroups.js';
import type { CxEvent } from '../../operators/types.js';
import { check } from '../harness/check.js';
import { cliJsonWhen, freePort, runCli } from '../harness/cli.js';
import { EngineProcess, engineBed, engineEnv } from '../harness/engineProcess.js';

const KEY_GROUPS = 128;
const MIN = 60_000;
// Event times near the wall clock: the engine dead-letters events far ahead of it.
const T0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;

describe('cxstream status', () => {
  const bed = engineBed('cxstream-status-');
  const env = () => ({ CXSTREAM_NATS_URL: bed.server.url });
  const engineWith = async (partitions: number) =>
    new EngineProcess(
      engineEnv(bed.server.url, bed.dir, {
        CXSTREAM_METRICS_PORT: String(await freePort()),
        CXSTREAM_AGGREGATES: '',
        CXSTREAM_CHECKPOINT_INTERVAL_MS: '500',
        CXSTREAM_ENGINE_PARTITIONS: String(partitions),
      }),
    );
  /** `status --json` once `ready` holds for it. */
  const statusWhen = (ready: (s: EngineStatus) => boolean) =>
    cliJsonWhen(['status', '--json'], env(), ready, () => bed.engine.stderrTail());
  /** Every key group once, at the last sequence published to it, holding its customers. */
  const expectKeyGroups = (status: EngineStatus) => {
    const kgs = status.workers.flatMap((w) => w.keyGroups);
    expect(kgs.map((g) => g.kg).sort((a, b) => a - b)).toEqual(
      Array.from({ length: KEY_GROUPS }, (_, k) => k),
    );
    for (const g of kgs) {
      expect({ kg: g.kg, lastSeq: g.lastSeq, customers: g.customers }).toEqual({
        kg: g.kg,
        lastSeq: lastSeq[g.kg],
        customers: customers[g.kg]!.size,
      });
      if (g.lastSeq > 0) expect(g.maxEventTime).toBeGreaterThanOrEqual(T0);
      else {
        // no event: no event time; the watermark moves only with the wall clock, once the key group
        // has been quiet at the live edge for idleAfterMs (a slow machine gets there before it asks)
        expect(g.maxEventTime).toBeNull();
        if (g.watermark !== null) expect(g.watermark).toBeLessThanOrEqual(Date.now());
      }
    }
    expect(status.workers.reduce((n, w) => n + w.customers, 0)).toBe(300);
  };
  const lastSeq = new Array<number>(KEY_GROUPS).fill(0);
  const customers = Array.from({ length: KEY_GROUPS }, () => new Set<string>());
  let published = 0;

  it('shows every key group once at the sequence last published to it, the lag, the checkpoint and the metrics', async () => {
    bed.engine = await engineWith(2);
    await bed.engine.consuming(bed.nc);

    // 300 customers, 1 to 3 events each: most key groups get some, a few may get none
    const js = jetstream(bed.nc);
    for (let i = 0; i < 300; i++) {
      const customer = `c${i}`;
      for (let k = 0; k <= i % 3; k++) {
        const e: CxEvent = { id: `e${i}-${k}`, ts: T0 + k * MIN, customer, type: 'message', channel: 'app' };
        const ack = await js.publish(`cx.events.app.message.${customer}`, pack(e), { msgID: e.id });
        const kg = keyGroupOf(customer, KEY_GROUPS);
        lastSeq[kg] = ack.seq;
        customers[kg]!.add(customer);
        published = ack.seq;
      }
    }
    await bed.engine.delivered(bed.nc, published);

    // acked = covered by a checkpoint; the answer names it once the checkpoint after the last ack is in
    const status = await statusWhen(
      (s) => s.checkpoint?.last?.coveredSeq === published && s.stream?.ackFloor === published,
    );
    expect(status.instance.pid).toBeGreaterThan(0);
    expect(status.instance.recoveredAt).toBeGreaterThanOrEqual(status.instance.startedAt);
    expect(status.keyGroups).toBe(KEY_GROUPS);
    expect(status.partitions).toBe(2);
    // everything was acked, so every event was applied: nothing waits for a worker
    expect(status.workers.map((w) => [w.partition, w.ranges, w.backlog])).toEqual([
      [0, '0-63', 0],
      [1, '64-127', 0],
    ]);
    expect(status.workers.reduce((n, w) => n + w.routed!, 0)).toBe(published);
    expectKeyGroups(status);
    expect(status.checkpoint!.recovered).toMatchObject({ coveredSeq: 0, workers: 0 });
    expect(status.stream).toMatchObject({
      stream: 'CX_EVENTS',
      durable: 'cxstream',
      lastSeq: published,
      deliveredSeq: published,
      pending: 0,
      unacked: 0,
    });
    expect(status.checkpoint!.last!.full + status.checkpoint!.last!.deltas).toBe(2);
    // each worker's chain: the full record of this run (the first checkpoint) and the deltas since
    for (const [p, chain] of status.checkpoint!.chains.entries()) {
      expect(chain!.partition).toBe(p);
      expect(chain!.fullAt).toBeGreaterThanOrEqual(status.instance.recoveredAt);
      expect(chain!.fullAt).toBeLessThanOrEqual(status.checkpoint!.last!.at);
    }

    const text = await runCli(['status'], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('key groups: 128 over 2 workers, each owned once\n');
    expect(text.stdout).toContain(
      `stream CX_EVENTS: last seq ${published}; consumer cxstream: delivered up to ${published}`,
    );

    // the gauges are read every 5 s: one series per key group, at the same sequences
    const url = bed.engine.httpUrl()!;
    await check(
      async () => {
        const body = await (await fetch(`${url}/metrics`)).text();
        const series = [
          ...body.matchAll(/^cx_keygroup_applied_seq\{key_group="(\d+)",partition="(\d)"\} (\d+)$/gm),
        ];
        if (series.length !== KEY_GROUPS) return false;
        for (const [, kg, partition, seq] of series) {
          expect(Number(partition)).toBe(Number(kg) < 64 ? 0 : 1);
          if (Number(seq) !== lastSeq[Number(kg)]) return false;
        }
        return (
          body.includes('# TYPE cx_keygroup_customers gauge') &&
          body.includes('cx_worker_backlog_events{partition="1"} 0')
        );
      },
      20_000,
      () => bed.engine.stderrTail(),
      500,
    );
  }, 120_000);

  it('after a restart with 3 workers: the key groups restored from the checkpoints, at the same sequences', async () => {
    expect(await bed.engine.stop()).toBe(0);
    bed.engine = await engineWith(3);
    const status = await statusWhen(() => true);
    expect(status.workers.map((w) => [w.partition, w.ranges, w.routed])).toEqual([
      [0, '0-42', 0],
      [1, '43-85', 0],
      [2, '86-127', 0],
    ]);
    expect(status.checkpoint!.recovered).toMatchObject({ coveredSeq: published, workers: 3 });
    expectKeyGroups(status);
    const text = await runCli(['status'], env());
    expect(text.stdout).toContain(`recovered: checkpoints covering seq ≤ ${published} (3 worker records, `);
  }, 60_000);

  it('says no engine answers once it stopped (exit 1)', async () => {
    expect(await bed.engine.stop()).toBe(0);
    const none = await runCli(['status', '--timeout', '2'], env());
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('cxstream: no engine answers cx.admin.status on NATS at');
  }, 60_000);
});
