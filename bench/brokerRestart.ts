/**
 * How long the engine takes to process again after a nats-server restart: live traffic (the fault
 * suite's backfill, published at a steady pace) into the real `cxstream run` process, nats-server
 * SIGKILLed and restarted with its store on the same port several times. Per restart, from the
 * server accepting connections again:
 *
 * - reconnect: the engine's connection is back (its "NATS reconnected" log line; the client's own
 *   reconnect wait, nats.js's 2 s by default, is in it);
 * - processing: the engine delivers outputs again (`cx_events_total` of /metrics rises);
 * - acked: the durable consumer's ack floor moves (a checkpoint, 1 s interval here, is in it).
 *
 *     npm run bench:broker -- [--restarts N] [--customers N] [--record]
 */
import { rmSync } from 'node:fs';
import { backfillTraffic, storedEvents } from '../test/harness/backfill.js';
import { type BrokerRecovery, runScenario } from '../test/harness/faultScenario.js';
import { flag, jsonLine, recordRun, runInfo, table } from './report.js';

const restarts = flag('restarts', 'BENCH_RESTARTS', 6);
const customers = flag('customers', 'BENCH_CUSTOMERS', 500);
/** Outages cycle through these (ms): shorter and longer than the client's reconnect wait. */
const OUTAGES = [1000, 2000, 4000];

const info = runInfo();
const events = backfillTraffic({ customers });
const measured: Array<BrokerRecovery & { outageMs: number }> = [];
const result = await runScenario({
  backlog: storedEvents(events.slice(0, 500)),
  events: events.slice(500),
  publishStep: 50,
  publishPauseMs: 130,
  env: { CXSTREAM_ENGINE_IDLE_AFTER_MS: '2000', CXSTREAM_ENGINE_TICK_INTERVAL_MS: '500' },
  faults: async (ctx) => {
    for (let i = 0; i < restarts; i++) {
      await ctx.sleep(2000);
      const outageMs = OUTAGES[i % OUTAGES.length]!;
      measured.push({ ...(await ctx.restartServer(outageMs)), outageMs });
      jsonLine('restart', measured.at(-1)!);
    }
  },
});
rmSync(result.dir, { recursive: true, force: true });

const median = (xs: Array<number | null>): number => {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  return v.length === 0 ? Number.NaN : v[Math.floor((v.length - 1) / 2)]!;
};
const rows = measured.map((m, i) => [
  `restart ${i + 1}`,
  m.outageMs,
  m.reconnectMs ?? '-',
  m.processingMs ?? '-',
  m.ackMs ?? '-',
]);
rows.push([
  'median',
  '',
  median(measured.map((m) => m.reconnectMs)),
  median(measured.map((m) => m.processingMs)),
  median(measured.map((m) => m.ackMs)),
]);
const text = table(['', 'outage ms', 'reconnect ms', 'processing ms', 'acked ms'], rows);
console.log(text);
jsonLine('summary', {
  ...info,
  restarts: measured,
  engineExitsOfItsOwn: result.unexpectedExits.length,
});
recordRun(
  'bench:broker (nats-server restart → engine processing again)',
  info,
  `${text}\nengine exits of its own: ${result.unexpectedExits.length}`,
);
