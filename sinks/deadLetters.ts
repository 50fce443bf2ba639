import type { JetStreamClient } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { Reject } from '../operators/types.js';
import { JetStreamPublisher } from './jetstreamPublisher.js';

/** The dead-letter subject of CONTRACT.md (stored by stream CX_DLQ, `cx.dlq.>`). */
export const DEAD_LETTER_SUBJECT = 'cx.dlq.events';

/** Where rejected events go: JetStream in production, an array in the demo and dry runs. */
export interface DeadLetterSinkLike {
  /** Resolves once every reject is stored durably. */
  publish(rejects: Reject[]): Promise<void>;
}

/**
 * Publishes rejected events to `cx.dlq.events`: the original bytes, with headers `Cx-Error`
 * (reason), `Cx-Source-Seq` and `Cx-Source-Subject`, and `Nats-Msg-Id` = `dlq:<seq>` so a replay
 * after a crash does not store a reject twice (within the stream's duplicate window).
 */
export class DeadLetterSink implements DeadLetterSinkLike {
  private readonly publisher: JetStreamPublisher;

  /**
   * `conn`: the JetStream client (its connection is used) or the connection itself.
   * `opts.maxInFlight`: publishes awaiting their ack at once (@default 1000);
   * `opts.timeoutMs`: wait for an ack (@default the JetStream client's timeout, 5000 ms).
   */
  constructor(
    conn: JetStreamClient | NatsConnection,
    opts: { maxInFlight?: number; timeoutMs?: number } = {},
  ) {
    this.publisher = JetStreamPublisher.of(conn, {
      maxInFlight: Math.max(1, opts.maxInFlight ?? 1000),
      ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    });
  }

  /** Publishes in order, pipelined; resolves when every ack arrived. */
  async publish(rejects: Reject[]): Promise<void> {
    await this.publisher.publishAll(rejects, (r) => {
      const h = headers();
      h.set('Cx-Error', headerValue(r.reason));
      h.set('Cx-Source-Seq', String(r.seq));
      h.set('Cx-Source-Subject', r.subject);
      return { subject: DEAD_LETTER_SUBJECT, data: r.data, msgId: `dlq:${r.seq}`, headers: h };
    });
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

/** Header values are one line: a multi-line error (a stack, a YAML excerpt) is folded onto one. */
function headerValue(reason: string): string {
  const line = reason.replace(/[\r\n]+/g, ' ').trim();
  return line.length > 1024 ? `${line.slice(0, 1021)}...` : line;
}
