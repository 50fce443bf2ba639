/**
 * A compiled rule set, one per partition worker: evaluates the rules listening to an event's type
 * (patterns update their per-customer memory, arm or cancel timers, or fire), fires due timers, and
 * applies the delivery policy. Per-customer state lives in the caller's {@link CustomerScope}.
 */
import {
  cooldownBlocks,
  type FireMarks,
  inQuietHours,
  markFired,
  quietHoursEnd,
  takeCap,
} from './deliveryPolicy.js';
import { countFires, pushWindow, type WindowLists, windowAdd } from './patternWindows.js';
import { type CustomerState, profileOf } from './profile.js';
import type { Compiled, CompiledRule, EvalContext } from './ruleCompiler.js';
import type { RuleSpec } from './ruleSpec.js';
import { type TimerQueue, type TimerRecord, timerId } from './timers.js';
import type { CxEvent, Trigger } from './types.js';

/**
 * Per-customer rule state: `memory[ruleId]` is what that rule remembers, `memory.$cap` the cap
 * deliveries. Plain data (msgpack-able), checkpointed with the customer.
 */
export type RuleMemory = Record<string, unknown>;

/** What one rule remembers about one customer (each pattern uses its own fields). */
interface RuleState {
  /** Last observed value of `crosses` (absent = false). */
  c?: boolean;
  /** Last firing per cooldown key. */
  f?: FireMarks;
  /** absence: event time of the latest `after` event. */
  a?: number;
  /** absence: times of recent `missing` events (for `after` events that arrive out of order). */
  b?: number[];
  /** sequence: times of recent `first` events. */
  s?: number[];
  /** count: recent `of` / `unless` times per key, and anchor times. */
  x?: WindowLists;
  u?: WindowLists;
  an?: number[];
  /** streak: current length. */
  k?: number;
  /** purchase cycle: lastOrderAt of the cycle that already fired. */
  p?: number;
}

/** One customer's state as the rule set needs it. */
export interface CustomerScope {
  customer: string;
  state: CustomerState;
  memory: RuleMemory;
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
  /** Current watermark (event time). */
  watermark: number;
  /** The event being evaluated arrived behind the watermark. */
  late: boolean;
  /** `firedAt` of triggers delivered now (wall clock; event time in replays). */
  firedAt: number;
  defaultTz: string;
  triggers: Trigger[];
  counters: DeliveryCounters;
}

/** Longest list a pattern keeps per key; beyond it the oldest entries go. */
const MAX_WINDOW_ENTRIES = 1000;

/** A compiled rule set; build it with `compileRules`. */
export class RuleSet {
  /** Conditions that threw at runtime, per rule id (they count as false). */
  readonly errors = new Map<string, number>();
  private readonly byType = new Map<string, CompiledRule[]>();
  private readonly anyType: CompiledRule[];
  private readonly byId = new Map<string, CompiledRule>();
  private readonly groupEpoch: number[];
  private epoch = 0;
  // Reused for every evaluation so that an event that fires nothing allocates nothing here.
  private readonly ctx = new LazyEvalContext();

  /** Use `compileRules`. */
  constructor(
    readonly specs: RuleSpec[],
    rules: CompiledRule[],
    groupCount: number,
  ) {
    // Highest priority first (stable: file order on ties), so the first firing rule of a group wins.
    const ordered = rules
      .map((rule, i) => ({ rule, i }))
      .sort((a, b) => b.rule.priority - a.rule.priority || a.i - b.i)
      .map((x) => x.rule);
    this.anyType = ordered.filter((r) => r.types === undefined);
    for (const r of ordered) {
      this.byId.set(r.id, r);
      for (const type of r.types ?? []) {
        if (!this.byType.has(type))
          this.byType.set(
            type,
            ordered.filter((x) => x.types === undefined || x.types.includes(type)),
          );
      }
    }
    this.groupEpoch = new Array<number>(groupCount).fill(0);
  }

  /** Whether a rule of this id is in the set (timers of other rules are dropped). */
  has(ruleId: string): boolean {
    return this.byId.has(ruleId);
  }

  /**
   * Evaluates the rules for one event after the profile was updated; triggers go to `run.triggers`.
   * `profile` may be a function that builds it: it is then called at most once, and only when a
   * condition, payload or trigger reads the profile (not for rules that read only `event`).
   */
  evaluate(event: CxEvent, profile: ProfileSource, scope: CustomerScope, run: RuleRun): void {
    const rules = this.byType.get(event.type) ?? this.anyType;
    if (rules.length === 0) return;
    const epoch = ++this.epoch;
    const ctx = this.ctx;
    ctx.event = event;
    ctx.setProfile(profile);
    ctx.now = event.ts;
    try {
      for (const r of rules) {
        switch (r.kind) {
          case 'event':
            this.onEvent(r, event, scope, run, epoch);
            break;
          case 'absence':
            this.onAbsence(r, event, scope, run);
            break;
          case 'sequence':
            this.onSequence(r, event, scope, run, epoch);
            break;
          case 'count':
            this.onCount(r, event, scope, run, epoch);
            break;
          case 'streak':
            this.onStreak(r, event, scope, run, epoch);
            break;
          case 'inactivity':
            this.onActivity(r, event, scope, run);
            break;
          case 'cycle':
            this.onOrder(r, scope, run);
            break;
        }
      }
    } finally {
      ctx.event = undefined;
      ctx.setProfile(undefined);
    }
  }

  /** A timer of this customer came due (the watermark reached `record.due`). */
  fireTimer(record: TimerRecord, scope: CustomerScope, run: RuleRun): void {
    const r = this.byId.get(record.rule);
    if (r === undefined) return; // the rule was removed by a reload
    const due = record.due;
    if (record.kind === 'deferred') {
      const t = record.trigger!;
      t.firedAt = run.firedAt;
      this.deliverNow(r, t, scope, run, due);
      return;
    }
    if (record.kind === 'cycle') stateOf(scope.memory, r).p = scope.state.lastOrderAt ?? undefined;
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
      this.attempt(r, scope, run, 0, due, undefined, `t${due}`);
    } finally {
      ctx.event = undefined;
      ctx.setProfile(undefined);
    }
  }

  private onEvent(r: CompiledRule, event: CxEvent, scope: CustomerScope, run: RuleRun, epoch: number): void {
    const groupWon = r.group >= 0 && this.groupEpoch[r.group] === epoch;
    if (groupWon && r.crosses === undefined) return;
    if (r.crosses === undefined) {
      this.attempt(r, scope, run, epoch, event.ts, sessionOf(event), event.id);
      return;
    }
    const v = this.test(r, r.crosses);
    if (v === undefined) return; // an error leaves the crossing state as it was
    const state = scope.memory[r.id] as RuleState | undefined;
    const prev = state?.c === true;
    if (!v) {
      if (prev) state!.c = false;
      return;
    }
    // A loser keeps its crossing pending: it may still fire on a later event.
    if (prev || groupWon) return;
    // The edge is used up whether or not it fires: `crosses` fires on the crossing itself.
    stateOf(scope.memory, r).c = true;
    this.attempt(r, scope, run, epoch, event.ts, sessionOf(event), event.id);
  }

  /** absence: `after` arms (restarts) the timer, `missing` cancels it. */
  private onAbsence(r: CompiledRule, event: CxEvent, scope: CustomerScope, run: RuleRun): void {
    const id = timerId(r.id, '');
    const ts = event.ts;
    const horizon = run.watermark - r.windowMs;
    if (r.second.has(event.type)) {
      const pending = scope.timers[id];
      if (pending?.kind === 'absence' && pending.anchor!.ts <= ts && ts <= pending.due)
        delete scope.timers[id];
      // Remembered for an `after` that arrives later with an earlier time.
      if (ts >= horizon) {
        const st = stateOf(scope.memory, r);
        st.b = pushWindow(st.b, ts, horizon, MAX_WINDOW_ENTRIES);
      }
    }
    if (r.first.has(event.type)) {
      const st = stateOf(scope.memory, r);
      if (st.a !== undefined && ts <= st.a) return; // an older `after` does not restart a newer one
      st.a = ts;
      const due = ts + r.windowMs;
      let answered = false;
      if (st.b !== undefined) for (const b of st.b) if (b >= ts && b <= due) answered = true;
      if (due > run.watermark && !answered)
        run.queue.arm(scope.timers, scope.customer, id, {
          kind: 'absence',
          rule: r.id,
          key: '',
          due,
          h: due,
          anchor: event,
        });
      else delete scope.timers[id];
    }
  }

  /** sequence: fires on a `followedBy` event with a `first` event within `within` before it. */
  private onSequence(
    r: CompiledRule,
    event: CxEvent,
    scope: CustomerScope,
    run: RuleRun,
    epoch: number,
  ): void {
    const ts = event.ts;
    const horizon = run.watermark - r.windowMs;
    if (r.second.has(event.type) && !run.late) {
      const firsts = (scope.memory[r.id] as RuleState | undefined)?.s;
      let found = false;
      if (firsts !== undefined) for (const a of firsts) if (a <= ts && a >= ts - r.windowMs) found = true;
      if (found) this.attempt(r, scope, run, epoch, ts, sessionOf(event), event.id);
    }
    if (r.first.has(event.type) && ts >= horizon) {
      const st = stateOf(scope.memory, r);
      st.s = pushWindow(st.s, ts, horizon, MAX_WINDOW_ENTRIES);
    }
  }

  /** count: N `of` events within the window (sliding or after an anchor), per key, unless vetoed. */
  private onCount(r: CompiledRule, event: CxEvent, scope: CustomerScope, run: RuleRun, epoch: number): void {
    const ts = event.ts;
    const type = event.type;
    const horizon = run.watermark - r.windowMs;
    if (r.anchor.has(type) && ts >= horizon) {
      const st = stateOf(scope.memory, r);
      st.an = pushWindow(st.an, ts, horizon, MAX_WINDOW_ENTRIES);
    }
    const isOf = r.first.has(type);
    const isUnless = r.second.has(type);
    if (!isOf && !isUnless) return;
    let key = '';
    if (r.by !== undefined) {
      const k = this.value(r, r.by);
      if (k === undefined || k === null || k === '') return;
      key = typeof k === 'string' ? k : String(k);
    }
    if (ts <= horizon) return; // already out of every window that can still fire
    const st = stateOf(scope.memory, r);
    if (isUnless) st.u = windowAdd(st.u, key, ts, horizon, MAX_WINDOW_ENTRIES);
    if (!isOf) return;
    st.x = windowAdd(st.x, key, ts, horizon, MAX_WINDOW_ENTRIES);
    if (run.late) return;
    if (countFires(st.x, st.u, st.an, key, ts, r.windowMs, r.n, r.anchor.size > 0))
      this.attempt(r, scope, run, epoch, ts, sessionOf(event), event.id);
  }

  /** streak: consecutive `of` events satisfying `where` (stream order); fires when it reaches `count`. */
  private onStreak(r: CompiledRule, event: CxEvent, scope: CustomerScope, run: RuleRun, epoch: number): void {
    if (r.second.has(event.type)) {
      const st = scope.memory[r.id] as RuleState | undefined;
      if (st?.k) st.k = 0;
    }
    if (!r.first.has(event.type)) return;
    const ok = this.test(r, r.where!);
    if (ok === undefined) return;
    const st = stateOf(scope.memory, r);
    if (!ok) {
      st.k = 0;
      return;
    }
    st.k = (st.k ?? 0) + 1;
    if (st.k === r.n && !run.late) this.attempt(r, scope, run, epoch, event.ts, sessionOf(event), event.id);
  }

  /** inactivity: every event that moves lastSeen forward restarts the timer at lastSeen + for. */
  private onActivity(r: CompiledRule, event: CxEvent, scope: CustomerScope, run: RuleRun): void {
    // Older than the newest event: no new activity. Behind the watermark: the spell may have fired
    // already, and a late event must not make it fire a second time.
    if (scope.state.lastSeen !== event.ts || run.late) return;
    const due = event.ts + r.windowMs;
    if (due <= run.watermark) return;
    const id = timerId(r.id, '');
    if (scope.timers[id] !== undefined) run.queue.restart(scope.timers, scope.customer, id, due);
    else
      run.queue.arm(scope.timers, scope.customer, id, {
        kind: 'inactivity',
        rule: r.id,
        key: '',
        due,
        h: due,
      });
  }

  /** purchase cycle: each order re-times the reminder at lastOrderAt + fraction × mean cycle. */
  private onOrder(r: CompiledRule, scope: CustomerScope, run: RuleRun): void {
    const s = scope.state;
    if (s.orders < 2 || s.lastOrderAt === null || s.firstOrderAt === null) return;
    const st = scope.memory[r.id] as RuleState | undefined;
    if (st?.p === s.lastOrderAt) return; // this cycle already had its reminder
    const due = s.lastOrderAt + Math.round((r.fraction * (s.lastOrderAt - s.firstOrderAt)) / (s.orders - 1));
    const id = timerId(r.id, '');
    if (due <= run.watermark) return;
    if (scope.timers[id] !== undefined) run.queue.restart(scope.timers, scope.customer, id, due);
    else run.queue.arm(scope.timers, scope.customer, id, { kind: 'cycle', rule: r.id, key: '', due, h: due });
  }

  /**
   * The rule would fire at event time `t` (ctx holds event/profile/now): group, `when`, `per`,
   * cooldown; then marks it and hands the trigger to quiet hours and caps. `epoch` 0 = no arbitration.
   */
  private attempt(
    r: CompiledRule,
    scope: CustomerScope,
    run: RuleRun,
    epoch: number,
    t: number,
    session: string | undefined,
    idSuffix: string,
  ): void {
    if (epoch !== 0 && r.group >= 0 && this.groupEpoch[r.group] === epoch) return;
    if (r.when !== undefined && this.test(r, r.when) !== true) return;
    let key = '';
    if (r.per !== undefined) {
      const k = this.value(r, r.per);
      if (k === undefined) return;
      key = typeof k === 'string' ? k : String(k);
    }
    let state = scope.memory[r.id] as RuleState | undefined;
    if (cooldownBlocks(r, state?.f, key, t, session)) return;
    if (r.cooldownMs > 0 || r.oncePerSession) {
      state ??= stateOf(scope.memory, r);
      state.f = markFired(r, state.f, key, t, session);
    }
    if (epoch !== 0 && r.group >= 0) this.groupEpoch[r.group] = epoch;
    const trigger = this.trigger(r, `${r.id}:${scope.customer}:${idSuffix}`, scope.customer, t, run.firedAt);
    if (r.quiet !== undefined) {
      const tz = this.ctx.event?.tz ?? scope.state.tz ?? run.defaultTz;
      if (inQuietHours(r.quiet, t, tz, run.defaultTz)) {
        if (r.quiet.drop) {
          run.counters.droppedByQuietHours++;
          return;
        }
        const due = quietHoursEnd(r.quiet, t, tz, run.defaultTz);
        run.counters.deferred++;
        run.queue.arm(scope.timers, scope.customer, timerId(r.id, trigger.id), {
          kind: 'deferred',
          rule: r.id,
          key: trigger.id,
          due,
          h: due,
          trigger,
        });
        return;
      }
    }
    this.deliverNow(r, trigger, scope, run, t);
  }

  private deliverNow(r: CompiledRule, trigger: Trigger, scope: CustomerScope, run: RuleRun, t: number): void {
    if (r.cap !== undefined && !takeCap(r.cap, scope.memory, t)) {
      run.counters.droppedByCap++;
      return;
    }
    run.triggers.push(trigger);
  }

  /** Condition result: true/false, or undefined when it threw or was not a boolean (counted in `errors`). */
  private test(r: CompiledRule, fn: Compiled): boolean | undefined {
    const v = this.value(r, fn);
    if (v === true || v === false) return v;
    if (v !== undefined) this.errors.set(r.id, (this.errors.get(r.id) ?? 0) + 1);
    return undefined;
  }

  /** Expression value, or undefined when it threw (counted in `errors`). */
  private value(r: CompiledRule, fn: Compiled): unknown {
    try {
      return fn(this.ctx);
    } catch {
      this.errors.set(r.id, (this.errors.get(r.id) ?? 0) + 1);
      return undefined;
    }
  }

  private trigger(
    r: CompiledRule,
    id: string,
    customer: string,
    eventTime: number,
    firedAt: number,
  ): Trigger {
    const profile = this.ctx.profile ?? {};
    const payload: Record<string, unknown> = {};
    for (const [name, fn] of r.payload) {
      const v = this.value(r, fn);
      payload[name] = v === undefined ? null : toPlain(v);
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

/** A profile, or a function that builds it (called at most once per evaluation, only if read). */
export type ProfileSource = Record<string, unknown> | (() => Record<string, unknown>);

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

/** The rule's state object for this customer, created on first use. */
function stateOf(memory: RuleMemory, r: CompiledRule): RuleState {
  let st = memory[r.id] as RuleState | undefined;
  if (st === undefined) {
    st = {};
    memory[r.id] = st;
  }
  return st;
}

function sessionOf(event: CxEvent): string | undefined {
  const s = event.session;
  return typeof s === 'string' && s.length > 0 ? s : undefined;
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
