/**
 * Domain types shared by the operators (pure logic), the engine (runtime) and the sinks.
 * Everything here is plain data: it crosses worker threads by structured clone and is
 * encoded as JSON for NATS and ClickHouse.
 */

/** A validated interaction event (the envelope of docs/CONTRACT.md "Events"); unknown fields are kept. */
export interface CxEvent {
  /** Unique per event; used for de-duplication and deterministic trigger ids. */
  id: string;
  /** Event time, epoch milliseconds. */
  ts: number;
  /** Customer key; equals the last token of the subject it was published on. */
  customer: string;
  /** `message`, `page_view`, `add_to_cart`, `order`, `call`, `session_start`, ... (open set). */
  type: string;
  /** `web`, `app`, `miniprogram`, `wechat`, `douyin`, `phone`, `email`, ... */
  channel: string;
  /** Who sent a `message`: the customer (the default), an `agent` or the `bot`. */
  from?: string;
  region?: string;
  /** IANA time zone of the customer, e.g. `Asia/Shanghai`. */
  tz?: string;
  session?: string;
  agent?: string;
  /** A/B script id. */
  variant?: string;
  /** Traffic source (campaign, search, ad, ...). */
  source?: string;
  /** Order value (type `order`). */
  amount?: number;
  /** Order id (type `order`); the event id stands in when missing. */
  orderId?: string;
  sku?: string;
  category?: string;
  text?: string;
  intent?: string;
  /** -1 (negative) .. 1 (positive). */
  sentiment?: number;
  /** Whether the bot understood a customer message. */
  recognized?: boolean;
  /** Ticket status (type `ticket`), e.g. `open`, `resolved`. */
  status?: string;
  /** Ticket id (type `ticket`): links a ticket opened in a session to its later resolution. */
  ticketId?: string;
  /** Rating score (type `rating`), 1..5. */
  score?: number;
  /** Other identifiers of the same customer (phone hash, wechat openid, cookie, app user id). */
  ids?: Record<string, string>;
  [extra: string]: unknown;
}

/**
 * Event types the engine and the default rules know. The set is open (a rule may name any type),
 * but a rule naming a type a letter or two from one of these is taken for a typo.
 */
export const EVENT_TYPES: ReadonlySet<string> = new Set([
  'message',
  'page_view',
  'add_to_cart',
  'order',
  'call',
  'session_start',
  'session_end',
  'rating',
  'complaint',
  'login',
  'ticket',
]);

/** Fields of {@link CxEvent} (and `localHour`, which the engine adds before rules run). */
export const EVENT_FIELDS: ReadonlySet<string> = new Set(
  Object.keys({
    id: 0,
    ts: 0,
    customer: 0,
    type: 0,
    channel: 0,
    from: 0,
    region: 0,
    tz: 0,
    session: 0,
    agent: 0,
    variant: 0,
    source: 0,
    amount: 0,
    orderId: 0,
    sku: 0,
    category: 0,
    text: 0,
    intent: 0,
    sentiment: 0,
    recognized: 0,
    status: 0,
    score: 0,
    ids: 0,
    localHour: 0,
  }),
);

/** A trigger as published on `cx.triggers.<rule>` (docs/CONTRACT.md "Triggers"). */
export interface Trigger {
  /** Deterministic: rule + customer + the event (or timer) that fired it. */
  id: string;
  rule: string;
  customer: string;
  /** When the engine fired it (ms). */
  firedAt: number;
  /** Event time of the event (or the due time of the timer) that fired it (ms). */
  eventTime: number;
  reason: string;
  /** Rule priority + the customer's `rfm.score`: dialers call higher first. */
  priority: number;
  payload: Record<string, unknown>;
  /** The profile fields the rule names. */
  profile: Record<string, unknown>;
  /** Output subject, `cx.triggers.<rule>` unless the rule names another. */
  subject: string;
}

/** Where a row came from in the input stream; makes repeated inserts collapse. */
export interface SourcePosition {
  partition: number;
  seq: number;
}

/** One row of `cxstream.events` (text already PII-masked). */
export interface EventRow extends SourcePosition {
  id: string;
  ts: number;
  customer: string;
  type: string;
  channel: string;
  from: string;
  region: string;
  tz: string;
  session: string;
  agent: string;
  variant: string;
  source: string;
  amount: number | null;
  sku: string;
  category: string;
  intent: string;
  sentiment: number | null;
  recognized: boolean | null;
  status: string;
  score: number | null;
  text: string;
  /**
   * Customer-local hour (0–23) of `ts` in the event's `tz` (else the default zone): ClickHouse's
   * `toHour` takes one constant zone per call, so a per-event local hour must be stored.
   */
  local_hour: number;
  /** The event's `ticketId` (type `ticket`), '' without one. */
  ticket_id: string;
}

/** One row of `cxstream.profiles`: a published profile snapshot. */
export interface ProfileRow {
  customer: string;
  updated_at: number;
  tier: string;
  rfm_score: number;
  spend: number;
  orders: number;
  tags: string[];
  /** The whole profile as JSON text. */
  profile: string;
}

/** An event that could not be processed: it goes to the dead-letter subject and is acked. */
export interface Reject {
  /** Stream sequence of the message. */
  seq: number;
  subject: string;
  /** Original bytes of the message. */
  data: Uint8Array;
  /** Why it was rejected (becomes header `Cx-Error`). */
  reason: string;
}
