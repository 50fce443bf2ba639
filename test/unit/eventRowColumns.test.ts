/**
 * The event columns computed by the worker: `local_hour`, the customer-local hour of the event from
 * its own `tz`, else the processor's default zone (ClickHouse's toHour needs one constant zone), and
 * `ticket_id`, which links a ticket opened in a session to its later resolution.
 */
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import { PartitionProcessor } from '../../operators/partitionProcessor.js';
import type { CxEvent } from '../../operators/types.js';

const rules = loadRules(['config/rules.yaml']);
/** 2026-11-20 02:30 UTC: 10:30 in Shanghai, 21:30 the day before in New York (EST), 02:30 UTC. */
const T0 = Date.UTC(2026, 10, 20, 2, 30);

function outputOf(p: PartitionProcessor, events: CxEvent[]) {
  const out = p.applyBatch(
    events.map((_, i) => i + 1),
    events.map((e) => `cx.events.${e.channel}.${e.type}.${e.customer}`),
    (i) => pack(events[i]),
    T0,
  );
  return out.events;
}

function rowsOf(p: PartitionProcessor, events: CxEvent[]) {
  return outputOf(p, events).map((r) => [r.id, r.local_hour]);
}

describe('event rows: local_hour', () => {
  it('is the hour in the event tz, else in the default zone', () => {
    const events: CxEvent[] = [
      { id: 'ny', ts: T0, customer: 'c1', type: 'page_view', channel: 'web', tz: 'America/New_York' },
      { id: 'none', ts: T0, customer: 'c2', type: 'page_view', channel: 'web' },
      { id: 'utc', ts: T0, customer: 'c3', type: 'page_view', channel: 'web', tz: 'UTC' },
      { id: 'bogus', ts: T0, customer: 'c4', type: 'page_view', channel: 'web', tz: 'Not/AZone' },
    ];
    expect(rowsOf(new PartitionProcessor({ partition: 0, rules }), events)).toEqual([
      ['ny', 21],
      ['none', 10],
      ['utc', 2],
      ['bogus', 10],
    ]);
    const utcDefault = new PartitionProcessor({ partition: 0, rules, defaultTz: 'UTC' });
    expect(rowsOf(utcDefault, events).map(([, h]) => h)).toEqual([21, 2, 2, 2]);
  });

  it('carries the ticket id of ticket events, and nothing for other events', () => {
    const events: CxEvent[] = [
      { id: 't1', ts: T0, customer: 'c1', type: 'ticket', channel: 'web', status: 'open', ticketId: 'T-9' },
      { id: 'm1', ts: T0 + 1, customer: 'c1', type: 'message', channel: 'web' },
      {
        id: 'odd',
        ts: T0 + 2,
        customer: 'c1',
        type: 'ticket',
        channel: 'web',
        ticketId: 42 as unknown as string,
      },
    ];
    expect(outputOf(new PartitionProcessor({ partition: 0, rules }), events).map((r) => r.ticket_id)).toEqual(
      ['T-9', '', ''],
    );
  });
});
