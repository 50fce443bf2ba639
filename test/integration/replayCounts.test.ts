/**
 * Replay and the in-memory demo apply every event, whatever the partition count: a generated history
 * many chunks long goes through the file source (`replay`), the memory source (`demo --no-nats`) and
 * JetStream, with 1, 2 and 3 partitions, and each run applies all of it and fires the same triggers.
 * (Chunks once reached a worker out of order, and the earlier one was dropped as a redelivery.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../engine/cli/demo.js';
import { loadConfig } from '../../engine/config/config.js';
import { loadRules } from '../../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../../engine/demo/traffic.js';
import { runEngine } from '../../engine/runtime/runEngine.js';
import type { EventSource } from '../../engine/source/eventSource.js';
import { iterableSource, ndjsonEvents } from '../../engine/source/fileSource.js';
import { jetstreamSource } from '../../engine/source/jetstreamSource.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { check } from '../harness/check.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';
import { nullSinks } from '../harness/sinks.js';

const events: CxEvent[] = generateTraffic({ customers: 600, seed: 11 });

/** Runs `source` through the engine with in-memory sinks; what it applied and fired. */
async function runThrough(source: EventSource, partitions: number, stop?: () => Promise<void>) {
  const config = loadConfig(undefined, {
    CXSTREAM_ENGINE_PARTITIONS: String(partitions),
    CXSTREAM_AGGREGATES: '',
  });
  let applied = 0;
  const triggers: Trigger[] = [];
  const finished = stop?.();
  await runEngine({
    config,
    rules: loadRules(config.rules),
    source,
    sinks: nullSinks(triggers),
    live: false,
    aggregates: [],
    onOutput: (o) => {
      applied += o.events.length;
    },
  });
  await finished;
  return { applied, triggers: triggers.map((t) => `${t.id}@${t.eventTime}`).sort() };
}

describe('every event applied, with any partition count', () => {
  let t: TestNats;
  let dir: string;
  let file: string;
  let nc: NatsConnection;
  let reference: { applied: number; triggers: string[] };

  beforeAll(async () => {
    t = await setup({ streams: true, dirPrefix: 'cxstream-replay-counts-' });
    ({ nc, dir } = t);
    file = join(dir, 'events.ndjson');
    writeFileSync(file, `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    for (const [i, e] of events.entries()) {
      const h = headers();
      h.set('Nats-Msg-Id', e.id);
      nc.publish(subjectOf(e), pack(e), { headers: h });
      if (i % 5000 === 4999) await nc.flush();
    }
    await nc.flush();
    const jsm = await jetstreamManager(nc);
    await check(async () => (await jsm.streams.info('CX_EVENTS')).state.messages >= events.length, 30_000);
  }, 60_000);

  afterAll(() => cleanup(t));

  it('the history is many chunks long and fires triggers', () => {
    expect(events.length).toBeGreaterThan(10_000); // chunks of 1000 events
  });

  it('JetStream applies the whole history (the reference)', async () => {
    const source = jetstreamSource({ nc, durable: 'counts' });
    reference = await runThrough(source, 2, async () => {
      await check(() => source.stats().acked >= events.length, 100_000);
      await source.stop();
    });
    expect(reference.applied).toBe(events.length);
    expect(reference.triggers.length).toBeGreaterThan(1000);
  }, 120_000);

  for (const partitions of [1, 2, 3]) {
    it(`replay of the file with ${partitions} partition(s): every event, the same triggers`, async () => {
      const run = await runThrough(iterableSource(ndjsonEvents(file)), partitions);
      expect(run.applied).toBe(events.length);
      expect(run.triggers).toEqual(reference.triggers);
    }, 120_000);
  }

  for (const partitions of [1, 2, 3]) {
    it(`demo --no-nats with ${partitions} partition(s) processes every event`, async () => {
      const saved = process.env.CXSTREAM_ENGINE_PARTITIONS;
      process.env.CXSTREAM_ENGINE_PARTITIONS = String(partitions);
      let text = '';
      try {
        await runDemo({
          customers: 600,
          seed: 11,
          useNats: false,
          dir: join(dir, `demo-${partitions}`),
          out: new Writable({
            write(chunk, _e, cb) {
              text += chunk;
              cb();
            },
          }),
        });
      } finally {
        if (saved === undefined) delete process.env.CXSTREAM_ENGINE_PARTITIONS;
        else process.env.CXSTREAM_ENGINE_PARTITIONS = saved;
      }
      expect(text).toContain(`${events.length} events of 600 customers`);
      expect(text).toMatch(new RegExp(`processed ${events.length} events`));
      expect(text).toMatch(new RegExp(`events applied\\s+${events.length}\\n`));
    }, 120_000);
  }
});
