/**
 * Rules as written in YAML: one schema (TypeBox, so the TypeScript types and the validator come
 * from the same definition) and the list of patterns. The format and its semantics are in
 * docs/RULES.md; `compileRules` (operators/ruleCompiler.ts) validates and compiles rules.
 *
 * A new pattern: a module in operators/patterns/ (schema, compiler, evaluation), its schema under
 * its key in `ruleSchema` and its definition in `PATTERNS` below.
 */
import { type Static, Type } from 'typebox';
import { absence, absenceSchema } from './patterns/absence.js';
import { count, countSchema } from './patterns/count.js';
import { crossing } from './patterns/crossing.js';
import { Cel, Count, Duration, type PatternDefinition } from './patterns/definition.js';
import { inactivity, inactivitySchema } from './patterns/inactivity.js';
import { onEvent } from './patterns/onEvent.js';
import { purchaseCycle, purchaseCycleSchema } from './patterns/purchaseCycle.js';
import { sequence, sequenceSchema } from './patterns/sequence.js';
import { streak, streakSchema } from './patterns/streak.js';

/** Patterns selected by a rule key (a rule names at most one), in the order a rule's keys are checked. */
export const PATTERNS: readonly PatternDefinition[] = [
  crossing,
  absence,
  sequence,
  count,
  streak,
  inactivity,
  purchaseCycle,
];

/** The pattern of a rule that names none: on-event. */
export const DEFAULT_PATTERN: PatternDefinition = onEvent;

const Clock = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' });
const Name = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' });

/** `enum` as a plain JSON-schema enum (one clear message) typed as the union of its values. */
function oneOf<const T extends string>(values: readonly T[]) {
  return Type.Unsafe<T>({ type: 'string', enum: [...values] });
}

/** Delivery window in the customer's time zone: triggers inside it are deferred to its end, or dropped. */
export const quietHoursSchema = Type.Object(
  {
    /** `HH:MM`, customer-local. */
    from: Clock,
    to: Clock,
    /** @default 'defer' */
    action: Type.Optional(oneOf(['defer', 'drop'])),
  },
  { additionalProperties: false },
);

/** At most `max` triggers per customer within a rolling `per` across all rules naming `group`. */
export const capSchema = Type.Object(
  { group: Type.String({ pattern: '^[a-z0-9_]+$' }), max: Count, per: Duration },
  { additionalProperties: false },
);

/** One rule as written in YAML. */
export const ruleSchema = Type.Object(
  {
    /** `[a-z0-9_]+`; the output subject defaults to `cx.triggers.<id>`. */
    id: Type.String({ pattern: '^[a-z0-9_]+$' }),
    /** Human text; becomes the trigger `reason`. @default the id */
    description: Type.Optional(Type.String()),
    /** Trigger priority = priority + `profile.rfm.score`; also decides arbitration. @default 0 */
    priority: Type.Optional(Type.Number()),
    /** Event types an on-event rule looks at; omitted = all types. Not with a pattern. */
    on: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    /** CEL condition over `event`, `profile` and `now`, checked when the rule would fire. @default true */
    when: Type.Optional(Cel),
    /** CEL condition: fires when it becomes true after having been false for this customer. */
    crosses: Type.Optional(Cel),
    absence: Type.Optional(absenceSchema),
    sequence: Type.Optional(sequenceSchema),
    count: Type.Optional(countSchema),
    streak: Type.Optional(streakSchema),
    inactivity: Type.Optional(inactivitySchema),
    purchaseCycle: Type.Optional(purchaseCycleSchema),
    /** Duration: no refire for this customer (and `per` key) within it, in event time. */
    cooldown: Type.Optional(Duration),
    /** CEL giving a cooldown key (e.g. `event.sku` → the cooldown applies per sku). */
    per: Type.Optional(Cel),
    /**
     * `session`: at most once per session id (sessionless events fall back to `cooldown`, 30m when
     * unset). `purchaseCycle` / `inactiveSpell` state what the matching pattern does anyway.
     */
    oncePer: Type.Optional(oneOf(['session', 'purchaseCycle', 'inactiveSpell'])),
    /** Arbitration group: on one event only the highest-priority firing rule of a group fires. */
    group: Type.Optional(Type.String({ minLength: 1 })),
    quietHours: Type.Optional(quietHoursSchema),
    cap: Type.Optional(capSchema),
    /** Output subject. @default `cx.triggers.<id>` */
    subject: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$' })),
    /** Payload field name → CEL expression. */
    payload: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: 'object',
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
        additionalProperties: Cel,
      }),
    ),
    /** Profile field names copied into the trigger's `profile`. */
    profile: Type.Optional(Type.Array(Name)),
  },
  { additionalProperties: false },
);

/** A rule file: `rules:` and nothing else. */
export const ruleFileSchema = Type.Object({ rules: Type.Array(ruleSchema) }, { additionalProperties: false });

/** One rule as written in YAML: plain data, so it can be sent to worker threads. */
export type RuleSpec = Static<typeof ruleSchema>;
export type QuietHoursSpec = Static<typeof quietHoursSchema>;
export type CapSpec = Static<typeof capSchema>;
export type AbsenceSpec = Static<typeof absenceSchema>;
export type SequenceSpec = Static<typeof sequenceSchema>;
export type CountSpec = Static<typeof countSchema>;
export type StreakSpec = Static<typeof streakSchema>;
export type InactivitySpec = Static<typeof inactivitySchema>;
export type PurchaseCycleSpec = Static<typeof purchaseCycleSchema>;

/** One problem found while compiling rules: rule index in the list and the path inside the rule. */
export interface RuleCompileIssue {
  index: number;
  path: (string | number)[];
  message: string;
  /** A warning (e.g. an event field no known event carries) does not stop the rules from loading. */
  warning?: boolean;
}

/** Rules that cannot be compiled; index/path/message describe the first issue, `issues` lists all. */
export class RuleCompileError extends Error {
  override name = 'RuleCompileError';
  readonly index: number;
  readonly path: (string | number)[];
  constructor(
    readonly issues: RuleCompileIssue[],
    options?: ErrorOptions,
  ) {
    const first = issues[0] ?? { index: -1, path: [], message: 'no issue' };
    super(issues.map(formatIssue).join('\n'), options);
    this.index = first.index;
    this.path = first.path;
  }
}

/** True for a {@link RuleCompileError} (also across module copies). */
export function isRuleCompileError(e: unknown): e is RuleCompileError {
  return e instanceof Error && e.name === 'RuleCompileError';
}

/** `rules[3].absence.within: message` */
export function formatIssue(i: RuleCompileIssue): string {
  const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  return `rules[${i.index}]${path}: ${i.message}`;
}
