/**
 * Where identity decisions are recorded (docs/IDENTITY.md "Determinism"): one entry per event that
 * changed the identity graph, appended durably before that event goes on. A restarted engine reads
 * the log back and follows it for every event up to its last entry, so replays route and merge as
 * the first run did.
 *
 * On NATS: the stream `CX_IDENTITY`, one message per entry on `cx.identity.<customer key>` (the
 * event's key; a forget purges the subjects of the customer and its aliases), `Nats-Msg-Id` = the
 * event's stream sequence, so a retried append is stored once.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { IdentityEntry } from '../../operators/identity.js';

export const IDENTITY_STREAM = 'CX_IDENTITY';
export const IDENTITY_SUBJECTS = 'cx.identity.>';

/** The recorded decisions. */
export interface IdentityLog {
  /** Every entry, in the order appended. */
  read(): Promise<IdentityEntry[]>;
  /** Appends an entry durably. */
  append(entry: IdentityEntry): Promise<void>;
}

/** A log in memory: replays from files, tests (nothing survives the process). */
export class MemoryIdentityLog implements IdentityLog {
  readonly entries: IdentityEntry[] = [];

  async read(): Promise<IdentityEntry[]> {
    return this.entries.slice();
  }

  async append(entry: IdentityEntry): Promise<void> {
    if (!this.entries.some((e) => e.seq === entry.seq)) this.entries.push(entry);
  }
}

/** The log on JetStream (see the file comment). */
export class JetStreamIdentityLog implements IdentityLog {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly stream: string,
  ) {}

  /** Opens the stream, creating it (file storage, `replicas`) when missing. */
  static async open(
    nc: NatsConnection,
    opts: { replicas?: number; stream?: string } = {},
  ): Promise<JetStreamIdentityLog> {
    const stream = opts.stream ?? IDENTITY_STREAM;
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(stream);
    } catch {
      await jsm.streams.add({
        name: stream,
        subjects: [IDENTITY_SUBJECTS],
        num_replicas: opts.replicas ?? 1,
        duplicate_window: 120_000_000_000,
      });
    }
    return new JetStreamIdentityLog(nc, stream);
  }

  async read(): Promise<IdentityEntry[]> {
    const js = jetstream(this.nc);
    const info = await (await jetstreamManager(this.nc)).streams.info(this.stream);
    const out: IdentityEntry[] = [];
    if (info.state.messages === 0) return out;
    const last = info.state.last_seq;
    const consumer = await js.consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.None,
    } as never);
    const messages = await consumer.consume({ max_messages: 10_000 });
    try {
      for await (const m of messages) {
        out.push(m.json<IdentityEntry>());
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } finally {
      messages.stop();
    }
    return out;
  }

  async append(entry: IdentityEntry): Promise<void> {
    await jetstream(this.nc).publish(`cx.identity.${entry.key}`, JSON.stringify(entry), {
      msgID: `identity-${entry.seq}`,
    });
  }
}
