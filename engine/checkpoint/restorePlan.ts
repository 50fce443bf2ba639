/**
 * Which stored records restore which key groups, for the workers of this run. Records are written
 * per worker (a section per key group it owns), so after a change of the worker count a key group's
 * latest state may be in a record of another grouping: each key group is taken from the record
 * holding it with the highest `coveredSeq` (the newest; records of the current grouping win over
 * the leftovers of an earlier one), and each worker gets the chains of the records that hold its
 * key groups, with the key groups to take from each.
 *
 * Records of versions without key groups (one partition's customers, keyed by hash mod the partition
 * count) are upgraded by the workers: every worker reads all of them and takes its key groups' customers.
 */
import { CheckpointError, type LoadedCheckpoint } from './checkpointStore.js';

/** What a worker restores: chains of encoded snapshots, and the key groups to take from each. */
export type WorkerChains = Array<{ keyGroups: number[]; states: Uint8Array[] }>;

/** The restore of a run's workers from the stored records. */
export interface RestorePlan {
  /** Per worker: what it restores (empty: it starts empty). */
  workers: WorkerChains[];
  /** Per worker: the stored record its next delta may extend (same grouping, same key groups), else null. */
  continues: Array<LoadedCheckpoint | null>;
  /** Per key group: `coveredSeq` of the record it comes from (0: none). */
  coveredSeqs: number[];
  /** Lowest `coveredSeq` over the key groups the workers own (0 when one has no record): the ack floor must not be above it. */
  coveredSeq: number;
  /** Lowest CX_TRIGGERS sequence of the records used (0 without records). */
  triggersSeq: number;
  /** Records of a version without key groups: their per-partition sequences do not apply to key groups. */
  legacy: boolean;
  /** Which records the owned key groups come from: name, coverage, key groups held. */
  sources: Array<{ record: string; coveredSeq: number; keyGroups: number }>;
  /** Bytes of the records used. */
  bytes: number;
}

/** The key-group count differs from the checkpoints': customers would land in other key groups. */
export class KeyGroupCountError extends CheckpointError {
  constructor(
    where: string,
    readonly stored: number,
    readonly configured: number,
  ) {
    super(
      `checkpoints in ${where} were written with ${stored} key groups, the engine is configured with ` +
        `${configured} (engine.keyGroups). The key-group count is fixed for a deployment: run with ` +
        `engine.keyGroups: ${stored}, or change it offline by rebuilding the state from the stream: stop ` +
        'every instance, delete the checkpoints and the durable consumer, and start again (the stream must ' +
        'still hold the history the rules need; trigger ids already on CX_TRIGGERS are not published again). ' +
        'See docs/SCALING.md.',
      where,
    );
    Object.defineProperty(this, 'name', { value: 'KeyGroupCountError' });
  }
}

/**
 * The plan for workers owning `owned[p]` (each worker's key groups, of `keyGroups`) from the loaded
 * records (any grouping, any instance's).
 */
export function planRestore(
  records: readonly LoadedCheckpoint[],
  owned: ReadonlyArray<readonly number[]>,
  keyGroups: number,
  where: string,
): RestorePlan {
  const bytes = records.reduce(
    (n, r) => n + r.state.byteLength + r.deltas.reduce((m, d) => m + d.byteLength, 0),
    0,
  );
  const current = records.filter((r) => r.keyGroups !== undefined);
  for (const r of current)
    if (r.keyGroups !== keyGroups) throw new KeyGroupCountError(where, r.keyGroups!, keyGroups);
  const legacy = records.filter((r) => r.keyGroups === undefined);
  // The record each key group comes from.
  const source: Array<LoadedCheckpoint | null> = new Array(keyGroups).fill(null);
  for (const r of current)
    for (const kg of r.kgs ?? []) {
      const s = source[kg] ?? null;
      if (
        s === null ||
        r.coveredSeq > s.coveredSeq ||
        (r.coveredSeq === s.coveredSeq && r.createdAt > s.createdAt)
      )
        source[kg] = r;
    }
  const workers: WorkerChains[] = [];
  const continues: Array<LoadedCheckpoint | null> = [];
  const partitions = owned.length;
  for (let p = 0; p < partitions; p++) {
    const kgs = owned[p]!;
    const byRecord = new Map<LoadedCheckpoint, number[]>();
    const uncovered: number[] = [];
    for (const kg of kgs) {
      const r = source[kg] ?? null;
      if (r === null) uncovered.push(kg);
      else byRecord.set(r, [...(byRecord.get(r) ?? []), kg]);
    }
    const chains: WorkerChains = [...byRecord].map(([r, kgs]) => ({
      keyGroups: kgs,
      states: [r.state, ...r.deltas],
    }));
    // Key groups no current record holds come from the records of a version without key groups.
    if (uncovered.length > 0)
      for (const r of legacy) chains.push({ keyGroups: uncovered, states: [r.state, ...r.deltas] });
    workers.push(chains);
    const own = byRecord.size === 1 ? [...byRecord][0]! : null;
    continues.push(
      own !== null &&
        uncovered.length === 0 &&
        !own[0].foreign &&
        own[0].partition === p &&
        own[0].partitions === partitions &&
        own[1].length === kgs.length &&
        own[0].kgs?.length === kgs.length
        ? own[0]
        : null,
    );
  }
  // A key group no current record holds is covered by the legacy records: up to the lowest of them
  // when every partition of that version had one, else not at all.
  const complete = legacy.length > 0 && legacy.length >= legacy[0]!.partitions;
  const legacyCovered = complete ? Math.min(...legacy.map((r) => r.coveredSeq)) : 0;
  const coveredSeqs = source.map((r) => r?.coveredSeq ?? legacyCovered);
  const legacyUsed = legacy.length > 0 && source.some((r) => r === null);
  const mine = owned.flat();
  const used = new Set<LoadedCheckpoint>(
    mine.map((kg) => source[kg] ?? null).filter((r): r is LoadedCheckpoint => r !== null),
  );
  if (legacyUsed) for (const r of legacy) used.add(r);
  const coveredSeq = Math.min(...mine.map((kg) => coveredSeqs[kg]!));
  // An owned key group without a record replays the stream from its start: every trigger it fired
  // before must be in the ledger, read from the start of CX_TRIGGERS then.
  const bare = records.length > 0 && mine.some((kg) => coveredSeqs[kg] === 0);
  return {
    workers,
    continues,
    coveredSeqs,
    coveredSeq,
    triggersSeq: used.size === 0 || bare ? 0 : Math.min(...[...used].map((r) => r.triggersSeq)),
    /** The records used, for the log. */
    sources: [...used].map((r) => ({
      record: r.object ?? `partition-${r.partition}`,
      coveredSeq: r.coveredSeq,
      keyGroups: r.kgs?.length ?? 0,
    })),
    legacy: legacyUsed,
    bytes,
  };
}
