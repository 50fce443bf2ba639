/**
 * What a snapshot means, for comparing two: per key group its position, the customers waiting for
 * the ordered lane and each customer's entry decoded. The bytes and the timer queue it stores are
 * left out: the bytes depend on the order in which object shapes were first encoded, the queue holds
 * stale entries (dropped when they surface) that a restored processor does not have; the live
 * timers are in the entries.
 */
import { CustomerStore } from '../../operators/customerStore.js';
import type { PartitionSnapshot } from '../../operators/partitionState.js';

export function snapshotContent(snapshot: PartitionSnapshot) {
  return {
    version: snapshot.version,
    keyGroups: snapshot.keyGroups,
    delta: snapshot.delta,
    groups: snapshot.groups.map((g) => {
      const store = new CustomerStore(
        0,
        g.structures?.map((keys) => [...keys]),
      );
      const customers = new Map(
        g.customers.map(([c, e]) => [c, e instanceof Uint8Array ? store.decode(e) : e] as const),
      );
      return { kg: g.kg, lastSeq: g.lastSeq, watermark: g.watermark, pending: g.pending, customers };
    }),
  };
}
