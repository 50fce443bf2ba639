import { createReadStream } from 'node:fs';
import { MultiBar } from 'cli-progress';
import { divertLogLines } from '../runtime/log.js';
import type { BatchOutput } from '../runtime/workerProtocol.js';
import type { EventSource } from '../source/eventSource.js';

/** Counts of a run, printed at its end (replay, demo). */
export interface RunSummary {
  add(output: BatchOutput): void;
  readonly events: number;
  readonly rejects: number;
  readonly triggersByRule: ReadonlyMap<string, number>;
  format(): string;
}

/** Collects events, dead letters (with their first reasons) and triggers per rule. */
export function replaySummary(): RunSummary {
  let events = 0;
  let rejects = 0;
  let profiles = 0;
  const reasons: string[] = [];
  const triggersByRule = new Map<string, number>();
  const ruleErrors = new Map<string, { count: number; first: string }>();
  return {
    add(o) {
      events += o.events.length;
      rejects += o.rejects.length;
      profiles += o.profiles.length;
      for (const r of o.rejects) if (reasons.length < 5) reasons.push(`seq ${r.seq}: ${r.reason}`);
      for (const t of o.triggers) triggersByRule.set(t.rule, (triggersByRule.get(t.rule) ?? 0) + 1);
      for (const e of o.ruleErrors ?? []) {
        const seen = ruleErrors.get(e.rule);
        if (seen) seen.count += e.count;
        else ruleErrors.set(e.rule, { count: e.count, first: e.first });
      }
    },
    get events() {
      return events;
    },
    get rejects() {
      return rejects;
    },
    triggersByRule,
    format() {
      const lines = [
        `events applied     ${events}`,
        `dead letters       ${rejects}`,
        `profile snapshots  ${profiles}`,
      ];
      for (const r of reasons) lines.push(`  ${r}`);
      lines.push('triggers per rule:');
      const rules = [...triggersByRule.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      const width = Math.max(4, ...rules.map(([r]) => r.length));
      for (const [rule, n] of rules) lines.push(`  ${rule.padEnd(width)}  ${String(n).padStart(7)}`);
      if (rules.length === 0) lines.push('  (none)');
      if (ruleErrors.size > 0) {
        lines.push('rule expressions that failed (counted as false):');
        for (const [rule, e] of [...ruleErrors].sort((a, b) => a[0].localeCompare(b[0])))
          lines.push(`  ${rule}: ${e.count}× — first: ${e.first}`);
      }
      return `${lines.join('\n')}\n`;
    },
  };
}

/** Counts the non-empty lines of a file (the total of a replay's progress bar). */
export async function countLines(file: string): Promise<number> {
  let n = 0;
  let last = 10;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] === 10 && last !== 10) n++;
      last = chunk[i]!;
    }
  }
  return last === 10 ? n : n + 1;
}

/**
 * Runs `work` with a progress bar of events handled out of the lines of `file` on stderr
 * (only when stderr is a terminal; logs stay clean in CI and pipes). Log lines written meanwhile
 * are printed above the bar, which is drawn again below them.
 */
export async function withProgress(
  file: string,
  source: EventSource,
  work: (onOutput: (o: BatchOutput) => void) => Promise<void>,
): Promise<void> {
  if (!process.stderr.isTTY) return work(() => {});
  // A MultiBar of one: unlike SingleBar (which returns to the cursor position saved at its start,
  // wrong once lines were printed), it moves relative to what it drew and can print lines above itself.
  const bars = new MultiBar({
    format: 'replay [{bar}] {percentage}% | {value}/{total} events | {rate} ev/s | eta {eta}s',
    stream: process.stderr,
    hideCursor: true,
    // Redraw even when the text did not change: printed lines have taken the bar's line.
    forceRedraw: true,
  });
  const started = performance.now();
  const bar = bars.create(await countLines(file), 0, { rate: 0 });
  divertLogLines((line) => bars.log(line));
  try {
    await work(() => {
      const done = source.stats().acked;
      bar.update(done, { rate: Math.round(done / ((performance.now() - started) / 1000)) });
    });
  } finally {
    divertLogLines(null);
    bars.update(); // prints the lines logged since the last redraw
    bars.stop();
  }
}
