import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { ConfigError, type ConfigProblem } from './errors.js';
import { readYamlFile } from './yamlFile.js';

/** The root of the installed package (where `config/` ships). */
export const packageRoot = (() => {
  const here = fileURLToPath(import.meta.url);
  // engine/config/config.ts from the sources (tests), dist/engine/config/config.js once built.
  return resolve(dirname(here), here.endsWith('.ts') ? '../..' : '../../..');
})();

/** The config file used when none is given. */
export const defaultConfigFile = resolve(packageRoot, 'config/default.yaml');

/**
 * `clickhouse.serve`: the HTTP endpoint (ClickHouse's HTTP interface) over the embedded store that
 * an engine holding it serves read-only (engine/query/queryServer.ts).
 */
export interface QueryServeConfig {
  /** TCP port; 0 turns the endpoint off. When taken, any free port is used instead (logged). @default 8123 */
  port: number;
  /** Address to bind; anything but a loopback address needs `password`. @default '127.0.0.1' */
  host: string;
  /** User name required with `password`. @default 'default' */
  user: string;
  /** When set, every request must authenticate as `user` with it. @default '' */
  password: string;
  /** Most rows in one result (ClickHouse `max_result_rows`; a request may only lower it). @default 1000000 */
  maxResultRows: number;
  /** Most bytes in one result (`max_result_bytes`). @default 100000000 */
  maxResultBytes: number;
  /** Longest a query may run, seconds (`max_execution_time`). @default 60 */
  maxExecutionTimeSec: number;
  /**
   * Queries run at once; more wait in line. The queries share the process (and libuv's four
   * threads) with the engine's own inserts, which must not starve. @default 2
   */
  maxConcurrentQueries: number;
}

/** The engine's configuration, as in `config/default.yaml` (every key documented there). */
export interface Config {
  nats: {
    /** Server(s), comma separated. @default 'nats://127.0.0.1:4222' */
    url: string;
    /** Durable consumer name on CX_EVENTS. @default 'cxstream' */
    durable: string;
    /** @default 30000 */
    ackWaitMs: number;
    /** Most events pulled and not yet acked. @default 100000 */
    maxInFlight: number;
  };
  clickhouse: {
    /** `embedded:DIR` (chDB in-process) or `http(s)://user:pass@host:port/db`. @default 'embedded:./.cxstream/clickhouse' */
    url: string;
    /** @default 1000 */
    flushIntervalMs: number;
    /** @default 500000 */
    maxBufferedRows: number;
    /** ClickHouse's HTTP interface for the embedded store, served while this process holds it. */
    serve: QueryServeConfig;
  };
  state: {
    /** Local directory for embedded checkpoints. @default './.cxstream/state' */
    dir: string;
  };
  checkpoint: {
    /** Period of the partition checkpoints; events are acked only once a checkpoint covers them. @default 2000 */
    intervalMs: number;
    /** `local` (state.dir) or `nats` (object store `cx_checkpoints`, for clustered deployments). @default 'local' */
    store: 'local' | 'nats';
    /** Stream replicas of the `cx_checkpoints` bucket when cxstream creates it. @default 1 */
    replicas: number;
    /**
     * Incremental checkpoints: deltas (changed customers only) after a full one before the next full
     * one, which also comes once the deltas outgrow it; 0 = every checkpoint full. @default 100
     */
    maxDeltas: number;
  };
  /** Rule files. @default ['config/rules.yaml'] */
  rules: string[];
  engine: {
    /** Partitions (one worker thread each); 0 = one per core less one for the main thread, at least 1. @default 0 */
    partitions: number;
    /** @default 1000 */
    batchMaxEvents: number;
    /** @default 'Asia/Shanghai' */
    defaultTz: string;
    /** @default 60000 */
    profileIntervalMs: number;
    /** @default 5000 */
    tickIntervalMs: number;
    /** Watermark = highest event time seen − this; older events are late. @default 5000 */
    allowedLatenessMs: number;
    /** Wall-clock ms without events after which a partition's watermark follows the clock. @default 10000 */
    idleAfterMs: number;
    /**
     * Events whose `ts` is more than this ahead of the wall clock of their batch are dead-lettered:
     * they would move the watermark into the future and fire every pending timer. @default 300000
     */
    maxFutureSkewMs: number;
  };
  metrics: {
    /** HTTP port of /metrics, /healthz, /readyz; 0 turns it off. @default 9464 */
    port: number;
    /** @default '127.0.0.1' */
    host: string;
  };
}

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    nats: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', minLength: 1 },
        durable: { type: 'string', pattern: '^[A-Za-z0-9_-]+$' },
        ackWaitMs: { type: 'integer', minimum: 1000 },
        maxInFlight: { type: 'integer', minimum: 1 },
      },
    },
    clickhouse: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', pattern: '^(embedded:.+|https?://.+)$' },
        flushIntervalMs: { type: 'integer', minimum: 10 },
        maxBufferedRows: { type: 'integer', minimum: 1000 },
        serve: {
          type: 'object',
          additionalProperties: false,
          properties: {
            port: { type: 'integer', minimum: 0, maximum: 65535 },
            host: { type: 'string', minLength: 1 },
            user: { type: 'string', minLength: 1 },
            password: { type: 'string' },
            maxResultRows: { type: 'integer', minimum: 1 },
            maxResultBytes: { type: 'integer', minimum: 1 },
            maxExecutionTimeSec: { type: 'number', exclusiveMinimum: 0 },
            maxConcurrentQueries: { type: 'integer', minimum: 1, maximum: 64 },
          },
        },
      },
    },
    state: {
      type: 'object',
      additionalProperties: false,
      properties: { dir: { type: 'string', minLength: 1 } },
    },
    checkpoint: {
      type: 'object',
      additionalProperties: false,
      properties: {
        intervalMs: { type: 'integer', minimum: 100 },
        store: { enum: ['local', 'nats'] },
        replicas: { type: 'integer', minimum: 1, maximum: 5 },
        maxDeltas: { type: 'integer', minimum: 0 },
      },
    },
    rules: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
    engine: {
      type: 'object',
      additionalProperties: false,
      properties: {
        partitions: { type: 'integer', minimum: 0, maximum: 256 },
        batchMaxEvents: { type: 'integer', minimum: 1 },
        defaultTz: { type: 'string', minLength: 1 },
        profileIntervalMs: { type: 'integer', minimum: 0 },
        tickIntervalMs: { type: 'integer', minimum: 100 },
        allowedLatenessMs: { type: 'integer', minimum: 0 },
        idleAfterMs: { type: 'integer', minimum: 0 },
        maxFutureSkewMs: { type: 'integer', minimum: 0 },
      },
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: { port: { type: 'integer', minimum: 0, maximum: 65535 }, host: { type: 'string' } },
    },
  },
} as const;

const defaults: Config = {
  nats: { url: 'nats://127.0.0.1:4222', durable: 'cxstream', ackWaitMs: 30_000, maxInFlight: 100_000 },
  clickhouse: {
    url: 'embedded:./.cxstream/clickhouse',
    flushIntervalMs: 1000,
    maxBufferedRows: 500_000,
    serve: {
      port: 8123,
      host: '127.0.0.1',
      user: 'default',
      password: '',
      maxResultRows: 1_000_000,
      maxResultBytes: 100_000_000,
      maxExecutionTimeSec: 60,
      maxConcurrentQueries: 2,
    },
  },
  state: { dir: './.cxstream/state' },
  checkpoint: { intervalMs: 2000, store: 'local', replicas: 1, maxDeltas: 100 },
  rules: ['config/rules.yaml'],
  engine: {
    partitions: 0,
    batchMaxEvents: 1000,
    defaultTz: 'Asia/Shanghai',
    profileIntervalMs: 60_000,
    tickIntervalMs: 5000,
    allowedLatenessMs: 5000,
    idleAfterMs: 10_000,
    maxFutureSkewMs: 300_000,
  },
  metrics: { port: 9464, host: '127.0.0.1' },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/**
 * Loads a config file (or the defaults), applies environment overrides and validates once.
 * Every key has an override named `CXSTREAM_<SECTION>_<KEY>` in upper snake case
 * (`CXSTREAM_ENGINE_PARTITIONS`, `CXSTREAM_NATS_URL`); `CXSTREAM_RULES` is comma separated.
 * Relative paths resolve against the working directory; the shipped rule file is found from
 * the package when the working directory has none.
 * @throws ConfigError with file:line for every problem
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const configFile = file ?? defaultConfigFile;
  const yaml = readYamlFile(configFile);
  const problems: ConfigProblem[] = [];
  const fromFile = yaml.value ?? {};
  if (!validate(fromFile)) {
    for (const err of validate.errors ?? []) {
      const path = err.instancePath.split('/').slice(1);
      const where =
        err.keyword === 'additionalProperties' ? [...path, String(err.params.additionalProperty)] : path;
      const name = where.join('.') || '(root)';
      const detail =
        err.keyword === 'additionalProperties' ? 'is not a known key' : (err.message ?? 'is invalid');
      problems.push(yaml.problem(where, `${name} ${detail}`));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const merged = mergeDeep(structuredClone(defaults), fromFile as Partial<Config>);
  const envProblems = applyEnv(merged, env);
  if (envProblems.length > 0) throw new ConfigError(envProblems);
  if (!validate(merged)) {
    throw new ConfigError(
      (validate.errors ?? []).map((e) => ({
        file: 'environment',
        line: 0,
        message: `${e.instancePath.slice(1).replaceAll('/', '.')} ${e.message}`,
      })),
    );
  }
  const serve = merged.clickhouse.serve;
  if (serve.port > 0 && serve.password === '' && !isLoopback(serve.host)) {
    const where = ['clickhouse', 'serve', 'host'];
    const fromEnv = Boolean(env[envName(where)]);
    throw new ConfigError([
      {
        ...(fromEnv ? { file: 'environment', line: 0 } : yaml.problem(where, '')),
        message: `clickhouse.serve.host ${serve.host} is not a loopback address: set clickhouse.serve.password (${envName(['clickhouse', 'serve', 'password'])}), or serve on 127.0.0.1`,
      },
    ]);
  }
  merged.rules = merged.rules.map((r) => resolveShipped(r));
  if (merged.engine.partitions === 0) merged.engine.partitions = Math.max(1, availableParallelism() - 1);
  return deepFreeze(merged);
}

/** Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** `CXSTREAM_` + path in upper snake case, e.g. engine.batchMaxEvents → CXSTREAM_ENGINE_BATCH_MAX_EVENTS. */
export function envName(path: string[]): string {
  return `CXSTREAM_${path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function applyEnv(config: Config, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const rules = env[envName(['rules'])];
  if (rules !== undefined && rules.trim() !== '')
    config.rules = rules
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  for (const [section, values] of Object.entries(config)) {
    if (typeof values === 'object' && !Array.isArray(values)) applyEnvTo(values, [section], env, problems);
  }
  return problems;
}

/** Overrides the scalar keys of `values` (the config object at `path`) and of its nested objects. */
function applyEnvTo(
  values: Record<string, unknown>,
  path: string[],
  env: NodeJS.ProcessEnv,
  problems: ConfigProblem[],
): void {
  for (const [key, current] of Object.entries(values)) {
    if (current !== null && typeof current === 'object' && !Array.isArray(current)) {
      applyEnvTo(current as Record<string, unknown>, [...path, key], env, problems);
      continue;
    }
    const name = envName([...path, key]);
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (typeof current === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n))
        problems.push({ file: 'environment', line: 0, message: `${name}=${raw} is not a number` });
      else values[key] = n;
    } else {
      values[key] = raw;
    }
  }
}

function resolveShipped(path: string): string {
  if (isAbsolute(path)) return path;
  const local = resolve(path);
  if (existsSync(local)) return local;
  const shipped = resolve(packageRoot, path);
  return existsSync(shipped) ? shipped : local;
}

function mergeDeep<T>(target: T, source: Partial<T>): T {
  for (const [k, v] of Object.entries(source as object)) {
    const t = (target as Record<string, unknown>)[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && t && typeof t === 'object') mergeDeep(t, v);
    else (target as Record<string, unknown>)[k] = v;
  }
  return target;
}

function deepFreeze<T>(o: T): Readonly<T> {
  for (const v of Object.values(o as object)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(o);
}
