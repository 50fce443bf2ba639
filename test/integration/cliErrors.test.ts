/**
 * Start-up errors as a newcomer meets them, from the real binary: which setting, which system, what
 * to do; the exit codes; misspelled variables; the version.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, runCli } from '../harness/cli.js';

const root = resolve(import.meta.dirname, '../..');

describe('cxstream start-up errors', () => {
  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as {
      version: string;
    };
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${version}\n`);
  });

  it('NATS not running: names the URL, the setting and its variable, and what to do; exit 1', async () => {
    const port = await freePort();
    const r = await runCli(['setup'], { CXSTREAM_NATS_URL: `nats://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `cxstream: cannot connect to NATS at nats://127.0.0.1:${port} (nats.url / CXSTREAM_NATS_URL): connection refused`,
    );
    expect(r.stderr).toContain('Is nats-server running and reachable there?');
  });

  it('a bad CXSTREAM_LOG_LEVEL is a configuration error (exit 2), not a stack trace', async () => {
    const r = await runCli(['validate', 'config/default.yaml'], { CXSTREAM_LOG_LEVEL: 'wrn' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'environment: CXSTREAM_LOG_LEVEL=wrn must be one of fatal, error, warn, info, debug, trace, silent (or "" for the default) (did you mean warn?) (log.level)\n',
    );
  });

  it('a misspelled variable is a warning with the name it probably meant', async () => {
    const r = await runCli(['validate', 'config/default.yaml'], {
      CXSTREAM_METRIC_PORT: '9999',
      CXSTREAM_NATS_URLS: 'x',
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      'CXSTREAM_METRIC_PORT is not a cxstream setting (did you mean CXSTREAM_METRICS_PORT?); it is ignored',
    );
    expect(r.stderr).toContain(
      'CXSTREAM_NATS_URLS is not a cxstream setting (did you mean CXSTREAM_NATS_URL?); it is ignored',
    );
  });

  it('a ClickHouse URL without its scheme says what it must look like (exit 2)', async () => {
    const r = await runCli(['validate', 'config/default.yaml'], {
      CXSTREAM_CLICKHOUSE_URL: 'localhost:8123',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'CXSTREAM_CLICKHOUSE_URL=localhost:8123 must be embedded:DIR or http(s)://user:pass@host:port/db (clickhouse.url)',
    );
  });
});
