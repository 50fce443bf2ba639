import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { ensureSchema } from './sinks/clickhouse.ts';
const dir = mkdtempSync(join(tmpdir(), 'chbench-'));
const conn = createChdbConnection({ path: dir });
const client = createClient({ connection: conn as never });
await ensureSchema(client, 'b');
const N = 200_000, B = 50_000;
const row = (i: number) => ({ partition: i % 4, seq: i, id: `e${i}`, ts: 1704877200000 + i, customer: `c${i % 5000}`, type: 'page_view', channel: 'web', from: '', region: 'east', tz: 'Asia/Shanghai', session: `s${i % 900}`, agent: '', variant: 'A', source: '', amount: null, sku: 'sku-1', category: 'baby', intent: '', sentiment: null, recognized: null, status: '', score: null, text: '你好，我想看看这个' });
const rows = Array.from({ length: N }, (_, i) => row(i));
const cols = Object.keys(rows[0]!);
const time = async (name: string, f: () => Promise<unknown>) => { const t = performance.now(); await f(); console.log(name.padEnd(45), ((performance.now() - t) / 1000).toFixed(2), 's'); };
for (let r = 0; r < 2; r++) {
await time('stringify only', async () => { let n = 0; for (const x of rows) n += JSON.stringify(x).length; });
await time('client.insert JSONEachRow, no settings', async () => { for (let i = 0; i < N; i += B) await client.insert({ table: 'b.events', format: 'JSONEachRow', values: rows.slice(i, i + B) }); });
await time('client.insert JSONEachRow, prebuilt string stream', async () => { for (let i = 0; i < N; i += B) { const s = rows.slice(i, i + B).map((x) => JSON.stringify(x)).join('\n'); const { Readable } = await import('node:stream'); await client.insert({ table: 'b.events', format: 'JSONEachRow', values: Readable.from([s]) }); } });
await time('rawInsert JSONEachRow Buffer', async () => { for (let i = 0; i < N; i += B) { const s = rows.slice(i, i + B).map((x) => JSON.stringify(x)).join('\n'); await conn.chdb.rawInsert({ table: 'b.events', format: 'JSONEachRow', values: Buffer.from(s) }); } });
await time('rawInsert JSONCompactEachRow Buffer', async () => { for (let i = 0; i < N; i += B) { const s = rows.slice(i, i + B).map((x) => JSON.stringify(cols.map((c) => (x as Record<string, unknown>)[c]))).join('\n'); await conn.chdb.rawInsert({ table: 'b.events', format: 'JSONCompactEachRow', columns: cols, values: Buffer.from(s) }); } });
await time('SELECT count', async () => console.log(await (await client.query({ query: 'SELECT count() FROM b.events', format: 'JSONEachRow' })).json()));
}
await client.close(); rmSync(dir, { recursive: true, force: true });
