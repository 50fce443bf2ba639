import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Observable } from 'rxjs';
import type { EventSource, RawEvent } from './eventSource.js';

/** Options of a source that reads events from memory or a file. */
export interface FileSourceOptions {
  /** Events per emitted chunk. @default 1000 */
  chunkSize?: number;
  /** Events emitted and not yet done before reading pauses (bounded memory for big files). @default 100_000 */
  maxInFlight?: number;
}

/**
 * A source over any (async) iterable of raw events: replays, backfills and the demo without NATS.
 * `seq` comes from the iterable (line number for files) and drives redelivery skipping as in JetStream.
 */
export function iterableSource(
  events: Iterable<RawEvent> | AsyncIterable<RawEvent>,
  options: FileSourceOptions = {},
): EventSource {
  const chunkSize = options.chunkSize ?? 1000;
  const maxInFlight = options.maxInFlight ?? 100_000;
  let received = 0;
  let acked = 0;
  let stopped = false;
  let wake: (() => void) | null = null;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((resolve) => {
    finished = resolve;
  });
  let exhausted = false;
  const checkFinished = () => {
    if (exhausted && acked >= received) finished();
  };

  const chunks$ = new Observable<RawEvent[]>((subscriber) => {
    (async () => {
      let chunk: RawEvent[] = [];
      for await (const event of events) {
        if (stopped || subscriber.closed) break;
        chunk.push(event);
        received++;
        if (chunk.length >= chunkSize) {
          subscriber.next(chunk);
          chunk = [];
          while (received - acked > maxInFlight && !stopped) await new Promise<void>((r) => (wake = r));
        }
      }
      if (chunk.length > 0) subscriber.next(chunk);
      exhausted = true;
      checkFinished();
      subscriber.complete();
    })().catch((e) => subscriber.error(e));
  });

  return {
    chunks$,
    done(seqs) {
      acked += seqs.length;
      if (wake && received - acked <= maxInFlight) {
        const w = wake;
        wake = null;
        w();
      }
      checkFinished();
    },
    async stop(timeoutMs = 30_000) {
      stopped = true;
      wake?.();
      await Promise.race([allDone, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    },
    stats: () => ({ received, acked, inFlight: received - acked, pending: 0 }),
    caughtUp: async () => exhausted,
  };
}

/**
 * Raw events from an NDJSON file, one JSON event per line. The subject is rebuilt from the event
 * (`cx.events.<channel>.<type>.<customer>`); a line that is not a JSON object keeps its bytes and
 * gets a subject naming its line, so it is dead-lettered with the reason like any bad event.
 */
export async function* ndjsonEvents(file: string): AsyncGenerator<RawEvent> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    yield { seq: lineNo, subject: subjectOfLine(line, lineNo), data: Buffer.from(line) };
  }
}

function subjectOfLine(line: string, lineNo: number): string {
  try {
    const e = JSON.parse(line) as Record<string, unknown>;
    const token = (v: unknown) => (typeof v === 'string' && v !== '' ? v.replace(/[.\s*>]/g, '_') : '_');
    return `cx.events.${token(e.channel)}.${token(e.type)}.${token(e.customer)}`;
  } catch {
    return `cx.events._._.line-${lineNo}`;
  }
}
