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

  it('encodes a cut whose entries held as objects outgrow the size it guessed, as the whole snapshot', () => {
    // entries of ~6 KB each held as objects: far more than the writer's guess, so its buffer grows
    const big = (i: number) => ({ ...entry(i), state: { ...entry(i).state, note: 'x'.repeat(6000 + i) } });
    const own = new CustomerStore(0);
    const customers = Array.from({ length: CHUNK_CUSTOMERS + 3 }, (_, i) => [`c${i}`, big(i)] as const);
    let finished = 0;
    const cut = {
      header: { version: 6 as const, keyGroups: 128, delta: false },
      sections: [
        {
          kg: 3,
          lastSeq: 42,
          watermark: { maxEventTime: 5000, value: 0 },
          ...section,
          structures: [] as string[][],
          names: customers.map(([c]) => c),
          values: customers.map(([, e]) => e as unknown as CustomerEntry),
          sizes: new Uint32Array(customers.length),
          bytes: new Uint8Array(0),
        },
      ],
      encode: (_: number, __: string, e: CustomerEntry) => own.encode(e),
      finish: (s: number) => {
        finished++;
        cut.sections[s]!.structures = own.structures.map((keys) => [...keys]);
      },
    };
    const decoded = new SnapshotCodec().decode(new SnapshotCodec().encodeCut(cut));
    expect(finished).toBe(1);
    const reader = new CustomerStore(0, decoded.groups[0]!.structures);
    expect(decoded.groups[0]!.customers.map(([c, b]) => [c, reader.decode(b as Uint8Array)])).toEqual(
      customers,
    );
    expect(decoded.groups[0]!.timers).toEqual(section.timers);
  });

  it('yields after every key group with customers, also those smaller than a chunk', () => {
    // a worker encodes between two yields without taking a batch: 128 small key groups must not be one slice
    const own = new CustomerStore(0);
    const sections = Array.from({ length: 10 }, (_, kg) => ({
      kg,
      lastSeq: kg,
      watermark: { maxEventTime: 5000, value: 0 },
      ...section,
      structures: [] as string[][],
      names: kg === 4 ? [] : [`c${kg}`],
      values: kg === 4 ? [] : [entry(kg)],
      sizes: new Uint32Array(kg === 4 ? 0 : 1),
      bytes: new Uint8Array(0),
    }));
    const steps = new SnapshotCodec().cutSteps({
      header: { version: 6 as const, keyGroups: 128, delta: false },
      sections,
      encode: (_, __, e) => own.encode(e),
      finish: () => {},
    });
    let yields = 0;
    let step = steps.next();
    for (; !step.done; step = steps.next()) yields++;
    expect(yields).toBe(9);
    expect(new SnapshotCodec().decode(step.value).groups.map((g) => g.customers.length)).toEqual([
      1, 1, 1, 1, 0, 1, 1, 1, 1, 1,
    ]);
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
