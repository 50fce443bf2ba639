/**
 * The numbers of `cxstream report`, read from the analyst views (sinks/views.ts) over a range of
 * UTC days: every chart and table of the report comes from one of these queries.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { DEFAULT_DATABASE, quoteIdentifier } from '../../sinks/clickhouse.js';
import { checkDate } from '../../sinks/funnel.js';
import type {
  ComplaintCell,
  FunnelViewRow,
  ReportData,
  ScriptRankingRow,
  ServiceQualityRow,
  StaffingCell,
  TopIntentRow,
  TriggerResponseRow,
} from './reportTypes.js';

/** Options of {@link collectReport}. */
export interface ReportOptions {
  /** First day (UTC, inclusive), YYYY-MM-DD. @default the day of the first stored event */
  from?: string;
  /** Last day (UTC, inclusive), YYYY-MM-DD. @default the day of the last stored event */
  to?: string;
  /** @default 'cxstream' */
  database?: string;
  /** Zone of the complaint heatmap's hours. @default 'Asia/Shanghai' */
  tz?: string;
  /** Where the data comes from, shown in the report. */
  source: string;
  /** @default new Date() */
  now?: Date;
}

/** Service-quality rows shown (the agents and channels with the most sessions). */
const SERVICE_ROWS = 15;
/** Products shown in the top-intent table (most mentioned first), and intents per product. */
const INTENT_SKUS = 10;
const INTENTS_PER_SKU = 3;

type Row = Record<string, unknown>;

/** Reads every section of the report; an empty range gives zero totals and empty sections. */
export async function collectReport(client: ClickHouseClient, options: ReportOptions): Promise<ReportData> {
  const db = quoteIdentifier(options.database ?? DEFAULT_DATABASE);
  const tz = options.tz ?? 'Asia/Shanghai';
  const now = options.now ?? new Date();
  const read = async (query: string, params: Record<string, string> = {}): Promise<Row[]> =>
    (await client.query({ query, format: 'JSONEachRow', query_params: params })).json<Row>();

  let { from, to } = options;
  if (from !== undefined) checkDate('report --from', from);
  if (to !== undefined) checkDate('report --to', to);
  if (from === undefined || to === undefined) {
    const [span] = await read(
      `SELECT count() AS n, toString(toDate(min(ts), 'UTC')) AS first, toString(toDate(max(ts), 'UTC')) AS last FROM ${db}.events`,
    );
    const today = now.toISOString().slice(0, 10);
    const stored = num(span?.n) > 0;
    from ??= stored ? String(span!.first) : today;
    to ??= stored ? String(span!.last) : today;
  }
  if (from > to) throw new RangeError(`report --from ${from} is after --to ${to}`);
  const range = { from, to };
  const view = (name: string) => `${db}.${name}(from_date = {from:Date}, to_date = {to:Date})`;
  const inRange = `ts >= toDateTime64({from:Date}, 3, 'UTC') AND ts < toDateTime64({to:Date} + 1, 3, 'UTC')`;

  const [totals, triggers, funnel, scripts, response, complaints, staffing, service, intents] =
    await Promise.all([
      read(
        `SELECT count() AS events, uniqExact(customer) AS customers, countIf(type = 'order') AS orders,
         sumIf(amount, type = 'order') AS revenue
       FROM ${db}.events FINAL WHERE ${inRange}`,
        range,
      ),
      read(
        `SELECT count() AS n FROM ${db}.triggers FINAL
       WHERE event_time >= toDateTime64({from:Date}, 3, 'UTC') AND event_time < toDateTime64({to:Date} + 1, 3, 'UTC')`,
        range,
      ),
      read(`SELECT * FROM ${view('funnel')} ORDER BY dimension, consulted DESC, key`, range),
      read(`SELECT * FROM ${view('script_ranking')} ORDER BY rank`, range),
      read(
        `SELECT * FROM ${view('trigger_response')} ORDER BY response_pct DESC, customers DESC, rule`,
        range,
      ),
      read(
        // Aliases differ from the columns: ClickHouse would read an alias "hour" in the WHERE clause.
        `SELECT region, toHour(hour, {tz:String}) AS hour_of_day, sum(complaints) AS n
       FROM ${db}.complaint_hotspots
       WHERE hour >= toDateTime({from:Date}, 'UTC') AND hour < toDateTime({to:Date} + 1, 'UTC')
       GROUP BY region, hour_of_day ORDER BY region, hour_of_day`,
        { ...range, tz },
      ),
      read(
        `SELECT local_hour, channel, sum(contacts) AS n FROM ${db}.staffing_load
       WHERE day >= {from:Date} AND day <= {to:Date}
       GROUP BY local_hour, channel ORDER BY local_hour, channel`,
        range,
      ),
      read(
        `SELECT * FROM ${view('service_quality')} ORDER BY sessions DESC, agent, channel LIMIT ${SERVICE_ROWS}`,
        range,
      ),
      read(`SELECT * FROM ${view('top_intents')} WHERE rank <= ${INTENTS_PER_SKU} ORDER BY sku, rank`, range),
    ]);
  const t = totals[0] ?? {};
  return {
    from,
    to,
    days: Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000) + 1,
    generatedAt: now.toISOString(),
    source: options.source,
    tz,
    totals: {
      events: num(t.events),
      customers: num(t.customers),
      orders: num(t.orders),
      revenue: num(t.revenue),
      triggers: num(triggers[0]?.n),
    },
    funnel: funnel.map(funnelRow),
    scripts: scripts.map(scriptRow),
    triggerResponse: response.map(responseRow),
    complaints: complaints.map(
      (r): ComplaintCell => ({ region: str(r.region), hour: num(r.hour_of_day), complaints: num(r.n) }),
    ),
    staffing: staffing.map(
      (r): StaffingCell => ({ local_hour: num(r.local_hour), channel: str(r.channel), contacts: num(r.n) }),
    ),
    service: service.map(serviceRow),
    intents: topSkus(intents.map(intentRow)),
  };
}

/** The intents of the {@link INTENT_SKUS} most mentioned products, most mentioned product first. */
function topSkus(rows: TopIntentRow[]): TopIntentRow[] {
  const total = new Map<string, number>();
  for (const r of rows) total.set(r.sku, (total.get(r.sku) ?? 0) + r.mentions);
  const skus = [...total].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, INTENT_SKUS);
  return skus.flatMap(([sku]) => rows.filter((r) => r.sku === sku));
}

// ClickHouse answers 64-bit integers as JSON numbers or strings depending on the server's
// output_format_json_quote_64bit_integers: every number goes through num().
function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

/**
 * A row of a view (`SELECT *`) as `T`: the `text` columns as strings, the `nullable` ones as
 * numbers or null, every other column as a number (the views' columns are tested against `T` in
 * test/integration/report.test.ts).
 */
function rowOf<T>(
  r: Row,
  text: ReadonlyArray<keyof T & string>,
  nullable: ReadonlyArray<keyof T & string> = [],
): T {
  const out: Row = {};
  for (const [column, v] of Object.entries(r)) {
    if (text.includes(column as keyof T & string)) out[column] = str(v);
    else if (nullable.includes(column as keyof T & string)) out[column] = v === null ? null : num(v);
    else out[column] = num(v);
  }
  return out as T;
}

const funnelRow = (r: Row) => rowOf<FunnelViewRow>(r, ['dimension', 'key'], ['cart_to_order_pct']);
const scriptRow = (r: Row) => rowOf<ScriptRankingRow>(r, ['variant']);
const responseRow = (r: Row) => rowOf<TriggerResponseRow>(r, ['rule']);
const serviceRow = (r: Row) =>
  rowOf<ServiceQualityRow>(r, ['agent', 'channel'], ['resolution_pct', 'avg_sentiment']);
const intentRow = (r: Row) => rowOf<TopIntentRow>(r, ['sku', 'intent']);
