/**
 * `cxstream status`: asks the running engine (`cx.admin.status`, engine/runtime/liveStatus.ts) for
 * this instance's workers, key groups, stream position and last checkpoint, and prints them as
 * tables (or JSON with `--json`). How to read it: docs/OPERATIONS.md "Status".
 */
import { loadConfig } from '../config/config.js';
import {
  type EngineStatus,
  keyGroupRanges,
  requestDeploymentStatus,
  requestStatus,
} from '../runtime/liveStatus.js';

export interface StatusOptions {
  config?: string;
  json?: boolean;
  /** How long to wait for the engine's answer. @default 10000 */
  timeoutMs?: number;
  /** Where the text goes. @default process.stdout */
  out?: { write(text: string): unknown };
}

/**
 * Asks the engine and prints its status; exit 1 (an error) when no engine answers in time. With
 * `cluster.deployment` set, every instance of the deployment answers: the deployment first (which
 * instance owns which key groups), then each instance.
 */
export async function runStatus(options: StatusOptions): Promise<EngineStatus | EngineStatus[]> {
  const config = loadConfig(options.config);
  const out = options.out ?? process.stdout;
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (config.cluster.deployment !== '') {
    const all = await requestDeploymentStatus(config, timeoutMs);
    out.write(
      options.json
        ? `${JSON.stringify({ deployment: config.cluster.deployment, instances: all }, null, 2)}\n`
        : formatDeployment(config.cluster.deployment, all, Date.now()),
    );
    return all;
  }
  const status = await requestStatus(config, timeoutMs);
  out.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, Date.now()));
  return status;
}

/** The instances of a deployment: who owns which key groups, lag and checkpoint each; then each instance in full. */
export function formatDeployment(name: string, all: readonly EngineStatus[], now: number): string {
  const problems = keyGroupProblems(all);
  const lines = [
    `deployment ${name}: ${all.length} instance${all.length === 1 ? '' : 's'}, ${all[0]?.keyGroups ?? 0} key groups, ` +
      (problems.length === 0 ? 'each owned once' : `PROBLEMS: ${problems.join('; ')}`),
    '',
    ...table(
      ['instance', 'host', 'pid', 'key groups', 'customers', 'lag', 'last checkpoint'],
      all.map((s) => [
        s.instance.deployment?.instance ?? '?',
        s.instance.host,
        String(s.instance.pid),
        keyGroupRanges(s.workers.flatMap((w) => w.keyGroups.map((g) => g.kg)).sort((a, b) => a - b)),
        String(s.workers.reduce((n, w) => n + w.customers, 0)),
        s.stream ? `${s.stream.pending} + ${s.stream.unacked} unacked` : '-',
        s.checkpoint?.last ? `${ago(now, s.checkpoint.last.at)}, seq ≤ ${s.checkpoint.last.coveredSeq}` : '-',
      ]),
      [1, 3],
    ),
  ];
  for (const s of all)
    lines.push('', `=== ${s.instance.deployment?.instance ?? '?'}`, formatStatus(s, now).trimEnd());
  return `${lines.join('\n')}\n`;
}

/**
 * What is wrong with the workers' key groups: each of 0..keyGroups−1 must be owned by exactly one
 * worker of the instances given (one instance, or every instance of a deployment). Empty when all is
 * well (always, unless the engine is broken, or a deployment is rebalancing).
 */
export function keyGroupProblems(status: EngineStatus | readonly EngineStatus[]): string[] {
  const all = Array.isArray(status) ? status : [status as EngineStatus];
  const keyGroups = all[0]?.keyGroups ?? 0;
  const owners = new Map<number, string[]>();
  for (const s of all) {
    const at = all.length > 1 ? `${s.instance.deployment?.instance ?? s.instance.pid}/` : '';
    for (const w of s.workers)
      for (const g of w.keyGroups) owners.set(g.kg, [...(owners.get(g.kg) ?? []), `${at}${w.partition}`]);
  }
  const problems: string[] = [];
  for (let kg = 0; kg < keyGroups; kg++) {
    const by = owners.get(kg) ?? [];
    if (by.length === 0) problems.push(`key group ${kg} is owned by no worker`);
    else if (by.length > 1) problems.push(`key group ${kg} is owned by workers ${by.join(', ')}`);
  }
  for (const kg of owners.keys())
    if (kg < 0 || kg >= keyGroups) problems.push(`key group ${kg} is out of range 0..${keyGroups - 1}`);
  return problems;
}

/** The status as an operator reads it: the instance, stream, checkpoint, then a table per worker and per key group. */
export function formatStatus(s: EngineStatus, now: number): string {
  const { instance: i } = s;
  const lines = [
    `cxstream ${i.version} on ${i.host}, pid ${i.pid}: started ${time(i.startedAt)} (${ago(now, i.startedAt)}), ` +
      `state recovered ${time(i.recoveredAt)}, NATS ${i.nats}`,
  ];
  const owned = s.workers.reduce((n, w) => n + w.keyGroups.length, 0);
  // an instance of a deployment owns its share; the deployment's view checks the whole
  const problems = s.instance.deployment ? [] : keyGroupProblems(s);
  lines.push(
    (s.instance.deployment
      ? `key groups: ${owned} of ${s.keyGroups} (instance ${s.instance.deployment.instance} of deployment ${s.instance.deployment.name}) over `
      : `key groups: ${s.keyGroups} over `) +
      `${s.partitions} worker${s.partitions === 1 ? '' : 's'}, ` +
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
