/**
 * Identity stitching against the real `cxstream run` process and a private nats-server
 * (docs/IDENTITY.md): a person under three keys is merged; `cxstream identity` and the ClickHouse
 * `identities` table say so; the profile of the canonical customer lists the aliases and sums the
 * spend. Then `cxstream forget` of one alias forgets the whole person, and after a SIGKILL and a
 * restart no NATS stream, no ClickHouse table and no file of the state directory holds any of its
 * keys or identifiers (the same search finds them before).
 */
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { ForgetReport } from '../../engine/cli/forget.js';
import type { IdentityReport } from '../../engine/cli/identity.js';
import type { CxEvent } from '../../operators/types.js';
import { profileKey } from '../../sinks/profileStore.js';
import { check } from '../harness/check.js';
import { cliJson, freePort } from '../harness/cli.js';
import { EngineProcess, engineBed, engineEnv } from '../harness/engineProcess.js';
import { cxEvent as ev } from '../harness/events.js';
import { servedSql, whereFound } from '../harness/storeSearch.js';

const MIN = 60_000;
const T0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;
const KEYS = ['web-5', 'anon-5', 'wx-5'];
/** The person's identifiers, as sent. */
const IDENTIFIERS = ['phone-hash-5a1f', 'device-5c77', 'openid-5e90'];
const OTHER = 'other-1';

const history: CxEvent[] = [
  ev('w1', 'web-5', 'order', T0, { channel: 'web', amount: 80 }),
  ev('a1', 'anon-5', 'page_view', T0 + 1000, { category: 'shoes', ids: { device: 'device-5c77' } }),
  ev('a2', 'anon-5', 'add_to_cart', T0 + 2000, { sku: 'S1' }),
  ev('o1', OTHER, 'page_view', T0 + 2500, { ids: { device: 'device-other' } }),
  ev('x1', 'wx-5', 'login', T0 + 3000, {
    channel: 'wechat',
    ids: { wechat: 'openid-5e90', phone: 'phone-hash-5a1f', device: 'device-5c77' },
  }),
  ev('w2', 'web-5', 'order', T0 + 4000, { channel: 'web', amount: 120, ids: { phone: 'phone-hash-5a1f' } }),
  ev('a3', 'anon-5', 'page_view', T0 + 5000, { category: 'bags' }),
  ev('o2', OTHER, 'page_view', T0 + 2 * MIN),
  // a minute of event time after the merge's profile: the next one is published (spend summed)
  ev('w3', 'web-5', 'page_view', T0 + 2 * MIN, { channel: 'web' }),
];

describe('identity stitching in cxstream run, and forgetting the person', () => {
  const bed = engineBed('cxstream-identity-');
  const env = async () =>
    engineEnv(bed.server.url, bed.dir, {
      CXSTREAM_AGGREGATES: '',
      CXSTREAM_METRICS_PORT: String(await freePort()),
    });
  const cliEnv = () => ({ CXSTREAM_NATS_URL: bed.server.url });
  const sql = (query: string) => servedSql(join(bed.dir, 'clickhouse'), query);
  const needles = [...KEYS, ...KEYS.map(profileKey), ...IDENTIFIERS];

  it('merges the keys, shows them, and forgets them all', async () => {
    bed.engine = new EngineProcess(await env());
    await bed.engine.consuming(bed.nc);
    const js = jetstream(bed.nc);
    for (const e of history)
      await js.publish(`cx.events.${e.channel}.${e.type}.${e.customer}`, pack(e), { msgID: e.id });
    await bed.engine.delivered(bed.nc, history.length);

    // web-5 ordered first: it is the canonical customer
    const who = await cliJson<IdentityReport>(['identity', 'wx-5', '--json'], cliEnv());
    expect(who).toMatchObject({ customer: 'wx-5', canonical: 'web-5', aliases: ['anon-5', 'wx-5'] });
    expect(who.merges.map((m) => [m.canonical, m.absorbed])).toEqual([
      ['anon-5', ['wx-5']],
      ['web-5', ['anon-5']],
    ]);
    expect(who.identifiers.map((i) => i.id)).toEqual([
      'device:device-5c77',
      'phone:phone-hash-5a1f',
      'wechat:openid-5e90',
    ]);
    const alone = await cliJson<IdentityReport>(['identity', OTHER, '--json'], cliEnv());
    expect(alone).toMatchObject({ canonical: OTHER, aliases: [], merges: [] });

    await check(async () => {
      const rows = await sql(
        'SELECT alias, argMax(customer, seq) FROM cxstream.identities FINAL GROUP BY alias ORDER BY alias FORMAT CSV',
      );
      return rows === '"anon-5","web-5"\n"wx-5","web-5"' ? true : null;
    }, 30_000);
    const profile = await cliJson<{ spend: number; orders: number; aliases: string[] }>(
      ['profile', 'web-5'],
      cliEnv(),
    );
    expect(profile).toMatchObject({ spend: 200, orders: 2, aliases: ['anon-5', 'wx-5'] });
    // events of the absorbed keys after their merge are stored under the canonical customer
    expect(await sql("SELECT customer FROM cxstream.events FINAL WHERE id = 'a3'")).toBe('web-5');

    const stateDir = join(bed.dir, 'state');
    expect(await whereFound(bed.nc, stateDir, needles)).toEqual(
      expect.arrayContaining(['CX_EVENTS', 'CX_IDENTITY', 'KV_cx_profiles', 'state dir']),
    );

    const reply = await cliJson<ForgetReport>(['forget', 'anon-5', '--json'], cliEnv());
    expect(reply.status).toBe('forgotten');
    expect([reply.customer, ...(reply.alsoForgotten ?? []).map((r) => r.customer)].sort()).toEqual(
      [...KEYS].sort(),
    );
    const all = [reply, ...(reply.alsoForgotten ?? [])];
    expect(all.reduce((n, r) => n + r.removed.identityLog, 0)).toBeGreaterThanOrEqual(3);
    expect(all.reduce((n, r) => n + r.removed.clickhouse.identities, 0)).toBeGreaterThanOrEqual(2);

    // a later event of a forgotten key with the person's identifiers links nothing, records nothing
    await js.publish(
      'cx.events.wechat.login.wx-5',
      pack(ev('x2', 'wx-5', 'login', T0 + 3 * MIN, { channel: 'wechat', ids: { phone: 'phone-hash-5a1f' } })),
      { msgID: 'x2' },
    );
    await bed.engine.delivered(bed.nc, history.length + 1);
    const forgotten = await cliJson<IdentityReport>(['identity', 'wx-5', '--json'], cliEnv());
    expect(forgotten).toMatchObject({
      canonical: 'wx-5',
      aliases: [],
      merges: [],
      identifiers: [],
      source: 'engine',
    });
    expect(await whereFound(bed.nc, stateDir, needles)).toEqual(['CX_EVENTS']);

    // a crash and a restart from the checkpoints bring nothing back
    await bed.engine.kill();
    bed.engine = new EngineProcess(await env());
    await check(
      () => bed.engine.line('ready'),
      60_000,
      () => bed.engine.stderrTail(),
    );
    for (const key of KEYS) {
      expect(await sql(`SELECT count() FROM cxstream.events WHERE customer = '${key}'`)).toBe('0');
      expect(await sql(`SELECT count() FROM cxstream.profiles WHERE customer = '${key}'`)).toBe('0');
    }
    expect(await sql('SELECT count() FROM cxstream.identities')).toBe('0');
    // the event published after the forget is still on CX_EVENTS (skipped); a second forget removes it
    expect(await whereFound(bed.nc, stateDir, needles)).toEqual(['CX_EVENTS']);
    expect((await cliJson<ForgetReport>(['forget', 'wx-5', '--json'], cliEnv())).removed.streamEvents).toBe(
      1,
    );
    expect(await whereFound(bed.nc, stateDir, needles)).toEqual([]);
    const after = await cliJson<IdentityReport>(['identity', 'wx-5', '--json'], cliEnv());
    expect(after).toMatchObject({
      canonical: 'wx-5',
      aliases: [],
      merges: [],
      identifiers: [],
      source: 'engine',
    });
    // the other customer is untouched
    expect(await sql(`SELECT count() FROM cxstream.events WHERE customer = '${OTHER}'`)).toBe('2');
  }, 180_000);
});
