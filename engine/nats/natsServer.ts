import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';

/** Options of {@link NatsServer.start}. */
export interface NatsServerOptions {
  /**
   * Enable JetStream.
   * @default true
   */
  jetstream?: boolean;
  /**
   * JetStream store directory; kept on stop when given here.
   * @default a fresh temporary directory, deleted on stop
   */
  storeDir?: string;
  /**
   * Client port.
   * @default a free port chosen by nats-server (`port: -1`)
   */
  port?: number;
  /**
   * Path of the nats-server binary.
   * @default {@link findNatsServer}()
   */
  binary?: string;
  /**
   * How long to wait for the server to accept TCP connections.
   * @default 15_000
   */
  startTimeoutMs?: number;
  /** TLS on the client port (nats-server `tls {}`); clients then connect with `tls://`. */
  tls?: NatsServerTls;
  /** Users and a token (nats-server `authorization {}`). */
  authorization?: NatsServerAuthorization;
  /** More configuration lines, as they go in the conf (operator mode). */
  extraConf?: string[];
  /**
   * Conf files to include (absolute paths), e.g. a shipped authorization block; nats-server resolves
   * `include` relative to the conf, so the launcher writes the relative path.
   */
  include?: string[];
  /** Environment of the server process: nats-server resolves `$NAME` in its conf from it. */
  env?: Record<string, string>;
}

/** TLS of a test server's client port. */
export interface NatsServerTls {
  /** Server certificate file (PEM). */
  cert: string;
  /** Its private key file (PEM). */
  key: string;
  /** CA file that signed the client certificates; with `verify`, clients must present one. */
  ca?: string;
  /** Require and verify client certificates. @default false */
  verify?: boolean;
}

/** A user of a test server: password or nkey, with optional permissions. */
export interface NatsServerUser {
  user?: string;
  password?: string;
  /** Public nkey (U...) of an nkey user. */
  nkey?: string;
  permissions?: { publish?: string[]; subscribe?: string[] };
}

/** nats-server `authorization {}`: users (password or nkey) or one token, not both. */
export interface NatsServerAuthorization {
  users?: NatsServerUser[];
  token?: string;
}

/** nats-server conf text of the options (JSON strings are valid values in its conf syntax). */
function confLines(opts: Pick<NatsServerOptions, 'tls' | 'authorization' | 'extraConf'>): string[] {
  const q = JSON.stringify;
  const lines: string[] = [];
  if (opts.tls) {
    const { cert, key, ca, verify } = opts.tls;
    lines.push(
      `tls { cert_file: ${q(cert)}, key_file: ${q(key)}${ca ? `, ca_file: ${q(ca)}` : ''}${verify ? ', verify: true' : ''} }`,
    );
  }
  if (opts.authorization) {
    const { users, token } = opts.authorization;
    const user = (u: NatsServerUser) => {
      const fields = [
        u.user !== undefined && `user: ${q(u.user)}`,
        u.password !== undefined && `password: ${q(u.password)}`,
        u.nkey !== undefined && `nkey: ${q(u.nkey)}`,
        u.permissions &&
          `permissions: { publish: ${q(u.permissions.publish ?? ['>'])}, subscribe: ${q(u.permissions.subscribe ?? ['>'])} }`,
      ].filter(Boolean);
      return `{ ${fields.join(', ')} }`;
    };
    lines.push('authorization {');
    if (token !== undefined) lines.push(`  token: ${q(token)}`);
    if (users) lines.push(`  users: [ ${users.map(user).join(', ')} ]`);
    lines.push('}');
  }
  return [...lines, ...(opts.extraConf ?? [])];
}

/** Where nats-server is installed: the first executable `nats-server` on PATH or in the usual places. */
export function findNatsServer(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/bin', '/usr/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** How much of the server's stderr to keep for error messages. */
const LOG_TAIL_CHARS = 8_000;

/** Servers still running; killed if this process exits without stopping them. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/**
 * A private nats-server for tests and `cxstream demo`, in the manner of nats.js's `nst` launcher:
 * writes a conf, starts `nats-server -c conf`, waits for a TCP connect, and deletes its
 * temporary directories on stop. `restart()` keeps the port and the store, for fault tests.
 */
export class NatsServer {
  /** `nats://127.0.0.1:<port>` (`tls://127.0.0.1:<port>` when the server has TLS). */
  get url(): string {
    return `${this.options.tls ? 'tls' : 'nats'}://127.0.0.1:${this.#port}`;
  }

  /** Where the server's conf and temporary files are (a test may put included files there). */
  get directory(): string {
    return this.workDir;
  }

  /** The client port (fixed after the first start, so restarts keep it). */
  get port(): number {
    return this.#port;
  }

  /** The end of the server's log (its stderr) since the last (re)start, for error messages. */
  get log(): string {
    return this.logTail;
  }

  #port: number;
  private child: ChildProcess | null = null;
  private logTail = '';
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    port: number,
    /** The JetStream store directory. */
    readonly storeDir: string,
    private readonly workDir: string,
    private readonly ownsStore: boolean,
    private readonly jetstream: boolean,
    private readonly binary: string,
    private readonly startTimeoutMs: number,
    private readonly options: Pick<
      NatsServerOptions,
      'tls' | 'authorization' | 'extraConf' | 'include' | 'env'
    >,
  ) {
    this.#port = port;
  }

  /** Starts a server and resolves once it accepts TCP connections. */
  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const binary = opts.binary ?? findNatsServer();
    if (!binary)
      throw new Error(
        'nats-server not found on PATH or in /usr/sbin (install it: apt-get install nats-server)',
      );
    const workDir = mkdtempSync(join(tmpdir(), 'cxstream-nats-'));
    const storeDir = opts.storeDir ?? join(workDir, 'jetstream');
    const server = new NatsServer(
      // -1 lets the server pick a free port; the ports file tells which, and restarts reuse it.
      opts.port ?? -1,
      storeDir,
      workDir,
      !opts.storeDir,
      opts.jetstream ?? true,
      binary,
      opts.startTimeoutMs ?? 15_000,
      opts,
    );
    try {
      await server.launch();
      return server;
    } catch (e) {
      rmSync(workDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and deletes its temporary directories. */
  async stop(opts: { keepStore?: boolean } = {}): Promise<void> {
    await this.terminate('SIGTERM');
    if (!opts.keepStore) {
      if (this.ownsStore) rmSync(this.storeDir, { recursive: true, force: true });
      rmSync(this.workDir, { recursive: true, force: true });
    }
  }

  /** Kills the server with SIGKILL (a crash); the store is kept so `restart()` can recover it. */
  async kill(): Promise<void> {
    await this.terminate('SIGKILL');
  }

  /** Stops the server if it runs, then starts it again on the same port with the same store. */
  async restart(): Promise<void> {
    await this.terminate('SIGTERM');
    await this.launch();
  }

  /** Writes the conf, spawns the server and waits until it accepts TCP connections. */
  private async launch(): Promise<void> {
    const portsDir = join(this.workDir, 'ports');
    rmSync(portsDir, { recursive: true, force: true });
    mkdirSync(portsDir, { recursive: true });
    const confFile = join(this.workDir, 'server.conf');
    const conf = [
      'host: "127.0.0.1"',
      `port: ${this.#port}`,
      `ports_file_dir: ${JSON.stringify(portsDir)}`,
      this.jetstream ? `jetstream { store_dir: ${JSON.stringify(this.storeDir)} }` : '',
      ...confLines(this.options),
      ...(this.options.include ?? []).map((f) => `include ${JSON.stringify(relative(this.workDir, f))}`),
    ];
    writeFileSync(confFile, `${conf.join('\n')}\n`);

    this.logTail = '';
    const child = spawn(this.binary, ['-c', confFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...this.options.env },
    });
    this.child = child;
    running.add(child);
    installExitHook();
    child.stderr?.on('data', (d: Buffer) => {
      this.logTail = (this.logTail + d.toString()).slice(-LOG_TAIL_CHARS);
    });
    let exitCode: number | string | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exitCode = code ?? signal ?? 'unknown';
        running.delete(child);
        resolve();
      });
    });
    child.once('error', (e) => {
      this.logTail += String(e);
    });

    const deadline = Date.now() + this.startTimeoutMs;
    while (Date.now() < deadline) {
      if (exitCode !== undefined) {
        throw new Error(`nats-server exited during start-up (${exitCode}):\n${this.logTail}`);
      }
      // The ports file (named with the pid) proves that this child, not another server on the
      // same port, is listening; it also tells the port chosen for `port: -1`.
      const listening = readPortsFile(portsDir, child.pid);
      if (listening > 0 && (this.#port <= 0 || listening === this.#port)) {
        this.#port = listening;
        if (await canConnect(this.#port)) return;
      }
      await sleep(25);
    }
    child.kill('SIGKILL');
    await this.exited;
    throw new Error(
      `nats-server did not accept connections within ${this.startTimeoutMs} ms:\n${this.logTail}`,
    );
  }

  private async terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = null;
      return;
    }
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
    this.child = null;
  }
}

function readPortsFile(dir: string, pid: number | undefined): number {
  try {
    const name = readdirSync(dir).find((n) => n.endsWith(`_${pid}.ports`));
    if (!name) return -1;
    const ports = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { nats?: string[] };
    const url = ports.nats?.[0];
    const port = url ? Number(new URL(url).port) : -1;
    return Number.isInteger(port) && port > 0 ? port : -1;
  } catch {
    return -1; // not written yet, or written half-way
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
