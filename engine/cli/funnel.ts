/** `cxstream funnel`: the consult → add to cart → order funnel from ClickHouse. */
import { clickHouseDatabase, openClickHouse } from '../../sinks/clickhouse.js';
import { formatFunnel, queryFunnel } from '../../sinks/funnel.js';
import { loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { storeToRead } from './demoStore.js';

/** Options of `cxstream funnel`. */
export interface FunnelOptions {
  by?: 'channel' | 'variant' | 'source';
  /** First day, YYYY-MM-DD (UTC). */
  from?: string;
  /** Last day, YYYY-MM-DD (UTC). */
  to?: string;
  config?: string;
  /** Where the table goes. @default process.stdout */
  out?: NodeJS.WritableStream;
  /** Where notes go (which store was read). @default process.stderr */
  err?: NodeJS.WritableStream;
}

/**
 * Prints the funnel of the config's ClickHouse. An embedded store that nothing has written to is
 * not opened (chDB would create it, empty): with the default store, the demo's data is read
 * instead when there is some; otherwise the error says how to fill a store.
 */
export async function runFunnel(opts: FunnelOptions): Promise<void> {
  for (const d of [opts.from, opts.to]) {
    if (d !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(d))
      throw new UsageError(`dates are YYYY-MM-DD, got "${d}"`);
  }
  const config = loadConfig(opts.config);
  const err = opts.err ?? process.stderr;
  const url = storeToRead(config.clickhouse.url, (note) => err.write(`cxstream: ${note}\n`));
  const client = openClickHouse(url);
  try {
    const rows = await queryFunnel(client, {
      by: opts.by,
      from: opts.from,
      to: opts.to,
      database: clickHouseDatabase(url),
    });
    (opts.out ?? process.stdout).write(formatFunnel(rows, opts.by));
  } finally {
    await client.close();
  }
}
