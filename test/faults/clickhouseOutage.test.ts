/**
 * A ClickHouse server outage at the engine level: `cxstream run` writes over HTTP to
 * `cxstream clickhouse serve` (chDB's ClickHouse in its own process), which is SIGKILLed for 30 s
 * under live traffic and started again on the same directory and port.
 *
 * During the outage the engine must apply back-pressure: its inserts fail and are retried, no
 * checkpoint can cover the events whose rows wait, so acks stop and the source stops pulling at
 * `nats.maxInFlight` while the stream keeps growing. What was acked must already be stored: before
 * the engine can reach the server again, the store is opened read-only on another port and must
 * hold a row for every sequence up to the consumer's ack floor. Afterwards every event is in
 * `cxstream.events` exactly once (FINAL), and the triggers are those of a fault-free run over a copy
 * of the same stream: none lost, none repeated, same bodies. The engine never exits by itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfillTraffic, storedEvents } from '../harness/backfill.js';
import { freePort, ServeProcess } from '../harness/cli.js';
import { compareBodies, compareIds, expectExactlyOnce, storedEventIds } from '../harness/deliveryVerifier.js';
import { runScenario, type ScenarioResult } from '../harness/faultScenario.js';

const OUTAGE_MS = 30_000;
const MAX_IN_FLIGHT = 2000;
const events = backfillTraffic({ customers: 300 });
const env = {
  CXSTREAM_ENGINE_IDLE_AFTER_MS: '2000',
  CXSTREAM_ENGINE_TICK_INTERVAL_MS: '500',
  CXSTREAM_NATS_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
};

/** The durable consumer and the stream, sampled during the outage. */
interface Sample {
  atMs: number;
  delivered: number;
  ackFloor: number;
  streamLast: number;
  insertFailures: number | undefined;
}

describe('ClickHouse server SIGKILLed for 30 s under live traffic', () => {
  let dir: string;
  let store: string;
  let port: number;
  let server: ServeProcess | undefined;
  let faulty: ScenarioResult;
  let reference: ScenarioResult;
  const samples: Sample[] = [];
  let ackedAtEnd = 0;
  let storedUpToAcked = -1;
  let recoveryMs: number | null = null;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-chkill-'));
    store = join(dir, 'clickhouse');
    port = await freePort();
    server = await ServeProcess.start(store, port);
    faulty = await runScenario({
      backlog: storedEvents(events.slice(0, 500)),
      events: events.slice(500),
      publishStep: 50,
      publishPauseMs: 200,
      env: { ...env, CXSTREAM_CLICKHOUSE_URL: server.url },
      faults: async (ctx) => {
        await ctx.sleep(5000);
        await server!.kill();
        const killedAt = Date.now();
        while (Date.now() - killedAt < OUTAGE_MS) {
          await ctx.sleep(1000);
          const info = await ctx.jsm.consumers.info('CX_EVENTS', 'cxstream');
          samples.push({
            atMs: Date.now() - killedAt,
            delivered: info.delivered.stream_seq,
            ackFloor: info.ack_floor.stream_seq,
            streamLast: (await ctx.jsm.streams.info('CX_EVENTS')).state.last_seq,
            insertFailures: await ctx.engine().metric('cx_clickhouse_insert_failures_total'),
          });
        }
        ackedAtEnd = (await ctx.jsm.consumers.info('CX_EVENTS', 'cxstream')).ack_floor.stream_seq;
        // the store as the outage left it, on another port the engine does not know
        const inspect = await ServeProcess.start(store, await freePort(), ['--readonly']);
        const client = createClient({ url: inspect.url, log: { level: ClickHouseLogLevel.OFF } });
        const [row] = await (
          await client.query({
            query: `SELECT uniqExact(seq) AS n FROM cxstream.events WHERE seq <= ${ackedAtEnd}`,
            format: 'JSONEachRow',
          })
        ).json<{ n: string }>();
        storedUpToAcked = Number(row!.n);
        await client.close();
        await inspect.stop();
        server = await ServeProcess.start(store, port);
        const back = Date.now();
        for (;;) {
          const info = await ctx.jsm.consumers.info('CX_EVENTS', 'cxstream');
          if (info.ack_floor.stream_seq > ackedAtEnd) break;
          if (Date.now() - back > 120_000) throw new Error('acks did not resume after the restart');
          await ctx.sleep(50);
        }
        recoveryMs = Date.now() - back;
      },
    });
    reference = await runScenario({ backlog: faulty.stream, events: [], env });
  }, 900_000);

  afterAll(async () => {
    await server?.stop();
    for (const r of [faulty, reference]) if (r) rmSync(r.dir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stops pulling and acks nothing that is not stored while the server is gone', () => {
    const last = samples.at(-1)!;
    const ten = samples.find((s) => s.atMs >= OUTAGE_MS - 10_000)!;
    console.log(
      JSON.stringify({
        scenario: 'ClickHouse outage',
        events: events.length,
        outageMs: OUTAGE_MS,
        samples,
        ackedAtEnd,
        storedUpToAcked,
        recoveryMs,
        engineExitsOfItsOwn: faulty.unexpectedExits,
      }),
    );
    // inserts failed and were retried
    expect(last.insertFailures ?? 0).toBeGreaterThan(0);
    // pulling stopped: nothing more delivered over the last 10 s, while the stream kept growing
    expect(last.delivered).toBe(ten.delivered);
    expect(last.streamLast).toBeGreaterThan(last.delivered);
    // at most the in-flight bound (plus one pull's buffer) delivered and not acked
    expect(last.delivered - last.ackFloor).toBeLessThanOrEqual(MAX_IN_FLIGHT + 1000);
    // every acked sequence has its row in the store the outage left
    expect(ackedAtEnd).toBeGreaterThan(0);
    expect(storedUpToAcked).toBe(ackedAtEnd);
    expect(faulty.unexpectedExits).toEqual([]);
  });

  it('publishes exactly the triggers of a fault-free run of the same stream, with the same bodies', () => {
    const ids = compareIds(reference.triggerIds, faulty.triggerIds);
    console.log(
      JSON.stringify({
        reference: ids.expected,
        lost: ids.lost.length,
        extra: ids.extra.length,
        duplicated: ids.duplicated.length,
      }),
    );
    expect(ids.expected).toBeGreaterThan(1000);
    expectExactlyOnce(ids);
    expect(compareBodies(reference.triggers, faulty.triggers)).toEqual([]);
  });

  it('stores every event exactly once (FINAL)', async () => {
    await server?.stop();
    server = undefined;
    expectExactlyOnce(
      compareIds(
        events.map((e) => e.id),
        await storedEventIds(store),
      ),
    );
  });
});
