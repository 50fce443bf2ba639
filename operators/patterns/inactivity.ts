/**
 * Inactivity: no event at all for `for` (30 days without contact); fires for customers who send
 * nothing, once the watermark passes their last event + `for`. Ordered lane: every event moves the
 * timer to its time + `for`, and a timer due before an event has fired by the time that event is
 * seen, so an event just after the silence ended does not swallow the firing. Once per silent spell.
 */
import { Type } from 'typebox';
import type { Pattern } from '../ruleModel.js';
import { Duration, type PatternDefinition } from './definition.js';

/** `inactivity: { for }`. */
export const inactivitySchema = Type.Object({ for: Duration }, { additionalProperties: false });

export const inactivity: PatternDefinition = {
  key: 'inactivity',
  mapping: true,
  schema: inactivitySchema,
  oncePer: 'inactiveSpell',
  compile(_fields, c): Pattern {
    const silence = c.duration('for');
    return {
      kind: 'inactivity',
      types: undefined,
      lane: 'ordered',
      minDelay: silence,
      onEvent(event, ctx) {
        ctx.arm(event.ts + silence);
      },
      onTimer(timer, ctx) {
        ctx.fire(timer.due, `t${timer.due}`, undefined);
      },
    };
  },
};
