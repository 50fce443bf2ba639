import { Ajv, type ErrorObject } from 'ajv';
import { parseDuration } from '../../operators/duration.js';
import { compileRules, isRuleCompileError, type RuleSpec } from '../../operators/rules.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { readYamlFiles, type YamlFile } from './yamlFile.js';

const CEL = { type: 'string', minLength: 1 } as const;
const TYPE = { type: 'string', minLength: 1 } as const;
const TYPES = { anyOf: [TYPE, { type: 'array', minItems: 1, items: TYPE }] } as const;
const DURATION = { type: 'string', format: 'duration' } as const;
const COUNT = { type: 'integer', minimum: 1 } as const;
const CLOCK = { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' } as const;

/** A pattern mapping: the listed keys only, `required` of them mandatory. */
function pattern<P extends Record<string, unknown>, R extends readonly string[]>(properties: P, required: R) {
  return { type: 'object', additionalProperties: false, required, properties } as const;
}

/** JSON schema of a rule file: structure only; CEL is checked by compiling. See docs/RULES.md. */
const ruleFileSchema = {
  type: 'object',
  required: ['rules'],
  additionalProperties: false,
  properties: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9_]+$' },
          description: { type: 'string' },
          priority: { type: 'number' },
          on: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          when: CEL,
          crosses: CEL,
          absence: pattern({ after: TYPES, missing: TYPES, within: DURATION }, [
            'after',
            'missing',
            'within',
          ]),
          sequence: pattern({ first: TYPES, followedBy: TYPES, within: DURATION }, [
            'first',
            'followedBy',
            'within',
          ]),
          count: pattern(
            { of: TYPES, atLeast: COUNT, within: DURATION, after: TYPES, by: CEL, unless: TYPES },
            ['of', 'atLeast', 'within'],
          ),
          streak: pattern({ of: TYPES, where: CEL, count: COUNT, resetOn: TYPES }, ['of', 'where', 'count']),
          inactivity: pattern({ for: DURATION }, ['for']),
          purchaseCycle: pattern({ fraction: { type: 'number', exclusiveMinimum: 0 } }, []),
          cooldown: DURATION,
          per: CEL,
          oncePer: { enum: ['session', 'purchaseCycle', 'inactiveSpell'] },
          group: { type: 'string', minLength: 1 },
          quietHours: pattern({ from: CLOCK, to: CLOCK, action: { enum: ['defer', 'drop'] } }, [
            'from',
            'to',
          ]),
          cap: pattern({ group: { type: 'string', pattern: '^[a-z0-9_]+$' }, max: COUNT, per: DURATION }, [
            'group',
            'max',
            'per',
          ]),
          subject: { type: 'string', pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$' },
          payload: {
            type: 'object',
            propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
            additionalProperties: CEL,
          },
          profile: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
        },
      },
    },
  },
} as const;

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
const validateFile = ajv.compile(ruleFileSchema);

/** Where a rule came from, to turn a compile issue into file:line. */
interface Origin {
  yaml: YamlFile;
  index: number;
  /** The schema or the duplicate check already reported this rule. */
  bad: boolean;
}

// Keys whose compile issues are CEL errors the schema cannot see (`count.by`, `streak.where` are nested).
const CEL_KEYS = new Set(['when', 'crosses', 'per', 'payload', 'count', 'streak']);

/**
 * Reads, validates and compiles rule files (CONTRACT.md `CXSTREAM_RULES`); returns the rules of all
 * files in order, or throws one ConfigError listing every problem with its file and line.
 */
export function loadRules(files: string[]): RuleSpec[] {
  const problems: ConfigProblem[] = [];
  const specs: RuleSpec[] = [];
  const origins: Origin[] = [];
  const firstId = new Map<string, string>();
  for (const yaml of readYamlFiles(files, problems)) {
    const { file } = yaml;
    const value = yaml.value ?? {};
    const badRules = new Set<number>();
    if (!validateFile(value)) {
      for (const err of validateFile.errors ?? []) {
        const path = pathOf(err);
        if (path[0] === 'rules' && typeof path[1] === 'number') badRules.add(path[1]);
        // propertyNames repeats the error of its inner `pattern`, which names the property.
        if (err.keyword === 'propertyNames') continue;
        problems.push(yaml.problem(path, describe(err, path)));
      }
    }
    const rules = (value as { rules?: unknown }).rules;
    if (!Array.isArray(rules)) continue;
    rules.forEach((rule: unknown, index) => {
      const id = (rule as { id?: unknown } | null)?.id;
      if (typeof id === 'string') {
        const where = `${file}:${yaml.lineOf(['rules', index, 'id'])}`;
        const first = firstId.get(id);
        if (first !== undefined) {
          problems.push(
            yaml.problem(['rules', index, 'id'], `duplicate rule id "${id}" (first defined at ${first})`),
          );
          badRules.add(index);
        } else firstId.set(id, where);
      }
      specs.push(rule as RuleSpec);
      origins.push({ yaml, index, bad: badRules.has(index) });
    });
  }
  try {
    compileRules(specs);
  } catch (e) {
    if (!isRuleCompileError(e)) throw e;
    for (const issue of e.issues) {
      const origin = origins[issue.index]!;
      // A rule with schema errors is compiled too, so that its CEL errors show in the same run; its
      // other issues repeat what the schema said.
      if (origin.bad && !CEL_KEYS.has(issue.path[0] as string)) continue;
      const path = ['rules', origin.index, ...issue.path];
      problems.push(origin.yaml.problem(path, `${label(path)}: ${issue.message}`));
    }
  }
  if (problems.length > 0) {
    const order = new Map(files.map((f, i) => [f, i]));
    problems.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
    throw new ConfigError(problems);
  }
  return specs;
}

/** The document path an ajv error is about, down to the offending key where ajv names one. */
function pathOf(err: ErrorObject): (string | number)[] {
  const path: (string | number)[] = err.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const params = err.params as { additionalProperty?: string; propertyName?: string };
  if (err.keyword === 'additionalProperties' && params.additionalProperty !== undefined)
    path.push(params.additionalProperty);
  else if (err.propertyName !== undefined) path.push(err.propertyName);
  else if (err.keyword === 'propertyNames' && params.propertyName !== undefined)
    path.push(params.propertyName);
  return path;
}

/** `rules[3].cooldown` */
function label(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function describe(err: ErrorObject, path: (string | number)[]): string {
  const at = label(path) || 'the file';
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties':
      return path.length === 1
        ? `unknown top-level key "${params.additionalProperty}" (a rule file holds only "rules")`
        : `unknown key "${params.additionalProperty}" in ${label(path.slice(0, -1))}`;
    case 'required':
      if (path.length === 0) return 'missing the top-level "rules:" list';
      return `${at}: missing required key "${params.missingProperty}"`;
    case 'format':
      return `${at} must be a duration like "30s", "10m", "24h" or "7d" (units: ms, s, m, h, d, w)`;
    case 'enum':
      return `${at} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      if (path[path.length - 1] === 'id')
        return `${at} must match [a-z0-9_]+ (lower-case letters, digits, _)`;
      if (err.propertyName !== undefined)
        return `${label(path.slice(0, -1))}: "${err.propertyName}" is not a valid name (letters, digits, _)`;
      return `${at} ${err.message}`;
    default:
      return `${at} ${err.message}`;
  }
}
