import { pino } from 'pino';
import { withoutSecrets } from '../config/redact.js';

const stderr = pino.destination({ fd: 2, sync: true });

/** Receives the log lines instead of stderr while set (see {@link divertLogLines}). */
let diverted: ((line: string) => void) | null = null;

/**
 * Hands every log line to `write` instead of stderr, until called with null. The replay progress
 * bar redraws its line on stderr: a log line written straight there would land in the middle of
 * it, so while the bar shows it prints them above itself.
 */
export function divertLogLines(write: ((line: string) => void) | null): void {
  diverted = write;
}

/** Passwords, tokens and seeds of the running config: never written to a log line. */
const secrets: string[] = [];

/**
 * Keeps these values out of every log line from now on (the config's passwords, tokens and seeds,
 * registered when they are read). A safety net: no code logs them on purpose, but a library's error
 * may quote what it was given.
 */
export function hideInLogs(...values: string[]): void {
  for (const v of values) {
    if (v.length < 3) continue;
    // as they appear inside a JSON string as well as raw
    for (const form of [v, JSON.stringify(v).slice(1, -1)]) if (!secrets.includes(form)) secrets.push(form);
  }
}

/** The registered secrets removed from `text` (error messages printed outside the logger). */
export function hideSecrets(text: string): string {
  return secrets.length === 0 ? text : withoutSecrets(text, secrets);
}

/** Whether `level` is one pino knows (`CXSTREAM_LOG_LEVEL` / `log.level`). */
export function isLogLevel(level: string): boolean {
  return level === 'silent' || Object.hasOwn(pino.levels.values, level);
}

/**
 * The engine's structured logger (JSON lines on stderr; level from CXSTREAM_LOG_LEVEL, default
 * info, or the config's `log.level`). A level pino does not know starts at info here instead of
 * throwing while modules load; the CLI reports it as a configuration error (exit 2).
 */
export const log = pino(
  {
    name: 'cxstream',
    level: isLogLevel(process.env.CXSTREAM_LOG_LEVEL ?? '') ? process.env.CXSTREAM_LOG_LEVEL : 'info',
    hooks: { streamWrite: (line) => hideSecrets(line) },
  },
  {
    write(line: string) {
      if (diverted) diverted(line);
      else stderr.write(line);
    },
  },
);
