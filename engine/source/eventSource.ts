/**
 * What every source of events gives the pipeline (JetStream, an NDJSON file, memory): raw messages in
 * stream order, acked once their outputs are accepted.
 */
import type { Observable } from 'rxjs';

/** A message as it left JetStream (or a file): bytes not decoded on the main thread. */
export interface RawEvent {
  /** Stream sequence (line number for file sources). */
  seq: number;
  subject: string;
  data: Uint8Array;
  /**
   * Identity stitching: the customer the subject's key was merged into, set on the main thread before
   * routing (engine/identity/identityStage.ts); absent when the key is its own customer.
   */
  customer?: string;
}

/** Where raw events come from (JetStream, a file, memory); the pipeline calls `done` once their outputs are accepted. */
export interface EventSource {
  /** Raw events in stream order, in chunks; completes when the source ends or after stop(). */
  readonly chunks$: Observable<RawEvent[]>;
  /** The outputs of these events were accepted by the sinks: ack what is now contiguous. */
  done(seqs: ArrayLike<number>): void;
  /** Stop pulling; resolves when every emitted event is done and acked (or after timeoutMs). */
  stop(timeoutMs?: number): Promise<void>;
  /** Counters for progress and metrics. */
  stats(): SourceStats;
  /**
   * Whether the source holds every message that exists now: connected, and confirmed with the
   * server that nothing in the stream is beyond what it emitted. Only then may a quiet partition's
   * watermark follow the wall clock (a backlog, an outage or a restart is not idleness).
   */
  caughtUp(): Promise<boolean>;
}

/** Counters of a source. */
export interface SourceStats {
  received: number;
  acked: number;
  inFlight: number;
  /** Events in the stream not yet delivered to this source (consumer lag). */
  pending: number;
}
