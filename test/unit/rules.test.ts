import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../operators/duration.js';
import { newCustomerState } from '../../operators/profile.js';
import {
  type CustomerScope,
  isRuleCompileError,
  RuleCompileError,
  type RuleMemory,
  type RuleRun,
  type RuleSet,
  type RuleSpec,
  ruleSetOf,
} from '../../operators/rules.js';
import { TimerQueue } from '../../operators/timers.js';
import type { CxEvent, Trigger } from '../../operators/types.js';
import { scopeOf, setScope } from '../harness/ruleScope.js';

const MIN = 60_000;
const T0 = Date.UTC(2024, 4, 1, 12);
let seq = 0;

function ev(fields: Partial<CxEvent> = {}): CxEvent {
  seq += 1;
  return { id: `e${seq}`, ts: T0, customer: 'c1', type: 'message', channel: 'web', ...fields };
}

/** One evaluation of `set` for customer c1 with `memory` (no timers come due here). */
function evaluate(
  set: RuleSet,
  event: CxEvent,
  profile: Record<string, unknown>,
  memory: RuleMemory,
  firedAt = 42,
) {
  const run: RuleRun = {
    queue: new TimerQueue(),
    watermark: Number.NEGATIVE_INFINITY,
    firedAt,
    defaultTz: 'Asia/Shanghai',
    triggers: [],
    counters: { droppedByCap: 0, droppedByQuietHours: 0, deferred: 0 },
  };
  set.evaluate(event, profile, scopeOf(memory), run);
  return run.triggers;
}

/** Compiles specs and returns a runner that keeps one customer's memory, like a worker does. */
function harness(specs: RuleSpec[]) {
  const set = ruleSetOf(specs);
  const memory: RuleMemory = {};
  const run = (event: CxEvent, profile: Record<string, unknown> = {}): Trigger[] =>
    evaluate(set, event, profile, memory);
  const fired = (event: CxEvent, profile?: Record<string, unknown>) => run(event, profile).map((t) => t.rule);
  return { set, memory, run, fired };
}

function compileError(specs: unknown[]): RuleCompileError {
  try {
    ruleSetOf(specs as RuleSpec[]);
  } catch (e) {
    if (isRuleCompileError(e)) return e;
    throw e;
  }
  throw new Error('expected a RuleCompileError');
}

describe('parseDuration', () => {
  it('reads the units and concatenations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(10 * MIN);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h30m')).toBe(90 * MIN);
    expect(parseDuration('1.5h')).toBe(90 * MIN);
  });

  it.each(['', '10', 'm', '10 m', '10min', '-5m', '10m ', ' 10m', '1y', '1h-30m'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/not a duration/);
  });
});

describe('compileRules errors', () => {
  it('reports the rule index and the path inside the rule', () => {
    const e = compileError([{ id: 'ok' }, { id: 'bad', when: 'event.type ==' }]);
    expect(e).toBeInstanceOf(RuleCompileError);
    expect(e.index).toBe(1);
    expect(e.path).toEqual(['when']);
    expect(e.message).toMatch(/^rules\[1\]\.when: CEL syntax: /);
  });

  it('collects every issue, including payload entries, unknown variables and type errors', () => {
    const e = compileError([
      { id: 'a', when: 'evnt.type == "x"' },
      { id: 'b', crosses: '1 + "a" == 2', payload: { n: 'event.sku +' } },
      { id: 'c', when: 'event.sku == "x"', cooldown: '10 minutes', oncePer: 'day', colour: 'red' },
      { id: 'Bad-Id' },
      { id: 'a' },
      { id: 'd', per: 'event.sku' },
      { id: 'e', when: 'size(event.text)' },
    ]);
    const got = e.issues.map((i) => [i.index, i.path.join('.'), i.message]);
    expect(got).toEqual([
      [0, 'when', expect.stringContaining('Unknown variable: evnt')],
      [1, 'payload.n', expect.stringContaining('CEL syntax')],
      [1, 'crosses', expect.stringContaining('no such overload')],
      [2, 'colour', 'unknown key "colour"'],
      [2, 'cooldown', expect.stringContaining('must be a duration like "30s"')],
      [2, 'oncePer', 'must be one of: session, purchaseCycle, inactiveSpell'],
      [3, 'id', 'must match [a-z0-9_]+ (lower-case letters, digits, _)'],
      [4, 'id', 'duplicate rule id "a"'],
      [5, 'per', expect.stringContaining('per needs a cooldown')],
      [6, 'when', 'must be a boolean condition, this gives int'],
    ]);
  });

  it('rejects a subject with wildcards or spaces', () => {
    expect(compileError([{ id: 'a', subject: 'cx.triggers.>' }]).path).toEqual(['subject']);
    expect(compileError([{ id: 'a', subject: 'cx triggers' }]).path).toEqual(['subject']);
  });
});

describe('RuleSet.evaluate', () => {
  it('builds the trigger: deterministic id, times, reason, priority + rfm, payload, profile snapshot', () => {
    const { run } = harness([
      {
        id: 'r1',
        description: 'Something happened',
        priority: 50,
        payload: { sku: 'event.sku', len: 'size(event.text)', at: 'now', list: '[1, 2]', bad: 'event.nope' },
        profile: ['tier', 'rfm', 'sentimentAvg'],
      },
      { id: 'r2' },
    ]);
    const rfm = { r: 10, f: 1, m: 2, score: 4.9 };
    const profile = { tier: 'VIP', rfm, spend: 3000 };
    const out = run(ev({ id: 'x9', ts: T0 + 5, sku: 'S1', text: 'hello' }), profile);
    expect(out).toEqual([
      {
        id: 'r1:c1:x9',
        rule: 'r1',
        customer: 'c1',
        firedAt: 42,
        eventTime: T0 + 5,
        reason: 'Something happened',
        priority: 54.9,
        payload: { sku: 'S1', len: 5, at: T0 + 5, list: [1, 2], bad: null },
        profile: { tier: 'VIP', rfm: { r: 10, f: 1, m: 2, score: 4.9 }, sentimentAvg: null },
        subject: 'cx.triggers.r1',
      },
      expect.objectContaining({ id: 'r2:c1:x9', reason: 'r2', priority: 4.9, payload: {}, profile: {} }),
    ]);
    // The snapshot is a copy: later profile updates must not change a trigger already emitted.
    rfm.score = 9;
    expect(out[0]!.profile.rfm).toEqual({ r: 10, f: 1, m: 2, score: 4.9 });
  });

  it('only looks at rules listening to the event type; rules without `on` see every type', () => {
    const { fired } = harness([
      { id: 'orders', on: ['order'] },
      { id: 'contacts', on: ['call', 'message'] },
      { id: 'all' },
    ]);
    expect(fired(ev({ type: 'order' }))).toEqual(['orders', 'all']);
    expect(fired(ev({ type: 'call' }))).toEqual(['contacts', 'all']);
    expect(fired(ev({ type: 'page_view' }))).toEqual(['all']);
  });

  it('emits in priority order (file order on ties) and uses the custom subject', () => {
    const { run } = harness([
      { id: 'low', priority: 1 },
      { id: 'high', priority: 9, subject: 'ops.alerts.high' },
      { id: 'low2', priority: 1 },
    ]);
    const out = run(ev());
    expect(out.map((t) => t.rule)).toEqual(['high', 'low', 'low2']);
    expect(out[0]!.subject).toBe('ops.alerts.high');
  });

  it('counts conditions that throw (missing key) as false and reports them per rule', () => {
    const { set, fired } = harness([{ id: 'careless', when: 'event.intent == "anger"' }]);
    expect(fired(ev())).toEqual([]);
    expect(fired(ev())).toEqual([]);
    expect(set.errors.get('careless')?.count).toBe(2);
    expect(fired(ev({ intent: 'anger' }))).toEqual(['careless']);
    expect(set.errors.get('careless')?.count).toBe(2);
  });

  it('masks the first error message it keeps for the log: CEL may quote the value', () => {
    const { set, fired } = harness([{ id: 'wait', when: 'duration(event.intent) > duration("1m")' }]);
    expect(fired(ev({ intent: 'call 13812345678' }))).toEqual([]);
    const first = set.errors.get('wait')?.first;
    expect(first).toContain('138****5678');
    expect(first).not.toContain('13812345678');
  });

  it('gives `now` the event time', () => {
    const { fired } = harness([{ id: 'r', when: `now == ${T0 + 7}.0` }]);
    expect(fired(ev({ ts: T0 + 7 }))).toEqual(['r']);
    expect(fired(ev({ ts: T0 + 8 }))).toEqual([]);
  });

  it('keeps memory plain data (survives a JSON round trip, as in a checkpoint)', () => {
    const specs: RuleSpec[] = [
      { id: 'cool', cooldown: '10m', per: 'event.sku' },
      { id: 'sess', oncePer: 'session' },
      { id: 'cross', crosses: 'profile.spend >= 1000.0' },
    ];
    const a = harness(specs);
    a.fired(ev({ sku: 'A', session: 's1' }), { spend: 2000 });
    // Pattern memory, cooldown marks and caps: what a checkpoint keeps of the customer.
    const { memory, fired, caps } = scopeOf(a.memory);
    const restored = JSON.parse(JSON.stringify({ memory, fired, caps })) as Pick<
      CustomerScope,
      'memory' | 'fired' | 'caps'
    >;
    setScope({ customer: 'c1', state: newCustomerState('c1'), ...restored, timers: {} });
    const set = ruleSetOf(specs);
    expect(
      evaluate(set, ev({ sku: 'A', session: 's1', ts: T0 + MIN }), { spend: 2000 }, restored.memory),
    ).toEqual([]);
  });
});

describe('cooldown', () => {
  it('blocks a refire within the window in event time, per key', () => {
    const { fired } = harness([{ id: 'r', cooldown: '1h', per: 'event.sku' }]);
    expect(fired(ev({ sku: 'A', ts: T0 }))).toEqual(['r']);
    expect(fired(ev({ sku: 'A', ts: T0 + 59 * MIN }))).toEqual([]);
    expect(fired(ev({ sku: 'B', ts: T0 + 59 * MIN }))).toEqual(['r']);
    expect(fired(ev({ sku: 'A', ts: T0 + 60 * MIN }))).toEqual(['r']);
    expect(fired(ev({ sku: 'A', ts: T0 + 61 * MIN }))).toEqual([]);
  });

  it('does not let a blocked event extend the window', () => {
    const { fired } = harness([{ id: 'r', cooldown: '10m' }]);
    expect(fired(ev({ ts: T0 }))).toEqual(['r']);
    expect(fired(ev({ ts: T0 + 9 * MIN }))).toEqual([]);
    expect(fired(ev({ ts: T0 + 10 * MIN }))).toEqual(['r']);
  });

  it('drops expired keys so that memory stays bounded', () => {
    const { fired, memory } = harness([{ id: 'r', cooldown: '1h', per: 'event.sku' }]);
    for (let i = 0; i < 50; i++) fired(ev({ sku: `S${i}`, ts: T0 + i * 30 * MIN }));
    const marks = scopeOf(memory).fired.r!;
    expect(Object.keys(marks).length).toBeLessThanOrEqual(3);
    expect(marks).toHaveProperty('S49');
  });

  it('does not fire when the key expression throws', () => {
    const { set, fired } = harness([{ id: 'r', cooldown: '1h', per: 'event.sku' }]);
    expect(fired(ev())).toEqual([]);
    expect(set.errors.get('r')?.count).toBe(1);
  });
});

describe('oncePer: session', () => {
  it('fires once per session id and again in a new session', () => {
    const { fired } = harness([{ id: 'r', oncePer: 'session' }]);
    expect(fired(ev({ session: 's1' }))).toEqual(['r']);
    expect(fired(ev({ session: 's1', ts: T0 + 5 * 3_600_000 }))).toEqual([]);
    expect(fired(ev({ session: 's2', ts: T0 + 5 * 3_600_001 }))).toEqual(['r']);
  });

  it('falls back to 30 minutes for events without a session, or to `cooldown` when set', () => {
    const dflt = harness([{ id: 'r', oncePer: 'session' }]);
    expect(dflt.fired(ev({ ts: T0 }))).toEqual(['r']);
    expect(dflt.fired(ev({ ts: T0 + 29 * MIN }))).toEqual([]);
    expect(dflt.fired(ev({ ts: T0 + 30 * MIN }))).toEqual(['r']);

    const custom = harness([{ id: 'r', oncePer: 'session', cooldown: '2h' }]);
    expect(custom.fired(ev({ ts: T0 }))).toEqual(['r']);
    expect(custom.fired(ev({ ts: T0 + 119 * MIN }))).toEqual([]);
    expect(custom.fired(ev({ ts: T0 + 120 * MIN }))).toEqual(['r']);
  });

  it('blocks a sessionless event shortly after a session firing, not a new session after a sessionless one', () => {
    const { fired } = harness([{ id: 'r', oncePer: 'session' }]);
    expect(fired(ev({ session: 's1', ts: T0 }))).toEqual(['r']);
    expect(fired(ev({ ts: T0 + MIN }))).toEqual([]);
    expect(fired(ev({ ts: T0 + 31 * MIN }))).toEqual(['r']);
    expect(fired(ev({ session: 's2', ts: T0 + 32 * MIN }))).toEqual(['r']);
  });
});

describe('crosses', () => {
  const spec: RuleSpec = { id: 'vip', on: ['order'], crosses: 'profile.spend >= 1000' };

  it('fires once when crossing and again only after going back below', () => {
    const { fired } = harness([spec]);
    const order = (spend: number) => fired(ev({ type: 'order' }), { spend });
    expect(order(500)).toEqual([]);
    expect(order(999.99)).toEqual([]);
    expect(order(1000)).toEqual(['vip']);
    expect(order(1500)).toEqual([]);
    expect(order(800)).toEqual([]);
    expect(order(1200)).toEqual(['vip']);
  });

  it('counts a first event already over the threshold as a crossing (customers start at zero)', () => {
    const { fired } = harness([spec]);
    expect(fired(ev({ type: 'order' }), { spend: 5000 })).toEqual(['vip']);
  });

  it('uses up the crossing when `when` is false or a cooldown blocks it', () => {
    const { fired } = harness([{ ...spec, when: 'event.channel == "app"' }]);
    expect(fired(ev({ type: 'order', channel: 'web' }), { spend: 1000 })).toEqual([]);
    expect(fired(ev({ type: 'order', channel: 'app' }), { spend: 1100 })).toEqual([]);

    const cooled = harness([{ ...spec, cooldown: '1d' }]);
    expect(cooled.fired(ev({ type: 'order', ts: T0 }), { spend: 1000 })).toEqual(['vip']);
    expect(cooled.fired(ev({ type: 'order', ts: T0 + MIN }), { spend: 0 })).toEqual([]);
    expect(cooled.fired(ev({ type: 'order', ts: T0 + 2 * MIN }), { spend: 1000 })).toEqual([]);
    expect(cooled.fired(ev({ type: 'order', ts: T0 + 3 * MIN }), { spend: 2000 })).toEqual([]);
  });

  it('leaves the crossing state alone when the condition throws', () => {
    const { set, fired } = harness([spec]);
    expect(fired(ev({ type: 'order' }), { spend: 1000 })).toEqual(['vip']);
    expect(fired(ev({ type: 'order' }), {})).toEqual([]);
    expect(set.errors.get('vip')?.count).toBe(1);
    expect(fired(ev({ type: 'order' }), { spend: 1000 })).toEqual([]);
  });

  it('matches a reference model on random spend sequences', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 40 }), (spends) => {
        const { fired } = harness([spec]);
        let below = true;
        for (const spend of spends) {
          const expected = below && spend >= 1000 ? ['vip'] : [];
          below = spend < 1000;
          expect(fired(ev({ type: 'order' }), { spend })).toEqual(expected);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('arbitration groups', () => {
  const specs: RuleSpec[] = [
    { id: 'handoff', priority: 90, group: 'routing', oncePer: 'session', when: 'event.sentiment < -0.6' },
    { id: 'supervisor', priority: 95, group: 'routing', oncePer: 'session', when: 'event.sentiment <= -0.8' },
    { id: 'other', priority: 10, oncePer: 'session' },
  ];

  it('lets only the highest-priority firing rule of a group fire; other groups and ungrouped rules are unaffected', () => {
    const { fired } = harness(specs);
    expect(fired(ev({ session: 's1', sentiment: -0.9 }))).toEqual(['supervisor', 'other']);
  });

  it('does not consume the loser’s once-per-session', () => {
    const { fired } = harness(specs);
    expect(fired(ev({ session: 's1', sentiment: -0.9 }))).toEqual(['supervisor', 'other']);
    expect(fired(ev({ session: 's1', sentiment: -0.7 }))).toEqual(['handoff']);
    expect(fired(ev({ session: 's1', sentiment: -0.9 }))).toEqual([]);
  });

  it('lets the next rule of the group win when the better one is blocked by its cooldown', () => {
    const { fired } = harness(specs);
    expect(fired(ev({ session: 's1', sentiment: -0.9 }))).toEqual(['supervisor', 'other']);
    expect(fired(ev({ session: 's1', sentiment: -0.95 }))).toEqual(['handoff']);
  });

  it('keeps a losing crossing pending, so it fires on a later event', () => {
    const { fired } = harness([
      { id: 'big', priority: 5, group: 'g', when: 'event.channel == "app"' },
      { id: 'vip', priority: 1, group: 'g', crosses: 'profile.spend >= 1000' },
    ]);
    expect(fired(ev({ channel: 'app' }), { spend: 1000 })).toEqual(['big']);
    expect(fired(ev({ channel: 'web' }), { spend: 1000 })).toEqual(['vip']);
    expect(fired(ev({ channel: 'web' }), { spend: 1000 })).toEqual([]);
  });
});
