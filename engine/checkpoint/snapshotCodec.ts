/**
 * The msgpack codec of partition snapshots (the `state` of a checkpoint), shared by the worker and
 * the benchmarks so they measure what the engine does.
 *
 * Why it looks like this (profiled with 100k customers, bench/checkpoint.ts): the cost of a
 * snapshot is per value, not per byte — a customer is ~100 small numbers, strings and arrays,
 * ~2.4 bytes per value — so msgpackr runs at ~60–100 ns per value (~8 µs per customer), not at its
 * 100+ MB/s of large strings. Encoding in chunks of a few hundred customers keeps msgpackr's reused
 * buffer small (no growth by copying) and lets the worker spread a snapshot over many short slices
 * between batches instead of stopping the partition for the whole encode (70–270 ms at 12k
 * customers, 15 s at 1M). Customers at rest are bytes already (operators/customerStore.ts): they are
 * copied once, into the one buffer the snapshot is written to.
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
   * Encodes a cut (`PartitionProcessor.snapshotCut`) chunk by chunk, yielding after each chunk so
   * that a worker runs its next task in between (engine/runtime/worker.ts); {@link encodeCut} runs
   * it through. `entry` gives the bytes of an entry held as an object, or undefined when it was
   * encoded out of turn (copy on write) and is among `early(section)`, added when the section is done.
   *
   * Everything is written into one buffer, sized up front from the bytes the cut holds, rather than
   * a buffer per chunk and a copy of them all into the envelope (the snapshot's size allocated twice
   * outside the heap, in ~2 000 pieces at 1M customers). Customers at rest are offsets into their key
   * group's arena, so the cut holds no object per customer (bench/RESULTS.md, "A byte arena per key
   * group, one buffer per snapshot").
   */
  *cutSteps(cut: SnapshotCut, hooks: CutHooks = {}): Generator<void, Uint8Array, void> {
    const entry = hooks.entry ?? ((s, customer, e) => cut.encode(cut.sections[s]!.kg, customer, e));
    const out = new SnapshotWriter(sizeOf(cut));
    out.map(this.plain.pack(cut.header), 1);
    out.key('groups');
    out.array32(cut.sections.length);
    const chunk = new Chunk();
    for (let s = 0; s < cut.sections.length; s++) {
      const { names, values, sizes, bytes, structures: _, ...section } = cut.sections[s]!;
      // the structures go last: entries encoded while the section is written may add to them
      out.map(this.plain.pack(packTimersOf(section)), 2);
      out.key('chunks');
      const count = out.array32(0);
      let chunks = 0;
      for (let i = 0; i < names.length; i++) {
        const value = values[i]!;
        if (typeof value === 'number') chunk.add(names[i]!, bytes, value, sizes[i]!);
        else if (value instanceof Uint8Array) chunk.add(names[i]!, value, 0, value.byteLength);
        else {
          const encoded = entry(s, names[i]!, value);
          if (encoded !== undefined) chunk.add(names[i]!, encoded, 0, encoded.byteLength);
        }
        if (chunk.names.length === CHUNK_CUSTOMERS) {
          this.writeChunk(out, chunk);
          chunks++;
          yield;
        }
      }
      for (const [customer, encoded] of hooks.early?.(s) ?? [])
        chunk.add(customer, encoded, 0, encoded.byteLength);
      if (chunk.names.length > 0) {
        this.writeChunk(out, chunk);
        chunks++;
      }
      out.patch32(count, chunks);
      cut.finish(s);
      out.key('structures');
      out.write(this.plain.pack(packStructures(cut.sections[s]!.structures ?? [])));
      // Also after a section's last chunk: key groups are mostly smaller than a chunk, and a
      // snapshot that yielded only after full chunks ran whole in one slice (bench/RESULTS.md).
      if (names.length > 0) yield;
    }
    return out.done();
  }

  /**
   * One chunk of customers as a msgpack bin holding the msgpack of `[names, lengths, sizes, bytes]`:
   * the entries' bytes are copied once, straight into the snapshot (packing them as a msgpack value
   * would copy them twice). Empties `chunk`.
   */
  private writeChunk(out: SnapshotWriter, chunk: Chunk): void {
    let total = 0;
    for (const size of chunk.sizes) total += size;
    const joined = joinStrings(chunk.names);
    // `[text, lengths, sizes]` starts with fixarray 3; the chunk is `[text, lengths, sizes, bytes]`
    const head = this.heads.pack([joined.text, joined.lengths, chunk.sizes]);
    out.bin32(head.byteLength + 5 + total);
    out.byte(0x94);
    out.write(head.subarray(1));
    out.bin32(total);
    for (let i = 0; i < chunk.names.length; i++)
      out.copy(chunk.sources[i]!, chunk.offsets[i]!, chunk.sizes[i]!);
    chunk.clear();
  }

  /** A cut's bytes in one piece (benchmarks, tests): what a worker's slices produce. */
  encodeCut(cut: SnapshotCut): Uint8Array {
    const steps = this.cutSteps(cut);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /** The whole snapshot at once (tests, benchmarks); the worker encodes a cut in slices. */
  encode(snapshot: PartitionSnapshot): Uint8Array {
    const { groups, ...header } = snapshot;
    return this.encodeCut({
      header,
      sections: groups.map(({ customers, pending, ...section }) => {
        // the cut's shape: every entry's bytes side by side in one buffer
        const sizes = Uint32Array.from(customers, (item) => encoded(item)[1].byteLength);
        const bytes = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
        const values: number[] = [];
        let at = 0;
        customers.forEach(([, entry], i) => {
          bytes.set(entry as Uint8Array, at);
          values.push(at);
          at += sizes[i]!;
        });
        return { ...section, names: customers.map(([c]) => c), values, sizes, bytes, pending: pending ?? [] };
      }),
      encode: (_, customer) => {
        throw new Error(`customer ${customer} is not encoded`);
      },
      finish: () => {},
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
      if (typeof entry !== 'number' && !(entry instanceof Uint8Array)) waiting.set(entry, [names[k]!, i]);
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

/** A section's fields as stored, its timers packed (the structures are written after its chunks). */
function packTimersOf<T extends { timers?: TimerList }>(
  section: T,
): Omit<T, 'timers'> & { timers?: PackedTimers } {
  const { timers, ...rest } = section;
  return timers === undefined ? rest : { ...rest, timers: packTimers(timers) };
}

/** Bytes guessed for an entry held as an object (a day of traffic encodes to ~600–800 bytes). */
const ENTRY_GUESS = 1024;

/**
 * About the size of a cut's snapshot: the bytes it holds, a guess for the entries held as objects,
 * the names, timers and pending lists (UTF-8 at most 3 bytes per UTF-16 unit), room for structures.
 */
function sizeOf(cut: SnapshotCut): number {
  let size = 64 * 1024;
  for (const { names, values, sizes, timers, pending } of cut.sections) {
    size += 16 * 1024 + 64 * Math.ceil(names.length / CHUNK_CUSTOMERS);
    for (let i = 0; i < values.length; i++) {
      const value = values[i]!;
      const bytes =
        typeof value === 'number' ? sizes[i]! : value instanceof Uint8Array ? value.byteLength : ENTRY_GUESS;
      size += bytes + 3 * names[i]!.length + 10;
    }
    if (timers !== undefined)
      for (let i = 0; i < timers.dues.length; i++)
        size += 30 + 3 * (timers.customers[i]!.length + timers.ids[i]!.length);
    for (const customer of pending ?? []) size += 3 * customer.length + 5;
  }
  return size;
}

/** The customers of the chunk being written: names, and where each one's bytes are. */
class Chunk {
  readonly names: string[] = [];
  readonly sources: Uint8Array[] = [];
  readonly offsets: number[] = [];
  readonly sizes: number[] = [];

  add(customer: string, source: Uint8Array, offset: number, size: number): void {
    this.names.push(customer);
    this.sources.push(source);
    this.offsets.push(offset);
    this.sizes.push(size);
  }

  clear(): void {
    this.names.length = 0;
    this.sources.length = 0;
    this.offsets.length = 0;
    this.sizes.length = 0;
  }
}

/** A snapshot's msgpack written in order into one buffer, which grows (by copying) only when the size it was given falls short. */
class SnapshotWriter {
  private buf: Buffer;
  private at = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }

  byte(value: number): void {
    this.room(1);
    this.buf[this.at++] = value;
  }

  write(bytes: Uint8Array): void {
    this.room(bytes.byteLength);
    this.buf.set(bytes, this.at);
    this.at += bytes.byteLength;
  }

  /** `size` bytes of `source` from `offset`. */
  copy(source: Uint8Array, offset: number, size: number): void {
    this.room(size);
    this.buf.set(size === source.byteLength ? source : source.subarray(offset, offset + size), this.at);
    this.at += size;
  }

  /** A map key: a short ASCII name (fixstr). */
  key(name: string): void {
    this.room(1 + name.length);
    this.buf[this.at++] = 0xa0 | name.length;
    this.at += this.buf.write(name, this.at, 'latin1');
  }

  /** A map packed elsewhere, with `more` entries written after it. */
  map(packed: Uint8Array, more: number): void {
    const first = packed[0]!;
    let n: number;
    let rest: Uint8Array;
    if ((first & 0xf0) === 0x80) {
      n = first & 0x0f;
      rest = packed.subarray(1);
    } else if (first === 0xde) {
      n = (packed[1]! << 8) | packed[2]!;
      rest = packed.subarray(3);
    } else throw new Error(`not a msgpack map of fewer than 65 536 entries: 0x${first.toString(16)}`);
    n += more;
    if (n < 16) this.byte(0x80 | n);
    else {
      this.room(3);
      this.buf[this.at] = 0xde;
      this.buf.writeUInt16BE(n, this.at + 1);
      this.at += 3;
    }
    this.write(rest);
  }

  /** An array header of `n` items (array 32); returns where it is, for {@link patch32}. */
  array32(n: number): number {
    return this.head32(0xdd, n);
  }

  /** Sets the item count of the array 32 header at `at`. */
  patch32(at: number, n: number): void {
    this.buf.writeUInt32BE(n, at + 1);
  }

  /** The header of a bin of `size` bytes, which the next writes fill. */
  bin32(size: number): void {
    this.head32(0xc6, size);
  }

  /** The bytes written, a view of a buffer of their own (it can be transferred). */
  done(): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.at);
  }

  private head32(type: number, n: number): number {
    this.room(5);
    const at = this.at;
    this.buf[at] = type;
    this.buf.writeUInt32BE(n, at + 1);
    this.at += 5;
    return at;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(Math.ceil(this.buf.length * 1.5), this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}
