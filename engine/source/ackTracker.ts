/** One tracked chunk: its sequences in ascending order and which of them are done. */
interface Chunk<H> {
  seqs: number[];
  done: Uint8Array;
  remaining: number;
  handle: H;
}

/**
 * In-flight bookkeeping for JetStream `AckPolicy.All`: chunks are tracked in stream order, their
 * messages are marked done in any order (from any partition), and whenever a prefix of chunks is
 * complete, `onAck` is called once with the handle of the prefix's last chunk (acking it acks
 * everything before it).
 *
 * A sequence at or below the highest one already tracked is a redelivery and is ignored, so
 * at-least-once delivery never counts a message twice. Per message the cost is a binary search
 * over the chunks in flight and one over the chunk, with no per-message allocation.
 */
export class AckTracker<H> {
  private readonly chunks: Array<Chunk<H> | undefined> = [];
  private head = 0;
  /** Chunk of the last `done` lookup: done() calls usually walk one chunk in order. */
  private hint = 0;
  private unacked = 0;
  private acked = 0;
  private highest = 0;
  private waiters: Array<{ below: number; resolve: () => void }> = [];

  /**
   * @param onAck called once per completed prefix with the handle of its last chunk and that
   *   chunk's last sequence
   */
  constructor(private readonly onAck: (handle: H, lastSeq: number) => void) {}

  /** Messages tracked and not yet acked (done ones waiting for an earlier one included). */
  get inFlight(): number {
    return this.unacked;
  }

  /** Highest sequence acked so far (0 before the first ack). */
  get ackedSeq(): number {
    return this.acked;
  }

  /** Highest sequence ever tracked: anything at or below it is a redelivery. */
  get lastSeq(): number {
    return this.highest;
  }

  /**
   * Tracks one chunk in stream order; `seqs` must ascend. Sequences at or below {@link lastSeq}
   * are redeliveries and are skipped. Returns how many were tracked.
   */
  track(seqs: ArrayLike<number>, handle: H): number {
    const fresh: number[] = [];
    let prev = this.highest;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      if (seq <= this.highest) continue;
      if (seq <= prev) throw new RangeError(`AckTracker.track: sequences must ascend (${seq} after ${prev})`);
      fresh.push(seq);
      prev = seq;
    }
    if (fresh.length === 0) return 0;
    this.chunks.push({ seqs: fresh, done: new Uint8Array(fresh.length), remaining: fresh.length, handle });
    this.highest = prev;
    this.unacked += fresh.length;
    return fresh.length;
  }

  /**
   * Marks messages handled. Unknown, already acked and repeated sequences are ignored. Acks the
   * longest complete prefix of chunks, if it grew.
   */
  done(seqs: ArrayLike<number>): void {
    let completedHead = false;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      if (seq <= this.acked || seq > this.highest) continue;
      const index = this.chunkOf(seq);
      if (index < 0) continue;
      const chunk = this.chunks[index]!;
      const at = indexOf(chunk.seqs, seq);
      if (at < 0 || chunk.done[at] === 1) continue;
      chunk.done[at] = 1;
      chunk.remaining--;
      if (chunk.remaining === 0 && index === this.head) completedHead = true;
    }
    if (completedHead) this.ackPrefix();
  }

  /**
   * Replaces the ack handle of the chunk whose last sequence is `seq` (e.g. with the same message
   * redelivered by a recreated consumer). Returns false when no tracked chunk ends at `seq`.
   */
  replaceHandle(seq: number, handle: H): boolean {
    const index = this.chunkOf(seq);
    if (index < 0) return false;
    const chunk = this.chunks[index]!;
    if (chunk.seqs[chunk.seqs.length - 1] !== seq) return false;
    chunk.handle = handle;
    return true;
  }

  /** Resolves once fewer than `n` messages are in flight (at once if already so). */
  whenBelow(n: number): Promise<void> {
    if (this.unacked < n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ below: n, resolve }));
  }

  private ackPrefix(): void {
    let last: Chunk<H> | undefined;
    while (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!;
      if (chunk.remaining > 0) break;
      this.chunks[this.head] = undefined;
      this.head++;
      this.unacked -= chunk.seqs.length;
      last = chunk;
    }
    if (!last) return;
    const lastSeq = last.seqs[last.seqs.length - 1]!;
    this.acked = lastSeq;
    // drop the acked prefix once it is a large part of the array, to keep memory bounded
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.hint = Math.max(0, this.hint - this.head);
      this.head = 0;
    }
    this.onAck(last.handle, lastSeq);
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => this.unacked < w.below);
      if (ready.length > 0) {
        this.waiters = this.waiters.filter((w) => this.unacked >= w.below);
        for (const w of ready) w.resolve();
      }
    }
  }

  /** Index in `chunks` of the chunk that may hold `seq`, or -1. */
  private chunkOf(seq: number): number {
    const { chunks } = this;
    const hinted = chunks[this.hint];
    if (
      hinted &&
      this.hint >= this.head &&
      hinted.seqs[0]! <= seq &&
      seq <= hinted.seqs[hinted.seqs.length - 1]!
    ) {
      return this.hint;
    }
    let lo = this.head;
    let hi = chunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = chunks[mid]!;
      if (seq < chunk.seqs[0]!) hi = mid - 1;
      else if (seq > chunk.seqs[chunk.seqs.length - 1]!) lo = mid + 1;
      else {
        this.hint = mid;
        return mid;
      }
    }
    return -1;
  }
}

function indexOf(sorted: number[], seq: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v < seq) lo = mid + 1;
    else if (v > seq) hi = mid - 1;
    else return mid;
  }
  return -1;
}
