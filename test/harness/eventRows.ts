/**
 * `cxstream.events` rows for ClickHouse tests: every column filled with the value an event without
 * that field gets, ids and source positions unique within the test process.
 */
import type { EventRow } from '../../operators/types.js';

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
