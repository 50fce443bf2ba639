/**
 * Hot reload against the real `cxstream run` process and a private nats-server: events flow, the
 * rule file changes (file watch), the new rule fires on later events and sees earlier state; a
 * broken file is rejected with file:line in the log while the old rules keep firing; removing a
 * rule stops it; SIGHUP reloads too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsServer } from '../../engine/natsServer.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { check } from '../harness/check.js';

const root = resolve(import.meta.dirname, '../..');
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
  let server: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  let engine: ChildProcess;
  let stderr = '';
  let n = 0;

  const publish = async (customer: string, type: string, extra: Partial<CxEvent> = {}) => {
    n++;
    const e: CxEvent = { id: `e${n}`, ts: T0 + n * MIN, customer, type, channel: 'app', ...extra };
    await jetstream(nc).publish(`cx.events.app.${type}.${customer}`, pack(e), { msgID: e.id });
    return e.id;
  };
  const triggerIds = async (): Promise<string[]> => {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info('CX_TRIGGERS');
    if (state.messages === 0) return [];
    const consumer = await jetstream(nc).consumers.get('CX_TRIGGERS', {
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.None,
    } as never);
    const ids: string[] = [];
    for await (const m of await consumer.fetch({ max_messages: state.messages, expires: 5000 })) {
      ids.push(m.json<Trigger>().id);
      if (ids.length >= state.messages) break;
    }
    return ids.sort();
  };
  const count = (text: string) => stderr.split('\n').filter((l) => l.includes(text)).length;
  const waitFor = (what: () => boolean | Promise<boolean>) => check(what, 30_000, () => stderr, 200);

  beforeAll(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connect({ servers: server.url });
    dir = mkdtempSync(join(tmpdir(), 'cxstream-reload-'));
  });

  afterAll(async () => {
    if (engine && engine.exitCode === null) engine.kill('SIGKILL');
    await nc?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('swaps rules on file change and SIGHUP, keeps state, rejects a broken file with file:line', async () => {
    const rulesFile = join(dir, 'rules.yaml');
    writeFileSync(rulesFile, v1);
    engine = spawn(process.execPath, [join(root, 'bin/cxstream.js'), 'run'], {
      cwd: root,
      env: {
        ...process.env,
        CXSTREAM_NATS_URL: server.url,
        CXSTREAM_CLICKHOUSE_URL: `embedded:${dir}/clickhouse`,
        CXSTREAM_STATE_DIR: `${dir}/state`,
        CXSTREAM_RULES: rulesFile,
        CXSTREAM_METRICS_PORT: '0',
        CXSTREAM_ENGINE_PARTITIONS: '2',
        CXSTREAM_ENGINE_BATCH_MAX_WAIT_MS: '5',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    engine.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => engine.once('exit', (code) => r(code)));
    const jsm = await jetstreamManager(nc);
    await waitFor(() => jsm.consumers.info('CX_EVENTS', 'cxstream').then(() => true));

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
    expect(stderr).toContain(`${rulesFile}:11: rules[2].when: CEL syntax`);
    await publish('c3', 'order', { amount: 300 }); // e5 → big_order
    await publish('c1', 'message'); // e6 → spender_contact
    await waitFor(async () => (await triggerIds()).includes('spender_contact:c1:e6'));

    // Back to v1: spender_contact is gone.
    writeFileSync(rulesFile, v1);
    await waitFor(() => count('"rules reloaded"') === 2);
    await publish('c1', 'message'); // e7: nothing
    await publish('c1', 'order', { amount: 120 }); // e8 → big_order, after e7 in c1's partition
    await waitFor(async () => (await triggerIds()).includes('big_order:c1:e8'));

    engine.kill('SIGHUP');
    await waitFor(() => count('"rules reloaded"') === 3 && stderr.includes('signal SIGHUP'));
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
    engine.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);
});
