/**
 * `cxstream forget CUSTOMER` against the real `cxstream run` process and a private nats-server,
 * with checkpoints in the NATS object store and in the state directory: a customer's history goes through the engine, is
 * forgotten, an event published afterwards is skipped, the engine is SIGKILLed and restarted, and
 * then no NATS stream (events, triggers, dead letters, the KV profile's stream, the checkpoints'
 * object store), no ClickHouse table and no file of the state directory holds the customer key.
 * The same search finds it everywhere before the forget, so it looks in the right places. A second
 * customer's forget "crashes" after its first step (only the tombstone stored while the engine is
 * down): the restarted engine drops it from the restored state and skips its events, and sending the
 * request again removes the rest. Another customer is untouched.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ForgetReport } from '../../engine/cli/forget.js';
import { servedEndpoint } from '../../engine/query/queryEndpoint.js';
import { FORGET_SUBJECT, type ForgetReply } from '../../engine/runtime/forget.js';
import { customerHash, tombstoneOf } from '../../operators/tombstones.js';
import type { CxEvent } from '../../operators/types.js';
import { profileKey } from '../../sinks/profileStore.js';
import { TombstoneStore } from '../../sinks/tombstoneStore.js';
import { check } from '../harness/check.js';
import { cliJson, freePort, runCli } from '../harness/cli.js';
import { EngineProcess, engineBed, engineEnv } from '../harness/engineProcess.js';
import { cxEvent } from '../harness/events.js';
import { servedSql, whereFound } from '../harness/storeSearch.js';

const MIN = 60_000;
const T0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;
/** The customer to forget: an `@` makes its KV key the base64 form, searched for too. */
const GONE = 'forget@me-7';
const KEEP = 'keep-1';
/** A customer whose forget "crashes" right after its first step (the tombstone). */
const HALF = 'half-3';

const RULES = `rules:
  - id: invoice
    on: [message]
    when: has(event.text) && event.text == "invoice"
  - id: cart
    absence: { after: add_to_cart, missing: order, within: 1h }
`;

const ev = cxEvent;

const history: CxEvent[] = [
  ev('g1', GONE, 'session_start', T0, { session: 's-gone' }),
  ev('k1', KEEP, 'message', T0 + 1000, { text: 'invoice' }),
  ev('g2', GONE, 'message', T0 + 2000, { text: 'invoice' }),
  ev('g3', GONE, 'add_to_cart', T0 + 3000, { sku: 'S1' }),
  ev('k2', KEEP, 'add_to_cart', T0 + 4000, { sku: 'S2' }),
  // moves event time past the carts, so the ordered lane has taken them and their timers are armed
  ev('h1', HALF, 'message', T0 + 5000, { text: 'invoice' }),
  ev('h2', HALF, 'add_to_cart', T0 + 6000, { sku: 'S3' }),
  ev('k3', KEEP, 'page_view', T0 + 2 * MIN),
  ev('g4', GONE, 'page_view', T0 + 2 * MIN + 1000),
];

describe.each([
  { store: 'nats', checkpoints: 'OBJ_cx_checkpoints' },
  { store: 'local', checkpoints: 'state dir' },
])('cxstream forget (checkpoint.store $store)', ({ store, checkpoints }) => {
  const bed = engineBed('cxstream-forget-');
  beforeAll(() => writeFileSync(join(bed.dir, 'rules.yaml'), RULES));
  const env = async () =>
    engineEnv(bed.server.url, bed.dir, {
      CXSTREAM_RULES: join(bed.dir, 'rules.yaml'),
      CXSTREAM_AGGREGATES: '',
      CXSTREAM_CHECKPOINT_STORE: store,
      CXSTREAM_METRICS_PORT: String(await freePort()),
    });
  const cliEnv = () => ({ CXSTREAM_NATS_URL: bed.server.url });

  let published = 0;
  /** Publishes and waits until the engine acked everything (acks follow a stored checkpoint). */
  const publish = async (messages: Array<{ subject: string; data: Uint8Array; id: string }>) => {
    const js = jetstream(bed.nc);
    for (const m of messages) await js.publish(m.subject, m.data, { msgID: m.id });
    published += messages.length;
    await bed.engine.delivered(bed.nc, published);
  };
  const asMessage = (e: CxEvent) => ({
    subject: `cx.events.${e.channel}.${e.type}.${e.customer}`,
    data: pack(e),
    id: e.id,
  });

  const sql = (query: string) => servedSql(join(bed.dir, 'clickhouse'), query);
  /** Rows of a customer per table. */
  const rows = async (customer: string): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const table of ['events', 'triggers', 'profiles'])
      out[table] = Number(await sql(`SELECT count() FROM cxstream.${table} WHERE customer = '${customer}'`));
    return out;
  };

  /** Where the customer key (as sent, or as its KV key) occurs: stream names and state files. */
  const whereIs = (customer: string) =>
    whereFound(bed.nc, join(bed.dir, 'state'), [customer, profileKey(customer)]);

  const forget = (customer: string) => cliJson<ForgetReport>(['forget', customer, '--json'], cliEnv());

  it('removes the customer from every store, and a restart or a later event does not bring it back', async () => {
    bed.engine = new EngineProcess(await env());
    await bed.engine.consuming(bed.nc);
    await publish([
      ...history.map(asMessage),
      // a dead letter of the customer: its Cx-Source-Subject names the customer
      {
        subject: `cx.events.app.message.${GONE}`,
        data: new TextEncoder().encode('not an event'),
        id: 'bad1',
      },
    ]);
    // the KV profile and the ClickHouse rows are written; both customers fired the invoice rule
    await check(async () => {
      const [g, k] = [await rows(GONE), await rows(KEEP)];
      return g.events === 4 && g.triggers === 1 && (g.profiles ?? 0) > 0 && k.triggers === 1 ? true : null;
    }, 30_000);
    expect(await whereIs(GONE)).toEqual(
      ['CX_DLQ', 'CX_EVENTS', 'CX_TRIGGERS', 'KV_cx_profiles', checkpoints].sort(),
    );

    const first = await forget(GONE);
    expect(first).toMatchObject({
      status: 'forgotten',
      customer: GONE,
      hash: customerHash(GONE),
      tombstone: 'created',
      checkpoint: 'full',
      removed: {
        liveState: { found: true, timers: 1 },
        kvProfile: 1,
        streamEvents: 5,
        triggerMessages: 1,
        deadLetters: 1,
        clickhouse: { events: 4, triggers: 1 },
      },
    });
    expect(first.removed.clickhouse.profiles).toBeGreaterThan(0);
    expect(await rows(GONE)).toEqual({ events: 0, triggers: 0, profiles: 0 });
    // the mutations pick rows by the key's hash: ClickHouse keeps their text (system.mutations)
    const mutations = await sql(
      `SELECT groupArray(command) FROM system.mutations WHERE database = 'cxstream'`,
    );
    expect(mutations).toContain(customerHash(GONE));
    expect(mutations).not.toContain(GONE);
    const explained = await runCli(['explain', GONE, '--live'], cliEnv());
    expect(explained.stderr).toContain("is not in the engine's state");

    // an event published after the forget (a late upstream retry) is acked and skipped
    await publish([asMessage(ev('g5', GONE, 'order', T0 + 3 * MIN, { amount: 10 }))]);
    await check(
      async () => ((await bed.engine.metric('cx_tombstoned_events_total')) === 1 ? true : null),
      10_000,
    );
    expect(await rows(GONE)).toEqual({ events: 0, triggers: 0, profiles: 0 });

    // a crash, and a restart from the checkpoints: the customer stays gone. And a forget of HALF
    // that crashed right after its first step: only the tombstone is stored
    await bed.engine.kill();
    const half = await TombstoneStore.open(bed.nc);
    expect(await half.put(tombstoneOf(HALF), Date.now())).toBeNull();
    bed.engine = new EngineProcess(await env());
    await check(
      () => bed.engine.line('ready'),
      60_000,
      () => bed.engine.stderrTail(),
    );
    await check(() => servedEndpoint(join(bed.dir, 'clickhouse')), 30_000);
    expect(bed.engine.line('forgotten customers')?.tombstones).toBe(2);
    expect(await rows(GONE)).toEqual({ events: 0, triggers: 0, profiles: 0 });
    // HALF: dropped from the restored state, its next event skipped; its stored data waits for the
    // request to be sent again (docs/PRIVACY.md "Crash between steps")
    const halfExplained = await runCli(['explain', HALF, '--live'], cliEnv());
    expect(halfExplained.stderr).toContain("is not in the engine's state");
    await publish([asMessage(ev('h3', HALF, 'message', T0 + 4 * MIN, { text: 'invoice' }))]);
    await check(
      async () => ((await bed.engine.metric('cx_tombstoned_events_total')) === 1 ? true : null),
      10_000,
    );
    expect(await rows(HALF)).toMatchObject({ events: 2, triggers: 1 });
    const finished = await forget(HALF);
    expect(finished).toMatchObject({
      status: 'forgotten',
      tombstone: 'existed',
      removed: {
        liveState: { found: false, timers: 0 },
        kvProfile: 1,
        streamEvents: 3,
        triggerMessages: 1,
        clickhouse: { events: 2, triggers: 1 },
      },
    });
    expect(await whereIs(HALF)).toEqual([]);

    // forgetting again removes what came since (the late event) and is idempotent
    const second = await forget(GONE);
    expect(second).toMatchObject({
      status: 'forgotten',
      tombstone: 'existed',
      removed: {
        liveState: { found: false },
        kvProfile: 0,
        streamEvents: 1,
        triggerMessages: 0,
        deadLetters: 0,
      },
    });
    expect(second.forgottenAt).toBeGreaterThan(0);
    const third = await forget(GONE);
    expect(third.status).toBe('nothing-found');
    expect(third.message).toBe(
      `nothing found for customer "${GONE}" (forgotten before); the tombstone is stored`,
    );
    expect(await whereIs(GONE)).toEqual([]);

    // the other customer is untouched
    const k = await rows(KEEP);
    expect([k.events, k.triggers, (k.profiles ?? 0) > 0]).toEqual([3, 1, true]);
    expect(await whereIs(KEEP)).toEqual(['CX_EVENTS', 'CX_TRIGGERS', 'KV_cx_profiles', checkpoints].sort());

    // the audit table: one row per request, the key's hash, no key
    const audit = await sql(
      'SELECT customer_hash, removed FROM cxstream.forget_audit ORDER BY at FORMAT JSONEachRow',
    );
    const lines = audit
      .split('\n')
      .map((l) => JSON.parse(l) as { customer_hash: string; removed: Record<string, number> });
    expect(lines.map((l) => l.customer_hash)).toEqual([
      customerHash(GONE),
      customerHash(HALF),
      customerHash(GONE),
      customerHash(GONE),
    ]);
    expect(lines[0]!.removed).toMatchObject({ clickhouse_events: 4, stream_events: 5, dead_letters: 1 });
    expect(audit).not.toContain(GONE);
    expect(audit).not.toContain(HALF);
  }, 180_000);

  it('answers a malformed request and a key that cannot be a subject token with an error', async () => {
    const bad = (await bed.nc.request(FORGET_SUBJECT, 'nope', { timeout: 5000 })).json<ForgetReply>();
    expect(bad.status).toBe('error');
    expect(bad.message).toMatch(
      /^the request is not JSON .*: send JSON \{"customer": "<id>"\} to cx.admin.forget$/,
    );
    const dotted = (
      await bed.nc.request(FORGET_SUBJECT, '{"customer":"a.b"}', { timeout: 5000 })
    ).json<ForgetReply>();
    expect(dotted.status).toBe('error');
    expect(dotted.message).toContain('cannot be the last token of an event subject');
    const usage = await runCli(['forget', 'a b'], cliEnv());
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('cannot be the last token of an event subject');
  });

  it('says no engine answers once it stopped', async () => {
    expect(await bed.engine.stop()).toBe(0);
    const none = await runCli(['forget', GONE, '--timeout', '2'], cliEnv());
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('cxstream: no engine answers cx.admin.forget on NATS at');
  }, 60_000);
});
