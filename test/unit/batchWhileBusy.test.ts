import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { batchWhileBusy, type Work } from '../../operators/batchWhileBusy.js';

/** A `run` whose tasks finish only when the test says so; records what each task got. */
function manualRun() {
  const tasks: Array<{ work: Work<number, string>; finish: (r: string) => void; fail: (e: Error) => void }> =
    [];
  const run = (work: Work<number, string>) =>
    new Promise<string>((resolve, reject) => tasks.push({ work, finish: resolve, fail: reject }));
  const started = () => tasks.map((t) => t.work.items ?? t.work.control);
  return { tasks, run, started };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function setup(maxItems: number, concurrency: number) {
  const input = new Subject<Work<number, string>>();
  const { tasks, run, started } = manualRun();
  const out: string[] = [];
  let done = false;
  let error: unknown;
  input.pipe(batchWhileBusy({ maxItems, concurrency, run })).subscribe({
    next: (r) => out.push(r),
    complete: () => {
      done = true;
    },
    error: (e) => {
      error = e;
    },
  });
  return { input, tasks, started, out, isDone: () => done, error: () => error };
}

describe('batchWhileBusy', () => {
  it('starts items at once while there is room, and batches what arrives while busy', async () => {
    const s = setup(100, 1);
    s.input.next({ items: [1, 2] });
    expect(s.started()).toEqual([[1, 2]]); // no waiting for a batch to fill
    s.input.next({ items: [3] });
    s.input.next({ items: [4, 5] });
    expect(s.started()).toEqual([[1, 2]]);
    s.tasks[0]!.finish('a');
    await tick();
    expect(s.started()).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    expect(s.out).toEqual(['a']);
  });

  it('keeps `concurrency` tasks running and caps a batch at maxItems (whole input arrays)', async () => {
    const s = setup(3, 2);
    s.input.next({ items: [1] });
    s.input.next({ items: [2] });
    s.input.next({ items: [3, 4] });
    s.input.next({ items: [5] });
    s.input.next({ items: [6, 7, 8, 9] });
    expect(s.started()).toEqual([[1], [2]]);
    s.tasks[0]!.finish('a');
    await tick();
    expect(s.started()).toEqual([[1], [2], [3, 4, 5]]);
    s.tasks[1]!.finish('b');
    await tick();
    // an input array larger than maxItems still goes whole
    expect(s.started()).toEqual([[1], [2], [3, 4, 5], [6, 7, 8, 9]]);
  });

  it('emits results in start order, also when later tasks finish first', async () => {
    const s = setup(10, 3);
    for (const i of [1, 2, 3]) s.input.next({ items: [i] });
    s.tasks[2]!.finish('c');
    s.tasks[1]!.finish('b');
    await tick();
    expect(s.out).toEqual([]);
    s.tasks[0]!.finish('a');
    await tick();
    expect(s.out).toEqual(['a', 'b', 'c']);
  });

  it('runs a control after every item before it and before every item after it', async () => {
    const s = setup(10, 1);
    s.input.next({ items: [1] });
    s.input.next({ items: [2] });
    s.input.next({ control: 'swap' });
    s.input.next({ items: [3] });
    // the waiting item goes before the control even though the one task slot is taken
    expect(s.started()).toEqual([[1], [2], 'swap']);
    for (const [i, r] of ['a', 'b', 'c'].entries()) s.tasks[i]!.finish(r);
    await tick();
    expect(s.started()).toEqual([[1], [2], 'swap', [3]]);
    s.tasks[3]!.finish('d');
    await tick();
    expect(s.out).toEqual(['a', 'b', 'c', 'd']);
  });

  it('on completion starts what waits and completes after the last result', async () => {
    const s = setup(10, 1);
    s.input.next({ items: [1] });
    s.input.next({ items: [2] });
    s.input.next({ items: [] });
    s.input.complete();
    expect(s.started()).toEqual([[1], [2]]);
    s.tasks[0]!.finish('a');
    await tick();
    expect(s.isDone()).toBe(false);
    s.tasks[1]!.finish('b');
    await tick();
    expect(s.out).toEqual(['a', 'b']);
    expect(s.isDone()).toBe(true);
  });

  it('fails with the error of a failed task', async () => {
    const s = setup(10, 2);
    s.input.next({ items: [1] });
    s.input.next({ items: [2] });
    s.tasks[1]!.fail(new Error('worker lost'));
    await tick();
    expect((s.error() as Error).message).toBe('worker lost');
    s.tasks[0]!.finish('a');
    await tick();
    expect(s.out).toEqual([]);
  });

  it('refuses sizes that are not positive integers', () => {
    expect(() => batchWhileBusy({ maxItems: 0, concurrency: 1, run: async () => 1 })).toThrow(RangeError);
    expect(() => batchWhileBusy({ maxItems: 1, concurrency: 0.5, run: async () => 1 })).toThrow(RangeError);
  });
});
