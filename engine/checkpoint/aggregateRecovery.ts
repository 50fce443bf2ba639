/**
 * Recovery of the main-thread aggregates (complaint_surge) after a crash, from ClickHouse.
 *
 * Checkpoints hold only the key groups' state. The aggregates' state at a checkpoint cut is a pure
 * function of the key groups' events up to the cut, and those events are exactly the rows of
 * `cxstream.events` with `seq <= lastSeq_k` in key group k (column `partition`): a checkpoint is stored only after every
 * output of the events it holds was delivered, and the ClickHouse writer resolves a delivery once
 * the insert is accepted (engine/checkpoint/checkpointer.ts step 3, sinks/clickhouseWriter.ts). Rows above
 * the cut (delivered before the crash, after the checkpoint) are left out by the same condition;
 * JetStream replays their events and the aggregates observe them as usual.
 *
 * Rows inserted twice (retried inserts, events replayed after an earlier crash) are taken once per
 * (partition, seq), the identity of an observed event, rather than by `FINAL`'s (customer, ts, id).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { CountedRow, RegionSurge } from '../../operators/regionSurge.js';
import { quoteIdentifier } from '../../sinks/clickhouse.js';

/** The aggregates could not be rebuilt from ClickHouse; the engine must not run on without them. */
export class AggregateRecoveryError extends Error {
  override name = 'AggregateRecoveryError';
  constructor(
    message: string,
    /** The aggregate (spec id) being rebuilt. */
    readonly aggregate: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What {@link restoreAggregates} rebuilt. */
export interface AggregateRecoveryStats {
  /** Per key group: the highest sequence of the cut (0: no checkpoint, nothing restored). */
  lastSeqs: number[];
  /** Counted-type rows read back, over all aggregates. */
  rows: number;
  /** Keys with a restored cooldown, over all aggregates. */
  cooldowns: number;
  ms: number;
}

/**
 * Rebuilds each (fresh) aggregate at the cut of the restored checkpoints: counts from the events of
 * `database`.events up to each key group's `lastSeq`, cooldowns from its triggers in `database`.triggers.
 */
export async function restoreAggregates(options: {
  aggregates: readonly RegionSurge[];
  /** Per key group: the highest sequence its restored state holds. */
  lastSeqs: number[];
  client: ClickHouseClient;
  database: string;
}): Promise<AggregateRecoveryStats> {
  const started = performance.now();
  const { aggregates, lastSeqs, client } = options;
  const partitions = lastSeqs.length;
  const db = quoteIdentifier(options.database);
  const stats: AggregateRecoveryStats = { lastSeqs, rows: 0, cooldowns: 0, ms: 0 };
  const cut = lastSeqs
    .map((s, p) => (s > 0 ? `(partition = ${p} AND seq <= ${Math.floor(s)})` : ''))
    .filter(Boolean);
  const query = async <T>(aggregate: string, sql: string, params: Record<string, unknown>): Promise<T[]> => {
    try {
      const result = await client.query({ query: sql, format: 'JSONEachRow', query_params: params });
      return await result.json<T>();
    } catch (cause) {
      throw new AggregateRecoveryError(
        `could not rebuild aggregate ${aggregate} from ClickHouse: ${(cause as Error).message}`,
        aggregate,
        { cause },
      );
    }
  };

  // Highest event time per partition up to the cut: the watermarks the aggregates had there.
  // A plain max: duplicates do not change it, so no de-duplication (or FINAL) is needed.
  const maxTs = new Array<number>(partitions).fill(Number.NEGATIVE_INFINITY);
  if (cut.length > 0) {
    const rows = await query<{ partition: number | string; maxTs: number | string }>(
      aggregates[0]?.spec.id ?? '',
      `SELECT partition, toUnixTimestamp64Milli(max(ts)) AS maxTs FROM ${db}.events
       WHERE ${cut.join(' OR ')} GROUP BY partition`,
      {},
    );
    for (const r of rows) maxTs[Number(r.partition)] = Number(r.maxTs);
  }

  for (const a of aggregates) {
    const { id, type, by, latenessMs } = a.spec;
    const perPartition: CountedRow[][] = Array.from({ length: partitions }, () => []);
    // The lowest partition watermark at the cut: windows ending at or before it were evaluated.
    const lowest = Math.min(...maxTs.map((t) => t - latenessMs));
    const from = a.restoreFrom(lowest);
    if (cut.length > 0) {
      const col = quoteIdentifier(by);
      // `before` = highest event time of the partition's earlier events (any type), as the worker
      // reports it. Leaving out events older than `from` cannot change it for a row at or after
      // `from`: only a later event time makes a row late. An empty frame gives 0 (no event before).
      const rows = await query<{
        partition: number | string;
        ms: number | string;
        before: number | string;
        key: string;
      }>(
        id,
        `SELECT partition, ms, before, key FROM (
           SELECT partition, seq, type, ${col} AS key, toUnixTimestamp64Milli(ts) AS ms,
             max(toUnixTimestamp64Milli(ts)) OVER (PARTITION BY partition ORDER BY seq
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
           FROM (
             SELECT partition, seq, type, ${col}, ts FROM ${db}.events
             WHERE (${cut.join(' OR ')})${Number.isFinite(from) ? ' AND ts >= fromUnixTimestamp64Milli(toInt64({from:Int64}))' : ''}
             LIMIT 1 BY partition, seq
           )
         )
         WHERE type = {type:String}
         ORDER BY partition, seq`,
        Number.isFinite(from) ? { from, type } : { type },
      );
      for (const r of rows) {
        const before = Number(r.before);
        perPartition[Number(r.partition)]!.push({
          ts: Number(r.ms),
          type,
          before: before > 0 ? before : Number.NEGATIVE_INFINITY,
          [by]: r.key,
        });
      }
      stats.rows += rows.length;
    }
    // Latest firing per key among the windows the cut had evaluated (later ones are fired again).
    const lastFired = new Map<string, number>();
    if (Number.isFinite(lowest)) {
      const evaluated = Math.floor(lowest / a.spec.stepMs) * a.spec.stepMs;
      const prefix = `${by}:`;
      const fired = await query<{ customer: string; end: number | string }>(
        id,
        `SELECT customer, toUnixTimestamp64Milli(max(event_time)) AS end FROM ${db}.triggers
         WHERE rule = {rule:String} AND event_time <= fromUnixTimestamp64Milli(toInt64({evaluated:Int64}))
         GROUP BY customer`,
        { rule: id, evaluated },
      );
      for (const f of fired)
        if (f.customer.startsWith(prefix)) lastFired.set(f.customer.slice(prefix.length), Number(f.end));
    }
    stats.cooldowns += lastFired.size;
    a.restore({ maxTs, rows: perPartition, lastFired });
  }
  stats.ms = performance.now() - started;
  return stats;
}
