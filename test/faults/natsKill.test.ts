/**
 * Fault (b): nats-server is SIGKILLed at random points during live traffic, several times, and
 * restarted with its store on the same port. The engine reconnects (or, when a sink call fails
 * during the outage, exits with code 1 and the harness restarts it like a supervisor would). Every
 * trigger of a fault-free run must be on CX_TRIGGERS exactly once (1-second duplicate window),
 * none extra, and every event counted once in ClickHouse (FINAL).
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTraffic } from '../../engine/demo/traffic.js';
import { compareIds, expectExactlyOnce, reportCounts, storedEventIds } from '../harness/deliveryVerifier.js';
import { runScenario, type ScenarioResult } from '../harness/faultScenario.js';

const events = generateTraffic({ customers: 300 });
const KILLS = 3;

describe('exactly-once under nats-server SIGKILLs', () => {
  let reference: ScenarioResult;
  let faulty: ScenarioResult;
  const recoveries: number[] = [];
  const outages: number[] = [];
  const timeline: Array<{ at: number; msg: string }> = [];

  beforeAll(async () => {
    reference = await runScenario({ events, publishStep: 1000, publishPauseMs: 0 });
    rmSync(reference.dir, { recursive: true, force: true });
    faulty = await runScenario({
      events,
      faults: async (ctx) => {
        for (let k = 0; k < KILLS; k++) {
          // a random point while traffic flows; the outage is random too (the engine may or may not
          // notice it before the server is back)
          await ctx.sleep(1000 + Math.random() * 2000);
          const outageMs = Math.round(200 + Math.random() * 1300);
          outages.push(outageMs);
          timeline.push({ at: Date.now(), msg: `nats-server SIGKILL (outage ${outageMs} ms)` });
          const ms = await ctx.killServer(outageMs);
          timeline.push({ at: Date.now(), msg: `recovered after ${ms} ms` });
          if (ms !== null) recoveries.push(ms);
        }
      },
    });
  }, 600_000);

  afterAll(() => {
    if (faulty) rmSync(faulty.dir, { recursive: true, force: true });
  });

  it('publishes every trigger of the fault-free run exactly once, and none extra', () => {
    const report = compareIds(reference.triggerIds, faulty.triggerIds);
    const sorted = [...recoveries].sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        fault: 'nats-server SIGKILL',
        kills: KILLS,
        outagesMs: outages,
        engineRestarts: faulty.restarts,
        engineExits: faulty.unexpectedExits,
        ...reportCounts(report),
        // server accepting connections again → the consumer's ack floor moving
        recoveryMs: { p50: sorted[Math.floor((sorted.length - 1) / 2)], max: sorted.at(-1), all: recoveries },
        examples: { lost: report.lost.slice(0, 5), duplicated: report.duplicated.slice(0, 5) },
        // what the engine went through (message → count)
        engineWarnings: countMessages(faulty.log),
      }),
    );
    // the fault timeline with the engine's warnings and (re)starts, for the recovery times above
    const t0 = timeline[0]?.at ?? 0;
    const entries = [
      ...timeline,
      ...faulty.log
        .split('\n')
        .filter((l) => /"level":[456]0|"msg":"(engine started|state recovered|processing)"/.test(l))
        .map((l) => ({
          at: Number(/"time":(\d+)/.exec(l)?.[1] ?? 0),
          msg: /"msg":"([^"]*)"/.exec(l)?.[1] ?? '',
        })),
    ]
      .filter((e) => e.at >= t0)
      .sort((a, b) => a.at - b.at);
    console.log(entries.map((e) => `+${((e.at - t0) / 1000).toFixed(1)}s ${e.msg}`).join('\n'));
    if (report.lost.length + report.duplicated.length + report.extra.length > 0) {
      console.log(
        faulty.log
          .split('\n')
          .filter((l) => /recovered|warn|"level":[45]0/.test(l))
          .join('\n'),
      );
    }
    expect(reference.triggerIds.length).toBeGreaterThan(100);
    expect(new Set(reference.triggerIds).size).toBe(reference.triggerIds.length);
    expectExactlyOnce(report);
  });

  it('counts every event exactly once in ClickHouse (FINAL)', async () => {
    const report = compareIds(
      events.map((e) => e.id),
      await storedEventIds(`${faulty.dir}/clickhouse`),
    );
    expectExactlyOnce(report);
  });
});

/** Warning and error messages of the engine's JSON log lines, counted. */
function countMessages(log: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of log.split('\n')) {
    if (!/"level":[456]0/.test(line)) continue;
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 80);
    counts[msg] = (counts[msg] ?? 0) + 1;
  }
  return counts;
}
