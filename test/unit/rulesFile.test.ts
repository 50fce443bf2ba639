import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConfigError, isConfigError } from '../../engine/config/errors.js';
import { loadRules, loadRulesWithWarnings } from '../../engine/config/rulesFile.js';

const dir = mkdtempSync(join(tmpdir(), 'cxstream-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string): string {
  n += 1;
  const path = join(dir, `rules${n}.yaml`);
  writeFileSync(path, text);
  return path;
}

function problems(files: string[]): { file: string; line: number; message: string }[] {
  try {
    loadRules(files);
  } catch (e) {
    if (isConfigError(e)) return (e as ConfigError).problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('loadRules', () => {
  it('returns the rules of all files in order', () => {
    const a = file('rules:\n  - id: a\n    when: event.type == "x"\n');
    const b = file('rules:\n  - id: b\n    cooldown: 10m\n  - id: c\n');
    expect(loadRules([a, b]).map((r) => r.id)).toEqual(['a', 'b', 'c']);
  });

  it('accepts an empty rule list', () => {
    expect(loadRules([file('rules: []\n')])).toEqual([]);
  });

  it('points at the line of a bad CEL expression', () => {
    const f = file(
      [
        'rules:',
        '  - id: ok',
        '    when: event.type == "a"',
        '  - id: broken',
        '    on: [message]',
        '    when: event.type ==',
        '  - id: payload_bad',
        '    payload:',
        '      sku: event.sku',
        '      n: evnt.n',
        '',
      ].join('\n'),
    );
    expect(problems([f])).toEqual([
      { file: f, line: 6, message: expect.stringMatching(/^rules\[1\]\.when: CEL syntax: Unexpected token/) },
      {
        file: f,
        line: 10,
        message: expect.stringMatching(/^rules\[2\]\.payload\.n: CEL: Unknown variable: evnt/),
      },
    ]);
  });

  it('points at the line of an unknown key, in a rule and at the top level', () => {
    const f = file(
      ['rules:', '  - id: a', '    when: "true"', '    cooldwn: 10m', 'rulez: []', ''].join('\n'),
    );
    expect(problems([f])).toEqual([
      { file: f, line: 4, message: 'rules[0].cooldwn: unknown key "cooldwn"' },
      { file: f, line: 5, message: expect.stringContaining('unknown top-level key "rulez"') },
    ]);
  });

  it('points at the line of a bad duration', () => {
    const f = file(
      ['rules:', '  - id: a', '    oncePer: session', '    cooldown: 10 minutes', ''].join('\n'),
    );
    expect(problems([f])).toEqual([
      {
        file: f,
        line: 4,
        message: expect.stringMatching(/^rules\[0\]\.cooldown: must be a duration like "30s"/),
      },
    ]);
  });

  it('points at the duplicate id, in the same file and across files, naming the first', () => {
    const a = file(['rules:', '  - id: a', '  - id: b', '  - id: a', ''].join('\n'));
    const b = file(['# second file', 'rules:', '  - id: c', '  - id: b', ''].join('\n'));
    expect(problems([a, b])).toEqual([
      { file: a, line: 4, message: `duplicate rule id "a" (first defined at ${a}:2)` },
      { file: b, line: 4, message: `duplicate rule id "b" (first defined at ${a}:3)` },
    ]);
  });

  it('reports wrong types, bad ids and bad enum values at their lines', () => {
    const f = file(
      [
        'rules:',
        '  - id: Bad-Id',
        '  - id: b',
        '    priority: high',
        '    oncePer: day',
        '    on: message',
        '    profile: [tier, 3]',
        '  - description: no id',
        '',
      ].join('\n'),
    );
    expect(problems([f])).toEqual([
      { file: f, line: 2, message: expect.stringContaining('rules[0].id: must match [a-z0-9_]+') },
      { file: f, line: 4, message: 'rules[1].priority: must be a number' },
      {
        file: f,
        line: 5,
        message: 'rules[1].oncePer: must be one of: session, purchaseCycle, inactiveSpell',
      },
      { file: f, line: 6, message: 'rules[1].on: must be a list' },
      { file: f, line: 7, message: 'rules[1].profile[1]: must be a string' },
      { file: f, line: 8, message: 'rules[2]: needs "id"' },
    ]);
  });

  it('collects every problem at once: schema errors, CEL errors of the same rule, and other files', () => {
    const a = file(['rules:', '  - id: a', '    priority: high', '    when: event.x ==', ''].join('\n'));
    const b = file(['rules:', '  - id: b', '    crosses: profile.spend >=', ''].join('\n'));
    expect(problems([a, b]).map((p) => `${p.file === a ? 'a' : 'b'}:${p.line}`)).toEqual([
      'a:3',
      'a:4',
      'b:3',
    ]);
  });

  it('reports YAML syntax errors and missing files without stopping at them', () => {
    const bad = file('rules:\n  - id: a\n    when: [unclosed\n');
    const missing = join(dir, 'nope.yaml');
    const ok = file('rules:\n  - id: z\n    cooldown: 5x\n');
    const got = problems([bad, missing, ok]);
    expect(got.map((p) => p.file)).toEqual([bad, missing, ok]);
    expect(got[0]!.line).toBeGreaterThan(0);
    expect(got[1]).toMatchObject({ line: 0, message: expect.stringContaining('cannot read file') });
    expect(got[2]).toMatchObject({ line: 3, message: expect.stringContaining('duration') });
  });

  it('rejects a file without a rules list', () => {
    const f = file('# nothing here\n');
    expect(problems([f])).toEqual([{ file: f, line: 1, message: 'missing the top-level "rules:" list' }]);
  });

  it('formats the error as file:line: message', () => {
    const f = file('rules:\n  - id: a\n    when: nope(\n');
    expect(() => loadRules([f])).toThrow(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: `));
  });
});

describe('loadRules: typos that would silently disable a rule', () => {
  const messages = (body: string) => {
    const f = file(`rules:\n  - id: r\n${body}\n`);
    try {
      loadRulesWithWarnings([f]);
      return [];
    } catch (e) {
      return (e as ConfigError).problems.map((p) => `${p.line}: ${p.message}`);
    }
  };

  it.each([
    [
      '    when: profile.teir == "VIP"',
      'unknown profile field "profile.teir" (did you mean "profile.tier"?)',
    ],
    [
      '    when: profile.spend90 >= 1.0',
      'unknown profile field "profile.spend90" (did you mean "profile.spend90d"?)',
    ],
    ['    on: [sesion_start]', 'unknown event type "sesion_start" (did you mean "session_start"?)'],
    [
      '    absence: { after: add_to_cart, missing: orders, within: 10m }',
      'unknown event type "orders" (did you mean "order"?)',
    ],
    ['    profile: [spnd]', 'unknown profile field "spnd" (did you mean "spend"?)'],
  ])('%s is an error with its line', (body, message) => {
    expect(messages(body)).toEqual([expect.stringMatching(/^3: rules\[0\]\./)]);
    expect(messages(body)[0]).toContain(message);
  });

  it('an unknown event field is a warning: events may carry more fields', () => {
    const f = file('rules:\n  - id: r\n    when: has(event.chanel)\n');
    const { rules, warnings } = loadRulesWithWarnings([f]);
    expect(rules).toHaveLength(1);
    expect(warnings.map((w) => [w.line, w.message])).toEqual([
      [3, expect.stringContaining('unknown event field "event.chanel" (did you mean "event.channel"?)')],
    ]);
  });

  it('custom event types far from the known ones are accepted', () => {
    expect(messages('    on: [refund, loyalty_points]')).toEqual([]);
  });
});
