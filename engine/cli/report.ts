/** `cxstream report`: one self-contained HTML file with the analysts' charts and tables. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { checkDate } from '../../sinks/funnel.js';
import { loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { openAnalyticsStore } from '../query/analyticsStore.js';
import { collectReport, type ReportOptions } from '../report/reportData.js';
import { reportHtml } from '../report/reportHtml.js';
import type { ReportData } from '../report/reportTypes.js';

/** Options of `cxstream report`. */
export interface ReportCliOptions {
  /** First day, YYYY-MM-DD (UTC). @default the first stored day */
  from?: string;
  /** Last day, YYYY-MM-DD (UTC). @default the last stored day */
  to?: string;
  /** @default 'report.html' */
  out?: string;
  config?: string;
}

/** Writes the report of `client`'s data to `file`; returns the absolute path and what it shows. */
export async function writeReport(
  client: ClickHouseClient,
  options: ReportOptions,
  file: string,
): Promise<{ file: string; data: ReportData }> {
  const data = await collectReport(client, options);
  const path = resolve(file);
  writeFileSync(path, reportHtml(data));
  return { file: path, data };
}

/** One line saying where the report is and what it covers. */
export function reportSummary(report: { file: string; data: ReportData }): string {
  const { data } = report;
  const what =
    data.totals.events === 0
      ? 'no events in this range: the report says so'
      : `${data.totals.events.toLocaleString('en-US')} events, ${data.totals.customers.toLocaleString('en-US')} customers`;
  return `report ${data.from} – ${data.to} (${what}): ${report.file}`;
}

/** Reads the config's ClickHouse (through the engine holding an embedded store, if one does) and writes the report. */
export async function runReport(opts: ReportCliOptions): Promise<void> {
  for (const [name, d] of [
    ['--from', opts.from],
    ['--to', opts.to],
  ] as const) {
    if (d === undefined) continue;
    try {
      checkDate(name, d);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  if (opts.from !== undefined && opts.to !== undefined && opts.from > opts.to) {
    throw new UsageError(`--from ${opts.from} is after --to ${opts.to}`);
  }
  const config = loadConfig(opts.config);
  const store = await openAnalyticsStore(config);
  try {
    process.stderr.write(`cxstream: reading ${store.source}\n`);
    const report = await writeReport(
      store.client,
      {
        from: opts.from,
        to: opts.to,
        database: store.database,
        tz: config.engine.defaultTz,
        source: store.source,
      },
      opts.out ?? 'report.html',
    );
    process.stdout.write(`${reportSummary(report)}\n`);
  } finally {
    await store.close();
  }
}
