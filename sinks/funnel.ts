/**
 * The consult → add to cart → order funnel, read from the `funnel` view, and its text table.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { DEFAULT_DATABASE, quoteIdentifier } from './clickhouse.js';

/** What to split the funnel by, and the time range. */
export interface FunnelOptions {
  /**
   * Split by the channel or script variant of each customer's first contact event in the range, or
   * by their first traffic source in the range; without it one row `all`.
   */
  by?: 'channel' | 'variant' | 'source';
  /** First day (UTC, inclusive), `YYYY-MM-DD`. */
  from?: string;
  /** Last day (UTC, inclusive), `YYYY-MM-DD`. */
  to?: string;
  /** @default 'cxstream' */
  database?: string;
}

/** Customers who reached each step, for one key. */
export interface FunnelRow {
  key: string;
  consulted: number;
  addedToCart: number;
  ordered: number;
}

const DIMENSIONS = ['channel', 'variant', 'source'] as const;

/** First and last day the `funnel` view is asked for when a bound is not given (Date's range). */
const ALL_TIME = { from: '1970-01-01', to: '2149-06-05' } as const;

/**
 * Counts customers per step from the `funnel` view (sinks/views.ts): a contact event
 * (`session_start`, `call`, or a `message` from the customer), then `add_to_cart`, then `order`,
 * each after the previous and within 7 days of the contact (ClickHouse `windowFunnel`). The view
 * reads `events FINAL`, so rows inserted twice count once.
 */
export async function queryFunnel(
  client: ClickHouseClient,
  options: FunnelOptions = {},
): Promise<FunnelRow[]> {
  const db = quoteIdentifier(options.database ?? DEFAULT_DATABASE);
  const by = options.by;
  if (by !== undefined && !DIMENSIONS.includes(by)) {
    throw new RangeError(`funnel by must be one of ${DIMENSIONS.join(', ')} (got "${by}")`);
  }
  const query = `
    SELECT key, consulted, added_to_cart AS addedToCart, ordered
    FROM ${db}.funnel(from_date = {from:Date}, to_date = {to:Date})
    WHERE dimension = {dimension:String}
    ORDER BY consulted DESC, key ASC`;
  const result = await client.query({
    query,
    format: 'JSONEachRow',
    query_params: {
      from: options.from === undefined ? ALL_TIME.from : checkDate('funnel from', options.from),
      to: options.to === undefined ? ALL_TIME.to : checkDate('funnel to', options.to),
      dimension: by ?? 'all',
    },
  });
  const rows = await result.json<{ key: string; consulted: string; addedToCart: string; ordered: string }>();
  return rows.map((r) => ({
    key: r.key,
    consulted: Number(r.consulted),
    addedToCart: Number(r.addedToCart),
    ordered: Number(r.ordered),
  }));
}

/**
 * The funnel as an aligned text table: key, consulted, added to cart, ordered, cart rate and
 * order rate (both as % of consulted), with a total line when there is more than one key.
 */
export function formatFunnel(rows: FunnelRow[], by?: string): string {
  const header = [by ?? 'key', 'consulted', 'added to cart', 'ordered', 'cart rate', 'order rate'];
  const body = rows.map(cells);
  if (rows.length > 1) {
    // Each customer is attributed to exactly one key, so the keys add up to the total.
    const total = rows.reduce(
      (t, r) => ({
        key: 'total',
        consulted: t.consulted + r.consulted,
        addedToCart: t.addedToCart + r.addedToCart,
        ordered: t.ordered + r.ordered,
      }),
      { key: 'total', consulted: 0, addedToCart: 0, ordered: 0 },
    );
    body.push(cells(total));
  }
  const table = [header, ...body];
  const widths = header.map((_, c) => Math.max(...table.map((row) => displayWidth(row[c]!))));
  const line = (row: string[]): string =>
    row
      .map((cell, c) => {
        const pad = ' '.repeat(widths[c]! - displayWidth(cell));
        return c === 0 ? cell + pad : pad + cell;
      })
      .join('  ')
      .trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const [i, row] of body.entries()) {
    if (rows.length > 1 && i === body.length - 1) out.push(widths.map((w) => '-'.repeat(w)).join('  '));
    out.push(line(row));
  }
  if (rows.length === 0) out.push('(no customer with a contact event in this range)');
  return `${out.join('\n')}\n`;
}

function cells(r: FunnelRow): string[] {
  return [
    r.key,
    String(r.consulted),
    String(r.addedToCart),
    String(r.ordered),
    percent(r.addedToCart, r.consulted),
    percent(r.ordered, r.consulted),
  ];
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** Terminal columns a string takes: CJK and full-width characters take two. */
function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const wide =
      (cp >= 0x1100 && cp <= 0x115f) ||
      (cp >= 0x2e80 && cp <= 0xa4cf) ||
      (cp >= 0xac00 && cp <= 0xd7a3) ||
      (cp >= 0xf900 && cp <= 0xfaff) ||
      (cp >= 0xfe30 && cp <= 0xfe4f) ||
      (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6) ||
      (cp >= 0x20000 && cp <= 0x3fffd);
    w += wide ? 2 : 1;
  }
  return w;
}

/** `value` if it is a real calendar day written YYYY-MM-DD; else a RangeError naming `what`. */
export function checkDate(what: string, value: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = m ? new Date(`${value}T00:00:00Z`) : null;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== value) {
    throw new RangeError(`${what} must be a date like 2024-01-31 (got "${value}")`);
  }
  return value;
}
