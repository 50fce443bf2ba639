/**
 * Live explain: the NATS request `cx.admin.explain` (docs/CONTRACT.md "Admin requests"), answered
 * by the running engine from the worker of the partition that owns the customer, between two of its
 * batches (processing goes on), and the client side `cxstream explain --live` uses.
 *
 * Request body: JSON `{"customer": "<id>"}`. Reply body: JSON, one of
 * `{"status": "ok", "view": CustomerView}`, `{"status": "not-found", "customer", "partition", "message"}`,
 * `{"status": "error", "message"}`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../config/config.js';
import { type AdminServer, adminRequest, answerRequests, customerOfRequest, ownsRequest } from './admin.js';
import type { CustomerView } from './customerView.js';
import type { WorkerPool } from './workerPool.js';

/** The subject of live explain requests (under `cx.admin.>`, which the engine subscribes to). */
export const EXPLAIN_SUBJECT = 'cx.admin.explain';

/** The engine's answer to an explain request. */
export type ExplainReply =
  | { status: 'ok'; view: CustomerView }
  | { status: 'not-found'; customer: string; partition: number; message: string }
  | { status: 'error'; message: string };

/** Answers explain requests until closed; {@link ExplainServer.close} waits for the answers under way. */
export type ExplainServer = AdminServer;

/**
 * Subscribes to {@link EXPLAIN_SUBJECT} and answers each request from the worker of the customer's
 * partition (`pool.explain`: between two tasks of that partition, without a number, so checkpoints
 * and batches are not affected). Start it once the state is recovered: before, no one answers.
 */
export function serveExplain(
  nc: NatsConnection,
  pool: Pick<WorkerPool, 'explain' | 'partitionOf'>,
): ExplainServer {
  return answerRequests(
    nc,
    EXPLAIN_SUBJECT,
    'live explain',
    async (body): Promise<ExplainReply> => {
      const customer = customerOfRequest(body, EXPLAIN_SUBJECT);
      const partition = pool.partitionOf(customer);
      const view = await pool.explain(partition, customer);
      return view === null
        ? {
            status: 'not-found',
            customer,
            partition,
            message:
              `customer ${JSON.stringify(customer)} is not in the engine's state: partition ${partition} ` +
              'holds no event of theirs (ids are exact: case and spaces count; a customer whose events were ' +
              'all dead-lettered has no state)',
          }
        : { status: 'ok', view };
    },
    ownsRequest((customer) => pool.partitionOf(customer) >= 0, EXPLAIN_SUBJECT),
  );
}

/** The engine could not answer a live explain request (exit code 1). */
export class LiveExplainError extends Error {
  override name = 'LiveExplainError';
}

/**
 * Asks the running engine for one customer's state (`cxstream explain --live`): connects with the
 * config's NATS settings, sends the request, and returns the state, or throws an error that says
 * what went wrong: an `AdminRequestError` (engine/runtime/admin.ts) when no engine answers in time,
 * a {@link LiveExplainError} for an unknown customer or an error in the engine.
 */
export async function requestExplain(
  config: Readonly<Config>,
  customer: string,
  timeoutMs: number,
): Promise<CustomerView> {
  const reply = await adminRequest<ExplainReply>(
    config,
    EXPLAIN_SUBJECT,
    JSON.stringify({ customer }),
    timeoutMs,
  );
  if (reply.status === 'ok') return reply.view;
  if (reply.status === 'not-found') throw new LiveExplainError(reply.message);
  throw new LiveExplainError(
    `the engine could not explain customer ${JSON.stringify(customer)}: ${reply.message}`,
  );
}
