/**
 * The `cxstream` command line as a child process (the compiled CLI: `npm run build` first):
 * one-shot commands with their output, and `cxstream clickhouse serve` as a server a test can
 * SIGKILL and start again on the same directory and port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { runReplay } from '../../engine/cli/replay.js';
import { check } from './check.js';

const root = resolve(import.meta.dirname, '../..');

/** What a process printed, and how it ended. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Collects what `child` prints until it exits; SIGKILLs it and rejects after `timeoutMs`. */
export function finished(child: ChildProcess, timeoutMs: number, what: string): Promise<Finished> {
  return new Promise((done, fail) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`${what} did not end within ${timeoutMs} ms:\n${stderr.slice(-4000)}`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** This process's environment without the CXSTREAM_* settings a developer may have exported, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CXSTREAM_')) env[k] = v;
  return { ...env, ...extra };
}

/** Runs `cxstream ARGS` to its end in `cwd` (the repository by default), with `env` as its only CXSTREAM_* settings. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<Finished> {
  const child = spawn(process.execPath, [join(root, 'bin/cxstream.js'), ...args], {
    cwd: options.cwd ?? root,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return finished(child, options.timeoutMs ?? 60_000, `cxstream ${args.join(' ')}`);
}

/** Runs `cxstream ARGS` (a command printing JSON) and parses its output; a non-zero exit throws with its stderr. */
export async function cliJson<T>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const run = await runCli(args, env);
  if (run.code !== 0) throw new Error(`exit ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** {@link cliJson} again until `ready` holds for its output (30 s); `context()` goes in the timeout message. */
export function cliJsonWhen<T>(
  args: string[],
  env: Record<string, string>,
  ready: (output: T) => boolean,
  context: () => string = () => '',
): Promise<T> {
  return check(
    async () => {
      const output = await cliJson<T>(args, env);
      return ready(output) ? output : null;
    },
    30_000,
    context,
    200,
  );
}

/** A free TCP port on 127.0.0.1 (free when asked; tests start their server on it at once). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** A running `cxstream clickhouse serve --dir DIR --port PORT`. */
export class ServeProcess {
  readonly url: string;
  readonly exited: Promise<number | null>;
  private output = '';
  private readonly child: ChildProcess;

  private constructor(dir: string, port: number, extra: string[]) {
    this.url = `http://127.0.0.1:${port}`;
    this.child = spawn(
      process.execPath,
      [join(root, 'bin/cxstream.js'), 'clickhouse', 'serve', '--dir', dir, '--port', String(port), ...extra],
      { cwd: root, env: cleanEnv({ CXSTREAM_LOG_LEVEL: 'warn' }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer) => {
      this.output = `${this.output}${d.toString()}`.slice(-20_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  /** Starts the server and resolves once it answers /ping. */
  static async start(dir: string, port: number, extra: string[] = []): Promise<ServeProcess> {
    const p = new ServeProcess(dir, port, extra);
    await check(
      async () => {
        if (!p.running) throw new Error(`exited: ${p.output}`);
        return (await fetch(`${p.url}/ping`)).ok;
      },
      30_000,
      () => p.output,
      100,
    );
    return p;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What it printed (stdout and stderr), last 20 kB. */
  get log(): string {
    return this.output;
  }

  /** SIGKILL: an outage. Resolves when the process is gone. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: a clean stop. */
  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/**
 * Writes `DIR/config.yaml` for a one-shot command on this nats-server: embedded ClickHouse in
 * `DIR/clickhouse` (not served), state in `DIR/state`, the rules of `DIR/rules.yaml`, two
 * partitions, and `extra` lines (other sections); returns its path.
 */
export function writeConfig(dir: string, natsUrl: string, extra: string[] = []): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    [
      'nats:',
      `  url: ${natsUrl}`,
      'clickhouse:',
      `  url: embedded:${join(dir, 'clickhouse')}`,
      '  serve:',
      '    port: 0',
      'state:',
      `  dir: ${join(dir, 'state')}`,
      'rules:',
      `  - ${join(dir, 'rules.yaml')}`,
      'engine:',
      '  partitions: 2',
      ...extra,
    ].join('\n'),
  );
  return file;
}

/**
 * `replay --publish` of `DIR/events.ndjson` with `DIR/config.yaml` ({@link writeConfig}), without
 * the aggregates (sets `CXSTREAM_AGGREGATES` empty: restore `process.env` after), output discarded.
 */
export async function replayPublished(dir: string): Promise<void> {
  process.env.CXSTREAM_AGGREGATES = '';
  await runReplay({
    file: join(dir, 'events.ndjson'),
    config: join(dir, 'config.yaml'),
    publish: true,
    out: new Writable({ write: (_c, _e, cb) => cb() }),
  });
}
