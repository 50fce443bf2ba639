import { Packr } from 'msgpackr';
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

const codec = new Packr({ useRecords: true });
let est = 0;
function run(name: string, f: () => Uint8Array) {
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    const out = f();
    console.log(JSON.stringify({ name, r, ms: Math.round(performance.now() - t), mb: out.length / 1e6 }));
  }
}
run('current', () => new Uint8Array(codec.pack(processor.snapshot())));
const c2 = new Packr({ useRecords: true });
run('presized', () => {
  const buf = Buffer.allocUnsafeSlow(Math.max(est, 1 << 20));
  c2.useBuffer(buf);
  const out = c2.pack(processor.snapshot());
  est = Math.ceil(out.length * 1.25);
  return out;
});
