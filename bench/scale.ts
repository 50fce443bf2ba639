/**
 * Scale-out: several `cxstream run` instances sharing one deployment (engine/cluster/instance.ts,
 * docs/SCALING.md) against one instance, on the same stored stream, in the same run.
 *
 *   npm run bench:scale -- [--events N] [--customers C] [--max-instances M] [--kill-after-ms MS]
 *                          [--timeout-ms MS] [--only c,d] [--log-dir DIR] [--record]
 *   (or BENCH_EVENTS, BENCH_CUSTOMERS, BENCH_MAX_INSTANCES, BENCH_KILL_AFTER_MS, BENCH_TIMEOUT_MS,
 *   BENCH_ONLY, BENCH_LOG_DIR; defaults 100 000 events, 5 000 customers, 3 instances, 3 000 ms, 120 000 ms per configuration)
 *
 * A private nats-server gets CX_EVENTS preloaded with N generated events (engine/demo/traffic.ts,
 * msgpack, the event id as Nats-Msg-Id). Then, one configuration after the other, real `cxstream run`
 * processes (test/harness/engineProcess.ts) read the whole stream, each with an embedded ClickHouse
 * directory of its own, one worker thread (`CXSTREAM_ENGINE_PARTITIONS=1`, what the default
 * `cores - 1` gives on 2 cores anyway), checkpoints in the NATS object store, identity stitching off,
 * no aggregate rules, no metrics port, no wall-clock idleness (`engine.idleAfterMs` a week):
 *
 *   a. baseline: one plain instance (no deployment; durable `cxstream`), run again last (a'): the
 *      machine is shared, so ratios are taken against the mean of both;
 *   b. one instance in a deployment (the coordination's overhead: b against a);
 *   c, d. 2 and 3 instances of a deployment, all started at once (a fresh deployment name each, so
 *      each starts from the beginning of the stream);
 *   e, f. one instance of a deployment whose other 1 or 2 members the bench simulates (member entries
 *      in the lease bucket, renewed, processing nothing): the instance owns 1/2 or 1/3 of the key
 *      groups and reads and skips the rest alone on the machine, which is what each instance of c or
 *      d would do on a host of its own (with nats-server still here).
 *
 * Between configurations the outputs are reset (CX_TRIGGERS, CX_DLQ, the profile bucket, the
 * checkpoint bucket, the lease buckets, every consumer of CX_EVENTS deleted and created again), so
 * each one starts as the baseline did: empty outputs, no checkpoint, no trigger ledger to read.
 *
 * A configuration is done when every instance's consumer has delivered and acked the stream's last
 * sequence with nothing pending (acks wait for a checkpoint: `checkpoint.intervalMs`, 2 s by default,
 * is in the figures). Reported per configuration:
 *
 * - from start: N / (spawn → done);
 * - after settling: the events still to read / (settled → done), where settled is the first moment
 *   every instance processes the share the members give it: the last of their 'processing the key
 *   groups of this instance' lines ('ready' for the baseline); the events still to read are last seq −
 *   the lowest coveredSeq of those lines (where the slowest instance started reading);
 * - rebalances after settling (the members did not change: they are spurious);
 * - CPU seconds of each instance (/proc, all its threads) from its settled line to done, of
 *   nats-server, and of the whole machine (it is shared: other processes are in it).
 *
 * The cost of reading and skipping another instance's event, from the baseline's CPU per event c1
 * and an instance's CPU per event it read: s = (cpu/read − c1·share) / (1 − share); the same from
 * wall-clock time per event. An instance on a host of its own needs c1·share + s·(1 − share) per
 * stream event: the speed-up predicted from CPU is c1 over the largest of those (each instance with
 * the cores the baseline had); e and f measure it directly.
 *
 * Failover: 2 instances of a fresh deployment on the backlog; `--kill-after-ms` after both process
 * their half, one is SIGKILLed. Reported: kill → the survivor's 'the members changed' line (the dead
 * member's entry expiring: `cluster.leaseTtlMs`), kill → the survivor processing all 128 key groups,
 * and kill → the survivor's consumer caught up with the stream.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import { assignKeyGroups, leaseBucket } from '../engine/cluster/leases.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { NatsServer } from '../engine/nats/natsServer.js';
import { ensureStreams, natsNames, streamSettings } from '../engine/nats/streams.js';
import type { CxEvent } from '../operators/types.js';
import { EngineProcess, engineEnv } from '../test/harness/engineProcess.js';
import { readStream } from '../test/harness/readStream.js';
import { flag, fmt, jsonLine, recordRun, runInfo, table } from './report.js';

const N = flag('events', 'BENCH_EVENTS', 100_000);
const CUSTOMERS = flag('customers', 'BENCH_CUSTOMERS', 5_000);
const MAX_INSTANCES = flag('max-instances', 'BENCH_MAX_INSTANCES', 3);
const KILL_AFTER_MS = flag('kill-after-ms', 'BENCH_KILL_AFTER_MS', 3_000);
const TIMEOUT_MS = flag('timeout-ms', 'BENCH_TIMEOUT_MS', 120_000);
const PARTITIONS = 1;
/** cluster.leaseTtlMs as the instances run it (they inherit this process's environment). */
const LEASE_TTL_MS = Number(process.env.CXSTREAM_CLUSTER_LEASE_TTL_MS || 5000);
const KEY_GROUPS = 128;
const POLL_MS = 100;
const PROCESSING = 'processing the key groups of this instance';
const CHECKPOINT_BUCKET = 'cx_checkpoints';
/** The log lines of an instance that stops its run because its leases are no longer surely its own. */
const LEASE_LOST = /^key-group leases lost|^stopped: the key-group leases were lost/;
/** `--only c,d,failover` (or BENCH_ONLY): the deployment configurations to run, by letter, and whether the failover (the baseline always runs). */
const ONLY = (() => {
  const k = process.argv.indexOf('--only');
  const raw = k > 1 ? process.argv[k + 1] : process.env.BENCH_ONLY;
  return raw ? raw.split(',').map((x) => x.trim()) : null;
})();
/** `--log-dir DIR` (or BENCH_LOG_DIR): each instance's log lines are written there. */
const LOG_DIR = (() => {
  const k = process.argv.indexOf('--log-dir');
  return k > 1 ? process.argv[k + 1] : process.env.BENCH_LOG_DIR;
})();

/** What every instance runs with (a cluster instance refuses identity and aggregates, see instance.ts). */
const COMMON_ENV: Record<string, string> = {
  CXSTREAM_ENGINE_PARTITIONS: String(PARTITIONS),
  CXSTREAM_CHECKPOINT_STORE: 'nats',
  CXSTREAM_IDENTITY_ENABLED: 'false',
  CXSTREAM_AGGREGATES: '',
  CXSTREAM_METRICS_PORT: '0',
  CXSTREAM_CLICKHOUSE_SERVE_PORT: '0',
  // The traffic's days are in the wall clock's past: an instance caught up and idle for idleAfterMs
  // (one that finished its share before the others) would move its watermarks to now and fire every
  // pending timer, triggers the baseline, stopped once caught up, never fires. Wall-clock idleness is
  // left out, as in the fault harness, so that the trigger ids compare.
  CXSTREAM_ENGINE_IDLE_AFTER_MS: String(7 * 24 * 3600_000),
};

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system, all threads) a process used so far, or null once it is gone. */
function processCpu(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return null;
  }
}

/** Busy and total CPU seconds of the whole machine so far (/proc/stat, all cores). */
function machineCpu(): { busy: number; total: number } {
  const first = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = first.reduce((a, b) => a + b, 0);
  const idle = (first[3] ?? 0) + (first[4] ?? 0);
  return { busy: (total - idle) / TICKS, total: total / TICKS };
}

/** The pid of the process whose command line holds `text` (the bench's nats-server: its conf path). */
function findPid(text: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The first N events (time order) of as many generated days of C customers as it takes. */
function generate(): CxEvent[] {
  for (let days = 1; ; days++) {
    const events = generateTraffic({ customers: CUSTOMERS, days, seed: 42 });
    if (events.length >= N || days >= 30) return events.slice(0, N);
  }
}

/** Publishes the events in order with their id as Nats-Msg-Id, 1 000 JetStream publishes at a time. */
async function preload(nc: NatsConnection, events: readonly CxEvent[]): Promise<number> {
  const js = jetstream(nc, { timeout: 30_000 });
  for (let i = 0; i < events.length; i += 1000) {
    await Promise.all(
      events.slice(i, i + 1000).map((e) => js.publish(subjectOf(e), pack(e), { msgID: e.id })),
    );
  }
  const info = await (await jetstreamManager(nc)).streams.info(natsNames.eventsStream);
  return info.state.last_seq;
}

/** Deletes what the previous configuration wrote (outputs, checkpoints, leases, consumers) and creates the streams again. */
async function resetOutputs(nc: NatsConnection, jsm: JetStreamManager): Promise<void> {
  const outputs = new Set([
    natsNames.triggersStream,
    natsNames.deadLetterStream,
    natsNames.profileStream,
    `OBJ_${CHECKPOINT_BUCKET}`,
  ]);
  for await (const s of jsm.streams.list()) {
    const name = s.config.name;
    if (outputs.has(name) || name.startsWith('KV_cx_leases_')) await jsm.streams.delete(name);
  }
  for await (const c of jsm.consumers.list(natsNames.eventsStream))
    await jsm.consumers.delete(natsNames.eventsStream, c.name);
  await ensureStreams(nc, streamSettings());
}

/** One `cxstream run` of a configuration. */
interface Instance {
  name: string;
  durable: string;
  dir: string;
  proc: EngineProcess;
  /** CPU seconds samples (at, cpu) while it runs. */
  cpu: Array<{ at: number; cpu: number }>;
  /** When its consumer had acked the whole stream with its final share. */
  doneAt?: number;
}

function pidOf(i: Instance): number | undefined {
  const pid = i.proc.lines.find((l) => typeof l.pid === 'number')?.pid;
  return typeof pid === 'number' ? pid : undefined;
}

/** The CPU seconds of the sample at or just after `at` (the first sample when none is before). */
function cpuAt(i: Instance, at: number): number {
  const s = i.cpu.find((x) => x.at >= at) ?? i.cpu.at(-1);
  return s?.cpu ?? 0;
}

/** The instance's current share: its last 'processing' line, unless it gave its key groups up since. */
function share(
  i: Instance,
): { keyGroups: number; from: number; to: number; coveredSeq: number; at: number } | null {
  const k = i.proc.lines.findLastIndex((l) => l.msg === PROCESSING);
  const line = i.proc.lines[k];
  if (!line || !i.proc.running) return null;
  if (
    i.proc.lines
      .slice(k + 1)
      .some((l) => /^the members changed|^stopped: the key-group leases|leases lost/.test(String(l.msg)))
  )
    return null;
  return {
    keyGroups: line.keyGroups as number,
    from: line.from as number,
    to: line.to as number,
    coveredSeq: line.coveredSeq as number,
    at: line.seenAt,
  };
}

/**
 * Members of the deployment that run nowhere: their entries in the lease bucket (as Leases.join
 * writes them) renewed every second, so the live instance takes only its share of the key groups and
 * reads and skips the rest, as each instance of a deployment on hosts of their own would. Resolves
 * with what removes them.
 */
async function simulateMembers(
  nc: NatsConnection,
  deployment: string,
  names: readonly string[],
): Promise<() => Promise<void>> {
  // as Leases.join creates it (default lease TTL)
  const kv = await new Kvm(nc).create(leaseBucket(deployment), {
    history: 1,
    ttl: LEASE_TTL_MS,
    replicas: 1,
  });
  const startedAt = Date.now();
  const put = () =>
    Promise.all(
      names.map((instance) =>
        kv.put(
          `member.${instance}`,
          JSON.stringify({ instance, host: 'bench:scale (simulated)', pid: 0, startedAt }),
        ),
      ),
    );
  await put();
  const timer = setInterval(() => void put().catch(() => {}), 1000);
  return async () => {
    clearInterval(timer);
    for (const n of names) await kv.delete(`member.${n}`).catch(() => {});
  };
}

/** Starts the instances of a configuration: `deployment` null is the plain single instance. */
function startInstances(url: string, deployment: string | null, names: readonly string[]): Instance[] {
  return names.map((name) => {
    const dir = mkdtempSync(join(tmpdir(), `cxstream-scale-${name}-`));
    const extra: Record<string, string> = { ...COMMON_ENV };
    if (deployment !== null) {
      extra.CXSTREAM_CLUSTER_DEPLOYMENT = deployment;
      extra.CXSTREAM_CLUSTER_INSTANCE = name;
    }
    return {
      name,
      durable: deployment === null ? 'cxstream' : `cxstream_${deployment}_${name}`,
      dir,
      proc: new EngineProcess(engineEnv(url, dir, extra)),
      cpu: [],
    };
  });
}

/** Stops the instances (SIGTERM, drained) and removes their directories; the exit codes. */
async function stopInstances(instances: readonly Instance[]): Promise<Array<number | null>> {
  const codes = await Promise.all(instances.map((i) => i.proc.stop()));
  for (const i of instances) rmSync(i.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  return codes;
}

function context(instances: readonly Instance[]): string {
  return instances.map((i) => `--- ${i.name} ---\n${i.proc.stderrTail().slice(-3000)}`).join('\n');
}

/**
 * Whether the instance's consumer has delivered and acked the stream up to `last`, nothing pending.
 * (A consumer created past the stream's end, a run whose checkpoints cover everything, reports an
 * ack floor of 0 on nats-server 2.9 until it acks something: its delivered sequence says it is there.)
 */
async function caughtUp(jsm: JetStreamManager, durable: string, last: number): Promise<boolean> {
  try {
    const info = await jsm.consumers.info(natsNames.eventsStream, durable);
    const at = Math.max(info.ack_floor.stream_seq, info.delivered.stream_seq);
    return at >= last && info.num_pending === 0 && info.num_ack_pending === 0;
  } catch {
    return false; // not created yet, or recreated right now
  }
}

/** Samples every instance's CPU; throws when one exited. */
function sample(instances: readonly Instance[]): void {
  const now = Date.now();
  for (const i of instances) {
    if (!i.proc.running)
      throw new Error(`instance ${i.name} exited on its own:\n${i.proc.stderrTail().slice(-6000)}`);
    const pid = pidOf(i);
    const cpu = pid === undefined ? null : processCpu(pid);
    if (cpu !== null) i.cpu.push({ at: now, cpu });
  }
}

/** Writes each instance's log lines to `LOG_DIR/<prefix>-<name>.log` (`--log-dir`), if given. */
function keepLogs(prefix: string, instances: readonly Instance[]): void {
  if (!LOG_DIR) return;
  mkdirSync(LOG_DIR, { recursive: true });
  for (const i of instances) writeFileSync(join(LOG_DIR, `${prefix}-${i.name}.log`), `${i.proc.logText()}\n`);
}

/** When the instance's runs stopped because their leases were lost (the first such line of each run). */
function leaseLosses(i: Instance): number[] {
  const out: number[] = [];
  let counted = false;
  for (const l of i.proc.lines) {
    if (l.msg === PROCESSING) counted = false;
    else if (!counted && LEASE_LOST.test(String(l.msg))) {
      out.push(l.seenAt);
      counted = true;
    }
  }
  return out;
}

type Share = NonNullable<ReturnType<typeof share>>;

/** Each finished configuration's trigger ids (CX_TRIGGERS' Nats-Msg-Id), to compare with the baseline's. */
const triggerIds = new Map<string, Set<string>>();
const FAILOVER = 'failover';

/** Trigger ids of `label` the baseline did not publish, and (for a configuration owning every key group) the baseline's it did not. */
function triggerDiff(
  label: string,
  baseline: string,
  whole: boolean,
): { extra: number; missing: number | null } {
  const mine = triggerIds.get(label) ?? new Set<string>();
  const base = triggerIds.get(baseline) ?? new Set<string>();
  let extra = 0;
  for (const id of mine) if (!base.has(id)) extra++;
  let missing = 0;
  for (const id of base) if (!mine.has(id)) missing++;
  return { extra, missing: whole ? missing : null };
}

/** With `--log-dir`: the triggers of a configuration whose ids the baseline did not publish, one JSON line each. */
function keepExtraTriggers(prefix: string, label: string, messages: readonly JsMsg[]): void {
  const base = triggerIds.values().next().value;
  if (!LOG_DIR || base === undefined || triggerIds.size === 1) return;
  const extra = messages.filter((m) => !base.has(m.headers?.get('Nats-Msg-Id') ?? ''));
  if (extra.length === 0) return;
  mkdirSync(LOG_DIR, { recursive: true });
  writeFileSync(
    join(LOG_DIR, `${prefix}-extra-triggers.jsonl`),
    extra
      .map((m) => JSON.stringify({ config: label, seq: m.seq, subject: m.subject, body: m.json() }))
      .join('\n'),
  );
}

/** A configuration that did not finish: an instance exited on its own, or the time ran out. */
class ConfigFailed extends Error {
  override readonly name = 'ConfigFailed';
  constructor(
    readonly label: string,
    readonly reason: string,
    readonly seconds: number,
    /** Runs started ('processing' or 'ready' lines) and runs stopped by lost leases, all instances. */
    readonly runs: number,
    readonly leaseLosses: number,
    readonly detail: string,
  ) {
    super(`${label}: ${reason}`);
  }
}

function failure(
  label: string,
  e: unknown,
  t0: number,
  instances: readonly Instance[],
  runLine: string,
): ConfigFailed {
  const message = e instanceof Error ? e.message : String(e);
  // an instance's crash: the first line of its error, e.g. "Error: Unexpected message from Worker: {"
  const crash = /\n(\w*Error: [^\n]*)/.exec(message)?.[1];
  return new ConfigFailed(
    label,
    `${message.split('\n')[0]}${crash ? ` (${crash.slice(0, 120)})` : ''}`,
    (Date.now() - t0) / 1000,
    instances.reduce((n, i) => n + i.proc.lines.filter((l) => l.msg === runLine).length, 0),
    instances.reduce((n, i) => n + leaseLosses(i).length, 0),
    message.slice(-8000),
  );
}

/** One configuration's figures. */
interface ConfigResult {
  label: string;
  instances: number;
  /** Members simulated by the bench (registered and renewed, processing nothing). */
  simulated: number;
  deployment: string | null;
  fromStartSeconds: number;
  fromStartRate: number;
  /** Spawn → settled (ms): the last instance's 'processing' line of the share the members give it ('ready' for the baseline). */
  settleMs: number;
  /** Events still to read at settling (last seq − the lowest coveredSeq of those lines). */
  settledBacklog: number;
  afterSettlingSeconds: number;
  afterSettlingRate: number;
  /** 'processing' lines (deployments) or 'ready' lines (baseline) up to settling, all instances. */
  runsToSettle: number;
  /** 'the members changed' lines after settling (the members did not change: spurious rebalances). */
  rebalancesAfterSettling: number;
  /** 'key-group leases lost' lines (a renewal late or refused: the run stops and starts again), before and after settling. */
  leaseLosses: { before: number; after: number };
  perInstance: Array<{
    name: string;
    keyGroups: number;
    coveredSeq: number;
    /** Stream events it read after settling (last seq − its coveredSeq then). */
    read: number;
    /** CPU seconds (all threads) from its settled share's line to caught up. */
    cpuSeconds: number;
    /** CPU seconds from spawn to caught up. */
    cpuTotalSeconds: number;
    /** Its settled share's line → caught up (s). */
    seconds: number;
  }>;
  natsServerCpuSeconds: number | null;
  /** Busy CPU seconds of the whole machine (both cores) over the configuration, and its wall seconds. */
  machineBusySeconds: number;
  wallSeconds: number;
  triggers: number;
  distinctTriggerIds: number;
  deadLetters: number;
  exitCodes: Array<number | null>;
}

async function runConfig(
  label: string,
  server: NatsServer,
  nc: NatsConnection,
  jsm: JetStreamManager,
  last: number,
  deployment: string | null,
  names: readonly string[],
  phantoms: readonly string[] = [],
): Promise<ConfigResult> {
  await resetOutputs(nc, jsm);
  const simulated =
    deployment !== null && phantoms.length > 0 ? await simulateMembers(nc, deployment, phantoms) : null;
  const natsPid = findPid(join(server.directory, 'server.conf'));
  const natsCpu0 = natsPid === null ? null : processCpu(natsPid);
  const machine0 = machineCpu();
  const expected =
    deployment === null
      ? new Map([[names[0]!, Array.from({ length: KEY_GROUPS }, (_, k) => k)]])
      : assignKeyGroups([...names, ...phantoms], KEY_GROUPS);
  const t0 = Date.now();
  const instances = startInstances(server.url, deployment, names);
  /** The share an instance processes now; the baseline's is every key group, from its 'ready' line. */
  const current = (i: Instance): Share | null => {
    if (deployment !== null) return share(i);
    const ready = i.proc.line('ready');
    return ready
      ? { keyGroups: KEY_GROUPS, from: 0, to: KEY_GROUPS - 1, coveredSeq: 0, at: ready.seenAt }
      : null;
  };
  try {
    const deadline = t0 + TIMEOUT_MS;
    let settled: Share[] | null = null;
    const runLine = deployment === null ? 'ready' : PROCESSING;
    for (;;) {
      try {
        sample(instances);
      } catch (e) {
        throw failure(label, e, t0, instances, runLine);
      }
      const shares = instances.map(current);
      const assigned = shares.every((s, k) => {
        const want = expected.get(instances[k]!.name)!;
        return s !== null && s.keyGroups === want.length && s.from === want[0] && s.to === want.at(-1);
      });
      if (assigned) {
        settled ??= shares as Share[];
        for (const i of instances)
          if (i.doneAt === undefined && (await caughtUp(jsm, i.durable, last))) {
            i.doneAt = Date.now();
            sample([i]);
          }
        if (instances.every((i) => i.doneAt !== undefined)) break;
      } else {
        // a share given up again (a rebalance): not done until its next run caught up
        for (const i of instances) i.doneAt = undefined;
      }
      if (Date.now() > deadline)
        throw failure(label, new Error(`not done after ${TIMEOUT_MS} ms`), t0, instances, runLine);
      await sleep(POLL_MS);
    }
    const tEnd = Math.max(...instances.map((i) => i.doneAt!));
    const natsCpu1 = natsPid === null ? null : processCpu(natsPid);
    const machine1 = machineCpu();
    const settledAt = Math.max(...settled!.map((f) => f.at));
    const settledBacklog = last - Math.min(...settled!.map((f) => f.coveredSeq));
    const streams = await Promise.all([
      jsm.streams.info(natsNames.triggersStream),
      jsm.streams.info(natsNames.deadLetterStream),
    ]);
    const perInstance = instances.map((i, k) => {
      const f = settled![k]!;
      return {
        name: i.name,
        keyGroups: f.keyGroups,
        coveredSeq: f.coveredSeq,
        read: last - f.coveredSeq,
        cpuSeconds: cpuAt(i, i.doneAt!) - cpuAt(i, f.at),
        cpuTotalSeconds: cpuAt(i, i.doneAt!),
        seconds: (i.doneAt! - f.at) / 1000,
      };
    });
    const runsToSettle = instances.reduce(
      (n, i) => n + i.proc.lines.filter((l) => l.msg === runLine && l.seenAt <= settledAt).length,
      0,
    );
    const rebalancesAfterSettling = instances.reduce(
      (n, i) =>
        n +
        i.proc.lines.filter(
          (l) =>
            l.msg === 'the members changed: draining to rebalance' &&
            l.seenAt > settledAt &&
            l.seenAt <= tEnd,
        ).length,
      0,
    );
    const losses = instances.flatMap((i) => leaseLosses(i).filter((at) => at <= tEnd));
    const exitCodes = await stopInstances(instances);
    const messages = await readStream(nc, natsNames.triggersStream);
    const ids = messages.map((m) => m.headers?.get('Nats-Msg-Id') ?? '');
    triggerIds.set(label, new Set(ids));
    keepExtraTriggers(deployment ?? `single_${t0.toString(36)}`, label, messages);
    const result: ConfigResult = {
      label,
      instances: names.length,
      simulated: phantoms.length,
      deployment,
      fromStartSeconds: (tEnd - t0) / 1000,
      fromStartRate: last / ((tEnd - t0) / 1000),
      settleMs: settledAt - t0,
      settledBacklog,
      afterSettlingSeconds: (tEnd - settledAt) / 1000,
      afterSettlingRate: settledBacklog / ((tEnd - settledAt) / 1000),
      runsToSettle,
      rebalancesAfterSettling,
      leaseLosses: {
        before: losses.filter((at) => at <= settledAt).length,
        after: losses.filter((at) => at > settledAt).length,
      },
      perInstance,
      natsServerCpuSeconds: natsCpu0 === null || natsCpu1 === null ? null : natsCpu1 - natsCpu0,
      machineBusySeconds: machine1.busy - machine0.busy,
      wallSeconds: (tEnd - t0) / 1000,
      triggers: streams[0].state.messages,
      distinctTriggerIds: new Set(ids).size,
      deadLetters: streams[1].state.messages,
      exitCodes,
    };
    if (exitCodes.some((c) => c !== 0))
      throw new Error(`${label}: exit codes ${exitCodes.join(', ')} on SIGTERM\n${context(instances)}`);
    return result;
  } finally {
    await Promise.all(instances.map((i) => i.proc.kill()));
    await simulated?.();
    keepLogs(deployment ?? `single_${t0.toString(36)}`, instances);
    for (const i of instances)
      rmSync(i.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

/** The failover's figures (ms from the SIGKILL). */
interface FailoverResult {
  killed: string;
  survivor: string;
  /** Settled (both processing their half) → kill. */
  killAfterMs: number;
  /** Kill → the survivor's 'the members changed' line. */
  noticedMs: number | null;
  /** Kill → the survivor's 'processing' line with all key groups. */
  takeoverMs: number;
  /** The survivor's recovery of that incarnation (its line's `ms`). */
  recoveryMs: number;
  /** Where the survivor's new run starts reading, and the stream's last seq then. */
  coveredSeq: number;
  last: number;
  /** Kill → the survivor's consumer caught up with the stream. */
  caughtUpMs: number;
  /** The survivor's runs stopped by lost leases, from start to caught up. */
  leaseLosses: number;
  triggers: number;
}

async function failover(
  server: NatsServer,
  nc: NatsConnection,
  jsm: JetStreamManager,
  last: number,
  deployment: string,
): Promise<FailoverResult> {
  await resetOutputs(nc, jsm);
  const names = ['i1', 'i2'];
  const instances = startInstances(server.url, deployment, names);
  const [survivor, victim] = instances as [Instance, Instance];
  try {
    const deadline = Date.now() + TIMEOUT_MS;
    let settledAt = 0;
    for (;;) {
      sample(instances);
      const shares = instances.map(share);
      if (shares.every((s) => s !== null && s.keyGroups === KEY_GROUPS / 2)) {
        settledAt = Math.max(...shares.map((s) => s!.at));
        break;
      }
      if (Date.now() > deadline) throw new Error(`failover: never settled\n${context(instances)}`);
      await sleep(POLL_MS);
    }
    await sleep(Math.max(0, settledAt + KILL_AFTER_MS - Date.now()));
    if (await caughtUp(jsm, survivor.durable, last))
      throw new Error(
        'failover: the survivor caught up before the kill: use more --events or a smaller --kill-after-ms',
      );
    const killedAt = Date.now();
    await victim.proc.kill();
    let takeover: ReturnType<typeof share> = null;
    for (;;) {
      sample([survivor]);
      const s = share(survivor);
      if (s !== null && s.keyGroups === KEY_GROUPS && s.at >= killedAt) {
        takeover = s;
        break;
      }
      if (Date.now() > deadline) throw new Error(`failover: no takeover\n${context([survivor])}`);
      await sleep(25);
    }
    const takeoverLine = survivor.proc.lines.findLast((l) => l.msg === PROCESSING)!;
    for (;;) {
      if (await caughtUp(jsm, survivor.durable, last)) break;
      sample([survivor]);
      if (Date.now() > deadline)
        throw new Error(`failover: the survivor never caught up\n${context([survivor])}`);
      await sleep(POLL_MS);
    }
    const caughtUpAt = Date.now();
    const noticed = survivor.proc.lines.find(
      (l) => l.seenAt >= killedAt && l.msg === 'the members changed: draining to rebalance',
    );
    const triggers = (await jsm.streams.info(natsNames.triggersStream)).state.messages;
    const code = await survivor.proc.stop();
    if (code !== 0) throw new Error(`failover: the survivor exited with ${code}\n${context([survivor])}`);
    const ids = (await readStream(nc, natsNames.triggersStream)).map(
      (m) => m.headers?.get('Nats-Msg-Id') ?? '',
    );
    triggerIds.set(FAILOVER, new Set(ids));
    return {
      killed: victim.name,
      survivor: survivor.name,
      killAfterMs: killedAt - settledAt,
      noticedMs: noticed ? noticed.seenAt - killedAt : null,
      takeoverMs: takeover.at - killedAt,
      recoveryMs: takeoverLine.ms as number,
      coveredSeq: takeover.coveredSeq,
      last,
      caughtUpMs: caughtUpAt - killedAt,
      leaseLosses: leaseLosses(survivor).length,
      triggers,
    };
  } finally {
    await Promise.all(instances.map((i) => i.proc.kill()));
    keepLogs(deployment, instances);
    for (const i of instances)
      rmSync(i.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

async function main(): Promise<void> {
  const info = runInfo();
  jsonLine('run', { ...info, events: N, customers: CUSTOMERS, partitionsPerInstance: PARTITIONS });
  const genStarted = performance.now();
  const events = generate();
  jsonLine('generated', { events: events.length, seconds: (performance.now() - genStarted) / 1000 });

  const server = await NatsServer.start({ jetstream: true });
  const nc = await connect({ servers: server.url, name: 'cxstream-bench-scale' });
  try {
    await ensureStreams(nc, streamSettings());
    const jsm = await jetstreamManager(nc);
    const publishStarted = performance.now();
    const last = await preload(nc, events);
    jsonLine('preload', { events: last, seconds: (performance.now() - publishStarted) / 1000 });

    const run = Date.now().toString(36);
    const configs: Array<{ label: string; deployment: string | null; names: string[]; phantoms?: string[] }> =
      [{ label: 'a. 1 instance, no deployment', deployment: null, names: ['single'] }];
    for (let n = 1; n <= MAX_INSTANCES; n++)
      configs.push({
        label: `${String.fromCharCode(97 + n)}. ${n} instance${n > 1 ? 's' : ''} of a deployment`,
        deployment: `scale${n}_${run}`,
        names: Array.from({ length: n }, (_, k) => `i${k + 1}`),
      });
    // one instance alone doing what each of n does on a host of its own: the other members simulated
    for (let n = 2; n <= MAX_INSTANCES; n++)
      configs.push({
        label: `${String.fromCharCode(97 + MAX_INSTANCES + n - 1)}. 1 instance owning 1/${n} (${n - 1} member${n > 2 ? 's' : ''} simulated)`,
        deployment: `alone${n}_${run}`,
        names: ['i1'],
        phantoms: Array.from({ length: n - 1 }, (_, k) => `p${k + 2}`),
      });
    // the baseline again at the end: the machine is shared, ratios are taken against the mean of both
    configs.push({ label: "a'. 1 instance, no deployment (again)", deployment: null, names: ['single'] });
    const outcomes: Array<ConfigResult | ConfigFailed> = [];
    for (const c of configs) {
      if (c.deployment !== null && ONLY !== null && !ONLY.includes(c.label[0]!)) continue;
      try {
        const r = await runConfig(c.label, server, nc, jsm, last, c.deployment, c.names, c.phantoms ?? []);
        outcomes.push(r);
        jsonLine('config', r);
      } catch (e) {
        if (!(e instanceof ConfigFailed) || c.deployment === null) throw e;
        outcomes.push(e);
        const { label, reason, seconds, runs, leaseLosses } = e;
        jsonLine('failed', { label, reason, seconds, runs, leaseLosses });
        console.error(`${label} failed:\n${e.detail}`);
      }
    }
    let fo: FailoverResult | { failed: string };
    try {
      if (ONLY !== null && !ONLY.includes('failover')) throw new Error('not run (--only without failover)');
      fo = await failover(server, nc, jsm, last, `failover_${run}`);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      fo = { failed: message.split('\n')[0]! };
      console.error(`failover failed:\n${message.slice(-8000)}`);
    }
    jsonLine('failover', fo);

    // the cost model (see the file comment)
    const results = outcomes.filter((r): r is ConfigResult => !(r instanceof ConfigFailed));
    const baselines = results.filter((r) => r.deployment === null);
    const mean = (f: (r: ConfigResult) => number) =>
      baselines.reduce((n, r) => n + f(r), 0) / baselines.length;
    const base = {
      label: baselines[0]!.label,
      fromStartRate: mean((r) => r.fromStartRate),
      afterSettlingRate: mean((r) => r.afterSettlingRate),
    };
    const c1 = mean((r) => r.perInstance[0]!.cpuSeconds / r.perInstance[0]!.read);
    const model = results
      .filter((r) => r.deployment !== null)
      .map((r) => {
        const per = r.perInstance.map((p) => {
          const perRead = p.cpuSeconds / p.read;
          const share = p.keyGroups / KEY_GROUPS;
          return {
            name: p.name,
            share,
            perReadUs: perRead * 1e6,
            skipUs: share < 1 ? ((perRead - c1 * share) / (1 - share)) * 1e6 : null,
          };
        });
        const skips = per.map((p) => p.skipUs).filter((x): x is number => x !== null);
        const share = Math.max(...per.map((p) => p.share));
        // wall clock: what the slowest instance's share took against the baseline's whole stream
        const wallSkipUs =
          share < 1 ? ((1 / r.afterSettlingRate - share / base.afterSettlingRate) / (1 - share)) * 1e6 : null;
        return {
          label: r.label,
          instances: r.instances,
          simulated: r.simulated,
          share,
          per,
          cpuSkipUs: skips.length ? skips.reduce((a, b) => a + b, 0) / skips.length : null,
          wallSkipUs,
          cpuPredictedSpeedup: (c1 * 1e6) / Math.max(...per.map((p) => p.perReadUs)),
          measuredRatio: r.afterSettlingRate / base.afterSettlingRate,
          leaseLosses: r.leaseLosses.before + r.leaseLosses.after,
        };
      });
    jsonLine('model', { c1Us: c1 * 1e6, baselineUsPerEvent: 1e6 / base.afterSettlingRate, configs: model });

    const rows = outcomes.map((r) =>
      r instanceof ConfigFailed
        ? [
            r.label,
            `failed after ${r.seconds.toFixed(0)} s: ${r.reason.slice(0, 100)}`,
            '',
            '',
            '',
            '',
            '',
            `${r.runs} runs`,
            `${r.leaseLosses}`,
            '',
            '',
            '',
            '',
          ]
        : [
            r.label,
            r.fromStartSeconds.toFixed(1),
            r.fromStartRate,
            (r.fromStartRate / base.fromStartRate).toFixed(2),
            (r.settleMs / 1000).toFixed(1),
            r.afterSettlingRate,
            (r.afterSettlingRate / base.afterSettlingRate).toFixed(2),
            `${r.runsToSettle} / ${r.rebalancesAfterSettling}`,
            `${r.leaseLosses.before} / ${r.leaseLosses.after}`,
            r.perInstance.map((p) => p.cpuSeconds.toFixed(1)).join(' / '),
            r.natsServerCpuSeconds === null ? '-' : r.natsServerCpuSeconds.toFixed(1),
            `${((r.machineBusySeconds / r.wallSeconds) * 100).toFixed(0)} %`,
            (() => {
              const d = triggerDiff(r.label, base.label, r.simulated === 0);
              return `${fmt(r.triggers)} (${d.extra} / ${d.missing ?? '-'})`;
            })(),
          ],
    );
    const modelRows = model.map((m) => [
      m.label,
      `1/${Math.round(1 / m.share)}`,
      m.per.map((p) => p.perReadUs.toFixed(0)).join(' / '),
      m.cpuSkipUs === null ? '-' : m.cpuSkipUs.toFixed(0),
      m.wallSkipUs === null ? '-' : m.wallSkipUs.toFixed(0),
      m.cpuPredictedSpeedup.toFixed(2),
      m.measuredRatio.toFixed(2),
      m.leaseLosses,
    ]);
    const inFlight = process.env.CXSTREAM_NATS_MAX_IN_FLIGHT;
    const failoverLine =
      'failed' in fo
        ? `failover (2 instances, one SIGKILLed): failed: ${fo.failed}`
        : `failover (2 instances, ${fo.killed} SIGKILLed ${(fo.killAfterMs / 1000).toFixed(1)} s after both processed their half): survivor noticed after ${fo.noticedMs === null ? '-' : fmt(fo.noticedMs)} ms, processing all ${KEY_GROUPS} key groups after ${fmt(fo.takeoverMs)} ms (its recovery ${fmt(fo.recoveryMs)} ms, from seq ${fmt(fo.coveredSeq)} of ${fmt(fo.last)}), caught up after ${fmt(fo.caughtUpMs)} ms; the survivor's lease losses ${fo.leaseLosses}; triggers ${fmt(fo.triggers)} (${(() => {
            const d = triggerDiff(FAILOVER, base.label, true);
            return `${d.extra} ids not in a, ${d.missing} of a missing`;
          })()})`;
    const body = [
      `${fmt(last)} events of ${fmt(CUSTOMERS)} generated customers in CX_EVENTS; each instance: ${PARTITIONS} worker, embedded ClickHouse of its own, checkpoints in the NATS object store, identity off, no aggregates, nats.maxInFlight ${inFlight ?? 'default (100 000)'}; lease TTL ${fmt(LEASE_TTL_MS)} ms; outputs reset between configurations`,
      '',
      table(
        [
          'configuration',
          'from start s',
          'events/s',
          'ratio',
          'settled at s',
          'events/s after settling',
          'ratio',
          'runs to settle / rebalances after',
          'lease losses before / after',
          'CPU s per instance after settling',
          'nats-server CPU s',
          'machine busy',
          'triggers (ids not in a / of a missing)',
        ],
        rows,
      ),
      '',
      `ratios against the mean of the baselines (a, a') of this run; "runs to settle": 'processing the key groups' ('ready') lines until settled; "rebalances after": 'the members changed' lines after settling (the members did not change: spurious); "lease losses": runs stopped by 'key-group leases lost' (a renewal not done within 60 % of the lease TTL) before and after settling; machine busy: both cores, every process (the machine is shared); triggers: messages on CX_TRIGGERS, with the ids the baseline did not publish and the baseline's ids missing (a configuration owning every key group: the same ids expected)`,
      '',
      table(
        [
          'configuration',
          'share',
          'CPU µs per stream event read',
          'skip µs/event (CPU)',
          'skip µs/event (wall)',
          'speed-up predicted from CPU',
          'measured ratio after settling',
          'lease losses',
        ],
        modelRows,
      ),
      '',
      `baseline (mean of a, a'): ${(c1 * 1e6).toFixed(0)} µs CPU and ${(1e6 / base.afterSettlingRate).toFixed(0)} µs wall per event after settling; skip = (per event read − baseline × share) / (1 − share); speed-up predicted from CPU = baseline CPU per event / the largest instance's CPU per event read (each instance with the cores the baseline had)`,
      failoverLine,
    ].join('\n');
    console.log(`\n${body}`);
    jsonLine('summary', {
      ...info,
      events: last,
      maxInFlight: inFlight ?? 'default',
      leaseTtlMs: LEASE_TTL_MS,
      results: outcomes.map((r) =>
        r instanceof ConfigFailed
          ? { label: r.label, failed: r.reason, seconds: r.seconds, runs: r.runs, leaseLosses: r.leaseLosses }
          : {
              label: r.label,
              fromStartRate: r.fromStartRate,
              fromStartRatio: r.fromStartRate / base.fromStartRate,
              afterSettlingRate: r.afterSettlingRate,
              afterSettlingRatio: r.afterSettlingRate / base.afterSettlingRate,
              rebalancesAfterSettling: r.rebalancesAfterSettling,
              leaseLosses: r.leaseLosses,
              triggers: r.triggers,
              triggerIds: triggerDiff(r.label, base.label, r.simulated === 0),
            },
      ),
      failover: fo,
    });
    recordRun('bench:scale', info, body);
  } finally {
    await nc.close().catch(() => {});
    await server.stop();
  }
}

await main();
// Client libraries may keep handles open after their work is done.
process.exit(0);
