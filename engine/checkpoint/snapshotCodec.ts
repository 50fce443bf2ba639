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

/** Customers per chunk: one slice of a snapshot encoded between two batches (~8 µs per customer). */
export const CHUNK_CUSTOMERS = 500;

/** A key group's section with its customers still encoded (chunks). */
export interface EncodedSection extends Omit<KeyGroupSnapshot, 'customers'> {
  chunks: Uint8Array[];
}

/** A snapshot with its sections' customers still encoded: what recovery routes to the key groups' owners. */
export interface EncodedSnapshot extends Omit<PartitionSnapshot, 'groups'> {
  groups: EncodedSection[];
}

/**
 * Encodes and decodes snapshots. The `state` of a checkpoint is the msgpack of
 * `{ version, keyGroups, delta, groups: [{ kg, lastSeq, watermark, chunks }] }`, each chunk the
 * msgpack (with records) of up to {@link CHUNK_CUSTOMERS} `[customer, entry]` pairs, self-contained.
 * Chunks let the worker encode a snapshot in slices between batches (engine/runtime/worker.ts), and
 * let recovery hand each key group to its owner without decoding its customers. States written by
 * versions without key groups (formats 2–4) are decoded whole and upgraded by the processor.
 */
export class SnapshotCodec {
  // Records (object shapes written once per chunk) make a snapshot ~2.6× smaller and no slower than plain maps.
  private readonly packr = new Packr({ useRecords: true });
  private readonly envelope = new Packr({ useRecords: false });
  /** Bytes per customer of the last chunk: sizes the next chunk's buffer. */
  private bytesPerCustomer = 256;

  /**
   * One chunk of customers, packed into a fresh buffer sized for it (msgpackr's shared buffer would
   * grow by copying, and its result would have to be copied out: 1.5–2.5× the time).
   */
  encodeChunk(customers: ReadonlyArray<readonly [string, CustomerEntry]>): Uint8Array {
    const size = Math.max(4096, Math.ceil(customers.length * this.bytesPerCustomer * 1.25));
    this.packr.useBuffer(Buffer.allocUnsafeSlow(size));
    const packed = this.packr.pack(customers);
    if (customers.length > 0) this.bytesPerCustomer = packed.byteLength / customers.length;
    return packed;
  }

  /** The snapshot's bytes from its sections, in a buffer of its own (its `.buffer` can be transferred). */
  assemble(snapshot: EncodedSnapshot): Uint8Array {
    let size = 4096;
    for (const g of snapshot.groups) {
      size += 96;
      for (const chunk of g.chunks) size += chunk.byteLength + 8;
    }
    this.envelope.useBuffer(Buffer.allocUnsafeSlow(size));
    const packed = this.envelope.pack(snapshot);
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
          chunks.push(this.encodeChunk(customers.slice(i, i + CHUNK_CUSTOMERS)));
        return { ...section, chunks };
      }),
    });
  }

  /** The sections of a snapshot, customers still encoded; null for a state of a version without key groups. */
  sections(bytes: Uint8Array): EncodedSnapshot | null {
    const value = this.envelope.unpack(bytes) as Partial<EncodedSnapshot>;
    return Array.isArray(value.groups) ? (value as EncodedSnapshot) : null;
  }

  /**
   * Decodes a snapshot encoded by {@link encode}, in slices, or by an earlier version (returned as
   * written). With `wanted`, the customers of other key groups are left out (not decoded).
   */
  decode(bytes: Uint8Array, wanted?: (kg: number) => boolean): PartitionSnapshot {
    const value = this.envelope.unpack(bytes) as Record<string, unknown>;
    if (Array.isArray(value.groups)) {
      const { groups, ...header } = value as unknown as EncodedSnapshot;
      return {
        ...header,
        groups: groups
          .filter((g) => wanted?.(g.kg) ?? true)
          .map(({ chunks, ...section }) => {
            const customers: Array<[string, CustomerEntry]> = [];
            for (const chunk of chunks)
              for (const pair of this.packr.unpack(chunk) as Array<[string, CustomerEntry]>)
                customers.push(pair);
            return { ...section, customers };
          }),
      };
    }
    // Format 4: a header and chunks of one partition's customers; formats 2 and 3: one msgpack.
    if (!Array.isArray(value.chunks)) return this.packr.unpack(bytes) as PartitionSnapshot;
    const { chunks, ...header } = value as { chunks: Uint8Array[] };
    const customers: Array<[string, CustomerEntry]> = [];
    for (const chunk of chunks)
      for (const pair of this.packr.unpack(chunk) as Array<[string, CustomerEntry]>) customers.push(pair);
    return { ...header, customers } as unknown as PartitionSnapshot;
  }
}
