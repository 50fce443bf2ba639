/**
 * The demo's sample triggers: which ones are shown (the same for any order of arrival), and how
 * (times in the customer's zone, the quiet-hours deferral, the body a subscriber receives).
 */

import { describe, expect, it } from 'vitest';
import { formatSample, pickSamples } from '../../engine/cli/demoSamples.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { Trigger } from '../../operators/types.js';
import { triggerBody } from '../../sinks/natsTriggers.js';

const specs: RuleSpec[] = [
  { id: 'vip_routing', on: ['session_start', 'call', 'message'] },
  { id: 'human_handoff', on: ['message'] },
  {
    id: 'cart_abandoned',
    absence: { after: 'add_to_cart', missing: 'order', within: '10m' },
    quietHours: { from: '21:00', to: '09:00', action: 'defer' },
  },
  { id: 'invoice_ticket', on: ['message'] },
];

const zones: Record<string, string> = { la: 'America/Los_Angeles' };
const zoneOf = (customer: string) => zones[customer] ?? 'Asia/Shanghai';

const trigger = (
  rule: string,
  customer: string,
  suffix: string,
  eventTime: number,
  extra: Partial<Trigger> = {},
): Trigger => ({
  id: `${rule}:${customer}:${suffix}`,
  rule,
  customer,
  firedAt: Date.UTC(2026, 10, 30, 10),
  eventTime,
  reason: `reason of ${rule}`,
  priority: 10,
  payload: {},
  profile: {},
  subject: `cx.triggers.${rule}`,
  ...extra,
});

const rfm = (score: number) => ({ tier: 'VIP', rfm: { r: 5, f: 4, m: 5, score } });
// 2026-11-01 15:00 UTC: 23:00 in Shanghai (quiet hours), 08:00 in Los Angeles (quiet hours too).
const t15 = Date.UTC(2026, 10, 1, 15);
// 2026-11-01 04:00 UTC: 12:00 in Shanghai, 21:00 the day before in Los Angeles (quiet).
const t04 = Date.UTC(2026, 10, 1, 4);

const triggers: Trigger[] = [
  trigger('vip_routing', 'a', 'e1', t04, { profile: rfm(6), payload: { contact: 'call' } }),
  trigger('vip_routing', 'b', 'e2', t04, { profile: rfm(9), payload: { contact: 'session_start' } }),
  trigger('vip_routing', 'c', 'e3', t04, { profile: rfm(9), payload: { contact: 'message' } }),
  // At noon in Shanghai: delivered at once. The one in Los Angeles was due at 21:00 there: deferred.
  trigger('cart_abandoned', 'a', `t${t04}`, t04),
  trigger('cart_abandoned', 'la', `t${t04}`, t04, { payload: { sku: 'S1' } }),
  trigger('human_handoff', 'a', 'e4', t15, { payload: { cause: 'negative_sentiment' } }),
  trigger('human_handoff', 'd', 'e5', t15, {
    payload: { cause: 'unrecognized_streak', unrecognizedStreak: 3 },
  }),
  trigger('invoice_ticket', 'a', 'e6', t04),
];

describe('pickSamples', () => {
  it('shows the richest VIP routing, a deferred cart reminder and a bot hand-off, whatever the order', () => {
    const ids = (ts: Trigger[]) => pickSamples(ts, specs, zoneOf).map((t) => t.id);
    const expected = ['vip_routing:b:e2', `cart_abandoned:la:t${t04}`, 'human_handoff:d:e5'];
    expect(ids(triggers)).toEqual(expected);
    expect(ids([...triggers].reverse())).toEqual(expected);
    expect(ids([...triggers.slice(4), ...triggers.slice(0, 4)])).toEqual(expected);
  });

  it('fills up with other rules, one trigger each, when a showcase rule did not fire', () => {
    const some = triggers.filter((t) => t.rule !== 'human_handoff');
    expect(pickSamples(some, specs, zoneOf, 4).map((t) => t.id)).toEqual([
      'vip_routing:b:e2',
      `cart_abandoned:la:t${t04}`,
      'invoice_ticket:a:e6',
    ]);
  });
});

describe('formatSample', () => {
  it('prints times in the customer zone, the deferral, then the message body a subscriber receives', () => {
    const cart = triggers[4]!;
    const text = formatSample(cart, 'America/Los_Angeles', specs[2]);
    expect(text.split('\n').slice(0, 4)).toEqual([
      'cart_abandoned for la: reason of cart_abandoned',
      '  priority 10',
      '  due 2026-10-31 21:00:00 (America/Los_Angeles): no order within 10m of the add_to_cart',
      '  inside quiet hours 21:00-09:00: deferred to 09:00',
    ]);
    expect(JSON.parse(text.slice(text.indexOf('\n{') + 1))).toEqual(JSON.parse(triggerBody(cart)));
  });

  it('names tier, RFM and the firing event for a routing; the streak for a hand-off', () => {
    expect(formatSample(triggers[1]!, 'Asia/Shanghai', specs[0]).split('\n').slice(0, 3)).toEqual([
      'vip_routing for b: reason of vip_routing',
      '  tier VIP, RFM r5 f4 m5 (score 9), priority 10',
      '  on a session_start at 2026-11-01 12:00:00 (Asia/Shanghai)',
    ]);
    expect(formatSample(triggers[6]!, 'Asia/Shanghai', specs[1]).split('\n').slice(0, 4)).toEqual([
      'human_handoff for d: reason of human_handoff',
      '  priority 10',
      '  on a message at 2026-11-01 23:00:00 (Asia/Shanghai)',
      '  the bot did not understand 3 messages in a row',
    ]);
  });
});
