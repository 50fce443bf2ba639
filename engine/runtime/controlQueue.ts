/**
 * The way into the pipeline's control path (`runPipeline({ controls$ })`) for tasks asked for from
 * outside it: forget requests (engine/runtime/forget.ts, via runEngine) and rule swaps
 * (engine/config/ruleReloader.ts). Each user owns one queue; runEngine merges their `requests$`
 * into the pipeline's single `controls$`.
 */
import { Observable, type Subscriber } from 'rxjs';
import type { BatchOutput, ControlRequest } from './workerProtocol.js';

/**
 * Control tasks put in the pipeline's path: held until the pipeline subscribes (it does after the
 * aggregates' first task), refused once it has stopped (a drain), and rejected at {@link close} if
 * still waiting, so that a stopping engine answers instead of hanging. One subscriber at a time;
 * its unsubscribing closes the queue.
 */
export class ControlQueue {
  private subscriber: Subscriber<ControlRequest> | null = null;
  private waiting: ControlRequest[] = [];
  private readonly open = new Set<ControlRequest>();
  private done = false;

  readonly requests$ = new Observable<ControlRequest>((subscriber) => {
    this.subscriber = subscriber;
    for (const r of this.waiting.splice(0)) subscriber.next(r);
    return () => {
      this.subscriber = null;
      this.close();
    };
  });

  /** Closed: by {@link close} or by the pipeline unsubscribing; {@link run} refuses from then on. */
  get closed(): boolean {
    return this.done;
  }

  /** Runs a task on every partition; resolves with their outputs. */
  run(request: Omit<ControlRequest, 'resolve' | 'reject'>): Promise<BatchOutput[]> {
    return new Promise((resolve, reject) => {
      if (this.done) {
        reject(new Error('the engine is stopping'));
        return;
      }
      const r: ControlRequest = {
        ...request,
        resolve: (outs) => {
          this.open.delete(r);
          resolve(outs);
        },
        reject: (e) => {
          this.open.delete(r);
          reject(e);
        },
      };
      this.open.add(r);
      if (this.subscriber) this.subscriber.next(r);
      else this.waiting.push(r);
    });
  }

  /** Rejects what is still waiting or running and completes `requests$`; later requests are refused. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.waiting = [];
    for (const r of [...this.open]) r.reject?.(new Error('the engine is stopping'));
    const subscriber = this.subscriber;
    this.subscriber = null;
    subscriber?.complete();
  }
}
