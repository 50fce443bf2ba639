/**
 * `cxstream status` without an engine: what a worker reports per key group, how the answers are
 * summed per worker and checked for coverage, the text an operator reads, and the cx_keygroup_*
 * gauges. The real request against `cxstream run`: test/integration/status.test.ts.
 */
import { pack } from 'msgpackr';
import { describe, expect, it, vi } from 'vitest';
import { formatStatus, keyGroupProblems } from '../../engine/cli/status.js';
import { loadRules } from '../../engine/config/rulesFile.js';
import {
  type EngineStatus,
  followKeyGroups,
  keyGroupRanges,
  setKeyGroupMetrics,
  WorkerBacklog,
  workerStatus,
} from '../../engine/runtime/liveStatus.js';
import { Metrics } from '../../engine/runtime/metrics.js';
import type { KeyGroupStatus, PartitionStatus } from '../../engine/runtime/workerProtocol.js';
import { keyGroupOf } from '../../operators/keyGroups.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent } from '../../operators/types.js';

const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const MIN = 60_000;

/** A key group as a worker reports it, with defaults. */
const kg = (n: number, extra: Partial<KeyGroupStatus> = {}): KeyGroupStatus => ({
  kg: n,
  lastSeq: 0,
  watermark: null,
  maxEventTime: null,
  customers: 0,
  hotCustomers: 0,
  timersQueued: 0,
  ...extra,
});

describe('PartitionProcessor.keyGroupStats', () => {
  it("reports each owned key group's last sequence, watermark, customers and timer queue", () => {
    // worker 0 of 2 over 8 key groups owns 0..3
    const p = new PartitionProcessor({
      partition: 0,
      partitions: 2,
      keyGroups: 8,
      rules: loadRules(['config/rules.yaml']),
    });
    const customers = Array.from({ length: 200 }, (_, i) => `c${i}`);
    const inKg = (k: number) => customers.filter((c) => keyGroupOf(c, 8) === k);
    const [a, b] = inKg(1);
    const [c] = inKg(3);
    const events: CxEvent[] = [
      { id: 'e1', ts: T0, customer: a!, type: 'message', channel: 'app' },
      { id: 'e2', ts: T0 + MIN, customer: c!, type: 'message', channel: 'app' },
      { id: 'e3', ts: T0 + 2 * MIN, customer: b!, type: 'message', channel: 'app' },
    ];
    p.applyBatch(
      [10, 11, 12],
      events.map((e) => `cx.events.app.message.${e.customer}`),
      (i) => pack(events[i]),
      T0,
    );
    const stats = p.keyGroupStats();
    expect(stats.map((g) => g.kg)).toEqual([0, 1, 2, 3]);
    const [g0, g1, , g3] = stats;
    expect(g0).toMatchObject({ lastSeq: 0, customers: 0, timersQueued: 0 });
    expect(g0!.watermark).toBe(Number.NEGATIVE_INFINITY);
    // allowed lateness 5 s by default
    expect(g1).toMatchObject({ lastSeq: 12, customers: 2, hotCustomers: 2, maxEventTime: T0 + 2 * MIN });
    expect(g1!.watermark).toBe(T0 + 2 * MIN - 5000);
    expect(g3).toMatchObject({ lastSeq: 11, customers: 1, maxEventTime: T0 + MIN });
    // the default rules arm timers for every customer (silence, profile publication)
    expect(g1!.timersQueued).toBeGreaterThan(0);
  });
});

describe('keyGroupRanges', () => {
  it('writes key groups as ranges', () => {
    expect(keyGroupRanges([])).toBe('');
    expect(keyGroupRanges([5])).toBe('5');
    expect(keyGroupRanges([3, 0, 1, 2])).toBe('0-3');
    expect(keyGroupRanges([0, 1, 2, 5, 7, 8])).toBe('0-2, 5, 7-8');
  });
});

describe('workerStatus', () => {
  it("sums a worker's customers and names its range", () => {
    const w = workerStatus({
      partition: 1,
      keyGroups: [kg(64, { customers: 3, hotCustomers: 1 }), kg(65, { customers: 4, hotCustomers: 4 })],
    });
    expect(w).toMatchObject({
      partition: 1,
      ranges: '64-65',
      customers: 7,
      hotCustomers: 5,
      routed: null,
      backlog: null,
    });
    expect(workerStatus({ partition: 1, keyGroups: [] }, counted([5, 30], [5, 18]))).toMatchObject({
      routed: 30,
      backlog: 12,
    });
    expect(w.keyGroups).toHaveLength(2);
  });
});

/** A backlog with these events routed to and applied by each worker. */
function counted(routed: number[], applied: number[]): WorkerBacklog {
  const backlog = new WorkerBacklog(routed.length);
  backlog.routed.splice(0, routed.length, ...routed);
  backlog.applied.splice(0, applied.length, ...applied);
  return backlog;
}

/** An engine status over four key groups. */
function engine(workers: PartitionStatus[], backlog?: WorkerBacklog): EngineStatus {
  return {
    instance: {
      host: 'h1',
      pid: 42,
      version: '0.1.0',
      startedAt: T0,
      recoveredAt: T0 + 2000,
      nats: '127.0.0.1:4222',
    },
    keyGroups: 4,
    partitions: workers.length,
    workers: workers.map((w) => workerStatus(w, backlog)),
    stream: {
      stream: 'CX_EVENTS',
      durable: 'cxstream',
      lastSeq: 120,
      deliveredSeq: 110,
      ackFloor: 100,
      pending: 10,
      unacked: 20,
    },
    checkpoint: {
      store: '/tmp/state',
      recovered: { coveredSeq: 40, workers: 2, bytes: 1000, ms: 30 },
      last: { at: T0 + 60_000, coveredSeq: 100, full: 1, deltas: 1, bytes: 2048, ms: 12 },
      chains: [
        { partition: 0, fullAt: T0 + 5000, deltas: 3 },
        { partition: 1, fullAt: T0 + 60_000, deltas: 0 },
      ],
    },
  };
}

describe('keyGroupProblems', () => {
  it('is empty when every key group is owned once, and names a missing, doubled or stray one', () => {
    expect(
      keyGroupProblems(
        engine([
          { partition: 0, keyGroups: [kg(0), kg(1)] },
          { partition: 1, keyGroups: [kg(2), kg(3)] },
        ]),
      ),
    ).toEqual([]);
    expect(
      keyGroupProblems(
        engine([
          { partition: 0, keyGroups: [kg(0), kg(1)] },
          { partition: 1, keyGroups: [kg(1), kg(3), kg(9)] },
        ]),
      ),
    ).toEqual([
      'key group 1 is owned by workers 0, 1',
      'key group 2 is owned by no worker',
      'key group 9 is out of range 0..3',
    ]);
  });
});

describe('formatStatus', () => {
  it('prints the instance, the lag, the last checkpoint, and a row per worker and per key group', () => {
    const text = formatStatus(
      engine(
        [
          {
            partition: 0,
            keyGroups: [
              kg(0, {
                lastSeq: 118,
                watermark: T0,
                maxEventTime: T0 + 5000,
                customers: 3,
                hotCustomers: 2,
                timersQueued: 6,
              }),
              kg(1),
            ],
          },
          { partition: 1, keyGroups: [kg(2), kg(3, { lastSeq: 120, customers: 1, hotCustomers: 0 })] },
        ],
        counted([100, 40], [75, 40]),
      ),
      T0 + 65_000,
    );
    const lines = text.split('\n');
    expect(lines[0]).toBe(
      'cxstream 0.1.0 on h1, pid 42: started 2026-11-20T02:00:00.000Z (1m 5s ago), state recovered 2026-11-20T02:00:02.000Z, NATS 127.0.0.1:4222',
    );
    expect(lines[1]).toBe('key groups: 4 over 2 workers, each owned once');
    expect(lines[2]).toBe(
      'stream CX_EVENTS: last seq 120; consumer cxstream: delivered up to 110, ack floor 100; lag: 10 not yet delivered, 20 above the ack floor (not yet checkpointed)',
    );
    expect(lines[3]).toBe('recovered: checkpoints covering seq ≤ 40 (2 worker records, 1000 bytes, 30 ms)');
    expect(lines[4]).toBe(
      'last checkpoint: 2026-11-20T02:01:00.000Z (5s ago), covers seq ≤ 100, 1 full + 1 delta records, 2048 bytes, 12 ms (store /tmp/state)',
    );
    expect(lines.slice(6, 9)).toEqual([
      'worker  key groups  routed  backlog  customers  as objects  as bytes  checkpoint chain',
      '0              0-1     100       25          3           2         1  full 1m 0s ago + 3 deltas',
      '1              2-3      40        0          1           0         1  full 5s ago + 0 deltas',
    ]);
    expect(lines[10]).toBe(
      'key group  worker  applied seq                 watermark            max event time  customers  timers',
    );
    expect(lines[11]).toBe(
      '0               0          118  2026-11-20T02:00:00.000Z  2026-11-20T02:00:05.000Z          3       6',
    );
    expect(lines[12]).toBe(
      '1               0            0                         -                         -          0       0',
    );
    expect(lines[14]).toMatch(/^3 {15}1 {10}120 /);
  });

  it('says when the stream was not read and no checkpoint was taken yet', () => {
    const s = engine([{ partition: 0, keyGroups: [kg(0), kg(1), kg(2), kg(3)] }]);
    const text = formatStatus(
      {
        ...s,
        stream: null,
        streamError: 'stream not found',
        checkpoint: {
          store: '/tmp/state',
          recovered: { coveredSeq: 0, workers: 0, bytes: 0, ms: 0 },
          last: null,
          chains: [null],
        },
      },
      T0,
    );
    expect(text).toContain('key groups: 4 over 1 worker, each owned once\n');
    expect(text).toContain('stream: not read (stream not found)\n');
    expect(text).toContain('recovered: no checkpoint, the state started empty\n');
    expect(text).toContain('last checkpoint: none since the engine started (store /tmp/state)\n');
    expect(text).toContain(
      '\n0              0-3       -        -          0           0         0  next full\n',
    );
  });
});

describe('setKeyGroupMetrics', () => {
  it('sets a series per key group, labelled with its worker; no watermark before the first event', async () => {
    const metrics = new Metrics();
    setKeyGroupMetrics(metrics, [
      {
        partition: 0,
        keyGroups: [
          kg(0, { lastSeq: 7, watermark: T0, maxEventTime: T0 + 5000, customers: 2, timersQueued: 3 }),
          kg(1),
        ],
      },
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('cx_keygroup_applied_seq{key_group="0",partition="0"} 7');
    expect(text).toContain('cx_keygroup_applied_seq{key_group="1",partition="0"} 0');
    expect(text).toContain(`cx_keygroup_watermark_ms{key_group="0",partition="0"} ${T0}`);
    expect(text).not.toContain('cx_keygroup_watermark_ms{key_group="1"');
    expect(text).toContain(`cx_keygroup_max_event_time_ms{key_group="0",partition="0"} ${T0 + 5000}`);
    expect(text).toContain('cx_keygroup_customers{key_group="0",partition="0"} 2');
    expect(text).toContain('cx_keygroup_timers_queued{key_group="0",partition="0"} 3');
  });
});

describe('followKeyGroups', () => {
  it('reads every worker at once and on its cadence, skipping a turn while a read is under way', async () => {
    vi.useFakeTimers();
    try {
      const metrics = new Metrics();
      const pending: Array<() => void> = [];
      let reads = 0;
      const pool = {
        partitions: 2,
        status: (p: number) =>
          new Promise<PartitionStatus>((resolve) => {
            reads++;
            pending.push(() => resolve({ partition: p, keyGroups: [kg(p, { lastSeq: 10 + p })] }));
          }),
      };
      const stop = followKeyGroups(metrics, pool, counted([7, 3], [5, 3]), 1000);
      expect(reads).toBe(2);
      // the workers have not answered: the next turn is skipped
      await vi.advanceTimersByTimeAsync(1000);
      expect(reads).toBe(2);
      for (const answer of pending.splice(0)) answer();
      await vi.advanceTimersByTimeAsync(0);
      const text = await metrics.registry.metrics();
      expect(text).toContain('cx_keygroup_applied_seq{key_group="1",partition="1"} 11');
      expect(text).toContain('cx_worker_backlog_events{partition="0"} 2');
      await vi.advanceTimersByTimeAsync(1000);
      expect(reads).toBe(4);
      stop();
      await vi.advanceTimersByTimeAsync(5000);
      expect(reads).toBe(4);
    } finally {
      vi.useRealTimers();
    }
  });
});
