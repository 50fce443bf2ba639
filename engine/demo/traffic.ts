/**
 * A deterministic, realistic day (or several) of customer-service traffic for the demo, the
 * tests and the benchmarks: an e-commerce shop with a chat bot, human agents and a call center,
 * with the situations its service desk meets every day: consultations that turn into orders,
 * accessories asked about, invoices, budget worries, after-sales tickets, complaints, a regional delivery incident.
 *
 * Every customer and every customer-day draws from its own PRNG stream (mulberry32 seeded by a
 * hash of seed, customer and day): a customer's day does not depend on the draws of the others,
 * and generation is linear in the number of events (3 000 customers ≈ 60k events in a few hundred
 * ms; 100 000 ≈ 2M events, a few seconds and ~0.6 GB). Event ids are `e-<seed>-<n>`, numbered
 * in generation order (not stream order), so they are stable for the same options.
 *
 * Times: each customer has an IANA zone; activity follows a diurnal curve in customer-local time
 * (peaks 10–12 and 19–22; night owls peak 22–02). Events never leave [dayStart, dayStart + days):
 * an episode that would run past the end is moved earlier as a whole; follow-ups that fall after
 * the end (a rating, a ticket resolution, a login) would happen "tomorrow" and are left out.
 */

import type { CxEvent } from '../../operators/types.js';
import { CustomerDay, type Gen, planSurge } from './episodes.js';
import { hash32 } from './random.js';
import { type Customer, DAY, DEFAULT_DAY_START, makeCustomer } from './world.js';

/** Options of {@link generateTraffic}. */
export interface TrafficOptions {
  /** Number of customers (c000001 ... c<customers>). @default 3000 */
  customers?: number;
  /** Start of the generated day, epoch ms (a midnight) @default 2026-11-01T00:00:00+08:00 */
  dayStart?: number;
  /** Number of consecutive days. @default 1 */
  days?: number;
  /** PRNG seed (an integer): the same options always give the same events. @default 42 */
  seed?: number;
}

/**
 * Generates events sorted by `ts` (ties broken by generation order, so deterministically), every
 * one a valid {@link CxEvent}; the same options always give deep-equal results.
 */
export function generateTraffic(options: TrafficOptions = {}): CxEvent[] {
  const o = resolveOptions(options);
  const gen: Gen = {
    seed: o.seed,
    seedHash: hash32(o.seed >>> 0, Math.floor(o.seed / 2 ** 32) >>> 0, 0x9e3779b9),
    start: o.dayStart,
    end: o.dayStart + o.days * DAY,
    out: [],
    curves: new Map(),
    agents: Math.min(500, Math.max(8, Math.round(o.customers / 100))),
    idPrefix: `e-${o.seed}-`,
    nextId: 0,
  };
  const customers: Customer[] = [];
  for (let i = 1; i <= o.customers; i++) customers.push(makeCustomer(gen.seedHash, i));
  for (let d = 0; d < o.days; d++) {
    const surge = planSurge(gen, d, o.customers);
    for (const c of customers) new CustomerDay(gen, c, d, surge).run();
  }
  return sortByTime(gen.out, gen.start, gen.end);
}

/** Subject an upstream system would publish the event on: `cx.events.<channel>.<type>.<customer>`. */
export function subjectOf(event: CxEvent): string {
  return `cx.events.${token(event.channel, 'channel')}.${token(event.type, 'type')}.${token(event.customer, 'customer')}`;
}

function token(value: string, field: string): string {
  if (typeof value !== 'string' || value === '' || /[.\s*>]/.test(value)) {
    throw new RangeError(`event.${field} ${JSON.stringify(value)} is not a valid NATS subject token`);
  }
  return value;
}

function resolveOptions(options: TrafficOptions): Readonly<Required<TrafficOptions>> {
  const o = {
    customers: options.customers ?? 3000,
    dayStart: options.dayStart ?? DEFAULT_DAY_START,
    days: options.days ?? 1,
    seed: options.seed ?? 42,
  };
  if (!Number.isInteger(o.customers) || o.customers < 1 || o.customers > 99_999_999) {
    throw new RangeError(`customers must be an integer 1..99999999, got ${o.customers}`);
  }
  if (!Number.isInteger(o.dayStart) || o.dayStart <= 0) {
    throw new RangeError(`dayStart must be a positive integer epoch ms, got ${o.dayStart}`);
  }
  if (!Number.isInteger(o.days) || o.days < 1 || o.days > 366) {
    throw new RangeError(`days must be an integer 1..366, got ${o.days}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw new RangeError(`seed must be a safe integer, got ${o.seed}`);
  return Object.freeze(o);
}

/**
 * Sorts by (ts, generation order). The key packs both into one float so a native numeric sort
 * does the work (millions of events in well under a second); a run too long for that packing
 * falls back to a comparator.
 */
function sortByTime(events: CxEvent[], start: number, end: number): CxEvent[] {
  const n = events.length;
  const sorted: CxEvent[] = new Array(n);
  if ((end - start) * n < Number.MAX_SAFE_INTEGER) {
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = (events[i]!.ts - start) * n + i;
    keys.sort();
    for (let k = 0; k < n; k++) sorted[k] = events[keys[k]! % n]!;
  } else {
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => events[a]!.ts - events[b]!.ts || a - b);
    for (let k = 0; k < n; k++) sorted[k] = events[order[k]!]!;
  }
  return sorted;
}
