/**
 * What identity stitching costs (docs/IDENTITY.md): the same events through the engine's pipeline
 * (engine/runtime/runEngine.ts, in-process replay, default rules, sinks that keep nothing) with
 * identity stitching on and off, in the same run, alternating A B A B.
 *
 *   npm run bench:identity -- [--customers C] [--persons P] [--partitions N] [--rounds R] [--record]
 *   (defaults: 5 000 customers of generated traffic, 2 000 cross-channel journeys, the config's
 *   partitions, 2 rounds)
 *
 * The journeys (engine/demo/journeys.ts) are persons under three keys each, linked by `ids`: about
 * 1.6 merges per person, most across partitions. Reported: events/s of each mode, the ratio on/off
 * per pair, and the merges per second of the run with stitching on (each merge holds the stream for
 * two round trips through every worker).
 */
import { pack } from 'msgpackr';
import { loadConfig } from '../engine/config/config.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { identityJourneys } from '../engine/demo/journeys.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { MemoryIdentityLog } from '../engine/identity/identityLog.js';
import type { PipelineSinks } from '../engine/runtime/deliverer.js';
import { runEngine } from '../engine/runtime/runEngine.js';
import type { RawEvent } from '../engine/source/eventSource.js';
import { iterableSource } from '../engine/source/fileSource.js';
import { flag, fmt, jsonLine, recordRun, runInfo, table } from './report.js';

const CUSTOMERS = flag('customers', 'BENCH_CUSTOMERS', 5_000);
const PERSONS = flag('persons', 'BENCH_PERSONS', 2_000);
const PARTITIONS = flag('partitions', 'BENCH_PARTITIONS', 0);
const ROUNDS = flag('rounds', 'BENCH_ROUNDS', 2);

const traffic = generateTraffic({ customers: CUSTOMERS, seed: 42 });
const journeys = identityJourneys({
  persons: PERSONS,
  from: traffic[0]!.ts,
  to: traffic.at(-1)!.ts - 3600_000,
});
const events = [...traffic, ...journeys].sort((a, b) => a.ts - b.ts);
const raw: RawEvent[] = events.map((e, i) => ({ seq: i + 1, subject: subjectOf(e), data: pack(e) }));

const sinks: PipelineSinks = {
  triggers: { publish: async () => {} },
  deadLetters: { publish: async () => {} },
  profiles: { put: async () => {} },
  clickhouse: {
    writeEncodedEvents: async () => {},
    writeTriggers: async () => {},
    writeProfiles: async () => {},
    flush: async () => {},
  },
};

/** One replay; events/s and the merges it made. */
async function once(enabled: boolean): Promise<{ eventsPerSecond: number; seconds: number; merges: number }> {
  const env: Record<string, string> = { CXSTREAM_AGGREGATES: '', CXSTREAM_IDENTITY_ENABLED: String(enabled) };
  if (PARTITIONS > 0) env.CXSTREAM_ENGINE_PARTITIONS = String(PARTITIONS);
  const config = loadConfig(undefined, env);
  const log = new MemoryIdentityLog();
  const started = performance.now();
  await runEngine({
    config,
    rules: loadRules(config.rules),
    source: iterableSource(raw),
    sinks,
    live: false,
    aggregates: [],
    identityLog: log,
  });
  const seconds = (performance.now() - started) / 1000;
  const merges = log.entries.filter((e) => e.merge !== undefined).length;
  return { eventsPerSecond: raw.length / seconds, seconds, merges };
}

const info = runInfo();
const rows: Array<Array<string | number>> = [];
const ratios: number[] = [];
let mergesPerSecond = 0;
let merges = 0;
for (let r = 0; r < ROUNDS; r++) {
  const on = await once(true);
  const off = await once(false);
  jsonLine('identity', { round: r + 1, on, off });
  rows.push([`${r + 1} on`, fmt(on.eventsPerSecond), on.seconds.toFixed(2), on.merges]);
  rows.push([`${r + 1} off`, fmt(off.eventsPerSecond), off.seconds.toFixed(2), '–']);
  ratios.push(on.eventsPerSecond / off.eventsPerSecond);
  merges = on.merges;
  mergesPerSecond = Math.max(mergesPerSecond, on.merges / on.seconds);
}
const body = [
  `${fmt(raw.length)} events: generated traffic of ${fmt(CUSTOMERS)} customers and ${fmt(PERSONS)} cross-channel journeys (${fmt(journeys.length)} events); in-process replay, default rules, sinks that keep nothing`,
  '',
  table(['round / stitching', 'events/s', 'seconds', 'merges'], rows),
  '',
  `stitching on / off per round: ${ratios.map((x) => x.toFixed(2)).join(', ')}; ${fmt(merges)} merges, up to ${fmt(Math.round(mergesPerSecond))} merges/s of the run`,
].join('\n');
console.log(`\n${body}`);
recordRun('bench:identity', info, body);
