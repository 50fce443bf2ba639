/**
 * Rule files: YAML with a `rules:` list, checked by the rule compiler (one schema, in
 * operators/ruleSpec.ts) and reported with file:line. The format: docs/RULES.md.
 */
import {
  compileRules,
  isRuleCompileError,
  type RuleCompileIssue,
  type RuleSpec,
} from '../../operators/rules.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { readYamlFiles, type YamlFile } from './yamlFile.js';

/** Where a rule came from, to turn a compile issue into file:line. */
interface Origin {
  yaml: YamlFile;
  index: number;
}

/** Rules of the files and what the compiler warned about (e.g. an event field no known event has). */
export interface LoadedRules {
  rules: RuleSpec[];
  warnings: ConfigProblem[];
}

/**
 * Reads, validates and compiles rule files (`CXSTREAM_RULES`); returns the rules of all files in
 * order, or throws one ConfigError listing every problem with its file and line.
 */
export function loadRules(files: string[]): RuleSpec[] {
  return loadRulesWithWarnings(files).rules;
}

/** {@link loadRules}, with the warnings (shown by `validate`, logged by `run`). */
export function loadRulesWithWarnings(files: string[]): LoadedRules {
  const problems: ConfigProblem[] = [];
  const specs: RuleSpec[] = [];
  const origins: Origin[] = [];
  const firstId = new Map<string, string>();
  const duplicates = new Set<number>();
  for (const yaml of readYamlFiles(files, problems)) {
    const value = yaml.value ?? {};
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      problems.push(yaml.problem([], 'a rule file is a mapping with a "rules:" list'));
      continue;
    }
    for (const key of Object.keys(value))
      if (key !== 'rules')
        problems.push(yaml.problem([key], `unknown top-level key "${key}" (a rule file holds only "rules")`));
    const rules = (value as { rules?: unknown }).rules;
    if (!Array.isArray(rules)) {
      problems.push(yaml.problem(['rules'], 'missing the top-level "rules:" list'));
      continue;
    }
    rules.forEach((rule: unknown, index) => {
      const id = (rule as { id?: unknown } | null)?.id;
      if (typeof id === 'string') {
        const first = firstId.get(id);
        if (first !== undefined) {
          problems.push(
            yaml.problem(['rules', index, 'id'], `duplicate rule id "${id}" (first defined at ${first})`),
          );
          duplicates.add(specs.length);
        } else firstId.set(id, `${yaml.file}:${yaml.lineOf(['rules', index, 'id'])}`);
      }
      specs.push(rule as RuleSpec);
      origins.push({ yaml, index });
    });
  }
  const located = (issue: RuleCompileIssue): ConfigProblem => {
    const origin = origins[issue.index]!;
    const path = ['rules', origin.index, ...issue.path];
    return origin.yaml.problem(path, `${label(path)}: ${issue.message}`);
  };
  let warnings: ConfigProblem[] = [];
  try {
    warnings = compileRules(specs).warnings.map(located);
  } catch (e) {
    if (!isRuleCompileError(e)) throw e;
    for (const issue of e.issues) {
      // the duplicate across files is reported above, with where the first one is
      if (duplicates.has(issue.index) && issue.path[0] === 'id') continue;
      problems.push(located(issue));
    }
  }
  if (problems.length > 0) {
    const order = new Map(files.map((f, i) => [f, i]));
    problems.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
    throw new ConfigError(problems);
  }
  return { rules: specs, warnings };
}

/** `rules[3].cooldown` */
function label(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}
