/**
 * Exactly-once checker for the fault tests (like nats-server's chaos bitset and Kafka's EOS
 * verifier): compares every output id of a run with a fault-free reference run.
 */

import { expect } from 'vitest';
import { openClickHouse } from '../../sinks/clickhouse.js';

/** What a run got wrong. */
export interface DeliveryReport {
  expected: number;
  actual: number;
  /** In the reference, missing from the run. */
  lost: string[];
  /** In the run more than once (each id once, with its count). */
  duplicated: Array<{ id: string; count: number }>;
  /** In the run, not in the reference. */
  extra: string[];
}

/** A report's counts, as the fault tests print them. */
export function reportCounts(report: DeliveryReport) {
  return {
    triggers: report.expected,
    lost: report.lost.length,
    duplicated: report.duplicated.length,
    extra: report.extra.length,
  };
}

/** Compares ids of a run (with repetitions) with the reference's (each once). */
export function compareIds(reference: readonly string[], actual: readonly string[]): DeliveryReport {
  const expected = new Set(reference);
  const counts = new Map<string, number>();
  for (const id of actual) counts.set(id, (counts.get(id) ?? 0) + 1);
  return {
    expected: expected.size,
    actual: actual.length,
    lost: [...expected].filter((id) => !counts.has(id)),
    duplicated: [...counts].filter(([, n]) => n > 1).map(([id, count]) => ({ id, count })),
    extra: [...counts.keys()].filter((id) => !expected.has(id)),
  };
}

/** Fails the test unless the run holds every reference id exactly once, and nothing else. */
export function expectExactlyOnce(report: DeliveryReport): void {
  expect(report.lost).toEqual([]);
  expect(report.duplicated).toEqual([]);
  expect(report.extra).toEqual([]);
}

/** A trigger message: its id and the JSON body a subscriber receives. */
export interface TriggerMessage {
  id: string;
  body: Record<string, unknown>;
}

/** A trigger whose body differs from the reference's, field by field. */
export interface BodyDifference {
  id: string;
  fields: Array<{ field: string; reference: unknown; actual: unknown }>;
}

/**
 * Triggers present in both runs whose bodies differ in any field but `ignore` (the wall-clock
 * `firedAt`: when the engine happened to fire it). Values are compared whole, as JSON with sorted keys.
 */
export function compareBodies(
  reference: readonly TriggerMessage[],
  actual: readonly TriggerMessage[],
  ignore: readonly string[] = ['firedAt'],
): BodyDifference[] {
  const expected = new Map(reference.map((t) => [t.id, t.body]));
  const seen = new Set<string>();
  const out: BodyDifference[] = [];
  for (const t of actual) {
    const ref = expected.get(t.id);
    if (!ref || seen.has(t.id)) continue;
    seen.add(t.id);
    const fields = [...new Set([...Object.keys(ref), ...Object.keys(t.body)])]
      .filter((f) => !ignore.includes(f))
      .filter((f) => canonical(ref[f]) !== canonical(t.body[f]))
      .map((field) => ({ field, reference: ref[field], actual: t.body[field] }));
    if (fields.length > 0) out.push({ id: t.id, fields });
  }
  return out;
}

/** JSON text of a value with object keys sorted, so equal values give equal text. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** Every event id in `cxstream.events FINAL` of an embedded ClickHouse directory, once per stored row. */
export async function storedEventIds(clickhouseDir: string): Promise<string[]> {
  const ch = openClickHouse(`embedded:${clickhouseDir}`);
  try {
    const rows = await (
      await ch.query({
        query: 'SELECT id, count() AS n FROM cxstream.events FINAL GROUP BY id',
        format: 'JSONEachRow',
      })
    ).json<{ id: string; n: number | string }>();
    return rows.flatMap((r) => Array.from({ length: Number(r.n) }, () => r.id));
  } finally {
    await ch.close();
  }
}
