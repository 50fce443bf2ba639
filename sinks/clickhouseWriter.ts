/**
 * Batched, retrying inserts into `cxstream.events`, `triggers` and `profiles`.
 *
 * Per table: rows queue in arrival order; one insert is in flight at a time; a batch leaves when it
 * reaches `maxBatchRows`, when its oldest row has waited `flushIntervalMs`, on `flush()`, or when
 * writers are blocked on the memory bound. A failed insert is retried with capped exponential
 * back-off until it succeeds, so rows are never dropped; a retry may insert rows a lost response
 * had already stored, which the ReplacingMergeTree tables collapse (readers use FINAL).
 */

import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import type { EventRow, ProfileRow, Trigger } from '../operators/types.js';
import { DEFAULT_DATABASE, quoteIdentifier, type RawInsert } from './clickhouse.js';
import {
  type EncodedRows,
  EVENT_COLUMNS,
  PROFILE_COLUMNS,
  type RowFormat,
  TRIGGER_COLUMNS,
} from './clickhouseRows.js';
import { retrying } from './retry.js';

/** Options of {@link ClickHouseWriter}. */
export interface ClickHouseWriterOptions {
  /** Database holding the tables. @default 'cxstream' */
  database?: string;
  /** Longest time a queued row waits before its batch is inserted. @default 1000 */
  flushIntervalMs?: number;
  /** Most rows in one insert. @default 50_000 */
  maxBatchRows?: number;
  /** Rows queued or in flight (all tables) beyond which `write*` calls wait. @default 500_000 */
  maxBufferedRows?: number;
  /**
   * Insert format. JSONCompactEachRow (one JSON array per row, columns named once per insert) took
   * ~0.7 of JSONEachRow's time in chDB (docs/CLICKHOUSE.md); servers older than 20.x only read
   * JSONEachRow. @default 'JSONCompactEachRow'
   */
  format?: 'JSONCompactEachRow' | 'JSONEachRow';
  /** Back-off between attempts of a failed insert: doubles from `initialMs` up to `maxMs`. @default { initialMs: 200, maxMs: 10_000 } */
  retry?: { initialMs: number; maxMs: number };
  /**
   * Inserts the rows workers encoded without the client (chDB's zero-copy insert: `rawInsertOf` in
   * sinks/clickhouse.ts). @default the client's `exec` with the rows as the body
   */
  rawInsert?: RawInsert;
  /**
   * The tables are Distributed (a `clickhouse.cluster` schema): each insert waits until every shard
   * has stored its rows (`insert_distributed_sync=1`) instead of returning once the receiving server
   * has queued them on its disk for a background send, so an insert that succeeded is on the
   * shards before the events are acked. @default false
   */
  distributed?: boolean;
  /** Told about every failed attempt (for logs and metrics); the writer retries regardless. */
  onError?: (error: Error, info: { table: string; rows: number; attempt: number; retryInMs: number }) => void;
}

/** What the writer has done so far. */
export interface ClickHouseWriterStats {
  /** Rows queued or in flight, not yet inserted: at most `maxBufferedRows` plus one write call's rows. */
  bufferedRows: number;
  /** Rows of `write*` calls waiting for room (back-pressure engaged when > 0). */
  blockedRows: number;
  /** Rows inserted (a retried batch counts once). */
  insertedRows: number;
  /** Insert attempts that failed (each was retried). */
  failedAttempts: number;
  /** Message of the latest failed attempt; null again after the next successful insert. */
  lastError: string | null;
}

interface ResolvedOptions {
  database: string;
  flushIntervalMs: number;
  maxBatchRows: number;
  maxBufferedRows: number;
  format: RowFormat;
  retry: { initialMs: number; maxMs: number };
  rawInsert: RawInsert | undefined;
  /** Settings of every insert (insert_distributed_sync on a cluster). */
  insertSettings: Record<string, number>;
  onError: ClickHouseWriterOptions['onError'];
}

type Row = Record<string, unknown>;
/** What a write call queues: row objects (encoded at insert time) or rows a worker already encoded. */
type Chunk = Row[] | EncodedRows;
/** What one insert sends: row objects, or encoded rows (UTF-8 text) to send back to back. */
type Batch =
  | { rows: Row[]; encoded: null; length: number }
  | { rows: null; encoded: Uint8Array[]; length: number };

interface InsertWaiter {
  /** Resolved once `inserted` reaches this count. */
  upTo: number;
  resolve: () => void;
}

/** One table's queue; counts are cumulative so a waiter needs only the position of its last row. */
interface TableQueue {
  /** `db`.`table`, quoted for SQL. */
  table: string;
  /** db.table as plain identifiers (the raw insert quotes nothing). */
  name: string;
  columns: [string, ...string[]];
  /** Chunks as they were written; a first row array may be partly taken (`headOffset`). */
  chunks: Chunk[];
  headOffset: number;
  pendingRows: number;
  inFlightRows: number;
  enqueued: number;
  inserted: number;
  /** Queued rows up to this position must leave now (set by `flush()`). */
  flushUpTo: number;
  waiters: InsertWaiter[];
  timer: NodeJS.Timeout | null;
  /** The oldest queued row has waited `flushIntervalMs`. */
  due: boolean;
  pumping: boolean;
}

/** A writer waiting for room under `maxBufferedRows`. */
interface SpaceWaiter {
  queue: TableQueue;
  rows: Chunk;
  /** Resolves when the rows have been queued. */
  admitted: Promise<void>;
  /** Queues nothing itself: hands the writer the promise of its rows' insert. */
  admit: (inserted: Promise<void>) => void;
}

/** Batched ClickHouse inserts with back-off retries and a memory bound (back-pressure). */
export class ClickHouseWriter {
  readonly #client: ClickHouseClient;
  readonly #options: ResolvedOptions;
  readonly #events: TableQueue;
  readonly #triggers: TableQueue;
  readonly #profiles: TableQueue;
  readonly #queues: TableQueue[];
  readonly #spaceWaiters: SpaceWaiter[] = [];
  #failedAttempts = 0;
  #lastError: string | null = null;
  #closed = false;

  constructor(client: ClickHouseClient, options: ClickHouseWriterOptions = {}) {
    this.#client = client;
    this.#options = resolveOptions(options);
    const db = this.#options.database;
    this.#events = newQueue(db, 'events', EVENT_COLUMNS);
    this.#triggers = newQueue(db, 'triggers', TRIGGER_COLUMNS);
    this.#profiles = newQueue(db, 'profiles', PROFILE_COLUMNS);
    this.#queues = [this.#events, this.#triggers, this.#profiles];
  }

  /** Queues event rows; resolves once they are inserted. Waits first while the buffer is full. */
  writeEvents(rows: EventRow[]): Promise<void> {
    // Copied: the caller may reuse its array once the call returns.
    return this.#write(this.#events, rows.slice() as unknown as Row[]);
  }

  /**
   * Queues event rows a worker already encoded (in this writer's {@link format}); resolves once
   * they are inserted. Waits first while the buffer is full.
   */
  writeEncodedEvents(rows: EncodedRows): Promise<void> {
    return this.#writeEncoded(this.#events, rows);
  }

  /** Queues profile rows a worker already encoded (in this writer's {@link format}); resolves once inserted. */
  writeEncodedProfiles(rows: EncodedRows): Promise<void> {
    return this.#writeEncoded(this.#profiles, rows);
  }

  #writeEncoded(queue: TableQueue, rows: EncodedRows): Promise<void> {
    if (rows.format !== this.#options.format) {
      return Promise.reject(
        new TypeError(`rows are encoded as ${rows.format}, the writer inserts ${this.#options.format}`),
      );
    }
    return this.#write(queue, rows);
  }

  /** The input format of every insert, which pre-encoded rows must match. */
  get format(): RowFormat {
    return this.#options.format;
  }

  /** Queues triggers (as `triggers` rows); resolves once they are inserted. */
  writeTriggers(rows: Trigger[]): Promise<void> {
    return this.#write(this.#triggers, rows.map(triggerRow));
  }

  /** Queues profile snapshots; resolves once they are inserted. */
  writeProfiles(rows: ProfileRow[]): Promise<void> {
    return this.#write(this.#profiles, rows.slice() as unknown as Row[]);
  }

  /** Inserts everything queued so far now, including rows of writers waiting for room; resolves once inserted. */
  async flush(): Promise<void> {
    const blocked = this.#spaceWaiters.map((w) => w.admitted);
    await this.#flushQueued();
    if (blocked.length > 0) {
      await Promise.all(blocked);
      await this.#flushQueued();
    }
  }

  /** Stops taking rows, flushes, then stops the timers. Does not close the client. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    for (const q of this.#queues) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = null;
    }
  }

  /** Counters for metrics and health checks. */
  stats(): ClickHouseWriterStats {
    return {
      bufferedRows: this.#bufferedRows(),
      blockedRows: this.#spaceWaiters.reduce((n, w) => n + w.rows.length, 0),
      insertedRows: this.#queues.reduce((n, q) => n + q.inserted, 0),
      failedAttempts: this.#failedAttempts,
      lastError: this.#lastError,
    };
  }

  #write(queue: TableQueue, rows: Chunk): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('ClickHouseWriter is closed'));
    if (rows.length === 0) return Promise.resolve();
    if (this.#spaceWaiters.length === 0 && this.#bufferedRows() < this.#options.maxBufferedRows) {
      return this.#enqueue(queue, rows);
    }
    // Full: wait in line. Whoever frees the space queues the waiter's rows synchronously, so two
    // released writers never both count the same free space.
    let admit!: (inserted: Promise<void>) => void;
    const inserted = new Promise<void>((resolve) => {
      admit = resolve;
    });
    let markAdmitted!: () => void;
    const admitted = new Promise<void>((resolve) => {
      markAdmitted = resolve;
    });
    this.#spaceWaiters.push({
      queue,
      rows,
      admitted,
      admit: (p) => {
        markAdmitted();
        admit(p);
      },
    });
    for (const q of this.#queues) this.#pump(q);
    return inserted;
  }

  async #flushQueued(): Promise<void> {
    const done: Promise<void>[] = [];
    for (const q of this.#queues) {
      q.flushUpTo = q.enqueued;
      done.push(this.#whenInserted(q, q.enqueued));
      this.#pump(q);
    }
    await Promise.all(done);
  }

  #enqueue(q: TableQueue, rows: Chunk): Promise<void> {
    q.chunks.push(rows);
    q.pendingRows += rows.length;
    q.enqueued += rows.length;
    const inserted = this.#whenInserted(q, q.enqueued);
    // The timer runs even when a batch leaves now: rows beyond maxBatchRows wait at most the interval.
    this.#startTimer(q);
    this.#pump(q);
    return inserted;
  }

  #whenInserted(q: TableQueue, upTo: number): Promise<void> {
    if (q.inserted >= upTo) return Promise.resolve();
    return new Promise<void>((resolve) => q.waiters.push({ upTo, resolve }));
  }

  #startTimer(q: TableQueue): void {
    if (q.timer || q.due || q.pendingRows === 0) return;
    q.timer = setTimeout(() => {
      q.timer = null;
      q.due = true;
      this.#pump(q);
    }, this.#options.flushIntervalMs);
  }

  #mustSend(q: TableQueue): boolean {
    if (q.pendingRows === 0) return false;
    return (
      q.due ||
      q.pendingRows >= this.#options.maxBatchRows ||
      q.flushUpTo > q.inserted + q.inFlightRows ||
      this.#spaceWaiters.length > 0 ||
      this.#bufferedRows() >= this.#options.maxBufferedRows
    );
  }

  /** Runs the table's insert loop unless it is already running (one insert in flight per table). */
  #pump(q: TableQueue): void {
    if (q.pumping || !this.#mustSend(q)) return;
    q.pumping = true;
    void this.#drain(q).finally(() => {
      q.pumping = false;
      // Rows that arrived during the last insert and are not due yet wait for their own timer.
      if (this.#mustSend(q)) this.#pump(q);
      else this.#startTimer(q);
    });
  }

  async #drain(q: TableQueue): Promise<void> {
    while (this.#mustSend(q)) {
      const batch = takeBatch(q, this.#options.maxBatchRows);
      q.inFlightRows = batch.length;
      if (q.pendingRows === 0) {
        q.due = false;
        if (q.timer) clearTimeout(q.timer);
        q.timer = null;
      }
      await this.#insertWithRetry(q, batch);
      q.inFlightRows = 0;
      q.inserted += batch.length;
      while (q.waiters.length > 0 && q.waiters[0]!.upTo <= q.inserted) q.waiters.shift()!.resolve();
      this.#admitWaiters();
    }
  }

  async #insertWithRetry(q: TableQueue, batch: Batch): Promise<void> {
    const { initialMs, maxMs } = this.#options.retry;
    const table = q.table;
    const compact = this.#options.format === 'JSONCompactEachRow';
    const rows = batch.rows ?? [];
    // Missing fields become null, which ClickHouse reads as the column default.
    // (Typed as objects for the client's signature; JSONCompactEachRow takes arrays.)
    const values = compact ? (rows.map((r) => q.columns.map((c) => r[c] ?? null)) as unknown as Row[]) : rows;
    // Rows are never dropped: retried until ClickHouse takes them (back-pressure holds the writers).
    const delaysMs: number[] = [];
    for (let d = initialMs; d < maxMs; d *= 2) delaysMs.push(d);
    delaysMs.push(maxMs);
    await retrying(
      `insert into ${table}`,
      async () => {
        if (batch.encoded) await this.#insertEncoded(q, batch.encoded);
        else
          await this.#client.insert({
            table,
            values,
            format: this.#options.format,
            ...(compact
              ? { columns: q.columns, clickhouse_settings: { ...this.#options.insertSettings } }
              : // Rows may carry fields the table does not have: dropping unknown keys beats failing
                // the batch forever.
                {
                  clickhouse_settings: {
                    ...this.#options.insertSettings,
                    input_format_skip_unknown_fields: 1,
                  },
                }),
          });
        this.#lastError = null;
      },
      {
        delaysMs,
        onRetry: (e, attempt, retryInMs) => {
          const error = e instanceof Error ? e : new Error(String(e));
          this.#failedAttempts++;
          this.#lastError = `${table}: ${error.message}`;
          try {
            this.#options.onError?.(error, { table, rows: batch.length, attempt, retryInMs });
          } catch {
            // A failing log callback must not stop the retries.
          }
        },
      },
    );
  }

  /**
   * Sends rows workers encoded as they are: the main thread moves text instead of encoding row
   * objects (which was a third of its time at 9k events/s). `exec` takes a raw body, `insert` would
   * encode each chunk again as a JSON value.
   */
  async #insertEncoded(q: TableQueue, encoded: Uint8Array[]): Promise<void> {
    const { rawInsert, format } = this.#options;
    if (rawInsert) {
      const values = encoded.length === 1 ? encoded[0]! : Buffer.concat(encoded);
      await rawInsert({ table: q.name, columns: q.columns, format, values });
      return;
    }
    const columns = q.columns.map((c) => quoteIdentifier(c)).join(', ');
    const result = await this.#client.exec({
      query: `INSERT INTO ${q.table} (${columns}) FORMAT ${this.#options.format}`,
      values: Readable.from(encoded, { objectMode: false }),
      clickhouse_settings: { ...this.#options.insertSettings },
    });
    // An unread response holds its socket: the connection goes back to the pool only once read.
    for await (const _ of result.stream) {
      // drained
    }
  }

  /** Lets blocked writers in, oldest first, while there is room. */
  #admitWaiters(): void {
    while (this.#spaceWaiters.length > 0 && this.#bufferedRows() < this.#options.maxBufferedRows) {
      const w = this.#spaceWaiters.shift()!;
      // These rows have already waited for room: they go with the next batch, not after a timer.
      w.queue.due = true;
      w.admit(this.#enqueue(w.queue, w.rows));
    }
  }

  #bufferedRows(): number {
    let n = 0;
    for (const q of this.#queues) n += q.pendingRows + q.inFlightRows;
    return n;
  }
}

function resolveOptions(o: ClickHouseWriterOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    database: o.database ?? DEFAULT_DATABASE,
    flushIntervalMs: o.flushIntervalMs ?? 1000,
    maxBatchRows: o.maxBatchRows ?? 50_000,
    maxBufferedRows: o.maxBufferedRows ?? 500_000,
    format: o.format ?? 'JSONCompactEachRow',
    retry: { initialMs: o.retry?.initialMs ?? 200, maxMs: o.retry?.maxMs ?? 10_000 },
    rawInsert: o.rawInsert,
    insertSettings: o.distributed ? { insert_distributed_sync: 1 } : {},
    onError: o.onError,
  };
  const positive: Array<[string, number]> = [
    ['flushIntervalMs', resolved.flushIntervalMs],
    ['maxBatchRows', resolved.maxBatchRows],
    ['maxBufferedRows', resolved.maxBufferedRows],
    ['retry.initialMs', resolved.retry.initialMs],
    ['retry.maxMs', resolved.retry.maxMs],
  ];
  for (const [name, value] of positive) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  }
  if (resolved.format !== 'JSONCompactEachRow' && resolved.format !== 'JSONEachRow') {
    throw new RangeError(`format must be JSONCompactEachRow or JSONEachRow (got "${resolved.format}")`);
  }
  if (o.distributed && o.rawInsert)
    throw new RangeError('rawInsert is chDB (one process): it cannot insert into Distributed tables');
  quoteIdentifier(resolved.database);
  return Object.freeze(resolved);
}

function newQueue(database: string, table: string, columns: readonly [string, ...string[]]): TableQueue {
  return {
    table: `${quoteIdentifier(database)}.${table}`,
    name: `${database}.${table}`,
    columns: [...columns],
    chunks: [],
    headOffset: 0,
    pendingRows: 0,
    inFlightRows: 0,
    enqueued: 0,
    inserted: 0,
    flushUpTo: 0,
    waiters: [],
    timer: null,
    due: false,
    pumping: false,
  };
}

/**
 * Takes up to `max` rows from the head of the queue, in order, all of one kind: row objects, or
 * whole encoded chunks (at least one, so a chunk larger than `max` still leaves).
 */
function takeBatch(q: TableQueue, max: number): Batch {
  const head = q.chunks[0]!;
  if (!Array.isArray(head)) {
    const encoded: Uint8Array[] = [];
    let length = 0;
    for (;;) {
      const chunk = q.chunks[0];
      if (chunk === undefined || Array.isArray(chunk) || (length > 0 && length + chunk.length > max)) break;
      encoded.push(chunk.bytes);
      length += chunk.length;
      q.chunks.shift();
    }
    q.pendingRows -= length;
    return { rows: null, encoded, length };
  }
  if (q.headOffset === 0 && head.length <= max && q.chunks.length === 1) {
    q.chunks.length = 0;
    q.pendingRows -= head.length;
    return { rows: head, encoded: null, length: head.length };
  }
  const batch: Row[] = [];
  while (batch.length < max && q.chunks.length > 0) {
    const chunk = q.chunks[0]!;
    if (!Array.isArray(chunk)) break;
    const take = Math.min(max - batch.length, chunk.length - q.headOffset);
    for (let i = q.headOffset; i < q.headOffset + take; i++) batch.push(chunk[i]!);
    q.headOffset += take;
    if (q.headOffset === chunk.length) {
      q.chunks.shift();
      q.headOffset = 0;
    }
  }
  q.pendingRows -= batch.length;
  return { rows: batch, encoded: null, length: batch.length };
}

/** A trigger as a `triggers` row: snake_case times, payload and profile as JSON text. */
function triggerRow(t: Trigger): Row {
  return {
    id: t.id,
    rule: t.rule,
    customer: t.customer,
    fired_at: t.firedAt,
    event_time: t.eventTime,
    priority: t.priority,
    reason: t.reason,
    subject: t.subject,
    payload: JSON.stringify(t.payload ?? {}),
    profile: JSON.stringify(t.profile ?? {}),
  };
}
