/**
 * Threshold crossing: fires on the event where `crosses` becomes true after having been false (or
 * never evaluated) for the customer, e.g. lifetime spend crossing 1000. Runs on arrival.
 */
import { Type } from 'typebox';
import { type Pattern, sessionOf } from '../ruleModel.js';
import { Cel, type PatternDefinition } from './definition.js';

/** Rule fields of a crossing rule. */
export const crossingSchema = Type.Object({
  on: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
  /** CEL condition: fires when it becomes true after having been false for this customer. */
  crosses: Cel,
});

/** What a crossing rule remembers about a customer. */
interface CrossingMemory {
  /** Last value of `crosses` (absent = false). */
  crossed?: boolean;
}

export const crossing: PatternDefinition = {
  key: 'crosses',
  mapping: false,
  schema: crossingSchema,
  compile(fields, c): Pattern | undefined {
    const crosses = c.condition('crosses');
    if (crosses === undefined) return undefined;
    return {
      kind: 'crossing',
      types: fields.on as string[] | undefined,
      lane: 'arrival',
      onEvent(event, ctx) {
        const v = ctx.test(crosses);
        if (v === undefined) return; // an error leaves the crossing state as it was
        const memory = ctx.existingMemory<CrossingMemory>();
        const before = memory?.crossed === true;
        if (!v) {
          if (before) memory!.crossed = false;
          return;
        }
        // A loser of its arbitration group keeps the crossing pending: it may fire on a later event.
        if (before || ctx.groupTaken) return;
        // The edge is used up whether or not the delivery policy lets it through.
        ctx.memory<CrossingMemory>().crossed = true;
        ctx.fire(event.ts, event.id, sessionOf(event));
      },
      // Crossed on either key = crossed: the edge is used up; the next event re-evaluates `crosses`
      // on the merged profile and a false value re-arms it.
      mergeMemory(into, from) {
        const a = into as CrossingMemory;
        if ((from as CrossingMemory).crossed === true) a.crossed = true;
        return a;
      },
    };
  },
};
