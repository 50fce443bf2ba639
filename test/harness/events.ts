/**
 * Building events for tests: the required fields, the channel `app` unless given, and any extras;
 * and publishing them as an upstream system does.
 */
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { subjectOf } from '../../engine/demo/traffic.js';
import type { CxEvent } from '../../operators/types.js';

/** An event of `customer` of `type` at `ts` (epoch ms). */
export function cxEvent(
  id: string,
  customer: string,
  type: string,
  ts: number,
  extra: Partial<CxEvent> = {},
): CxEvent {
  return { id, ts, customer, type, channel: 'app', ...extra };
}

/**
 * A {@link cxEvent} builder that numbers the events it makes: the n-th (from 1) gets the id
 * `idOf(n, customer)`, `e<n>` by default.
 */
export function eventMaker(idOf: (n: number, customer: string) => string = (n) => `e${n}`) {
  let n = 0;
  return (customer: string, type: string, ts: number, extra: Partial<CxEvent> = {}): CxEvent =>
    cxEvent(idOf(++n, customer), customer, type, ts, extra);
}

/**
 * Publishes `events` in order as an upstream system does: msgpack on
 * `cx.events.<channel>.<type>.<customer>` with `Nats-Msg-Id` = the event id, each acked by JetStream.
 */
export async function publishEvents(nc: NatsConnection, events: readonly CxEvent[]): Promise<void> {
  const js = jetstream(nc);
  for (const e of events) await js.publish(subjectOf(e), pack(e), { msgID: e.id });
}
