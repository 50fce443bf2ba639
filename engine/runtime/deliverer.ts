/**
 * Hands a worker's output to the sinks and resolves once every sink has accepted it durably. A NATS
 * sink that fails (a broker restart, a node of a cluster going away) is retried with back-off while
 * the client reconnects, up to `maxOutageMs`; only then does the engine give up. ClickHouse inserts
 * retry inside the writer (with back-pressure). Triggers retried after a failure skip those the
 * stream already holds (sinks/triggerLedger.ts), so a retry never publishes one twice.
 */
import type { ProfileRow, Reject, Trigger } from '../../operators/types.js';
import type { EncodedRows } from '../../sinks/clickhouseRows.js';
import { isJetStreamPublishError } from '../../sinks/jetstreamPublisher.js';
import { retrying } from '../../sinks/retry.js';
import type { Checkpointer, CheckpointStats } from '../checkpoint/checkpointer.js';
import { log } from './log.js';
import type { Metrics } from './metrics.js';
import type { BatchOutput } from './workerProtocol.js';

/** Where a batch's outputs go; each promise resolves once the sink has accepted them durably. */
export interface PipelineSinks {
  triggers: {
    publish(triggers: Trigger[]): Promise<void>;
    /** A retry after a failed `publish`: only the triggers the stream does not hold yet. @default publish */
    publishAgain?(triggers: Trigger[]): Promise<void>;
  };
  deadLetters: { publish(rejects: Reject[]): Promise<void> };
  profiles: { put(rows: ProfileRow[]): Promise<void> };
  /**
   * Whether no stream stores `subject` (it was deleted, or never created): a publish that failed with
   * "no responders" then cannot be mended by retrying. Without it, such failures are retried.
   */
  streamMissing?(subject: string): Promise<boolean>;
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

/** Options of {@link Deliverer}. */
export interface DelivererOptions {
  sinks: PipelineSinks;
  metrics?: Metrics;
  /** Called with each output once the sinks accepted it. */
  onOutput?: (output: BatchOutput) => void;
  /** How long a NATS sink may keep failing before the engine gives up. */
  maxOutageMs: number;
  /**
   * Throws when this instance may no longer publish for its key groups (it lost their leases,
   * engine/cluster/leases.ts): checked before every output, and a sink that throws it is not retried.
   */
  fence?: () => void;
}

/** Delivers outputs to the sinks (see the file comment). */
export class Deliverer {
  /** Rules whose first run-time error was logged (once per rule). */
  private readonly loggedRuleErrors = new Set<string>();

  constructor(private readonly options: DelivererOptions) {}

  /** Resolves once every sink accepted the output. */
  async deliver(out: BatchOutput): Promise<void> {
    const { sinks, metrics } = this.options;
    const triggers = sinks.triggers;
    this.options.fence?.();
    await Promise.all([
      out.triggers.length > 0
        ? this.nats('publishing triggers', (attempt) =>
            attempt > 1 && triggers.publishAgain
              ? triggers.publishAgain(out.triggers)
              : triggers.publish(out.triggers),
          )
        : undefined,
      out.rejects.length > 0
        ? this.nats('publishing dead letters', () => sinks.deadLetters.publish(out.rejects))
        : undefined,
      out.profiles.length > 0
        ? this.nats('storing profiles', () => sinks.profiles.put(out.profiles))
        : undefined,
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
      if (!this.loggedRuleErrors.has(e.rule)) {
        this.loggedRuleErrors.add(e.rule);
        log.warn(
          { rule: e.rule, error: e.first },
          'a rule expression failed at run time; it counts as false',
        );
      }
    }
    if (metrics) {
      metrics.events.inc(out.events.length);
      metrics.deadLetters.inc(out.rejects.length);
      metrics.profiles.inc(out.profiles.length);
      metrics.lateEvents.inc(out.lateEvents ?? 0);
      metrics.tombstonedEvents.inc(out.tombstoned ?? 0);
      for (const t of out.triggers) metrics.triggers.inc({ rule: t.rule });
    }
    this.options.onOutput?.(out);
  }

  /**
   * The last checkpoint of a drain: a NATS request can time out right after an outage, so it is
   * tried a few times before the drain fails (nothing is lost then either: unacked events return).
   */
  async lastCheckpoint(
    checkpointer: Checkpointer,
    onCheckpoint?: (stats: CheckpointStats) => void,
  ): Promise<void> {
    const stats = await retrying('the last checkpoint', () => checkpointer.checkpoint(), {
      maxAttempts: 3,
      delaysMs: [1000, 2000],
      onRetry: (err) => log.warn({ err }, 'the last checkpoint failed; trying again'),
    });
    onCheckpoint?.(stats);
  }

  /**
   * A NATS sink call, retried through an outage of up to `maxOutageMs`. "No responders" during a
   * broker restart is transient (JetStream is loading its streams); with the stream gone it is not.
   */
  private nats(what: string, op: (attempt: number) => Promise<void>): Promise<void> {
    const { sinks } = this.options;
    return retrying(what, op, {
      giveUpAfterMs: this.options.maxOutageMs,
      fatal: async (e) =>
        (e instanceof Error && e.name === 'FencedError') ||
        (isJetStreamPublishError(e) &&
          e.failure === 'no-responders' &&
          (await sinks.streamMissing?.(e.subject)) === true),
      onRetry: (err, attempt, delayMs) => {
        this.options.fence?.();
        this.options.metrics?.sinkRetries.inc({ sink: what });
        if (attempt === 1 || attempt % 10 === 0)
          log.warn({ err, attempt, retryInMs: Math.round(delayMs) }, `${what} failed; retrying`);
      },
    });
  }
}
