/**
 * `cxstream identity CUSTOMER`: which customer a key belongs to, its aliases, its identifiers and
 * the merges it took part in, read from the identity log (stream `CX_IDENTITY`, docs/IDENTITY.md).
 * Needs NATS only, not a running engine.
 */
import { IdentityGraph, type MergeRecord } from '../../operators/identity.js';
import { loadConfig } from '../config/config.js';
import { JetStreamIdentityLog } from '../identity/identityLog.js';
import { connectNats } from '../nats/connect.js';

/** Options of {@link runIdentity}. */
export interface IdentityOptions {
  customer: string;
  config?: string;
  /** Print the report as JSON. @default false */
  json?: boolean;
  /** @default process.stdout */
  out?: { write(text: string): unknown };
}

/** What `cxstream identity` prints. */
export interface IdentityReport {
  /** The key asked for. */
  customer: string;
  /** The customer it belongs to now (itself when never absorbed). */
  canonical: string;
  /** Every key merged into the canonical customer. */
  aliases: string[];
  /** Identifiers its keys presented; `shared`: presented by too many keys, links nobody. */
  identifiers: Array<{ id: string; shared: boolean }>;
  /** Merges of the key and of its canonical customer, oldest first (`ts`: event time of the merging event). */
  merges: MergeRecord[];
  /** Entries in the log. */
  logEntries: number;
}

/** Reads the log and prints the report. */
export async function runIdentity(options: IdentityOptions): Promise<IdentityReport> {
  const config = loadConfig(options.config);
  const nc = await connectNats(config);
  try {
    const entries = await (await JetStreamIdentityLog.open(nc)).read();
    const graph = new IdentityGraph(config.identity);
    for (const e of entries) graph.apply(e);
    const canonical = graph.canonicalOf(options.customer);
    const merges = [...graph.historyOf(options.customer), ...graph.historyOf(canonical)]
      .filter((m, i, all) => all.findIndex((x) => x.seq === m.seq) === i)
      .sort((a, b) => a.seq - b.seq);
    const report: IdentityReport = {
      customer: options.customer,
      canonical,
      aliases: [...graph.aliasesOf(canonical)].sort(),
      identifiers: graph.identifiersOfCustomer(canonical),
      merges,
      logEntries: entries.length,
    };
    const out = options.out ?? process.stdout;
    out.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatIdentity(report));
    return report;
  } finally {
    await nc.close();
  }
}

/** The report as text. */
export function formatIdentity(r: IdentityReport): string {
  const lines = [
    r.canonical === r.customer
      ? `${r.customer} is a canonical customer`
      : `${r.customer} was merged into ${r.canonical}`,
    `  aliases:      ${r.aliases.length === 0 ? '(none)' : r.aliases.join(', ')}`,
    `  identifiers:  ${r.identifiers.length === 0 ? '(none)' : r.identifiers.map((i) => (i.shared ? `${i.id} (shared: links nobody)` : i.id)).join(', ')}`,
    `  merges:       ${r.merges.length === 0 ? '(none)' : ''}`,
    ...r.merges.map(
      (m) =>
        `    ${new Date(m.ts).toISOString()}  stream seq ${m.seq}: ${m.absorbed.join(', ')} → ${m.canonical}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
