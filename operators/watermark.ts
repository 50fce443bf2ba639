/**
 * The event-time watermark of one partition: highest event time seen minus the allowed lateness,
 * advanced with the wall clock when the partition has been idle, so that timers of silent
 * customers come due. It never moves backwards.
 */

/** How the watermark follows event time and the wall clock. */
export interface WatermarkOptions {
  /** Events up to this much older than the newest seen still count as on time. @default 5_000 */
  allowedLatenessMs?: number;
  /** Wall-clock time without events after which the watermark follows the wall clock. @default 10_000 */
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
  /** Wall clock of the last batch with events (or the first call seen): the idle timer's start. */
  private lastActivity: number | null = null;

  constructor(options: WatermarkOptions = {}) {
    this.allowedLatenessMs = options.allowedLatenessMs ?? 5_000;
    this.idleAfterMs = options.idleAfterMs ?? 10_000;
    if (!(this.allowedLatenessMs >= 0)) throw new RangeError('allowedLatenessMs must be >= 0');
    if (!(this.idleAfterMs >= 0)) throw new RangeError('idleAfterMs must be >= 0');
  }

  /** The watermark: every timer due at or before it may fire; events older than it are late. */
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

  /** A batch with events was applied at wall clock `now`: the partition is not idle. */
  active(now: number): void {
    this.lastActivity = now;
  }

  /**
   * Wall-clock tick: after `idleAfterMs` without events, advances to `now − allowedLatenessMs`
   * (never backwards). The first call only starts the idle timer, so a restart with a backlog
   * does not jump ahead of it.
   */
  idle(now: number): void {
    if (this.lastActivity === null) {
      this.lastActivity = now;
      return;
    }
    if (now - this.lastActivity < this.idleAfterMs) return;
    const v = now - this.allowedLatenessMs;
    if (v > this.current) this.current = v;
  }

  /** Moves the watermark to `eventTime` (a replay lets silent customers' timers come due); never backwards. */
  advanceTo(eventTime: number): void {
    if (eventTime > this.current) this.current = eventTime;
  }

  /** The checkpointed part. */
  state(): WatermarkState {
    return { maxEventTime: this.maxEventTime, value: this.current };
  }

  /** Restores a checkpointed state; the idle timer starts again at the next call. */
  restore(state: WatermarkState): void {
    this.maxEventTime = state.maxEventTime;
    this.current = state.value;
    this.lastActivity = null;
  }
}
