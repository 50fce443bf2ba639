/**
 * Publish → trigger latency at a steady rate, for an on-event rule and a timer rule.
 *
 *   npm run bench:latency -- [--rate R] [--seconds S] [--partitions P] [--record]
 *   (or BENCH_RATE, BENCH_SECONDS, BENCH_PARTITIONS; defaults 3500 events/s, 30 s, the config's)
 *
 * The default rate is half the engine's maximum measured by bench:e2e on the reference machine
 * (bench/RESULTS.md); pass the half of yours. The engine runs as `cxstream run` does (live, JetStream
 * source on a private nats-server, embedded ClickHouse, triggers to CX_TRIGGERS). Traffic is the
 * generated day (engine/demo/traffic.ts) replayed with event time = publish time, plus probes:
 * - on-event: a customer message asking for an invoice (rule `invoice_ticket`, a fresh customer per
 *   probe, 50/s): latency = trigger received on `cx.triggers.invoice_ticket` − event time (= publish);
 * - timer: `bench_arm` with no `bench_cancel` within 3 s (rule `bench_timer`, an `absence` rule added
 *   from a temporary rule file, 10/s): latency = trigger received − due time (the trigger's
 *   `eventTime`). A timer fires once the watermark (newest event time − allowed lateness) passes
 *   its due time, so the figure includes `engine.allowedLatenessMs`; it is also given net of it.
 * The first 5 s are warm-up. Percentiles with hdr-histogram-js, in milliseconds.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import * as hdr from 'hdr-histogram-js';
import { pack } from 'msgpackr';
import { LocalCheckpointStore } from '../engine/checkpoint/checkpointStore.js';
import { loadConfig } from '../engine/config/config.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { connectNats } from '../engine/nats/connect.js';
import { NatsServer } from '../engine/nats/natsServer.js';
import { ensureStreams } from '../engine/nats/streams.js';
import { openSinks } from '../engine/runtime/openSinks.js';
import { runEngine } from '../engine/runtime/runEngine.js';
import { jetstreamSource } from '../engine/source/jetstreamSource.js';
import type { CxEvent, Trigger } from '../operators/types.js';
import { flag, fmt, jsonLine, recordRun, runInfo, table } from './report.js';

const RATE = flag('rate', 'BENCH_RATE', 3500);
const SECONDS = flag('seconds', 'BENCH_SECONDS', 30);
const PARTITIONS = flag('partitions', 'BENCH_PARTITIONS', 0);
const WARMUP_MS = 5000;
const PROBES_PER_SECOND = 50;
const TIMER_PROBES_PER_SECOND = 10;
const TIMER_MS = 3000;

const BENCH_RULES = `rules:
  - id: bench_timer
    description: bench:latency probe — bench_arm not followed by bench_cancel within 3 s
    priority: 10
    absence: { after: bench_arm, missing: bench_cancel, within: 3s }
`;

function histogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000,
    numberOfSignificantValueDigits: 3,
  });
}

function summary(h: hdr.Histogram): { count: number; p50: number; p99: number; p999: number; max: number } {
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
  };
}

async function main(): Promise<void> {
  const info = runInfo();
  jsonLine('run', { ...info, rate: RATE, seconds: SECONDS });
  const dir = mkdtempSync(join(tmpdir(), 'cxstream-bench-latency-'));
  writeFileSync(join(dir, 'bench-rules.yaml'), BENCH_RULES);
  const server = await NatsServer.start({ jetstream: true });
  const config = loadConfig(undefined, {
    ...process.env,
    CXSTREAM_NATS_URL: server.url,
    CXSTREAM_CLICKHOUSE_URL: `embedded:${dir}/clickhouse`,
    CXSTREAM_STATE_DIR: `${dir}/state`,
    CXSTREAM_RULES: `${loadConfig().rules.join(',')},${join(dir, 'bench-rules.yaml')}`,
    ...(PARTITIONS > 0 ? { CXSTREAM_ENGINE_PARTITIONS: String(PARTITIONS) } : {}),
  });
  const rules = loadRules(config.rules);
  const background = generateTraffic({ customers: 20_000, seed: 7 });
  const pub = await connect({ servers: server.url, name: 'cxstream-bench-publisher' });
  const sub = await connect({ servers: server.url, name: 'cxstream-bench-subscriber' });
  const nc: NatsConnection = await connectNats(config);
  try {
    await ensureStreams(pub);
    const onEvent = histogram();
    const timer = histogram();
    let engineStart = 0;
    sub.subscribe('cx.triggers.invoice_ticket', {
      callback: (_e, m) => {
        const t = m.json<Trigger>();
        if (t.customer.startsWith('probe-') && t.eventTime >= engineStart + WARMUP_MS) {
          onEvent.recordValue(Math.max(1, Date.now() - t.eventTime));
        }
      },
    });
    sub.subscribe('cx.triggers.bench_timer', {
      callback: (_e, m) => {
        const t = m.json<Trigger>();
        if (t.eventTime >= engineStart + WARMUP_MS) timer.recordValue(Math.max(1, Date.now() - t.eventTime));
      },
    });
    await sub.flush();

    const sinks = await openSinks(config, nc);
    const source = jetstreamSource({
      nc,
      durable: config.nats.durable,
      maxInFlight: config.nats.maxInFlight,
      ackWaitMs: config.nats.ackWaitMs,
    });
    // As `cxstream run`: checkpoints on (triggers do not wait for them, acks do).
    const run = runEngine({
      config,
      rules,
      source,
      sinks,
      live: true,
      checkpoints: {
        store: new LocalCheckpointStore(config.state.dir),
        nc,
        durable: config.nats.durable,
        maxInFlight: config.nats.maxInFlight,
      },
    });

    // Stalls of the main thread (the engine's, shared here with the publisher and the subscribers)
    // against those of the worker: a latency spike with a calm event loop is the worker's.
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    // Steady publishing: every 10 ms, catch up to RATE × elapsed (background + probes together).
    engineStart = Date.now();
    setTimeout(() => loopDelay.enable(), WARMUP_MS).unref();
    const end = engineStart + WARMUP_MS + SECONDS * 1000;
    let sent = 0;
    let probes = 0;
    let timerProbes = 0;
    let next = 0;
    const publish = (e: CxEvent) => pub.publish(subjectOf(e), pack(e));
    // Background traffic goes on after the probes stop (`end`), for as long as the last timers need
    // the watermark to pass their due time: without events it would only follow the wall clock
    // after `idleAfterMs`, which measures the drain, not the engine.
    const expected = (n: number, perSecond: number) => (n - (WARMUP_MS / 1000) * perSecond) * 0.99;
    const drainUntil = end + TIMER_MS + config.engine.allowedLatenessMs + 10_000;
    for (;;) {
      const now = Date.now();
      if (
        now >= drainUntil ||
        (now >= end &&
          timer.totalCount >= expected(timerProbes, TIMER_PROBES_PER_SECOND) &&
          onEvent.totalCount >= expected(probes, PROBES_PER_SECOND))
      ) {
        break;
      }
      const elapsed = (now - engineStart) / 1000;
      const probing = now < end;
      while (probing && probes < elapsed * PROBES_PER_SECOND) {
        probes++;
        publish({
          id: `probe-${probes}`,
          ts: now,
          customer: `probe-${probes}`,
          type: 'message',
          channel: 'web',
          from: 'customer',
          text: 'hello, I need an invoice for my last order please',
        });
        sent++;
      }
      while (probing && timerProbes < elapsed * TIMER_PROBES_PER_SECOND) {
        timerProbes++;
        publish({
          id: `tprobe-${timerProbes}`,
          ts: now,
          customer: `tprobe-${timerProbes}`,
          type: 'bench_arm',
          channel: 'web',
        });
        sent++;
      }
      while (sent < elapsed * RATE) {
        const e = background[next++ % background.length]!;
        publish({ ...e, id: `${e.id}-${next}`, ts: now });
        sent++;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    loopDelay.disable();
    await pub.flush();
    const publishSeconds = (Date.now() - engineStart) / 1000;
    const lag = source.stats();
    await source.stop();
    await run;
    await sinks.close();

    const ms = (ns: number) => Math.round(ns / 1e6);
    const loop = {
      p50: ms(loopDelay.percentile(50)),
      p99: ms(loopDelay.percentile(99)),
      max: ms(loopDelay.max),
    };
    const ev = summary(onEvent);
    const tm = summary(timer);
    const lateness = config.engine.allowedLatenessMs;
    jsonLine('onEvent', { rule: 'invoice_ticket', ...ev, target: { p99: 50 }, met: ev.p99 <= 50 });
    jsonLine('timer', {
      rule: 'bench_timer',
      ...tm,
      allowedLatenessMs: lateness,
      target: { p99: 1000 },
      met: tm.p99 <= 1000,
    });
    jsonLine('eventLoopDelay', loop);
    jsonLine('load', {
      publishedPerSecond: sent / publishSeconds,
      received: lag.received,
      probes,
      timerProbes,
    });
    const body = [
      `${fmt(RATE)} events/s steady for ${SECONDS} s after ${WARMUP_MS / 1000} s warm-up; ${rules.length} rules; engine ${config.engine.partitions} partition(s); allowed lateness ${lateness} ms`,
      '',
      table(
        ['latency (ms)', 'count', 'p50', 'p99', 'p99.9', 'max', 'target', 'met'],
        [
          [
            'on-event publish → trigger',
            ev.count,
            ev.p50,
            ev.p99,
            ev.p999,
            ev.max,
            'p99 ≤ 50',
            ev.p99 <= 50 ? 'yes' : 'no',
          ],
          [
            'timer due → trigger',
            tm.count,
            tm.p50,
            tm.p99,
            tm.p999,
            tm.max,
            'p99 ≤ 1000',
            tm.p99 <= 1000 ? 'yes' : 'no',
          ],
          [
            'timer (due + lateness) → trigger',
            tm.count,
            tm.p50 - lateness,
            tm.p99 - lateness,
            tm.p999 - lateness,
            tm.max - lateness,
            '',
            '',
          ],
        ],
      ),
      '',
      `main-thread event-loop delay after warm-up (ms): p50 ${loop.p50}, p99 ${loop.p99}, max ${loop.max}`,
    ].join('\n');
    console.log(`\n${body}`);
    recordRun('bench:latency', info, body);
  } finally {
    await nc.close();
    await pub.close();
    await sub.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
