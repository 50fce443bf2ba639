import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type TimerRecord, timerId } from '../../operators/ruleModel.js';
import { TimerQueue } from '../../operators/timers.js';

const rec = (due: number, rule = 'r'): TimerRecord => ({
  kind: 'absence',
  rule,
  key: '',
  due,
  queuedAt: due,
});

describe('TimerQueue', () => {
  it('pops due timers in (due, customer, id) order and deletes their records', () => {
    const q = new TimerQueue();
    const maps: Record<string, Record<string, TimerRecord>> = { a: {}, b: {} };
    q.arm(maps.b!, 'b', 'r', rec(5));
    q.arm(maps.a!, 'a', 'x', rec(5));
    q.arm(maps.a!, 'a', 'r', rec(3));
    q.arm(maps.a!, 'a', 'late', rec(9));
    const popped: string[] = [];
    for (let n = q.popDue(6, (c) => maps[c]); n; n = q.popDue(6, (c) => maps[c]))
      popped.push(`${n[0]}/${n[1]}`);
    expect(popped).toEqual(['a/r', 'a/x', 'b/r']);
    expect(Object.keys(maps.a!)).toEqual(['late']);
  });

  it('restarts to a later time without growing the heap, and to an earlier time with one entry', () => {
    const q = new TimerQueue();
    const m: Record<string, TimerRecord> = {};
    q.arm(m, 'c', 'r', rec(10));
    for (let t = 11; t < 1000; t++) q.arm(m, 'c', 'r', rec(t));
    expect(q.size).toBe(1);
    expect(q.popDue(500, () => m)).toBeUndefined(); // surfaced at 10, pushed again at 999
    expect(q.popDue(999, () => m)).toBeUndefined(); // due before 999 only: the limit is exclusive
    expect(q.popDue(1000, () => m)?.[2].due).toBe(999);
    q.arm(m, 'c', 'r', rec(50));
    q.arm(m, 'c', 'r', rec(20));
    expect(q.popDue(21, () => m)?.[2].due).toBe(20);
    expect(q.popDue(100, () => m)).toBeUndefined(); // the stale entry at 50 is dropped
  });

  it('drops cancelled timers lazily', () => {
    const q = new TimerQueue();
    const m: Record<string, TimerRecord> = {};
    q.arm(m, 'c', 'r', rec(10));
    delete m.r;
    expect(q.popDue(100, () => m)).toBeUndefined();
    expect(q.size).toBe(0);
  });

  it('keys timers by rule and key', () => {
    expect(timerId('r', '')).toBe('r');
    expect(timerId('r', 'k')).not.toBe(timerId('r', ''));
  });

  it('fires exactly the latest due of each timer, matching a map-based model', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 100 }), fc.boolean()), {
          maxLength: 80,
        }),
        (ops) => {
          const q = new TimerQueue();
          const maps: Record<string, Record<string, TimerRecord>> = { a: {}, b: {}, c: {} };
          const model = new Map<string, number>();
          for (const [c, due, cancel] of ops) {
            if (cancel) {
              delete maps[c]!.r;
              model.delete(c);
            } else {
              q.arm(maps[c]!, c, 'r', rec(due));
              model.set(c, due);
            }
          }
          const got: string[] = [];
          for (let n = q.popDue(1000, (x) => maps[x]); n; n = q.popDue(1000, (x) => maps[x]))
            got.push(`${n[0]}@${n[2].due}`);
          const want = [...model]
            .sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : 1))
            .map(([c, d]) => `${c}@${d}`);
          expect(got).toEqual(want);
        },
      ),
    );
  });
});
