/** `cxstream forget CUSTOMER`: asks the running engine to forget a customer (NATS request cx.admin.forget). */
import { loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { BadRequest } from '../runtime/admin.js';
import { type ForgetReply, requestForget, subjectToken } from '../runtime/forget.js';

/** Options of `cxstream forget`. */
export interface ForgetOptions {
  customer: string;
  /** @default config/default.yaml */
  config?: string;
  /** How long to wait for the engine's answer (a full checkpoint and a read of CX_TRIGGERS and CX_DLQ). @default 60000 */
  timeoutMs?: number;
  /** Print the reply as JSON. @default false */
  json?: boolean;
  /** @default process.stdout */
  out?: NodeJS.WritableStream;
}

/** The engine's reply once it has forgotten the customer (or found nothing). */
export type ForgetReport = Exclude<ForgetReply, { status: 'error' }>;

/** Sends the request, prints what was removed where, and returns the reply. */
export async function runForget(options: ForgetOptions): Promise<ForgetReport> {
  try {
    subjectToken(options.customer);
  } catch (e) {
    if (e instanceof BadRequest) throw new UsageError(e.message);
    throw e;
  }
  const config = loadConfig(options.config);
  const reply = await requestForget(config, options.customer, options.timeoutMs ?? 60_000);
  const out = options.out ?? process.stdout;
  out.write(options.json ? `${JSON.stringify(reply, null, 2)}\n` : formatForget(reply));
  return reply;
}

/** The reply as text: one line per store. */
export function formatForget(r: ForgetReport): string {
  const { removed: x } = r;
  const live = x.liveState.found
    ? `removed from partition ${x.liveState.partition} (${x.liveState.timers} timers, ${x.liveState.waitingEvents} waiting events)`
    : 'none held';
  const tombstone =
    r.tombstone === 'created'
      ? 'tombstone stored'
      : `tombstone stored before, at ${new Date(r.forgottenAt ?? 0).toISOString()}`;
  const also = (r.alsoForgotten ?? []).map((a) => `\n${formatForget(a).trimEnd()}`).join('');
  return `${[
    `${r.message} (key hash ${r.hash}; ${tombstone})`,
    `  live state:          ${live}`,
    `  checkpoint:          ${r.checkpoint === 'full' ? 'full record stored, older records removed' : 'none (the engine keeps no checkpoints)'}`,
    `  KV cx_profiles:      ${x.kvProfile} messages`,
    `  CX_EVENTS:           ${x.streamEvents} events`,
    `  CX_TRIGGERS:         ${x.triggerMessages} triggers`,
    `  CX_DLQ:              ${x.deadLetters} dead letters`,
    `  CX_IDENTITY:         ${x.identityLog ?? 0} identity decisions`,
    `  ClickHouse rows:     events ${x.clickhouse.events}, triggers ${x.clickhouse.triggers}, profiles ${x.clickhouse.profiles}, identities ${x.clickhouse.identities ?? 0}`,
  ].join('\n')}${also}\n`;
}
