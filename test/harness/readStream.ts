import { AckPolicy, DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

/** Every message currently in a stream, in stream order (an ordered consumer, nothing acked). */
export async function readStream(nc: NatsConnection, stream: string): Promise<JsMsg[]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream, {
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
  } as never);
  const out: JsMsg[] = [];
  const messages = await consumer.consume({ max_messages: 5000 });
  for await (const m of messages) {
    out.push(m);
    if (m.seq >= state.last_seq || m.info.pending === 0) break;
  }
  messages.stop();
  return out;
}
