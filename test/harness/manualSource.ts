import { Subject } from 'rxjs';
import type { EventSource, RawEvent } from '../../engine/source/eventSource.js';
import type { RuleSpec } from '../../operators/rules.js';

/** One rule that fires on every order: a trigger per order event, to count outputs by. */
export const everyOrder: RuleSpec[] = [{ id: 'every_order', on: ['order'], priority: 1 } as RuleSpec];

const encoder = new TextEncoder();

/** An order of `customer` as the source delivers it: stream sequence `seq`, event id `e<seq>`, JSON. */
export function orderEvent(seq: number, customer: string): RawEvent {
  return {
    seq,
    subject: `cx.events.web.order.${customer}`,
    data: encoder.encode(
      JSON.stringify({
        id: `e${seq}`,
        ts: 1_800_000_000_000 + seq * 1000,
        customer,
        type: 'order',
        channel: 'web',
        amount: 10,
      }),
    ),
  };
}

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
    return { received: 0, acked: this.acked.length, inFlight: 0, pending: 0 };
  }
  /** What a tick reports: the live edge unless a test says otherwise. */
  live = true;
  async caughtUp(): Promise<boolean> {
    return this.live;
  }
}
