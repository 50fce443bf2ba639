import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import { privacyProblems } from '../../operators/privacy.js';
import { hideInLogs, log } from '../runtime/log.js';
import { type Config, configSchema, configSchemaNode, type SchemaNode } from './configSchema.js';
import { type EnvSetting, envSettings, suggest, unknownVariables } from './environment.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { redactUrl, urlSecrets } from './redact.js';
import { parseYaml, readYamlFile, type YamlFile } from './yamlFile.js';

/** The root of the installed package (where `config/` ships). */
export const packageRoot = (() => {
  const here = fileURLToPath(import.meta.url);
  // engine/config/config.ts from the sources (tests), dist/engine/config/config.js once built.
  return resolve(dirname(here), here.endsWith('.ts') ? '../..' : '../../..');
})();

/** The version of this cxstream (package.json), as `cxstream --version` prints it and checkpoints record it. */
export const cxstreamVersion: string = (
  JSON.parse(readFileSync(resolve(packageRoot, 'package.json'), 'utf8')) as { version: string }
).version;

/** The config file used when none is given. */
export const defaultConfigFile = resolve(packageRoot, 'config/default.yaml');

/** The configuration (its schema, with every key documented, is in ./configSchema.ts). */
export type { Config } from './configSchema.js';

const ajvOptions = { allErrors: true, useDefaults: true, strict: true } as const;
/** Annotations of this schema that ajv does not know (strict mode refuses unknown keywords). */
function withAnnotations(ajv: Ajv): Ajv {
  return ajv.addKeyword({ keyword: 'hint', schemaType: 'string' });
}
// The file is validated without coercion (a quoted number in YAML is a mistake to report); the
// environment's values are strings by nature, so the second pass coerces them to the schema's types.
const validateFile = withAnnotations(new Ajv(ajvOptions)).compile<Config>(configSchema);
const validateWithEnv = withAnnotations(new Ajv({ ...ajvOptions, coerceTypes: true })).compile<Config>(
  configSchema,
);

/**
 * Loads a config file (or the defaults), applies environment overrides and validates once.
 * Every key has an override named `CXSTREAM_<SECTION>_<KEY>` in upper snake case
 * (`CXSTREAM_ENGINE_PARTITIONS`, `CXSTREAM_NATS_URL`, `CXSTREAM_NATS_TLS_CA`); `CXSTREAM_RULES` is
 * comma separated. Relative paths resolve against the working directory; the shipped rule file is
 * found from the package when the working directory has none.
 * @throws ConfigError with file:line for every problem (or the variable, for the environment)
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const configFile = file ?? defaultConfigFile;
  const yaml = readYamlFile(configFile);
  const value: unknown = yaml.value ?? {};
  if (!validateFile(value)) throw new ConfigError(byLine(fileProblems(validateFile.errors ?? [], yaml)));
  const merged = structuredClone(value) as Record<string, unknown>;
  const fromEnv = applyEnv(merged, env);
  if (!validateWithEnv(merged))
    throw new ConfigError(envProblems(validateWithEnv.errors ?? [], fromEnv, env, yaml));
  const config = merged as Config;
  const crossProblems = crossChecks(config, fromEnv, yaml);
  if (crossProblems.length > 0) throw new ConfigError(crossProblems);
  hideInLogs(
    config.nats.password,
    config.nats.token,
    config.nats.nkeySeed,
    config.metrics.token,
    ...urlSecrets(config.nats.url),
    ...urlSecrets(config.clickhouse.url),
  );
  // set on purpose (file or CXSTREAM_LOG_LEVEL): else the command's own level stays
  if (config.log.level !== '') log.level = config.log.level;
  config.rules = config.rules.map((r) => resolveShipped(r));
  if (config.engine.partitions === 0) config.engine.partitions = Math.max(1, availableParallelism() - 1);
  return deepFreeze(config);
}

/** Whether `host` names this machine only (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '::ffff:127.0.0.1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * Checks the `CXSTREAM_*` variables on their own (before a command loads its config file): a bad
 * value is a ConfigError naming the variable; unknown names are returned, with a suggestion when
 * one is near, for the caller to warn about.
 * @throws ConfigError
 */
export function checkEnvironment(
  env: NodeJS.ProcessEnv = process.env,
): Array<{ name: string; suggestion?: string }> {
  const merged: Record<string, unknown> = {};
  const fromEnv = applyEnv(merged, env);
  if (!validateWithEnv(merged))
    throw new ConfigError(
      envProblems(validateWithEnv.errors ?? [], fromEnv, env, parseYaml('', 'environment')),
    );
  return unknownVariables(env);
}

/** The config with every default and no file or environment (tests, tools). */
export function defaultConfig(): Config {
  const value = {};
  validateFile(value);
  return value as Config;
}

/** `engine.minEventTime` as epoch ms. */
export function minEventTs(config: Readonly<Config>): number {
  return parseConfigTime(config.engine.minEventTime);
}

function parseConfigTime(text: string): number {
  // A date alone is UTC midnight (Date.parse's rule); a time without a zone would be local: make it UTC.
  const iso = text.replace(' ', 'T');
  const withZone = /T.*(Z|[+-]\d{2}:?\d{2})$/.test(iso) || !iso.includes('T') ? iso : `${iso}Z`;
  return Date.parse(withZone);
}

/** Sets each `CXSTREAM_*` variable's string at its path; returns the variables used by path. */
function applyEnv(config: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, EnvSetting> {
  const used = new Map<string, EnvSetting>();
  for (const setting of envSettings) {
    const raw = env[setting.name];
    if (raw === undefined || raw.trim() === '') continue;
    let target = config;
    for (const key of setting.path.slice(0, -1)) {
      const next = target[key];
      if (next === null || typeof next !== 'object') target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    const last = setting.path.at(-1)!;
    target[last] =
      setting.schema.type === 'array'
        ? raw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : raw;
    used.set(setting.path.join('.'), setting);
  }
  return used;
}

/** The key path of an ajv error (the unknown key itself for additionalProperties). */
function errorPath(err: ErrorObject): string[] {
  const path = err.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  return err.keyword === 'additionalProperties' ? [...path, String(err.params.additionalProperty)] : path;
}

/** The schema of the key at `path`, if the path is a known one. */
function schemaAt(path: readonly string[]): SchemaNode | undefined {
  let schema: SchemaNode | undefined = configSchemaNode;
  for (const key of path) {
    if (schema?.type === 'array') schema = schema.items;
    else schema = schema?.properties?.[key];
  }
  return schema;
}

/** What is wrong with the value, in words (without the key's name). */
function detailOf(err: ErrorObject, value: unknown): string {
  const path = errorPath(err);
  const schema = schemaAt(err.keyword === 'additionalProperties' ? path.slice(0, -1) : path);
  switch (err.keyword) {
    case 'additionalProperties': {
      const known = Object.keys(schema?.properties ?? {});
      const { suggestion } = suggest(String(err.params.additionalProperty), known);
      return `is not a known key${suggestion ? ` (did you mean ${[...path.slice(0, -1), suggestion].join('.')}?)` : ''}`;
    }
    case 'enum': {
      const allowed = (err.params.allowedValues as unknown[]).map(String);
      const { suggestion } = typeof value === 'string' ? suggest(value, allowed) : {};
      // '' stands for "not set" (the default chosen elsewhere): named apart, not as an empty item
      const named = allowed.filter((v) => v !== '').join(', ');
      return `must be one of ${named}${allowed.includes('') ? ' (or "" for the default)' : ''}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`;
    }
    case 'pattern': {
      const hint = schemaAt(path)?.hint;
      return hint ? `must be ${hint}` : (err.message ?? 'is invalid');
    }
    default:
      return err.message ?? 'is invalid';
  }
}

/** The value as it may be printed: secrets never, URLs without their password. */
function printable(path: readonly string[], value: unknown): string {
  if (schemaAt(path)?.writeOnly) return '(hidden)';
  return redactUrl(typeof value === 'string' ? value : JSON.stringify(value));
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let v = root;
  for (const k of path)
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** In the order of the file (ajv reports a section's unknown keys before the sections' contents). */
function byLine(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.i - b.i)
    .map(({ p }) => p);
}

function fileProblems(errors: ErrorObject[], yaml: YamlFile): ConfigProblem[] {
  return errors.map((err) => {
    const path = errorPath(err);
    const value = valueAt(yaml.value, path);
    const name = path.join('.') || '(root)';
    const got =
      err.keyword === 'pattern' || err.keyword === 'enum'
        ? ` (got ${JSON.stringify(printable(path, value))})`
        : '';
    return yaml.problem(path, `${name} ${detailOf(err, value)}${got}`);
  });
}

function envProblems(
  errors: ErrorObject[],
  fromEnv: Map<string, EnvSetting>,
  env: NodeJS.ProcessEnv,
  yaml: YamlFile,
): ConfigProblem[] {
  return errors.map((err) => {
    const path = errorPath(err);
    // an array's error names the item (rules/0): the variable is the array's
    const setting = fromEnv.get(path.join('.')) ?? fromEnv.get(path.slice(0, -1).join('.'));
    if (!setting) return yaml.problem(path, `${path.join('.')} ${detailOf(err, undefined)}`);
    const value = env[setting.name] ?? '';
    const detail =
      err.keyword === 'type' ? `is not ${typeWord(String(err.params.type))}` : detailOf(err, value);
    return {
      file: 'environment',
      line: 0,
      message: `${setting.name}=${printable(setting.path, value)} ${detail} (${setting.path.join('.')})`,
    };
  });
}

function typeWord(type: string): string {
  return type === 'integer' ? 'an integer' : `a ${type}`;
}

/** Rules between keys that one key's schema cannot state. */
function crossChecks(config: Config, fromEnv: Map<string, EnvSetting>, yaml: YamlFile): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const at = (path: string[], message: string): ConfigProblem => {
    const setting = fromEnv.get(path.join('.'));
    return setting
      ? { file: 'environment', line: 0, message: `${setting.name}: ${message}` }
      : yaml.problem(path, message);
  };
  const serve = config.clickhouse.serve;
  if (serve.port > 0 && serve.password === '' && !isLoopback(serve.host))
    problems.push(
      at(
        ['clickhouse', 'serve', 'host'],
        `clickhouse.serve.host ${serve.host} is not a loopback address: set clickhouse.serve.password (CXSTREAM_CLICKHOUSE_SERVE_PASSWORD), or serve on 127.0.0.1`,
      ),
    );
  const { cluster, url } = config.clickhouse;
  if (cluster !== '' && url.startsWith('embedded:'))
    problems.push(
      at(
        ['clickhouse', 'cluster'],
        `clickhouse.cluster ${cluster} needs a ClickHouse server: the embedded store (clickhouse.url ${url}) is one process; set clickhouse.url to http(s)://user:pass@host:port/db of a server of the cluster, or clickhouse.cluster to ""`,
      ),
    );
  const { engine } = config;
  if (engine.partitions > engine.keyGroups)
    problems.push(
      at(
        ['engine', 'partitions'],
        `engine.partitions ${engine.partitions} is more than engine.keyGroups ${engine.keyGroups}: a worker would own no customers; use at most ${engine.keyGroups} partitions`,
      ),
    );
  const { nats } = config;
  const pairs: Array<[string, string]> = [
    ['password', 'passwordFile'],
    ['token', 'tokenFile'],
    ['nkeySeed', 'nkeySeedFile'],
  ];
  for (const [inline, file] of pairs) {
    if (nats[inline as 'password'] !== '' && nats[file as 'passwordFile'] !== '')
      problems.push(at(['nats', file], `nats.${inline} and nats.${file} exclude each other: set one`));
  }
  const hasPassword = nats.password !== '' || nats.passwordFile !== '';
  if (nats.user !== '' && !hasPassword)
    problems.push(at(['nats', 'user'], 'nats.user needs nats.password or nats.passwordFile'));
  if (nats.user === '' && hasPassword)
    problems.push(
      at(['nats', nats.password !== '' ? 'password' : 'passwordFile'], 'a NATS password needs nats.user'),
    );
  const methods = [
    nats.user !== '' && 'user/password',
    (nats.token !== '' || nats.tokenFile !== '') && 'token',
    (nats.nkeySeed !== '' || nats.nkeySeedFile !== '') && 'nkey',
    nats.creds !== '' && 'creds',
  ].filter(Boolean);
  if (methods.length > 1)
    problems.push(at(['nats'], `nats: give one way to authenticate, not ${methods.join(' and ')}`));
  if ((nats.tls.cert === '') !== (nats.tls.key === ''))
    problems.push(
      at(
        ['nats', 'tls', nats.tls.cert !== '' ? 'cert' : 'key'],
        'nats.tls.cert and nats.tls.key go together',
      ),
    );
  for (const name of ['events', 'triggers', 'deadLetters'] as const) {
    const s = config.streams[name];
    if (s.maxAgeMs > 0 && s.duplicateWindowMs > s.maxAgeMs)
      problems.push(
        at(
          ['streams', name, 'duplicateWindowMs'],
          `streams.${name}.duplicateWindowMs (${s.duplicateWindowMs}) must not exceed streams.${name}.maxAgeMs (${s.maxAgeMs})`,
        ),
      );
  }
  if (config.metrics.token !== '' && config.metrics.tokenFile !== '')
    problems.push(
      at(['metrics', 'tokenFile'], 'metrics.token and metrics.tokenFile exclude each other: set one'),
    );
  for (const p of privacyProblems(config.privacy)) {
    const setting = fromEnv.get(`privacy.${p.key}`);
    problems.push(
      setting
        ? { file: 'environment', line: 0, message: `${setting.name}: ${p.message}` }
        : yaml.problem(['privacy', p.key, p.index], `privacy.${p.key}[${p.index}]: ${p.message}`),
    );
  }
  if (Number.isNaN(parseConfigTime(config.engine.minEventTime)))
    problems.push(
      at(
        ['engine', 'minEventTime'],
        `engine.minEventTime "${config.engine.minEventTime}" is not a valid time`,
      ),
    );
  return problems;
}

function resolveShipped(path: string): string {
  if (isAbsolute(path)) return path;
  const local = resolve(path);
  if (existsSync(local)) return local;
  const shipped = resolve(packageRoot, path);
  return existsSync(shipped) ? shipped : local;
}

function deepFreeze<T>(o: T): Readonly<T> {
  for (const v of Object.values(o as object)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(o);
}
