/**
 * Byte strings of one key group in one growing buffer, each addressed by a slot number: the
 * customers at rest of operators/customerStore.ts.
 *
 * Why: a customer at rest held as its own `Uint8Array` is one more object on the heap per customer,
 * scattered over it. Every full garbage collection marks it, and a full checkpoint reads it from
 * wherever it lies: at a million customers the snapshot's copy cost ~3.5 µs per customer, most of
 * it cache misses on those objects (bench/RESULTS.md, "A byte arena per key group"). Here a slot is
 * two numbers in typed arrays, and the bytes lie side by side.
 *
 * Bytes are appended, never changed in place. A slot that is removed leaves its bytes as garbage
 * until the buffer is full; then the live bytes move to a new buffer of 1.5× their size (so a byte
 * is copied about three times over its life). A view returned by {@link view} stays valid after
 * that: the old buffer is never written again, and the view keeps it alive.
 */
export class ByteArena {
  private buf: Buffer;
  /** End of the appended bytes. */
  private used = 0;
  /** Bytes of the live slots. */
  private liveBytes = 0;
  private offsets: Uint32Array;
  private sizes: Uint32Array;
  /** Slot numbers free for reuse; slots above `slots` were never used. */
  private readonly free: number[] = [];
  private slots = 0;

  constructor(initialBytes = 16 * 1024) {
    this.buf = Buffer.allocUnsafeSlow(initialBytes);
    this.offsets = new Uint32Array(256);
    this.sizes = new Uint32Array(256);
  }

  /** Bytes held by live slots. */
  get bytes(): number {
    return this.liveBytes;
  }

  /** The buffer now: the bytes of every live slot are in it, at {@link offsetOf} (until the next {@link add}). */
  get buffer(): Buffer {
    return this.buf;
  }

  /** Copies `bytes` in; returns their slot. */
  add(bytes: Uint8Array): number {
    const size = bytes.byteLength;
    if (size === 0) throw new Error('ByteArena.add: empty bytes (a size of 0 marks a free slot)');
    if (this.used + size > this.buf.length) this.compact(size);
    const slot = this.free.pop() ?? this.newSlot();
    this.buf.set(bytes, this.used);
    this.offsets[slot] = this.used;
    this.sizes[slot] = size;
    this.used += size;
    this.liveBytes += size;
    return slot;
  }

  /** Frees a slot: its bytes become garbage. */
  remove(slot: number): void {
    this.liveBytes -= this.sizes[slot]!;
    this.sizes[slot] = 0;
    this.free.push(slot);
  }

  offsetOf(slot: number): number {
    return this.offsets[slot]!;
  }

  sizeOf(slot: number): number {
    return this.sizes[slot]!;
  }

  /** The slot's bytes (a view; see the class comment for how long it holds). */
  view(slot: number): Uint8Array {
    const at = this.offsets[slot]!;
    return this.buf.subarray(at, at + this.sizes[slot]!);
  }

  private newSlot(): number {
    if (this.slots === this.offsets.length) {
      const offsets = new Uint32Array(this.slots * 2);
      offsets.set(this.offsets);
      this.offsets = offsets;
      const sizes = new Uint32Array(this.slots * 2);
      sizes.set(this.sizes);
      this.sizes = sizes;
    }
    return this.slots++;
  }

  /**
   * Moves the live bytes to a new buffer with room for `more`. Slots whose bytes follow each other
   * (added one after the other, as on a restore) move as one run.
   */
  private compact(more: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(16 * 1024, Math.ceil((this.liveBytes + more) * 1.5)));
    let at = 0;
    // the run being gathered: old bytes [runFrom, runTo) go to `runAt`
    let runFrom = 0;
    let runTo = 0;
    let runAt = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      const size = this.sizes[slot]!;
      if (size === 0) continue; // free (live bytes are never empty: they are msgpack values)
      const from = this.offsets[slot]!;
      if (from !== runTo) {
        if (runTo > runFrom) this.buf.copy(next, runAt, runFrom, runTo);
        runFrom = from;
        runTo = from;
        runAt = at;
      }
      runTo += size;
      this.offsets[slot] = at;
      at += size;
    }
    if (runTo > runFrom) this.buf.copy(next, runAt, runFrom, runTo);
    this.buf = next;
    this.used = at;
  }
}
