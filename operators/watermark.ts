/**
 * The event-time watermark of one partition: the earliest event time still to come. Events before
 * it are late (beyond the allowed lateness); timers and ordered-lane events before it are final and
 * are processed. It is the highest event time seen minus the allowed lateness, and it never moves
 * backwards.
 *
 * Wall clock: only at the live edge. A partition that has seen no event for `idleAfterMs` while the
 * source was connected and caught up for that whole time (each tick says so by passing `now`, or
 * null) moves its watermark to `now − allowedLatenessMs`, so timers of silent customers come due.
 * A tick without `now` (a backlog, a reconnect, a restart) restarts that wait: what is published
 * meanwhile is in the stream, and an advance would fire timers it may cancel.
 */

/** How the watermark follows event time and the wall clock. */
export interface WatermarkOptions {
  /** Events up to this much older than the newest seen are on time. @default 5_000 */
  allowedLatenessMs?: number;
  /** Wall-clock time without events (at the live edge) after which the watermark follows the wall clock. @default 10_000 */
  idleAfterMs?: number;
}

/** The watermark's checkpointed part (plain data). */
export interface WatermarkState {
  /** Highest event time seen. */
  maxEventTime: number;
  /** Current watermark. */
  value: number;
}

/** Per-partition watermark; times are epoch ms, `now` is the injected wall clock. */
export class Watermark {
  readonly allowedLatenessMs: number;
  readonly idleAfterMs: number;
  private maxEventTime = Number.NEGATIVE_INFINITY;
  private current = Number.NEGATIVE_INFINITY;
  /** Wall clock since which the partition has been quiet at the live edge; null = not (yet). */
  private quietSince: number | null = null;

  constructor(options: WatermarkOptions = {}) {
    this.allowedLatenessMs = options.allowedLatenessMs ?? 5_000;
    this.idleAfterMs = options.idleAfterMs ?? 10_000;
    if (!(this.allowedLatenessMs >= 0)) throw new RangeError('allowedLatenessMs must be >= 0');
    if (!(this.idleAfterMs >= 0)) throw new RangeError('idleAfterMs must be >= 0');
  }

  /** The watermark: items (timers, ordered-lane events) before it are final; events before it are late. */
  get value(): number {
    return this.current;
  }

  /** Highest event time seen. */
  get maxSeen(): number {
    return this.maxEventTime;
  }

  /** Whether an event of time `ts` arrives after the watermark passed it (beyond the allowed lateness). */
  isLate(ts: number): boolean {
    return ts < this.current;
  }

  /** Takes an event's time into account. */
  observe(ts: number): void {
    if (ts > this.maxEventTime) {
      this.maxEventTime = ts;
      const v = ts - this.allowedLatenessMs;
      if (v > this.current) this.current = v;
    }
  }

  /** A batch with events was applied at wall clock `now`: the partition is not quiet. */
  active(now: number): void {
    this.quietSince = now;
  }

  /**
   * Wall-clock tick. `now` = the source is connected and caught up (live edge); null = it is not.
   * After `idleAfterMs` of quiet at the live edge, advances to `now − allowedLatenessMs`.
   */
  idle(now: number | null): void {
    if (now === null) {
      this.quietSince = null;
      return;
    }
    if (this.quietSince === null) {
      this.quietSince = now;
      return;
    }
    if (now - this.quietSince < this.idleAfterMs) return;
    const v = now - this.allowedLatenessMs;
    if (v > this.current) this.current = v;
  }

  /**
   * Event time has reached `eventTime` (end of a replay, `--until`): items at or before it become
   * final, so the watermark moves just past it. Never backwards.
   */
  advanceTo(eventTime: number): void {
    if (eventTime + 1 > this.current) this.current = eventTime + 1;
  }

  /** The checkpointed part. */
  state(): WatermarkState {
    return { maxEventTime: this.maxEventTime, value: this.current };
  }

  /** Restores a checkpointed state; the wait for quiet starts again at the next tick. */
  restore(state: WatermarkState): void {
    this.maxEventTime = state.maxEventTime;
    this.current = state.value;
    this.quietSince = null;
  }
}
