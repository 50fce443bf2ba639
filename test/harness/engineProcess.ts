/**
 * The real `cxstream run` process for fault tests: started with env config, its JSON log lines
 * (stderr) kept and searchable, stopped with SIGTERM or killed with SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import type { NatsServer } from '../../engine/nats/natsServer.js';
import { check } from './check.js';
import { cleanup, setup, type TestNats } from './nats.js';

const root = resolve(import.meta.dirname, '../..');

/** One log line of the engine (pino JSON). */
export interface EngineLogLine {
  msg: string;
  level: number;
  /** When the test process read the line (ms). */
  seenAt: number;
  [field: string]: unknown;
}

/**
 * The environment of an engine under test: this nats-server, embedded ClickHouse and checkpoints
 * under `dir`, metrics on a free port, two partitions; `extra` adds or overrides settings.
 */
export function engineEnv(
  natsUrl: string,
  dir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CXSTREAM_NATS_URL: natsUrl,
    CXSTREAM_CLICKHOUSE_URL: `embedded:${dir}/clickhouse`,
    CXSTREAM_STATE_DIR: `${dir}/state`,
    CXSTREAM_METRICS_PORT: '0',
    CXSTREAM_ENGINE_PARTITIONS: '2',
    ...extra,
  };
}

/** A running `cxstream run`. */
export class EngineProcess {
  readonly lines: EngineLogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private tail = '';
  private readonly child: ChildProcess;

  /** Starts `node bin/cxstream.js run` with `env` added to this process's environment. */
  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ['--max-semi-space-size=64', join(root, 'bin/cxstream.js'), 'run'], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.exited = new Promise((r) => this.child.once('exit', (code, signal) => r({ code, signal })));
    let partial = '';
    this.child.stderr!.on('data', (d: Buffer) => {
      const text = partial + d.toString();
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        this.tail = `${this.tail}${line}\n`.slice(-20_000);
        try {
          this.lines.push({ ...(JSON.parse(line) as EngineLogLine), seenAt: Date.now() });
        } catch {
          // not a log line (a crash trace): kept in the tail only
        }
      }
    });
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first log line with this message, once seen. */
  line(msg: string): EngineLogLine | undefined {
    return this.lines.find((l) => l.msg === msg);
  }

  /** Resolves once the engine consumes: it creates the streams and its durable consumer on start. */
  async consuming(nc: NatsConnection, timeoutMs = 30_000): Promise<void> {
    const jsm = await jetstreamManager(nc);
    await check(
      () => jsm.consumers.info('CX_EVENTS', 'cxstream'),
      timeoutMs,
      () => this.stderrTail(),
    );
  }

  /**
   * Resolves once the engine's durable consumer has been delivered the first `published` messages
   * of CX_EVENTS and acked them all (acks follow a stored checkpoint).
   */
  async acked(nc: NatsConnection, published: number, timeoutMs = 30_000): Promise<void> {
    const jsm = await jetstreamManager(nc);
    await check(
      async () => {
        const info = await jsm.consumers.info('CX_EVENTS', 'cxstream');
        return info.delivered.stream_seq >= published && info.num_ack_pending === 0;
      },
      timeoutMs,
      () => this.stderrTail(),
    );
  }

  /** The engine's HTTP server (`/metrics`), once it logged where it listens. */
  httpUrl(): string | undefined {
    const port = this.line('http listening')?.port;
    return typeof port === 'number' ? `http://127.0.0.1:${port}` : undefined;
  }

  /**
   * The value of a counter or gauge without labels from `/metrics` (summed over its label sets),
   * or undefined while the process does not answer.
   */
  async metric(name: string): Promise<number | undefined> {
    const url = this.httpUrl();
    if (!url || !this.running) return undefined;
    try {
      const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
      let sum: number | undefined;
      for (const line of text.split('\n')) {
        const m = /^([a-z_]+)(\{[^}]*\})? ([-+.\deE]+|NaN)$/.exec(line);
        if (m?.[1] === name) sum = (sum ?? 0) + Number(m[3]);
      }
      return sum;
    } catch {
      return undefined;
    }
  }

  /** Last stderr output, for failure messages. */
  stderrTail(): string {
    return this.tail;
  }

  /** Sends a signal (e.g. SIGHUP: reload the rule files). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Every log line seen so far, as JSON text, one per line (for searching). */
  logText(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }

  /** SIGKILL: a crash. Resolves when the process is gone. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: drain and checkpoint. Resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    return (await this.exited).code;
  }
}

/** What the tests of a describe block share: a private nats-server, a connection to it, a directory. */
export interface EngineBed {
  server: NatsServer;
  nc: NatsConnection;
  /** A fresh temporary directory (ClickHouse, state, files of the test). */
  dir: string;
  /** The engine a test started: killed after the block if still running. */
  engine: EngineProcess;
}

/**
 * The harness's server, client and directory (test/harness/nats.ts `setup`) for a describe block's
 * tests (beforeAll), and after them (afterAll) the engine killed and all of it stopped. The fields are
 * set once the tests run.
 */
export function engineBed(prefix: string): EngineBed {
  const bed = {} as EngineBed;
  let t: TestNats | undefined;
  beforeAll(async () => {
    t = await setup({ dirPrefix: prefix });
    Object.assign(bed, { server: t.server, nc: t.nc, dir: t.dir });
  });
  afterAll(async () => {
    await bed.engine?.kill();
    await cleanup(t);
  });
  return bed;
}
