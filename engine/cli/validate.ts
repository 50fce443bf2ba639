/** `cxstream validate FILE`: a config, rule or aggregates file checked as the engine would load it. */
import { loadAggregates } from '../config/aggregatesFile.js';
import { loadConfig } from '../config/config.js';
import { formatProblem } from '../config/errors.js';
import { type LoadedRules, loadRulesWithWarnings } from '../config/rulesFile.js';
import { readYamlFile } from '../config/yamlFile.js';

/** Prints `FILE: ok (...)`; throws ConfigError with file:line problems otherwise. */
export function runValidate(file: string): void {
  const yaml = readYamlFile(file);
  const value = yaml.value as { rules?: unknown; aggregates?: unknown } | null;
  const isRuleFile =
    Array.isArray(value?.rules) && value.rules.some((r) => typeof r === 'object' && r !== null);
  if (value !== null && typeof value === 'object' && 'aggregates' in value) {
    const aggregates = loadAggregates([file]);
    process.stdout.write(`${file}: ok (${aggregates.length} aggregates)\n`);
  } else if (isRuleFile) {
    const { rules } = warned(loadRulesWithWarnings([file]));
    process.stdout.write(`${file}: ok (${rules.length} rules)\n`);
  } else {
    const config = loadConfig(file);
    const { rules } = warned(loadRulesWithWarnings(config.rules));
    process.stdout.write(`${file}: ok (config; ${rules.length} rules from ${config.rules.join(', ')})\n`);
  }
}

/** Prints the warnings (`file:line: warning: ...`) on stderr. */
function warned(loaded: LoadedRules): LoadedRules {
  for (const w of loaded.warnings)
    process.stderr.write(`${formatProblem({ ...w, message: `warning: ${w.message}` })}\n`);
  return loaded;
}
