/**
 * Rows for ClickHouse tests: `cxstream.events` rows with every column filled with the value an
 * event without that field gets (ids and source positions unique within the test process), and
 * triggers as the engine writes them.
 */
import type { EventRow, Trigger } from '../../operators/types.js';

let seq = 0;

/** A web event of `customer` at `ts` (ms); `fields` override any column. */
export function eventRow(
  customer: string,
  type: string,
  ts: number,
  fields: Partial<EventRow> = {},
): EventRow {
  seq++;
  return {
    partition: seq % 4,
    seq,
    id: `${customer}-${seq}`,
    ts,
    customer,
    type,
    channel: 'web',
    from: '',
    region: '',
    tz: '',
    session: '',
    agent: '',
    variant: '',
    source: '',
    amount: null,
    sku: '',
    category: '',
    intent: '',
    sentiment: null,
    recognized: null,
    status: '',
    score: null,
    text: '',
    local_hour: 17,
    ticket_id: '',
    ...fields,
  };
}

/** A trigger of `rule` for `customer` fired by an event at `eventTime` (ms), fired a second later. */
export function triggerRow(rule: string, customer: string, eventTime: number): Trigger {
  return {
    id: `${rule}:${customer}:${eventTime}`,
    rule,
    customer,
    firedAt: eventTime + 1000,
    eventTime,
    reason: 'test',
    priority: 1,
    payload: {},
    profile: {},
    subject: `cx.triggers.${rule}`,
  };
}
