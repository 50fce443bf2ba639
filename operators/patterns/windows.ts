/**
 * Small event-time lists the window patterns keep per customer (sequence `first` times, count
 * `of`/`unless` times per key, anchors): appended as events are seen, pruned in place once older
 * than the horizon (watermark − window), so they hold only what a future firing can still need.
 */

/** Longest list a pattern keeps per key; beyond it the oldest entries go. */
export const MAX_WINDOW_ENTRIES = 1000;

/** Times per key, as parallel arrays (plain data; keys come from events, so no object keys). */
export interface KeyedTimes {
  keys: string[];
  times: number[][];
}

/** Appends `ts`, drops entries older than `horizon` and the oldest beyond `max`; returns the list. */
export function pushWindow(list: number[] | undefined, ts: number, horizon: number, max: number): number[] {
  const l = list ?? [];
  let w = 0;
  for (let i = 0; i < l.length; i++) if (l[i]! >= horizon) l[w++] = l[i]!;
  l.length = w;
  l.push(ts);
  if (l.length > max) l.splice(0, l.length - max);
  return l;
}

/** Appends `ts` under `key` and prunes every key; keys left empty are removed. */
export function keyedAdd(
  lists: KeyedTimes | undefined,
  key: string,
  ts: number,
  horizon: number,
  max: number,
): KeyedTimes {
  const w = lists ?? { keys: [], times: [] };
  let i = w.keys.indexOf(key);
  if (i < 0) {
    w.keys.push(key);
    w.times.push([]);
    i = w.keys.length - 1;
  }
  w.times[i] = pushWindow(w.times[i], ts, horizon, max);
  for (let j = w.keys.length - 1; j >= 0; j--) {
    if (j === i) continue;
    const l = w.times[j]!;
    let n = 0;
    for (let x = 0; x < l.length; x++) if (l[x]! >= horizon) l[n++] = l[x]!;
    l.length = n;
    if (n === 0) {
      w.keys.splice(j, 1);
      w.times.splice(j, 1);
      if (j < i) i--;
    }
  }
  return w;
}

/**
 * Both lists' times together (identity stitching: two customers' windows become one), sorted, the
 * newest `max` kept; a time on both sides stays twice (two events). Neither input is changed.
 */
export function mergeTimes(
  a: readonly number[] | undefined,
  b: readonly number[] | undefined,
  max: number = MAX_WINDOW_ENTRIES,
): number[] {
  const all = [...(a ?? []), ...(b ?? [])].sort((x, y) => x - y);
  if (all.length > max) all.splice(0, all.length - max);
  return all;
}

/** {@link mergeTimes} per key: `a`'s keys in their order, then `b`'s other keys. Neither input is changed. */
export function mergeKeyedTimes(
  a: KeyedTimes | undefined,
  b: KeyedTimes | undefined,
  max: number = MAX_WINDOW_ENTRIES,
): KeyedTimes {
  const out: KeyedTimes = { keys: [], times: [] };
  for (const [i, key] of (a?.keys ?? []).entries()) {
    const j = b === undefined ? -1 : b.keys.indexOf(key);
    out.keys.push(key);
    out.times.push(mergeTimes(a!.times[i], j < 0 ? undefined : b!.times[j], max));
  }
  for (const [j, key] of (b?.keys ?? []).entries()) {
    if (out.keys.includes(key)) continue;
    out.keys.push(key);
    out.times.push(mergeTimes(undefined, b!.times[j], max));
  }
  return out;
}

function countIn(list: number[] | undefined, from: number, to: number): number {
  let n = 0;
  if (list !== undefined) for (const t of list) if (t > from && t <= to) n++;
  return n;
}

/**
 * Whether a count rule fires on an `of` event at `ts` for `key`: at least `n` counted events in
 * (ts − window, ts] (sliding) or, anchored, in (a, a + window] of some anchor a with a < ts <= a + window;
 * and no `unless` event of the same key in that window.
 */
export function countFires(
  counted: KeyedTimes | undefined,
  vetoes: KeyedTimes | undefined,
  anchors: number[] | undefined,
  key: string,
  ts: number,
  windowMs: number,
  n: number,
  anchored: boolean,
): boolean {
  const xs = counted?.times[counted.keys.indexOf(key)];
  const us = vetoes?.times[vetoes.keys.indexOf(key)];
  if (!anchored) return countIn(xs, ts - windowMs, ts) >= n && countIn(us, ts - windowMs, ts) === 0;
  if (anchors === undefined) return false;
  for (const a of anchors) {
    if (!(a < ts && ts <= a + windowMs)) continue;
    if (countIn(xs, a, a + windowMs) >= n && countIn(us, a, a + windowMs) === 0) return true;
  }
  return false;
}
