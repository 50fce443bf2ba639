/**
 * The hard cases of the fault suite: a backfill whose event times lie weeks in the past (two days
 * compressed into about a minute of live publishing), timer rules, a seeded plan of engine
 * SIGKILLs and nats-server restarts, and sentinel events that move every key group far ahead in
 * event time at the end, so that the faulty run and its reference fire the same pending timers.
 */
import { pack } from 'msgpackr';
import { Rand } from '../../engine/demo/random.js';
import { generateTraffic, subjectOf } from '../../engine/demo/traffic.js';
import { DEFAULT_KEY_GROUPS, keyGroupOf } from '../../operators/keyGroups.js';
import type { CxEvent } from '../../operators/types.js';
import type { BrokerRecovery, FaultContext, StoredEvent } from './faultScenario.js';

const DAY = 24 * 3600_000;
const SHANGHAI_OFFSET = 8 * 3600_000;

/** Options of {@link backfillTraffic}. */
export interface BackfillOptions {
  customers: number;
  /** The traffic starts at the +08:00 midnight this many days ago. @default 46 */
  daysAgo?: number;
  /** Days of traffic. @default 2 */
  days?: number;
  /** How far past the last traffic event the sentinels lie. @default 40 days */
  sentinelAfterMs?: number;
  /** Wall clock the past is measured from. @default Date.now() */
  now?: number;
}

/**
 * Generated traffic of `customers` over `days` days starting `daysAgo` days ago, then one sentinel
 * event per key group (of the engine's default count) `sentinelAfterMs` after the last traffic
 * event. A sentinel moves its key group's watermark past every timer the traffic armed (cart and consultation reminders,
 * purchase cycles, 30 days of silence, deferrals to the next morning), in event time, so those
 * timers fire the same way in every run; the sentinels' own timers are due weeks after the wall
 * clock and never fire during a test.
 */
export function backfillTraffic(o: BackfillOptions): CxEvent[] {
  const now = o.now ?? Date.now();
  const midnight = Math.floor((now + SHANGHAI_OFFSET) / DAY) * DAY - SHANGHAI_OFFSET;
  const events = generateTraffic({
    customers: o.customers,
    days: o.days ?? 2,
    dayStart: midnight - (o.daysAgo ?? 46) * DAY,
  });
  const sentinelTs = events.at(-1)!.ts + (o.sentinelAfterMs ?? 40 * DAY);
  if (sentinelTs > now) throw new RangeError('sentinels would lie in the future of the wall clock');
  const covered = new Set<number>();
  // one per key group: each key group has its own watermark (the engine's default count)
  for (let i = 0; covered.size < DEFAULT_KEY_GROUPS; i++) {
    const customer = `sentinel${i}`;
    const kg = keyGroupOf(customer, DEFAULT_KEY_GROUPS);
    if (covered.has(kg)) continue;
    covered.add(kg);
    events.push({ id: `sentinel-${kg}`, ts: sentinelTs, customer, type: 'page_view', channel: 'web' });
  }
  return events;
}

/** Events as they are stored in CX_EVENTS (msgpack, the event id as `Nats-Msg-Id`). */
export function storedEvents(events: readonly CxEvent[]): StoredEvent[] {
  return events.map((e) => ({ subject: subjectOf(e), data: pack(e), msgId: e.id }));
}

/** One fault of a plan, after a pause. */
export type Fault = { kind: 'engine'; pauseMs: number } | { kind: 'nats'; pauseMs: number; outageMs: number };

/** Which faults a plan holds: the rows of the table in docs/DELIVERY.md. */
export type PlanKind = 'none' | 'engine' | 'nats' | 'both';

/** Options of {@link faultPlan}. */
export interface PlanOptions {
  seed: number;
  kind: PlanKind;
  /** Engine SIGKILLs. @default 5 */
  engineKills?: number;
  /** nats-server SIGKILL/restarts. @default 2 */
  natsKills?: number;
  /** The first broker outage lasts at least this long (`engine.idleAfterMs` and a tick past it). */
  longOutageMs: number;
}

/**
 * A seeded fault plan: the kills in a random order, random pauses between them (0.5–3 s), random
 * broker outages (0.3–3 s), the first one at least `longOutageMs` (up to 1.5 s more). The same
 * seed gives the same plan.
 */
export function faultPlan(o: PlanOptions): Fault[] {
  const rand = new Rand(o.seed);
  const engine = o.kind === 'engine' || o.kind === 'both' ? (o.engineKills ?? 5) : 0;
  const nats = o.kind === 'nats' || o.kind === 'both' ? (o.natsKills ?? 2) : 0;
  const kinds: Array<'engine' | 'nats'> = [
    ...Array<'engine'>(engine).fill('engine'),
    ...Array<'nats'>(nats).fill('nats'),
  ];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rand.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  let long = true;
  return kinds.map((kind): Fault => {
    const pauseMs = Math.round(rand.range(500, 3000));
    if (kind === 'engine') return { kind, pauseMs };
    const outageMs = Math.round(
      long ? rand.range(o.longOutageMs, o.longOutageMs + 1500) : rand.range(300, 3000),
    );
    long = false;
    return { kind, pauseMs, outageMs };
  });
}

/** What running a plan measured. */
export interface PlanRun {
  /** Engine SIGKILL → the restarted engine processing (ms); null when nothing was left to process. */
  engineRecoveries: Array<number | null>;
  /** Per broker restart, with its outage. */
  brokerRecoveries: Array<BrokerRecovery & { outageMs: number }>;
  /** Faults that happened before all traffic was published. */
  duringTraffic: number;
}

/** Runs the faults in order; each waits for the engine to be back before the next pause starts. */
export async function runPlan(ctx: FaultContext, plan: readonly Fault[]): Promise<PlanRun> {
  const run: PlanRun = { engineRecoveries: [], brokerRecoveries: [], duringTraffic: 0 };
  let published = false;
  void ctx.published.then(() => {
    published = true;
  });
  for (const f of plan) {
    await ctx.sleep(f.pauseMs);
    if (!published) run.duringTraffic++;
    if (f.kind === 'engine') run.engineRecoveries.push(await ctx.killEngine());
    else run.brokerRecoveries.push({ ...(await ctx.restartServer(f.outageMs)), outageMs: f.outageMs });
  }
  return run;
}

/** The seed of a run: `FAULT_SEED` when set (to replay a run), else a random one. */
export function faultSeed(): number {
  const given = process.env.FAULT_SEED;
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed)) throw new RangeError(`FAULT_SEED must be an integer, got ${given}`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}
