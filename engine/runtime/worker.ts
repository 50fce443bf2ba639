/**
 * Worker-thread entry: the state of the key groups a worker owns lives here, in exactly one thread.
 * piscina calls the default export once per task, in submission order; every task but a snapshot
 * runs to completion before the next starts, and a snapshot is encoded in slices between them.
 */
import { Piscina, workerData } from 'piscina';
import {
  type PartitionOutput,
  PartitionProcessor,
  type SnapshotCut,
} from '../../operators/partitionProcessor.js';
import { type CountedSelection, selectCounted } from '../../operators/regionSurge.js';
import type { EventRow } from '../../operators/types.js';
import { encodeEventRows, encodeRows, PROFILE_COLUMNS } from '../../sinks/clickhouseRows.js';
import { copyOnWrite, SnapshotCodec } from '../checkpoint/snapshotCodec.js';
import { type CustomerView, customerView, DecisionLog } from './customerView.js';
import type {
  BatchOutput,
  KeyGroupCounted,
  PartitionStatus,
  RestoredSeqs,
  RuleErrorReport,
  SnapshotResult,
  WorkerOptions,
  WorkerTask,
} from './workerProtocol.js';

const options = workerData as WorkerOptions;
const processor = new PartitionProcessor(options);
const snapshotCodec = new SnapshotCodec();
/** Recent notable decisions per customer, for live explain (kept across rule swaps by the processor). */
const decisions = new DecisionLog();
/** The log hears the rule set's notable decisions (the processor hands `onDecision` to a new rule set). */
const listen = () => {
  processor.ruleSet.onDecision = decisions.record;
  processor.ruleSet.traceRoutine = false;
};
listen();

/** Handles one task for this worker's partition. */
export default function handleTask(
  task: WorkerTask,
):
  | BatchOutput
  | WorkerSnapshot
  | Promise<WorkerSnapshot>
  | RestoredSeqs
  | CustomerView
  | PartitionStatus
  | null
  | undefined {
  switch (task.kind) {
    case 'events': {
      const { bytes, ends, seqs, subjects } = task;
      return encoded(
        processor.applyBatch(
          seqs,
          subjects,
          (i) => bytes.subarray(i === 0 ? 0 : ends[i - 1]!, ends[i]!),
          task.now,
          task.canonical,
        ),
      );
    }
    case 'tick':
      return encoded(processor.tick(task.now, task.flush));
    case 'rules':
      processor.setRules(task.rules);
      listen();
      return encoded(processor.tick(null, false));
    case 'snapshot':
      return snapshotInSlices(processor.snapshotCut(task.delta));
    case 'restore': {
      processor.addTombstones(task.tombstones ?? []);
      processor.restoreChains(
        task.chains.map((chain) => {
          const keyGroups = new Set(chain.keyGroups);
          const wanted = (kg: number) => keyGroups.has(kg);
          return { keyGroups, snapshots: chain.states.map((s) => snapshotCodec.decode(s, wanted)) };
        }),
      );
      // counted rows are judged against their key group's newest event time, which the state holds
      countedMaxTs.clear();
      for (const kg of processor.ownedKeyGroups) countedMaxTs.set(kg, processor.maxEventTimeOf(kg));
      return processor.ownedKeyGroups.map((kg): [number, number] => [kg, processor.lastSeqOf(kg)]);
    }
    case 'advance':
      return encoded(processor.advanceTo(task.to));
    case 'aggregates':
      counting = task.selection;
      return encoded(processor.tick(null, false));
    case 'forget': {
      const forgotten = processor.forget(task.customer, task.tombstone);
      decisions.forget(task.customer);
      return encoded({ ...processor.tick(null, false), forgotten });
    }
    case 'detach': {
      const detached = processor.detach(task.keys, task.seq);
      return encoded({ ...processor.tick(null, false), detached });
    }
    case 'absorb':
      return encoded(processor.absorb(task.canonical, task.parts, task.seq, null));
    case 'explain':
      return customerView(processor, task.customer, decisions.of(task.customer), options.defaultTz);
    case 'status':
      return {
        partition: options.partition,
        // −Infinity (no event yet) has no JSON: the wire says null
        keyGroups: processor.keyGroupStats().map((g) => ({
          ...g,
          watermark: Number.isFinite(g.watermark) ? g.watermark : null,
          maxEventTime: Number.isFinite(g.maxEventTime) ? g.maxEventTime : null,
        })),
      };
  }
}

/** A snapshot as the worker returns it (the pool adds the task number it was taken after). */
type WorkerSnapshot = Omit<SnapshotResult, 'afterTask'>;

/** Longest a slice of snapshot encoding runs before the worker takes its next task. */
const SLICE_MS = 5;

/**
 * Encodes a snapshot (the state at the cut `processor.snapshotCut()` made) in slices of a few ms, so
 * the batches that arrive meanwhile are not held up by it: between two slices the worker runs its
 * next task. Customers held as bytes are copied as they are (bytes never change: a changed customer
 * gets new ones); a customer held as an object that those batches are about to change is encoded
 * first, as it was at the cut (copy on write, `processor.beforeChange`). Resolves with the encoded
 * state, moved to the main thread; a checkpoint waits for it as it waited for the one-piece encode.
 */
function snapshotInSlices(cut: SnapshotCut): Promise<WorkerSnapshot> {
  const cow = copyOnWrite(cut);
  processor.beforeChange = cow.beforeChange;
  const steps = snapshotCodec.cutSteps(cut, cow.hooks);
  return new Promise((resolve, reject) => {
    const slice = (): void => {
      try {
        const until = performance.now() + SLICE_MS;
        for (;;) {
          const step = steps.next();
          if (step.done) {
            processor.beforeChange = undefined;
            // the chain holds every owned key group, also those this delta leaves out
            resolve(moved({ keyGroups: [...processor.ownedKeyGroups], state: step.value }, [step.value]));
            return;
          }
          if (performance.now() >= until) {
            setImmediate(slice); // the next task (a batch) runs before the next slice
            return;
          }
        }
      } catch (e) {
        processor.beforeChange = undefined;
        reject(e);
      }
    };
    slice();
  });
}

/** Rows the main-thread aggregates asked for (engine/runtime/workerProtocol.ts AggregatesTask); null = none. */
let counting: CountedSelection | null = null;
/** Per key group: highest event time of its rows so far (lateness of counted rows is judged by it). */
const countedMaxTs = new Map<number, number>();

/**
 * The output with its ClickHouse rows encoded here: their bytes are moved to the main thread, not
 * row objects or strings cloned.
 */
function encoded(out: PartitionOutput & Pick<BatchOutput, 'forgotten' | 'detached'>): BatchOutput {
  const events = encodeEventRows(out.events, options.rowFormat);
  const profileRows = encodeRows(out.profiles, PROFILE_COLUMNS, options.rowFormat);
  // the pool numbers the tasks (`task`)
  const result: BatchOutput = { ...out, events, profileRows, task: 0 };
  const ruleErrors = newRuleErrors();
  if (ruleErrors !== undefined) result.ruleErrors = ruleErrors;
  if (counting !== null) {
    // Per key group with rows or a watermark to tell: an idle key group moves its watermark with the
    // clock, so its silence does not hold back the aggregates' windows.
    const rowsOf = new Map<number, EventRow[]>();
    for (const row of out.events) {
      const rows = rowsOf.get(row.partition);
      if (rows === undefined) rowsOf.set(row.partition, [row]);
      else rows.push(row);
    }
    const counted: KeyGroupCounted[] = [];
    for (const [kg, watermark] of out.watermarks) {
      const before = countedMaxTs.get(kg) ?? Number.NEGATIVE_INFINITY;
      const batch = selectCounted(rowsOf.get(kg) ?? [], counting, before);
      countedMaxTs.set(kg, batch.maxTs);
      counted.push({ ...batch, kg, watermark });
    }
    result.counted = counted;
  }
  return moved(result, [events.bytes, profileRows.bytes]);
}

/** Rule error counts already reported to the main thread, per rule. */
const reportedErrors = new Map<string, number>();

/** Rule errors since the last report (undefined when none). */
function newRuleErrors(): RuleErrorReport[] | undefined {
  let reports: RuleErrorReport[] | undefined;
  for (const [rule, e] of processor.ruleErrors) {
    const before = reportedErrors.get(rule) ?? 0;
    if (e.count === before) continue;
    reportedErrors.set(rule, e.count);
    reports ??= [];
    reports.push({ rule, count: e.count - before, first: e.first });
  }
  return reports;
}

/** A result whose buffers piscina transfers instead of cloning (each view must own its buffer). */
function moved<T>(value: T, views: Uint8Array[]): T {
  // piscina transfers the buffers named under transferableSymbol and resolves with valueSymbol
  return Piscina.move({
    [Piscina.transferableSymbol]: views.map((v) => v.buffer),
    [Piscina.valueSymbol]: value,
  } as never) as unknown as T;
}
