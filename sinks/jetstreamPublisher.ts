/**
 * Pipelined JetStream publishing without nats.js's per-request machinery.
 *
 * `js.publish()` goes through `nc.request()`: per message a Request object, a timer, an entry in
 * the muxed inbox and, once it resolved, a `RequestError("cancelled")` built by `cancel()` — 16 %
 * of the engine's main thread in bench:e2e. Here a message is a core `nc.publish()` whose reply
 * subject is `<inbox>.<n>` under ONE wildcard subscription; the pending entries live in a Map keyed
 * by `n` and ONE interval timer (running only while something is pending) fails entries older
 * than the timeout. A PubAck is parsed as JSON only when it is not a plain success. Durability is
 * the same as `js.publish()`: a promise resolves only once JetStream acked the message.
 *
 * While the connection is down, publishing waits for it (up to the timeout); messages waiting for
 * their ack when it drops fail at once as `disconnected` (sinks/connectionWatch.ts says why), so a
 * retry goes out as soon as the client has reconnected instead of after the timeout.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import {
  createInbox,
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { ConnectionWatch } from './connectionWatch.js';

/** Options of {@link JetStreamPublisher}. */
export interface JetStreamPublisherOptions {
  /**
   * Messages awaiting their JetStream ack at once; publishing waits for a free slot beyond it.
   * @default 1000
   */
  maxInFlight?: number;
  /**
   * How long a message may wait for its ack before it fails with a timeout (it may still have been
   * stored: a retry with the same `Nats-Msg-Id` is then de-duplicated within the stream's window).
   * @default 5000 (the JetStream client's timeout when built from one)
   */
  timeoutMs?: number;
}

/** One message to publish. */
export interface JetStreamMessage {
  subject: string;
  /** The body; a string is sent as its UTF-8 bytes. */
  data: Uint8Array | string;
  /** Sent as `Nats-Msg-Id`: JetStream stores a message once per id within its duplicate window. */
  msgId?: string;
  /** Further headers (the publisher adds `Nats-Msg-Id` to them). */
  headers?: MsgHdrs;
}

/** What JetStream answered for a set of messages that were all acked. */
export interface JetStreamPublishSummary {
  /** Messages stored now. */
  stored: number;
  /** Messages JetStream had already stored under the same `Nats-Msg-Id` (acked, not stored again). */
  duplicates: number;
}

/** Why a publish failed. */
export type JetStreamPublishFailure =
  | 'no-responders'
  | 'api'
  | 'timeout'
  | 'closed'
  | 'send'
  | 'disconnected';

/**
 * A message JetStream did not ack: no stream holds the subject, an API error, a timeout, a closed
 * connection, or one that dropped before the ack came (the message may have been stored).
 */
export class JetStreamPublishError extends Error {
  override readonly name = 'JetStreamPublishError';

  constructor(
    message: string,
    /** What went wrong, for callers that branch on it. */
    readonly failure: JetStreamPublishFailure,
    /** The message's subject. */
    readonly subject: string,
    /** The message's `Nats-Msg-Id`, if it had one. */
    readonly msgId: string | undefined,
    /** The status code (503 for no responders) or JetStream's `err_code` (e.g. 10071 wrong last sequence). */
    readonly code?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Whether `e` is a {@link JetStreamPublishError}. */
export function isJetStreamPublishError(e: unknown): e is JetStreamPublishError {
  return e instanceof JetStreamPublishError;
}

/** The messages of one `publishAll()` call: settles once every one of them was answered. */
class Group {
  remaining = 0;
  stored = 0;
  duplicates = 0;
  error: JetStreamPublishError | undefined;
  private sealed = false;
  private resolve: ((s: JetStreamPublishSummary) => void) | undefined;
  private reject: ((e: unknown) => void) | undefined;

  fail(error: JetStreamPublishError): void {
    this.error ??= error;
  }

  /** One message answered (acked or failed). */
  settle(): void {
    this.remaining--;
    if (this.sealed && this.remaining === 0) this.finish();
  }

  /** No more messages join; the returned promise settles with the last answer. */
  seal(): Promise<JetStreamPublishSummary> {
    this.sealed = true;
    const done = new Promise<JetStreamPublishSummary>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    if (this.remaining === 0) this.finish();
    return done;
  }

  private finish(): void {
    if (this.error) this.reject?.(this.error);
    else this.resolve?.({ stored: this.stored, duplicates: this.duplicates });
  }
}

interface Pending {
  group: Group;
  sentAt: number;
  subject: string;
  msgId: string | undefined;
}

const encoder = new TextEncoder();
const SUCCESS_PREFIX = encoder.encode('{"stream":');
const DUPLICATE = encoder.encode('"duplicate"');
const decoder = new TextDecoder();

/**
 * Publishes to JetStream streams over core NATS, pipelined with a bounded number of messages in
 * flight; one instance per sink (its own inbox subscription and in-flight bound).
 */
export class JetStreamPublisher {
  private readonly pending = new Map<number, Pending>();
  private readonly waiters: Array<() => void> = [];
  /** Slots handed to woken waiters that have not sent yet: keeps newcomers from taking them. */
  private reserved = 0;
  private next = 0;
  private sub: Subscription | undefined;
  private inbox = '';
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  private readonly watch: ConnectionWatch;
  private acked = 0;
  private duplicated = 0;
  private failed = 0;

  constructor(
    private readonly nc: NatsConnection,
    opts: JetStreamPublisherOptions = {},
  ) {
    this.maxInFlight = Math.max(1, Math.floor(opts.maxInFlight ?? 1000));
    this.timeoutMs = Math.max(1, opts.timeoutMs ?? 5000);
    this.watch = ConnectionWatch.of(nc);
    this.watch.onDisconnect(() => this.failPending('disconnected', 'NATS disconnected'));
  }

  /**
   * A publisher on the connection of a JetStream client (nats.js's client keeps it as `nc`, which
   * its type does not expose) or on a connection; the timeout defaults to the client's.
   */
  static of(
    conn: JetStreamClient | NatsConnection,
    opts: JetStreamPublisherOptions = {},
  ): JetStreamPublisher {
    if ('subscribe' in conn) return new JetStreamPublisher(conn, opts);
    const nc = (conn as unknown as { nc?: NatsConnection }).nc;
    if (!nc || typeof nc.subscribe !== 'function') {
      throw new TypeError('JetStreamPublisher.of: the JetStream client does not expose its connection (nc)');
    }
    return new JetStreamPublisher(nc, { timeoutMs: conn.getOptions().timeout, ...opts });
  }

  /** Messages sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Totals since creation: acks (stored), acks of duplicates, and failures. */
  get counts(): { acked: number; duplicates: number; failed: number } {
    return { acked: this.acked, duplicates: this.duplicated, failed: this.failed };
  }

  /** Publishes one message; resolves with `true` when it was a duplicate, once JetStream acked it. */
  async publish(message: JetStreamMessage): Promise<boolean> {
    const summary = await this.publishAll([message], (m) => m);
    return summary.duplicates === 1;
  }

  /**
   * Publishes the items' messages in order, waiting for a free slot whenever `maxInFlight` are
   * pending. Resolves when every message was acked; otherwise rejects with the first failure, after
   * the messages already sent were answered (no new ones are sent once one failed).
   */
  async publishAll<T>(
    items: Iterable<T>,
    toMessage: (item: T) => JetStreamMessage,
  ): Promise<JetStreamPublishSummary> {
    const group = new Group();
    for (const item of items) {
      if (group.error) break;
      if (!this.watch.connected && !this.nc.isClosed()) {
        try {
          await this.watch.whenConnected(this.timeoutMs);
        } catch (e) {
          const m = toMessage(item);
          group.fail(
            new JetStreamPublishError((e as Error).message, 'disconnected', m.subject, m.msgId, undefined, {
              cause: e,
            }),
          );
          break;
        }
      }
      if (this.pending.size + this.reserved >= this.maxInFlight || this.waiters.length > 0) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        this.reserved--;
        if (group.error) {
          this.release(); // the slot this call was given goes to the next waiter
          break;
        }
      }
      this.send(toMessage(item), group);
    }
    return group.seal();
  }

  /** Stops listening for acks; messages still pending fail as `closed`. */
  close(): void {
    this.closed = true;
    this.sub?.unsubscribe();
    this.failAll('closed', 'publisher closed');
  }

  private send(m: JetStreamMessage, group: Group): void {
    let h = m.headers;
    if (m.msgId !== undefined) {
      h ??= headers();
      h.set('Nats-Msg-Id', m.msgId);
    }
    if (this.closed) {
      group.fail(new JetStreamPublishError('publisher closed', 'closed', m.subject, m.msgId));
      return;
    }
    const sub = this.sub ?? this.listen();
    if (sub.isClosed()) {
      group.fail(new JetStreamPublishError('connection closed', 'closed', m.subject, m.msgId));
      return;
    }
    if (!this.watch.connected) {
      // nats.js would drop it at the reconnect, and only the timeout would tell
      group.fail(new JetStreamPublishError('NATS disconnected', 'disconnected', m.subject, m.msgId));
      return;
    }
    const n = this.next++;
    try {
      this.nc.publish(
        m.subject,
        m.data,
        h ? { reply: `${this.inbox}${n}`, headers: h } : { reply: `${this.inbox}${n}` },
      );
    } catch (e) {
      this.failed++;
      group.fail(
        new JetStreamPublishError(
          `publish to ${m.subject} failed: ${(e as Error).message}`,
          'send',
          m.subject,
          m.msgId,
          undefined,
          {
            cause: e,
          },
        ),
      );
      return;
    }
    group.remaining++;
    this.pending.set(n, { group, sentAt: Date.now(), subject: m.subject, msgId: m.msgId });
    this.timer ??= this.startTimer();
  }

  private listen(): Subscription {
    // `<prefix>.<nuid>.` then the message number: one subscription answers every message
    this.inbox = `${createInbox()}.`;
    const sub = this.nc.subscribe(`${this.inbox}*`, { callback: (_err, msg) => this.answer(msg) });
    this.sub = sub;
    sub.closed.then(
      () => this.failAll('closed', 'connection closed'),
      () => this.failAll('closed', 'connection closed'),
    );
    return sub;
  }

  private answer(msg: Msg): void {
    const n = Number(msg.subject.slice(this.inbox.length));
    const p = this.pending.get(n);
    if (!p) return; // timed out already
    this.pending.delete(n);
    const data = msg.data;
    // the server writes `error` first when there is one: a body starting with "stream" is an ack
    if (startsWith(data, SUCCESS_PREFIX)) {
      if (isDuplicate(data)) {
        this.duplicated++;
        p.group.duplicates++;
      } else {
        this.acked++;
        p.group.stored++;
      }
    } else {
      this.failed++;
      p.group.fail(failureOf(msg, p));
    }
    p.group.settle();
    this.release();
  }

  /** Hands a freed slot to the oldest waiter. */
  private release(): void {
    while (this.waiters.length > 0 && this.pending.size + this.reserved < this.maxInFlight) {
      this.reserved++;
      this.waiters.shift()?.();
    }
    if (this.pending.size === 0) this.stopTimer();
  }

  private startTimer(): NodeJS.Timeout {
    // a quarter of the timeout: an entry fails between 1 and 1.25 timeouts after it was sent
    const t = setInterval(() => this.expire(), Math.max(10, Math.floor(this.timeoutMs / 4)));
    t.unref();
    return t;
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private expire(): void {
    const limit = Date.now() - this.timeoutMs;
    // Map order is send order, and send times only grow: stop at the first young entry
    for (const [n, p] of this.pending) {
      if (p.sentAt > limit) break;
      this.pending.delete(n);
      this.failed++;
      p.group.fail(
        new JetStreamPublishError(
          `no JetStream ack for ${p.subject} within ${this.timeoutMs} ms`,
          'timeout',
          p.subject,
          p.msgId,
        ),
      );
      p.group.settle();
    }
    this.release();
  }

  /** Fails every message waiting for its ack; the slots go to the callers waiting for one. */
  private failPending(failure: JetStreamPublishFailure, why: string): void {
    for (const [n, p] of this.pending) {
      this.pending.delete(n);
      this.failed++;
      p.group.fail(
        new JetStreamPublishError(`${why} before the ack for ${p.subject}`, failure, p.subject, p.msgId),
      );
      p.group.settle();
    }
    this.release();
  }

  private failAll(failure: JetStreamPublishFailure, why: string): void {
    this.failPending(failure, why);
    // waiters resume, see no slot taken and send into a closed subscription: they fail as closed
    while (this.waiters.length > 0) {
      this.reserved++;
      this.waiters.shift()?.();
    }
  }
}

/** The error of an answer that is not a plain PubAck: a status message (503: no stream) or `{"error":...}`. */
function failureOf(msg: Msg, p: Pending): JetStreamPublishError {
  const h = msg.headers;
  if (h && msg.data.length === 0 && h.code >= 300) {
    return h.code === 503
      ? new JetStreamPublishError(
          `no stream stores ${p.subject} (no responders)`,
          'no-responders',
          p.subject,
          p.msgId,
          503,
        )
      : new JetStreamPublishError(
          `JetStream answered ${h.status} for ${p.subject}`,
          'api',
          p.subject,
          p.msgId,
          h.code,
        );
  }
  const text = decoder.decode(msg.data);
  let body: { error?: { code?: number; err_code?: number; description?: string } } | undefined;
  try {
    body = JSON.parse(text);
  } catch (e) {
    return new JetStreamPublishError(
      `invalid JetStream ack for ${p.subject}: ${text}`,
      'api',
      p.subject,
      p.msgId,
      undefined,
      {
        cause: e,
      },
    );
  }
  const err = body?.error;
  return new JetStreamPublishError(
    err
      ? `JetStream rejected ${p.subject}: ${err.description ?? 'error'}`
      : `invalid JetStream ack for ${p.subject}: ${text}`,
    'api',
    p.subject,
    p.msgId,
    err?.err_code ?? err?.code,
  );
}

/** Whether `data` starts with `prefix`. */
function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  if (data.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[i] !== prefix[i]) return false;
  return true;
}

/**
 * Whether the ack says `"duplicate": true`. The server formats acks by hand (2.9 writes
 * `"duplicate": true` with a space), so whitespace around the colon is allowed. One pass over the
 * bytes; `"duplicate"` counts only as a key (followed by the colon), not as a value.
 */
function isDuplicate(data: Uint8Array): boolean {
  const last = data.length - DUPLICATE.length;
  next: for (let at = SUCCESS_PREFIX.length; at <= last; at++) {
    if (data[at] !== 0x22 || data[at + 1] !== 0x64) continue; // `"d`
    for (let i = 2; i < DUPLICATE.length; i++) if (data[at + i] !== DUPLICATE[i]) continue next;
    let j = at + DUPLICATE.length;
    while (data[j] === 0x20) j++;
    if (data[j] !== 0x3a) continue; // a value, not the key
    j++;
    while (data[j] === 0x20) j++;
    return data[j] === 0x74; // t of true
  }
  return false;
}
