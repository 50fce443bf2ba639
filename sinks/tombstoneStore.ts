import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Tombstone } from '../operators/tombstones.js';
import { BUCKET_RETRY, retrying } from './retry.js';

/**
 * The KV bucket of forgotten customers (docs/PRIVACY.md "Forgetting a customer"): key = SHA-256 of
 * the customer key (hex), value = JSON `{"fnv": <FNV-1a of the key>, "at": <epoch ms>}`. No key,
 * no personal data. History 1, no age limit: a tombstone must outlive every replay that could
 * bring the customer back.
 */
export const TOMBSTONE_BUCKET = 'cx_tombstones';

/** What a tombstone's value holds besides its key. */
interface TombstoneValue {
  fnv: number;
  /** When the customer was forgotten (epoch ms). */
  at: number;
}

/** Tombstones in NATS KV, read by the engine at start and written by `forget`. */
export class TombstoneStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket, creating it (history 1, `replicas`) when missing. */
  static async open(nc: NatsConnection, opts: { replicas?: number } = {}): Promise<TombstoneStore> {
    // instances of a deployment starting together open the replicated bucket at once: slow on a busy cluster
    const kv = await retrying(
      'opening the tombstone bucket',
      () => new Kvm(nc).create(TOMBSTONE_BUCKET, { history: 1, replicas: opts.replicas ?? 1 }),
      BUCKET_RETRY,
    );
    return new TombstoneStore(kv);
  }

  /** Every tombstone. */
  async all(): Promise<Tombstone[]> {
    const hashes: string[] = [];
    for await (const key of await this.kv.keys()) hashes.push(key);
    const out: Tombstone[] = [];
    for (const hash of hashes) {
      const entry = await this.kv.get(hash);
      if (entry?.operation !== 'PUT' || entry.length === 0) continue;
      out.push({ hash, fnv: entry.json<TombstoneValue>().fnv });
    }
    return out;
  }

  /** Stores a tombstone (durably: the put is acknowledged); the time of an earlier one, or null when new. */
  async put(tombstone: Tombstone, at: number): Promise<number | null> {
    const before = await this.kv.get(tombstone.hash);
    if (before?.operation === 'PUT' && before.length > 0) return before.json<TombstoneValue>().at;
    const value: TombstoneValue = { fnv: tombstone.fnv, at };
    await this.kv.put(tombstone.hash, JSON.stringify(value));
    return null;
  }
}
