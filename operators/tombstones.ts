/**
 * Tombstones of forgotten customers (`cxstream forget`, docs/PRIVACY.md "Forgetting a customer"):
 * what the engine keeps so that a replay or a redelivery does not bring a forgotten customer back.
 * Only a hash of the key is kept, never the key: the tombstone must not itself be the personal data
 * it stands for.
 */
import { createHash } from 'node:crypto';
import { fnv1a } from './keyGroups.js';

/** A forgotten customer as the engine keeps it: the key's SHA-256 and its FNV-1a (a cheap pre-check). */
export interface Tombstone {
  /** SHA-256 of the customer key's UTF-8 bytes, lower-case hex (the KV key of `cx_tombstones`). */
  hash: string;
  /**
   * FNV-1a 32-bit of the key (operators/keyGroups.ts), which the processor computes for every event
   * anyway: only an event whose FNV matches a tombstone's pays for the SHA-256 (~1 µs, a third of
   * decoding an event). It says no more about the key than the SHA-256 already does.
   */
  fnv: number;
}

/**
 * SHA-256 of a customer key, hex. Unsalted on purpose: every engine, the CLI and an auditor compute
 * the same value from the key, with no secret to keep. A low-entropy key (a phone number) can be
 * found again from it by trying every candidate: publish pseudonymous keys (docs/PRIVACY.md).
 */
export function customerHash(customer: string): string {
  return createHash('sha256').update(customer, 'utf8').digest('hex');
}

/** The tombstone of a customer key. */
export function tombstoneOf(customer: string): Tombstone {
  return { hash: customerHash(customer), fnv: fnv1a(customer) };
}

/** The tombstones a partition checks events and restored customers against. */
export class TombstoneSet {
  private readonly hashes = new Set<string>();
  private readonly fnvs = new Set<number>();

  get size(): number {
    return this.hashes.size;
  }

  add(t: Tombstone): void {
    this.hashes.add(t.hash);
    this.fnvs.add(t.fnv);
  }

  /** Whether the customer was forgotten (`fnv`: its FNV-1a when the caller has it). */
  has(customer: string, fnv = fnv1a(customer)): boolean {
    return this.hashes.size > 0 && this.fnvs.has(fnv) && this.hashes.has(customerHash(customer));
  }
}
