/**
 * Messages between the main thread and the partition workers (piscina), in one place
 * as piscina keeps its RequestMessage / ResponseMessage.
 */
import type { RuleSpec } from '../operators/rules.js';
import type { EventRow, ProfileRow, Reject, Trigger } from '../operators/types.js';

/** A message as it left JetStream (or a file): bytes not decoded on the main thread. */
export interface RawEvent {
  /** Stream sequence (line number for file sources). */
  seq: number;
  subject: string;
  data: Uint8Array;
}

/** Options every partition worker starts with (piscina `workerData`). */
export interface WorkerOptions {
  partition: number;
  partitions: number;
  rules: RuleSpec[];
  /** Customer-local time zone when an event has no `tz`. */
  defaultTz: string;
  /** Minimum event time between two published snapshots of one customer's profile. */
  profileIntervalMs: number;
}

/** A micro-batch of one partition's events, packed so the bytes transfer instead of cloning. */
export interface EventBatchTask {
  kind: 'events';
  /** Wall-clock time on the main thread when the batch was sent (ms). */
  now: number;
  seqs: Float64Array;
  subjects: string[];
  /** All payloads back to back; payload i is bytes[ends[i-1] .. ends[i]). */
  bytes: Uint8Array;
  ends: Uint32Array;
}

/** Periodic work without events: publish due profiles; `flush` publishes every changed profile. */
export interface TickTask {
  kind: 'tick';
  now: number;
  flush: boolean;
}

/** Swap the rule set without losing customer state. */
export interface RulesTask {
  kind: 'rules';
  rules: RuleSpec[];
}

export type WorkerTask = EventBatchTask | TickTask | RulesTask;

/** What a partition produced for one task; the main thread hands it to the sinks. */
export interface BatchOutput {
  triggers: Trigger[];
  events: EventRow[];
  profiles: ProfileRow[];
  rejects: Reject[];
  /** Highest stream sequence applied by this partition so far. */
  lastSeq: number;
}

/** Where raw events come from (JetStream, a file, memory); the pipeline calls `done` once their outputs are accepted. */
export interface EventSource {
  /** Raw events in stream order, in chunks; completes when the source ends or after stop(). */
  readonly chunks$: import('rxjs').Observable<RawEvent[]>;
  /** The outputs of these events were accepted by the sinks: ack what is now contiguous. */
  done(seqs: ArrayLike<number>): void;
  /** Stop pulling; resolves when every emitted event is done and acked (or after timeoutMs). */
  stop(timeoutMs?: number): Promise<void>;
  /** Counters for progress and metrics. */
  stats(): { received: number; acked: number; inFlight: number; pending: number };
}
