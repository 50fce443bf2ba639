/**
 * Trigger de-duplication across crashes that does not depend on JetStream's duplicate window.
 *
 * A checkpoint records CX_TRIGGERS' last sequence taken before the partition states were
 * snapshotted; every trigger fired after those states was therefore stored above it. On recovery
 * the ids stored above the lowest such sequence are read back (the stream itself is the ledger)
 * and the replay, which regenerates the same ids, skips them. Ids are matched, not positions, so
 * timer triggers fired at a different point of the replay (wall-clock watermarks) are covered too.
 */
import { AckPolicy, DeliverPolicy, type JetStreamManager, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Trigger } from '../operators/types.js';
import { ConnectionWatch } from './connectionWatch.js';
import type { TriggerSink } from './natsTriggers.js';

const TRIGGERS_STREAM = 'CX_TRIGGERS';

/** The stream's last sequence now (0 when empty). */
export async function triggersStreamSeq(jsm: JetStreamManager, stream = TRIGGERS_STREAM): Promise<number> {
  const info = await jsm.streams.info(stream);
  return info.state.last_seq;
}

/** Ids of triggers already published above a stream sequence; each is suppressed once. */
export class TriggerLedger {
  private readonly ids: Set<string>;
  private suppressedCount = 0;

  constructor(ids: Iterable<string> = []) {
    this.ids = new Set(ids);
  }

  /** Reads the `Nats-Msg-Id` (the trigger id) of every message of the stream above `afterSeq`. */
  static async read(nc: NatsConnection, afterSeq: number, stream = TRIGGERS_STREAM): Promise<TriggerLedger> {
    const js = jetstream(nc);
    const last = await triggersStreamSeq(await js.jetstreamManager(), stream);
    const ids: string[] = [];
    if (last <= afterSeq) return new TriggerLedger();
    // an ephemeral consumer over the tail only; headers are enough, the bodies are not decoded
    const consumer = await js.consumers.get(stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: afterSeq + 1,
      ack_policy: AckPolicy.None,
    } as never);
    const messages = await consumer.consume({ max_messages: 10_000 });
    try {
      for await (const m of messages) {
        const id = m.headers?.get('Nats-Msg-Id') || (m.json<{ id?: string }>().id ?? '');
        if (id) ids.push(id);
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } finally {
      messages.stop();
    }
    return new TriggerLedger(ids);
  }

  /** Ids still waiting to be met by the replay. */
  get size(): number {
    return this.ids.size;
  }

  /** Triggers suppressed so far. */
  get suppressed(): number {
    return this.suppressedCount;
  }

  /** Whether the trigger was already published; an id is forgotten once met (it fires once). */
  take(id: string): boolean {
    if (!this.ids.delete(id)) return false;
    this.suppressedCount++;
    return true;
  }
}

/**
 * A trigger sink that drops the triggers a {@link TriggerLedger} knows as published (after a
 * recovery), and retries a failed publish without publishing any trigger twice: a publish that
 * failed (a timeout during a broker restart) may have stored some of its triggers, whatever the
 * stream's duplicate window; the retry reads the ids stored since before the failed publish began
 * and sends only the others.
 */
export class LedgeredTriggerSink implements TriggerSink {
  /** A CX_TRIGGERS sequence read before the publishes that start now: they are all stored above it. */
  private bound = 0;
  /** The bound each publish started under (keyed by the triggers array the caller retries with). */
  private readonly bounds = new WeakMap<Trigger[], number>();
  private readonly refresh: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly inner: TriggerSink,
    /** Replaced after each recovery. */
    public ledger: TriggerLedger,
    /** The connection of CX_TRIGGERS (retries read the stream); none: retries publish again as they are. */
    private readonly nc?: NatsConnection,
    /** How often the bound is read again (a retry reads the triggers stored since). @default 1000 */
    refreshMs = 1000,
  ) {
    if (nc) {
      const read = () => {
        jetstream(nc)
          .jetstreamManager()
          .then((jsm) => triggersStreamSeq(jsm))
          .then(
            (seq) => {
              this.bound = Math.max(this.bound, seq);
            },
            () => {}, // an outage: the older bound stays valid
          );
      };
      read();
      this.refresh = setInterval(read, refreshMs);
      this.refresh.unref();
    }
  }

  /** Publishes the triggers the ledger does not hold. */
  publish(triggers: Trigger[]): Promise<void> {
    this.bounds.set(triggers, this.bound);
    const fresh = this.ledger.size === 0 ? triggers : triggers.filter((t) => !this.ledger.take(t.id));
    return fresh.length > 0 ? this.inner.publish(fresh) : Promise.resolve();
  }

  /** A retry of `publish(triggers)`: only the triggers the stream does not hold since that publish began. */
  async publishAgain(triggers: Trigger[]): Promise<void> {
    if (!this.nc) return this.inner.publish(triggers);
    const nc = this.nc;
    // right after an outage: read once the connection is back, fail at once if it drops again
    const stored = await ConnectionWatch.of(nc).call(() =>
      TriggerLedger.read(nc, this.bounds.get(triggers) ?? this.bound),
    );
    const missing = triggers.filter((t) => !stored.take(t.id));
    if (missing.length > 0) await this.inner.publish(missing);
  }

  /** Stops reading the bound. */
  close(): void {
    if (this.refresh) clearInterval(this.refresh);
  }
}
