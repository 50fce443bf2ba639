/**
 * One customer's state and rule decisions as plain data: what `cxstream explain` explains. The
 * partition worker builds it for a live request (engine/runtime/liveExplain.ts), `explain --file`
 * at the end of its replay; engine/cli/explain.ts turns it into text. Worker-safe: imports only
 * the operators.
 */
import type { PartitionProcessor } from '../../operators/partitionProcessor.js';
import { profileOf } from '../../operators/profile.js';
import type { Decision, RuleMemory, RuleSpec } from '../../operators/rules.js';

/** A decision of the rule set's tracer as plain data (what the condition saw, as text). */
export interface TracedDecision extends Omit<Decision, 'seen'> {
  /** `when-false`, `when-error`: the fields the condition names and their values then (`event.score = 4`). */
  values?: string[];
}

/** A pending timer as explain shows it. */
export interface TimerView {
  rule: string;
  /** `absence`, `inactivity`, `cycle`, `deferred` (a trigger held back by quiet hours). */
  kind: string;
  key: string;
  due: number;
  /** Absence: the event that armed it. */
  anchor?: { id: string; type: string; ts: number };
  /** Purchase cycle: the order it was timed from. */
  orderAt?: number;
  /** Deferred: the trigger held back and when it fired. */
  trigger?: { id: string; eventTime: number };
}

/** One customer's state and recent decisions (plain data, JSON-able). */
export interface CustomerView {
  customer: string;
  partition: number;
  /** The customer's zone: their latest event's `tz`, else the default. */
  tz: string;
  /** The partition's watermark: event time up to which everything is final. */
  watermark: number;
  /** The partition's highest event time. */
  maxEventTime: number;
  profile: Record<string, unknown>;
  timers: TimerView[];
  /** Pattern memory per rule (as the patterns keep it). */
  memory: RuleMemory;
  /** Cooldown and once-per-session marks per rule and key. */
  fired: Record<string, Record<string, { at: number; session?: string }>>;
  /** Delivery times per cap group. */
  caps: Record<string, number[]>;
  /** The customer's events still waiting for the ordered lane (within the allowed lateness, or behind a timer). */
  waiting: number;
  decisions: TracedDecision[];
  /** The rules the partition runs. */
  rules: RuleSpec[];
  /** Run-time errors of the rules' expressions in this partition (all its customers). */
  ruleErrors: Array<{ rule: string; count: number; first: string }>;
}

/** Fields a CEL text names as `event.x` / `profile.x`. */
const FIELD = /\b(event|profile)\.([A-Za-z_][A-Za-z0-9_]*)/g;

/** A decision as plain data; for a condition, the values of the fields it names (`when`: its text). */
export function traced(d: Decision, when: string | undefined): TracedDecision {
  const { seen, ...plain } = d;
  if (seen === undefined || when === undefined) return plain;
  const values: string[] = [];
  for (const [, root, field] of when.matchAll(FIELD)) {
    const holder = (root === 'event' ? seen.event : seen.profile) as Record<string, unknown> | undefined;
    const text = `${root}.${field} = ${shown(holder?.[field!])}`;
    if (!values.includes(text) && values.length < 8) values.push(text);
  }
  return { ...plain, values };
}

/** A value as a condition saw it, short. */
function shown(v: unknown): string {
  if (v === undefined || v === null) return 'absent';
  const text =
    typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** How many decisions the engine keeps per customer for live explain (`explain --live` says so). */
export const DECISIONS_PER_CUSTOMER = 20;

/**
 * The recent notable decisions of a partition's customers, kept in the worker for live explain:
 * everything but `when-false` (the common case, on every event a rule looks at) and `armed` (every
 * event moves an inactivity timer). At most `perCustomer` per customer, for the `customers` that
 * had one most recently. Not checkpointed: a restart starts empty.
 */
export class DecisionLog {
  private readonly byCustomer = new Map<string, TracedDecision[]>();

  constructor(
    readonly perCustomer = DECISIONS_PER_CUSTOMER,
    readonly customers = 5000,
  ) {}

  /** The rule set's tracer ({@link RuleSet.onDecision}). */
  readonly record = (d: Decision): void => {
    if (d.outcome === 'when-false' || d.outcome === 'armed') return;
    let list = this.byCustomer.get(d.customer);
    if (list === undefined) {
      if (this.byCustomer.size >= this.customers) {
        const oldest = this.byCustomer.keys().next().value as string;
        this.byCustomer.delete(oldest);
      }
      list = [];
    } else this.byCustomer.delete(d.customer); // re-inserted: the most recent last
    this.byCustomer.set(d.customer, list);
    const { seen: _, ...plain } = d;
    list.push(plain);
    if (list.length > this.perCustomer) list.shift();
  };

  /** Drops the customer's decisions (`forget`). */
  forget(customer: string): void {
    this.byCustomer.delete(customer);
  }

  /** The customer's kept decisions, oldest first. */
  of(customer: string): TracedDecision[] {
    return this.byCustomer.get(customer) ?? [];
  }
}

/** The customer as `processor` holds it, or null when it holds no state for them. */
export function customerView(
  processor: PartitionProcessor,
  customer: string,
  decisions: TracedDecision[],
  defaultTz: string,
): CustomerView | null {
  const entry = processor.customer(customer);
  if (entry === undefined) return null;
  const timers: TimerView[] = [];
  for (const t of Object.values(entry.timers)) {
    if (t.kind === 'publish') continue; // the profile's publication, not a rule's
    const view: TimerView = { rule: t.rule, kind: t.kind, key: t.key, due: t.due };
    if (t.anchor) view.anchor = { id: t.anchor.id, type: t.anchor.type, ts: t.anchor.ts };
    if (t.orderAt !== undefined) view.orderAt = t.orderAt;
    if (t.trigger) view.trigger = { id: t.trigger.id, eventTime: t.trigger.eventTime };
    timers.push(view);
  }
  timers.sort((a, b) => a.due - b.due);
  const state = entry.state;
  return {
    customer,
    partition: processor.partition,
    tz: state.tz ?? defaultTz,
    watermark: processor.currentWatermark,
    maxEventTime: processor.maxEventTime,
    profile: (state.lastSeen === null ? {} : profileOf(state, state.lastSeen)) as unknown as Record<
      string,
      unknown
    >,
    timers,
    // structured copies: the live objects go on changing (and a worker's answer is cloned anyway)
    memory: structuredClone(entry.memory),
    fired: structuredClone(entry.fired),
    caps: structuredClone(entry.caps),
    waiting: entry.pending.length + entry.held.length,
    decisions,
    rules: processor.ruleSet.specs,
    ruleErrors: [...processor.ruleErrors].map(([rule, e]) => ({ rule, count: e.count, first: e.first })),
  };
}
