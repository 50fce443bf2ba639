import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Trigger } from '../operators/types.js';
import { JetStreamPublisher } from './jetstreamPublisher.js';

/** Where triggers go: JetStream in production, an array in the demo and dry runs. */
export interface TriggerSink {
  /** Resolves once every trigger is stored durably (or rejects with the first failure). */
  publish(triggers: Trigger[]): Promise<void>;
}

/** Options of {@link NatsTriggerSink}. */
export interface NatsTriggerSinkOptions {
  /**
   * Publishes awaiting their JetStream ack at once (pipelining without unbounded memory).
   * @default 2000
   */
  maxInFlight?: number;
  /**
   * How long a trigger may wait for its ack before the batch fails.
   * @default the JetStream client's timeout (5000 ms)
   */
  timeoutMs?: number;
}

/**
 * The JSON body of a trigger message: exactly the fields of docs/CONTRACT.md, as text (nats.js
 * encodes it as it writes the message). `subject` repeats the message's subject so that a body
 * forwarded on (a webhook, a queue, a file) still says where it was published; it is also the
 * `subject` column of the ClickHouse `triggers` table.
 */
export function triggerBody(t: Trigger): string {
  return JSON.stringify({
    id: t.id,
    rule: t.rule,
    customer: t.customer,
    subject: t.subject,
    firedAt: t.firedAt,
    eventTime: t.eventTime,
    reason: t.reason,
    priority: t.priority,
    payload: t.payload,
    profile: t.profile,
  });
}

/**
 * Publishes triggers to JetStream on `trigger.subject` with `Nats-Msg-Id` = trigger id, so a
 * replay after a crash is de-duplicated by the stream (within its duplicate window).
 */
export class NatsTriggerSink implements TriggerSink {
  private readonly publisher: JetStreamPublisher;

  /** `conn`: the JetStream client (its connection is used) or the connection itself. */
  constructor(conn: JetStreamClient | NatsConnection, opts: NatsTriggerSinkOptions = {}) {
    this.publisher = JetStreamPublisher.of(conn, {
      maxInFlight: Math.max(1, opts.maxInFlight ?? 2000),
      ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    });
  }

  /** Publishes in order, pipelined (core publish + PubAck, see JetStreamPublisher); resolves when every ack arrived. */
  async publish(triggers: Trigger[]): Promise<void> {
    await this.publisher.publishAll(triggers, (t) => ({
      subject: t.subject,
      data: triggerBody(t),
      msgId: t.id,
    }));
  }
}

/** Collects triggers in memory, for the demo without nats-server and for dry runs. */
export class MemoryTriggerSink implements TriggerSink {
  /** Every trigger published, in order. */
  readonly triggers: Trigger[] = [];

  /** Appends the triggers. */
  async publish(triggers: Trigger[]): Promise<void> {
    for (const t of triggers) this.triggers.push(t);
  }
}

/**
 * (Used before {@link JetStreamPublisher}; kept for sinks that await arbitrary promises.)
 * Calls `send` for each item in order with at most `maxInFlight` promises pending; resolves when
 * all settled, rejecting with the first error (after the others settled, so none is left dangling).
 */
export async function publishPipelined<T>(
  items: readonly T[],
  maxInFlight: number,
  send: (item: T) => Promise<unknown>,
): Promise<void> {
  const pending: Array<Promise<unknown>> = [];
  let head = 0;
  let failure: { error: unknown } | undefined;
  const capture = (error: unknown) => {
    failure ??= { error };
  };
  for (const item of items) {
    if (failure) break;
    if (pending.length - head >= maxInFlight) {
      // acks come back in publish order, so waiting for the oldest frees a slot soonest
      await pending[head++];
    }
    let p: Promise<unknown>;
    try {
      p = send(item);
    } catch (e) {
      capture(e);
      break;
    }
    pending.push(p.catch(capture));
  }
  await Promise.all(pending.slice(head));
  if (failure) throw failure.error;
}
