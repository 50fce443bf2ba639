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
import type { CustomerEntry, StoredEntry, Structures } from './partitionState.js';

/**
 * Shared structures per key group. Measured on one day of traffic per customer (6.5k customers,
 * default rules): 32 shared structures give 910 bytes per entry, 1000 give 794, 8160 give 724 but
 * cost ~80 KB of structures per key group in every full checkpoint. Shapes beyond the limit are
 * written into each entry (msgpackr's own records), still readable.
 */
export const MAX_SHARED_STRUCTURES = 1000;

export class CustomerStore {
  /** Every customer, in the order it was first seen (iteration order is part of the output's order). */
  private readonly entries = new Map<string, StoredEntry>();
  /** The hot entries, least recently used first. */
  private readonly hot = new Map<string, CustomerEntry>();
  /** Bytes of hot entries unchanged since they were encoded or decoded. */
  private readonly clean = new Map<string, Uint8Array>();
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

  has(customer: string): boolean {
    return this.entries.has(customer);
  }

  /** The customer's entry, decoded when cold; it becomes the most recently used hot entry. */
  get(customer: string): CustomerEntry | undefined {
    const stored = this.entries.get(customer);
    if (stored === undefined) return undefined;
    if (stored instanceof Uint8Array) {
      const entry = this.decode(stored);
      this.entries.set(customer, entry);
      this.hot.set(customer, entry);
      this.clean.set(customer, stored);
      return entry;
    }
    // most recently used: to the end of the hot list
    this.hot.delete(customer);
    this.hot.set(customer, stored);
    return stored;
  }

  /** The customer's entry for reading only (a decoded copy when cold; the store does not change). */
  peek(customer: string): CustomerEntry | undefined {
    const stored = this.entries.get(customer);
    return stored instanceof Uint8Array ? this.decode(stored) : stored;
  }

  /** The entry or the bytes, as held. */
  stored(customer: string): StoredEntry | undefined {
    return this.entries.get(customer);
  }

  /** The customer's bytes when it is held as bytes or is a clean hot entry; else undefined. */
  bytesOf(customer: string): Uint8Array | undefined {
    const stored = this.entries.get(customer);
    return stored instanceof Uint8Array ? stored : this.clean.get(customer);
  }

  /** The entry is about to change: bytes kept for it are no longer its own. */
  touched(customer: string): void {
    this.clean.delete(customer);
  }

  /** Encodes a hot entry that is not changing now and keeps the bytes until it is {@link touched}. */
  encodeClean(customer: string, entry: CustomerEntry): Uint8Array {
    const bytes = this.encode(entry);
    if (this.hot.get(customer) === entry) this.clean.set(customer, bytes);
    return bytes;
  }

  /** Adds or replaces a customer (hot); a new customer goes after every other in iteration order. */
  set(customer: string, entry: CustomerEntry): void {
    this.clean.delete(customer);
    this.entries.set(customer, entry);
    this.hot.delete(customer);
    this.hot.set(customer, entry);
  }

  /** Adds or replaces a customer as bytes (restore). */
  setEncoded(customer: string, bytes: Uint8Array): void {
    this.clean.delete(customer);
    this.entries.set(customer, bytes);
    this.hot.delete(customer);
  }

  /** Removes a customer (`forget`); true when it was held. */
  delete(customer: string): boolean {
    this.clean.delete(customer);
    this.hot.delete(customer);
    return this.entries.delete(customer);
  }

  /** Every customer with its entry or bytes, in insertion order. */
  items(): IterableIterator<[string, StoredEntry]> {
    return this.entries.entries();
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
        this.entries.set(customer, this.encode(entry));
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
}
