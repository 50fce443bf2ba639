/** Building events for tests: the required fields, the channel `app` unless given, and any extras. */
import type { CxEvent } from '../../operators/types.js';

/** An event of `customer` of `type` at `ts` (epoch ms). */
export function cxEvent(
  id: string,
  customer: string,
  type: string,
  ts: number,
  extra: Partial<CxEvent> = {},
): CxEvent {
  return { id, ts, customer, type, channel: 'app', ...extra };
}
