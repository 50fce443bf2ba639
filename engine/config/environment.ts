/** The environment variables of the config: their names, derived from the schema, and the check for misspelled ones. */
import { closest, distance } from 'fastest-levenshtein';
import { configSchemaNode, type SchemaNode } from './configSchema.js';

/** One environment override: its variable, the config path it sets and that key's schema. */
export interface EnvSetting {
  name: string;
  path: string[];
  schema: SchemaNode;
}

/** `CXSTREAM_` + path in upper snake case, e.g. engine.batchMaxEvents → CXSTREAM_ENGINE_BATCH_MAX_EVENTS. */
export function envName(path: readonly string[]): string {
  return `CXSTREAM_${path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

/** `nats.url / CXSTREAM_NATS_URL`: how a message names a setting, so either place can be fixed. */
export function settingName(path: string): string {
  return `${path} / ${envName(path.split('.'))}`;
}

/** Every environment variable of the config, one per key that holds a value (not a section). */
export const envSettings: readonly EnvSetting[] = (() => {
  const out: EnvSetting[] = [];
  const walk = (schema: SchemaNode, path: string[]) => {
    if (schema.type === 'object' && schema.properties) {
      for (const [k, s] of Object.entries(schema.properties)) walk(s, [...path, k]);
    } else {
      out.push({ name: envName(path), path, schema });
    }
  };
  walk(configSchemaNode, []);
  return out;
})();

/** Variables read outside the config file's keys (engine/config/aggregatesFile.ts). */
const OTHER_VARIABLES = ['CXSTREAM_AGGREGATES'];

/** The names of every `CXSTREAM_*` variable cxstream reads. */
export function knownVariables(): string[] {
  return [...envSettings.map((s) => s.name), ...OTHER_VARIABLES];
}

/**
 * `CXSTREAM_*` variables of `env` that cxstream does not read (a typo leaves a setting at its
 * default without a word), each with the closest known name when it is near.
 */
export function unknownVariables(env: NodeJS.ProcessEnv): Array<{ name: string; suggestion?: string }> {
  const known = knownVariables();
  const prefix = 'CXSTREAM_';
  const suffixes = known.map((k) => k.slice(prefix.length));
  return Object.keys(env)
    .filter((name) => name.startsWith(prefix) && !known.includes(name))
    .sort()
    .map((name) => {
      // compared without the common prefix, which would make every name look near
      const { suggestion } = suggest(name.slice(prefix.length), suffixes);
      return { name, ...(suggestion && { suggestion: prefix + suggestion }) };
    });
}

/** The candidate nearest to `word`, when it is near enough to be a typo of it. */
export function suggest(word: string, candidates: readonly string[]): { suggestion?: string } {
  if (candidates.length === 0) return {};
  const best = closest(word, candidates as string[]);
  // a third of the word may differ: CXSTREAM_METRIC_PORT → CXSTREAM_METRICS_PORT, wrn → warn
  return distance(word, best) <= Math.max(2, Math.floor(word.length / 3)) ? { suggestion: best } : {};
}
