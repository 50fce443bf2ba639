import { Subject } from 'rxjs';
import type { EventSource, RawEvent } from '../../engine/types.js';

/** Events on demand, acks recorded: a stand-in for the JetStream source. */
export class ManualSource implements EventSource {
  readonly chunks = new Subject<RawEvent[]>();
  readonly chunks$ = this.chunks.asObservable();
  readonly acked: number[] = [];
  done(seqs: ArrayLike<number>): void {
    for (let i = 0; i < seqs.length; i++) this.acked.push(seqs[i]!);
  }
  async stop(): Promise<void> {
    this.chunks.complete();
  }
  stats() {
    return { received: 0, acked: this.acked.length, inFlight: 0, pending: 0, caughtUp: true };
  }
}
