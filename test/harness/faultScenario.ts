/**
 * One fault-injection run: a private nats-server (CX_TRIGGERS with a 1-second duplicate window),
 * the real `cxstream run` process supervised (restarted whenever it dies), live traffic published
 * while a fault plan runs, then a drain and the outputs read back for the verifier: every trigger
 * message as a subscriber receives it, and a copy of CX_EVENTS in stream order, so that a
 * reference run can process exactly the stream the faulty run saw.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { subjectOf } from '../../engine/demo/traffic.js';
import { NatsServer } from '../../engine/nats/natsServer.js';
import { ensureStreams, streamSettings } from '../../engine/nats/streams.js';
import type { CxEvent } from '../../operators/types.js';
import { ConnectionWatch } from '../../sinks/connectionWatch.js';
import { check } from './check.js';
import { freePort } from './cli.js';
import type { TriggerMessage } from './deliveryVerifier.js';
import { EngineProcess, engineEnv } from './engineProcess.js';
import { readStream } from './readStream.js';

/** A message of CX_EVENTS as stored: enough to copy the stream, in order, to another server. */
export interface StoredEvent {
  subject: string;
  data: Uint8Array;
  msgId: string;
}

/** How long a nats-server restart took the engine to come back, from the server accepting connections. */
export interface BrokerRecovery {
  /** Until the engine's connection was back (its "NATS reconnected" log line); null: not seen. */
  reconnectMs: number | null;
  /** Until the engine delivered outputs again (`cx_events_total` rose); null: it had nothing left to do. */
  processingMs: number | null;
  /** Until the durable consumer's ack floor moved (includes a checkpoint); null: nothing was left to ack. */
  ackMs: number | null;
}

/** What a fault plan can reach while the traffic flows. */
export interface FaultContext {
  server: NatsServer;
  /** The test's own connection to the server (reconnects by itself). */
  nc: NatsConnection;
  jsm: JetStreamManager;
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
  /** Like `killServer`, with both recovery figures of {@link BrokerRecovery}. */
  restartServer(outageMs: number): Promise<BrokerRecovery>;
  /** Resolves once all traffic is published. */
  published: Promise<void>;
  sleep(ms: number): Promise<void>;
}

/** What a run produced. */
export interface ScenarioResult {
  /** Every trigger id on CX_TRIGGERS, in stream order, with repetitions. */
  triggerIds: string[];
  /** Every message of CX_TRIGGERS, in stream order, with repetitions. */
  triggers: TriggerMessage[];
  /** CX_EVENTS at the end, in stream order. */
  stream: StoredEvent[];
  /** Engine starts after the first (kills and crashes). */
  restarts: number;
  /** Engine exits that were not ours (crash-only restarts, e.g. a sink failing during a NATS outage). */
  unexpectedExits: Array<{
    code: number | null;
    signal: string | null;
    /**
     * nats-server was down, or back for less than {@link BROKER_GRACE_MS}: an engine that starts
     * then (after a kill) may find NATS unreachable and exit 1, as the CLI contract says it does.
     */
    duringBrokerOutage: boolean;
    lastLines: string[];
  }>;
  /** Directory of the run (embedded ClickHouse in `clickhouse/`); the caller removes it. */
  dir: string;
  log: string;
}

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  /** Published live while the engine runs (and the faults happen). */
  events: readonly CxEvent[];
  /** Stored in CX_EVENTS, in this order, before the engine starts (another run's stream). @default none */
  backlog?: readonly StoredEvent[];
  /** Events published per step while the faults run. @default 50 */
  publishStep?: number;
  /** Pause between steps (ms). @default 100 */
  publishPauseMs?: number;
  faults?: (ctx: FaultContext) => Promise<void>;
  env?: Record<string, string>;
}

const CHECK_TIMEOUT = Number(process.env.FAULT_CHECK_TIMEOUT ?? 120_000);
/** After nats-server is back, how long an engine exit still counts as caused by the outage. */
const BROKER_GRACE_MS = 15_000;

/** Runs the engine over the traffic under a fault plan; see the file comment. */
export async function runScenario(opts: ScenarioOptions): Promise<ScenarioResult> {
  const server = await NatsServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'cxstream-fault-'));
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const env = engineEnv(server.url, dir, {
    // a fixed port for every incarnation: the harness reads /metrics (restarts reuse it once freed)
    CXSTREAM_METRICS_PORT: String(await freePort()),
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
  /** When nats-server was killed (null while it runs), and when it last came back. */
  let brokerDownAt: number | null = null;
  let brokerUpAt = Number.NEGATIVE_INFINITY;
  const start = (): void => {
    const e = new EngineProcess(env);
    engine = e;
    void e.exited.then((x) => {
      log += e.stderrTail();
      if (stopping || killing || engine !== e) return;
      // the last lines the engine wrote: why it exited (printed by the test when it fails)
      const lastLines = e.stderrTail().trimEnd().split('\n').slice(-6);
      const duringBrokerOutage = brokerDownAt !== null || Date.now() - brokerUpAt < BROKER_GRACE_MS;
      unexpectedExits.push({ code: x.code, signal: x.signal, duringBrokerOutage, lastLines });
      // a supervisor (systemd, Kubernetes) restarts a crashed engine; so does this harness, after a
      // short pause like systemd's RestartSec (an engine that cannot reach NATS exits at once)
      restarts++;
      setTimeout(() => {
        if (!stopping && engine === e) start();
      }, 250);
    });
  };
  try {
    // the 1-second duplicate window: correctness must not depend on it
    await ensureStreams(nc, streamSettings({ triggers: { duplicateWindowMs: 1000 } }));
    if (opts.backlog) await copyIn(nc, opts.backlog);
    start();
    await engine.consuming(nc);
    const jsm = await jetstreamManager(nc);
    const published = publish(nc, opts.events, opts.publishStep ?? 50, opts.publishPauseMs ?? 100);
    // the test's connection loses requests around a restart as the engine's does: asked through the
    // watch, one sent then fails at once instead of holding a measurement up for its 5 s timeout
    const watch = ConnectionWatch.of(nc);
    const total = async () => (await watch.call(() => jsm.streams.info('CX_EVENTS'))).state.last_seq;
    const consumer = () => watch.call(() => jsm.consumers.info('CX_EVENTS', 'cxstream'));
    const restartServer = async (outageMs: number): Promise<BrokerRecovery> => {
      const killedAt = Date.now();
      brokerDownAt = killedAt;
      await server.kill();
      await new Promise((r) => setTimeout(r, outageMs));
      await server.restart();
      const back = Date.now();
      brokerDownAt = null;
      brokerUpAt = back;
      const e = engine;
      // outputs delivered at the restart: the engine delivers again once this count rises
      const before = await e.metric('cx_events_total');
      const processing = (async () => {
        if (before === undefined) return null;
        const seen = await check(
          async (): Promise<{ ms: number | null } | undefined> => {
            if (!e.running || engine !== e) return { ms: null };
            // the consumer first: events are delivered (the count rises) before they are acked
            const info = await consumer();
            const last = await total();
            const now = await e.metric('cx_events_total');
            if (now !== undefined && now > before) return { ms: Date.now() - back };
            // nothing left to deliver: every stored event was acked before the outage
            return info.ack_floor.stream_seq >= last && info.num_pending === 0 ? { ms: null } : undefined;
          },
          CHECK_TIMEOUT,
          () => e.stderrTail(),
          25,
        );
        return seen.ms;
      })();
      // the ack floor as the restarted server recovered it (its consumer state may lag behind)
      const floor = await check(
        () => consumer().then((i) => ({ acked: i.ack_floor.stream_seq })),
        60_000,
        () => engine.stderrTail(),
      );
      let ackMs: number | null = null;
      if (floor.acked < (await total())) {
        await check(
          async () => (await consumer()).ack_floor.stream_seq > floor.acked,
          CHECK_TIMEOUT,
          () => engine.stderrTail(),
        );
        ackMs = Date.now() - back;
      }
      const processingMs = await processing;
      const reconnected = e.lines.find((l) => l.msg === 'NATS reconnected' && l.seenAt >= killedAt);
      return {
        reconnectMs: reconnected ? Math.max(0, reconnected.seenAt - back) : null,
        processingMs,
        ackMs,
      };
    };
    const ctx: FaultContext = {
      server,
      nc,
      jsm,
      engine: () => engine,
      published,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      async killEngine() {
        killing = true;
        const killedAt = Date.now();
        await engine.kill();
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
        return (await restartServer(outageMs)).ackMs;
      },
      restartServer,
    };
    await Promise.all([published, opts.faults?.(ctx)]);
    const last = await total();
    await check(
      async () => {
        const info = await jsm.consumers.info('CX_EVENTS', 'cxstream');
        return info.ack_floor.stream_seq >= last && info.num_pending === 0;
      },
      CHECK_TIMEOUT,
      // an engine that exits again and again prints little each time: the earlier ones' ends too
      () => `engines before:\n${log.slice(-6000)}\nthe engine now:\n${engine.stderrTail()}`,
    );
    stopping = true;
    // its log joins `log` when it exits (start's handler)
    const code = await engine.stop();
    if (code !== 0) throw new Error(`engine exited with ${code} on SIGTERM:\n${engine.stderrTail()}`);
    const triggers = (await readStream(nc, 'CX_TRIGGERS')).map(
      (m): TriggerMessage => ({ id: m.headers?.get('Nats-Msg-Id') ?? '', body: m.json() }),
    );
    const stream = (await readStream(nc, 'CX_EVENTS')).map(
      (m): StoredEvent => ({ subject: m.subject, data: m.data, msgId: m.headers?.get('Nats-Msg-Id') ?? '' }),
    );
    return {
      triggerIds: triggers.map((t) => t.id || String(t.body.id)),
      triggers,
      stream,
      restarts,
      unexpectedExits,
      dir,
      log,
    };
  } catch (e) {
    // the engine still writes its store: stop it first, or the removal fails and hides `e`
    stopping = true;
    await engine?.kill();
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    throw e;
  } finally {
    stopping = true;
    await engine?.kill();
    await nc.close();
    await server.stop();
  }
}

/** Publishes the events in order, `step` at a time, retrying through outages (the event id dedupes). */
export async function publish(nc: NatsConnection, events: readonly CxEvent[], step: number, pauseMs: number) {
  const js = jetstream(nc, { timeout: 2000 });
  // Like an upstream system that resumes as soon as the broker is back: a publish lost at a restart
  // fails at once and waits for the connection, instead of resuming only at its timeout while the
  // engine, caught up, sees its partitions idle and moves their watermarks with the wall clock.
  const watch = ConnectionWatch.of(nc);
  for (let i = 0; i < events.length; i += step) {
    const slice = events.slice(i, i + step);
    for (;;) {
      try {
        await Promise.all(
          slice.map((e) => watch.call(() => js.publish(subjectOf(e), pack(e), { msgID: e.id }), 60_000)),
        );
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}

/**
 * Stores a copy of a stream's messages in CX_EVENTS, in order: one connection delivers its publishes
 * to the server in the order sent, and the server stores them in that order.
 */
async function copyIn(nc: NatsConnection, messages: readonly StoredEvent[]): Promise<void> {
  const js = jetstream(nc);
  for (let i = 0; i < messages.length; i += 500) {
    await Promise.all(
      messages
        .slice(i, i + 500)
        .map((m) => js.publish(m.subject, m.data, m.msgId ? { msgID: m.msgId } : undefined)),
    );
  }
}
