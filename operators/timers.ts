/**
 * Event-time timers of one partition. Each customer holds its timers as plain data
 * (`Record<timerId, TimerRecord>`, checkpointed with the customer); the partition keeps a binary
 * min-heap of (due, customer, timerId) to find the next due timer without scanning customers.
 *
 * The heap uses lazy deletion: cancelling only deletes the record, and its heap entry is dropped
 * when it surfaces. Moving a timer later (the common case: a new add_to_cart, any event for an
 * inactivity timer) only moves `record.due`; the old entry surfaces at `record.queuedAt`, sees the
 * later due and is pushed again there. So a busy customer does not grow the heap per event.
 *
 * Order: timers come due in (due, customer, id) order, so ids are chosen to sort as they must
 * fire for one customer at one millisecond: quiet-hours releases (`\u0001…`, in the order they
 * originally fired) before pattern timers (rule ids, `[a-z0-9_]`), profile publication (`~…`) last.
 */
import type { TimerRecord } from './ruleModel.js';

/** Timer queue entries as parallel lists: due (the entry's `queuedAt`), customer, timer id. */
export interface TimerList {
  dues: number[];
  customers: string[];
  ids: string[];
}

/** Binary min-heap of timer entries over parallel arrays (no object per entry). */
export class TimerQueue {
  private dues: number[] = [];
  private customers: string[] = [];
  private ids: string[] = [];

  /** Heap entries, stale ones included. */
  get size(): number {
    return this.dues.length;
  }

  /** Due time of the earliest entry (maybe stale); +Infinity when empty. */
  peekDue(): number {
    return this.dues.length === 0 ? Number.POSITIVE_INFINITY : this.dues[0]!;
  }

  clear(): void {
    this.dues = [];
    this.customers = [];
    this.ids = [];
  }

  /**
   * Removes every entry of the customers `drop` picks, stale ones included (`forget`): lazy deletion
   * would leave their keys in the heap, and a full checkpoint stores the heap as it is. O(n), and rare.
   */
  removeCustomers(drop: (customer: string) => boolean): number {
    const keep: number[] = [];
    for (let i = 0; i < this.customers.length; i++) if (!drop(this.customers[i]!)) keep.push(i);
    const removed = this.customers.length - keep.length;
    if (removed === 0) return 0;
    const kept: TimerList = {
      dues: keep.map((i) => this.dues[i]!),
      customers: keep.map((i) => this.customers[i]!),
      ids: keep.map((i) => this.ids[i]!),
    };
    this.clear();
    this.load(kept);
    return removed;
  }

  /** Arms timer `id` of a customer at `record.due`, replacing a pending one; `timers` is that customer's record map. */
  arm(timers: Record<string, TimerRecord>, customer: string, id: string, record: TimerRecord): void {
    const old = timers[id];
    if (old !== undefined && record.due >= old.queuedAt) {
      // The old entry surfaces first and is re-pushed at the new due: no heap growth.
      record.queuedAt = old.queuedAt;
    } else {
      record.queuedAt = record.due;
      this.push(record.due, customer, id);
    }
    timers[id] = record;
  }

  /** Puts a restored record back in the heap. */
  restore(customer: string, id: string, record: TimerRecord): void {
    record.queuedAt = record.due;
    this.push(record.due, customer, id);
  }

  /** The heap's entries as they are (stale ones included), copied: what a full checkpoint stores. */
  entries(): TimerList {
    return { dues: this.dues.slice(), customers: this.customers.slice(), ids: this.ids.slice() };
  }

  /**
   * Adds entries of a checkpoint, each at its record's `queuedAt` (the records are not read: they
   * may still be encoded). Stale entries are dropped when they surface, duplicates pop once.
   */
  load(list: TimerList): void {
    const n = list.dues.length;
    if (this.dues.length > 0) {
      for (let i = 0; i < n; i++) this.push(list.dues[i]!, list.customers[i]!, list.ids[i]!);
      return;
    }
    // Into an empty heap (a full checkpoint): append and heapify, O(n) rather than n pushes.
    this.dues = list.dues.slice();
    this.customers = list.customers.slice();
    this.ids = list.ids.slice();
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /**
   * Pops the next timer due before `limit` (exclusive): calls `resolve(customer)` for its record
   * map and returns [customer, id, record] after deleting the record, or undefined when none is due.
   */
  popDue(
    limit: number,
    resolve: (customer: string) => Record<string, TimerRecord> | undefined,
  ): [customer: string, id: string, record: TimerRecord] | undefined {
    while (this.dues.length > 0 && this.dues[0]! < limit) {
      const due = this.dues[0]!;
      const customer = this.customers[0]!;
      const id = this.ids[0]!;
      this.pop();
      const timers = resolve(customer);
      const r = timers?.[id];
      if (r === undefined || r.queuedAt !== due) continue; // cancelled, fired, or superseded by an earlier entry
      if (r.due > due) {
        r.queuedAt = r.due;
        this.push(r.due, customer, id);
        continue;
      }
      delete timers![id];
      return [customer, id, r];
    }
    return undefined;
  }

  /** Total order (due, customer, id): ties pop in the same order after a restore, so output is deterministic. */
  private less(i: number, j: number): boolean {
    const a = this.dues[i]!;
    const b = this.dues[j]!;
    if (a !== b) return a < b;
    const ca = this.customers[i]!;
    const cb = this.customers[j]!;
    if (ca !== cb) return ca < cb;
    return this.ids[i]! < this.ids[j]!;
  }

  private swap(i: number, j: number): void {
    const d = this.dues;
    const c = this.customers;
    const n = this.ids;
    const td = d[i]!;
    d[i] = d[j]!;
    d[j] = td;
    const tc = c[i]!;
    c[i] = c[j]!;
    c[j] = tc;
    const tn = n[i]!;
    n[i] = n[j]!;
    n[j] = tn;
  }

  private push(due: number, customer: string, id: string): void {
    let i = this.dues.length;
    this.dues.push(due);
    this.customers.push(customer);
    this.ids.push(id);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  private pop(): void {
    const last = this.dues.length - 1;
    this.swap(0, last);
    this.dues.pop();
    this.customers.pop();
    this.ids.pop();
    this.siftDown(0);
  }

  private siftDown(from: number): void {
    const size = this.dues.length;
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const m = r < size && this.less(r, l) ? r : l;
      if (!this.less(m, i)) break;
      this.swap(i, m);
      i = m;
    }
  }
}
