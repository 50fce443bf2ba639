import { pino } from 'pino';

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

/** The engine's structured logger (JSON lines on stderr; level from CXSTREAM_LOG_LEVEL, default info). */
export const log = pino(
  { name: 'cxstream', level: process.env.CXSTREAM_LOG_LEVEL ?? 'info' },
  {
    write(line: string) {
      if (diverted) diverted(line);
      else stderr.write(line);
    },
  },
);
