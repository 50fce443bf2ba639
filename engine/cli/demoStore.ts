/**
 * The demo's ClickHouse store and how `funnel` finds it. The demo keeps its data apart from the
 * default store (it wipes its directory at every start, and must never wipe an engine's data), so
 * `funnel` reads the demo's store in place of a default store that nothing has written to.
 */
import { relative, resolve } from 'node:path';
import { clickHouseDatabase } from '../../sinks/clickhouse.js';
import { embeddedDir, holdsDatabase } from '../../sinks/embeddedStore.js';
import { loadConfig } from '../config/config.js';

/** Working directory of `cxstream demo`, relative to the current directory; its store is `clickhouse/` below. */
export const DEMO_DIR = '.cxstream/demo';

/**
 * The ClickHouse URL `funnel` reads for the configured `url`: `url` itself when it is a server or
 * an embedded store with data; the demo's store in place of the default store when only the demo
 * has written. Throws, saying how to fill a store, when an embedded store has no data: opening it
 * would only create an empty one.
 */
export function storeToRead(url: string, note: (text: string) => void): string {
  const dir = embeddedDir(url);
  const database = clickHouseDatabase(url);
  if (dir === null || holdsDatabase(dir, database)) return url;
  const demo = resolve(DEMO_DIR, 'clickhouse');
  // Only in place of the default store: a store named on purpose is never swapped for another.
  if (dir === defaultEmbeddedDir() && holdsDatabase(demo, database)) {
    note(`nothing in ${shown(dir)} yet; reading the data of \`cxstream demo\` in ${shown(demo)}`);
    return `embedded:${demo}`;
  }
  throw new Error(
    `no data in the embedded ClickHouse store ${shown(dir)}: \`cxstream run\` or ` +
      '`cxstream replay --file EVENTS.ndjson` fill it, `cxstream demo` makes a sample one, ' +
      'or point CXSTREAM_CLICKHOUSE_URL at a store or server that has data',
  );
}

/** The command that shows the funnel of the embedded store `dir` (the demo's closing hint). */
export function funnelCommandFor(dir: string): string {
  const plain = 'npx cxstream funnel --by variant';
  let read: string | null = null;
  try {
    read = embeddedDir(storeToRead(loadConfig().clickhouse.url, () => {}));
  } catch {
    // no store funnel would read by default has data
  }
  return read === resolve(dir) ? plain : `CXSTREAM_CLICKHOUSE_URL=embedded:${shown(dir)} ${plain}`;
}

/** The data directory of the default config's ClickHouse URL (the environment aside). */
function defaultEmbeddedDir(): string | null {
  return embeddedDir(loadConfig(undefined, {}).clickhouse.url);
}

/** A directory as the user would type it: relative when it is below the working directory. */
function shown(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel === '' || rel.startsWith('..') ? dir : `./${rel}`;
}
