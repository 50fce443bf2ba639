/**
 * Both sides of the admin requests (`cx.admin.<action>`, docs/CONTRACT.md "Admin requests"): the
 * engine's subscription that answers them, and the client's request with the config's NATS settings,
 * with why it got no answer in words an operator can act on; the `{"customer": "<id>"}` body of the
 * requests about one customer. Live explain, status and forget use them.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../config/config.js';
import { connectNats } from '../nats/connect.js';
import { log } from './log.js';

/** A request that cannot be answered as sent (the reply says what a request looks like). */
export class BadRequest extends Error {}

/**
 * Whether a request about one customer is this instance's to answer: it owns the customer's key
 * group (`owns`), or the request is malformed (any instance says so).
 */
export function ownsRequest(owns: (customer: string) => boolean, subject: string): (body: string) => boolean {
  return (body) => {
    try {
      return owns(customerOfRequest(body, subject));
    } catch {
      return true;
    }
  };
}

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

/** Answers requests on one admin subject until closed; {@link AdminServer.close} waits for the answers under way. */
export interface AdminServer {
  close(): Promise<void>;
}

/**
 * Subscribes to `subject` and answers each request with the JSON of what `answer` returns for its
 * body; a thrown error is answered `{"status": "error", "message"}` (logged unless it is a
 * {@link BadRequest}). `what` names the feature in the log. A request `forUs` declines is left to
 * another instance of the deployment (the one that owns the customer): no answer from this one.
 */
export function answerRequests(
  nc: NatsConnection,
  subject: string,
  what: string,
  answer: (body: string) => Promise<unknown>,
  forUs: (body: string) => boolean = () => true,
): AdminServer {
  const answering = new Set<Promise<void>>();
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) {
        log.warn({ err }, `${subject}: the subscription failed; ${what} is off`);
        return;
      }
      if (!forUs(msg.string())) return;
      const done = answer(msg.string())
        .catch((e: unknown) => {
          const message = (e as Error)?.message ?? String(e);
          if (!(e instanceof BadRequest)) log.warn({ err: e }, `${what} request failed`);
          return { status: 'error', message };
        })
        .then((reply) => void msg.respond(JSON.stringify(reply)))
        .finally(() => answering.delete(done));
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

/** An admin request got no usable answer (exit code 1: a restart of the engine, or a wait, may cure it). */
export class AdminRequestError extends Error {
  override name = 'AdminRequestError';
}

/**
 * Sends `body` to `subject` and returns the engine's answer (JSON, as the engine's side of the
 * request defines it), or throws an {@link AdminRequestError} saying what went wrong (no engine, no
 * answer in time, a permission, an answer that is not JSON).
 */
export async function adminRequest<Reply>(
  config: Readonly<Config>,
  subject: string,
  body: string,
  timeoutMs: number,
): Promise<Reply> {
  const nc = await connectNats(config);
  let text: string;
  try {
    text = (await nc.request(subject, body, { timeout: timeoutMs })).string();
  } catch (e) {
    throw new AdminRequestError(adminRequestFailure(subject, e, nc.getServer(), timeoutMs), { cause: e });
  } finally {
    await nc.close();
  }
  try {
    return JSON.parse(text) as Reply;
  } catch {
    throw new AdminRequestError(
      `the answer on ${subject} is not JSON (${text.slice(0, 80)}): is something else than cxstream answering there?`,
    );
  }
}

/**
 * Sends `body` to `subject` and collects every answer until none came for `stallMs` (the instances
 * of a shared deployment each answer for themselves), or throws like {@link adminRequest} when none
 * answers in `timeoutMs`.
 */
export async function adminRequestAll<Reply>(
  config: Readonly<Config>,
  subject: string,
  body: string,
  timeoutMs: number,
  stallMs = 1000,
): Promise<Reply[]> {
  const nc = await connectNats(config);
  const texts: string[] = [];
  try {
    const replies = await nc.requestMany(subject, body, {
      strategy: 'stall',
      stall: stallMs,
      maxWait: timeoutMs,
    });
    for await (const m of replies) texts.push(m.string());
    if (texts.length === 0) throw new Error('timeout');
  } catch (e) {
    throw new AdminRequestError(adminRequestFailure(subject, e, nc.getServer(), timeoutMs), { cause: e });
  } finally {
    await nc.close();
  }
  return texts.map((text) => {
    try {
      return JSON.parse(text) as Reply;
    } catch {
      throw new AdminRequestError(
        `an answer on ${subject} is not JSON (${text.slice(0, 80)}): is something else than cxstream answering there?`,
      );
    }
  });
}

/** Why a request on `subject` got no answer, in words. */
function adminRequestFailure(subject: string, e: unknown, server: string, timeoutMs: number): string {
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
