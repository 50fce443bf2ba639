/**
 * `cxstream setup`: creates the NATS infrastructure the engine uses (streams, the durable consumer,
 * buckets) with the configured limits and replicas, for deployments that create infrastructure
 * before they start applications. Idempotent: what exists is reported, and changed only with
 * `--update`.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsCheckpointStore } from '../checkpoint/checkpointStore.js';
import { loadConfig } from '../config/config.js';
import { connectNats } from '../nats/connect.js';
import { ensureDurableConsumer, ensureStreams, type SetupStep } from '../nats/streams.js';

/** Options of {@link runSetup}. */
export interface SetupOptions {
  config?: string;
  /** Bring existing streams and buckets to the configured limits. @default false */
  update?: boolean;
  /** Where the report goes. @default process.stdout */
  out?: { write(text: string): unknown };
}

/** The checkpoint bucket of `checkpoint.store: nats`. */
const CHECKPOINT_BUCKET = 'cx_checkpoints';

/** Creates what is missing and prints one line per stream, bucket and consumer. */
export async function runSetup(options: SetupOptions = {}): Promise<SetupStep[]> {
  const out = options.out ?? process.stdout;
  const config = loadConfig(options.config);
  const nc = await connectNats(config);
  try {
    const steps = await ensureStreams(nc, config.streams, { update: options.update ?? false });
    steps.push(await ensureDurableConsumer(nc, config.nats));
    if (config.checkpoint.store === 'nats') {
      const jsm = await jetstreamManager(nc);
      const existed = await jsm.streams.info(`OBJ_${CHECKPOINT_BUCKET}`).then(
        () => true,
        () => false,
      );
      await NatsCheckpointStore.open(nc, { bucket: CHECKPOINT_BUCKET, replicas: config.checkpoint.replicas });
      steps.push({
        kind: 'bucket',
        name: CHECKPOINT_BUCKET,
        outcome: existed ? 'exists' : 'created',
        differences: [],
      });
    }
    for (const step of steps) out.write(formatStep(step));
    return steps;
  } finally {
    await nc.close();
  }
}

function formatStep(step: SetupStep): string {
  const head = `${step.kind} ${step.name}: `;
  switch (step.outcome) {
    case 'created':
      return `${head}created\n`;
    case 'exists':
      return `${head}exists\n`;
    case 'updated':
      return `${head}updated\n${step.differences.map((d) => `  was ${d}\n`).join('')}`;
    case 'differs':
      return (
        `${head}exists, differs from the config (left as is; \`cxstream setup --update\` applies the config's limits)\n` +
        step.differences.map((d) => `  ${d}\n`).join('')
      );
  }
}
