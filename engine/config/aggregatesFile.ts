import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Ajv } from 'ajv';
import {
  type RegionSurgeSpec,
  type ResolvedRegionSurge,
  resolveRegionSurge,
  SURGE_KEY_FIELDS,
} from '../../operators/regionSurge.js';
import { packageRoot } from './config.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { readYamlFiles } from './yamlFile.js';

/** The shipped aggregate rules (complaint_surge), used when `CXSTREAM_AGGREGATES` is not set. */
export const defaultAggregatesFile = 'config/aggregates.yaml';

const DURATION = { type: 'string', minLength: 1 } as const;

/** JSON schema of an aggregates file (structure; durations and ranges are checked by resolving). */
const schema = {
  type: 'object',
  required: ['aggregates'],
  additionalProperties: false,
  properties: {
    aggregates: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9_]+$' },
          description: { type: 'string' },
          type: { type: 'string', minLength: 1 },
          by: { enum: [...SURGE_KEY_FIELDS] },
          window: DURATION,
          step: DURATION,
          baseline: DURATION,
          threshold: { type: 'integer', minimum: 1 },
          factor: { type: 'number', minimum: 0 },
          cooldown: DURATION,
          lateness: DURATION,
          priority: { type: 'number' },
          subject: { type: 'string', pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$' },
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: true }).compile(schema);

/**
 * The aggregate files to load: `CXSTREAM_AGGREGATES` (comma separated; empty string = none), else the
 * shipped `config/aggregates.yaml` (found from the working directory, then from the package).
 */
export function aggregateFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.CXSTREAM_AGGREGATES;
  const files =
    raw === undefined
      ? [defaultAggregatesFile]
      : raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
  return files.map((f) => {
    if (isAbsolute(f) || existsSync(f)) return resolve(f);
    const shipped = resolve(packageRoot, f);
    return existsSync(shipped) ? shipped : resolve(f);
  });
}

/**
 * Reads and validates aggregate files (docs/AGGREGATES.md); returns the resolved specs, or throws one
 * ConfigError listing every problem as file:line.
 */
export function loadAggregates(files: string[]): ResolvedRegionSurge[] {
  const problems: ConfigProblem[] = [];
  const out: ResolvedRegionSurge[] = [];
  const seen = new Map<string, string>();
  for (const yaml of readYamlFiles(files, problems)) {
    const { file } = yaml;
    const value = yaml.value ?? {};
    if (!validate(value)) {
      for (const err of validate.errors ?? []) {
        const path: (string | number)[] = err.instancePath
          .split('/')
          .slice(1)
          .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
        const extra = (err.params as { additionalProperty?: string }).additionalProperty;
        if (err.keyword === 'additionalProperties' && extra !== undefined) path.push(extra);
        const at =
          path
            .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
            .join('')
            .slice(1) || 'file';
        const detail =
          err.keyword === 'additionalProperties'
            ? `unknown key "${extra}"`
            : err.keyword === 'enum'
              ? `must be one of: ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`
              : (err.message ?? 'is invalid');
        problems.push(yaml.problem(path, `${at} ${detail}`));
      }
      continue;
    }
    (value as { aggregates: RegionSurgeSpec[] }).aggregates.forEach((spec, index) => {
      const where = `${file}:${yaml.lineOf(['aggregates', index, 'id'])}`;
      const first = seen.get(spec.id);
      if (first !== undefined) {
        problems.push(
          yaml.problem(
            ['aggregates', index, 'id'],
            `duplicate aggregate id "${spec.id}" (first at ${first})`,
          ),
        );
        return;
      }
      seen.set(spec.id, where);
      try {
        out.push(resolveRegionSurge(spec));
      } catch (e) {
        const path = (e as { path?: string[] }).path ?? [];
        problems.push(
          yaml.problem(['aggregates', index, ...path], `aggregates[${index}].${(e as Error).message}`),
        );
      }
    });
  }
  if (problems.length > 0) {
    const order = new Map(files.map((f, i) => [f, i]));
    problems.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
    throw new ConfigError(problems);
  }
  return out;
}
