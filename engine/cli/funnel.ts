/** `cxstream funnel`: the consult → add to cart → order funnel from ClickHouse. */
import { clickHouseDatabase, openClickHouse } from '../../sinks/clickhouse.js';
import { formatFunnel, queryFunnel } from '../../sinks/funnel.js';
import { loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';

/** Options of `cxstream funnel`. */
export interface FunnelOptions {
  by?: 'channel' | 'variant' | 'source';
  /** First day, YYYY-MM-DD (UTC). */
  from?: string;
  /** Last day, YYYY-MM-DD (UTC). */
  to?: string;
  config?: string;
}

/** Prints the funnel of the config's ClickHouse. */
export async function runFunnel(opts: FunnelOptions): Promise<void> {
  for (const d of [opts.from, opts.to]) {
    if (d !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(d))
      throw new UsageError(`dates are YYYY-MM-DD, got "${d}"`);
  }
  const config = loadConfig(opts.config);
  const client = openClickHouse(config.clickhouse.url);
  try {
    const rows = await queryFunnel(client, {
      by: opts.by,
      from: opts.from,
      to: opts.to,
      database: clickHouseDatabase(config.clickhouse.url),
    });
    process.stdout.write(formatFunnel(rows, opts.by));
  } finally {
    await client.close();
  }
}
