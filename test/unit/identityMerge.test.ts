/**
 * The worker's two merge steps (PartitionProcessor.detach and absorb, docs/IDENTITY.md): a journey
 * under three keys merged in two merges, and the same with a checkpoint taken between the steps or
 * after both and restored, the merges redone as a restarted engine redoes them: the same triggers
 * and the same merged customer. Also what the merged customer is made of.
 */
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { chooseCanonical } from '../../operators/identity.js';
import { type DetachedCustomer, PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent, Trigger } from '../../operators/types.js';

const rules = loadRules(['config/rules.yaml']);
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0); // 10:00 Asia/Shanghai
const MIN = 60_000;

/** The journey, by stream sequence; `merge` before an event: the keys its `ids` join. */
const steps: Array<{ event: CxEvent; merge?: string[] }> = [
  { event: { id: 'w0', ts: T0 - 1440 * MIN, customer: 'web', type: 'order', channel: 'web', amount: 100 } },
  { event: { id: 'a1', ts: T0, customer: 'anon', type: 'page_view', channel: 'app', category: 'shoes' } },
  { event: { id: 'a2', ts: T0 + MIN, customer: 'anon', type: 'add_to_cart', channel: 'app', sku: 's' } },
  {
    event: { id: 'x1', ts: T0 + 3 * MIN, customer: 'wx', type: 'login', channel: 'wechat' },
    merge: ['anon', 'wx'],
  },
  {
    event: { id: 'w1', ts: T0 + 5 * MIN, customer: 'web', type: 'order', channel: 'web', amount: 50 },
    merge: ['anon', 'web'],
  },
  {
    event: {
      id: 'a3',
      ts: T0 + 9 * MIN,
      customer: 'anon',
      type: 'page_view',
      channel: 'app',
      category: 'bags',
    },
  },
];

/** Customer of each key from a sequence on (what the identity graph answers), filled by `merge`. */
type Routes = Map<string, { into: string; since: number }>;

function canonicalOf(routes: Routes, key: string, seq: number): string {
  let k = key;
  for (let hop = routes.get(k); hop && hop.since <= seq; hop = routes.get(k)) k = hop.into;
  return k;
}

/** Runs steps [from, to) through `p` as the engine's identity stage does; `cut` stops between the merge steps of `cutAt`. */
function run(
  p: PartitionProcessor,
  routes: Routes,
  from: number,
  to: number,
  triggers: Trigger[],
  cutAt = -1,
) {
  for (let i = from; i < to; i++) {
    const seq = i + 1;
    const { event, merge } = steps[i]!;
    if (merge) {
      const keys = merge.map((k) => canonicalOf(routes, k, seq - 1));
      const parts: DetachedCustomer[] = unpack(pack(p.detach(keys, seq)));
      if (seq === cutAt) return;
      const canonical =
        [...routes.values()].find((r) => r.since === seq)?.into ??
        chooseCanonical(parts.map((d) => ({ key: d.key, firstSeen: d.entry?.state.firstSeen ?? null })));
      for (const k of keys) if (k !== canonical) routes.set(k, { into: canonical, since: seq });
      triggers.push(...p.absorb(canonical, parts, seq, null).triggers);
    }
    const customer = canonicalOf(routes, event.customer, seq);
    const out = p.applyBatch(
      [seq],
      [`cx.events.${event.channel}.${event.type}.${event.customer}`],
      () => pack(event),
      T0,
      customer === event.customer ? undefined : [customer],
    );
    triggers.push(...out.triggers);
  }
}

function finish(p: PartitionProcessor, triggers: Trigger[]) {
  triggers.push(...p.advanceTo(T0 + 3 * 60 * MIN).triggers);
  return {
    triggers: triggers.map((t) => `${t.id}@${t.eventTime}`).sort(),
    web: p.customer('web'),
  };
}

describe('identity merges in the worker', () => {
  const reference = (() => {
    const p = new PartitionProcessor({ rules });
    const triggers: Trigger[] = [];
    run(p, new Map(), 0, steps.length, triggers);
    return finish(p, triggers);
  })();

  it('merges the three keys: the order on the web cancels the app cart, spend adds up', () => {
    expect(reference.triggers.filter((t) => t.startsWith('cart_abandoned'))).toEqual([]);
    expect(reference.web?.state).toMatchObject({ orders: 2, spendCents: 15_000, aliases: ['anon', 'wx'] });
    expect(reference.web?.merges).toEqual([5]);
    // without the merges the cart fires
    const apart = new PartitionProcessor({ rules });
    for (const [i, { event }] of steps.entries())
      apart.applyBatch(
        [i + 1],
        [`cx.events.${event.channel}.${event.type}.${event.customer}`],
        () => pack(event),
        T0,
      );
    expect(apart.advanceTo(T0 + 3 * 60 * MIN).triggers.map((t) => t.rule)).toContain('cart_abandoned');
  });

  it.each([
    { name: 'after both merges', cutAt: -1, stopAfter: steps.length },
    { name: 'between the steps of the second merge', cutAt: 5, stopAfter: 5 },
    { name: 'between the steps of the first merge', cutAt: 4, stopAfter: 4 },
  ])('a checkpoint $name, restored and replayed from the start, gives the same', ({ cutAt, stopAfter }) => {
    const a = new PartitionProcessor({ rules });
    const routes: Routes = new Map();
    const triggers: Trigger[] = [];
    run(a, routes, 0, stopAfter, triggers, cutAt);
    const b = new PartitionProcessor({ rules });
    b.restore(unpack(pack(a.snapshot())));
    // a restarted engine: the graph knows the merges decided before the crash; every event is
    // redelivered (those the state holds are skipped) and every merge redone
    const again: Trigger[] = [];
    run(b, routes, 0, steps.length, again);
    const firstRun = triggers.filter((t) => !again.some((x) => x.id === t.id));
    expect(finish(b, [...firstRun, ...again])).toEqual(reference);
  });
});
