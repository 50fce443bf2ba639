/**
 * The `privacy` settings: which fields are masked by which kind in rows, trigger payloads and
 * profiles, the per-subject allowances, and the config errors for settings that cannot work.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig } from '../../engine/config/config.js';
import { isConfigError } from '../../engine/config/errors.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import { DEFAULT_MASK_FIELDS, PrivacyPolicy } from '../../operators/privacy.js';
import type { RuleSpec } from '../../operators/rules.js';
import type { CxEvent, EventRow } from '../../operators/types.js';
import { eventRow } from '../harness/eventRows.js';

const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);

function ev(extra: Partial<CxEvent> & Record<string, unknown> = {}): CxEvent {
  return { id: 'e1', ts: T0, customer: 'c1', type: 'message', channel: 'wechat', ...extra };
}

const row = (fields: Partial<EventRow>) => eventRow('c1', 'message', T0, fields);

describe('PrivacyPolicy: event rows', () => {
  it('masks text by default, and every listed column by its kind', () => {
    expect(
      new PrivacyPolicy().row(row({ text: '我叫张三 13812345678', session: 's-13812345678' })),
    ).toMatchObject({ text: '我叫张* 138****5678', session: 's-13812345678' });
    const policy = new PrivacyPolicy({ maskFields: ['text', 'session:phone', 'agent:name', 'ticketId'] });
    expect(
      policy.row(row({ text: 'hi', session: '13812345678', agent: '李小龙', ticket_id: 'T 13912345678' })),
    ).toMatchObject({ text: 'hi', session: '138****5678', agent: '李**', ticket_id: 'T 139****5678' });
  });

  it('leaves text as sent when the list leaves it out', () => {
    expect(new PrivacyPolicy({ maskFields: ['phone'] }).row(row({ text: '13812345678' })).text).toBe(
      '13812345678',
    );
  });
});

describe('PrivacyPolicy: what payload expressions see', () => {
  const policy = new PrivacyPolicy();

  it('masks listed fields by kind, other free-form fields as text, and leaves envelope codes', () => {
    const event = ev({
      text: '我叫张三',
      name: '张三',
      phone: '13812345678',
      email: 'zhang.san@example.com',
      address: '北京市朝阳区建国路88号',
      remark: '收货人：李四，电话010-87654321',
      mobile: '+86 139 1234 5678', // an extra field nobody listed: still text-masked
      ids: { phone: '13812345678', wechat: 'oX8abc' },
      sku: 'SKU-13812345678', // an envelope code: as sent unless listed
      orderId: 'SO20241101',
      session: 's1',
    });
    expect(policy.payloadEvent(event)).toEqual({
      ...event,
      text: '我叫张*',
      name: '张*',
      phone: '138****5678',
      email: 'z***@example.com',
      address: '北京市朝阳区******',
      remark: '收货人：李*，电话010-****4321',
      mobile: '+86 139****5678',
      ids: { phone: '138****5678', wechat: 'oX8abc' },
    });
    expect(event.phone).toBe('13812345678'); // the event itself is not touched
  });

  it('walks nested values: a listed key takes its kind, numbers are masked as digits, bytes are dropped', () => {
    const event = ev({
      attrs: { contact: { name: '王小明', phone: 13812345678 }, note: 'call 13912345678', count: 3 },
      phone: [13812345678, '010-12345678'],
      blob: new Uint8Array([1, 2, 3]),
      deep: { a: { b: { c: { d: { e: { f: { g: { h: { i: 'x' } } } } } } } } },
    });
    const seen = policy.payloadEvent(event) as Record<string, unknown>;
    expect(seen.attrs).toEqual({
      contact: { name: '王**', phone: '138****5678' },
      note: 'call 139****5678',
      count: 3,
    });
    expect(seen.phone).toEqual(['138****5678', '010-****5678']);
    expect(seen.blob).toBeNull();
    expect(JSON.stringify(seen.deep)).toBe('{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":null}}}}}}}}');
  });

  it('returns the very event when nothing in it needs masking', () => {
    const event = ev({ text: '你好', sku: 'S1', amount: 12 });
    expect(policy.payloadEvent(event)).toBe(event);
  });

  it('keeps the one field a payload entry asks for by name, and only where allowed', () => {
    const allowing = new PrivacyPolicy({ unmaskedPayload: ['cx.triggers.callback:phone'] });
    const event = ev({ phone: '13812345678', name: '张三' });
    expect(allowing.unmaskedIn('cx.triggers.callback', 'phone')).toBe(true);
    expect(allowing.unmaskedIn('cx.triggers.other', 'phone')).toBe(false);
    expect(allowing.unmaskedIn('cx.triggers.callback', 'name')).toBe(false);
    expect(allowing.payloadEvent(event, 'phone')).toMatchObject({ phone: '13812345678', name: '张*' });
  });
});

describe('PrivacyPolicy: profiles', () => {
  const profile = {
    customer: 'c1',
    region: '上海市 13812345678',
    session: 's-13812345678',
    lastOrderId: 'SO-13812345678',
    categoryViews30d: { 'baby 13812345678': 2, 'baby 13812349999': 1, toys: 4 },
    tags: ['region:上海市 13812345678', 'likes:baby 13812345678', 'tier:VIP'],
    tier: 'VIP' as const,
  };

  it('passes the profile as it is by default: it copies no listed field', () => {
    expect(new PrivacyPolicy().profile(profile)).toBe(profile);
  });

  it('masks the fields and tags copied from listed fields', () => {
    const policy = new PrivacyPolicy({
      maskFields: [...DEFAULT_MASK_FIELDS, 'region', 'session', 'orderId', 'category'],
    });
    expect(policy.profile(profile)).toEqual({
      customer: 'c1',
      region: '上海市 138****5678',
      session: 's-138****5678',
      lastOrderId: 'SO-138****5678',
      categoryViews30d: { 'baby 138****5678': 2, 'baby 138****9999': 1, toys: 4 },
      tags: ['region:上海市 138****5678', 'likes:baby 138****5678', 'tier:VIP'],
      tier: 'VIP',
    });
  });
});

describe('PrivacyPolicy through the partition processor', () => {
  const rules: RuleSpec[] = [
    {
      id: 'callback',
      on: ['message'],
      // the condition reads the number as sent: masking is about what leaves
      when: 'has(event.phone) && event.phone.startsWith("138")',
      payload: {
        phone: 'event.phone',
        name: 'event.name',
        summary: 'event.name + " " + event.phone',
        text: 'event.text',
        orderId: 'event.orderId',
      },
      profile: ['region', 'tags'],
    },
  ];

  function run(privacy?: ConstructorParameters<typeof PrivacyPolicy>[0]) {
    const p = new PartitionProcessor({ partition: 0, rules, ...(privacy && { privacy }) });
    const e = ev({
      phone: '13812345678',
      name: '张三',
      text: '我叫张三，电话13812345678',
      orderId: 'SO20241101',
      region: '上海市 13912345678',
    });
    return p.applyBatch([1], ['cx.events.wechat.message.c1'], () => pack(e), T0);
  }

  it('masks payload inputs and keeps codes; the row and profile carry no personal data', () => {
    const out = run();
    expect(out.triggers).toHaveLength(1);
    expect(out.triggers[0]!.payload).toEqual({
      phone: '138****5678',
      name: '张*',
      summary: '张* 138****5678',
      text: '我叫张*，电话138****5678',
      orderId: 'SO20241101',
    });
    expect(out.events[0]!.text).toBe('我叫张*，电话138****5678');
    // region is an envelope code, not listed: as sent
    expect(out.triggers[0]!.profile.region).toBe('上海市 13912345678');
    expect(out.profiles[0]!.profile).not.toContain('13812345678');
  });

  it('carries the field a payload entry names when the subject allows it, and nothing else', () => {
    const out = run({ unmaskedPayload: ['cx.triggers.callback:phone'] });
    expect(out.triggers[0]!.payload).toMatchObject({
      phone: '13812345678',
      name: '张*',
      summary: '张* 138****5678',
      text: '我叫张*，电话138****5678',
    });
    expect(run({ unmaskedPayload: ['cx.triggers.other:phone'] }).triggers[0]!.payload.phone).toBe(
      '138****5678',
    );
  });

  it('masks a listed code field in the row, the payload profile and the published profile', () => {
    const out = run({ maskFields: [...DEFAULT_MASK_FIELDS, 'region'] });
    expect(out.events[0]!.region).toBe('上海市 139****5678');
    expect(out.triggers[0]!.profile.region).toBe('上海市 139****5678');
    expect(out.triggers[0]!.profile.tags).toContain('region:上海市 139****5678');
    const published = JSON.parse(out.profiles[0]!.profile);
    expect(published.region).toBe('上海市 139****5678');
    expect(out.profiles[0]!.tags).toContain('region:上海市 139****5678');
    expect(out.profiles[0]!.profile).not.toContain('13912345678');
  });
});

describe('privacy config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxstream-privacy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const file = (text: string) => {
    const path = join(dir, `c${n++}.yaml`);
    writeFileSync(path, text);
    return path;
  };
  const problems = (fn: () => unknown): string[] => {
    try {
      fn();
    } catch (e) {
      if (isConfigError(e)) return e.problems.map((p) => `${p.file}:${p.line}: ${p.message}`);
      throw e;
    }
    throw new Error('expected a ConfigError');
  };

  it('defaults to the six fields and no allowances', () => {
    expect(defaultConfig().privacy).toEqual({
      maskFields: ['text', 'name', 'phone', 'email', 'address', 'remark'],
      unmaskedPayload: [],
    });
  });

  it('accepts extra fields with a kind, and allowances for listed or free-form fields', () => {
    const config = loadConfig(
      file(
        [
          'privacy:',
          '  maskFields: [text, phone, mobile:phone, receiver:name, region]',
          '  unmaskedPayload: [cx.triggers.callback:mobile, cx.triggers.callback:region, cx.triggers.x:wechat]',
        ].join('\n'),
      ),
      {},
    );
    expect(config.privacy.maskFields).toContain('mobile:phone');
    expect(() => new PrivacyPolicy(config.privacy)).not.toThrow();
  });

  it('names file and line of each bad item', () => {
    const path = file(
      [
        'privacy:',
        '  maskFields:',
        '    - text',
        '    - phone',
        '    - customer',
        '    - mobile:telephone',
        '    - e-mail',
        '    - amount',
        '    - text:name',
        '  unmaskedPayload:',
        '    - cx.triggers.callback:phone',
        '    - phone',
        '    - cx.triggers.callback:sku',
        '    - cx.triggers.callback:phone',
      ].join('\n'),
    );
    expect(problems(() => loadConfig(path, {}))).toEqual([
      `${path}:6: privacy.maskFields.3 must be a field name, optionally with its kind (:text, :name, :phone, :email, :address) (got "mobile:telephone")`,
      `${path}:7: privacy.maskFields.4 must be a field name, optionally with its kind (:text, :name, :phone, :email, :address) (got "e-mail")`,
      `${path}:12: privacy.unmaskedPayload.1 must be SUBJECT:FIELD, e.g. cx.triggers.callback_request:phone (got "phone")`,
    ]);
    const shapely = file(
      [
        'privacy:',
        '  maskFields:',
        '    - text',
        '    - customer',
        '    - amount',
        '    - text:name',
        '  unmaskedPayload:',
        '    - cx.triggers.callback:text',
        '    - cx.triggers.callback:sku',
        '    - cx.triggers.callback:text',
      ].join('\n'),
    );
    expect(problems(() => loadConfig(shapely, {}))).toEqual([
      `${shapely}:4: privacy.maskFields[1]: customer cannot be masked: the customer key routes events and names profiles and triggers; publish a pseudonymous key (a hash) instead`,
      `${shapely}:5: privacy.maskFields[2]: amount cannot be masked: it is a number`,
      `${shapely}:6: privacy.maskFields[3]: text is listed twice (also item 0)`,
      `${shapely}:9: privacy.unmaskedPayload[1]: sku is never masked (it is not in privacy.maskFields): nothing to allow`,
      `${shapely}:10: privacy.unmaskedPayload[2]: cx.triggers.callback:text is listed twice`,
    ]);
  });

  it('takes the lists from the environment, comma separated, and names the variable in errors', () => {
    const config = loadConfig(file('{}\n'), { CXSTREAM_PRIVACY_MASK_FIELDS: 'text, phone, wechatName:name' });
    expect(config.privacy.maskFields).toEqual(['text', 'phone', 'wechatName:name']);
    expect(problems(() => loadConfig(file('{}\n'), { CXSTREAM_PRIVACY_MASK_FIELDS: 'text,id' }))).toEqual([
      'environment:0: CXSTREAM_PRIVACY_MASK_FIELDS: id cannot be masked: the event id makes trigger ids and de-duplication work',
    ]);
    expect(
      problems(() =>
        loadConfig(file('{}\n'), { CXSTREAM_PRIVACY_UNMASKED_PAYLOAD: 'cx.triggers.a:phone,bad' }),
      ),
    ).toEqual([
      'environment:0: CXSTREAM_PRIVACY_UNMASKED_PAYLOAD=cx.triggers.a:phone,bad must be SUBJECT:FIELD, e.g. cx.triggers.callback_request:phone (privacy.unmaskedPayload)',
    ]);
  });

  it('refuses a policy built from bad settings outside the config too', () => {
    expect(() => new PrivacyPolicy({ maskFields: ['ts'] })).toThrow(
      'privacy.maskFields[0]: ts cannot be masked',
    );
  });
});
