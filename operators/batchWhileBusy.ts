import { from, Observable, type ObservableInput, type OperatorFunction, Subscription } from 'rxjs';

/** One unit of input: items to process, or a control task that runs between two batches. */
export type Work<T, C> = { items: readonly T[]; control?: undefined } | { items?: undefined; control: C };

/** Options of {@link batchWhileBusy}. */
export interface BatchWhileBusyOptions<T, C, R> {
  /** Most items in one task (a larger input array still goes whole). */
  maxItems: number;
  /** Tasks running at once, never more; what arrives meanwhile waits and joins the next task. */
  concurrency: number;
  /** Runs one task (a batch of items, or a control); its first value is the task's result. */
  run: (work: Work<T, C>) => ObservableInput<R>;
}

/**
 * Adaptive batching ("smart batching"): items go to `run` at once while fewer than `concurrency`
 * tasks are running, and wait for a running task to finish otherwise — so a quiet stream pays no
 * batching delay, and a busy one gets batches that grow with the backlog (up to `maxItems`).
 *
 * Order: tasks start in input order, never more than `concurrency` at a time (a worker that queues
 * tasks beyond its capacity may reorder them); a control starts alone, after every item that came
 * before it and before any item after it. Results are emitted in start order. When the input
 * completes, what waits still runs, and the output completes after the last result. Unsubscribing
 * starts nothing more and drops what waits.
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
      /** Input not started yet, oldest first. */
      const waiting: Array<Work<T, C>> = [];
      /** Started tasks whose results are not emitted yet, in start order. */
      const started: Array<{ done: boolean; value: R | undefined }> = [];
      let running = 0;
      let inputDone = false;
      const tasks = new Subscription();

      /** The next task: a control alone, or the waiting item arrays up to the next control and `maxItems`. */
      const next = (): Work<T, C> => {
        if (waiting[0]!.items === undefined) return waiting.shift()!;
        let n = 0;
        let take = 0;
        for (const w of waiting) {
          if (w.items === undefined || (take > 0 && n + w.items.length > maxItems)) break;
          n += w.items.length;
          take++;
        }
        const taken = waiting.splice(0, take);
        return take === 1 ? taken[0]! : { items: taken.flatMap((w) => w.items!) };
      };

      const pump = (): void => {
        while (running < concurrency && waiting.length > 0 && !subscriber.closed) start(next());
        while (started.length > 0 && started[0]!.done && !subscriber.closed) {
          subscriber.next(started.shift()!.value as R);
        }
        if (inputDone && running === 0 && waiting.length === 0 && started.length === 0) subscriber.complete();
      };

      const start = (work: Work<T, C>): void => {
        running++;
        const task = { done: false, value: undefined as R | undefined };
        started.push(task);
        let settled = false;
        tasks.add(
          from(run(work)).subscribe({
            next: (value) => {
              if (settled) return;
              settled = true;
              task.value = value;
              task.done = true;
              running--;
              pump();
            },
            error: (e: unknown) => subscriber.error(e),
            complete: () => {
              if (!settled) subscriber.error(new Error('batchWhileBusy: a task completed without a result'));
            },
          }),
        );
      };

      const input = source.subscribe({
        next: (work) => {
          if (work.items !== undefined && work.items.length === 0) return;
          waiting.push(work);
          pump();
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => {
          inputDone = true;
          pump();
        },
      });
      return () => {
        waiting.length = 0;
        input.unsubscribe();
        tasks.unsubscribe();
      };
    });
}
