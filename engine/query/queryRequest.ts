/**
 * A request to ClickHouse's HTTP interface, read the way ClickHouse reads it: the SQL from the
 * `query` URL parameter followed by the body (an INSERT's data, or the rest of the query), or from
 * the body alone; settings and `param_<name>` query parameters from the URL (or a multipart form);
 * credentials from Basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or `user`/`password`; bodies
 * compressed with gzip, deflate or br; responses compressed when asked (`enable_http_compression`).
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { ErrorCode, QueryError } from './queryErrors.js';

/** Who a request says it is. */
export interface Credentials {
  user: string;
  password: string;
}

/** What one HTTP request asks ClickHouse to do. */
export interface QueryRequest {
  /** The SQL, with an INSERT's data after it. */
  sql: string;
  /** Output format when the SQL has no FORMAT clause (`default_format`, else TabSeparated). */
  defaultFormat: string;
  /** Database of unqualified names (`database` parameter or `X-ClickHouse-Database`). */
  database: string | undefined;
  queryId: string;
  /** Settings from the URL (name → value as sent), without the ones of the HTTP layer. */
  settings: Map<string, string>;
  /** Query parameters `{name:Type}` (name → value as sent, in ClickHouse's escaped text form). */
  params: Map<string, string>;
  /** GET requests only read, as in ClickHouse. */
  readOnlyMethod: boolean;
  /** Encoding of the response: asked for with `enable_http_compression=1` and accepted by the client. */
  responseEncoding: 'gzip' | 'deflate' | 'br' | null;
  /** `add_http_cors_header=1`: answer with `Access-Control-Allow-Origin: *` (browser clients). */
  cors: boolean;
}

/**
 * URL parameters that are not settings: the HTTP interface's own (ClickHouse's HTTPHandler reserves
 * these names) and settings of its HTTP layer that mean nothing to the engine behind it.
 */
const NOT_SETTINGS = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'session_id',
  'session_timeout',
  'session_check',
  'user',
  'password',
  'quota_key',
  'buffer_size',
  'wait_end_of_query',
  'role',
  'stacktrace',
  'enable_http_compression',
  'http_zlib_compression_level',
  'add_http_cors_header',
  'send_progress_in_http_headers',
  'cancel_http_readonly_queries_on_client_close',
  'http_headers_progress_interval_ms',
  'http_response_buffer_size',
  'http_wait_end_of_query',
  'http_native_compression_disable_checksumming_on_decompress',
]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Reads the request (body included, decompressed, at most `maxBodyBytes`).
 * @throws QueryError for what ClickHouse would refuse too (a body too large, an unknown encoding,
 *   a malformed name), with ClickHouse's code
 */
export async function readQueryRequest(req: IncomingMessage, maxBodyBytes: number): Promise<QueryRequest> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const fields = new Map<string, string>(url.searchParams);
  for (const what of ['compress', 'decompress']) {
    if (fields.get(what) === '1') {
      throw new QueryError(
        ErrorCode.NOT_IMPLEMENTED,
        `${what}=1 (ClickHouse's native block compression) is not supported here: use HTTP compression (enable_http_compression=1, Content-Encoding)`,
      );
    }
  }
  const readOnlyMethod = req.method === 'GET' || req.method === 'HEAD';
  let body = readOnlyMethod ? '' : (await readBody(req, maxBodyBytes)).toString('utf8');
  const contentType = req.headers['content-type'] ?? '';
  if (contentType.startsWith('multipart/form-data') && body !== '') {
    // clickhouse-js sends long query parameters (and the query) as a form instead of the URL.
    const form = await new Request('http://localhost/', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    }).formData();
    for (const [name, value] of form) {
      if (typeof value !== 'string') {
        throw new QueryError(
          ErrorCode.NOT_IMPLEMENTED,
          `external data (form file "${name}") is not supported`,
        );
      }
      if (name !== 'query' && !name.startsWith('param_')) {
        throw new QueryError(
          ErrorCode.BAD_ARGUMENTS,
          `unexpected form field "${name}": only query and param_*`,
        );
      }
      fields.set(name, value);
    }
    body = '';
  }
  const fromUrl = fields.get('query') ?? '';
  const sql = fromUrl !== '' && body !== '' ? `${fromUrl}\n${body}` : fromUrl || body;
  const settings = new Map<string, string>();
  const params = new Map<string, string>();
  for (const [name, value] of fields) {
    if (name.startsWith('param_'))
      params.set(checkName(name.slice('param_'.length), 'query parameter'), value);
    else if (!NOT_SETTINGS.has(name)) settings.set(checkName(name, 'setting'), value);
  }
  return {
    sql,
    defaultFormat: fields.get('default_format') ?? header(req, 'x-clickhouse-format') ?? 'TabSeparated',
    database: fields.get('database') ?? header(req, 'x-clickhouse-database'),
    queryId: fields.get('query_id') || randomUUID(),
    settings,
    params,
    readOnlyMethod,
    responseEncoding: fields.get('enable_http_compression') === '1' ? acceptedEncoding(req) : null,
    cors: fields.get('add_http_cors_header') === '1',
  };
}

/**
 * The format a query's result comes in: its own FORMAT clause at the end, else `defaultFormat`.
 * An INSERT's FORMAT names its input, not a result.
 */
export function outputFormatOf(sql: string, defaultFormat: string): string {
  if (/^\s*INSERT\b/i.test(sql)) return defaultFormat;
  const m = /\bFORMAT\s+([A-Za-z0-9_]+)[\s;]*$/i.exec(sql);
  return m ? m[1]! : defaultFormat;
}

function checkName(name: string, what: string): string {
  if (!NAME.test(name)) throw new QueryError(ErrorCode.BAD_ARGUMENTS, `invalid ${what} name "${name}"`);
  return name;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The credentials a request sends (Basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key`, or the
 * `user`/`password` URL parameters), read before its body so that a refused request is refused
 * without reading it.
 */
export function credentialsOf(req: IncomingMessage): Credentials | null {
  const fields = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const auth = header(req, 'authorization');
  if (auth?.startsWith('Basic ')) {
    const text = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    const colon = text.indexOf(':');
    return colon < 0
      ? { user: text, password: '' }
      : { user: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  const user = header(req, 'x-clickhouse-user') ?? fields.get('user') ?? undefined;
  const password = header(req, 'x-clickhouse-key') ?? fields.get('password') ?? undefined;
  return user === undefined && password === undefined
    ? null
    : { user: user ?? 'default', password: password ?? '' };
}

function acceptedEncoding(req: IncomingMessage): QueryRequest['responseEncoding'] {
  const accepted = (header(req, 'accept-encoding') ?? '').split(',').map((s) => s.trim().split(';')[0]);
  for (const encoding of ['gzip', 'br', 'deflate'] as const) if (accepted.includes(encoding)) return encoding;
  return null;
}

/** The body, decompressed as its Content-Encoding says, refused beyond `maxBytes` (decompressed). */
async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const encoding = (header(req, 'content-encoding') ?? '').trim().toLowerCase();
  let stream: Readable = req;
  if (encoding === 'gzip' || encoding === 'x-gzip') stream = req.pipe(createGunzip());
  else if (encoding === 'deflate') stream = req.pipe(createInflate());
  else if (encoding === 'br') stream = req.pipe(createBrotliDecompress());
  else if (encoding !== '' && encoding !== 'identity') {
    req.resume();
    throw new QueryError(
      ErrorCode.UNKNOWN_COMPRESSION_METHOD,
      `Content-Encoding "${encoding}" is not supported: use gzip, deflate or br`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        req.resume();
        throw new QueryError(ErrorCode.QUERY_IS_TOO_LARGE, `request body larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof QueryError) throw e;
    throw new QueryError(
      ErrorCode.CANNOT_DECOMPRESS,
      `cannot read the ${encoding || 'request'} body: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return Buffer.concat(chunks);
}
