/**
 * The ClickHouse that `cxstream funnel` and `cxstream report` read: a server by URL, or an embedded
 * store, queried through the process that holds it when there is one (a chDB directory is locked
 * by the process that opened it: engine/query/queryEndpoint.ts says where it serves), opened
 * directly otherwise. An embedded store nothing has written to is not opened (chDB would create it,
 * empty): in place of the default store the demo's (`.cxstream/demo/clickhouse`) is read when it has
 * data, so `cxstream funnel` right after `cxstream demo` shows the demo's numbers.
 */
import { relative, resolve } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { clickHouseDatabase, ensureSchema, openClickHouse } from '../../sinks/clickhouse.js';
import { embeddedDir, holdsDatabase, isEmbeddedStoreInUseError } from '../../sinks/embeddedStore.js';
import { type Config, loadConfig } from '../config/config.js';
import { heldStoreMessage, servedEndpoint } from './queryEndpoint.js';

/** Where the demo keeps its store (engine/cli/demo.ts wipes it at every start, so never an engine's). */
export const DEMO_STORE = '.cxstream/demo/clickhouse';

/**
 * The ClickHouse URL to read for the configured `url`: `url` itself when it is a server or an
 * embedded store with data; the demo's store in place of the default store when only the demo has
 * written. Throws, saying how to fill a store, when an embedded store has no data: opening it
 * would only create an empty one.
 */
export function storeToRead(url: string): { url: string; insteadOf?: string } {
  const dir = embeddedDir(url);
  const database = clickHouseDatabase(url);
  if (dir === null || holdsDatabase(dir, database)) return { url };
  const demo = resolve(DEMO_STORE);
  // Only in place of the default store: a store named on purpose is never swapped for another.
  const named =
    (process.env.CXSTREAM_CLICKHOUSE_URL ?? '') !== '' || url !== loadConfig(undefined, {}).clickhouse.url;
  if (!named && holdsDatabase(demo, database)) {
    return { url: `embedded:${demo}`, insteadOf: dir };
  }
  throw new StoreUnavailableError(
    `no data in the embedded ClickHouse store ${shownDir(dir)}: \`cxstream run\` or ` +
      '`cxstream replay --file EVENTS.ndjson` fill it, `cxstream demo` makes a sample one, ' +
      'or point CXSTREAM_CLICKHOUSE_URL at a store or server that has data',
  );
}

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
 * Opens the store of `config.clickhouse.url` for reading (see the module comment for the order);
 * its `source` says where the data comes from, and why when it is not the configured store.
 */
export async function openAnalyticsStore(config: Readonly<Config>): Promise<AnalyticsStore> {
  const { url, insteadOf } = storeToRead(config.clickhouse.url);
  const database = clickHouseDatabase(url);
  const dir = embeddedDir(url);
  const why =
    insteadOf === undefined ? '' : ` (the data of \`cxstream demo\`: nothing in ${shownDir(insteadOf)} yet)`;
  if (dir === null) {
    const client = openClickHouse(url);
    return {
      client,
      database,
      source: `ClickHouse server ${new URL(url).host}`,
      close: () => client.close(),
    };
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
        source: `embedded store ${shownDir(dir)}${why}, through process ${endpoint.pid} at ${endpoint.url}`,
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
    if (isEmbeddedStoreInUseError(e)) throw new StoreUnavailableError(heldStoreMessage(e), { cause: e });
    throw e;
  }
  return { client, database, source: `embedded store ${shownDir(dir)}${why}`, close: () => client.close() };
}

/** A directory as the user would type it: `./`-relative when it is below the working directory. */
export function shownDir(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel === '' || rel.startsWith('..') ? dir : `./${rel}`;
}
