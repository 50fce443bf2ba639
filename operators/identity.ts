/**
 * Identity stitching (docs/IDENTITY.md): which customer keys are one person, decided in stream order.
 *
 * An event may carry `ids`, a map of identifier kinds to values (`{"phone": "<hash>", "device":
 * "d-17"}`). Identifiers seen together belong to one person: when an event's identifiers are already
 * attached to another customer, the two customers merge. The graph here is pure: it decides what an
 * event changes ({@link IdentityGraph.decide}), and applies a decision ({@link IdentityGraph.apply}).
 * The engine records each decision in a log (engine/identity/identityLog.ts) before the event goes
 * on, so a replay follows the recorded decisions instead of deciding again with a graph that already
 * knows the future.
 *
 * Routing is "as of" the event's stream sequence: a key absorbed at sequence `s` is its own customer
 * for its events before `s` and the canonical customer's from `s` on. A redelivered old event thus
 * goes where it went the first time, whatever the graph learned since.
 */

/** Limits on identifiers (the config's `identity`). */
export interface IdentityLimits {
  /** Identifiers one event may carry; an event with more is dead-lettered. @default 16 */
  maxIds: number;
  /** Longest identifier value (characters); an event with a longer one is dead-lettered. @default 256 */
  maxIdLength: number;
  /**
   * Customer keys one identifier may link. The key that would be one more makes the identifier
   * shared (a shop's tablet, a call center's number): from then on it links nobody. @default 3
   */
  maxKeysPerId: number;
}

export const DEFAULT_IDENTITY_LIMITS: IdentityLimits = { maxIds: 16, maxIdLength: 256, maxKeysPerId: 3 };

/** An identifier kind: a word of up to 32 letters, digits and `_` (`phone`, `wechat`, `device`, `appUser`). */
const KIND = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

/**
 * Why an event's `ids` cannot be used, or undefined when they can (also when absent). The worker
 * dead-letters the event with this reason; the main thread links nothing for it.
 */
export function idsProblem(
  ids: unknown,
  limits: IdentityLimits = DEFAULT_IDENTITY_LIMITS,
): string | undefined {
  if (ids === undefined) return undefined;
  if (ids === null || typeof ids !== 'object' || Array.isArray(ids))
    return 'ids must be a map of identifier kinds to values';
  const kinds = Object.keys(ids);
  if (kinds.length > limits.maxIds) return `ids has ${kinds.length} identifiers (at most ${limits.maxIds})`;
  for (const kind of kinds) {
    if (!KIND.test(kind))
      return `ids: kind ${JSON.stringify(kind.slice(0, 40))} is not a word (letters, digits, _; at most 32)`;
    const value = (ids as Record<string, unknown>)[kind];
    if (typeof value !== 'string' || value.length === 0) return `ids.${kind} must be a non-empty string`;
    if (value.length > limits.maxIdLength)
      return `ids.${kind} is ${value.length} characters long (at most ${limits.maxIdLength})`;
  }
  return undefined;
}

/** The identifiers of a valid `ids` map as `kind:value` strings, sorted (the order decisions see them). */
export function identifiersOf(ids: Record<string, string>): string[] {
  return Object.keys(ids)
    .map((kind) => `${kind}:${ids[kind]}`)
    .sort();
}

/**
 * What one event changed in the graph: a log entry. Applying the same entries in the same order
 * gives the same graph.
 */
export interface IdentityEntry {
  /** Stream sequence of the event. */
  seq: number;
  /** Event time of the event (ms): when analysts see the merge happen. */
  ts: number;
  /** The event's customer key. */
  key: string;
  /** Identifiers attached to `key` by this event. */
  attached: string[];
  /** Identifiers that became shared at this event (one key too many): they link nobody from here on. */
  shared: string[];
  /** The customers this event merged: `canonical` stays, `absorbed` become its aliases from `seq` on. */
  merge?: { canonical: string; absorbed: string[] };
}

/** An entry that merged customers. */
export type MergeEntry = IdentityEntry & { merge: NonNullable<IdentityEntry['merge']> };

/** A fresh decision: what the event changes, and the customers to merge (canonical chosen by the caller). */
export interface IdentityDecision {
  entry: Omit<IdentityEntry, 'merge'>;
  /** Current canonical customers the event joins (2 or more), sorted; empty when nothing merges. */
  joins: string[];
}

/** One merge in a customer's history. */
export interface MergeRecord {
  seq: number;
  ts: number;
  canonical: string;
  absorbed: string[];
}

/**
 * The identity graph: keys, identifiers, merges (see the file comment). Every fact carries the
 * stream sequence of the event that made it, and {@link decide} at sequence `s` sees only facts
 * made before `s`: deciding again for a replayed event gives what the first run decided, whatever
 * the graph learned since (and whether or not its entry reached the log).
 */
export class IdentityGraph {
  /** Absorbed key → the key it went into, and from which stream sequence. */
  private readonly next = new Map<string, { into: string; since: number }>();
  /** Identifier → the keys that presented it, with the sequence (at most `maxKeysPerId`). */
  private readonly keysOfId = new Map<string, Array<{ key: string; seq: number }>>();
  /** Identifiers that link nobody from a sequence on (shared by too many keys). */
  private readonly sharedFrom = new Map<string, number>();
  /** Canonical key → its aliases (every key absorbed into it, directly or not). */
  private readonly aliases = new Map<string, string[]>();
  /** Key → merges it took part in, oldest first. */
  private readonly history = new Map<string, MergeRecord[]>();
  /** Merges by the sequence of their event: a replayed merge keeps its canonical customer. */
  private readonly merges = new Map<number, NonNullable<IdentityEntry['merge']>>();
  /** Sequences of the applied entries (an entry read back from the log is not appended again). */
  private readonly applied = new Set<number>();

  constructor(readonly limits: IdentityLimits = DEFAULT_IDENTITY_LIMITS) {}

  /** Keys known as absorbed (routing looks up only when there is one). */
  get absorbedKeys(): number {
    return this.next.size;
  }

  /** Identifiers that became shared (the guard rail held). */
  get sharedIds(): number {
    return this.sharedFrom.size;
  }

  /** Whether the entry of the event at `seq` is applied already. */
  has(seq: number): boolean {
    return this.applied.has(seq);
  }

  /** The merge the event at `seq` made, when it made one. */
  mergeAt(seq: number): { canonical: string; absorbed: string[] } | undefined {
    return this.merges.get(seq);
  }

  /** The customer an event of `key` at stream sequence `seq` belongs to (current when `seq` is omitted). */
  canonicalOf(key: string, seq = Number.POSITIVE_INFINITY): string {
    let k = key;
    for (let hop = this.next.get(k); hop !== undefined && hop.since <= seq; hop = this.next.get(k))
      k = hop.into;
    return k;
  }

  /** Every key merged into `canonical` (empty for a key that absorbed none). */
  aliasesOf(canonical: string): readonly string[] {
    return this.aliases.get(canonical) ?? [];
  }

  /** The merges `key` took part in, oldest first. */
  historyOf(key: string): readonly MergeRecord[] {
    return this.history.get(key) ?? [];
  }

  /** The identifiers presented by `canonical` or one of its aliases (shared ones too, flagged). */
  identifiersOfCustomer(canonical: string): Array<{ id: string; shared: boolean }> {
    const keys = new Set([canonical, ...this.aliasesOf(canonical)]);
    const out: Array<{ id: string; shared: boolean }> = [];
    for (const [id, ks] of this.keysOfId)
      if (ks.some((k) => keys.has(k.key))) out.push({ id, shared: this.sharedFrom.has(id) });
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /**
   * What an event of `key` at `seq` with `identifiers` (sorted, `identifiersOf`) changes, as of the
   * facts made before `seq`; null when nothing.
   */
  decide(seq: number, ts: number, key: string, identifiers: readonly string[]): IdentityDecision | null {
    const attached: string[] = [];
    const shared: string[] = [];
    const before = seq - 1;
    const joins = new Set<string>([this.canonicalOf(key, before)]);
    for (const id of identifiers) {
      const sharedAt = this.sharedFrom.get(id);
      if (sharedAt !== undefined && sharedAt < seq) continue;
      const keys = (this.keysOfId.get(id) ?? []).filter((k) => k.seq < seq);
      if (keys.length === 0) {
        attached.push(id);
        continue;
      }
      if (!keys.some((k) => k.key === key)) {
        if (keys.length >= this.limits.maxKeysPerId) {
          shared.push(id);
          continue;
        }
        attached.push(id);
      }
      for (const k of keys) joins.add(this.canonicalOf(k.key, before));
    }
    if (attached.length === 0 && shared.length === 0 && joins.size < 2) return null;
    return { entry: { seq, ts, key, attached, shared }, joins: joins.size < 2 ? [] : [...joins].sort() };
  }

  /** Applies a log entry (a fresh decision completed with its merge, or one read back from the log). Idempotent. */
  apply(entry: IdentityEntry): void {
    if (this.applied.has(entry.seq)) return;
    this.applied.add(entry.seq);
    for (const id of entry.attached) {
      const keys = this.keysOfId.get(id);
      if (keys === undefined) this.keysOfId.set(id, [{ key: entry.key, seq: entry.seq }]);
      else keys.push({ key: entry.key, seq: entry.seq });
    }
    for (const id of entry.shared) {
      const at = this.sharedFrom.get(id);
      if (at === undefined || entry.seq < at) this.sharedFrom.set(id, entry.seq);
    }
    const merge = entry.merge;
    if (merge === undefined) return;
    this.merges.set(entry.seq, merge);
    const all = this.aliases.get(merge.canonical) ?? [];
    const record: MergeRecord = { seq: entry.seq, ts: entry.ts, ...merge };
    for (const a of merge.absorbed) {
      this.next.set(a, { into: merge.canonical, since: entry.seq });
      for (const k of [a, ...(this.aliases.get(a) ?? [])]) if (!all.includes(k)) all.push(k);
      this.aliases.delete(a);
      this.recordHistory(a, record);
    }
    this.aliases.set(merge.canonical, all);
    this.recordHistory(merge.canonical, record);
  }

  /**
   * Removes forgotten keys (`cxstream forget`, with their aliases) and the identifiers only they
   * presented, so that nothing answers about them any more. Their events are skipped by their
   * tombstones; the log's entries are purged by the same request.
   */
  forget(keys: readonly string[]): void {
    const gone = new Set(keys);
    for (const k of gone) {
      this.next.delete(k);
      this.aliases.delete(k);
      this.history.delete(k);
    }
    for (const [id, presented] of this.keysOfId) {
      const left = presented.filter((p) => !gone.has(p.key));
      if (left.length === presented.length) continue;
      if (left.length === 0) {
        this.keysOfId.delete(id);
        this.sharedFrom.delete(id);
      } else this.keysOfId.set(id, left);
    }
  }

  private recordHistory(key: string, record: MergeRecord): void {
    const h = this.history.get(key);
    if (h === undefined) this.history.set(key, [record]);
    else if (!h.some((r) => r.seq === record.seq)) h.push(record);
  }
}

/**
 * The canonical customer of a merge: the one whose first event is earliest (event time); a customer
 * with no state yet counts as latest; ties go to the smaller key. `firstSeen` per candidate.
 */
export function chooseCanonical(
  candidates: ReadonlyArray<{ key: string; firstSeen: number | null }>,
): string {
  let best = candidates[0]!;
  for (const c of candidates.slice(1)) {
    const a = best.firstSeen ?? Number.POSITIVE_INFINITY;
    const b = c.firstSeen ?? Number.POSITIVE_INFINITY;
    if (b < a || (b === a && c.key < best.key)) best = c;
  }
  return best.key;
}
