/**
 * Count in window: at least `atLeast` events of `of` within `within` (sliding, or after an `after`
 * anchor), optionally per key (`by`), unless an `unless` event of the same key falls in the window;
 * fires on the `of` event that reaches the count. Ordered lane: events are counted in event-time
 * order, so the firing does not depend on arrival order within the allowed lateness. A late event
 * is counted (and vetoes) for later firings but fires nothing itself.
 */
import { Type } from 'typebox';
import { type Pattern, sessionOf } from '../ruleModel.js';
import { Cel, Count, Duration, EventTypes, listened, type PatternDefinition } from './definition.js';
import {
  countFires,
  type KeyedTimes,
  keyedAdd,
  MAX_WINDOW_ENTRIES,
  mergeKeyedTimes,
  mergeTimes,
  pushWindow,
} from './windows.js';

/** `count: { of, atLeast, within, after?, by?, unless? }`. */
export const countSchema = Type.Object(
  {
    of: EventTypes,
    atLeast: Count,
    within: Duration,
    /** Anchor: count only events in (anchor, anchor + within]. */
    after: Type.Optional(EventTypes),
    /** CEL key: counted separately per value (e.g. `event.category`); events without it are not counted. */
    by: Type.Optional(Cel),
    /** Events of these types (same key) within the window veto the firing. */
    unless: Type.Optional(EventTypes),
  },
  { additionalProperties: false },
);

/** What a count rule remembers about a customer. */
interface CountMemory {
  /** Times of recent `of` events per key. */
  counted?: KeyedTimes;
  /** Times of recent `unless` events per key. */
  vetoes?: KeyedTimes;
  /** Times of recent anchor (`after`) events. */
  anchors?: number[];
}

export const count: PatternDefinition = {
  key: 'count',
  mapping: true,
  schema: countSchema,
  compile(_fields, c): Pattern {
    const of = c.types('of');
    const unless = c.types('unless');
    const anchor = c.types('after');
    const within = c.duration('within');
    const atLeast = c.count('atLeast');
    const by = c.expression('by');
    /** Records the event; returns its key when it is an `of` event that may fire. */
    const record = (
      event: Parameters<Pattern['onEvent']>[0],
      ctx: Parameters<Pattern['onEvent']>[1],
      late: boolean,
    ): string | undefined => {
      const ts = event.ts;
      // Ordered events come in time order: what is older than this one's window counts for none
      // still to come. A late event counts only for windows after the watermark.
      const horizon = Math.min(ts, ctx.watermark) - within;
      if (late && ts <= ctx.watermark - within) return undefined;
      if (anchor.has(event.type) && ts >= horizon) {
        const m = ctx.memory<CountMemory>();
        m.anchors = pushWindow(m.anchors, ts, horizon, MAX_WINDOW_ENTRIES);
      }
      const isOf = of.has(event.type);
      const isUnless = unless.has(event.type);
      if (!isOf && !isUnless) return undefined;
      let key = '';
      if (by !== undefined) {
        const k = ctx.value(by);
        if (k === undefined || k === null || k === '') return undefined;
        key = typeof k === 'string' ? k : String(k);
      }
      const m = ctx.memory<CountMemory>();
      if (isUnless) m.vetoes = keyedAdd(m.vetoes, key, ts, horizon, MAX_WINDOW_ENTRIES);
      if (!isOf) return undefined;
      m.counted = keyedAdd(m.counted, key, ts, horizon, MAX_WINDOW_ENTRIES);
      return key;
    };
    return {
      kind: 'count',
      types: listened(of, unless, anchor),
      lane: 'ordered',
      onEvent(event, ctx) {
        const key = record(event, ctx, false);
        if (key === undefined) return;
        const m = ctx.existingMemory<CountMemory>()!;
        if (countFires(m.counted, m.vetoes, m.anchors, key, event.ts, within, atLeast, anchor.size > 0))
          ctx.fire(event.ts, event.id, sessionOf(event));
      },
      onLateEvent(event, ctx) {
        record(event, ctx, true);
      },
      // Both customers' counted, veto and anchor times, per key, as if one customer had seen them.
      mergeMemory(into, from) {
        const a = into as CountMemory;
        const b = from as CountMemory;
        if (a.counted !== undefined || b.counted !== undefined)
          a.counted = mergeKeyedTimes(a.counted, b.counted);
        if (a.vetoes !== undefined || b.vetoes !== undefined) a.vetoes = mergeKeyedTimes(a.vetoes, b.vetoes);
        if (a.anchors !== undefined || b.anchors !== undefined) a.anchors = mergeTimes(a.anchors, b.anchors);
        return a;
      },
    };
  },
};
