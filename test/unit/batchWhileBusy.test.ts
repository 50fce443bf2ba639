/**
 * batchWhileBusy in virtual time (RxJS TestScheduler marbles, as RxJS's own operator specs): each
 * task is a cold observable that answers after a few frames, and the test records which work each
 * task got and when it started.
 */
import { NEVER, type Observable, of, Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { batchWhileBusy, type Work } from '../../operators/batchWhileBusy.js';

type W = Work<number, string>;

/** Input marbles: a letter is an input array or a control, by the `values` map. */
const items = (...xs: number[]): W => ({ items: xs });
const control = (c: string): W => ({ control: c });

/** Describes what a task got: "1,2" for items, "!swap" for a control. */
const label = (w: W): string => (w.items ? w.items.join(',') : `!${w.control}`);

function scheduler() {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

/**
 * Runs `input` through batchWhileBusy whose tasks take `taskMarble` (a cold observable emitting the
 * task's label); returns the started tasks as [frame, label].
 */
function runCase(
  s: TestScheduler,
  input: Observable<W>,
  maxItems: number,
  concurrency: number,
  taskMarble: string,
) {
  const started: Array<[number, string]> = [];
  const out = input.pipe(
    batchWhileBusy<number, string, string>({
      maxItems,
      concurrency,
      run: (w) => {
        started.push([s.now(), label(w)]);
        return s.createColdObservable(taskMarble, { r: label(w) });
      },
    }),
  );
  return { out, started };
}

describe('batchWhileBusy', () => {
  it('starts items at once while there is room and batches what arrives while busy', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable, flush }) => {
      const input = hot<W>('a-b-c-----|', { a: items(1, 2), b: items(3), c: items(4, 5) });
      const { out, started } = runCase(s, input, 100, 1, '-----(r|)');
      expectObservable(out).toBe('-----x----(y|)', { x: '1,2', y: '3,4,5' });
      flush();
      // no waiting for a batch to fill: 1,2 at frame 0; 3 and 4,5 waited for the running task
      expect(started).toEqual([
        [0, '1,2'],
        [5, '3,4,5'],
      ]);
    });
  });

  it('never runs more than `concurrency` tasks and caps a batch at maxItems (whole input arrays)', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable, flush }) => {
      const input = hot<W>('(abcde)|', {
        a: items(1),
        b: items(2),
        c: items(3, 4),
        d: items(5),
        e: items(6, 7, 8, 9),
      });
      const { out, started } = runCase(s, input, 3, 2, '----(r|)');
      expectObservable(out).toBe('----(xy)(zw|)', { x: '1', y: '2', z: '3,4,5', w: '6,7,8,9' });
      flush();
      expect(started).toEqual([
        [0, '1'],
        [0, '2'],
        [4, '3,4,5'],
        [4, '6,7,8,9'], // an input array larger than maxItems still goes whole
      ]);
    });
  });

  it('emits results in start order, also when a later task finishes first', () => {
    const s = scheduler();
    s.run(({ hot, cold, expectObservable }) => {
      const input = hot<W>('(ab)|', { a: items(1), b: items(2) });
      const durations: Record<string, string> = { '1': '----(r|)', '2': '-(r|)' };
      const out = input.pipe(
        batchWhileBusy<number, string, string>({
          maxItems: 10,
          concurrency: 2,
          run: (w) => cold(durations[label(w)]!, { r: label(w) }),
        }),
      );
      expectObservable(out).toBe('----(xy|)', { x: '1', y: '2' });
    });
  });

  it('runs a control alone, after every item before it and before every item after it', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable, flush }) => {
      const input = hot<W>('(abcd)|', { a: items(1), b: items(2), c: control('swap'), d: items(3) });
      const { out, started } = runCase(s, input, 10, 1, '--(r|)');
      expectObservable(out).toBe('--a-b-c-(d|)', { a: '1', b: '2', c: '!swap', d: '3' });
      flush();
      // the waiting 2 is not merged with 3 across the control, and nothing overtakes the one slot
      expect(started.map(([, l]) => l)).toEqual(['1', '2', '!swap', '3']);
    });
  });

  it('on completion runs what waits and completes after the last result', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable }) => {
      const input = hot<W>('ab|', { a: items(1), b: items(2) });
      const { out } = runCase(s, input, 1, 1, '---(r|)');
      expectObservable(out).toBe('---x--(y|)', { x: '1', y: '2' });
    });
  });

  it('ignores empty input arrays and completes at once on an empty input', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable, flush }) => {
      const { out, started } = runCase(s, hot<W>('-a--|', { a: items() }), 10, 1, '-(r|)');
      expectObservable(out).toBe('----|');
      flush();
      expect(started).toEqual([]);
    });
  });

  it('never completes on an input that never completes, and runs what it got', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable }) => {
      const { out } = runCase(s, hot<W>('a-', { a: items(1) }), 10, 1, '-(r|)');
      expectObservable(out).toBe('-x', { x: '1' });
    });
    const s2 = scheduler();
    s2.run(({ expectObservable }) => {
      expectObservable(runCase(s2, NEVER as Observable<W>, 10, 1, '-(r|)').out).toBe('');
    });
  });

  it('fails with the error of a failed task and starts nothing after it', () => {
    const s = scheduler();
    s.run(({ hot, cold, expectObservable, flush }) => {
      const input = hot<W>('(ab)c|', { a: items(1), b: items(2), c: items(3) });
      const started: string[] = [];
      const out = input.pipe(
        batchWhileBusy<number, string, string>({
          maxItems: 1,
          concurrency: 2,
          run: (w) => {
            started.push(label(w));
            return label(w) === '2'
              ? cold('-#', undefined, new Error('worker lost'))
              : cold('---(r|)', { r: 'x' });
          },
        }),
      );
      expectObservable(out).toBe('-#', undefined, new Error('worker lost'));
      flush();
      expect(started).toEqual(['1', '2']);
    });
  });

  it('fails with the error of the input', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable }) => {
      const { out } = runCase(s, hot<W>('a#', { a: items(1) }), 10, 1, '---(r|)');
      expectObservable(out).toBe('-#');
    });
  });

  it('after unsubscribe starts no waiting work', () => {
    const s = scheduler();
    s.run(({ hot, expectObservable, flush }) => {
      const input = hot<W>('abc---|', { a: items(1), b: items(2), c: items(3) });
      const { out, started } = runCase(s, input, 1, 1, '---(r|)');
      expectObservable(out, '^--!').toBe('---');
      flush();
      // 1 was running when the subscriber left at frame 3; 2 and 3 waited and were dropped
      expect(started).toEqual([[0, '1']]);
    });
  });

  it('after unsubscribe starts nothing when a promise task settles later', async () => {
    const input = new Subject<W>();
    const started: string[] = [];
    let finish: (v: string) => void = () => {};
    const sub = input
      .pipe(
        batchWhileBusy<number, string, string>({
          maxItems: 1,
          concurrency: 1,
          run: (w) => {
            started.push(label(w));
            return new Promise<string>((r) => {
              finish = r;
            });
          },
        }),
      )
      .subscribe();
    input.next(items(1));
    input.next(items(2));
    sub.unsubscribe();
    finish('done');
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual(['1']);
  });

  it('fails when a task completes without a result', () => {
    const s = scheduler();
    s.run(({ hot, cold, expectObservable }) => {
      const out = hot<W>('a', { a: items(1) }).pipe(
        batchWhileBusy<number, string, string>({ maxItems: 1, concurrency: 1, run: () => cold('-|') }),
      );
      expectObservable(out).toBe(
        '-#',
        undefined,
        new Error('batchWhileBusy: a task completed without a result'),
      );
    });
  });

  it('refuses sizes that are not positive integers', () => {
    expect(() => batchWhileBusy({ maxItems: 0, concurrency: 1, run: () => of(1) })).toThrow(RangeError);
    expect(() => batchWhileBusy({ maxItems: 1, concurrency: 0.5, run: () => of(1) })).toThrow(RangeError);
  });
});
