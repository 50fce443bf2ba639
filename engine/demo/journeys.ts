/**
 * Cross-channel journeys (identity tests and bench:identity): one person under three customer keys (an
 * anonymous app key, a WeChat key, a web key), linked by the identifiers their events carry, so
 * that the engine merges them (docs/IDENTITY.md). Some persons order on the web after an app cart
 * (the order must cancel the cart reminder), some do not (the reminder fires under the canonical
 * customer), some web keys ordered before (so either side can end up canonical), and a few persons
 * log in on one shop tablet (an identifier shared by too many keys: the guard rail).
 */

import type { CxEvent } from '../../operators/types.js';
import { Rand } from './random.js';

const MIN = 60_000;

/** Options of {@link identityJourneys}. */
export interface JourneyOptions {
  persons: number;
  /** Journeys start between these event times (ms). */
  from: number;
  to: number;
  seed?: number;
}

/** The journeys' events, sorted by time (ids `j-<person>-<n>`). */
export function identityJourneys(o: JourneyOptions): CxEvent[] {
  const rand = new Rand(o.seed ?? 7);
  const events: CxEvent[] = [];
  for (let i = 0; i < o.persons; i++) {
    const base = o.from + Math.floor(rand.next() * (o.to - o.from));
    let n = 0;
    const add = (
      offsetMin: number,
      customer: string,
      type: string,
      channel: string,
      extra: Partial<CxEvent>,
    ) => events.push({ id: `j-${i}-${n++}`, ts: base + offsetMin * MIN, customer, type, channel, ...extra });
    const anon = `anon${i}`;
    const wx = `wx${i}`;
    const web = `web${i}`;
    if (rand.next() < 0.4) add(-1440, web, 'order', 'web', { amount: 50 + i, ids: { email: `e${i}` } });
    add(0, anon, 'page_view', 'app', { category: 'shoes', ids: { device: `d${i}` } });
    add(1, anon, 'add_to_cart', 'app', { sku: `s${i}` });
    add(2, wx, 'message', 'wechat', { text: '在吗', sentiment: 0.2 });
    add(3, wx, 'login', 'wechat', { ids: { wechat: `o${i}`, phone: `p${i}`, device: `d${i}` } });
    if (rand.next() < 0.6)
      add(4 + Math.floor(rand.next() * 8), web, 'order', 'web', {
        amount: 100 + i,
        ids: { phone: `p${i}`, email: `e${i}` },
      });
    if (i % 10 === 0) add(30, anon, 'login', 'app', { ids: { device: 'shop-tablet-1' } });
    add(40, anon, 'page_view', 'app', { category: 'bags' });
  }
  return events.sort((a, b) => a.ts - b.ts);
}
