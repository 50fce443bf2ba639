import { describe, expect, it } from 'vitest';
import type { EventRow } from '../../operators/types.js';
import { EVENT_COLUMNS, encodeEventRows, encodeRows } from '../../sinks/clickhouseRows.js';

const base: EventRow = {
  id: 'e1',
  ts: 1_700_000_000_123,
  customer: 'c1',
  type: 'message',
  channel: 'app',
  from: 'customer',
  region: 'east',
  tz: 'Asia/Shanghai',
  session: 's1',
  agent: '',
  variant: 'script_a',
  source: '',
  amount: null,
  sku: '',
  category: '',
  intent: 'invoice',
  sentiment: -0.25,
  recognized: false,
  status: '',
  score: null,
  text: 'quote " backslash \\ newline \n tab \t 发票 \u0001',
  local_hour: 6,
  ticket_id: 't-1',
  partition: 1,
  seq: 42,
};

describe('encodeEventRows', () => {
  it('writes exactly what the generic encoder writes, in both formats', () => {
    const rows: EventRow[] = [
      base,
      { ...base, id: 'e2', amount: 1200.5, recognized: null, sentiment: null, text: '', score: 5 },
      { ...base, id: 'e3', recognized: true, customer: 'c-"odd"' },
    ];
    for (const format of ['JSONCompactEachRow', 'JSONEachRow'] as const) {
      const fast = encodeEventRows(rows, format);
      const generic = encodeRows(rows as unknown as Record<string, unknown>[], EVENT_COLUMNS, format);
      expect(fast).toEqual(generic);
    }
  });
});

describe('encodeRows', () => {
  it('writes one JSON line per row as UTF-8, also when the rows outgrow the first buffer', () => {
    // 256 bytes per row are reserved up front; these rows are ~10 kB of mostly 3-byte characters.
    const long = '发票'.repeat(1500);
    const rows = Array.from({ length: 5 }, (_, i) => ({ customer: `c${i}`, text: `${i}${long}` }));
    const encoded = encodeRows(rows, ['customer', 'missing', 'text'], 'JSONCompactEachRow');
    expect(encoded.length).toBe(5);
    const lines = new TextDecoder().decode(encoded.bytes).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => JSON.parse(l))).toEqual(rows.map((r) => [r.customer, null, r.text]));
    expect(encodeRows([], ['customer'], 'JSONEachRow').bytes.byteLength).toBe(0);
  });
});
