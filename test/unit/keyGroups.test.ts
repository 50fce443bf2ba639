import { lastValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  customerOfSubject,
  fnv1a,
  keyGroupOf,
  keyGroupRange,
  keyGroupsOf,
  ownerOfKeyGroup,
} from '../../operators/keyGroups.js';
import { routeByPartition } from '../../operators/route.js';

describe('customerOfSubject', () => {
  it('returns the last subject token', () => {
    expect(customerOfSubject('cx.events.web.order.c-000001')).toBe('c-000001');
    expect(customerOfSubject('c-1')).toBe('c-1');
    expect(customerOfSubject('cx.events.web.order.')).toBe('');
  });
});

describe('keyGroupOf', () => {
  // Pinned: these values are the layout of every checkpoint and of the `partition` column of
  // cxstream.events. If this test fails, the hash changed and existing state would land in the
  // wrong key groups (see operators/keyGroups.ts).
  it('is FNV-1a 32-bit (published test vectors)', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });

  it('hashes UTF-16 code units (pinned values, incl. non-ASCII and astral keys)', () => {
    expect(fnv1a('c-000001')).toBe(0xe4ec6972);
    expect(fnv1a('cust-42')).toBe(0x53bff3fb);
    expect(fnv1a('客户123')).toBe(0xb2a4f172);
    expect(fnv1a('u😀')).toBe(0x1185d675);
  });

  it('takes the hash mod the key-group count', () => {
    expect(keyGroupOf('c-000001', 128)).toBe(0xe4ec6972 % 128);
    expect(keyGroupOf('cust-42', 128)).toBe(0x53bff3fb % 128);
    expect(keyGroupOf('anything', 1)).toBe(0);
  });

  it('spreads 100k keys within ±10% of even over 128 key groups', () => {
    const counts = new Array<number>(128).fill(0);
    for (let i = 0; i < 100_000; i++) counts[keyGroupOf(`c-${i}`, 128)]!++;
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(703);
      expect(c).toBeLessThanOrEqual(860);
    }
  });
});

describe('key-group ranges', () => {
  it('give every key group to exactly one owner, in contiguous ranges, whatever the owner count', () => {
    for (const owners of [1, 2, 3, 5, 7, 128, 200]) {
      const seen: number[] = [];
      for (let o = 0; o < owners; o++) {
        const kgs = keyGroupsOf(o, owners, 128);
        for (const kg of kgs) expect(ownerOfKeyGroup(kg, 128, owners)).toBe(o);
        seen.push(...kgs);
      }
      expect(seen).toEqual(Array.from({ length: 128 }, (_, i) => i));
    }
  });

  it('are as even as they can be', () => {
    const sizes = Array.from({ length: 3 }, (_, o) => keyGroupRange(o, 3, 128)).map((r) => r.to - r.from);
    expect(sizes).toEqual([43, 43, 42]);
  });
});

describe('routeByPartition', () => {
  const subjectOf = (customer: string) => `cx.events.web.message.${customer}`;

  it("puts each item in the worker owning its customer's key group, keeping order inside workers", async () => {
    const chunk = Array.from({ length: 200 }, (_, seq) => ({ seq, subject: subjectOf(`c-${seq % 17}`) }));
    const out = await lastValueFrom(of(chunk).pipe(routeByPartition(4, 128)));
    expect(out).toHaveLength(4);
    expect(out.flat()).toHaveLength(200);
    out.forEach((items, p) => {
      for (const item of items)
        expect(ownerOfKeyGroup(keyGroupOf(customerOfSubject(item.subject), 128), 128, 4)).toBe(p);
      const seqs = items.map((i) => i.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    });
  });

  it('gives an empty array to workers without events', async () => {
    const out = await lastValueFrom(of([{ subject: subjectOf('c-000001') }]).pipe(routeByPartition(4, 128)));
    // key group 0x72 = 114 of 128 belongs to worker 3 of 4
    expect(out).toEqual([[], [], [], [{ subject: subjectOf('c-000001') }]]);
    expect(await lastValueFrom(of([]).pipe(routeByPartition(3, 128)))).toEqual([[], [], []]);
  });

  it('rejects an invalid worker or key-group count when built', () => {
    expect(() => routeByPartition(0, 128)).toThrow(RangeError);
    expect(() => routeByPartition(2, 0)).toThrow(/keyGroups must be an integer from 1 to 32768/);
    expect(() => routeByPartition(2, 40_000)).toThrow(RangeError);
  });
});
