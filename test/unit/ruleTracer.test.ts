/**
 * The rule set's tracer (`RuleSet.onDecision`), which explain listens to: what it reports for a
 * timer armed, moved and cancelled, a late event, an expression error, a cooldown, a cap and a
 * quiet-hours deferral, and that `traceRoutine: false` leaves out the routine decisions.
 */
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { Decision, RuleSpec } from '../../operators/rules.js';
import type { CxEvent } from '../../operators/types.js';

const MIN = 60_000;
/** 2026-03-02 12:00 in Asia/Shanghai (UTC+8). */
const T0 = Date.UTC(2026, 2, 2, 4);

/** A processor whose decisions are collected (without `seen`, which is valid only during the call). */
function traced(rules: RuleSpec[], routine = true) {
  const p = new PartitionProcessor({ partition: 0, rules });
  const decisions: Decision[] = [];
  const seen: unknown[] = [];
  p.ruleSet.traceRoutine = routine;
  p.ruleSet.onDecision = (d) => {
    const { seen: s, ...rest } = d;
    decisions.push(rest);
    if (s !== undefined) seen.push({ event: s.event?.id, tier: s.profile?.tier });
  };
  let seq = 0;
  const send = (id: string, type: string, ts: number, extra: Partial<CxEvent> = {}) => {
    const e: CxEvent = { id, ts, customer: 'c1', type, channel: 'app', ...extra };
    p.applyBatch([++seq], [`cx.events.app.${type}.c1`], () => pack(e), ts);
  };
  return { p, decisions, seen, send };
}

const cart: RuleSpec = {
  id: 'cart',
  absence: { after: 'add_to_cart', missing: 'order', within: '10m' },
  cooldown: '24h',
};

describe('the rule tracer', () => {
  it('reports a timer armed, moved, cancelled by an event, and a late event of the pattern', () => {
    const { p, decisions, send } = traced([cart]);
    send('a1', 'add_to_cart', T0);
    send('a2', 'add_to_cart', T0 + 2 * MIN);
    send('o1', 'order', T0 + 5 * MIN);
    send('v1', 'page_view', T0 + 20 * MIN); // moves the watermark to 20 min − 5 s
    send('a3', 'add_to_cart', T0 + 6 * MIN); // behind the watermark: late, starts nothing
    p.advanceTo(T0 + 20 * MIN);
    expect(decisions.map((d) => [d.outcome, d.id, d.due, d.previous, d.event?.id])).toEqual([
      ['armed', `cart:c1:t${T0 + 10 * MIN}`, T0 + 10 * MIN, undefined, 'a1'],
      ['armed', `cart:c1:t${T0 + 12 * MIN}`, T0 + 12 * MIN, T0 + 10 * MIN, 'a2'],
      ['cancelled', `cart:c1:t${T0 + 12 * MIN}`, T0 + 12 * MIN, undefined, 'o1'],
      ['late', 'cart:c1:a3', undefined, undefined, 'a3'],
    ]);
    expect(decisions.at(-1)!.watermark).toBe(T0 + 20 * MIN - 5000);
  });

  it('reports the firing a cooldown holds to, when it frees, and what a false condition saw', () => {
    const { decisions, seen, send } = traced([
      { id: 'invoice', on: ['message'], when: 'has(event.text) && event.text == "invoice"', cooldown: '1h' },
    ]);
    send('m1', 'message', T0, { text: 'invoice' });
    send('m2', 'message', T0 + MIN, { text: 'invoice' });
    send('m3', 'message', T0 + 2 * MIN, { text: 'hello' });
    expect(decisions.map((d) => [d.outcome, d.id])).toEqual([
      ['fired', 'invoice:c1:m1'],
      ['cooldown', 'invoice:c1:m2'],
      ['when-false', 'invoice:c1:m3'],
    ]);
    expect(decisions[1]!.last).toEqual({ at: T0 });
    expect(decisions[1]!.until).toBe(T0 + 60 * MIN);
    expect(seen).toEqual([{ event: 'm3', tier: 'New' }]);
  });

  it('reports an expression error with its message and the expression it came from', () => {
    const { decisions, send } = traced([
      { id: 'broken', on: ['message'], when: 'event.text == "x"' },
      { id: 'payload', on: ['message'], payload: { n: 'event.missing' } },
    ]);
    send('m1', 'message', T0);
    expect(decisions.map((d) => [d.rule, d.outcome, d.expression, d.error])).toEqual([
      ['broken', 'error', 'when', 'No such key: text'],
      ['broken', 'when-error', undefined, undefined],
      ['payload', 'error', 'payload.n', 'No such key: missing'],
      ['payload', 'fired', undefined, undefined],
    ]);
  });

  it('reports a quiet-hours deferral with its delivery time, and a cap with when it has room again', () => {
    const quiet = { from: '21:00', to: '09:00' };
    const cap = { group: 'g', max: 1, per: '24h' };
    const { p, decisions, send } = traced([
      { id: 'night', on: ['page_view'], quietHours: quiet, cap, cooldown: '1m' },
    ]);
    send('v1', 'page_view', T0); // 12:00: delivered, takes the cap
    send('v2', 'page_view', T0 + 10 * MIN); // the cap is full until tomorrow 12:00
    send('v3', 'page_view', T0 + 10 * 60 * MIN); // 22:00: deferred to 09:00
    p.advanceTo(T0 + 22 * 60 * MIN); // 09:00 + 1 h: released, and the cap drops it
    expect(decisions.map((d) => [d.outcome, d.id, d.t])).toEqual([
      ['fired', 'night:c1:v1', T0],
      ['cap', 'night:c1:v2', T0 + 10 * MIN],
      ['deferred', 'night:c1:v3', T0 + 600 * MIN],
      ['cap', 'night:c1:v3', T0 + 21 * 60 * MIN],
    ]);
    expect(decisions.map((d) => d.until)).toEqual([
      undefined,
      T0 + 24 * 60 * MIN,
      undefined,
      T0 + 24 * 60 * MIN,
    ]);
    expect(decisions[2]!.due).toBe(T0 + 21 * 60 * MIN);
  });

  it('reports a lost arbitration, once per session, a key that failed, and a quiet-hours drop', () => {
    const { p, decisions, send } = traced([
      { id: 'best', priority: 10, group: 'routing', on: ['message'], oncePer: 'session' },
      { id: 'next', priority: 5, group: 'routing', on: ['message'] },
      { id: 'keyed', on: ['message'], per: 'event.sku', cooldown: '1m' },
      { id: 'night', on: ['message'], quietHours: { from: '21:00', to: '09:00', action: 'drop' } },
    ]);
    send('m1', 'message', T0, { session: 's1' });
    send('m2', 'message', T0 + MIN, { session: 's1' });
    send('m3', 'message', T0 + 10 * 60 * MIN, { session: 's2' }); // 22:00 local
    p.advanceTo(T0 + 11 * 60 * MIN);
    const of = (rule: string) => decisions.filter((d) => d.rule === rule).map((d) => [d.outcome, d.id]);
    expect(of('best')).toEqual([
      ['fired', 'best:c1:m1'],
      ['once-per-session', 'best:c1:m2'],
      ['fired', 'best:c1:m3'],
    ]);
    // `next` loses to `best` while `best` fires, and wins the event `best` is held back on
    expect(of('next')).toEqual([
      ['arbitration', 'next:c1:m1'],
      ['fired', 'next:c1:m2'],
      ['arbitration', 'next:c1:m3'],
    ]);
    expect(decisions.find((d) => d.outcome === 'once-per-session')!.last).toEqual({ at: T0, session: 's1' });
    expect(of('keyed').map(([o]) => o)).toEqual(['error', 'no-key', 'error', 'no-key', 'error', 'no-key']);
    expect(decisions.find((d) => d.rule === 'keyed')!.expression).toBe('per');
    expect(of('night')).toEqual([
      ['fired', 'night:c1:m1'],
      ['fired', 'night:c1:m2'],
      ['quiet-hours-drop', 'night:c1:m3'],
    ]);
  });

  it('reports a trigger deferred by quiet hours as fired when it is released', () => {
    const { p, decisions, send } = traced([
      { id: 'night', on: ['page_view'], quietHours: { from: '21:00', to: '09:00' } },
    ]);
    send('v1', 'page_view', T0 + 10 * 60 * MIN); // 22:00 local
    p.advanceTo(T0 + 22 * 60 * MIN);
    expect(decisions.map((d) => [d.outcome, d.id, d.t])).toEqual([
      ['deferred', 'night:c1:v1', T0 + 600 * MIN],
      ['fired', 'night:c1:v1', T0 + 21 * 60 * MIN],
    ]);
  });

  it('changes no outcome: the same triggers with and without a listener', () => {
    const rules: RuleSpec[] = [
      cart,
      { id: 'capped', on: ['page_view'], cap: { group: 'g', max: 1, per: '1h' }, cooldown: '1m' },
      { id: 'broken', on: ['page_view'], when: 'event.nothing > 1' },
    ];
    const run = (listen: boolean) => {
      const p = new PartitionProcessor({ partition: 0, rules });
      if (listen) p.ruleSet.onDecision = () => {};
      let seq = 0;
      const ids: string[] = [];
      const send = (id: string, type: string, ts: number) => {
        const e: CxEvent = { id, ts, customer: 'c1', type, channel: 'app' };
        ids.push(
          ...p.applyBatch([++seq], [`cx.events.app.${type}.c1`], () => pack(e), ts).triggers.map((t) => t.id),
        );
      };
      send('a1', 'add_to_cart', T0);
      send('v1', 'page_view', T0 + MIN);
      send('v2', 'page_view', T0 + 3 * MIN);
      send('v3', 'page_view', T0 + 70 * MIN);
      ids.push(...p.advanceTo(T0 + 2 * 60 * MIN).triggers.map((t) => t.id));
      return ids;
    };
    expect(run(false)).toEqual(['capped:c1:v1', `cart:c1:t${T0 + 10 * MIN}`, 'capped:c1:v3']);
    expect(run(true)).toEqual(run(false));
  });

  it('leaves out the routine decisions with traceRoutine false, and survives a rule swap', () => {
    const { p, decisions, send } = traced([cart, { id: 'never', on: ['order'], when: 'false' }], false);
    send('a1', 'add_to_cart', T0);
    send('o1', 'order', T0 + MIN);
    p.advanceTo(T0 + 20 * MIN);
    expect(decisions.map((d) => d.outcome)).toEqual(['cancelled']);
    p.setRules([cart]);
    p.ruleSet.traceRoutine = false;
    send('a2', 'add_to_cart', T0 + 30 * MIN);
    p.advanceTo(T0 + 50 * MIN);
    expect(decisions.map((d) => d.outcome)).toEqual(['cancelled', 'fired']);
  });
});
