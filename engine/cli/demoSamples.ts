/**
 * The sample triggers the demo prints: a few that show what the engine does (routing by tier and
 * RFM, a reminder held back by quiet hours, a hand-off from the bot), chosen the same way on every
 * run of the same traffic, each with readable times in its customer's zone above the message body
 * a subscriber receives.
 */
import type { RuleSpec } from '../../operators/rules.js';
import type { Trigger } from '../../operators/types.js';
import { triggerBody } from '../../sinks/natsTriggers.js';
import { eventTimeFormat } from './eventTime.js';

/** What a sample showcases: its rule, and which of that rule's triggers shows it best. */
interface Showcase {
  rule: string;
  /** Higher is a better example; ties go to the smallest trigger id. */
  score(t: Trigger, zone: string, spec: RuleSpec | undefined): number;
}

const SHOWCASES: readonly Showcase[] = [
  // The most valuable customer routed: tier and RFM are what the rule acts on.
  { rule: 'vip_routing', score: (t) => num(rfmOf(t)?.score) ?? 0 },
  // A reminder whose due time fell in quiet hours and waited for their end.
  { rule: 'cart_abandoned', score: (t, zone, spec) => (quietHoursOf(t, zone, spec) ? 1 : 0) },
  // A bot that did not understand three times in a row.
  { rule: 'human_handoff', score: (t) => (t.payload.cause === 'unrecognized_streak' ? 1 : 0) },
];

/**
 * Up to `n` samples: the showcases that fired, then the first trigger (by id) of other rules.
 * `zoneOf` gives a customer's time zone.
 */
export function pickSamples(
  triggers: readonly Trigger[],
  specs: readonly RuleSpec[],
  zoneOf: (customer: string) => string,
  n = 3,
): Trigger[] {
  const sorted = [...triggers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const picked: Trigger[] = [];
  for (const s of SHOWCASES) {
    const spec = specs.find((r) => r.id === s.rule);
    let best: Trigger | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const t of sorted) {
      if (t.rule !== s.rule) continue;
      const score = s.score(t, zoneOf(t.customer), spec);
      if (score > bestScore) [best, bestScore] = [t, score];
    }
    if (best) picked.push(best);
  }
  for (const t of sorted) if (!picked.some((p) => p.rule === t.rule)) picked.push(t);
  return picked.slice(0, n);
}

/**
 * One sample as text: the rule, the customer and what the profile said, when it happened in the
 * customer's zone (for a timer: when it was armed and due, and a quiet-hours deferral), then the
 * body as a subscriber of its subject receives it (epoch-ms times, the contract's fields).
 */
export function formatSample(t: Trigger, zone: string, spec: RuleSpec | undefined): string {
  const time = eventTimeFormat(zone);
  const lines = [`${t.rule} for ${t.customer}: ${t.reason}`];
  const rfm = rfmOf(t);
  const profile = [
    typeof t.profile.tier === 'string' ? `tier ${t.profile.tier}` : undefined,
    rfm ? `RFM r${rfm.r} f${rfm.f} m${rfm.m} (score ${rfm.score})` : undefined,
    `priority ${t.priority}`,
  ].filter((x) => x !== undefined);
  lines.push(`  ${profile.join(', ')}`);
  const timer = /:t\d+$/.test(t.id);
  if (timer && spec?.absence) {
    const after = [spec.absence.after].flat().join('/');
    const missing = [spec.absence.missing].flat().join('/');
    lines.push(
      `  due ${time(t.eventTime)} (${zone}): no ${missing} within ${spec.absence.within} of the ${after}`,
    );
  } else if (timer) {
    lines.push(`  due ${time(t.eventTime)} (${zone})`);
  } else {
    // The firing event's type: the payload's `contact` (vip_routing), else the rule's only `on` type.
    const types = [spec?.on ?? []].flat();
    const type =
      typeof t.payload.contact === 'string' ? t.payload.contact : types.length === 1 ? types[0] : undefined;
    const on = type === undefined ? 'an event' : `a ${type}`;
    lines.push(`  on ${on} at ${time(t.eventTime)} (${zone})`);
  }
  const quiet = quietHoursOf(t, zone, spec);
  if (quiet) lines.push(`  inside quiet hours ${quiet.from}-${quiet.to}: deferred to ${quiet.to}`);
  if (t.payload.cause === 'unrecognized_streak')
    lines.push(`  the bot did not understand ${String(t.payload.unrecognizedStreak)} messages in a row`);
  // As a subscriber receives it: the message body, the contract's fields.
  lines.push(JSON.stringify(JSON.parse(triggerBody(t)), null, 2));
  return lines.join('\n');
}

/** The rule's quiet hours when the trigger's event time fell inside them (so it was deferred). */
function quietHoursOf(t: Trigger, zone: string, spec: RuleSpec | undefined): RuleSpec['quietHours'] {
  const q = spec?.quietHours;
  if (q === undefined || (q.action ?? 'defer') !== 'defer') return undefined;
  const hhmm = eventTimeFormat(zone)(t.eventTime).slice(11, 16);
  const inside = q.from < q.to ? hhmm >= q.from && hhmm < q.to : hhmm >= q.from || hhmm < q.to;
  return inside ? q : undefined;
}

function rfmOf(t: Trigger): { r: number; f: number; m: number; score: number } | undefined {
  const rfm = t.profile.rfm as Record<string, unknown> | undefined;
  if (rfm === undefined || rfm === null) return undefined;
  const [r, f, m, score] = [num(rfm.r), num(rfm.f), num(rfm.m), num(rfm.score)];
  return r === undefined || f === undefined || m === undefined || score === undefined
    ? undefined
    : { r, f, m, score };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}
