/**
 * `cxstream status`: asks the running engine (`cx.admin.status`, engine/runtime/liveStatus.ts) for
 * this instance's workers, key groups, stream position and last checkpoint, and prints them as
 * tables (or JSON with `--json`). How to read it: docs/OPERATIONS.md "Status".
 */
import { loadConfig } from '../config/config.js';
import { type EngineStatus, requestStatus } from '../runtime/liveStatus.js';

export interface StatusOptions {
  config?: string;
  json?: boolean;
  /** How long to wait for the engine's answer. @default 10000 */
  timeoutMs?: number;
  /** Where the text goes. @default process.stdout */
  out?: { write(text: string): unknown };
}

/** Asks the engine and prints its status; exit 1 (an error) when no engine answers in time. */
export async function runStatus(options: StatusOptions): Promise<EngineStatus> {
  const config = loadConfig(options.config);
  const status = await requestStatus(config, options.timeoutMs ?? 10_000);
  const out = options.out ?? process.stdout;
  out.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, Date.now()));
  return status;
}

/**
 * What is wrong with the workers' key groups: each of 0..keyGroups−1 must be owned by exactly one
 * worker. Empty when all is well (always, unless the engine is broken).
 */
export function keyGroupProblems(status: EngineStatus): string[] {
  const owners = new Map<number, number[]>();
  for (const w of status.workers)
    for (const g of w.keyGroups) owners.set(g.kg, [...(owners.get(g.kg) ?? []), w.partition]);
  const problems: string[] = [];
  for (let kg = 0; kg < status.keyGroups; kg++) {
    const by = owners.get(kg) ?? [];
    if (by.length === 0) problems.push(`key group ${kg} is owned by no worker`);
    else if (by.length > 1) problems.push(`key group ${kg} is owned by workers ${by.join(', ')}`);
  }
  for (const kg of owners.keys())
    if (kg < 0 || kg >= status.keyGroups)
      problems.push(`key group ${kg} is out of range 0..${status.keyGroups - 1}`);
  return problems;
}

/** The status as an operator reads it: the instance, stream, checkpoint, then a table per worker and per key group. */
export function formatStatus(s: EngineStatus, now: number): string {
  const { instance: i } = s;
  const lines = [
    `cxstream ${i.version} on ${i.host}, pid ${i.pid}: started ${time(i.startedAt)} (${ago(now, i.startedAt)}), ` +
      `state recovered ${time(i.recoveredAt)}, NATS ${i.nats}`,
  ];
  const problems = keyGroupProblems(s);
  lines.push(
    `key groups: ${s.keyGroups} over ${s.partitions} worker${s.partitions === 1 ? '' : 's'}, ` +
      (problems.length === 0 ? 'each owned once' : `PROBLEMS: ${problems.join('; ')}`),
  );
  if (s.stream) {
    const t = s.stream;
    lines.push(
      `stream ${t.stream}: last seq ${t.lastSeq}; consumer ${t.durable}: delivered up to ${t.deliveredSeq}, ` +
        `ack floor ${t.ackFloor}; lag: ${t.pending} not yet delivered, ${t.unacked} above the ack floor (not yet checkpointed)`,
    );
  } else {
    lines.push(`stream: not read${s.streamError ? ` (${s.streamError})` : ''}`);
  }
  const c = s.checkpoint;
  if (c === null) lines.push('checkpoints: off');
  else {
    lines.push(
      c.recovered.workers === 0
        ? 'recovered: no checkpoint, the state started empty'
        : `recovered: checkpoints covering seq ≤ ${c.recovered.coveredSeq} (${c.recovered.workers} worker records, ` +
            `${c.recovered.bytes} bytes, ${c.recovered.ms} ms)`,
      c.last === null
        ? `last checkpoint: none since the engine started (store ${c.store})`
        : `last checkpoint: ${time(c.last.at)} (${ago(now, c.last.at)}), covers seq ≤ ${c.last.coveredSeq}, ` +
            `${c.last.full} full + ${c.last.deltas} delta records, ${c.last.bytes} bytes, ${c.last.ms} ms (store ${c.store})`,
    );
  }
  // a restore reads each worker's full record and the deltas after it
  const chain = (p: number): string => {
    if (c === null) return 'off';
    const ch = c.chains[p];
    if (ch === undefined || ch === null) return 'next full';
    return `full ${ch.fullAt === null ? 'at ?' : ago(now, ch.fullAt)} + ${ch.deltas} delta${ch.deltas === 1 ? '' : 's'}`;
  };
  lines.push(
    '',
    ...table(
      [
        'worker',
        'key groups',
        'routed',
        'backlog',
        'customers',
        'as objects',
        'as bytes',
        'checkpoint chain',
      ],
      s.workers.map((w) => [
        String(w.partition),
        w.ranges,
        w.routed === null ? '-' : String(w.routed),
        w.backlog === null ? '-' : String(w.backlog),
        String(w.customers),
        String(w.hotCustomers),
        String(w.customers - w.hotCustomers),
        chain(w.partition),
      ]),
      [7],
    ),
    '',
    ...table(
      ['key group', 'worker', 'applied seq', 'watermark', 'max event time', 'customers', 'timers'],
      s.workers
        .flatMap((w) => w.keyGroups.map((g) => ({ w: w.partition, g })))
        .sort((a, b) => a.g.kg - b.g.kg)
        .map(({ w, g }) => [
          String(g.kg),
          String(w),
          String(g.lastSeq),
          time(g.watermark),
          time(g.maxEventTime),
          String(g.customers),
          String(g.timersQueued),
        ]),
    ),
    '',
    'times in UTC; routed: events routed to the worker since the engine started, backlog: those not applied yet; timers: queue entries (an upper bound of the pending timers)',
  );
  return `${lines.join('\n')}\n`;
}

/** Columns padded to their widest cell; the first and the `text` columns left-aligned, the others right. */
function table(header: string[], rows: string[][], text: readonly number[] = []): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const left = (c: number) => c === 0 || text.includes(c);
  const line = (cells: string[]) =>
    cells
      .map((v, c) => (left(c) ? v.padEnd(widths[c]!) : v.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Epoch ms as ISO 8601 UTC; `-` for none. */
function time(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

/** How long ago, roughly: `5s ago`, `3m 2s ago`, `2h 5m ago`. */
function ago(now: number, at: number): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}
