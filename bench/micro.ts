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
import Benchmark from 'benchmark';
import { pack, Unpackr, type Options as UnpackrOptions, unpack } from 'msgpackr';
import { of } from 'rxjs';
import { decodeEvent } from '../operators/decodeEvent.js';
import { customerOfSubject, partitionOf, routeByPartition } from '../operators/route.js';

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
const route4 = routeByPartition<(typeof chunk)[number]>(4);

let sink: unknown;
const cases: Case[] = [
  { name: `decodeEvent msgpack ${msgpackBytes.length}B`, fn: () => decodeEvent(msgpackView, subject) },
  { name: `decodeEvent json ${jsonBytes.length}B`, fn: () => decodeEvent(jsonBytes, subject) },
  // The two msgpackr entry points decodeEvent could use (it reuses one Unpackr for int64AsType).
  { name: `msgpackr unpack() ${msgpackBytes.length}B`, fn: () => unpack(msgpackView) },
  { name: `msgpackr reused Unpackr ${msgpackBytes.length}B`, fn: () => reusedUnpackr.unpack(msgpackView) },
  { name: 'partitionOf P=4', fn: () => partitionOf(customers[next++ & 1023]!, 4) },
  { name: 'customerOfSubject+partitionOf P=4', fn: () => partitionOf(customerOfSubject(subject), 4) },
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

main();
