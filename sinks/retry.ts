/**
 * Retries with capped back-off: the one retry policy of the engine's outputs and inputs (NATS sinks,
 * ClickHouse inserts, the JetStream source, the last checkpoint of a drain). Delays come from
 * nats.js's `backoff()` (jittered steps); waits are cancellable with an AbortSignal.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { backoff } from '@nats-io/transport-node';

/** Options of {@link retrying}. */
export interface RetryOptions {
  /** Delay before each retry, in ms (the last one repeats). @default [100, 250, 500, 1000, 2000, 5000] */
  delaysMs?: number[];
  /** Give up (rethrow) once failing for this long. @default Infinity */
  giveUpAfterMs?: number;
  /** Give up after this many attempts. @default Infinity */
  maxAttempts?: number;
  /** Errors retrying cannot mend: rethrown at once (may ask a server first). @default none */
  fatal?: (error: unknown) => boolean | Promise<boolean>;
  /** Stops waiting: the last error is rethrown. */
  signal?: AbortSignal;
  /** Called before each retry (logs, metrics). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /**
   * Where the operation has got to (a stream position, a count), read after each failure: when it
   * moved since the previous failure, the operation got somewhere in between, and the back-off, the
   * attempt limit and the failing time start again from the beginning. @default none (never moves)
   */
  progress?: () => unknown;
  /** @default Date.now */
  clock?: () => number;
}

/**
 * Opening a bucket or reading one just created: instances of a deployment starting together create
 * the replicated buckets at once, and a bucket answers only once its replicas elected a leader.
 * A few tries over ~5 s, then the error (a supervisor restarts the engine).
 */
export const BUCKET_RETRY = { maxAttempts: 5, delaysMs: [500, 1000, 2000] } as const satisfies RetryOptions;

/** Why a retried operation gave up: the last error, and how long it kept failing. */
export class RetriesExhaustedError extends Error {
  override readonly name = 'RetriesExhaustedError';
  constructor(
    readonly what: string,
    readonly attempts: number,
    readonly failingForMs: number,
    options: ErrorOptions,
  ) {
    super(
      `${what} kept failing for ${Math.round(failingForMs / 1000)} s (${attempts} attempts): ${
        (options.cause as Error | undefined)?.message ?? String(options.cause)
      }`,
      options,
    );
  }
}

/**
 * Runs `op` until it succeeds; `op` gets the attempt number (1 = first). Gives up with a
 * {@link RetriesExhaustedError} after `giveUpAfterMs` of failing or `maxAttempts` (both counted since
 * the last `progress`), or rethrows a fatal error, or the last error once `signal` aborts.
 */
export async function retrying<T>(
  what: string,
  op: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const clock = options.clock ?? Date.now;
  const policy = backoff(options.delaysMs ?? [100, 250, 500, 1000, 2000, 5000]);
  const giveUpAfter = options.giveUpAfterMs ?? Number.POSITIVE_INFINITY;
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  let failingSince: number | null = null;
  /** Failures since the last progress. */
  let failures = 0;
  let position = options.progress?.();
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (e) {
      if (options.signal?.aborted || (await options.fatal?.(e))) throw e;
      if (options.progress) {
        const now = options.progress();
        if (!Object.is(now, position)) {
          position = now;
          failures = 0;
          failingSince = null;
        }
      }
      failures++;
      failingSince ??= clock();
      const failingFor = clock() - failingSince;
      if (failures >= maxAttempts || failingFor >= giveUpAfter)
        throw new RetriesExhaustedError(what, failures, failingFor, { cause: e });
      // backoff(0) is the first step of the policy; nats.js adds jitter
      const delay = Math.max(0, Math.min(policy.backoff(failures - 1), giveUpAfter - failingFor));
      options.onRetry?.(e, attempt, delay);
      try {
        await sleep(delay, undefined, options.signal ? { signal: options.signal } : undefined);
      } catch {
        throw e; // aborted while waiting
      }
    }
  }
}
