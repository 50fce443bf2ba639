/**
 * Fault (a): the engine process is SIGKILLed at random points during live traffic, several times,
 * and restarted at once. Every trigger of a fault-free run of the same stream must be on
 * CX_TRIGGERS exactly once (its duplicate window is 1 s, so JetStream's de-duplication cannot be
 * what saves us), none extra, and every event counted once in ClickHouse (FINAL).
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTraffic } from '../../engine/demo/traffic.js';
import { compareIds, expectExactlyOnce, reportCounts, storedEventIds } from '../harness/deliveryVerifier.js';
import { runScenario, type ScenarioResult } from '../harness/faultScenario.js';

const events = generateTraffic({ customers: 300 });
const KILLS = 4;

describe('exactly-once under engine SIGKILLs', () => {
  let reference: ScenarioResult;
  let faulty: ScenarioResult;
  const recoveries: number[] = [];

  beforeAll(async () => {
    reference = await runScenario({ events, publishStep: 1000, publishPauseMs: 0 });
    rmSync(reference.dir, { recursive: true, force: true });
    faulty = await runScenario({
      events,
      faults: async (ctx) => {
        for (let k = 0; k < KILLS; k++) {
          // a random point while traffic flows (and, for the last kills, maybe after it ended)
          await ctx.sleep(800 + Math.random() * 2200);
          const ms = await ctx.killEngine();
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
    const p50 = sorted[Math.floor((sorted.length - 1) / 2)];
    console.log(
      JSON.stringify({
        fault: 'engine SIGKILL',
        kills: KILLS,
        restarts: faulty.restarts,
        ...reportCounts(report),
        recoveryMs: { p50, max: sorted[sorted.length - 1], all: recoveries },
        examples: { lost: report.lost.slice(0, 5), duplicated: report.duplicated.slice(0, 5) },
      }),
    );
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
    expect(faulty.restarts).toBeGreaterThanOrEqual(KILLS);
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
