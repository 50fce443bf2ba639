/**
 * Event time in the history commands (`replay`, `explain`, `demo`): where a replay ends by default,
 * and how times are printed.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** The largest valid Date, as decodeEvent bounds `ts`. */
const MAX_TS = 8_640_000_000_000_000;

/**
 * The latest event time (`ts`) in an NDJSON file, the default end of `replay` and `explain`: at the
 * end of the file event time moves there, so timers due by the last event fire whichever partition
 * (or, in `explain`, whichever customer) they belong to. Lines that are not events with a valid `ts`
 * are skipped, as are events more than `maxFutureSkewMs` ahead of the clock (the engine
 * dead-letters those: they must not move event time either). Undefined when no line has a `ts`.
 */
export async function lastEventTime(
  file: string,
  maxFutureSkewMs = Number.POSITIVE_INFINITY,
): Promise<number | undefined> {
  const limit = Math.min(MAX_TS, Date.now() + maxFutureSkewMs);
  let last: number | undefined;
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    let ts: unknown;
    try {
      ts = (JSON.parse(line) as { ts?: unknown } | null)?.ts;
    } catch {
      continue; // dead-lettered by the replay, with its reason
    }
    if (typeof ts === 'number' && Number.isSafeInteger(ts) && ts > (last ?? 0) && ts <= limit) last = ts;
  }
  return last;
}

/**
 * Formats event times as `2026-11-20 10:00:00` in `tz`: the form of `replay`'s sample and
 * `explain`, whose headers name the zone.
 */
export function eventTimeFormat(tz: string): (ts: number) => string {
  const format = new Intl.DateTimeFormat('sv-SE', { timeZone: tz, dateStyle: 'short', timeStyle: 'medium' });
  return (ts) => format.format(ts);
}

/** The line of `replay` and `explain` that says where event time ended and why. */
export function endOfEventTime(end: number, tz: string, isLastEvent: boolean): string {
  const why = isLastEvent ? "the file's last event; --until DATE goes further" : '--until';
  return `event time at the end: ${eventTimeFormat(tz)(end)} (${tz}), ${why}`;
}
