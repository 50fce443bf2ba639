/**
 * A key group's customers: the recently used ones as objects (hot), the others kept as their msgpack
 * bytes (cold) and decoded when something needs them (an event, a timer, a publication, explain).
 *
 * Why: a customer as objects is ~100 small JavaScript values, 6.6 KB of heap after one day of
 * traffic; the same entry as msgpack with shared structures is ~720–800 bytes (bench/RESULTS.md,
 * "compact state"). A checkpoint copies cold bytes as they are, and a restore keeps them encoded,
 * so neither pays the ~50–100 µs per customer that encoding or decoding the objects costs.
 *
 * The bytes refer to the key group's shared msgpack structures (the key lists of the object shapes
 * seen so far). They only grow: an entry encoded with the first n of them decodes with any later
 * list, so a checkpoint stores them with the bytes (deltas only the ones added since the snapshot
 * before) and a restore hands them back to the store.
 *
 * A hot entry also keeps its bytes while it is unchanged since they were encoded or decoded (`clean`):
 * a full checkpoint then copies them instead of encoding ~100 values again, so it encodes only the
 * hot customers changed since the snapshot before it (those a delta would hold). The processor calls
 * {@link touched} before it changes an entry; every change goes through it, as deltas rely on too.
 *
 * Entries with events waiting for the ordered lane (`pending`) or for a timer (`held`) stay hot: the
 * ordered lane holds those events by identity. So do entries restored from a format without key
 * groups until their first event (`appliedThrough`, checked before an event is decoded).
 */
import { Packr } from 'msgpackr';
import { ByteArena } from './byteArena.js';
import type { CustomerEntry, StoredEntry, Structures } from './partitionState.js';

/**
 * Shared structures per key group. Measured on one day of traffic per customer (6.5k customers,
 * default rules): 32 shared structures give 910 bytes per entry, 1000 give 794, 8160 give 724 but
 * cost ~80 KB of structures per key group in every full checkpoint. Shapes beyond the limit are
 * written into each entry (msgpackr's own records), still readable.
 */
export const MAX_SHARED_STRUCTURES = 1000;

/**
 * A key group's customers at a snapshot's cut, as {@link CustomerStore.cut} gives them: ids, and
 * each entry as held. An entry held as an object is in `values` as the object (to encode); one
 * held as bytes (at rest, or a clean hot entry) as the offset of its bytes in `bytes`, its size in
 * `sizes`: numbers rather than a view per customer, so a full cut of a million customers adds no
 * object per customer to the heap. Bytes a restore gave that are untouched since are their view.
 */
export interface StoreCut {
  names: string[];
  values: Array<CustomerEntry | number | Uint8Array>;
  sizes: Uint32Array;
  /** The arena's buffer at the cut: never written below the bytes it held then. */
  bytes: Uint8Array;
  /** Those of them with events waiting for the ordered lane (hot, clean or not). */
  pending: string[];
}

export class CustomerStore {
  /**
   * Every customer, in the order it was first seen: its entry when hot, else its slot in `arena`, or
   * the view of its bytes a restore gave (untouched since: copying a million of them into the arenas
   * made a restore at 1M customers 2–3 s slower, bench/RESULTS.md).
   */
  private readonly entries = new Map<string, CustomerEntry | number | Uint8Array>();
  /** The hot entries, least recently used first. */
  private readonly hot = new Map<string, CustomerEntry>();
  /** Slots of the bytes of hot entries unchanged since they were encoded or decoded. */
  private readonly clean = new Map<string, number>();
  private readonly arena = new ByteArena();
  private readonly packr: Packr;

  /**
   * @param hotLimit entries kept as objects; beyond it {@link compact} encodes the least recently used.
   * @param structures the shared structures of restored bytes (taken over, and grown in place).
   */
  constructor(
    public hotLimit: number,
    structures: Structures = [],
  ) {
    this.packr = new Packr({
      getStructures: () => structures,
      // Nothing to persist here: a checkpoint stores them with the bytes.
      saveStructures: () => true,
      maxSharedStructures: MAX_SHARED_STRUCTURES,
    });
    // Loads `structures` into the packr now (it does so on first use): `structures` reads them from it.
    this.packr.pack(null);
  }

  /** The shared structures the bytes refer to (the live list: it grows as new shapes are encoded). */
  get structures(): Structures {
    return (this.packr as unknown as { structures: Structures }).structures;
  }

  /** Customers held. */
  get size(): number {
    return this.entries.size;
  }

  /** Customers held as objects. */
  get hotSize(): number {
    return this.hot.size;
  }

  /** Bytes of the entries held as bytes and of the clean hot entries. */
  get bytesHeld(): number {
    return this.arena.bytes;
  }

  has(customer: string): boolean {
    return this.entries.has(customer);
  }

  /** The customer's entry, decoded when cold; it becomes the most recently used hot entry. */
  get(customer: string): CustomerEntry | undefined {
    const stored = this.entries.get(customer);
    if (stored === undefined) return undefined;
    if (typeof stored === 'number' || stored instanceof Uint8Array) {
      const slot = typeof stored === 'number' ? stored : this.arena.add(stored);
      const entry = this.decode(this.arena.view(slot));
      this.entries.set(customer, entry);
      this.hot.set(customer, entry);
      this.clean.set(customer, slot); // the slot now holds the clean bytes
      return entry;
    }
    // most recently used: to the end of the hot list
    this.hot.delete(customer);
    this.hot.set(customer, stored);
    return stored;
  }

  /** The customer's entry for reading only (a decoded copy when cold; the store does not change). */
  peek(customer: string): CustomerEntry | undefined {
    const stored = this.stored(customer);
    return stored instanceof Uint8Array ? this.decode(stored) : stored;
  }

  /** The entry, or its bytes when held as bytes. */
  stored(customer: string): StoredEntry | undefined {
    const stored = this.entries.get(customer);
    return stored === undefined ? undefined : this.asStored(stored);
  }

  /** The customer's bytes when it is held as bytes or is a clean hot entry; else undefined. */
  bytesOf(customer: string): Uint8Array | undefined {
    const stored = this.entries.get(customer);
    if (stored instanceof Uint8Array) return stored;
    const slot = this.slotOf(customer);
    return slot === undefined ? undefined : this.arena.view(slot);
  }

  /** The entry is about to change: bytes kept for it are no longer its own. */
  touched(customer: string): void {
    const slot = this.clean.get(customer);
    if (slot === undefined) return;
    this.arena.remove(slot);
    this.clean.delete(customer);
  }

  /** Encodes a hot entry that is not changing now and keeps the bytes until it is {@link touched}. */
  encodeClean(customer: string, entry: CustomerEntry): Uint8Array {
    const bytes = this.encode(entry);
    if (this.hot.get(customer) === entry) {
      this.touched(customer);
      this.clean.set(customer, this.arena.add(bytes));
    }
    return bytes;
  }

  /** Adds or replaces a customer (hot); a new customer goes after every other in iteration order. */
  set(customer: string, entry: CustomerEntry): void {
    this.release(customer);
    this.entries.set(customer, entry);
    this.hot.delete(customer);
    this.hot.set(customer, entry);
  }

  /**
   * Adds or replaces a customer as bytes (restore). The view is kept as given, and the buffer it
   * views with it, until the customer is next used (then it moves to the arena).
   */
  setEncoded(customer: string, bytes: Uint8Array): void {
    this.release(customer);
    this.entries.set(customer, bytes);
    this.hot.delete(customer);
  }

  /** Removes a customer (`forget`); true when it was held. */
  delete(customer: string): boolean {
    this.release(customer);
    this.hot.delete(customer);
    return this.entries.delete(customer);
  }

  /** Every customer with its entry or bytes, in insertion order. */
  *items(): IterableIterator<[string, StoredEntry]> {
    for (const [customer, stored] of this.entries) yield [customer, this.asStored(stored)];
  }

  /**
   * The customers as a snapshot holds them (see {@link StoreCut}): those of `only` (a delta's
   * changed customers, all held), else all in insertion order.
   */
  cut(only?: ReadonlySet<string>): StoreCut {
    const n = only?.size ?? this.entries.size;
    const names: string[] = new Array(n);
    const values: Array<CustomerEntry | number | Uint8Array> = new Array(n);
    const sizes = new Uint32Array(n);
    const pending: string[] = [];
    let i = 0;
    const add = (customer: string, stored: CustomerEntry | number | Uint8Array): void => {
      names[i] = customer;
      if (stored instanceof Uint8Array) {
        values[i++] = stored;
        return;
      }
      // entries held as bytes have no pending events (see the file comment)
      if (typeof stored !== 'number' && stored.pending.length > 0) pending.push(customer);
      const slot = typeof stored === 'number' ? stored : this.clean.get(customer);
      if (slot === undefined) values[i] = stored;
      else {
        values[i] = this.arena.offsetOf(slot);
        sizes[i] = this.arena.sizeOf(slot);
      }
      i++;
    };
    if (only === undefined) for (const [customer, stored] of this.entries) add(customer, stored);
    else for (const customer of only) add(customer, this.entries.get(customer)!);
    return { names, values, sizes, bytes: this.arena.buffer, pending };
  }

  encode(entry: CustomerEntry): Uint8Array {
    // msgpackr writes each result after the previous one in its buffer and starts a new buffer when
    // it is full, so the returned view stays valid (no copy).
    return this.packr.pack(entry);
  }

  decode(bytes: Uint8Array): CustomerEntry {
    return this.packr.unpack(bytes) as CustomerEntry;
  }

  /**
   * Encodes the least recently used hot entries until at most `hotLimit` are hot. Entries with
   * pending or held events or an `appliedThrough` stay hot (they move to the most recently used end);
   * a clean one goes back to its bytes. Returns how many were encoded.
   */
  compact(): number {
    let excess = this.hot.size - this.hotLimit;
    if (excess <= 0) return 0;
    let encoded = 0;
    const kept: Array<[string, CustomerEntry]> = [];
    for (const [customer, entry] of this.hot) {
      if (excess <= 0) break;
      this.hot.delete(customer);
      if (entry.pending.length > 0 || entry.held.length > 0 || entry.appliedThrough !== undefined) {
        kept.push([customer, entry]);
        continue;
      }
      const clean = this.clean.get(customer);
      if (clean === undefined) {
        this.entries.set(customer, this.arena.add(this.encode(entry)));
        encoded++;
      } else {
        this.entries.set(customer, clean);
        this.clean.delete(customer);
      }
      excess--;
    }
    for (const [customer, entry] of kept) this.hot.set(customer, entry);
    return encoded;
  }

  /** The slot of the customer's bytes in the arena: held there, or a clean hot entry. */
  private slotOf(customer: string): number | undefined {
    const stored = this.entries.get(customer);
    return typeof stored === 'number' ? stored : this.clean.get(customer);
  }

  /** What the map holds as the entry or its bytes (a slot is read from the arena). */
  private asStored(stored: CustomerEntry | number | Uint8Array): StoredEntry {
    return typeof stored === 'number' ? this.arena.view(stored) : stored;
  }

  /** Frees the bytes the customer holds (at rest or clean) before it is replaced or removed. */
  private release(customer: string): void {
    const slot = this.slotOf(customer);
    if (slot !== undefined) this.arena.remove(slot);
    this.clean.delete(customer);
  }
}
