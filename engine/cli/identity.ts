/**
 * `cxstream identity CUSTOMER`: which customer a key belongs to, its aliases, its identifiers and
 * the merges it took part in (docs/IDENTITY.md). Asks the running engine (`cx.admin.identity`, an
 * operator's permission); when none answers, reads the identity log `CX_IDENTITY` itself.
 */
import { IdentityGraph } from '../../operators/identity.js';
import { loadConfig } from '../config/config.js';
import { JetStreamIdentityLog } from '../identity/identityLog.js';
import { IDENTITY_SUBJECT, type IdentityReport, identityReport } from '../identity/identityReport.js';
import { connectNats } from '../nats/connect.js';
import { AdminRequestError, adminRequest } from '../runtime/admin.js';

export type { IdentityReport } from '../identity/identityReport.js';

/** Options of {@link runIdentity}. */
export interface IdentityOptions {
  customer: string;
  config?: string;
  /** Print the report as JSON. @default false */
  json?: boolean;
  /** How long to wait for the running engine before reading the log. @default 3000 */
  timeoutMs?: number;
  /** @default process.stdout */
  out?: { write(text: string): unknown };
}

/** Prints the report of the key and returns it. */
export async function runIdentity(options: IdentityOptions): Promise<IdentityReport> {
  const config = loadConfig(options.config);
  let report: IdentityReport;
  try {
    const reply = await adminRequest<IdentityReport | { status: 'error'; message: string }>(
      config,
      IDENTITY_SUBJECT,
      JSON.stringify({ customer: options.customer }),
      options.timeoutMs ?? 3000,
    );
    if ('status' in reply) throw new Error(reply.message);
    report = reply;
  } catch (e) {
    if (!(e instanceof AdminRequestError)) throw e;
    report = await fromLog(config, options.customer);
  }
  const out = options.out ?? process.stdout;
  out.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatIdentity(report));
  return report;
}

/** The report from the log on NATS (no engine answered). */
async function fromLog(config: ReturnType<typeof loadConfig>, customer: string): Promise<IdentityReport> {
  const nc = await connectNats(config);
  try {
    const graph = new IdentityGraph(config.identity);
    for (const e of await (await JetStreamIdentityLog.open(nc)).read()) graph.apply(e);
    return identityReport(graph, customer, 'log');
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
    `  (from ${r.source === 'engine' ? 'the running engine' : `the log ${'CX_IDENTITY'}: no engine answered`})`,
  ];
  return `${lines.join('\n')}\n`;
}
