/**
 * Live explain: the NATS request `cx.admin.explain` (docs/CONTRACT.md "Admin requests"), answered
 * by the running engine from the worker of the partition that owns the customer, between two of its
 * batches (processing goes on), and the client side `cxstream explain --live` uses.
 *
 * Request body: JSON `{"customer": "<id>"}`. Reply body: JSON, one of
 * `{"status": "ok", "view": CustomerView}`, `{"status": "not-found", "customer", "partition", "message"}`,
 * `{"status": "error", "message"}`.
 */
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { ownerOfCustomer } from '../../operators/keyGroups.js';
import type { Config } from '../config/config.js';
import { connectNats } from '../nats/connect.js';
import type { CustomerView } from './customerView.js';
import { log } from './log.js';
import type { WorkerPool } from './workerPool.js';

/** The subject of live explain requests (under `cx.admin.>`, which the engine subscribes to). */
export const EXPLAIN_SUBJECT = 'cx.admin.explain';

/** The engine's answer to an explain request. */
export type ExplainReply =
  | { status: 'ok'; view: CustomerView }
  | { status: 'not-found'; customer: string; partition: number; message: string }
  | { status: 'error'; message: string };

/** A request that cannot be answered as sent. */
class BadRequest extends Error {}

/** The customer of a request body, or a {@link BadRequest} saying what a request looks like. */
export function customerOfRequest(body: string): string {
  const shape = `send JSON {"customer": "<id>"} to ${EXPLAIN_SUBJECT}`;
  if (body.trim() === '') throw new BadRequest(`empty request: ${shape}`);
  let request: unknown;
  try {
    request = JSON.parse(body);
  } catch (e) {
    throw new BadRequest(`the request is not JSON (${(e as Error).message}): ${shape}`);
  }
  const customer = (request as { customer?: unknown } | null)?.customer;
  if (typeof customer !== 'string' || customer === '')
    throw new BadRequest(`"customer" must be a non-empty string: ${shape}`);
  return customer;
}

/** Answers explain requests until closed; {@link ExplainServer.close} waits for the answers under way. */
export interface ExplainServer {
  close(): Promise<void>;
}

/**
 * Subscribes to {@link EXPLAIN_SUBJECT} and answers each request from the worker of the customer's
 * partition (`pool.explain`: between two tasks of that partition, without a number, so checkpoints
 * and batches are not affected). Start it once the state is recovered: before, no one answers.
 */
export function serveExplain(
  nc: NatsConnection,
  pool: Pick<WorkerPool, 'explain' | 'partitions' | 'keyGroups'>,
): ExplainServer {
  const answering = new Set<Promise<void>>();
  const answer = async (msg: Msg): Promise<void> => {
    let reply: ExplainReply;
    try {
      const customer = customerOfRequest(msg.string());
      const partition = ownerOfCustomer(customer, pool.keyGroups, pool.partitions);
      const view = await pool.explain(partition, customer);
      reply =
        view === null
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
    } catch (e) {
      const message = (e as Error)?.message ?? String(e);
      if (!(e instanceof BadRequest)) log.warn({ err: e }, 'explain request failed');
      reply = { status: 'error', message };
    }
    msg.respond(JSON.stringify(reply));
  };
  const sub = nc.subscribe(EXPLAIN_SUBJECT, {
    callback: (err, msg) => {
      if (err) {
        log.warn({ err }, `${EXPLAIN_SUBJECT}: the subscription failed; live explain is off`);
        return;
      }
      const done = answer(msg).finally(() => answering.delete(done));
      answering.add(done);
    },
  });
  return {
    async close() {
      sub.unsubscribe();
      await Promise.allSettled([...answering]);
    },
  };
}

/** The engine could not answer a live explain request (exit code 1). */
export class LiveExplainError extends Error {
  override name = 'LiveExplainError';
}

/**
 * Asks the running engine for one customer's state (`cxstream explain --live`): connects with the
 * config's NATS settings, sends the request, and returns the state, or throws a
 * {@link LiveExplainError} that says what went wrong (no engine, no answer in time, an unknown
 * customer, an error in the engine).
 */
export async function requestExplain(
  config: Readonly<Config>,
  customer: string,
  timeoutMs: number,
): Promise<CustomerView> {
  const nc = await connectNats(config);
  try {
    let text: string;
    try {
      const msg = await nc.request(EXPLAIN_SUBJECT, JSON.stringify({ customer }), { timeout: timeoutMs });
      text = msg.string();
    } catch (e) {
      throw requestFailure(e, nc.getServer(), timeoutMs);
    }
    let reply: ExplainReply;
    try {
      reply = JSON.parse(text) as ExplainReply;
    } catch {
      throw new LiveExplainError(
        `the answer on ${EXPLAIN_SUBJECT} is not JSON (${text.slice(0, 80)}): is something else than cxstream answering there?`,
      );
    }
    if (reply.status === 'ok') return reply.view;
    if (reply.status === 'not-found') throw new LiveExplainError(reply.message);
    throw new LiveExplainError(
      `the engine could not explain customer ${JSON.stringify(customer)}: ${reply.message}`,
    );
  } finally {
    await nc.close();
  }
}

/** Why a request got no answer, in words. */
function requestFailure(e: unknown, server: string, timeoutMs: number): LiveExplainError {
  const err = e as Error & { isNoResponders?: () => boolean; cause?: unknown };
  const name = (err.cause as Error | undefined)?.name ?? err.name;
  if (err.isNoResponders?.() || name === 'NoRespondersError')
    return new LiveExplainError(
      `no engine answers ${EXPLAIN_SUBJECT} on NATS at ${server}: start \`cxstream run\` with this NATS server ` +
        '(it answers once its state is recovered); with NATS permissions, the engine must be allowed to subscribe to ' +
        'cx.admin.> (docs/OPERATIONS.md "Secure NATS")',
      { cause: e },
    );
  if (name === 'TimeoutError')
    return new LiveExplainError(
      `no answer on ${EXPLAIN_SUBJECT} within ${timeoutMs / 1000} s from NATS at ${server}: the engine may be busy ` +
        '(a recovery, a long batch), or a NATS permission stops the request or its reply (this user must be allowed ' +
        `to publish to ${EXPLAIN_SUBJECT}, and the engine to publish to _INBOX.>)`,
      { cause: e },
    );
  if (name === 'PermissionViolationError')
    return new LiveExplainError(
      `NATS refused the request: ${err.message}; grant this user publish on cx.admin.> (docs/OPERATIONS.md "Secure NATS")`,
      { cause: e },
    );
  return new LiveExplainError(`the request on ${EXPLAIN_SUBJECT} failed: ${err.message}`, { cause: e });
}
