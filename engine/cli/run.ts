/** `cxstream run`: the engine on the live JetStream stream until SIGINT/SIGTERM, then a drain. */

import { readFileSync } from 'node:fs';
import { clickHouseDatabase } from '../../sinks/clickhouse.js';
import { insertIdentities } from '../../sinks/customerErasure.js';
import { TombstoneStore } from '../../sinks/tombstoneStore.js';
import { LocalCheckpointStore, NatsCheckpointStore } from '../checkpoint/checkpointStore.js';
import { runInstance } from '../cluster/instance.js';
import { type Config, loadConfig } from '../config/config.js';
import { settingName } from '../config/environment.js';
import { SettingError } from '../config/errors.js';
import { RuleReloader } from '../config/ruleReloader.js';
import { loadRulesWithWarnings } from '../config/rulesFile.js';
import { JetStreamIdentityLog } from '../identity/identityLog.js';
import { connectNats } from '../nats/connect.js';
import { natsNames } from '../nats/streams.js';
import { clickhouseErasure } from '../runtime/forget.js';
import { EngineHealth } from '../runtime/health.js';
import { hideInLogs, log } from '../runtime/log.js';
import { Metrics, serveHttp } from '../runtime/metrics.js';
import { openSinks } from '../runtime/openSinks.js';
import { type RunOptions, runEngine } from '../runtime/runEngine.js';
import type { EventSource } from '../source/eventSource.js';
import { jetstreamSource } from '../source/jetstreamSource.js';

/** The bearer token of the HTTP server (`metrics.token` or the file `metrics.tokenFile`), '' for none. */
export function metricsToken(config: Readonly<Config>): string {
  if (config.metrics.tokenFile === '') return config.metrics.token;
  try {
    const token = readFileSync(config.metrics.tokenFile, 'utf8').replace(/\r?\n$/, '');
    hideInLogs(token);
    return token;
  } catch (e) {
    throw new SettingError(
      `cannot read ${settingName('metrics.tokenFile')} "${config.metrics.tokenFile}": ${(e as Error).message}`,
      'metrics.tokenFile',
      'file',
      false,
      { cause: e },
    );
  }
}

/** Runs the engine with the config file (default `config/default.yaml`) until a signal drains it. */
export async function runLive(opts: { config?: string }): Promise<void> {
  const config = loadConfig(opts.config);
  const { rules, warnings } = loadRulesWithWarnings(config.rules);
  for (const w of warnings) log.warn({ file: w.file, line: w.line }, w.message);
  const token = metricsToken(config);
  const nc = await connectNats(config);
  const health = new EngineHealth();
  health.watch(nc);
  const sinks = await openSinks(config, nc, { sourceStream: natsNames.eventsStream });
  // created by openSinks (ensureStreams) when missing
  const tombstones = await TombstoneStore.open(nc, { replicas: config.streams.profiles.replicas });
  const metrics = new Metrics();
  /** The source of the engine running now (several in turn when the instance's key groups change). */
  let source: EventSource | null = null;
  // Rule files are watched and reloaded on change or SIGHUP, between batches (engine/config/ruleReloader.ts).
  const reloader = new RuleReloader({ files: config.rules });
  const server =
    config.metrics.port > 0
      ? await serveHttp(metrics, {
          port: config.metrics.port,
          host: config.metrics.host,
          token,
          notReady: () => health.notReady(),
          unhealthy: () => health.unhealthy(),
          actions: {
            // the same as SIGHUP: validate the rule files and swap them in, or keep the running ones
            '/admin/reload': () => reloader.reload('HTTP /admin/reload', true),
          },
        })
      : null;
  if (server) {
    const address = server.address();
    log.info(
      {
        host: config.metrics.host,
        port: typeof address === 'object' && address ? address.port : config.metrics.port,
      },
      'http listening',
    );
  }
  let failedInserts = 0;
  const gauges = setInterval(() => {
    if (source) {
      const stats = source.stats();
      metrics.lag.set(stats.pending);
      // here, not only after a batch: acks come with checkpoints, after the last batch of a burst
      metrics.inFlight.set(stats.inFlight);
    }
    const ch = sinks.clickhouse.stats();
    metrics.clickhouseBufferedRows.set(ch.bufferedRows + ch.blockedRows);
    metrics.clickhouseFailures.inc(ch.failedAttempts - failedInserts);
    failedInserts = ch.failedAttempts;
  }, 1000);
  let draining = false;
  const stop = (signal: string) => {
    log.info({ signal }, 'draining');
    draining = true;
    health.markDraining();
    void source?.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  const ready = () => {
    health.markRecovered();
    log.info('ready');
  };
  /** The engine on `source` until it completes (a drain, or the instance's key groups changed). */
  const engine = (
    run: Pick<
      RunOptions,
      'source' | 'checkpoints' | 'ownedKeyGroups' | 'onRecovered' | 'identityLog' | 'fence' | 'deployment'
    >,
  ) =>
    runEngine({
      config,
      rules,
      sinks,
      live: true,
      metrics,
      controls$: reloader.requests$,
      admin: nc,
      forget: {
        tombstones,
        clickhouse: clickhouseErasure(
          sinks.clickhouseClient,
          clickHouseDatabase(config.clickhouse.url),
          config.clickhouse.cluster,
        ),
      },
      identityRows: (rows) =>
        insertIdentities(sinks.clickhouseClient, clickHouseDatabase(config.clickhouse.url), rows),
      ...run,
    });
  try {
    if (config.cluster.deployment !== '') {
      await runInstance({
        nc,
        config,
        rules,
        draining: () => draining,
        onSource: (s) => {
          source = s;
          if (draining) void s.stop();
        },
        onRecovered: ready,
        metrics,
        engine,
      });
    } else {
      const single = jetstreamSource({
        nc,
        durable: config.nats.durable,
        maxInFlight: config.nats.maxInFlight,
        ackWaitMs: config.nats.ackWaitMs,
      });
      source = single;
      const store =
        config.checkpoint.store === 'nats'
          ? await NatsCheckpointStore.open(nc, { replicas: config.checkpoint.replicas })
          : new LocalCheckpointStore(config.state.dir);
      await engine({
        source: single,
        checkpoints: { store, nc, durable: config.nats.durable, maxInFlight: config.nats.maxInFlight },
        identityLog: await JetStreamIdentityLog.open(nc, { replicas: config.checkpoint.replicas }),
        onRecovered: ready,
      });
    }
  } catch (e) {
    health.markFailed((e as Error)?.message ?? String(e));
    throw e;
  } finally {
    reloader.close();
    clearInterval(gauges);
    server?.close();
    await sinks.close();
    await nc.drain();
  }
  log.info(source ? (source as EventSource).stats() : {}, 'stopped');
}
