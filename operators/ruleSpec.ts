/**
 * Rules as written in YAML: plain data (sent to worker threads as is). The format and its
 * semantics are in docs/RULES.md; `compileRules` (operators/ruleCompiler.ts) validates them.
 */

/** An event type or a list of them. */
export type EventTypes = string | string[];

/** A not followed by B within T: armed by `after`, cancelled by `missing`; a new `after` restarts T. */
export interface AbsenceSpec {
  after: EventTypes;
  missing: EventTypes;
  /** Duration, e.g. `10m`. */
  within: string;
}

/** A then B within T: fires on the `followedBy` event when a `first` event lies within T before it. */
export interface SequenceSpec {
  first: EventTypes;
  followedBy: EventTypes;
  within: string;
}

/** At least N events of `of` within T (sliding, or after an `after` anchor), optionally per key and unless a `unless` event. */
export interface CountSpec {
  of: EventTypes;
  atLeast: number;
  within: string;
  /** Anchor: count only events in (anchor, anchor + within]. */
  after?: EventTypes;
  /** CEL key: counted separately per value (e.g. `event.category`); events without it are not counted. */
  by?: string;
  /** Events of these types (same key) within the window veto the firing. */
  unless?: EventTypes;
}

/** N consecutive `of` events satisfying `where`; an `of` event failing it, or a `resetOn` event, resets. */
export interface StreakSpec {
  of: EventTypes;
  /** CEL condition on each `of` event. */
  where: string;
  count: number;
  resetOn?: EventTypes;
}

/** No event at all for T: fires for silent customers once the watermark passes lastSeen + T. */
export interface InactivitySpec {
  for: string;
}

/** Fires when the time since the last order reaches `fraction` × purchaseCycleDays with no order since. */
export interface PurchaseCycleSpec {
  /** @default 0.9 */
  fraction?: number;
}

/** Delivery window in the customer's time zone: triggers inside it are deferred to its end, or dropped. */
export interface QuietHoursSpec {
  /** `HH:MM`, customer-local. */
  from: string;
  to: string;
  /** @default 'defer' */
  action?: 'defer' | 'drop';
}

/** At most `max` triggers per customer within a rolling `per` across all rules naming `group`. */
export interface CapSpec {
  group: string;
  max: number;
  per: string;
}

/** One rule as written in YAML: plain data, so it can be sent to worker threads. */
export interface RuleSpec {
  /** `[a-z0-9_]+`; the output subject defaults to `cx.triggers.<id>`. */
  id: string;
  /** Human text; becomes the trigger `reason`. @default the id */
  description?: string;
  /** Trigger priority = priority + `profile.rfm.score`; also decides arbitration. @default 0 */
  priority?: number;
  /** Event types an on-event rule looks at (its index); omitted = all types. Not with a pattern. */
  on?: string[];
  /** CEL condition over `event`, `profile` and `now`, checked when the rule would fire. @default true */
  when?: string;
  /** CEL condition: fires when it becomes true after having been false for this customer. */
  crosses?: string;
  absence?: AbsenceSpec;
  sequence?: SequenceSpec;
  count?: CountSpec;
  streak?: StreakSpec;
  inactivity?: InactivitySpec;
  purchaseCycle?: PurchaseCycleSpec;
  /** Duration ("30s" "10m" "24h" "7d"): no refire for this customer (and `per` key) within it, in event time. */
  cooldown?: string;
  /** CEL giving a cooldown key (e.g. `event.sku` → the cooldown applies per sku). */
  per?: string;
  /**
   * `session`: at most once per session id (sessionless events fall back to `cooldown`, 30m when
   * unset). `purchaseCycle` / `inactiveSpell` state what the matching pattern does anyway.
   */
  oncePer?: 'session' | 'purchaseCycle' | 'inactiveSpell';
  /** Arbitration group: on one event only the highest-priority firing rule of a group fires. */
  group?: string;
  quietHours?: QuietHoursSpec;
  cap?: CapSpec;
  /** Output subject. @default `cx.triggers.<id>` */
  subject?: string;
  /** Payload field name → CEL expression. */
  payload?: Record<string, string>;
  /** Profile field names copied into the trigger's `profile`. */
  profile?: string[];
}

/** One problem found while compiling rules: rule index in the list and the path inside the rule. */
export interface RuleCompileIssue {
  index: number;
  path: (string | number)[];
  message: string;
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

function formatIssue(i: RuleCompileIssue): string {
  const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  return `rules[${i.index}]${path}: ${i.message}`;
}
