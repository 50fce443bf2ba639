import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr, pack } from 'msgpackr';
import { loadRules } from '/work/main/engine/rulesFile.js';
import { PartitionProcessor } from '/work/main/operators/partitionProcessor.js';
const customers = Number(process.argv[2] ?? 20000);
const rules = loadRules(['/work/main/config/rules.yaml']);
const encoder = new TextEncoder();
const T0 = Date.parse('2026-11-01T10:00:00+08:00');
const processor = new PartitionProcessor({ partition: 0, rules });
let seq = 0;
for (let from = 0; from < customers; from += 10000) {
  const seqs: number[] = []; const subjects: string[] = []; const payloads: Uint8Array[] = [];
  for (let c = from; c < Math.min(customers, from + 10000); c++) {
    const customer = `c${c}`;
    (['session_start', 'message', 'message', 'order'] as const).forEach((type, k) => {
      seqs.push(++seq); subjects.push(`cx.events.web.${type}.${customer}`);
      payloads.push(encoder.encode(JSON.stringify({ id: `e${seq}`, ts: T0 + (c % 3600) * 1000 + k * 60_000, customer, type, channel: 'web', session: `s${c}`, region: `r${c % 30}`,
        ...(type === 'message' ? { text: 'where is my parcel', sentiment: 0.2, recognized: true } : {}),
        ...(type === 'order' ? { amount: 100 + (c % 900), sku: `sku${c % 500}`, category: 'shoes' } : {}) })));
    });
  }
  processor.applyBatch(seqs, subjects, (i) => payloads[i]!, T0);
}
const snap = processor.snapshot();
console.log(JSON.stringify(snap.customers[5]![1]).slice(0, 3000));
const session = new Session(); session.connect();
await session.post('Profiler.enable'); await session.post('Profiler.start');
let t = performance.now();
const a = new Packr({ useRecords: true }).pack(snap);
console.log('records', performance.now() - t, a.length);
t = performance.now();
const b = pack(snap);
console.log('plain', performance.now() - t, b.length);
t = performance.now();
const c = Buffer.from(JSON.stringify(snap));
console.log('json', performance.now() - t, c.length);
const { profile } = await session.post('Profiler.stop');
writeFileSync('/tmp/i4/enc.cpuprofile', JSON.stringify(profile));
