import {
  asyncScheduler,
  concatMap,
  EMPTY,
  endWith,
  filter,
  ignoreElements,
  interval,
  lastValueFrom,
  map,
  merge,
  mergeMap,
  mergeWith,
  type Observable,
  type SchedulerLike,
  Subject,
  share,
  takeUntil,
  tap,
} from 'rxjs';
import { batchWhileBusy, type Work } from '../../operators/batchWhileBusy.js';
import { countedSelection, type RegionSurge } from '../../operators/regionSurge.js';
import { routeByPartition } from '../../operators/route.js';
import type { ProfileRow, Reject, Trigger } from '../../operators/types.js';
import type { EncodedRows } from '../../sinks/clickhouseRows.js';
import type { Checkpointer, CheckpointStats } from '../checkpoint/checkpointer.js';
import type { EventSource, RawEvent } from '../source/eventSource.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';
import { TASKS_IN_FLIGHT, type WorkerPool } from './workerPool.js';
import type { BatchOutput, ControlRequest } from './workerProtocol.js';

/** Where a batch's outputs go; each promise resolves once the sink has accepted them durably. */
export interface PipelineSinks {
  triggers: { publish(triggers: Trigger[]): Promise<void> };
  deadLetters: { publish(rejects: Reject[]): Promise<void> };
  profiles: { put(rows: ProfileRow[]): Promise<void> };
  clickhouse: {
    /** Event rows the workers encoded in the writer's format. */
    writeEncodedEvents(rows: EncodedRows): Promise<void>;
    /** Profile rows the workers encoded in the writer's format; without it, `writeProfiles` gets the objects. */
    writeEncodedProfiles?(rows: EncodedRows): Promise<void>;
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
  /**
   * Most events a worker gets in one task. Events wait for a batch only while their worker is busy
   * (operators/batchWhileBusy.ts). @default 1000
   */
  batchMaxEvents?: number;
  /** Profile tick period of live streams. @default 5000 */
  tickIntervalMs?: number;
  /** Scheduler of the tick timer (virtual time in tests). @default asyncScheduler */
  scheduler?: SchedulerLike;
  metrics?: Metrics;
  /** Called with each batch's outputs after the sinks accepted them (progress, demo summary). */
  onOutput?: (output: BatchOutput) => void;
  /**
   * Tasks for every partition (rule swaps) run in order with the event batches: each partition
   * applies one between two of its batches (engine/config/ruleReloader.ts). Requests after the source
   * completed are not run.
   */
  controls$?: Observable<ControlRequest>;
  /**
   * Aggregates over all partitions (complaint_surge, docs/AGGREGATES.md) fed with the workers'
   * counted rows; their triggers go to the same sinks. Replays evaluate them up to the last event
   * time (or `advanceTo`) at the end; live streams only as every partition's watermark passes.
   */
  aggregates?: readonly RegionSurge[];
  /**
   * Replays: once the source completed, move every partition's event time (and the aggregates) to
   * this time, so timers of silent customers due by then fire (`replay --until`).
   */
  advanceTo?: number;
  /**
   * Exactly-once mode: acks wait for a checkpoint that covers them (engine/checkpoint/checkpointer.ts); a
   * last checkpoint is taken when the source completes. Without it, delivered events are acked.
   */
  checkpoints?: {
    checkpointer: Checkpointer;
    /** Period of the checkpoints. */
    intervalMs: number;
    /** Delivered events waiting for their ack that start a checkpoint at once. */
    earlyAt: number;
    onCheckpoint?: (stats: CheckpointStats) => void;
    onError: (error: unknown) => void;
  };
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

  /** Rules whose first run-time error was logged (once per rule). */
  const loggedRuleErrors = new Set<string>();
  const deliver = async (out: BatchOutput): Promise<void> => {
    await Promise.all([
      out.triggers.length > 0 ? sinks.triggers.publish(out.triggers) : undefined,
      out.rejects.length > 0 ? sinks.deadLetters.publish(out.rejects) : undefined,
      out.profiles.length > 0 ? sinks.profiles.put(out.profiles) : undefined,
      out.events.length > 0 ? sinks.clickhouse.writeEncodedEvents(out.events) : undefined,
      out.triggers.length > 0 ? sinks.clickhouse.writeTriggers(out.triggers) : undefined,
      out.profiles.length > 0
        ? out.profileRows && sinks.clickhouse.writeEncodedProfiles
          ? sinks.clickhouse.writeEncodedProfiles(out.profileRows)
          : sinks.clickhouse.writeProfiles(out.profiles)
        : undefined,
    ]);
    for (const e of out.ruleErrors ?? []) {
      metrics?.ruleErrors.inc({ rule: e.rule }, e.count);
      if (!loggedRuleErrors.has(e.rule)) {
        loggedRuleErrors.add(e.rule);
        log.warn(
          { rule: e.rule, error: e.first },
          'a rule expression failed at run time; it counts as false',
        );
      }
    }
    if (metrics) {
      metrics.events.inc(out.events.length);
      metrics.deadLetters.inc(out.rejects.length);
      if (out.lateEvents) metrics.lateEvents.inc(out.lateEvents);
      metrics.profiles.inc(out.profiles.length);
      for (const t of out.triggers) metrics.triggers.inc({ rule: t.rule });
    }
    options.onOutput?.(out);
  };

  const aggregates = options.aggregates ?? [];
  /** Feeds a partition's output (in that partition's order) to the aggregates; adds their triggers. */
  const aggregate = (p: number, out: BatchOutput): BatchOutput => {
    if (aggregates.length === 0 || out.counted === undefined) return out;
    const fired: Trigger[] = [];
    for (const a of aggregates) for (const t of a.observe(p, out.counted)) fired.push(t);
    return fired.length === 0 ? out : { ...out, triggers: [...out.triggers, ...fired] };
  };
  if (aggregates.length > 0) {
    // Before any batch (piscina runs a partition's tasks in submission order): workers report the counted rows.
    const selection = countedSelection(aggregates.map((a) => a.spec));
    for (const out of await pool.broadcast({ kind: 'aggregates', selection })) await deliver(out);
  }

  const checkpointer = options.checkpoints?.checkpointer;
  // Ticks and checkpoints take turns: a checkpoint must not run while a tick's outputs are in flight.
  let turn: Promise<unknown> = Promise.resolve();
  const serialize = (work: () => Promise<void>): Promise<void> => {
    const next = turn.then(work);
    turn = next.catch(() => {});
    return next;
  };

  const slices$ = source.chunks$.pipe(
    tap((chunk) => checkpointer?.track(chunk.map((e) => e.seq))),
    routeByPartition<RawEvent>(partitions),
    share(),
  );
  // Control requests stop with the source: the partition streams below complete only when both do.
  const controls$ = (options.controls$ ?? EMPTY).pipe(
    takeUntil(slices$.pipe(ignoreElements(), endWith(true))),
    share(),
  );
  const pendingControls = new Map<ControlRequest, BatchOutput[]>();
  type PartitionResult = {
    p: number;
    batch: readonly RawEvent[] | undefined;
    control: ControlRequest | undefined;
    out: BatchOutput;
    started: number;
  };
  const batches$: Observable<PartitionResult> = merge(
    ...Array.from({ length: partitions }, (_, p) =>
      slices$.pipe(
        map((slices) => slices[p]!),
        filter((slice) => slice.length > 0),
        map((items): Work<RawEvent, ControlRequest> => ({ items })),
        mergeWith(controls$.pipe(map((control): Work<RawEvent, ControlRequest> => ({ control })))),
        // A partition's batches reach its worker in stream order, and a control task goes in between
        // two of them — never sent past an event still waiting here, and never interleaved with a
        // batch (a worker runs one task at a time, in submission order). Events are sent at once
        // while fewer than TASKS_IN_FLIGHT tasks are out, so the worker never waits for the main
        // thread; otherwise they wait and go together with the next task.
        batchWhileBusy<RawEvent, ControlRequest, PartitionResult>({
          maxItems: options.batchMaxEvents ?? 1000,
          concurrency: TASKS_IN_FLIGHT,
          run: async ({ items: batch, control }) => {
            const started = performance.now();
            const out = batch
              ? await pool.runEvents(p, batch, clock())
              : await pool.run(p, (control as ControlRequest).task);
            return { p, batch, control, out, started };
          },
        }),
      ),
    ),
  );

  const finished$ = new Subject<void>();
  const ticks = options.live
    ? interval(options.tickIntervalMs ?? 5000, scheduler)
        .pipe(
          takeUntil(finished$),
          concatMap(() =>
            serialize(async () => {
              // A tick output has no rows, only watermarks: a partition's tick is answered after its
              // earlier batches, whose outputs the aggregates have seen by then.
              // Wall-clock time only once the source has no backlog: a partition catching up is not idle.
              const now = source.stats().caughtUp ? clock() : null;
              const outs = await pool.broadcast({ kind: 'tick', now, flush: false });
              for (let p = 0; p < outs.length; p++) await deliver(aggregate(p, outs[p]!));
            }),
          ),
        )
        .subscribe({ error: () => {} })
    : null;

  if (checkpointer && options.checkpoints) checkpointer.start({ ...options.checkpoints, serialize });
  try {
    await lastValueFrom(
      batches$.pipe(
        // Sinks of different batches overlap (a ClickHouse insert holds a batch up to flushIntervalMs);
        // the source bounds what is in flight, and acks only contiguous prefixes of what is done.
        mergeMap(async ({ p, batch, control, out: output, started }) => {
          // Synchronously, in the order of this partition's outputs (aggregates need that order).
          const out = aggregate(p, output);
          await deliver(out);
          if (control) {
            const outs = pendingControls.get(control) ?? [];
            outs[p] = out;
            pendingControls.set(control, outs);
            if (outs.filter(Boolean).length === partitions) {
              pendingControls.delete(control);
              control.resolve(outs);
            }
            return;
          }
          if (!batch) return;
          const seqs = batch.map((e) => e.seq);
          if (checkpointer) checkpointer.delivered(seqs);
          else source.done(seqs);
          metrics?.batchSeconds.observe((performance.now() - started) / 1000);
          if (metrics) metrics.inFlight.set(source.stats().inFlight);
        }),
      ),
      { defaultValue: undefined },
    );
  } finally {
    finished$.next();
    ticks?.unsubscribe();
    checkpointer?.stop();
  }
  await serialize(async () => {
    const { advanceTo } = options;
    if (advanceTo !== undefined) {
      const outs = await pool.broadcast({ kind: 'advance', to: advanceTo });
      for (let p = 0; p < outs.length; p++) await deliver(aggregate(p, outs[p]!));
    }
    if (!options.live && aggregates.length > 0) {
      // A finished replay has all its data: evaluate up to the window holding its last event (or --until).
      const fired: Trigger[] = [];
      for (const a of aggregates)
        fired.push(...a.advanceTo(Math.max(advanceTo ?? -Infinity, a.lastWindowEnd)));
      if (fired.length > 0) await deliver(triggersOnly(fired));
    }
  });
  await serialize(async () => {
    // Replays never read the wall clock: their results depend on the events alone.
    const now = options.live && source.stats().caughtUp ? clock() : null;
    for (const out of await pool.broadcast({ kind: 'tick', now, flush: true })) await deliver(out);
  });
  await sinks.clickhouse.flush();
  if (checkpointer) {
    await serialize(async () => {
      // The last checkpoint of a drain: a NATS request can time out right after an outage, so it is
      // tried a few times before the drain fails (nothing is lost then either: unacked events return).
      for (let attempt = 1; ; attempt++) {
        try {
          // not inside the optional call: `a?.(await b)` skips `b` when `a` is missing
          const stats = await checkpointer.checkpoint();
          options.checkpoints?.onCheckpoint?.(stats);
          return;
        } catch (e) {
          if (attempt >= 3) throw e;
          options.checkpoints?.onError(e);
          await new Promise((r) => setTimeout(r, 1000 * attempt));
        }
      }
    });
  }
}

/** An output holding only triggers (the aggregates' at the end of a replay). */
function triggersOnly(triggers: Trigger[]): BatchOutput {
  return {
    triggers,
    events: { length: 0, format: 'JSONEachRow', bytes: new Uint8Array(0) },
    profiles: [],
    rejects: [],
    lastSeq: 0,
  };
}
