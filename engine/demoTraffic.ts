/**
 * A deterministic, realistic day (or several) of customer-service traffic for the demo, the
 * tests and the benchmarks: an e-commerce shop with a chat bot, human agents and a call center,
 * as in the source articles (seeds/): consultations that turn into orders, accessories asked
 * about, invoices, budget worries, after-sales tickets, complaints, a regional delivery incident.
 *
 * Every customer and every customer-day draws from its own PRNG stream (mulberry32 seeded by a
 * hash of seed, customer and day): a customer's day does not depend on the draws of the others,
 * and generation is linear in the number of events (3 000 customers ≈ 60k events in a few hundred
 * ms; 100 000 ≈ 2M events, a few seconds and ~0.6 GB). Event ids are `e-<seed>-<n>`, numbered
 * in generation order (not stream order), so they are stable for the same options.
 *
 * Times: each customer has an IANA zone; activity follows a diurnal curve in customer-local time
 * (peaks 10–12 and 19–22; night owls peak 22–02). Events never leave [dayStart, dayStart + days):
 * an episode that would run past the end is moved earlier as a whole; follow-ups that fall after
 * the end (a rating, a ticket resolution, a login) would happen "tomorrow" and are left out.
 */
import { utcOffsetMinutes } from '../operators/localTime.js';
import type { CxEvent } from '../operators/types.js';

/** Options of {@link generateTraffic}. */
export interface TrafficOptions {
  /** Number of customers (c000001 ... c<customers>). @default 3000 */
  customers?: number;
  /** Start of the generated day, epoch ms (a midnight) @default 2026-11-01T00:00:00+08:00 */
  dayStart?: number;
  /** Number of consecutive days. @default 1 */
  days?: number;
  /** PRNG seed (an integer): the same options always give the same events. @default 42 */
  seed?: number;
}

/** One knob of the generator and the rule situations (SCENARIOS.md "Default rules") it produces. */
export interface TrafficBehaviour {
  /** `customer`: share of customers; `episode`: share of an active customer's episodes; `day`: see `what`. */
  per: 'customer' | 'episode' | 'day';
  share: number;
  rules: readonly string[];
  what: string;
}

/** Which knob produces which rule situation; the generator reads its shares from here. */
export const TRAFFIC_BEHAVIOURS = Object.freeze({
  nightOwl: {
    per: 'customer',
    share: 0.08,
    rules: ['night_self_service'],
    what: 'activity peaks 22:00–02:00 customer-local (everyone else has a small night tail too)',
  },
  vipBuyer: {
    per: 'customer',
    share: 0.06,
    rules: ['vip_routing'],
    what: 'on most active days an order of >= 1000 (tier VIP from then on), then a contact about delivery',
  },
  repeatBuyer: {
    per: 'customer',
    share: 0.05,
    rules: ['repurchase_reminder'],
    what: '2–4 small orders (groceries, baby, beauty) hours apart on each active day',
  },
  silentVip: {
    per: 'customer',
    share: 0.01,
    rules: ['high_value_silent', 'churn_risk'],
    what: 'spends >= 2000 on the first morning, then sends nothing for the rest of the run',
  },
  browse: {
    per: 'episode',
    share: 0.36,
    rules: ['cart_abandoned', 'category_interest'],
    what: 'page views clustered in one category; 35% add to cart, then order within 10 min, later, or never',
  },
  consult: {
    per: 'episode',
    share: 0.24,
    rules: ['consult_unresolved', 'satisfaction_survey', 'accessory_recommendation'],
    what: 'bot session with product inquiries (sku), shipping, returns; script_b converts better than script_a',
  },
  revisit: {
    per: 'episode',
    share: 0.05,
    rules: ['high_intent_revisit'],
    what: 'a consultation, then 3–5 logins over the next hours (or days when days > 1)',
  },
  botConfusion: {
    per: 'episode',
    share: 0.05,
    rules: ['human_handoff'],
    what: '3–4 consecutive messages the bot does not recognise, then a human agent takes over',
  },
  complaint: {
    per: 'episode',
    share: 0.025,
    rules: ['human_handoff', 'supervisor_escalation', 'complaint_winback'],
    what: 'angry messages (sentiment < -0.6, <= -0.8 or intent anger), a complaint, a ticket, often a rating <= 2',
  },
  invoice: {
    per: 'episode',
    share: 0.05,
    rules: ['invoice_ticket'],
    what: 'an order, then a message asking for an invoice (发票 / invoice in the text and/or intent invoice)',
  },
  budget: {
    per: 'episode',
    share: 0.05,
    rules: ['budget_concern_script'],
    what: 'inquiry on an expensive sku, then 预算 / 太贵 / budget (text and/or intent budget_concern)',
  },
  afterSales: {
    per: 'episode',
    share: 0.07,
    rules: ['post_service_upsell'],
    what: 'a fault reported to an agent: ticket open, resolved 20 min – 6 h later',
  },
  call: {
    per: 'episode',
    share: 0.06,
    rules: ['vip_routing', 'satisfaction_survey'],
    what: 'call-center call: transcript with phone and ID numbers (masking), agent-handled',
  },
  login: {
    per: 'episode',
    share: 0.045,
    rules: ['high_intent_revisit'],
    what: 'an app login and a short look around',
  },
  complaintSurge: {
    per: 'day',
    share: 8,
    rules: ['complaint_surge'],
    what: 'a delivery incident in one region per day: that many times its mean hourly complaints (>= 30) in < 1 h',
  },
} satisfies Record<string, TrafficBehaviour>);

/** Active days: engagement is uniform in [0.35, 0.95]. */
const MEAN_ENGAGEMENT = 0.65;
/** An active day has 2 episodes plus one more for each of these chances that comes up. */
const EXTRA_EPISODES = [0.6, 0.5, 0.35, 0.2];
const MEAN_EPISODES = 2 + EXTRA_EPISODES.reduce((a, b) => a + b, 0);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const DEFAULT_DAY_START = Date.parse('2026-11-01T00:00:00+08:00');

/**
 * Generates events sorted by `ts` (ties broken by generation order, so deterministically), every
 * one a valid {@link CxEvent}; the same options always give deep-equal results.
 */
export function generateTraffic(options: TrafficOptions = {}): CxEvent[] {
  const o = resolveOptions(options);
  const gen: Gen = {
    seed: o.seed,
    seedHash: hash32(o.seed >>> 0, Math.floor(o.seed / 2 ** 32) >>> 0, 0x9e3779b9),
    start: o.dayStart,
    end: o.dayStart + o.days * DAY,
    out: [],
    curves: new Map(),
    agents: Math.min(500, Math.max(8, Math.round(o.customers / 100))),
    idPrefix: `e-${o.seed}-`,
    nextId: 0,
  };
  const customers: Customer[] = [];
  for (let i = 1; i <= o.customers; i++) customers.push(makeCustomer(gen, i));
  for (let d = 0; d < o.days; d++) {
    const surge = planSurge(gen, d, o.customers);
    for (const c of customers) new CustomerDay(gen, c, d, surge).run();
  }
  return sortByTime(gen.out, gen.start, gen.end);
}

/** Subject an upstream system would publish the event on: `cx.events.<channel>.<type>.<customer>`. */
export function subjectOf(event: CxEvent): string {
  return `cx.events.${token(event.channel, 'channel')}.${token(event.type, 'type')}.${token(event.customer, 'customer')}`;
}

function token(value: string, field: string): string {
  if (typeof value !== 'string' || value === '' || /[.\s*>]/.test(value)) {
    throw new RangeError(`event.${field} ${JSON.stringify(value)} is not a valid NATS subject token`);
  }
  return value;
}

function resolveOptions(options: TrafficOptions): Readonly<Required<TrafficOptions>> {
  const o = {
    customers: options.customers ?? 3000,
    dayStart: options.dayStart ?? DEFAULT_DAY_START,
    days: options.days ?? 1,
    seed: options.seed ?? 42,
  };
  if (!Number.isInteger(o.customers) || o.customers < 1 || o.customers > 99_999_999) {
    throw new RangeError(`customers must be an integer 1..99999999, got ${o.customers}`);
  }
  if (!Number.isInteger(o.dayStart) || o.dayStart <= 0) {
    throw new RangeError(`dayStart must be a positive integer epoch ms, got ${o.dayStart}`);
  }
  if (!Number.isInteger(o.days) || o.days < 1 || o.days > 366) {
    throw new RangeError(`days must be an integer 1..366, got ${o.days}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw new RangeError(`seed must be a safe integer, got ${o.seed}`);
  return Object.freeze(o);
}

// ---------------------------------------------------------------------------------------------
// Randomness

/** Avalanche hash of a few 32-bit numbers (murmur3 finalizer), the seed of one PRNG stream. */
function hash32(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ 0x85ebca6b, 0xcc9e2d51) ^ Math.imul(b + 0x27d4eb2f, 0x1b873593);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ Math.imul(c + 0x165667b1, 0x85ebca77);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32: tiny, fast and good enough for synthetic traffic. */
class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** Real in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  /** Index drawn with the given (not necessarily normalised) weights. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let x = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i]!;
      if (x < 0) return i;
    }
    return weights.length - 1;
  }
  /** A sentiment in [lo, hi] rounded to 2 decimals, as NLU services report it. */
  sentiment(lo: number, hi: number): number {
    return Math.round(this.range(lo, hi) * 100) / 100;
  }
}

// ---------------------------------------------------------------------------------------------
// The world: customers, catalog, channels, texts

const REGIONS = ['north', 'east', 'south', 'west', 'central'] as const;
const REGION_WEIGHTS = [0.22, 0.3, 0.25, 0.1, 0.13];
const REGION_ZH: Record<string, string> = {
  north: '华北',
  east: '华东',
  south: '华南',
  west: '西部',
  central: '华中',
};
const ZONES = ['Asia/Shanghai', 'Asia/Hong_Kong', 'America/Los_Angeles', 'Europe/London'] as const;
const ZONE_WEIGHTS = [0.88, 0.05, 0.04, 0.03];
const CHANNELS = ['app', 'miniprogram', 'wechat', 'web', 'douyin', 'phone', 'email'] as const;
const CHANNEL_WEIGHTS = [0.28, 0.18, 0.17, 0.15, 0.1, 0.08, 0.04];
const SOURCES = ['search', 'ad', 'social', 'direct'] as const;
const SOURCE_WEIGHTS = [0.35, 0.25, 0.2, 0.2];
/** Relative contact volume per customer-local hour 0..23. */
const DAY_CURVE = [
  1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.5, 3.5, 5, 5.5, 4.2, 3.6, 3.8, 3.8, 3.6, 3.4, 3.8, 5, 5.6, 5.4, 3.2,
  1.8,
];
const NIGHT_CURVE = [
  5, 4.5, 3.5, 2, 1, 0.5, 0.3, 0.3, 0.5, 0.8, 1, 1.2, 1.2, 1, 1, 1, 1, 1, 1.5, 2, 2.5, 3.5, 5, 5.5,
];

interface Product {
  sku: string;
  category: string;
  price: number;
  zh: string;
  en: string;
}

const CATALOG: readonly Product[] = [
  { sku: 'PH-1001', category: 'phones', price: 3999, zh: '星耀X5手机', en: 'Stellar X5 phone' },
  { sku: 'PH-1002', category: 'phones', price: 5999, zh: '星耀X5 Pro手机', en: 'Stellar X5 Pro phone' },
  { sku: 'PH-1003', category: 'phones', price: 1799, zh: '星耀青春版', en: 'Stellar Lite phone' },
  { sku: 'AU-2001', category: 'audio', price: 899, zh: 'AirQuiet降噪耳机', en: 'AirQuiet headphones' },
  { sku: 'AU-2002', category: 'audio', price: 299, zh: '运动蓝牙耳机', en: 'sport earbuds' },
  { sku: 'AU-2003', category: 'audio', price: 499, zh: '智能音箱', en: 'smart speaker' },
  { sku: 'AC-3001', category: 'accessories', price: 59, zh: '手机保护壳', en: 'phone case' },
  { sku: 'AC-3002', category: 'accessories', price: 149, zh: '65W快充充电器', en: '65W fast charger' },
  { sku: 'AC-3003', category: 'accessories', price: 39, zh: '钢化膜', en: 'screen protector' },
  { sku: 'AC-3004', category: 'accessories', price: 29, zh: 'Type-C数据线', en: 'USB-C cable' },
  { sku: 'BB-4001', category: 'baby', price: 1299, zh: '轻便婴儿推车', en: 'lightweight stroller' },
  { sku: 'BB-4002', category: 'baby', price: 129, zh: '纸尿裤L码', en: 'diapers size L' },
  { sku: 'BB-4003', category: 'baby', price: 199, zh: '奶瓶套装', en: 'baby bottle set' },
  { sku: 'BB-4004', category: 'baby', price: 1599, zh: '婴儿安全座椅', en: 'infant car seat' },
  { sku: 'BT-5001', category: 'beauty', price: 459, zh: '修护精华液', en: 'repair serum' },
  { sku: 'BT-5002', category: 'beauty', price: 329, zh: '保湿面霜', en: 'moisturising cream' },
  { sku: 'BT-5003', category: 'beauty', price: 399, zh: '口红礼盒', en: 'lipstick gift set' },
  { sku: 'HA-6001', category: 'appliances', price: 2499, zh: '扫地机器人', en: 'robot vacuum' },
  { sku: 'HA-6002', category: 'appliances', price: 1899, zh: '空气净化器', en: 'air purifier' },
  { sku: 'HA-6003', category: 'appliances', price: 499, zh: '智能电饭煲', en: 'smart rice cooker' },
  { sku: 'GR-7001', category: 'grocery', price: 89, zh: '有机牛奶整箱', en: 'organic milk (case)' },
  { sku: 'GR-7002', category: 'grocery', price: 168, zh: '坚果礼盒', en: 'nut gift box' },
  { sku: 'GR-7003', category: 'grocery', price: 79, zh: '咖啡豆', en: 'coffee beans' },
  { sku: 'AP-8001', category: 'apparel', price: 899, zh: '羽绒服', en: 'down jacket' },
  { sku: 'AP-8002', category: 'apparel', price: 599, zh: '跑步鞋', en: 'running shoes' },
  { sku: 'AP-8003', category: 'apparel', price: 259, zh: '羊毛围巾', en: 'wool scarf' },
];
const CATEGORIES = [...new Set(CATALOG.map((p) => p.category))];
const BY_CATEGORY = new Map(CATEGORIES.map((c) => [c, CATALOG.filter((p) => p.category === c)]));
const EXPENSIVE = CATALOG.filter((p) => p.price >= 1000);
const EVERYDAY = CATALOG.filter((p) => ['grocery', 'baby', 'beauty'].includes(p.category) && p.price < 1000);
const ACCESSORIES = BY_CATEGORY.get('accessories')!;

/** Lines a speaker may say, per language. `{p}` product, `{acc}` accessory, `{order}`, PII placeholders. */
interface Lines {
  zh: readonly string[];
  en: readonly string[];
}
/** Lines with the intent an NLU would attach to each (not always the obvious one). */
interface IntentLines {
  zh: readonly (readonly [string, string])[];
  en: readonly (readonly [string, string])[];
}

const SAY = {
  botHello: {
    zh: ['您好,我是智能客服小星,请问有什么可以帮您?', '欢迎光临星耀官方旗舰店,有什么可以帮您?'],
    en: ["Hi, I'm Xing, the virtual assistant. How can I help you today?"],
  },
  agentHello: {
    zh: ['您好,我是客服{agent},很高兴为您服务。', '您好,人工客服{agent}为您服务,请讲。'],
    en: ['Hello, this is {agent} from customer service. How can I help?'],
  },
  botTransfer: {
    zh: ['抱歉没能理解您的问题,正在为您转接人工客服,请稍候。'],
    en: ["Sorry I couldn't help with that. Connecting you to a human agent now."],
  },
  botFallback: {
    zh: ['抱歉,我没有理解您的意思,可以换个说法吗?', '小星还在学习中,您可以描述得更具体一些吗?'],
    en: ["Sorry, I didn't get that. Could you rephrase?"],
  },
  inquiry: {
    zh: [
      '{p}支持快充吗?',
      '{p}有几种颜色可选?',
      '{p}和上一代比有什么区别?',
      '{p}现在有货吗?',
      '请问{p}保修多久?',
    ],
    en: ['Does the {p} support fast charging?', 'What colours does the {p} come in?', 'Is the {p} in stock?'],
  },
  inquiryReply: {
    zh: [
      '{p}现货充足,今天下单明天发货。很多顾客会同时选购{acc},搭配购买更优惠哦。',
      '{p}全国联保一年,详细参数已发送给您。',
    ],
    en: ['The {p} is in stock and ships tomorrow. Many customers also pick a {acc} with it.'],
  },
  shipping: {
    zh: ['我的订单什么时候发货?', '快递到哪了?单号查不到', '能发顺丰吗?'],
    en: ['When will my order ship?', 'Where is my parcel? The tracking number shows nothing.'],
  },
  shippingReply: {
    zh: ['已为您查询,预计48小时内发货,请耐心等待。', '您的包裹已到达转运中心,预计明天送达。'],
    en: ['Your parcel is at the sorting center and should arrive tomorrow.'],
  },
  returns: {
    zh: ['这款支持七天无理由退货吗?', '尺码不合适可以换吗?'],
    en: ["Can I return it within 7 days if I don't like it?"],
  },
  returnsReply: {
    zh: ['支持七天无理由退换,商品保持完好即可。'],
    en: ['Yes, returns are free within 7 days as long as the item is unused.'],
  },
  promotion: {
    zh: ['双十一有什么优惠活动?', '新人券怎么领?', '满减可以和优惠券叠加吗?'],
    en: ['Are there any Singles Day deals?', 'How do I use my coupon?'],
  },
  promotionReply: {
    zh: ['当前满300减40,可叠加店铺券,领券入口在首页。'],
    en: ['Right now you get 40 off every 300, and shop coupons stack on top.'],
  },
  unrecognized: {
    zh: ['那个东西怎么弄啊', '上次说的那个呢', '???', '就是那个蓝色的', '你们这个怎么回事', '不是这个意思'],
    en: ['the thing from last time??', 'hello?? that one', 'the blue one', 'not what I asked'],
  },
  thanks: {
    zh: ['好的,谢谢', '明白了,谢谢!', '行,那我再看看'],
    en: ['OK thanks', 'Great, thank you!', "Alright, I'll think about it"],
  },
  agentAck: {
    zh: [
      '好的,已为您登记,请稍等。',
      '已经为您加急处理,今天内给您回复。',
      '非常抱歉给您带来不便,我们马上处理。',
    ],
    en: ['Sure, I have noted that for you.', 'I am sorry for the trouble, we are on it right away.'],
  },
  angry: {
    zh: [
      '你们的物流太慢了,三天了还没发货!',
      '客服电话一直打不通,太差劲了',
      '东西是坏的,我要投诉!',
      '第三次联系了还没解决,非常失望',
    ],
    en: [
      'This is the third time I contact you and nothing is fixed!',
      'The product is broken, I want to complain.',
    ],
  },
  furious: {
    zh: ['气死我了,马上给我退款!', '再不处理我就去12315投诉你们', '什么破服务,骗子!'],
    en: ['I am furious. Refund me NOW.', 'Worst service ever, you are scammers!'],
  },
  incident: {
    zh: ['物流三天没更新了,到底怎么回事?', '说好的次日达,现在还没到!', '{region}这边是不是全部延迟了?'],
    en: ['My next-day delivery is three days late!', 'Tracking has not moved for days, what is going on?'],
  },
  fault: {
    zh: ['{p}用了三天就充不进电了', '{p}开不了机,怎么保修?', '收到的{p}外包装破损了', '{p}一边没声音'],
    en: ['My {p} stopped charging after a week', 'The {p} arrived damaged', 'The {p} will not turn on'],
  },
  vipContact: {
    zh: ['刚买的{p}什么时候能到?', '{p}可以上门安装吗?', '我买了{p},想加购一个延保'],
    en: [
      'When will my {p} arrive?',
      'Can you install the {p} at home?',
      'I want extended warranty for my {p}',
    ],
  },
  callOpen: {
    zh: ['喂,你好,我想查一下订单{order}', '你好,我的手机号是{phone},帮我查一下快递', '我之前买的{p}有点问题'],
    en: [
      'Hi, I am calling about order {order}',
      'Hello, my phone number is {phone}, can you check my delivery?',
    ],
  },
  callDetail: {
    zh: ['实名认证的身份证号是{idno}', '退款打到我的卡{card}就行', '联系电话{phone},下午都在'],
    en: ['Refund to my card {card} please', 'You can reach me at {phone} this afternoon'],
  },
  callAgent: {
    zh: [
      '好的,已为您查询到订单,预计明天送达。',
      '已核实身份,退款将在1-3个工作日到账。',
      '请问还有其他可以帮您的吗?',
    ],
    en: ['I found your order, it arrives tomorrow.', 'Verified. The refund takes 1-3 business days.'],
  },
  emailAsk: {
    zh: ['你好,订单{order}能改收货地址吗?我的邮箱是{email}', '请问企业采购有批量优惠吗?联系邮箱{email}'],
    en: [
      'Hello, can I change the address of order {order}? Email me at {email}',
      'Do you offer bulk discounts?',
    ],
  },
  scriptA: {
    zh: ['这款是新品,暂时没有折扣,您可以关注后续活动。'],
    en: ['This is a new model, so there is no discount right now.'],
  },
  scriptB: {
    zh: ['根据您的需求,我们目前有限时8折优惠,是否需要详细了解?', '可以为您申请12期免息分期,每月压力更小哦。'],
    en: [
      'We have a limited-time 20% off for you, want to hear more?',
      'We can offer 12 interest-free instalments.',
    ],
  },
} satisfies Record<string, Lines>;

const INVOICE: IntentLines = {
  zh: [
    ['请帮我开一下订单{order}的发票', 'invoice'],
    ['发票抬头写公司名,税号我发到邮箱{email}', 'invoice'],
    ['能开增值税专用票吗?', 'invoice'],
    ['上次买的{p}发票还没收到', 'order_status'],
  ],
  en: [
    ['Can I get an invoice for order {order}?', 'invoice'],
    ['Please send the INVOICE to {email}', 'order_status'],
    ['I need a VAT receipt for my company', 'invoice'],
  ],
};
const BUDGET: IntentLines = {
  zh: [
    ['预算有限,有没有便宜一点的款?', 'budget_concern'],
    ['这个也太贵了吧', 'price_question'],
    ['能不能再便宜点?学生党', 'budget_concern'],
    ['超出预算了,有分期吗?', 'budget_concern'],
  ],
  en: [
    ["That's over my budget, anything cheaper?", 'budget_concern'],
    ['Too expensive for me right now', 'budget_concern'],
    ['Is there a budget version of the {p}?', 'price_question'],
  ],
};

interface Customer {
  index: number;
  key: string;
  region: string;
  tz: string;
  english: boolean;
  nightOwl: boolean;
  vipBuyer: boolean;
  repeatBuyer: boolean;
  silentVip: boolean;
  /** Probability of being active on a given day. */
  engagement: number;
  /** A/B test arm, sticky per customer as A/B assignment is. */
  variant: string;
  channels: readonly [string, string];
  categories: readonly [string, string];
  phone: string;
  ids: Record<string, string>;
  /** Carried across days so an invoice request can name the last order. */
  lastOrderId: string;
}

function makeCustomer(gen: Gen, index: number): Customer {
  const r = new Rand(hash32(gen.seedHash, index, 0xc0ffee));
  const key = `c${String(index).padStart(6, '0')}`;
  const tz = ZONES[r.weighted(ZONE_WEIGHTS)]!;
  const region = tz === 'Asia/Hong_Kong' ? 'south' : REGIONS[r.weighted(REGION_WEIGHTS)]!;
  const persona = r.next();
  const b = TRAFFIC_BEHAVIOURS;
  const silentVip = persona < b.silentVip.share;
  const vipBuyer = !silentVip && persona < b.silentVip.share + b.vipBuyer.share;
  const repeatBuyer =
    !silentVip && !vipBuyer && persona < b.silentVip.share + b.vipBuyer.share + b.repeatBuyer.share;
  const first = CHANNELS[r.weighted(CHANNEL_WEIGHTS)]!;
  let second = CHANNELS[r.weighted(CHANNEL_WEIGHTS)]!;
  if (second === first) second = first === 'app' ? 'web' : 'app';
  const cat1 = r.pick(CATEGORIES);
  let cat2 = r.pick(CATEGORIES);
  if (cat2 === cat1) cat2 = r.pick(CATEGORIES);
  const phone = `1${r.pick(['3', '5', '7', '8', '9'])}${String(r.int(0, 999_999_999)).padStart(9, '0')}`;
  const hex = (r.int(0, 0xfffffff) * 16 + r.int(0, 15)).toString(16).padStart(8, '0');
  return {
    index,
    key,
    region,
    tz,
    english: r.chance(tz === 'Asia/Shanghai' ? 0.06 : 0.7),
    nightOwl: r.chance(b.nightOwl.share),
    vipBuyer,
    repeatBuyer,
    silentVip,
    engagement: r.range(MEAN_ENGAGEMENT - 0.3, MEAN_ENGAGEMENT + 0.3),
    variant: r.chance(0.5) ? 'script_a' : 'script_b',
    channels: [first, second],
    categories: [cat1, cat2],
    phone,
    ids: { openid: `wx_${hex}${key.slice(1)}`, appUser: `u${index}`, cookie: `ck_${hex}` },
    lastOrderId: '',
  };
}

// ---------------------------------------------------------------------------------------------
// Generation state

interface Gen {
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
function planSurge(gen: Gen, day: number, customers: number): Surge {
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

class CustomerDay {
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

/**
 * Sorts by (ts, generation order). The key packs both into one float so a native numeric sort
 * does the work (millions of events in well under a second); a run too long for that packing
 * falls back to a comparator.
 */
function sortByTime(events: CxEvent[], start: number, end: number): CxEvent[] {
  const n = events.length;
  const sorted: CxEvent[] = new Array(n);
  if ((end - start) * n < Number.MAX_SAFE_INTEGER) {
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = (events[i]!.ts - start) * n + i;
    keys.sort();
    for (let k = 0; k < n; k++) sorted[k] = events[keys[k]! % n]!;
  } else {
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => events[a]!.ts - events[b]!.ts || a - b);
    for (let k = 0; k < n; k++) sorted[k] = events[order[k]!]!;
  }
  return sorted;
}
