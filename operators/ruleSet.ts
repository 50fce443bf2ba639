/**
 * A compiled rule set, one per partition worker: runs each rule's pattern (operators/patterns/) on
 * the events and timers the partition hands it, and applies the delivery policy to what fires:
 * `when`, cooldown and once-per-session, arbitration groups, quiet hours and caps. Per-customer
 * state lives in the caller's {@link CustomerScope}; the rule set itself keeps none.
 */
import {
  type CapMemory,
  capFreeAt,
  cooldownBlocks,
  deferredTimerId,
  type FireMarks,
  inQuietHours,
  markFired,
  quietHoursEnd,
  takeCap,
  unmarkFired,
} from './deliveryPolicy.js';
import { maskPii } from './mask.js';
import type { PrivacyPolicy } from './privacy.js';
import { type CustomerState, profileOf } from './profile.js';
import type { CompiledRules } from './ruleCompiler.js';
import {
  type Compiled,
  type CompiledRule,
  type EvalContext,
  type FireMark,
  type Lane,
  type Pattern,
  type RuleContext,
  type TimerRecord,
  timerId,
} from './ruleModel.js';
import type { RuleSpec } from './ruleSpec.js';
import type { TimerQueue } from './timers.js';
import type { CxEvent, Trigger } from './types.js';

/** Per-customer pattern memory: `memory[ruleId]` is what that rule's pattern remembers (plain data). */
export type RuleMemory = Record<string, object>;

/** One customer's state as the rule set needs it (plain data, checkpointed with the customer). */
export interface CustomerScope {
  customer: string;
  state: CustomerState;
  /** Pattern memory per rule. */
  memory: RuleMemory;
  /** Cooldown and once-per-session marks per rule. */
  fired: Record<string, FireMarks>;
  /** Delivery times per cap group. */
  caps: CapMemory;
  timers: Record<string, TimerRecord>;
}

/** Counters of what the delivery policy held back. */
export interface DeliveryCounters {
  droppedByCap: number;
  droppedByQuietHours: number;
  deferred: number;
}

/** The partition-level context of one evaluation (reused, not allocated per event). */
export interface RuleRun {
  queue: TimerQueue;
  /** Current watermark (event time): items before it are final. */
  watermark: number;
  /** `firedAt` of triggers delivered now (wall clock; event time in replays). */
  firedAt: number;
  defaultTz: string;
  triggers: Trigger[];
  counters: DeliveryCounters;
  /** Masks what a trigger carries of the event and profile (payload inputs, profile fields); none: as they are. */
  privacy?: PrivacyPolicy;
}

/** Runtime errors of one rule's expressions (they count as false / no value). */
export interface RuleErrors {
  count: number;
  /** The first error's message. */
  first: string;
}

/**
 * What the rule set decided or did for one rule and customer: the tracer `explain` listens to (see
 * {@link RuleSet.onDecision}). The delivery policy's verdicts on a firing (`fired` ... `cap`), and
 * what happened to a pattern on the way: a timer `armed` (or moved), a timer `cancelled` by an
 * event, a `late` event the ordered lane could not sort in, an expression that failed (`error`).
 */
export interface Decision {
  rule: string;
  customer: string;
  /** Event time of the firing, of the event concerned, or of the timer. */
  t: number;
  /** The trigger id it would have (a timer's: `<rule>:<customer>:t<due>`). */
  id: string;
  outcome:
    | 'fired'
    | 'deferred'
    | 'when-false'
    | 'when-error'
    | 'arbitration'
    | 'cooldown'
    | 'once-per-session'
    | 'no-key'
    | 'quiet-hours-drop'
    | 'cap'
    | 'armed'
    | 'cancelled'
    | 'late'
    | 'error';
  /** `deferred`: when the trigger is delivered (end of quiet hours); `armed`, `cancelled`: the timer's due time. */
  due?: number;
  /** `armed`: the due time of the pending timer it moved. */
  previous?: number;
  /** `cooldown`, `once-per-session`: the firing that holds it back. */
  last?: FireMark;
  /** `cooldown`, `cap`: event time from which the rule may deliver again. */
  until?: number;
  /** `armed`: the event that armed the timer; `cancelled`: the event that cancelled it; `late`: the late event. */
  event?: { id: string; type: string; ts: number };
  /** `late`: the watermark the event arrived behind. */
  watermark?: number;
  /** `error`: the message, and the expression (`when`, `per`, `payload.<name>`, or the pattern's kind). */
  error?: string;
  expression?: string;
  /**
   * `when-false`, `when-error`: what the condition saw (event, profile, now). Reused objects: read
   * them during the call, do not keep them.
   */
  seen?: EvalContext;
}

/** A profile, or a function that builds it (called at most once per evaluation, only if read). */
export type ProfileSource = Record<string, unknown> | (() => Record<string, unknown>);

/** A compiled rule set; build it with `new RuleSet(compileRules(specs))`. */
export class RuleSet {
  readonly specs: RuleSpec[];
  /** Expressions that threw at runtime, per rule id (they count as false). */
  readonly errors = new Map<string, RuleErrors>();
  /** Called with every decision (explain; the engine's worker keeps the recent ones); unset: nothing traced. */
  onDecision: ((d: Decision) => void) | undefined = undefined;
  /**
   * Whether {@link onDecision} also hears the routine decisions, made on most events: a condition
   * false (`when-false`), a timer armed or moved (`armed`). The engine's log of recent decisions
   * turns them off, so tracing costs it only the rarer ones.
   */
  traceRoutine = true;
  private readonly arrival: Lanes;
  private readonly ordered: Lanes;
  private readonly byId = new Map<string, CompiledRule>();
  private readonly groupEpoch: number[];
  private epoch = 0;
  // Reused for every evaluation so that an event that fires nothing allocates nothing here.
  private readonly ctx = new LazyEvalContext();
  private readonly rc: PatternContext;

  constructor(compiled: CompiledRules) {
    this.specs = compiled.specs;
    // Highest priority first (stable: file order on ties), so the first firing rule of a group wins.
    const ordered = compiled.rules
      .map((rule, i) => ({ rule, i }))
      .sort((a, b) => b.rule.priority - a.rule.priority || a.i - b.i)
      .map((x) => x.rule);
    for (const r of ordered) this.byId.set(r.id, r);
    this.arrival = lanes(ordered, 'arrival');
    this.ordered = lanes(ordered, 'ordered');
    this.groupEpoch = new Array<number>(compiled.groups).fill(0);
    this.rc = new PatternContext(this);
    this.minTimerDelay = Math.min(
      ...compiled.rules.map((r) => r.pattern.minDelay ?? Number.POSITIVE_INFINITY),
    );
  }

  /** Whether a rule of this id is in the set (timers of other rules are dropped). */
  /** The pattern of a rule (identity merges combine each rule's memory with it); undefined when unknown. */
  patternOf(ruleId: string): Pattern | undefined {
    return this.byId.get(ruleId)?.pattern;
  }

  has(ruleId: string): boolean {
    return this.byId.has(ruleId);
  }

  /** The least delay between an ordered-lane event and a timer a pattern arms from it (+Infinity: none arms one). */
  readonly minTimerDelay: number;

  /** Whether events of this type go to the ordered lane (a pattern there reads them). */
  wantsOrdered(type: string): boolean {
    return (this.ordered.byType.get(type) ?? this.ordered.anyType).length > 0;
  }

  /**
   * Runs the arrival-lane rules (on-event, crossing) on an event as it arrives, after the profile
   * was updated; triggers go to `run.triggers`. `profile` may be a function that builds it: then
   * called at most once, and only when a condition, payload or trigger reads the profile.
   */
  evaluate(event: CxEvent, profile: ProfileSource, scope: CustomerScope, run: RuleRun): void {
    this.runLane(this.arrival, event, profile, scope, run, 'event');
  }

  /** Runs the ordered-lane patterns on an event, in event-time order once the watermark passed it. */
  evaluateOrdered(event: CxEvent, profile: ProfileSource, scope: CustomerScope, run: RuleRun): void {
    this.runLane(this.ordered, event, profile, scope, run, 'event');
  }

  /** An event that arrived behind the watermark: ordered-lane patterns may cancel or remember (no firing). */
  evaluateLate(event: CxEvent, profile: ProfileSource, scope: CustomerScope, run: RuleRun): void {
    this.runLane(this.ordered, event, profile, scope, run, 'late');
  }

  /** A timer of this customer came due (the watermark passed `record.due`). */
  fireTimer(record: TimerRecord, scope: CustomerScope, run: RuleRun): void {
    const r = this.byId.get(record.rule);
    if (r === undefined) return; // the rule was removed by a reload
    if (record.kind === 'deferred') {
      this.release(r, record, scope, run);
      return;
    }
    const due = record.due;
    const event: CxEvent = record.anchor ?? {
      id: `t${due}`,
      ts: due,
      customer: scope.customer,
      type: 'timer',
      channel: '',
    };
    const ctx = this.ctx;
    ctx.event = event;
    // Built only if read; the customer's state does not change while its timer fires.
    ctx.setProfile(() => profileOf(scope.state, due) as unknown as Record<string, unknown>);
    ctx.now = due;
    try {
      r.pattern.onTimer?.(record, this.rc.bind(r, scope, run, 0));
    } finally {
      ctx.event = undefined;
      ctx.setProfile(undefined);
    }
  }

  private runLane(
    lane: Lanes,
    event: CxEvent,
    profile: ProfileSource,
    scope: CustomerScope,
    run: RuleRun,
    as: 'event' | 'late',
  ): void {
    const rules = lane.byType.get(event.type) ?? lane.anyType;
    if (rules.length === 0) return;
    const epoch = ++this.epoch;
    const ctx = this.ctx;
    ctx.event = event;
    ctx.setProfile(profile);
    ctx.now = event.ts;
    try {
      for (const r of rules) {
        const rc = this.rc.bind(r, scope, run, epoch);
        if (as === 'event') r.pattern.onEvent(event, rc);
        else {
          r.pattern.onLateEvent?.(event, rc);
          if (this.onDecision !== undefined)
            this.trace(r, scope, 'late', event.ts, event.id, { watermark: run.watermark });
        }
      }
    } finally {
      ctx.event = undefined;
      ctx.setProfile(undefined);
    }
  }

  /** Whether another rule of `r`'s group fired on the current event. */
  groupTaken(r: CompiledRule, epoch: number): boolean {
    return epoch !== 0 && r.group >= 0 && this.groupEpoch[r.group] === epoch;
  }

  /**
   * The pattern of `r` matched at event time `t` (ctx holds event/profile/now): group, `when`,
   * `per`, cooldown, quiet hours, cap. A trigger that goes out, now or deferred, marks the
   * cooldown and wins its group; one the cap or quiet hours drop uses up nothing.
   */
  attempt(
    r: CompiledRule,
    scope: CustomerScope,
    run: RuleRun,
    epoch: number,
    t: number,
    session: string | undefined,
    idSuffix: string,
  ): void {
    const id = `${r.id}:${scope.customer}:${idSuffix}`;
    const decide = (outcome: Decision['outcome'], more?: Partial<Decision>) =>
      this.onDecision?.({ rule: r.id, customer: scope.customer, t, id, outcome, ...more });
    if (this.groupTaken(r, epoch)) {
      decide('arbitration');
      return;
    }
    if (r.when !== undefined) {
      const ok = this.test(r, r.when);
      if (ok !== true) {
        if (ok === undefined || this.traceRoutine)
          decide(ok === undefined ? 'when-error' : 'when-false', { seen: this.ctx });
        return;
      }
    }
    let key = '';
    if (r.per !== undefined) {
      const k = this.value(r, r.per);
      if (k === undefined) {
        decide('no-key');
        return;
      }
      key = typeof k === 'string' ? k : String(k);
    }
    if (cooldownBlocks(r, scope.fired[r.id], key, t, session)) {
      if (this.onDecision !== undefined) {
        const last = scope.fired[r.id]![key]!;
        if (r.oncePerSession && session !== undefined) decide('once-per-session', { last });
        else decide('cooldown', { last, until: last.at + r.cooldownMs });
      }
      return;
    }
    const trigger = this.trigger(r, id, scope.customer, t, run.firedAt, run.privacy);
    if (r.quiet !== undefined) {
      // Customer-local time: the event's zone, else the customer's last known one, else the default.
      const tz = this.ctx.event?.tz ?? scope.state.tz ?? run.defaultTz;
      if (inQuietHours(r.quiet, t, tz, run.defaultTz)) {
        if (r.quiet.drop) {
          run.counters.droppedByQuietHours++;
          decide('quiet-hours-drop');
          return;
        }
        const due = quietHoursEnd(r.quiet, t, tz, run.defaultTz);
        const mark = this.mark(r, scope, key, t, session, epoch);
        run.counters.deferred++;
        run.queue.arm(scope.timers, scope.customer, deferredTimerId(t, r.priority, r.id, id), {
          kind: 'deferred',
          rule: r.id,
          key,
          due,
          queuedAt: due,
          trigger,
          mark,
        });
        decide('deferred', { due });
        return;
      }
    }
    if (r.cap !== undefined && !takeCap(r.cap, scope.caps, t)) {
      run.counters.droppedByCap++;
      if (this.onDecision !== undefined) decide('cap', { until: capFreeAt(r.cap, scope.caps, t) });
      return;
    }
    this.mark(r, scope, key, t, session, epoch);
    run.triggers.push(trigger);
    decide('fired');
  }

  /** Records a firing that goes out: cooldown / session mark, and the group's winner on this event. */
  private mark(
    r: CompiledRule,
    scope: CustomerScope,
    key: string,
    t: number,
    session: string | undefined,
    epoch: number,
  ): TimerRecord['mark'] {
    if (epoch !== 0 && r.group >= 0) this.groupEpoch[r.group] = epoch;
    if (r.cooldownMs === 0 && !r.oncePerSession) return undefined;
    const { marks, set, previous } = markFired(r, scope.fired[r.id], key, t, session);
    scope.fired[r.id] = marks;
    return previous === undefined ? { key, set } : { key, set, previous };
  }

  /** A trigger deferred by quiet hours is due: the cap decides now; dropped, it gives its cooldown back. */
  private release(r: CompiledRule, record: TimerRecord, scope: CustomerScope, run: RuleRun): void {
    const t = record.trigger!;
    if (r.cap !== undefined && !takeCap(r.cap, scope.caps, record.due)) {
      run.counters.droppedByCap++;
      const mark = record.mark;
      if (mark !== undefined) unmarkFired(scope.fired[r.id], mark.key, mark.set, mark.previous);
      this.onDecision?.({
        rule: r.id,
        customer: scope.customer,
        t: record.due,
        id: t.id,
        outcome: 'cap',
        until: capFreeAt(r.cap, scope.caps, record.due),
      });
      return;
    }
    t.firedAt = run.firedAt;
    run.triggers.push(t);
    this.onDecision?.({ rule: r.id, customer: scope.customer, t: record.due, id: t.id, outcome: 'fired' });
  }

  /** Condition result: true/false, or undefined when it threw or was not a boolean (counted in `errors`). */
  test(r: CompiledRule, fn: Compiled): boolean | undefined {
    const v = this.value(r, fn);
    if (v === true || v === false) return v;
    if (v !== undefined) this.noteError(r, `gave ${typeof v}, not a boolean`, fn);
    return undefined;
  }

  /** Expression value, or undefined when it threw (counted in `errors`). */
  value(r: CompiledRule, fn: Compiled): unknown {
    try {
      return fn(this.ctx);
    } catch (e) {
      this.noteError(r, (e as Error)?.message?.split('\n')[0] ?? String(e), fn);
      return undefined;
    }
  }

  /**
   * Counts an error of rule `r`; the first message is kept for the log line, masked as free text:
   * CEL's messages may quote the value (`Invalid duration string: 13812345678`).
   */
  private noteError(r: CompiledRule, message: string, fn: Compiled): void {
    const e = this.errors.get(r.id);
    if (e === undefined) this.errors.set(r.id, { count: 1, first: maskPii(message) });
    else e.count++;
    const event = this.ctx.event;
    if (this.onDecision === undefined || event === undefined) return;
    const payload = r.payload.find(([, f]) => f === fn);
    this.onDecision({
      rule: r.id,
      customer: event.customer,
      t: this.ctx.now,
      id: `${r.id}:${event.customer}:${event.type === 'timer' ? `t${event.ts}` : event.id}`,
      outcome: 'error',
      error: message,
      expression:
        fn === r.when ? 'when' : fn === r.per ? 'per' : payload ? `payload.${payload[0]}` : r.pattern.kind,
    });
  }

  /** Traces what a pattern did to a timer or with a late event (explain); nothing when no one listens. */
  trace(
    r: CompiledRule,
    scope: CustomerScope,
    outcome: 'armed' | 'cancelled' | 'late',
    t: number,
    id: string,
    more: Partial<Decision>,
  ): void {
    const event = this.ctx.event;
    this.onDecision?.({
      rule: r.id,
      customer: scope.customer,
      t,
      id: `${r.id}:${scope.customer}:${id}`,
      outcome,
      ...(event !== undefined && { event: { id: event.id, type: event.type, ts: event.ts } }),
      ...more,
    });
  }

  private trigger(
    r: CompiledRule,
    id: string,
    customer: string,
    eventTime: number,
    firedAt: number,
    privacy: PrivacyPolicy | undefined,
  ): Trigger {
    const ctx = this.ctx;
    const seen = ctx.profile;
    const profile = privacy === undefined || seen === undefined ? (seen ?? {}) : privacy.profile(seen);
    const payload: Record<string, unknown> = {};
    const event = ctx.event;
    // Payload expressions read the event and profile as they may leave the engine; conditions read
    // them as sent (operators/privacy.ts).
    const masked = privacy === undefined || event === undefined ? event : privacy.payloadEvent(event);
    if (profile !== seen && seen !== undefined) ctx.setProfile(profile);
    try {
      for (const [name, fn] of r.payload) {
        const unmasked = event !== undefined && privacy?.unmaskedIn(r.subject, name) === true;
        ctx.event = unmasked ? privacy!.payloadEvent(event!, name) : masked;
        const v = this.value(r, fn);
        payload[name] = v === undefined ? null : toPlain(v);
      }
    } finally {
      ctx.event = event;
      ctx.setProfile(seen);
    }
    const snapshot: Record<string, unknown> = {};
    for (const field of r.profile) {
      const v = profile[field];
      snapshot[field] = v === undefined ? null : typeof v === 'object' && v !== null ? structuredClone(v) : v;
    }
    const rfm = profile.rfm as { score?: unknown } | undefined;
    const score = typeof rfm?.score === 'number' && Number.isFinite(rfm.score) ? rfm.score : 0;
    return {
      id,
      rule: r.id,
      customer,
      firedAt,
      eventTime,
      reason: r.reason,
      // Rounded so that 90 + 0.1 * 3 does not reach dialers as 90.30000000000001.
      priority: Math.round((r.priority + score) * 1e6) / 1e6,
      payload,
      profile: snapshot,
      subject: r.subject,
    };
  }
}

/** The rules of one lane by event type (highest priority first). */
interface Lanes {
  byType: Map<string, CompiledRule[]>;
  /** Rules of this lane for a type no rule names: those that read every type. */
  anyType: CompiledRule[];
}

function lanes(ordered: CompiledRule[], lane: Lane): Lanes {
  const mine = ordered.filter((r) => r.pattern.lane === lane);
  const anyType = mine.filter((r) => r.pattern.types === undefined);
  const byType = new Map<string, CompiledRule[]>();
  for (const r of mine)
    for (const type of r.pattern.types ?? [])
      if (!byType.has(type))
        byType.set(
          type,
          mine.filter((x) => x.pattern.types === undefined || x.pattern.types.includes(type)),
        );
  return { byType, anyType };
}

/** The {@link RuleContext} the rule set hands a pattern: one object, re-bound per rule and customer. */
class PatternContext implements RuleContext {
  private r!: CompiledRule;
  private scope!: CustomerScope;
  private run!: RuleRun;
  private epoch = 0;

  constructor(private readonly set: RuleSet) {}

  bind(r: CompiledRule, scope: CustomerScope, run: RuleRun, epoch: number): this {
    this.r = r;
    this.scope = scope;
    this.run = run;
    this.epoch = epoch;
    return this;
  }

  get customer(): string {
    return this.scope.customer;
  }

  get state(): Readonly<CustomerState> {
    return this.scope.state;
  }

  get watermark(): number {
    return this.run.watermark;
  }

  get groupTaken(): boolean {
    return this.set.groupTaken(this.r, this.epoch);
  }

  memory<T extends object>(): T {
    let m = this.scope.memory[this.r.id];
    if (m === undefined) {
      m = {};
      this.scope.memory[this.r.id] = m;
    }
    return m as T;
  }

  existingMemory<T extends object>(): T | undefined {
    return this.scope.memory[this.r.id] as T | undefined;
  }

  value(fn: Compiled): unknown {
    return this.set.value(this.r, fn);
  }

  test(fn: Compiled): boolean | undefined {
    return this.set.test(this.r, fn);
  }

  fire(t: number, idSuffix: string, session: string | undefined): void {
    this.set.attempt(this.r, this.scope, this.run, this.epoch, t, session, idSuffix);
  }

  timer(key = ''): TimerRecord | undefined {
    return this.scope.timers[timerId(this.r.id, key)];
  }

  arm(due: number, options: { key?: string; anchor?: CxEvent; orderAt?: number } = {}): void {
    const key = options.key ?? '';
    if (this.set.onDecision !== undefined && this.set.traceRoutine) {
      const previous = this.scope.timers[timerId(this.r.id, key)]?.due;
      this.set.trace(this.r, this.scope, 'armed', due, `t${due}`, {
        due,
        ...(previous !== undefined && { previous }),
      });
    }
    const record: TimerRecord = { kind: this.r.pattern.kind, rule: this.r.id, key, due, queuedAt: due };
    if (options.anchor !== undefined) record.anchor = options.anchor;
    if (options.orderAt !== undefined) record.orderAt = options.orderAt;
    this.run.queue.arm(this.scope.timers, this.scope.customer, timerId(this.r.id, key), record);
  }

  cancel(key = ''): void {
    const id = timerId(this.r.id, key);
    const due = this.scope.timers[id]?.due;
    if (this.set.onDecision !== undefined && due !== undefined)
      this.set.trace(this.r, this.scope, 'cancelled', due, `t${due}`, { due });
    delete this.scope.timers[id];
  }
}

/**
 * What CEL expressions see, reused across evaluations. `profile` is built on first read: cel-js reads
 * the variables of the context by name, so a getter defers the work until an expression needs it.
 */
class LazyEvalContext implements EvalContext {
  event: CxEvent | undefined = undefined;
  now = 0;
  #profile: Record<string, unknown> | undefined = undefined;
  #build: (() => Record<string, unknown>) | undefined = undefined;

  get profile(): Record<string, unknown> | undefined {
    if (this.#build !== undefined) {
      this.#profile = this.#build();
      this.#build = undefined;
    }
    return this.#profile;
  }

  setProfile(source: ProfileSource | undefined): void {
    if (typeof source === 'function') {
      this.#profile = undefined;
      this.#build = source;
    } else {
      this.#profile = source;
      this.#build = undefined;
    }
  }
}

/** CEL values → JSON/msgpack-friendly plain values (CEL ints are bigint). */
function toPlain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Date) return v.getTime();
  if (v instanceof Uint8Array) return v;
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) o[String(k)] = toPlain(x);
    return o;
  }
  if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = toPlain(x);
    return o;
  }
  return String(v);
}
