/**
 * Which event fields are masked, by which kind, and where (docs/PRIVACY.md): the `privacy` section
 * of the config compiled once per partition.
 *
 * Where an event's values leave the engine, and what this module does there:
 * - ClickHouse `events` rows: the columns of listed fields (`text` by default) are masked ({@link
 *   PrivacyPolicy.row}). Extra fields have no column: they never reach ClickHouse.
 * - Trigger payloads: the expressions of a rule's `payload` see the event with listed fields masked
 *   by kind and every other field that is not an envelope code (extra fields, `ids`) masked as free
 *   text ({@link PrivacyPolicy.payloadEvent}); the one exception is the payload entry named after a
 *   field that `privacy.unmaskedPayload` allows for the trigger's subject. Masking the inputs, not
 *   the output, keeps order ids, skus and sessions the payload carries exact.
 * - Profiles (KV bucket, ClickHouse `profiles`, a trigger's `profile`): the profile copies only
 *   codes of the event (region, session, order id, category); those are masked when listed
 *   ({@link PrivacyPolicy.profile}), so by default a profile passes as it is.
 * Rule conditions still see the event as sent: masking is about what leaves, and a condition may
 * need the number it tests for.
 */
import { MASK_KINDS, type MaskKind, maskField } from './mask.js';
import type { Profile } from './profile.js';
import { type CxEvent, EVENT_FIELDS, type EventRow } from './types.js';

/** The `privacy` section of the config, as plain data (it is sent to worker threads). */
export interface PrivacyOptions {
  /** `FIELD` or `FIELD:KIND`. @default {@link DEFAULT_MASK_FIELDS} */
  maskFields?: readonly string[];
  /** `SUBJECT:FIELD`: the payload entry FIELD of triggers on SUBJECT carries the field as sent. @default [] */
  unmaskedPayload?: readonly string[];
}

/** Fields masked by default: the ones the contract's events and common extras carry personal data in. */
export const DEFAULT_MASK_FIELDS: readonly string[] = ['text', 'name', 'phone', 'email', 'address', 'remark'];

/** A field name: what an event's key and a rule's `event.x` can be. */
const FIELD = '[A-Za-z_][A-Za-z0-9_]*';
/** `privacy.maskFields` item: a field, optionally `:kind`. */
export const MASK_FIELD_PATTERN = `^${FIELD}(:(${MASK_KINDS.join('|')}))?$`;
/** `privacy.unmaskedPayload` item: a trigger subject (as rules allow it), `:`, a field. */
export const UNMASKED_PAYLOAD_PATTERN = `^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*:${FIELD}$`;

/**
 * Envelope fields that cannot be masked, and why: keys the engine routes and de-duplicates by,
 * codes rules and the profile read, and values that are no text.
 */
const UNMASKABLE: Readonly<Record<string, string>> = {
  id: 'the event id makes trigger ids and de-duplication work',
  customer:
    'the customer key routes events and names profiles and triggers; publish a pseudonymous key (a hash) instead',
  ts: 'it is the event time',
  type: 'it is a code the rules and the profile read, not free text',
  channel: 'it is a code the rules and the profile read, not free text',
  amount: 'it is a number',
  sentiment: 'it is a number',
  score: 'it is a number',
  recognized: 'it is a boolean',
  localHour: 'the engine adds it',
};

/**
 * Envelope fields that hold codes and ids (docs/CONTRACT.md "Events"): left as sent unless listed.
 * Every other field (`text`, `ids`, extra fields) may carry anything and is free text in payloads.
 */
const CODE_FIELDS: ReadonlySet<string> = new Set(
  [...EVENT_FIELDS, 'ticketId'].filter((f) => f !== 'text' && f !== 'ids'),
);

/** The `cxstream.events` column of an event field (extra fields have none: the row skips them). */
function columnOf(field: string): keyof EventRow | undefined {
  if (field === 'ticketId') return 'ticket_id';
  return EVENT_FIELDS.has(field) ? (field as keyof EventRow) : undefined;
}

/** The kind of a field listed without one: its name when that is a kind, else free text. */
function kindOfName(field: string): MaskKind {
  return (MASK_KINDS as readonly string[]).includes(field) ? (field as MaskKind) : 'text';
}

/** One problem of a `privacy` setting: which key, which item, and what is wrong. */
export interface PrivacyProblem {
  key: 'maskFields' | 'unmaskedPayload';
  index: number;
  message: string;
}

/**
 * What is wrong with the `privacy` settings beyond their shape (the config schema checks that
 * each item matches its pattern): fields that cannot be masked, fields listed twice, allowances for
 * fields that are never masked anyway.
 */
export function privacyProblems(options: PrivacyOptions): PrivacyProblem[] {
  const problems: PrivacyProblem[] = [];
  const listed = new Map<string, number>();
  (options.maskFields ?? DEFAULT_MASK_FIELDS).forEach((item, index) => {
    const field = item.split(':')[0]!;
    const why = UNMASKABLE[field];
    if (why !== undefined)
      problems.push({ key: 'maskFields', index, message: `${field} cannot be masked: ${why}` });
    const first = listed.get(field);
    if (first !== undefined)
      problems.push({ key: 'maskFields', index, message: `${field} is listed twice (also item ${first})` });
    else listed.set(field, index);
  });
  const allowed = new Set<string>();
  (options.unmaskedPayload ?? []).forEach((item, index) => {
    const field = item.slice(item.lastIndexOf(':') + 1);
    if (allowed.has(item))
      problems.push({ key: 'unmaskedPayload', index, message: `${item} is listed twice` });
    allowed.add(item);
    if (CODE_FIELDS.has(field) && !listed.has(field))
      problems.push({
        key: 'unmaskedPayload',
        index,
        message: `${field} is never masked (it is not in privacy.maskFields): nothing to allow`,
      });
  });
  return problems;
}

/** Values nested deeper than this in an event field are dropped from payloads rather than walked. */
const MAX_DEPTH = 8;

/** Profile fields copied from event fields: masked when their source field is listed. */
type ProfileMasking = {
  region?: MaskKind;
  session?: MaskKind;
  lastOrderId?: MaskKind;
  category?: MaskKind;
};

/** The compiled `privacy` settings: how rows, payload inputs and profiles are masked. */
export class PrivacyPolicy {
  /** Listed fields and their kinds. */
  private readonly kinds = new Map<string, MaskKind>();
  private readonly columns: Array<[keyof EventRow, MaskKind]> = [];
  private readonly profileMasking: ProfileMasking = {};
  private readonly masksProfile: boolean;
  /** Subject → payload entries carried unmasked. */
  private readonly unmasked = new Map<string, Set<string>>();

  /** @throws Error naming the first problem ({@link privacyProblems}; the config reports them all with file:line) */
  constructor(options: PrivacyOptions = {}) {
    const problem = privacyProblems(options)[0];
    if (problem !== undefined)
      throw new Error(`privacy.${problem.key}[${problem.index}]: ${problem.message}`);
    for (const item of options.maskFields ?? DEFAULT_MASK_FIELDS) {
      const [field, kind] = item.split(':') as [string, MaskKind | undefined];
      this.kinds.set(field, kind ?? kindOfName(field));
    }
    for (const [field, kind] of this.kinds) {
      const column = columnOf(field);
      if (column !== undefined) this.columns.push([column, kind]);
    }
    const m = this.profileMasking;
    m.region = this.kinds.get('region');
    m.session = this.kinds.get('session');
    m.lastOrderId = this.kinds.get('orderId');
    m.category = this.kinds.get('category');
    this.masksProfile = Object.values(m).some((k) => k !== undefined);
    for (const item of options.unmaskedPayload ?? []) {
      const at = item.lastIndexOf(':');
      const subject = item.slice(0, at);
      const fields = this.unmasked.get(subject) ?? new Set<string>();
      fields.add(item.slice(at + 1));
      this.unmasked.set(subject, fields);
    }
  }

  /** Masks, in place, the columns of listed fields of a `cxstream.events` row; returns it. */
  row(row: EventRow): EventRow {
    for (const [column, kind] of this.columns) {
      const v = row[column];
      if (typeof v === 'string' && v !== '')
        (row as unknown as Record<string, string>)[column] = maskField(kind, v);
    }
    return row;
  }

  /** Whether the payload entry `entry` of triggers on `subject` carries its field as sent. */
  unmaskedIn(subject: string, entry: string): boolean {
    return this.unmasked.get(subject)?.has(entry) === true;
  }

  /**
   * The event as a trigger payload's expressions see it: listed fields masked by their kind, the
   * other fields that are no envelope codes (`ids`, extra fields) masked as free text, the field
   * named `unmasked` as sent. The event itself when nothing changes (no copy).
   */
  payloadEvent(event: CxEvent, unmasked?: string): CxEvent {
    let out: Record<string, unknown> | undefined;
    for (const key in event) {
      if (key === unmasked) continue;
      const kind = this.kinds.get(key) ?? (CODE_FIELDS.has(key) ? undefined : 'text');
      if (kind === undefined) continue;
      const v = event[key];
      const masked = this.value(kind, v, 0);
      if (masked !== v) {
        out ??= { ...event };
        out[key] = masked;
      }
    }
    return (out as CxEvent | undefined) ?? event;
  }

  /**
   * The profile as it may leave the engine: the fields copied from listed event fields (`region`,
   * `session`, `lastOrderId`, the categories of `categoryViews30d`) and the tags naming them
   * (`region:`, `likes:`) masked. The profile itself when none of those fields is listed.
   */
  profile<P extends Partial<Profile>>(profile: P): P {
    if (!this.masksProfile) return profile;
    const m = this.profileMasking;
    const out: Partial<Profile> = { ...profile };
    const mask = (kind: MaskKind | undefined, v: string | null | undefined) =>
      kind === undefined || typeof v !== 'string' ? v : maskField(kind, v);
    if (m.region !== undefined && 'region' in out) out.region = mask(m.region, out.region) as string | null;
    if (m.session !== undefined && 'session' in out)
      out.session = mask(m.session, out.session) as string | null;
    if (m.lastOrderId !== undefined && 'lastOrderId' in out)
      out.lastOrderId = mask(m.lastOrderId, out.lastOrderId) as string | null;
    if (m.category !== undefined && out.categoryViews30d !== undefined) {
      const views: Record<string, number> = {};
      for (const [c, n] of Object.entries(out.categoryViews30d)) {
        const key = maskField(m.category, c);
        views[key] = (views[key] ?? 0) + n;
      }
      out.categoryViews30d = views;
    }
    if (out.tags !== undefined)
      out.tags = out.tags.map((tag) => {
        if (m.region !== undefined && tag.startsWith('region:'))
          return `region:${maskField(m.region, tag.slice(7))}`;
        if (m.category !== undefined && tag.startsWith('likes:'))
          return `likes:${maskField(m.category, tag.slice(6))}`;
        return tag;
      });
    return out as P;
  }

  /**
   * A value masked by kind, walked into arrays and maps (a key of a map that is a listed field takes
   * that field's kind). Numbers are masked as their digits (a phone sent as a number): returned as
   * the masked string when masking changed them. Binary data cannot be read: dropped (null).
   */
  private value(kind: MaskKind, v: unknown, depth: number): unknown {
    if (typeof v === 'string') return v === '' ? v : maskField(kind, v);
    if (typeof v === 'number' || typeof v === 'bigint') {
      const s = String(v);
      const masked = maskField(kind, s);
      return masked === s ? v : masked;
    }
    if (v === null || typeof v !== 'object' || v instanceof Date) return v;
    if (depth >= MAX_DEPTH || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return null;
    if (Array.isArray(v)) {
      const out = v.map((x) => this.value(kind, x, depth + 1));
      return out.every((x, i) => x === v[i]) ? v : out;
    }
    let out: Record<string, unknown> | undefined;
    for (const [k, x] of Object.entries(v)) {
      const masked = this.value(this.kinds.get(k) ?? kind, x, depth + 1);
      if (masked === x) continue;
      out ??= { ...(v as Record<string, unknown>) };
      out[k] = masked;
    }
    return out ?? v;
  }
}
