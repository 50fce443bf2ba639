/**
 * The report as one self-contained HTML file: tables rendered here, charts drawn in the browser by
 * Observable Plot, whose bundle (with d3's) is inlined with the chart script
 * (engine/report/browser/charts.ts) and the data, so the file opens offline, from disk or mail.
 *
 * Why Observable Plot: a grammar of marks (bars, cells, dots, links) that says each chart in a few
 * lines; SVG output that prints and zooms sharply and whose text can be selected; ~0.5 MB with d3
 * against ~1 MB for ECharts or Vega-Lite with Vega; maintained by Observable (d3's authors).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { packageRoot } from '../config/config.js';
import type { FunnelViewRow, ReportData } from './reportTypes.js';

const require = createRequire(import.meta.url);

/** The scripts inlined into every report with charts: d3, Plot (needs the global d3), the charts. */
function scripts(): { d3: string; plot: string; charts: string } {
  // Both packages export their UMD bundle beside the entry point Node resolves.
  const d3 = join(dirname(require.resolve('d3')), 'd3.min.js');
  const plot = join(dirname(require.resolve('@observablehq/plot')), '../dist/plot.umd.min.js');
  const charts = resolve(packageRoot, 'dist/browser/engine/report/browser/charts.js');
  const read = (file: string, hint: string): string => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read ${file} for the report's charts: ${hint}`, { cause: e });
    }
    // Inlined as it is: a "</script" inside would end the element early and break the page.
    if (/<\/script/i.test(text))
      throw new Error(`${file} contains "</script": it cannot be inlined as it is`);
    return text;
  };
  return {
    d3: read(d3, 'reinstall with npm ci'),
    plot: read(plot, 'reinstall with npm ci'),
    charts: read(charts, 'build it with npm run build'),
  };
}

/** The whole report page. A range without events says so and has no charts (and no scripts). */
export function reportHtml(data: ReportData): string {
  const range = data.from === data.to ? data.from : `${data.from} – ${data.to}`;
  const head = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cxstream report ${esc(range)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>cxstream analytics · ${esc(range)}</h1>
<p class="meta">UTC days ${esc(data.from)} to ${esc(data.to)} (${data.days} ${data.days === 1 ? 'day' : 'days'}) ·
from ${esc(data.source)} · made ${esc(data.generatedAt.replace('T', ' ').slice(0, 19))} UTC</p>
${tiles(data)}
</header>
`;
  if (data.totals.events === 0) {
    return `${head}<main><p class="empty" id="empty-range">No events between ${esc(data.from)} and ${esc(data.to)} (UTC) in
${esc(data.source)}: there is nothing to chart for this range. Pick another with --from and --to, or leave them out for
every stored day.</p></main>
</body>
</html>
`;
  }
  const s = scripts();
  return `${head}<main>
${sections(data).join('\n')}
</main>
<div id="report-errors"></div>
<script type="application/json" id="report-data">${jsonForScript(data)}</script>
<script>${s.d3}</script>
<script>${s.plot}</script>
<script type="module">
// Errors of the chart scripts are shown on the page, not only on the console.
window.addEventListener('error', (e) => {
  document.getElementById('report-errors').append(String(e.message), document.createElement('br'));
});
${s.charts}
</script>
</body>
</html>
`;
}

function tiles(data: ReportData): string {
  const t = data.totals;
  const tile = (value: string, label: string) => `<div class="tile"><b>${esc(value)}</b>${esc(label)}</div>`;
  return `<div class="tiles">${[
    tile(int(t.events), 'events'),
    tile(int(t.customers), 'customers'),
    tile(int(t.orders), 'orders'),
    tile(t.revenue.toLocaleString('en-US', { maximumFractionDigits: 0 }), 'order value'),
    tile(int(t.triggers), 'triggers fired'),
  ].join('')}</div>`;
}

function sections(data: ReportData): string[] {
  const all = data.funnel.find((r) => r.dimension === 'all');
  const matrix = (cells: Array<{ row: string; col: number; value: number }>, rowName: string) => {
    const rows = [...new Set(cells.map((c) => c.row))].sort();
    const hours = Array.from({ length: 24 }, (_, h) => h);
    const at = new Map(cells.map((c) => [`${c.row}|${c.col}`, c.value]));
    return table(
      [rowName, ...hours.map(String), 'total'],
      rows.map((r) => {
        const values = hours.map((h) => at.get(`${r}|${h}`) ?? 0);
        return [r, ...values.map(int), int(values.reduce((a, b) => a + b, 0))];
      }),
    );
  };
  const staffingChannels = [...new Set(data.staffing.map((c) => c.channel))].sort();
  return [
    section(
      'funnel',
      'Funnel: consult → add to cart → order',
      'Customers whose contact event (session start, call or message) was followed by an add-to-cart and then an order, each within 7 days of the contact. Each bar says how many of the step before went on.',
      all === undefined ? null : chart('funnel') + funnelTable(data.funnel),
      'No customer had a contact event in this range.',
    ),
    section(
      'funnel-by',
      'Conversion by channel, traffic source and script',
      "Channel and script are those of each customer's first contact in the range; the traffic source is their first one.",
      all === undefined ? null : chart('funnel-dimensions'),
      'No customer had a contact event in this range.',
    ),
    section(
      'scripts',
      'Script ranking',
      'Conversion per A/B script variant, ranked by the lower bound of its 95 % interval (the tick), so a few lucky customers do not outrank many.',
      data.scripts.length === 0
        ? null
        : chart('scripts') +
            table(
              ['variant', 'rank', 'customers', 'added to cart', 'ordered', 'conversion', '95 % lower bound'],
              data.scripts.map((r) => [
                r.variant,
                String(r.rank),
                int(r.customers),
                int(r.added_to_cart),
                int(r.ordered),
                pct(r.conversion_pct),
                pct(r.conversion_low_pct),
              ]),
            ),
      'No contact event in this range carried a script variant.',
    ),
    section(
      'trigger-response',
      'Trigger response per rule',
      "Customers a rule fired for in the range (from their first trigger): who ordered within 7 days after it, against who had ordered in the 7 days before. A rule works when 'after' clearly beats 'before'.",
      data.triggerResponse.length === 0
        ? null
        : chart('trigger-response') +
            table(
              [
                'rule',
                'customers',
                'triggers',
                'ordered ≤ 7 d after',
                'response',
                'ordered ≤ 7 d before',
                'before',
                'lift (points)',
              ],
              data.triggerResponse.map((r) => [
                r.rule,
                int(r.customers),
                int(r.triggers),
                int(r.ordered_within_7d),
                pct(r.response_pct),
                int(r.ordered_7d_before),
                pct(r.before_pct),
                r.lift_pts.toFixed(1),
              ]),
            ),
      'No trigger fired in this range.',
    ),
    section(
      'complaints',
      'Complaint hotspots: region × hour',
      `Complaint events per region and hour of day (${esc(data.tz)}), summed over the range.`,
      data.complaints.length === 0
        ? null
        : chart('complaints') +
            matrix(
              data.complaints.map((c) => ({ row: c.region, col: c.hour, value: c.complaints })),
              'region',
            ),
      'No complaint in this range.',
    ),
    section(
      'staffing',
      'Staffing load by customer-local hour',
      `Contact events per hour of day in each customer's own time zone, by channel, summed over ${data.days} ${data.days === 1 ? 'day' : 'days'} (divide by the days for a daily average).`,
      data.staffing.length === 0
        ? null
        : chart('staffing') +
            matrix(
              data.staffing.map((c) => ({ row: c.channel, col: c.local_hour, value: c.contacts })),
              'channel',
            ) +
            `<p class="note">Channels: ${esc(staffingChannels.join(', '))}.</p>`,
      'No contact event in this range.',
    ),
    section(
      'service',
      'Service quality per agent and channel',
      'Sessions that started in the range and ended: average handling time (start to end), resolution (sessions whose tickets were all resolved, of those with a ticket), average customer sentiment. The agents with the most sessions.',
      data.service.length === 0
        ? null
        : table(
            [
              'agent',
              'channel',
              'sessions',
              'avg handling (min)',
              'with ticket',
              'resolved',
              'resolution',
              'avg sentiment',
            ],
            data.service.map((r) => [
              r.agent,
              r.channel,
              int(r.sessions),
              r.avg_handle_min.toFixed(1),
              int(r.with_ticket),
              int(r.resolved),
              pct(r.resolution_pct),
              r.avg_sentiment === null ? '–' : r.avg_sentiment.toFixed(2),
            ]),
            2,
          ),
      'No session started and ended in this range.',
    ),
    section(
      'intents',
      'Top issue intents per product',
      'Customer messages, complaints and opened tickets naming a product and an intent: the three most frequent intents of the most mentioned products.',
      data.intents.length === 0
        ? null
        : table(
            ['sku', 'intent', 'rank', 'mentions', 'customers', 'share of the sku'],
            data.intents.map((r) => [
              r.sku,
              r.intent,
              String(r.rank),
              int(r.mentions),
              int(r.customers),
              pct(r.share_pct),
            ]),
            2,
          ),
      'No message, complaint or ticket named both a product and an intent in this range.',
    ),
  ];
}

function section(id: string, title: string, note: string, body: string | null, empty: string): string {
  return `<section id="${id}">
<h2>${esc(title)}</h2>
<p class="note">${note}</p>
${body ?? `<p class="empty">${esc(empty)}</p>`}
</section>`;
}

function chart(name: string): string {
  return `<figure class="chart" data-chart="${name}"></figure>`;
}

function funnelTable(rows: FunnelViewRow[]): string {
  return table(
    ['split', 'key', 'consulted', 'added to cart', 'ordered', 'cart rate', 'cart → order', 'conversion'],
    rows.map((r) => [
      r.dimension,
      r.key,
      int(r.consulted),
      int(r.added_to_cart),
      int(r.ordered),
      pct(r.cart_pct),
      pct(r.cart_to_order_pct),
      pct(r.conversion_pct),
    ]),
    2,
  );
}

/** A table whose first `labels` columns are text; the cells after them are right-aligned numbers. */
function table(header: string[], rows: string[][], labels = 1): string {
  const th = header.map((h) => `<th>${esc(h)}</th>`).join('');
  const tr = rows.map(
    (r) =>
      `<tr>${r.map((c, i) => (i < labels ? `<td>${esc(c)}</td>` : `<td class="n">${esc(c)}</td>`)).join('')}</tr>`,
  );
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr.join('\n')}\n</tbody></table>`;
}

function int(v: number): string {
  return v.toLocaleString('en-US');
}

function pct(v: number | null): string {
  return v === null ? '–' : `${v.toFixed(1)}%`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that cannot end its <script> element early (`</script>`) or break a line in old parsers. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll('<', '\\u003c')
    .replaceAll('\u2028', '\\u2028')
    .replaceAll('\u2029', '\\u2029');
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", sans-serif; margin: 0; color: #222; background: #fafafa; }
header, main { max-width: 960px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 4px; }
.meta, .note { color: #666; margin: 0 0 10px; }
.tiles { display: flex; gap: 12px; margin: 14px 0 8px; flex-wrap: wrap; }
.tile { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 14px; min-width: 110px; color: #666; }
.tile b { display: block; font-size: 20px; color: #222; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 16px 18px; margin: 16px 0; }
figure.chart { margin: 8px 0 12px; overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; margin-top: 6px; }
th, td { border-bottom: 1px solid #eee; padding: 3px 7px; text-align: left; white-space: nowrap; }
th { color: #555; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.empty { font-size: 15px; color: #8a5a00; background: #fff8e6; border: 1px solid #f0d9a0; border-radius: 6px; padding: 12px 14px; }
#report-errors { color: #b00020; max-width: 960px; margin: 0 auto; }
`;
