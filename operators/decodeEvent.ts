import { Ajv, type ErrorObject } from 'ajv';
import { Unpackr, type Options as UnpackrOptions } from 'msgpackr';
import { type IdentityLimits, idsProblem } from './identity.js';
import { customerOfSubject } from './keyGroups.js';
import { maskPii } from './mask.js';
import type { CxEvent } from './types.js';

/*
 * Decisions: the payload format is sniffed from the first byte, not from a header,
 * so the worker needs only bytes and subject. A msgpack map must start at byte 0 (whitespace bytes
 * are msgpack integers, so " \x81..." is not one map); JSON may have leading whitespace or a BOM.
 *
 * `ts` is event time in integer epoch ms, 0 < ts <= 8.64e15 (the largest valid Date). Encoders
 * differ in how they write it, so before validation:
 *   - a msgpack int64/uint64 decodes to a number when it is within ±2^53 (msgpackr `int64AsType:
 *     'auto'`), which covers every valid ts; a larger bigint is converted with Number() and then
 *     fails the maximum;
 *   - a msgpack timestamp extension (decoded as a Date) becomes its epoch ms;
 *   - a float is accepted only when it has no fraction (msgpackr itself writes ints above 2^32 as
 *     float64); a string is rejected.
 * A `ts` before `minTs` (an option; the engine passes `engine.minEventTime`, 2000-01-01 by default)
 * is rejected with a reason that suggests milliseconds: many systems send epoch seconds, which
 * would otherwise be accepted as an event of January 1970 and expire every window at once.
 *
 * An optional field sent as `null` counts as absent (many encoders write nil that way); it is
 * removed, but only after a first validation failed, so valid events pay nothing for it.
 *
 * Reject reasons travel as the dead letter's `Cx-Error` header: one line, at most MAX_REASON
 * characters, with quoted values escaped and shortened. A parser's message may quote the input
 * (V8's JSON.parse shows the text around the error): the reason is masked as free text
 * (`maskPii`), so a phone number or a cued name in a broken event does not travel in the header.
 */

/** Largest accepted payload in bytes (256 KiB); larger messages are rejected unread. */
export const MAX_EVENT_BYTES = 256 * 1024;

const MAX_REASON = 300;
const MAX_QUOTED = 64;
/** The largest epoch ms a JS Date can hold. */
const MAX_TS = 8_640_000_000_000_000;
/** A ts that reads as seconds of a time before this is worth the hint "send milliseconds". */
const PLAUSIBLE_UNTIL = Date.UTC(2200, 0, 1);

const optionalStrings = [
  'from',
  'region',
  'tz',
  'session',
  'agent',
  'variant',
  'source',
  'orderId',
  'sku',
  'category',
  'text',
  'intent',
  'status',
] as const;
const requiredStrings = ['id', 'customer', 'type', 'channel'] as const;

const eventSchema = {
  type: 'object',
  required: ['id', 'ts', 'customer', 'type', 'channel'],
  properties: {
    // Non-empty is checked in decodeEvent after validation: ajv's minLength counts code points by
    // walking the string, which cost ~10% of a whole decode here.
    id: { type: 'string' },
    ts: { type: 'integer', exclusiveMinimum: 0, maximum: MAX_TS },
    customer: { type: 'string' },
    type: { type: 'string' },
    channel: { type: 'string' },
    ...Object.fromEntries(optionalStrings.map((k) => [k, { type: 'string' }])),
    amount: { type: 'number' },
    sentiment: { type: 'number', minimum: -1, maximum: 1 },
    score: { type: 'number' },
    recognized: { type: 'boolean' },
    ids: { type: 'object', additionalProperties: { type: 'string' } },
  },
};
const optionalFields: readonly string[] = Object.keys(eventSchema.properties).filter(
  (k) => !eventSchema.required.includes(k),
);

// First error only: a reject needs one reason, and stopping early is faster.
const validate = new Ajv({ allErrors: false, strict: true }).compile<CxEvent>(eventSchema);

// One reused decoder: `int64AsType: 'auto'` (number when safe, else bigint) is only reachable
// through an instance; msgpackr's typings do not list 'auto', hence the cast.
const unpackr = new Unpackr({
  mapsAsObjects: true,
  useRecords: false,
  int64AsType: 'auto' as string as UnpackrOptions['int64AsType'],
});
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Options of {@link decodeEvent}. */
export interface DecodeOptions {
  /**
   * Events with an earlier `ts` (epoch ms) are rejected; the reason suggests milliseconds when the
   * value reads as epoch seconds. @default 1 (any positive ts)
   */
  minTs?: number;
  /** Limits on `ids` (the config's `identity`); an event beyond them is rejected. @default DEFAULT_IDENTITY_LIMITS */
  identity?: IdentityLimits;
}

/**
 * Decodes a msgpack map or JSON object into a validated {@link CxEvent}, or returns why it was
 * rejected (a one-line, human-readable reason). `subject`'s last token must equal `customer`.
 */
export function decodeEvent(
  bytes: Uint8Array,
  subject: string,
  options: DecodeOptions = {},
): CxEvent | string {
  const n = bytes.length;
  if (n > MAX_EVENT_BYTES) return `payload too large: ${n} bytes (max ${MAX_EVENT_BYTES})`;
  if (n === 0) return 'empty payload';

  let decoded: Record<string, unknown>;
  const first = bytes[0]!;
  if ((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf) {
    try {
      decoded = unpackr.unpack(bytes);
    } catch (e) {
      return clip(`invalid msgpack: ${(e as Error).message}`);
    }
  } else {
    let i = 0;
    if (n >= 3 && first === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
    while (i < n && isJsonWhitespace(bytes[i]!)) i++;
    if (i === n) return 'empty payload';
    if (bytes[i] !== 0x7b) return 'not a msgpack map or JSON object';
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return 'invalid JSON: not valid UTF-8';
    }
    try {
      decoded = JSON.parse(text);
    } catch (e) {
      return clip(`invalid JSON: ${(e as Error).message}`);
    }
  }

  const ts = decoded.ts;
  if (typeof ts !== 'number') {
    if (typeof ts === 'bigint') decoded.ts = Number(ts);
    else if (ts instanceof Date) decoded.ts = ts.getTime();
  }

  if (!validate(decoded)) {
    if (!dropNullOptionals(decoded) || !validate(decoded)) return schemaReason(validate.errors);
  }
  for (const k of requiredStrings) {
    if (decoded[k] === '') return `schema: /${k} must not be empty`;
  }

  // An empty session is no session, everywhere (profile and rules alike).
  if (decoded.session === '') delete decoded.session;

  const minTs = options.minTs ?? 1;
  if (decoded.ts < minTs) return tooOld(decoded.ts, minTs);

  const token = customerOfSubject(subject);
  if (decoded.customer !== token) {
    return `customer ${quote(decoded.customer)} does not match subject token ${quote(token)}`;
  }
  if (decoded.ids !== undefined) {
    const problem = idsProblem(decoded.ids, options.identity);
    if (problem !== undefined) return clip(problem);
  }
  return decoded;
}

/** Why a ts before the bound was rejected; names the likely mistake (seconds) when it fits. */
function tooOld(ts: number, minTs: number): string {
  const bound = new Date(minTs).toISOString();
  const asMs = ts * 1000;
  const seconds =
    asMs >= minTs && asMs < PLAUSIBLE_UNTIL
      ? `; it looks like epoch seconds (${new Date(asMs).toISOString()}): send epoch milliseconds, ${asMs}`
      : '; ts must be epoch milliseconds';
  return clip(`ts ${ts} is before ${bound} (engine.minEventTime)${seconds}`);
}

function isJsonWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Removes optional fields whose value is null; true when one was removed. */
function dropNullOptionals(event: Record<string, unknown>): boolean {
  let dropped = false;
  for (const k of optionalFields) {
    if (event[k] === null) {
      delete event[k];
      dropped = true;
    }
  }
  return dropped;
}

function schemaReason(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'schema: invalid event';
  if (e.keyword === 'required') return clip(`schema: /${String(e.params.missingProperty)} is required`);
  return clip(`schema: ${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
}

function quote(s: string): string {
  return JSON.stringify(s.length > MAX_QUOTED ? `${s.slice(0, MAX_QUOTED)}…` : s);
}

/**
 * One line (header-safe), bounded, and masked: library messages may quote the input. Masked before
 * it is cut, so that a number cut in half at the end is not left to pass as a shorter one.
 */
function clip(reason: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  const line = maskPii(reason.replace(/[\u0000-\u001f\u007f]+/g, ' '));
  return line.length > MAX_REASON ? `${line.slice(0, MAX_REASON - 1)}…` : line;
}
