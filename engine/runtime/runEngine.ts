import type { NatsConnection } from '@nats-io/transport-node';
import { EMPTY, merge, type Observable } from 'rxjs';
import { IdentityGraph } from '../../operators/identity.js';
import { RegionSurge, type ResolvedRegionSurge } from '../../operators/regionSurge.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { Tombstone } from '../../operators/tombstones.js';
import type { IdentityRow } from '../../sinks/customerErasure.js';
import type { TombstoneStore } from '../../sinks/tombstoneStore.js';
import type { CheckpointStore } from '../checkpoint/checkpointStore.js';
import { recover } from '../checkpoint/recovery.js';
import { aggregateFiles, loadAggregates } from '../config/aggregatesFile.js';
import { type Config, minEventTs } from '../config/config.js';
import { type IdentityLog, MemoryIdentityLog } from '../identity/identityLog.js';
import { serveIdentity } from '../identity/identityReport.js';
import { identityStage } from '../identity/identityStage.js';
import type { EventSource } from '../source/eventSource.js';
import type { AdminServer } from './admin.js';
import { ControlQueue } from './controlQueue.js';
import { type ForgetStores, serveForget } from './forget.js';
import { serveExplain } from './liveExplain.js';
import { type StatusService, startStatus } from './liveStatus.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';
import { type PipelineSinks, runPipeline } from './pipeline.js';
import { WorkerPool } from './workerPool.js';
import type { BatchOutput, ControlRequest } from './workerProtocol.js';

/** What runs the pipeline needs besides its source. */
export interface RunOptions {
  config: Readonly<Config>;
  /** Validated rules (engine/config/rulesFile.ts `loadRules`). */
  rules: RuleSpec[];
  source: EventSource;
  sinks: PipelineSinks;
  /** Live streams tick profiles on the wall clock; replays go by event time. */
  live: boolean;
  metrics?: Metrics;
  onOutput?: (output: BatchOutput) => void;
  /** Aggregate rules (complaint_surge). @default those of `aggregateFiles()` (CXSTREAM_AGGREGATES) */
  aggregates?: readonly ResolvedRegionSurge[];
  /** Rule swaps and other tasks run in order with each partition's batches (engine/config/ruleReloader.ts). */
  controls$?: Observable<ControlRequest>;
  /**
   * Called once the state is recovered from the checkpoints (at once without checkpoints), just
   * before the pipeline starts reading the source: readiness (`/readyz`).
   */
  onRecovered?: (recovery: { coveredSeq: number }) => void;
  /**
   * The key groups this instance owns, sorted, when several instances share the deployment
   * (engine/cluster/instance.ts): its workers split them and the events of others are skipped.
   * @default every key group
   */
  ownedKeyGroups?: readonly number[];
  /** The deployment this instance shares with others, and its name there (`cxstream status`). */
  deployment?: { name: string; instance: string };
  /** Throws when the instance lost the leases of its key groups: outputs stop (engine/cluster/leases.ts). */
  fence?: () => void;
  /** Answer live explain and status requests (`cx.admin.explain`, `cx.admin.status`) on this connection once the state is recovered. */
  admin?: NatsConnection;
  /**
   * Forgotten customers (KV `cx_tombstones`): their events are skipped and their restored state is
   * dropped; with `admin`, `cx.admin.forget` is answered too (engine/runtime/forget.ts).
   */
  forget?: {
    tombstones: TombstoneStore;
    clickhouse: ForgetStores['clickhouse'];
  };
  /** Forgotten customers when `forget` is not given (`replay --publish` reads them from NATS). */
  tombstones?: readonly Tombstone[];
  /**
   * Where identity decisions are recorded (engine/identity/identityLog.ts); absent: in memory for
   * this run. Not used when the config's `identity.enabled` is false.
   */
  identityLog?: IdentityLog;
  /** Stores rows of the ClickHouse `identities` table at each merge (absent: none are stored). */
  identityRows?: (rows: IdentityRow[]) => Promise<void>;
  /** Replays: event time every partition moves to once the source completed (`replay --until`). */
  advanceTo?: number;
  /**
   * Exactly-once effects (docs/DELIVERY.md): restore the partitions from `store`, ack only what a
   * checkpoint covers, and skip triggers already published. Live JetStream sources only.
   */
  checkpoints?: {
    store: CheckpointStore;
    /** The NATS connection of the source and sinks (trigger ledger, consumer ack floor). */
    nc: NatsConnection | null;
    /** Durable consumer of the source: its ack floor must not be above the checkpoints. */
    durable: string;
    /** The source's `maxInFlight`: a checkpoint starts early when half of it waits for acks. */
    maxInFlight: number;
    /**
     * The source starts where the restored checkpoints end, whatever the consumer acked before (an
     * instance whose key groups changed): its ack floor is not checked against them.
     */
    sourceFollows?: boolean;
  };
}

/** Starts the partition workers and runs the pipeline until the source completes. */
export async function runEngine(options: RunOptions): Promise<void> {
  const { config, rules } = options;
  const tombstones = options.forget ? await options.forget.tombstones.all() : [...(options.tombstones ?? [])];
  if (tombstones.length > 0) log.info({ tombstones: tombstones.length }, 'forgotten customers');
  const pool = new WorkerPool({
    partitions: config.engine.partitions,
    keyGroups: config.engine.keyGroups,
    ownedKeyGroups: options.ownedKeyGroups,
    rules,
    defaultTz: config.engine.defaultTz,
    profileIntervalMs: config.engine.profileIntervalMs,
    hotCustomers: config.engine.hotCustomers,
    allowedLatenessMs: config.engine.allowedLatenessMs,
    idleAfterMs: config.engine.idleAfterMs,
    maxFutureSkewMs: config.engine.maxFutureSkewMs,
    minEventTs: minEventTs(config),
    identity: config.identity,
    privacy: config.privacy,
    tombstones,
  });
  log.info({ partitions: pool.partitions, rules: rules.length }, 'engine started');
  const admins: AdminServer[] = [];
  // forget requests and identity merges go to the workers in order with the batches
  const forgets = new ControlQueue();
  const merges = new ControlQueue();
  let status: StatusService | null = null;
  try {
    const aggregates = (options.aggregates ?? loadAggregates(aggregateFiles())).map(
      (spec) => new RegionSurge(spec, pool.keyGroups, Date.now),
    );
    const checkpoints = options.checkpoints
      ? await recover({ ...options, checkpoints: options.checkpoints }, pool, aggregates)
      : undefined;
    if (checkpoints) {
      // A partition whose thread dies is restored from its checkpoint and replayed, the others go on.
      const { checkpointer } = checkpoints;
      pool.enableRestartInPlace({
        recover: (p, restore) => checkpointer.restorePartition(p, restore),
        maxRestarts: config.engine.workerRestarts,
        onRestart: (partition, tasks, ms) => {
          options.metrics?.workerRestarts.inc({ partition: String(partition) });
          log.warn(
            { partition, replayedTasks: tasks, ms: Math.round(ms) },
            'worker thread restarted in place',
          );
        },
      });
    }
    const identity = config.identity.enabled
      ? await startIdentity(options.identityLog ?? new MemoryIdentityLog(), config, merges, options, (key) =>
          pool.isForgotten(key),
        )
      : undefined;
    let first = checkpoints !== undefined;
    if (options.admin) admins.push(serveExplain(options.admin, pool));
    if (options.admin && identity) admins.push(serveIdentity(options.admin, identity.graph));
    if (options.admin && options.forget)
      admins.push(
        serveForget({
          nc: options.admin,
          tombstones: options.forget.tombstones,
          owns: (customer) => pool.partitionOf(customer) >= 0,
          control: (request) => forgets.run(request),
          ...(identity && {
            keysOf: identity.keysOf,
            forgetIdentities: (keys: string[]) => identity.graph.forget(keys),
          }),
          ...(checkpoints && { fullCheckpoint: () => checkpoints.checkpointer.fullCheckpoint() }),
          clickhouse: options.forget.clickhouse,
        }),
      );
    const { admin, metrics } = options;
    status = startStatus({
      pool,
      admin,
      metrics,
      checkpoints: options.checkpoints,
      recovered: checkpoints,
      deployment: options.deployment,
    });
    options.onRecovered?.({ coveredSeq: checkpoints?.recovery.coveredSeq ?? 0 });
    await runPipeline({
      identity: identity?.stage,
      aggregates,
      controls$: merge(options.controls$ ?? EMPTY, forgets.requests$, merges.requests$),
      advanceTo: options.advanceTo,
      checkpoints,
      source: options.source,
      pool,
      sinks: options.sinks,
      clock: Date.now,
      live: options.live,
      batchMaxEvents: config.engine.batchMaxEvents,
      tickIntervalMs: config.engine.tickIntervalMs,
      maxOutageMs: config.nats.maxOutageMs,
      metrics: options.metrics,
      backlog: status.backlog,
      fence: options.fence,
      onOutput: (out) => {
        // the fault tests measure recovery up to this line
        if (first && (out.events.length > 0 || out.rejects.length > 0)) {
          first = false;
          log.info({ lastSeq: out.lastSeq }, 'processing');
        }
        options.onOutput?.(out);
      },
    });
  } finally {
    forgets.close();
    merges.close();
    await Promise.all(admins.map((a) => a.close()));
    await status?.close();
    await pool.close();
  }
}

/** The identity stage over the graph the log holds (engine/identity/identityStage.ts). */
async function startIdentity(
  identityLog: IdentityLog,
  config: Readonly<Config>,
  merges: ControlQueue,
  { identityRows, metrics }: Pick<RunOptions, 'identityRows' | 'metrics'>,
  isForgotten: (key: string) => boolean,
) {
  const graph = new IdentityGraph(config.identity);
  const entries = await identityLog.read();
  for (const entry of entries) graph.apply(entry);
  if (entries.length > 0)
    log.info({ entries: entries.length, absorbed: graph.absorbedKeys }, 'identity log read');
  const stage = identityStage({
    graph,
    log: identityLog,
    control: (task) => merges.run({ task, settleOnRun: true }),
    decodeOptions: { minTs: minEventTs(config), identity: config.identity },
    isForgotten,
    onShared: (entry) => {
      metrics?.identitySharedIds.inc(entry.shared.length);
      // the kinds only: the values are personal data
      log.warn(
        {
          seq: entry.seq,
          kinds: entry.shared.map((id) => id.slice(0, id.indexOf(':'))),
          limit: config.identity.maxKeysPerId,
        },
        'identifiers presented by too many customer keys are shared now: they link nobody from here on',
      );
    },
    onMerge: async (entry) => {
      const { canonical, absorbed } = entry.merge;
      log.info({ seq: entry.seq, canonical, absorbed: absorbed.length }, 'customers merged');
      metrics?.identityMerges.inc(absorbed.length);
      // every key the merge moved, with the aliases each brought along
      const moved = graph.aliasesOf(canonical);
      await identityRows?.(
        moved.map((alias) => ({ customer: canonical, alias, seq: entry.seq, merged_at: entry.ts })),
      );
    },
  });
  /** A person's keys: its canonical customer first, then every alias. */
  const keysOf = (customer: string): string[] => {
    const canonical = graph.canonicalOf(customer);
    return [canonical, ...graph.aliasesOf(canonical)];
  };
  return { stage, keysOf, graph };
}
