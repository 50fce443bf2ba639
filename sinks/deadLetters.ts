import { type JetStreamClient, type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { maskPii } from '../operators/mask.js';
import type { Reject } from '../operators/types.js';
import { JetStreamPublisher } from './jetstreamPublisher.js';

/** The dead-letter subject of docs/CONTRACT.md (stored by stream CX_DLQ, `cx.dlq.>`). */
export const DEAD_LETTER_SUBJECT = 'cx.dlq.events';

/** Prefix of the original message's headers on a dead letter: `Nats-Msg-Id` → `Cx-Original-Nats-Msg-Id`. */
export const ORIGINAL_HEADER_PREFIX = 'Cx-Original-';

/** Original messages read at once when looking up their headers. */
const LOOKUPS_IN_FLIGHT = 100;

/** Where rejected events go: JetStream in production, an array in the demo and dry runs. */
export interface DeadLetterSinkLike {
  /** Resolves once every reject is stored durably. */
  publish(rejects: Reject[]): Promise<void>;
}

/** Options of {@link DeadLetterSink}. */
export interface DeadLetterSinkOptions {
  /** Publishes awaiting their ack at once. @default 1000 */
  maxInFlight?: number;
  /** Wait for an ack. @default the JetStream client's timeout, 5000 ms */
  timeoutMs?: number;
  /**
   * The stream the rejects were read from (`CX_EVENTS` for `cxstream run`): each original message
   * is read back by its sequence and its headers are kept on the dead letter, prefixed with
   * `Cx-Original-`. Absent for sources that are not a stream (a replayed file). @default none
   */
  sourceStream?: string;
}

/**
 * Publishes rejected events to `cx.dlq.events`: the original bytes, with headers `Cx-Error`
 * (reason), `Cx-Source-Seq` and `Cx-Source-Subject`, the original message's headers prefixed with
 * `Cx-Original-` (with `sourceStream`), and `Nats-Msg-Id` = `dlq:<seq>` so a replay after a crash
 * does not store a reject twice (within the stream's duplicate window).
 *
 * The workers see only payloads and subjects, so the original headers are read back from the
 * stream by sequence here, for the few messages that are rejected, instead of carrying every
 * message's headers through the pipeline.
 */
export class DeadLetterSink implements DeadLetterSinkLike {
  private readonly publisher: JetStreamPublisher;
  private readonly sourceStream: string | undefined;
  private readonly nc: NatsConnection;
  private jsm: Promise<JetStreamManager> | null = null;

  /** `conn`: the JetStream client (its connection is used) or the connection itself. */
  constructor(conn: JetStreamClient | NatsConnection, opts: DeadLetterSinkOptions = {}) {
    this.nc = 'subscribe' in conn ? conn : (conn as unknown as { nc: NatsConnection }).nc;
    this.publisher = JetStreamPublisher.of(conn, {
      maxInFlight: Math.max(1, opts.maxInFlight ?? 1000),
      ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    });
    this.sourceStream = opts.sourceStream;
  }

  /** Publishes in order, pipelined; resolves when every ack arrived. */
  async publish(rejects: Reject[]): Promise<void> {
    const originals = await this.originalHeaders(rejects);
    const items = rejects.map((r, i) => ({ r, original: originals[i] }));
    await this.publisher.publishAll(items, ({ r, original }) => {
      const h = headers();
      if (original) {
        for (const key of original.keys())
          for (const value of original.values(key)) h.append(`${ORIGINAL_HEADER_PREFIX}${key}`, value);
      }
      h.set('Cx-Error', headerValue(r.reason));
      h.set('Cx-Source-Seq', String(r.seq));
      h.set('Cx-Source-Subject', r.subject);
      return { subject: DEAD_LETTER_SUBJECT, data: r.data, msgId: `dlq:${r.seq}`, headers: h };
    });
  }

  /** The headers of each reject's original message (undefined when it has none or is gone). */
  private async originalHeaders(rejects: Reject[]): Promise<Array<MsgHdrs | undefined>> {
    const stream = this.sourceStream;
    if (stream === undefined || rejects.length === 0) return [];
    this.jsm ??= jetstreamManager(this.nc);
    const jsm = await this.jsm;
    const out: Array<MsgHdrs | undefined> = [];
    for (let i = 0; i < rejects.length; i += LOOKUPS_IN_FLIGHT) {
      const slice = rejects.slice(i, i + LOOKUPS_IN_FLIGHT);
      const found = await Promise.all(
        slice.map((r) =>
          jsm.streams.getMessage(stream, { seq: r.seq }).then(
            // the same message: a stream can lose it (retention) before its dead letter is written
            (m) => (m !== null && m.subject === r.subject ? m.header : undefined),
            () => undefined,
          ),
        ),
      );
      out.push(...found);
    }
    return out;
  }
}

/** Collects rejects in memory. */
export class MemoryDeadLetterSink implements DeadLetterSinkLike {
  /** Every reject published, in order. */
  readonly rejects: Reject[] = [];

  /** Appends the rejects. */
  async publish(rejects: Reject[]): Promise<void> {
    for (const r of rejects) this.rejects.push(r);
  }
}

/**
 * Header values are one line: a multi-line error (a stack, a YAML excerpt) is folded onto one. An
 * error's message may quote the event (a processing failure): it is masked as free text, like the
 * reasons decodeEvent writes, before it is cut.
 */
function headerValue(reason: string): string {
  const line = maskPii(reason.replace(/[\r\n]+/g, ' ').trim());
  return line.length > 1024 ? `${line.slice(0, 1021)}...` : line;
}
