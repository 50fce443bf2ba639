import { type JetStreamManager, jetstreamManager, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import { DEAD_LETTER_SUBJECT } from '../../sinks/deadLetters.js';
import { PROFILE_BUCKET } from '../../sinks/profileStore.js';

/** Stream and subject names of CONTRACT.md "NATS"; other systems build against these. */
export const natsNames = Object.freeze({
  eventsStream: 'CX_EVENTS',
  eventsSubjects: 'cx.events.>',
  triggersStream: 'CX_TRIGGERS',
  triggersSubjects: 'cx.triggers.>',
  deadLetterStream: 'CX_DLQ',
  deadLetterSubjects: 'cx.dlq.>',
  deadLetterSubject: DEAD_LETTER_SUBJECT,
  profileBucket: PROFILE_BUCKET,
});

/** Options of {@link ensureStreams}. */
export interface EnsureStreamsOptions {
  /**
   * `Nats-Msg-Id` de-duplication window of CX_EVENTS when it is created here.
   * @default 120_000 (the server's default)
   */
  eventsDuplicateWindowMs?: number;
  /**
   * `Nats-Msg-Id` de-duplication window of CX_TRIGGERS when it is created here.
   * @default 120_000 (the server's default)
   */
  triggersDuplicateWindowMs?: number;
}

/**
 * Creates the streams CX_EVENTS, CX_TRIGGERS, CX_DLQ and the KV bucket cx_profiles where missing.
 * Existing ones are left exactly as they are: operators may have tuned retention or replicas.
 */
export async function ensureStreams(nc: NatsConnection, opts: EnsureStreamsOptions = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const window = (ms: number | undefined) => (ms === undefined ? {} : { duplicate_window: nanos(ms) });
  await ensureStream(jsm, {
    name: natsNames.eventsStream,
    subjects: [natsNames.eventsSubjects],
    storage: StorageType.File,
    ...window(opts.eventsDuplicateWindowMs),
  });
  await ensureStream(jsm, {
    name: natsNames.triggersStream,
    subjects: [natsNames.triggersSubjects],
    storage: StorageType.File,
    ...window(opts.triggersDuplicateWindowMs),
  });
  await ensureStream(jsm, {
    name: natsNames.deadLetterStream,
    subjects: [natsNames.deadLetterSubjects],
    storage: StorageType.File,
  });
  // Kvm.create opens the bucket unchanged when it exists.
  await new Kvm(nc).create(natsNames.profileBucket, { history: 1 });
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<void> {
  try {
    await jsm.streams.info(config.name);
    return;
  } catch (e) {
    if (!isStreamNotFound(e)) throw e;
  }
  try {
    await jsm.streams.add(config);
  } catch (e) {
    // Another process may have created it between info and add; that one is as good as ours.
    await jsm.streams.info(config.name).catch(() => {
      throw e;
    });
  }
}

function isStreamNotFound(e: unknown): boolean {
  return (
    e instanceof Error &&
    ((e as { code?: number }).code === 10059 ||
      e.name === 'StreamNotFoundError' ||
      /stream not found/i.test(e.message))
  );
}
