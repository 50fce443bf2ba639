/**
 * The engine as an outside system sees it, through the NATS C client (libnats, Debian's
 * libnats-dev) compiled here with gcc: publishing events with Nats-Msg-Id (and its
 * de-duplication), reading triggers with their headers, dead letters with theirs, profiles from KV
 * (plain and encoded keys), and a durable reader that restarts and continues where it acked — also
 * across a restart of the engine. Runs in `npm test`, or alone with `npm run test:interop`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../engine/nats/natsServer.js';
import { check } from '../harness/check.js';
import { freePort, runCli } from '../harness/cli.js';
import { EngineProcess, engineEnv } from '../harness/engineProcess.js';
import { cxEvent } from '../harness/events.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';

const here = resolve(import.meta.dirname);
// 2026-11-20 10:00 in Asia/Shanghai
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const MIN = 60_000;
const SECONDS_EVENT = JSON.stringify(cxEvent('bad-1', 'c2', 'message', T0 / 1000));

/** One message as the C reader prints it. */
interface CMessage {
  subject: string;
  headers: Record<string, string[]>;
  data: string;
}

describe('an outside client in C (libnats)', () => {
  let t: TestNats;
  let dir: string;
  let binary: string;
  let server: NatsServer;
  let nc: NatsConnection;
  let engine: EngineProcess | undefined;

  const c = (args: string[], input = '') => {
    const r = spawnSync(binary, args, { input, encoding: 'utf8', timeout: 30_000 });
    if (r.error) throw r.error;
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const publish = (lines: Array<[subject: string, id: string, payload: string]>) => {
    const r = c(['publish', server.url], `${lines.map((l) => l.join('\t')).join('\n')}\n`);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ').map(Number) as [seq: number, duplicate: number]);
  };
  const read = (stream: string, durable: string, max: number): CMessage[] => {
    const r = c(['read', server.url, stream, durable, String(max)]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as CMessage);
  };
  const event = (id: string, customer: string, type: string, ts: number, extra = {}) =>
    [`cx.events.app.${type}.${customer}`, id, JSON.stringify(cxEvent(id, customer, type, ts, extra))] as [
      string,
      string,
      string,
    ];

  beforeAll(async () => {
    t = await setup({ dirPrefix: 'cxstream-interop-' });
    ({ server, nc, dir } = t);
    binary = join(dir, 'cxclient');
    // a fresh build of the client each run, in the test's own directory
    execFileSync('gcc', ['-Wall', '-Werror', '-o', binary, join(here, 'cxclient.c'), '-lnats'], {
      stdio: 'pipe',
    });
  });

  afterAll(async () => {
    await engine?.kill();
    await cleanup(t);
  });

  it('publishes, reads triggers and dead letters with headers, reads profiles, and resumes a durable reader', async () => {
    const env = engineEnv(server.url, dir);
    // infrastructure first (the documented start-up order): publishing works before the engine runs
    expect((await runCli(['setup'], env)).code).toBe(0);

    const acks = publish([
      event('e1', 'c1', 'order', T0, { amount: 1200, orderId: 'o-1' }),
      event('e1', 'c1', 'order', T0, { amount: 1200, orderId: 'o-1' }), // a retry: de-duplicated
      event('e2', 'c1', 'session_start', T0 + MIN, { session: 's1' }),
      event('e3', 'c1', 'message', T0 + 2 * MIN, { session: 's1', text: 'invoice please' }),
      // epoch seconds, as many non-JavaScript systems send
      ['cx.events.app.message.c2', 'bad-1', SECONDS_EVENT],
      event('e4', 'cust@7', 'order', T0, { amount: 50 }),
    ]);
    expect(acks.map(([, dup]) => dup)).toEqual([0, 1, 0, 0, 0, 0]);
    expect(acks[1]![0]).toBe(acks[0]![0]);

    const port = await freePort();
    engine = new EngineProcess({ ...env, CXSTREAM_METRICS_PORT: String(port) });
    await check(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200,
      30_000,
      () => engine!.stderrTail(),
    );
    const jsm = await jetstreamManager(nc);
    await check(
      async () => (await jsm.consumers.info('CX_EVENTS', 'cxstream')).ack_floor.stream_seq >= 5,
      30_000,
      () => engine!.stderrTail(),
    );

    // a reader that stops after one trigger, then a new process that continues after it
    const first = read('CX_TRIGGERS', 'c_dialer', 1);
    expect(first).toHaveLength(1);
    const rest = await check(() => {
      const more = read('CX_TRIGGERS', 'c_dialer', 10);
      return more.length > 0 ? more : null;
    }, 10_000);
    const triggers = [...first, ...rest];
    expect(triggers.map((t) => t.subject).sort()).toEqual([
      'cx.triggers.invoice_ticket',
      'cx.triggers.vip_routing',
    ]);
    for (const t of triggers) {
      const body = JSON.parse(t.data) as { id: string; subject: string; customer: string; eventTime: number };
      expect(t.headers['Nats-Msg-Id']).toEqual([body.id]);
      expect(body.subject).toBe(t.subject);
      expect(body.customer).toBe('c1');
    }
    expect(read('CX_TRIGGERS', 'c_dialer', 10)).toEqual([]);

    // the dead letter: original bytes, the reason (epoch seconds), where it came from, the original headers
    const [dead] = read('CX_DLQ', 'c_dlq', 10);
    expect(dead!.subject).toBe('cx.dlq.events');
    expect(dead!.data).toBe(SECONDS_EVENT);
    expect(dead!.headers['Cx-Error']).toEqual([
      'ts 1795140000 is before 2000-01-01T00:00:00.000Z (engine.minEventTime); it looks like epoch seconds ' +
        '(2026-11-20T02:00:00.000Z): send epoch milliseconds, 1795140000000',
    ]);
    expect(dead!.headers['Cx-Source-Seq']).toEqual([String(acks[4]![0])]);
    expect(dead!.headers['Cx-Source-Subject']).toEqual(['cx.events.app.message.c2']);
    expect(dead!.headers['Cx-Original-Nats-Msg-Id']).toEqual(['bad-1']);

    // profiles: a plain key, and the key `cxstream profile --key` gives for an id KV cannot hold
    const profile = await check(() => {
      const r = c(['kv-get', server.url, 'cx_profiles', 'c1']);
      return r.code === 0 ? (JSON.parse(r.stdout) as { tier: string; orders: number }) : null;
    }, 30_000);
    expect(profile).toMatchObject({ tier: 'VIP', orders: 1 });
    const key = (await runCli(['profile', '--key', 'cust@7'])).stdout.trim();
    expect(key).toBe('=Y3VzdEA3');
    const odd = await check(() => {
      const r = c(['kv-get', server.url, 'cx_profiles', key]);
      return r.code === 0 ? (JSON.parse(r.stdout) as { orders: number }) : null;
    }, 30_000);
    expect(odd.orders).toBe(1);
    expect(c(['kv-get', server.url, 'cx_profiles', 'nobody']).code).toBe(3);

    // the engine restarts (SIGTERM, drained); new triggers reach the same durable reader, old ones do not
    expect(await engine.stop()).toBe(0);
    publish([
      event('e5', 'c1', 'message', T0 + 3 * 86_400_000, { session: 's2', text: 'invoice for o-1 please' }),
    ]);
    engine = new EngineProcess(env);
    const after: CMessage[] = [];
    await check(
      () => {
        after.push(...read('CX_TRIGGERS', 'c_dialer', 10));
        return after.length >= 2;
      },
      30_000,
      () => engine!.stderrTail(),
    );
    // only what e5 fired (a VIP's new session, an invoice request): nothing read before comes again
    expect(after.map((t) => JSON.parse(t.data).id).sort()).toEqual([
      'invoice_ticket:c1:e5',
      'vip_routing:c1:e5',
    ]);
    expect(await engine.stop()).toBe(0);
    engine = undefined;
  });
});
