import { utcOffsetMinutes } from '../../operators/localTime.js';
import type { Trigger } from '../../operators/types.js';
import { MemoryDeadLetterSink } from '../../sinks/deadLetters.js';
import { MemoryProfileStore } from '../../sinks/profileStore.js';
import { TombstoneStore } from '../../sinks/tombstoneStore.js';
import { loadConfig } from '../config/config.js';
import { UsageError } from '../config/errors.js';
import { loadRules } from '../config/rulesFile.js';
import { connectNats } from '../nats/connect.js';
import { openSinks } from '../runtime/openSinks.js';
import type { PipelineSinks } from '../runtime/pipeline.js';
import { runEngine } from '../runtime/runEngine.js';
import { iterableSource, ndjsonEvents } from '../source/fileSource.js';
import { endOfEventTime, eventTimeFormat, lastEventTime } from './eventTime.js';
import { replaySummary, withProgress } from './progress.js';

/** Options of `cxstream replay`. */
export interface ReplayOptions {
  /** NDJSON file, one event per line. */
  file: string;
  /** Config file. @default config/default.yaml */
  config?: string;
  /** Rule files instead of the config's (what-if). @default the config's `rules` */
  rules?: string[];
  /** Publish nothing and write nothing: triggers are only counted and sampled. @default false */
  dryRun?: boolean;
  /**
   * At the end, move event time to this date (`YYYY-MM-DD` = 00:00 in `engine.defaultTz`, or ISO 8601
   * with a zone), so timers of customers silent since then come due.
   * @default the file's last event time ({@link lastEventTime})
   */
  until?: string;
  /** Also publish to NATS (not with `dryRun`). @default false */
  publish?: boolean;
  /** Triggers shown in the sample. @default 10 */
  sample?: number;
  /** Where the report goes. @default process.stdout */
  out?: NodeJS.WritableStream;
}

/** What would have fired: counts per rule and per day, and the earliest triggers. */
export interface WhatIfReport {
  /** Time zone of the days (the config's `engine.defaultTz`). */
  tz: string;
  /** Event time at the end, where timers due by then fired (`--until`, else the file's last event time). */
  end?: number;
  /** Whether {@link end} is the file's last event time (no `--until`). */
  endIsLastEvent: boolean;
  total: number;
  byRule: Map<string, number>;
  /** `YYYY-MM-DD` (in `tz`, by trigger event time) → rule → count. */
  byDay: Map<string, Map<string, number>>;
  /** The earliest triggers by event time, then id (the same for every run of the same input). */
  sample: Trigger[];
}

/**
 * `cxstream replay`: runs an NDJSON file through the same pipeline and operators as `run`. With
 * `dryRun`, sinks are in memory only (nothing is published, nothing written to ClickHouse) and the
 * report says what would have fired.
 */
export async function runReplay(options: ReplayOptions): Promise<WhatIfReport> {
  if (options.dryRun && options.publish) throw new UsageError('--dry-run and --publish exclude each other');
  const out = options.out ?? process.stdout;
  const config = loadConfig(options.config);
  const rules = loadRules(options.rules && options.rules.length > 0 ? options.rules : config.rules);
  const until =
    options.until === undefined
      ? await lastEventTime(options.file, config.engine.maxFutureSkewMs)
      : parseUntil(options.until, config.engine.defaultTz);
  const report = whatIfCollector(
    config.engine.defaultTz,
    options.sample ?? 10,
    until,
    options.until === undefined,
  );
  const summary = replaySummary();
  const source = iterableSource(ndjsonEvents(options.file));
  const nc = options.publish ? await connectNats(config) : null;
  const opened = options.dryRun ? null : await openSinks(config, nc);
  const sinks: PipelineSinks = opened ?? dryRunSinks();
  try {
    // With NATS (the bucket is created by openSinks when missing): forgotten customers stay out of
    // what the replay writes.
    const tombstones = nc && opened ? await (await TombstoneStore.open(nc)).all() : undefined;
    await withProgress(options.file, source, (onOutput) =>
      runEngine({
        config,
        rules,
        source,
        sinks,
        live: false,
        advanceTo: until,
        tombstones,
        onOutput: (o) => {
          summary.add(o);
          report.add(o.triggers);
          onOutput(o);
        },
      }),
    );
  } finally {
    await opened?.close();
    await nc?.drain();
  }
  const result = report.result();
  out.write(summary.format());
  out.write(formatWhatIf(result, options.dryRun === true));
  return result;
}

/** Sinks of a dry run: everything stays in memory, ClickHouse rows are dropped. */
function dryRunSinks(): PipelineSinks {
  return {
    // Triggers are counted by the report (onOutput); keeping them all would grow with the history.
    triggers: { publish: async () => {} },
    deadLetters: new MemoryDeadLetterSink(),
    profiles: new MemoryProfileStore(),
    // Every writer method (whatever the interface holds) accepts and drops its rows.
    clickhouse: new Proxy({} as PipelineSinks['clickhouse'], {
      get: (_target, key) => (key === 'then' ? undefined : async () => {}),
    }),
  };
}

/** Epoch ms of `--until`: `YYYY-MM-DD` is 00:00 of that day in `tz`; otherwise ISO 8601 with a zone. */
export function parseUntil(text: string, tz: string): number {
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (day) {
    const utcMidnight = Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]));
    // The offset at the guess, then at the corrected instant (a DST change near midnight).
    let ts = utcMidnight - utcOffsetMinutes(utcMidnight, tz) * 60_000;
    ts = utcMidnight - utcOffsetMinutes(ts, tz) * 60_000;
    return ts;
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    const ts = Date.parse(text);
    if (Number.isFinite(ts)) return ts;
  }
  throw new UsageError(
    `--until must be a date YYYY-MM-DD (00:00 in ${tz}) or an ISO 8601 time with a zone, got "${text}"`,
  );
}

/** Collects counts and a bounded, deterministic sample of the triggers of a run. */
function whatIfCollector(tz: string, sampleSize: number, end: number | undefined, endIsLastEvent: boolean) {
  const byRule = new Map<string, number>();
  const byDay = new Map<string, Map<string, number>>();
  const days = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  });
  let total = 0;
  // Kept sorted; at most sampleSize (outputs of partitions arrive in any order: keep the earliest).
  const sample: Trigger[] = [];
  const before = (a: Trigger, b: Trigger) =>
    a.eventTime - b.eventTime || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return {
    add(triggers: readonly Trigger[]) {
      for (const t of triggers) {
        total++;
        byRule.set(t.rule, (byRule.get(t.rule) ?? 0) + 1);
        const day = days.format(t.eventTime);
        let perRule = byDay.get(day);
        if (perRule === undefined) {
          perRule = new Map();
          byDay.set(day, perRule);
        }
        perRule.set(t.rule, (perRule.get(t.rule) ?? 0) + 1);
        if (sampleSize > 0 && (sample.length < sampleSize || before(t, sample[sample.length - 1]!) < 0)) {
          let i = sample.length;
          while (i > 0 && before(t, sample[i - 1]!) < 0) i--;
          sample.splice(i, 0, t);
          if (sample.length > sampleSize) sample.pop();
        }
      }
    },
    result(): WhatIfReport {
      return { tz, end, endIsLastEvent, total, byRule, byDay, sample };
    },
  };
}

/** The report as text: rules × days table, then the sample. */
export function formatWhatIf(r: WhatIfReport, dryRun: boolean): string {
  const lines: string[] = [];
  lines.push(
    dryRun
      ? `dry run: nothing was published or written; ${r.total} triggers would have fired`
      : `${r.total} triggers fired`,
  );
  const time = eventTimeFormat(r.tz);
  if (r.end !== undefined) lines.push(endOfEventTime(r.end, r.tz, r.endIsLastEvent));
  const rules = [...r.byRule.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k]) => k);
  const days = [...r.byDay.keys()].sort();
  if (rules.length > 0) {
    const width = Math.max(4, ...rules.map((x) => x.length));
    lines.push(`triggers per rule and day (days in ${r.tz}, by event time):`);
    lines.push(
      `  ${'rule'.padEnd(width)}  ${'total'.padStart(7)}  ${days.map((d) => d.padStart(10)).join('  ')}`,
    );
    for (const rule of rules) {
      const cells = days.map((d) => String(r.byDay.get(d)?.get(rule) ?? 0).padStart(10));
      lines.push(`  ${rule.padEnd(width)}  ${String(r.byRule.get(rule)).padStart(7)}  ${cells.join('  ')}`);
    }
    lines.push(`sample (earliest ${r.sample.length} by event time):`);
    for (const t of r.sample) {
      lines.push(`  ${time(t.eventTime)}  ${t.rule}  ${t.customer}  priority ${t.priority}  ${t.id}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
