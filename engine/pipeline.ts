import {
  asyncScheduler,
  concatMap,
  filter,
  interval,
  lastValueFrom,
  map,
  merge,
  mergeMap,
  type Observable,
  type SchedulerLike,
  Subject,
  share,
  takeUntil,
} from 'rxjs';
import { microBatch } from '../operators/microBatch.js';
import { routeByPartition } from '../operators/route.js';
import type { EventRow, ProfileRow, Reject, Trigger } from '../operators/types.js';
import type { Metrics } from './metrics.js';
import type { BatchOutput, EventSource, RawEvent } from './types.js';
import type { WorkerPool } from './workerPool.js';

/** Where a batch's outputs go; each promise resolves once the sink has accepted them durably. */
export interface PipelineSinks {
  triggers: { publish(triggers: Trigger[]): Promise<void> };
  deadLetters: { publish(rejects: Reject[]): Promise<void> };
  profiles: { put(rows: ProfileRow[]): Promise<void> };
  clickhouse: {
    writeEvents(rows: EventRow[]): Promise<void>;
    writeTriggers(rows: Trigger[]): Promise<void>;
    writeProfiles(rows: ProfileRow[]): Promise<void>;
    flush(): Promise<void>;
  };
}

/** How the pipeline runs. */
export interface PipelineOptions {
  source: EventSource;
  pool: WorkerPool;
  sinks: PipelineSinks;
  /** Wall clock: `firedAt` of triggers and the profile ticks. */
  clock: () => number;
  /**
   * Live streams publish due profiles on a wall-clock tick; replays (false) go by event time only
   * and publish what is left at the end.
   */
  live: boolean;
  /** Most events a worker gets in one task. @default 1000 */
  batchMaxEvents?: number;
  /** Longest a partition's first event waits for its batch to fill. @default 20 */
  batchMaxWaitMs?: number;
  /** Profile tick period of live streams. @default 5000 */
  tickIntervalMs?: number;
  /** Scheduler of the batch and tick timers (virtual time in tests). @default asyncScheduler */
  scheduler?: SchedulerLike;
  metrics?: Metrics;
  /** Called with each batch's outputs after the sinks accepted them (progress, demo summary). */
  onOutput?: (output: BatchOutput) => void;
}

/**
 * The main-thread graph: source → route by customer → micro-batch per partition → worker (in
 * order) → sinks → ack. Resolves when the source has completed and every output is delivered,
 * including the final profile flush.
 */
export async function runPipeline(options: PipelineOptions): Promise<void> {
  const { source, pool, sinks, clock, metrics } = options;
  const scheduler = options.scheduler ?? asyncScheduler;
  const partitions = pool.partitions;

  const deliver = async (out: BatchOutput): Promise<void> => {
    await Promise.all([
      out.triggers.length > 0 ? sinks.triggers.publish(out.triggers) : undefined,
      out.rejects.length > 0 ? sinks.deadLetters.publish(out.rejects) : undefined,
      out.profiles.length > 0 ? sinks.profiles.put(out.profiles) : undefined,
      out.events.length > 0 ? sinks.clickhouse.writeEvents(out.events) : undefined,
      out.triggers.length > 0 ? sinks.clickhouse.writeTriggers(out.triggers) : undefined,
      out.profiles.length > 0 ? sinks.clickhouse.writeProfiles(out.profiles) : undefined,
    ]);
    if (metrics) {
      metrics.events.inc(out.events.length);
      metrics.deadLetters.inc(out.rejects.length);
      metrics.profiles.inc(out.profiles.length);
      for (const t of out.triggers) metrics.triggers.inc({ rule: t.rule });
    }
    options.onOutput?.(out);
  };

  const slices$ = source.chunks$.pipe(routeByPartition<RawEvent>(partitions), share());
  const batches$: Observable<{ batch: RawEvent[]; out: BatchOutput; started: number }> = merge(
    ...Array.from({ length: partitions }, (_, p) =>
      slices$.pipe(
        map((slices) => slices[p]!),
        filter((slice) => slice.length > 0),
        microBatch<RawEvent>({
          maxItems: options.batchMaxEvents ?? 1000,
          maxWaitMs: options.batchMaxWaitMs ?? 20,
          scheduler,
        }),
        // concatMap: a partition's batches reach its worker one after another, in stream order.
        concatMap(async (batch) => {
          const started = performance.now();
          return { batch, out: await pool.runEvents(p, batch, clock()), started };
        }),
      ),
    ),
  );

  const finished$ = new Subject<void>();
  const ticks = options.live
    ? interval(options.tickIntervalMs ?? 5000, scheduler)
        .pipe(
          takeUntil(finished$),
          concatMap(async () => {
            for (const out of await pool.broadcast({ kind: 'tick', now: clock(), flush: false }))
              await deliver(out);
          }),
        )
        .subscribe({ error: () => {} })
    : null;

  try {
    await lastValueFrom(
      batches$.pipe(
        // Sinks of different batches overlap (a ClickHouse insert holds a batch up to flushIntervalMs);
        // the source bounds what is in flight, and acks only contiguous prefixes of what is done.
        mergeMap(async ({ batch, out, started }) => {
          await deliver(out);
          source.done(batch.map((e) => e.seq));
          metrics?.batchSeconds.observe((performance.now() - started) / 1000);
          if (metrics) metrics.inFlight.set(source.stats().inFlight);
        }),
      ),
      { defaultValue: undefined },
    );
  } finally {
    finished$.next();
    ticks?.unsubscribe();
  }
  for (const out of await pool.broadcast({ kind: 'tick', now: clock(), flush: true })) await deliver(out);
  await sinks.clickhouse.flush();
}
