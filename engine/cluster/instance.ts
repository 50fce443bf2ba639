/**
 * One instance of a deployment several share (`cluster.deployment`, docs/SCALING.md): it joins,
 * claims the key groups the live members give it, runs the engine over them, and starts over when
 * the members change or its leases are lost:
 *
 * 1. claim: give up the leases no longer ours, take the new ones (each free once its previous owner
 *    drained and gave it up, or its lease expired: a dead owner);
 * 2. run: restore those key groups from the newest records in the NATS object store, whichever
 *    instance wrote them; read CX_EVENTS from where those records end through this instance's own
 *    durable consumer, keeping only its key groups' events;
 * 3. the members changed: drain (the last checkpoint covers everything processed), back to 1;
 *    the leases were not renewed in time: stop publishing at once, join again, back to 1.
 */
import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { RuleSpec } from '../../operators/rules.js';
import { BUCKET_RETRY, retrying } from '../../sinks/retry.js';
import { type CheckpointStore, NatsCheckpointStore } from '../checkpoint/checkpointStore.js';
import { aggregateFiles, loadAggregates } from '../config/aggregatesFile.js';
import type { Config } from '../config/config.js';
import { settingName } from '../config/environment.js';
import { SettingError } from '../config/errors.js';
import { redactUrl } from '../config/redact.js';
import { MemoryIdentityLog } from '../identity/identityLog.js';
import { log } from '../runtime/log.js';
import type { Metrics } from '../runtime/metrics.js';
import type { RunOptions } from '../runtime/runEngine.js';
import type { EventSource } from '../source/eventSource.js';
import { jetstreamSource } from '../source/jetstreamSource.js';
import { type DeploymentTerms, FencedError, Leases } from './leases.js';

/** What {@link runInstance} needs of the `run` command. */
export interface InstanceOptions {
  nc: NatsConnection;
  config: Readonly<Config>;
  rules: readonly RuleSpec[];
  /** Whether a signal asked the instance to drain and leave. */
  draining: () => boolean;
  /** Each engine run's source, once created (the signal handler stops it). */
  onSource: (source: EventSource) => void;
  onRecovered: () => void;
  metrics?: Metrics;
  /** Runs the engine with these until its source completes. */
  engine: (
    run: Pick<
      RunOptions,
      'source' | 'checkpoints' | 'ownedKeyGroups' | 'onRecovered' | 'identityLog' | 'fence' | 'deployment'
    >,
  ) => Promise<void>;
}

/** Longest a run may take to restore its key groups before the process gives up (and is restarted). */
const RECOVERY_LIMIT_MS = 120_000;

/** How often the instance compares the members' assignment with what it runs. */
const WATCH_MS = 500;

/** Refuses settings a shared deployment cannot run with, saying which and why. */
export function checkClusterConfig(config: Readonly<Config>, aggregates: number): void {
  const refuse = (key: string, why: string) => {
    throw new SettingError(`${settingName(key)}: ${why}`, key, 'value', false);
  };
  if (config.checkpoint.store !== 'nats')
    refuse(
      'checkpoint.store',
      'several instances of a deployment share their checkpoints through NATS: set it to nats',
    );
  if (config.identity.enabled)
    refuse(
      'identity.enabled',
      'identity stitching is decided by one instance ahead of routing and is not built for a shared ' +
        'deployment yet (docs/SCALING.md "Not there yet"): set it to false',
    );
  if (aggregates > 0)
    throw new SettingError(
      `CXSTREAM_AGGREGATES: aggregate rules (complaint_surge) count over every key group and are not built for a shared deployment yet (docs/SCALING.md "Not there yet"): set CXSTREAM_AGGREGATES to an empty value`,
      'aggregates',
      'value',
      false,
    );
}

/** What every instance of the deployment must agree on. */
export function deploymentTerms(config: Readonly<Config>, rules: readonly RuleSpec[]): DeploymentTerms {
  const { url, cluster } = config.clickhouse;
  return {
    keyGroups: config.engine.keyGroups,
    rules: createHash('sha256').update(JSON.stringify(rules)).digest('hex').slice(0, 16),
    // an embedded store is each instance's own (tests, demos); a server is the deployment's
    clickhouse: url.startsWith('embedded:')
      ? 'embedded (one per instance)'
      : `${redactUrl(url)}${cluster ? ` cluster ${cluster}` : ''}`,
  };
}

/** Runs the instance until a signal drains it (see the file comment). */
export async function runInstance(options: InstanceOptions): Promise<void> {
  const { nc, config } = options;
  const { deployment } = config.cluster;
  checkClusterConfig(config, loadAggregates(aggregateFiles()).length);
  const leases = await Leases.join(nc, {
    deployment,
    instance: config.cluster.instance,
    terms: deploymentTerms(config, options.rules),
    ttlMs: config.cluster.leaseTtlMs,
    replicas: config.checkpoint.replicas,
  });
  // its own cursor on CX_EVENTS: recreated at each run where that run's checkpoints end
  const durable = `${config.nats.durable}_${deployment}_${leases.instance}`;
  let reason: 'start' | 'members' | 'fenced' = 'start';
  try {
    while (!options.draining()) {
      options.metrics?.clusterKeyGroups.set(0);
      const owned = await claimShare(leases, options.draining);
      if (owned === null) break;
      options.metrics?.clusterRuns.inc({ reason });
      const started = Date.now();
      let coveredSeq = 0;
      let recovered = false;
      // A recovery that hangs (a NATS request that never settles) would hold the leases, renewed, and
      // keep the key groups from everyone: the process exits and its supervisor starts it again. A
      // drain during recovery exits as well: this run has produced nothing yet.
      const stuck = setInterval(() => {
        if (recovered) return;
        const ms = Date.now() - started;
        if (options.draining() || ms > RECOVERY_LIMIT_MS) {
          const draining = options.draining();
          if (draining) log.info({ ms }, 'stopping during recovery of the key groups: exiting');
          else log.error({ ms }, 'recovery of the key groups did not finish: exiting');
          const code = draining ? 0 : 1;
          void Promise.race([leases.leave(), new Promise((r) => setTimeout(r, 3000))]).finally(() =>
            process.exit(code),
          );
        }
      }, 1000);
      const source = jetstreamSource({
        nc,
        durable,
        maxInFlight: config.nats.maxInFlight,
        ackWaitMs: config.nats.ackWaitMs,
        startAfter: () => coveredSeq,
      });
      options.onSource(source);
      const store = fenced(
        await retrying(
          'opening the checkpoint bucket',
          () =>
            NatsCheckpointStore.open(nc, {
              replicas: config.checkpoint.replicas,
              // a new scope per run: records an earlier run left for key groups now elsewhere stay readable
              scope: { deployment, instance: `${leases.instance}.${started.toString(36)}` },
            }),
          BUCKET_RETRY,
        ),
        leases,
      );
      let why: 'members' | 'fenced' | null = null;
      const watch = setInterval(() => {
        if (why !== null) return;
        if (!leases.valid()) {
          why = 'fenced';
          log.error({ reason: leases.lostReason }, 'key-group leases lost: stopping at once');
          void source.stop(0);
          return;
        }
        void leases.assigned().then(
          (wanted) => {
            if (why === null && !sameList(wanted, owned)) {
              why = 'members';
              log.info(
                { owned: owned.length, wanted: wanted.length },
                'the members changed: draining to rebalance',
              );
              void source.stop();
            }
          },
          () => {},
        );
      }, WATCH_MS);
      try {
        await options.engine({
          source,
          ownedKeyGroups: owned,
          deployment: { name: deployment, instance: leases.instance },
          fence: () => leases.check(),
          checkpoints: { store, nc, durable, maxInFlight: config.nats.maxInFlight, sourceFollows: true },
          identityLog: new MemoryIdentityLog(),
          onRecovered: (recovery) => {
            recovered = true;
            options.metrics?.clusterKeyGroups.set(owned.length);
            coveredSeq = recovery.coveredSeq;
            log.info(
              {
                keyGroups: owned.length,
                from: owned[0],
                to: owned.at(-1),
                coveredSeq,
                ms: Date.now() - started,
              },
              'processing the key groups of this instance',
            );
            options.onRecovered();
          },
        });
      } catch (e) {
        if (!(e instanceof FencedError) && leases.valid()) throw e;
        why = 'fenced';
        log.warn({ err: e }, 'stopped: the key-group leases were lost');
        await source.stop(0).catch(() => {});
      } finally {
        clearInterval(watch);
        clearInterval(stuck);
      }
      reason = why ?? 'members';
      if (why === 'fenced') await leases.rejoin();
    }
  } finally {
    await leases.leave();
  }
}

/** Claims the key groups the members give this instance; null when draining started meanwhile. */
async function claimShare(leases: Leases, draining: () => boolean): Promise<number[] | null> {
  let waitedFor = Date.now();
  for (;;) {
    if (draining()) return null;
    const wanted = await leases.assigned();
    if (await leases.claim(wanted)) return wanted;
    if (Date.now() - waitedFor > 5000) {
      waitedFor = Date.now();
      log.info({ wanted: wanted.length, held: leases.owned.length }, 'waiting for key groups to be given up');
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A checkpoint store that refuses to write once the leases are no longer surely this instance's. */
function fenced(store: CheckpointStore, leases: Leases): CheckpointStore {
  return {
    location: store.location,
    save: async (record) => {
      leases.check();
      await store.save(record);
    },
    load: (p) => store.load(p),
    partitions: () => store.partitions(),
    remove: (p) => store.remove(p),
    foreign: () => store.foreign?.() ?? Promise.resolve([]),
    removeForeign: async (r) => {
      leases.check();
      await store.removeForeign?.(r);
    },
  };
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
