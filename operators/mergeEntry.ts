/**
 * Identity stitching: one customer's whole entry merged into another's (docs/IDENTITY.md "Merging").
 * The profile state, the rule memory, cooldown marks and caps merge field by field
 * (operators/mergeCustomers.ts); here the timers and the events still waiting move.
 */
import { Packr } from 'msgpackr';
import { mergeCaps, mergeFired, mergeMemories, mergeStates } from './mergeCustomers.js';
import type { CustomerEntry } from './partitionState.js';
import type { Pattern, TimerRecord } from './ruleModel.js';

/** Copies of frozen entries (plain msgpack: no shared structures, so a copy reads anywhere). */
export const frozenCopy = new Packr({ useRecords: false, moreTypes: true });

/**
 * Merges `from` (an absorbed customer's entry) into `into` (the canonical customer's). A timer both
 * have (the same rule and key) is kept once: the one due later, which for a window the rule restarts
 * (a cart reminder) is the newer window, and for a profile publication the sooner. Events waiting
 * for the ordered lane and events held behind a timer are merged in their orders (event time, then
 * stream sequence; stream sequence). Both changed sides make the merged profile dirty.
 */
export function mergeEntry(
  into: CustomerEntry,
  from: CustomerEntry,
  patternOf: (rule: string) => Pattern | undefined,
): void {
  mergeStates(into.state, from.state);
  mergeMemories(into.memory, from.memory, patternOf);
  mergeFired(into.fired, from.fired);
  mergeCaps(into.caps, from.caps);
  for (const [id, record] of Object.entries(from.timers)) {
    const mine = into.timers[id];
    if (mine === undefined || keepsOther(mine, record)) into.timers[id] = record;
  }
  into.pending = [...into.pending, ...from.pending].sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq);
  into.held = [...into.held, ...from.held].sort((a, b) => a.seq - b.seq);
  into.publishedAt = Math.min(into.publishedAt, from.publishedAt);
  into.dirty = true;
}

/** Whether a timer of the absorbed customer replaces the canonical one's of the same id. */
function keepsOther(mine: TimerRecord, other: TimerRecord): boolean {
  if (mine.kind === 'publish') return other.due < mine.due;
  return other.due > mine.due;
}
