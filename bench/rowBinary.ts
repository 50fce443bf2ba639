/**
 * `cxstream.events` rows in ClickHouse's RowBinary input format, for bench/rows.ts: each column's
 * value back to back in the order of EVENT_COLUMNS (sinks/clickhouseRows.ts), no names, no
 * separators (bench/rows.ts inserts them naming EVENT_COLUMNS and fails if the rows read back differ
 * from the JSON ones, which catches a column out of order). Wire types of the table's columns (sinks/clickhouse.ts):
 *
 * - UInt8 / UInt32 / UInt64: little-endian, 1 / 4 / 8 bytes (`seq` < 2^53, as a JS number)
 * - DateTime64(3, 'UTC'): Int64 little-endian, epoch milliseconds
 * - String and LowCardinality(String): LEB128 byte length, then the UTF-8 bytes
 * - Nullable(T): one byte, 1 = NULL (nothing follows), 0 = a T follows
 * - Float64: IEEE 754 little-endian; Bool: one byte 0/1
 */

import type { EventRow } from '../operators/types.js';

const utf8 = new TextEncoder();
const TWO_32 = 2 ** 32;
/** Strings up to this many UTF-16 units take at most 126 UTF-8 bytes: a one-byte length. */
const SHORT = 42;

/** Encodes `cxstream.events` rows as RowBinary (all columns, EVENT_COLUMNS order) into a buffer of their own. */
export function encodeEventRowBinary(rows: readonly EventRow[]): Uint8Array {
  const w = new RowBinaryWriter(rows.length * 192);
  for (const r of rows) {
    w.fixed(4 + 8 + 8);
    w.uint32(r.partition);
    w.uint64(r.seq);
    w.string(r.id);
    w.int64(r.ts);
    w.string(r.customer);
    w.string(r.type);
    w.string(r.channel);
    w.string(r.from);
    w.string(r.region);
    w.string(r.tz);
    w.string(r.session);
    w.string(r.agent);
    w.string(r.variant);
    w.string(r.source);
    w.nullableFloat64(r.amount);
    w.string(r.sku);
    w.string(r.category);
    w.string(r.intent);
    w.nullableFloat64(r.sentiment);
    w.fixed(2);
    if (r.recognized === null) w.uint8(1);
    else {
      w.uint8(0);
      w.uint8(r.recognized ? 1 : 0);
    }
    w.string(r.status);
    w.nullableFloat64(r.score);
    w.string(r.text);
    w.fixed(1);
    w.uint8(r.local_hour);
    w.string(r.ticket_id);
  }
  return w.bytes();
}

/** A growing little-endian byte buffer; `fixed(n)` makes room for the next n bytes of numbers. */
class RowBinaryWriter {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;

  constructor(expectedBytes: number) {
    this.#buf = new Uint8Array(Math.max(1024, expectedBytes));
    this.#view = new DataView(this.#buf.buffer);
  }

  fixed(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#pos + n));
    grown.set(this.#buf.subarray(0, this.#pos));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  uint8(v: number): void {
    this.#buf[this.#pos++] = v;
  }

  uint32(v: number): void {
    this.#view.setUint32(this.#pos, v, true);
    this.#pos += 4;
  }

  uint64(v: number): void {
    this.#view.setUint32(this.#pos, v % TWO_32, true);
    this.#view.setUint32(this.#pos + 4, Math.floor(v / TWO_32), true);
    this.#pos += 8;
  }

  int64(v: number): void {
    const hi = Math.floor(v / TWO_32);
    this.#view.setUint32(this.#pos, v - hi * TWO_32, true);
    this.#view.setInt32(this.#pos + 4, hi, true);
    this.#pos += 8;
  }

  nullableFloat64(v: number | null): void {
    this.fixed(9);
    if (v === null) {
      this.#buf[this.#pos++] = 1;
      return;
    }
    this.#buf[this.#pos++] = 0;
    this.#view.setFloat64(this.#pos, v, true);
    this.#pos += 8;
  }

  string(s: string): void {
    const n = s.length;
    if (n <= SHORT) {
      // Length byte, then ASCII copied by hand (a call to encodeInto costs more for short strings).
      this.fixed(1 + n * 3);
      const buf = this.#buf;
      const start = this.#pos + 1;
      let p = start;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          p = start + utf8.encodeInto(s, buf.subarray(start)).written;
          break;
        }
        buf[p++] = c;
      }
      buf[this.#pos] = p - start;
      this.#pos = p;
      return;
    }
    const length = Buffer.byteLength(s, 'utf8');
    this.fixed(5 + length);
    let v = length;
    while (v >= 0x80) {
      this.#buf[this.#pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.#buf[this.#pos++] = v;
    this.#pos += utf8.encodeInto(s, this.#buf.subarray(this.#pos)).written;
  }

  /** The rows so far; a view on a buffer of their own (a worker could transfer it). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }
}
