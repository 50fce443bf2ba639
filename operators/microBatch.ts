import {
  asyncScheduler,
  Observable,
  type OperatorFunction,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';

/** Options of {@link microBatch}. */
export interface MicroBatchOptions {
  /** A batch is emitted as soon as it holds this many items; larger inputs are split. */
  maxItems: number;
  /** A batch is emitted this long after its first item arrived, full or not (scheduler time). */
  maxWaitMs: number;
  /**
   * Clock and timer source; tests pass a TestScheduler.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
}

/**
 * Concatenates incoming arrays into batches of at most `maxItems`, emitting a batch when it is full
 * or `maxWaitMs` after its first item arrived, whichever comes first. Never emits an empty array;
 * on completion emits the remainder, then completes.
 */
export function microBatch<T>(options: MicroBatchOptions): OperatorFunction<T[], T[]> {
  const { maxItems, maxWaitMs, scheduler = asyncScheduler } = options;
  if (!Number.isInteger(maxItems) || maxItems < 1) {
    throw new RangeError(`microBatch maxItems must be a positive integer, got ${maxItems}`);
  }
  if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
    throw new RangeError(`microBatch maxWaitMs must be a finite number >= 0, got ${maxWaitMs}`);
  }

  return (source) =>
    new Observable<T[]>((subscriber) => {
      let batch: T[] = [];
      let timer: Subscription | null = null;

      const emit = (): void => {
        if (timer !== null) {
          timer.unsubscribe();
          timer = null;
        }
        const out = batch;
        batch = [];
        subscriber.next(out);
      };

      const onTimer = (): void => {
        timer = null;
        if (batch.length > 0) emit();
      };

      const upstream = source.subscribe({
        next: (items) => {
          let i = 0;
          // `closed` turns true when a consumer unsubscribes from inside `next`: stop there.
          while (i < items.length && !subscriber.closed) {
            const take = Math.min(maxItems - batch.length, items.length - i);
            if (batch.length === 0) {
              // A fresh batch copies a slice in one go; the input array stays the producer's.
              batch = items.slice(i, i + take);
            } else {
              for (let k = i; k < i + take; k++) batch.push(items[k]!);
            }
            i += take;
            if (batch.length >= maxItems) emit();
          }
          // The wait counts from the first item of the current batch, so start it only when a
          // batch begins (after a size-triggered emit, the remainder begins a new one).
          if (batch.length > 0 && timer === null && !subscriber.closed) {
            timer = scheduler.schedule(onTimer, maxWaitMs);
          }
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          if (batch.length > 0) emit();
          subscriber.complete();
        },
      });

      return () => {
        upstream.unsubscribe();
        if (timer !== null) {
          timer.unsubscribe();
          timer = null;
        }
        batch = [];
      };
    });
}
