import { Command, CommanderError, Option } from 'commander';
import { clickHouseDatabase, openClickHouse } from '../sinks/clickhouse.js';
import { formatFunnel, queryFunnel } from '../sinks/funnel.js';
import { loadAggregates } from './aggregatesFile.js';
import { LocalCheckpointStore, NatsCheckpointStore } from './checkpointStore.js';
import { loadConfig } from './config.js';
import { runDemo } from './demo.js';
import { connectNats, openSinks, runEngine } from './engine.js';
import { formatProblem, isConfigError, UsageError } from './errors.js';
import { runExplain } from './explain.js';
import { jetstreamSource } from './jetstreamSource.js';
import { log } from './log.js';
import { Metrics, serveMetrics } from './metrics.js';
import { runReplay } from './replay.js';
import { RuleReloader } from './ruleReloader.js';
import { loadRules } from './rulesFile.js';
import { readYamlFile } from './yamlFile.js';

/** Exit codes of CONTRACT.md. */
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

/** Runs the `cxstream` command line; sets process.exitCode (0 ok, 1 runtime failure, 2 usage/config). */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('cxstream')
    .description(
      'Customer-service events from NATS JetStream to live profiles, triggers and ClickHouse funnels',
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('run')
    .description('run the engine until SIGINT/SIGTERM, then drain and exit')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .action(async (opts: { config?: string }) => {
      const config = loadConfig(opts.config);
      const rules = loadRules(config.rules);
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
    });

  program
    .command('demo')
    .description('the whole pipeline on a generated day of events; prints triggers and a funnel')
    .option('--customers <n>', 'customers to simulate', (v) => positiveInt(v, '--customers'), 3000)
    .option('--seed <n>', 'random seed of the generated traffic', (v) => positiveInt(v, '--seed'), 42)
    .option('--no-nats', 'feed the pipeline in-process even when nats-server is installed')
    .action(async (opts: { customers: number; seed: number; nats: boolean }) => {
      await runDemo({ customers: opts.customers, seed: opts.seed, useNats: opts.nats });
    });

  program
    .command('validate')
    .description('check a config or rule file; prints file:line errors')
    .argument('<file>')
    .action((file: string) => {
      const yaml = readYamlFile(file);
      const value = yaml.value as { rules?: unknown; aggregates?: unknown } | null;
      const isRuleFile =
        Array.isArray(value?.rules) && value.rules.some((r) => typeof r === 'object' && r !== null);
      if (value !== null && typeof value === 'object' && 'aggregates' in value) {
        const aggregates = loadAggregates([file]);
        process.stdout.write(`${file}: ok (${aggregates.length} aggregates)\n`);
      } else if (isRuleFile) {
        const rules = loadRules([file]);
        process.stdout.write(`${file}: ok (${rules.length} rules)\n`);
      } else {
        const config = loadConfig(file);
        const rules = loadRules(config.rules);
        process.stdout.write(`${file}: ok (config; ${rules.length} rules from ${config.rules.join(', ')})\n`);
      }
    });

  program
    .command('replay')
    .description('run events from an NDJSON file through the same pipeline (backfill, rule what-if)')
    .requiredOption('-f, --file <events.ndjson>', 'one JSON event per line')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--rules <files...>', "rule files to try instead of the config's")
    .option('--dry-run', 'publish and write nothing; print what would have fired')
    .option(
      '--until <date>',
      'at the end, move event time to DATE (YYYY-MM-DD in engine.defaultTz, or ISO 8601)',
    )
    .option('--sample <n>', 'triggers shown in the sample', (v) => positiveInt(v, '--sample'), 10)
    .option(
      '--publish',
      'also publish triggers, dead letters and profiles to NATS (default: ClickHouse only)',
    )
    .action(
      async (opts: {
        file: string;
        config?: string;
        rules?: string[];
        dryRun?: boolean;
        until?: string;
        sample: number;
        publish?: boolean;
      }) => {
        await runReplay({ ...opts });
      },
    );

  program
    .command('explain')
    .description("replay one customer's events and tell per rule why it fired or not")
    .argument('<customer>')
    .requiredOption('-f, --file <events.ndjson>', 'one JSON event per line (other customers are skipped)')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--rules <files...>', "rule files instead of the config's")
    .option('--until <date>', 'at the end, move event time to DATE so due timers fire')
    .action(
      async (customer: string, opts: { file: string; config?: string; rules?: string[]; until?: string }) => {
        await runExplain({ customer, ...opts });
      },
    );

  program
    .command('funnel')
    .description('print the consult → add to cart → order funnel from ClickHouse')
    .addOption(new Option('--by <dimension>', 'split by').choices(['channel', 'variant', 'source']))
    .option('--from <date>', 'first day (YYYY-MM-DD, UTC)')
    .option('--to <date>', 'last day (YYYY-MM-DD, UTC)')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .action(
      async (opts: {
        by?: 'channel' | 'variant' | 'source';
        from?: string;
        to?: string;
        config?: string;
      }) => {
        for (const d of [opts.from, opts.to]) {
          if (d !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(d))
            throw new UsageError(`dates are YYYY-MM-DD, got "${d}"`);
        }
        const config = loadConfig(opts.config);
        const client = openClickHouse(config.clickhouse.url);
        try {
          const rows = await queryFunnel(client, {
            by: opts.by,
            from: opts.from,
            to: opts.to,
            database: clickHouseDatabase(config.clickhouse.url),
          });
          process.stdout.write(formatFunnel(rows, opts.by));
        } finally {
          await client.close();
        }
      },
    );

  try {
    await program.parseAsync(argv);
    process.exitCode = EXIT_OK;
  } catch (e) {
    process.exitCode = exitCodeOf(e);
  }
}

function exitCodeOf(e: unknown): number {
  if (e instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (isConfigError(e)) {
    for (const p of e.problems) process.stderr.write(`${formatProblem(p)}\n`);
    return EXIT_USAGE;
  }
  if (e instanceof UsageError) {
    process.stderr.write(`cxstream: ${e.message}\n`);
    return EXIT_USAGE;
  }
  const err = e as Error;
  process.stderr.write(`cxstream: ${err?.message ?? String(e)}\n`);
  if (/Cannot lock file/.test(err?.message ?? '')) {
    process.stderr.write(
      'cxstream: the embedded ClickHouse directory is in use by a running engine; stop it first\n',
    );
  }
  log.debug({ err }, 'failed');
  return EXIT_FAILURE;
}

function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, got "${value}"`);
  return n;
}
