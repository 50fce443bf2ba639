/**
 * Recovery at start-up: the partitions from their checkpoints, the aggregates at the checkpoints' cut
 * (from ClickHouse), and the ledger of trigger ids already published (docs/DELIVERY.md).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { RegionSurge } from '../../operators/regionSurge.js';
import { clickHouseDatabase } from '../../sinks/clickhouse.js';
import { ConnectionWatch } from '../../sinks/connectionWatch.js';
import { LedgeredTriggerSink, TriggerLedger, triggersStreamSeq } from '../../sinks/triggerLedger.js';
import type { Config } from '../config/config.js';
import { natsNames } from '../nats/streams.js';
import { log } from '../runtime/log.js';
import type { Metrics } from '../runtime/metrics.js';
import type { EngineSinks } from '../runtime/openSinks.js';
import type { PipelineSinks } from '../runtime/pipeline.js';
import type { WorkerPool } from '../runtime/workerPool.js';
import type { EventSource } from '../source/eventSource.js';
import { restoreAggregates } from './aggregateRecovery.js';
import { Checkpointer, type CheckpointStats } from './checkpointer.js';
import { CheckpointError, type CheckpointStore } from './checkpointStore.js';

/** What recovery needs of the engine's run. */
export interface RecoveryOptions {
  config: Readonly<Config>;
  source: EventSource;
  sinks: PipelineSinks;
  metrics?: Metrics;
  checkpoints: {
    store: CheckpointStore;
    /** The NATS connection of the source and sinks (trigger ledger, consumer ack floor). */
    nc: NatsConnection | null;
    /** Durable consumer of the source: its ack floor must not be above the checkpoints. */
    durable: string;
    /** The source's `maxInFlight`: a checkpoint starts early when half of it waits for acks. */
    maxInFlight: number;
    /** The source starts where the checkpoints end: no ack floor to check. */
    sourceFollows?: boolean;
  };
}

/**
 * Rebuilds the aggregates at the restored checkpoints' cut from ClickHouse (docs/DELIVERY.md), so
 * a crash neither loses their counts nor evaluates a window twice.
 */
async function recoverAggregates(
  options: RecoveryOptions,
  aggregates: RegionSurge[],
  lastSeqs: number[] | null,
) {
  const { sinks, config } = options;
  // EngineSinks (openSinks) carry the client the events were written with; other sinks have no history.
  const client = (sinks as Partial<EngineSinks>).clickhouseClient;
  if (!client) {
    log.warn(
      'aggregates start empty after a restart: the sinks have no ClickHouse client to rebuild them from',
    );
    return;
  }
  if (lastSeqs === null) {
    log.warn(
      'aggregates start empty: the checkpoints were written by a version without key groups, whose ' +
        'ClickHouse rows are numbered per partition',
    );
    return;
  }
  const stats = await restoreAggregates({
    aggregates,
    lastSeqs,
    client,
    database: clickHouseDatabase(config.clickhouse.url),
  });
  log.info({ ...stats, ms: Math.round(stats.ms) }, 'aggregates recovered');
}

/**
 * Restores the partitions from their checkpoints, the aggregates at their cut, and loads the trigger
 * ledger; what runPipeline needs.
 */
export async function recover(options: RecoveryOptions, pool: WorkerPool, aggregates: RegionSurge[]) {
  const { store, nc, durable, maxInFlight } = options.checkpoints;
  const { config, metrics } = options;
  const jsm = nc ? await jetstreamManager(nc) : null;
  const checkpointer = new Checkpointer({
    pool,
    store,
    source: options.source,
    // a checkpoint that asks while the broker restarts fails at once and is tried again, instead of
    // waiting out the request timeout (sinks/connectionWatch.ts)
    triggersSeq: jsm && nc ? () => ConnectionWatch.of(nc).call(() => triggersStreamSeq(jsm)) : undefined,
    eventsSeq:
      jsm && nc
        ? () =>
            ConnectionWatch.of(nc).call(() =>
              jsm.streams.info(natsNames.eventsStream).then((i) => i.state.last_seq),
            )
        : undefined,
    maxDeltas: config.checkpoint.maxDeltas,
  });
  const recovery = await checkpointer.recover();
  // before 'state recovered': supervisors and the fault harness take that line as ready
  if (aggregates.length > 0) await recoverAggregates(options, aggregates, recovery.keyGroupSeqs);
  if (jsm && !options.checkpoints.sourceFollows) {
    const ackFloor = await jsm.consumers
      .info(natsNames.eventsStream, durable)
      .then((info) => info.ack_floor.stream_seq)
      .catch(() => 0);
    if (ackFloor > recovery.coveredSeq) {
      // acks never pass a durable checkpoint: the state is older than the consumer (wiped or another dir)
      throw new CheckpointError(
        `the consumer ${durable} has acked up to ${ackFloor}, but the checkpoints in ${store.location} ` +
          `cover only up to ${recovery.coveredSeq}: events in between would be missing from the state. ` +
          'Point the engine at its checkpoints, or delete the durable consumer to rebuild state from the stream.',
        store.location,
      );
    }
  }
  if (nc && options.sinks.triggers instanceof LedgeredTriggerSink) {
    options.sinks.triggers.ledger = await TriggerLedger.read(nc, recovery.triggersSeq);
  }
  log.info(
    {
      restored: recovery.restored.length,
      coveredSeq: recovery.coveredSeq,
      bytes: recovery.bytes,
      // several instances share the records: which ones this one restored from
      ...(recovery.sources.some((s) => s.record.includes('/')) && { sources: recovery.sources }),
      ms: Math.round(recovery.ms),
      publishedTriggerIds:
        options.sinks.triggers instanceof LedgeredTriggerSink ? options.sinks.triggers.ledger.size : 0,
      store: store.location,
    },
    'state recovered',
  );
  return {
    checkpointer,
    /** What the state was restored from (`cxstream status`). */
    recovery,
    intervalMs: config.checkpoint.intervalMs,
    earlyAt: Math.max(1, Math.floor(maxInFlight / 2)),
    onCheckpoint: (stats: CheckpointStats) => {
      metrics?.checkpointSeconds.observe(stats.ms / 1000);
      metrics?.checkpointBytes.set(stats.bytes);
      metrics?.checkpointTime.set(Date.now() / 1000);
      log.debug(stats, 'checkpoint');
    },
    onError: (err: unknown) => log.warn({ err }, 'checkpoint failed; acks wait for the next one'),
  };
}
