/**
 * Delivery policy of a firing rule, after its pattern and condition said "fire": cooldowns and
 * once-per-session marks, quiet hours in the customer's time zone, and frequency caps shared by a
 * group of rules. State is plain data kept in the customer's rule memory.
 */

import { nextLocalHour, utcOffsetMinutes } from './localTime.js';
import type { Cap, CompiledRule, QuietHours } from './ruleCompiler.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** When a rule last fired for a key, and in which session. */
export interface FireMark {
  /** Event time of the firing. */
  t: number;
  /** Session id of the firing event, when it had one. */
  s?: string;
}

/** Cooldown marks of one rule for one customer, per `per` key ('' without). */
export type FireMarks = Record<string, FireMark>;

/** Whether cooldown or once-per-session blocks a firing of `r` for `key` at event time `t`. */
export function cooldownBlocks(
  r: CompiledRule,
  marks: FireMarks | undefined,
  key: string,
  t: number,
  session: string | undefined,
): boolean {
  const mark = marks?.[key];
  if (mark === undefined) return false;
  if (r.oncePerSession && session !== undefined) return mark.s === session;
  return r.cooldownMs > 0 && t - mark.t < r.cooldownMs;
}

/** Records a firing; returns the (possibly new) marks object. Keys whose cooldown ran out are dropped. */
export function markFired(
  r: CompiledRule,
  marks: FireMarks | undefined,
  key: string,
  t: number,
  session: string | undefined,
): FireMarks {
  const m = marks ?? {};
  if (r.per !== undefined) {
    // Keys seen long ago can no longer block anything: drop them so the memory stays bounded.
    for (const k of Object.keys(m)) if (t - m[k]!.t >= r.retainMs) delete m[k];
  }
  m[key] = session === undefined ? { t } : { t, s: session };
  return m;
}

/** Minute of the customer-local day at `ts`. */
function localMinute(ts: number, tz: string, fallbackTz: string): number {
  const local = ts + utcOffsetMinutes(ts, tz, fallbackTz) * MINUTE;
  return Math.floor((((local % DAY) + DAY) % DAY) / MINUTE);
}

/** Whether `ts` falls inside the quiet hours [from, to) customer-local (windows may wrap midnight). */
export function inQuietHours(q: QuietHours, ts: number, tz: string, fallbackTz: string): boolean {
  const m = localMinute(ts, tz, fallbackTz);
  return q.from < q.to ? m >= q.from && m < q.to : m >= q.from || m < q.to;
}

/** The end of the quiet hours after `ts`: the next customer-local `to` (DST as `nextLocalHour`). */
export function quietHoursEnd(q: QuietHours, ts: number, tz: string, fallbackTz: string): number {
  const hour = Math.floor(q.to / 60);
  const minutes = (q.to % 60) * MINUTE;
  return nextLocalHour(ts - minutes, tz, hour, fallbackTz) + minutes;
}

/** Delivery times per cap group (kept in rule memory under {@link CAP_MEMORY_KEY}). */
export type CapMemory = Record<string, number[]>;

/** Rule memory key of the cap state; not a valid rule id, so it cannot collide. */
export const CAP_MEMORY_KEY = '$cap';

/**
 * Whether a delivery at event time `t` fits the cap (fewer than `max` deliveries in (t − per, t]);
 * if so it is recorded. Deliveries come in event-time order per customer except for late events,
 * which are checked against the same window.
 */
export function takeCap(cap: Cap, memory: Record<string, unknown>, t: number): boolean {
  let caps = memory[CAP_MEMORY_KEY] as CapMemory | undefined;
  if (caps === undefined) {
    caps = {};
    memory[CAP_MEMORY_KEY] = caps;
  }
  let times = caps[cap.group];
  if (times === undefined) {
    times = [];
    caps[cap.group] = times;
  }
  let inWindow = 0;
  let newest = Number.NEGATIVE_INFINITY;
  for (const x of times) {
    if (x > t - cap.perMs && x <= t) inWindow++;
    if (x > newest) newest = x;
  }
  if (inWindow >= cap.max) return false;
  times.push(t);
  // Keep what can still matter for a delivery at or after the newest one.
  const horizon = Math.max(newest, t) - cap.perMs;
  if (times.length > cap.max) caps[cap.group] = times.filter((x) => x > horizon);
  return true;
}
