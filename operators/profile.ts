/**
 * The per-customer profile of docs/SCENARIOS.md "Profile": state kept in a partition worker, updated
 * once per event, and the derived `Profile` read as of an event-time `now`.
 *
 * Definitions (decided with the lead):
 * - Contact event: `session_start`, `call`, or a `message` whose `from` is missing or `'customer'`
 *   (a customer message). Agent and bot messages are not contacts.
 * - Events arrive in stream order but may be late in event time: `firstSeen`/`lastSeen` are the
 *   min/max event times, "last" values (`lastOrder*`, `region`, `sentimentLast`) belong to the
 *   latest event time (ties: the later in stream order), and windows are keyed by event time.
 *   Session tracking, the unrecognized streak and the 20-message sentiment ring follow stream order.
 * - The current session moves only with the customer's own messages and `session_start`: a bot or
 *   agent line carrying another session id does not reset the customer's unrecognized streak.
 * - Customer-local time (active hours, purchase occasions) uses the event's `tz`, else the
 *   customer's last known `tz`, else the configured default zone.
 * - Purchase occasions: orders on one customer-local day are one occasion (a split order is one
 *   purchase); the purchase cycle is the mean time between the first orders of consecutive occasions.
 * - Window "last N days" as of `now` = events with ts > now − N days. Orders are kept exactly
 *   (timestamp + amount; rare). Frequent things are counted in per-UTC-day buckets, so for them
 *   the granularity is one day: a bucket counts when its UTC day overlaps (now − N days, now],
 *   i.e. up to N + 1 calendar days. Events after `now` (already applied) count: windows only drop
 *   old events.
 * - Kept entries are pruned once they fall out of their window relative to the latest event time
 *   seen (`lastSeen`); `now` is expected to be at or after the latest event applied (the watermark
 *   or the current event), an earlier `now` may miss pruned entries.
 * - Money is summed in integer cents (amounts rounded to 0.01) so sums are exact, independent of
 *   event order, and the VIP boundary at 1000 is not blurred by float drift.
 */
import { localHour, utcOffsetMinutes } from './localTime.js';
import type { CxEvent } from './types.js';

const DAY = 86_400_000;
const SENTIMENT_RING = 20;
const NEGATIVE_SENTIMENT = -0.3;
const ORDER_WINDOW_DAYS = 365;
const CONTACT_WINDOW_DAYS = 90;
const VIEW_WINDOW_DAYS = 30;
const NEGATIVE_WINDOW_DAYS = 7;
const COMPLAINT_WINDOW_DAYS = 30;
const CHURN_DAYS = 30;
const VIP_SPEND_CENTS = 100_000;
const TOP_CATEGORIES = 3;
/** "No time yet" for the `*Ts` fields: finite, so the state survives JSON as well as msgpack. */
const NEVER = Number.MIN_SAFE_INTEGER;

/** Counts per (UTC day, key), sorted by day. */
interface KeyedDayCounts {
  d: number[];
  k: string[];
  n: number[];
}

/** Counts per UTC day, sorted by day. */
interface DayCounts {
  d: number[];
  n: number[];
}

/** Per-customer state kept in a partition worker. Plain data only (msgpack-snapshotted for checkpoints). */
export interface CustomerState {
  customer: string;
  /** Earliest / latest event time applied; null before the first event. */
  firstSeen: number | null;
  lastSeen: number | null;
  /** Region of the latest (event-time) event that had one. */
  region: string | null;
  regionTs: number;
  /** Time zone of the latest (event-time) event that had one: for timers that fire without an event. */
  tz: string | null;
  tzTs: number;
  /** Current session id: `session` of the last event (stream order) that had one. */
  session: string | null;
  unrecognizedStreak: number;
  orders: number;
  spendCents: number;
  firstOrderAt: number | null;
  lastOrderAt: number | null;
  /** Purchase occasions: customer-local days with orders. */
  occasions: number;
  /** First order of the earliest / latest occasion, and the customer-local day numbers of those occasions. */
  firstOccasionAt: number | null;
  lastOccasionAt: number | null;
  firstOccasionDay: number;
  lastOccasionDay: number;
  lastOrderId: string | null;
  lastOrderAmount: number | null;
  /** Orders of the last 365 days (relative to `lastSeen`), sorted by time, with their cents. */
  orderTs: number[];
  orderCents: number[];
  /** Lifetime histogram of customer-local hours of contact events. */
  activeHours: number[];
  /** Contact events per (day, channel) over 90 days. */
  contacts: KeyedDayCounts;
  /**
   * Latest contact time per channel (parallel arrays), the preferred-channel tie-break: a channel
   * with contacts in the window has its latest contact there too, so one time per channel suffices.
   */
  lastContactChannel: string[];
  lastContactTs: number[];
  /** Page views per (day, category) over 30 days. */
  views: KeyedDayCounts;
  /** Customer messages with sentiment < −0.3, per day, 7 days. */
  negatives: DayCounts;
  /** Complaint events per day, 30 days. */
  complaints: DayCounts;
  /**
   * Ring of the last 20 customer-message sentiments (stream order) in integer thousandths: small
   * integers pack in 1–3 bytes instead of 9 for a double. `sentimentNext` = write slot.
   */
  sentiments: number[];
  sentimentNext: number;
  sentimentLast: number | null;
  sentimentLastTs: number;
  /** Keys merged into this customer (identity stitching, docs/IDENTITY.md), sorted; absent when none. */
  aliases?: string[];
}

/** RFM scores: each 0..10; `score` = 0.4 r + 0.3 f + 0.3 m. */
export interface Rfm {
  r: number;
  f: number;
  m: number;
  score: number;
}

/** The derived profile of a customer as of an event time (docs/SCENARIOS.md "Profile"). */
export interface Profile {
  customer: string;
  /** Earliest / latest event time; 0 before the first event. */
  firstSeen: number;
  lastSeen: number;
  lastOrderAt: number | null;
  /** Order id of the latest order (its `orderId`, else its event id), for the invoice rule's payload. */
  lastOrderId: string | null;
  /** Amount of the latest order; null without orders or when that order carried no amount. */
  lastOrderAmount: number | null;
  orders: number;
  spend: number;
  orders365d: number;
  spend365d: number;
  spend90d: number;
  spend30d: number;
  /** Whole days since the latest order (never negative); null without orders. */
  recencyDays: number | null;
  rfm: Rfm;
  tier: 'VIP' | 'Regular' | 'New';
  /**
   * Mean days between consecutive purchase occasions (orders on one customer-local day are one
   * occasion): (first order of the latest occasion − first order of the earliest) / (occasions − 1);
   * null below 2 occasions.
   */
  purchaseCycleDays: number | null;
  /** Channel with most contact events in 90 days; ties go to the channel of the most recent contact. */
  preferredChannel: string | null;
  /** 24 counts: lifetime contact events per customer-local hour. */
  activeHours: number[];
  categoryViews30d: Record<string, number>;
  /** Mean of the last 20 customer-message sentiments (each kept to 0.001); null when none. */
  sentimentAvg: number | null;
  /** Sentiment of the latest (event-time) customer message that had one. */
  sentimentLast: number | null;
  negatives7d: number;
  unrecognizedStreak: number;
  complaints30d: number;
  region: string | null;
  session: string | null;
  /** Basic (`region:`, `channel:`), behaviour (`night_owl`, `likes:`), value (`tier:`, `rfm:`, `churn_risk`). */
  tags: string[];
  /** Keys merged into this customer (identity stitching), sorted; absent when none. */
  aliases?: string[];
}

/** Every field of {@link Profile}: what a rule's `profile.x` and `profile:` list may name. */
export const PROFILE_FIELDS: ReadonlySet<string> = new Set(
  Object.keys({
    customer: 0,
    firstSeen: 0,
    lastSeen: 0,
    lastOrderAt: 0,
    lastOrderId: 0,
    lastOrderAmount: 0,
    orders: 0,
    spend: 0,
    orders365d: 0,
    spend365d: 0,
    spend90d: 0,
    spend30d: 0,
    recencyDays: 0,
    rfm: 0,
    tier: 0,
    purchaseCycleDays: 0,
    preferredChannel: 0,
    activeHours: 0,
    categoryViews30d: 0,
    sentimentAvg: 0,
    sentimentLast: 0,
    negatives7d: 0,
    unrecognizedStreak: 0,
    complaints30d: 0,
    region: 0,
    session: 0,
    tags: 0,
    aliases: 0,
  } satisfies Record<keyof Profile, 0>),
);

/** A fresh state for a customer never seen before. */
export function newCustomerState(customer: string): CustomerState {
  return {
    customer,
    firstSeen: null,
    lastSeen: null,
    region: null,
    regionTs: NEVER,
    tz: null,
    tzTs: NEVER,
    session: null,
    unrecognizedStreak: 0,
    orders: 0,
    spendCents: 0,
    firstOrderAt: null,
    lastOrderAt: null,
    occasions: 0,
    firstOccasionAt: null,
    lastOccasionAt: null,
    firstOccasionDay: 0,
    lastOccasionDay: 0,
    lastOrderId: null,
    lastOrderAmount: null,
    orderTs: [],
    orderCents: [],
    activeHours: new Array<number>(24).fill(0),
    contacts: { d: [], k: [], n: [] },
    lastContactChannel: [],
    lastContactTs: [],
    views: { d: [], k: [], n: [] },
    negatives: { d: [], n: [] },
    complaints: { d: [], n: [] },
    sentiments: [],
    sentimentNext: 0,
    sentimentLast: null,
    sentimentLastTs: NEVER,
  };
}

function isCustomerMessage(e: CxEvent): boolean {
  return e.type === 'message' && (e.from === undefined || e.from === 'customer');
}

/**
 * Applies one event (stream order; event time may be late or out of order).
 * `defaultTz` is the customer-local zone for events without a `tz`, and for events whose `tz`
 * is not a known IANA zone.
 */
export function updateProfile(state: CustomerState, event: CxEvent, defaultTz: string): void {
  const ts = event.ts;
  if (state.firstSeen === null || ts < state.firstSeen) state.firstSeen = ts;
  if (state.lastSeen === null || ts > state.lastSeen) {
    state.lastSeen = ts;
    pruneWindows(state, Math.floor(ts / DAY));
  }
  const lastDay = Math.floor(state.lastSeen / DAY);
  const day = Math.floor(ts / DAY);

  if (event.region && ts >= state.regionTs) {
    state.region = event.region;
    state.regionTs = ts;
  }
  if (event.tz && ts >= state.tzTs) {
    state.tz = event.tz;
    state.tzTs = ts;
  }
  const tz = event.tz ?? state.tz ?? defaultTz;

  const type = event.type;
  const customerMessage = isCustomerMessage(event);
  // A new session starts with session_start or a customer message in another session; it clears
  // the streak. Bot and agent lines do not move the customer's session.
  if (type === 'session_start') state.unrecognizedStreak = 0;
  if ((type === 'session_start' || customerMessage) && event.session && event.session !== state.session) {
    state.session = event.session;
    state.unrecognizedStreak = 0;
  }

  if (customerMessage || type === 'session_start' || type === 'call') {
    state.activeHours[localHour(ts, tz, defaultTz)]! += 1;
    if (day >= lastDay - CONTACT_WINDOW_DAYS) {
      addKeyed(state.contacts, day, event.channel);
      noteLastContact(state, event.channel, ts);
    }
  }

  if (customerMessage) {
    state.unrecognizedStreak = event.recognized === false ? state.unrecognizedStreak + 1 : 0;
    const s = event.sentiment;
    if (typeof s === 'number' && Number.isFinite(s)) {
      state.sentiments[state.sentimentNext] = Math.round(s * 1000);
      state.sentimentNext = (state.sentimentNext + 1) % SENTIMENT_RING;
      if (ts >= state.sentimentLastTs) {
        state.sentimentLast = s;
        state.sentimentLastTs = ts;
      }
      if (s < NEGATIVE_SENTIMENT && day >= lastDay - NEGATIVE_WINDOW_DAYS) addDay(state.negatives, day);
    }
  } else if (type === 'order') {
    applyOrder(state, event, utcOffsetMinutes(ts, tz, defaultTz) * 60_000);
  } else if (type === 'page_view') {
    if (event.category && day >= lastDay - VIEW_WINDOW_DAYS) addKeyed(state.views, day, event.category);
  } else if (type === 'complaint') {
    if (day >= lastDay - COMPLAINT_WINDOW_DAYS) addDay(state.complaints, day);
  }
}

/** Applies an order; `offsetMs` is the customer's UTC offset at its time (for its local day). */
function applyOrder(state: CustomerState, event: CxEvent, offsetMs: number): void {
  const ts = event.ts;
  noteOccasion(state, ts, offsetMs);
  const amount = typeof event.amount === 'number' && Number.isFinite(event.amount) ? event.amount : null;
  const cents = amount === null ? 0 : Math.round(amount * 100);
  state.orders += 1;
  state.spendCents += cents;
  if (state.firstOrderAt === null || ts < state.firstOrderAt) state.firstOrderAt = ts;
  if (state.lastOrderAt === null || ts >= state.lastOrderAt) {
    state.lastOrderAt = ts;
    state.lastOrderId = typeof event.orderId === 'string' && event.orderId ? event.orderId : event.id;
    state.lastOrderAmount = amount;
  }
  // Kept for the rolling sums unless already beyond the order window (lifetime sums still count it).
  if (ts > state.lastSeen! - ORDER_WINDOW_DAYS * DAY) {
    let i = state.orderTs.length;
    while (i > 0 && state.orderTs[i - 1]! > ts) i--;
    state.orderTs.splice(i, 0, ts);
    state.orderCents.splice(i, 0, cents);
  }
}

/**
 * Counts the order's purchase occasion (its customer-local day). Orders arrive in time order
 * nearly always; one on a day between the first and the latest occasion is a new occasion unless
 * another order of the last 365 days falls on that day.
 */
function noteOccasion(state: CustomerState, ts: number, offsetMs: number): void {
  const day = Math.floor((ts + offsetMs) / DAY);
  if (state.occasions === 0) {
    state.occasions = 1;
    state.firstOccasionAt = ts;
    state.lastOccasionAt = ts;
    state.firstOccasionDay = day;
    state.lastOccasionDay = day;
    return;
  }
  if (day === state.lastOccasionDay) {
    if (ts < state.lastOccasionAt!) state.lastOccasionAt = ts;
    if (day === state.firstOccasionDay && ts < state.firstOccasionAt!) state.firstOccasionAt = ts;
  } else if (day === state.firstOccasionDay) {
    if (ts < state.firstOccasionAt!) state.firstOccasionAt = ts;
  } else if (day > state.lastOccasionDay) {
    state.occasions++;
    state.lastOccasionDay = day;
    state.lastOccasionAt = ts;
  } else if (day < state.firstOccasionDay) {
    state.occasions++;
    state.firstOccasionDay = day;
    state.firstOccasionAt = ts;
  } else {
    if (!state.orderTs.some((t) => Math.floor((t + offsetMs) / DAY) === day)) state.occasions++;
  }
}

/** Mean time between purchase occasions (ms), or null below two occasions. */
export function purchaseCycleMs(state: Readonly<CustomerState>): number | null {
  if (state.occasions < 2 || state.firstOccasionAt === null || state.lastOccasionAt === null) return null;
  return (state.lastOccasionAt - state.firstOccasionAt) / (state.occasions - 1);
}

/**
 * Drops what no window can need any more, relative to the UTC day of the latest event (`lastDay`,
 * the UTC day of `lastSeen`). Exported for operators/mergeCustomers.ts, which prunes a merged state
 * the same way.
 */
export function pruneWindows(state: CustomerState, lastDay: number): void {
  const orderCut = state.lastSeen! - ORDER_WINDOW_DAYS * DAY;
  let i = 0;
  while (i < state.orderTs.length && state.orderTs[i]! <= orderCut) i++;
  if (i > 0) {
    state.orderTs.splice(0, i);
    state.orderCents.splice(0, i);
  }
  pruneDays(state.contacts, lastDay - CONTACT_WINDOW_DAYS);
  const contactCut = (lastDay - CONTACT_WINDOW_DAYS) * DAY;
  for (let c = state.lastContactTs.length - 1; c >= 0; c--) {
    if (state.lastContactTs[c]! < contactCut) {
      state.lastContactTs.splice(c, 1);
      state.lastContactChannel.splice(c, 1);
    }
  }
  pruneDays(state.views, lastDay - VIEW_WINDOW_DAYS);
  pruneDays(state.negatives, lastDay - NEGATIVE_WINDOW_DAYS);
  pruneDays(state.complaints, lastDay - COMPLAINT_WINDOW_DAYS);
}

/** Removes entries of days before `firstDay` (an N-day window as of day L reads days L − N .. L). */
function pruneDays(b: KeyedDayCounts | DayCounts, firstDay: number): void {
  let i = 0;
  while (i < b.d.length && b.d[i]! < firstDay) i++;
  if (i === 0) return;
  b.d.splice(0, i);
  b.n.splice(0, i);
  if ('k' in b) {
    b.k.splice(0, i);
  }
}

function addKeyed(b: KeyedDayCounts, day: number, key: string): void {
  let i = b.d.length;
  // Recent days sit at the end: an in-order event finds its entry (or its slot) at once.
  while (i > 0 && b.d[i - 1]! >= day) {
    i--;
    if (b.d[i] === day && b.k[i] === key) {
      b.n[i]! += 1;
      return;
    }
  }
  b.d.splice(i, 0, day);
  b.k.splice(i, 0, key);
  b.n.splice(i, 0, 1);
}

function noteLastContact(state: CustomerState, channel: string, ts: number): void {
  const i = state.lastContactChannel.indexOf(channel);
  if (i < 0) {
    state.lastContactChannel.push(channel);
    state.lastContactTs.push(ts);
  } else if (ts > state.lastContactTs[i]!) {
    state.lastContactTs[i] = ts;
  }
}

function addDay(b: DayCounts, day: number): void {
  let i = b.d.length;
  while (i > 0 && b.d[i - 1]! >= day) {
    i--;
    if (b.d[i] === day) {
      b.n[i]! += 1;
      return;
    }
  }
  b.d.splice(i, 0, day);
  b.n.splice(i, 0, 1);
}

/** Sum of day buckets overlapping (now − days, now]: days from floor(now/day) − days on. */
function sumDays(b: DayCounts, now: number, days: number): number {
  const from = Math.floor(now / DAY) - days;
  let sum = 0;
  for (let i = b.d.length - 1; i >= 0 && b.d[i]! >= from; i--) sum += b.n[i]!;
  return sum;
}

/** Sets `obj[key]` as an own data property, even for a key like `__proto__` taken from an event. */
function setOwn(obj: Record<string, number>, key: string, value: number): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** The derived profile as of `now` (epoch ms, event time): rolling windows are relative to `now`. */
export function profileOf(state: CustomerState, now: number): Profile {
  let orders365d = 0;
  let cents365 = 0;
  let cents90 = 0;
  let cents30 = 0;
  const cut365 = now - 365 * DAY;
  const cut90 = now - 90 * DAY;
  const cut30 = now - 30 * DAY;
  for (let i = state.orderTs.length - 1; i >= 0; i--) {
    const ts = state.orderTs[i]!;
    if (ts <= cut365) break;
    const c = state.orderCents[i]!;
    orders365d++;
    cents365 += c;
    if (ts > cut90) cents90 += c;
    if (ts > cut30) cents30 += c;
  }

  const lastOrderAt = state.lastOrderAt;
  const recencyDays = lastOrderAt === null ? null : Math.max(0, Math.floor((now - lastOrderAt) / DAY));
  const r = recencyDays === null ? 0 : Math.max(0, 10 - Math.floor(recencyDays / 7));
  const f = Math.min(10, Math.floor(orders365d / 5));
  const m = Math.min(10, Math.floor(cents365 / VIP_SPEND_CENTS));
  // Integer numerator, one division: 0.4 r + 0.3 f + 0.3 m without float drift at the bands.
  const scoreTenths = 4 * r + 3 * f + 3 * m;
  const tier = state.spendCents >= VIP_SPEND_CENTS ? 'VIP' : state.orders >= 1 ? 'Regular' : 'New';

  const cycle = purchaseCycleMs(state);
  const purchaseCycleDays = cycle === null ? null : cycle / DAY;

  const preferredChannel = preferredChannelOf(state, now);
  const categoryViews30d = viewsOf(state.views, now);

  let sentimentAvg: number | null = null;
  if (state.sentiments.length > 0) {
    let sum = 0;
    for (const s of state.sentiments) sum += s;
    sentimentAvg = sum / state.sentiments.length / 1000;
  }

  const lastSeen = state.lastSeen ?? 0;
  const tags: string[] = [];
  if (state.region !== null) tags.push(`region:${state.region}`);
  if (preferredChannel !== null) tags.push(`channel:${preferredChannel}`);
  if (isNightOwl(state.activeHours)) tags.push('night_owl');
  for (const c of topCategories(categoryViews30d)) tags.push(`likes:${c}`);
  tags.push(`tier:${tier}`);
  tags.push(`rfm:${scoreTenths >= 70 ? 'high' : scoreTenths >= 40 ? 'mid' : 'low'}`);
  if (state.lastSeen !== null && now - lastSeen >= CHURN_DAYS * DAY) tags.push('churn_risk');

  return {
    customer: state.customer,
    firstSeen: state.firstSeen ?? 0,
    lastSeen,
    lastOrderAt,
    lastOrderId: state.lastOrderId,
    lastOrderAmount: state.lastOrderAmount,
    orders: state.orders,
    spend: state.spendCents / 100,
    orders365d,
    spend365d: cents365 / 100,
    spend90d: cents90 / 100,
    spend30d: cents30 / 100,
    recencyDays,
    rfm: { r, f, m, score: scoreTenths / 10 },
    tier,
    purchaseCycleDays,
    preferredChannel,
    activeHours: state.activeHours.slice(),
    categoryViews30d,
    sentimentAvg,
    sentimentLast: state.sentimentLast,
    negatives7d: sumDays(state.negatives, now, NEGATIVE_WINDOW_DAYS),
    unrecognizedStreak: state.unrecognizedStreak,
    complaints30d: sumDays(state.complaints, now, COMPLAINT_WINDOW_DAYS),
    region: state.region,
    session: state.session,
    tags,
    ...(state.aliases !== undefined && { aliases: state.aliases.slice() }),
  };
}

// Scratch for preferredChannelOf: a customer has a handful of channels, so parallel arrays scanned
// linearly beat a Map allocated per call (profileOf runs for most events).
const channelKeys: string[] = [];
const channelCounts: number[] = [];

function preferredChannelOf(state: CustomerState, now: number): string | null {
  const b = state.contacts;
  const from = Math.floor(now / DAY) - CONTACT_WINDOW_DAYS;
  channelKeys.length = 0;
  channelCounts.length = 0;
  for (let i = b.d.length - 1; i >= 0 && b.d[i]! >= from; i--) {
    const k = b.k[i]!;
    const at = channelKeys.indexOf(k);
    if (at < 0) {
      channelKeys.push(k);
      channelCounts.push(b.n[i]!);
    } else channelCounts[at]! += b.n[i]!;
  }
  let best: string | null = null;
  let bestN = 0;
  let bestT = 0;
  for (let c = 0; c < channelKeys.length; c++) {
    const k = channelKeys[c]!;
    const n = channelCounts[c]!;
    const t = state.lastContactTs[state.lastContactChannel.indexOf(k)] ?? 0;
    if (n > bestN || (n === bestN && (t > bestT || (t === bestT && best !== null && k < best)))) {
      best = k;
      bestN = n;
      bestT = t;
    }
  }
  return best;
}

function viewsOf(b: KeyedDayCounts, now: number): Record<string, number> {
  const from = Math.floor(now / DAY) - VIEW_WINDOW_DAYS;
  const views: Record<string, number> = {};
  for (let i = 0; i < b.d.length; i++) {
    if (b.d[i]! < from) continue;
    const k = b.k[i]!;
    setOwn(views, k, (Object.hasOwn(views, k) ? views[k]! : 0) + b.n[i]!);
  }
  return views;
}

/** More than half of all contact events between 22:00 and 08:00 customer-local. */
function isNightOwl(hours: number[]): boolean {
  let total = 0;
  let night = 0;
  for (let h = 0; h < 24; h++) {
    const n = hours[h]!;
    total += n;
    if (h >= 22 || h < 8) night += n;
  }
  return night * 2 > total;
}

/** Up to three categories with the most views (at least one), ties by name. */
function topCategories(views: Record<string, number>): string[] {
  // Insertion into a list of at most three: no key array, filter or sort per call.
  const top: string[] = [];
  for (const k in views) {
    if (!Object.hasOwn(views, k)) continue;
    const n = views[k]!;
    if (!(n >= 1)) continue;
    let i = top.length;
    while (i > 0 && ranksBefore(k, n, top[i - 1]!, views[top[i - 1]!]!)) i--;
    if (i < TOP_CATEGORIES) {
      top.splice(i, 0, k);
      if (top.length > TOP_CATEGORIES) top.pop();
    }
  }
  return top;
}

/** More views first, then by name. */
function ranksBefore(a: string, an: number, b: string, bn: number): boolean {
  return an > bn || (an === bn && a < b);
}
