/**
 * Rules as data: YAML-shaped specs with CEL conditions, compiled once into a RuleSet that a
 * partition worker evaluates per event. The format and its semantics are in docs/RULES.md.
 */
import { Environment } from '@marcbachmann/cel-js';
import { parseDuration } from './duration.js';
import type { CxEvent, Trigger } from './types.js';

/** One rule as written in YAML: plain data, so it can be sent to worker threads. */
export interface RuleSpec {
  /** `[a-z0-9_]+`; the output subject defaults to `cx.triggers.<id>`. */
  id: string;
  /** Human text; becomes the trigger `reason`. @default the id */
  description?: string;
  /** Trigger priority = priority + `profile.rfm.score`; also decides arbitration. @default 0 */
  priority?: number;
  /** Event types the rule looks at (its index); omitted = all types. */
  on?: string[];
  /** CEL condition over `event`, `profile` and `now`. @default true */
  when?: string;
  /** CEL condition: fires when it becomes true after having been false for this customer. */
  crosses?: string;
  /** Duration ("30s" "10m" "24h" "7d"): no refire for this customer (and `per` key) within it, in event time. */
  cooldown?: string;
  /** CEL giving a cooldown key (e.g. `event.sku` → the cooldown applies per sku). */
  per?: string;
  /** At most once per session id; events without a session fall back to `cooldown` (30m when unset). */
  oncePer?: 'session';
  /** Arbitration group: on one event only the highest-priority firing rule of a group fires. */
  group?: string;
  /** Output subject. @default `cx.triggers.<id>` */
  subject?: string;
  /** Payload field name → CEL expression. */
  payload?: Record<string, string>;
  /** Profile field names copied into the trigger's `profile`. */
  profile?: string[];
}

/**
 * Per-customer rule state, owned by the RuleSet: `memory[ruleId]` is a {@link RuleState}.
 * Plain data (msgpack-able), so it is checkpointed with the customer.
 */
export type RuleMemory = Record<string, unknown>;

/** What one rule remembers about one customer. */
interface RuleState {
  /** Last observed value of `crosses` (absent = false). */
  c?: boolean;
  /** Last firing per cooldown key ('' without `per`). */
  f?: Record<string, FireMark>;
}

/** When a rule last fired for a key, and in which session. */
interface FireMark {
  /** Event time of the firing event. */
  t: number;
  /** Session id of the firing event, when it had one. */
  s?: string;
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
  constructor(readonly issues: RuleCompileIssue[]) {
    const first = issues[0] ?? { index: -1, path: [], message: 'no issue' };
    super(issues.map(formatIssue).join('\n'));
    this.index = first.index;
    this.path = first.path;
  }
}

/** True for a {@link RuleCompileError} (also across module copies). */
export function isRuleCompileError(e: unknown): e is RuleCompileError {
  return e instanceof Error && e.name === 'RuleCompileError';
}

/** The window within which `oncePer: session` blocks events that have no session, unless `cooldown` is set. */
export const SESSIONLESS_FALLBACK_MS = 30 * 60_000;

// Keyed once-per-session marks are dropped after this long: sessions are assumed shorter.
const SESSION_MARK_RETAIN_MS = 24 * 3_600_000;

const RULE_KEYS = new Set([
  'id',
  'description',
  'priority',
  'on',
  'when',
  'crosses',
  'cooldown',
  'per',
  'oncePer',
  'group',
  'subject',
  'payload',
  'profile',
]);
const ID_PATTERN = /^[a-z0-9_]+$/;
const SUBJECT_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Compiled = (ctx: EvalContext) => unknown;

interface EvalContext {
  event: CxEvent | undefined;
  profile: Record<string, unknown> | undefined;
  now: number;
}

interface CompiledRule {
  id: string;
  /** Event types the rule listens to; undefined = all. */
  on: string[] | undefined;
  reason: string;
  priority: number;
  subject: string;
  when: Compiled | undefined;
  crosses: Compiled | undefined;
  per: Compiled | undefined;
  /** Cooldown window; 0 = none. */
  cooldownMs: number;
  oncePerSession: boolean;
  /** How long a keyed fire mark is kept once another key fires. */
  retainMs: number;
  /** Index into RuleSet's group epochs; -1 = no group. */
  group: number;
  payload: [string, Compiled][];
  profile: string[];
}

// Declared types let CEL reject unknown variables and impossible operations when a rule is loaded.
const celEnv = new Environment()
  .registerVariable('event', 'map')
  .registerVariable('profile', 'map')
  .registerVariable('now', 'double');

/** Compiles rule specs (CEL parse and type check, durations, ids); throws RuleCompileError listing every issue. */
export function compileRules(specs: RuleSpec[]): RuleSet {
  const issues: RuleCompileIssue[] = [];
  const compiled: CompiledRule[] = [];
  const groups = new Map<string, number>();
  const seen = new Set<string>();
  specs.forEach((spec, index) => {
    const rule = compileRule(spec, index, issues, groups);
    const id = (spec as Partial<RuleSpec> | null)?.id;
    if (typeof id === 'string' && seen.has(id))
      issues.push({ index, path: ['id'], message: `duplicate rule id "${id}"` });
    if (typeof id === 'string') seen.add(id);
    if (rule) compiled.push(rule);
  });
  if (issues.length > 0) throw new RuleCompileError(issues);
  return new RuleSet(specs, compiled, groups.size);
}

/** A compiled rule set, one per worker; per-customer state lives in the caller's {@link RuleMemory}. */
export class RuleSet {
  /** Conditions that threw at runtime, per rule id (they count as false). */
  readonly errors = new Map<string, number>();
  private readonly byType = new Map<string, CompiledRule[]>();
  private readonly anyType: CompiledRule[];
  private readonly groupEpoch: number[];
  private epoch = 0;
  // Reused for every evaluation so that an event that fires nothing allocates nothing here.
  private readonly ctx: EvalContext = { event: undefined, profile: undefined, now: 0 };

  /** Use {@link compileRules}. */
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
    this.anyType = ordered.filter((r) => r.on === undefined);
    for (const r of ordered) {
      for (const type of r.on ?? []) {
        if (!this.byType.has(type))
          this.byType.set(
            type,
            ordered.filter((x) => x.on === undefined || x.on.includes(type)),
          );
      }
    }
    this.groupEpoch = new Array<number>(groupCount).fill(0);
  }

  /** Evaluates the rules for one event after the profile was updated; pushes fired triggers to `out`. */
  evaluate(
    event: CxEvent,
    profile: Record<string, unknown>,
    memory: RuleMemory,
    firedAt: number,
    out: Trigger[],
  ): void {
    const rules = this.byType.get(event.type) ?? this.anyType;
    if (rules.length === 0) return;
    const epoch = ++this.epoch;
    const ctx = this.ctx;
    ctx.event = event;
    ctx.profile = profile;
    ctx.now = event.ts;
    try {
      for (const r of rules) {
        const groupWon = r.group >= 0 && this.groupEpoch[r.group] === epoch;
        if (groupWon && r.crosses === undefined) continue;
        let state = memory[r.id] as RuleState | undefined;
        let edge = false;
        if (r.crosses !== undefined) {
          const v = this.test(r, r.crosses);
          if (v === undefined) continue; // an error leaves the crossing state as it was
          const prev = state?.c === true;
          if (!v) {
            if (prev) state!.c = false;
            continue;
          }
          if (prev) continue;
          // A loser keeps its crossing pending: it may still fire on a later event.
          if (groupWon) continue;
          edge = true;
        }
        const session = r.oncePerSession ? sessionOf(event) : undefined;
        let key = '';
        let blocked = false;
        if (r.when !== undefined && this.test(r, r.when) !== true) blocked = true;
        if (!blocked && r.per !== undefined) {
          const k = this.value(r, r.per);
          if (k === undefined) blocked = true;
          else key = typeof k === 'string' ? k : String(k);
        }
        if (!blocked) {
          const mark = state?.f?.[key];
          if (mark !== undefined) {
            if (r.oncePerSession && session !== undefined) blocked = mark.s === session;
            else if (r.cooldownMs > 0) blocked = event.ts - mark.t < r.cooldownMs;
          }
        }
        if (blocked) {
          // The edge is used up: `crosses` fires on the crossing itself, not whenever `when` turns true later.
          if (edge) {
            if (state === undefined) memory[r.id] = { c: true } satisfies RuleState;
            else state.c = true;
          }
          continue;
        }
        if (edge || r.cooldownMs > 0 || r.oncePerSession) {
          if (state === undefined) {
            state = {};
            memory[r.id] = state;
          }
          if (edge) state.c = true;
          if (r.cooldownMs > 0 || r.oncePerSession) this.mark(r, state, key, event.ts, session);
        }
        if (r.group >= 0) this.groupEpoch[r.group] = epoch;
        out.push(this.trigger(r, event, profile, firedAt));
      }
    } finally {
      ctx.event = undefined;
      ctx.profile = undefined;
    }
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

  private mark(
    r: CompiledRule,
    state: RuleState,
    key: string,
    ts: number,
    session: string | undefined,
  ): void {
    const marks = state.f ?? {};
    state.f = marks;
    if (r.per !== undefined) {
      // Keys seen long ago can no longer block anything: drop them so the memory stays bounded.
      for (const k of Object.keys(marks)) if (ts - marks[k]!.t >= r.retainMs) delete marks[k];
    }
    marks[key] = session === undefined ? { t: ts } : { t: ts, s: session };
  }

  private trigger(
    r: CompiledRule,
    event: CxEvent,
    profile: Record<string, unknown>,
    firedAt: number,
  ): Trigger {
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
      id: `${r.id}:${event.customer}:${event.id}`,
      rule: r.id,
      customer: event.customer,
      firedAt,
      eventTime: event.ts,
      reason: r.reason,
      // Rounded so that 90 + 0.1 * 3 does not reach dialers as 90.30000000000001.
      priority: Math.round((r.priority + score) * 1e6) / 1e6,
      payload,
      profile: snapshot,
      subject: r.subject,
    };
  }
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

function compileRule(
  spec: RuleSpec,
  index: number,
  issues: RuleCompileIssue[],
  groups: Map<string, number>,
): CompiledRule | undefined {
  const before = issues.length;
  const issue = (path: (string | number)[], message: string) => issues.push({ index, path, message });
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    issue([], 'a rule must be a mapping');
    return undefined;
  }
  for (const key of Object.keys(spec)) if (!RULE_KEYS.has(key)) issue([key], `unknown key "${key}"`);
  const id = spec.id;
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) issue(['id'], 'id must match [a-z0-9_]+');
  const priority = spec.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isFinite(priority))
    issue(['priority'], 'priority must be a number');
  if (spec.description !== undefined && typeof spec.description !== 'string')
    issue(['description'], 'description must be a string');
  if (spec.on !== undefined) {
    if (!Array.isArray(spec.on) || spec.on.length === 0)
      issue(['on'], 'on must be a non-empty list of event types');
    else
      spec.on.forEach((t, i) => {
        if (typeof t !== 'string' || t.length === 0)
          issue(['on', i], 'event type must be a non-empty string');
      });
  }
  const when = condition(spec.when, ['when'], issue);
  const crosses = condition(spec.crosses, ['crosses'], issue);
  const per = expression(spec.per, ['per'], issue);
  let cooldownMs = 0;
  if (spec.cooldown !== undefined) {
    try {
      cooldownMs = parseDuration(spec.cooldown);
      if (cooldownMs <= 0) issue(['cooldown'], 'cooldown must be longer than 0');
    } catch (e) {
      issue(['cooldown'], (e as Error).message);
    }
  }
  if (spec.oncePer !== undefined && spec.oncePer !== 'session')
    issue(['oncePer'], 'oncePer must be "session"');
  const oncePerSession = spec.oncePer === 'session';
  if (spec.per !== undefined && cooldownMs === 0 && !oncePerSession)
    issue(['per'], 'per needs a cooldown or oncePer: it only keys them');
  if (spec.group !== undefined && (typeof spec.group !== 'string' || spec.group.length === 0))
    issue(['group'], 'group must be a non-empty string');
  const subject = spec.subject ?? `cx.triggers.${id}`;
  if (typeof subject !== 'string' || !SUBJECT_PATTERN.test(subject))
    issue(['subject'], 'subject must be a NATS subject without wildcards, e.g. cx.triggers.my_rule');
  const payload: [string, Compiled][] = [];
  if (spec.payload !== undefined) {
    if (spec.payload === null || typeof spec.payload !== 'object' || Array.isArray(spec.payload))
      issue(['payload'], 'payload must be a mapping of name → CEL expression');
    else
      for (const [name, text] of Object.entries(spec.payload)) {
        const fn = expression(text, ['payload', name], issue);
        if (fn) payload.push([name, fn]);
      }
  }
  if (spec.profile !== undefined) {
    if (!Array.isArray(spec.profile)) issue(['profile'], 'profile must be a list of profile field names');
    else
      spec.profile.forEach((f, i) => {
        if (typeof f !== 'string' || !FIELD_PATTERN.test(f))
          issue(['profile', i], 'not a profile field name');
      });
  }
  if (issues.length > before) return undefined;
  let group = -1;
  if (spec.group !== undefined) {
    group = groups.get(spec.group) ?? groups.size;
    groups.set(spec.group, group);
  }
  return {
    id,
    on: spec.on,
    reason: spec.description ?? id,
    priority,
    subject,
    when,
    crosses,
    per,
    cooldownMs: oncePerSession && cooldownMs === 0 ? SESSIONLESS_FALLBACK_MS : cooldownMs,
    oncePerSession,
    retainMs: oncePerSession ? Math.max(cooldownMs, SESSION_MARK_RETAIN_MS) : cooldownMs,
    group,
    payload,
    profile: spec.profile ?? [],
  };
}

type Issue = (path: (string | number)[], message: string) => void;

function expression(text: unknown, path: (string | number)[], issue: Issue): Compiled | undefined {
  return celCompile(text, path, issue, false);
}

function condition(text: unknown, path: (string | number)[], issue: Issue): Compiled | undefined {
  return celCompile(text, path, issue, true);
}

function celCompile(
  text: unknown,
  path: (string | number)[],
  issue: Issue,
  boolean: boolean,
): Compiled | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== 'string' || text.trim().length === 0) {
    issue(path, 'must be a CEL expression (a non-empty string)');
    return undefined;
  }
  let fn: ReturnType<typeof celEnv.parse>;
  try {
    fn = celEnv.parse(text);
  } catch (e) {
    issue(path, `CEL syntax: ${celMessage(e)}`);
    return undefined;
  }
  let checked: ReturnType<typeof fn.check>;
  try {
    checked = fn.check();
  } catch (e) {
    issue(path, `CEL: ${celMessage(e)}`);
    return undefined;
  }
  if (!checked.valid) {
    issue(path, `CEL: ${celMessage(checked.error)}`);
    return undefined;
  }
  if (boolean && checked.type !== 'bool' && checked.type !== 'dyn') {
    issue(path, `must be a boolean condition, this gives ${checked.type}`);
    return undefined;
  }
  return fn as Compiled;
}

/** The first line of a cel-js error (the rest is a code frame) plus the column it points at. */
function celMessage(e: unknown): string {
  const err = e as { message?: string; pos?: number; node?: { pos?: number } } | undefined;
  const first = String(err?.message ?? e).split('\n')[0] ?? '';
  const pos = err?.node?.pos ?? err?.pos;
  return typeof pos === 'number' ? `${first} (column ${pos + 1})` : first;
}

function formatIssue(i: RuleCompileIssue): string {
  const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  return `rules[${i.index}]${path}: ${i.message}`;
}
