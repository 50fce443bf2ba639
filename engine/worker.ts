/**
 * Worker-thread entry: one partition's state lives here, in exactly one thread.
 * piscina calls the default export once per task, one task at a time, in submission order.
 */
import { Piscina, workerData } from 'piscina';
import { type PartitionOutput, PartitionProcessor } from '../operators/partitionProcessor.js';
import { type CountedSelection, selectCounted } from '../operators/regionSurge.js';
import { encodeEventRows, encodeRows, PROFILE_COLUMNS } from '../sinks/clickhouseRows.js';
import { SnapshotCodec } from './snapshotCodec.js';
import type { BatchOutput, SnapshotResult, WorkerOptions, WorkerTask } from './types.js';

const options = workerData as WorkerOptions;
const processor = new PartitionProcessor(options);
const snapshotCodec = new SnapshotCodec();

/** Handles one task for this worker's partition. */
export default function handleTask(task: WorkerTask): BatchOutput | SnapshotResult {
  switch (task.kind) {
    case 'events': {
      const { bytes, ends, seqs, subjects } = task;
      return encoded(
        processor.applyBatch(
          seqs,
          subjects,
          (i) => bytes.subarray(i === 0 ? 0 : ends[i - 1]!, ends[i]!),
          task.now,
        ),
      );
    }
    case 'tick':
      return encoded(processor.tick(task.now, task.flush));
    case 'rules':
      processor.setRules(task.rules);
      return encoded(processor.tick(null, false));
    case 'snapshot': {
      // Encoded here, not on the main thread, into a buffer of its own that is moved, not copied.
      const snapshot = processor.snapshot(task.delta);
      const state = snapshotCodec.encode(snapshot);
      return moved({ lastSeq: snapshot.lastSeq, state }, [state]);
    }
    case 'restore': {
      const [full, ...deltas] = task.states.map((s) => snapshotCodec.decode(s));
      processor.restore(full!, ...deltas);
      return encoded(processor.tick(null, false));
    }
    case 'advance': {
      // advanceTo comes with the timers (issue 3, worker side); without it there is nothing to fire.
      const advance = (processor as { advanceTo?: (to: number) => PartitionOutput }).advanceTo;
      return encoded(advance ? advance.call(processor, task.to) : processor.tick(null, false));
    }
    case 'aggregates':
      counting = task.selection;
      return encoded(processor.tick(null, false));
  }
}

/** Rows the main-thread aggregates asked for (engine/types.ts AggregatesTask); null = none. */
let counting: CountedSelection | null = null;
/** Highest event time of this partition's rows so far (lateness of counted rows is judged by it). */
let countedMaxTs = Number.NEGATIVE_INFINITY;

/**
 * The output with its ClickHouse rows encoded here: their bytes are moved to the main thread, not
 * row objects or strings cloned.
 */
function encoded(out: PartitionOutput): BatchOutput {
  const events = encodeEventRows(out.events, options.rowFormat);
  const profileRows = encodeRows(out.profiles, PROFILE_COLUMNS, options.rowFormat);
  const result: BatchOutput = { ...out, events, profileRows };
  if (counting !== null) {
    result.counted = selectCounted(out.events, counting, countedMaxTs);
    countedMaxTs = result.counted.maxTs;
    // The processor's event-time watermark, once it keeps one (idle partitions move it with the clock).
    const watermark = (out as { watermark?: unknown }).watermark;
    if (typeof watermark === 'number') result.counted.watermark = watermark;
  }
  return moved(result, [events.bytes, profileRows.bytes]);
}

/** A result whose buffers piscina transfers instead of cloning (each view must own its buffer). */
function moved<T>(value: T, views: Uint8Array[]): T {
  // piscina transfers the buffers named under transferableSymbol and resolves with valueSymbol
  return Piscina.move({
    [Piscina.transferableSymbol]: views.map((v) => v.buffer),
    [Piscina.valueSymbol]: value,
  } as never) as unknown as T;
}
