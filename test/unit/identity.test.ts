/**
 * The identity graph (operators/identity.ts): what links, what merges, the guard rail, bad `ids`,
 * and the property replays rely on: deciding again for an old event gives the first decision.
 */
import { describe, expect, it } from 'vitest';
import { decodeEvent } from '../../operators/decodeEvent.js';
import {
  chooseCanonical,
  DEFAULT_IDENTITY_LIMITS,
  type IdentityEntry,
  IdentityGraph,
  identifiersOf,
  idsProblem,
} from '../../operators/identity.js';

/** Decides and applies like the engine's stage, with `firstSeen` standing in for the detached states. */
function feed(
  graph: IdentityGraph,
  seq: number,
  key: string,
  ids: Record<string, string>,
  firstSeen: Record<string, number> = {},
): IdentityEntry | null {
  const d = graph.decide(seq, seq * 1000, key, identifiersOf(ids));
  if (d === null) return null;
  const entry: IdentityEntry = { ...d.entry };
  if (d.joins.length > 0) {
    const canonical =
      graph.mergeAt(seq)?.canonical ??
      chooseCanonical(d.joins.map((k) => ({ key: k, firstSeen: firstSeen[k] ?? null })));
    entry.merge = { canonical, absorbed: d.joins.filter((k) => k !== canonical) };
  }
  graph.apply(entry);
  return entry;
}

describe('identity graph', () => {
  it('links keys that present one identifier; the key seen first stays canonical', () => {
    const g = new IdentityGraph();
    expect(feed(g, 1, 'anon-d17', { device: 'd-17' })).toMatchObject({ attached: ['device:d-17'] });
    const merged = feed(g, 5, 'u123', { device: 'd-17', phone: 'h1' }, { 'anon-d17': 100, u123: 200 });
    expect(merged?.merge).toEqual({ canonical: 'anon-d17', absorbed: ['u123'] });
    expect(g.canonicalOf('u123')).toBe('anon-d17');
    // as of the event's sequence: before the merge the key is its own customer
    expect(g.canonicalOf('u123', 4)).toBe('u123');
    expect(g.canonicalOf('u123', 5)).toBe('anon-d17');
    expect(g.aliasesOf('anon-d17')).toEqual(['u123']);
    expect(g.historyOf('u123').map((r) => r.seq)).toEqual([5]);
  });

  it('a key without state loses to one with state; ties go to the smaller key', () => {
    expect(
      chooseCanonical([
        { key: 'a', firstSeen: null },
        { key: 'b', firstSeen: 5 },
      ]),
    ).toBe('b');
    expect(
      chooseCanonical([
        { key: 'b', firstSeen: 5 },
        { key: 'a', firstSeen: 5 },
      ]),
    ).toBe('a');
    expect(
      chooseCanonical([
        { key: 'b', firstSeen: null },
        { key: 'a', firstSeen: null },
      ]),
    ).toBe('a');
  });

  it('nothing changes for identifiers already attached to the key', () => {
    const g = new IdentityGraph();
    feed(g, 1, 'k', { phone: 'p' });
    expect(feed(g, 2, 'k', { phone: 'p' })).toBeNull();
  });

  it('a chain A–B, B–C, C–A resolves to one canonical customer', () => {
    const g = new IdentityGraph();
    const first = { A: 1, B: 2, C: 3 };
    feed(g, 1, 'A', { email: 'a' }, first);
    feed(g, 2, 'B', { phone: 'b' }, first);
    feed(g, 3, 'C', { wechat: 'c' }, first);
    feed(g, 4, 'B', { email: 'a' }, first); // A–B
    feed(g, 5, 'C', { phone: 'b' }, first); // B–C: C joins A
    expect(feed(g, 6, 'A', { wechat: 'c' }, first)?.merge).toBeUndefined(); // C–A: already one
    for (const k of ['A', 'B', 'C']) expect(g.canonicalOf(k)).toBe('A');
    expect([...g.aliasesOf('A')].sort()).toEqual(['B', 'C']);
  });

  it('an identifier presented by one key too many becomes shared and links nobody', () => {
    const g = new IdentityGraph({ ...DEFAULT_IDENTITY_LIMITS, maxKeysPerId: 2 });
    feed(g, 1, 'k1', { device: 'shop-tablet' });
    feed(g, 2, 'k2', { device: 'shop-tablet' }, { k1: 1, k2: 2 });
    expect(g.canonicalOf('k2')).toBe('k1');
    const third = feed(g, 3, 'k3', { device: 'shop-tablet' });
    expect(third).toMatchObject({ shared: ['device:shop-tablet'], attached: [] });
    expect(third?.merge).toBeUndefined();
    expect(g.canonicalOf('k3')).toBe('k3');
    expect(feed(g, 4, 'k4', { device: 'shop-tablet' })).toBeNull();
    expect(g.sharedIds).toBe(1);
    // a thousand keys on one identifier never merge more than the limit
    for (let i = 0; i < 1000; i++) feed(g, 10 + i, `m${i}`, { device: 'shop-tablet' });
    expect(g.absorbedKeys).toBe(1);
  });

  it('deciding again for an old event gives the first decision, whatever the graph learned since', () => {
    const g = new IdentityGraph({ ...DEFAULT_IDENTITY_LIMITS, maxKeysPerId: 2 });
    const log: IdentityEntry[] = [];
    const first = { a: 1, b: 2, c: 3, d: 4 };
    const events: Array<[number, string, Record<string, string>]> = [
      [1, 'a', { phone: 'p' }],
      [2, 'b', { phone: 'p', email: 'e' }],
      [3, 'c', { email: 'e' }],
      [4, 'd', { phone: 'p' }],
      [5, 'c', { wechat: 'w' }],
    ];
    for (const [seq, key, ids] of events) {
      const e = feed(g, seq, key, ids, first);
      if (e) log.push(e);
    }
    // a restarted engine applies the whole log, then replays from sequence 1
    const again = new IdentityGraph({ ...DEFAULT_IDENTITY_LIMITS, maxKeysPerId: 2 });
    for (const e of log) again.apply(e);
    const replayed: IdentityEntry[] = [];
    for (const [seq, key, ids] of events) {
      const e = feed(again, seq, key, ids, first);
      if (e) replayed.push(e);
    }
    expect(replayed).toEqual(log);
    for (const k of ['a', 'b', 'c', 'd']) expect(again.canonicalOf(k)).toBe(g.canonicalOf(k));
    expect(again.canonicalOf('c', 2)).toBe('c');
  });
});

it('forgets keys and the identifiers only they presented', () => {
  const g = new IdentityGraph();
  feed(g, 1, 'a', { phone: 'p', device: 'shared-d' });
  feed(g, 2, 'b', { phone: 'p' }, { a: 1, b: 2 });
  feed(g, 3, 'c', { device: 'shared-d' }, { a: 1, c: 3 });
  expect([...g.aliasesOf('a')].sort()).toEqual(['b', 'c']);
  g.forget(['a', 'b', 'c']);
  expect(g.canonicalOf('b')).toBe('b');
  expect(g.aliasesOf('a')).toEqual([]);
  expect(g.historyOf('b')).toEqual([]);
  expect(g.identifiersOfCustomer('a')).toEqual([]);
  // another key presenting the identifier later starts afresh
  expect(feed(g, 9, 'z', { phone: 'p' })).toMatchObject({ attached: ['phone:p'] });
});

describe('bad ids', () => {
  it('are named, and the worker dead-letters the event with the reason', () => {
    expect(idsProblem(['a'])).toMatch(/map of identifier kinds/);
    expect(idsProblem('x')).toMatch(/map of identifier kinds/);
    expect(idsProblem({ phone: '' })).toMatch(/ids\.phone must be a non-empty string/);
    expect(idsProblem({ phone: 5 })).toMatch(/non-empty string/);
    expect(idsProblem({ 'not a kind': 'x' })).toMatch(/is not a word/);
    expect(idsProblem({ appUser: 'u1' })).toBeUndefined();
    expect(idsProblem({ big: 'x'.repeat(1024 * 1024) })).toMatch(/1048576 characters long \(at most 256\)/);
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v']));
    expect(idsProblem(many)).toMatch(/10000 identifiers \(at most 16\)/);
    expect(idsProblem({ phone: 'h', device: 'd' })).toBeUndefined();
    expect(idsProblem(undefined)).toBeUndefined();

    const event = { id: 'e1', ts: Date.UTC(2026, 0, 1), customer: 'c1', type: 'login', channel: 'app' };
    const bytes = (ids: unknown) => new TextEncoder().encode(JSON.stringify({ ...event, ids }));
    expect(decodeEvent(bytes({ phone: '' }), 'cx.events.app.login.c1')).toMatch(/ids\.phone must be/);
    expect(decodeEvent(bytes(many), 'cx.events.app.login.c1')).toMatch(/at most 16/);
    expect(decodeEvent(bytes({ phone: 'h' }), 'cx.events.app.login.c1')).toMatchObject({
      ids: { phone: 'h' },
    });
  });
});
