/**
 * A forgotten customer's rows in ClickHouse (`cxstream forget`, docs/PRIVACY.md "Forgetting a
 * customer"): deleted from `events`, `triggers` and `profiles`, and the request recorded in the
 * audit table `forget_audit` without personal data (the key's hash, the time, counts per store).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { AUDIT_TABLE, IDENTITIES_TABLE, LOCAL_SUFFIX, quoteIdentifier, TABLE_NAMES } from './clickhouse.js';

/** Rows removed per table. */
export type RowsRemoved = Record<(typeof TABLE_NAMES)[number] | typeof IDENTITIES_TABLE, number>;

/**
 * Deletes the customer's rows of every table and returns how many each held (duplicates that a
 * merge would collapse count too). `ALTER TABLE … DELETE` with `mutations_sync = 2`, not a
 * lightweight `DELETE FROM`: a lightweight delete only masks the rows until a merge rewrites the
 * part, a mutation rewrites the parts that hold them before it returns. The old parts are removed
 * by ClickHouse after `old_parts_lifetime` (8 minutes by default). On a cluster the mutation runs
 * on the local tables of every server (`ON CLUSTER`); a Distributed table takes no mutation.
 *
 * Rows are picked by the SHA-256 of their `customer` (`hash`, operators/tombstones.ts), not by the
 * key: ClickHouse keeps the text of every mutation (`system.mutations`) and query
 * (`system.query_log`), which must not hold the key being forgotten. It costs a scan of the
 * `customer` column instead of a primary-key lookup: a forget is rare.
 */
export async function deleteCustomerRows(
  client: ClickHouseClient,
  database: string,
  hash: string,
  cluster = '',
): Promise<RowsRemoved> {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`not a SHA-256 in hex: ${hash}`);
  const db = quoteIdentifier(database);
  const byCustomer = `lower(hex(SHA256(customer))) = '${hash}'`;
  const removed = { events: 0, triggers: 0, profiles: 0, identities: 0 } satisfies RowsRemoved;
  for (const table of [...TABLE_NAMES, IDENTITIES_TABLE] as const) {
    // an identities row names the customer and one of its aliases
    const where =
      table === IDENTITIES_TABLE ? `${byCustomer} OR lower(hex(SHA256(alias))) = '${hash}'` : byCustomer;
    const count = await client.query({
      query: `SELECT count() AS n FROM ${db}.${table} WHERE ${where}`,
      format: 'JSONEachRow',
    });
    const rows = await count.json<{ n: string | number }>();
    removed[table] = Number(rows[0]?.n ?? 0);
    if (removed[table] === 0) continue;
    // on a cluster the mutation goes to the tables that hold the rows: the local ones under the
    // Distributed tables, and the identities table itself (replicated, not sharded)
    const target =
      cluster === ''
        ? `${db}.${table}`
        : `${db}.${table}${table === IDENTITIES_TABLE ? '' : LOCAL_SUFFIX} ON CLUSTER ${quoteIdentifier(cluster, 'ClickHouse cluster')}`;
    await client.command({
      query: `ALTER TABLE ${target} DELETE WHERE ${where} SETTINGS mutations_sync = 2`,
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

/** One row of the `identities` table. */
export interface IdentityRow {
  customer: string;
  alias: string;
  seq: number;
  /** Event time of the merging event (ms). */
  merged_at: number;
}

/** Inserts rows of the `identities` table (identity stitching, docs/IDENTITY.md). */
export async function insertIdentities(
  client: ClickHouseClient,
  database: string,
  rows: readonly IdentityRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: `${quoteIdentifier(database)}.${IDENTITIES_TABLE}`,
    values: rows as IdentityRow[],
    format: 'JSONEachRow',
  });
}
