/**
 * Compiles YAML-shaped rule specs once: structure against the rule schema (operators/ruleSpec.ts),
 * then CEL (parse and type check), durations, the rule's pattern (operators/patterns/) and its
 * delivery policy, into plain {@link CompiledRules}; `RuleSet` (operators/ruleSet.ts) evaluates them.
 * Names a rule reads that no event or profile has (a typo that would silently disable the rule)
 * are errors, with a "did you mean"; an unknown event field is a warning (events may carry more).
 */
import { Environment } from '@marcbachmann/cel-js';
import { Ajv, type ErrorObject } from 'ajv';
import { closest as closestOf, distance } from 'fastest-levenshtein';
import { parseDuration } from './duration.js';
import type { CompileContext, PatternDefinition } from './patterns/definition.js';
import { PROFILE_FIELDS } from './profile.js';
import type { Cap, Compiled, CompiledRule, Pattern, QuietHours } from './ruleModel.js';
import {
  DEFAULT_PATTERN,
  PATTERNS,
  RuleCompileError,
  type RuleCompileIssue,
  type RuleSpec,
  ruleSchema,
} from './ruleSpec.js';
import { EVENT_FIELDS, EVENT_TYPES } from './types.js';

/** Rules after compilation (plain data plus compiled CEL functions); build a RuleSet from it. */
export interface CompiledRules {
  specs: RuleSpec[];
  rules: CompiledRule[];
  /** Number of arbitration groups (`CompiledRule.group` indexes them). */
  groups: number;
  /** Problems that do not stop loading (unknown event fields). */
  warnings: RuleCompileIssue[];
}

/** The window within which `oncePer: session` blocks events that have no session, unless `cooldown` is set. */
export const SESSIONLESS_FALLBACK_MS = 30 * 60_000;

// Keyed once-per-session marks are dropped after this long: sessions are assumed shorter.
const SESSION_MARK_RETAIN_MS = 24 * 3_600_000;

// Declared types let CEL reject unknown variables and impossible operations when a rule is loaded.
const celEnv = new Environment()
  .registerVariable('event', 'map')
  .registerVariable('profile', 'map')
  .registerVariable('now', 'double');

const ajv = new Ajv({ allErrors: true, strict: true });
ajv.addFormat('duration', {
  type: 'string',
  validate: (text: string) => {
    try {
      return parseDuration(text) > 0;
    } catch {
      return false;
    }
  },
});
const validateRule = ajv.compile(ruleSchema);

/** Paths (relative to a rule) that hold CEL, checked even in a rule whose structure is wrong. */
const CEL_FIELDS: ReadonlyArray<ReadonlyArray<string>> = [
  ['when'],
  ['crosses'],
  ['per'],
  ['count', 'by'],
  ['streak', 'where'],
];

/** Compiles rule specs; throws RuleCompileError listing every issue (warnings are in the result). */
export function compileRules(specs: RuleSpec[]): CompiledRules {
  const issues: RuleCompileIssue[] = [];
  const rules: CompiledRule[] = [];
  const groups = new Map<string, number>();
  const caps = new Map<string, { cap: Cap; index: number }>();
  const seen = new Set<string>();
  specs.forEach((spec, index) => {
    const issue: Issue = (path, message, warning = false) =>
      issues.push({ index, path: [...path], message, ...(warning ? { warning } : {}) });
    if (!validateRule(spec)) {
      for (const e of reportable(validateRule.errors ?? [])) issue(...schemaIssue(e));
      // Still report CEL problems of this rule in the same run.
      for (const path of CEL_FIELDS) {
        const text = path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], spec);
        if (typeof text === 'string' && text.trim() !== '') celCompile(text, path, issue, path[0] !== 'per');
      }
      return;
    }
    if (seen.has(spec.id)) issue(['id'], `duplicate rule id "${spec.id}"`);
    seen.add(spec.id);
    const rule = compileRule(spec, issue, groups);
    if (rule?.cap) {
      const other = caps.get(rule.cap.group);
      if (other === undefined) caps.set(rule.cap.group, { cap: rule.cap, index });
      else if (other.cap.max !== rule.cap.max || other.cap.perMs !== rule.cap.perMs)
        issue(
          ['cap'],
          `cap group "${rule.cap.group}" is defined differently by rules[${other.index}]: same max and per everywhere`,
        );
    }
    if (rule) rules.push(rule);
  });
  const errors = issues.filter((i) => !i.warning);
  if (errors.length > 0) throw new RuleCompileError(errors);
  return { specs, rules, groups: groups.size, warnings: issues.filter((i) => i.warning) };
}

type Issue = (path: ReadonlyArray<string | number>, message: string, warning?: boolean) => void;

function compileRule(spec: RuleSpec, issue: Issue, groups: Map<string, number>): CompiledRule | undefined {
  let failed = false;
  const fail: Issue = (path, message, warning) => {
    if (!warning) failed = true;
    issue(path, message, warning);
  };
  const named = PATTERNS.filter((p) => spec[p.key as keyof RuleSpec] !== undefined);
  if (named.length > 1)
    fail(
      [named[1]!.key!],
      `a rule follows one pattern, this one names ${named.map((p) => p.key).join(' and ')}`,
    );
  const definition = named[0] ?? DEFAULT_PATTERN;
  if (definition.mapping && spec.on !== undefined)
    fail(['on'], `on is for on-event rules; the ${definition.key} pattern names its own event types`);

  const when = celCompile(spec.when, ['when'], fail, true);
  const per = celCompile(spec.per, ['per'], fail, false);
  const cooldownMs = spec.cooldown === undefined ? 0 : parseDuration(spec.cooldown);
  const oncePer = spec.oncePer;
  if (oncePer !== undefined && oncePer !== 'session') {
    const owner = PATTERNS.find((p) => p.oncePer === oncePer)!;
    if (owner !== definition) fail(['oncePer'], `oncePer: ${oncePer} goes with the ${owner.key} pattern`);
  }
  const oncePerSession = oncePer === 'session';
  if (spec.per !== undefined && cooldownMs === 0 && !oncePerSession)
    fail(['per'], 'per needs a cooldown or oncePer: session: it only keys them');
  const payload: Array<[string, Compiled]> = [];
  for (const [name, text] of Object.entries(spec.payload ?? {})) {
    const fn = celCompile(text, ['payload', name], fail, false);
    if (fn) payload.push([name, fn]);
  }
  (spec.profile ?? []).forEach((field, i) => {
    if (!PROFILE_FIELDS.has(field)) fail(['profile', i], unknownName('profile field', field, PROFILE_FIELDS));
  });
  const pattern = compilePattern(spec, definition, fail);
  checkEventTypes(spec, fail);
  if (failed || pattern === undefined) return undefined;

  let group = -1;
  if (spec.group !== undefined) {
    group = groups.get(spec.group) ?? groups.size;
    groups.set(spec.group, group);
  }
  return {
    id: spec.id,
    reason: spec.description ?? spec.id,
    priority: spec.priority ?? 0,
    subject: spec.subject ?? `cx.triggers.${spec.id}`,
    pattern,
    when,
    per,
    cooldownMs: oncePerSession && cooldownMs === 0 ? SESSIONLESS_FALLBACK_MS : cooldownMs,
    oncePerSession,
    retainMs: oncePerSession ? Math.max(cooldownMs, SESSION_MARK_RETAIN_MS) : cooldownMs,
    group,
    payload,
    profile: spec.profile ?? [],
    quiet: quietHoursOf(spec, fail),
    cap: spec.cap && { group: spec.cap.group, max: spec.cap.max, perMs: parseDuration(spec.cap.per) },
  };
}

/** Compiles the rule's pattern with helpers that read its fields and report issues under its path. */
function compilePattern(spec: RuleSpec, definition: PatternDefinition, issue: Issue): Pattern | undefined {
  const at: Array<string | number> = definition.mapping ? [definition.key!] : [];
  const fields = (definition.mapping ? spec[definition.key as keyof RuleSpec] : spec) as Record<
    string,
    unknown
  >;
  const c: CompileContext = {
    at,
    issue: (field, message) => issue([...at, field], message),
    types: (field) => {
      const v = fields[field];
      return new Set(v === undefined ? [] : Array.isArray(v) ? (v as string[]) : [v as string]);
    },
    duration: (field) => (fields[field] === undefined ? 0 : parseDuration(fields[field] as string)),
    count: (field) => (fields[field] as number | undefined) ?? 0,
    expression: (field) => celCompile(fields[field], [...at, field], issue, false),
    condition: (field) => celCompile(fields[field], [...at, field], issue, true),
  };
  return definition.compile(fields, c);
}

/** Event types a rule names (`on`, pattern type fields): one a letter or two from a known type is a typo. */
function checkEventTypes(spec: RuleSpec, issue: Issue): void {
  const check = (path: Array<string | number>, type: string) => {
    if (EVENT_TYPES.has(type)) return;
    const near = closest(type, EVENT_TYPES);
    if (near !== undefined) issue(path, `unknown event type "${type}" (did you mean "${near}"?)`);
  };
  spec.on?.forEach((t, i) => {
    check(['on', i], t);
  });
  for (const p of PATTERNS) {
    if (!p.mapping) continue;
    const fields = spec[p.key as keyof RuleSpec] as Record<string, unknown> | undefined;
    if (fields === undefined) continue;
    for (const [field, value] of Object.entries(fields)) {
      if (!isTypeField(field)) continue;
      if (typeof value === 'string') check([p.key!, field], value);
      if (Array.isArray(value))
        value.forEach((t, i) => {
          if (typeof t === 'string') check([p.key!, field, i], t);
        });
    }
  }
}

/** Pattern fields that hold event types (the others hold durations, counts or CEL). */
function isTypeField(field: string): boolean {
  return !['within', 'for', 'atLeast', 'count', 'by', 'where', 'fraction'].includes(field);
}

function quietHoursOf(spec: RuleSpec, issue: Issue): QuietHours | undefined {
  const q = spec.quietHours;
  if (q === undefined) return undefined;
  const minutes = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5));
  const from = minutes(q.from);
  const to = minutes(q.to);
  if (from === to) issue(['quietHours'], 'quietHours from and to must differ');
  return { from, to, drop: q.action === 'drop' };
}

/**
 * Parses and type checks a CEL expression (a boolean for conditions); reports CEL errors with their
 * column, and names `event` / `profile` fields that do not exist.
 */
function celCompile(
  text: unknown,
  path: ReadonlyArray<string | number>,
  issue: Issue,
  condition: boolean,
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
  if (condition && checked.type !== 'bool' && checked.type !== 'dyn') {
    issue(path, `must be a boolean condition, this gives ${checked.type}`);
    return undefined;
  }
  for (const [root, field] of fieldReferences(fn.ast)) {
    if (root === 'profile' && !PROFILE_FIELDS.has(field))
      issue(path, unknownName('profile field', `profile.${field}`, PROFILE_FIELDS, 'profile.'));
    if (root === 'event' && !EVENT_FIELDS.has(field))
      issue(
        path,
        `${unknownName('event field', `event.${field}`, EVENT_FIELDS, 'event.')}; kept, since events may carry extra fields`,
        true,
      );
  }
  return fn as Compiled;
}

/** `event.x`, `profile.x` and `profile["x"]` in a CEL syntax tree. */
function fieldReferences(ast: unknown): Array<[root: string, field: string]> {
  const found: Array<[string, string]> = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const x of node) walk(x);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const { op, args } = node as { op?: unknown; args?: unknown };
    if ((op === '.' || op === '[]') && Array.isArray(args)) {
      const [target, key] = args as [{ op?: unknown; args?: unknown }, unknown];
      const root = target?.op === 'id' ? target.args : undefined;
      const field =
        op === '.'
          ? key
          : (key as { op?: unknown; args?: unknown })?.op === 'value'
            ? (key as { args: unknown }).args
            : undefined;
      if ((root === 'event' || root === 'profile') && typeof field === 'string') found.push([root, field]);
    }
    walk(args);
  };
  walk(ast);
  return found;
}

/** "unknown profile field "profile.teir" (did you mean "profile.tier"?)" */
function unknownName(what: string, name: string, known: ReadonlySet<string>, prefix = ''): string {
  const near = closest(name.slice(prefix.length), known);
  return `unknown ${what} "${name}"${near === undefined ? '' : ` (did you mean "${prefix}${near}"?)`}`;
}

/** The known name within edit distance 2 of `name` (case-insensitive), if any. */
function closest(name: string, known: ReadonlySet<string>): string | undefined {
  const names = [...known];
  const best = closestOf(
    name.toLowerCase(),
    names.map((k) => k.toLowerCase()),
  );
  const match = names.find((k) => k.toLowerCase() === best)!;
  return distance(name.toLowerCase(), best) <= 2 ? match : undefined;
}

/** The first line of a cel-js error (the rest is a code frame) plus the column it points at. */
function celMessage(e: unknown): string {
  const err = e as { message?: string; pos?: number; node?: { pos?: number } } | undefined;
  const first = String(err?.message ?? e).split('\n')[0] ?? '';
  const pos = err?.node?.pos ?? err?.pos;
  return typeof pos === 'number' ? `${first} (column ${pos + 1})` : first;
}

/**
 * The schema errors worth showing: a value that matches no branch of a union (an event type or a
 * list of them) is one error, not one per branch; `propertyNames` repeats its inner `pattern`.
 */
function reportable(errors: ErrorObject[]): ErrorObject[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath);
  return errors.filter(
    (e) =>
      e.keyword !== 'propertyNames' &&
      (e.keyword === 'anyOf' ||
        !unions.some((u) => e.instancePath === u || e.instancePath.startsWith(`${u}/`))),
  );
}

/** A schema error as a rule-relative path and what the value there must be (the path says where). */
function schemaIssue(e: ErrorObject): [Array<string | number>, string] {
  const path: Array<string | number> = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      return [[...path, key], `unknown key "${key}"`];
    }
    case 'required':
      return [path, `needs "${String(params.missingProperty)}"`];
    case 'type':
      return [path, `must be ${String(params.type) === 'array' ? 'a list' : `a ${String(params.type)}`}`];
    case 'format':
      return [path, 'must be a duration like "30s", "10m", "24h" or "7d" (units: ms, s, m, h, d, w)'];
    case 'enum':
      return [path, `must be one of: ${(params.allowedValues as unknown[]).join(', ')}`];
    case 'pattern':
      if (path.at(-1) === 'id') return [path, 'must match [a-z0-9_]+ (lower-case letters, digits, _)'];
      if (path[0] === 'subject')
        return [path, 'must be a NATS subject without wildcards, e.g. cx.triggers.my_rule'];
      if (path[0] === 'quietHours') return [path, 'must be a local time "HH:MM", e.g. "21:00"'];
      if (e.propertyName !== undefined)
        return [[...path, e.propertyName], `"${e.propertyName}" is not a valid name`];
      return [path, e.message ?? 'is invalid'];
    case 'anyOf':
      return [path, 'must be an event type or a non-empty list of event types'];
    default:
      return [path, e.message ?? 'is invalid'];
  }
}
