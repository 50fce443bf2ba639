/**
 * A shared deployment under faults (docs/SCALING.md): three `cxstream run` instances on a 3-node
 * nats-server cluster (streams and buckets with 3 replicas) share the key groups while live traffic
 * with timer rules flows. One instance is SIGKILLed (its key groups fail over to the survivors), a
 * new one joins (a rebalance), and a nats-server node is SIGKILLed and restarted. Compared with one
 * instance's fault-free run of the same stream: every trigger exactly once with the same body, none
 * extra, every event once in ClickHouse. The failover times are printed (target: ≤ 10 s).
 *
 * ClickHouse is embedded per instance here (no shared server can run on this machine): an event an
 * instance wrote before it died is written again by its successor into the successor's store, which a
 * shared ReplacingMergeTree table collapses. So "once" is checked on the union of the instances'
 * rows, and no row may be missing.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTraffic } from '../../engine/demo/traffic.js';
import { type ClusterResult, runClusterScenario, SHARED_ENV } from '../harness/clusterScenario.js';
import {
  compareBodies,
  compareIds,
  expectExactlyOnce,
  reportCounts,
  storedEventIds,
} from '../harness/deliveryVerifier.js';
import { runScenario, type ScenarioResult } from '../harness/faultScenario.js';

const events = generateTraffic({ customers: 300 });

describe('a shared deployment on a 3-node NATS cluster under faults', () => {
  let reference: ScenarioResult;
  let faulty: ClusterResult;
  const failover: Record<string, number> = {};
  let status = '';

  beforeAll(async () => {
    reference = await runScenario({ events, publishStep: 1000, publishPauseMs: 0, env: SHARED_ENV });
    rmSync(reference.dir, { recursive: true, force: true });
    faulty = await runClusterScenario({
      events,
      instances: ['i1', 'i2', 'i3'],
      faults: async (ctx) => {
        await ctx.sleep(2000);
        failover.instanceKilledMs = await ctx.killInstance('i2');
        await ctx.sleep(1000);
        failover.instanceJoinedMs = await ctx.startInstance('i4');
        const run = await ctx.status();
        status = `exit ${run.code}\n${run.stdout}${run.stderr}`;
        await ctx.sleep(1000);
        failover.nodeRestartedMs = await ctx.restartNode(1, 1000);
      },
    });
  }, 900_000);

  afterAll(() => {
    for (const d of faulty?.dirs ?? []) rmSync(d, { recursive: true, force: true });
  });

  it('publishes every trigger of the single-instance fault-free run exactly once, with the same body', () => {
    const report = compareIds(reference.triggerIds, faulty.triggerIds);
    const bodies = compareBodies(reference.triggers, faulty.triggers);
    console.log(
      JSON.stringify({
        fault: 'shared deployment: instance SIGKILL, instance join, nats-server node SIGKILL',
        ...reportCounts(report),
        bodyDifferences: bodies.length,
        failover,
        unexpectedExits: faulty.unexpectedExits.length,
      }),
    );
    for (const x of faulty.unexpectedExits) console.log(`${x.name} exited with ${x.code}:\n${x.tail}`);
    // why an instance died on its own (the harness restarted it), if one did
    console.log(
      faulty.log
        .split('\n')
        .filter((l) => /"level":[56]0|leases lost|stopped: the key-group/.test(l))
        .slice(-20)
        .join('\n'),
    );
    if (report.lost.length + report.duplicated.length + report.extra.length + bodies.length > 0)
      console.log(faulty.log.slice(-20_000), JSON.stringify(bodies.slice(0, 3)));
    expect(reference.triggerIds.length).toBeGreaterThan(100);
    expectExactlyOnce(report);
    expect(bodies).toEqual([]);
  });

  it('`cxstream status` shows the instances of the deployment and the key groups each owns', () => {
    const [head, , header, ...rows] = status.split('\n');
    expect(status).toMatch(/^exit 0\n/);
    expect(head).toMatch(/^exit 0$/);
    expect(status).toContain('deployment faults: 3 instances, 128 key groups, each owned once');
    expect(header).toBeDefined();
    for (const name of ['i1', 'i3', 'i4'])
      expect(rows.some((r) => r.startsWith(name)) || status.includes(`=== ${name}`)).toBe(true);
    expect(status).not.toContain('=== i2');
  });

  it('stores every event in ClickHouse, none missing and none extra (the union of the instances)', async () => {
    const stored = new Set<string>();
    for (const dir of faulty.dirs) for (const id of await storedEventIds(`${dir}/clickhouse`)) stored.add(id);
    expectExactlyOnce(
      compareIds(
        events.map((e) => e.id),
        [...stored],
      ),
    );
  });
});
