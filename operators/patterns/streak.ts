/**
 * Streak: `count` consecutive `of` events satisfying `where` (event-time order); an `of` event
 * failing it, or a `resetOn` event, starts over. Fires on the event that reaches the count. Late
 * events (behind the watermark) neither extend nor reset a streak.
 */
import { Type } from 'typebox';
import { type Pattern, sessionOf } from '../ruleModel.js';
import { Cel, Count, EventTypes, listened, type PatternDefinition } from './definition.js';

/** `streak: { of, where, count, resetOn? }`. */
export const streakSchema = Type.Object(
  { of: EventTypes, where: Cel, count: Count, resetOn: Type.Optional(EventTypes) },
  { additionalProperties: false },
);

/** What a streak rule remembers about a customer. */
interface StreakMemory {
  /** Current streak length. */
  length?: number;
}

export const streak: PatternDefinition = {
  key: 'streak',
  mapping: true,
  schema: streakSchema,
  compile(_fields, c): Pattern | undefined {
    const of = c.types('of');
    const resetOn = c.types('resetOn');
    const count = c.count('count');
    const where = c.condition('where');
    if (where === undefined) return undefined;
    return {
      kind: 'streak',
      types: listened(of, resetOn),
      lane: 'ordered',
      onEvent(event, ctx) {
        if (resetOn.has(event.type)) {
          const m = ctx.existingMemory<StreakMemory>();
          if (m?.length) m.length = 0;
        }
        if (!of.has(event.type)) return;
        const ok = ctx.test(where);
        if (ok === undefined) return;
        const m = ctx.memory<StreakMemory>();
        if (!ok) {
          m.length = 0;
          return;
        }
        m.length = (m.length ?? 0) + 1;
        if (m.length === count) ctx.fire(event.ts, event.id, sessionOf(event));
      },
      // The two keys' events interleave in time, so the merged run is not known: the longer one is
      // kept. A streak that already reached the count on either key does not fire again (the length
      // passes the count), and the next failing or `resetOn` event starts over as usual.
      mergeMemory(into, from) {
        const a = into as StreakMemory;
        const b = from as StreakMemory;
        if ((b.length ?? 0) > (a.length ?? 0)) a.length = b.length;
        return a;
      },
    };
  },
};
