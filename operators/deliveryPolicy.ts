/**
 * Delivery policy of a firing rule, after its pattern and condition said "fire": cooldowns and
 * once-per-session marks, quiet hours in the customer's time zone, and frequency caps shared by a
 * group of rules. State is plain data kept with the customer (docs/RULES.md "Delivery").
 */

import { nextLocalHour, utcOffsetMinutes } from './localTime.js';
import type { Cap, CompiledRule, FireMark, QuietHours } from './ruleModel.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** Cooldown marks of one rule for one customer, per `per` key ('' without). */
export type FireMarks = Record<string, FireMark>;

/**
 * Whether cooldown or once-per-session blocks a firing of `r` for `key` at event time `t`: with a
 * session, once per session; without one, the cooldown (the 30-minute fallback of once-per-session).
 */
export function cooldownBlocks(
  r: CompiledRule,
  marks: FireMarks | undefined,
  key: string,
  t: number,
  session: string | undefined,
): boolean {
  const mark = marks?.[key];
  if (mark === undefined) return false;
  if (r.oncePerSession && session !== undefined) return mark.session === session;
  return r.cooldownMs > 0 && t - mark.at < r.cooldownMs;
}

/**
 * Records a firing of `r` for `key` at `t`; returns the marks object (new when there was none) and
 * the mark it replaced. A firing without a session keeps the session of the one before, so that a
 * phone call during an open chat does not make once-per-session forget the chat.
 */
export function markFired(
  r: CompiledRule,
  marks: FireMarks | undefined,
  key: string,
  t: number,
  session: string | undefined,
): { marks: FireMarks; set: FireMark; previous: FireMark | undefined } {
  const m = marks ?? {};
  if (r.per !== undefined) {
    // Keys seen long ago can no longer block anything: drop them so the memory stays bounded.
    for (const k of Object.keys(m)) if (t - m[k]!.at >= r.retainMs) delete m[k];
  }
  const previous = m[key];
  const kept = session ?? previous?.session;
  const set: FireMark = kept === undefined ? { at: t } : { at: t, session: kept };
  m[key] = set;
  return { marks: m, set, previous };
}

/** Takes back a mark set by `markFired` (a deferred trigger the cap dropped), unless a later firing replaced it. */
export function unmarkFired(
  marks: FireMarks | undefined,
  key: string,
  set: FireMark,
  previous?: FireMark,
): void {
  if (marks === undefined) return;
  const now = marks[key];
  if (now === undefined || now.at !== set.at || now.session !== set.session) return;
  if (previous === undefined) delete marks[key];
  else marks[key] = previous;
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

/** Delivery times per cap group, kept with the customer. */
export type CapMemory = Record<string, number[]>;

/**
 * Whether a delivery at event time `t` fits the cap (fewer than `max` deliveries in (t − per, t]);
 * if so it is recorded in `caps`. Deliveries come in event-time order per customer except for late
 * events, which are checked against the same window.
 */
export function takeCap(cap: Cap, caps: CapMemory, t: number): boolean {
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

/**
 * After `takeCap` refused a delivery at `t`: the event time from which one fits again (the oldest
 * delivery in the window leaves it; deliveries recorded after `t`, by late events, may fill it again).
 * For explain; reads `caps` only.
 */
export function capFreeAt(cap: Cap, caps: CapMemory, t: number): number {
  let oldest = t;
  for (const x of caps[cap.group] ?? []) if (x > t - cap.perMs && x <= t && x < oldest) oldest = x;
  return oldest + cap.perMs;
}

/**
 * Timer id of a trigger deferred by quiet hours: sorts the releases of one customer at one time in
 * the order they originally fired (event time), then higher rule priority, then rule id, so the cap
 * admits them in that order. Before every pattern timer id (`\u0001` < `[a-z0-9_]`).
 */
export function deferredTimerId(
  eventTime: number,
  priority: number,
  rule: string,
  triggerId: string,
): string {
  const time = String(Math.max(0, Math.trunc(eventTime))).padStart(16, '0');
  // Higher priority first: 1e12 − priority·1000 (priorities within ±1e9 keep 13 digits and order).
  const rank = String(Math.round(1e12 - priority * 1000)).padStart(13, '0');
  return `\u0001${time}.${rank}.${rule}\u0000${triggerId}`;
}
