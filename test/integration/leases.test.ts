/**
 * Key-group leases on a real nats-server (engine/cluster/leases.ts): the deployment's terms are
 * checked, names are unique, deployments do not see each other, a member that leaves gives its key
 * groups to the others, and a lease taken from under an instance fences it.
 */
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeploymentError, FencedError, Leases, leaseBucket } from '../../engine/cluster/leases.js';
import { keyGroupsOf } from '../../operators/keyGroups.js';
import { check } from '../harness/check.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';

const terms = { keyGroups: 8, rules: 'r1', clickhouse: 'http://ch:8123' };
const TTL = 1000;

describe('key-group leases', () => {
  let t: TestNats;
  const joined: Leases[] = [];
  const join = async (deployment: string, instance: string, over: Partial<typeof terms> = {}) => {
    const l = await Leases.join(t.nc, { deployment, instance, terms: { ...terms, ...over }, ttlMs: TTL });
    joined.push(l);
    return l;
  };

  beforeAll(async () => {
    t = await setup();
  });
  afterAll(async () => {
    for (const l of joined) await l.leave();
    await cleanup(t);
  });

  it('refuses an instance whose terms differ from the deployment, saying which', async () => {
    await join('terms', 'a');
    const refused = join('terms', 'b', { keyGroups: 16, clickhouse: 'http://other:8123' });
    await expect(refused).rejects.toThrow(DeploymentError);
    await expect(refused).rejects.toThrow(
      /keyGroups: the deployment has 8, this instance 16; clickhouse: the deployment has http:\/\/ch:8123, this instance http:\/\/other:8123/,
    );
  });

  it('refuses a second instance of the same name while the first lives', async () => {
    await join('names', 'same');
    await expect(join('names', 'same')).rejects.toThrow(/an instance named "same" is already running/);
  });

  it('splits the key groups among the members; one that leaves gives its share to the others', async () => {
    const a = await join('split', 'a');
    const b = await join('split', 'b');
    expect(await a.assigned()).toEqual(keyGroupsOf(0, 2, 8));
    expect(await b.assigned()).toEqual(keyGroupsOf(1, 2, 8));
    expect(await a.claim(await a.assigned())).toBe(true);
    expect(await b.claim(await b.assigned())).toBe(true);
    // b cannot take a's key groups while a holds them
    expect(await b.claim(keyGroupsOf(0, 1, 8))).toBe(false);
    await a.leave();
    expect(await b.assigned()).toEqual(keyGroupsOf(0, 1, 8));
    expect(await b.claim(await b.assigned())).toBe(true);
    expect(b.owned).toEqual(keyGroupsOf(0, 1, 8));
    expect([...(await b.owners()).values()].every((o) => o === 'b')).toBe(true);
  });

  it('keeps deployments apart: each has its own bucket and members', async () => {
    const x = await join('one', 'x');
    const y = await join('two', 'y');
    expect(await x.claim(await x.assigned())).toBe(true);
    expect(await y.claim(await y.assigned())).toBe(true);
    expect(x.owned).toEqual(keyGroupsOf(0, 1, 8));
    expect(y.owned).toEqual(keyGroupsOf(0, 1, 8));
    expect(await x.members()).toEqual(['x']);
  });

  it('fences an instance whose lease was taken: it must stop using its key groups', async () => {
    const f = await join('fence', 'f');
    expect(await f.claim([0, 1])).toBe(true);
    expect(f.valid()).toBe(true);
    // another writer replaces the lease (as after an expiry and a takeover)
    const kv = await new Kvm(t.nc).open(leaseBucket('fence'));
    await kv.delete('kg.0');
    await kv.create('kg.0', 'intruder');
    await check(() => !f.valid(), 5000);
    expect(() => f.check()).toThrow(FencedError);
    expect(f.lostReason).toMatch(/expired and was taken/);
    await f.rejoin();
    expect(f.valid()).toBe(true);
    expect(f.owned).toEqual([]);
  });
});
