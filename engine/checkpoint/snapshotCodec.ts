/**
 * The msgpack codec of partition snapshots (the `state` of a checkpoint), shared by the worker and
 * the benchmarks so they measure what the engine does.
 *
 * Why it looks like this (profiled with 100k customers, bench/checkpoint.ts): the cost of a
 * snapshot is per value, not per byte — a customer is ~100 small numbers, strings and arrays,
 * ~2.4 bytes per value — so msgpackr runs at ~60–100 ns per value (~8 µs per customer), not at its
 * 100+ MB/s of large strings. Encoding in chunks of a few hundred customers keeps msgpackr's reused
 * buffer small (no growth by copying), costs one copy of each chunk and one of the envelope, and
 * lets the worker spread a snapshot over many short slices between batches instead of stopping the
 * partition for the whole encode (70–270 ms at 12k customers, 15 s at 1M).
 */
import { Packr } from 'msgpackr';
import type { CustomerEntry, KeyGroupSnapshot, PartitionSnapshot } from '../../operators/partitionState.js';

/**
 * Customers per chunk: one slice of a snapshot encoded between two batches. Customers held as
 * objects cost ~8 µs each to encode (more on a loaded machine); those held as bytes are copied.
 */
export const CHUNK_CUSTOMERS = 500;

/** A key group's section with its customers still in chunks. */
export interface EncodedSection extends Omit<KeyGroupSnapshot, 'customers'> {
  chunks: Uint8Array[];
}

/** A snapshot with its sections' customers still in chunks: what recovery routes to the key groups' owners. */
export interface EncodedSnapshot extends Omit<PartitionSnapshot, 'groups'> {
  groups: EncodedSection[];
}

/**
 * Encodes and decodes snapshots. The `state` of a checkpoint is the msgpack of
 * `{ version, keyGroups, delta, groups: [{ kg, lastSeq, watermark, structuresFrom, structures,
 * timers, pending, chunks }] }`; in format 6 each chunk is the msgpack of a flat list
 * `[customer, entry bytes, customer, entry bytes, ...]` of up to {@link CHUNK_CUSTOMERS} customers,
 * each entry the msgpack its key group's store holds (operators/customerStore.ts, read with the
 * section's shared structures). Chunks let the worker encode a snapshot in slices between batches
 * (engine/runtime/worker.ts), and let recovery hand each key group to its owner without decoding its
 * customers. In format 5 a chunk was the msgpack (with records) of `[customer, entry]` pairs; states
 * written by versions without key groups (formats 2–4) are decoded whole and upgraded by the processor.
 */
export class SnapshotCodec {
  // Records (object shapes written once per chunk) make a snapshot ~2.6× smaller and no slower than
  // plain maps: how format 5 chunks were written.
  private readonly records = new Packr({ useRecords: true });
  private readonly plain = new Packr({ useRecords: false });

  /**
   * One chunk of customers, packed into a fresh buffer sized for it (msgpackr's shared buffer would
   * grow by copying, and its result would have to be copied out: 1.5–2.5× the time).
   */
  encodeChunk(customers: ReadonlyArray<readonly [string, Uint8Array]>): Uint8Array {
    let size = 64;
    const flat: Array<string | Uint8Array> = new Array(customers.length * 2);
    for (let i = 0; i < customers.length; i++) {
      const [customer, bytes] = customers[i]!;
      flat[2 * i] = customer;
      flat[2 * i + 1] = bytes;
      size += bytes.byteLength + 3 * customer.length + 10;
    }
    this.plain.useBuffer(Buffer.allocUnsafeSlow(size));
    return this.plain.pack(flat);
  }

  /** The snapshot's bytes from its sections, in a buffer of its own (its `.buffer` can be transferred). */
  assemble(snapshot: EncodedSnapshot): Uint8Array {
    let size = 4096;
    for (const g of snapshot.groups) {
      size += 96;
      for (const chunk of g.chunks) size += chunk.byteLength + 8;
      for (const keys of g.structures ?? []) for (const key of keys) size += 3 * key.length + 8;
      if (g.timers !== undefined)
        for (let i = 0; i < g.timers.dues.length; i++)
          size += 20 + 3 * (g.timers.customers[i]!.length + g.timers.ids[i]!.length);
      for (const customer of g.pending ?? []) size += 3 * customer.length + 5;
    }
    this.plain.useBuffer(Buffer.allocUnsafeSlow(size));
    const packed = this.plain.pack(snapshot);
    return new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  }

  /** The whole snapshot at once (tests, benchmarks); the worker encodes in slices. */
  encode(snapshot: PartitionSnapshot): Uint8Array {
    const { groups, ...header } = snapshot;
    return this.assemble({
      ...header,
      groups: groups.map(({ customers, ...section }) => {
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < customers.length; i += CHUNK_CUSTOMERS)
          chunks.push(this.encodeChunk(customers.slice(i, i + CHUNK_CUSTOMERS).map(encoded)));
        return { ...section, chunks };
      }),
    });
  }

  /** The sections of a snapshot, customers still in chunks; null for a state of a version without key groups. */
  sections(bytes: Uint8Array): EncodedSnapshot | null {
    const value = this.plain.unpack(bytes) as Partial<EncodedSnapshot>;
    return Array.isArray(value.groups) ? (value as EncodedSnapshot) : null;
  }

  /**
   * Decodes a snapshot encoded by {@link encode}, in slices, or by an earlier version (returned as
   * written). With `wanted`, the customers of other key groups are left out. Customers of format 6
   * stay encoded: their bytes are views of `bytes`, which they keep alive.
   */
  decode(bytes: Uint8Array, wanted?: (kg: number) => boolean): PartitionSnapshot {
    const value = this.plain.unpack(bytes) as Record<string, unknown>;
    if (Array.isArray(value.groups)) {
      const { groups, ...header } = value as unknown as EncodedSnapshot;
      const format5 = (header.version as number) === 5;
      return {
        ...header,
        groups: groups
          .filter((g) => wanted?.(g.kg) ?? true)
          .map(({ chunks, ...section }) => {
            const customers: KeyGroupSnapshot['customers'] = [];
            for (const chunk of chunks) {
              if (format5) {
                for (const pair of this.records.unpack(chunk) as Array<[string, CustomerEntry]>)
                  customers.push(pair);
                continue;
              }
              const flat = this.plain.unpack(chunk) as Array<string | Uint8Array>;
              for (let i = 0; i < flat.length; i += 2)
                customers.push([flat[i] as string, flat[i + 1] as Uint8Array]);
            }
            return { ...section, customers };
          }),
      };
    }
    // Format 4: a header and chunks of one partition's customers; formats 2 and 3: one msgpack.
    if (!Array.isArray(value.chunks)) return this.records.unpack(bytes) as PartitionSnapshot;
    const { chunks, ...header } = value as { chunks: Uint8Array[] };
    const customers: Array<[string, CustomerEntry]> = [];
    for (const chunk of chunks)
      for (const pair of this.records.unpack(chunk) as Array<[string, CustomerEntry]>) customers.push(pair);
    return { ...header, customers } as unknown as PartitionSnapshot;
  }
}

/** A customer of a snapshot as bytes (format 6 holds every customer encoded). */
function encoded(item: KeyGroupSnapshot['customers'][number]): [string, Uint8Array] {
  const [customer, entry] = item;
  if (!(entry instanceof Uint8Array)) {
    throw new Error(`customer ${customer} is not encoded: encode PartitionProcessor.snapshot(), not a cut`);
  }
  return [customer, entry];
}
