import { Command, CommanderError, Option } from 'commander';
import { isEmbeddedStoreInUseError } from '../../sinks/embeddedStore.js';
import { checkEnvironment, cxstreamVersion } from '../config/config.js';
import { formatProblem, isConfigError, isSettingError, UsageError } from '../config/errors.js';
import { heldStoreMessage } from '../query/queryEndpoint.js';
import { hideSecrets, log } from '../runtime/log.js';
import { runClickHouseServe } from './clickhouse.js';
import { runDemo } from './demo.js';
import { type ExplainOptions, runExplain } from './explain.js';
import { runForget } from './forget.js';
import { type FunnelOptions, runFunnel } from './funnel.js';
import { runIdentity } from './identity.js';
import { runProfile } from './profile.js';
import { runReplay } from './replay.js';
import { type ReportCliOptions, runReport } from './report.js';
import { runLive } from './run.js';
import { runSetup } from './setup.js';
import { runStatus } from './status.js';
import { runValidate } from './validate.js';

/** Exit codes of docs/CONTRACT.md. */
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

/** Runs the `cxstream` command line; sets process.exitCode (0 ok, 1 runtime failure, 2 usage/config). */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('cxstream')
    .description(
      'Customer-service events from NATS JetStream to live profiles, triggers and ClickHouse funnels',
    )
    .version(cxstreamVersion, '-V, --version', 'print the cxstream version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    // Before any command (not --help or --version): a bad CXSTREAM_* value is a config error (exit
    // 2) and a misspelled variable, which would silently leave its setting at the default, a warning.
    .hook('preAction', (_program, command) => {
      // The one-shot commands print their results for a person on stdout; the engine's info lines
      // ("engine started", "state recovered") are noise there, so only warnings and errors are
      // logged unless CXSTREAM_LOG_LEVEL asks for more. `run` is a service: its log is its output.
      if (command.name() !== 'run' && process.env.CXSTREAM_LOG_LEVEL === undefined) log.level = 'warn';
      for (const { name, suggestion } of checkEnvironment(process.env)) {
        log.warn(
          { variable: name, ...(suggestion && { suggestion }) },
          `${name} is not a cxstream setting${suggestion ? ` (did you mean ${suggestion}?)` : ''}; it is ignored`,
        );
      }
    });

  program
    .command('run')
    .description('run the engine until SIGINT/SIGTERM, then drain and exit')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .action((opts: { config?: string }) => runLive(opts));

  program
    .command('setup')
    .description(
      'create the streams, the durable consumer and the buckets with the configured limits (idempotent); prints what it did',
    )
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--update', "bring existing streams and buckets to the config's limits and replicas")
    .action(async (opts: { config?: string; update?: boolean }) => {
      await runSetup(opts);
    });

  program
    .command('profile')
    .description("print a customer's profile from the KV bucket cx_profiles (exit 1 when there is none)")
    .argument('<customer>')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--key', 'print only the KV key the profile is stored under (no NATS needed)')
    .action(async (customer: string, opts: { config?: string; key?: boolean }) => {
      await runProfile({ customer, config: opts.config, keyOnly: opts.key ?? false });
    });

  program
    .command('demo')
    .description(
      'the whole pipeline on a generated day of events; prints triggers and a funnel, writes a report',
    )
    .option('--customers <n>', 'customers to simulate', (v) => positiveInt(v, '--customers'), 3000)
    .option('--seed <n>', 'random seed of the generated traffic', (v) => positiveInt(v, '--seed'), 42)
    .option('--no-nats', 'feed the pipeline in-process even when nats-server is installed')
    .option('--serve', "then keep serving the demo's store over ClickHouse's HTTP interface until Ctrl-C")
    .action(async (opts: { customers: number; seed: number; nats: boolean; serve?: boolean }) => {
      await runDemo({
        customers: opts.customers,
        seed: opts.seed,
        useNats: opts.nats,
        serve: opts.serve === true,
      });
    });

  program
    .command('validate')
    .description('check a config or rule file; prints file:line errors')
    .argument('<file>')
    .action((file: string) => runValidate(file));

  program
    .command('replay')
    .description('run events from an NDJSON file through the same pipeline (backfill, rule what-if)')
    .requiredOption('-f, --file <events.ndjson>', 'one JSON event per line')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--rules <files...>', "rule files to try instead of the config's")
    .option('--dry-run', 'publish and write nothing; print what would have fired')
    .option(
      '--until <date>',
      "at the end, move event time to DATE (YYYY-MM-DD in engine.defaultTz, or ISO 8601; default: the file's last event time)",
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
    .description(
      "tell per rule why it fired or not for one customer: from a history (--file) or the running engine's live state (--live)",
    )
    .argument('<customer>')
    .option(
      '-f, --file <events.ndjson>',
      "replay the customer's events from this file (other customers are skipped)",
    )
    .option('--live', "ask the running engine (NATS request cx.admin.explain) for the customer's live state")
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--rules <files...>', "with --file: rule files instead of the config's")
    .option(
      '--until <date>',
      "with --file: at the end, move event time to DATE so due timers fire (default: the file's last event time, as replay)",
    )
    .option('--json', 'print the report as JSON')
    .option(
      '--timeout <seconds>',
      'with --live: how long to wait for the answer',
      (v) => positiveInt(v, '--timeout'),
      10,
    )
    .action(
      async (
        customer: string,
        opts: Omit<ExplainOptions, 'customer' | 'timeoutMs' | 'out'> & { timeout: number },
      ) => {
        const { timeout, ...rest } = opts;
        await runExplain({ customer, ...rest, timeoutMs: timeout * 1000 });
      },
    );

  program
    .command('status')
    .description(
      "ask the running engine (NATS request cx.admin.status) for this instance's workers, key groups, stream lag and last checkpoint",
    )
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--json', 'print the status as JSON')
    .option('--timeout <seconds>', 'how long to wait for the answer', (v) => positiveInt(v, '--timeout'), 10)
    .action(async (opts: { config?: string; json?: boolean; timeout: number }) => {
      await runStatus({ config: opts.config, json: opts.json, timeoutMs: opts.timeout * 1000 });
    });

  program
    .command('forget')
    .description(
      'forget a customer: the running engine removes its live state, KV profile, events, triggers, dead letters and ClickHouse rows, and keeps a tombstone (NATS request cx.admin.forget)',
    )
    .argument('<customer>')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--json', 'print the reply as JSON')
    .option('--timeout <seconds>', 'how long to wait for the answer', (v) => positiveInt(v, '--timeout'), 60)
    .action(async (customer: string, opts: { config?: string; json?: boolean; timeout: number }) => {
      await runForget({ customer, config: opts.config, json: opts.json, timeoutMs: opts.timeout * 1000 });
    });

  program
    .command('identity')
    .description(
      'print the customer a key belongs to, its aliases, identifiers and merges (read from the identity log, stream CX_IDENTITY)',
    )
    .argument('<customer>')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .option('--json', 'print the report as JSON')
    .action(async (customer: string, opts: { config?: string; json?: boolean }) => {
      await runIdentity({ customer, config: opts.config, json: opts.json });
    });

  program
    .command('funnel')
    .description('print the consult → add to cart → order funnel from ClickHouse')
    .addOption(new Option('--by <dimension>', 'split by').choices(['channel', 'variant', 'source']))
    .option('--from <date>', 'first day (YYYY-MM-DD, UTC)')
    .option('--to <date>', 'last day (YYYY-MM-DD, UTC)')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .action((opts: FunnelOptions) => runFunnel(opts));

  program
    .command('report')
    .description("write one self-contained HTML file with the analysts' charts and tables")
    .option('--from <date>', 'first day (YYYY-MM-DD, UTC; default: the first stored day)')
    .option('--to <date>', 'last day (YYYY-MM-DD, UTC; default: the last stored day)')
    .option('-o, --out <file>', 'where to write it', 'report.html')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .action((opts: ReportCliOptions) => runReport(opts));

  program
    .command('clickhouse')
    .description('the embedded ClickHouse store')
    .command('serve')
    .description("serve an embedded store over ClickHouse's HTTP interface while no engine holds it")
    .option('--dir <dir>', "store directory (default: the config's embedded: directory)")
    .option('--port <n>', 'TCP port (default: clickhouse.serve.port)', (v) => port(v, '--port'))
    .option('--host <address>', 'address to bind (default: clickhouse.serve.host)')
    .option('--readonly', 'refuse writes and DDL')
    .option('-c, --config <file>', 'config file (default: config/default.yaml)')
    .action((opts: { dir?: string; port?: number; host?: string; readonly?: boolean; config?: string }) =>
      runClickHouseServe(opts),
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
  if (isSettingError(e)) {
    // a setting that does not work with its system: a restart helps only when it may come up later
    process.stderr.write(`cxstream: ${hideSecrets(e.message)}\n`);
    log.debug({ err: e }, 'failed');
    return e.retryable ? EXIT_FAILURE : EXIT_USAGE;
  }
  if (isEmbeddedStoreInUseError(e)) {
    // the store is locked by its process: say where it serves queries, if it does
    process.stderr.write(`cxstream: ${heldStoreMessage(e)}\n`);
    log.debug({ err: e }, 'failed');
    return EXIT_FAILURE;
  }
  const err = e as Error;
  process.stderr.write(`cxstream: ${hideSecrets(err?.message ?? String(e))}\n`);
  log.debug({ err }, 'failed');
  return EXIT_FAILURE;
}

function port(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`${name} must be a port 0..65535, got "${value}"`);
  return n;
}

function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, got "${value}"`);
  return n;
}
