/**
 * Draws the report's charts in the browser with Observable Plot (inlined into the report before
 * this script, as the global `Plot`), from the report's data (the `#report-data` JSON). Each
 * `<figure data-chart="NAME">` gets its chart; a chart that fails says so in its figure and on the
 * console, and `<body data-charts>` ends as `rendered` or `failed` (the report test reads both).
 */
import type * as PlotApi from '@observablehq/plot';
import type { ReportData } from '../reportTypes.js';

const Plot = (globalThis as unknown as { Plot: typeof PlotApi }).Plot;
const data = JSON.parse(document.getElementById('report-data')?.textContent ?? '{}') as ReportData;

const WIDTH = 880;
const HOURS = Array.from({ length: 24 }, (_, h) => h);
const STEP_COLORS = ['#4e79a7', '#f28e2b', '#59a14f'];

const pct = (v: number | null): string => (v === null ? '–' : `${v.toFixed(1)}%`);
const count = (v: number): string => v.toLocaleString('en-US');

type Chart = () => SVGSVGElement | HTMLElement;

const charts: Record<string, Chart> = {
  // The funnel as bars, each labelled with its count and its conversion from the step before.
  funnel: () => {
    const all = data.funnel.find((r) => r.dimension === 'all');
    if (all === undefined) throw new Error('no funnel row "all"');
    const steps = [
      { step: 'consulted', customers: all.consulted, label: `${count(all.consulted)} customers` },
      {
        step: 'added to cart',
        customers: all.added_to_cart,
        label: `${count(all.added_to_cart)} · ${pct(all.cart_pct)} of consulted`,
      },
      {
        step: 'ordered',
        customers: all.ordered,
        label: `${count(all.ordered)} · ${pct(all.cart_to_order_pct)} of carts (${pct(all.conversion_pct)} overall)`,
      },
    ];
    return Plot.plot({
      width: WIDTH,
      height: 180,
      marginLeft: 100,
      marginRight: 260,
      x: { label: 'customers', grid: true },
      y: { label: null, domain: steps.map((s) => s.step) },
      color: { domain: steps.map((s) => s.step), range: STEP_COLORS },
      marks: [
        Plot.barX(steps, { x: 'customers', y: 'step', fill: 'step' }),
        Plot.text(steps, { x: 'customers', y: 'step', text: 'label', textAnchor: 'start', dx: 6 }),
        Plot.ruleX([0]),
      ],
    });
  },

  // Conversion (ordered / consulted) of every channel, traffic source and script variant.
  'funnel-dimensions': () => {
    const rows = data.funnel
      .filter((r) => r.dimension !== 'all')
      .map((r) => ({ ...r, label: `${r.dimension} · ${r.key}` }));
    return Plot.plot({
      width: WIDTH,
      height: 40 + rows.length * 24,
      marginLeft: 170,
      marginRight: 150,
      x: { label: 'ordered, % of consulted', grid: true },
      y: { label: null, domain: rows.map((r) => r.label) },
      color: { legend: true },
      marks: [
        Plot.barX(rows, { x: 'conversion_pct', y: 'label', fill: 'dimension' }),
        Plot.text(rows, {
          x: 'conversion_pct',
          y: 'label',
          text: (r: (typeof rows)[number]) => `${pct(r.conversion_pct)} of ${count(r.consulted)}`,
          textAnchor: 'start',
          dx: 6,
        }),
        Plot.ruleX([0]),
      ],
    });
  },

  // Conversion per script variant, with the lower bound of its 95 % interval that ranks it.
  scripts: () => {
    const rows = data.scripts;
    return Plot.plot({
      width: WIDTH,
      height: 50 + rows.length * 32,
      marginLeft: 120,
      marginRight: 170,
      x: { label: 'ordered, % of customers (tick: 95 % lower bound)', grid: true },
      y: { label: null, domain: rows.map((r) => r.variant) },
      marks: [
        Plot.barX(rows, { x: 'conversion_pct', y: 'variant', fill: '#76b7b2' }),
        Plot.tickX(rows, { x: 'conversion_low_pct', y: 'variant', stroke: '#333', strokeWidth: 2 }),
        Plot.text(rows, {
          x: 'conversion_pct',
          y: 'variant',
          text: (r: (typeof rows)[number]) =>
            `#${r.rank} · ${pct(r.conversion_pct)} of ${count(r.customers)}`,
          textAnchor: 'start',
          dx: 6,
        }),
        Plot.ruleX([0]),
      ],
    });
  },

  // Per rule: the share of its customers who ordered in the 7 days before (grey) and after it.
  'trigger-response': () => {
    const rows = data.triggerResponse;
    return Plot.plot({
      width: WIDTH,
      height: 50 + rows.length * 26,
      marginLeft: 180,
      marginRight: 120,
      x: {
        label: 'customers who ordered, % (grey: 7 days before the trigger, blue: 7 days after)',
        grid: true,
      },
      y: { label: null, domain: rows.map((r) => r.rule) },
      marks: [
        Plot.link(rows, { x1: 'before_pct', x2: 'response_pct', y1: 'rule', y2: 'rule', stroke: '#bbb' }),
        Plot.dot(rows, { x: 'before_pct', y: 'rule', fill: '#aaa', r: 5 }),
        Plot.dot(rows, { x: 'response_pct', y: 'rule', fill: '#4e79a7', r: 5 }),
        Plot.text(rows, {
          x: (r: (typeof rows)[number]) => Math.max(r.response_pct, r.before_pct),
          y: 'rule',
          text: (r: (typeof rows)[number]) => `${pct(r.response_pct)} of ${count(r.customers)}`,
          textAnchor: 'start',
          dx: 10,
        }),
      ],
    });
  },

  // Complaints per region and hour of day.
  complaints: () => {
    const rows = data.complaints;
    const regions = [...new Set(rows.map((r) => r.region))].sort();
    return Plot.plot({
      width: WIDTH,
      height: 60 + regions.length * 34,
      marginLeft: 90,
      padding: 0.05,
      x: { label: `hour of day (${data.tz})`, domain: HOURS },
      y: { label: null, domain: regions },
      color: { scheme: 'oranges', legend: true, label: 'complaints' },
      marks: [
        Plot.cell(rows, { x: 'hour', y: 'region', fill: 'complaints' }),
        Plot.text(rows, { x: 'hour', y: 'region', text: 'complaints', fill: 'black', fontSize: 10 }),
      ],
    });
  },

  // Contact events per customer-local hour, stacked by channel.
  staffing: () =>
    Plot.plot({
      width: WIDTH,
      height: 320,
      x: { label: 'customer-local hour of day', domain: HOURS },
      y: { label: 'contact events', grid: true },
      color: { legend: true, label: 'channel' },
      marks: [Plot.barY(data.staffing, { x: 'local_hour', y: 'contacts', fill: 'channel' }), Plot.ruleY([0])],
    }),
};

let failed = false;
for (const figure of document.querySelectorAll<HTMLElement>('figure[data-chart]')) {
  const name = figure.dataset.chart ?? '';
  try {
    const draw = charts[name];
    if (draw === undefined) throw new Error(`no chart named "${name}"`);
    figure.prepend(draw());
  } catch (e) {
    failed = true;
    figure.dataset.error = String(e);
    figure.prepend(document.createTextNode(`This chart could not be drawn: ${String(e)}`));
    console.error(`chart ${name}:`, e);
  }
}
document.body.dataset.charts = failed ? 'failed' : 'rendered';
