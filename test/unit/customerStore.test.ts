import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { copyOnWrite, SnapshotCodec } from '../../engine/checkpoint/snapshotCodec.js';
import { loadRules } from '../../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../../engine/demo/traffic.js';
import { CustomerStore } from '../../operators/customerStore.js';
import { type PartitionOutput, PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CustomerEntry } from '../../operators/partitionState.js';
import type { CxEvent } from '../../operators/types.js';
import { snapshotContent } from '../harness/snapshotContent.js';

const rules = loadRules(['config/rules.yaml']);
const traffic = generateTraffic({ customers: 300, seed: 7 });

const entry = (customer: string, extra: Partial<CustomerEntry> = {}): CustomerEntry =>
  ({
    state: { customer, orders: 2, tags: ['vip'], contacts: { d: [1, 2], k: ['app', 'web'], n: [3, 1] } },
    memory: { cart: { anchors: [5] } },
    fired: { churn_risk: { '': { at: 7 } } },
    caps: {},
    timers: { churn_risk: { kind: 'inactivity', rule: 'churn_risk', key: '', due: 100, queuedAt: 90 } },
    pending: [],
    held: [],
    publishedAt: Number.NEGATIVE_INFINITY,
    dirty: true,
    ...extra,
  }) as unknown as CustomerEntry;

/** Feeds events from `from` to `to` in batches of `batch`, sequences from 1 at the first event. */
function feed(p: PartitionProcessor, events: CxEvent[], from: number, to: number, batch = 250) {
  const outs: PartitionOutput[] = [];
  for (let i = from; i < to; i += batch) {
    const slice = events.slice(i, Math.min(i + batch, to));
    const payloads = slice.map((e) => pack(e));
    const seqs = slice.map((_, k) => i + k + 1);
    outs.push(p.applyBatch(seqs, slice.map(subjectOf), (k) => payloads[k]!, 0));
  }
  return outs;
}

/** What the output says, without the per-call positions. */
const said = (outs: PartitionOutput[]) =>
  outs.map(({ triggers, events, profiles, rejects }) => ({ triggers, events, profiles, rejects }));

describe('CustomerStore', () => {
  it('keeps the least recently used entries as bytes and gives them back equal on access', () => {
    const store = new CustomerStore(1);
    const a = entry('a');
    const b = entry('b', { dirty: false });
    store.set('a', a);
    store.set('b', b);
    expect(store.compact()).toBe(1);
    expect(store.stored('a')).toBeInstanceOf(Uint8Array);
    expect(store.stored('b')).toBe(b);
    expect(store.peek('a')).toEqual(a);
    expect(store.stored('a')).toBeInstanceOf(Uint8Array); // peek does not decode for good
    const again = store.get('a')!;
    expect(again).toEqual(a);
    expect(again).not.toBe(a);
    expect(store.hotSize).toBe(2);
    store.compact(); // b is now the least recently used
    expect(store.stored('b')).toBeInstanceOf(Uint8Array);
    expect(store.stored('a')).toBe(again);
    expect([...store.items()].map(([c]) => c)).toEqual(['a', 'b']); // order of arrival kept
  });

  it('keeps restored bytes as the view it was given until the customer is used, then in its arena', () => {
    const writer = new CustomerStore(0);
    const bytes = writer.encode(entry('r'));
    const store = new CustomerStore(0, writer.structures);
    store.setEncoded('r', bytes);
    expect(store.stored('r')).toBe(bytes); // not copied
    expect(store.bytesHeld).toBe(0);
    expect(store.cut().values).toEqual([bytes]);
    expect(store.get('r')).toEqual(entry('r'));
    expect(store.bytesHeld).toBe(bytes.byteLength); // the clean bytes, now in the arena
    expect(store.compact()).toBe(0); // back at rest without an encode
    const cut = store.cut();
    expect(cut.values).toEqual([0]);
    expect(cut.bytes.subarray(0, cut.sizes[0])).toEqual(bytes);
  });

  it('keeps entries with events waiting for the ordered lane or a timer as objects', () => {
    const store = new CustomerStore(0);
    const waiting = entry('w', { pending: [{ seq: 1, event: { id: 'e', ts: 1 } as CxEvent }] });
    const held = entry('h', { held: [{ seq: 2, event: { id: 'f', ts: 2 } as CxEvent }] });
    store.set('w', waiting);
    store.set('h', held);
    store.set('x', entry('x'));
    expect(store.compact()).toBe(1);
    expect(store.stored('w')).toBe(waiting);
    expect(store.stored('h')).toBe(held);
    expect(store.stored('x')).toBeInstanceOf(Uint8Array);
  });

  it('reads its bytes with its structures in another store, also after new shapes were added', () => {
    const writer = new CustomerStore(0);
    const first = writer.encode(entry('a'));
    const saved = writer.structures.map((keys) => [...keys]);
    const later = writer.encode(entry('b', { caps: { marketing: [1, 2] }, memory: { x: { length: 3 } } }));
    expect(writer.structures.length).toBeGreaterThan(saved.length);
    // a full snapshot's structures, then a delta's: the ones added after them
    const reader = new CustomerStore(0, [
      ...saved,
      ...writer.structures.slice(saved.length).map((k) => [...k]),
    ]);
    expect(reader.decode(first)).toEqual(entry('a'));
    expect(reader.decode(later)).toEqual(
      entry('b', { caps: { marketing: [1, 2] }, memory: { x: { length: 3 } } }),
    );
  });
});

describe('PartitionProcessor with customers held as bytes', () => {
  it('produces the same output and the same snapshot whether customers are held as bytes or as objects', () => {
    const objects = new PartitionProcessor({ partition: 0, keyGroups: 8, rules });
    const bytes = new PartitionProcessor({ partition: 0, keyGroups: 8, rules, hotCustomers: 0 });
    const half = traffic.length >> 1;
    expect(said(feed(bytes, traffic, 0, half))).toEqual(said(feed(objects, traffic, 0, half)));
    expect(bytes.hotSize).toBeLessThan(bytes.size / 10);
    expect(objects.hotSize).toBe(objects.size);
    const fromBytes = bytes.snapshot();
    const fromObjects = objects.snapshot();
    expect(snapshotContent(fromBytes)).toEqual(snapshotContent(fromObjects));
    // the timers each snapshot holds put the same ones back in the queue
    const restored = [fromBytes, fromObjects].map((s) => {
      const p = new PartitionProcessor({ partition: 0, keyGroups: 8, rules });
      p.restore(unpack(pack(s)));
      return p;
    });
    const rest = restored.map((p) =>
      said([...feed(p, traffic, half, traffic.length), p.advanceTo(Date.UTC(2031, 0))]),
    );
    const original = said([
      ...feed(objects, traffic, half, traffic.length),
      objects.advanceTo(Date.UTC(2031, 0)),
    ]);
    expect(rest[0]).toEqual(original);
    expect(rest[1]).toEqual(original);
  });

  it('restores lazily: customers stay bytes until something needs them, and go on as the original', () => {
    const a = new PartitionProcessor({ partition: 0, keyGroups: 8, rules });
    const cut = Math.floor(traffic.length * 0.6);
    feed(a, traffic, 0, cut);
    const b = new PartitionProcessor({ partition: 0, keyGroups: 8, rules });
    b.restore(unpack(pack(a.snapshot())));
    expect(b.size).toBe(a.size);
    // only the customers with events waiting for the ordered lane were decoded
    const waiting = a.snapshot().groups.reduce((n, g) => n + (g.pending?.length ?? 0), 0);
    expect(b.hotSize).toBe(waiting);
    const next = traffic.slice(cut, cut + 1);
    feed(b, traffic, cut, cut + 1);
    // its customer, and those whose timers the moved watermark fired
    expect(b.hotSize).toBeGreaterThan(waiting);
    expect(b.hotSize).toBeLessThan(b.size / 4);
    expect(b.customer(next[0]!.customer)).toBeDefined();
    const outB = said([...feed(b, traffic, cut + 1, traffic.length), b.advanceTo(Date.UTC(2031, 0))]);
    feed(a, traffic, cut, cut + 1);
    const outA = said([...feed(a, traffic, cut + 1, traffic.length), a.advanceTo(Date.UTC(2031, 0))]);
    expect(outB).toEqual(outA);
  });

  it('a cut encoded while batches go on holds the state at the cut, also for customers evicted meanwhile', () => {
    const p = new PartitionProcessor({ partition: 0, keyGroups: 4, rules, hotCustomers: 40 });
    const twin = new PartitionProcessor({ partition: 0, keyGroups: 4, rules, hotCustomers: 40 });
    const cut = traffic.length >> 1;
    feed(p, traffic, 0, cut);
    feed(twin, traffic, 0, cut);
    const atCut = twin.snapshot();
    // as engine/runtime/worker.ts does: an object entry is encoded before it changes
    const snap = p.snapshotCut();
    const cow = copyOnWrite(snap);
    let early = 0;
    p.beforeChange = (e) => {
      early++;
      cow.beforeChange(e);
    };
    feed(p, traffic, cut, traffic.length);
    p.advanceTo(Date.UTC(2031, 0));
    p.beforeChange = undefined;
    expect(early).toBeGreaterThan(0);
    const codec = new SnapshotCodec();
    const steps = codec.cutSteps(snap, cow.hooks);
    let step = steps.next();
    while (!step.done) step = steps.next();
    expect(snapshotContent(codec.decode(step.value))).toEqual(snapshotContent(atCut));
  });
});

describe('the bytes a hot customer keeps while unchanged', () => {
  it('are what a full snapshot copies, and equal a fresh encoding of the entry', () => {
    const store = new CustomerStore(10);
    const a = entry('a');
    store.set('a', a);
    expect(store.bytesOf('a')).toBeUndefined(); // never encoded
    const bytes = store.encodeClean('a', a);
    expect(store.bytesOf('a')).toEqual(bytes); // a copy, in the store's arena
    store.touched('a');
    expect(store.bytesOf('a')).toBeUndefined();
    // decoding keeps the bytes it decoded; evicting a clean entry takes them back without encoding
    const clean = store.encodeClean('a', a);
    expect(clean).toEqual(bytes);
    store.hotLimit = 0;
    expect(store.compact()).toBe(0);
    expect(store.stored('a')).toEqual(clean);
    expect(store.bytesHeld).toBe(clean.byteLength); // the clean bytes became the bytes at rest
    const again = store.get('a')!;
    expect(store.bytesOf('a')).toEqual(clean);
    expect(store.bytesHeld).toBe(clean.byteLength);
    expect(store.decode(clean)).toEqual(again);
  });

  it('leave every later full snapshot equal to that of a processor that never kept them', () => {
    for (const hotCustomers of [1000, 40]) {
      // `kept` snapshots (fully and as deltas) along the way, so its hot customers keep bytes
      const kept = new PartitionProcessor({ partition: 0, keyGroups: 4, rules, hotCustomers });
      const fresh = new PartitionProcessor({ partition: 0, keyGroups: 4, rules, hotCustomers });
      const steps = [0, 0.2, 0.4, 0.6, 0.8, 1].map((f) => Math.round(f * traffic.length));
      for (let i = 1; i < steps.length; i++) {
        feed(kept, traffic, steps[i - 1]!, steps[i]!);
        feed(fresh, traffic, steps[i - 1]!, steps[i]!);
        kept.snapshot(i % 2 === 0);
      }
      kept.advanceTo(Date.UTC(2031, 0));
      fresh.advanceTo(Date.UTC(2031, 0));
      kept.snapshot(true);
      const full = kept.snapshot();
      expect(snapshotContent(full)).toEqual(snapshotContent(fresh.snapshot()));
    }
  });
});

describe('a state of a version without key groups, held as bytes', () => {
  it('skips the events its entries already hold although the store keeps no customer decoded', () => {
    const mk = () =>
      new PartitionProcessor({ partition: 0, keyGroups: 8, rules, hotCustomers: 0, allowedLatenessMs: 0 });
    const events: CxEvent[] = [0, 1, 2].map((i) => ({
      id: `e${i}`,
      ts: Date.UTC(2026, 10, 1, 10) + i * 3_600_000,
      customer: 'c1',
      type: 'message',
      channel: 'app',
    }));
    const before = mk();
    feed(before, events, 0, 2);
    before.advanceTo(events[1]!.ts + 1); // the ordered lane has seen both
    expect(before.customer('c1')!.pending).toEqual([]);
    // format 4: one partition's customers as objects, with the partition's last sequence
    const old = {
      version: 4,
      partition: 0,
      delta: false,
      lastSeq: 2,
      watermark: { maxEventTime: events[1]!.ts, value: events[1]!.ts },
      customers: [['c1', before.customer('c1')]],
    };
    const after = mk();
    after.restore(unpack(pack(old)));
    expect(after.hotSize).toBe(1); // not encoded while its applied sequence matters
    const out = feed(after, events, 0, 3, 3);
    expect(out.flatMap((o) => o.events.map((r) => r.id))).toEqual(['e2']);
  });
});
