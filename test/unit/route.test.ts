import { lastValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { customerOfSubject, partitionOf, routeByPartition } from '../../operators/route.js';

const RAW = 2 ** 32; // partitionOf(x, 2^32) is the raw 32-bit hash

describe('customerOfSubject', () => {
  it('returns the last subject token', () => {
    expect(customerOfSubject('cx.events.web.order.c-000001')).toBe('c-000001');
    expect(customerOfSubject('c-1')).toBe('c-1');
    expect(customerOfSubject('cx.events.web.order.')).toBe('');
  });
});

describe('partitionOf', () => {
  // Pinned: these values are the partition layout of every checkpoint. If this test fails, the
  // hash changed and existing state would land in the wrong partitions (see operators/route.ts).
  it('is FNV-1a 32-bit (published test vectors)', () => {
    expect(partitionOf('', RAW)).toBe(0x811c9dc5);
    expect(partitionOf('a', RAW)).toBe(0xe40c292c);
    expect(partitionOf('foobar', RAW)).toBe(0xbf9cf968);
  });

  it('hashes UTF-16 code units (pinned values, incl. non-ASCII and astral keys)', () => {
    expect(partitionOf('c-000001', RAW)).toBe(0xe4ec6972);
    expect(partitionOf('cust-42', RAW)).toBe(0x53bff3fb);
    expect(partitionOf('客户123', RAW)).toBe(0xb2a4f172);
    expect(partitionOf('u😀', RAW)).toBe(0x1185d675);
  });

  it('takes the hash mod partitions', () => {
    expect(partitionOf('c-000001', 4)).toBe(2);
    expect(partitionOf('cust-42', 4)).toBe(3);
    expect(partitionOf('cust-42', 16)).toBe(11);
    expect(partitionOf('u😀', 8)).toBe(5);
    expect(partitionOf('anything', 1)).toBe(0);
  });

  it('spreads 10k keys within ±10% of even over 4 partitions', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 10_000; i++) counts[partitionOf(`c-${i}`, 4)]!++;
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(2250);
      expect(c).toBeLessThanOrEqual(2750);
    }
  });

  it('rejects a partition count that is not a positive integer', () => {
    expect(() => partitionOf('a', 0)).toThrow(RangeError);
    expect(() => partitionOf('a', 2.5)).toThrow(/partitions must be an integer/);
    expect(() => partitionOf('a', Number.NaN)).toThrow(RangeError);
  });
});

describe('routeByPartition', () => {
  const subjectOf = (customer: string) => `cx.events.web.message.${customer}`;

  it('puts each item in its customer partition, keeping order inside partitions', async () => {
    const chunk = Array.from({ length: 200 }, (_, seq) => ({ seq, subject: subjectOf(`c-${seq % 17}`) }));
    const out = await lastValueFrom(of(chunk).pipe(routeByPartition(4)));
    expect(out).toHaveLength(4);
    expect(out.flat()).toHaveLength(200);
    out.forEach((items, p) => {
      for (const item of items) expect(partitionOf(customerOfSubject(item.subject), 4)).toBe(p);
      const seqs = items.map((i) => i.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    });
  });

  it('gives an empty array to partitions without events', async () => {
    const out = await lastValueFrom(of([{ subject: subjectOf('c-000001') }]).pipe(routeByPartition(4)));
    expect(out).toEqual([[], [], [{ subject: subjectOf('c-000001') }], []]);
    expect(await lastValueFrom(of([]).pipe(routeByPartition(3)))).toEqual([[], [], []]);
  });

  it('rejects an invalid partition count when built', () => {
    expect(() => routeByPartition(0)).toThrow(RangeError);
  });
});
