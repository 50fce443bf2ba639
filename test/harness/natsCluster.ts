/**
 * A real nats-server cluster with JetStream on loopback, for tests of several engine instances and of
 * a node failing under them: `nodes` servers (n1, n2, ...) routed to each other, each with its own
 * store under one temporary directory, started with the project's launcher (engine/nats/natsServer.ts).
 * `start()` resolves once JetStream is usable on every node; `kill(i)` SIGKILLs a node, `restart(i)`
 * brings it back on the same ports with its store and waits until it has caught up.
 *
 *   let cluster: NatsCluster;
 *   beforeAll(async () => { cluster = await NatsCluster.start(); });
 *   afterAll(() => cluster?.stop());
 *   // a client of the whole cluster: connect({ servers: cluster.servers }); an engine: CXSTREAM_NATS_URL=cluster.url
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsServer } from '../../engine/nats/natsServer.js';

/** Options of {@link NatsCluster.start}. */
export interface NatsClusterOptions {
  /** How many servers. @default 3 */
  nodes?: number;
  /** The cluster's name (nats-server `cluster { name }`). @default 'cxstream-test' */
  name?: string;
  /**
   * How long `start()` and `restart()` wait for JetStream to be usable (meta leader elected, every
   * running node current with it and with its streams).
   * @default 30_000
   */
  readyTimeoutMs?: number;
}

/** The ports of one node, fixed for the cluster's life so a restarted node is where its peers expect it. */
interface NodePorts {
  client: number;
  cluster: number;
  /** HTTP monitoring (`/healthz`), used to tell when the node is current. */
  monitor: number;
}

/** How many of each node's last log lines go into a timeout error. */
const ERROR_LOG_LINES = 15;

/** A running nats-server cluster with JetStream; see the module comment. */
export class NatsCluster {
  /** Client URLs of every node (`nats://127.0.0.1:<port>`), in node order, for a client's `servers`. */
  readonly servers: string[];

  /** Every client URL joined by commas, for CXSTREAM_NATS_URL (engine/nats/connect.ts splits on commas). */
  get url(): string {
    return this.servers.join(',');
  }

  /** HTTP monitoring URLs of every node (`http://127.0.0.1:<port>`: /varz, /jsz, /healthz). */
  get monitorUrls(): string[] {
    return this.ports.map((p) => `http://127.0.0.1:${p.monitor}`);
  }

  /** Whether node `i` runs (not killed). */
  isRunning(i: number): boolean {
    this.check(i);
    return !this.down.has(i);
  }

  private readonly down = new Set<number>();
  private stopped = false;

  private constructor(
    /** The cluster's name. */
    readonly name: string,
    /** The temporary directory of the nodes' stores, deleted by {@link stop}. */
    readonly dir: string,
    private readonly ports: NodePorts[],
    private readonly nodes: NatsServer[],
    private readonly readyTimeoutMs: number,
  ) {
    this.servers = ports.map((p) => `nats://127.0.0.1:${p.client}`);
  }

  /** Starts the nodes and resolves once JetStream is usable on every one of them. */
  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const count = options.nodes ?? 3;
    if (!Number.isInteger(count) || count < 1) throw new Error(`nodes must be a positive integer: ${count}`);
    const name = options.name ?? 'cxstream-test';
    const dir = mkdtempSync(join(tmpdir(), 'cxstream-nats-cluster-'));
    const nodes: NatsServer[] = [];
    try {
      const free = await freePorts(count * 3);
      const ports = Array.from({ length: count }, (_, i) => ({
        client: free[3 * i]!,
        cluster: free[3 * i + 1]!,
        monitor: free[3 * i + 2]!,
      }));
      const started = await Promise.allSettled(
        ports.map((p, i) => {
          const storeDir = join(dir, `n${i + 1}`);
          mkdirSync(storeDir, { recursive: true });
          const routes = ports
            .filter((_, j) => j !== i)
            .map((o) => JSON.stringify(`nats-route://127.0.0.1:${o.cluster}`));
          return NatsServer.start({
            jetstream: true,
            port: p.client,
            storeDir,
            extraConf: [
              `server_name: n${i + 1}`,
              `http: "127.0.0.1:${p.monitor}"`,
              'cluster {',
              `  name: ${JSON.stringify(name)}`,
              `  listen: "127.0.0.1:${p.cluster}"`,
              `  routes: [${routes.join(', ')}]`,
              '}',
            ],
          });
        }),
      );
      for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
      const cluster = new NatsCluster(name, dir, ports, nodes, options.readyTimeoutMs ?? 30_000);
      await cluster.waitReady();
      return cluster;
    } catch (e) {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** SIGKILLs node `i` (0-based; a crash) and waits for the process to end. Its store is kept. */
  async kill(i: number): Promise<void> {
    this.check(i);
    await this.nodes[i]!.kill();
    this.down.add(i);
  }

  /**
   * Starts node `i` again on the same client and cluster ports with the same store, and waits until
   * it is back in the cluster, current with the meta leader, and JetStream answers everywhere. Its
   * stream and consumer replicas catch up on their own (clients that recreate consumers all the time
   * would keep a full `/healthz` failing).
   */
  async restart(i: number): Promise<void> {
    this.check(i);
    await this.nodes[i]!.restart();
    this.down.delete(i);
    await this.waitReady(this.readyTimeoutMs, { assets: false });
  }

  /**
   * Waits until every running node answers JetStream API requests on its own (routes up, a meta
   * leader elected) and its `/healthz` is ok (current with the meta leader and every stream and
   * consumer replica it holds).
   * @throws Error listing each node's state and log tail after `timeoutMs`
   */
  async waitReady(timeoutMs = this.readyTimeoutMs, options: { assets?: boolean } = {}): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(this.nodes.map((_, i) => i).filter((i) => !this.down.has(i)));
    const lastProblem = new Map<number, string>();
    while (pending.size > 0) {
      for (const i of [...pending]) {
        const problem = await this.nodeProblem(i, options.assets ?? true);
        if (problem === null) pending.delete(i);
        else lastProblem.set(i, problem);
      }
      if (pending.size === 0) return;
      if (Date.now() >= deadline) {
        const report = this.nodes.map((node, i) => {
          const state = this.down.has(i)
            ? 'killed'
            : pending.has(i)
              ? `not ready: ${lastProblem.get(i)}`
              : 'ready';
          const tail = node.log
            .trimEnd()
            .split('\n')
            .filter((line) => !line.includes('Healthcheck failed')) // our polling, said in `state`
            .slice(-ERROR_LOG_LINES);
          return `--- n${i + 1} ${this.servers[i]} (${state}); log tail:\n${tail.join('\n')}`;
        });
        throw new Error(
          `NATS cluster ${this.name}: JetStream not ready within ${timeoutMs} ms\n${report.join('\n')}`,
        );
      }
      await sleep(200);
    }
  }

  /** Stops every node and deletes the stores; safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // SIGKILL: the stores are deleted anyway, and a graceful JetStream shutdown takes seconds.
    await Promise.all(this.nodes.map((n) => n.kill()));
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Why node `i` is not ready yet, or null when it is. */
  private async nodeProblem(i: number, assets: boolean): Promise<string | null> {
    // only this node: its routes must carry the request to the meta leader and back
    const nc = await connect({ servers: this.servers[i], reconnect: false, timeout: 1_000 }).catch(
      (e: Error) => e,
    );
    if (nc instanceof Error) return `connect: ${nc.message}`;
    try {
      const jsm = await jetstreamManager(nc, { timeout: 1_000 });
      await jsm.getAccountInfo();
    } catch (e) {
      return `account info: ${(e as Error).message}`;
    } finally {
      await nc.close().catch(() => {});
    }
    // asked second: the server logs a warning for each failed health check
    try {
      const res = await fetch(`${this.monitorUrls[i]}/healthz${assets ? '' : '?js-server-only=true'}`, {
        signal: AbortSignal.timeout(1_000),
      });
      const body = await res.text();
      return res.ok ? null : `/healthz ${res.status} ${body.trim()}`;
    } catch (e) {
      return `/healthz: ${(e as Error).message}`;
    }
  }

  private check(i: number): void {
    if (this.stopped) throw new Error(`NATS cluster ${this.name} is stopped`);
    if (!Number.isInteger(i) || i < 0 || i >= this.nodes.length)
      throw new Error(`no node ${i} (0..${this.nodes.length - 1})`);
  }
}

/**
 * `count` distinct free TCP ports on 127.0.0.1: each found by listening on port 0; all listeners are
 * held until every port is known, so none is handed out twice, then closed for the servers to take.
 */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let k = 0; k < count; k++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new Error('no TCP address');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
