/**
 * Customer-local wall-clock time without `Date` objects on the hot path.
 *
 * `Intl.DateTimeFormat` costs microseconds per call, so each IANA zone gets one cached formatter
 * and its UTC offset is cached per UTC hour: a warm `localHour` is two `Map` lookups and some
 * arithmetic. UTC offsets change at most once in any hour, but not always on a UTC hour boundary
 * (Australia/Lord_Howe switches at xx:30 UTC), so an hour whose start and end offsets differ is
 * marked and resolved exactly on every call.
 *
 * Unknown zones: every function takes an optional `fallbackTz` (the caller's configured default,
 * e.g. `Asia/Shanghai`). An unknown or malformed `tz` is resolved as `fallbackTz`; if that is
 * unknown too, as `UTC`. Zones are checked once and remembered, so a bad `tz` does not cost a
 * thrown exception per event.
 */

const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Bounds the per-zone offset cache; a long replay over many years would otherwise grow it freely. */
const MAX_CACHED_HOURS = 200_000;

interface Zone {
  readonly fmt: Intl.DateTimeFormat;
  /** UTC hour number → offset in ms, or NaN when the offset changes inside that hour. */
  readonly offsets: Map<number, number>;
}

/** tz → zone, or null for a tz Intl does not know. */
const zones = new Map<string, Zone | null>();

function loadZone(tz: string): Zone | null {
  let zone = zones.get(tz);
  if (zone !== undefined) return zone;
  try {
    const fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    zone = { fmt, offsets: new Map() };
  } catch {
    zone = null;
  }
  zones.set(tz, zone);
  return zone;
}

function resolveZone(tz: string, fallbackTz: string): Zone {
  return loadZone(tz) ?? loadZone(fallbackTz) ?? (loadZone('UTC') as Zone);
}

/** The offset at `ts` straight from Intl (slow path: a few microseconds). */
function exactOffset(zone: Zone, ts: number): number {
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  for (const p of zone.fmt.formatToParts(ts)) {
    switch (p.type) {
      case 'year':
        y = Number(p.value);
        break;
      case 'month':
        mo = Number(p.value);
        break;
      case 'day':
        d = Number(p.value);
        break;
      case 'hour':
        h = Number(p.value);
        break;
      case 'minute':
        mi = Number(p.value);
        break;
      case 'second':
        s = Number(p.value);
        break;
    }
  }
  // Intl shows whole seconds, so compare against the instant truncated to the second.
  return Date.UTC(y, mo - 1, d, h, mi, s) - (ts - (((ts % 1000) + 1000) % 1000));
}

function offsetOf(zone: Zone, ts: number): number {
  const hour = Math.floor(ts / HOUR);
  let off = zone.offsets.get(hour);
  if (off === undefined) {
    const start = exactOffset(zone, hour * HOUR);
    const end = exactOffset(zone, hour * HOUR + HOUR - 1);
    off = start === end ? start : Number.NaN;
    if (zone.offsets.size >= MAX_CACHED_HOURS) zone.offsets.clear();
    zone.offsets.set(hour, off);
  }
  return Number.isNaN(off) ? exactOffset(zone, ts) : off;
}

/**
 * UTC offset of `tz` at `ts` in minutes (east of Greenwich positive: Asia/Shanghai is 480).
 * An unknown `tz` resolves as `fallbackTz` (@default 'UTC'), then as UTC.
 */
export function utcOffsetMinutes(ts: number, tz: string, fallbackTz = 'UTC'): number {
  return offsetOf(resolveZone(tz, fallbackTz), ts) / 60_000;
}

/**
 * The hour 0..23 that a wall clock in `tz` shows at `ts` (epoch ms).
 * An unknown `tz` resolves as `fallbackTz` (@default 'UTC'), then as UTC.
 */
export function localHour(ts: number, tz: string, fallbackTz = 'UTC'): number {
  const local = ts + offsetOf(resolveZone(tz, fallbackTz), ts);
  return Math.floor((((local % DAY) + DAY) % DAY) / HOUR);
}

/**
 * Epoch ms of the next instant strictly after `ts` at which the wall clock in `tz` shows
 * `hour`:00 (used to defer quiet-hours triggers to 09:00).
 *
 * DST, as Temporal's 'compatible' disambiguation: when `hour`:00 is skipped by a spring-forward
 * gap that day, the result is the same wall time pushed forward by the gap (for a gap starting
 * exactly at `hour`:00, the instant the clock jumps); when it occurs twice (fall-back), the
 * earlier occurrence after `ts` is returned. An unknown `tz` resolves as `fallbackTz`
 * (@default 'UTC'), then as UTC.
 */
export function nextLocalHour(ts: number, tz: string, hour: number, fallbackTz = 'UTC'): number {
  if (!Number.isInteger(hour) || hour < 0 || hour > 23) {
    throw new RangeError(`hour must be an integer 0..23, got ${hour}`);
  }
  const zone = resolveZone(tz, fallbackTz);
  const local = ts + offsetOf(zone, ts);
  const dayStart = Math.floor(local / DAY) * DAY;
  // Offsets never move by a day, so the answer is on the local day of `ts` or one of the next two.
  for (let i = 0; i < 3; i++) {
    const wall = dayStart + i * DAY + hour * HOUR;
    const before = wall - offsetOf(zone, wall - DAY);
    const after = wall - offsetOf(zone, wall + DAY);
    const first = Math.min(before, after);
    const second = Math.max(before, after);
    const firstShows = first + offsetOf(zone, first) === wall;
    const secondShows = second + offsetOf(zone, second) === wall;
    if (firstShows && first > ts) return first;
    if (secondShows && second > ts) return second;
    // Neither candidate shows `wall`: it lies in a gap, and `before` is where the clock passes it.
    if (!firstShows && !secondShows && before > ts) return before;
  }
  // Unreachable for real zones; kept so a pathological zone still gets a sane answer.
  return ts + DAY;
}
