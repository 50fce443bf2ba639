/**
 * A forgotten customer's rows in ClickHouse (`cxstream forget`, docs/PRIVACY.md "Forgetting a
 * customer"): deleted from `events`, `triggers` and `profiles`, and the request recorded in the
 * audit table `forget_audit` without personal data (the key's hash, the time, counts per store).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { AUDIT_TABLE, LOCAL_SUFFIX, quoteIdentifier, TABLE_NAMES } from './clickhouse.js';

/** Rows removed per table. */
export type RowsRemoved = Record<(typeof TABLE_NAMES)[number], number>;

/** A string as a ClickHouse SQL literal (backslash and quote escaped). */
function literal(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * Deletes the customer's rows of every table and returns how many each held (duplicates that a
 * merge would collapse count too). `ALTER TABLE … DELETE` with `mutations_sync = 2`, not a
 * lightweight `DELETE FROM`: a lightweight delete only masks the rows until a merge rewrites the
 * part, a mutation rewrites the parts that hold them before it returns. The old parts are removed
 * by ClickHouse after `old_parts_lifetime` (8 minutes by default). On a cluster the mutation runs
 * on the local tables of every server (`ON CLUSTER`); a Distributed table takes no mutation.
 */
export async function deleteCustomerRows(
  client: ClickHouseClient,
  database: string,
  customer: string,
  cluster = '',
): Promise<RowsRemoved> {
  const db = quoteIdentifier(database);
  const removed = { events: 0, triggers: 0, profiles: 0 } satisfies RowsRemoved;
  for (const table of TABLE_NAMES) {
    const count = await client.query({
      query: `SELECT count() AS n FROM ${db}.${table} WHERE customer = {customer:String}`,
      query_params: { customer },
      format: 'JSONEachRow',
    });
    const rows = await count.json<{ n: string | number }>();
    removed[table] = Number(rows[0]?.n ?? 0);
    if (removed[table] === 0) continue;
    const target =
      cluster === ''
        ? `${db}.${table}`
        : `${db}.${table}${LOCAL_SUFFIX} ON CLUSTER ${quoteIdentifier(cluster, 'ClickHouse cluster')}`;
    await client.command({
      query: `ALTER TABLE ${target} DELETE WHERE customer = ${literal(customer)} SETTINGS mutations_sync = 2`,
    });
  }
  return removed;
}

/** Records a forget request: the key's hash, when, and what was removed where. */
export async function recordForget(
  client: ClickHouseClient,
  database: string,
  row: { customerHash: string; at: number; removed: Record<string, number> },
): Promise<void> {
  await client.insert({
    table: `${quoteIdentifier(database)}.${AUDIT_TABLE}`,
    values: [{ customer_hash: row.customerHash, at: row.at, removed: row.removed }],
    format: 'JSONEachRow',
  });
}
