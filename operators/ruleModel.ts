/**
 * The compiled rule and the contract between the rule set and its patterns (a leaf: it imports no
 * other rule module). A pattern (operators/patterns/*.ts) compiles its part of a rule into a
 * {@link Pattern}; the rule set (operators/ruleSet.ts) calls it with a {@link RuleContext} that
 * gives it the customer's memory, its timers and the rule's delivery policy.
 */
import type { CustomerState } from './profile.js';
import type { CxEvent, Trigger } from './types.js';

/** When a rule last fired for a key, and the session it last fired in. */
export interface FireMark {
  /** Event time of the latest firing. */
  at: number;
  /** Session of the latest firing that had one (a firing without a session keeps it). */
  session?: string;
}

/**
 * What a pending timer is for: a pattern's kind (`absence`, `inactivity`, `cycle`), `deferred` (a
 * trigger held back by quiet hours) or `publish` (a changed profile waiting for its interval).
 */
export type TimerKind = string;

/** One pending timer of a customer (plain data). */
export interface TimerRecord {
  kind: TimerKind;
  /** The rule that armed it ('' for `publish`). */
  rule: string;
  /** Timer key within the rule ('' when the rule has one timer). */
  key: string;
  /** Fires once the watermark has passed it (event time, ms). */
  due: number;
  /** Due time of this record's earliest heap entry (<= due); entries at other times are stale. */
  queuedAt: number;
  /** Absence: the event that armed the timer (what `event` means when it fires). */
  anchor?: CxEvent;
  /** Purchase cycle: the last order time the reminder was timed from. */
  orderAt?: number;
  /** Deferred: the trigger held back by quiet hours, delivered as is (its id and eventTime kept). */
  trigger?: Trigger;
  /** Deferred: the cooldown mark the deferral set, undone if the cap drops the trigger at release. */
  mark?: { key: string; set: FireMark; previous?: FireMark };
}

/** The id of a rule's timer inside its customer's record map. */
export function timerId(rule: string, key: string): string {
  return key === '' ? rule : `${rule}\u0000${key}`;
}

/** A compiled CEL expression. */
export type Compiled = (ctx: EvalContext) => unknown;

/** What a CEL expression sees. */
export interface EvalContext {
  event: CxEvent | undefined;
  profile: Record<string, unknown> | undefined;
  /** Event time of the evaluation (the event's, or the timer's due time). */
  now: number;
}

/** Quiet hours as minutes of the customer-local day. */
export interface QuietHours {
  from: number;
  to: number;
  drop: boolean;
}

/** A frequency cap shared by the rules naming its group. */
export interface Cap {
  group: string;
  max: number;
  perMs: number;
}

/**
 * Where a pattern sees events. `arrival`: each event as it arrives, in stream order (on-event
 * conditions answer at once). `ordered`: events in event-time order once the watermark has passed
 * them, interleaved with the timers in time order (an event before a timer due at the same
 * millisecond), so the result does not depend on arrival order within the allowed lateness.
 */
export type Lane = 'arrival' | 'ordered';

/** A rule's pattern at run time, compiled from its YAML by its module in operators/patterns/. */
export interface Pattern {
  /** Pattern name (`event`, `crossing`, `absence`, ...), as `explain` prints it. */
  readonly kind: string;
  /** Event types it reads; undefined = every type. */
  readonly types: readonly string[] | undefined;
  readonly lane: Lane;
  /**
   * Ordered lane: the least event time between an event it sees and a timer it arms from it (its
   * window); undefined = it arms none. A customer's later events wait for the ordered lane when they
   * are further ahead than this, so that a timer armed there still sees the customer as of its due time.
   */
  readonly minDelay?: number;
  /** An event of one of its types: as it arrives (arrival lane) or in event-time order (ordered lane). */
  onEvent(event: CxEvent, ctx: RuleContext): void;
  /**
   * Ordered lane: an event that arrived behind the watermark (beyond the allowed lateness), after
   * the ordered lane passed its time. It may cancel or be remembered; it starts and completes nothing.
   */
  onLateEvent?(event: CxEvent, ctx: RuleContext): void;
  /** A timer this pattern armed came due (the watermark passed it). */
  onTimer?(timer: TimerRecord, ctx: RuleContext): void;
  /**
   * Identity stitching (operators/mergeCustomers.ts): merges the absorbed customer's memory of this
   * rule (`from`) into the canonical customer's (`into`, which it may change) and returns the merged
   * memory; `from` is left as it is and nothing of it is kept by reference. Absent = keep the
   * canonical's memory if it has one, else the absorbed's.
   */
  mergeMemory?(into: object, from: object): object;
}

/** One rule after compilation: the pattern and the delivery policy around it. */
export interface CompiledRule {
  id: string;
  reason: string;
  priority: number;
  subject: string;
  pattern: Pattern;
  /** CEL condition checked when the pattern fires; undefined = always. */
  when: Compiled | undefined;
  /** CEL cooldown key (`per`); undefined = one key. */
  per: Compiled | undefined;
  /** Cooldown window; 0 = none. */
  cooldownMs: number;
  oncePerSession: boolean;
  /** How long a keyed fire mark is kept once another key fires. */
  retainMs: number;
  /** Index into the rule set's arbitration groups; -1 = no group. */
  group: number;
  payload: Array<[name: string, value: Compiled]>;
  /** Profile field names copied into the trigger. */
  profile: string[];
  quiet: QuietHours | undefined;
  cap: Cap | undefined;
}

/** What a pattern may read and do for one customer while the rule set runs it. */
export interface RuleContext {
  readonly customer: string;
  /** The customer's profile state (read only; updated on arrival, in stream order). */
  readonly state: Readonly<CustomerState>;
  /** The partition's watermark: items before it are final. */
  readonly watermark: number;
  /** Another rule of this rule's arbitration group already fired on the current event. */
  readonly groupTaken: boolean;
  /** The pattern's memory for this customer, created empty on first use (plain data, checkpointed). */
  memory<T extends object>(): T;
  /** The pattern's memory if it has any. */
  existingMemory<T extends object>(): T | undefined;
  /** An expression of the rule over the current event and profile; undefined when it threw (counted as a rule error). */
  value(fn: Compiled): unknown;
  /** A condition: true/false, or undefined when it threw or gave no boolean (counted as a rule error). */
  test(fn: Compiled): boolean | undefined;
  /**
   * The pattern matched at event time `t`: `when`, cooldown, arbitration, quiet hours and caps
   * decide whether a trigger goes out. `idSuffix` makes the trigger id (`rule:customer:suffix`).
   */
  fire(t: number, idSuffix: string, session: string | undefined): void;
  /** The pending timer of this rule under `key` ('' = the rule's one timer). */
  timer(key?: string): TimerRecord | undefined;
  /** Arms the timer `key` at `due`, or moves a pending one there. `anchor`: the event its firing sees. */
  arm(due: number, options?: { key?: string; anchor?: CxEvent; orderAt?: number }): void;
  /** Cancels the pending timer `key`. */
  cancel(key?: string): void;
}

/** The session of an event, or undefined: an empty session is none (decoding also drops it). */
export function sessionOf(event: CxEvent): string | undefined {
  const s = event.session;
  return typeof s === 'string' && s.length > 0 ? s : undefined;
}
