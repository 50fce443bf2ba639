const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

// Parts such as "1h" or "1.5d", concatenated without spaces ("1h30m"); "m" is minutes, "ms" milliseconds.
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;

/**
 * Milliseconds of a duration written as `30s`, `10m`, `24h`, `7d`, `2w`, `500ms` or a
 * concatenation (`1h30m`); throws an Error naming the accepted forms on anything else.
 */
export function parseDuration(text: string): number {
  if (typeof text !== 'string' || text.length === 0) throw new Error(durationMessage(text));
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== start) throw new Error(durationMessage(text));
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? Number.NaN);
  }
  if (!Number.isFinite(total)) throw new Error(durationMessage(text));
  return Math.round(total);
}

function durationMessage(text: unknown): string {
  return `${JSON.stringify(text)} is not a duration like "30s", "10m", "24h" or "7d" (units: ms, s, m, h, d, w)`;
}
