/**
 * A fault run of a shared deployment: a 3-node nats-server cluster (streams and buckets with 3
 * replicas), several real `cxstream run` instances of one deployment (each supervised: restarted when
 * it dies on its own), live traffic published while a fault plan kills instances and servers, then a
 * drain, and the outputs read back: every trigger message, the stream, each instance's ClickHouse
 * directory. Embedded ClickHouse is per instance here (no shared server runs on this machine), so
 * the verifier takes the union of the instances' rows: what a shared ReplacingMergeTree table holds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ensureStreams, streamSettings } from '../../engine/nats/streams.js';
import type { CxEvent } from '../../operators/types.js';
import { ConnectionWatch } from '../../sinks/connectionWatch.js';
import { check } from './check.js';
import { type Finished, runCli } from './cli.js';
import type { TriggerMessage } from './deliveryVerifier.js';
import { EngineProcess, engineEnv } from './engineProcess.js';
import { publish } from './faultScenario.js';
import { NatsCluster } from './natsCluster.js';
import { readStream } from './readStream.js';

/** Settings every instance of the deployment under test runs with (the reference run too). */
export const SHARED_ENV: Record<string, string> = {
  CXSTREAM_IDENTITY_ENABLED: 'false',
  CXSTREAM_AGGREGATES: '',
  CXSTREAM_CHECKPOINT_INTERVAL_MS: '1000',
  // wall-clock idleness is left out of the comparison (see faultScenario.ts)
  CXSTREAM_ENGINE_IDLE_AFTER_MS: String(7 * 24 * 3600_000),
  CXSTREAM_ENGINE_PARTITIONS: '1',
};

const DEPLOYMENT = 'faults';
const KEY_GROUPS = 128;

/** What a fault plan can reach. */
export interface ClusterContext {
  cluster: NatsCluster;
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** Names of the instances running now. */
  running(): string[];
  /** SIGKILLs an instance (it stays dead); resolves with the failover time: until the survivors process all key groups. */
  killInstance(name: string): Promise<number>;
  /** Starts an instance (a new name joins; a rebalance follows); resolves with the time until every instance processes its share. */
  startInstance(name: string): Promise<number>;
  /** SIGKILLs nats-server node `i`, waits `outageMs`, restarts it; resolves with the time from the kill until every key group is processed again. */
  restartNode(i: number, outageMs: number): Promise<number>;
  /** `cxstream status` of the deployment (its text output and exit code). */
  status(): Promise<Finished>;
  published: Promise<void>;
  sleep(ms: number): Promise<void>;
}

/** What a run produced. */
export interface ClusterResult {
  triggers: TriggerMessage[];
  triggerIds: string[];
  /** Every instance's directory (embedded ClickHouse in `<dir>/clickhouse`). */
  dirs: string[];
  /** Instance exits the plan did not cause (the harness started them again), with their last lines. */
  unexpectedExits: Array<{ name: string; code: number | null; tail: string }>;
  log: string;
}

/** Runs `instances` instances over the traffic under the fault plan; the caller removes `dirs`. */
export async function runClusterScenario(opts: {
  events: readonly CxEvent[];
  instances: string[];
  faults: (ctx: ClusterContext) => Promise<void>;
  publishStep?: number;
  publishPauseMs?: number;
}): Promise<ClusterResult> {
  const cluster = await NatsCluster.start();
  const nc = await connect({ servers: cluster.servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const engines = new Map<string, EngineProcess>();
  const dirs: string[] = [];
  const killed = new Set<string>();
  let stopping = false;
  const unexpectedExits: ClusterResult['unexpectedExits'] = [];
  let log = '';
  const start = (name: string): void => {
    const dir = mkdtempSync(join(tmpdir(), `cxstream-cluster-${name}-`));
    dirs.push(dir);
    const e = new EngineProcess(
      engineEnv(cluster.url, dir, {
        ...SHARED_ENV,
        CXSTREAM_CLUSTER_DEPLOYMENT: DEPLOYMENT,
        CXSTREAM_CLUSTER_INSTANCE: name,
        CXSTREAM_CHECKPOINT_STORE: 'nats',
        CXSTREAM_CHECKPOINT_REPLICAS: '3',
        CXSTREAM_STREAMS_PROFILES_REPLICAS: '3',
        CXSTREAM_CLICKHOUSE_SERVE_PORT: '0',
      }),
    );
    engines.set(name, e);
    void e.exited.then((x) => {
      log += `\n--- ${name} ---\n${e.stderrTail()}`;
      if (stopping || killed.has(name) || engines.get(name) !== e) return;
      unexpectedExits.push({
        name,
        code: x.code,
        tail: e.stderrTail().trimEnd().split('\n').slice(-4).join('\n'),
      });
      setTimeout(() => {
        if (!stopping && engines.get(name) === e) start(name);
      }, 250);
    });
  };
  const live = () => [...engines.keys()].filter((n) => !killed.has(n));
  const context = () =>
    live()
      .map((n) => `--- ${n} ---\n${engines.get(n)!.stderrTail()}`)
      .join('\n');
  /** The key groups an instance processes now: its latest share, unless it gave it up since (null). */
  const share = (e: EngineProcess, since: number): { keyGroups: number; at: number } | null => {
    const i = e.lines.findLastIndex((l) => l.msg === 'processing the key groups of this instance');
    const line = e.lines[i];
    if (!line || line.seenAt < since || !e.running) return null;
    const after = e.lines.slice(i + 1);
    if (
      after.some((l) => /^the members changed|^stopped: the key-group leases|leases lost/.test(String(l.msg)))
    )
      return null;
    return { keyGroups: line.keyGroups as number, at: line.seenAt };
  };
  /** Resolves once the live instances process every key group, each its share taken after `since`. */
  const settled = async (since: number): Promise<number> => {
    const seen = await check(
      () => {
        let total = 0;
        let at = 0;
        for (const n of live()) {
          const s = share(engines.get(n)!, since);
          if (s === null) return undefined;
          total += s.keyGroups;
          at = Math.max(at, s.at);
        }
        return total === KEY_GROUPS ? at : undefined;
      },
      120_000,
      context,
      25,
    );
    return seen - since;
  };
  try {
    const replicated = { replicas: 3 };
    await ensureStreams(
      nc,
      streamSettings({
        events: replicated,
        triggers: { ...replicated, duplicateWindowMs: 1000 },
        deadLetters: replicated,
        profiles: replicated,
      }),
    );
    const begun = Date.now();
    for (const name of opts.instances) start(name);
    await settled(begun);
    const jsm = await jetstreamManager(nc);
    const published = publish(nc, opts.events, opts.publishStep ?? 50, opts.publishPauseMs ?? 100);
    const ctx: ClusterContext = {
      cluster,
      nc,
      jsm,
      running: live,
      published,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      status: () =>
        runCli(['status'], { CXSTREAM_NATS_URL: cluster.url, CXSTREAM_CLUSTER_DEPLOYMENT: DEPLOYMENT }),
      async killInstance(name) {
        killed.add(name);
        const at = Date.now();
        await engines.get(name)!.kill();
        return settled(at);
      },
      async startInstance(name) {
        const at = Date.now();
        start(name);
        return settled(at);
      },
      async restartNode(i, outageMs) {
        const at = Date.now();
        await cluster.kill(i);
        await new Promise((r) => setTimeout(r, outageMs));
        await cluster.restart(i);
        // the instances may have kept their key groups through it: then the figure is the outage
        const lost = live().some((n) =>
          engines
            .get(n)!
            .lines.some((l) => l.seenAt >= at && l.msg === 'stopped: the key-group leases were lost'),
        );
        return lost ? settled(at) : Date.now() - at;
      },
    };
    await Promise.all([published, opts.faults(ctx)]);
    const watch = ConnectionWatch.of(nc);
    // asked again until answered: right after a node restart the stream may be electing its leader
    const streamInfo = () => check(() => watch.call(() => jsm.streams.info('CX_EVENTS')), 60_000);
    const last = (await streamInfo()).state.last_seq;
    await check(
      async () => {
        await settled(0);
        for (const n of live()) {
          const info = await watch.call(() => jsm.consumers.info('CX_EVENTS', `cxstream_${DEPLOYMENT}_${n}`));
          if (info.num_pending > 0 || info.num_ack_pending > 0) return false;
        }
        // every instance has read to the end and acked, and none gave its share up meanwhile
        return (
          (await watch.call(() => jsm.streams.info('CX_EVENTS'))).state.last_seq === last &&
          (await settled(0)) >= 0
        );
      },
      180_000,
      context,
    );
    stopping = true;
    for (const n of live()) {
      const e = engines.get(n)!;
      const code = await Promise.race([
        e.stop(),
        new Promise<string>((r) => setTimeout(() => r('no exit'), 60_000)),
      ]);
      if (code !== 0)
        throw new Error(
          `instance ${n} did not drain on SIGTERM (${code}):\n${e.lines
            .slice(-30)
            .map((l) => JSON.stringify(l).slice(0, 400))
            .join('\n')}`,
        );
    }
    const triggers = (await readStream(nc, 'CX_TRIGGERS')).map(
      (m): TriggerMessage => ({ id: m.headers?.get('Nats-Msg-Id') ?? '', body: m.json() }),
    );
    return { triggers, triggerIds: triggers.map((t) => t.id), dirs, unexpectedExits, log };
  } catch (e) {
    stopping = true;
    await Promise.all([...engines.values()].map((x) => x.kill()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    throw e;
  } finally {
    stopping = true;
    await Promise.all([...engines.values()].map((x) => x.kill()));
    await nc.close();
    await cluster.stop();
  }
}
