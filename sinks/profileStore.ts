import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ProfileRow } from '../operators/types.js';
import { JetStreamPublisher } from './jetstreamPublisher.js';

/** The KV bucket of docs/CONTRACT.md: key = customer (see {@link profileKey}), value = profile JSON. */
export const PROFILE_BUCKET = 'cx_profiles';

/**
 * The subject a KV put publishes to (`Bucket.subjectForKey(key, true)` of @nats-io/kv for a bucket
 * that is not a mirror, on the default `$JS.API` prefix): `$KV.<bucket>.<key>`, no headers.
 */
const PUT_PREFIX = `$KV.${PROFILE_BUCKET}.`;

/** Keys NATS KV accepts as they are (a subset of its `[-/=.\w]`, leaving `=` free as a marker). */
const PLAIN_KEY = /^[-\w]+$/;

/**
 * The KV key of a customer. A customer id made only of ASCII letters, digits, `_` and `-` is its
 * own key. Any other id (dots, `@`, `:`, spaces, non-ASCII, ...) becomes `=` followed by the
 * base64url of its UTF-8 bytes, without padding: `=` never occurs in a plain key, so the mapping
 * is reversible ({@link customerOfProfileKey}) and lookups from other systems can do the same.
 */
export function profileKey(customer: string): string {
  if (PLAIN_KEY.test(customer)) return customer;
  return `=${Buffer.from(customer, 'utf8').toString('base64url')}`;
}

/** The customer id of a KV key made by {@link profileKey}. */
export function customerOfProfileKey(key: string): string {
  return key.startsWith('=') ? Buffer.from(key.slice(1), 'base64url').toString('utf8') : key;
}

/** The profile store's operations, implemented on NATS KV and in memory. */
export interface ProfileStoreLike {
  /** Stores the profiles (the last row per customer wins); resolves once stored durably. */
  put(rows: ProfileRow[]): Promise<void>;
  /** The stored profile of a customer (parsed JSON), or null. */
  get(customer: string): Promise<unknown | null>;
  /** Removes a customer's profile (`cxstream forget`). */
  delete(customer: string): Promise<void>;
}

/** Profiles in the NATS KV bucket `cx_profiles`, for online lookups by dialers and agent desktops. */
export class ProfileStore implements ProfileStoreLike {
  /** Rows waiting for the next flush: the latest per customer, in the order of their latest put. */
  private waiting = new Map<string, ProfileRow>();
  /** The flush the waiting rows go with; every `put` since the last flush resolves with it. */
  private nextFlush: Promise<void> | null = null;

  private constructor(
    private readonly kv: KV,
    private readonly publisher: JetStreamPublisher,
    private readonly flushIntervalMs: number,
  ) {}

  /**
   * Opens (creating if missing, with history 1) the bucket `cx_profiles`.
   * `opts.maxInFlight`: puts awaiting their ack at once (@default 1000);
   * `opts.timeoutMs`: wait for a put's ack (@default 5000);
   * `opts.flushIntervalMs`: how long puts are gathered before they are sent (@default 100: in
   * bench:e2e it takes the main thread's utilisation from 0.82 to 0.57, 500 ms to 0.45–0.52; the
   * fault suite resumed 2–3 s later after a nats-server kill with 500 ms than with none).
   */
  static async open(
    nc: NatsConnection,
    opts: { maxInFlight?: number; timeoutMs?: number; flushIntervalMs?: number } = {},
  ): Promise<ProfileStore> {
    const kv = await new Kvm(nc).create(PROFILE_BUCKET, { history: 1 });
    const publisher = new JetStreamPublisher(nc, {
      maxInFlight: Math.max(1, opts.maxInFlight ?? 1000),
      ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    });
    return new ProfileStore(kv, publisher, Math.max(0, opts.flushIntervalMs ?? 100));
  }

  /**
   * Stores each customer's latest row (`row.profile` as the value); resolves once stored. Puts are
   * gathered for `flushIntervalMs` and only the latest row per customer is sent: the bucket keeps
   * one value per key, so a profile superseded within the interval never needs to reach it (the
   * ClickHouse history keeps every row). Each put is a publish to the key's subject, what
   * `kv.put()` sends, pipelined without nats.js's per-request machinery. While a customer replays a
   * backlog, its profile is due every minute of event time, which can be many times per second of
   * wall time: this is where most puts go away (bench/RESULTS.md).
   */
  put(rows: ProfileRow[]): Promise<void> {
    for (const row of rows) {
      this.waiting.delete(row.customer); // re-inserted: the order follows the latest put
      this.waiting.set(row.customer, row);
    }
    this.nextFlush ??= new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const due = [...this.waiting.values()];
        this.waiting = new Map();
        this.nextFlush = null;
        this.publisher
          .publishAll(due, (row) => ({
            subject: PUT_PREFIX + profileKey(row.customer),
            data: row.profile, // the JSON text; nats.js encodes it as it writes the message
          }))
          .then(() => resolve(), reject);
      }, this.flushIntervalMs);
    });
    return this.nextFlush;
  }

  /** The parsed profile JSON, or null when there is none (or it was deleted). */
  async get(customer: string): Promise<unknown | null> {
    const entry = await this.kv.get(profileKey(customer));
    if (entry?.operation !== 'PUT' || entry.length === 0) return null;
    return entry.json();
  }

  /** Purges the key, so no earlier revision of the profile stays in the bucket. */
  async delete(customer: string): Promise<void> {
    await this.kv.purge(profileKey(customer));
  }
}

/** Profiles in a Map, for the demo without nats-server and for tests. */
export class MemoryProfileStore implements ProfileStoreLike {
  /** Profile JSON text by customer. */
  readonly profiles = new Map<string, string>();

  /** Stores each row's profile JSON. */
  async put(rows: ProfileRow[]): Promise<void> {
    for (const row of rows) this.profiles.set(row.customer, row.profile);
  }

  /** The parsed profile, or null. */
  async get(customer: string): Promise<unknown | null> {
    const json = this.profiles.get(customer);
    return json === undefined ? null : JSON.parse(json);
  }

  /** Forgets the customer's profile. */
  async delete(customer: string): Promise<void> {
    this.profiles.delete(customer);
  }
}
