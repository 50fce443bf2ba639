import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import { Observable, type Subscriber } from 'rxjs';
import { ConnectionWatch } from '../../sinks/connectionWatch.js';
import { retrying } from '../../sinks/retry.js';
import { natsNames } from '../nats/streams.js';
import { log } from '../runtime/log.js';
import { AckTracker } from './ackTracker.js';
import type { EventSource, RawEvent, SourceStats } from './eventSource.js';

/** A source of raw events with at-least-once delivery, acked once the sinks accepted the outputs. */
/** Options of {@link jetstreamSource}. */
export interface JetStreamSourceOptions {
  nc: NatsConnection;
  /**
   * Durable consumer name on CX_EVENTS. One running source per durable: recovery may recreate it.
   * @default 'cxstream'
   */
  durable?: string;
  /**
   * Where to start, read when the source starts: the consumer is recreated to deliver the events
   * after this sequence (what the restored checkpoints cover), whatever it acked before. An instance
   * of a deployment several share uses it: the key groups it owns change, and with them where its
   * position is (docs/SCALING.md). @default resume at the durable consumer's ack floor
   */
  startAfter?: () => number;
  /**
   * Events per emitted chunk (at most).
   * @default 1000
   */
  chunkSize?: number;
  /**
   * A chunk is emitted this long after its first event even when not full.
   * @default 5
   */
  chunkWaitMs?: number;
  /**
   * Emitted events not yet acked, at most; reading pauses at the limit.
   * @default 20_000
   */
  maxInFlight?: number;
  /**
   * The consumer's ack wait: an event not acked this long after delivery is redelivered.
   * @default 30_000
   */
  ackWaitMs?: number;
  /**
   * Stop waiting for acks after this long in `stop()` when no timeout is given.
   * @default 30_000
   */
  stopTimeoutMs?: number;
}

/** Which consumer incarnation delivered a message: acks only count on the incarnation that sent them. */
interface AckHandle {
  msg: JsMsg;
  generation: number;
}

/** Pull request lifetime; idle heartbeats come every half of it. */
const PULL_EXPIRES_MS = 5_000;
/** Pauses before retrying a failed pass, doubling up to 5 s; the first again once events got through. */
const RETRY_DELAYS_MS = [200, 400, 800, 1600, 3200, 5000];

/** A pass ended in a resync without letting anything through since the last one: retried after a pause. */
class ResyncWithoutProgress extends Error {
  override readonly name = 'ResyncWithoutProgress';
}

/**
 * Reads CX_EVENTS through a durable pull consumer (`AckPolicy.All`) and emits the raw messages in
 * stream order, in chunks, without decoding them. Acks advance only over contiguous done prefixes.
 *
 * Delivery: the main loop reads `consume()`'s iterator, whose pull requests are only sent as it is
 * read, so the client never buffers more than one pull (`max_messages`, at most 10 000) while
 * reading pauses at `maxInFlight`. `max_ack_pending` = `maxInFlight` + that buffer.
 *
 * Because acking sequence N acks everything below it, a message lost between server and client
 * (a reconnect, a server restart) must never be skipped: when a new message's sequence jumps past
 * the next one expected, the stream is asked whether the missing ones exist (deleted ones are
 * fine); if they do, the consumer is recreated at the acked floor ("resync") and what follows
 * arrives again in order, with sequences already emitted dropped as redeliveries. The same resync
 * recreates a consumer that disappeared (server state lost, someone deleted it).
 */
export function jetstreamSource(opts: JetStreamSourceOptions): EventSource {
  return new JetStreamSource(opts);
}

class JetStreamSource implements EventSource {
  readonly chunks$: Observable<RawEvent[]>;

  private readonly nc: NatsConnection;
  private readonly durable: string;
  private readonly startAfter: (() => number) | undefined;
  private readonly chunkSize: number;
  private readonly chunkWaitMs: number;
  private readonly maxInFlight: number;
  private readonly ackWaitMs: number;
  private readonly bufferMessages: number;
  private readonly stopTimeoutMs: number;
  private readonly stream = natsNames.eventsStream;

  private readonly tracker: AckTracker<AckHandle>;
  private subscriber: Subscriber<RawEvent[]> | null = null;
  private jsm: JetStreamManager | null = null;
  private messages: ConsumerMessages | null = null;

  /** Consumer incarnation: incremented whenever the consumer is recreated. */
  private generation = 0;
  /** Highest stream sequence emitted (or known acked at start): at or below is a redelivery. */
  private seen = 0;
  /** Ack floor to recreate the consumer from: the server's at start, then ours. */
  private ackFloor = 0;
  /** The highest redelivered message of the current incarnation, usable to ack for stale handles. */
  private latestRedelivery: JsMsg | null = null;
  private resyncWanted = false;
  /** `seen` when the consumer was last recreated. */
  private seenAtResync = -1;
  private stopping = false;
  /** Settles when the read loop has ended and its last chunk was emitted. */
  private runEnded: Promise<void> = Promise.resolve();
  /** Aborted by `stop()`: ends the pauses between retries and the wait for acks below `maxInFlight`. */
  private readonly stopController = new AbortController();
  private readonly stopped = new Promise<void>((resolve) => {
    this.stopController.signal.addEventListener('abort', () => resolve(), { once: true });
  });

  private chunk: RawEvent[] = [];
  private chunkSeqs: number[] = [];
  private chunkLast: JsMsg | null = null;
  private chunkTimer: ReturnType<typeof setTimeout> | null = null;

  private received = 0;
  /** Highest stream sequence handed downstream (`seen` may be ahead: a chunk still being filled). */
  private emitted = 0;
  /** The client's connection is up (it reconnects by itself; status events keep this current). */
  private connected = true;
  private pending = 0;
  /** The newest message emitted whose `pending` count was not read yet (parsed on demand in `stats()`). */
  private pendingOf: JsMsg | null = null;
  /** The consumer's info was read once, so `pending` is real. */
  private consumerKnown = false;

  constructor(opts: JetStreamSourceOptions) {
    this.nc = opts.nc;
    this.durable = opts.durable ?? 'cxstream';
    this.startAfter = opts.startAfter;
    this.chunkSize = positive('chunkSize', opts.chunkSize ?? 1000);
    this.chunkWaitMs = Math.max(0, opts.chunkWaitMs ?? 5);
    this.maxInFlight = positive('maxInFlight', opts.maxInFlight ?? 20_000);
    this.ackWaitMs = positive('ackWaitMs', opts.ackWaitMs ?? 30_000);
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.bufferMessages = Math.min(10_000, Math.max(this.chunkSize, Math.ceil(this.maxInFlight / 2)));
    this.tracker = new AckTracker<AckHandle>((handle, lastSeq) => this.ack(handle, lastSeq));
    this.chunks$ = new Observable<RawEvent[]>((subscriber) => {
      if (this.subscriber) {
        subscriber.error(new Error('jetstreamSource: chunks$ can be subscribed once'));
        return;
      }
      if (this.stopping) {
        // Stopped before anything was pulled (SIGTERM during start-up): nothing to drain.
        subscriber.complete();
        return;
      }
      this.subscriber = subscriber;
      this.runEnded = this.run().then(
        () => subscriber.complete(),
        (e: unknown) => subscriber.error(e),
      );
      return () => {
        if (!this.stopping) void this.stop(0);
      };
    });
  }

  done(seqs: ArrayLike<number>): void {
    this.tracker.done(seqs);
  }

  async stop(timeoutMs = this.stopTimeoutMs): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopController.abort();
      // not awaited: the read loop may sit in a JetStream API call; runEnded below covers it
      this.messages?.stop();
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.runEnded.then(() => this.tracker.whenBelow(1)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  stats(): SourceStats {
    if (this.pendingOf) {
      this.pending = this.pendingOf.info.pending;
      this.pendingOf = null;
    }
    const inFlight = this.tracker.inFlight;
    return { received: this.received, acked: this.received - inFlight, inFlight, pending: this.pending };
  }

  /**
   * Connected, consuming, and the stream holds nothing beyond what was emitted (asked of the server
   * now: a lag figure from the last message would miss what arrived since, or an outage).
   */
  async caughtUp(): Promise<boolean> {
    if (this.stopping || this.resyncWanted || !this.consumerKnown || !this.connected || this.nc.isClosed())
      return false;
    try {
      const jsm = this.jsm!;
      const info = await ConnectionWatch.of(this.nc).call(() => jsm.streams.info(this.stream));
      return this.connected && !this.resyncWanted && info.state.last_seq <= this.emitted;
    } catch {
      return false;
    }
  }

  /** The read loop: one `consume()` per pass; a pass ends on stop, resync or a closed iterator. */
  private async run(): Promise<void> {
    void this.watchConnection();
    this.jsm = await jetstreamManager(this.nc);
    const startAfter = this.startAfter?.();
    if (startAfter !== undefined) await this.deleteConsumer();
    const info = await this.ensureConsumer(startAfter === undefined ? undefined : startAfter + 1);
    this.ackFloor = Math.max(info.ack_floor.stream_seq, startAfter ?? 0);
    this.seen = this.ackFloor;
    this.pending = info.num_pending;
    this.pendingOf = null;
    this.consumerKnown = true;
    // Messages delivered to an earlier incarnation (a crashed engine) and never acked would come
    // again only after ack_wait (30 s by default) when no newer message reveals the gap; recreating
    // the consumer at the ack floor redelivers them now (test/faults/natsKill.test.ts measured it).
    if (info.num_ack_pending > 0) this.resyncWanted = true;
    try {
      while (!this.stopping && !this.nc.isClosed()) {
        try {
          // A failed pass is retried with back-off; events getting through start it again from the
          // shortest pause. A pass that resolves is followed by the next at once.
          await retrying('consuming CX_EVENTS', () => this.pass(), {
            delaysMs: RETRY_DELAYS_MS,
            signal: this.stopController.signal,
            progress: () => this.seen,
            fatal: () => this.stopping || this.nc.isClosed(),
            onRetry: (err, attempt) => {
              if (err instanceof ResyncWithoutProgress) return; // resync() logs
              log.warn(
                { err, durable: this.durable, attempt },
                'jetstreamSource: consuming failed; retrying',
              );
            },
          });
        } catch (e) {
          if (this.stopping || this.nc.isClosed()) break;
          throw e;
        }
      }
      if (!this.stopping && this.nc.isClosed())
        throw new Error('jetstreamSource: the NATS connection was closed');
    } finally {
      this.flush();
      await this.closeMessages();
    }
  }

  /**
   * One pass: a resync first when one is wanted, then `consume()` until it ends. Resolves when
   * stopped, or when a resync is wanted after events got through; throws to be retried after a pause.
   */
  private async pass(): Promise<void> {
    if (this.resyncWanted) {
      this.seenAtResync = this.seen;
      await this.resync();
    }
    await this.consumeOnce();
    if (this.stopping || this.nc.isClosed()) return;
    if (!this.resyncWanted) throw new Error('consume() ended without being stopped');
    // a resync that did not let anything new through is retried with back-off, not in a loop
    if (this.seen === this.seenAtResync)
      throw new ResyncWithoutProgress(
        `jetstreamSource: nothing got through since the resync at ${this.seen}`,
      );
  }

  /** Creates the durable consumer, or updates the settings this source owns on an existing one. */
  private async ensureConsumer(startSeq?: number) {
    const jsm = this.jsm!;
    const config: Partial<ConsumerConfig> = {
      durable_name: this.durable,
      ack_policy: AckPolicy.All,
      ack_wait: nanos(this.ackWaitMs),
      max_ack_pending: this.maxInFlight + this.bufferMessages,
      ...(startSeq === undefined
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }),
    };
    if (startSeq === undefined) {
      try {
        const existing = await jsm.consumers.info(this.stream, this.durable);
        if (existing.config.ack_policy !== AckPolicy.All) {
          throw new Error(
            `jetstreamSource: consumer ${this.durable} on ${this.stream} has ack_policy ${existing.config.ack_policy}; ` +
              'it must be "all" (delete it to let cxstream recreate it)',
          );
        }
        if (
          existing.config.ack_wait === config.ack_wait &&
          existing.config.max_ack_pending === config.max_ack_pending
        ) {
          return existing;
        }
        return await jsm.consumers.update(this.stream, this.durable, {
          ack_wait: config.ack_wait,
          max_ack_pending: config.max_ack_pending,
        });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return jsm.consumers.add(this.stream, config);
  }

  private async deleteConsumer(): Promise<void> {
    try {
      await this.jsm!.consumers.delete(this.stream, this.durable);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Recreates the consumer at the ack floor, so everything not acked arrives again, in order. */
  private async resync(): Promise<void> {
    await this.closeMessages();
    this.flush();
    const startSeq = Math.max(this.ackFloor, this.tracker.ackedSeq) + 1;
    log.warn(
      { durable: this.durable, startSeq, seen: this.seen },
      'jetstreamSource: recreating the consumer',
    );
    await this.deleteConsumer();
    await this.ensureConsumer(startSeq);
    this.generation++;
    this.latestRedelivery = null;
    this.resyncWanted = false;
  }

  /** One `consume()` on the current consumer incarnation, until it ends. */
  private async consumeOnce(): Promise<void> {
    const js = jetstream(this.nc);
    const consumer = await js.consumers.get(this.stream, this.durable).catch((e: unknown) => {
      if (isNotFound(e)) this.resyncWanted = true;
      throw e;
    });
    // `expires` also paces nats.js's recovery after a reconnect: when the consumer info it asks for
    // fails (JetStream still starting on a restarted server), it retries only after `expires`. The
    // default 30 s held the engine idle for ~38 s after a nats-server restart (test/faults/natsKill).
    const messages = await consumer.consume({ max_messages: this.bufferMessages, expires: PULL_EXPIRES_MS });
    this.messages = messages;
    const generation = this.generation;
    void this.watchStatus(messages);
    try {
      for await (const m of messages) {
        if (this.stopping || this.resyncWanted) break;
        const seq = m.seq;
        if (seq <= this.seen) {
          this.redelivered(m, seq, generation);
          continue;
        }
        if (seq > this.seen + 1 && (await this.lostBefore(seq))) {
          this.resyncWanted = true;
          break;
        }
        if (this.tracker.inFlight + this.chunk.length >= this.maxInFlight) {
          // downstream cannot finish what it has not seen, so hand over the partial chunk first
          this.flush();
          await Promise.race([this.tracker.whenBelow(this.maxInFlight), this.stopped]);
          if (this.stopping) break;
        }
        this.chunk.push({ seq, subject: m.subject, data: m.data });
        this.chunkSeqs.push(seq);
        this.chunkLast = m;
        this.seen = seq;
        this.received++;
        this.pendingOf = m;
        if (this.chunk.length >= this.chunkSize) this.flush();
        else if (this.chunk.length === 1 && !this.chunkTimer) {
          this.chunkTimer = setTimeout(() => this.flush(), this.chunkWaitMs);
        }
      }
    } finally {
      if (this.messages === messages) this.messages = null;
      messages.stop();
    }
  }

  /** Follows the client's connection: while it is down, the source is not caught up. */
  private async watchConnection(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting') this.connected = false;
      else if (s.type === 'reconnect') this.connected = true;
      if (this.stopping) return;
    }
  }

  /** Consumer notifications: a consumer that vanished is recreated. */
  private async watchStatus(messages: ConsumerMessages): Promise<void> {
    for await (const s of messages.status()) {
      if (s.type === 'consumer_not_found' || s.type === 'consumer_deleted') {
        log.warn({ durable: this.durable, status: s }, 'jetstreamSource: consumer missing');
        this.resyncWanted = true;
        messages.stop();
        return;
      }
    }
  }

  /** A message at or below `seen`: drop it, but let the current incarnation ack what is done. */
  private redelivered(m: JsMsg, seq: number, generation: number): void {
    if (generation !== this.generation) return;
    if (seq <= this.tracker.ackedSeq || seq <= this.ackFloor) {
      // done and acked before (maybe on an older incarnation, or the server lost the ack): ack again
      m.ack();
      return;
    }
    if (!this.latestRedelivery || this.latestRedelivery.seq < seq) this.latestRedelivery = m;
    this.tracker.replaceHandle(seq, { msg: m, generation });
  }

  /** Whether a message between `seen` and `seq` exists in the stream (so it was lost in transit). */
  private async lostBefore(seq: number): Promise<boolean> {
    // `next_by_subj` (nats-server >= 2.9) finds the first stored message at or after `seq`
    const next = await this.jsm!.streams.getMessage(this.stream, {
      seq: this.seen + 1,
      next_by_subj: '>',
    } as unknown as { seq: number });
    const lost = next !== null && next.seq < seq;
    if (lost) log.warn({ durable: this.durable, expected: this.seen + 1, got: seq }, 'jetstreamSource: gap');
    return lost;
  }

  private ack(handle: AckHandle, lastSeq: number): void {
    this.ackFloor = Math.max(this.ackFloor, lastSeq);
    if (handle.generation === this.generation) {
      handle.msg.ack();
      return;
    }
    // The chunk came from a consumer since recreated: ack through the newest redelivery covered.
    const r = this.latestRedelivery;
    if (r && r.seq <= lastSeq) r.ack();
  }

  /** Emits the partial chunk (tracking it first: downstream may call done() synchronously). */
  private flush(): void {
    if (this.chunkTimer) {
      clearTimeout(this.chunkTimer);
      this.chunkTimer = null;
    }
    if (this.chunk.length === 0) return;
    const events = this.chunk;
    this.emitted = this.chunkSeqs[this.chunkSeqs.length - 1]!;
    this.tracker.track(this.chunkSeqs, { msg: this.chunkLast!, generation: this.generation });
    this.chunk = [];
    this.chunkSeqs = [];
    this.chunkLast = null;
    this.subscriber?.next(events);
  }

  private async closeMessages(): Promise<void> {
    const m = this.messages;
    this.messages = null;
    if (m) {
      m.stop();
      await m.closed().catch(() => undefined);
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`jetstreamSource: ${name} must be > 0 (got ${value})`);
  return value;
}

/** The consumer or its stream does not exist (JetStream's API error codes). */
function isNotFound(e: unknown): boolean {
  return (
    e instanceof JetStreamApiError &&
    (e.code === JetStreamApiCodes.ConsumerNotFound || e.code === JetStreamApiCodes.StreamNotFound)
  );
}
