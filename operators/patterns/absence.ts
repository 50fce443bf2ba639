/**
 * Absence: an `after` event not followed by a `missing` event within `within` (add to cart, no
 * order within 10 minutes). Ordered lane: an `after` event arms the timer or, while the window is
 * still open, restarts it; a `missing` event at or before the due time cancels it. A timer due
 * before an event has fired by the time that event is seen, so a newer `after` after the window
 * closed starts a window of its own. A late `missing` event (behind the watermark) still cancels a
 * pending timer it falls inside; a late `after` event starts nothing.
 */
import { Type } from 'typebox';
import type { Pattern } from '../ruleModel.js';
import { Duration, EventTypes, listened, type PatternDefinition } from './definition.js';

/** `absence: { after, missing, within }`. */
export const absenceSchema = Type.Object(
  { after: EventTypes, missing: EventTypes, within: Duration },
  { additionalProperties: false },
);

export const absence: PatternDefinition = {
  key: 'absence',
  mapping: true,
  schema: absenceSchema,
  compile(_fields, c): Pattern {
    const after = c.types('after');
    const missing = c.types('missing');
    const within = c.duration('within');
    /** A `missing` event at `ts` answers the pending window it falls in. */
    const answer = (ts: number, ctx: Parameters<Pattern['onEvent']>[1]): void => {
      const pending = ctx.timer();
      if (pending?.anchor !== undefined && pending.anchor.ts <= ts && ts <= pending.due) ctx.cancel();
    };
    return {
      kind: 'absence',
      types: listened(after, missing),
      lane: 'ordered',
      minDelay: within,
      onEvent(event, ctx) {
        if (missing.has(event.type)) answer(event.ts, ctx);
        // A pending timer is due at or after this event (earlier ones have fired): restart it.
        if (after.has(event.type)) ctx.arm(event.ts + within, { anchor: event });
      },
      onLateEvent(event, ctx) {
        if (missing.has(event.type)) answer(event.ts, ctx);
      },
      onTimer(timer, ctx) {
        ctx.fire(timer.due, `t${timer.due}`, undefined);
      },
    };
  },
};
