import { Environment } from '@marcbachmann/cel-js';
import { decodeEvent } from '../../operators/decodeEvent.js';
import { localHour } from '../../operators/localTime.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import { profileOf } from '../../operators/profile.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { loadConfig, minEventTs } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { loadRules } from '../config/rulesFile.js';
import { ndjsonEvents } from '../source/fileSource.js';
import { endOfEventTime, eventTimeFormat, lastEventTime } from './eventTime.js';
import { parseUntil } from './replay.js';

/** Options of `cxstream explain`. */
export interface ExplainOptions {
  customer: string;
  /** NDJSON history; only the lines whose `customer` is {@link customer} are replayed. */
  file: string;
  /** @default config/default.yaml */
  config?: string;
  /** Rule files instead of the config's. @default the config's `rules` */
  rules?: string[];
  /**
   * At the end, move event time to this date so due timers fire (as `replay --until`).
   * @default the file's last event time (of any customer), as `replay`
   */
  until?: string;
  /** Where the text goes. @default process.stdout */
  out?: NodeJS.WritableStream;
}

/** Result of a rule's CEL `when` on one event (`none`: the rule has no `when`). */
export type ConditionResult = 'true' | 'false' | 'error' | 'none';

/** One event a rule looked at, and what came of it. */
export interface RuleLook {
  event: string;
  type: string;
  ts: number;
  when: ConditionResult;
  /** A trigger of this rule came out of this event. */
  fired: boolean;
  /** Why a true condition did not fire, when the engine can tell. */
  held?: string;
}

/** Why one rule fired or not for the customer. */
export interface RuleExplanation {
  id: string;
  /** `event` or the pattern (`absence`, `sequence`, `count`, `streak`, `inactivity`, `purchaseCycle`). */
  kind: string;
  fired: Trigger[];
  looks: RuleLook[];
  /** Timers of this rule still pending at the end. */
  pending: { kind: string; key: string; due: number }[];
}

/** What `explain` found. */
export interface ExplainReport {
  customer: string;
  events: number;
  rejected: string[];
  /** Zone of the printed times (the config's `engine.defaultTz`, as `replay`). */
  tz: string;
  /** Event time at the end, where timers due by then fired (`--until`, else the file's last event time). */
  end?: number;
  /** Whether {@link end} is the file's last event time (no `--until`). */
  endIsLastEvent: boolean;
  rules: RuleExplanation[];
}

const PATTERNS = ['absence', 'sequence', 'count', 'streak', 'inactivity', 'purchaseCycle'] as const;
const celEnv = new Environment()
  .registerVariable('event', 'map')
  .registerVariable('profile', 'map')
  .registerVariable('now', 'double');

/**
 * `cxstream explain CUSTOMER`: replays that customer's events from a file through the same
 * partition operators (in-process: one customer is small) and tells per rule what fired, on which
 * event, what its condition gave on the events it looks at, what held a true condition back
 * (cooldown, once per session, arbitration, quiet hours, cap) and which timers are pending.
 */
export async function runExplain(options: ExplainOptions): Promise<ExplainReport> {
  const config = loadConfig(options.config);
  const specs = loadRules(options.rules && options.rules.length > 0 ? options.rules : config.rules);
  const tz = config.engine.defaultTz;
  const time = eventTimeFormat(tz);
  const processor = new PartitionProcessor({
    partition: 0,
    rules: specs,
    defaultTz: tz,
    profileIntervalMs: config.engine.profileIntervalMs,
    allowedLatenessMs: config.engine.allowedLatenessMs,
    minEventTs: minEventTs(config),
  });
  const probes = specs.map((spec) => ({ spec, when: probe(spec.when) }));
  const byRule = new Map<string, RuleExplanation>(
    specs.map((s) => [s.id, { id: s.id, kind: kindOf(s), fired: [], looks: [], pending: [] }]),
  );
  const rejected: string[] = [];
  let events = 0;
  let lastTs = Number.NEGATIVE_INFINITY;
  const record = (triggers: Trigger[]) => {
    for (const t of triggers) byRule.get(t.rule)?.fired.push(t);
  };
  // The file source names each line's subject after its customer (unsafe characters as _): a cheap
  // filter before decoding; the decoded customer decides.
  const token = `.${options.customer.replace(/[.\s*>]/g, '_')}`;
  const sessions = new Map<string, Set<string>>(specs.map((s) => [s.id, new Set<string>()]));
  for await (const raw of ndjsonEvents(options.file)) {
    if (!raw.subject.endsWith(token)) continue;
    const event = decodeEvent(raw.data, raw.subject);
    if (typeof event === 'string') {
      rejected.push(`line ${raw.seq}: ${event}`);
      continue;
    }
    if (event.customer !== options.customer) continue;
    events++;
    lastTs = Math.max(lastTs, event.ts);
    const out = processor.applyBatch([raw.seq], [raw.subject], () => raw.data, event.ts);
    record(out.triggers);
    if (out.rejects.length > 0) {
      rejected.push(...out.rejects.map((r) => `line ${r.seq}: ${r.reason}`));
      continue;
    }
    const entry = processor.customer(options.customer);
    if (entry === undefined) continue;
    // What the rules saw: the profile after this event, the event with its local hour.
    const profile = profileOf(entry.state, entry.state.lastSeen!) as unknown as Record<string, unknown>;
    const seen: CxEvent = { ...event, localHour: localHour(event.ts, event.tz ?? tz, tz) };
    const firedHere = new Set(out.triggers.filter((t) => t.id.endsWith(`:${event.id}`)).map((t) => t.rule));
    for (const { spec, when } of probes) {
      if (!looksAt(spec, event.type)) continue;
      const result = when === null ? 'none' : evaluate(when, seen, profile);
      const fired = firedHere.has(spec.id);
      const look: RuleLook = { event: event.id, type: event.type, ts: event.ts, when: result, fired };
      const firedSessions = sessions.get(spec.id)!;
      if (!fired && (result === 'true' || result === 'none') && kindOf(spec) === 'event')
        look.held = heldBy(
          spec,
          seen,
          byRule.get(spec.id)!.fired,
          firedSessions,
          out,
          firedHere,
          specs,
          time,
        );
      if (fired && event.session !== undefined) firedSessions.add(event.session);
      byRule.get(spec.id)!.looks.push(look);
    }
  }
  if (events === 0 && rejected.length === 0)
    throw new UsageError(`customer ${options.customer} not in file ${options.file}`);
  // Patterns see events once event time has passed them, and timers fire once it reaches their due
  // time. The same end as `replay`: the file's last event time, not only this customer's (which
  // would stop short of timers that a replay of the whole file fires).
  const end =
    options.until === undefined
      ? Math.max(lastTs, (await lastEventTime(options.file, config.engine.maxFutureSkewMs)) ?? lastTs)
      : parseUntil(options.until, tz);
  record(processor.advanceTo(end).triggers);
  const entry = processor.customer(options.customer);
  for (const timer of Object.values(entry?.timers ?? {}))
    byRule.get(timer.rule)?.pending.push({ kind: timer.kind, key: timer.key, due: timer.due });
  const report: ExplainReport = {
    customer: options.customer,
    events,
    rejected,
    tz,
    end,
    endIsLastEvent: options.until === undefined,
    rules: [...byRule.values()],
  };
  (options.out ?? process.stdout).write(formatExplain(report));
  return report;
}

/** Why a rule whose condition held did not fire on `event`, from its spec and what happened. */
function heldBy(
  spec: RuleSpec,
  event: CxEvent,
  earlier: Trigger[],
  firedSessions: ReadonlySet<string>,
  out: { droppedByCap: number; droppedByQuietHours: number; deferred: number; triggers: Trigger[] },
  firedHere: Set<string>,
  specs: RuleSpec[],
  time: (ts: number) => string,
): string {
  if (spec.crosses !== undefined) return `crosses: ${spec.crosses} did not become true on this event`;
  const last = earlier.filter((t) => t.id !== `${spec.id}:${event.customer}:${event.id}`).at(-1);
  if (spec.group !== undefined) {
    const winner = specs.find((s) => s.group === spec.group && s.id !== spec.id && firedHere.has(s.id));
    if (winner) return `arbitration: ${winner.id} won group "${spec.group}" on this event`;
  }
  if (spec.oncePer === 'session' && event.session !== undefined && firedSessions.has(event.session))
    return `once per session: already fired in session ${event.session}`;
  if (last !== undefined && spec.cooldown !== undefined)
    return `cooldown ${spec.cooldown}${spec.per ? ` per ${spec.per}` : ''}: last fired at ${time(last.eventTime)} (${last.id})`;
  if (spec.quietHours && (out.deferred > 0 || out.droppedByQuietHours > 0))
    return `quiet hours ${spec.quietHours.from}-${spec.quietHours.to}: ${spec.quietHours.action ?? 'defer'}`;
  if (spec.cap && out.droppedByCap > 0)
    return `cap: at most ${spec.cap.max} per ${spec.cap.per} in "${spec.cap.group}"`;
  if (spec.per !== undefined) return `per ${spec.per}: no key or the key's cooldown holds it`;
  return 'held by the delivery policy';
}

function probe(text: string | undefined) {
  return text === undefined ? null : celEnv.parse(text);
}

function evaluate(fn: ReturnType<typeof celEnv.parse>, event: CxEvent, profile: Record<string, unknown>) {
  try {
    const v = fn({ event, profile, now: event.ts });
    return v === true ? 'true' : v === false ? 'false' : 'error';
  } catch {
    return 'error';
  }
}

function kindOf(spec: RuleSpec): string {
  return PATTERNS.find((p) => spec[p] !== undefined) ?? 'event';
}

/** Event types a rule looks at: `on`, or those its pattern names; undefined = all. */
function looksAt(spec: RuleSpec, type: string): boolean {
  const types = new Set<string>();
  const add = (t: string | string[] | undefined) => {
    for (const x of t === undefined ? [] : Array.isArray(t) ? t : [t]) types.add(x);
  };
  add(spec.on);
  add(spec.absence?.after);
  add(spec.absence?.missing);
  add(spec.sequence?.first);
  add(spec.sequence?.followedBy);
  add(spec.count?.of);
  add(spec.count?.after);
  add(spec.count?.unless);
  add(spec.streak?.of);
  add(spec.streak?.resetOn);
  if (spec.inactivity || spec.purchaseCycle) return true;
  return types.size === 0 || types.has(type);
}

/** The report as text, one block per rule (rules that fired first). */
export function formatExplain(r: ExplainReport): string {
  const time = eventTimeFormat(r.tz);
  const lines = [`customer ${r.customer}: ${r.events} events replayed (times in ${r.tz})`];
  if (r.end !== undefined) lines.push(endOfEventTime(r.end, r.tz, r.endIsLastEvent));
  for (const x of r.rejected) lines.push(`  rejected ${x}`);
  const rules = [...r.rules].sort((a, b) => Number(b.fired.length > 0) - Number(a.fired.length > 0));
  for (const rule of rules) {
    lines.push('');
    const counts = { true: 0, false: 0, error: 0, none: 0 };
    for (const l of rule.looks) counts[l.when]++;
    lines.push(
      `${rule.id} (${rule.kind}): ${rule.fired.length > 0 ? `fired ${rule.fired.length}×` : 'never fired'}` +
        `; looked at ${rule.looks.length} events (when true ${counts.true}, false ${counts.false}, error ${counts.error}${counts.none ? `, no when ${counts.none}` : ''})`,
    );
    for (const t of rule.fired) lines.push(`  fired   ${time(t.eventTime)}  ${t.id}`);
    for (const l of rule.looks) {
      if (l.fired) continue;
      if (rule.fired.length > 0 && l.held === undefined) continue;
      lines.push(
        `  ${l.held ? 'held ' : 'not  '}   ${time(l.ts)}  ${l.event} ${l.type}: when ${l.when}${l.held ? ` — ${l.held}` : ''}`,
      );
    }
    for (const p of rule.pending)
      lines.push(`  pending ${p.kind} timer due ${time(p.due)}${p.key ? ` (key ${p.key})` : ''}`);
    if (rule.looks.length === 0 && rule.fired.length === 0 && rule.pending.length === 0)
      lines.push('  no event of the types it looks at');
  }
  return `${lines.join('\n')}\n`;
}
