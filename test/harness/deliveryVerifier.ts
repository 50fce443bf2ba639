/**
 * Exactly-once checker for the fault tests (like nats-server's chaos bitset and Kafka's EOS
 * verifier): compares every output id of a run with a fault-free reference run.
 */

import type { NatsConnection } from '@nats-io/transport-node';
import { openClickHouse } from '../../sinks/clickhouse.js';
import { readStream } from './readStream.js';

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

/** The trigger id (`Nats-Msg-Id`, else the body's `id`) of every message on a stream, in order. */
export async function readTriggerIds(nc: NatsConnection, stream = 'CX_TRIGGERS'): Promise<string[]> {
  return (await readStream(nc, stream)).map(
    (m) => m.headers?.get('Nats-Msg-Id') || m.json<{ id: string }>().id,
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
