/**
 * ClickHouse's HTTP interface over an embedded (chDB) store, so that `@clickhouse/client`, curl,
 * Grafana's ClickHouse data source and any other ClickHouse HTTP client can query it while this
 * process holds the store (a chDB directory is locked by the process that opened it).
 *
 * Each request runs in a chDB session of its own on the store's directory (sessions on one
 * directory share the data and run in parallel, each with its own settings): the request's
 * settings and query parameters are applied with SET, then the limits, then `readonly`, then the
 * query. docs/CLICKHOUSE.md "Querying the embedded store" lists what is supported.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, deflate, gzip } from 'node:zlib';
import { type ChdbResult, Session } from 'chdb';
import pLimit, { type LimitFunction } from 'p-limit';
import { embeddedStoreHolder } from '../../sinks/embeddedStore.js';
import { log } from '../runtime/log.js';
import { removeEndpoint, writeEndpoint } from './queryEndpoint.js';
import { ErrorCode, QueryError, toQueryError } from './queryErrors.js';
import {
  type Credentials,
  credentialsOf,
  outputFormatOf,
  type QueryRequest,
  readQueryRequest,
} from './queryRequest.js';

/** Options of {@link QueryServer.start}. */
export interface QueryServerOptions {
  /** The chDB data directory to serve. */
  dir: string;
  /** TCP port; 0 = any free port. */
  port: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Refuse writes and DDL (ClickHouse `readonly=1` on every query). */
  readonly: boolean;
  /** User name clients authenticate as when `password` is set. @default 'default' */
  user?: string;
  /** When not empty, every request must authenticate with it. @default '' */
  password?: string;
  /** Upper bound of `max_result_rows` (a request may lower it). @default 1_000_000 */
  maxResultRows?: number;
  /** Upper bound of `max_result_bytes`. @default 100_000_000 */
  maxResultBytes?: number;
  /** Upper bound of `max_execution_time`, seconds. @default 60 */
  maxExecutionTimeSec?: number;
  /** Queries run at once; more wait in line. @default 2 */
  maxConcurrentQueries?: number;
  /** Queries that may wait; beyond, TOO_MANY_SIMULTANEOUS_QUERIES. @default 100 */
  maxQueuedQueries?: number;
  /** Largest request body (decompressed), bytes. @default 268_435_456 */
  maxRequestBytes?: number;
  /** When `port` is taken, serve on a free port instead of failing (logged). @default false */
  fallbackToFreePort?: boolean;
}

type Resolved = Required<QueryServerOptions>;

const compressors = { gzip: promisify(gzip), deflate: promisify(deflate), br: promisify(brotliCompress) };

/** A running endpoint; {@link close} stops it. */
export class QueryServer {
  readonly #options: Resolved;
  readonly #server: Server;
  readonly #limit: LimitFunction;
  /** Held for the server's life: the store stays locked against other processes while it serves. */
  readonly #holder: Session;
  #port = 0;

  private constructor(options: Resolved, holder: Session) {
    this.#options = options;
    this.#holder = holder;
    // Queries still waiting when the server closes are refused (rejectOnClear), not left hanging.
    this.#limit = pLimit({ concurrency: options.maxConcurrentQueries, rejectOnClear: true });
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  /**
   * Opens the store (created if missing) and serves it; records the endpoint in the store directory
   * (engine/query/queryEndpoint.ts).
   * @throws when the store is held by another process (`Cannot lock file .../status`) or the port
   *   is taken (unless `fallbackToFreePort`)
   */
  static async start(options: QueryServerOptions): Promise<QueryServer> {
    const o = resolveOptions(options);
    mkdirSync(o.dir, { recursive: true });
    const other = embeddedStoreHolder(o.dir);
    if (other !== undefined) {
      throw new Error(
        `the store ${o.dir} is held by process ${other} (an engine or cxstream clickhouse serve), which serves it itself if clickhouse.serve.port is set`,
      );
    }
    const holder = new Session(o.dir);
    try {
      await holder.queryAsync('SELECT 1');
      const server = new QueryServer(o, holder);
      await server.#listen();
      writeEndpoint(o.dir, {
        url: server.url,
        pid: process.pid,
        readonly: o.readonly,
        password: o.password !== '',
      });
      log.info({ url: server.url, dir: o.dir, readonly: o.readonly }, 'serving ClickHouse HTTP');
      return server;
    } catch (e) {
      holder.close();
      throw e;
    }
  }

  /** The port served. */
  get port(): number {
    return this.#port;
  }

  /** Base URL for clients on this machine. */
  get url(): string {
    const host = this.#options.host;
    const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return `http://${local.includes(':') ? `[${local}]` : local}:${this.#port}`;
  }

  /**
   * Stops taking requests, refuses the waiting ones, lets the running ones answer (up to a second
   * for their responses to leave), and releases the store.
   */
  async close(): Promise<void> {
    removeEndpoint(this.#options.dir);
    this.#limit.clearQueue();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Clients keep connections alive between queries: idle ones would hold close() for their timeout.
    this.#server.closeIdleConnections();
    const force = setTimeout(() => this.#server.closeAllConnections(), 1000);
    await closed;
    clearTimeout(force);
    this.#holder.close();
  }

  async #listen(): Promise<void> {
    const { port, host, fallbackToFreePort } = this.#options;
    try {
      this.#port = await listen(this.#server, port, host);
    } catch (e) {
      if (!fallbackToFreePort || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
        throw new Error(
          `cannot serve ClickHouse HTTP on ${host}:${port} (clickhouse.serve.port): ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
      this.#port = await listen(this.#server, 0, host);
      log.warn(
        { port, instead: this.#port },
        'clickhouse.serve.port is taken: serving ClickHouse HTTP on a free port',
      );
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const hasQuery = /[?&]query=/.test(req.url ?? '');
    if (
      path === '/ping' ||
      path === '/replicas_status' ||
      (path === '/' && req.method === 'GET' && !hasQuery)
    ) {
      res.writeHead(200, { 'content-type': 'text/html; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    if (path !== '/') {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=UTF-8' })
        .end(`There is no handle ${path}\n\nUse / or /ping\n`);
      return;
    }
    let request: QueryRequest | null = null;
    const started = performance.now();
    try {
      this.#authenticate(credentialsOf(req));
      request = await readQueryRequest(req, this.#options.maxRequestBytes);
      if (this.#limit.pendingCount >= this.#options.maxQueuedQueries) {
        throw new QueryError(
          ErrorCode.TOO_MANY_SIMULTANEOUS_QUERIES,
          `Too many simultaneous queries: ${this.#limit.activeCount} running and ${this.#limit.pendingCount} waiting (clickhouse.serve.maxConcurrentQueries)`,
        );
      }
      const query = request;
      const result = await this.#limit(() => this.#run(query));
      await this.#respond(res, query, result);
      log.debug({ queryId: query.queryId, ms: Math.round(performance.now() - started) }, 'query');
    } catch (e) {
      const error = toQueryError(e);
      log.debug({ queryId: request?.queryId, code: error.code, err: error.message }, 'query failed');
      if (res.headersSent) {
        res.destroy(error);
        return;
      }
      res
        .writeHead(error.status, {
          'content-type': 'text/plain; charset=UTF-8',
          'x-clickhouse-exception-code': String(error.code),
          ...(request ? { 'x-clickhouse-query-id': request.queryId } : {}),
          ...(request?.cors ? { 'access-control-allow-origin': '*' } : {}),
          // Lets curl and browsers ask for the password.
          ...(error.status === 401 ? { 'www-authenticate': 'Basic realm="ClickHouse"' } : {}),
        })
        .end(`${error.message}\n`);
    }
  }

  #authenticate(credentials: Credentials | null): void {
    const { user, password } = this.#options;
    if (password === '') return;
    if (credentials === null) {
      throw new QueryError(
        ErrorCode.REQUIRED_PASSWORD,
        'a password is required (clickhouse.serve.password is set)',
      );
    }
    if (credentials.user !== user || !sameSecret(credentials.password, password)) {
      throw new QueryError(
        ErrorCode.AUTHENTICATION_FAILED,
        `${credentials.user}: Authentication failed: password is incorrect, or there is no user with such name`,
      );
    }
  }

  /** Runs the request in a session of its own: settings, limits, parameters, database, readonly, query. */
  async #run(request: QueryRequest): Promise<ChdbResult> {
    if (request.sql.trim() === '') throw new QueryError(ErrorCode.SYNTAX_ERROR, 'Empty query');
    const session = new Session(this.#options.dir);
    try {
      const preamble = preambleOf(request, this.#options);
      if (preamble.length > 0) await session.queryAsync(preamble.join('; '));
      return await session.queryAsync(request.sql, { format: request.defaultFormat });
    } finally {
      session.close();
    }
  }

  async #respond(res: ServerResponse, request: QueryRequest, result: ChdbResult): Promise<void> {
    const format = outputFormatOf(request.sql, request.defaultFormat);
    let body: Uint8Array = result.bytes();
    const inserted = /^\s*INSERT\b/i.test(request.sql) ? String(result.rowsRead) : '0';
    const headers: Record<string, string> = {
      'content-type': contentTypeOf(format),
      'x-clickhouse-format': format,
      'x-clickhouse-query-id': request.queryId,
      'x-clickhouse-timezone': 'UTC',
      'x-clickhouse-summary': JSON.stringify({
        read_rows: String(result.rowsRead),
        read_bytes: String(result.bytesRead),
        written_rows: inserted,
        written_bytes: inserted === '0' ? '0' : String(result.bytesRead),
        total_rows_to_read: String(result.rowsRead),
        result_bytes: String(body.byteLength),
        elapsed_ns: String(Math.round(result.elapsed * 1e9)),
      }),
    };
    if (request.cors) headers['access-control-allow-origin'] = '*';
    if (request.responseEncoding !== null && body.byteLength > 0) {
      body = await compressors[request.responseEncoding](body);
      headers['content-encoding'] = request.responseEncoding;
    }
    res.writeHead(200, headers).end(body);
  }
}

/**
 * SET statements run before the query: the request's settings (its own limits only where they are
 * stricter), the query parameters, the database, and last `readonly`, which from then on refuses
 * writes, DDL and any further change of settings, including by the query itself.
 */
function preambleOf(request: QueryRequest, o: Resolved): string[] {
  const settings = new Map(request.settings);
  const limits: Array<[string, number]> = [
    ['max_result_rows', o.maxResultRows],
    ['max_result_bytes', o.maxResultBytes],
    ['max_execution_time', o.maxExecutionTimeSec],
  ];
  for (const [name, limit] of limits) {
    const asked = Number(settings.get(name));
    // 0 means "no limit" in ClickHouse: never below ours.
    settings.set(name, String(Number.isFinite(asked) && asked > 0 ? Math.min(asked, limit) : limit));
  }
  const readonly = readonlyOf(settings.get('readonly'), o.readonly ? 1 : request.readOnlyMethod ? 2 : 0);
  settings.delete('readonly');
  const out = [...settings].map(([name, value]) => `SET ${name} = ${sqlString(value)}`);
  for (const [name, value] of request.params) out.push(`SET param_${name} = ${sqlString(value)}`);
  if (request.database !== undefined) out.push(`USE ${quoteName(request.database)}`);
  if (readonly > 0) out.push(`SET readonly = ${readonly}`);
  return out;
}

/**
 * The request's `readonly` against the one enforced (1 on a read-only endpoint, 2 for GET requests
 * as in ClickHouse, else 0): 1 is the strictest (no writes, no setting changes), 2 forbids writes
 * only. Asking for less than enforced is refused, as ClickHouse refuses a read-only user.
 */
function readonlyOf(asked: string | undefined, enforced: 0 | 1 | 2): number {
  if (asked === undefined) return enforced;
  const level = Number(asked);
  if (level !== 0 && level !== 1 && level !== 2) {
    throw new QueryError(ErrorCode.BAD_ARGUMENTS, `readonly must be 0, 1 or 2 (got "${asked}")`);
  }
  const weaker = enforced === 1 ? level !== 1 : enforced === 2 ? level === 0 : false;
  if (weaker) throw new QueryError(ErrorCode.READONLY, "Cannot modify 'readonly' setting in readonly mode");
  return level;
}

function resolveOptions(o: QueryServerOptions): Resolved {
  const resolved: Resolved = {
    dir: resolve(o.dir),
    port: o.port,
    host: o.host ?? '127.0.0.1',
    readonly: o.readonly,
    user: o.user ?? 'default',
    password: o.password ?? '',
    maxResultRows: o.maxResultRows ?? 1_000_000,
    maxResultBytes: o.maxResultBytes ?? 100_000_000,
    maxExecutionTimeSec: o.maxExecutionTimeSec ?? 60,
    maxConcurrentQueries: o.maxConcurrentQueries ?? 2,
    maxQueuedQueries: o.maxQueuedQueries ?? 100,
    maxRequestBytes: o.maxRequestBytes ?? 256 * 1024 * 1024,
    fallbackToFreePort: o.fallbackToFreePort ?? false,
  };
  if (!Number.isInteger(resolved.port) || resolved.port < 0 || resolved.port > 65535) {
    throw new RangeError(`clickhouse.serve.port must be 0..65535 (got ${resolved.port})`);
  }
  const positive: Array<[string, number]> = [
    ['clickhouse.serve.maxResultRows', resolved.maxResultRows],
    ['clickhouse.serve.maxResultBytes', resolved.maxResultBytes],
    ['clickhouse.serve.maxExecutionTimeSec', resolved.maxExecutionTimeSec],
    ['clickhouse.serve.maxConcurrentQueries', resolved.maxConcurrentQueries],
    ['maxQueuedQueries', resolved.maxQueuedQueries],
    ['maxRequestBytes', resolved.maxRequestBytes],
  ];
  for (const [name, value] of positive) {
    if (!Number.isFinite(value) || value <= 0)
      throw new RangeError(`${name} must be a positive number (got ${value})`);
  }
  return Object.freeze(resolved);
}

/** Listens on `port` (0 = any free one) and resolves with the port bound. */
async function listen(server: Server, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  return (server.address() as AddressInfo).port;
}

/** A ClickHouse string literal: only `\` and `'` need escaping. */
function sqlString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

function quoteName(name: string): string {
  return `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``;
}

/** Compares secrets in constant time (hashes first: timingSafeEqual needs equal lengths). */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** The Content-Type ClickHouse sends with a result in `format`. */
function contentTypeOf(format: string): string {
  const f = format.toLowerCase();
  if (f.startsWith('json') && f.includes('eachrow')) return 'application/x-ndjson; charset=UTF-8';
  if (f.startsWith('json')) return 'application/json; charset=UTF-8';
  if (f.startsWith('tabseparated') || f.startsWith('tsv')) return 'text/tab-separated-values; charset=UTF-8';
  if (f.startsWith('csv'))
    return `text/csv; charset=UTF-8; header=${f.includes('withnames') ? 'present' : 'absent'}`;
  if (/^(native|rowbinary|parquet|arrow|orc|avro|protobuf|msgpack|capnproto|npy)/.test(f)) {
    return 'application/octet-stream';
  }
  return 'text/plain; charset=UTF-8';
}
