import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import type { Trigger } from '../../operators/types.js';
import { formatFunnel, queryFunnel } from '../../sinks/funnel.js';
import { loadConfig } from '../config/config.js';
import { loadRules } from '../config/rulesFile.js';
import { generateTraffic, subjectOf } from '../demo/traffic.js';
import { connectNats } from '../nats/connect.js';
import { findNatsServer, NatsServer } from '../nats/natsServer.js';
import { ensureStreams } from '../nats/streams.js';
import { openSinks } from '../runtime/openSinks.js';
import { runEngine } from '../runtime/runEngine.js';
import type { EventSource, RawEvent } from '../source/eventSource.js';
import { iterableSource } from '../source/fileSource.js';
import { jetstreamSource } from '../source/jetstreamSource.js';
import { formatSample, pickSamples } from './demoSamples.js';
import { DEMO_DIR, funnelCommandFor } from './demoStore.js';
import { replaySummary } from './progress.js';
import { reportSummary, writeReport } from './report.js';

/** Options of `cxstream demo`. */
export interface DemoOptions {
  /** @default 3000 */
  customers?: number;
  /** @default 42 */
  seed?: number;
  /** Use a private nats-server when one is installed. @default true */
  useNats?: boolean;
  /** Working directory of the demo (wiped at start). @default {@link DEMO_DIR} */
  dir?: string;
  /** Where the report goes. @default process.stdout */
  out?: NodeJS.WritableStream;
  /**
   * After the run, keep the store open and served (ClickHouse's HTTP interface) until SIGINT or
   * SIGTERM, or until this promise settles. @default false
   */
  serve?: boolean | Promise<unknown>;
}

/**
 * `cxstream demo`: a generated day of traffic through the real pipeline — JetStream on a private
 * nats-server when the binary is installed, the in-process source otherwise — into embedded
 * ClickHouse; prints what happened.
 */
export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const out = options.out ?? process.stdout;
  const say = (s = '') => out.write(`${s}\n`);
  const started = performance.now();
  const dir = resolve(options.dir ?? DEMO_DIR);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  const events = generateTraffic({ customers: options.customers ?? 3000, seed: options.seed ?? 42 });
  const raw: RawEvent[] = events.map((e, i) => ({ seq: i + 1, subject: subjectOf(e), data: pack(e) }));
  say(`cxstream demo: ${events.length} events of ${options.customers ?? 3000} customers over one day`);

  const config = loadConfig(undefined, {
    ...process.env,
    CXSTREAM_CLICKHOUSE_URL: `embedded:${dir}/clickhouse`,
    CXSTREAM_STATE_DIR: `${dir}/state`,
  });
  const rules = loadRules(config.rules);
  const natsBinary = options.useNats === false ? null : findNatsServer();
  if (options.useNats !== false && natsBinary === null) {
    say('nats-server is not installed: feeding the pipeline from the in-process source');
    say('(install the Debian package nats-server to run the demo through JetStream)');
  }

  const server = natsBinary ? await NatsServer.start({ jetstream: true }) : null;
  let nc: NatsConnection | null = null;
  try {
    const delivered: Trigger[] = [];
    let source: EventSource;
    if (server) {
      nc = await connectNats({ ...config, nats: { ...config.nats, url: server.url } });
      await ensureStreams(nc, config.streams);
      // What a dialer sees: every trigger message on its subject.
      nc.subscribe('cx.triggers.>', { callback: (_err, msg) => void delivered.push(msg.json<Trigger>()) });
      say(`private nats-server ${server.url}: publishing to stream CX_EVENTS ...`);
      await publishAll(nc, raw, (i) => events[i]!.id);
      source = jetstreamSource({ nc, durable: config.nats.durable, maxInFlight: config.nats.maxInFlight });
    } else {
      source = iterableSource(raw);
    }
    const sinks = await openSinks(config, nc);
    const summary = replaySummary();
    const processingStarted = performance.now();
    const finished = server ? stopWhenAcked(source, raw.length) : null;
    await runEngine({ config, rules, source, sinks, live: false, onOutput: (o) => summary.add(o) });
    await finished;
    const seconds = (performance.now() - processingStarted) / 1000;
    if (nc) await nc.flush();
    const triggers = server ? delivered : (sinks.memoryTriggers?.triggers ?? []);

    say();
    say(
      `processed ${summary.events} events in ${seconds.toFixed(1)} s (${Math.round(summary.events / seconds)} events/s)`,
    );
    say(summary.format().trimEnd());
    say(
      `trigger messages ${server ? 'received on cx.triggers.>' : 'collected in memory'}: ${triggers.length}`,
    );
    say();
    // Every generated customer has one zone; aggregate triggers (customer `region:...`) use the default.
    const zones = new Map(events.map((e) => [e.customer, e.tz ?? config.engine.defaultTz]));
    const zoneOf = (customer: string) => zones.get(customer) ?? config.engine.defaultTz;
    say("sample triggers (times in the customer's zone; below each, the message a subscriber receives):");
    for (const t of pickSamples(triggers, rules, zoneOf)) {
      say();
      say(
        formatSample(
          t,
          zoneOf(t.customer),
          rules.find((r) => r.id === t.rule),
        ),
      );
    }
    say();
    say('funnel consult → add to cart → order (7-day window), by channel:');
    say(formatFunnel(await queryFunnel(sinks.clickhouseClient, { by: 'channel' }), 'channel').trimEnd());
    say();
    say('by A/B script variant:');
    say(formatFunnel(await queryFunnel(sinks.clickhouseClient, { by: 'variant' }), 'variant').trimEnd());
    const report = await writeReport(
      sinks.clickhouseClient,
      { tz: config.engine.defaultTz, source: `the demo's store ${dir}/clickhouse` },
      join(dir, 'report.html'),
    );
    say();
    say(reportSummary(report));
    if (options.serve && sinks.queryServer) {
      const url = sinks.queryServer.url;
      const query = `SELECT dimension, key, consulted, added_to_cart, ordered FROM cxstream.funnel(from_date = '${report.data.from}', to_date = '${report.data.to}') FORMAT PrettyCompact`;
      say();
      say(`serving the demo's store over ClickHouse's HTTP interface at ${url} until Ctrl-C; for example:`);
      // Quotes and parentheses encoded too: the command is pasted into a shell inside '...'.
      const encoded = encodeURIComponent(query).replace(
        /['()]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      );
      say(`  curl '${url}/?query=${encoded}'`);
      say('  npx cxstream funnel --by source      (in another terminal: reads through this process)');
      await untilStopped(options.serve);
    }
    await sinks.close();
    say();
    say(
      `done in ${((performance.now() - started) / 1000).toFixed(1)} s; ClickHouse data in ${dir}/clickhouse`,
    );
    say(`query it: ${funnelCommandFor(`${dir}/clickhouse`)}`);
  } finally {
    await nc?.close();
    await server?.stop();
  }
}

/** Resolves on SIGINT or SIGTERM, or when `until` (a promise) settles. */
async function untilStopped(until: boolean | Promise<unknown>): Promise<void> {
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (until instanceof Promise) void until.finally(stop);
  await stopped;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
}

/** Bulk-loads the stream with core publishes and periodic flushes (about 10× faster than awaiting each ack). */
async function publishAll(nc: NatsConnection, raw: RawEvent[], idOf: (i: number) => string): Promise<void> {
  for (let i = 0; i < raw.length; i++) {
    const e = raw[i]!;
    const h = headers();
    // Nats-Msg-Id = event id, as upstream publishers are asked to do (de-duplication).
    h.set('Nats-Msg-Id', idOf(i));
    nc.publish(e.subject, e.data, { headers: h });
    if (i % 5000 === 4999) await nc.flush();
  }
  await nc.flush();
  const jsm = await jetstreamManager(nc);
  for (;;) {
    const info = await jsm.streams.info('CX_EVENTS');
    if (info.state.messages >= raw.length) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops a live source once it has acked `total` events (the demo's stream is finite). */
async function stopWhenAcked(source: EventSource, total: number): Promise<void> {
  while (source.stats().acked < total) await new Promise((r) => setTimeout(r, 50));
  await source.stop();
}
