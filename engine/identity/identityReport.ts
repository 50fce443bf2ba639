/**
 * What `cxstream identity` prints about a key, from an identity graph: the running engine's (the
 * admin request `cx.admin.identity`) or one read from the log `CX_IDENTITY`. docs/IDENTITY.md.
 */

import type { NatsConnection } from '@nats-io/transport-node';
import type { IdentityGraph, MergeRecord } from '../../operators/identity.js';
import { type AdminServer, answerRequests, customerOfRequest } from '../runtime/admin.js';

/** The subject of identity requests (under `cx.admin.>`). */
export const IDENTITY_SUBJECT = 'cx.admin.identity';

/** A key's identity. */
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
  /** Where it comes from: the running engine's graph, or the log read by the command. */
  source: 'engine' | 'log';
}

/** The report of `customer` in `graph`. */
export function identityReport(
  graph: IdentityGraph,
  customer: string,
  source: IdentityReport['source'],
): IdentityReport {
  const canonical = graph.canonicalOf(customer);
  const merges = [...graph.historyOf(customer), ...graph.historyOf(canonical)]
    .filter((m, i, all) => all.findIndex((x) => x.seq === m.seq) === i)
    .sort((a, b) => a.seq - b.seq);
  return {
    customer,
    canonical,
    aliases: [...graph.aliasesOf(canonical)].sort(),
    identifiers: graph.identifiersOfCustomer(canonical),
    merges,
    source,
  };
}

/** Answers {@link IDENTITY_SUBJECT} (`{"customer": "<key>"}`) from the running engine's graph. */
export function serveIdentity(nc: NatsConnection, graph: IdentityGraph): AdminServer {
  return answerRequests(nc, IDENTITY_SUBJECT, 'identity', async (body) =>
    identityReport(graph, customerOfRequest(body, IDENTITY_SUBJECT), 'engine'),
  );
}
