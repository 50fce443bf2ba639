/**
 * Secure NATS from a fresh clone: a nats-server with TLS (certificates made here with openssl,
 * client certificates verified) and the shipped sample authorization block
 * (config/nats-auth.sample.conf), the engine as its `cxstream` user with the password in a file,
 * and every role of the sample doing its job. Then: a wrong password and a wrong CA end with a
 * clear error and exit 2; token, NKey and credentials-file (operator mode) servers work; and no
 * secret appears in any output of the runs: logs, errors, /metrics, crash output.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { createUser } from '@nats-io/nkeys';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsServer } from '../../engine/nats/natsServer.js';
import { check } from '../harness/check.js';
import { freePort, runCli } from '../harness/cli.js';
import { EngineProcess, engineEnv } from '../harness/engineProcess.js';
import { cxEvent } from '../harness/events.js';
import { operatorSetup } from '../harness/operatorMode.js';
import { makeCertificates, type TestCertificates } from '../harness/tlsCerts.js';

const root = resolve(import.meta.dirname, '../..');
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);

const PASSWORDS = {
  CX_ENGINE_PASSWORD: 'Eng1ne-pw-7f3a9c',
  CX_PUBLISHER_PASSWORD: 'Pub-pw-2b81d0',
  CX_DIALER_PASSWORD: 'Dial-pw-55e1aa',
  CX_DESK_PASSWORD: 'Desk-pw-0c9d4e',
  CX_OPERATOR_PASSWORD: 'Ops-pw-91fe22',
};
const METRICS_TOKEN = 'Metr1cs-token-4d2e8b';
const WRONG_PASSWORD = 'Wr0ng-pw-e3c77f';
const CLICKHOUSE_PASSWORD = 'Cl1ckh0use-pw-6a0b3d';

/** Every secret of these tests: none may appear in anything cxstream printed or served. */
const SECRETS = [...Object.values(PASSWORDS), METRICS_TOKEN, WRONG_PASSWORD, CLICKHOUSE_PASSWORD];

const ev = cxEvent;

describe('secure NATS: TLS, the sample authorization, credentials never printed', () => {
  let dir: string;
  let certs: TestCertificates;
  let server: NatsServer;
  /** Every output to search for secrets at the end. */
  const outputs: string[] = [];
  const extraSecrets: string[] = [];

  const tls = () => ({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });
  const client = (user: string, pass: string): Promise<NatsConnection> =>
    connect({
      servers: server.url,
      user,
      pass,
      tls: { caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey },
    });

  /** The engine's environment: TLS with a client certificate, user cxstream with the password in a file. */
  const secureEnv = (extra: Record<string, string> = {}) => {
    const passwordFile = join(dir, 'engine.password');
    writeFileSync(passwordFile, `${PASSWORDS.CX_ENGINE_PASSWORD}\n`);
    return engineEnv(server.url, dir, {
      CXSTREAM_NATS_USER: 'cxstream',
      CXSTREAM_NATS_PASSWORD_FILE: passwordFile,
      CXSTREAM_NATS_TLS_CA: tls().ca,
      CXSTREAM_NATS_TLS_CERT: tls().cert,
      CXSTREAM_NATS_TLS_KEY: tls().key,
      CXSTREAM_METRICS_TOKEN: METRICS_TOKEN,
      CXSTREAM_LOG_LEVEL: 'trace',
      ...extra,
    });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-secure-'));
    certs = makeCertificates(dir);
    server = await NatsServer.start({
      tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, verify: true },
      include: [join(root, 'config/nats-auth.sample.conf')],
      env: PASSWORDS,
    });
    expect(server.url).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the engine over TLS as the sample engine user; publisher, dialer and profile reader work with their roles', async () => {
    const env = secureEnv();
    const setup = await runCli(['setup'], env);
    outputs.push(setup.stdout, setup.stderr);
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toContain('stream CX_TRIGGERS: created');

    const port = await freePort();
    const engine = new EngineProcess({ ...env, CXSTREAM_METRICS_PORT: String(port) });
    const admin = await client('cxstream', PASSWORDS.CX_ENGINE_PASSWORD);
    const publisher = await client('publisher', PASSWORDS.CX_PUBLISHER_PASSWORD);
    const dialer = await client('dialer', PASSWORDS.CX_DIALER_PASSWORD);
    const desk = await client('desk', PASSWORDS.CX_DESK_PASSWORD);
    try {
      const base = `http://127.0.0.1:${port}`;
      await check(
        async () => (await fetch(`${base}/readyz`).catch(() => null))?.status === 200,
        30_000,
        () => engine.stderrTail(),
      );

      // the dialer's own durable consumer on CX_TRIGGERS, made with its narrow permissions
      const dialerJsm = await jetstreamManager(dialer);
      await dialerJsm.consumers.add('CX_TRIGGERS', {
        durable_name: 'dialer',
        ack_policy: AckPolicy.Explicit,
      });

      const js = jetstream(publisher);
      await js.publish(
        'cx.events.web.order.c1',
        // its identifiers are recorded on CX_IDENTITY (cx.identity.>, the engine's permission)
        pack(ev('e1', 'c1', 'order', T0, { amount: 1200, channel: 'web', ids: { email: 'h-c1' } })),
        {
          msgID: 'e1',
        },
      );
      await js.publish(
        'cx.events.app.session_start.c1',
        pack(ev('e2', 'c1', 'session_start', T0 + 60_000, { session: 's1' })),
        {
          msgID: 'e2',
        },
      );

      const consumer = await jetstream(dialer).consumers.get('CX_TRIGGERS', 'dialer');
      const trigger = await check(
        async () => {
          const m = await consumer.next({ expires: 1000 });
          if (m) m.ack();
          return m;
        },
        30_000,
        () => engine.stderrTail(),
      );
      expect(trigger.subject).toBe('cx.triggers.vip_routing');
      expect(trigger.json<{ customer: string; subject: string }>()).toMatchObject({
        customer: 'c1',
        subject: 'cx.triggers.vip_routing',
      });

      const kv = await new Kvm(desk).open('cx_profiles');
      const profile = await check(async () => (await kv.get('c1'))?.json<{ tier: string }>(), 30_000);
      expect(profile.tier).toBe('VIP');

      const asOperator = secureEnv({
        CXSTREAM_NATS_USER: 'ops',
        CXSTREAM_NATS_PASSWORD_FILE: '',
        CXSTREAM_NATS_PASSWORD: PASSWORDS.CX_OPERATOR_PASSWORD,
      });
      // an operator's forget request under the sample's permissions: the engine stores the tombstone
      // ($KV.cx_tombstones.>), purges, reads CX_TRIGGERS and CX_DLQ, takes a full checkpoint
      const forget = await runCli(['forget', 'nobody', '--json'], asOperator);
      outputs.push(forget.stdout, forget.stderr);
      expect(forget.code, forget.stderr).toBe(0);
      expect(JSON.parse(forget.stdout)).toMatchObject({ status: 'nothing-found', tombstone: 'created' });
      // and an identity lookup (cx.admin.identity, answered by the engine)
      const identity = await runCli(['identity', 'c1', '--json'], asOperator);
      outputs.push(identity.stdout, identity.stderr);
      expect(identity.code, identity.stderr).toBe(0);
      expect(JSON.parse(identity.stdout)).toMatchObject({
        canonical: 'c1',
        identifiers: [{ id: 'email:h-c1', shared: false }],
        source: 'engine',
      });

      // /metrics needs the token; probes do not
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      // counted once the batch's every output was accepted (ClickHouse inserts included)
      const metrics = await check(async () => {
        const text = await (
          await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
        ).text();
        return /^cx_events_total 2$/m.test(text) ? text : null;
      }, 20_000);
      outputs.push(
        metrics,
        await (await fetch(`${base}/readyz`)).text(),
        await (await fetch(`${base}/healthz`)).text(),
      );

      // a crash mid-run: the trigger stream disappears and the next trigger cannot be published
      await (await jetstreamManager(admin)).streams.delete('CX_TRIGGERS');
      await js.publish(
        'cx.events.app.session_start.c1',
        pack(ev('e3', 'c1', 'session_start', T0 + 2 * 86_400_000, { session: 's2' })),
        {
          msgID: 'e3',
        },
      );
      const exit = await engine.exited;
      expect(exit.code).toBe(1);
    } finally {
      await engine.kill();
      outputs.push(engine.logText(), engine.stderrTail());
      for (const nc of [admin, publisher, dialer, desk]) await nc.close();
    }
    // the engine logged at trace level (debug lines too: the failure with its error and stack)
    expect(engine.lines.some((l) => l.level <= 20 && l.msg === 'failed')).toBe(true);
    expect(engine.stderrTail()).toContain('cxstream: no stream stores cx.triggers.vip_routing');
  });

  it('a wrong password, a wrong CA, a certificate file that is not there: clear errors, exit 2; ClickHouse named without its password', async () => {
    const wrong = await runCli(
      ['run'],
      secureEnv({ CXSTREAM_NATS_PASSWORD_FILE: '', CXSTREAM_NATS_PASSWORD: WRONG_PASSWORD }),
    );
    outputs.push(wrong.stdout, wrong.stderr);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(
      `NATS at ${server.url} (nats.url / CXSTREAM_NATS_URL) refused the credentials (user/password)`,
    );
    expect(wrong.stderr).toContain('nats.password / CXSTREAM_NATS_PASSWORD');

    const otherCa = await runCli(['setup'], secureEnv({ CXSTREAM_NATS_TLS_CA: certs.otherCa }));
    outputs.push(otherCa.stdout, otherCa.stderr);
    expect(otherCa.code).toBe(2);
    expect(otherCa.stderr).toContain('TLS failed: unable to verify the first certificate');
    expect(otherCa.stderr).toContain('nats.tls.ca / CXSTREAM_NATS_TLS_CA');

    const missingFile = await runCli(['setup'], secureEnv({ CXSTREAM_NATS_TLS_CERT: join(dir, 'nope.pem') }));
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toContain(
      `cannot read nats.tls.cert / CXSTREAM_NATS_TLS_CERT "${join(dir, 'nope.pem')}"`,
    );

    // ClickHouse with a password in its URL, not reachable: says ClickHouse, the URL without the password
    const chPort = await freePort();
    const ch = await runCli(
      ['run'],
      secureEnv({ CXSTREAM_CLICKHOUSE_URL: `http://analyst:${CLICKHOUSE_PASSWORD}@127.0.0.1:${chPort}/cx` }),
    );
    outputs.push(ch.stdout, ch.stderr);
    expect(ch.code).toBe(1);
    expect(ch.stderr).toContain(
      `cannot connect to ClickHouse at http://analyst:***@127.0.0.1:${chPort}/cx (clickhouse.url / CXSTREAM_CLICKHOUSE_URL)`,
    );
  });

  it('token, NKey seed and credentials-file servers', async () => {
    const run = async (
      serverOptions: Parameters<typeof NatsServer.start>[0],
      env: Record<string, string>,
    ) => {
      const s = await NatsServer.start(serverOptions);
      try {
        const r = await runCli(['setup'], { ...engineEnv(s.url, dir), ...env });
        outputs.push(r.stdout, r.stderr);
        return r;
      } finally {
        await s.stop();
      }
    };
    const token = 'T0ken-secret-8e21f4';
    extraSecrets.push(token);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, token);
    const byToken = await run({ authorization: { token } }, { CXSTREAM_NATS_TOKEN_FILE: tokenFile });
    expect(byToken.code, byToken.stderr).toBe(0);
    expect(byToken.stdout).toContain('stream CX_EVENTS: created');
    const badToken = await run({ authorization: { token } }, { CXSTREAM_NATS_TOKEN: 'not-the-token' });
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain('refused the credentials (token)');

    const user = createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    extraSecrets.push(seed);
    const seedFile = join(dir, 'user.nk');
    writeFileSync(seedFile, `${seed}\n`);
    const byNkey = await run(
      { authorization: { users: [{ nkey: user.getPublicKey() }] } },
      { CXSTREAM_NATS_NKEY_SEED_FILE: seedFile },
    );
    expect(byNkey.code, byNkey.stderr).toBe(0);
    expect(byNkey.stdout).toContain('consumer CX_EVENTS/cxstream: created');

    const operator = await operatorSetup(dir);
    extraSecrets.push(operator.userSeed);
    const byCreds = await run({ extraConf: operator.conf }, { CXSTREAM_NATS_CREDS: operator.credsFile });
    expect(byCreds.code, byCreds.stderr).toBe(0);
    expect(byCreds.stdout).toContain('bucket cx_profiles: created');
    const noCreds = await run({ extraConf: operator.conf }, {});
    expect(noCreds.code).toBe(2);
    expect(noCreds.stderr).toContain('it needs credentials');
  });

  it('no password, token or seed appears in any output of these runs', () => {
    expect(outputs.length).toBeGreaterThan(15);
    const all = outputs.join('\n');
    for (const secret of [...SECRETS, ...extraSecrets])
      expect(all.includes(secret), `leaked ${secret.slice(0, 6)}…`).toBe(false);
  });
});
