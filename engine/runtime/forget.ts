/**
 * Forgetting a customer: the NATS request `cx.admin.forget` (docs/CONTRACT.md "Admin requests"),
 * answered by the running engine, and the client side `cxstream forget CUSTOMER` uses. What is
 * removed, in which order and why: docs/PRIVACY.md "Forgetting a customer".
 *
 * Request body: JSON `{"customer": "<id>"}`. Reply body: JSON {@link ForgetReply}.
 */

import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ForgetResult } from '../../operators/partitionProcessor.js';
import { type Tombstone, tombstoneOf } from '../../operators/tombstones.js';
import { deleteCustomerRows, type RowsRemoved, recordForget } from '../../sinks/customerErasure.js';
import { profileKey } from '../../sinks/profileStore.js';
import type { TombstoneStore } from '../../sinks/tombstoneStore.js';
import type { Config } from '../config/config.js';
import { IDENTITY_STREAM } from '../identity/identityLog.js';
import { natsNames } from '../nats/streams.js';
import {
  type AdminServer,
  adminRequest,
  answerRequests,
  BadRequest,
  customerOfRequest,
  ownsRequest,
} from './admin.js';
import { log } from './log.js';
import type { BatchOutput, ControlRequest } from './workerProtocol.js';

/** The subject of forget requests (under `cx.admin.>`). */
export const FORGET_SUBJECT = 'cx.admin.forget';

/** What a forget request removed, per store. */
export interface ForgetCounts {
  /** The live state in the worker that owns the customer's key group. */
  liveState: { partition: number; found: boolean; timers: number; waitingEvents: number };
  /** Messages of the profile's key in the KV bucket `cx_profiles` (every revision). */
  kvProfile: number;
  /** The customer's events in `CX_EVENTS` (subjects `cx.events.*.*.<customer>`). */
  streamEvents: number;
  /** Triggers of the customer in `CX_TRIGGERS`. */
  triggerMessages: number;
  /** Dead letters of the customer's events in `CX_DLQ`. */
  deadLetters: number;
  /** Identity decisions of events of the customer key in `CX_IDENTITY` (docs/IDENTITY.md). */
  identityLog: number;
  /** Rows in ClickHouse. */
  clickhouse: RowsRemoved;
}

/** The engine's answer to a forget request. */
export type ForgetReply =
  | {
      /** `forgotten`: something was removed; `nothing-found`: no store held anything of the customer. */
      status: 'forgotten' | 'nothing-found';
      customer: string;
      /** SHA-256 of the key: the tombstone's key in `cx_tombstones` and the audit row's `customer_hash`. */
      hash: string;
      /** `created`, or `existed` when the customer was forgotten before (`forgottenAt`). */
      tombstone: 'created' | 'existed';
      forgottenAt?: number;
      removed: ForgetCounts;
      /** Whether a full checkpoint was stored after the live state was removed (`none`: no checkpoints). */
      checkpoint: 'full' | 'none';
      message: string;
      /** The keys merged with the customer (identity stitching), forgotten with it. */
      alsoForgotten?: Array<Exclude<ForgetReply, { status: 'error' }>>;
    }
  | { status: 'error'; message: string };

/**
 * The customer key as the last token of an event subject, or a {@link BadRequest}: a key with a dot
 * or white space, or a wildcard, is no subject token, so no event of it can exist (and a purge
 * filter built from it would match other customers).
 */
export function subjectToken(customer: string): string {
  if (/[.\s]/.test(customer) || customer === '*' || customer === '>')
    throw new BadRequest(
      `customer ${JSON.stringify(customer)} cannot be the last token of an event subject ` +
        '(cx.events.<channel>.<type>.<customer>: no dot, space or wildcard), so the engine holds nothing of it',
    );
  return customer;
}

/** What the engine's forget requests work on. */
export interface ForgetStores {
  nc: NatsConnection;
  tombstones: TombstoneStore;
  /** Runs a task on every partition in order with its batches (engine/runtime/controlQueue.ts). */
  control(request: Omit<ControlRequest, 'resolve' | 'reject'>): Promise<BatchOutput[]>;
  /** The keys of the customer's person: its canonical customer and every alias (absent: the key alone). */
  keysOf?: (customer: string) => string[];
  /** Drops forgotten keys from the running engine's identity graph (after their decisions are purged). */
  forgetIdentities?: (keys: string[]) => void;
  /** Whether this instance owns the customer (absent: it owns every customer); others' requests are left to their owner. */
  owns?: (customer: string) => boolean;
  /** Stores a full checkpoint of every partition now (absent: the run keeps no checkpoints). */
  fullCheckpoint?: () => Promise<unknown>;
  clickhouse: {
    /** Deletes the rows of the customer whose key has this SHA-256. */
    delete(hash: string): Promise<RowsRemoved>;
    audit(row: { customerHash: string; at: number; removed: Record<string, number> }): Promise<void>;
  };
  clock?: () => number;
}

/** ClickHouse's part of {@link ForgetStores} on a client. */
export function clickhouseErasure(
  client: Parameters<typeof deleteCustomerRows>[0],
  database: string,
  cluster: string,
): ForgetStores['clickhouse'] {
  return {
    delete: (hash) => deleteCustomerRows(client, database, hash, cluster),
    audit: (row) => recordForget(client, database, row),
  };
}

/**
 * Subscribes to {@link FORGET_SUBJECT}. Requests are answered one at a time (two forgets of one
 * customer must not interleave their steps). Start it once the state is recovered.
 */
export function serveForget(stores: ForgetStores): AdminServer {
  let queue: Promise<unknown> = Promise.resolve();
  return answerRequests(
    stores.nc,
    FORGET_SUBJECT,
    'forget',
    (body) => {
      const next = queue.then(() =>
        forgetPerson(stores, subjectToken(customerOfRequest(body, FORGET_SUBJECT))),
      );
      queue = next.catch(() => {});
      return next;
    },
    ownsRequest(stores.owns ?? (() => true), FORGET_SUBJECT),
  );
}

/** A step failed: the reply says which, and whether the tombstone is stored. */
class StepError extends Error {
  constructor(step: string, cause: unknown, tombstoned: boolean) {
    super(
      `${step} failed: ${(cause as Error)?.message ?? String(cause)}. ` +
        (tombstoned
          ? 'The tombstone is stored, so nothing brings the customer back; send the request again to finish (it is idempotent)'
          : 'Nothing was removed; send the request again'),
      { cause },
    );
  }
}

/**
 * Forgets a person: the customer asked for and every key merged with it (identity stitching,
 * docs/IDENTITY.md), each as {@link forget} does. The reply is the asked key's, with the others'
 * in `alsoForgotten`.
 */
async function forgetPerson(stores: ForgetStores, customer: string): Promise<ForgetReply> {
  const keys = stores.keysOf?.(customer) ?? [customer];
  const others = keys.filter((k) => k !== customer);
  const also: ForgetReport[] = [];
  for (const key of others) also.push((await forget(stores, key)) as ForgetReport);
  const reply = (await forget(stores, customer)) as ForgetReport;
  stores.forgetIdentities?.(keys);
  if (also.length === 0) return reply;
  const any = reply.status === 'forgotten' || also.some((r) => r.status === 'forgotten');
  return {
    ...reply,
    status: any ? 'forgotten' : 'nothing-found',
    alsoForgotten: also,
    message: `${reply.message}; with the keys merged with it: ${others.map((k) => JSON.stringify(k)).join(', ')}`,
  };
}

/** A reply that is not an error. */
type ForgetReport = Exclude<ForgetReply, { status: 'error' }>;

/**
 * Forgets one customer, in this order (docs/PRIVACY.md "Forgetting a customer" says why):
 * 1. the tombstone, durably: from here on no replay, redelivery or restore brings the customer back;
 * 2. the live state, in stream order, once the outputs of everything before are delivered;
 * 3. a full checkpoint, so no stored record holds the customer (deltas of older chains are removed);
 * 4. the KV profile, the events on CX_EVENTS, the triggers and dead letters naming the customer;
 * 5. the ClickHouse rows; 6. the audit row.
 */
async function forget(stores: ForgetStores, customer: string): Promise<ForgetReply> {
  const clock = stores.clock ?? Date.now;
  const tombstone = tombstoneOf(customer);
  const removed: Partial<ForgetCounts> = {};
  let tombstoned = false;
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (e) {
      throw new StepError(name, e, tombstoned);
    }
  };
  const at = clock();
  const before = await step('storing the tombstone in KV cx_tombstones', () =>
    stores.tombstones.put(tombstone, at),
  );
  tombstoned = true;
  removed.liveState = await step('removing the live state', () => forgetLive(stores, customer, tombstone));
  const checkpoint = stores.fullCheckpoint
    ? await step('storing a full checkpoint', async () => {
        await stores.fullCheckpoint!();
        return 'full' as const;
      })
    : ('none' as const);
  const jsm = await step('reaching JetStream', () => jetstreamManager(stores.nc));
  removed.kvProfile = await step('purging the profile in KV cx_profiles', () =>
    purge(jsm, natsNames.profileStream, `$KV.${natsNames.profileBucket}.${profileKey(customer)}`),
  );
  removed.streamEvents = await step(`purging the events on ${natsNames.eventsStream}`, () =>
    purge(jsm, natsNames.eventsStream, `cx.events.*.*.${customer}`),
  );
  removed.triggerMessages = await step(`deleting the triggers on ${natsNames.triggersStream}`, () =>
    deleteMessages(stores.nc, natsNames.triggersStream, (m) => triggerCustomer(m.data) === customer),
  );
  removed.deadLetters = await step(`deleting the dead letters on ${natsNames.deadLetterStream}`, () =>
    deleteMessages(stores.nc, natsNames.deadLetterStream, (m) =>
      (m.headers?.get('Cx-Source-Subject') ?? '').endsWith(`.${customer}`),
    ),
  );
  removed.identityLog = await step(`purging the identity decisions on ${IDENTITY_STREAM}`, async () =>
    (await streamExists(jsm, IDENTITY_STREAM)) ? purge(jsm, IDENTITY_STREAM, `cx.identity.${customer}`) : 0,
  );
  removed.clickhouse = await step('deleting the rows in ClickHouse', () =>
    stores.clickhouse.delete(tombstone.hash),
  );
  const counts = removed as ForgetCounts;
  const flat: Record<string, number> = {
    live_state: counts.liveState.found ? 1 : 0,
    timers: counts.liveState.timers,
    waiting_events: counts.liveState.waitingEvents,
    kv_profile: counts.kvProfile,
    stream_events: counts.streamEvents,
    trigger_messages: counts.triggerMessages,
    dead_letters: counts.deadLetters,
    identity_log: counts.identityLog,
    ...Object.fromEntries(Object.entries(counts.clickhouse).map(([t, n]) => [`clickhouse_${t}`, n])),
  };
  await step('recording the request in ClickHouse forget_audit', () =>
    stores.clickhouse.audit({ customerHash: tombstone.hash, at, removed: flat }),
  );
  const total = Object.values(flat).reduce((a, b) => a + b, 0);
  const status = total > 0 ? 'forgotten' : 'nothing-found';
  log.info({ customerHash: tombstone.hash, removed: flat }, 'customer forgotten');
  return {
    status,
    customer,
    hash: tombstone.hash,
    tombstone: before === null ? 'created' : 'existed',
    ...(before !== null && { forgottenAt: before }),
    removed: counts,
    checkpoint,
    message:
      status === 'forgotten'
        ? `customer ${JSON.stringify(customer)} forgotten`
        : `nothing found for customer ${JSON.stringify(customer)}${before === null ? '' : ' (forgotten before)'}; the tombstone is stored`,
  };
}

/** Removes the live state in its owner, in stream order; the other partitions keep the tombstone. */
async function forgetLive(
  stores: ForgetStores,
  customer: string,
  tombstone: Tombstone,
): Promise<ForgetCounts['liveState']> {
  const outs = await stores.control({ task: { kind: 'forget', customer, tombstone }, waitForEarlier: true });
  const owner = outs.findIndex((o) => o.forgotten != null);
  const result: ForgetResult = outs[owner]?.forgotten ?? { found: false, timers: 0, waitingEvents: 0 };
  return { partition: owner, ...result };
}

/** Whether a stream exists. */
async function streamExists(jsm: JetStreamManager, stream: string): Promise<boolean> {
  try {
    await jsm.streams.info(stream);
    return true;
  } catch {
    return false;
  }
}

/** Purges a stream's messages on one subject; how many there were. */
async function purge(jsm: JetStreamManager, stream: string, filter: string): Promise<number> {
  return (await jsm.streams.purge(stream, { filter })).purged;
}

/** The `customer` of a trigger body (JSON, docs/CONTRACT.md), or undefined. */
function triggerCustomer(data: Uint8Array): string | undefined {
  try {
    const body = JSON.parse(new TextDecoder().decode(data)) as { customer?: unknown };
    return typeof body.customer === 'string' ? body.customer : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads every message of a stream (an ordered consumer, nothing acked) and deletes those `match`
 * picks by sequence, overwriting them (`erase`). Costs a read of the whole stream: the trigger and
 * dead-letter subjects do not name the customer.
 */
async function deleteMessages(
  nc: NatsConnection,
  stream: string,
  match: (m: { data: Uint8Array; headers?: { get(k: string): string } }) => boolean,
): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return 0;
  const consumer = await jetstream(nc).consumers.get(stream);
  const seqs: number[] = [];
  const messages = await consumer.consume({ max_messages: 1000 });
  for await (const m of messages) {
    if (match(m)) seqs.push(m.seq);
    if (m.seq >= state.last_seq || m.info.pending === 0) break;
  }
  messages.stop();
  for (const seq of seqs) await jsm.streams.deleteMessage(stream, seq, true);
  return seqs.length;
}

/** The engine could not forget the customer (exit code 1). */
export class ForgetError extends Error {
  override name = 'ForgetError';
}

/**
 * Asks the running engine to forget a customer (`cxstream forget`): the reply, or a
 * {@link ForgetError} when a step failed, or an `AdminRequestError` (engine/runtime/admin.ts) when no engine answers in time.
 */
export async function requestForget(
  config: Readonly<Config>,
  customer: string,
  timeoutMs: number,
): Promise<Exclude<ForgetReply, { status: 'error' }>> {
  const reply = await adminRequest<ForgetReply>(
    config,
    FORGET_SUBJECT,
    JSON.stringify({ customer }),
    timeoutMs,
  );
  if (reply.status === 'error')
    throw new ForgetError(
      `the engine could not forget customer ${JSON.stringify(customer)}: ${reply.message}`,
    );
  return reply;
}
