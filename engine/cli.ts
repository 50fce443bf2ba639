import { Command, CommanderError, Option } from 'commander';
import { clickHouseDatabase, openClickHouse } from '../sinks/clickhouse.js';
import { formatFunnel, queryFunnel } from '../sinks/funnel.js';
import { loadConfig } from './config.js';
import { runDemo } from './demo.js';
import { connectNats, openSinks, runEngine } from './engine.js';
import { formatProblem, isConfigError, UsageError } from './errors.js';
import { iterableSource, ndjsonEvents } from './fileSource.js';
import { jetstreamSource } from './jetstreamSource.js';
import { log } from './log.js';
import { Metrics, serveMetrics } from './metrics.js';
import { replaySummary, withProgress } from './progress.js';
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
      const lag = setInterval(() => metrics.lag.set(source.stats().pending), 1000);
      const stop = (signal: string) => {
        log.info({ signal }, 'draining');
        running = false;
        void source.stop();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      try {
        await runEngine({ config, rules, source, sinks, live: true, metrics });
      } finally {
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
      const value = yaml.value as { rules?: unknown } | null;
      const isRuleFile =
        Array.isArray(value?.rules) && value.rules.some((r) => typeof r === 'object' && r !== null);
      if (isRuleFile) {
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
    .option(
      '--publish',
      'also publish triggers, dead letters and profiles to NATS (default: ClickHouse only)',
    )
    .action(async (opts: { file: string; config?: string; publish?: boolean }) => {
      const config = loadConfig(opts.config);
      const rules = loadRules(config.rules);
      const nc = opts.publish ? await connectNats(config) : null;
      const sinks = await openSinks(config, nc);
      const source = iterableSource(ndjsonEvents(opts.file));
      const summary = replaySummary();
      try {
        await withProgress(opts.file, source, (onOutput) =>
          runEngine({
            config,
            rules,
            source,
            sinks,
            live: false,
            onOutput: (o) => {
              summary.add(o);
              onOutput(o);
            },
          }),
        );
      } finally {
        await sinks.close();
        await nc?.drain();
      }
      process.stdout.write(summary.format());
    });

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
