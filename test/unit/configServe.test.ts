/** Config loading: the `clickhouse.serve` section, nested environment overrides, bind checks. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLoopback, loadConfig } from '../../engine/config/config.js';
import { envName } from '../../engine/config/environment.js';
import { isConfigError } from '../../engine/config/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'cxstream-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (isConfigError(e))
      return e.problems.map((p) => `${p.file.replace(dir, 'DIR')}:${p.line}: ${p.message}`);
    throw e;
  }
  throw new Error('no ConfigError');
}

describe('clickhouse.serve', () => {
  it('defaults to a read-only endpoint on 127.0.0.1:8123 with result and time limits', () => {
    const serve = loadConfig(undefined, {}).clickhouse.serve;
    expect([serve.host, serve.port, serve.password]).toEqual(['127.0.0.1', 8123, '']);
    expect([serve.maxResultRows, serve.maxResultBytes, serve.maxExecutionTimeSec]).toEqual([1e6, 1e8, 60]);
    expect([serve.user, serve.maxConcurrentQueries]).toEqual(['default', 2]);
  });

  it('takes nested environment overrides', () => {
    expect(envName(['clickhouse', 'serve', 'maxResultRows'])).toBe(
      'CXSTREAM_CLICKHOUSE_SERVE_MAX_RESULT_ROWS',
    );
    const serve = loadConfig(undefined, {
      CXSTREAM_CLICKHOUSE_SERVE_PORT: '0',
      CXSTREAM_CLICKHOUSE_SERVE_MAX_RESULT_ROWS: '10',
      CXSTREAM_CLICKHOUSE_SERVE_PASSWORD: 'pw',
    }).clickhouse.serve;
    expect(serve).toMatchObject({ port: 0, maxResultRows: 10, password: 'pw' });
    expect(problemsOf(() => loadConfig(undefined, { CXSTREAM_CLICKHOUSE_SERVE_PORT: 'eighty' }))).toEqual([
      'environment:0: CXSTREAM_CLICKHOUSE_SERVE_PORT=eighty is not an integer (clickhouse.serve.port)',
    ]);
  });

  it('refuses an address other than loopback without a password, naming the settings', () => {
    const file = join(dir, 'open.yaml');
    writeFileSync(file, 'clickhouse:\n  serve:\n    host: 0.0.0.0\n');
    expect(problemsOf(() => loadConfig(file, {}))).toEqual([
      'DIR/open.yaml:3: clickhouse.serve.host 0.0.0.0 is not a loopback address: set clickhouse.serve.password (CXSTREAM_CLICKHOUSE_SERVE_PASSWORD), or serve on 127.0.0.1',
    ]);
    expect(loadConfig(file, { CXSTREAM_CLICKHOUSE_SERVE_PASSWORD: 'secret' }).clickhouse.serve.host).toBe(
      '0.0.0.0',
    );
    expect(loadConfig(file, { CXSTREAM_CLICKHOUSE_SERVE_PORT: '0' }).clickhouse.serve.port).toBe(0);
    expect(
      problemsOf(() => loadConfig(undefined, { CXSTREAM_CLICKHOUSE_SERVE_HOST: '10.0.0.5' }))[0],
    ).toMatch(
      /^environment:0: CXSTREAM_CLICKHOUSE_SERVE_HOST: clickhouse.serve.host 10.0.0.5 is not a loopback address/,
    );
    writeFileSync(file, 'clickhouse:\n  serve:\n    prot: 1\n');
    expect(problemsOf(() => loadConfig(file, {}))).toEqual([
      'DIR/open.yaml:3: clickhouse.serve.prot is not a known key (did you mean clickhouse.serve.port?)',
    ]);
    expect([
      isLoopback('127.0.0.1'),
      isLoopback('127.1.2.3'),
      isLoopback('::1'),
      isLoopback('localhost'),
    ]).toEqual([true, true, true, true]);
    expect([isLoopback('0.0.0.0'), isLoopback('::'), isLoopback('192.168.1.2')]).toEqual([
      false,
      false,
      false,
    ]);
  });
});
