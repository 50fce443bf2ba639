import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeEvent, MAX_EVENT_BYTES } from '../../operators/decodeEvent.js';
import type { CxEvent } from '../../operators/types.js';

const SUBJECT = 'cx.events.wechat.message.c-000123';
const base = {
  id: 'evt-1',
  ts: 1767225600123,
  customer: 'c-000123',
  type: 'message',
  channel: 'wechat',
};
const full = {
  ...base,
  from: 'customer',
  region: 'shanghai',
  tz: 'Asia/Shanghai',
  session: 's-1',
  agent: 'a-7',
  variant: 'script-b',
  source: 'search',
  orderId: 'o-9',
  sku: 'sku-1',
  category: 'baby',
  text: '我要开发票 invoice please',
  intent: 'invoice',
  status: 'open',
  amount: 199.5,
  sentiment: -0.4,
  score: 2,
  recognized: false,
  ids: { phone: 'h:abc', openid: 'wx-1' },
};

const json = (v: unknown, prefix = '') => new TextEncoder().encode(prefix + JSON.stringify(v));
const ok = (r: CxEvent | string): CxEvent => {
  if (typeof r === 'string') throw new Error(`unexpected reject: ${r}`);
  return r;
};

describe('decodeEvent: accepts', () => {
  it('a msgpack map with every typed field', () => {
    expect(ok(decodeEvent(pack(full), SUBJECT))).toEqual(full);
  });

  it('a msgpack map inside a larger buffer (the worker hands out subarrays)', () => {
    const bytes = pack(base);
    const big = new Uint8Array(bytes.length + 20).fill(0xc1);
    big.set(bytes, 10);
    expect(ok(decodeEvent(big.subarray(10, 10 + bytes.length), SUBJECT))).toEqual(base);
  });

  it('a JSON object, also after whitespace or a UTF-8 BOM', () => {
    expect(ok(decodeEvent(json(full), SUBJECT))).toEqual(full);
    expect(ok(decodeEvent(json(base, ' \n\t\r '), SUBJECT))).toEqual(base);
    expect(ok(decodeEvent(json(base, '\ufeff'), SUBJECT))).toEqual(base);
  });

  it('keeps additional fields', () => {
    const extra = { ...base, campaign: 'spring', nested: { a: [1, 2] }, n: null };
    expect(ok(decodeEvent(pack(extra), SUBJECT))).toEqual(extra);
    expect(ok(decodeEvent(json(extra), SUBJECT))).toEqual(extra);
  });

  it('ts written by msgpack as float64 (msgpackr above 2^32), int64, uint64 or timestamp', () => {
    const f64 = pack(base);
    expect(f64.includes(0xcb)).toBe(true);
    expect(ok(decodeEvent(f64, SUBJECT)).ts).toBe(base.ts);
    const i64 = pack({ ...base, ts: BigInt(base.ts) });
    expect(i64.includes(0xd3) || i64.includes(0xcf)).toBe(true);
    expect(ok(decodeEvent(i64, SUBJECT)).ts).toBe(base.ts);
    // Rewrite ts as uint64 by hand, as encoders like Go's write int64 fields: with ts the last key,
    // its fixint 0 is the last byte.
    const { ts: _, ...rest } = base;
    const head = pack({ ...rest, ts: 0 });
    expect(head[head.length - 1]).toBe(0x00);
    const asU64 = new Uint8Array(head.length + 8);
    asU64.set(head.subarray(0, head.length - 1));
    asU64[head.length - 1] = 0xcf;
    new DataView(asU64.buffer).setBigUint64(head.length, BigInt(base.ts));
    expect(ok(decodeEvent(asU64, SUBJECT)).ts).toBe(base.ts);
    expect(ok(decodeEvent(pack({ ...base, ts: new Date(base.ts) }), SUBJECT)).ts).toBe(base.ts);
  });

  it('null in an optional field as absent', () => {
    const r = ok(decodeEvent(json({ ...base, region: null, sentiment: null, extra: null }), SUBJECT));
    expect(r).toEqual({ ...base, extra: null });
    expect('region' in r).toBe(false);
  });

  it('a payload of exactly MAX_EVENT_BYTES', () => {
    const withText = json({ ...base, text: '' });
    const text = 'x'.repeat(MAX_EVENT_BYTES - withText.length);
    const bytes = json({ ...base, text });
    expect(bytes.length).toBe(MAX_EVENT_BYTES);
    expect(ok(decodeEvent(bytes, SUBJECT)).text).toBe(text);
  });

  it('a subject that is only the customer token', () => {
    expect(ok(decodeEvent(pack(base), 'c-000123'))).toEqual(base);
  });
});

describe('decodeEvent: rejects', () => {
  const reject = (bytes: Uint8Array, subject = SUBJECT): string => {
    const r = decodeEvent(bytes, subject);
    if (typeof r !== 'string') throw new Error(`expected a reject, got ${JSON.stringify(r)}`);
    return r;
  };

  it('payloads larger than MAX_EVENT_BYTES, unread', () => {
    expect(MAX_EVENT_BYTES).toBe(262144);
    const bytes = new Uint8Array(MAX_EVENT_BYTES + 1).fill(0x20);
    bytes[0] = 0x7b;
    expect(reject(bytes)).toBe('payload too large: 262145 bytes (max 262144)');
  });

  it('empty payloads', () => {
    expect(reject(new Uint8Array(0))).toBe('empty payload');
    expect(reject(new TextEncoder().encode(' \n '))).toBe('empty payload');
  });

  it('anything that is not a msgpack map or a JSON object', () => {
    const notObject = 'not a msgpack map or JSON object';
    expect(reject(pack([base]))).toBe(notObject);
    expect(reject(pack('text'))).toBe(notObject);
    expect(reject(json([base]))).toBe(notObject);
    expect(reject(json('{"a":1}'))).toBe(notObject);
    expect(reject(new TextEncoder().encode('null'))).toBe(notObject);
    // Whitespace bytes are msgpack integers: a map after them is not a single msgpack map.
    expect(reject(Uint8Array.of(0x20, ...pack(base)))).toBe(notObject);
  });

  it('invalid JSON, with the parser message on one line', () => {
    const r = reject(new TextEncoder().encode('{"id": "e1",\n "ts": }'));
    expect(r).toMatch(/^invalid JSON: \S/);
    expect(r).not.toMatch(/[\r\n]/);
    expect(reject(new TextEncoder().encode(`{"a": 1} {"b": 2}`))).toMatch(/^invalid JSON: /);
    expect(reject(Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d))).toBe(
      'invalid JSON: not valid UTF-8',
    );
  });

  it('masks personal data the parser quotes from a broken event', () => {
    // V8 quotes a short input whole, a longer one around the error: not as sent in the reason
    const phone = reject(new TextEncoder().encode('{"t": 我13812345678}'));
    expect(phone).toMatch(/^invalid JSON: Unexpected token/);
    expect(phone).toContain('我138****5678');
    expect(phone).not.toContain('13812345678');
    const name = reject(new TextEncoder().encode('{"t": 我叫张三}'));
    expect(name).toContain('我叫张*');
    expect(name).not.toContain('张三');
  });

  it('invalid msgpack, and decodes normally afterwards', () => {
    const bytes = pack(base);
    expect(reject(bytes.subarray(0, bytes.length - 3))).toMatch(/^invalid msgpack: /);
    expect(reject(Uint8Array.of(...bytes, 0x01))).toMatch(/^invalid msgpack: .*end of buffer not reached/);
    expect(ok(decodeEvent(bytes, SUBJECT))).toEqual(base);
  });

  it('each missing required field', () => {
    for (const field of ['id', 'ts', 'customer', 'type', 'channel'] as const) {
      const { [field]: _, ...rest } = base;
      expect(reject(pack(rest))).toBe(`schema: /${field} is required`);
    }
  });

  it('empty or mistyped required fields', () => {
    expect(reject(pack({ ...base, id: '' }))).toBe('schema: /id must not be empty');
    expect(reject(pack({ ...base, id: 7 }))).toBe('schema: /id must be string');
    expect(reject(json({ ...base, id: null }))).toBe('schema: /id must be string');
    expect(reject(json({ ...base, customer: '' }), 'cx.events.x.y.')).toBe(
      'schema: /customer must not be empty',
    );
    expect(reject(pack({ ...base, type: '' }))).toBe('schema: /type must not be empty');
    expect(reject(pack({ ...base, channel: '' }))).toBe('schema: /channel must not be empty');
    expect(reject(pack({ ...base, channel: ['web'] }))).toBe('schema: /channel must be string');
  });

  it('a ts that is not a positive integer ms in the Date range', () => {
    expect(reject(json({ ...base, ts: '1767225600123' }))).toBe('schema: /ts must be integer');
    expect(reject(json({ ...base, ts: 1767225600123.5 }))).toBe('schema: /ts must be integer');
    expect(reject(json({ ...base, ts: 0 }))).toBe('schema: /ts must be > 0');
    expect(reject(json({ ...base, ts: -5 }))).toBe('schema: /ts must be > 0');
    expect(reject(pack({ ...base, ts: Number.NaN }))).toBe('schema: /ts must be integer');
    expect(reject(pack({ ...base, ts: 2n ** 63n - 1n }))).toBe('schema: /ts must be <= 8640000000000000');
    expect(reject(pack({ ...base, ts: new Date(Number.NaN) }))).toMatch(/^(schema: \/ts|invalid msgpack)/);
  });

  it('a ts before minTs, with a hint when it reads as epoch seconds', () => {
    const minTs = Date.UTC(2000, 0, 1);
    const seconds = 1_767_225_600; // 2026-01-01 in seconds
    expect(decodeEvent(pack({ ...base, ts: seconds }), SUBJECT, { minTs })).toBe(
      'ts 1767225600 is before 2000-01-01T00:00:00.000Z (engine.minEventTime); it looks like epoch seconds ' +
        '(2026-01-01T00:00:00.000Z): send epoch milliseconds, 1767225600000',
    );
    // a 1990 ms timestamp is not seconds of anything plausible: no hint to multiply
    expect(decodeEvent(json({ ...base, ts: Date.UTC(1990, 0, 1) }), SUBJECT, { minTs })).toBe(
      'ts 631152000000 is before 2000-01-01T00:00:00.000Z (engine.minEventTime); ts must be epoch milliseconds',
    );
    expect(ok(decodeEvent(pack(base), SUBJECT, { minTs })).ts).toBe(base.ts);
    expect(ok(decodeEvent(pack({ ...base, ts: minTs }), SUBJECT, { minTs })).ts).toBe(minTs);
    // without the option any positive ts is accepted (tests and tools that use small clocks)
    expect(ok(decodeEvent(pack({ ...base, ts: seconds }), SUBJECT)).ts).toBe(seconds);
  });

  it('mistyped optional fields', () => {
    expect(reject(pack({ ...base, region: 5 }))).toBe('schema: /region must be string');
    expect(reject(pack({ ...base, text: { t: 'x' } }))).toBe('schema: /text must be string');
    expect(reject(json({ ...base, amount: '12.5' }))).toBe('schema: /amount must be number');
    expect(reject(pack({ ...base, amount: Number.POSITIVE_INFINITY }))).toBe(
      'schema: /amount must be number',
    );
    expect(reject(json({ ...base, sentiment: 1.5 }))).toBe('schema: /sentiment must be <= 1');
    expect(reject(json({ ...base, sentiment: -1.01 }))).toBe('schema: /sentiment must be >= -1');
    expect(reject(json({ ...base, score: true }))).toBe('schema: /score must be number');
    expect(reject(json({ ...base, recognized: 'yes' }))).toBe('schema: /recognized must be boolean');
    expect(reject(json({ ...base, ids: 'h:abc' }))).toBe('schema: /ids must be object');
    expect(reject(json({ ...base, ids: { phone: 1 } }))).toBe('schema: /ids/phone must be string');
    expect(reject(json({ ...base, region: null, tz: 8 }))).toBe('schema: /tz must be string');
  });

  it('a customer that does not match the subject token', () => {
    expect(reject(pack(base), 'cx.events.wechat.message.c-999')).toBe(
      'customer "c-000123" does not match subject token "c-999"',
    );
    expect(reject(pack(base), 'cx.events.wechat.message.c-000123.x')).toBe(
      'customer "c-000123" does not match subject token "x"',
    );
  });

  it('keeps reasons short and on one line for the Cx-Error header', () => {
    const customer = `c\n${'x'.repeat(1000)}`;
    const r = reject(json({ ...base, customer }), SUBJECT);
    expect(r).toMatch(/^customer "c\\nx+…" does not match subject token "c-000123"$/);
    expect(r.length).toBeLessThan(120);
    const bad = reject(new TextEncoder().encode(`{"text": "${'y'.repeat(5000)}\n`));
    expect(bad).toMatch(/^invalid JSON: /);
    expect(bad.length).toBeLessThanOrEqual(300);
    expect(bad).not.toMatch(/[\r\n]/);
  });
});
