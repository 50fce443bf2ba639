/** `cxstream run`: the engine on the live JetStream stream until SIGINT/SIGTERM, then a drain. */
import { LocalCheckpointStore, NatsCheckpointStore } from '../checkpoint/checkpointStore.js';
import { loadConfig } from '../config/config.js';
import { RuleReloader } from '../config/ruleReloader.js';
import { loadRulesWithWarnings } from '../config/rulesFile.js';
import { connectNats } from '../nats/connect.js';
import { log } from '../runtime/log.js';
import { Metrics, serveMetrics } from '../runtime/metrics.js';
import { openSinks } from '../runtime/openSinks.js';
import { runEngine } from '../runtime/runEngine.js';
import { jetstreamSource } from '../source/jetstreamSource.js';

/** Runs the engine with the config file (default `config/default.yaml`) until a signal drains it. */
export async function runLive(opts: { config?: string }): Promise<void> {
  const config = loadConfig(opts.config);
  const { rules, warnings } = loadRulesWithWarnings(config.rules);
  for (const w of warnings) log.warn({ file: w.file, line: w.line }, w.message);
  const nc = await connectNats(config);
  const sinks = await openSinks(config, nc);
  const metrics = new Metrics();
  const source = jetstreamSource({
    nc,
    durable: config.nats.durable,
    maxInFlight: config.nats.maxInFlight,
    ackWaitMs: config.nats.ackWaitMs,
  });
  let running = true;
  const server =
    config.metrics.port > 0 ? await serveMetrics(metrics, config.metrics.port, () => running) : null;
  let failedInserts = 0;
  const lag = setInterval(() => {
    metrics.lag.set(source.stats().pending);
    const ch = sinks.clickhouse.stats();
    metrics.clickhouseBufferedRows.set(ch.bufferedRows + ch.blockedRows);
    metrics.clickhouseFailures.inc(ch.failedAttempts - failedInserts);
    failedInserts = ch.failedAttempts;
  }, 1000);
  const store =
    config.checkpoint.store === 'nats'
      ? await NatsCheckpointStore.open(nc, { replicas: config.checkpoint.replicas })
      : new LocalCheckpointStore(config.state.dir);
  const stop = (signal: string) => {
    log.info({ signal }, 'draining');
    running = false;
    void source.stop();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Rule files are watched and reloaded on change or SIGHUP, between batches (engine/ruleReloader.ts).
  const reloader = new RuleReloader({ files: config.rules });
  try {
    await runEngine({
      config,
      rules,
      source,
      sinks,
      live: true,
      metrics,
      controls$: reloader.requests$,
      checkpoints: { store, nc, durable: config.nats.durable, maxInFlight: config.nats.maxInFlight },
    });
  } finally {
    reloader.close();
    clearInterval(lag);
    server?.close();
    await sinks.close();
    await nc.drain();
  }
  log.info(source.stats(), 'stopped');
}
