/**
 * Worker-thread entry: one partition's state lives here, in exactly one thread.
 * piscina calls the default export once per task, one task at a time, in submission order.
 */
import { workerData } from 'piscina';
import { PartitionProcessor } from '../operators/partitionProcessor.js';
import type { BatchOutput, WorkerOptions, WorkerTask } from './types.js';

const options = workerData as WorkerOptions;
const processor = new PartitionProcessor(options);

/** Handles one task for this worker's partition. */
export default function handleTask(task: WorkerTask): BatchOutput {
  switch (task.kind) {
    case 'events': {
      const { bytes, ends, seqs, subjects } = task;
      return processor.applyBatch(
        seqs,
        subjects,
        (i) => bytes.subarray(i === 0 ? 0 : ends[i - 1]!, ends[i]!),
        task.now,
      );
    }
    case 'tick':
      return processor.tick(task.now, task.flush);
    case 'rules':
      processor.setRules(task.rules);
      return processor.tick(null, false);
  }
}
