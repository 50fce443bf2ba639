/**
 * Snapshots written by earlier versions, upgraded to the current format on restore, so a new version
 * picks up where the old one stopped. Formats 2 and 3 kept each rule's state under short field names
 * in one object per rule (pattern memory and cooldown marks together) and the caps in it under
 * `$cap`; format 4 spells the names out and keeps marks, caps and pattern memory apart, and holds the
 * events waiting for the ordered lane; format 5 splits a worker's state into key groups; format 6
 * holds each customer as its msgpack bytes (operators/customerStore.ts) and each key group's timers
 * apart. A snapshot of a newer format is refused.
 */

import { keyGroupOf } from './keyGroups.js';
import { utcOffsetMinutes } from './localTime.js';
import {
  type CustomerEntry,
  type KeyGroupSnapshot,
  type PartitionSnapshot,
  SNAPSHOT_VERSION,
} from './partitionState.js';
import type { CustomerState } from './profile.js';
import type { FireMark, TimerRecord } from './ruleModel.js';
import type { WatermarkState } from './watermark.js';

const DAY = 86_400_000;
const CURRENT = SNAPSHOT_VERSION;

/**
 * A snapshot in the current format (upgraded when older); throws on a format this version cannot read.
 * Formats before 5 held one partition of a deployment without key groups: its customers are spread
 * over their key groups, each keeping the partition's last sequence as `appliedThrough` (sequences
 * were per partition then), and the key groups take the partition's watermark.
 */
export function upgradeSnapshot(
  snapshot: PartitionSnapshot | Record<string, unknown>,
  defaultTz: string,
  keyGroups: number,
): PartitionSnapshot {
  const s = snapshot as Record<string, unknown>;
  const version = s.version;
  if (version === CURRENT) return snapshot as PartitionSnapshot;
  // Format 5 is format 6 with the customers as objects: the restore reads their timers from them.
  if (version === 5) return { ...(snapshot as PartitionSnapshot), version: CURRENT };
  if (typeof version === 'number' && version > CURRENT) {
    throw new Error(
      `snapshot format ${version} was written by a newer cxstream (this version reads formats up to ${CURRENT}): ` +
        'run the newer version, or restore a checkpoint taken before the upgrade',
    );
  }
  if (version !== 2 && version !== 3 && version !== 4) {
    throw new Error(
      `snapshot format ${String(version)} is not supported (this version reads 2, 3, 4, 5 and ${CURRENT})`,
    );
  }
  const lastSeq = s.lastSeq as number;
  const watermark = s.watermark as WatermarkState;
  const groups = new Map<number, KeyGroupSnapshot>();
  for (const [customer, old] of s.customers as Array<[string, Record<string, unknown>]>) {
    const entry = version === 4 ? (old as unknown as CustomerEntry) : upgradeEntry(old, defaultTz);
    entry.appliedThrough = lastSeq;
    const kg = keyGroupOf(customer, keyGroups);
    let group = groups.get(kg);
    if (group === undefined) {
      group = { kg, lastSeq: 0, watermark, customers: [] };
      groups.set(kg, group);
    }
    group.customers.push([customer, entry]);
  }
  return { version: CURRENT, keyGroups, delta: s.delta === true, groups: [...groups.values()] };
}

/** Old short names of pattern memory → current ones (`a`, `b`: absence bookkeeping no longer needed). */
const MEMORY_NAMES: Record<string, string | null> = {
  c: 'crossed',
  s: 'firsts',
  x: 'counted',
  u: 'vetoes',
  an: 'anchors',
  k: 'length',
  p: 'remindedFor',
  a: null,
  b: null,
};

function upgradeEntry(old: Record<string, unknown>, defaultTz: string): CustomerEntry {
  const rules = (old.rules ?? {}) as Record<string, Record<string, unknown>>;
  const memory: CustomerEntry['memory'] = {};
  const fired: CustomerEntry['fired'] = {};
  let caps: CustomerEntry['caps'] = {};
  for (const [rule, value] of Object.entries(rules)) {
    if (rule === '$cap') {
      caps = value as unknown as CustomerEntry['caps'];
      continue;
    }
    const m: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'f') {
        const marks: Record<string, FireMark> = {};
        for (const [key, mark] of Object.entries(v as Record<string, { t: number; s?: string }>))
          marks[key] = mark.s === undefined ? { at: mark.t } : { at: mark.t, session: mark.s };
        fired[rule] = marks;
        continue;
      }
      const name = MEMORY_NAMES[k];
      if (name === null || name === undefined || v === undefined) continue;
      m[name] = k === 'x' || k === 'u' ? keyed(v as { k: string[]; v: number[][] }) : v;
    }
    if (Object.keys(m).length > 0) memory[rule] = m;
  }
  const timers: Record<string, TimerRecord> = {};
  for (const [id, t] of Object.entries((old.timers ?? {}) as Record<string, Record<string, unknown>>)) {
    const { h: _h, ...rest } = t;
    timers[id] = { ...(rest as unknown as TimerRecord), queuedAt: t.due as number };
  }
  return {
    state: upgradeState(old.state as CustomerState, defaultTz),
    memory,
    fired,
    caps,
    timers,
    pending: [],
    held: [],
    publishedAt: old.publishedAt as number,
    dirty: old.dirty === true,
  };
}

function keyed(lists: { k: string[]; v: number[][] }): { keys: string[]; times: number[][] } {
  return { keys: lists.k, times: lists.v };
}

/**
 * Adds the purchase occasions an older state did not count, from what it kept: the orders of the
 * last 365 days and the first and last order times.
 */
function upgradeState(state: CustomerState, defaultTz: string): CustomerState {
  if (typeof state.occasions === 'number') return state;
  const tz = state.tz ?? defaultTz;
  const dayOf = (ts: number) => Math.floor((ts + utcOffsetMinutes(ts, tz, defaultTz) * 60_000) / DAY);
  const firstByDay = new Map<number, number>();
  const note = (ts: number | null) => {
    if (ts === null) return;
    const d = dayOf(ts);
    const at = firstByDay.get(d);
    if (at === undefined || ts < at) firstByDay.set(d, ts);
  };
  note(state.firstOrderAt);
  for (const ts of state.orderTs) note(ts);
  note(state.lastOrderAt);
  const days = [...firstByDay.keys()].sort((a, b) => a - b);
  return {
    ...state,
    occasions: days.length,
    firstOccasionAt: days.length > 0 ? firstByDay.get(days[0]!)! : null,
    lastOccasionAt: days.length > 0 ? firstByDay.get(days.at(-1)!)! : null,
    firstOccasionDay: days[0] ?? 0,
    lastOccasionDay: days.at(-1) ?? 0,
  };
}
