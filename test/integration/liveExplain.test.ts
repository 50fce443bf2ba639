/**
 * Live explain: `cxstream explain CUSTOMER --live` against the real `cxstream run` process and a
 * private nats-server. The engine answers `cx.admin.explain` from the worker of the customer's
 * partition: its profile, pending timers, and the recent decisions of its rules (a firing, a
 * cooldown, an expression error, a timer cancelled by an order), as they change while it runs.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventTimeFormat } from '../../engine/cli/eventTime.js';
import type { ExplainReport } from '../../engine/cli/explain.js';
import { EXPLAIN_SUBJECT, type ExplainReply } from '../../engine/runtime/liveExplain.js';
import { ownerOfCustomer } from '../../operators/keyGroups.js';
import type { CxEvent } from '../../operators/types.js';
import { cliJsonWhen, runCli } from '../harness/cli.js';
import { EngineProcess, engineBed, engineEnv } from '../harness/engineProcess.js';

const MIN = 60_000;
// Event times near the wall clock: the engine dead-letters events far ahead of it.
const T0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;
const time = eventTimeFormat('Asia/Shanghai');

const RULES = `rules:
  - id: invoice
    on: [message]
    when: has(event.text) && event.text == "invoice"
    cooldown: 24h
  - id: cart
    absence: { after: add_to_cart, missing: order, within: 1h }
  - id: broken
    on: [message]
    when: event.nothing > 1
`;

const ev = (id: string, type: string, ts: number, extra: Partial<CxEvent> = {}): CxEvent => ({
  id,
  ts,
  customer: 'c1',
  type,
  channel: 'app',
  ...extra,
});

describe('cxstream explain --live', () => {
  const bed = engineBed('cxstream-live-explain-');
  beforeAll(() => writeFileSync(join(bed.dir, 'rules.yaml'), RULES));

  const env = () => ({ CXSTREAM_NATS_URL: bed.server.url });
  let published = 0;
  const publish = async (events: CxEvent[]) => {
    const js = jetstream(bed.nc);
    for (const e of events)
      await js.publish(`cx.events.${e.channel}.${e.type}.${e.customer}`, pack(e), { msgID: e.id });
    published += events.length;
    await bed.engine.delivered(bed.nc, published);
  };
  /** `explain c1 --live --json` once `ready` holds for its report. */
  const liveReport = (ready: (r: ExplainReport) => boolean) =>
    cliJsonWhen(['explain', 'c1', '--live', '--json'], env(), ready, () => bed.engine.stderrTail());

  it("answers with the customer's state and the gates that held its rules back, as they change", async () => {
    bed.engine = new EngineProcess(
      engineEnv(bed.server.url, bed.dir, {
        CXSTREAM_RULES: join(bed.dir, 'rules.yaml'),
        CXSTREAM_AGGREGATES: '',
      }),
    );
    await bed.engine.consuming(bed.nc);
    await publish([
      ev('m1', 'message', T0, { text: 'invoice' }),
      ev('m2', 'message', T0 + MIN, { text: 'invoice' }),
      ev('a1', 'add_to_cart', T0 + 2 * MIN, { sku: 'S1' }),
      // moves event time past a1, so the ordered lane (the absence) has taken it
      ev('v1', 'page_view', T0 + 3 * MIN),
    ]);

    const first = await liveReport((r) => r.rules.find((x) => x.id === 'cart')!.pending.length > 0);
    expect(first.source).toBe('live');
    expect(first.live!.partition).toBe(ownerOfCustomer('c1', 128, 2));
    expect(first.tz).toBe('Asia/Shanghai');
    expect(first.profile.lastSeen).toBe(T0 + 3 * MIN);
    const rule = (r: ExplainReport, id: string) => r.rules.find((x) => x.id === id)!;
    expect(rule(first, 'invoice').fired.map((f) => f.id)).toEqual(['invoice:c1:m1']);
    expect(rule(first, 'invoice').lines.map((l) => l.what)).toEqual(['fired', 'cooldown', 'last-fired']);
    expect(rule(first, 'cart').pending).toEqual([{ kind: 'absence', key: '', due: T0 + 62 * MIN }]);
    expect(rule(first, 'broken').lines.map((l) => [l.what, l.count])).toEqual([['when-error', 2]]);
    expect(first.ruleErrors).toEqual([{ rule: 'broken', count: 2, first: 'No such key: nothing' }]);

    // The text the operator reads: the same report, in the customer's zone.
    const text = await runCli(['explain', 'c1', '--live'], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      `customer c1: live state of the running engine, partition ${ownerOfCustomer('c1', 128, 2)} (times in Asia/Shanghai`,
    );
    expect(text.stdout).toContain(
      `held       cooldown 24h: fired at ${time(T0)}, free again at ${time(T0 + 24 * 60 * MIN)}`,
    );
    expect(text.stdout).toContain(
      `waiting    timer due ${time(T0 + 62 * MIN)}: add_to_cart a1 at ${time(T0 + 2 * MIN)} and no order since`,
    );

    // An order cancels the cart reminder: the next answer says so, from the running state.
    await publish([ev('o1', 'order', T0 + 4 * MIN, { amount: 20 }), ev('v2', 'page_view', T0 + 5 * MIN)]);
    const second = await liveReport((r) => rule(r, 'cart').pending.length === 0);
    expect(rule(second, 'cart').lines.map((l) => [l.what, l.brief])).toEqual([
      ['cancelled', `cancelled by order o1 at ${time(T0 + 4 * MIN)}`],
    ]);
    expect(second.profile.orders).toBe(1);
  }, 90_000);

  it('says a customer the engine holds no state for is unknown, and a malformed request is an error', async () => {
    const unknown = await runCli(['explain', 'nobody', '--live'], env());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`customer "nobody" is not in the engine's state: partition`);
    const bad = await bed.nc.request(EXPLAIN_SUBJECT, 'nope', { timeout: 5000 });
    const reply = bad.json<ExplainReply>();
    expect(reply.status).toBe('error');
    expect(reply.status === 'error' && reply.message).toMatch(/^the request is not JSON .*: send JSON/);
  });

  it('says no engine answers once it stopped, and --live goes without --file', async () => {
    expect(await bed.engine.stop()).toBe(0);
    const none = await runCli(['explain', 'c1', '--live', '--timeout', '2'], env());
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`cxstream: no engine answers cx.admin.explain on NATS at`);
    const both = await runCli(['explain', 'c1', '--live', '--file', 'x.ndjson'], env());
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('explain takes --file EVENTS.ndjson or --live, not both');
  }, 60_000);
});
