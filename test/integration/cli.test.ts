/**
 * The `cxstream` binary as a user runs it (bin/cxstream.js on the build in dist/: `npm run build`
 * first), each run in a fresh working directory: --version, human output on stdout with only
 * warnings logged, log lines above the replay progress bar, `funnel` right after `demo` and on a
 * store nothing has written to, and the hint when another process holds the embedded store.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTraffic } from '../../engine/demo/traffic.js';
import { check } from '../harness/check.js';
import { cleanEnv, type Finished, runCli } from '../harness/cli.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/cxstream.js');

/** Runs `node bin/cxstream.js ...args` in `cwd` to its end. */
function cxstream(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Finished> {
  return runCli(args, env, { cwd, timeoutMs: 300_000 });
}

/** Whether util-linux `script` (a pseudo-terminal for a command) is installed. */
function hasScript(): boolean {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The text a terminal would show of each line: escape sequences and carriage returns removed. */
function visibleLines(tty: string): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences
  return tty.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]|\r/g, '').split('\n');
}

let dir: string;
let history: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cxstream-cli-'));
  history = join(dir, 'history.ndjson');
  const events = generateTraffic({ customers: 40, seed: 5 });
  writeFileSync(history, `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh empty working directory. */
function workdir(name: string): string {
  const cwd = join(dir, name);
  mkdirSync(cwd);
  return cwd;
}

describe('cxstream --version', () => {
  it("prints package.json's version and exits 0", async () => {
    const run = await cxstream(['--version'], workdir('version'));
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(run).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });
});

describe('human output and log lines', () => {
  it('one-shot commands log warnings only: stdout holds the report, stderr no info lines', async () => {
    const cwd = workdir('quiet');
    const run = await cxstream(['replay', '--file', history, '--dry-run', '--sample', '2'], cwd);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^events applied\s+\d+\n/);
    expect(run.stdout).toContain('triggers would have fired');
    expect(run.stdout.split('\n').filter((l) => l.startsWith('{'))).toEqual([]);
    expect(run.stderr).toBe('');
  }, 60_000);

  it('CXSTREAM_LOG_LEVEL still asks for more', async () => {
    const cwd = workdir('verbose');
    const run = await cxstream(['replay', '--file', history, '--dry-run'], cwd, {
      CXSTREAM_LOG_LEVEL: 'info',
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('"msg":"engine started"');
    expect(run.stdout).not.toContain('"msg"');
  }, 60_000);

  it.skipIf(!hasScript())(
    'on a terminal, log lines print above the progress bar, never inside it',
    () => {
      const cwd = workdir('tty');
      // `script` runs the command on a pseudo-terminal, so the bar is drawn; its output is the screen's.
      const command = `CXSTREAM_LOG_LEVEL=info '${process.execPath}' '${bin}' replay --file '${history}' --dry-run`;
      const tty = execFileSync('script', ['-qec', command, '/dev/null'], {
        cwd,
        env: cleanEnv(),
        encoding: 'utf8',
        timeout: 60_000,
      });
      const lines = visibleLines(tty);
      expect(lines.some((l) => l.startsWith('replay ['))).toBe(true);
      const logged = lines.filter((l) => l.includes('"msg":"engine started"'));
      expect(logged).toHaveLength(1);
      // The whole line is the JSON log line: nothing of the bar before or after it.
      expect(logged[0]).toMatch(/^\{.*\}$/);
      expect(lines.some((l) => l.startsWith('events applied'))).toBe(true);
    },
    60_000,
  );
});

describe('cxstream funnel', () => {
  it('on a store nothing has written to: says how to fill one, and creates nothing', async () => {
    const cwd = workdir('empty');
    const run = await cxstream(['funnel'], cwd);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('no data in the embedded ClickHouse store ./.cxstream/clickhouse');
    expect(run.stderr).toContain('`cxstream demo` makes a sample one');
    expect(existsSync(join(cwd, '.cxstream'))).toBe(false);
  }, 60_000);

  describe('after the demo', () => {
    let cwd: string;
    let demo: Finished;

    beforeAll(async () => {
      cwd = workdir('demo');
      demo = await cxstream(['demo', '--no-nats', '--customers', '40', '--seed', '5'], cwd);
    }, 120_000);

    it('the demo says to run plain `npx cxstream funnel`', () => {
      expect(demo.code).toBe(0);
      expect(demo.stdout).toContain('query it: npx cxstream funnel --by variant\n');
    });

    it('the sample triggers show readable times in the customer zone', () => {
      expect(demo.stdout).toContain("sample triggers (times in the customer's zone;");
      const when = demo.stdout.match(
        /^ {2}(on .+ at|due) \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \([A-Za-z_]+\/[A-Za-z_]+\)/gm,
      );
      expect(when?.length).toBe(3);
    });

    it("reads the demo's store and says so", async () => {
      const run = await cxstream(['funnel', '--by', 'variant'], cwd);
      expect(run.stderr).toBe(
        'cxstream: reading embedded store ./.cxstream/demo/clickhouse (the data of `cxstream demo`: nothing in ./.cxstream/clickhouse yet)\n',
      );
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^variant\s+consulted/);
      expect(run.stdout).toMatch(/\ntotal\s+[1-9]\d*\s/);
      // The default store was only looked at, not created.
      expect(existsSync(join(cwd, '.cxstream/clickhouse'))).toBe(false);
    }, 60_000);

    it('while another process holds the store, says which one instead of failing obscurely', async () => {
      const store = join(cwd, '.cxstream/demo/clickhouse');
      const holder = holdStore(store);
      try {
        await check(() => holder.output.includes('holding'), 30_000);
        const run = await cxstream(['funnel'], cwd, { CXSTREAM_CLICKHOUSE_URL: `embedded:${store}` });
        expect(run.code).toBe(1);
        expect(run.stderr).toContain(
          `cxstream: the embedded ClickHouse directory ${store} is in use by process ${holder.child.pid}: `,
        );
        expect(run.stderr).toContain('stop that process first');
      } finally {
        holder.child.kill('SIGKILL');
      }
    }, 60_000);
  });
});

/** Another process with `store` open (as a running engine has), until killed. */
function holdStore(store: string): { child: ChildProcess; output: string } {
  const script = `
    const { openClickHouse } = await import(${JSON.stringify(join(root, 'dist/sinks/clickhouse.js'))});
    const client = openClickHouse(${JSON.stringify(`embedded:${store}`)});
    await (await client.query({ query: 'SELECT 1' })).text();
    console.log('holding');
    setInterval(() => {}, 60_000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const held = { child, output: '' };
  child.stdout!.on('data', (d: Buffer) => {
    held.output += d;
  });
  return held;
}
