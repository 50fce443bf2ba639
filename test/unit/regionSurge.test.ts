import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAggregates } from '../../engine/config/aggregatesFile.js';
import { isConfigError } from '../../engine/config/errors.js';
import {
  type CountedRow,
  countedSelection,
  RegionSurge,
  type RegionSurgeSpec,
  RegionSurgeSpecError,
  resolveRegionSurge,
  selectCounted,
} from '../../operators/regionSurge.js';
import type { EventRow, Trigger } from '../../operators/types.js';
import { eventRow } from '../harness/eventRows.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
// A whole hour, so 5-minute window ends fall on round times.
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const SPEC: RegionSurgeSpec = {
  id: 'complaint_surge',
  description: 'Complaint surge in a region',
  priority: 80,
};
const clock = () => 42;

/** A complaint at `ts` in `region`, reported as the first row of its batch. */
const complaint = (ts: number, region = 'east', type = 'complaint'): CountedRow => ({
  ts,
  type,
  before: Number.NEGATIVE_INFINITY,
  region,
});

/** Feeds rows in time order as one batch per row into partition 0 of a one-partition surge. */
function feed(surge: RegionSurge, rows: CountedRow[], partition = 0): Trigger[] {
  const out: Trigger[] = [];
  let maxTs = Number.NEGATIVE_INFINITY;
  for (const r of rows) {
    const row = { ...r, before: maxTs };
    maxTs = Math.max(maxTs, r.ts);
    out.push(...surge.observe(partition, { rows: [row], maxTs }));
  }
  return out;
}

describe('resolveRegionSurge', () => {
  it('fills the docs/SCENARIOS.md defaults', () => {
    expect(resolveRegionSurge({ id: 'complaint_surge' })).toEqual({
      id: 'complaint_surge',
      reason: 'complaint_surge',
      type: 'complaint',
      by: 'region',
      windowMs: HOUR,
      stepMs: 5 * MIN,
      baselineMs: DAY,
      threshold: 10,
      factor: 3,
      cooldownMs: HOUR,
      latenessMs: 0,
      priority: 0,
      subject: 'cx.triggers.complaint_surge',
    });
  });

  it('names the field of a bad value', () => {
    const bad = (spec: Partial<RegionSurgeSpec>) => {
      try {
        resolveRegionSurge({ id: 'x', ...spec });
      } catch (e) {
        expect(e).toBeInstanceOf(RegionSurgeSpecError);
        return [(e as RegionSurgeSpecError).path, (e as Error).message];
      }
      return null;
    };
    expect(bad({ window: '7m' })).toEqual([['window'], 'window must be a multiple of step']);
    expect(bad({ step: 'soon' })?.[0]).toEqual(['step']);
    expect(bad({ threshold: 0 })?.[0]).toEqual(['threshold']);
    expect(bad({ factor: -1 })?.[0]).toEqual(['factor']);
    expect(bad({ by: 'customer' as never })?.[0]).toEqual(['by']);
    expect(bad({ id: 'Bad-Id' })?.[0]).toEqual(['id']);
  });
});

describe('RegionSurge', () => {
  it('fires at the first 5-minute window end holding 10 complaints, with a deterministic id', () => {
    const surge = new RegionSurge(SPEC, 1, clock);
    // Ten complaints at T0 + 10 min, +13, ..., +37; a later event moves the watermark past T0 + 40.
    const rows = Array.from({ length: 10 }, (_, i) => complaint(T0 + (10 + 3 * i) * MIN));
    const fired = feed(surge, [...rows, complaint(T0 + 41 * MIN, 'west', 'order')]);
    const end = T0 + 40 * MIN;
    expect(fired).toEqual([
      {
        id: `complaint_surge:east:${end}`,
        rule: 'complaint_surge',
        customer: 'region:east',
        firedAt: 42,
        eventTime: end,
        reason: 'Complaint surge in a region',
        priority: 80,
        payload: {
          region: 'east',
          type: 'complaint',
          windowStart: end - HOUR,
          windowEnd: end,
          count: 10,
          baselineMean: 0,
          threshold: 10,
          factor: 3,
        },
        profile: {},
        subject: 'cx.triggers.complaint_surge',
      },
    ]);
  });

  it('does not fire on 9 complaints in an hour', () => {
    const surge = new RegionSurge(SPEC, 1, clock);
    const rows = Array.from({ length: 9 }, (_, i) => complaint(T0 + 6 * i * MIN));
    expect(feed(surge, rows)).toEqual([]);
    expect(surge.advanceTo(T0 + 3 * DAY)).toEqual([]);
  });

  it('needs 3 × the mean hourly complaints of the previous 24 h', () => {
    // 4 complaints an hour for a day, an hour of silence, then a burst: 11 is not a surge, 12 is.
    const history = (region: string) =>
      Array.from({ length: 24 * 4 }, (_, i) => complaint(T0 + i * 15 * MIN + MIN, region));
    const burst = (region: string, n: number) =>
      Array.from({ length: n }, (_, i) => complaint(T0 + DAY + HOUR + i * MIN, region));
    const eleven = new RegionSurge(SPEC, 1, clock);
    expect(feed(eleven, [...history('north'), ...burst('north', 11)])).toEqual([]);
    expect(eleven.advanceTo(T0 + 2 * DAY)).toEqual([]);
    const twelve = new RegionSurge(SPEC, 1, clock);
    feed(twelve, [...history('north'), ...burst('north', 12)]);
    const fired = twelve.advanceTo(T0 + 2 * DAY);
    // Window ending at +1h15m holds the 12; its baseline [00:15, 24:15) holds 95 complaints:
    // 12 >= 3 × 95 / 24 = 11.875.
    expect(fired.map((t) => [t.eventTime - T0 - DAY, t.payload.count])).toEqual([[HOUR + 15 * MIN, 12]]);
    expect(fired[0]!.payload.baselineMean).toBeCloseTo(95 / 24, 6);
  });

  it('holds a region for the 1 h cooldown, keeps regions apart, and fires again after it', () => {
    const surge = new RegionSurge(SPEC, 1, clock);
    const rows: CountedRow[] = [];
    // east: 12 complaints a minute apart (>= 10 in every window ending 10..60 min: one firing);
    // south: 10 in the second half hour; east again 3 h later.
    for (let i = 0; i < 12; i++) rows.push(complaint(T0 + i * MIN, 'east'));
    for (let i = 0; i < 10; i++) rows.push(complaint(T0 + (30 + i) * MIN, 'south'));
    for (let i = 0; i < 15; i++) rows.push(complaint(T0 + 3 * HOUR + i * MIN, 'east'));
    rows.sort((a, b) => a.ts - b.ts);
    const fired = [...feed(surge, rows), ...surge.advanceTo(T0 + 6 * HOUR)];
    expect(fired.map((t) => [t.customer, (t.eventTime - T0) / MIN])).toEqual([
      ['region:east', 10],
      ['region:south', 40],
      ['region:east', 3 * 60 + 10],
    ]);
  });

  it('waits for every partition before evaluating a window', () => {
    const surge = new RegionSurge(SPEC, 2, clock);
    const rows = Array.from({ length: 12 }, (_, i) => complaint(T0 + i * MIN));
    // Partition 0 is far ahead; partition 1 has seen nothing yet.
    expect(feed(surge, [...rows, complaint(T0 + 5 * HOUR, 'east', 'order')], 0)).toEqual([]);
    expect(surge.observe(1, { rows: [], maxTs: T0 + 9 * MIN })).toEqual([]);
    expect(surge.observe(1, { rows: [], maxTs: T0 + 10 * MIN }).map((t) => t.eventTime)).toEqual([
      T0 + 10 * MIN,
    ]);
  });

  it('a watermark reported by the worker releases windows without events', () => {
    const surge = new RegionSurge(SPEC, 1, clock);
    feed(
      surge,
      Array.from({ length: 10 }, (_, i) => complaint(T0 + i * MIN)),
    );
    expect(surge.observe(0, { rows: [], maxTs: T0 + 9 * MIN, watermark: T0 + 10 * MIN })).toHaveLength(1);
  });

  it('leaves out rows behind their partition watermark, and counts them as late', () => {
    const surge = new RegionSurge({ ...SPEC, lateness: '2m' }, 1, clock);
    const at = (m: number) => T0 + m * MIN;
    // before = highest earlier ts of the partition: a row 1 min behind is within lateness, 3 min is not.
    surge.observe(0, {
      rows: [
        { ts: at(10), type: 'complaint', before: at(5), region: 'east' },
        { ts: at(9), type: 'complaint', before: at(10), region: 'east' },
        { ts: at(7), type: 'complaint', before: at(10), region: 'east' },
        { ts: at(11), type: 'complaint', before: at(10), region: '' },
      ],
      maxTs: at(11),
    });
    expect(surge.stats).toEqual({ counted: 2, late: 1, unkeyed: 1, fired: 0 });
  });

  it('gives identical triggers whatever the interleaving of partitions, equal to a reference model', () => {
    const partitions = 4;
    const rand = mulberry32(7);
    const regions = ['north', 'east', 'south', 'west'];
    // Three days of background complaints, with a few bursts of various sizes.
    const events: { ts: number; region: string; customer: number; type: string }[] = [];
    for (let i = 0; i < 3000; i++)
      events.push({
        ts: T0 + Math.floor(rand() * 3 * DAY),
        region: regions[Math.floor(rand() * 4)]!,
        customer: Math.floor(rand() * 500),
        type: rand() < 0.7 ? 'complaint' : 'message',
      });
    for (const [day, region, n] of [
      [0.5, 'east', 40],
      [1.3, 'north', 25],
      [1.31, 'north', 30],
      [2.2, 'west', 12],
      [2.6, 'south', 60],
    ] as const) {
      const start = T0 + Math.floor(day * DAY);
      for (let i = 0; i < n; i++)
        events.push({
          ts: start + Math.floor(rand() * 50 * MIN),
          region,
          customer: Math.floor(rand() * 500),
          type: 'complaint',
        });
    }
    events.sort((a, b) => a.ts - b.ts);
    const spec = resolveRegionSurge(SPEC);
    const selection = countedSelection([spec]);
    // Each partition's events in time order, cut into batches of 1..50 rows as a worker would send them.
    const batches: { p: number; rows: EventRow[] }[][] = Array.from({ length: partitions }, () => []);
    for (let p = 0; p < partitions; p++) {
      const mine = events.filter((e) => e.customer % partitions === p);
      for (let i = 0; i < mine.length; ) {
        const n = 1 + Math.floor(rand() * 50);
        batches[p]!.push({ p, rows: mine.slice(i, i + n).map(row) });
        i += n;
      }
    }
    const run = (seed: number): Trigger[] => {
      const r = mulberry32(seed);
      const surge = new RegionSurge(spec, partitions, clock);
      const next = new Array<number>(partitions).fill(0);
      const maxTs = new Array<number>(partitions).fill(Number.NEGATIVE_INFINITY);
      const out: Trigger[] = [];
      for (;;) {
        const open = [...Array(partitions).keys()].filter((p) => next[p]! < batches[p]!.length);
        if (open.length === 0) break;
        const p = open[Math.floor(r() * open.length)]!;
        const batch = batches[p]![next[p]!++]!;
        const counted = selectCounted(batch.rows, selection, maxTs[p]!);
        maxTs[p] = counted.maxTs;
        out.push(...surge.observe(p, counted));
      }
      out.push(...surge.advanceTo(events.at(-1)!.ts));
      return out;
    };
    const first = run(1);
    expect(first.length).toBeGreaterThanOrEqual(5);
    for (const seed of [2, 3, 4, 5, 6]) expect(run(seed)).toEqual(first);
    expect(first.map((t) => [t.id, t.payload.count])).toEqual(reference(events, events.at(-1)!.ts));
  });
});

describe('loadAggregates', () => {
  it('loads the shipped complaint_surge with the docs/SCENARIOS.md parameters', () => {
    const [surge, ...rest] = loadAggregates([join(import.meta.dirname, '../../config/aggregates.yaml')]);
    expect(rest).toEqual([]);
    expect(surge).toMatchObject({
      id: 'complaint_surge',
      type: 'complaint',
      by: 'region',
      windowMs: HOUR,
      baselineMs: DAY,
      threshold: 10,
      factor: 3,
      cooldownMs: HOUR,
      subject: 'cx.triggers.complaint_surge',
    });
  });

  it('reports every problem as file:line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxstream-agg-'));
    const file = join(dir, 'aggregates.yaml');
    writeFileSync(file, 'aggregates:\n  - id: a\n    window: 7m\n  - id: b\n    factor: -2\n    bogus: 1\n');
    try {
      loadAggregates([file]);
      expect.unreachable();
    } catch (e) {
      expect(isConfigError(e)).toBe(true);
      expect((e as Error).message.split('\n')).toEqual([
        `${file}:5: aggregates[1].factor must be >= 0`,
        `${file}:6: aggregates[1].bogus unknown key "bogus"`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('selectCounted', () => {
  it('keeps counted types with their key fields and the event time before each', () => {
    const rows = [
      row({ ts: 5, type: 'message', region: 'east' }),
      row({ ts: 3, type: 'complaint', region: 'east' }),
    ];
    expect(selectCounted(rows, { types: ['complaint'], fields: ['region'] }, 4)).toEqual({
      rows: [{ ts: 3, type: 'complaint', before: 5, region: 'east' }],
      maxTs: 5,
    });
  });
});

/**
 * The obviously-correct model: every 5-minute window end from the first complaint to `until`,
 * counts by filtering the whole list, a cooldown per region.
 */
describe('RegionSurge.restore', () => {
  /** Three days of complaints with bursts, per partition in slightly shuffled time order, cut into batches. */
  function stream(seed: number, partitions: number): EventRow[][][] {
    const rand = mulberry32(seed);
    const regions = ['north', 'east', 'south', 'west'];
    const events: { ts: number; region: string; customer: number; type: string }[] = [];
    for (let i = 0; i < 3000; i++)
      events.push({
        ts: T0 + Math.floor(rand() * 3 * DAY),
        region: regions[Math.floor(rand() * 4)]!,
        customer: Math.floor(rand() * 500),
        type: rand() < 0.7 ? 'complaint' : 'message',
      });
    for (let b = 0; b < 8; b++) {
      const start = T0 + Math.floor(rand() * 3 * DAY);
      const region = regions[Math.floor(rand() * 4)]!;
      for (let i = 0, n = 10 + Math.floor(rand() * 40); i < n; i++)
        events.push({
          ts: start + Math.floor(rand() * 50 * MIN),
          region,
          customer: Math.floor(rand() * 500),
          type: 'complaint',
        });
    }
    events.sort((a, b) => a.ts - b.ts);
    return Array.from({ length: partitions }, (_, p) => {
      const mine = events.filter((e) => e.customer % partitions === p);
      // some events arrive after a newer one of their partition: late rows must be judged alike
      for (let i = 1; i < mine.length; i++)
        if (rand() < 0.1) [mine[i - 1], mine[i]] = [mine[i]!, mine[i - 1]!];
      const batches: EventRow[][] = [];
      for (let i = 0; i < mine.length; ) {
        const n = 1 + Math.floor(rand() * 50);
        batches.push(mine.slice(i, i + n).map(row));
        i += n;
      }
      return batches;
    });
  }

  /** Feeds the batches of every partition from `from[p]` to `to[p]`, interleaved at random, as workers report them. */
  function play(
    surge: RegionSurge,
    batches: EventRow[][][],
    from: number[],
    to: number[],
    workerMaxTs: number[],
    rand: () => number,
  ): Trigger[] {
    const selection = countedSelection([surge.spec]);
    const next = [...from];
    const out: Trigger[] = [];
    for (;;) {
      const open = [...next.keys()].filter((p) => next[p]! < to[p]!);
      if (open.length === 0) return out;
      const p = open[Math.floor(rand() * open.length)]!;
      const counted = selectCounted(batches[p]![next[p]!++]!, selection, workerMaxTs[p]!);
      workerMaxTs[p] = counted.maxTs;
      out.push(...surge.observe(p, counted));
    }
  }

  it('restored from the events up to a random cut, gives the triggers of the uncut run after it', () => {
    const partitions = 3;
    const spec = resolveRegionSurge({ ...SPEC, threshold: 8, factor: 2 });
    const selection = countedSelection([spec]);
    let compared = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const batches = stream(seed, partitions);
      const rand = mulberry32(1000 + seed);
      const zero = new Array<number>(partitions).fill(0);
      const ends = batches.map((b) => b.length);
      const cut = ends.map((n) => Math.floor(rand() * (n + 1)));
      const minus = () => new Array<number>(partitions).fill(Number.NEGATIVE_INFINITY);

      // The crash-free run, observed up to the cut and then on.
      const uncut = new RegionSurge(spec, partitions, clock);
      const workerMax = minus();
      const before = play(uncut, batches, zero, cut, workerMax, rand);
      const after = play(uncut, batches, cut, ends, workerMax, rand);
      after.push(...uncut.advanceTo(uncut.lastWindowEnd));
      // Deterministic whatever the interleaving: another uncut run gives the same.
      const again = new RegionSurge(spec, partitions, clock);
      const all = play(again, batches, zero, ends, minus(), mulberry32(seed));
      all.push(...again.advanceTo(again.lastWindowEnd));
      expect(all).toEqual([...before, ...after]);

      // What engine/checkpoint/aggregateRecovery.ts reads back: each partition's events up to the cut, from
      // the first bucket still needed, and the latest firing per key.
      const prefix = batches.map((b, p) => b.slice(0, cut[p]).flat());
      const maxTs = prefix.map((rows) => Math.max(Number.NEGATIVE_INFINITY, ...rows.map((r) => r.ts)));
      const probe = new RegionSurge(spec, partitions, clock);
      const from = probe.restoreFrom(Math.min(...maxTs) - spec.latenessMs);
      const rows = prefix.map(
        (events) =>
          selectCounted(
            events.filter((e) => e.ts >= from),
            selection,
            Number.NEGATIVE_INFINITY,
          ).rows,
      );
      const lastFired = new Map<string, number>();
      for (const t of before) lastFired.set(t.payload.region as string, t.eventTime);
      const restored = new RegionSurge(spec, partitions, clock);
      restored.restore({ maxTs, rows, lastFired });
      // A restarted worker's highest event time starts empty, as engine/runtime/worker.ts does after a restore.
      const resumed = play(restored, batches, cut, ends, minus(), mulberry32(seed + 7));
      resumed.push(...restored.advanceTo(restored.lastWindowEnd));
      expect(resumed).toEqual(after);
      compared += after.length;
    }
    // the property is about firings: enough of them happen after the cuts
    expect(compared).toBeGreaterThanOrEqual(10);
  });

  it('refuses an aggregate that has already observed rows', () => {
    const surge = new RegionSurge(SPEC, 1, clock);
    feed(surge, [complaint(T0)]);
    expect(() => surge.restore({ maxTs: [T0], rows: [[]], lastFired: new Map() })).toThrow(/not observed/);
  });
});

function reference(
  events: { ts: number; region: string; type: string }[],
  until: number,
): [string, number][] {
  const complaints = events.filter((e) => e.type === 'complaint');
  const step = 5 * MIN;
  const out: [string, number][] = [];
  const lastFired = new Map<string, number>();
  for (let end = Math.floor(complaints[0]!.ts / step) * step + step; end <= until; end += step) {
    for (const region of [...new Set(complaints.map((e) => e.region))].sort()) {
      const inRegion = complaints.filter((e) => e.region === region);
      const count = inRegion.filter((e) => e.ts >= end - HOUR && e.ts < end).length;
      const base = inRegion.filter((e) => e.ts >= end - HOUR - DAY && e.ts < end - HOUR).length;
      if (count >= 10 && count >= (3 * base) / 24 && end - (lastFired.get(region) ?? -Infinity) >= HOUR) {
        lastFired.set(region, end);
        out.push([`complaint_surge:${region}:${end}`, count]);
      }
    }
  }
  return out;
}

function row(e: { ts: number; type: string; region: string }): EventRow {
  return eventRow('', e.type, e.ts, {
    partition: 0,
    seq: 0,
    id: '',
    channel: 'app',
    from: 'customer',
    region: e.region,
  });
}

/** Small seeded PRNG: the same seed gives the same sequence. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
