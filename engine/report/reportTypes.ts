/**
 * What `cxstream report` shows: the rows it reads from the analyst views (sinks/views.ts), as
 * plain data. Shared by the report builder (Node) and the chart script (browser), so this file
 * imports nothing.
 */

/** A row of the `funnel` view. */
export interface FunnelViewRow {
  dimension: string;
  key: string;
  consulted: number;
  added_to_cart: number;
  ordered: number;
  cart_pct: number;
  cart_to_order_pct: number | null;
  conversion_pct: number;
}

/** A row of the `script_ranking` view. */
export interface ScriptRankingRow {
  rank: number;
  variant: string;
  customers: number;
  added_to_cart: number;
  ordered: number;
  conversion_pct: number;
  conversion_low_pct: number;
}

/** A row of the `trigger_response` view. */
export interface TriggerResponseRow {
  rule: string;
  customers: number;
  triggers: number;
  ordered_within_7d: number;
  response_pct: number;
  ordered_7d_before: number;
  before_pct: number;
  lift_pts: number;
}

/** Complaints of a region in one hour of the day (the report's time zone), summed over the range. */
export interface ComplaintCell {
  region: string;
  hour: number;
  complaints: number;
}

/** Contact events in one customer-local hour of the day on one channel, summed over the range. */
export interface StaffingCell {
  local_hour: number;
  channel: string;
  contacts: number;
}

/** A row of the `service_quality` view. */
export interface ServiceQualityRow {
  agent: string;
  channel: string;
  sessions: number;
  avg_handle_min: number;
  with_ticket: number;
  resolved: number;
  resolution_pct: number | null;
  avg_sentiment: number | null;
}

/** A row of the `top_intents` view. */
export interface TopIntentRow {
  sku: string;
  intent: string;
  mentions: number;
  customers: number;
  share_pct: number;
  rank: number;
}

/** Everything one report shows. */
export interface ReportData {
  /** First and last day of the range (UTC, inclusive), YYYY-MM-DD. */
  from: string;
  to: string;
  /** Days in the range. */
  days: number;
  /** When the report was made (ISO 8601). */
  generatedAt: string;
  /** Where the data came from (store or server). */
  source: string;
  /** Zone of the complaint hours (customer-local hours need no zone: they are stored). */
  tz: string;
  totals: { events: number; customers: number; orders: number; revenue: number; triggers: number };
  funnel: FunnelViewRow[];
  scripts: ScriptRankingRow[];
  triggerResponse: TriggerResponseRow[];
  complaints: ComplaintCell[];
  staffing: StaffingCell[];
  service: ServiceQualityRow[];
  intents: TopIntentRow[];
}
