/**
 * The demo's ClickHouse store and how `funnel` finds it. The demo keeps its data apart from the
 * default store (it wipes its directory at every start, and must never wipe an engine's data), so
 * `funnel` reads the demo's store in place of a default store that nothing has written to.
 */
import { resolve } from 'node:path';
import { embeddedDir } from '../../sinks/embeddedStore.js';
import { loadConfig } from '../config/config.js';
import { shownDir, storeToRead } from '../query/analyticsStore.js';

/** Working directory of `cxstream demo`, relative to the current directory; its store is `clickhouse/` below. */
export const DEMO_DIR = '.cxstream/demo';

/** The command that shows the funnel of the embedded store `dir` (the demo's closing hint). */
export function funnelCommandFor(dir: string): string {
  const plain = 'npx cxstream funnel --by variant';
  let read: string | null = null;
  try {
    read = embeddedDir(storeToRead(loadConfig().clickhouse.url).url);
  } catch {
    // no store funnel would read by default has data
  }
  return read === resolve(dir) ? plain : `CXSTREAM_CLICKHOUSE_URL=embedded:${shownDir(dir)} ${plain}`;
}
