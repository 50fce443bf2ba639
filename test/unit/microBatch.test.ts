import { of, type SchedulerLike, type Subscription } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { microBatch } from '../../operators/microBatch.js';

const newScheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('microBatch', () => {
  it('emits as soon as a batch reaches maxItems; the rest waits for more', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable }) => {
      const source = cold('-a-b-c|', { a: [1, 2], b: [3, 4], c: [5] });
      expectObservable(source.pipe(microBatch({ maxItems: 3, maxWaitMs: 100, scheduler: ts }))).toBe(
        '---x--(y|)',
        { x: [1, 2, 3], y: [4, 5] },
      );
    });
  });

  it('emits maxWaitMs after the first item of the batch, not after the last', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable }) => {
      const source = cold('-a-b 10ms c|', { a: [1], b: [2], c: [3] });
      expectObservable(source.pipe(microBatch({ maxItems: 10, maxWaitMs: 5, scheduler: ts }))).toBe(
        '------x 8ms (y|)',
        { x: [1, 2], y: [3] },
      );
    });
  });

  it('starts a new wait for each batch', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable }) => {
      const source = cold('-a 9ms b 9ms |', { a: [1], b: [2] });
      expectObservable(source.pipe(microBatch({ maxItems: 10, maxWaitMs: 5, scheduler: ts }))).toBe(
        '------x 9ms y 4ms |',
        { x: [1], y: [2] },
      );
    });
  });

  it('a size-triggered emit cancels the wait of that batch', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable }) => {
      // The wait started by `a` at frame 1 would be due at 6; `c` starts a new batch at 4, due at 9.
      const source = cold('-a-bc 20ms |', { a: [1], b: [2], c: [3] });
      expectObservable(source.pipe(microBatch({ maxItems: 2, maxWaitMs: 5, scheduler: ts }))).toBe(
        '---x-----y 15ms |',
        { x: [1, 2], y: [3] },
      );
    });
  });

  it('splits an input larger than maxItems; the remainder starts a new wait', () => {
    const ts = newScheduler();
    const a = [1, 2, 3, 4, 5];
    ts.run(({ cold, expectObservable }) => {
      const source = cold('-a 20ms |', { a });
      expectObservable(source.pipe(microBatch({ maxItems: 2, maxWaitMs: 5, scheduler: ts }))).toBe(
        '-(xy) 1ms z 15ms |',
        { x: [1, 2], y: [3, 4], z: [5] },
      );
    });
    expect(a).toEqual([1, 2, 3, 4, 5]);
  });

  it('never emits an empty array, and empty inputs start no wait', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable }) => {
      // If `e` at frame 1 started the wait, the batch would be emitted at frame 6 instead of 8.
      const source = cold<number[]>('-e-a 10ms e|', { e: [], a: [1] });
      expectObservable(source.pipe(microBatch({ maxItems: 1_000, maxWaitMs: 5, scheduler: ts }))).toBe(
        '--------x 6ms |',
        { x: [1] },
      );
      expectObservable(
        cold<number[]>('-e-e|', { e: [] }).pipe(microBatch({ maxItems: 2, maxWaitMs: 1 })),
      ).toBe('----|');
    });
  });

  it('on completion emits the remainder, then completes', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable }) => {
      const source = cold('-a|', { a: [1, 2, 3] });
      expectObservable(source.pipe(microBatch({ maxItems: 10, maxWaitMs: 50, scheduler: ts }))).toBe(
        '--(x|)',
        { x: [1, 2, 3] },
      );
    });
  });

  it('passes errors through and drops the pending batch', () => {
    const ts = newScheduler();
    ts.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-#', { a: [1] }, new Error('boom'));
      expectObservable(source.pipe(microBatch({ maxItems: 10, maxWaitMs: 5, scheduler: ts }))).toBe(
        '---#',
        undefined,
        new Error('boom'),
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('unsubscription unsubscribes the source and cancels the pending wait', () => {
    const ts = newScheduler();
    const timers: Subscription[] = [];
    const spy: SchedulerLike = {
      now: () => ts.now(),
      schedule: (work, delay, state) => {
        const s = ts.schedule(work as never, delay, state);
        timers.push(s);
        return s;
      },
    };
    let cancelledBeforeDue: boolean | undefined;
    ts.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a--------|', { a: [1] });
      expectObservable(source.pipe(microBatch({ maxItems: 10, maxWaitMs: 5, scheduler: spy })), '^--!').toBe(
        '----',
      );
      expectSubscriptions(source.subscriptions).toBe('^--!');
      // The wait started at frame 1 is due at 6: at frame 4 it must already be gone.
      ts.schedule(() => {
        cancelledBeforeDue = timers.length === 1 && timers[0]!.closed;
      }, 4);
    });
    expect(cancelledBeforeDue).toBe(true);
  });

  it('uses asyncScheduler by default', () => {
    newScheduler().run(({ cold, expectObservable }) => {
      // run() puts asyncScheduler on virtual time, so the default wait shows up in the marbles.
      const source = cold('-a 10ms |', { a: [1] });
      expectObservable(source.pipe(microBatch({ maxItems: 10, maxWaitMs: 3 }))).toBe('----x 7ms |', {
        x: [1],
      });
    });
  });

  it('rejects invalid options', () => {
    expect(() => microBatch({ maxItems: 0, maxWaitMs: 5 })).toThrow(/maxItems/);
    expect(() => microBatch({ maxItems: 1.5, maxWaitMs: 5 })).toThrow(RangeError);
    expect(() => microBatch({ maxItems: 5, maxWaitMs: -1 })).toThrow(/maxWaitMs/);
    expect(() => microBatch({ maxItems: 5, maxWaitMs: Number.POSITIVE_INFINITY })).toThrow(/maxWaitMs/);
  });

  it('emits every item exactly once, in order, for a large synchronous source', () => {
    const inputs = Array.from({ length: 100 }, (_, i) => Array.from({ length: i % 7 }, (_, k) => i * 10 + k));
    const out: number[][] = [];
    of(...inputs)
      .pipe(microBatch({ maxItems: 8, maxWaitMs: 1_000 }))
      .subscribe((b) => out.push(b));
    expect(out.flat()).toEqual(inputs.flat());
    expect(out.every((b) => b.length > 0 && b.length <= 8)).toBe(true);
    expect(out.slice(0, -1).every((b) => b.length === 8)).toBe(true);
  });
});
