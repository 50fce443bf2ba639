/**
 * Compiles YAML-shaped rule specs once (CEL parse and type check, durations, patterns, delivery
 * policy) into plain `CompiledRule`s; `RuleSet` (operators/ruleSet.ts) evaluates them.
 */
import { Environment } from '@marcbachmann/cel-js';
import { parseDuration } from './duration.js';
import { RuleSet } from './ruleSet.js';
import { RuleCompileError, type RuleCompileIssue, type RuleSpec } from './ruleSpec.js';
import type { CxEvent } from './types.js';

/** A compiled CEL expression. */
export type Compiled = (ctx: EvalContext) => unknown;

/** What a CEL expression sees. */
export interface EvalContext {
  event: CxEvent | undefined;
  profile: Record<string, unknown> | undefined;
  now: number;
}

/** Which pattern a rule follows. */
export type PatternKind = 'event' | 'absence' | 'sequence' | 'count' | 'streak' | 'inactivity' | 'cycle';

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

/** One rule after compilation. */
export interface CompiledRule {
  id: string;
  kind: PatternKind;
  /** Event types the rule reacts to (its index); undefined = all. */
  types: string[] | undefined;
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
  /** absence.after, sequence.first, count.of, streak.of. */
  first: ReadonlySet<string>;
  /** absence.missing, sequence.followedBy, count.unless, streak.resetOn. */
  second: ReadonlySet<string>;
  /** count.after (anchor). */
  anchor: ReadonlySet<string>;
  /** within / for. */
  windowMs: number;
  /** count.atLeast, streak.count. */
  n: number;
  /** count.by. */
  by: Compiled | undefined;
  /** streak.where. */
  where: Compiled | undefined;
  /** purchaseCycle.fraction. */
  fraction: number;
  quiet: QuietHours | undefined;
  cap: Cap | undefined;
}

/** The window within which `oncePer: session` blocks events that have no session, unless `cooldown` is set. */
export const SESSIONLESS_FALLBACK_MS = 30 * 60_000;

// Keyed once-per-session marks are dropped after this long: sessions are assumed shorter.
const SESSION_MARK_RETAIN_MS = 24 * 3_600_000;

const PATTERN_KEYS = ['absence', 'sequence', 'count', 'streak', 'inactivity', 'purchaseCycle'] as const;
const RULE_KEYS = new Set<string>([
  'id',
  'description',
  'priority',
  'on',
  'when',
  'crosses',
  ...PATTERN_KEYS,
  'cooldown',
  'per',
  'oncePer',
  'group',
  'quietHours',
  'cap',
  'subject',
  'payload',
  'profile',
]);
const PATTERN_FIELDS: Record<(typeof PATTERN_KEYS)[number], { required: string[]; optional: string[] }> = {
  absence: { required: ['after', 'missing', 'within'], optional: [] },
  sequence: { required: ['first', 'followedBy', 'within'], optional: [] },
  count: { required: ['of', 'atLeast', 'within'], optional: ['after', 'by', 'unless'] },
  streak: { required: ['of', 'where', 'count'], optional: ['resetOn'] },
  inactivity: { required: ['for'], optional: [] },
  purchaseCycle: { required: [], optional: ['fraction'] },
};
const ID_PATTERN = /^[a-z0-9_]+$/;
const SUBJECT_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CLOCK_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)$/;
const EMPTY: ReadonlySet<string> = new Set();

// Declared types let CEL reject unknown variables and impossible operations when a rule is loaded.
const celEnv = new Environment()
  .registerVariable('event', 'map')
  .registerVariable('profile', 'map')
  .registerVariable('now', 'double');

/** Compiles rule specs (CEL parse and type check, durations, patterns, ids); throws RuleCompileError listing every issue. */
export function compileRules(specs: RuleSpec[]): RuleSet {
  const issues: RuleCompileIssue[] = [];
  const compiled: CompiledRule[] = [];
  const groups = new Map<string, number>();
  const caps = new Map<string, { cap: Cap; index: number }>();
  const seen = new Set<string>();
  specs.forEach((spec, index) => {
    const rule = compileRule(spec, index, issues, groups);
    const id = (spec as Partial<RuleSpec> | null)?.id;
    if (typeof id === 'string' && seen.has(id))
      issues.push({ index, path: ['id'], message: `duplicate rule id "${id}"` });
    if (typeof id === 'string') seen.add(id);
    if (rule?.cap) {
      const other = caps.get(rule.cap.group);
      if (other === undefined) caps.set(rule.cap.group, { cap: rule.cap, index });
      else if (other.cap.max !== rule.cap.max || other.cap.perMs !== rule.cap.perMs)
        issues.push({
          index,
          path: ['cap'],
          message: `cap group "${rule.cap.group}" is defined differently by rules[${other.index}]: same max and per everywhere`,
        });
    }
    if (rule) compiled.push(rule);
  });
  if (issues.length > 0) throw new RuleCompileError(issues);
  return new RuleSet(specs, compiled, groups.size);
}

type Issue = (path: (string | number)[], message: string) => void;

function compileRule(
  spec: RuleSpec,
  index: number,
  issues: RuleCompileIssue[],
  groups: Map<string, number>,
): CompiledRule | undefined {
  const before = issues.length;
  const issue: Issue = (path, message) => issues.push({ index, path, message });
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

  const patterns = PATTERN_KEYS.filter((k) => spec[k] !== undefined);
  if (patterns.length > 1)
    issue([patterns[1]!], `a rule follows one pattern, this one names ${patterns.join(' and ')}`);
  const pattern = patterns[0];
  if (pattern !== undefined && spec.on !== undefined)
    issue(['on'], `on is for on-event rules; the ${pattern} pattern names its own event types`);
  if (pattern !== undefined && spec.crosses !== undefined)
    issue(['crosses'], `crosses is for on-event rules, not with ${pattern}`);
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
  const cooldownMs = spec.cooldown === undefined ? 0 : duration(spec.cooldown, ['cooldown'], issue);

  const oncePer = spec.oncePer;
  if (oncePer !== undefined) {
    const fits: Record<string, string | undefined> = {
      session: undefined,
      purchaseCycle: 'purchaseCycle',
      inactiveSpell: 'inactivity',
    };
    if (!(oncePer in fits))
      issue(['oncePer'], 'oncePer must be one of: session, purchaseCycle, inactiveSpell');
    else if (fits[oncePer] !== undefined && fits[oncePer] !== pattern)
      issue(['oncePer'], `oncePer: ${oncePer} goes with the ${fits[oncePer]} pattern`);
  }
  const oncePerSession = oncePer === 'session';
  if (spec.per !== undefined && cooldownMs === 0 && !oncePerSession)
    issue(['per'], 'per needs a cooldown or oncePer: session: it only keys them');
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
  const quiet = quietHours(spec.quietHours, issue);
  const cap = capOf(spec.cap, issue);

  const rule: CompiledRule = {
    id,
    kind: 'event',
    types: spec.on,
    reason: spec.description ?? id,
    priority,
    subject,
    when,
    crosses,
    per,
    cooldownMs: oncePerSession && cooldownMs === 0 ? SESSIONLESS_FALLBACK_MS : cooldownMs,
    oncePerSession,
    retainMs: oncePerSession ? Math.max(cooldownMs, SESSION_MARK_RETAIN_MS) : cooldownMs,
    group: -1,
    payload,
    profile: spec.profile ?? [],
    first: EMPTY,
    second: EMPTY,
    anchor: EMPTY,
    windowMs: 0,
    n: 0,
    by: undefined,
    where: undefined,
    fraction: 0.9,
    quiet,
    cap,
  };
  if (pattern !== undefined) compilePattern(rule, pattern, spec[pattern], issue);
  if (issues.length > before) return undefined;
  if (spec.group !== undefined) {
    rule.group = groups.get(spec.group) ?? groups.size;
    groups.set(spec.group, rule.group);
  }
  return rule;
}

function compilePattern(
  rule: CompiledRule,
  pattern: (typeof PATTERN_KEYS)[number],
  value: unknown,
  issue: Issue,
): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    issue([pattern], `${pattern} must be a mapping`);
    return;
  }
  const p = value as Record<string, unknown>;
  const { required, optional } = PATTERN_FIELDS[pattern];
  for (const k of Object.keys(p))
    if (!required.includes(k) && !optional.includes(k))
      issue([pattern, k], `unknown key "${k}" in ${pattern}`);
  for (const k of required) if (p[k] === undefined) issue([pattern], `${pattern} needs "${k}"`);
  const types = (k: string): ReadonlySet<string> =>
    p[k] === undefined ? EMPTY : typeSet(p[k], [pattern, k], issue);
  const within = (k: string): number => (p[k] === undefined ? 0 : duration(p[k], [pattern, k], issue));
  const count = (k: string): number => {
    const n = p[k];
    if (n === undefined) return 0;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
      issue([pattern, k], `${k} must be a whole number >= 1`);
    return n as number;
  };
  switch (pattern) {
    case 'absence':
      rule.kind = 'absence';
      rule.first = types('after');
      rule.second = types('missing');
      rule.windowMs = within('within');
      break;
    case 'sequence':
      rule.kind = 'sequence';
      rule.first = types('first');
      rule.second = types('followedBy');
      rule.windowMs = within('within');
      break;
    case 'count':
      rule.kind = 'count';
      rule.first = types('of');
      rule.second = types('unless');
      rule.anchor = types('after');
      rule.windowMs = within('within');
      rule.n = count('atLeast');
      rule.by = expression(p.by, [pattern, 'by'], issue);
      break;
    case 'streak':
      rule.kind = 'streak';
      rule.first = types('of');
      rule.second = types('resetOn');
      rule.n = count('count');
      rule.where = condition(p.where, [pattern, 'where'], issue);
      break;
    case 'inactivity':
      rule.kind = 'inactivity';
      rule.windowMs = within('for');
      break;
    case 'purchaseCycle': {
      rule.kind = 'cycle';
      const f = p.fraction ?? 0.9;
      if (typeof f !== 'number' || !(f > 0)) issue([pattern, 'fraction'], 'fraction must be a number > 0');
      rule.fraction = f as number;
      break;
    }
  }
  rule.types =
    rule.kind === 'inactivity'
      ? undefined
      : rule.kind === 'cycle'
        ? ['order']
        : [...new Set([...rule.first, ...rule.second, ...rule.anchor])];
}

function typeSet(value: unknown, path: (string | number)[], issue: Issue): ReadonlySet<string> {
  const list = typeof value === 'string' ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    !list.every((t) => typeof t === 'string' && t.length > 0)
  ) {
    issue(path, 'must be an event type or a non-empty list of event types');
    return EMPTY;
  }
  return new Set(list as string[]);
}

function duration(value: unknown, path: (string | number)[], issue: Issue): number {
  try {
    const ms = parseDuration(value as string);
    if (ms <= 0) issue(path, `${path[path.length - 1]} must be longer than 0`);
    return ms;
  } catch (e) {
    issue(path, (e as Error).message);
    return 0;
  }
}

function clock(value: unknown, path: (string | number)[], issue: Issue): number {
  const m = typeof value === 'string' ? CLOCK_PATTERN.exec(value) : null;
  if (!m) {
    issue(path, 'must be a local time "HH:MM", e.g. "21:00"');
    return 0;
  }
  return Number(m[1]) * 60 + Number(m[2]);
}

function quietHours(value: unknown, issue: Issue): QuietHours | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    issue(['quietHours'], 'quietHours must be a mapping { from: "21:00", to: "09:00", action: defer }');
    return undefined;
  }
  const q = value as Record<string, unknown>;
  for (const k of Object.keys(q))
    if (k !== 'from' && k !== 'to' && k !== 'action')
      issue(['quietHours', k], `unknown key "${k}" in quietHours`);
  const from = clock(q.from, ['quietHours', 'from'], issue);
  const to = clock(q.to, ['quietHours', 'to'], issue);
  if (from === to) issue(['quietHours'], 'quietHours from and to must differ');
  const action = q.action ?? 'defer';
  if (action !== 'defer' && action !== 'drop')
    issue(['quietHours', 'action'], 'action must be defer or drop');
  return { from, to, drop: action === 'drop' };
}

function capOf(value: unknown, issue: Issue): Cap | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    issue(['cap'], 'cap must be a mapping { group: NAME, max: N, per: 24h }');
    return undefined;
  }
  const c = value as Record<string, unknown>;
  for (const k of Object.keys(c))
    if (k !== 'group' && k !== 'max' && k !== 'per') issue(['cap', k], `unknown key "${k}" in cap`);
  if (typeof c.group !== 'string' || !ID_PATTERN.test(c.group))
    issue(['cap', 'group'], 'group must match [a-z0-9_]+');
  if (typeof c.max !== 'number' || !Number.isInteger(c.max) || c.max < 1)
    issue(['cap', 'max'], 'max must be a whole number >= 1');
  const perMs = duration(c.per, ['cap', 'per'], issue);
  return { group: c.group as string, max: c.max as number, perMs };
}

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
