/**
 * Sequence: a `first` event followed by a `followedBy` event within `within` (a complaint, then a
 * poor rating within 24 h); fires on the `followedBy` event. Ordered lane, so the two may arrive in
 * either order within the allowed lateness; at the same millisecond, stream order decides. A late
 * `first` is remembered for later `followedBy` events; a late `followedBy` completes nothing.
 */
import { Type } from 'typebox';
import { type Pattern, sessionOf } from '../ruleModel.js';
import { Duration, EventTypes, listened, type PatternDefinition } from './definition.js';
import { MAX_WINDOW_ENTRIES, mergeTimes, pushWindow } from './windows.js';

/** `sequence: { first, followedBy, within }`. */
export const sequenceSchema = Type.Object(
  { first: EventTypes, followedBy: EventTypes, within: Duration },
  { additionalProperties: false },
);

/** What a sequence rule remembers about a customer. */
interface SequenceMemory {
  /** Times of recent `first` events, oldest first. */
  firsts?: number[];
}

export const sequence: PatternDefinition = {
  key: 'sequence',
  mapping: true,
  schema: sequenceSchema,
  compile(_fields, c): Pattern {
    const first = c.types('first');
    const followedBy = c.types('followedBy');
    const within = c.duration('within');
    const remember = (ts: number, ctx: Parameters<Pattern['onEvent']>[1], late: boolean): void => {
      // Ordered events come in time order: firsts older than this one's window reach nothing still
      // to come. A late `first` is kept only if a `followedBy` after the watermark can reach it.
      const horizon = Math.min(ts, ctx.watermark) - within;
      if (late && ts < ctx.watermark - within) return;
      const m = ctx.memory<SequenceMemory>();
      m.firsts = pushWindow(m.firsts, ts, horizon, MAX_WINDOW_ENTRIES);
    };
    return {
      kind: 'sequence',
      types: listened(first, followedBy),
      lane: 'ordered',
      onEvent(event, ctx) {
        const ts = event.ts;
        if (followedBy.has(event.type)) {
          const firsts = ctx.existingMemory<SequenceMemory>()?.firsts;
          if (firsts?.some((a) => a <= ts && a >= ts - within)) ctx.fire(ts, event.id, sessionOf(event));
        }
        if (first.has(event.type)) remember(ts, ctx, false);
      },
      onLateEvent(event, ctx) {
        if (first.has(event.type)) remember(event.ts, ctx, true);
      },
      // Both customers' `first` times: a `followedBy` of either key completes a `first` of the other.
      mergeMemory(into, from) {
        const a = into as SequenceMemory;
        const b = from as SequenceMemory;
        if (a.firsts !== undefined || b.firsts !== undefined) a.firsts = mergeTimes(a.firsts, b.firsts);
        return a;
      },
    };
  },
};
