/**
 * Rows of the `cxstream` tables as ClickHouse input text. Kept apart from the writer (which loads
 * `@clickhouse/client` and chDB) so partition workers can encode their rows without loading either:
 * the main thread then moves one string per batch instead of encoding row objects itself.
 */
import type { EventRow, ProfileRow } from '../operators/types.js';

/** Input formats the writer sends; servers older than 20.x only read JSONEachRow. */
export type RowFormat = 'JSONCompactEachRow' | 'JSONEachRow';

/** Rows already encoded in one {@link RowFormat}, one per line, each line ending in `\n`. */
export interface EncodedRows {
  /** Number of rows (lines) in `text`; named `length` so counters treat it like a row array. */
  length: number;
  format: RowFormat;
  text: string;
}

/** Columns of `cxstream.events` written, in the order of the CREATE TABLE statement in clickhouse.ts. */
export const EVENT_COLUMNS = [
  'partition',
  'seq',
  'id',
  'ts',
  'customer',
  'type',
  'channel',
  'from',
  'region',
  'tz',
  'session',
  'agent',
  'variant',
  'source',
  'amount',
  'sku',
  'category',
  'intent',
  'sentiment',
  'recognized',
  'status',
  'score',
  'text',
] as const satisfies ReadonlyArray<keyof EventRow>;

/** Columns of `cxstream.triggers`. */
export const TRIGGER_COLUMNS = [
  'id',
  'rule',
  'customer',
  'fired_at',
  'event_time',
  'priority',
  'reason',
  'subject',
  'payload',
  'profile',
] as const;

/** Columns of `cxstream.profiles`. */
export const PROFILE_COLUMNS = [
  'customer',
  'updated_at',
  'tier',
  'rfm_score',
  'spend',
  'orders',
  'tags',
  'profile',
] as const satisfies ReadonlyArray<keyof ProfileRow>;

/**
 * Encodes rows as `format` text: JSONCompactEachRow writes the `columns` values in order (missing
 * ones as null, which ClickHouse reads as the column default); JSONEachRow writes each row object.
 */
export function encodeRows(
  rows: ReadonlyArray<object>,
  columns: readonly string[],
  format: RowFormat,
): EncodedRows {
  // One string built by appending: V8 keeps it as a rope and flattens once, cheaper than join().
  let text = '';
  if (format === 'JSONCompactEachRow') {
    const values = new Array<unknown>(columns.length);
    for (const row of rows) {
      const r = row as Record<string, unknown>;
      for (let c = 0; c < columns.length; c++) values[c] = r[columns[c]!] ?? null;
      text += `${JSON.stringify(values)}\n`;
    }
  } else {
    for (const row of rows) text += `${JSON.stringify(row)}\n`;
  }
  return { length: rows.length, format, text };
}

/**
 * {@link encodeRows} for `cxstream.events` rows, the same text: in JSONCompactEachRow the row is an
 * array literal of named fields (monomorphic loads) instead of a lookup per column name, which
 * made encoding the worker's largest single cost after the processor itself.
 */
export function encodeEventRows(rows: readonly EventRow[], format: RowFormat): EncodedRows {
  if (format !== 'JSONCompactEachRow') return encodeRows(rows, EVENT_COLUMNS, format);
  let text = '';
  // Same order as EVENT_COLUMNS; JSON.stringify writes undefined array items as null, like encodeRows.
  for (const r of rows) {
    text += `${JSON.stringify([
      r.partition,
      r.seq,
      r.id,
      r.ts,
      r.customer,
      r.type,
      r.channel,
      r.from,
      r.region,
      r.tz,
      r.session,
      r.agent,
      r.variant,
      r.source,
      r.amount,
      r.sku,
      r.category,
      r.intent,
      r.sentiment,
      r.recognized,
      r.status,
      r.score,
      r.text,
    ])}\n`;
  }
  return { length: rows.length, format, text };
}
