/**
 * `cxstream clickhouse serve`: ClickHouse's HTTP interface over an embedded store that no engine
 * holds, in a process of its own: read/write by default (an engine can write to it as to a
 * ClickHouse server), bound to localhost unless a password is configured.
 */

import { embeddedDir } from '../../sinks/clickhouse.js';
import { isLoopback, loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { QueryServer } from '../query/queryServer.js';

/** Options of `cxstream clickhouse serve`. */
export interface ServeOptions {
  /** Store directory. @default the config's `embedded:` directory */
  dir?: string;
  /** @default clickhouse.serve.port */
  port?: number;
  /** @default clickhouse.serve.host */
  host?: string;
  /** Refuse writes and DDL. @default false */
  readonly?: boolean;
  config?: string;
  /** Where the one status line goes. @default process.stdout */
  out?: NodeJS.WritableStream;
}

/** Serves the store until SIGINT/SIGTERM. */
export async function runClickHouseServe(opts: ServeOptions): Promise<void> {
  const config = loadConfig(opts.config);
  const serve = config.clickhouse.serve;
  const dir = opts.dir ?? embeddedDir(config.clickhouse.url);
  if (dir === null) {
    throw new UsageError(
      `CXSTREAM_CLICKHOUSE_URL names a ClickHouse server (${config.clickhouse.url}), not an embedded store: give --dir DIR`,
    );
  }
  const host = opts.host ?? serve.host;
  if (!isLoopback(host) && serve.password === '') {
    throw new UsageError(
      `--host ${host} is not a loopback address: set clickhouse.serve.password (CXSTREAM_CLICKHOUSE_SERVE_PASSWORD) first`,
    );
  }
  const server = await QueryServer.start({
    ...serve,
    dir,
    host,
    port: opts.port ?? serve.port,
    readonly: opts.readonly ?? false,
  });
  (opts.out ?? process.stdout).write(
    `serving ${dir} at ${server.url} (${opts.readonly ? 'read-only' : 'read/write'}); Ctrl-C stops\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
}
