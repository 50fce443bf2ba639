import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { type RuleMemory, type RuleRun, type RuleSet, ruleSetOf } from '../../operators/rules.js';
import { TimerQueue } from '../../operators/timers.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { scopeOf } from '../harness/ruleScope.js';

const RULES_FILE = fileURLToPath(new URL('../../config/rules.yaml', import.meta.url));
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2024, 4, 1, 4); // 12:00 in Asia/Shanghai

const specs = loadRules([RULES_FILE]);

const REGULAR = { tier: 'Regular', rfm: { r: 10, f: 0, m: 0, score: 4 }, spend: 300, unrecognizedStreak: 0 };
const VIP = { tier: 'VIP', rfm: { r: 10, f: 1, m: 2, score: 4.9 }, spend: 2500, unrecognizedStreak: 0 };

let set: RuleSet;
let memory: RuleMemory;
let seq = 0;

beforeEach(() => {
  set = ruleSetOf(specs);
  memory = {};
});

function ev(fields: Partial<CxEvent>): CxEvent {
  seq += 1;
  return { id: `e${seq}`, ts: T0, customer: 'c1', type: 'message', channel: 'web', ...fields };
}

function run(fields: Partial<CxEvent>, profile: Record<string, unknown> = REGULAR): Trigger[] {
  const r: RuleRun = {
    queue: new TimerQueue(),
    watermark: Number.NEGATIVE_INFINITY,
    firedAt: T0,
    defaultTz: 'Asia/Shanghai',
    triggers: [],
    counters: { droppedByCap: 0, droppedByQuietHours: 0, deferred: 0 },
  };
  set.evaluate(ev(fields), profile, scopeOf(memory), r);
  return r.triggers;
}

/** Rules fired by one event for the customer whose memory the test carries along. */
function fired(fields: Partial<CxEvent>, profile: Record<string, unknown> = REGULAR): string[] {
  return run(fields, profile).map((t) => t.rule);
}

describe('config/rules.yaml', () => {
  it('is valid and ships exactly the 17 per-customer default rules (complaint_surge is a main-thread aggregate)', () => {
    expect(specs.map((s) => s.id).sort()).toEqual(
      [
        'accessory_recommendation',
        'budget_concern_script',
        'cart_abandoned',
        'category_interest',
        'churn_risk',
        'complaint_winback',
        'consult_unresolved',
        'high_intent_revisit',
        'high_value_silent',
        'human_handoff',
        'invoice_ticket',
        'night_self_service',
        'post_service_upsell',
        'repurchase_reminder',
        'satisfaction_survey',
        'supervisor_escalation',
        'vip_routing',
      ].sort(),
    );
  });

  it('gives the five outbound marketing rules quiet hours 21:00-09:00 (defer) and the shared cap of 3 per 24 h', () => {
    const marketing = [
      'cart_abandoned',
      'repurchase_reminder',
      'churn_risk',
      'category_interest',
      'high_value_silent',
    ];
    for (const s of specs) {
      if (marketing.includes(s.id)) {
        expect(s.quietHours, s.id).toEqual({ from: '21:00', to: '09:00', action: 'defer' });
        expect(s.cap, s.id).toEqual({ group: 'outbound_marketing', max: 3, per: '24h' });
      } else {
        expect(s.quietHours, s.id).toBeUndefined();
        expect(s.cap, s.id).toBeUndefined();
      }
    }
  });

  it('gives every rule a description, a priority, the default subject and the tier/rfm profile fields', () => {
    for (const s of specs) {
      expect(s.description, s.id).toBeTruthy();
      expect(typeof s.priority, s.id).toBe('number');
      expect(s.subject, s.id).toBeUndefined();
      expect(s.profile, s.id).toEqual(expect.arrayContaining(['tier', 'rfm']));
    }
    const p = Object.fromEntries(specs.map((s) => [s.id, s.priority ?? 0]));
    expect(p.supervisor_escalation).toBeGreaterThan(p.human_handoff!);
    expect(p.human_handoff).toBeGreaterThan(p.invoice_ticket!);
    expect(p.vip_routing).toBeGreaterThan(p.accessory_recommendation!);
    expect(p.satisfaction_survey).toBeGreaterThan(p.post_service_upsell!);
  });

  it('produces triggers with subject, reason and priority + rfm score', () => {
    const [t] = run({ type: 'session_start', session: 's1', localHour: 12 }, VIP);
    expect(t).toMatchObject({
      rule: 'vip_routing',
      subject: 'cx.triggers.vip_routing',
      reason: expect.stringContaining('VIP'),
      priority: (specs.find((s) => s.id === 'vip_routing')!.priority ?? 0) + 4.9,
      eventTime: T0,
      profile: { tier: 'VIP', rfm: VIP.rfm },
    });
  });
});

describe('vip_routing', () => {
  it('fires on contact events of VIP customers only', () => {
    expect(fired({ type: 'session_start', session: 's1', localHour: 12 }, REGULAR)).toEqual([]);
    expect(fired({ type: 'page_view', session: 's1' }, VIP)).toEqual([]);
    expect(fired({ type: 'message', from: 'agent', session: 's1' }, VIP)).toEqual([]);
    expect(fired({ type: 'message', from: 'bot', session: 's1' }, VIP)).toEqual([]);
    expect(fired({ type: 'message', from: 'customer', session: 's1', text: 'hi' }, VIP)).toEqual([
      'vip_routing',
    ]);
  });

  it('fires once per session, again in a new session', () => {
    expect(fired({ type: 'session_start', session: 's1', localHour: 12 }, VIP)).toEqual(['vip_routing']);
    expect(fired({ type: 'message', session: 's1', ts: T0 + MIN }, VIP)).toEqual([]);
    expect(fired({ type: 'message', session: 's1', ts: T0 + 3 * HOUR }, VIP)).toEqual([]);
    expect(fired({ type: 'session_start', session: 's2', ts: T0 + 3 * HOUR, localHour: 15 }, VIP)).toEqual([
      'vip_routing',
    ]);
  });

  it('limits contacts without a session to one per 30 minutes', () => {
    expect(fired({ type: 'call', channel: 'phone', ts: T0 }, VIP)).toEqual(['vip_routing']);
    expect(fired({ type: 'call', channel: 'phone', ts: T0 + 29 * MIN }, VIP)).toEqual([]);
    expect(fired({ type: 'call', channel: 'phone', ts: T0 + 30 * MIN }, VIP)).toEqual(['vip_routing']);
  });
});

describe('night_self_service', () => {
  it.each([
    [21, false],
    [22, true],
    [23, true],
    [0, true],
    [7, true],
    [8, false],
    [12, false],
  ])('local hour %i → fires %s', (localHour, fires) => {
    expect(fired({ type: 'session_start', session: 's1', localHour })).toEqual(
      fires ? ['night_self_service'] : [],
    );
  });

  it('has a 12 h cooldown', () => {
    expect(fired({ type: 'session_start', session: 's1', localHour: 23 })).toEqual(['night_self_service']);
    expect(fired({ type: 'session_start', session: 's2', localHour: 10, ts: T0 + 11 * HOUR })).toEqual([]);
    expect(fired({ type: 'session_start', session: 's3', localHour: 22, ts: T0 + 12 * HOUR - 1 })).toEqual(
      [],
    );
    expect(fired({ type: 'session_start', session: 's4', localHour: 22, ts: T0 + 12 * HOUR })).toEqual([
      'night_self_service',
    ]);
  });

  it('counts a missing localHour as an error instead of firing', () => {
    expect(fired({ type: 'session_start', session: 's1' })).toEqual([]);
    expect(set.errors.get('night_self_service')?.count).toBe(1);
  });

  it('does not look at other event types', () => {
    expect(fired({ type: 'message', session: 's1', localHour: 23 })).toEqual([]);
  });
});

describe('human_handoff', () => {
  it('fires below sentiment -0.6, not at -0.6', () => {
    expect(fired({ session: 's1', sentiment: -0.6 })).toEqual([]);
    expect(fired({ session: 's1', sentiment: -0.61 })).toEqual(['human_handoff']);
  });

  it('fires when the unrecognized streak reaches 3', () => {
    expect(fired({ session: 's1', recognized: false }, { ...REGULAR, unrecognizedStreak: 2 })).toEqual([]);
    const [t] = run({ session: 's1', recognized: false }, { ...REGULAR, unrecognizedStreak: 3 });
    expect(t).toMatchObject({
      rule: 'human_handoff',
      payload: { cause: 'unrecognized_streak', unrecognizedStreak: 3, session: 's1', channel: 'web' },
      profile: { tier: 'Regular', unrecognizedStreak: 3 },
    });
  });

  it('fires once per session, again in a new session', () => {
    const streak = (n: number) => ({ ...REGULAR, unrecognizedStreak: n });
    expect(fired({ session: 's1' }, streak(3))).toEqual(['human_handoff']);
    expect(fired({ session: 's1', ts: T0 + MIN }, streak(4))).toEqual([]);
    expect(fired({ session: 's1', ts: T0 + 2 * MIN, sentiment: -0.7 }, streak(0))).toEqual([]);
    expect(fired({ session: 's2', ts: T0 + HOUR }, streak(3))).toEqual(['human_handoff']);
  });

  it('ignores agent and bot messages', () => {
    expect(fired({ session: 's1', from: 'agent', sentiment: -0.9 })).toEqual([]);
    expect(fired({ session: 's1', from: 'bot' }, { ...REGULAR, unrecognizedStreak: 5 })).toEqual([]);
  });
});

describe('supervisor_escalation and arbitration', () => {
  it('fires at sentiment -0.8 and below, or on intent anger', () => {
    expect(fired({ session: 's1', sentiment: -0.79 })).toEqual(['human_handoff']);
    expect(fired({ session: 's2', sentiment: -0.8 })).toEqual(['supervisor_escalation']);
    expect(fired({ session: 's3', intent: 'anger', sentiment: 0.1 })).toEqual(['supervisor_escalation']);
    expect(fired({ session: 's4', intent: 'anger', from: 'agent' })).toEqual([]);
  });

  it('beats human_handoff on the same event; handoff can still fire later in the session', () => {
    const [t] = run({ session: 's1', sentiment: -0.9 });
    expect(t).toMatchObject({ rule: 'supervisor_escalation', payload: { sentiment: -0.9, session: 's1' } });
    expect(fired({ session: 's1', sentiment: -0.9, ts: T0 + MIN })).toEqual(['human_handoff']);
    expect(fired({ session: 's1', sentiment: -0.9, ts: T0 + 2 * MIN })).toEqual([]);
  });

  it('lets handoff fire on a later event in the session after losing, via the streak', () => {
    expect(fired({ session: 's1', intent: 'anger' }, { ...REGULAR, unrecognizedStreak: 3 })).toEqual([
      'supervisor_escalation',
    ]);
    expect(fired({ session: 's1', ts: T0 + MIN }, { ...REGULAR, unrecognizedStreak: 4 })).toEqual([
      'human_handoff',
    ]);
  });
});

describe('invoice_ticket', () => {
  it.each([
    ['我需要开发票', true],
    ['Please send the INVOICE', true],
    ['invoice?', true],
    ['Invoices for May', true],
    ['my voice is gone', false],
    ['发个票', false],
  ])('text %j → fires %s', (text, fires) => {
    expect(fired({ session: 's1', text })).toEqual(fires ? ['invoice_ticket'] : []);
  });

  it('fires on intent invoice and carries the last order id and amount', () => {
    const [t] = run(
      { session: 's1', intent: 'invoice' },
      { ...REGULAR, lastOrderId: 'o-77', lastOrderAmount: 199.5 },
    );
    expect(t).toMatchObject({
      rule: 'invoice_ticket',
      payload: { orderId: 'o-77', amount: 199.5 },
      profile: { lastOrderId: 'o-77', lastOrderAmount: 199.5 },
    });
  });

  it('has null order fields before any order', () => {
    const [t] = run({ session: 's1', text: '发票' }, { ...REGULAR, lastOrderId: null });
    expect(t!.payload).toMatchObject({ orderId: null, amount: null });
  });

  it('has a 24 h cooldown and ignores agent messages', () => {
    expect(fired({ text: 'invoice', from: 'agent' })).toEqual([]);
    expect(fired({ session: 's1', text: 'invoice', ts: T0 })).toEqual(['invoice_ticket']);
    expect(fired({ session: 's2', text: 'invoice', ts: T0 + DAY - 1 })).toEqual([]);
    expect(fired({ session: 's3', text: 'invoice', ts: T0 + DAY })).toEqual(['invoice_ticket']);
  });
});

describe('budget_concern_script', () => {
  it.each([
    [{ text: '预算有限' }, true],
    [{ text: '这个太贵了' }, true],
    [{ text: 'over my budget' }, true],
    [{ text: 'BUDGET is tight' }, true],
    [{ intent: 'budget_concern' }, true],
    [{ text: '价格怎么样' }, false],
    [{ text: '太贵', from: 'agent' }, false],
  ])('%j → fires %s', (fields, fires) => {
    expect(fired({ session: 's1', ...fields })).toEqual(fires ? ['budget_concern_script'] : []);
  });

  it('fires once per session, again in a new session', () => {
    expect(fired({ session: 's1', text: '太贵' })).toEqual(['budget_concern_script']);
    expect(fired({ session: 's1', text: '预算', ts: T0 + MIN })).toEqual([]);
    expect(fired({ session: 's2', text: '预算', ts: T0 + 2 * MIN })).toEqual(['budget_concern_script']);
  });
});

describe('accessory_recommendation', () => {
  const inquiry = (sku: string, ts: number) => ({ session: 's1', intent: 'product_inquiry', sku, ts });

  it('needs intent product_inquiry and a sku', () => {
    expect(fired({ session: 's1', intent: 'product_inquiry' })).toEqual([]);
    expect(fired({ session: 's1', intent: 'product_inquiry', sku: '' })).toEqual([]);
    expect(fired({ session: 's1', intent: 'order_status', sku: 'A1' })).toEqual([]);
    const [t] = run({ session: 's1', intent: 'product_inquiry', sku: 'A1', category: 'baby' });
    expect(t).toMatchObject({ rule: 'accessory_recommendation', payload: { sku: 'A1', category: 'baby' } });
  });

  it('has a 1 h cooldown per sku', () => {
    expect(fired(inquiry('A1', T0))).toEqual(['accessory_recommendation']);
    expect(fired(inquiry('A1', T0 + 59 * MIN))).toEqual([]);
    expect(fired(inquiry('B2', T0 + 59 * MIN))).toEqual(['accessory_recommendation']);
    expect(fired(inquiry('A1', T0 + 60 * MIN))).toEqual(['accessory_recommendation']);
    expect(fired(inquiry('B2', T0 + 60 * MIN))).toEqual([]);
  });
});

describe('satisfaction_survey', () => {
  it('fires on session_end once per session, again in a new session', () => {
    expect(fired({ type: 'session_end', session: 's1', agent: 'a7' })).toEqual(['satisfaction_survey']);
    expect(fired({ type: 'session_end', session: 's1', ts: T0 + MIN })).toEqual([]);
    expect(fired({ type: 'session_end', session: 's2', ts: T0 + 2 * MIN })).toEqual(['satisfaction_survey']);
    expect(fired({ type: 'session_start', session: 's3', ts: T0 + 3 * MIN, localHour: 12 })).toEqual([]);
  });
});

describe('post_service_upsell', () => {
  it('fires on a resolved ticket, with a 7 day cooldown', () => {
    expect(fired({ type: 'ticket', status: 'open' })).toEqual([]);
    expect(fired({ type: 'ticket' })).toEqual([]);
    expect(fired({ type: 'ticket', status: 'resolved', ts: T0 })).toEqual(['post_service_upsell']);
    expect(fired({ type: 'ticket', status: 'resolved', ts: T0 + 7 * DAY - 1 })).toEqual([]);
    expect(fired({ type: 'ticket', status: 'resolved', ts: T0 + 7 * DAY })).toEqual(['post_service_upsell']);
  });
});

describe('no stray errors', () => {
  it('evaluates a mixed stream of well-formed events without runtime errors', () => {
    const events: Partial<CxEvent>[] = [
      { type: 'session_start', session: 's1', localHour: 12 },
      { type: 'message', session: 's1', text: 'hello' },
      { type: 'message', session: 's1', from: 'agent', text: 'hi' },
      { type: 'page_view', category: 'baby' },
      { type: 'add_to_cart', sku: 'A1' },
      { type: 'order', amount: 99, orderId: 'o1' },
      { type: 'call', channel: 'phone' },
      { type: 'ticket', status: 'open' },
      { type: 'session_end', session: 's1' },
    ];
    for (const e of events) fired(e, VIP);
    expect([...set.errors]).toEqual([]);
  });
});
