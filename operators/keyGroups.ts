/**
 * Key groups: the unit of state, timers, watermarks and checkpoints. A customer hashes to one of a
 * fixed number of key groups (`engine.keyGroups`, chosen once per deployment and stored with the
 * checkpoints: Flink's "max parallelism"); worker threads (and engine instances) own contiguous
 * ranges of key groups. Everything a key group produces depends only on its own events, so the same
 * checkpoints restore on 1 thread, 3 threads or 5 instances, with the same output.
 *
 * The hash is part of the persisted layout: changing it, the code units it reads or the modulo moves
 * customers to other key groups, so existing checkpoints and `cxstream.events` rows no longer match.
 * test/unit/keyGroups.test.ts pins its values.
 */

/** Key groups of a deployment unless configured. */
export const DEFAULT_KEY_GROUPS = 128;
/** Most key groups a deployment can have (a 15-bit number in every stored row and record). */
export const MAX_KEY_GROUPS = 32_768;

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * FNV-1a 32-bit over the UTF-16 code units of `s` from `start` to the end. Reading code units (not
 * UTF-8 bytes) keeps it allocation-free; for ASCII keys it equals byte-wise FNV-1a.
 */
export function fnv1a(s: string, start = 0): number {
  let h = FNV_OFFSET_BASIS;
  for (let i = start; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** Throws unless `keyGroups` is a key-group count this version supports. */
export function checkKeyGroups(keyGroups: number): void {
  if (!Number.isInteger(keyGroups) || keyGroups < 1 || keyGroups > MAX_KEY_GROUPS)
    throw new RangeError(`keyGroups must be an integer from 1 to ${MAX_KEY_GROUPS}, got ${keyGroups}`);
}

/** The key group of a customer: FNV-1a 32-bit of its key mod `keyGroups`. */
export function keyGroupOf(customer: string, keyGroups: number): number {
  return fnv1a(customer) % keyGroups;
}

/** The customer key of a subject `cx.events.<channel>.<type>.<customer>`: its last token. */
export function customerOfSubject(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}

/** The key group of an event by its subject (hashes the last token in place: no substring). */
export function keyGroupOfSubject(subject: string, keyGroups: number): number {
  return fnv1a(subject, subject.lastIndexOf('.') + 1) % keyGroups;
}

/**
 * Which of `owners` owners (worker threads, instances) owns key group `kg`: contiguous ranges, as
 * Flink assigns key groups to operator instances. The inverse of {@link keyGroupRange}.
 */
export function ownerOfKeyGroup(kg: number, keyGroups: number, owners: number): number {
  return Math.floor((kg * owners) / keyGroups);
}

/** The owner (of `owners`) of a customer's key group: the worker thread that holds the customer. */
export function ownerOfCustomer(customer: string, keyGroups: number, owners: number): number {
  return ownerOfKeyGroup(keyGroupOf(customer, keyGroups), keyGroups, owners);
}

/** The key groups owner `owner` of `owners` owns: [from, to). Empty when there are more owners than key groups. */
export function keyGroupRange(
  owner: number,
  owners: number,
  keyGroups: number,
): { from: number; to: number } {
  if (!Number.isInteger(owners) || owners < 1)
    throw new RangeError(`owners must be a positive integer, got ${owners}`);
  return {
    from: Math.ceil((owner * keyGroups) / owners),
    to: Math.ceil(((owner + 1) * keyGroups) / owners),
  };
}

/** The key groups of a range as a list. */
export function keyGroupsOf(owner: number, owners: number, keyGroups: number): number[] {
  const { from, to } = keyGroupRange(owner, owners, keyGroups);
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/**
 * The key groups worker `owner` of `owners` holds when its instance owns only `owned` (sorted): the
 * same contiguous split, over the instance's list instead of every key group. With every key group
 * owned it equals {@link keyGroupsOf}.
 */
export function ownedShare(owned: readonly number[], owner: number, owners: number): number[] {
  const { from, to } = keyGroupRange(owner, owners, owned.length);
  return owned.slice(from, to);
}

/** Every key group of a deployment, in order: what a single instance owns. */
export function allKeyGroups(keyGroups: number): number[] {
  return Array.from({ length: keyGroups }, (_, kg) => kg);
}
