/**
 * One customer's day of the demo traffic: its episodes (browsing, consultations, orders, complaints,
 * invoices, after-sales, calls, logins) and the events each writes; and the day's regional incident.
 */
import { utcOffsetMinutes } from '../../operators/localTime.js';
import type { CxEvent } from '../../operators/types.js';
import { TRAFFIC_BEHAVIOURS } from './behaviours.js';
import { hash32, Rand } from './random.js';
import {
  ACCESSORIES,
  BUDGET,
  BY_CATEGORY,
  CATALOG,
  CATEGORIES,
  type Customer,
  DAY,
  DAY_CURVE,
  EVERYDAY,
  EXPENSIVE,
  EXTRA_EPISODES,
  HOUR,
  INVOICE,
  type Lines,
  MEAN_ENGAGEMENT,
  MEAN_EPISODES,
  MINUTE,
  NIGHT_CURVE,
  type Product,
  REGION_WEIGHTS,
  REGION_ZH,
  REGIONS,
  SAY,
  SECOND,
  SOURCE_WEIGHTS,
  SOURCES,
} from './world.js';

// ---------------------------------------------------------------------------------------------
// Generation state

export interface Gen {
  seed: number;
  seedHash: number;
  start: number;
  end: number;
  out: CxEvent[];
  /** Cumulative hour weights per `tz|night|day`, in UTC hours of that day. */
  curves: Map<string, Float64Array>;
  agents: number;
  idPrefix: string;
  /** Ids are numbered as events are made: giving them out after the sort costs a second pass over millions. */
  nextId: number;
}

interface Surge {
  region: string;
  start: number;
  /** Probability that one customer of the region is caught in the incident. */
  p: number;
}

/**
 * One incident per day: its size is a multiple of the region's expected mean hourly complaints,
 * so it stands out by the rule's "3 × the previous 24 h mean" whatever the number of customers.
 */
export function planSurge(gen: Gen, day: number, customers: number): Surge {
  const r = new Rand(hash32(gen.seedHash, day, 0x5e6e));
  const ri = r.int(0, REGIONS.length - 1);
  const b = TRAFFIC_BEHAVIOURS;
  const regionCustomers = customers * REGION_WEIGHTS[ri]!;
  const meanHourly = (regionCustomers * MEAN_ENGAGEMENT * MEAN_EPISODES * b.complaint.share) / 24;
  // at least 30 expected, so that even an unlucky draw stays well above the rule's 10 per hour
  const size = Math.max(30, b.complaintSurge.share * meanHourly);
  return {
    region: REGIONS[ri]!,
    start: gen.start + day * DAY + r.int(11 * 60, 17 * 60) * MINUTE,
    p: Math.min(1, size / regionCustomers),
  };
}

/** One customer on one day: plans episodes and writes their events. */
/** Episode kinds in the order of the switch in CustomerDay.run. */
const EPISODE_WEIGHTS = [
  TRAFFIC_BEHAVIOURS.browse,
  TRAFFIC_BEHAVIOURS.consult,
  TRAFFIC_BEHAVIOURS.revisit,
  TRAFFIC_BEHAVIOURS.botConfusion,
  TRAFFIC_BEHAVIOURS.complaint,
  TRAFFIC_BEHAVIOURS.invoice,
  TRAFFIC_BEHAVIOURS.budget,
  TRAFFIC_BEHAVIOURS.afterSales,
  TRAFFIC_BEHAVIOURS.call,
  TRAFFIC_BEHAVIOURS.login,
].map((b) => b.share);

export class CustomerDay {
  private readonly r: Rand;
  /** Writes in English rather than Chinese. */
  private readonly en: boolean;
  private readonly dayStart: number;
  /** Events of the episode being built; committed as a whole so it can be moved to fit the day. */
  private buf: CxEvent[] = [];
  /** Earliest time the episode being built may be moved to (see commit). */
  private floor = 0;
  /** Numbers sessions, orders and tickets of this customer-day. */
  private n = 0;
  /** Messages go out on their session's channel. */
  private readonly sessionChannel = new Map<string, string>();

  constructor(
    private readonly gen: Gen,
    private readonly c: Customer,
    private readonly day: number,
    private readonly surge: Surge,
  ) {
    this.r = new Rand(hash32(gen.seedHash, c.index, day + 1));
    this.en = c.english;
    this.dayStart = gen.start + day * DAY;
  }

  run(): void {
    const { c, r } = this;
    if (c.silentVip) {
      if (this.day === 0) this.silentVipMorning();
      return;
    }
    if (c.region === this.surge.region && r.chance(this.surge.p)) {
      this.complaint(this.surge.start + r.int(0, 50 * MINUTE), true);
    }
    if (!r.chance(c.engagement)) return;
    if (c.vipBuyer && r.chance(0.7)) this.vipOrder(this.when());
    if (c.repeatBuyer) this.repeatOrders(this.when());
    let episodes = 2;
    for (const p of EXTRA_EPISODES) if (r.chance(p)) episodes++;
    for (let k = 0; k < episodes; k++) {
      const at = this.when();
      switch (r.weighted(EPISODE_WEIGHTS)) {
        case 0:
          this.browse(at);
          break;
        case 1:
          this.contact(at, 'consult');
          break;
        case 2:
          this.revisit(at);
          break;
        case 3:
          this.contact(at, 'confused');
          break;
        case 4:
          this.complaint(at, false);
          break;
        case 5:
          this.invoice(at);
          break;
        case 6:
          this.contact(at, 'budget');
          break;
        case 7:
          this.afterSales(at);
          break;
        case 8:
          this.call(at);
          break;
        default:
          this.login(at, true);
      }
    }
  }

  // ---- episodes ------------------------------------------------------------------------------

  /** Page views clustered on one category; maybe a cart, which converts, converts late or is abandoned. */
  private browse(at: number): void {
    const { r } = this;
    const channel = this.shopChannel();
    const source = this.source();
    const focus = r.chance(0.75) ? r.pick(this.c.categories) : r.pick(CATEGORIES);
    let t = at;
    if (channel === 'app' && r.chance(0.4)) {
      this.emit('login', t, channel, { ids: { appUser: this.c.ids.appUser! } });
      t += r.int(3, 20) * SECOND;
    }
    const views = r.int(3, 10);
    let last = this.product(focus);
    for (let i = 0; i < views; i++) {
      const p = r.chance(0.8) ? this.product(focus) : this.product(r.pick(CATEGORIES));
      if (p.category === focus) last = p;
      this.emit('page_view', t, channel, { source, category: p.category, sku: p.sku });
      t += r.int(8, 150) * SECOND;
    }
    if (r.chance(0.35)) {
      this.emit('add_to_cart', t, channel, { category: last.category, sku: last.sku });
      const x = r.next();
      if (x < 0.35) this.order(t + r.int(40, 540) * SECOND, channel, [last]);
      const shift = this.commit();
      // came back later and bought after all (too late for the 10-minute window)
      if (shift !== null && x >= 0.35 && x < 0.5) {
        this.order(t - shift + r.int(12, 120) * MINUTE, channel, [last]);
        this.commit(true);
      }
      return;
    }
    this.commit();
  }

  /** A chat session: consultation, bot confusion or budget concern; may end in a cart and an order. */
  private contact(at: number, kind: 'consult' | 'confused' | 'budget' | 'vip', bought?: Product): void {
    const { r, c } = this;
    let channel = this.chatChannel();
    if (channel === 'phone') {
      this.call(at);
      return;
    }
    // a bot conversation needs a chat front; by e-mail the customer would just write again
    if (channel === 'email' && kind === 'confused') channel = 'web';
    const s = this.startSession(at, channel, true);
    let t = at + r.int(1, 3) * SECOND;
    let p = this.product(r.chance(0.7) ? r.pick(c.categories) : r.pick(CATEGORIES));
    const botOrEmail = channel === 'email' ? 'agent' : 'bot';
    if (channel !== 'email') t = this.say(t, s, 'bot', SAY.botHello);
    let agent = channel === 'email' ? this.agent() : '';
    if (kind === 'vip' && bought) {
      p = bought;
      t = this.ask(t, s, SAY.vipContact, 'order_status', p, r.sentiment(0, 0.6), agent ? undefined : true);
      t = this.reply(t, s, botOrEmail, agent, SAY.shippingReply, p);
    } else if (kind === 'confused') {
      const streak = r.int(3, 4);
      for (let i = 0; i < streak; i++) {
        t = this.ask(t, s, SAY.unrecognized, 'unknown', undefined, r.sentiment(-0.5, 0), false);
        t =
          i < streak - 1
            ? this.reply(t, s, 'bot', '', SAY.botFallback)
            : this.say(t, s, 'bot', SAY.botTransfer);
      }
      agent = this.agent();
      t = this.say(t + r.int(20, 120) * SECOND, s, 'agent', SAY.agentHello, undefined, agent);
      t = this.ask(t, s, SAY.inquiry, 'product_inquiry', p, r.sentiment(-0.3, 0.2));
      t = this.reply(t, s, 'agent', agent, SAY.inquiryReply, p);
    } else if (kind === 'budget') {
      p = r.pick(EXPENSIVE);
      t = this.ask(t, s, SAY.inquiry, 'product_inquiry', p, r.sentiment(0, 0.5), agent ? undefined : true);
      t = this.reply(t, s, botOrEmail, agent, SAY.inquiryReply, p);
      const [text, intent] = r.pick(BUDGET[this.en ? 'en' : 'zh']);
      t = this.message(t, s, 'customer', this.fill(text, p), {
        intent,
        sentiment: r.sentiment(-0.45, 0),
        ...(agent ? {} : { recognized: true }),
      });
      agent ||= this.agent();
      t = this.reply(t, s, 'agent', agent, c.variant === 'script_b' ? SAY.scriptB : SAY.scriptA, p);
    } else {
      const turns = r.int(1, 4);
      for (let i = 0; i < turns; i++) {
        const topic = r.weighted([0.45, 0.2, 0.15, 0.2]);
        const recognized = agent ? undefined : r.chance(0.9);
        if (recognized === false) {
          t = this.ask(t, s, SAY.unrecognized, 'unknown', undefined, r.sentiment(-0.3, 0.1), false);
          t = this.reply(t, s, 'bot', '', SAY.botFallback);
          continue;
        }
        if (topic === 0) {
          p = this.product(r.chance(0.7) ? p.category : r.pick(CATEGORIES));
          t = this.ask(t, s, SAY.inquiry, 'product_inquiry', p, r.sentiment(-0.1, 0.6), recognized);
          t = this.reply(t, s, botOrEmail, agent, SAY.inquiryReply, p);
        } else if (topic === 1) {
          t = this.ask(t, s, SAY.shipping, 'shipping', undefined, r.sentiment(-0.3, 0.3), recognized);
          t = this.reply(t, s, botOrEmail, agent, SAY.shippingReply);
        } else if (topic === 2) {
          t = this.ask(t, s, SAY.returns, 'return_policy', undefined, r.sentiment(-0.2, 0.3), recognized);
          t = this.reply(t, s, botOrEmail, agent, SAY.returnsReply);
        } else {
          t = this.ask(t, s, SAY.promotion, 'promotion', undefined, r.sentiment(0, 0.7), recognized);
          t = this.reply(t, s, botOrEmail, agent, SAY.promotionReply);
        }
      }
    }
    t = this.ask(t, s, SAY.thanks, 'thanks', undefined, r.sentiment(0.3, 0.9), agent ? undefined : true);
    const end = this.endSession(t + r.int(5, 60) * SECOND, s, channel, agent);
    // Conversion after the conversation: the A/B script matters most where price is the obstacle.
    const convert =
      kind === 'budget' ? (c.variant === 'script_b' ? 0.32 : 0.14) : c.variant === 'script_b' ? 0.2 : 0.13;
    const buy = kind !== 'vip' && r.chance(convert);
    const shop = this.shopChannel();
    if (buy) {
      const t2 = end + r.int(1, 15) * MINUTE;
      this.emit('add_to_cart', t2, shop, { category: p.category, sku: p.sku });
      const accessory = p.category === 'phones' && r.chance(0.5) ? [r.pick(ACCESSORIES)] : [];
      this.order(t2 + r.int(30, 400) * SECOND, shop, [p, ...accessory]);
    }
    const shift = this.commit();
    if (shift !== null && r.chance(0.35)) {
      this.rate(
        end - shift + r.int(1, 30) * MINUTE,
        channel,
        s,
        r.weighted([0.03, 0.05, 0.12, 0.35, 0.45]) + 1,
      );
    }
  }

  /** A consultation, then logins over the next hours (days when the run has more). */
  private revisit(at: number): void {
    const { r } = this;
    const before = this.gen.out.length;
    this.contact(at, 'consult');
    let end = Number.NEGATIVE_INFINITY;
    for (let i = before; i < this.gen.out.length; i++) end = Math.max(end, this.gen.out[i]!.ts);
    if (end === Number.NEGATIVE_INFINITY) return;
    const spread = this.gen.end - this.dayStart > DAY ? 3 * DAY : 10 * HOUR;
    const times: number[] = [];
    for (let i = r.int(3, 5); i > 0; i--) times.push(end + r.int(20 * MINUTE, spread));
    times.sort((a, b) => a - b);
    for (const t of times) this.login(t, false);
  }

  /** Angry messages, a complaint and a ticket; often a low rating within hours. */
  private complaint(at: number, incident: boolean): void {
    const { r } = this;
    const channel =
      this.chatChannel() === 'phone' ? 'phone' : r.pick(['app', 'wechat', 'miniprogram', 'web']);
    const s = this.startSession(at, channel, channel !== 'phone');
    let t = at + r.int(1, 3) * SECOND;
    if (channel === 'phone')
      this.emit('call', t, channel, { session: s, agent: this.agent(), durationSec: r.int(60, 900) });
    const mode = r.weighted([0.45, 0.35, 0.2]);
    // handoff only (-0.79..-0.61), supervisor (<= -0.8), or intent anger with a milder score
    const sentiment =
      mode === 0 ? r.sentiment(-0.79, -0.61) : mode === 1 ? r.sentiment(-1, -0.8) : r.sentiment(-0.6, -0.3);
    const topic = incident ? 'delivery_delay' : r.pick(['delivery_delay', 'quality', 'service', 'refund']);
    const lines = incident ? SAY.incident : mode === 2 ? SAY.furious : SAY.angry;
    const recognized = channel === 'phone' ? undefined : true;
    t = this.ask(t, s, lines, mode === 2 ? 'anger' : 'complaint', undefined, sentiment, recognized);
    this.emit('complaint', t + r.int(1, 5) * SECOND, channel, { session: s, intent: topic });
    const agent = this.agent();
    t = this.say(t + r.int(15, 90) * SECOND, s, 'agent', SAY.agentHello, undefined, agent);
    if (r.chance(0.5)) t = this.ask(t, s, SAY.callDetail, 'complaint', undefined, r.sentiment(-0.7, -0.3));
    t = this.reply(t, s, 'agent', agent, SAY.agentAck);
    const ticket = `t-${this.c.key}-${this.day}-${++this.n}`;
    this.emit('ticket', t + r.int(5, 30) * SECOND, channel, {
      session: s,
      status: 'open',
      ticketId: ticket,
      intent: topic,
      agent,
    });
    const end = this.endSession(t + r.int(30, 120) * SECOND, s, channel, agent);
    const shift = this.commit();
    if (shift === null) return;
    if (r.chance(0.75))
      this.rate(end - shift + r.int(5, 600) * MINUTE, channel, s, r.chance(0.8) ? r.int(1, 2) : 3);
    if (r.chance(0.5)) this.resolve(end - shift + r.int(60, 720) * MINUTE, channel, ticket, topic, agent);
  }

  /** An order earlier, then a message asking for its invoice. */
  private invoice(at: number): void {
    const { r } = this;
    if (r.chance(0.6) || !this.c.lastOrderId) {
      this.order(at, this.shopChannel(), [this.product(r.pick(CATEGORIES))]);
      this.commit();
      at += r.int(10, 240) * MINUTE;
    }
    const channel =
      this.chatChannel() === 'email' ? 'email' : r.pick(['app', 'web', 'miniprogram', 'wechat']);
    const s = this.startSession(at, channel, true);
    const agent = channel === 'email' ? this.agent() : '';
    let t = at + r.int(1, 3) * SECOND;
    if (!agent) t = this.say(t, s, 'bot', SAY.botHello);
    const [text, intent] = r.pick(INVOICE[this.en ? 'en' : 'zh']);
    t = this.message(t, s, 'customer', this.fill(text, this.product(r.pick(CATEGORIES))), {
      intent,
      sentiment: r.sentiment(-0.1, 0.4),
      ...(agent ? {} : { recognized: true }),
    });
    t = this.reply(t, s, agent ? 'agent' : 'bot', agent, SAY.agentAck);
    this.endSession(t + r.int(10, 60) * SECOND, s, channel, agent);
    this.commit();
  }

  /** A fault reported to an agent: ticket opened, usually resolved hours later. */
  private afterSales(at: number): void {
    const { r } = this;
    const channel = this.chatChannel();
    if (channel === 'phone') {
      this.call(at);
      return;
    }
    const s = this.startSession(at, channel, true);
    const p = this.product(r.pick(['phones', 'audio', 'appliances', 'baby', this.c.categories[0]]));
    let t = at + r.int(1, 3) * SECOND;
    const bot = channel !== 'email';
    if (bot) t = this.say(t, s, 'bot', SAY.botHello);
    t = this.ask(t, s, SAY.fault, 'after_sales', p, r.sentiment(-0.55, -0.05), bot ? true : undefined);
    const agent = this.agent();
    t = this.say(t + r.int(10, 90) * SECOND, s, 'agent', SAY.agentHello, undefined, agent);
    t = this.reply(t, s, 'agent', agent, SAY.agentAck);
    const ticket = `t-${this.c.key}-${this.day}-${++this.n}`;
    this.emit('ticket', t, channel, {
      session: s,
      status: 'open',
      ticketId: ticket,
      intent: 'after_sales',
      sku: p.sku,
      agent,
    });
    const end = this.endSession(t + r.int(20, 90) * SECOND, s, channel, agent);
    const shift = this.commit();
    if (shift !== null && r.chance(0.8)) {
      this.resolve(end - shift + r.int(20, 360) * MINUTE, channel, ticket, 'after_sales', agent, p);
    }
  }

  /** A call-center call with a transcript full of PII for the masker. */
  private call(at: number): void {
    const { r } = this;
    const s = this.startSession(at, 'phone', false);
    const agent = this.agent();
    let t = at + r.int(5, 40) * SECOND;
    const duration = r.int(60, 900);
    this.emit('call', t, 'phone', { session: s, agent, durationSec: duration, variant: this.c.variant });
    const p = this.product(r.pick(this.c.categories));
    t = this.say(t + r.int(1, 3) * SECOND, s, 'agent', SAY.agentHello, undefined, agent);
    t = this.ask(
      t,
      s,
      SAY.callOpen,
      r.pick(['order_status', 'shipping', 'after_sales']),
      p,
      r.sentiment(-0.3, 0.4),
    );
    t = this.reply(t, s, 'agent', agent, SAY.callAgent);
    if (r.chance(0.6)) {
      t = this.ask(t, s, SAY.callDetail, 'order_status', undefined, r.sentiment(-0.2, 0.3));
      t = this.reply(t, s, 'agent', agent, SAY.callAgent);
    }
    const end = this.endSession(Math.max(t + 5 * SECOND, at + duration * SECOND), s, 'phone', agent);
    const shift = this.commit();
    if (shift !== null && r.chance(0.3)) {
      this.rate(
        end - shift + r.int(1, 5) * MINUTE,
        'phone',
        s,
        r.weighted([0.05, 0.05, 0.15, 0.35, 0.4]) + 1,
      );
    }
  }

  /** A login; with `lookAround`, a couple of page views after it. */
  private login(
    at: number,
    lookAround: boolean,
    channel = this.r.pick(['app', 'app', 'web', 'miniprogram']),
  ): void {
    const { r, c } = this;
    this.emit('login', at, channel, { ids: this.idsFor(channel) });
    if (lookAround) {
      let t = at + r.int(5, 30) * SECOND;
      for (let i = r.int(1, 3); i > 0; i--) {
        const p = this.product(r.pick(c.categories));
        this.emit('page_view', t, channel, { source: 'direct', category: p.category, sku: p.sku });
        t += r.int(10, 90) * SECOND;
      }
    }
    // a login that follows something else is a follow-up: after the end of the run it did not happen yet
    this.commit(!lookAround);
  }

  /** A big-ticket order (tier VIP from here on), then a question about it. */
  private vipOrder(at: number): void {
    const { r } = this;
    const p = r.pick(EXPENSIVE);
    const channel = this.shopChannel();
    this.emit('page_view', at, channel, { source: this.source(), category: p.category, sku: p.sku });
    this.emit('add_to_cart', at + r.int(30, 300) * SECOND, channel, { category: p.category, sku: p.sku });
    this.order(at + r.int(320, 580) * SECOND, channel, [p]);
    const shift = this.commit();
    if (shift === null) return;
    // the question must come after the order, or the customer was not VIP yet when asking
    this.floor = at - shift + 10 * MINUTE;
    this.contact(at - shift + r.int(15, 300) * MINUTE, 'vip', p);
    this.floor = 0;
  }

  /** Everyday goods bought several times a day: gives a purchase cycle. */
  private repeatOrders(at: number): void {
    const { r } = this;
    let t = at;
    for (let i = r.int(2, 4); i > 0; i--) {
      const channel = this.shopChannel();
      const p = r.pick(EVERYDAY);
      this.emit('page_view', t, channel, { source: 'direct', category: p.category, sku: p.sku });
      this.emit('add_to_cart', t + r.int(20, 120) * SECOND, channel, { category: p.category, sku: p.sku });
      this.order(t + r.int(130, 400) * SECOND, channel, [p]);
      this.commit();
      t += r.int(60, 300) * MINUTE;
    }
  }

  /** Spends >= 2000 early on day one, then never shows up again. */
  private silentVipMorning(): void {
    const { r } = this;
    const local = this.localMidnight() + r.int(7 * 60, 10 * 60) * MINUTE;
    // far-west customers' morning may lie before the run: they shop as soon as it starts instead
    const at = local >= this.gen.start ? local : this.gen.start + r.int(1, 120) * MINUTE;
    const channel = this.shopChannel();
    const bought: Product[] = [];
    let total = 0;
    while (total < 2000) {
      const p = r.pick(EXPENSIVE);
      bought.push(p);
      total += p.price;
    }
    let t = at;
    for (const p of bought) {
      this.emit('page_view', t, channel, { source: this.source(), category: p.category, sku: p.sku });
      t += r.int(30, 200) * SECOND;
      this.emit('add_to_cart', t, channel, { category: p.category, sku: p.sku });
      t += r.int(10, 60) * SECOND;
    }
    this.order(t + r.int(60, 300) * SECOND, channel, bought);
    this.commit();
  }

  // ---- building blocks -----------------------------------------------------------------------

  private order(at: number, channel: string, items: readonly Product[]): void {
    const { r, c } = this;
    const main = items[0]!;
    let amount = 0;
    for (const p of items) amount += p.price * (p.price < 200 && r.chance(0.3) ? r.int(2, 3) : 1);
    const orderId = `o-${c.key}-${this.day}-${++this.n}`;
    c.lastOrderId = orderId;
    this.emit('order', at, channel, { amount, orderId, sku: main.sku, category: main.category });
  }

  private rate(at: number, channel: string, session: string, score: number): void {
    this.emit('rating', at, channel, { session, score });
    this.commit(true);
  }

  private resolve(
    at: number,
    channel: string,
    ticketId: string,
    intent: string,
    agent: string,
    p?: Product,
  ): void {
    this.emit('ticket', at, channel, {
      status: 'resolved',
      ticketId,
      intent,
      agent,
      ...(p ? { sku: p.sku } : {}),
    });
    this.commit(true);
  }

  private startSession(at: number, channel: string, withSource: boolean): string {
    const { c } = this;
    const s = `s-${c.key}-${this.day}-${++this.n}`;
    this.emit('session_start', at, channel, {
      session: s,
      variant: c.variant,
      ...(withSource ? { source: this.source() } : {}),
      ids: this.idsFor(channel),
    });
    return s;
  }

  private endSession(at: number, session: string, channel: string, agent: string): number {
    this.emit('session_end', at, channel, { session, variant: this.c.variant, ...(agent ? { agent } : {}) });
    return at;
  }

  /** A customer message; returns when the next speaker starts. */
  private ask(
    at: number,
    session: string,
    lines: Lines,
    intent: string,
    p: Product | undefined,
    sentiment: number,
    recognized?: boolean,
  ): number {
    const fields: Partial<CxEvent> = { intent, sentiment };
    if (recognized !== undefined) fields.recognized = recognized;
    if (p && intent === 'product_inquiry') {
      fields.sku = p.sku;
      fields.category = p.category;
    }
    return this.message(at, session, 'customer', this.fill(this.r.pick(this.pickLang(lines)), p), fields);
  }

  /** A bot (1–3 s) or agent (10–90 s) answer. */
  private reply(
    at: number,
    session: string,
    from: 'bot' | 'agent',
    agent: string,
    lines: Lines,
    p?: Product,
  ): number {
    const delay = from === 'bot' ? this.r.int(1, 3) : this.r.int(10, 90);
    return this.say(at + delay * SECOND, session, from, lines, p, agent);
  }

  private say(
    at: number,
    session: string,
    from: 'bot' | 'agent',
    lines: Lines,
    p?: Product,
    agent?: string,
  ): number {
    const text = this.fill(this.r.pick(this.pickLang(lines)), p, agent);
    return this.message(at, session, from, text, agent ? { agent } : {});
  }

  private message(at: number, session: string, from: string, text: string, fields: Partial<CxEvent>): number {
    this.emit('message', at, this.channelOf(session), {
      session,
      from,
      variant: this.c.variant,
      text,
      ...fields,
    });
    // customers type for a while; the next line comes after reading and typing time
    return at + this.r.int(from === 'customer' ? 2 : 6, from === 'customer' ? 25 : 60) * SECOND;
  }

  private channelOf(session: string): string {
    return this.sessionChannel.get(session) ?? 'web';
  }

  private emit(type: string, ts: number, channel: string, fields: Partial<CxEvent>): void {
    const { c, gen } = this;
    const e: CxEvent = {
      id: gen.idPrefix + gen.nextId++,
      ts: Math.floor(ts),
      customer: c.key,
      type,
      channel,
      region: c.region,
      tz: c.tz,
      ...fields,
    };
    if (type === 'session_start') this.sessionChannel.set(fields.session!, channel);
    this.buf.push(e);
  }

  /**
   * Writes the buffered episode and returns how far it was moved earlier, or null when it was
   * dropped. An episode that would run past the end of the run moves earlier as a whole (it
   * happened a bit before midnight instead) unless that puts it before the start or before
   * `floor`; with `clip` (follow-ups such as a rating or a later login) events past the end are
   * left out instead, as they would happen "tomorrow".
   */
  private commit(clip = false): number | null {
    const buf = this.buf;
    if (buf.length === 0) return 0;
    this.buf = [];
    const { start, end, out } = this.gen;
    if (clip) {
      for (const e of buf) if (e.ts < end) out.push(e);
      return 0;
    }
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const e of buf) {
      if (e.ts < first) first = e.ts;
      if (e.ts > last) last = e.ts;
    }
    const shift = last < end ? 0 : last - end + 1 + this.r.int(1, 15) * MINUTE;
    if (first - shift < Math.max(start, this.floor)) return null;
    for (const e of buf) {
      e.ts -= shift;
      out.push(e);
    }
    return shift;
  }

  // ---- choices -------------------------------------------------------------------------------

  /** The identifier the channel knows the customer by (identity stitching input). */
  private idsFor(channel: string): Record<string, string> {
    const { c } = this;
    if (channel === 'app') return { appUser: c.ids.appUser! };
    if (channel === 'web') return { cookie: c.ids.cookie! };
    if (channel === 'phone') return { phone: c.phone };
    return { openid: c.ids.openid! };
  }

  /** A time on this day drawn from the customer's diurnal curve. */
  private when(): number {
    const cdf = this.curve();
    const x = this.r.next() * cdf[23]!;
    let h = 0;
    while (h < 23 && cdf[h]! <= x) h++;
    return this.dayStart + h * HOUR + this.r.int(0, HOUR - 1);
  }

  private curve(): Float64Array {
    const { c, gen } = this;
    const key = `${c.tz}|${c.nightOwl ? 1 : 0}|${this.day}`;
    let cdf = gen.curves.get(key);
    if (!cdf) {
      cdf = new Float64Array(24);
      const shape = c.nightOwl ? NIGHT_CURVE : DAY_CURVE;
      let sum = 0;
      for (let h = 0; h < 24; h++) {
        const mid = this.dayStart + h * HOUR + HOUR / 2;
        const local = mid + utcOffsetMinutes(mid, c.tz) * MINUTE;
        sum += shape[Math.floor((((local % DAY) + DAY) % DAY) / HOUR)]!;
        cdf[h] = sum;
      }
      gen.curves.set(key, cdf);
    }
    return cdf;
  }

  /** Epoch ms of the customer-local midnight that starts the local day containing this day's noon. */
  private localMidnight(): number {
    const noon = this.dayStart + 12 * HOUR;
    const off = utcOffsetMinutes(noon, this.c.tz) * MINUTE;
    return Math.floor((noon + off) / DAY) * DAY - off;
  }

  private product(category: string): Product {
    return this.r.pick(BY_CATEGORY.get(category) ?? CATALOG);
  }

  private source(): string {
    return SOURCES[this.r.weighted(SOURCE_WEIGHTS)]!;
  }

  private agent(): string {
    return `a${String(this.r.int(1, this.gen.agents)).padStart(3, '0')}`;
  }

  /** Where the customer chats: a preferred channel most of the time. */
  private chatChannel(): string {
    const { c, r } = this;
    return r.chance(0.75) ? c.channels[0] : c.channels[1];
  }

  /** Where the customer shops: chat-only channels map to the shop front they lead to. */
  private shopChannel(): string {
    const ch = this.chatChannel();
    if (ch === 'wechat') return 'miniprogram';
    if (ch === 'phone' || ch === 'email') return this.r.chance(0.6) ? 'app' : 'web';
    return ch;
  }

  private pickLang(lines: Lines): readonly string[] {
    return this.en ? lines.en : lines.zh;
  }

  private fill(text: string, p?: Product, agent?: string): string {
    if (!text.includes('{')) return text;
    const { r, c } = this;
    const en = this.en;
    return text.replace(/\{(\w+)\}/g, (_m, k: string) => {
      switch (k) {
        case 'p':
          return p ? (en ? p.en : p.zh) : en ? 'item' : '商品';
        case 'acc': {
          const a = r.pick(ACCESSORIES);
          return en ? a.en : a.zh;
        }
        case 'order':
          return c.lastOrderId || `o-${c.key}-${this.day}-0`;
        case 'agent':
          return agent ?? '';
        case 'phone':
          return en && c.tz !== 'Asia/Shanghai' ? `+86 ${c.phone}` : c.phone;
        case 'idno':
          return idNumber(r);
        case 'card':
          return `6222 02${r.int(10, 99)} ${r.int(1000, 9999)} ${r.int(1000, 9999)} ${r.int(100, 999)}`;
        case 'email':
          return `${en ? 'alex' : 'zhang.wei'}${c.index}@example.com`;
        case 'region':
          return REGION_ZH[c.region] ?? c.region;
        default:
          return '';
      }
    });
  }
}

/** An 18-digit PRC resident ID number with a valid ISO 7064 check digit (synthetic). */
function idNumber(r: Rand): string {
  const area = r.pick(['110101', '310104', '440305', '330106', '510107', '420106']);
  const birth = `${r.int(1960, 2005)}${String(r.int(1, 12)).padStart(2, '0')}${String(r.int(1, 28)).padStart(2, '0')}`;
  const body = `${area}${birth}${String(r.int(0, 999)).padStart(3, '0')}`;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(body[i]) * weights[i]!;
  return body + '10X98765432'[sum % 11]!;
}
