import { map, type OperatorFunction } from 'rxjs';
import { checkKeyGroups, keyGroupOf, keyGroupOfSubject, ownerOfKeyGroup } from './keyGroups.js';

/**
 * Splits each chunk into `partitions` arrays, one per worker: an event goes to the worker owning
 * its customer's key group (`customer` when set: the key was merged into it, else the subject's key) (operators/keyGroups.ts), in stream order inside each array. Workers
 * without events get an empty array.
 */
export function routeByPartition<T extends { subject: string; customer?: string }>(
  partitions: number,
  keyGroups: number,
): OperatorFunction<T[], T[][]> {
  checkKeyGroups(keyGroups);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  // Owner per key group, computed once: the main thread routes every event.
  const owner = Int32Array.from({ length: keyGroups }, (_, kg) => ownerOfKeyGroup(kg, keyGroups, partitions));
  return map((chunk) => {
    const out: T[][] = new Array(partitions);
    for (let p = 0; p < partitions; p++) out[p] = [];
    for (let i = 0; i < chunk.length; i++) {
      const item = chunk[i]!;
      const kg =
        item.customer === undefined
          ? keyGroupOfSubject(item.subject, keyGroups)
          : keyGroupOf(item.customer, keyGroups);
      out[owner[kg]!]!.push(item);
    }
    return out;
  });
}
