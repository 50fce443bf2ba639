/**
 * Micro benchmarks of the per-event hot paths, with the `benchmark` package.
 *
 *   npx tsx bench/micro.ts [filter...]     (filters: substrings of case names, e.g. `decode`)
 *
 * Prints one JSON line per case, `{"name", "opsPerSec", "rme", "samples", ...}`, then a table.
 * To add a case, push onto `cases` below: `fn` is called once per op; `perOp` names what one op
 * handles when it is more than one item (e.g. a chunk of 1000 events), so `itemsPerSec` is printed.
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import Benchmark from 'benchmark';
import { pack, Unpackr, type Options as UnpackrOptions, unpack } from 'msgpackr';
import { of } from 'rxjs';
import { loadConfig } from '../engine/config/config.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { generateTraffic, subjectOf } from '../engine/demo/traffic.js';
import { packEvents } from '../engine/runtime/workerPool.js';
import { decodeEvent } from '../operators/decodeEvent.js';
import { customerOfSubject, keyGroupOf } from '../operators/keyGroups.js';
import { maskPii } from '../operators/mask.js';
import { PartitionProcessor } from '../operators/partitionProcessor.js';
import { PrivacyPolicy } from '../operators/privacy.js';
import { newCustomerState, profileOf, updateProfile } from '../operators/profile.js';
import { routeByPartition } from '../operators/route.js';
import { type CustomerScope, type RuleRun, ruleSetOf } from '../operators/rules.js';
import { TimerQueue } from '../operators/timers.js';
import { TombstoneSet, tombstoneOf } from '../operators/tombstones.js';
import type { CxEvent } from '../operators/types.js';
import { EVENT_COLUMNS, encodeEventRows, encodeRows } from '../sinks/clickhouseRows.js';

interface Case {
  name: string;
  fn: () => unknown;
  /** Items handled by one op (default 1). */
  perOp?: number;
}

/** A typical customer message event, about 200 bytes as msgpack. */
const typicalEvent = {
  id: 'e-01JH3K9Z8X0001234',
  ts: 1767225600123,
  customer: 'c-000123456',
  type: 'message',
  channel: 'wechat',
  session: 's-998877',
  region: 'shanghai',
  tz: 'Asia/Shanghai',
  text: 'hi, I need an invoice for my order',
  intent: 'invoice',
  sentiment: -0.2,
  recognized: true,
};
const subject = `cx.events.wechat.message.${typicalEvent.customer}`;
const msgpackBytes = pack(typicalEvent);
const jsonBytes = new TextEncoder().encode(JSON.stringify(typicalEvent));
// Workers hand decodeEvent a view into one transferred buffer per batch, not a Buffer of its own.
const batchBuffer = new Uint8Array(msgpackBytes.length + 64);
batchBuffer.set(msgpackBytes, 32);
const msgpackView = batchBuffer.subarray(32, 32 + msgpackBytes.length);
// Same options as decodeEvent's decoder.
const reusedUnpackr = new Unpackr({
  mapsAsObjects: true,
  useRecords: false,
  int64AsType: 'auto' as string as UnpackrOptions['int64AsType'],
});

const customers = Array.from({ length: 1024 }, (_, i) => `c-${String(i * 7919).padStart(9, '0')}`);
let next = 0;

const chunk = Array.from({ length: 1000 }, (_, seq) => ({
  seq,
  subject: `cx.events.web.page_view.${customers[seq % customers.length]}`,
  data: msgpackBytes,
}));
const route4 = routeByPartition<(typeof chunk)[number]>(4, 128);

let sink: unknown;
const cases: Case[] = [
  { name: `decodeEvent msgpack ${msgpackBytes.length}B`, fn: () => decodeEvent(msgpackView, subject) },
  { name: `decodeEvent json ${jsonBytes.length}B`, fn: () => decodeEvent(jsonBytes, subject) },
  // The two msgpackr entry points decodeEvent could use (it reuses one Unpackr for int64AsType).
  { name: `msgpackr unpack() ${msgpackBytes.length}B`, fn: () => unpack(msgpackView) },
  { name: `msgpackr reused Unpackr ${msgpackBytes.length}B`, fn: () => reusedUnpackr.unpack(msgpackView) },
  { name: 'keyGroupOf K=128', fn: () => keyGroupOf(customers[next++ & 1023]!, 128) },
  { name: 'customerOfSubject+keyGroupOf K=128', fn: () => keyGroupOf(customerOfSubject(subject), 128) },
  {
    name: 'routeByPartition P=4 (1000-event chunk)',
    perOp: chunk.length,
    fn: () => {
      of(chunk)
        .pipe(route4)
        .subscribe((r) => {
          sink = r;
        });
    },
  },
];

// --- forgotten customers: the check every event pays (operators/tombstones.ts) ---------------------
const noTombstones = new TombstoneSet();
const hundredTombstones = new TombstoneSet();
for (let i = 0; i < 100; i++) hundredTombstones.add(tombstoneOf(`forgotten-${i}`));
cases.push(
  { name: 'TombstoneSet.has, none forgotten', fn: () => noTombstones.has(customers[next++ & 1023]!) },
  {
    name: 'TombstoneSet.has, 100 forgotten, no FNV match',
    fn: () => hundredTombstones.has(customers[next++ & 1023]!),
  },
  {
    name: 'TombstoneSet.has, a forgotten customer (SHA-256)',
    fn: () => hundredTombstones.has('forgotten-7'),
  },
);

// --- masking of personal data: each free-text path, and what a trigger's payload inputs cost ------
const maskTexts: Array<[string, string]> = [
  ['no candidate, English', typicalEvent.text],
  ['no candidate, Chinese', '你好，我想问一下发票的事情，谢谢'],
  ['digits, nothing to mask (order id, price, date)', '订单SO20241101已发货，金额¥1299.00，预计11月3日送达'],
  ['name cue, nothing to mask', '商品名称：婴儿推车，还有货吗'],
  ['a mobile number', '我的手机号是13812345678，麻烦尽快联系我'],
  ['a full-width mobile number', '我的手机号是１３８１２３４５６７８，麻烦尽快联系我'],
  [
    'every kind',
    '我叫张三，电话+86 139-8765-4321，座机010-87654321，身份证110105199003071234，护照E12345678，卡6225880000111121，邮箱zs@163.com，订单SO20241101',
  ],
];
for (const [what, text] of maskTexts)
  cases.push({
    name: `maskPii ${what} (${text.length} chars)`,
    fn: () => {
      sink = maskPii(text);
    },
  });
const privacy = new PrivacyPolicy();
const personalEvent: CxEvent = {
  ...typicalEvent,
  text: '我叫张三，手机13812345678',
  name: '张三',
  phone: '13812345678',
  remark: '周末送货',
};
cases.push({
  name: 'PrivacyPolicy.payloadEvent (message with text, name, phone, remark): once per trigger',
  fn: () => {
    sink = privacy.payloadEvent(personalEvent);
  },
});

// --- profile, processor, row encoding, worker transfer on a generated day -------------------------
const day = generateTraffic({ customers: 2000, seed: 3 });
const daySubjects = day.map(subjectOf);
const dayPayloads = day.map((e) => pack(e) as Uint8Array);
const defaultRules = loadRules(loadConfig().rules);
const PROCESSOR_BATCH = 1000;

/**
 * Runs the generated day through a processor, 1000 events per call, starting over with a fresh
 * processor at the end (sequence numbers must grow), so the state stays that of a real day.
 */
function dayProcessor(rules: typeof defaultRules): () => ReturnType<PartitionProcessor['applyBatch']> {
  let p = new PartitionProcessor({ partition: 0, rules });
  let at = 0;
  return () => {
    if (at + PROCESSOR_BATCH > day.length) {
      p = new PartitionProcessor({ partition: 0, rules });
      at = 0;
    }
    const seqs = new Float64Array(PROCESSOR_BATCH);
    for (let j = 0; j < PROCESSOR_BATCH; j++) seqs[j] = at + j + 1;
    const from = at;
    at += PROCESSOR_BATCH;
    return p.applyBatch(seqs, daySubjects.slice(from, at), (j) => dayPayloads[from + j]!, 0);
  };
}

const profileStates = new Map<string, ReturnType<typeof newCustomerState>>();
let profileAt = 0;
cases.push({
  name: 'updateProfile + profileOf (generated day, per event)',
  fn: () => {
    if (profileAt === day.length) {
      profileAt = 0;
      profileStates.clear();
    }
    const e = day[profileAt++]!;
    let state = profileStates.get(e.customer);
    if (state === undefined) {
      state = newCustomerState(e.customer);
      profileStates.set(e.customer, state);
    }
    updateProfile(state, e, 'Asia/Shanghai');
    sink = profileOf(state, e.ts);
  },
});
cases.push({
  name: 'PartitionProcessor generated day, no rules (1000 events)',
  perOp: PROCESSOR_BATCH,
  fn: dayProcessor([]),
});
cases.push({
  name: `PartitionProcessor generated day, default rules (${defaultRules.length}) (1000 events)`,
  perOp: PROCESSOR_BATCH,
  fn: dayProcessor(defaultRules),
});
const sampleRows = dayProcessor(defaultRules)().events;
cases.push({
  name: `encodeRows ${sampleRows.length} event rows JSONCompactEachRow (worker side)`,
  perOp: sampleRows.length,
  fn: () => {
    sink = encodeRows(sampleRows, EVENT_COLUMNS, 'JSONCompactEachRow');
  },
});
cases.push({
  name: `encodeEventRows ${sampleRows.length} event rows JSONCompactEachRow (what the worker uses)`,
  perOp: sampleRows.length,
  fn: () => {
    sink = encodeEventRows(sampleRows, 'JSONCompactEachRow');
  },
});

// One worker task of 1000 raw events as the pipeline sends it (engine/runtime/workerPool.ts), through a
// MessagePort and out again in this thread: what the two threads pay, serialize + deserialize.
const rawBatch = Array.from({ length: 1000 }, (_, i) => ({
  seq: i + 1,
  subject: daySubjects[i]!,
  data: dayPayloads[i]!,
}));
const channel = new MessageChannel();
function roundTrip(message: unknown, transfer: ArrayBuffer[] = []): unknown {
  channel.port1.postMessage(message, transfer);
  return receiveMessageOnPort(channel.port2)?.message;
}
cases.push({
  name: 'batch to worker: packEvents + transfer (1000 events)',
  perOp: rawBatch.length,
  fn: () => {
    const task = packEvents(rawBatch, 0);
    sink = roundTrip(task, [
      task.bytes.buffer as ArrayBuffer,
      task.ends.buffer as ArrayBuffer,
      task.seqs.buffer as ArrayBuffer,
    ]);
  },
});
cases.push({
  name: 'batch to worker: structured clone of RawEvent[] (1000 events)',
  perOp: rawBatch.length,
  fn: () => {
    sink = roundTrip(rawBatch);
  },
});

interface Result {
  name: string;
  opsPerSec: number;
  rme: number;
  samples: number;
  itemsPerSec?: number;
}

/** A benchmark of a path that rejects measures the wrong thing: check the inputs decode first. */
function checkInputs(): void {
  for (const [name, bytes] of [
    ['msgpack', msgpackView],
    ['json', jsonBytes],
  ] as const) {
    const r = decodeEvent(bytes, subject);
    if (typeof r === 'string') throw new Error(`bench input (${name}) is rejected: ${r}`);
  }
}

function main(): void {
  checkInputs();
  const filters = process.argv.slice(2);
  const selected = cases.filter((c) => filters.length === 0 || filters.some((f) => c.name.includes(f)));
  const results: Result[] = [];
  const suite = new Benchmark.Suite('micro');
  for (const c of selected) {
    suite.add(c.name, c.fn, { maxTime: 1.5, minSamples: 20 });
  }
  suite.on('cycle', (event: Benchmark.Event) => {
    const b = event.target as unknown as Benchmark;
    const c = selected.find((x) => x.name === b.name)!;
    const result: Result = {
      name: c.name,
      opsPerSec: Math.round(b.hz),
      rme: Number(b.stats.rme.toFixed(2)),
      samples: b.stats.sample.length,
    };
    if (c.perOp !== undefined) result.itemsPerSec = Math.round(b.hz * c.perOp);
    results.push(result);
    console.log(JSON.stringify(result));
  });
  suite.on('complete', () => {
    if (sink === undefined && selected.some((c) => c.perOp !== undefined))
      throw new Error('routing never ran');
    const width = Math.max(...results.map((r) => r.name.length));
    console.log(`\n${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}`);
    console.log(
      `${'case'.padEnd(width)}  ${'ops/s'.padStart(12)}  ${'±%'.padStart(6)}  ${'items/s'.padStart(12)}`,
    );
    for (const r of results) {
      const items = r.itemsPerSec === undefined ? '' : r.itemsPerSec.toLocaleString('en');
      console.log(
        `${r.name.padEnd(width)}  ${r.opsPerSec.toLocaleString('en').padStart(12)}  ${r.rme.toFixed(1).padStart(6)}  ${items.padStart(12)}`,
      );
    }
  });
  suite.run({ async: false });
}

// --- rules and timers: the 17 default per-customer rules on a mixed stream -------------------------
const ruleSpecs = loadRules([fileURLToPath(new URL('../config/rules.yaml', import.meta.url))]);
const ruleTypes = [
  'message',
  'page_view',
  'add_to_cart',
  'session_start',
  'session_end',
  'login',
  'order',
  'rating',
];
const ruleEvents: CxEvent[] = Array.from({ length: 1000 }, (_, i) => ({
  ...typicalEvent,
  id: `r${i}`,
  ts: typicalEvent.ts + i * 1000,
  customer: customers[i % 256]!,
  type: ruleTypes[i % ruleTypes.length]!,
  category: 'baby',
  amount: 99,
  score: 4,
  localHour: 12,
}));
const ruleSet = ruleSetOf(ruleSpecs);
const ruleScopes = new Map<string, CustomerScope>();
const ruleProfile = profileOf(newCustomerState('x'), typicalEvent.ts) as unknown as Record<string, unknown>;
const ruleRun: RuleRun = {
  queue: new TimerQueue(),
  watermark: typicalEvent.ts - 5000,
  firedAt: 0,
  defaultTz: 'Asia/Shanghai',
  triggers: [],
  counters: { droppedByCap: 0, droppedByQuietHours: 0, deferred: 0 },
};
/** Rules looked at per event of this stream: what one `evaluate` call costs in rule evaluations. */
const rulesPerEvent =
  ruleEvents.reduce((n, e) => {
    for (const s of ruleSpecs) {
      const types = s.inactivity ? undefined : s.purchaseCycle ? ['order'] : s.on;
      const p = s.absence ?? s.sequence ?? s.count ?? s.streak;
      const listed = p
        ? Object.entries(p)
            .filter(([k]) => ['after', 'missing', 'first', 'then', 'of', 'unless', 'resetOn'].includes(k))
            .flatMap(([, v]) => v as string | string[])
        : types;
      if (listed === undefined || listed.includes(e.type)) n++;
    }
    return n;
  }, 0) / ruleEvents.length;
let ruleNext = 0;
cases.push({
  name: `RuleSet.evaluate 17 default rules (${rulesPerEvent.toFixed(2)} rule evaluations per event)`,
  perOp: rulesPerEvent,
  fn: () => {
    const e = ruleEvents[ruleNext++ % ruleEvents.length]!;
    let scope = ruleScopes.get(e.customer);
    if (scope === undefined) {
      scope = {
        customer: e.customer,
        state: newCustomerState(e.customer),
        memory: {},
        fired: {},
        caps: {},
        timers: {},
      };
      ruleScopes.set(e.customer, scope);
    }
    ruleRun.triggers.length = 0;
    // both lanes, as the processor runs them for this event
    ruleSet.evaluate(e, ruleProfile, scope, ruleRun);
    ruleSet.evaluateOrdered(e, ruleProfile, scope, ruleRun);
    sink = ruleRun.triggers;
  },
});
const processorBytes = ruleEvents.map((e) => pack(e));
const processorSubjects = ruleEvents.map((e) => `cx.events.web.${e.type}.${e.customer}`);
let processorRound = 0;
const processor = new PartitionProcessor({ partition: 0, rules: ruleSpecs });
cases.push({
  name: 'PartitionProcessor.applyBatch default rules (1000 events: decode, profile, rules, timers)',
  perOp: 1000,
  fn: () => {
    const base = processorRound++ * 1000;
    const seqs = Float64Array.from({ length: 1000 }, (_, i) => base + i + 1);
    sink = processor.applyBatch(seqs, processorSubjects, (i) => processorBytes[i]!, 0);
  },
});

main();
