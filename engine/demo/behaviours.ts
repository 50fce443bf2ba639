/**
 * The knobs of the demo traffic and the rule situations each produces (docs/SCENARIOS.md): the
 * generator (engine/demo/episodes.ts) reads its shares from here, the tests check them.
 */
/** One knob of the generator and the rule situations (docs/SCENARIOS.md "Rules") it produces. */
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
