/** `cxstream funnel`: the consult → add to cart → order funnel from ClickHouse. */
import { formatFunnel, queryFunnel } from '../../sinks/funnel.js';
import { loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { openAnalyticsStore } from '../query/analyticsStore.js';

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
  /** Where notes (which store is read) go. @default process.stderr */
  err?: NodeJS.WritableStream;
}

/**
 * Prints the funnel of the config's ClickHouse (through the engine holding an embedded store, when
 * one does: engine/query/analyticsStore.ts); says on stderr where the numbers come from.
 */
export async function runFunnel(opts: FunnelOptions): Promise<void> {
  for (const d of [opts.from, opts.to]) {
    if (d !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(d))
      throw new UsageError(`dates are YYYY-MM-DD, got "${d}"`);
  }
  const err = opts.err ?? process.stderr;
  const store = await openAnalyticsStore(loadConfig(opts.config));
  try {
    err.write(`cxstream: reading ${store.source}\n`);
    const rows = await queryFunnel(store.client, {
      by: opts.by,
      from: opts.from,
      to: opts.to,
      database: store.database,
    });
    (opts.out ?? process.stdout).write(formatFunnel(rows, opts.by));
  } finally {
    await store.close();
  }
}
