/**
 * State backend experiment: the current in-heap customer store (operators/customerStore.ts, customers
 * at rest as msgpack bytes in a Map per key group) against an embedded on-disk store (lmdb:
 * memory-mapped, transactional), holding the same N customer entries.
 *
 *   npm run bench:backend -- [customers] [--ops OPS]   (default 1 000 000 customers, 200 000 ops)
 *
 * Entries: 20 000 customers are driven through a PartitionProcessor as bench/checkpoint.ts does (a
 * session, two messages and an order each) and its snapshot taken; customer i is then `c<i>`, in its
 * own key group (hash of the key, 128 key groups), with the bytes and timers of a template customer
 * of that key group (~156 distinct entries per key group, each stored as its own copy).
 *
 * Each backend runs in a child process of its own (same node flags), one after the other, so each
 * one's memory growth starts from the same baseline:
 * - heap: a PartitionProcessor restored from a full snapshot holding the N customers (their bytes in
 *   1 MiB slabs, as msgpackr hands them out), i.e. the engine's store. Per-op: the key group's
 *   CustomerStore get (decode) + encode + setEncoded. Checkpoint: SnapshotCodec.encodeCut of
 *   processor.snapshotCut() + LocalCheckpointStore.save (temp file, fsync, rename, fsync dir); delta:
 *   the same for 20 000 changed customers. Restart: load + decode + restore.
 * - lmdb: one env, one named DB per key group (binary values, the same msgpack bytes, key = customer)
 *   and a `meta` DB holding each key group's shared structures and the source sequence. Per-op:
 *   getBinaryFast + decode + encode + put, either async (lmdb-js commits on its own thread) or in
 *   synchronous transactions of 1 000 ops (a durable commit per batch). Checkpoint: the changed
 *   customers and the sequence in one transaction. Shipping: env.backup to a file (a copy of the
 *   whole env), and iterating every entry into a format-6 snapshot (SnapshotCodec) for the object
 *   store. Restart: close, reopen, read the sequence and the first customer (page cache warm: a
 *   process restart, not a machine's).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Database, open, type RootDatabase } from 'lmdb';
import { LocalCheckpointStore } from '../engine/checkpoint/checkpointStore.js';
import { SnapshotCodec } from '../engine/checkpoint/snapshotCodec.js';
import { loadRules } from '../engine/config/rulesFile.js';
import { CustomerStore } from '../operators/customerStore.js';
import { DEFAULT_KEY_GROUPS, keyGroupOf } from '../operators/keyGroups.js';
import { PartitionProcessor } from '../operators/partitionProcessor.js';
import type { KeyGroupSnapshot, PartitionSnapshot } from '../operators/partitionState.js';
import type { TimerList } from '../operators/timers.js';
import { applyCustomers } from './customerEvents.js';
import { flag, fmt, table } from './report.js';

const TEMPLATES = 20_000;
const DELTA = 20_000;
const BATCH = 1_000;
const ROUNDS = 5;
const RECORD = { partition: 0, partitions: 1, triggersSeq: 0, base: 'bench' };

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:backend does)');
const codec = new SnapshotCodec();
const rules = loadRules([join(import.meta.dirname, '../config/rules.yaml')]);

interface Memory {
  heap: number;
  rss: number;
  rssAnon: number;
  rssFile: number;
}

function settle(): Memory {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (name: string) =>
    Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN) * 1024;
  return { heap: m.heapUsed, rss: m.rss, rssAnon: kb('RssAnon'), rssFile: kb('RssFile') + kb('RssShmem') };
}

/** The memory figures of a backend: growth per customer after its load and after the random ops. */
function memoryFigures(loaded: Memory, afterOps: Memory): Figures {
  return {
    heapPerCustomer: loaded.heap,
    rssPerCustomer: loaded.rss,
    rssAnonPerCustomer: loaded.rssAnon,
    rssFilePerCustomer: loaded.rssFile,
    rssAfterOpsPerCustomer: afterOps.rss,
    rssFileAfterOpsPerCustomer: afterOps.rssFile,
  };
}

function perCustomer(after: Memory, before: Memory, n: number): Memory {
  return {
    heap: (after.heap - before.heap) / n,
    rss: (after.rss - before.rss) / n,
    rssAnon: (after.rssAnon - before.rssAnon) / n,
    rssFile: (after.rssFile - before.rssFile) / n,
  };
}

/** Milliseconds `fn` took (awaited). */
async function timed(fn: () => unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** The template customers of one key group: bytes, and each one's timers. */
interface Template {
  structures: string[][];
  entries: Uint8Array[];
  timers: Array<Array<[due: number, id: string]>>;
}

function templatesOf(file: string): Template[] {
  const snapshot = codec.decode(readFileSync(file));
  const byKg: Template[] = [];
  for (const g of snapshot.groups) {
    const index = new Map<string, number>();
    const t: Template = { structures: g.structures ?? [], entries: [], timers: [] };
    for (const [customer, bytes] of g.customers) {
      index.set(customer, t.entries.length);
      t.entries.push(bytes as Uint8Array);
      t.timers.push([]);
    }
    const timers = g.timers ?? { dues: [], customers: [], ids: [] };
    for (let i = 0; i < timers.dues.length; i++) {
      const at = index.get(timers.customers[i]!);
      if (at !== undefined) t.timers[at]!.push([timers.dues[i]!, timers.ids[i]!]);
    }
    byKg[g.kg] = t;
  }
  return byKg;
}

/** Customer i: its key, key group and template. */
function customerAt(i: number, templates: Template[]): { customer: string; kg: number; t: number } {
  const customer = `c${i}`;
  const kg = keyGroupOf(customer, DEFAULT_KEY_GROUPS);
  return { customer, kg, t: i % templates[kg]!.entries.length };
}

/** Copies of bytes in 1 MiB slabs (msgpackr hands out views of its buffer the same way). */
class Slabs {
  private slab = Buffer.allocUnsafeSlow(0);
  private at = 0;
  copy(bytes: Uint8Array): Uint8Array {
    if (this.at + bytes.byteLength > this.slab.byteLength) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(1 << 20, bytes.byteLength));
      this.at = 0;
    }
    const view = this.slab.subarray(this.at, this.at + bytes.byteLength);
    view.set(bytes);
    this.at += bytes.byteLength;
    return view;
  }
}

/** `count` random customer indexes (the same in both children: a fixed-seed LCG). */
function randomCustomers(count: number, n: number): Uint32Array {
  const out = new Uint32Array(count);
  let x = 12345;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    out[i] = Math.floor((x / 2 ** 32) * n);
  }
  return out;
}

/** The DELTA distinct customers changed before the incremental checkpoint (a prime stride). */
function deltaCustomer(i: number, n: number): number {
  return (i * 104_729 + 17) % n;
}

/**
 * µs per op of `round` over `ops`, run in ROUNDS slices: the median slice (the machine is shared, so
 * one slow slice does not move the figure).
 */
async function perOp(ops: Uint32Array, round: (slice: Uint32Array) => unknown): Promise<number> {
  const size = Math.ceil(ops.length / ROUNDS);
  const us: number[] = [];
  for (let r = 0; r < ops.length; r += size) {
    const slice = ops.subarray(r, r + size);
    us.push(((await timed(() => round(slice))) * 1000) / slice.length);
  }
  return us.sort((a, b) => a - b)[Math.floor(us.length / 2)]!;
}

type Figures = Record<string, number>;

async function heapChild(n: number, ops: number, templateFile: string, dir: string): Promise<Figures> {
  const templates = templatesOf(templateFile);
  const before = settle();
  let t = performance.now();
  const slabs = new Slabs();
  const sections = new Map<number, KeyGroupSnapshot & { timers: TimerList }>();
  for (let kg = 0; kg < DEFAULT_KEY_GROUPS; kg++) {
    sections.set(kg, {
      kg,
      lastSeq: n,
      watermark: { value: 0, maxEventTime: 0 },
      customers: [],
      structuresFrom: 0,
      structures: templates[kg]!.structures,
      timers: { dues: [], customers: [], ids: [] },
      pending: [],
    });
  }
  for (let i = 0; i < n; i++) {
    const { customer, kg, t: at } = customerAt(i, templates);
    const s = sections.get(kg)!;
    s.customers.push([customer, slabs.copy(templates[kg]!.entries[at]!)]);
    for (const [due, id] of templates[kg]!.timers[at]!) {
      s.timers.dues.push(due);
      s.timers.customers.push(customer);
      s.timers.ids.push(id);
    }
  }
  const processor = new PartitionProcessor({ partition: 0, rules });
  processor.restore({
    version: 6,
    keyGroups: DEFAULT_KEY_GROUPS,
    delta: false,
    groups: [...sections.values()],
  });
  sections.clear();
  const loadMs = performance.now() - t;
  const memory = perCustomer(settle(), before, n);
  // The processor's key groups (private): the store and the customers the next delta holds.
  const groups = (
    processor as unknown as { groups: Map<number, { customers: CustomerStore; changed: Set<string> }> }
  ).groups;
  const touch = (i: number): void => {
    const { customer, kg } = customerAt(i, templates);
    const g = groups.get(kg)!;
    const entry = g.customers.get(customer)!;
    g.customers.setEncoded(customer, g.customers.encode(entry));
    g.changed.add(customer);
  };

  const random = randomCustomers(ops, n);
  const opUs = await perOp(random, (slice) => {
    for (const i of slice) touch(i);
  });
  const afterOps = perCustomer(settle(), before, n);
  const checkpoints = new LocalCheckpointStore(join(dir, 'heap-ckpt'));
  t = performance.now();
  const state = codec.encodeCut(processor.snapshotCut());
  const encodeMs = performance.now() - t;
  const writeMs = await timed(() =>
    checkpoints.save({ ...RECORD, coveredSeq: n, lastSeq: n, createdAt: Date.now(), delta: 0, state }),
  );
  const deltaOpsMs = await timed(() => {
    for (let i = 0; i < DELTA; i++) touch(deltaCustomer(i, n));
  });
  t = performance.now();
  const deltaState = codec.encodeCut(processor.snapshotCut(true));
  const deltaEncodeMs = performance.now() - t;
  const deltaWriteMs = await timed(() =>
    checkpoints.save({
      ...RECORD,
      coveredSeq: n,
      lastSeq: n,
      createdAt: Date.now(),
      delta: 1,
      state: deltaState,
    }),
  );
  let restored = 0;
  const restartMs = await timed(async () => {
    const record = (await checkpoints.load(0))!;
    const p = new PartitionProcessor({ partition: 0, rules });
    p.restore(codec.decode(record.state), ...record.deltas.map((d) => codec.decode(d)));
    restored = p.size;
  });
  if (restored !== n) throw new Error(`heap restart restored ${restored} customers of ${n}`);
  return {
    loadMs,
    ...memoryFigures(memory, afterOps),
    opUs,
    fullCheckpointMs: encodeMs + writeMs,
    fullEncodeMs: encodeMs,
    fullWriteMs: writeMs,
    fullBytes: state.byteLength,
    deltaOpsMs,
    deltaCheckpointMs: deltaEncodeMs + deltaWriteMs,
    deltaBytes: deltaState.byteLength,
    restartMs,
  };
}

/** The lmdb env: one binary DB per key group, and `meta` (structures per key group, the sequence). */
function openEnv(path: string): {
  env: RootDatabase;
  dbs: Array<Database<Uint8Array, string>>;
  meta: Database;
} {
  mkdirSync(path, { recursive: true });
  const env = open({ path, maxDbs: DEFAULT_KEY_GROUPS + 2, mapSize: 16 * 2 ** 30 });
  const dbs = Array.from({ length: DEFAULT_KEY_GROUPS }, (_, kg) =>
    env.openDB<Uint8Array, string>(`kg${kg}`, { encoding: 'binary' }),
  );
  return { env, dbs, meta: env.openDB('meta', {}) };
}

async function lmdbChild(n: number, ops: number, templateFile: string, dir: string): Promise<Figures> {
  const templates = templatesOf(templateFile);
  const path = join(dir, 'lmdb');
  const before = settle();
  let { env, dbs, meta } = openEnv(path);
  // the codec of each key group: the store's own (same shared structures, same Packr options)
  const codecs = templates.map((t) => new CustomerStore(0, t.structures));
  let seq = 0;
  const t = performance.now();
  for (let from = 0; from < n; from += 10_000) {
    env.transactionSync(() => {
      for (let i = from; i < Math.min(n, from + 10_000); i++) {
        const { customer, kg, t: at } = customerAt(i, templates);
        dbs[kg]!.putSync(customer, templates[kg]!.entries[at]!);
      }
      if (from + 10_000 >= n) {
        for (let kg = 0; kg < DEFAULT_KEY_GROUPS; kg++)
          meta.putSync(`structures:${kg}`, codecs[kg]!.structures);
        seq = n;
        meta.putSync('seq', seq);
      }
    });
  }
  const loadMs = performance.now() - t;
  const memory = perCustomer(settle(), before, n);
  const fileBytes = statSync(join(path, 'data.mdb')).size;

  const update = (i: number): [Database<Uint8Array, string>, string, Uint8Array] => {
    const { customer, kg } = customerAt(i, templates);
    const db = dbs[kg]!;
    // getBinaryFast returns a reused buffer: decoded before the next read
    const entry = codecs[kg]!.decode(db.getBinaryFast(customer)!);
    return [db, customer, codecs[kg]!.encode(entry)];
  };
  const random = randomCustomers(ops, n);
  // async: lmdb-js batches the puts of an event turn into one transaction committed on its thread
  const opAsyncUs = await perOp(random, async (slice) => {
    for (let b = 0; b < slice.length; b += BATCH) {
      for (const i of slice.subarray(b, b + BATCH)) {
        const [db, customer, bytes] = update(i);
        db.put(customer, bytes);
      }
      await new Promise(setImmediate);
    }
    await env.committed;
    await env.flushed;
  });
  // synchronous: a durable transaction per batch of 1 000 events
  const opSyncUs = await perOp(random, (slice) => {
    for (let b = 0; b < slice.length; b += BATCH) {
      env.transactionSync(() => {
        for (const i of slice.subarray(b, b + BATCH)) {
          const [db, customer, bytes] = update(i);
          db.putSync(customer, bytes);
        }
        meta.putSync('seq', ++seq);
      });
    }
  });
  const afterOps = perCustomer(settle(), before, n);
  // the incremental checkpoint: DELTA changed customers and the sequence in one transaction
  let deltaOpsMs = 0;
  const deltaCheckpointTotalMs = await timed(() =>
    env.transactionSync(() => {
      const t0 = performance.now();
      for (let i = 0; i < DELTA; i++) {
        const [db, customer, bytes] = update(deltaCustomer(i, n));
        db.putSync(customer, bytes);
      }
      meta.putSync('seq', ++seq);
      deltaOpsMs = performance.now() - t0;
    }),
  );
  // shipping: a copy of the env as a file, and every entry into a format-6 snapshot
  // (a directory, as the env's: LMDB writes data.mdb into it)
  mkdirSync(join(dir, 'lmdb-backup'));
  const backupMs = await timed(() => env.backup(join(dir, 'lmdb-backup'), false));
  const backupBytes = statSync(join(dir, 'lmdb-backup', 'data.mdb')).size;
  mkdirSync(join(dir, 'lmdb-compact'));
  const compactMs = await timed(() => env.backup(join(dir, 'lmdb-compact'), true));
  const compactBytes = statSync(join(dir, 'lmdb-compact', 'data.mdb')).size;
  let exportBytes = 0;
  const exportMs = await timed(() => {
    const groups: KeyGroupSnapshot[] = dbs.map((db, kg) => ({
      kg,
      lastSeq: seq,
      watermark: { value: 0, maxEventTime: 0 },
      customers: Array.from(db.getRange({}), ({ key, value }): [string, Uint8Array] => [key, value]),
      structuresFrom: 0,
      structures: meta.get(`structures:${kg}`) as string[][],
    }));
    const snapshot: PartitionSnapshot = { version: 6, keyGroups: DEFAULT_KEY_GROUPS, delta: false, groups };
    exportBytes = codec.encode(snapshot).byteLength;
  });
  // restart: close, reopen, read the sequence and the first customer
  await env.close();
  let reopenedSeq = 0;
  const restartMs = await timed(() => {
    ({ env, dbs, meta } = openEnv(path));
    reopenedSeq = meta.get('seq') as number;
    const { customer, kg } = customerAt(deltaCustomer(0, n), templates);
    new CustomerStore(0, meta.get(`structures:${kg}`) as string[][]).decode(
      dbs[kg]!.getBinaryFast(customer)!,
    );
  });
  if (reopenedSeq !== seq) throw new Error(`lmdb restart read sequence ${reopenedSeq}, wrote ${seq}`);
  const afterRestart = perCustomer(settle(), before, n);
  await env.close();
  return {
    loadMs,
    ...memoryFigures(memory, afterOps),
    rssAfterRestartPerCustomer: afterRestart.rss,
    fileBytes,
    opUs: opAsyncUs,
    opSyncUs,
    fileBytesAtEnd: statSync(join(path, 'data.mdb')).size,
    deltaOpsMs,
    deltaCheckpointMs: deltaCheckpointTotalMs - deltaOpsMs,
    backupMs,
    backupBytes,
    compactMs,
    compactBytes,
    exportMs,
    exportBytes,
    restartMs,
  };
}

async function main(): Promise<void> {
  const positional = process.argv.slice(2).find((a) => /^\d[\d_]*$/.test(a));
  const n =
    positional === undefined
      ? flag('customers', 'BENCH_CUSTOMERS', 1_000_000)
      : Number(positional.replaceAll('_', ''));
  const ops = flag('ops', 'BENCH_OPS', 200_000);
  const child = process.argv.indexOf('--child');
  if (child >= 0) {
    const [backend, templateFile, dir] = process.argv.slice(child + 1);
    const run = backend === 'lmdb' ? lmdbChild : heapChild;
    console.log(JSON.stringify(await run(n, ops, templateFile!, dir!)));
    return;
  }

  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
  const date = new Date().toISOString();
  const dir = mkdtempSync(join(tmpdir(), 'cxstream-bench-backend-'));
  try {
    let t = performance.now();
    const processor = new PartitionProcessor({ partition: 0, rules });
    applyCustomers(processor, TEMPLATES);
    const templateFile = join(dir, 'templates.ckpt');
    writeFileSync(templateFile, codec.encodeCut(processor.snapshotCut()));
    console.error(`templates: ${TEMPLATES} customers in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const figures: Record<string, Figures> = {};
    for (const backend of ['heap', 'lmdb']) {
      t = performance.now();
      const out = execFileSync(
        process.execPath,
        [
          ...process.execArgv,
          process.argv[1]!,
          String(n),
          '--ops',
          String(ops),
          '--child',
          backend,
          templateFile,
          dir,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 },
      );
      figures[backend] = JSON.parse(out.trim().split('\n').at(-1)!) as Figures;
      console.error(
        `${backend}: ${((performance.now() - t) / 1000).toFixed(1)} s ${JSON.stringify(figures[backend])}`,
      );
    }
    const heap = figures.heap!;
    const lmdb = figures.lmdb!;
    const row = (
      name: string,
      h: number | undefined,
      l: number | undefined,
      target = '',
    ): Array<string | number> => [
      name,
      h === undefined ? '' : h,
      l === undefined ? '' : l,
      h === undefined || l === undefined || !(h > 0) ? '' : `${(l / h).toFixed(2)}×`,
      target,
    ];
    const body = [
      `${fmt(n)} customers (4 events each; bytes of 20 000 driven templates), ${DEFAULT_KEY_GROUPS} key groups, ${fmt(ops)} random ops; lmdb ${lmdbVersion()}`,
      '',
      table(
        ['measure', 'heap (bytes in a Map)', 'lmdb', 'lmdb / heap', 'target'],
        [
          row('load N customers (s)', heap.loadMs! / 1000, lmdb.loadMs! / 1000),
          row('heap growth per customer (B)', heap.heapPerCustomer, lmdb.heapPerCustomer),
          row('RSS growth per customer (B)', heap.rssPerCustomer, lmdb.rssPerCustomer, '≤ 1 024'),
          row('  of which anonymous (B)', heap.rssAnonPerCustomer, lmdb.rssAnonPerCustomer),
          row('  of which file pages (B)', heap.rssFilePerCustomer, lmdb.rssFilePerCustomer),
          row(
            'RSS growth per customer after the ops (B)',
            heap.rssAfterOpsPerCustomer,
            lmdb.rssAfterOpsPerCustomer,
          ),
          row('  of which file pages (B)', heap.rssFileAfterOpsPerCustomer, lmdb.rssFileAfterOpsPerCustomer),
          row('lmdb data file per customer after load (B)', undefined, lmdb.fileBytes! / n),
          row('  at the end (B)', undefined, lmdb.fileBytesAtEnd! / n),
          row('cold op: get+decode+encode+put (µs)', heap.opUs, lmdb.opUs, 'low'),
          row('  lmdb, sync txn per 1 000 ops (µs)', heap.opUs, lmdb.opSyncUs),
          row('full checkpoint (s)', heap.fullCheckpointMs! / 1000, lmdb.deltaCheckpointMs! / 1000, '≤ 2'),
          row('  heap: encode (s)', heap.fullEncodeMs! / 1000, undefined),
          row('  heap: durable write (s)', heap.fullWriteMs! / 1000, undefined),
          row('  full snapshot / backup file (MB)', heap.fullBytes! / 1e6, lmdb.backupBytes! / 1e6),
          row('shippable copy: env.backup (s)', heap.fullCheckpointMs! / 1000, lmdb.backupMs! / 1000),
          row('  compacting (s)', heap.fullCheckpointMs! / 1000, lmdb.compactMs! / 1000),
          row('  compacted file (MB)', heap.fullBytes! / 1e6, lmdb.compactBytes! / 1e6),
          row('shippable copy: iterate → format 6 (s)', heap.fullEncodeMs! / 1000, lmdb.exportMs! / 1000),
          row(`${fmt(DELTA)} changed customers: ops (s)`, heap.deltaOpsMs! / 1000, lmdb.deltaOpsMs! / 1000),
          row(
            '  then delta snapshot / commit (s)',
            heap.deltaCheckpointMs! / 1000,
            lmdb.deltaCheckpointMs! / 1000,
          ),
          row('restart to first customer (s)', heap.restartMs! / 1000, lmdb.restartMs! / 1000, '≤ 5'),
        ],
      ),
      '',
      `lmdb full checkpoint = the commit of the changed customers and the sequence (the state is already on disk);`,
      `heap restart = load full + delta, decode, restore; lmdb restart = reopen, read sequence and a customer.`,
      `Shippable copy, heap column: the full checkpoint (its file is what ships); cold op: lmdb async puts, median of ${ROUNDS} slices.`,
      `Node ${process.version}; load average ${load} at start (${date}), ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')} at end (${new Date().toISOString()})`,
    ].join('\n');
    console.log(`\n${body}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function lmdbVersion(): string {
  return (
    JSON.parse(readFileSync(join(import.meta.dirname, '../node_modules/lmdb/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
}

await main();
