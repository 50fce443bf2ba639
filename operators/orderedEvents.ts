/**
 * The events of one partition waiting for the ordered lane: kept sorted by (event time, stream
 * sequence) until the watermark passes them. Events arrive nearly in time order, so an insert is
 * almost always an append; the front is taken with a moving head (no shifting per event).
 */
import type { Profile } from './profile.js';
import type { CxEvent } from './types.js';

/** An event waiting for the ordered lane, and its stream sequence (the tie-break at one time). */
export interface PendingEvent {
  seq: number;
  event: CxEvent;
  /**
   * The customer's profile as of the event's arrival, kept once a later event of the customer has
   * changed the state (until then the live state is that profile): what the ordered lane's rules
   * read, whenever the watermark lets them see the event.
   */
  profile?: Profile;
}

/** Sorted queue of pending events (parallel arrays; `head` is the first live slot). */
export class OrderedEvents {
  private times: number[] = [];
  private seqs: number[] = [];
  private items: PendingEvent[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  /** Event time of the first pending event; +Infinity when none. */
  peekTime(): number {
    return this.head < this.items.length ? this.times[this.head]! : Number.POSITIVE_INFINITY;
  }

  /** Adds an event in (time, seq) order. */
  push(p: PendingEvent): void {
    const ts = p.event.ts;
    let i = this.items.length;
    while (
      i > this.head &&
      (this.times[i - 1]! > ts || (this.times[i - 1] === ts && this.seqs[i - 1]! > p.seq))
    )
      i--;
    if (i === this.items.length) {
      this.times.push(ts);
      this.seqs.push(p.seq);
      this.items.push(p);
    } else {
      this.times.splice(i, 0, ts);
      this.seqs.splice(i, 0, p.seq);
      this.items.splice(i, 0, p);
    }
  }

  /** Takes the first pending event. */
  shift(): PendingEvent | undefined {
    if (this.head >= this.items.length) return undefined;
    const p = this.items[this.head]!;
    this.items[this.head] = undefined as unknown as PendingEvent;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) this.compact();
    return p;
  }

  /** Removes every pending event of a customer (`forget`); how many there were. */
  removeCustomer(customer: string): number {
    const keep: number[] = [];
    for (let i = this.head; i < this.items.length; i++)
      if (this.items[i]!.event.customer !== customer) keep.push(i);
    const removed = this.items.length - this.head - keep.length;
    if (removed === 0) return 0;
    this.times = keep.map((i) => this.times[i]!);
    this.seqs = keep.map((i) => this.seqs[i]!);
    this.items = keep.map((i) => this.items[i]!);
    this.head = 0;
    return removed;
  }

  clear(): void {
    this.times = [];
    this.seqs = [];
    this.items = [];
    this.head = 0;
  }

  private compact(): void {
    this.times = this.times.slice(this.head);
    this.seqs = this.seqs.slice(this.head);
    this.items = this.items.slice(this.head);
    this.head = 0;
  }
}
