import { map, type OperatorFunction } from 'rxjs';
import { allKeyGroups, checkKeyGroups, keyGroupOf, keyGroupOfSubject, ownedShare } from './keyGroups.js';

/**
 * Splits each chunk into `partitions` arrays, one per worker: an event goes to the worker owning
 * its customer's key group (`customer` when set: the key was merged into it, else the subject's key) (operators/keyGroups.ts), in stream order inside each array. Workers
 * without events get an empty array. An instance that owns only some key groups (`owned`, sorted;
 * docs/SCALING.md) splits those among its workers; events of other key groups must not reach it.
 */
export function routeByPartition<T extends { subject: string; customer?: string }>(
  partitions: number,
  keyGroups: number,
  owned: readonly number[] = allKeyGroups(keyGroups),
): OperatorFunction<T[], T[][]> {
  checkKeyGroups(keyGroups);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  // Owner per key group, computed once: the main thread routes every event.
  const owner = new Int32Array(keyGroups).fill(-1);
  for (let p = 0; p < partitions; p++) for (const kg of ownedShare(owned, p, partitions)) owner[kg] = p;
  return map((chunk) => {
    const out: T[][] = new Array(partitions);
    for (let p = 0; p < partitions; p++) out[p] = [];
    for (let i = 0; i < chunk.length; i++) {
      const item = chunk[i]!;
      const kg =
        item.customer === undefined
          ? keyGroupOfSubject(item.subject, keyGroups)
          : keyGroupOf(item.customer, keyGroups);
      const p = owner[kg]!;
      if (p < 0) throw new Error(`an event of key group ${kg} reached an instance that does not own it`);
      out[p]!.push(item);
    }
    return out;
  });
}
