/**
 * The config: one schema gives the defaults, the environment variables and the messages. The shipped
 * config/default.yaml must say the same as the schema's defaults; errors name file:line or the
 * variable, suggest the near name, and never print a secret.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkEnvironment,
  defaultConfig,
  defaultConfigFile,
  loadConfig,
  minEventTs,
} from '../../engine/config/config.js';
import { envName, envSettings, knownVariables, unknownVariables } from '../../engine/config/environment.js';
import { ConfigError, isConfigError } from '../../engine/config/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'cxstream-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string): string {
  const path = join(dir, `c${n++}.yaml`);
  writeFileSync(path, text);
  return path;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (isConfigError(e))
      return e.problems.map((p) =>
        p.line > 0 ? `${p.file}:${p.line}: ${p.message}` : `${p.file}: ${p.message}`,
      );
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('config defaults', () => {
  it('config/default.yaml says exactly what the schema defaults are', () => {
    const shipped = structuredClone(loadConfig(defaultConfigFile, {}));
    const fromSchema = structuredClone(loadConfig(file('{}\n'), {}));
    expect(shipped).toEqual(fromSchema);
    // every key of the schema is written in the shipped file, so people can read it there
    const text = readFileSync(defaultConfigFile, 'utf8');
    for (const s of envSettings) expect(text, s.path.join('.')).toContain(`${s.path.at(-1)}:`);
  });

  it('fills every section and key of an empty file', () => {
    const c = defaultConfig();
    expect(c.nats.url).toBe('nats://127.0.0.1:4222');
    expect(c.nats.tls).toEqual({ ca: '', cert: '', key: '' });
    expect(c.streams.events).toEqual({
      replicas: 1,
      maxAgeMs: 604_800_000,
      maxBytes: -1,
      duplicateWindowMs: 600_000,
    });
    expect(c.streams.deadLetters.maxAgeMs).toBe(30 * 86_400_000);
    expect(c.metrics).toEqual({ port: 9464, host: '127.0.0.1', token: '', tokenFile: '' });
    expect(c.log.level).toBe(''); // the command's own: info for run, warn for the others
    expect(c.engine.minEventTime).toBe('2000-01-01');
    expect(minEventTs(c)).toBe(Date.UTC(2000, 0, 1));
  });

  it('the contract variables keep their names', () => {
    for (const name of [
      'CXSTREAM_NATS_URL',
      'CXSTREAM_CLICKHOUSE_URL',
      'CXSTREAM_STATE_DIR',
      'CXSTREAM_RULES',
      'CXSTREAM_LOG_LEVEL',
      'CXSTREAM_METRICS_HOST',
      'CXSTREAM_NATS_CREDS',
      'CXSTREAM_NATS_TLS_CA',
      'CXSTREAM_STREAMS_EVENTS_DUPLICATE_WINDOW_MS',
      'CXSTREAM_AGGREGATES',
    ])
      expect(knownVariables()).toContain(name);
    expect(envName(['engine', 'batchMaxEvents'])).toBe('CXSTREAM_ENGINE_BATCH_MAX_EVENTS');
  });
});

describe('config file errors', () => {
  it('name the file and line, suggest the near key, and say what a value must look like', () => {
    const path = file(
      [
        'nats:',
        '  urll: nats://x:4222',
        '  ackWaitMs: "30000"',
        'clickhouse:',
        '  url: localhost:8123',
        'engine:',
        '  partitions: 1000',
        'log:',
        '  level: wrn',
        'metrik: {}',
      ].join('\n'),
    );
    expect(problems(() => loadConfig(path, {}))).toEqual([
      `${path}:2: nats.urll is not a known key (did you mean nats.url?)`,
      `${path}:3: nats.ackWaitMs must be integer`,
      `${path}:5: clickhouse.url must be embedded:DIR or http(s)://user:pass@host:port/db (got "localhost:8123")`,
      `${path}:7: engine.partitions must be <= 256`,
      `${path}:9: log.level must be one of fatal, error, warn, info, debug, trace, silent (or "" for the default) (did you mean warn?) (got "wrn")`,
      `${path}:10: metrik is not a known key (did you mean metrics?)`,
    ]);
  });

  it('refuse more partitions than key groups, at the line of engine.partitions', () => {
    const path = file(['engine:', '  keyGroups: 4', '  partitions: 6'].join('\n'));
    expect(problems(() => loadConfig(path, {}))).toEqual([
      `${path}:3: engine.partitions 6 is more than engine.keyGroups 4: a worker would own no customers; use at most 4 partitions`,
    ]);
    expect(
      loadConfig(file(['engine:', '  keyGroups: 4', '  partitions: 4'].join('\n')), {}).engine.partitions,
    ).toBe(4);
  });

  it('refuse a ClickHouse cluster over the embedded store, at the line of clickhouse.cluster', () => {
    const path = file(['clickhouse:', '  url: embedded:/tmp/x', '  cluster: analytics'].join('\n'));
    expect(problems(() => loadConfig(path, {}))).toEqual([
      `${path}:3: clickhouse.cluster analytics needs a ClickHouse server: the embedded store (clickhouse.url embedded:/tmp/x) is one process; set clickhouse.url to http(s)://user:pass@host:port/db of a server of the cluster, or clickhouse.cluster to ""`,
    ]);
    // from the environment: the variable is named
    expect(problems(() => loadConfig(undefined, { CXSTREAM_CLICKHOUSE_CLUSTER: 'analytics' }))).toEqual([
      'environment: CXSTREAM_CLICKHOUSE_CLUSTER: clickhouse.cluster analytics needs a ClickHouse server: the embedded store (clickhouse.url embedded:./.cxstream/clickhouse) is one process; set clickhouse.url to http(s)://user:pass@host:port/db of a server of the cluster, or clickhouse.cluster to ""',
    ]);
    const server = loadConfig(undefined, {
      CXSTREAM_CLICKHOUSE_URL: 'http://default:pw@ch1:8123/cx',
      CXSTREAM_CLICKHOUSE_CLUSTER: 'analytics',
    });
    expect(server.clickhouse.cluster).toBe('analytics');
    expect(defaultConfig().clickhouse.cluster).toBe('');
    const bad = file(['clickhouse:', '  url: http://ch1:8123/cx', "  cluster: 'a-b'"].join('\n'));
    expect(problems(() => loadConfig(bad, {}))).toEqual([
      `${bad}:3: clickhouse.cluster must be a cluster name of the servers' remote_servers: letters, digits and _ (got "a-b")`,
    ]);
  });

  it('never print a password: not of a URL, not of a secret key', () => {
    const path = file(
      ['clickhouse:', '  url: htp://analyst:Sup3rSecret@ch:8123/db', 'nats:', '  password: 12345678'].join(
        '\n',
      ),
    );
    const text = problems(() => loadConfig(path, {})).join('\n');
    expect(text).toContain('clickhouse.url must be');
    expect(text).toContain('htp://analyst:***@ch:8123/db');
    expect(text).toContain('nats.password must be string');
    expect(text).not.toContain('Sup3rSecret');
    expect(text).not.toContain('12345678');
  });

  it('check rules between keys', () => {
    const path = file(
      [
        'nats:',
        '  user: engine',
        '  token: abc',
        '  tls:',
        '    cert: /c.pem',
        'streams:',
        '  events:',
        '    maxAgeMs: 60000',
        '    duplicateWindowMs: 120000',
      ].join('\n'),
    );
    expect(problems(() => loadConfig(path, {}))).toEqual([
      `${path}:2: nats.user needs nats.password or nats.passwordFile`,
      `${path}:1: nats: give one way to authenticate, not user/password and token`,
      `${path}:5: nats.tls.cert and nats.tls.key go together`,
      `${path}:9: streams.events.duplicateWindowMs (120000) must not exceed streams.events.maxAgeMs (60000)`,
    ]);
  });
});

describe('environment overrides', () => {
  it('set any key, nested ones and lists included, coerced to the key type', () => {
    const c = loadConfig(undefined, {
      CXSTREAM_ENGINE_PARTITIONS: '3',
      CXSTREAM_NATS_TLS_CA: '/etc/ca.pem',
      CXSTREAM_STREAMS_TRIGGERS_MAX_AGE_MS: '86400000',
      CXSTREAM_RULES: 'config/rules.yaml, config/rules.yaml',
      CXSTREAM_METRICS_HOST: '0.0.0.0',
      CXSTREAM_LOG_LEVEL: 'warn',
    });
    expect(c.engine.partitions).toBe(3);
    expect(c.nats.tls.ca).toBe('/etc/ca.pem');
    expect(c.streams.triggers.maxAgeMs).toBe(86_400_000);
    expect(c.rules).toHaveLength(2);
    expect(c.metrics.host).toBe('0.0.0.0');
    expect(c.log.level).toBe('warn');
  });

  it('name the variable when its value is wrong, and hide secrets', () => {
    expect(
      problems(() =>
        loadConfig(undefined, {
          CXSTREAM_METRICS_PORT: 'abc',
          CXSTREAM_CLICKHOUSE_URL: 'localhost:8123',
          CXSTREAM_LOG_LEVEL: 'wrn',
        }),
      ),
    ).toEqual([
      'environment: CXSTREAM_CLICKHOUSE_URL=localhost:8123 must be embedded:DIR or http(s)://user:pass@host:port/db (clickhouse.url)',
      'environment: CXSTREAM_METRICS_PORT=abc is not an integer (metrics.port)',
      'environment: CXSTREAM_LOG_LEVEL=wrn must be one of fatal, error, warn, info, debug, trace, silent (or "" for the default) (did you mean warn?) (log.level)',
    ]);
    const secret = problems(() => loadConfig(undefined, { CXSTREAM_NATS_PASSWORD: 'hunter2-secret' })).join(
      '\n',
    );
    expect(secret).toBe('environment: CXSTREAM_NATS_PASSWORD: a NATS password needs nats.user');
    expect(secret).not.toContain('hunter2');
  });

  it('checkEnvironment: a bad log level is a ConfigError, unknown variables come back with a suggestion', () => {
    expect(() => checkEnvironment({ CXSTREAM_LOG_LEVEL: 'wrn' })).toThrow(ConfigError);
    expect(
      checkEnvironment({
        CXSTREAM_METRIC_PORT: '1',
        CXSTREAM_NATS_URLS: 'x',
        CXSTREAM_WHATEVER: '1',
        HOME: '/',
      }),
    ).toEqual([
      { name: 'CXSTREAM_METRIC_PORT', suggestion: 'CXSTREAM_METRICS_PORT' },
      { name: 'CXSTREAM_NATS_URLS', suggestion: 'CXSTREAM_NATS_URL' },
      { name: 'CXSTREAM_WHATEVER' },
    ]);
    expect(unknownVariables({ CXSTREAM_AGGREGATES: 'a.yaml', CXSTREAM_STATE_DIR: '/tmp' })).toEqual([]);
  });

  it('minEventTime accepts a date or an ISO time, in UTC unless it names a zone', () => {
    const at = (value: string) =>
      minEventTs(loadConfig(undefined, { CXSTREAM_ENGINE_MIN_EVENT_TIME: value }));
    expect(at('2015-06-01')).toBe(Date.UTC(2015, 5, 1));
    expect(at('2015-06-01T08:00:00')).toBe(Date.UTC(2015, 5, 1, 8));
    expect(at('2015-06-01T08:00:00+08:00')).toBe(Date.UTC(2015, 5, 1, 0));
    expect(problems(() => at('last year'))[0]).toContain(
      'CXSTREAM_ENGINE_MIN_EVENT_TIME=last year must be a date like 2000-01-01',
    );
  });
});
