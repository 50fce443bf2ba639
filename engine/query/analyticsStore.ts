/**
 * The ClickHouse that `cxstream funnel` and `cxstream report` read: a server by URL, or an embedded
 * store, queried through the process that holds it when there is one (a chDB directory is locked
 * by the process that opened it: engine/query/queryEndpoint.ts says where it serves), opened
 * directly otherwise. Without `CXSTREAM_CLICKHOUSE_URL` and without data in the default store, the
 * demo's store (`.cxstream/demo/clickhouse`) is read instead, so `cxstream funnel` right after
 * `cxstream demo` shows the demo's numbers.
 */
import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { clickHouseDatabase, embeddedDir, ensureSchema, openClickHouse } from '../../sinks/clickhouse.js';
import type { Config } from '../config/config.js';
import { heldStoreMessage, servedEndpoint } from './queryEndpoint.js';

/** Where the demo keeps its store (engine/cli/demo.ts). */
export const DEMO_STORE = '.cxstream/demo/clickhouse';

/** An open ClickHouse to read analytics from. */
export interface AnalyticsStore {
  client: ClickHouseClient;
  /** Database of the cxstream tables and views. */
  database: string;
  /** Where the data comes from, for the reader (printed by the commands). */
  source: string;
  close(): Promise<void>;
}

/** Raised when the configured store cannot be read; the message says what to do. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

/**
 * Opens the store of `config.clickhouse.url` for reading (see the module comment for the order).
 * @param env the environment the config came from (whether the URL was set explicitly)
 */
export async function openAnalyticsStore(
  config: Readonly<Config>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AnalyticsStore> {
  const url = config.clickhouse.url;
  const database = clickHouseDatabase(url);
  let dir = embeddedDir(url);
  if (dir === null) {
    const client = openClickHouse(url);
    return {
      client,
      database,
      source: `ClickHouse server ${new URL(url).host}`,
      close: () => client.close(),
    };
  }
  let note = '';
  if (!existsSync(dir) && !env.CXSTREAM_CLICKHOUSE_URL && existsSync(resolve(DEMO_STORE))) {
    note = ` (the demo's store: there is none in ${shown(dir)})`;
    dir = resolve(DEMO_STORE);
  }
  if (!existsSync(dir)) {
    throw new StoreUnavailableError(
      `no ClickHouse store in ${shown(dir)}: run cxstream run or cxstream demo first, or set CXSTREAM_CLICKHOUSE_URL`,
    );
  }
  const endpoint = servedEndpoint(dir);
  if (endpoint !== null) {
    const serve = config.clickhouse.serve;
    const client = createClient({
      url: endpoint.url,
      ...(endpoint.password ? { username: serve.user, password: serve.password } : {}),
      log: { level: ClickHouseLogLevel.OFF },
    });
    if ((await client.ping()).success) {
      return {
        client,
        database,
        source: `embedded store ${shown(dir)}${note}, through process ${endpoint.pid} at ${endpoint.url}`,
        close: () => client.close(),
      };
    }
    await client.close();
  }
  let client: ClickHouseClient;
  try {
    client = openClickHouse(`embedded:${dir}`);
    // Stores of earlier versions get the views (and columns) the commands read.
    await ensureSchema(client, database, { defaultTz: config.engine.defaultTz });
  } catch (e) {
    const held = heldStoreMessage(e);
    if (held !== null) throw new StoreUnavailableError(held, { cause: e });
    throw e;
  }
  return { client, database, source: `embedded store ${shown(dir)}${note}`, close: () => client.close() };
}

/** A directory as the user would type it: relative to the working directory when inside it. */
function shown(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel === '' || rel.startsWith('..') ? dir : rel;
}
