/**
 * End-to-end throughput: the whole engine against a raw JetStream consumer, in the same run.
 *
 *   npm run bench:e2e -- [--events N] [--customers C] [--partitions P] [--no-checkpoints] [--record]
 *   (or BENCH_EVENTS, BENCH_CUSTOMERS, BENCH_PARTITIONS; defaults 1 000 000, 100 000, the config's)
 *
 * A private nats-server gets CX_EVENTS preloaded with N generated events (engine/demo/traffic.ts:
 * page views, messages, sessions, carts, orders, ... of C customers, msgpack, the first N in time
 * order). Then three consumers read the whole stream, each on its own durable:
 *   1. baseline: decode each message (msgpackr) and ack (AckPolicy.All, every 1000th message),
 *   2. engine: `cxstream run` as assembled by engine/runtime/runEngine.ts — default rules, embedded ClickHouse
 *      in a temporary directory, triggers to CX_TRIGGERS, profiles to KV, local checkpoints (acks wait
 *      for a checkpoint that covers them) — until every event is acked,
 *   3. baseline again, so the ratio is taken against the mean of one run before and one after.
 * Prints JSON lines and a table; `--record` appends the run to bench/RESULTS.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import { pack, unpack } from 'msgpackr';
import { LocalCheckpointStore } from '../engine/checkpoint/checkpointStore.js';
import { loadConfig } from '../engine/config/config.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { JetStreamIdentityLog } from '../engine/identity/identityLog.js';
import { connectNats } from '../engine/nats/connect.js';
import { NatsServer } from '../engine/nats/natsServer.js';
import { ensureStreams, natsNames } from '../engine/nats/streams.js';
import { openSinks } from '../engine/runtime/openSinks.js';
import { runEngine } from '../engine/runtime/runEngine.js';
import { jetstreamSource } from '../engine/source/jetstreamSource.js';
import { flag, fmt, jsonLine, recordRun, runInfo, table } from './report.js';

const N = flag('events', 'BENCH_EVENTS', 1_000_000);
const CUSTOMERS = flag('customers', 'BENCH_CUSTOMERS', 100_000);
const PARTITIONS = flag('partitions', 'BENCH_PARTITIONS', 0);
/** Checkpoints as `cxstream run` takes them (acks wait for a covering checkpoint); `--no-checkpoints` turns them off. */
const CHECKPOINTS = !process.argv.includes('--no-checkpoints');

/** One generated stream: subjects and msgpack payloads. */
interface Preload {
  subjects: string[];
  payloads: Uint8Array[];
  customers: number;
  bytes: number;
}

/** The first N events (time order) of as many generated days of C customers as it takes. */
function generate(): Preload {
  for (let days = 1; ; days++) {
    const events = generateTraffic({ customers: CUSTOMERS, days, seed: 42 });
    if (events.length < N && days < 30) continue;
    const take = events.slice(0, N);
    const subjects = take.map(subjectOf);
    const payloads = take.map((e) => pack(e) as Uint8Array);
    return {
      subjects,
      payloads,
      customers: new Set(take.map((e) => e.customer)).size,
      bytes: payloads.reduce((n, p) => n + p.byteLength, 0),
    };
  }
}

/** Core publishes with periodic flushes (awaiting each JetStream ack is ~10× slower), then waits until stored. */
async function preload(nc: NatsConnection, load: Preload): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < load.subjects.length; i++) {
    nc.publish(load.subjects[i]!, load.payloads[i]!);
    if (i % 5000 === 4999) await nc.flush();
  }
  await nc.flush();
  const jsm = await jetstreamManager(nc);
  for (;;) {
    const info = await jsm.streams.info(natsNames.eventsStream);
    if (info.state.messages >= load.subjects.length) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (performance.now() - started) / 1000;
}

/** Consumer-side figures of one pass over the stream. */
interface Pass {
  seconds: number;
  rate: number;
  /** Main-thread event-loop utilisation during the pass (0..1). */
  mainElu: number;
  /** Process CPU time (all threads) per wall second. */
  cpuCores: number;
}

function measure(): () => { seconds: number; mainElu: number; cpuCores: number } {
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return {
      seconds,
      mainElu: performance.eventLoopUtilization(elu0).utilization,
      cpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
    };
  };
}

/** The raw consumer: decode + ack every 1000th (AckPolicy.All), nothing else. */
async function baseline(nc: NatsConnection, durable: string, total: number): Promise<Pass> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(natsNames.eventsStream, {
    durable_name: durable,
    ack_policy: AckPolicy.All,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_ack_pending: 110_000, // as the engine's: maxInFlight (100 000) + one pull
  });
  const consumer = await jetstream(nc).consumers.get(natsNames.eventsStream, durable);
  const done = measure();
  const messages = await consumer.consume({ max_messages: 10_000 });
  let n = 0;
  let sink = 0;
  for await (const m of messages) {
    const e = unpack(m.data) as { ts: number };
    sink += e.ts & 1;
    n++;
    if (n % 1000 === 0 || n === total) m.ack();
    if (n === total) break;
  }
  await nc.flush();
  const r = done();
  await messages.close();
  if (sink < 0) throw new Error('unreachable');
  return { ...r, rate: total / r.seconds };
}

/** The full engine on its own durable, until every event is acked (outputs accepted by the sinks). */
async function engine(
  url: string,
  dir: string,
  total: number,
): Promise<
  Pass & {
    partitions: number;
    rules: number;
    triggers: number;
    profiles: number;
    checkpointIntervalMs: number;
  }
> {
  const config = loadConfig(undefined, {
    ...process.env,
    CXSTREAM_NATS_URL: url,
    CXSTREAM_NATS_DURABLE: 'bench-engine',
    CXSTREAM_CLICKHOUSE_URL: `embedded:${dir}/clickhouse`,
    CXSTREAM_STATE_DIR: `${dir}/state`,
    ...(PARTITIONS > 0 ? { CXSTREAM_ENGINE_PARTITIONS: String(PARTITIONS) } : {}),
  });
  const rules = loadRules(config.rules);
  const nc = await connectNats(config);
  const sinks = await openSinks(config, nc);
  const source = jetstreamSource({
    nc,
    durable: config.nats.durable,
    maxInFlight: config.nats.maxInFlight,
    ackWaitMs: config.nats.ackWaitMs,
  });
  let triggers = 0;
  let profiles = 0;
  const done = measure();
  const run = runEngine({
    config,
    rules,
    source,
    sinks,
    live: true,
    checkpoints: CHECKPOINTS
      ? {
          store: new LocalCheckpointStore(config.state.dir),
          nc,
          durable: config.nats.durable,
          maxInFlight: config.nats.maxInFlight,
        }
      : undefined,
    // as `cxstream run`: identity decisions recorded on CX_IDENTITY (CXSTREAM_IDENTITY_ENABLED=false: off)
    identityLog: await JetStreamIdentityLog.open(nc),
    onOutput: (o) => {
      triggers += o.triggers.length;
      profiles += o.profiles.length;
    },
  });
  while (source.stats().acked < total) {
    await Promise.race([run, new Promise((r) => setTimeout(r, 20))]);
  }
  const r = done();
  await source.stop();
  await run;
  await sinks.close();
  await nc.close();
  return {
    ...r,
    rate: total / r.seconds,
    partitions: config.engine.partitions,
    checkpointIntervalMs: config.checkpoint.intervalMs,
    rules: rules.length,
    triggers,
    profiles,
  };
}

async function main(): Promise<void> {
  const info = runInfo();
  jsonLine('run', { ...info, events: N, customers: CUSTOMERS });
  const genStarted = performance.now();
  const load = generate();
  if (load.subjects.length < N) throw new Error(`generated only ${load.subjects.length} events`);
  jsonLine('generated', {
    events: N,
    customers: load.customers,
    avgBytes: Math.round(load.bytes / N),
    seconds: (performance.now() - genStarted) / 1000,
  });

  const dir = mkdtempSync(join(tmpdir(), 'cxstream-bench-'));
  const server = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: server.url, name: 'cxstream-bench' });
  try {
    await ensureStreams(nc);
    const publishSeconds = await preload(nc, load);
    jsonLine('preload', { events: N, seconds: publishSeconds, rate: N / publishSeconds });

    const before = await baseline(nc, 'bench-baseline-1', N);
    jsonLine('baseline', { pass: 1, ...before });
    const full = await engine(server.url, dir, N);
    jsonLine('engine', full);
    const after = await baseline(nc, 'bench-baseline-2', N);
    jsonLine('baseline', { pass: 2, ...after });

    const base = (before.rate + after.rate) / 2;
    const ratio = full.rate / base;
    jsonLine('result', { baselineRate: base, engineRate: full.rate, ratio, target: 0.8, met: ratio >= 0.8 });
    const body = [
      `${fmt(N)} events, ${fmt(load.customers)} customers (of ${fmt(CUSTOMERS)}), ${load.bytes / N < 1000 ? Math.round(load.bytes / N) : fmt(load.bytes / N)} B/event msgpack; engine: ${full.partitions} partition(s), ${full.rules} rules, embedded ClickHouse, NATS triggers + KV profiles, checkpoints ${CHECKPOINTS ? `every ${fmt(full.checkpointIntervalMs)} ms (local)` : 'off'}`,
      '',
      table(
        ['consumer', 'events/s', 'seconds', 'main ELU', 'CPU cores'],
        [
          ['baseline (decode + ack) #1', before.rate, before.seconds, before.mainElu, before.cpuCores],
          ['engine (cxstream run)', full.rate, full.seconds, full.mainElu, full.cpuCores],
          ['baseline (decode + ack) #2', after.rate, after.seconds, after.mainElu, after.cpuCores],
        ],
      ),
      '',
      `engine / baseline = ${ratio.toFixed(3)} (target ≥ 0.8: ${ratio >= 0.8 ? 'met' : 'not met'}); triggers ${fmt(full.triggers)}, profile rows ${fmt(full.profiles)}; preload ${fmt(N / publishSeconds)} msg/s`,
    ].join('\n');
    console.log(`\n${body}`);
    recordRun('bench:e2e', info, body);
  } finally {
    await nc.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
// Client libraries may keep handles open after their work is done.
process.exit(0);
