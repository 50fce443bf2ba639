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
  /** Number of rows (lines) in `bytes`; named `length` so counters treat it like a row array. */
  length: number;
  format: RowFormat;
  /**
   * The rows as UTF-8 input text, in a buffer of their own: a worker transfers it to the main thread
   * instead of cloning a string (a long two-byte string cost the two threads ~10 µs per event).
   */
  bytes: Uint8Array;
}

const utf8 = new TextEncoder();

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
  'local_hour',
  'ticket_id',
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
  const lines = new Utf8Lines(rows.length);
  if (format === 'JSONCompactEachRow') {
    const values = new Array<unknown>(columns.length);
    for (const row of rows) {
      const r = row as Record<string, unknown>;
      for (let c = 0; c < columns.length; c++) values[c] = r[columns[c]!] ?? null;
      lines.push(JSON.stringify(values));
    }
  } else {
    for (const row of rows) lines.push(JSON.stringify(row));
  }
  return { length: rows.length, format, bytes: lines.bytes() };
}

/**
 * {@link encodeRows} for `cxstream.events` rows, the same text: in JSONCompactEachRow the row is an
 * array literal of named fields (monomorphic loads) instead of a lookup per column name, which
 * made encoding the worker's largest single cost after the processor itself.
 */
export function encodeEventRows(rows: readonly EventRow[], format: RowFormat): EncodedRows {
  if (format !== 'JSONCompactEachRow') return encodeRows(rows, EVENT_COLUMNS, format);
  const lines = new Utf8Lines(rows.length);
  // Same order as EVENT_COLUMNS; JSON.stringify writes undefined array items as null, like encodeRows.
  for (const r of rows) {
    lines.push(
      JSON.stringify([
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
        r.local_hour,
        r.ticket_id,
      ]),
    );
  }
  return { length: rows.length, format, bytes: lines.bytes() };
}

/**
 * Lines appended as UTF-8 to a growing buffer: encoding each line into place costs about a third of
 * building one long string and encoding it at the end (measured on profile rows, ~4 vs ~12 µs/row).
 */
class Utf8Lines {
  #buf: Uint8Array;
  #end = 0;

  constructor(expectedLines: number) {
    this.#buf = new Uint8Array(Math.max(1024, expectedLines * 256));
  }

  push(line: string): void {
    // A UTF-16 code unit takes at most 3 UTF-8 bytes; plus the newline.
    const room = line.length * 3 + 1;
    if (this.#end + room > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#end + room));
      grown.set(this.#buf.subarray(0, this.#end));
      this.#buf = grown;
    }
    this.#end += utf8.encodeInto(line, this.#buf.subarray(this.#end)).written;
    this.#buf[this.#end++] = 0x0a;
  }

  /** The lines so far; a view on a buffer of their own (a worker transfers it). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#end);
  }
}
