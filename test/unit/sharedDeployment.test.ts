/**
 * The pure pieces of a shared deployment (docs/SCALING.md): how live members split the key groups,
 * how an instance's workers split its share, how events are routed inside it, and which stored
 * records restore an instance's key groups (and which of the others' records are obsolete).
 */
import { lastValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { LoadedCheckpoint } from '../../engine/checkpoint/checkpointStore.js';
import { planRestore } from '../../engine/checkpoint/restorePlan.js';
import { checkClusterConfig } from '../../engine/cluster/instance.js';
import { assignKeyGroups } from '../../engine/cluster/leases.js';
import { type Config, defaultConfig } from '../../engine/config/config.js';
import { subjectOf } from '../../engine/demo/traffic.js';
import { allKeyGroups, keyGroupOf, keyGroupsOf, ownedShare } from '../../operators/keyGroups.js';
import { routeByPartition } from '../../operators/route.js';

describe('assignKeyGroups', () => {
  it('gives every key group to exactly one member, in contiguous ranges by sorted name', () => {
    const a = assignKeyGroups(['i3', 'i1', 'i2'], 128);
    expect([...a.keys()]).toEqual(['i1', 'i2', 'i3']);
    expect(a.get('i1')).toEqual(keyGroupsOf(0, 3, 128));
    expect(a.get('i3')).toEqual(keyGroupsOf(2, 3, 128));
    expect([...a.values()].flat().sort((x, y) => x - y)).toEqual(allKeyGroups(128));
  });

  it('moves only what it must when a member leaves: the others keep a part of their share', () => {
    const before = assignKeyGroups(['a', 'b', 'c'], 128);
    const after = assignKeyGroups(['a', 'c'], 128);
    expect(after.get('a')!.slice(0, before.get('a')!.length)).toEqual(before.get('a'));
    expect([...after.values()].flat().length).toBe(128);
  });
});

describe('ownedShare', () => {
  it('splits an instance share among its workers like the whole among workers of one instance', () => {
    expect(ownedShare(allKeyGroups(128), 1, 3)).toEqual(keyGroupsOf(1, 3, 128));
    const share = keyGroupsOf(1, 3, 128);
    const split = [0, 1].map((p) => ownedShare(share, p, 2));
    expect(split.flat()).toEqual(share);
    expect(Math.abs(split[0]!.length - split[1]!.length)).toBeLessThanOrEqual(1);
  });
});

describe('routeByPartition with a share of the key groups', () => {
  it('routes each event to the worker of its key group, and refuses an event of another instance', async () => {
    const owned = keyGroupsOf(0, 2, 128);
    const customers = Array.from({ length: 200 }, (_, i) => `c-${i}`);
    const mine = customers.filter((c) => owned.includes(keyGroupOf(c, 128)));
    const chunk = mine.map((customer) => ({
      subject: subjectOf({ customer, type: 'page_view', channel: 'web' } as never),
    }));
    const out = await lastValueFrom(of(chunk).pipe(routeByPartition(2, 128, owned)));
    for (const [p, items] of out.entries())
      for (const item of items)
        expect(ownedShare(owned, p, 2)).toContain(
          keyGroupOf(item.subject.slice(item.subject.lastIndexOf('.') + 1), 128),
        );
    expect(out.flat().length).toBe(mine.length);
    const other = customers.find((c) => !owned.includes(keyGroupOf(c, 128)))!;
    await expect(
      lastValueFrom(
        of([{ subject: subjectOf({ customer: other, type: 'page_view', channel: 'web' } as never) }]).pipe(
          routeByPartition(2, 128, owned),
        ),
      ),
    ).rejects.toThrow(/does not own it/);
  });
});

/** A stored record holding `kgs` up to `coveredSeq`. */
function record(partition: number, kgs: number[], coveredSeq: number, foreign = false): LoadedCheckpoint {
  return {
    partition,
    partitions: 1,
    keyGroups: 8,
    kgs,
    coveredSeq,
    triggersSeq: coveredSeq,
    createdAt: coveredSeq,
    base: `b${partition}-${coveredSeq}`,
    delta: 0,
    state: new Uint8Array([coveredSeq]),
    deltas: [],
    ...(foreign && { foreign: true, object: `d/x/partition-${partition}` }),
  };
}

describe('planRestore for a share of the key groups', () => {
  it('takes each owned key group from the newest record of any instance, and covers only the share', () => {
    const mineOld = record(0, [0, 1, 2, 3], 100);
    const theirsNew = record(0, [2, 3, 4, 5], 300, true);
    const theirsOther = record(1, [6, 7], 50, true);
    const plan = planRestore([mineOld, theirsNew, theirsOther], [[2, 3]], 8, 'test');
    expect(plan.workers[0]).toEqual([{ keyGroups: [2, 3], states: [theirsNew.state] }]);
    // the share's lowest position, not the deployment's (key groups 6 and 7 are another's)
    expect(plan.coveredSeq).toBe(300);
    // another instance's record is restored from, never extended by a delta of this one
    expect(plan.continues).toEqual([null]);
  });

  it('extends its own record when the worker owns the same key groups again', () => {
    const mine = record(0, [0, 1], 100);
    const plan = planRestore([mine], [[0, 1]], 8, 'test');
    expect(plan.continues[0]).toBe(mine);
  });
});

describe('checkClusterConfig', () => {
  const shared = (patch: (c: Config) => void) => {
    const c = structuredClone(defaultConfig()) as Config;
    c.cluster.deployment = 'd';
    patch(c);
    return c;
  };
  it('refuses what a shared deployment cannot run with, naming the setting', () => {
    expect(() =>
      checkClusterConfig(
        shared(() => {}),
        0,
      ),
    ).toThrow(/checkpoint.store \/ CXSTREAM_CHECKPOINT_STORE/);
    const nats = (c: Config) => {
      c.checkpoint.store = 'nats';
    };
    expect(() => checkClusterConfig(shared(nats), 0)).toThrow(
      /identity.enabled \/ CXSTREAM_IDENTITY_ENABLED/,
    );
    const noIdentity = (c: Config) => {
      nats(c);
      c.identity.enabled = false;
    };
    expect(() => checkClusterConfig(shared(noIdentity), 1)).toThrow(/CXSTREAM_AGGREGATES/);
    expect(() => checkClusterConfig(shared(noIdentity), 0)).not.toThrow();
  });
});
