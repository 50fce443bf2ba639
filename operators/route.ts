import { map, type OperatorFunction } from 'rxjs';

/*
 * Partitioning is part of the persisted state layout: each partition's checkpoint holds the
 * customers that hash to it. Changing the hash, the code units it reads or the modulo re-partitions
 * every customer, so existing checkpoints no longer match their partitions. Treat a change here as
 * a state migration (drop checkpoints and replay), and keep test/unit/route.test.ts's pinned values.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * FNV-1a 32-bit over the UTF-16 code units of `s` from `start` to the end. Reading code units (not
 * UTF-8 bytes) keeps it allocation-free; for ASCII keys it equals byte-wise FNV-1a.
 */
function fnv1a(s: string, start: number): number {
  let h = FNV_OFFSET_BASIS;
  for (let i = start; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

function checkPartitions(partitions: number): void {
  // The upper bound keeps `hash % partitions` meaningful: a 32-bit hash cannot fill more.
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 0x100000000) {
    throw new RangeError(`partitions must be an integer from 1 to 2^32, got ${partitions}`);
  }
}

/** The customer key of a subject `cx.events.<channel>.<type>.<customer>`: its last token. */
export function customerOfSubject(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}

/**
 * The partition of a customer: FNV-1a 32-bit of its key (UTF-16 code units) mod `partitions`.
 * Stable across processes and versions; changing it re-partitions all customer state.
 */
export function partitionOf(customer: string, partitions: number): number {
  checkPartitions(partitions);
  return fnv1a(customer, 0) % partitions;
}

/**
 * Splits each chunk into `partitions` arrays (index = partition of the subject's last token),
 * keeping stream order inside each partition. Partitions without events get an empty array.
 */
export function routeByPartition<T extends { subject: string }>(
  partitions: number,
): OperatorFunction<T[], T[][]> {
  checkPartitions(partitions);
  return map((chunk) => {
    const out: T[][] = new Array(partitions);
    for (let p = 0; p < partitions; p++) out[p] = [];
    for (let i = 0; i < chunk.length; i++) {
      const item = chunk[i]!;
      const subject = item.subject;
      // Hash the last token in place: the main thread routes every event, so no substring per event.
      out[fnv1a(subject, subject.lastIndexOf('.') + 1) % partitions]!.push(item);
    }
    return out;
  });
}
