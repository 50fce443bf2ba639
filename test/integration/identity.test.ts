/**
 * Identity stitching through the engine (docs/IDENTITY.md): a cross-channel journey whose keys live
 * in different partitions. An anonymous app cart, a WeChat login with a phone, a web order: one
 * customer, the order cancels the cart reminder, one profile with the summed spend and the aliases;
 * the same with 1 and 2 partitions, and with the decisions read back from the log (a restart).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../engine/config/config.js';
import { loadRules } from '../../engine/config/rulesFile.js';
import { MemoryIdentityLog } from '../../engine/identity/identityLog.js';
import type { PipelineSinks } from '../../engine/runtime/deliverer.js';
import { runEngine } from '../../engine/runtime/runEngine.js';
import type { RawEvent } from '../../engine/source/eventSource.js';
import { iterableSource } from '../../engine/source/fileSource.js';
import { ownerOfCustomer } from '../../operators/keyGroups.js';
import type { CxEvent, ProfileRow, Reject, Trigger } from '../../operators/types.js';

const MIN = 60_000;
/** 10:00 in Shanghai (outside the marketing rules' quiet hours). */
const T0 = Date.UTC(2026, 10, 2, 2, 0);

const journey = (
  [
    // the web key ordered two days before: it is the customer seen first
    {
      id: 'w0',
      ts: T0 - 2 * 1440 * MIN,
      customer: 'web-7',
      type: 'order',
      channel: 'web',
      amount: 100,
      ids: { email: 'e7' },
    },
    {
      id: 'a1',
      ts: T0,
      customer: 'anon-7',
      type: 'page_view',
      channel: 'app',
      category: 'shoes',
      ids: { device: 'd-7' },
    },
    { id: 'a2', ts: T0 + 1 * MIN, customer: 'anon-7', type: 'add_to_cart', channel: 'app', sku: 's1' },
    {
      id: 'x1',
      ts: T0 + 3 * MIN,
      customer: 'wx-7',
      type: 'login',
      channel: 'wechat',
      ids: { wechat: 'oX8', phone: 'h138', device: 'd-7' },
    },
    {
      id: 'w1',
      ts: T0 + 5 * MIN,
      customer: 'web-7',
      type: 'order',
      channel: 'web',
      amount: 199,
      ids: { phone: 'h138', email: 'e7' },
    },
    // a customer on its own: its cart reminder fires (the rule works)
    { id: 'c1', ts: T0 + 2 * MIN, customer: 'solo', type: 'add_to_cart', channel: 'app', sku: 's2' },
    // a later event under an absorbed key goes to the canonical customer
    { id: 'a3', ts: T0 + 20 * MIN, customer: 'anon-7', type: 'page_view', channel: 'app', category: 'bags' },
    { id: 'bad', ts: T0 + 21 * MIN, customer: 'anon-7', type: 'login', channel: 'app', ids: { phone: '' } },
  ] as CxEvent[]
).sort((a, b) => a.ts - b.ts);

function raw(events: CxEvent[]): RawEvent[] {
  return events.map((e, i) => ({
    seq: i + 1,
    subject: `cx.events.${e.channel}.${e.type}.${e.customer}`,
    data: new TextEncoder().encode(JSON.stringify(e)),
  }));
}

async function run(partitions: number, log = new MemoryIdentityLog()) {
  const config = loadConfig(undefined, {
    CXSTREAM_ENGINE_PARTITIONS: String(partitions),
    CXSTREAM_AGGREGATES: '',
  });
  const triggers: Trigger[] = [];
  const profiles: ProfileRow[] = [];
  const rejects: Reject[] = [];
  const sinks: PipelineSinks = {
    triggers: { publish: async (t) => void triggers.push(...t) },
    deadLetters: { publish: async (r) => void rejects.push(...r) },
    profiles: { put: async (rows) => void profiles.push(...rows) },
    clickhouse: {
      writeEncodedEvents: async () => {},
      writeTriggers: async () => {},
      writeProfiles: async () => {},
      flush: async () => {},
    },
  };
  await runEngine({
    config,
    rules: loadRules(config.rules),
    source: iterableSource(raw(journey), { chunkSize: 3 }),
    sinks,
    live: false,
    aggregates: [],
    advanceTo: T0 + 120 * MIN,
    identityLog: log,
  });
  return { triggers, profiles, rejects, log };
}

describe('identity stitching', () => {
  it('the journey is one customer: the order cancels the app cart reminder, spend adds up', async () => {
    // the three keys live in different partitions of two
    const owners = ['anon-7', 'wx-7', 'web-7'].map((k) => ownerOfCustomer(k, 128, 2));
    expect(new Set(owners).size).toBe(2);

    const { triggers, profiles, rejects, log } = await run(2);
    expect(triggers.filter((t) => t.rule === 'cart_abandoned').map((t) => t.customer)).toEqual(['solo']);
    expect(triggers.every((t) => !['anon-7', 'wx-7'].includes(t.customer))).toBe(true);
    const last = new Map(profiles.map((p) => [p.customer, JSON.parse(p.profile)]));
    const web = last.get('web-7');
    expect(web).toMatchObject({ spend: 299, orders: 2, aliases: ['anon-7', 'wx-7'] });
    expect(web.categoryViews30d).toEqual({ shoes: 1, bags: 1 });
    // no profile of an absorbed key is published after its merge
    const merged = log.entries.filter((e) => e.merge).map((e) => e.merge);
    expect(merged).toEqual([
      { canonical: 'anon-7', absorbed: ['wx-7'] },
      { canonical: 'web-7', absorbed: ['anon-7'] },
    ]);
    expect(rejects.map((r) => r.reason)).toEqual(['ids.phone must be a non-empty string']);
  }, 60_000);

  it('gives the same with one partition, and when a restart replays with the log already written', async () => {
    const two = await run(2);
    const one = await run(1);
    const again = await run(2, two.log);
    const view = (r: Awaited<ReturnType<typeof run>>) => ({
      triggers: r.triggers.map((t) => `${t.id}@${t.eventTime}`).sort(),
      profile: r.profiles.filter((p) => p.customer === 'web-7').at(-1)?.profile,
    });
    expect(view(one)).toEqual(view(two));
    expect(view(again)).toEqual(view(two));
    expect(again.log.entries.length).toBe(two.log.entries.length);
  }, 60_000);
});
