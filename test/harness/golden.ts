/**
 * The golden traffic: a fixed generated stream (three days of 4,000 customers, ~250k events, every
 * default rule firing) run through partition processors, and what they produced in a canonical form
 * (triggers without the wall-clock `firedAt`, profile rows), sorted so that the grouping of
 * customers into partitions does not change it. test/integration/golden.test.ts compares it with
 * test/golden/, recorded before the state's shape changed: a change of state layout must not change
 * one trigger or profile.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { pack } from 'msgpackr';
import { loadRules } from '../../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../../engine/demo/traffic.js';
import { ownerOfCustomer } from '../../operators/keyGroups.js';
import { type PartitionOutput, PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent, ProfileRow, Trigger } from '../../operators/types.js';

const DAY = 86_400_000;

/**
 * The stream: generated events published slightly out of order (each up to 3 s after its event
 * time, deterministically), within the default allowed lateness of 5 s, so the ordered lane sorts.
 */
export function goldenTraffic(): CxEvent[] {
  const events = generateTraffic({ customers: 4000, days: 3, seed: 20261130 });
  const keyed = events.map((e, i) => ({ e, at: e.ts + ((i * 2654435761) % 3001) }));
  keyed.sort((a, b) => a.at - b.at);
  return keyed.map((k) => k.e);
}

/** What the processors produced, canonical: sorted, `firedAt` left out. */
export interface GoldenOutput {
  triggers: Array<Omit<Trigger, 'firedAt'>>;
  profiles: ProfileRow[];
  events: number;
  rejects: number;
}

/**
 * Runs `events` through `partitions` processors (customers routed as the engine routes them), in
 * batches of `batch`, then to 40 days after the last event so every pending timer fires, then the
 * end-of-replay flush.
 */
export function runGolden(
  events: readonly CxEvent[],
  partitions = 1,
  batch = 500,
  hotCustomers?: number,
): GoldenOutput {
  const rules = loadRules(['config/rules.yaml']);
  const processors = Array.from(
    { length: partitions },
    (_, p) => new PartitionProcessor({ partition: p, partitions, rules, hotCustomers }),
  );
  const outputs: PartitionOutput[] = [];
  const queues: Array<{ seqs: number[]; subjects: string[]; payloads: Uint8Array[] }> = processors.map(
    () => ({
      seqs: [],
      subjects: [],
      payloads: [],
    }),
  );
  const flush = (p: number) => {
    const q = queues[p]!;
    if (q.seqs.length === 0) return;
    outputs.push(processors[p]!.applyBatch(q.seqs, q.subjects, (i) => q.payloads[i]!, 0));
    queues[p] = { seqs: [], subjects: [], payloads: [] };
  };
  let last = 0;
  events.forEach((e, i) => {
    const p = ownerOfCustomer(e.customer, 128, partitions);
    const q = queues[p]!;
    q.seqs.push(i + 1);
    q.subjects.push(subjectOf(e));
    q.payloads.push(pack(e));
    if (e.ts > last) last = e.ts;
    if (q.seqs.length >= batch) flush(p);
  });
  for (let p = 0; p < partitions; p++) flush(p);
  for (const processor of processors) {
    outputs.push(processor.advanceTo(last + 40 * DAY));
    outputs.push(processor.tick(null, true));
  }
  const triggers: Array<Omit<Trigger, 'firedAt'>> = [];
  const profiles: ProfileRow[] = [];
  let rows = 0;
  let rejects = 0;
  for (const out of outputs) {
    for (const { firedAt: _, ...t } of out.triggers) triggers.push(t);
    profiles.push(...out.profiles);
    rows += out.events.length;
    rejects += out.rejects.length;
  }
  triggers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  profiles.sort((a, b) =>
    a.customer < b.customer ? -1 : a.customer > b.customer ? 1 : a.updated_at - b.updated_at,
  );
  return { triggers, profiles, events: rows, rejects };
}

const dir = resolve(import.meta.dirname, '../golden');

/** The recorded files (gzipped NDJSON, one canonical line per trigger or profile row). */
export const GOLDEN_FILES = {
  triggers: join(dir, 'triggers.ndjson.gz'),
  profiles: join(dir, 'profiles.ndjson.gz'),
} as const;

/** The canonical lines of one kind of output. */
export function goldenLines(out: GoldenOutput, kind: keyof typeof GOLDEN_FILES): string[] {
  return (kind === 'triggers' ? out.triggers : out.profiles).map((x) => JSON.stringify(x));
}

/** The recorded lines of one kind. */
export function recordedLines(kind: keyof typeof GOLDEN_FILES): string[] {
  return gunzipSync(readFileSync(GOLDEN_FILES[kind])).toString('utf8').trimEnd().split('\n');
}
