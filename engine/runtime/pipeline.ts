import {
  asyncScheduler,
  concatMap,
  EMPTY,
  endWith,
  filter,
  from,
  identity,
  ignoreElements,
  interval,
  lastValueFrom,
  map,
  merge,
  mergeMap,
  mergeWith,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
  share,
  takeUntil,
  tap,
} from 'rxjs';
import { batchWhileBusy, type Work } from '../../operators/batchWhileBusy.js';
import { keyGroupOfSubject } from '../../operators/keyGroups.js';
import { countedSelection, type RegionSurge } from '../../operators/regionSurge.js';
import { routeByPartition } from '../../operators/route.js';
import type { Trigger } from '../../operators/types.js';
import type { Checkpointer, CheckpointStats } from '../checkpoint/checkpointer.js';
import type { EventSource, RawEvent } from '../source/eventSource.js';
import { Deliverer, type PipelineSinks } from './deliverer.js';
import type { WorkerBacklog } from './liveStatus.js';
import type { Metrics } from './metrics.js';
import { TaskDelivery } from './taskDelivery.js';
import { TASKS_IN_FLIGHT, type WorkerPool } from './workerPool.js';
import type { BatchOutput, ControlRequest } from './workerProtocol.js';

export type { PipelineSinks } from './deliverer.js';

/** How the pipeline runs. */
export interface PipelineOptions {
  source: EventSource;
  pool: WorkerPool;
  sinks: PipelineSinks;
  /** Wall clock: `firedAt` of triggers and the ticks of live streams. */
  clock: () => number;
  /**
   * Live streams tick on the wall clock (a quiet partition at the live edge moves its watermark with
   * it); replays (false) go by event time only and publish what is left at the end.
   */
  live: boolean;
  /**
   * Most events a worker gets in one task. Events wait for a batch only while their worker is busy
   * (operators/batchWhileBusy.ts). @default 1000
   */
  batchMaxEvents?: number;
  /** Tick period of live streams. @default 5000 */
  tickIntervalMs?: number;
  /** Scheduler of the tick timer (virtual time in tests). @default asyncScheduler */
  scheduler?: SchedulerLike;
  metrics?: Metrics;
  /** Counts the events routed to each worker and applied by it (`cxstream status`). */
  backlog?: WorkerBacklog;
  /** Called with each output after the sinks accepted it (progress, demo summary). */
  onOutput?: (output: BatchOutput) => void;
  /**
   * Tasks for every partition (rule swaps) run in order with the event batches: each partition
   * applies one between two of its batches (engine/config/ruleReloader.ts). Requests after the
   * source completed are not run.
   */
  controls$?: Observable<ControlRequest>;
  /**
   * Identity stitching (engine/identity/identityStage.ts): the source's chunks pass it in stream
   * order before they are routed; it names each event's customer and merges customers.
   */
  identity?: OperatorFunction<RawEvent[], RawEvent[]>;
  /**
   * Aggregates over all partitions (complaint_surge, docs/AGGREGATES.md) fed with the workers'
   * counted rows; their triggers go to the same sinks. Replays evaluate them up to the last event
   * time (or `advanceTo`) at the end; live streams only as every partition's watermark passes.
   */
  aggregates?: readonly RegionSurge[];
  /**
   * Replays: once the source completed, move every partition's event time (and the aggregates) to
   * this time, so timers of silent customers due by then fire (`replay --until`, or the last event).
   */
  advanceTo?: number;
  /**
   * How long a NATS sink (triggers, dead letters, profiles) may keep failing before the engine gives
   * up (a broker outage is ridden through up to this). @default 300000
   */
  maxOutageMs?: number;
  /** Throws when the instance lost its key groups' leases: nothing more is published (engine/cluster/leases.ts). */
  fence?: () => void;
  /**
   * Exactly-once mode: acks wait for a checkpoint that covers them (engine/checkpoint/checkpointer.ts);
   * a last checkpoint is taken when the source completes. Without it, delivered events are acked.
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

/** What a partition's worker got and gave back for one task. */
interface PartitionResult {
  p: number;
  batch: readonly RawEvent[] | undefined;
  control: ControlRequest | undefined;
  out: BatchOutput;
  started: number;
}

/**
 * The main-thread graph: source → identity → route by customer → per partition, event batches and control
 * tasks (ticks, rule swaps) in order to its worker → sinks → ack. Resolves when the source has
 * completed and every output is delivered, including the end of a replay and the last checkpoint.
 */
export async function runPipeline(options: PipelineOptions): Promise<void> {
  const { source, pool, metrics, backlog } = options;
  const partitions = pool.partitions;
  const deliverer = new Deliverer({
    sinks: options.sinks,
    metrics,
    onOutput: options.onOutput,
    maxOutageMs: options.maxOutageMs ?? 300_000,
    fence: options.fence,
  });
  // Which outputs of each partition's tasks were delivered: a checkpoint waits for all before its cut.
  const delivery = new TaskDelivery(partitions);
  const aggregates = options.aggregates ?? [];
  /** Delivers a partition's output; the aggregates see it first, in the partition's order. */
  const deliver = async (p: number, output: BatchOutput): Promise<BatchOutput> => {
    const out = aggregate(aggregates, output);
    await deliverer.deliver(out);
    delivery.delivered(p, out.task);
    return out;
  };
  const deliverAll = async (outs: BatchOutput[]) => {
    for (const [p, out] of outs.entries()) await deliver(p, out);
  };
  if (aggregates.length > 0) {
    // Before any batch (a partition runs its tasks in submission order): workers report the counted rows.
    const selection = countedSelection(aggregates.map((a) => a.spec));
    await deliverAll(await pool.broadcast({ kind: 'aggregates', selection }));
  }

  const checkpointer = options.checkpoints?.checkpointer;
  const slices$ = source.chunks$.pipe(
    tap((chunk) => checkpointer?.track(chunk.map((e) => e.seq))),
    ownedOnly(pool, (seqs) => (checkpointer ? checkpointer.delivered(seqs) : source.done(seqs))),
    options.identity ?? identity,
    routeByPartition<RawEvent>(partitions, pool.keyGroups, pool.ownedKeyGroups),
    share(),
  );
  const sourceDone$ = slices$.pipe(ignoreElements(), endWith(true), share());
  // Control tasks for every partition: rule swaps, and on live streams the wall-clock ticks. A tick
  // carries the wall clock only when the source has confirmed it holds every message of the stream
  // (the live edge); it goes behind the events already routed, so it never overtakes them.
  const ticks$: Observable<ControlRequest> = options.live
    ? interval(options.tickIntervalMs ?? 5000, options.scheduler ?? asyncScheduler).pipe(
        concatMap(() => from(source.caughtUp())),
        map((caughtUp) => ({ task: { kind: 'tick', now: caughtUp ? options.clock() : null, flush: false } })),
      )
    : EMPTY;
  const controls$ = merge(options.controls$ ?? EMPTY, ticks$).pipe(takeUntil(sourceDone$), share());
  const pendingControls = new Map<ControlRequest, BatchOutput[]>();

  const batches$: Observable<PartitionResult> = merge(
    ...Array.from({ length: partitions }, (_, p) =>
      slices$.pipe(
        map((slices) => slices[p]!),
        filter((slice) => slice.length > 0),
        tap((slice) => {
          if (backlog) backlog.routed[p]! += slice.length;
        }),
        map((items): Work<RawEvent, ControlRequest> => ({ items })),
        mergeWith(controls$.pipe(map((control): Work<RawEvent, ControlRequest> => ({ control })))),
        // A partition's batches reach its worker in stream order, and a control task goes in between
        // two of them, never past an event still waiting here. Events are sent at once while fewer
        // than TASKS_IN_FLIGHT tasks are out, so the worker never waits for the main thread;
        // otherwise they wait and go together with the next task.
        batchWhileBusy<RawEvent, ControlRequest, PartitionResult>({
          maxItems: options.batchMaxEvents ?? 1000,
          concurrency: TASKS_IN_FLIGHT,
          run: async ({ items: batch, control }) => {
            const started = performance.now();
            const out = batch
              ? await pool.runEvents(p, batch, options.clock())
              : await pool.run(p, (control as ControlRequest).task);
            if (batch && backlog) backlog.applied[p]! += batch.length;
            if (control?.settleOnRun && control.resolve)
              settleControl(pendingControls, control, p, out, partitions);
            return { p, batch, control, out, started };
          },
        }),
      ),
    ),
  );

  if (checkpointer && options.checkpoints)
    checkpointer.start({ ...options.checkpoints, outputsDelivered: (p, task) => delivery.when(p, task) });
  try {
    await lastValueFrom(
      batches$.pipe(
        // Sinks of different batches overlap (a ClickHouse insert holds a batch up to flushIntervalMs);
        // the source bounds what is in flight, and acks only contiguous prefixes of what is done.
        mergeMap(async ({ p, batch, control, out: output, started }) => {
          const out = await deliver(p, output);
          if (control) {
            if (control.waitForEarlier) await delivery.when(p, out.task);
            if (control.resolve && !control.settleOnRun)
              settleControl(pendingControls, control, p, out, partitions);
            return;
          }
          if (!batch) return;
          const seqs = batch.map((e) => e.seq);
          if (checkpointer) checkpointer.delivered(seqs);
          else source.done(seqs);
          metrics?.batchSeconds.observe((performance.now() - started) / 1000);
          metrics?.inFlight.set(source.stats().inFlight);
        }),
      ),
      { defaultValue: undefined },
    );
  } finally {
    checkpointer?.stop();
  }
  const { advanceTo } = options;
  if (advanceTo !== undefined) await deliverAll(await pool.broadcast({ kind: 'advance', to: advanceTo }));
  if (!options.live && aggregates.length > 0) {
    // A finished replay has all its data: evaluate up to the window holding its last event (or --until).
    const fired: Trigger[] = [];
    for (const a of aggregates) fired.push(...a.advanceTo(Math.max(advanceTo ?? -Infinity, a.lastWindowEnd)));
    if (fired.length > 0) await deliverer.deliver(triggersOnly(fired));
  }
  // The end of a replay publishes every changed profile; a live drain leaves them to event time
  // (what it publishes must not depend on when the engine was stopped).
  if (!options.live) await deliverAll(await pool.broadcast({ kind: 'tick', now: null, flush: true }));
  await options.sinks.clickhouse.flush();
  if (checkpointer) await deliverer.lastCheckpoint(checkpointer, options.checkpoints?.onCheckpoint);
}

/**
 * An instance that owns only some key groups (several share the deployment, docs/SCALING.md) reads
 * the whole stream and keeps its key groups' events; the others are done at once (their owner
 * processes them). The identity of an instance that owns every key group.
 */
function ownedOnly(
  pool: Pick<WorkerPool, 'keyGroups' | 'ownedKeyGroups'>,
  done: (seqs: number[]) => void,
): OperatorFunction<RawEvent[], RawEvent[]> {
  if (pool.ownedKeyGroups.length === pool.keyGroups) return identity;
  const owns = new Uint8Array(pool.keyGroups);
  for (const kg of pool.ownedKeyGroups) owns[kg] = 1;
  return map((chunk) => {
    const kept: RawEvent[] = [];
    const others: number[] = [];
    for (const e of chunk) {
      if (owns[keyGroupOfSubject(e.subject, pool.keyGroups)] === 1) kept.push(e);
      else others.push(e.seq);
    }
    if (others.length > 0) done(others);
    return kept;
  });
}

/** Feeds a worker's output (each key group in its order) to the aggregates; adds their triggers. */
function aggregate(aggregates: readonly RegionSurge[], out: BatchOutput): BatchOutput {
  if (aggregates.length === 0 || out.counted === undefined) return out;
  const fired: Trigger[] = [];
  for (const a of aggregates) for (const c of out.counted) for (const t of a.observe(c.kg, c)) fired.push(t);
  return fired.length === 0 ? out : { ...out, triggers: [...out.triggers, ...fired] };
}

/** Resolves a rule swap once every partition delivered its output. */
function settleControl(
  pending: Map<ControlRequest, BatchOutput[]>,
  control: ControlRequest,
  p: number,
  out: BatchOutput,
  partitions: number,
): void {
  const outs = pending.get(control) ?? [];
  outs[p] = out;
  pending.set(control, outs);
  if (outs.filter(Boolean).length === partitions) {
    pending.delete(control);
    control.resolve?.(outs);
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
    task: 0,
  };
}
