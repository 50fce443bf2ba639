/** The demo's world: regions, zones, channels, the catalog, what customers and agents say, and the customers. */
import { TRAFFIC_BEHAVIOURS } from './behaviours.js';
import { hash32, Rand } from './random.js';

/** Active days: engagement is uniform in [0.35, 0.95]. */
export const MEAN_ENGAGEMENT = 0.65;
/** An active day has 2 episodes plus one more for each of these chances that comes up. */
export const EXTRA_EPISODES = [0.6, 0.5, 0.35, 0.2];
export const MEAN_EPISODES = 2 + EXTRA_EPISODES.reduce((a, b) => a + b, 0);
export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
export const DEFAULT_DAY_START = Date.parse('2026-11-01T00:00:00+08:00');
// ---------------------------------------------------------------------------------------------
// The world: customers, catalog, channels, texts

export const REGIONS = ['north', 'east', 'south', 'west', 'central'] as const;
export const REGION_WEIGHTS = [0.22, 0.3, 0.25, 0.1, 0.13];
export const REGION_ZH: Record<string, string> = {
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
export const SOURCES = ['search', 'ad', 'social', 'direct'] as const;
export const SOURCE_WEIGHTS = [0.35, 0.25, 0.2, 0.2];
/** Relative contact volume per customer-local hour 0..23. */
export const DAY_CURVE = [
  1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.6, 1.2, 2.5, 3.5, 5, 5.5, 4.2, 3.6, 3.8, 3.8, 3.6, 3.4, 3.8, 5, 5.6, 5.4, 3.2,
  1.8,
];
export const NIGHT_CURVE = [
  5, 4.5, 3.5, 2, 1, 0.5, 0.3, 0.3, 0.5, 0.8, 1, 1.2, 1.2, 1, 1, 1, 1, 1, 1.5, 2, 2.5, 3.5, 5, 5.5,
];

export interface Product {
  sku: string;
  category: string;
  price: number;
  zh: string;
  en: string;
}

export const CATALOG: readonly Product[] = [
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
export const CATEGORIES = [...new Set(CATALOG.map((p) => p.category))];
export const BY_CATEGORY = new Map(CATEGORIES.map((c) => [c, CATALOG.filter((p) => p.category === c)]));
export const EXPENSIVE = CATALOG.filter((p) => p.price >= 1000);
export const EVERYDAY = CATALOG.filter(
  (p) => ['grocery', 'baby', 'beauty'].includes(p.category) && p.price < 1000,
);
export const ACCESSORIES = BY_CATEGORY.get('accessories')!;

/** Lines a speaker may say, per language. `{p}` product, `{acc}` accessory, `{order}`, PII placeholders. */
export interface Lines {
  zh: readonly string[];
  en: readonly string[];
}
/** Lines with the intent an NLU would attach to each (not always the obvious one). */
interface IntentLines {
  zh: readonly (readonly [string, string])[];
  en: readonly (readonly [string, string])[];
}

export const SAY = {
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

export const INVOICE: IntentLines = {
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
export const BUDGET: IntentLines = {
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

export interface Customer {
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

/** Customer `index` of the world seeded by `seedHash` (the same customer for the same pair). */
export function makeCustomer(seedHash: number, index: number): Customer {
  const r = new Rand(hash32(seedHash, index, 0xc0ffee));
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
