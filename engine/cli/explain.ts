import { decodeEvent } from '../../operators/decodeEvent.js';
import { parseDuration } from '../../operators/duration.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { RuleSpec } from '../../operators/rules.js';
import { loadConfig, minEventTs } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { loadRules } from '../config/rulesFile.js';
import {
  type CustomerView,
  customerView,
  DECISIONS_PER_CUSTOMER,
  type TimerView,
  type TracedDecision,
  traced,
} from '../runtime/customerView.js';
import { requestExplain } from '../runtime/liveExplain.js';
import { ndjsonEvents } from '../source/fileSource.js';
import { endOfEventTime, eventTimeFormat, lastEventTime } from './eventTime.js';
import { parseUntil } from './replay.js';

/** Options of `cxstream explain`. */
export interface ExplainOptions {
  customer: string;
  /** NDJSON history; only the lines whose `customer` is {@link customer} are replayed. */
  file?: string;
  /** Ask the running engine (a NATS request answered by the partition that owns the customer) instead of a file. */
  live?: boolean;
  /** @default config/default.yaml */
  config?: string;
  /** Rule files instead of the config's (`--file` only). @default the config's `rules` */
  rules?: string[];
  /**
   * At the end, move event time to this date so due timers fire (as `replay --until`; `--file` only).
   * @default the file's last event time (of any customer), as `replay`
   */
  until?: string;
  /** Print the report as JSON. @default false */
  json?: boolean;
  /** `--live`: how long to wait for the engine's answer. @default 10000 */
  timeoutMs?: number;
  /** Where the text goes. @default process.stdout */
  out?: NodeJS.WritableStream;
}

/**
 * One line of a rule's explanation: a group of like decisions in a row (a condition false on five
 * events), or what the customer's state holds for the rule at the end (a timer, a partial pattern).
 */
export interface ExplainLine {
  /** What happened: a decision outcome (`fired`, `when-false`, `cooldown`, ...), `delivered`, or a state (`waiting`, `partial`, `holding`). */
  what: string;
  /** The word printed before the text: fired, delivered, deferred, not fired, held, dropped, cancelled, late, error, waiting, partial. */
  verb: string;
  /** The reason in a few words (the rule's headline when it is the latest). */
  brief: string;
  /** Event time of the first decision of the group (a timer's due time for `waiting`). */
  at: number;
  /** Event time of the last decision of the group. */
  to: number;
  count: number;
  text: string;
}

/** Why one rule fired or not for the customer. */
export interface RuleExplanation {
  id: string;
  /** `event` or the pattern (`crossing`, `absence`, `sequence`, `count`, `streak`, `inactivity`, `purchaseCycle`). */
  kind: string;
  /** The pattern in words. */
  pattern: string;
  /** Event types it looks at (empty: every type). */
  looksAt: string[];
  /** The headline: fired how often, or the reason it did not. */
  verdict: string;
  fired: Array<{ id: string; eventTime: number }>;
  lines: ExplainLine[];
  /** Timers of this rule still pending at the end. */
  pending: Array<{ kind: string; key: string; due: number }>;
}

/** What `explain` found. */
export interface ExplainReport {
  /** `file`: a replay of the customer's history; `live`: the running engine's state. */
  source: 'file' | 'live';
  customer: string;
  /** Zone of the printed times: the customer's (their latest event's `tz`, else `engine.defaultTz`). */
  tz: string;
  /** `file`: events of the customer replayed. */
  events: number;
  rejected: string[];
  /** `file`: event time at the end, where timers due by then fired (`--until`, else the file's last event time). */
  end?: number;
  /** `file`: whether {@link end} is the file's last event time (no `--until`). */
  endIsLastEvent: boolean;
  /** `live`: where the state is from. */
  live?: {
    partition: number;
    watermark: number;
    maxEventTime: number;
    waiting: number;
    decisionsKept: number;
  };
  /** The customer's profile (`live`; `file`: at the end). */
  profile: Record<string, unknown>;
  /** Run-time errors of rule expressions (`live`: in the customer's partition, all customers). */
  ruleErrors: Array<{ rule: string; count: number; first: string }>;
  rules: RuleExplanation[];
}

/**
 * `cxstream explain CUSTOMER`: per rule, what fired and why the rest did not. With `file`, replays
 * that customer's events through the same partition operators (in-process: one customer is small),
 * listening to the rule set's tracer; with `live`, asks the running engine for the customer's
 * state and its recent decisions. Both are explained and printed by the same code.
 */
export async function runExplain(options: ExplainOptions): Promise<ExplainReport> {
  if (options.live && options.file !== undefined)
    throw new UsageError('explain takes --file EVENTS.ndjson or --live, not both');
  if (options.live && (options.rules !== undefined || options.until !== undefined))
    throw new UsageError(
      '--rules and --until go with --file; --live explains the rules the engine runs, as of now',
    );
  if (!options.live && options.file === undefined)
    throw new UsageError(
      'explain needs --file EVENTS.ndjson (replay a history) or --live (ask the running engine)',
    );
  const report = options.live ? await explainLive(options) : await explainFile(options, options.file!);
  const out = options.out ?? process.stdout;
  out.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatExplain(report));
  return report;
}

async function explainFile(options: ExplainOptions, file: string): Promise<ExplainReport> {
  const config = loadConfig(options.config);
  const specs = loadRules(options.rules && options.rules.length > 0 ? options.rules : config.rules);
  const defaultTz = config.engine.defaultTz;
  const processor = new PartitionProcessor({
    partition: 0,
    rules: specs,
    defaultTz,
    profileIntervalMs: config.engine.profileIntervalMs,
    allowedLatenessMs: config.engine.allowedLatenessMs,
    minEventTs: minEventTs(config),
  });
  const whenOf = new Map(specs.map((s) => [s.id, s.when]));
  const decisions: TracedDecision[] = [];
  processor.ruleSet.onDecision = (d) => {
    if (d.customer === options.customer) decisions.push(traced(d, whenOf.get(d.rule)));
  };
  const rejected: string[] = [];
  const seen: SeenEvent[] = [];
  let lastTs = Number.NEGATIVE_INFINITY;
  // The file source names each line's subject after its customer (unsafe characters as _): a cheap
  // filter before decoding; the decoded customer decides.
  const token = `.${options.customer.replace(/[.\s*>]/g, '_')}`;
  for await (const raw of ndjsonEvents(file)) {
    if (!raw.subject.endsWith(token)) continue;
    const event = decodeEvent(raw.data, raw.subject);
    if (typeof event === 'string') {
      rejected.push(`line ${raw.seq}: ${event}`);
      continue;
    }
    if (event.customer !== options.customer) continue;
    lastTs = Math.max(lastTs, event.ts);
    const out = processor.applyBatch([raw.seq], [raw.subject], () => raw.data, event.ts);
    if (out.rejects.length > 0) rejected.push(...out.rejects.map((r) => `line ${r.seq}: ${r.reason}`));
    else seen.push({ id: event.id, type: event.type, ts: event.ts });
  }
  if (seen.length === 0 && rejected.length === 0)
    throw new UsageError(`customer ${options.customer} not in file ${file}`);
  // Patterns see events once event time has passed them, and timers fire once it reaches their due
  // time. The same end as `replay`: the file's last event time, not only this customer's (which
  // would stop short of timers that a replay of the whole file fires).
  const end =
    options.until === undefined
      ? Math.max(lastTs, (await lastEventTime(file, config.engine.maxFutureSkewMs)) ?? lastTs)
      : parseUntil(options.until, defaultTz);
  processor.advanceTo(end);
  const view = customerView(processor, options.customer, decisions, defaultTz);
  return {
    source: 'file',
    customer: options.customer,
    tz: view?.tz ?? defaultTz,
    events: seen.length,
    rejected,
    end,
    endIsLastEvent: options.until === undefined,
    profile: view?.profile ?? {},
    ruleErrors: view?.ruleErrors ?? [],
    rules: view === null ? [] : explainRules(view, end, seen),
  };
}

async function explainLive(options: ExplainOptions): Promise<ExplainReport> {
  const config = loadConfig(options.config);
  const view = await requestExplain(config, options.customer, options.timeoutMs ?? 10_000);
  return {
    source: 'live',
    customer: view.customer,
    tz: view.tz,
    events: 0,
    rejected: [],
    endIsLastEvent: false,
    live: {
      partition: view.partition,
      watermark: view.watermark,
      maxEventTime: view.maxEventTime,
      waiting: view.waiting,
      decisionsKept: view.decisions.length,
    },
    profile: view.profile,
    ruleErrors: view.ruleErrors,
    rules: explainRules(view, view.watermark, undefined),
  };
}

/** An event of the customer as the file replay saw it. */
interface SeenEvent {
  id: string;
  type: string;
  ts: number;
}

/**
 * Per rule: its decisions grouped into lines, then what the customer's state holds for it as of
 * `asOf` (pending timers, partial patterns, a cooldown or a full cap). `events`: the customer's
 * history (`--file`), which tells which rules saw nothing and how far a sequence got; undefined for
 * a live state, whose decisions are only the recent ones the engine kept.
 */
export function explainRules(
  view: CustomerView,
  asOf: number,
  events: SeenEvent[] | undefined,
): RuleExplanation[] {
  const time = eventTimeFormat(view.tz);
  const specs = new Map(view.rules.map((s) => [s.id, s]));
  return view.rules.map((spec) => {
    const mine = view.decisions.filter((d) => d.rule === spec.id);
    const entries = mine.flatMap((d, i) => decisionLine(d, mine.slice(0, i), view.decisions, specs, time));
    if (events !== undefined && spec.sequence)
      entries.push(...sequenceHistory(spec, events, mine, asOf, time));
    entries.sort((a, b) => a.at - b.at);
    const lines = grouped(entries);
    lines.push(...stateLines(spec, view, asOf, time, events === undefined));
    if (lines.length === 0 && events !== undefined) lines.push(...unstarted(spec, events, view, time));
    const fired = mine
      .filter((d) => d.outcome === 'fired')
      .map((d) => ({ id: d.id, eventTime: mine.find((x) => x.id === d.id)!.t }));
    return {
      id: spec.id,
      kind: kindOf(spec),
      pattern: patternOf(spec),
      looksAt: typesOf(spec),
      verdict: verdictOf(fired, lines, time, events === undefined),
      fired,
      lines,
      pending: view.timers
        .filter((t) => t.rule === spec.id)
        .map((t) => ({ kind: t.kind, key: t.key, due: t.due })),
    };
  });
}

const PATTERNS = [
  'crosses',
  'absence',
  'sequence',
  'count',
  'streak',
  'inactivity',
  'purchaseCycle',
] as const;

function kindOf(spec: RuleSpec): string {
  const key = PATTERNS.find((p) => spec[p] !== undefined);
  return key === undefined ? 'event' : key === 'crosses' ? 'crossing' : key;
}

const list = (t: string | string[] | undefined): string[] =>
  t === undefined ? [] : Array.isArray(t) ? t : [t];
const names = (t: string | string[] | undefined): string => list(t).join(' or ');
const quiet = (spec: RuleSpec) => `${spec.quietHours?.from}–${spec.quietHours?.to}`;
const oneLine = (cel: string) => cel.replace(/\s+/g, ' ').trim();
const keyed = (key: string) => (key === '' ? '' : ` (key ${JSON.stringify(key)})`);

/** The pattern of a rule in words. */
export function patternOf(spec: RuleSpec): string {
  const on = spec.on ? `on ${spec.on.join(', ')}` : 'on every event';
  if (spec.crosses !== undefined) return `when ${oneLine(spec.crosses)} becomes true, ${on}`;
  if (spec.absence)
    return `${names(spec.absence.after)}, then no ${names(spec.absence.missing)} within ${spec.absence.within}`;
  if (spec.sequence)
    return `${names(spec.sequence.first)}, then ${names(spec.sequence.followedBy)} within ${spec.sequence.within}`;
  if (spec.count) {
    const c = spec.count;
    return (
      `${c.atLeast}× ${names(c.of)} within ${c.within}${c.after ? ` after ${names(c.after)}` : ''}` +
      `${c.by ? ', counted per key' : ''}${c.unless ? `, unless ${names(c.unless)}` : ''}`
    );
  }
  if (spec.streak)
    return `${spec.streak.count}× ${names(spec.streak.of)} in a row where ${oneLine(spec.streak.where)}${
      spec.streak.resetOn ? ` (reset by ${names(spec.streak.resetOn)})` : ''
    }`;
  if (spec.inactivity) return `no event for ${spec.inactivity.for}`;
  if (spec.purchaseCycle)
    return `${spec.purchaseCycle.fraction ?? 0.9} of the purchase cycle after the last order`;
  return on;
}

/** A line before grouping: `key` tells which lines in a row merge into one. */
interface Entry {
  what: string;
  verb: string;
  at: number;
  key: string;
  brief: string;
  text: string;
}

/** What the tracer's decision `d` says, as a line (none for `armed` and for errors paired with the next decision). */
function decisionLine(
  d: TracedDecision,
  before: TracedDecision[],
  all: TracedDecision[],
  specs: Map<string, RuleSpec>,
  time: (ts: number) => string,
): Entry[] {
  const spec = specs.get(d.rule)!;
  const line = (verb: string, brief: string, text: string, key: string = d.outcome, at = d.t): Entry[] => [
    { what: d.outcome, verb, at, key, brief, text },
  ];
  const previous = before.at(-1);
  const pairedError = previous?.outcome === 'error' && previous.id === d.id ? previous.error : undefined;
  switch (d.outcome) {
    case 'fired': {
      const deferred = before.find((x) => x.outcome === 'deferred' && x.id === d.id);
      if (deferred)
        return [
          {
            what: 'delivered',
            verb: 'delivered',
            at: d.t,
            key: `delivered:${d.id}`,
            brief: 'delivered after quiet hours',
            text: `${d.id}, fired at ${time(deferred.t)} and held by quiet hours until now`,
          },
        ];
      return line('fired', 'fired', `${d.id}${firedOn(d, before, time)}`, `fired:${d.id}`);
    }
    case 'deferred':
      return line(
        'deferred',
        `deferred by quiet hours to ${time(d.due!)}`,
        `${d.id}: quiet hours ${quiet(spec)} (customer-local), delivered at ${time(d.due!)}`,
        `deferred:${d.id}`,
      );
    case 'when-false':
      return line(
        'not fired',
        'condition false',
        `condition false: ${oneLine(spec.when ?? '')}${d.values?.length ? ` — saw ${d.values.join(', ')}` : ''}`,
      );
    case 'when-error': {
      const message = pairedError ?? 'it gave neither true nor false';
      return line(
        'error',
        `rule error: ${message}`,
        `rule error in the condition (counts as false): ${message} — when: ${oneLine(spec.when ?? '')}`,
        `when-error:${message}`,
      );
    }
    case 'error': {
      // told with the decision that follows it (when-error, no-key)
      if (d.expression === 'when' || d.expression === 'per') return [];
      const where = expressionOf(d.expression ?? '', spec);
      return line(
        'error',
        `rule error: ${d.error}`,
        `rule error in ${where}: ${d.error}`,
        `error:${d.expression}:${d.error}`,
      );
    }
    case 'arbitration': {
      const suffix = d.id.slice(d.rule.length + d.customer.length + 2);
      const winner = all.find(
        (x) =>
          x.rule !== d.rule &&
          specs.get(x.rule)?.group === spec.group &&
          (x.outcome === 'fired' || x.outcome === 'deferred') &&
          x.id.endsWith(`:${suffix}`),
      );
      const to = winner ? ` to ${winner.rule}` : '';
      const priorities = winner
        ? ` (priority ${specs.get(winner.rule)!.priority ?? 0} over ${spec.priority ?? 0})`
        : '';
      return line(
        'not fired',
        `lost arbitration${to}`,
        `lost arbitration in group "${spec.group}"${to}${priorities} on event ${suffix}`,
      );
    }
    case 'cooldown': {
      const what =
        spec.oncePer === 'session'
          ? `the event has no session, so the ${spec.cooldown ?? '30m'} cooldown of once per session`
          : `cooldown ${spec.cooldown}`;
      return line(
        'held',
        `held by the cooldown until ${time(d.until!)}`,
        `${what}${spec.per ? ` per ${spec.per}` : ''}: fired at ${time(d.last!.at)}, free again at ${time(d.until!)}`,
        `cooldown:${d.last!.at}`,
      );
    }
    case 'once-per-session':
      return line(
        'held',
        `already fired in session ${d.last!.session}`,
        `once per session: already fired in session ${d.last!.session} at ${time(d.last!.at)}`,
        `once:${d.last!.session}:${d.last!.at}`,
      );
    case 'no-key':
      return line(
        'error',
        'rule error in its key',
        `rule error in the key per ${spec.per}${pairedError ? `: ${pairedError}` : ''} (no trigger without a key)`,
        `no-key:${pairedError}`,
      );
    case 'quiet-hours-drop':
      return line(
        'dropped',
        'dropped by quiet hours',
        `quiet hours ${quiet(spec)} (customer-local), action drop`,
      );
    case 'cap':
      return line(
        'dropped',
        `dropped by the frequency cap "${spec.cap!.group}"`,
        `frequency cap "${spec.cap!.group}" (${spec.cap!.max} per ${spec.cap!.per}) was full; room again at ${time(d.until!)}`,
      );
    case 'cancelled': {
      const armed = before.findLast((x) => x.outcome === 'armed' && x.due === d.due);
      const of = armed?.event ? ` of ${armed.event.type} ${armed.event.id} (${time(armed.event.ts)})` : '';
      const by = `${d.event?.type} ${d.event?.id}`;
      return line(
        'cancelled',
        `cancelled by ${by} at ${time(d.event?.ts ?? d.t)}`,
        `${by} came within the window${of}: no reminder due ${time(d.due!)}`,
        `cancelled:${d.due}`,
        d.event?.ts ?? d.t,
      );
    }
    case 'late':
      return line(
        'late',
        `${d.event?.type} ${d.event?.id} came too late`,
        `${d.event?.type} ${d.event?.id} arrived when event time had passed it (watermark ${time(d.watermark!)}, ` +
          'beyond the allowed lateness): for this pattern it starts and completes nothing (it may still ' +
          'cancel a pending timer, or count for later events)',
        `late:${d.event?.id}`,
      );
    case 'armed':
      return [];
  }
}

/** What a firing was on: the event, or the timer and what armed it. */
function firedOn(d: TracedDecision, before: TracedDecision[], time: (ts: number) => string): string {
  const suffix = d.id.slice(d.rule.length + d.customer.length + 2);
  if (!/^t-?\d+$/.test(suffix)) return ` on event ${suffix}`;
  const armed = before.findLast((x) => x.outcome === 'armed' && x.due === d.t);
  return armed?.event
    ? ` (timer armed by ${armed.event.type} ${armed.event.id} at ${time(armed.event.ts)})`
    : ' (timer)';
}

/** The expression a run-time error came from, with its text. */
function expressionOf(expression: string, spec: RuleSpec): string {
  if (expression.startsWith('payload.')) {
    const name = expression.slice('payload.'.length);
    return `payload ${name} = ${oneLine(spec.payload?.[name] ?? '')} (sent as null)`;
  }
  if (expression === 'crossing') return `crosses: ${oneLine(spec.crosses ?? '')}`;
  if (expression === 'streak') return `streak where: ${oneLine(spec.streak?.where ?? '')}`;
  if (expression === 'count') return `count by: ${oneLine(spec.count?.by ?? '')}`;
  return expression;
}

/**
 * A sequence's history (`--file`): first steps no second step followed within the window, and
 * second steps that found no first step before them.
 */
function sequenceHistory(
  spec: RuleSpec,
  events: SeenEvent[],
  decisions: TracedDecision[],
  asOf: number,
  time: (ts: number) => string,
): Entry[] {
  const s = spec.sequence!;
  const within = parseDuration(s.within);
  const first = new Set(list(s.first));
  const second = new Set(list(s.followedBy));
  const entries: Entry[] = [];
  for (const e of events) {
    if (first.has(e.type)) {
      if (events.some((x) => second.has(x.type) && x.ts >= e.ts && x.ts <= e.ts + within)) continue;
      const closes = e.ts + within;
      const seen = `first step ${e.type} ${e.id} seen at ${time(e.ts)}`;
      entries.push(
        closes <= asOf
          ? {
              what: 'partial',
              verb: 'partial',
              at: e.ts,
              key: 'partial',
              brief: `${e.type} seen, no ${names(s.followedBy)} within ${s.within}`,
              text: `${seen}; no ${names(s.followedBy)} within ${s.within} (the second step never came)`,
            }
          : {
              what: 'partial',
              verb: 'partial',
              at: e.ts,
              key: 'partial',
              brief: `${e.type} seen, waiting for ${names(s.followedBy)} until ${time(closes)}`,
              text: `${seen}; waiting for ${names(s.followedBy)} until ${time(closes)}`,
            },
      );
    } else if (second.has(e.type) && !decisions.some((d) => d.id.endsWith(`:${e.id}`))) {
      entries.push({
        what: 'partial',
        verb: 'not fired',
        at: e.ts,
        key: 'unmatched',
        brief: `no ${names(s.first)} before ${e.type} ${e.id}`,
        text: `${e.type} ${e.id}: no ${names(s.first)} in the ${s.within} before it (the first step must come first)`,
      });
    }
  }
  return entries;
}

/** Entries in a row with the same key become one line (the text of the last). */
function grouped(entries: Entry[]): ExplainLine[] {
  const lines: ExplainLine[] = [];
  let key: string | undefined;
  for (const { key: k, ...e } of entries) {
    const last = lines.at(-1);
    if (last !== undefined && k === key) {
      last.count++;
      last.to = e.at;
      last.text = e.text;
      last.brief = e.brief;
      continue;
    }
    key = k;
    lines.push({ ...e, to: e.at, count: 1 });
  }
  return lines;
}

/**
 * What the customer's state holds for a rule as of `asOf`: pending timers, a pattern part-way
 * (a sequence's first steps `live` only: the file replay tells them from the history), a cooldown
 * or a full cap that would hold the next firing back, and (`live`) when it last fired.
 */
function stateLines(
  spec: RuleSpec,
  view: CustomerView,
  asOf: number,
  time: (ts: number) => string,
  live: boolean,
): ExplainLine[] {
  const lines: ExplainLine[] = [];
  const add = (what: string, verb: string, at: number, brief: string, text: string) =>
    lines.push({ what, verb, at, to: at, count: 1, brief, text });
  for (const t of view.timers.filter((x) => x.rule === spec.id)) {
    const due = time(t.due);
    if (t.kind === 'deferred')
      add('waiting', 'waiting', t.due, `deferred by quiet hours to ${due}`, timerText(t, spec, view, time));
    else add('waiting', 'waiting', t.due, `waiting for a timer due ${due}`, timerText(t, spec, view, time));
  }
  const memory = view.memory[spec.id] as Record<string, unknown> | undefined;
  if (memory !== undefined)
    for (const [brief, text] of memoryText(spec, memory, asOf, time, live))
      add('partial', 'partial', asOf, brief, text);
  // once per session: the cooldown holds only events without a session
  const cooldown =
    spec.cooldown === undefined || spec.oncePer === 'session' ? 0 : parseDuration(spec.cooldown);
  for (const [key, mark] of Object.entries(view.fired[spec.id] ?? {})) {
    const until = mark.at + cooldown;
    const holds = cooldown > 0 && until > asOf;
    const session = mark.session ? `, in session ${mark.session}` : '';
    if (live)
      add(
        'last-fired',
        'fired',
        mark.at,
        holds ? `held by the cooldown until ${time(until)}` : `last fired at ${time(mark.at)}`,
        `last firing${keyed(key)}${session}${holds ? `; the ${spec.cooldown} cooldown holds it until ${time(until)}` : ''}`,
      );
    else if (holds)
      add(
        'holding',
        'held',
        asOf,
        `held by the cooldown until ${time(until)}`,
        `the next firing${keyed(key)}: the ${spec.cooldown} cooldown holds it until ${time(until)} (fired at ${time(mark.at)})`,
      );
  }
  if (spec.cap) {
    const per = parseDuration(spec.cap.per);
    const used = (view.caps[spec.cap.group] ?? []).filter((x) => x > asOf - per && x <= asOf);
    const cap = `frequency cap "${spec.cap.group}"`;
    if (used.length >= spec.cap.max)
      add(
        'holding',
        'held',
        asOf,
        `${cap} full until ${time(Math.min(...used) + per)}`,
        `${cap} full: ${used.length} of ${spec.cap.max} in the ${spec.cap.per} before now; room again at ${time(Math.min(...used) + per)}`,
      );
    else if (live && used.length > 0)
      add(
        'cap',
        'held',
        asOf,
        `${cap}: ${used.length} of ${spec.cap.max} used`,
        `${cap}: ${used.length} of ${spec.cap.max} used in the last ${spec.cap.per}`,
      );
  }
  return lines;
}

/** A pending timer of a rule in words. */
function timerText(t: TimerView, spec: RuleSpec, view: CustomerView, time: (ts: number) => string): string {
  const due = time(t.due);
  if (t.kind === 'deferred')
    return `trigger ${t.trigger?.id} (fired at ${time(t.trigger?.eventTime ?? t.due)}) held by quiet hours ${quiet(spec)}; delivered at ${due}`;
  if (t.kind === 'absence' && spec.absence)
    return `timer due ${due}: ${t.anchor?.type} ${t.anchor?.id} at ${time(t.anchor?.ts ?? t.due)} and no ${names(spec.absence.missing)} since; it fires once event time passes ${due}`;
  if (t.kind === 'inactivity' && spec.inactivity)
    return `timer due ${due}: fires if no event comes before (${spec.inactivity.for} of silence)`;
  if (t.kind === 'cycle') {
    const days = view.profile.purchaseCycleDays;
    const cycle = typeof days === 'number' ? ` of a ${Math.round(days * 10) / 10}-day purchase cycle` : '';
    return `reminder due ${due}: ${spec.purchaseCycle?.fraction ?? 0.9}${cycle} after the order at ${time(t.orderAt ?? t.due)}`;
  }
  return `${t.kind} timer due ${due}${keyed(t.key)}`;
}

/** What a pattern's memory (operators/patterns/*) holds, in words: [brief, text]. */
function memoryText(
  spec: RuleSpec,
  memory: Record<string, unknown>,
  asOf: number,
  time: (ts: number) => string,
  live: boolean,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (spec.sequence && live) {
    const within = parseDuration(spec.sequence.within);
    const firsts = ((memory.firsts as number[] | undefined) ?? []).filter((t) => t + within >= asOf);
    const until = time(Math.max(...firsts) + within);
    if (firsts.length > 0)
      out.push([
        `${names(spec.sequence.first)} seen, waiting for ${names(spec.sequence.followedBy)} until ${until}`,
        `first step ${names(spec.sequence.first)} seen at ${firsts.map(time).join(', ')}; a ${names(spec.sequence.followedBy)} until ${until} completes it`,
      ]);
  }
  if (spec.count) {
    const c = spec.count;
    const within = parseDuration(c.within);
    const inWindow = (times: number[] | undefined) =>
      (times ?? []).filter((t) => t > asOf - within && t <= asOf);
    const counted = memory.counted as { keys: string[]; times: number[][] } | undefined;
    const vetoes = memory.vetoes as { keys: string[]; times: number[][] } | undefined;
    counted?.keys.forEach((key, i) => {
      const n = inWindow(counted.times[i]).length;
      if (n === 0) return;
      const vetoed = inWindow(vetoes?.times[vetoes.keys.indexOf(key)]);
      // the count fires on each `of` event that finds it reached, so a reached count is not partial
      const reached = n >= c.atLeast ? `, reached: the next ${names(c.of)} fires it (unless held back)` : '';
      out.push([
        vetoed.length > 0
          ? `vetoed by ${names(c.unless)}`
          : `${n} of ${c.atLeast} ${names(c.of)}${reached === '' ? ' so far' : ' reached'}`,
        `${n} of ${c.atLeast} ${names(c.of)}${keyed(key)} in the last ${c.within}${vetoed.length > 0 ? '' : reached}` +
          `${vetoed.length > 0 ? `; vetoed by ${names(c.unless)} at ${vetoed.map(time).join(', ')}` : ''}`,
      ]);
    });
  }
  if (spec.streak && typeof memory.length === 'number' && memory.length > 0)
    out.push([
      `streak at ${memory.length} of ${spec.streak.count}`,
      `streak at ${memory.length} of ${spec.streak.count} ${names(spec.streak.of)} where ${oneLine(spec.streak.where)}`,
    ]);
  if (spec.crosses !== undefined && memory.crossed === true)
    out.push([
      'already crossed',
      `${oneLine(spec.crosses)} is true since it crossed: it fires again only after it turns false`,
    ]);
  if (spec.purchaseCycle && typeof memory.remindedFor === 'number')
    out.push([
      'reminded for this purchase cycle',
      `reminded for the order at ${time(memory.remindedFor)}: the next reminder is timed by the next order`,
    ]);
  return out;
}

/** A rule that left nothing to tell (`--file`): the events of its types it saw, and why they started nothing. */
function unstarted(
  spec: RuleSpec,
  events: SeenEvent[],
  view: CustomerView,
  time: (ts: number) => string,
): ExplainLine[] {
  const types = new Set(typesOf(spec));
  const saw = events.filter((e) => types.size === 0 || types.has(e.type));
  if (saw.length === 0) return [];
  const last = saw.at(-1)!;
  const what =
    saw.length === 1
      ? `${last.type} ${last.id}`
      : `${saw.length} events of its types, the last ${last.type} ${last.id}`;
  let why = 'none of them completed the pattern';
  if (spec.absence) why = `no ${names(spec.absence.after)} started a window`;
  else if (spec.count?.after) why = `no ${names(spec.count.after)} started a count`;
  else if (spec.crosses !== undefined) why = `${oneLine(spec.crosses)} never became true`;
  else if (spec.purchaseCycle)
    why = `no purchase cycle yet (orders on at least two days; profile.purchaseCycleDays = ${view.profile.purchaseCycleDays ?? 'absent'})`;
  return [
    {
      what: 'unstarted',
      verb: 'not fired',
      at: last.ts,
      to: last.ts,
      count: 1,
      brief: why,
      text: `saw ${what} at ${time(last.ts)}: ${why}`,
    },
  ];
}

/** The headline of a rule: how often it fired, or the reason it did not (the pending timer, else the latest line). */
function verdictOf(
  fired: Array<{ id: string; eventTime: number }>,
  lines: ExplainLine[],
  time: (ts: number) => string,
  live: boolean,
): string {
  if (fired.length > 0)
    return `fired ${fired.length}×${live ? ' recently' : ''}, last at ${time(fired.at(-1)!.eventTime)}`;
  let reason = lines.find((l) => l.what === 'waiting');
  for (const l of lines)
    if (reason === undefined || (reason.what !== 'waiting' && l.to >= reason.to)) reason = l;
  if (reason === undefined)
    return live ? 'nothing pending, no recent decision kept' : 'not fired: no event of the types it looks at';
  return live ? reason.brief : `not fired: ${reason.brief}`;
}

/** ` (a, b)`, or '' for every type. */
const typeList = (types: string[]) => (types.length === 0 ? '' : ` (${types.join(', ')})`);

/** The event types a rule looks at (empty: every type). */
function typesOf(spec: RuleSpec): string[] {
  const types = new Set<string>([
    ...list(spec.on),
    ...list(spec.absence?.after),
    ...list(spec.absence?.missing),
    ...list(spec.sequence?.first),
    ...list(spec.sequence?.followedBy),
    ...list(spec.count?.of),
    ...list(spec.count?.after),
    ...list(spec.count?.unless),
    ...list(spec.streak?.of),
    ...list(spec.streak?.resetOn),
  ]);
  if (spec.purchaseCycle) types.add('order');
  return [...types];
}

/** The report as text: a header, then per rule its headline and one line per group of decisions. */
export function formatExplain(r: ExplainReport): string {
  const time = eventTimeFormat(r.tz);
  const zone = `times in ${r.tz}, the customer's zone`;
  const lines: string[] = [];
  if (r.live) {
    lines.push(
      `customer ${r.customer}: live state of the running engine, partition ${r.live.partition} (${zone})`,
    );
    lines.push(
      `event time final up to ${time(r.live.watermark)} (the partition's watermark; latest event ${time(r.live.maxEventTime)})` +
        `${r.live.waiting > 0 ? `; ${r.live.waiting} of the customer's events wait for it` : ''}`,
    );
    lines.push(`profile: ${profileLine(r.profile, time)}`);
    lines.push(
      `recent decisions: ${r.live.decisionsKept} kept (the engine keeps the last ${DECISIONS_PER_CUSTOMER} per customer since it started, ` +
        'not "condition false"; replay a history with --file for those)',
    );
  } else {
    lines.push(`customer ${r.customer}: ${r.events} events replayed (${zone})`);
    if (r.end !== undefined) lines.push(endOfEventTime(r.end, r.tz, r.endIsLastEvent));
  }
  for (const x of r.rejected) lines.push(`  rejected ${x}`);
  const silent = r.rules.filter((rule) => rule.lines.length === 0);
  const rules = r.rules
    .filter((rule) => rule.lines.length > 0)
    .sort((a, b) => Number(b.fired.length > 0) - Number(a.fired.length > 0));
  for (const rule of rules) {
    lines.push('', `${rule.id} (${rule.kind}: ${rule.pattern}) — ${rule.verdict}`);
    for (const l of rule.lines) {
      const range = l.count > 1 ? `${l.count}× to ${sameDay(time(l.at), time(l.to))}: ` : '';
      lines.push(`  ${time(l.at)}  ${l.verb.padEnd(9)}  ${range}${l.text}`);
    }
  }
  if (silent.length > 0) {
    lines.push('');
    lines.push(
      r.live
        ? `nothing pending or kept for: ${silent.map((s) => s.id).join(', ')}`
        : `no event of the types they look at: ${silent.map((s) => `${s.id}${typeList(s.looksAt)}`).join(', ')}`,
    );
  }
  const errors = r.ruleErrors.filter((e) => e.count > 0);
  if (errors.length > 0) {
    lines.push('');
    const where = r.live ? `in partition ${r.live.partition} (all its customers)` : 'for this customer';
    for (const e of errors) lines.push(`rule errors ${where}: ${e.rule} ${e.count}×, first: ${e.first}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The second time of a range without the date when it is the first's. */
function sameDay(a: string, b: string): string {
  return a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b;
}

/** The profile fields a marketing user looks at first. */
function profileLine(p: Record<string, unknown>, time: (ts: number) => string): string {
  const rfm = p.rfm as { r?: number; f?: number; m?: number; score?: number } | undefined;
  const parts = [
    `tier ${p.tier}`,
    `spend ${p.spend}`,
    `orders ${p.orders}`,
    rfm ? `RFM ${rfm.score} (r ${rfm.r}, f ${rfm.f}, m ${rfm.m})` : '',
    typeof p.lastSeen === 'number' ? `last seen ${time(p.lastSeen)}` : '',
    p.session ? `session ${p.session}` : '',
    Array.isArray(p.tags) && p.tags.length > 0 ? `tags ${p.tags.join(', ')}` : '',
  ];
  return parts.filter((x) => x !== '').join(', ');
}
