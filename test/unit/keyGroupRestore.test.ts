/**
 * State restores at any grouping of key groups: a snapshot of one processor that owns every key
 * group goes on, split over three processors, exactly as the original would; and the state of a
 * version without key groups (one partition's customers, its sequences per partition) is taken
 * over without applying a redelivered event twice or skipping a new one.
 */
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../../engine/demo/traffic.js';
import { keyGroupOf, ownerOfCustomer } from '../../operators/keyGroups.js';
import { type PartitionOutput, PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent, Trigger } from '../../operators/types.js';

const rules = loadRules(['config/rules.yaml']);
const DAY = 86_400_000;

/** Feeds `events` (sequences from `firstSeq`, or as given) to the processor owning each one's key group. */
function feed(
  processors: PartitionProcessor[],
  events: readonly CxEvent[],
  firstSeq: number,
  seqs?: readonly number[],
): PartitionOutput[] {
  const P = processors.length;
  const parts = processors.map(() => ({
    seqs: [] as number[],
    subjects: [] as string[],
    payloads: [] as Uint8Array[],
  }));
  events.forEach((e, i) => {
    const part = parts[ownerOfCustomer(e.customer, 128, P)]!;
    part.seqs.push(seqs?.[i] ?? firstSeq + i);
    part.subjects.push(subjectOf(e));
    part.payloads.push(pack(e));
  });
  return processors.map((p, i) =>
    p.applyBatch(parts[i]!.seqs, parts[i]!.subjects, (j) => parts[i]!.payloads[j]!, 0),
  );
}

/** Trigger bodies without the wall clock, sorted by id. */
function bodies(outs: PartitionOutput[]): Array<Omit<Trigger, 'firedAt'>> {
  return outs
    .flatMap((o) => o.triggers)
    .map(({ firedAt: _, ...t }) => t)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

describe('restoring key groups at another grouping', () => {
  const events = generateTraffic({ customers: 300, days: 2, seed: 11 });
  const half = Math.floor(events.length / 2);
  const end = events.at(-1)!.ts + 40 * DAY;

  it('a snapshot of one processor goes on split over three exactly as the original', () => {
    const one = new PartitionProcessor({ partition: 0, partitions: 1, rules });
    feed([one], events.slice(0, half), 1);
    const snapshot = unpack(pack(one.snapshot()));
    const three = [0, 1, 2].map((p) => new PartitionProcessor({ partition: p, partitions: 3, rules }));
    for (const p of three) p.restore(snapshot);
    expect(three.reduce((n, p) => n + p.size, 0)).toBe(one.size);

    const original = [...feed([one], events.slice(half), half + 1), one.advanceTo(end)];
    const split = [...feed(three, events.slice(half), half + 1), ...three.map((p) => p.advanceTo(end))];
    expect(bodies(split).length).toBeGreaterThan(100);
    expect(bodies(split)).toEqual(bodies(original));
    const profiles = (outs: PartitionOutput[]) =>
      outs
        .flatMap((o) => o.profiles)
        .sort((a, b) =>
          a.customer < b.customer ? -1 : a.customer > b.customer ? 1 : a.updated_at - b.updated_at,
        );
    expect(profiles(split)).toEqual(profiles(original));
  });

  it('a delta leaves out the key groups where nothing moved, and its chain restores on three as the original', () => {
    const one = new PartitionProcessor({ partition: 0, partitions: 1, rules });
    feed([one], events.slice(0, half), 1);
    const full = unpack(pack(one.snapshot()));
    const few = events.slice(half, half + 5);
    feed([one], few, half + 1);
    const delta = unpack(pack(one.snapshot(true))) as ReturnType<PartitionProcessor['snapshot']>;
    const moved = new Set(few.map((e) => keyGroupOf(e.customer, 128)));
    expect(delta.groups.map((g) => g.kg).sort((a, b) => a - b)).toEqual([...moved].sort((a, b) => a - b));
    const three = [0, 1, 2].map((p) => new PartitionProcessor({ partition: p, partitions: 3, rules }));
    for (const p of three) p.restore(full, delta);
    const rest = events.slice(half + 5);
    const original = [...feed([one], rest, half + 6), one.advanceTo(end)];
    const split = [...feed(three, rest, half + 6), ...three.map((p) => p.advanceTo(end))];
    expect(bodies(split).length).toBeGreaterThan(100);
    expect(bodies(split)).toEqual(bodies(original));
  });

  it('takes over the state of a version without key groups, applying each event exactly once', () => {
    // The reference: everything in one processor.
    const reference = new PartitionProcessor({ partition: 0, partitions: 1, rules });
    const expected = [...feed([reference], events, 1), reference.advanceTo(end)];

    // The old version: two partitions (hash mod 2), each with its own last sequence.
    const before = new PartitionProcessor({ partition: 0, partitions: 1, rules });
    feed([before], events.slice(0, half), 1);
    const lastApplied = half + 50; // partition 1 had applied a little further before the stop
    const lateSeqs: number[] = [];
    const late = events.slice(half, half + 50).filter((e, i) => {
      if (keyGroupOf(e.customer, 2) !== 1) return false;
      lateSeqs.push(half + 1 + i);
      return true;
    });
    const oldSnapshots = [0, 1].map((old) => {
      // entries as objects, as that version held them
      const customers = before
        .snapshot()
        .groups.flatMap((g) => g.customers.map(([c]) => [c, before.customer(c)]))
        .filter(([c]) => keyGroupOf(c as string, 2) === old);
      return {
        version: 4,
        partition: old,
        delta: false,
        lastSeq: half,
        watermark: { maxEventTime: 0, value: 0 },
        customers,
      };
    });
    // partition 1's extra events, applied by the old version before its checkpoint
    const ahead = new PartitionProcessor({ partition: 0, partitions: 1, rules });
    ahead.restore(unpack(pack(before.snapshot())));
    const aheadOut = feed([ahead], late, 0, lateSeqs);
    const oldOne = oldSnapshots[1]!;
    oldOne.lastSeq = lastApplied;
    oldOne.customers = ahead
      .snapshot()
      .groups.flatMap((g) => g.customers.map(([c]) => [c, ahead.customer(c)]))
      .filter(([c]) => keyGroupOf(c as string, 2) === 1);

    // keeping no customer decoded that need not be: the entries' applied sequences must survive that
    const upgraded = [0, 1].map(
      (p) => new PartitionProcessor({ partition: p, partitions: 2, rules, hotCustomers: 0 }),
    );
    for (const p of upgraded)
      p.restoreChains(oldSnapshots.map((s) => ({ snapshots: [unpack(pack(s)) as never] })));
    // the stream redelivers from the lower of the two: half + 1
    const got = [
      ...aheadOut,
      ...feed(upgraded, events.slice(half), half + 1),
      ...upgraded.map((p) => p.advanceTo(end)),
    ];
    const laterOf = (outs: PartitionOutput[]) =>
      bodies(outs).filter((t) => t.eventTime > events[half - 1]!.ts);
    expect(laterOf(got)).toEqual(laterOf(expected));
    // each event applied exactly once: its row comes out once
    const ids = got.flatMap((o) => o.events.map((r) => r.id));
    expect(new Set(ids).size).toBe(ids.length);
  });
});
