import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { TRAFFIC_BEHAVIOURS } from '../../engine/demo/behaviours.js';
import { generateTraffic, subjectOf } from '../../engine/demo/traffic.js';
import { decodeEvent } from '../../operators/decodeEvent.js';
import { type CxEvent, EVENT_TYPES } from '../../operators/types.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const DAY_START = Date.parse('2026-11-01T00:00:00+08:00');

const TYPES = EVENT_TYPES;
const CHANNELS = ['web', 'app', 'miniprogram', 'wechat', 'douyin', 'phone', 'email'];
const ZONES = ['Asia/Shanghai', 'Asia/Hong_Kong', 'America/Los_Angeles', 'Europe/London'];
const REGIONS = ['north', 'east', 'south', 'west', 'central'];
const SUBJECT = /^cx\.events\.([^.\s*>]+)\.([^.\s*>]+)\.([^.\s*>]+)$/;

const started = performance.now();
const day = generateTraffic();
const generationMs = performance.now() - started;
const byCustomer = groupByCustomer(day);

function groupByCustomer(events: CxEvent[]): Map<string, CxEvent[]> {
  const m = new Map<string, CxEvent[]>();
  for (const e of events) {
    const list = m.get(e.customer);
    if (list) list.push(e);
    else m.set(e.customer, [e]);
  }
  return m;
}

/** Local hour straight from Intl, independent of the generator's own time-zone code. */
const hourFormats = new Map<string, Intl.DateTimeFormat>();
function localHourOf(e: CxEvent): number {
  const tz = e.tz ?? 'Asia/Shanghai';
  let f = hourFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: 'numeric', hourCycle: 'h23' });
    hourFormats.set(tz, f);
  }
  return Number(f.format(e.ts));
}

const isCustomerMessage = (e: CxEvent) => e.type === 'message' && (e.from ?? 'customer') === 'customer';
const isContact = (e: CxEvent) => e.type === 'session_start' || e.type === 'call' || isCustomerMessage(e);

/** Structural problems of one event (empty when valid): stricter than the decoder's schema. */
function problemsOf(e: CxEvent): string[] {
  const p: string[] = [];
  const str = (k: string, v: unknown) =>
    (typeof v === 'string' && v.length > 0) || p.push(`${k} must be a non-empty string`);
  str('id', e.id);
  str('customer', e.customer);
  if (!Number.isInteger(e.ts)) p.push('ts must be an integer');
  if (!/^c\d{6,}$/.test(e.customer)) p.push(`customer ${e.customer} is not c + 6 digits`);
  if (!TYPES.has(e.type)) p.push(`unknown type ${e.type}`);
  if (!CHANNELS.includes(e.channel)) p.push(`unknown channel ${e.channel}`);
  if (!REGIONS.includes(e.region ?? '')) p.push(`region ${e.region}`);
  if (!ZONES.includes(e.tz ?? '')) p.push(`tz ${e.tz}`);
  for (const [k, v] of Object.entries(e)) if (v === undefined || v === null) p.push(`${k} is ${v}`);
  if (e.sentiment !== undefined && !(e.sentiment >= -1 && e.sentiment <= 1)) p.push('sentiment out of range');
  switch (e.type) {
    case 'message':
      str('text', e.text);
      str('session', e.session);
      if (!['customer', 'bot', 'agent'].includes(e.from ?? '')) p.push(`from ${e.from}`);
      if (e.from === 'customer') {
        str('intent', e.intent);
        if (typeof e.sentiment !== 'number') p.push('customer message without sentiment');
      }
      if (e.from === 'agent') str('agent', e.agent);
      if (e.recognized !== undefined && typeof e.recognized !== 'boolean') p.push('recognized');
      break;
    case 'page_view':
    case 'add_to_cart':
      str('sku', e.sku);
      str('category', e.category);
      break;
    case 'order':
      if (!(typeof e.amount === 'number' && e.amount > 0)) p.push('order amount');
      str('orderId', e.orderId);
      str('sku', e.sku);
      str('category', e.category);
      break;
    case 'session_start':
    case 'session_end':
      str('session', e.session);
      if (!['script_a', 'script_b'].includes(e.variant ?? '')) p.push(`variant ${e.variant}`);
      break;
    case 'rating':
      if (!(Number.isInteger(e.score) && e.score! >= 1 && e.score! <= 5)) p.push(`score ${e.score}`);
      break;
    case 'ticket':
      if (!['open', 'resolved'].includes(e.status ?? '')) p.push(`status ${e.status}`);
      str('ticketId', e.ticketId);
      break;
    case 'call':
      str('agent', e.agent);
      break;
  }
  return p;
}

describe('generateTraffic: shape', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = generateTraffic({ customers: 300, seed: 7 });
    expect(generateTraffic({ customers: 300, seed: 7 })).toEqual(a);
    const b = generateTraffic({ customers: 300, seed: 8 });
    expect(b.length).toBeGreaterThan(0);
    expect(b.map((e) => [e.customer, e.ts, e.type])).not.toEqual(a.map((e) => [e.customer, e.ts, e.type]));
    expect(b[0]!.id.startsWith('e-8-')).toBe(true);
  });

  it('generates a 3000-customer day quickly, in the intended volume', () => {
    expect(generationMs).toBeLessThan(2000);
    expect(day.length).toBeGreaterThan(50_000);
    expect(day.length).toBeLessThan(150_000);
    const perActive = day.length / byCustomer.size;
    expect(perActive).toBeGreaterThan(25);
    expect(perActive).toBeLessThan(60);
    // not everybody shows up every day
    expect(byCustomer.size).toBeGreaterThan(1500);
    expect(byCustomer.size).toBeLessThan(2700);
  });

  it('is sorted by ts and stays inside the day', () => {
    let bad = 0;
    for (let i = 1; i < day.length; i++) if (day[i]!.ts < day[i - 1]!.ts) bad++;
    expect(bad).toBe(0);
    expect(day[0]!.ts).toBeGreaterThanOrEqual(DAY_START);
    expect(day.at(-1)!.ts).toBeLessThan(DAY_START + DAY);
  });

  it('gives every event a unique id and a valid subject', () => {
    expect(new Set(day.map((e) => e.id)).size).toBe(day.length);
    const bad: string[] = [];
    for (const e of day) {
      const subject = subjectOf(e);
      const m = SUBJECT.exec(subject);
      if (!m || m[1] !== e.channel || m[2] !== e.type || m[3] !== e.customer) bad.push(subject);
    }
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('makes events that pass the structural check and the engine decoder', () => {
    const problems: string[] = [];
    for (const e of day) {
      for (const p of problemsOf(e)) problems.push(`${e.id} ${e.type}: ${p}`);
      const decoded = decodeEvent(pack(e), subjectOf(e));
      if (typeof decoded === 'string') problems.push(`${e.id}: decoder: ${decoded}`);
    }
    expect(problems.slice(0, 10)).toEqual([]);
  });

  it('keeps sessions well-formed: one start, one end after it, messages in between on its channel', () => {
    const sessions = new Map<string, { start?: CxEvent; end?: CxEvent; messages: CxEvent[] }>();
    const problems: string[] = [];
    for (const e of day) {
      if (!e.session) continue;
      let s = sessions.get(e.session);
      if (!s) {
        s = { messages: [] };
        sessions.set(e.session, s);
      }
      if (e.type === 'session_start') {
        if (s.start) problems.push(`${e.session}: two starts`);
        s.start = e;
      } else if (e.type === 'session_end') {
        if (s.end) problems.push(`${e.session}: two ends`);
        s.end = e;
      } else if (e.type === 'message') s.messages.push(e);
    }
    for (const [id, s] of sessions) {
      if (!s.start || !s.end || s.end.ts < s.start.ts) {
        problems.push(`${id}: start ${s.start?.ts} end ${s.end?.ts}`);
        continue;
      }
      for (const m of s.messages) {
        if (m.ts < s.start.ts || m.ts > s.end.ts) problems.push(`${m.id}: outside its session`);
        if (m.channel !== s.start.channel || m.customer !== s.start.customer)
          problems.push(`${m.id}: channel`);
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
    expect(sessions.size).toBeGreaterThan(3000);
  });

  it('mixes zones, channels, sources, languages and PII the way a real shop sees them', () => {
    const count = (f: (e: CxEvent) => string | undefined) => {
      const m = new Map<string, number>();
      for (const e of day) {
        const k = f(e);
        if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1);
      }
      return m;
    };
    const zones = count((e) => (e.type === 'session_start' ? e.tz : undefined));
    expect([...zones.keys()].sort()).toEqual([...ZONES].sort());
    expect(
      zones.get('Asia/Shanghai')! / day.filter((e) => e.type === 'session_start').length,
    ).toBeGreaterThan(0.75);
    expect([...count((e) => e.channel).keys()].sort()).toEqual([...CHANNELS].sort());
    expect([...count((e) => e.source).keys()].sort()).toEqual(['ad', 'direct', 'search', 'social']);
    expect([...count((e) => e.region).keys()].sort()).toEqual([...REGIONS].sort());
    const texts = day.filter((e) => e.text).map((e) => e.text!);
    expect(texts.filter((t) => /[\u4e00-\u9fff]/.test(t)).length).toBeGreaterThan(1000);
    expect(texts.filter((t) => /^[\x20-\x7e]+$/.test(t)).length).toBeGreaterThan(100);
    expect(texts.filter((t) => /(?<!\d)1[3-9]\d{9}(?!\d)/.test(t)).length).toBeGreaterThan(10);
    expect(texts.filter((t) => /(?<!\d)\d{17}[\dX](?!\d)/.test(t)).length).toBeGreaterThan(5);
    expect(texts.filter((t) => /@example\.com/.test(t)).length).toBeGreaterThan(5);
    // bot and human agents both speak; customers are identified per channel
    expect(day.some((e) => e.type === 'message' && e.from === 'bot')).toBe(true);
    expect(day.some((e) => e.type === 'message' && e.from === 'agent' && e.agent)).toBe(true);
    expect(
      day.filter((e) => e.type === 'login' && e.ids && Object.keys(e.ids).length > 0).length,
    ).toBeGreaterThan(100);
  });

  it('follows the diurnal curve in customer-local time', () => {
    const perHour = new Array<number>(24).fill(0);
    for (const e of day) if (e.type === 'session_start') perHour[localHourOf(e)]!++;
    const peak = perHour[10]! + perHour[11]! + perHour[20]! + perHour[21]!;
    const trough = perHour[3]! + perHour[4]! + perHour[5]! + perHour[6]!;
    expect(peak).toBeGreaterThan(6 * trough);
    expect(trough).toBeGreaterThan(0);
  });

  it('works over several days and rejects bad options by name', () => {
    const start = Date.UTC(2026, 10, 1);
    const week = generateTraffic({ customers: 200, days: 3, dayStart: start, seed: 3 });
    expect(week[0]!.ts).toBeGreaterThanOrEqual(start);
    expect(week.at(-1)!.ts).toBeLessThan(start + 3 * DAY);
    for (let d = 0; d < 3; d++) {
      expect(
        week.filter((e) => e.ts >= start + d * DAY && e.ts < start + (d + 1) * DAY).length,
      ).toBeGreaterThan(1000);
    }
    expect(new Set(week.map((e) => e.id)).size).toBe(week.length);
    expect(() => generateTraffic({ customers: 0 })).toThrow(/customers/);
    expect(() => generateTraffic({ days: 1.5 })).toThrow(/days/);
    expect(() => generateTraffic({ seed: Number.NaN })).toThrow(/seed/);
    expect(() => generateTraffic({ dayStart: -5 })).toThrow(/dayStart/);
  });

  it('refuses to build a subject from a token NATS cannot carry', () => {
    const e: CxEvent = { id: 'x', ts: 1, customer: 'c000001', type: 'message', channel: 'web' };
    expect(subjectOf(e)).toBe('cx.events.web.message.c000001');
    expect(() => subjectOf({ ...e, customer: 'a.b' })).toThrow(/customer/);
    expect(() => subjectOf({ ...e, channel: '' })).toThrow(/channel/);
    expect(() => subjectOf({ ...e, type: 'x y' })).toThrow(/type/);
    expect(() => subjectOf({ ...e, customer: '>' })).toThrow(/customer/);
  });

  it('documents every default rule in TRAFFIC_BEHAVIOURS', () => {
    const rules = new Set(Object.values(TRAFFIC_BEHAVIOURS).flatMap((b) => [...b.rules]));
    for (const r of [
      'cart_abandoned',
      'consult_unresolved',
      'repurchase_reminder',
      'vip_routing',
      'churn_risk',
      'night_self_service',
      'human_handoff',
      'supervisor_escalation',
      'invoice_ticket',
      'budget_concern_script',
      'accessory_recommendation',
      'satisfaction_survey',
      'post_service_upsell',
      'complaint_winback',
      'high_intent_revisit',
      'category_interest',
      'high_value_silent',
      'complaint_surge',
    ]) {
      expect(rules.has(r), r).toBe(true);
    }
  });
});

describe('generateTraffic: every default rule has situations to fire on (3000 customers, one day)', () => {
  const customerMessages = day.filter(isCustomerMessage);

  it('vip_routing: contacts after lifetime spend reached 1000', () => {
    let vipContacts = 0;
    const vipCustomers = new Set<string>();
    for (const [customer, events] of byCustomer) {
      let spend = 0;
      for (const e of events) {
        if (e.type === 'order') spend += e.amount!;
        else if (spend >= 1000 && isContact(e)) {
          vipContacts++;
          vipCustomers.add(customer);
        }
      }
    }
    expect(vipCustomers.size).toBeGreaterThan(20);
    expect(vipContacts).toBeGreaterThan(100);
  });

  it('night_self_service: session starts 22:00–08:00 customer-local', () => {
    const night = day.filter(
      (e) => e.type === 'session_start' && (localHourOf(e) >= 22 || localHourOf(e) < 8),
    );
    expect(night.length).toBeGreaterThan(100);
    expect(new Set(night.map((e) => e.tz)).size).toBeGreaterThan(1);
  });

  it('human_handoff: 3 consecutive unrecognized customer messages in one session', () => {
    const streak = new Map<string, number>();
    const customers = new Set<string>();
    for (const e of customerMessages) {
      if (e.recognized === undefined) continue;
      const s = e.recognized ? 0 : (streak.get(e.session!) ?? 0) + 1;
      streak.set(e.session!, s);
      if (s >= 3) customers.add(e.customer);
    }
    expect(customers.size).toBeGreaterThan(20);
  });

  it('human_handoff / supervisor_escalation: sentiment < -0.6, <= -0.8 and intent anger', () => {
    const handoffOnly = customerMessages.filter((e) => e.sentiment! < -0.6 && e.sentiment! > -0.8);
    const escalate = customerMessages.filter((e) => e.sentiment! <= -0.8);
    const anger = customerMessages.filter((e) => e.intent === 'anger');
    expect(handoffOnly.length).toBeGreaterThan(20);
    expect(escalate.length).toBeGreaterThan(20);
    expect(anger.length).toBeGreaterThan(5);
    // the intent alone must be able to fire: some angry messages score above -0.8
    expect(anger.filter((e) => e.sentiment! > -0.8).length).toBeGreaterThan(3);
  });

  it('invoice_ticket: 发票 / invoice in the text, intent invoice, each without the other, after orders', () => {
    const keyword = (e: CxEvent) => /发票|invoice/i.test(e.text ?? '');
    expect(customerMessages.filter(keyword).length).toBeGreaterThan(30);
    expect(customerMessages.filter((e) => keyword(e) && e.intent !== 'invoice').length).toBeGreaterThan(3);
    expect(customerMessages.filter((e) => !keyword(e) && e.intent === 'invoice').length).toBeGreaterThan(3);
    expect(customerMessages.some((e) => /INVOICE/.test(e.text!) && !/invoice/.test(e.text!))).toBe(true);
    let afterOrder = 0;
    for (const events of byCustomer.values()) {
      let ordered = false;
      for (const e of events) {
        if (e.type === 'order') ordered = true;
        else if (ordered && isCustomerMessage(e) && (keyword(e) || e.intent === 'invoice')) afterOrder++;
      }
    }
    expect(afterOrder).toBeGreaterThan(20);
  });

  it('budget_concern_script: 预算 / 太贵 / budget in the text, intent budget_concern', () => {
    const keyword = (e: CxEvent) => /预算|太贵|budget/.test(e.text ?? '');
    expect(customerMessages.filter(keyword).length).toBeGreaterThan(30);
    expect(
      customerMessages.filter((e) => keyword(e) && e.intent !== 'budget_concern').length,
    ).toBeGreaterThan(3);
    expect(
      customerMessages.filter((e) => !keyword(e) && e.intent === 'budget_concern').length,
    ).toBeGreaterThan(3);
  });

  it('accessory_recommendation: product inquiries with a sku', () => {
    const inquiries = customerMessages.filter((e) => e.intent === 'product_inquiry' && e.sku && e.category);
    expect(inquiries.length).toBeGreaterThan(300);
    expect(new Set(inquiries.map((e) => e.sku)).size).toBeGreaterThan(15);
  });

  it('consult_unresolved / satisfaction_survey: session ends, some followed by an order, most not', () => {
    let converted = 0;
    let unresolved = 0;
    for (const events of byCustomer.values()) {
      events.forEach((e, i) => {
        if (e.type !== 'session_end') return;
        const order = events.slice(i + 1).some((o) => o.type === 'order' && o.ts - e.ts <= 30 * MINUTE);
        if (order) converted++;
        else unresolved++;
      });
    }
    expect(converted).toBeGreaterThan(100);
    expect(unresolved).toBeGreaterThan(1000);
    expect(day.filter((e) => e.type === 'rating').length).toBeGreaterThan(300);
  });

  it('A/B scripts: script_b converts better than script_a after a session', () => {
    const sessions = { script_a: 0, script_b: 0 };
    const orders = { script_a: 0, script_b: 0 };
    for (const events of byCustomer.values()) {
      events.forEach((e, i) => {
        if (e.type !== 'session_end') return;
        const v = e.variant as 'script_a' | 'script_b';
        sessions[v]++;
        if (events.slice(i + 1).some((o) => o.type === 'order' && o.ts - e.ts <= HOUR)) orders[v]++;
      });
    }
    expect(sessions.script_a).toBeGreaterThan(500);
    expect(sessions.script_b).toBeGreaterThan(500);
    expect(orders.script_b / sessions.script_b).toBeGreaterThan((orders.script_a / sessions.script_a) * 1.15);
  });

  it('post_service_upsell: tickets resolved after being opened', () => {
    const opened = new Map<string, number>();
    let resolved = 0;
    for (const e of day) {
      if (e.type !== 'ticket') continue;
      if (e.status === 'open') opened.set(e.ticketId as string, e.ts);
      else {
        expect(opened.get(e.ticketId as string), String(e.ticketId)).toBeLessThan(e.ts);
        resolved++;
      }
    }
    expect(resolved).toBeGreaterThan(100);
    expect(opened.size).toBeGreaterThan(resolved);
  });

  it('cart_abandoned: carts with and without an order within 10 minutes', () => {
    let abandoned = 0;
    let converted = 0;
    for (const events of byCustomer.values()) {
      events.forEach((e, i) => {
        if (e.type !== 'add_to_cart') return;
        if (events.slice(i + 1).some((o) => o.type === 'order' && o.ts - e.ts <= 10 * MINUTE)) converted++;
        else abandoned++;
      });
    }
    expect(abandoned).toBeGreaterThan(200);
    expect(converted).toBeGreaterThan(200);
  });

  it('repurchase_reminder: customers with several orders', () => {
    const multi = [...byCustomer.values()].filter((ev) => ev.filter((e) => e.type === 'order').length >= 2);
    expect(multi.length).toBeGreaterThan(50);
  });

  it('complaint_winback: a complaint, then a rating <= 2 within 24 h', () => {
    let customers = 0;
    for (const events of byCustomer.values()) {
      const complaints = events.filter((e) => e.type === 'complaint').map((e) => e.ts);
      if (
        events.some(
          (e) => e.type === 'rating' && e.score! <= 2 && complaints.some((t) => t < e.ts && e.ts - t <= DAY),
        )
      ) {
        customers++;
      }
    }
    expect(customers).toBeGreaterThan(20);
  });

  it('high_intent_revisit: a session_end, then >= 3 logins within 7 days', () => {
    let customers = 0;
    for (const events of byCustomer.values()) {
      const ends = events.filter((e) => e.type === 'session_end').map((e) => e.ts);
      const logins = events.filter((e) => e.type === 'login').map((e) => e.ts);
      if (ends.some((t) => logins.filter((l) => l > t && l - t <= 7 * DAY).length >= 3)) customers++;
    }
    expect(customers).toBeGreaterThan(20);
  });

  it('category_interest: >= 3 page views of one category without an order in it', () => {
    let customers = 0;
    for (const events of byCustomer.values()) {
      const views = new Map<string, number>();
      const ordered = new Set<string>();
      for (const e of events) {
        if (e.type === 'page_view') views.set(e.category!, (views.get(e.category!) ?? 0) + 1);
        if (e.type === 'order') ordered.add(e.category!);
      }
      if ([...views].some(([c, n]) => n >= 3 && !ordered.has(c))) customers++;
    }
    expect(customers).toBeGreaterThan(300);
  });

  it('high_value_silent / churn_risk: customers who spent >= 2000 and then went quiet', () => {
    const silent = [...byCustomer.values()].filter((events) => {
      const spend = events.reduce((s, e) => s + (e.type === 'order' ? e.amount! : 0), 0);
      return spend >= 2000 && events.at(-1)!.ts <= DAY_START + DAY - 12 * HOUR;
    });
    expect(silent.length).toBeGreaterThan(10);
  });

  it('complaint_surge: one region gets >= 10 complaints in an hour, >= 3x its previous-24h hourly mean', () => {
    const surges: string[] = [];
    for (const region of REGIONS) {
      const times = day.filter((e) => e.type === 'complaint' && e.region === region).map((e) => e.ts);
      let lo = 0;
      for (let hi = 0; hi < times.length; hi++) {
        const t = times[hi]!;
        while (times[lo]! <= t - HOUR) lo++;
        const lastHour = hi - lo + 1;
        const before = times.filter((x) => x > t - 25 * HOUR && x <= t - HOUR).length;
        if (lastHour >= 10 && lastHour >= (3 * before) / 24) {
          surges.push(region);
          break;
        }
      }
    }
    expect(surges.length).toBeGreaterThanOrEqual(1);
    // a surge stands out: not every region has one
    expect(surges.length).toBeLessThan(REGIONS.length);
  });
});
