/**
 * Hot reload against the real `cxstream run` process and a private nats-server: events flow, the
 * rule file changes (file watch), the new rule fires on later events and sees earlier state; a
 * broken file is rejected with file:line in the log while the old rules keep firing; removing a
 * rule stops it; SIGHUP reloads too.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../engine/nats/natsServer.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { check } from '../harness/check.js';
import { EngineProcess, engineEnv } from '../harness/engineProcess.js';
import { cxEvent, publishEvents } from '../harness/events.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';
import { readStream } from '../harness/readStream.js';

const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const MIN = 60_000;

const BIG_ORDER = `
  - id: big_order
    on: [order]
    when: event.amount >= 100
`;
const SPENDER = `
  - id: spender_contact
    on: [message]
    when: profile.spend >= 500
`;
const v1 = `rules:${BIG_ORDER}`;
const v2 = `rules:${BIG_ORDER}${SPENDER}`;
// Line 11 of the file: the broken condition.
const broken = `rules:${BIG_ORDER}${SPENDER}  - id: broken_rule\n    on: [message]\n    when: profile.spend >=\n`;

describe('rule hot reload in cxstream run', () => {
  let t: TestNats;
  let server: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  let engine: EngineProcess;
  let n = 0;

  const publish = async (customer: string, type: string, extra: Partial<CxEvent> = {}) => {
    n++;
    const e = cxEvent(`e${n}`, customer, type, T0 + n * MIN, extra);
    await publishEvents(nc, [e]);
    return e.id;
  };
  const triggerIds = async (): Promise<string[]> =>
    (await readStream(nc, 'CX_TRIGGERS')).map((m) => m.json<Trigger>().id).sort();
  const count = (text: string) =>
    engine
      .logText()
      .split('\n')
      .filter((l) => l.includes(text)).length;
  const waitFor = (what: () => boolean | Promise<boolean>) =>
    check(what, 30_000, () => engine.stderrTail(), 200);

  beforeAll(async () => {
    t = await setup({ dirPrefix: 'cxstream-reload-' });
    ({ server, nc, dir } = t);
  });

  afterAll(async () => {
    await engine?.kill();
    await cleanup(t);
  });

  it('swaps rules on file change and SIGHUP, keeps state, rejects a broken file with file:line', async () => {
    const rulesFile = join(dir, 'rules.yaml');
    writeFileSync(rulesFile, v1);
    engine = new EngineProcess(engineEnv(server.url, dir, { CXSTREAM_RULES: rulesFile }));
    await engine.consuming(nc);

    // v1: c1 spends 600.
    await publish('c1', 'order', { amount: 600 }); // e1 → big_order
    await waitFor(async () => (await triggerIds()).includes('big_order:c1:e1'));

    // v2 adds a rule on the profile: it must see the 600 spent before the reload.
    writeFileSync(rulesFile, v2);
    await waitFor(() => count('"rules reloaded"') === 1);
    await publish('c1', 'message'); // e2 → spender_contact (state kept)
    await publish('c2', 'order', { amount: 150 }); // e3 → big_order
    await publish('c2', 'message'); // e4: spend 150, nothing
    await waitFor(async () => (await triggerIds()).includes('spender_contact:c1:e2'));

    // A broken file: rejected with file:line, the running rules (v2) stay.
    writeFileSync(rulesFile, broken);
    await waitFor(() => count('rule reload rejected') === 1);
    expect(engine.logText()).toContain(`${rulesFile}:11: rules[2].when: CEL syntax`);
    await publish('c3', 'order', { amount: 300 }); // e5 → big_order
    await publish('c1', 'message'); // e6 → spender_contact
    await waitFor(async () => (await triggerIds()).includes('spender_contact:c1:e6'));

    // Back to v1: spender_contact is gone.
    writeFileSync(rulesFile, v1);
    await waitFor(() => count('"rules reloaded"') === 2);
    await publish('c1', 'message'); // e7: nothing
    await publish('c1', 'order', { amount: 120 }); // e8 → big_order, after e7 in c1's partition
    await waitFor(async () => (await triggerIds()).includes('big_order:c1:e8'));

    engine.signal('SIGHUP');
    await waitFor(() => count('"rules reloaded"') === 3 && engine.logText().includes('SIGHUP'));
    await publish('c4', 'order', { amount: 100 }); // e9 → big_order
    await waitFor(async () => (await triggerIds()).includes('big_order:c4:e9'));

    expect(await triggerIds()).toEqual(
      [
        'big_order:c1:e1',
        'spender_contact:c1:e2',
        'big_order:c2:e3',
        'big_order:c3:e5',
        'spender_contact:c1:e6',
        'big_order:c1:e8',
        'big_order:c4:e9',
      ].sort(),
    );
    expect(await engine.stop()).toBe(0);
  }, 120_000);
});
