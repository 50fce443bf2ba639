import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { CHUNK_CUSTOMERS, SnapshotCodec } from '../../engine/checkpoint/snapshotCodec.js';
import { CustomerStore } from '../../operators/customerStore.js';
import type { CustomerEntry, PartitionSnapshot } from '../../operators/partitionState.js';

const entry = (i: number) =>
  ({
    state: { customer: `c${i}`, orders: i, tags: ['a', `t${i % 3}`], windows: { d: [i], n: [1] } },
    rules: i % 2 === 0 ? { r: { f: { '': { t: i } } } } : {},
    timers: { churn_risk: { kind: 'inactivity', rule: 'churn_risk', key: '', due: 1000 + i, h: 1000 + i } },
    publishedAt: Number.NEGATIVE_INFINITY,
    dirty: i % 2 === 1,
  }) as unknown as CustomerEntry;

const store = new CustomerStore(0);
const section = {
  structuresFrom: 0,
  timers: { dues: [1000], customers: ['c0'], ids: ['churn_risk'] },
  pending: [],
};

/** A format-6 snapshot: customers as their bytes. */
const snapshot = (customers: number): PartitionSnapshot => ({
  version: 6,
  keyGroups: 128,
  delta: false,
  groups: [
    {
      kg: 3,
      lastSeq: 42,
      watermark: { maxEventTime: 5000, value: 0 },
      customers: Array.from({ length: customers }, (_, i) => [`c${i}`, store.encode(entry(i))]),
      ...section,
      structures: store.structures.map((keys) => [...keys]),
    },
    {
      kg: 4,
      lastSeq: 40,
      watermark: { maxEventTime: 4000, value: 0 },
      customers: [['x', store.encode(entry(99))]],
      ...section,
      structures: [],
    },
  ],
});

/** A snapshot as plain values (bytes as Uint8Array, whatever view they are), for comparing. */
const plain = (s: PartitionSnapshot) => ({
  ...s,
  groups: s.groups.map((g) => ({
    ...g,
    customers: g.customers.map(([c, b]) => [c, Uint8Array.from(b as Uint8Array)]),
  })),
});

describe('SnapshotCodec', () => {
  it('round-trips a snapshot of several chunks, read by a codec that wrote none of them', () => {
    const s = snapshot(CHUNK_CUSTOMERS * 2 + 7);
    const bytes = new SnapshotCodec().encode(s);
    const decoded = new SnapshotCodec().decode(bytes);
    expect(plain(decoded)).toEqual(plain(s));
    // and the entries read back with the section's structures, by a store that encoded none of them
    const reader = new CustomerStore(0, decoded.groups[0]!.structures);
    expect(reader.decode(decoded.groups[0]!.customers[7]![1] as Uint8Array)).toEqual(entry(7));
  });

  it('reads format 5: chunks of [customer, entry] pairs in msgpack with records', () => {
    const s = {
      version: 5,
      keyGroups: 128,
      delta: false,
      groups: [
        { kg: 3, lastSeq: 42, watermark: { maxEventTime: 5000, value: 0 }, customers: [['c1', entry(1)]] },
      ],
    };
    const records = new Packr({ useRecords: true });
    const bytes = new Packr({ useRecords: false }).pack({
      ...s,
      groups: s.groups.map(({ customers, ...g }) => ({ ...g, chunks: [records.pack(customers)] })),
    });
    expect(new SnapshotCodec().decode(bytes)).toEqual(s);
  });

  it('reads states of earlier versions: the whole snapshot in one msgpack with records', () => {
    const s = {
      version: 2,
      partition: 1,
      delta: false,
      lastSeq: 42,
      watermark: { maxEventTime: 5000, value: 0 },
      customers: [['c1', entry(1)]],
    } as unknown as PartitionSnapshot;
    const old = new Packr({ useRecords: true }).pack(s);
    expect(new SnapshotCodec().decode(old)).toEqual(s);
  });

  it('assembles chunks encoded one by one in any grouping into the same snapshot', () => {
    const s = snapshot(5);
    const codec = new SnapshotCodec();
    const { groups, ...header } = s;
    const sections = groups.map(({ customers, ...section }) => ({
      ...section,
      chunks: [
        codec.encodeChunk(customers.slice(0, 2) as Array<[string, Uint8Array]>),
        ...customers.slice(2).map((c) => codec.encodeChunk([c as [string, Uint8Array]])),
      ],
    }));
    expect(plain(new SnapshotCodec().decode(codec.assemble({ ...header, groups: sections })))).toEqual(
      plain(s),
    );
  });

  it('decodes only the key groups asked for, and lists the sections without decoding customers', () => {
    const codec = new SnapshotCodec();
    const bytes = codec.encode(snapshot(3));
    expect(codec.decode(bytes, (kg) => kg === 4).groups.map((g) => g.kg)).toEqual([4]);
    const sections = codec.sections(bytes)!;
    expect(sections.groups.map((g) => [g.kg, g.lastSeq, g.chunks.length])).toEqual([
      [3, 42, 1],
      [4, 40, 1],
    ]);
  });

  it('reads the state of one partition of a version without key groups as it was written', () => {
    const old = {
      version: 4,
      partition: 1,
      delta: false,
      lastSeq: 42,
      watermark: { maxEventTime: 1, value: 0 },
    };
    const customers: Array<[string, CustomerEntry]> = [['c1', entry(1)]];
    const codec = new SnapshotCodec();
    const records = new Packr({ useRecords: true });
    const bytes = new Packr({ useRecords: false }).pack({ ...old, chunks: [records.pack(customers)] });
    expect(codec.decode(bytes)).toEqual({ ...old, customers });
    expect(codec.sections(bytes)).toBeNull();
  });
});
