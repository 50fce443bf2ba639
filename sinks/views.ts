/**
 * The analyst views of the `cxstream` database, created (or replaced) by `ensureSchema` on every
 * start, so a new version's definitions take effect without a migration. docs/CLICKHOUSE.md
 * documents each one; test/integration/views.test.ts checks each against hand-computed numbers.
 *
 * Views over a date range are parameterized (`SELECT * FROM cxstream.funnel(from_date =
 * '2024-01-01', to_date = '2024-01-31')`): both days are UTC and inclusive, like `cxstream funnel`.
 * Views that are series over time (hotspots, staffing) are plain, with a time column to filter on
 * (what Grafana's time filter needs). Every view reads its tables with FINAL: rows inserted twice
 * after a crash count once.
 */

/** Names of the views, in creation order (a view may read one created before it). */
export const VIEW_NAMES = [
  'funnel',
  'script_ranking',
  'trigger_response',
  'complaint_hotspots',
  'staffing_load',
  'service_quality',
  'top_intents',
  'category_interest',
] as const;

/** One of the shipped views. */
export type ViewName = (typeof VIEW_NAMES)[number];

/**
 * A contact event: the customer reached out (`session_start`, `call`, or a `message` from the
 * customer: `from` empty or `customer`). Step 1 of the funnel and the unit of staffing load.
 */
export const IS_CONTACT =
  "type IN ('session_start', 'call') OR (type = 'message' AND `from` IN ('', 'customer'))";

/** Funnel steps are chained within 7 days of the contact (ms; windowFunnel gets millisecond times). */
export const FUNNEL_WINDOW_MS = 7 * 24 * 3600 * 1000;

/** `column` within the view's `from_date` ..= `to_date` (UTC days). */
function inRange(column: string): string {
  return `${column} >= toDateTime64({from_date:Date}, 3, 'UTC') AND ${column} < toDateTime64({to_date:Date} + 1, 3, 'UTC')`;
}

/** 95 % Wilson score lower bound of the proportion `hits / n` (0 when n = 0). */
function wilsonLow(hits: string, n: string): string {
  const z2 = 1.96 * 1.96;
  return `if(${n} = 0, 0, ((${hits} / ${n}) + ${z2} / (2 * ${n}) - 1.96 * sqrt((${hits} / ${n}) * (1 - ${hits} / ${n}) / ${n} + ${z2} / (4 * ${n} * ${n}))) / (1 + ${z2} / ${n}))`;
}

/**
 * `CREATE OR REPLACE VIEW` statements of every view, for the database `db` (already quoted);
 * `onCluster` (`ON CLUSTER name`, or '') is put after the view's name. On a cluster the views read
 * the Distributed tables, which carry the single-server names.
 */
export function viewStatements(db: string, onCluster = ''): string[] {
  const bodies: Record<ViewName, string> = {
    // Per customer: the furthest funnel step reached, and the keys they are attributed to. Channel
    // and script variant are those of the first contact event in the range (the touch the funnel
    // starts from); the traffic source is the first non-empty `source` of any of their events in
    // the range (first touch: sources sit on page views and session starts, rarely on messages).
    funnel: `
      SELECT
        d.1 AS dimension,
        if(d.2 = '', '(none)', d.2) AS key,
        countIf(level >= 1) AS consulted,
        countIf(level >= 2) AS added_to_cart,
        countIf(level >= 3) AS ordered,
        round(100 * added_to_cart / consulted, 1) AS cart_pct,
        if(added_to_cart = 0, NULL, round(100 * ordered / added_to_cart, 1)) AS cart_to_order_pct,
        round(100 * ordered / consulted, 1) AS conversion_pct
      FROM (
        SELECT
          customer,
          windowFunnel(${FUNNEL_WINDOW_MS})(
            toUInt64(toUnixTimestamp64Milli(ts)), is_contact, type = 'add_to_cart', type = 'order'
          ) AS level,
          toString(argMinIf(channel, ts, is_contact)) AS first_channel,
          toString(argMinIf(variant, ts, is_contact)) AS first_variant,
          toString(argMinIf(source, ts, source != '')) AS first_source
        FROM (
          SELECT customer, ts, type, channel, variant, source, ${IS_CONTACT} AS is_contact
          FROM ${db}.events FINAL
          WHERE ${inRange('ts')}
        )
        GROUP BY customer
        HAVING level >= 1
      )
      ARRAY JOIN [('all', 'all'), ('channel', first_channel), ('source', first_source), ('variant', first_variant)] AS d
      GROUP BY dimension, key`,

    // The funnel by variant, ranked by the lower bound of a 95 % interval of its conversion rather
    // than by the rate itself: 3 orders of 5 customers should not outrank 250 of 500.
    script_ranking: `
      SELECT
        toUInt32(row_number() OVER (ORDER BY conversion_low_pct DESC, customers DESC, variant ASC)) AS rank,
        variant, customers, added_to_cart, ordered, conversion_pct, conversion_low_pct
      FROM (
        SELECT key AS variant, consulted AS customers, added_to_cart, ordered, conversion_pct,
          round(100 * ${wilsonLow('ordered', 'consulted')}, 1) AS conversion_low_pct
        FROM ${db}.funnel(from_date = {from_date:Date}, to_date = {to_date:Date})
        WHERE dimension = 'variant' AND key != '(none)'
      )`,

    // Per rule, the customers it fired for in the range, from their first such trigger (event
    // time): who ordered within 7 days after it, against who had ordered in the 7 days before it.
    // Orders are not limited to the range: a response on the day after to_date still counts.
    trigger_response: `
      SELECT
        rule,
        count() AS customers,
        sum(fired) AS triggers,
        countIf(after > 0) AS ordered_within_7d,
        round(100 * ordered_within_7d / customers, 1) AS response_pct,
        countIf(before > 0) AS ordered_7d_before,
        round(100 * ordered_7d_before / customers, 1) AS before_pct,
        round(response_pct - before_pct, 1) AS lift_pts
      FROM (
        SELECT t.rule AS rule, t.customer AS customer, any(t.fired) AS fired,
          countIf(o.customer != '' AND o.ts > t.first_at AND o.ts <= t.first_at + INTERVAL 7 DAY) AS after,
          countIf(o.customer != '' AND o.ts >= t.first_at - INTERVAL 7 DAY AND o.ts < t.first_at) AS before
        FROM (
          SELECT toString(rule) AS rule, customer, count() AS fired, min(event_time) AS first_at
          FROM ${db}.triggers FINAL
          WHERE ${inRange('event_time')}
          GROUP BY rule, customer
        ) AS t
        LEFT JOIN (SELECT customer, ts FROM ${db}.events FINAL WHERE type = 'order') AS o
          ON o.customer = t.customer
        GROUP BY t.rule, t.customer
      )
      GROUP BY rule`,

    // Complaints per region and UTC hour; filter on \`hour\` (Grafana: $__timeFilter(hour)).
    complaint_hotspots: `
      SELECT
        if(region = '', '(none)', toString(region)) AS region,
        toStartOfHour(toDateTime(ts, 'UTC')) AS hour,
        count() AS complaints,
        uniqExact(customer) AS customers
      FROM ${db}.events FINAL
      WHERE type = 'complaint'
      GROUP BY region, hour`,

    // Contact events per customer-local hour of day × channel × region, per UTC day.
    staffing_load: `
      SELECT
        toDate(ts, 'UTC') AS day,
        local_hour,
        toString(channel) AS channel,
        if(region = '', '(none)', toString(region)) AS region,
        count() AS contacts,
        uniqExact(customer) AS customers
      FROM ${db}.events FINAL
      WHERE ${IS_CONTACT}
      GROUP BY day, local_hour, channel, region`,

    // Sessions that started in the range and ended (session_start and session_end with the same
    // customer and session). The agent is the last agent seen in the session ('(bot)' if none).
    // A session is "with ticket" when it opened one (a ticket event with a ticket_id and a status
    // other than 'resolved') or carries a resolved ticket event; it is resolved when it carries a
    // resolved ticket event, or every ticket it opened has one (same ticket_id, any time later).
    service_quality: `
      SELECT
        s.session_agent AS agent,
        s.session_channel AS channel,
        count() AS sessions,
        round(avg(s.handle_ms) / 60000, 1) AS avg_handle_min,
        countIf(notEmpty(s.tickets) OR s.resolved_here) AS with_ticket,
        countIf(s.resolved_here OR (notEmpty(s.tickets) AND hasAll(r.resolved_ids, s.tickets))) AS resolved,
        if(with_ticket = 0, NULL, round(100 * resolved / with_ticket, 1)) AS resolution_pct,
        round(avg(s.sentiment_avg), 2) AS avg_sentiment
      FROM (
        SELECT customer, session,
          if(last_agent = '', '(bot)', last_agent) AS session_agent,
          toString(argMinIf(channel, ts, type = 'session_start')) AS session_channel,
          dateDiff('millisecond', minIf(ts, type = 'session_start'), maxIf(ts, type = 'session_end')) AS handle_ms,
          avgIf(sentiment, type = 'message' AND \`from\` IN ('', 'customer') AND sentiment IS NOT NULL) AS sentiment_avg,
          countIf(type = 'ticket' AND status = 'resolved') > 0 AS resolved_here,
          groupUniqArrayIf(ticket_id, type = 'ticket' AND ticket_id != '' AND status != 'resolved') AS tickets,
          argMaxIf(agent, ts, agent != '') AS last_agent
        FROM ${db}.events FINAL
        WHERE session != ''
        GROUP BY customer, session
        HAVING countIf(type = 'session_start') > 0 AND countIf(type = 'session_end') > 0
          AND ${inRange("minIf(ts, type = 'session_start')")}
      ) AS s
      LEFT JOIN (
        SELECT customer, groupUniqArray(ticket_id) AS resolved_ids
        FROM ${db}.events FINAL
        WHERE type = 'ticket' AND status = 'resolved' AND ticket_id != ''
        GROUP BY customer
      ) AS r ON r.customer = s.customer
      GROUP BY agent, channel`,

    // Issue intents per product: customer messages, complaints and opened tickets that name both a
    // sku and an intent. rank 1 is the sku's most frequent intent (ties: alphabetical).
    top_intents: `
      SELECT sku, intent, mentions, customers,
        round(100 * mentions / sum(mentions) OVER (PARTITION BY sku), 1) AS share_pct,
        toUInt32(row_number() OVER (PARTITION BY sku ORDER BY mentions DESC, intent ASC)) AS rank
      FROM (
        SELECT sku, toString(intent) AS intent, count() AS mentions, uniqExact(customer) AS customers
        FROM ${db}.events FINAL
        WHERE sku != '' AND intent != '' AND ${inRange('ts')}
          AND ((type = 'message' AND \`from\` IN ('', 'customer')) OR type = 'complaint'
            OR (type = 'ticket' AND status != 'resolved'))
        GROUP BY sku, intent
      )`,

    // Page views per customer and category in the range, with their orders in that category (the
    // "viewed baby products 3 times, bought none" audience: WHERE views >= 3 AND orders = 0).
    category_interest: `
      SELECT customer, toString(category) AS category,
        countIf(type = 'page_view') AS views,
        countIf(type = 'order') AS orders,
        maxIf(ts, type = 'page_view') AS last_view
      FROM ${db}.events FINAL
      WHERE category != '' AND type IN ('page_view', 'order') AND ${inRange('ts')}
      GROUP BY customer, category
      HAVING views > 0`,
  };
  const on = onCluster === '' ? '' : ` ${onCluster}`;
  return VIEW_NAMES.map((name) => `CREATE OR REPLACE VIEW ${db}.${name}${on} AS ${bodies[name].trim()}`);
}
