/**
 * Which task outputs of each partition the sinks have accepted. The worker pool numbers each
 * partition's tasks (1, 2, ...); outputs are delivered concurrently, so this tracks the contiguous prefix per
 * partition. A checkpoint waits here until every output of the tasks before its snapshot is
 * delivered: a state stored before the outputs it caused would lose them in a crash.
 */
export class TaskDelivery {
  /** Per partition: every task up to this number is delivered. */
  private readonly upTo: number[];
  /** Per partition: delivered task numbers above the prefix. */
  private readonly ahead: Array<Set<number>>;
  private waiters: Array<{ p: number; task: number; resolve: () => void }> = [];

  constructor(partitions: number) {
    this.upTo = new Array<number>(partitions).fill(0);
    this.ahead = Array.from({ length: partitions }, () => new Set<number>());
  }

  /** The output of task `task` of partition `p` was accepted by the sinks (0: an output of no task). */
  delivered(p: number, task: number): void {
    if (task <= 0) return;
    const ahead = this.ahead[p]!;
    ahead.add(task);
    let n = this.upTo[p]!;
    while (ahead.delete(n + 1)) n++;
    this.upTo[p] = n;
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.p === p && w.task <= n);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => !(w.p === p && w.task <= n));
    for (const w of ready) w.resolve();
  }

  /** Resolves once every output of partition `p` up to task `task` is delivered. */
  when(p: number, task: number): Promise<void> {
    if (task <= this.upTo[p]!) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ p, task, resolve }));
  }
}
