/**
 * Purchase cycle: a reminder when the time since the last order reaches `fraction` × the
 * customer's purchase cycle (`profile.purchaseCycleDays`: mean time between purchase occasions,
 * orders on one customer-local day being one occasion), with no order since. Needs two occasions;
 * a cycle shorter than one day never reminds. Each order re-times the reminder; once per cycle.
 */
import { Type } from 'typebox';
import { purchaseCycleMs } from '../profile.js';
import type { Pattern, RuleContext } from '../ruleModel.js';
import type { PatternDefinition } from './definition.js';

const DAY = 86_400_000;

/** `purchaseCycle: { fraction? }`. */
export const purchaseCycleSchema = Type.Object(
  { fraction: Type.Optional(Type.Number({ exclusiveMinimum: 0 })) },
  { additionalProperties: false },
);

/** What a purchase-cycle rule remembers about a customer. */
interface CycleMemory {
  /** The last order time whose cycle already had its reminder. */
  remindedFor?: number;
}

export const purchaseCycle: PatternDefinition = {
  key: 'purchaseCycle',
  mapping: true,
  schema: purchaseCycleSchema,
  oncePer: 'purchaseCycle',
  compile(fields): Pattern {
    const fraction = fields.fraction === undefined ? 0.9 : (fields.fraction as number);
    /** Times the reminder from the customer's orders; `late`: only if it is still ahead of the watermark. */
    const retime = (ctx: RuleContext, late: boolean): void => {
      const last = ctx.state.lastOrderAt;
      const cycle = purchaseCycleMs(ctx.state);
      if (last === null || cycle === null || cycle < DAY) return;
      if (ctx.existingMemory<CycleMemory>()?.remindedFor === last) return; // this cycle had its reminder
      const due = last + Math.round(fraction * cycle);
      if (late && due < ctx.watermark) return;
      ctx.arm(due, { orderAt: last });
    };
    return {
      kind: 'cycle',
      types: ['order'],
      lane: 'ordered',
      // a reminder comes at least `fraction` of a one-day cycle after the order
      minDelay: Math.round(fraction * DAY),
      onEvent: (_event, ctx) => retime(ctx, false),
      onLateEvent: (_event, ctx) => retime(ctx, true),
      onTimer(timer, ctx) {
        ctx.memory<CycleMemory>().remindedFor = timer.orderAt;
        ctx.fire(timer.due, `t${timer.due}`, undefined);
      },
      // The later reminded order: the merged last order is the later of the two, so only a reminder
      // for that order can still hold the merged customer's reminder back.
      mergeMemory(into, from) {
        const a = into as CycleMemory;
        const b = (from as CycleMemory).remindedFor;
        if (b !== undefined && (a.remindedFor === undefined || b > a.remindedFor)) a.remindedFor = b;
        return a;
      },
    };
  },
};
