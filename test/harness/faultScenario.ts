/**
 * One fault-injection run: a private nats-server (CX_TRIGGERS with a 1-second duplicate window),
 * the real `cxstream run` process supervised (restarted whenever it dies), live traffic published
 * while a fault plan runs, then a drain and the outputs read back for the verifier.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { subjectOf } from '../../engine/demo/traffic.js';
import { NatsServer } from '../../engine/nats/natsServer.js';
import { ensureStreams, streamSettings } from '../../engine/nats/streams.js';
import type { CxEvent } from '../../operators/types.js';
import { check } from './check.js';
import { readTriggerIds } from './deliveryVerifier.js';
import { EngineProcess, engineEnv } from './engineProcess.js';

/** What a fault plan can reach while the traffic flows. */
export interface FaultContext {
  server: NatsServer;
  /** The engine currently running (replaced after each restart). */
  engine(): EngineProcess;
  /** SIGKILLs the engine and starts it again at once; resolves with the recovery time (ms) once it processes again. */
  killEngine(): Promise<number | null>;
  /**
   * SIGKILLs nats-server, waits `outageMs`, restarts it with its store on the same port, and resolves
   * with the recovery time: from the server accepting connections again to the durable consumer's ack
   * floor moving (events processed, delivered, checkpointed and acked), or null when nothing was left to ack.
   */
  killServer(outageMs: number): Promise<number | null>;
  /** Resolves once all traffic is published. */
  published: Promise<void>;
  sleep(ms: number): Promise<void>;
}

/** What a run produced. */
export interface ScenarioResult {
  /** Every trigger id on CX_TRIGGERS, in stream order, with repetitions. */
  triggerIds: string[];
  /** Engine starts after the first (kills and crashes). */
  restarts: number;
  /** Engine exits that were not ours (crash-only restarts, e.g. a sink failing during a NATS outage). */
  unexpectedExits: Array<{ code: number | null; signal: string | null }>;
  /** Directory of the run (embedded ClickHouse in `clickhouse/`); the caller removes it. */
  dir: string;
  log: string;
}

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  events: readonly CxEvent[];
  /** Events published per step while the faults run. @default 50 */
  publishStep?: number;
  /** Pause between steps (ms). @default 100 */
  publishPauseMs?: number;
  faults?: (ctx: FaultContext) => Promise<void>;
  env?: Record<string, string>;
}

const CHECK_TIMEOUT = Number(process.env.FAULT_CHECK_TIMEOUT ?? 120_000);

/** Runs the engine over the traffic under a fault plan; see the file comment. */
export async function runScenario(opts: ScenarioOptions): Promise<ScenarioResult> {
  const server = await NatsServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'cxstream-fault-'));
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const env = engineEnv(server.url, dir, {
    CXSTREAM_CHECKPOINT_INTERVAL_MS: '1000',
    // The traffic's day is in the past of the wall clock: a partition idle for idleAfterMs (as after
    // a restart, before the backlog arrives) would move its watermark to now and fire every pending
    // absence timer at a run-dependent point. Wall-clock idleness is left out of the comparison.
    CXSTREAM_ENGINE_IDLE_AFTER_MS: String(7 * 24 * 3600_000),
    ...opts.env,
  });
  let log = '';
  let engine!: EngineProcess;
  let restarts = 0;
  let stopping = false;
  let killing = false;
  const unexpectedExits: ScenarioResult['unexpectedExits'] = [];
  const start = (): void => {
    const e = new EngineProcess(env);
    engine = e;
    void e.exited.then((x) => {
      log += e.stderrTail();
      if (stopping || killing || engine !== e) return;
      // a supervisor (systemd, Kubernetes) restarts a crashed engine; so does this harness, after a
      // short pause like systemd's RestartSec (an engine that cannot reach NATS exits at once)
      unexpectedExits.push({ code: x.code, signal: x.signal });
      restarts++;
      setTimeout(() => {
        if (!stopping && engine === e) start();
      }, 250);
    });
  };
  try {
    // the 1-second duplicate window: correctness must not depend on it
    await ensureStreams(nc, streamSettings({ triggers: { duplicateWindowMs: 1000 } }));
    start();
    await engine.consuming(nc);
    const jsm = await jetstreamManager(nc);
    const published = publish(nc, opts.events, opts.publishStep ?? 50, opts.publishPauseMs ?? 100);
    const ctx: FaultContext = {
      server,
      engine: () => engine,
      published,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      async killEngine() {
        killing = true;
        const killedAt = Date.now();
        await engine.kill();
        log += engine.stderrTail();
        restarts++;
        killing = false;
        start();
        const e = engine;
        // processing again; when nothing is left to process (traffic over, all acked), ready again
        let done = false;
        void published.then(() => {
          done = true;
        });
        const line = await check(
          () => e.line('processing') ?? (done && e.line('state recovered')) ?? !e.running,
          60_000,
          () => e.stderrTail(),
        );
        return typeof line === 'object' ? line.seenAt - killedAt : null;
      },
      async killServer(outageMs) {
        await server.kill();
        await new Promise((r) => setTimeout(r, outageMs));
        await server.restart();
        const back = Date.now();
        const total = opts.events.length;
        // the ack floor as the restarted server recovered it (its consumer state may lag behind)
        const floor = await check(
          () => jsm.consumers.info('CX_EVENTS', 'cxstream').then((i) => ({ acked: i.ack_floor.stream_seq })),
          60_000,
          () => engine.stderrTail(),
        );
        if (floor.acked >= total) return null;
        await check(
          async () => (await jsm.consumers.info('CX_EVENTS', 'cxstream')).ack_floor.stream_seq > floor.acked,
          CHECK_TIMEOUT,
          () => engine.stderrTail(),
        );
        return Date.now() - back;
      },
    };
    await Promise.all([published, opts.faults?.(ctx)]);
    const total = opts.events.length;
    await check(
      async () => {
        const info = await jsm.consumers.info('CX_EVENTS', 'cxstream');
        return info.ack_floor.stream_seq >= total && info.num_pending === 0;
      },
      CHECK_TIMEOUT,
      () => engine.stderrTail(),
    );
    stopping = true;
    const code = await engine.stop();
    log += engine.stderrTail();
    if (code !== 0) throw new Error(`engine exited with ${code} on SIGTERM:\n${engine.stderrTail()}`);
    return { triggerIds: await readTriggerIds(nc), restarts, unexpectedExits, dir, log };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    stopping = true;
    await engine?.kill();
    await nc.close();
    await server.stop();
  }
}

/** Publishes the events in order, `step` at a time, retrying through outages (the event id dedupes). */
async function publish(nc: NatsConnection, events: readonly CxEvent[], step: number, pauseMs: number) {
  const js = jetstream(nc, { timeout: 2000 });
  for (let i = 0; i < events.length; i += step) {
    const slice = events.slice(i, i + step);
    for (;;) {
      try {
        await Promise.all(slice.map((e) => js.publish(subjectOf(e), pack(e), { msgID: e.id })));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}
