/**
 * On-event pattern (the default): each event of the rule's `on` types (all types without `on`) is a
 * candidate; `when` decides. Runs on arrival, so routing rules answer at once.
 */
import { Type } from 'typebox';
import { type Pattern, sessionOf } from '../ruleModel.js';
import type { PatternDefinition } from './definition.js';

/** Rule fields of an on-event rule. */
export const onEventSchema = Type.Object({
  /** Event types the rule looks at (its index); omitted = all types. */
  on: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
});

export const onEvent: PatternDefinition = {
  key: null,
  mapping: false,
  schema: onEventSchema,
  compile(fields): Pattern {
    const on = fields.on as string[] | undefined;
    return {
      kind: 'event',
      types: on,
      lane: 'arrival',
      onEvent(event, ctx) {
        ctx.fire(event.ts, event.id, sessionOf(event));
      },
    };
  },
};
