/**
 * The generated customers of bench/checkpoint.ts and bench/stateBackend.ts: each with a session, two
 * messages and an order (so profile windows, RFM inputs and rule memory are filled).
 */
import type { PartitionProcessor } from '../operators/partitionProcessor.js';

const encoder = new TextEncoder();
export const T0 = Date.parse('2026-11-01T10:00:00+08:00');

/** A JSON event of the benchmark's shape. */
export function eventBytes(seq: number, customer: string, c: number, type: string, ts: number): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      id: `e${seq}`,
      ts,
      customer,
      type,
      channel: 'web',
      session: `s${c}`,
      region: `r${c % 30}`,
      ...(type === 'message' ? { text: 'where is my parcel', sentiment: 0.2, recognized: true } : {}),
      ...(type === 'order' ? { amount: 100 + (c % 900), sku: `sku${c % 500}`, category: 'shoes' } : {}),
    }),
  );
}

/**
 * Applies four events (session start, two messages, an order) to each of customers c0..c{customers-1},
 * 10 000 customers per batch; returns the last sequence used (the first is 1).
 */
export function applyCustomers(processor: PartitionProcessor, customers: number): number {
  let seq = 0;
  const step = 10_000;
  for (let from = 0; from < customers; from += step) {
    const seqs: number[] = [];
    const subjects: string[] = [];
    const payloads: Uint8Array[] = [];
    for (let c = from; c < Math.min(customers, from + step); c++) {
      const customer = `c${c}`;
      const kinds = ['session_start', 'message', 'message', 'order'] as const;
      kinds.forEach((type, k) => {
        seqs.push(++seq);
        subjects.push(`cx.events.web.${type}.${customer}`);
        payloads.push(eventBytes(seq, customer, c, type, T0 + (c % 3600) * 1000 + k * 60_000));
      });
    }
    processor.applyBatch(seqs, subjects, (i) => payloads[i]!, T0);
  }
  return seq;
}
