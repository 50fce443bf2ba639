/**
 * The main thread's identity stage (docs/IDENTITY.md): between the source and the routing, in stream
 * order. For each event it finds the customer the event belongs to (its key, or the customer the key
 * was merged into as of the event's sequence) and, for an event whose `ids` link customers that were
 * apart, merges them before the event goes on:
 *
 * 1. the events before it are routed (they reach their workers before the merge);
 * 2. `detach` (in order with every partition's batches): the owners freeze the customers and hand
 *    over their entries; the canonical customer is the one seen first (operators/identity.ts);
 * 3. the decision is appended to the identity log (durably), then applied to the graph;
 * 4. `absorb`: the canonical customer's owner merges the entries, moves the timers and the events
 *    still waiting, fires what is due and publishes the merged profile;
 * 5. the event and the rest of the chunk go on, routed to the canonical customer.
 *
 * The stream waits while a merge runs (two round trips through every partition): merges are rare
 * next to events. Both worker steps are idempotent, and a decision made again for a replayed event
 * is the one made first (the graph decides as of the event's sequence), so a crash anywhere in
 * between gives the triggers of a crash-free run.
 */
import { concatMap, from, type OperatorFunction } from 'rxjs';
import { type DecodeOptions, decodeEvent } from '../../operators/decodeEvent.js';
import {
  chooseCanonical,
  type IdentityDecision,
  type IdentityEntry,
  type IdentityGraph,
  identifiersOf,
  idsProblem,
  type MergeEntry,
} from '../../operators/identity.js';
import { customerOfSubject } from '../../operators/keyGroups.js';
import type { AbsorbTask, BatchOutput, DetachTask } from '../runtime/workerProtocol.js';
import type { RawEvent } from '../source/eventSource.js';
import type { IdentityLog } from './identityLog.js';

/** What the identity stage works with. */
export interface IdentityStageOptions {
  graph: IdentityGraph;
  log: IdentityLog;
  /**
   * Runs a task on every partition in order with its batches, and resolves with every partition's
   * output once each ran it (not once delivered: a merge must not wait for ClickHouse inserts). The
   * task is placed at once, before any event routed after the call.
   */
  control(task: DetachTask | AbsorbTask): Promise<BatchOutput[]>;
  /** How the workers decode events: an event they would dead-letter links nobody. */
  decodeOptions?: DecodeOptions;
  /** Forgotten keys (tombstones): their events link nobody and record nothing. */
  isForgotten?(key: string): boolean;
  /** Called after each applied merge (ClickHouse `identities` rows, metrics, logs). */
  onMerge?(entry: MergeEntry): void | Promise<void>;
  /** Called when an event made identifiers shared (the guard rail held: metrics, logs). */
  onShared?(entry: IdentityEntry): void;
}

/** "ids" in UTF-8: a payload without these bytes carries no identifiers (JSON and msgpack alike). */
const IDS = new Uint8Array([0x69, 0x64, 0x73]);

/** The stage as an operator on the source's chunks (see the file comment). */
export function identityStage(options: IdentityStageOptions): OperatorFunction<RawEvent[], RawEvent[]> {
  const { graph } = options;
  return concatMap((chunk) => from(resolveChunk(chunk)));

  async function* resolveChunk(chunk: RawEvent[]): AsyncGenerator<RawEvent[]> {
    let out: RawEvent[] = [];
    let appends: Promise<void>[] = [];
    for (const e of chunk) {
      const key = customerOfSubject(e.subject);
      const decision = mayLink(e) && !options.isForgotten?.(key) ? decide(e, key) : null;
      if (decision !== null) {
        const fresh = !graph.has(e.seq);
        if (fresh && decision.entry.shared.length > 0) options.onShared?.(decision.entry);
        if (decision.joins.length === 0) {
          if (fresh) appends.push(options.log.append(decision.entry));
          graph.apply(decision.entry);
        } else {
          // a merge: what came before goes first, and every append before it is durable
          await Promise.all(appends);
          appends = [];
          if (out.length > 0) yield out;
          out = [];
          await merge(decision.entry, decision.joins);
        }
      }
      const customer = graph.absorbedKeys === 0 ? key : graph.canonicalOf(key, e.seq);
      out.push(customer === key ? e : { ...e, customer });
    }
    // an event goes on only once what it changed in the graph is durable
    await Promise.all(appends);
    if (out.length > 0) yield out;
  }

  /** What the event changes in the graph, when it carries valid `ids` and the workers would accept it. */
  function decide(e: RawEvent, key: string): IdentityDecision | null {
    const event = decodeEvent(e.data, e.subject, options.decodeOptions);
    if (typeof event === 'string' || event.ids === undefined) return null;
    if (idsProblem(event.ids, graph.limits) !== undefined) return null;
    return graph.decide(e.seq, event.ts, key, identifiersOf(event.ids));
  }

  async function merge(entry: Omit<IdentityEntry, 'merge'>, joins: string[]): Promise<void> {
    const detached = (await options.control({ kind: 'detach', keys: joins, seq: entry.seq })).flatMap(
      (o) => o.detached ?? [],
    );
    const recorded = graph.mergeAt(entry.seq);
    const canonical =
      recorded?.canonical ??
      chooseCanonical(
        joins.map((key) => {
          const part = detached.find((d) => d.key === key);
          return { key, firstSeen: part?.entry?.state.firstSeen ?? null };
        }),
      );
    const full: MergeEntry = {
      ...entry,
      merge: recorded ?? { canonical, absorbed: joins.filter((k) => k !== canonical) },
    };
    if (!graph.has(entry.seq)) await options.log.append(full);
    graph.apply(full);
    const parts = detached.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // in place before the events that follow; they need not wait for it to run (a failing absorb
    // fails the pipeline, as a failing batch does)
    const absorbed = options.control({ kind: 'absorb', canonical, parts, seq: entry.seq });
    absorbed.catch(() => {});
    await options.onMerge?.(full);
  }
}

/** Whether the payload may carry `ids` (the bytes occur in it): only such events are decoded here. */
function mayLink(e: RawEvent): boolean {
  return Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).indexOf(IDS) >= 0;
}
