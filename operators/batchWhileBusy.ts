import { Observable, type OperatorFunction } from 'rxjs';

/** One unit of input: items to process, or a control task that runs between two batches. */
export type Work<T, C> = { items: readonly T[]; control?: undefined } | { items?: undefined; control: C };

/** Options of {@link batchWhileBusy}. */
export interface BatchWhileBusyOptions<T, C, R> {
  /** Most items in one task (a larger input array still goes whole). */
  maxItems: number;
  /** Tasks running at once; items arriving meanwhile wait and join the next task. */
  concurrency: number;
  /** Runs one task: a batch of items, or a control. */
  run: (work: Work<T, C>) => Promise<R>;
}

/**
 * Adaptive batching ("smart batching"): items go to `run` at once while fewer than `concurrency`
 * tasks are running, and wait for a running task to finish otherwise — so a quiet stream pays no
 * batching delay, and a busy one gets batches that grow with the backlog (up to `maxItems`).
 *
 * Order: tasks start in input order — a control only after every item that came before it, and
 * before any item after it — and their results are emitted in that order. On completion of the
 * input the waiting items go, and the output completes after the last result.
 */
export function batchWhileBusy<T, C, R>(
  options: BatchWhileBusyOptions<T, C, R>,
): OperatorFunction<Work<T, C>, R> {
  const { maxItems, concurrency, run } = options;
  if (!Number.isInteger(maxItems) || maxItems < 1) {
    throw new RangeError(`batchWhileBusy maxItems must be a positive integer, got ${maxItems}`);
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`batchWhileBusy concurrency must be a positive integer, got ${concurrency}`);
  }
  return (source) =>
    new Observable<R>((subscriber) => {
      /** Waiting input arrays, oldest first, and how many items they hold. */
      let waiting: Array<readonly T[]> = [];
      let waitingItems = 0;
      let running = 0;
      let inputDone = false;
      /** Results not yet emitted, in start order. */
      const results: Array<Promise<R>> = [];
      let emitting = false;

      const start = (work: Work<T, C>): void => {
        running++;
        const result = run(work);
        results.push(result);
        result.then(
          () => {
            running--;
            startWaiting(false);
            void emitInOrder();
          },
          (e: unknown) => subscriber.error(e),
        );
      };

      /** Starts tasks of waiting items while there is room (`all`: regardless of room). */
      const startWaiting = (all: boolean): void => {
        while (waitingItems > 0 && (all || running < concurrency)) {
          let n = 0;
          let take = 0;
          while (take < waiting.length && (take === 0 || n + waiting[take]!.length <= maxItems)) {
            n += waiting[take]!.length;
            take++;
          }
          const items = take === 1 ? waiting[0]! : waiting.slice(0, take).flat();
          waiting = waiting.slice(take);
          waitingItems -= n;
          start({ items });
        }
      };

      const emitInOrder = async (): Promise<void> => {
        if (emitting) return;
        emitting = true;
        while (results.length > 0 && !subscriber.closed) {
          let value: R;
          try {
            value = await results[0]!;
          } catch {
            return; // reported by `start`
          }
          results.shift();
          subscriber.next(value);
        }
        emitting = false;
        if (inputDone && waitingItems === 0 && results.length === 0) subscriber.complete();
      };

      const subscription = source.subscribe({
        next: (work) => {
          const { items } = work;
          if (items === undefined) {
            startWaiting(true); // a control is a barrier: what came before goes first
            start(work);
            return;
          }
          if (items.length === 0) return;
          waiting.push(items);
          waitingItems += items.length;
          startWaiting(false);
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => {
          inputDone = true;
          startWaiting(true);
          void emitInOrder();
        },
      });
      return () => subscription.unsubscribe();
    });
}
