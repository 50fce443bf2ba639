/**
 * What the admin requests (`cx.admin.<action>`, docs/CONTRACT.md "Admin requests") share: the
 * request body `{"customer": "<id>"}`, answering it on a subscription, and the client side that
 * sends one and says in words why no answer came.
 */
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../config/config.js';
import { connectNats } from '../nats/connect.js';
import { log } from './log.js';

/** A request that cannot be answered as sent (the reply says what a request looks like). */
export class BadRequest extends Error {}

/** The customer of a request body to `subject`, or a {@link BadRequest} saying what a request looks like. */
export function customerOfRequest(body: string, subject: string): string {
  const shape = `send JSON {"customer": "<id>"} to ${subject}`;
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

/** Answers admin requests until closed; {@link AdminServer.close} waits for the answers under way. */
export interface AdminServer {
  close(): Promise<void>;
}

/**
 * Subscribes to `subject` and answers each request with `answer`'s JSON; a thrown error is answered
 * `{"status": "error", "message"}` (logged unless it is a {@link BadRequest}).
 */
export function serveAdmin<R>(
  nc: NatsConnection,
  subject: string,
  answer: (msg: Msg) => Promise<R>,
): AdminServer {
  const answering = new Set<Promise<void>>();
  const reply = async (msg: Msg): Promise<void> => {
    let body: R | { status: 'error'; message: string };
    try {
      body = await answer(msg);
    } catch (e) {
      const message = (e as Error)?.message ?? String(e);
      if (!(e instanceof BadRequest)) log.warn({ err: e }, `${subject} request failed`);
      body = { status: 'error', message };
    }
    msg.respond(JSON.stringify(body));
  };
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) {
        log.warn({ err }, `${subject}: the subscription failed; these requests go unanswered`);
        return;
      }
      const done = reply(msg).finally(() => answering.delete(done));
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

/**
 * Sends `{"customer": customer}` to `subject` with the config's NATS settings and returns the
 * parsed JSON answer; `fail` makes the error of each way it can go wrong (no engine, no answer in
 * time, a refused permission, an answer that is not JSON).
 */
export async function adminRequest<R>(
  config: Readonly<Config>,
  subject: string,
  customer: string,
  timeoutMs: number,
  fail: (message: string, cause?: unknown) => Error,
): Promise<R> {
  const nc = await connectNats(config);
  try {
    let text: string;
    try {
      const msg = await nc.request(subject, JSON.stringify({ customer }), { timeout: timeoutMs });
      text = msg.string();
    } catch (e) {
      throw fail(requestFailure(e, nc.getServer(), timeoutMs, subject), e);
    }
    try {
      return JSON.parse(text) as R;
    } catch {
      throw fail(
        `the answer on ${subject} is not JSON (${text.slice(0, 80)}): is something else than cxstream answering there?`,
      );
    }
  } finally {
    await nc.close();
  }
}

/** Why a request got no answer, in words. */
function requestFailure(e: unknown, server: string, timeoutMs: number, subject: string): string {
  const err = e as Error & { isNoResponders?: () => boolean; cause?: unknown };
  const name = (err.cause as Error | undefined)?.name ?? err.name;
  if (err.isNoResponders?.() || name === 'NoRespondersError')
    return (
      `no engine answers ${subject} on NATS at ${server}: start \`cxstream run\` with this NATS server ` +
      '(it answers once its state is recovered); with NATS permissions, the engine must be allowed to subscribe to ' +
      'cx.admin.> (docs/OPERATIONS.md "Secure NATS")'
    );
  if (name === 'TimeoutError')
    return (
      `no answer on ${subject} within ${timeoutMs / 1000} s from NATS at ${server}: the engine may be busy ` +
      '(a recovery, a long batch), or a NATS permission stops the request or its reply (this user must be allowed ' +
      `to publish to ${subject}, and the engine to publish to _INBOX.>)`
    );
  if (name === 'PermissionViolationError')
    return `NATS refused the request: ${err.message}; grant this user publish on cx.admin.> (docs/OPERATIONS.md "Secure NATS")`;
  return `the request on ${subject} failed: ${err.message}`;
}
