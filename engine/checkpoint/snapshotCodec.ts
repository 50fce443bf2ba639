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
import type { SnapshotCut } from '../../operators/partitionProcessor.js';
import type {
  CustomerEntry,
  KeyGroupSnapshot,
  PartitionSnapshot,
  Structures,
} from '../../operators/partitionState.js';
import type { TimerList } from '../../operators/timers.js';

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
 * timers, pending, chunks }] }`. In format 6 each chunk is the msgpack of
 * `[customers, lengths, sizes, bytes]` for up to {@link CHUNK_CUSTOMERS} customers: their ids
 * concatenated with each one's length, and their entries' bytes concatenated with each one's size,
 * each entry the msgpack its key group's store holds (operators/customerStore.ts, read with the
 * section's shared structures); the timers are `{ dues, customers, customerLengths, ids,
 * idLengths }` the same way, and the structures `{ keys, lengths, counts }` (all keys, their
 * lengths, the keys per structure: 128 key groups of 1 000 structures are ~1.3M keys). A flat list of one value per customer cost ~9 µs per customer at 1M
 * customers (bench:checkpoint, msgpack of 1M strings and bins and the garbage of it); four values
 * per chunk cost a copy of the bytes. Chunks let the worker encode a snapshot in slices between batches
 * (engine/runtime/worker.ts), and let recovery hand each key group to its owner without decoding its
 * customers. In format 5 a chunk was the msgpack (with records) of `[customer, entry]` pairs; states
 * written by versions without key groups (formats 2–4) are decoded whole and upgraded by the processor.
 */
export class SnapshotCodec {
  // Records (object shapes written once per chunk) make a snapshot ~2.6× smaller and no slower than
  // plain maps: how format 5 chunks were written.
  private readonly records = new Packr({ useRecords: true });
  private readonly plain = new Packr({ useRecords: false });
  /** Packs the head of each chunk (its own reused buffer: the head is copied into the chunk). */
  private readonly heads = new Packr({ useRecords: false });

  /**
   * One chunk of customers in a fresh buffer sized for it: the msgpack of the names and sizes, then
   * the entries' bytes copied once, straight into it (packing them as a msgpack value would copy
   * them twice and allocate twice per chunk).
   */
  encodeChunk(customers: ReadonlyArray<readonly [string, Uint8Array]>): Uint8Array {
    const n = customers.length;
    const names: string[] = new Array(n);
    const sizes: number[] = new Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const [customer, bytes] = customers[i]!;
      names[i] = customer;
      sizes[i] = bytes.byteLength;
      total += bytes.byteLength;
    }
    const joined = joinStrings(names);
    // `[text, lengths, sizes]` starts with fixarray 3; the chunk is `[text, lengths, sizes, bytes]`
    const head = this.heads.pack([joined.text, joined.lengths, sizes]);
    const chunk = Buffer.allocUnsafeSlow(head.byteLength + 5 + total);
    chunk.set(head, 0);
    chunk[0] = 0x94;
    let at = head.byteLength;
    chunk[at] = 0xc6; // bin 32
    chunk.writeUInt32BE(total, at + 1);
    at += 5;
    for (let i = 0; i < n; i++) {
      chunk.set(customers[i]![1], at);
      at += sizes[i]!;
    }
    return chunk;
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
          size += 30 + 3 * (g.timers.customers[i]!.length + g.timers.ids[i]!.length);
      for (const customer of g.pending ?? []) size += 3 * customer.length + 5;
    }
    this.plain.useBuffer(Buffer.allocUnsafeSlow(size));
    const packed = this.plain.pack({
      ...snapshot,
      groups: snapshot.groups.map((g) => ({
        ...g,
        ...(g.timers === undefined ? {} : { timers: packTimers(g.timers) }),
        ...(g.structures === undefined ? {} : { structures: packStructures(g.structures) }),
      })),
    });
    return new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  }

  /**
   * Encodes a cut (`PartitionProcessor.snapshotCut`) chunk by chunk, yielding after each chunk so
   * that a worker runs its next task in between (engine/runtime/worker.ts); {@link encodeCut} runs
   * it through. `entry` gives the bytes of an entry held as an object, or undefined when it was
   * encoded out of turn (copy on write) and is among `early(section)`, added when the section is done.
   */
  *cutSteps(cut: SnapshotCut, hooks: CutHooks = {}): Generator<void, Uint8Array, void> {
    const entry = hooks.entry ?? ((s, customer, e) => cut.encode(cut.sections[s]!.kg, customer, e));
    const chunks = cut.sections.map((): Uint8Array[] => []);
    for (let s = 0; s < cut.sections.length; s++) {
      const { names, values } = cut.sections[s]!;
      let chunk: Array<readonly [string, Uint8Array]> = [];
      for (let i = 0; i < names.length; i++) {
        const value = values[i]!;
        const bytes = value instanceof Uint8Array ? value : entry(s, names[i]!, value);
        if (bytes !== undefined) chunk.push([names[i]!, bytes]);
        if (chunk.length === CHUNK_CUSTOMERS) {
          chunks[s]!.push(this.encodeChunk(chunk));
          chunk = [];
          yield;
        }
      }
      for (const item of hooks.early?.(s) ?? []) chunk.push(item);
      if (chunk.length > 0) chunks[s]!.push(this.encodeChunk(chunk));
    }
    cut.finish();
    return this.assemble({
      ...cut.header,
      groups: cut.sections.map(({ names: _, values: __, ...section }, s) => ({
        ...section,
        chunks: chunks[s]!,
      })),
    });
  }

  /** A cut's bytes in one piece (benchmarks, tests): what a worker's slices produce. */
  encodeCut(cut: SnapshotCut): Uint8Array {
    const steps = this.cutSteps(cut);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
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
    if (!Array.isArray(value.groups)) return null;
    for (const g of value.groups) unpackSection(g);
    return value as EncodedSnapshot;
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
      for (const g of groups) unpackSection(g);
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
              const [text, lengths, sizes, data] = this.plain.unpack(chunk) as [
                string,
                number[],
                number[],
                Uint8Array,
              ];
              const names = splitStrings(text, lengths);
              let at = 0;
              for (let i = 0; i < names.length; i++) {
                customers.push([names[i]!, data.subarray(at, at + sizes[i]!)]);
                at += sizes[i]!;
              }
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

/** How {@link SnapshotCodec.cutSteps} gets entries encoded out of turn (copy on write). */
export interface CutHooks {
  entry?(section: number, customer: string, entry: CustomerEntry): Uint8Array | undefined;
  early?(section: number): ReadonlyArray<readonly [string, Uint8Array]>;
}

/**
 * Copy on write for a cut encoded while batches go on: `beforeChange` (set as the processor's hook)
 * encodes an entry held as an object at the cut before it changes, as it was at the cut; `hooks`
 * then skip it in its turn and add it when its section is done.
 */
export function copyOnWrite(cut: SnapshotCut): {
  beforeChange: (entry: CustomerEntry) => void;
  hooks: Required<CutHooks>;
} {
  const { sections } = cut;
  // Customers encoded ahead of their turn, per section.
  const early: Array<Array<[string, Uint8Array]>> = sections.map(() => []);
  // Every entry held as an object at the cut and still to encode, with its customer and section.
  const waiting = new Map<CustomerEntry, [customer: string, section: number]>();
  sections.forEach(({ names, values }, i) => {
    for (let k = 0; k < values.length; k++) {
      const entry = values[k]!;
      if (!(entry instanceof Uint8Array)) waiting.set(entry, [names[k]!, i]);
    }
  });
  return {
    beforeChange: (entry) => {
      const item = waiting.get(entry);
      if (item === undefined) return;
      waiting.delete(entry);
      early[item[1]]!.push([item[0], cut.encode(sections[item[1]]!.kg, item[0], entry)]);
    },
    hooks: {
      entry: (section, customer, entry) =>
        waiting.delete(entry) ? cut.encode(sections[section]!.kg, customer, entry) : undefined,
      early: (section) => early[section]!,
    },
  };
}

/** A customer of a snapshot as bytes (format 6 holds every customer encoded). */
function encoded(item: KeyGroupSnapshot['customers'][number]): readonly [string, Uint8Array] {
  if (!(item[1] instanceof Uint8Array)) {
    throw new Error(`customer ${item[0]} is not encoded: encode PartitionProcessor.snapshot(), not a cut`);
  }
  return item as readonly [string, Uint8Array];
}

/** Strings as one text and their lengths: one msgpack value instead of one per string. */
function joinStrings(list: readonly string[]): { text: string; lengths: number[] } {
  const lengths: number[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) lengths[i] = list[i]!.length;
  return { text: list.join(''), lengths };
}

function splitStrings(text: string, lengths: readonly number[]): string[] {
  const list: string[] = new Array(lengths.length);
  let at = 0;
  for (let i = 0; i < lengths.length; i++) {
    list[i] = text.slice(at, at + lengths[i]!);
    at += lengths[i]!;
  }
  return list;
}

/** A section's timers as stored. */
interface PackedTimers {
  dues: number[];
  customers: string;
  customerLengths: number[];
  ids: string;
  idLengths: number[];
}

function packTimers(timers: TimerList): PackedTimers {
  const customers = joinStrings(timers.customers);
  const ids = joinStrings(timers.ids);
  return {
    dues: timers.dues,
    customers: customers.text,
    customerLengths: customers.lengths,
    ids: ids.text,
    idLengths: ids.lengths,
  };
}

function unpackTimers(packed: PackedTimers): TimerList {
  return {
    dues: packed.dues,
    customers: splitStrings(packed.customers, packed.customerLengths),
    ids: splitStrings(packed.ids, packed.idLengths),
  };
}

/** Shared structures as stored: every key concatenated, each key's length, each structure's key count. */
interface PackedStructures {
  keys: string;
  lengths: number[];
  counts: number[];
}

function packStructures(structures: Structures): PackedStructures {
  const all: string[] = [];
  const counts: number[] = new Array(structures.length);
  for (let i = 0; i < structures.length; i++) {
    counts[i] = structures[i]!.length;
    for (const key of structures[i]!) all.push(key);
  }
  const { text, lengths } = joinStrings(all);
  return { keys: text, lengths, counts };
}

function unpackStructures(packed: PackedStructures): Structures {
  const keys = splitStrings(packed.keys, packed.lengths);
  const structures: Structures = new Array(packed.counts.length);
  let at = 0;
  for (let i = 0; i < packed.counts.length; i++) {
    structures[i] = keys.slice(at, at + packed.counts[i]!);
    at += packed.counts[i]!;
  }
  return structures;
}

/** A section's timers and structures as the processor reads them. */
function unpackSection(g: EncodedSection): void {
  if (g.timers !== undefined) g.timers = unpackTimers(g.timers as unknown as PackedTimers);
  if (g.structures !== undefined)
    g.structures = unpackStructures(g.structures as unknown as PackedStructures);
}
