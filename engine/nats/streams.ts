import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import { DEAD_LETTER_SUBJECT } from '../../sinks/deadLetters.js';
import { PROFILE_BUCKET } from '../../sinks/profileStore.js';
import { TOMBSTONE_BUCKET, TombstoneStore } from '../../sinks/tombstoneStore.js';
import { type Config, defaultConfig } from '../config/config.js';
import { settingName } from '../config/environment.js';
import { SettingError } from '../config/errors.js';
import { log } from '../runtime/log.js';

/** Stream and subject names of docs/CONTRACT.md "NATS"; other systems build against these. */
export const natsNames = Object.freeze({
  eventsStream: 'CX_EVENTS',
  eventsSubjects: 'cx.events.>',
  triggersStream: 'CX_TRIGGERS',
  triggersSubjects: 'cx.triggers.>',
  deadLetterStream: 'CX_DLQ',
  deadLetterSubjects: 'cx.dlq.>',
  deadLetterSubject: DEAD_LETTER_SUBJECT,
  profileBucket: PROFILE_BUCKET,
  /** The stream behind the profile bucket. */
  profileStream: `KV_${PROFILE_BUCKET}`,
  /** Hashes of forgotten customers (`cxstream forget`). */
  tombstoneBucket: TOMBSTONE_BUCKET,
  tombstoneStream: `KV_${TOMBSTONE_BUCKET}`,
});

/** The `streams` section of the config: limits of what the engine creates. */
export type StreamSettings = Config['streams'];

/** The default stream settings with some limits changed (tests, benchmarks, the fault harness). */
export function streamSettings(
  overrides: { [K in keyof StreamSettings]?: Partial<StreamSettings[K]> } = {},
): StreamSettings {
  const base = defaultConfig().streams;
  return {
    events: { ...base.events, ...overrides.events },
    triggers: { ...base.triggers, ...overrides.triggers },
    deadLetters: { ...base.deadLetters, ...overrides.deadLetters },
    profiles: { ...base.profiles, ...overrides.profiles },
  };
}

/** What {@link ensureStreams} found or did for one stream, bucket or consumer (`cxstream setup` prints it). */
export interface SetupStep {
  kind: 'stream' | 'bucket' | 'consumer';
  name: string;
  /** created; exists (as configured); differs (exists, settings differ, left as is); updated (to the config). */
  outcome: 'created' | 'exists' | 'differs' | 'updated';
  /** Settings that differ from the config: `max_age 0 s (config 7 d)`. */
  differences: string[];
}

/** Options of {@link ensureStreams}. */
export interface EnsureStreamsOptions {
  /**
   * Bring existing streams and buckets to the configured limits (max age, max bytes, duplicate
   * window, replicas) instead of leaving them as they are. @default false
   */
  update?: boolean;
}

interface StreamPlan {
  name: string;
  subjects: string[];
  /** Config path of its limits, for messages. */
  setting: string;
  limits: StreamSettings['events'];
}

function plans(settings: StreamSettings): StreamPlan[] {
  return [
    {
      name: natsNames.eventsStream,
      subjects: [natsNames.eventsSubjects],
      setting: 'streams.events',
      limits: settings.events,
    },
    {
      name: natsNames.triggersStream,
      subjects: [natsNames.triggersSubjects],
      setting: 'streams.triggers',
      limits: settings.triggers,
    },
    {
      name: natsNames.deadLetterStream,
      subjects: [natsNames.deadLetterSubjects],
      setting: 'streams.deadLetters',
      limits: settings.deadLetters,
    },
  ];
}

/**
 * Creates the streams CX_EVENTS, CX_TRIGGERS, CX_DLQ and the KV bucket cx_profiles where missing,
 * with the configured replicas, retention (max age, max bytes) and duplicate window. Existing ones
 * are left as they are (operators may have tuned them) unless `update`; a duplicate window shorter
 * than configured is logged as a warning, since publishers' retries beyond it are stored twice.
 * @throws SettingError when another stream already stores one of the subjects (it names both)
 */
export async function ensureStreams(
  nc: NatsConnection,
  settings: StreamSettings = defaultConfig().streams,
  options: EnsureStreamsOptions = {},
): Promise<SetupStep[]> {
  const jsm = await jetstreamManager(nc);
  const steps: SetupStep[] = [];
  for (const plan of plans(settings)) steps.push(await ensureStream(jsm, plan, options.update ?? false));
  steps.push(await ensureProfileBucket(nc, jsm, settings.profiles, options.update ?? false));
  steps.push(await ensureTombstoneBucket(nc, jsm, settings.profiles.replicas));
  return steps;
}

/** The stream config the engine creates for a plan. */
function streamConfig(plan: StreamPlan): Partial<StreamConfig> & { name: string } {
  return {
    name: plan.name,
    subjects: plan.subjects,
    storage: StorageType.File,
    num_replicas: plan.limits.replicas,
    max_age: nanos(plan.limits.maxAgeMs),
    max_bytes: plan.limits.maxBytes,
    duplicate_window: nanos(plan.limits.duplicateWindowMs),
  };
}

async function ensureStream(jsm: JetStreamManager, plan: StreamPlan, update: boolean): Promise<SetupStep> {
  const wanted = streamConfig(plan);
  let info = await streamInfo(jsm, plan.name);
  if (info === null) {
    try {
      await jsm.streams.add(wanted);
      return { kind: 'stream', name: plan.name, outcome: 'created', differences: [] };
    } catch (e) {
      // Another process may have created it between info and add; that one is as good as ours.
      info = await streamInfo(jsm, plan.name);
      if (info === null) throw await explainAddFailure(jsm, plan, e);
    }
  }
  const differences = streamDifferences(info.config, wanted);
  const shorter = info.config.duplicate_window < wanted.duplicate_window!;
  if (differences.length === 0) return { kind: 'stream', name: plan.name, outcome: 'exists', differences };
  if (update) {
    await jsm.streams.update(plan.name, { ...info.config, ...limitsOnly(wanted) }).catch((e: unknown) => {
      throw new SettingError(
        `cannot update stream ${plan.name} to ${plan.setting}: ${(e as Error).message}`,
        plan.setting,
        'NATS',
        false,
        { cause: e },
      );
    });
    return { kind: 'stream', name: plan.name, outcome: 'updated', differences };
  }
  if (shorter) {
    log.warn(
      {
        stream: plan.name,
        duplicateWindowMs: info.config.duplicate_window / 1e6,
        configuredMs: plan.limits.duplicateWindowMs,
      },
      `stream ${plan.name} has a duplicate window of ${duration(info.config.duplicate_window / 1e6)}, shorter than ` +
        `${settingName(`${plan.setting}.duplicateWindowMs`)} (${duration(plan.limits.duplicateWindowMs)}): a message ` +
        'published again after that window (a publisher retrying after an outage) is stored twice. ' +
        'Raise it with `cxstream setup --update`, or lower the setting to what you rely on',
    );
  }
  return { kind: 'stream', name: plan.name, outcome: 'differs', differences };
}

/** The limits of a stream config (what `setup --update` changes; never subjects or storage). */
function limitsOnly(c: Partial<StreamConfig>): Partial<StreamConfig> {
  return {
    num_replicas: c.num_replicas,
    max_age: c.max_age,
    max_bytes: c.max_bytes,
    duplicate_window: c.duplicate_window,
  };
}

function streamDifferences(have: StreamConfig, want: Partial<StreamConfig>): string[] {
  const out: string[] = [];
  const ns = (n: number) => duration(n / 1e6);
  const bytes = (n: number) => (n < 0 ? 'no limit' : `${n} bytes`);
  if (want.subjects && want.subjects.join(',') !== (have.subjects ?? []).join(','))
    out.push(`subjects ${(have.subjects ?? []).join(',')} (engine uses ${want.subjects.join(',')})`);
  if (want.num_replicas !== undefined && have.num_replicas !== want.num_replicas)
    out.push(`replicas ${have.num_replicas} (config ${want.num_replicas})`);
  if (want.max_age !== undefined && have.max_age !== want.max_age)
    out.push(
      `max_age ${have.max_age === 0 ? 'unlimited' : ns(have.max_age)} (config ${want.max_age === 0 ? 'unlimited' : ns(want.max_age)})`,
    );
  if (want.max_bytes !== undefined && have.max_bytes !== want.max_bytes)
    out.push(`max_bytes ${bytes(have.max_bytes)} (config ${bytes(want.max_bytes)})`);
  if (want.duplicate_window !== undefined && have.duplicate_window !== want.duplicate_window)
    out.push(`duplicate_window ${ns(have.duplicate_window)} (config ${ns(want.duplicate_window)})`);
  return out;
}

async function ensureProfileBucket(
  nc: NatsConnection,
  jsm: JetStreamManager,
  limits: StreamSettings['profiles'],
  update: boolean,
): Promise<SetupStep> {
  const info = await streamInfo(jsm, natsNames.profileStream);
  if (info === null) {
    await new Kvm(nc).create(natsNames.profileBucket, {
      history: 1,
      replicas: limits.replicas,
      ...(limits.maxBytes > 0 && { max_bytes: limits.maxBytes }),
    });
    return { kind: 'bucket', name: natsNames.profileBucket, outcome: 'created', differences: [] };
  }
  const want: Partial<StreamConfig> = { num_replicas: limits.replicas, max_bytes: limits.maxBytes };
  const differences = streamDifferences(info.config, want);
  if (differences.length === 0)
    return { kind: 'bucket', name: natsNames.profileBucket, outcome: 'exists', differences };
  if (!update) return { kind: 'bucket', name: natsNames.profileBucket, outcome: 'differs', differences };
  await jsm.streams.update(natsNames.profileStream, { ...info.config, ...want });
  return { kind: 'bucket', name: natsNames.profileBucket, outcome: 'updated', differences };
}

/**
 * The bucket of forgotten customers (`cxstream forget`), with the profile bucket's replicas: it
 * holds no personal data, only hashes, and has no limits to tune.
 */
async function ensureTombstoneBucket(
  nc: NatsConnection,
  jsm: JetStreamManager,
  replicas: number,
): Promise<SetupStep> {
  const name = natsNames.tombstoneBucket;
  if ((await streamInfo(jsm, natsNames.tombstoneStream)) !== null)
    return { kind: 'bucket', name, outcome: 'exists', differences: [] };
  await TombstoneStore.open(nc, { replicas });
  return { kind: 'bucket', name, outcome: 'created', differences: [] };
}

/**
 * Creates the engine's durable consumer on CX_EVENTS when missing (`cxstream setup`), as the engine
 * would on its first start: ack policy all, the configured ack wait and flow-control limit. An
 * existing one is left as it is (the engine adjusts ack wait and max ack pending when it starts).
 */
export async function ensureDurableConsumer(
  nc: NatsConnection,
  settings: Pick<Config['nats'], 'durable' | 'ackWaitMs' | 'maxInFlight'>,
): Promise<SetupStep> {
  const jsm = await jetstreamManager(nc);
  try {
    const info = await jsm.consumers.info(natsNames.eventsStream, settings.durable);
    const differences =
      info.config.ack_policy === AckPolicy.All
        ? []
        : [
            `ack_policy ${info.config.ack_policy} (the engine needs "all": delete the consumer to let it recreate it)`,
          ];
    return {
      kind: 'consumer',
      name: `${natsNames.eventsStream}/${settings.durable}`,
      outcome: differences.length ? 'differs' : 'exists',
      differences,
    };
  } catch (e) {
    if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound)) throw e;
  }
  await jsm.consumers.add(natsNames.eventsStream, {
    durable_name: settings.durable,
    ack_policy: AckPolicy.All,
    ack_wait: nanos(settings.ackWaitMs),
    max_ack_pending: settings.maxInFlight,
    deliver_policy: DeliverPolicy.All,
  });
  return {
    kind: 'consumer',
    name: `${natsNames.eventsStream}/${settings.durable}`,
    outcome: 'created',
    differences: [],
  };
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (e) {
    if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound) return null;
    throw e;
  }
}

/** A failed stream creation in words: the stream in the way (subjects overlap) and what to do. */
async function explainAddFailure(jsm: JetStreamManager, plan: StreamPlan, e: unknown): Promise<Error> {
  const message = (e as Error).message ?? String(e);
  if (!/overlap/i.test(message)) {
    return new SettingError(
      `cannot create stream ${plan.name} (subjects ${plan.subjects.join(', ')}, ${plan.setting}): ${message}`,
      plan.setting,
      'NATS',
      false,
      { cause: e },
    );
  }
  const inTheWay: string[] = [];
  for await (const info of jsm.streams.list()) {
    const subjects = info.config.subjects ?? [];
    if (subjects.some((s) => plan.subjects.some((p) => subjectsOverlap(s, p))))
      inTheWay.push(`${info.config.name} (subjects ${subjects.join(', ')})`);
  }
  const which = inTheWay.length > 0 ? inTheWay.join(' and ') : 'another stream';
  return new SettingError(
    `cannot create stream ${plan.name} for subjects ${plan.subjects.join(', ')}: they overlap with ${which}, ` +
      'and a subject can be stored by one stream only. Remove that stream or narrow its subjects so that ' +
      `${plan.subjects.join(', ')} is free (nats stream edit / nats stream rm), or, if it is meant to be ` +
      `${plan.name}, rename it to ${plan.name}; then start again`,
    plan.setting,
    'NATS',
    false,
    { cause: e },
  );
}

/** Whether two subject filters can match a common subject (`*` one token, `>` one or more at the end). */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; ; i++) {
    const s = x[i];
    const t = y[i];
    if (s === undefined || t === undefined) return s === undefined && t === undefined;
    if (s === '>' || t === '>') return true;
    if (s !== '*' && t !== '*' && s !== t) return false;
  }
}

/** 600000 → "10 min", 604800000 → "7 d". */
function duration(ms: number): string {
  const units: Array<[number, string]> = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}
