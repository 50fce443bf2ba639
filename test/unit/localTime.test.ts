import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { localHour, nextLocalHour, utcOffsetMinutes } from '../../operators/localTime.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const utc = (iso: string): number => Date.parse(iso);

const referenceFormats = new Map<string, Intl.DateTimeFormat>();
/** Reference: the wall-clock hour straight from Intl, no offset caching. */
function intlHour(ts: number, tz: string): number {
  let fmt = referenceFormats.get(tz);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat('en-US', { timeZone: tz, hour: 'numeric', hourCycle: 'h23' });
    referenceFormats.set(tz, fmt);
  }
  return Number(fmt.format(ts));
}

describe('localHour / utcOffsetMinutes', () => {
  it('shifts by the zone offset', () => {
    const ts = utc('2024-06-01T23:30:00Z');
    expect(localHour(ts, 'UTC')).toBe(23);
    expect(localHour(ts, 'Asia/Shanghai')).toBe(7);
    expect(localHour(ts, 'America/New_York')).toBe(19);
    expect(localHour(ts, 'Asia/Kolkata')).toBe(5); // +05:30 → 05:00
    expect(utcOffsetMinutes(ts, 'Asia/Shanghai')).toBe(480);
    expect(utcOffsetMinutes(ts, 'Asia/Kolkata')).toBe(330);
    expect(utcOffsetMinutes(ts, 'America/New_York')).toBe(-240);
  });

  it('follows the US spring-forward change (2024-03-10 07:00Z)', () => {
    const change = utc('2024-03-10T07:00:00Z');
    expect(localHour(change - 1, 'America/New_York')).toBe(1);
    expect(utcOffsetMinutes(change - 1, 'America/New_York')).toBe(-300);
    expect(localHour(change, 'America/New_York')).toBe(3);
    expect(utcOffsetMinutes(change, 'America/New_York')).toBe(-240);
  });

  it('follows the US fall-back change (2024-11-03 06:00Z): 01:00 shows twice', () => {
    const change = utc('2024-11-03T06:00:00Z');
    expect(localHour(change - HOUR, 'America/New_York')).toBe(1);
    expect(localHour(change - 1, 'America/New_York')).toBe(1);
    expect(utcOffsetMinutes(change - 1, 'America/New_York')).toBe(-240);
    expect(localHour(change, 'America/New_York')).toBe(1);
    expect(utcOffsetMinutes(change, 'America/New_York')).toBe(-300);
    expect(localHour(change + HOUR, 'America/New_York')).toBe(2);
  });

  it('handles a change in the middle of a UTC hour (Lord Howe, 2024-10-05 15:30Z, +10:30 → +11)', () => {
    const change = utc('2024-10-05T15:30:00Z');
    // Warm the cache with the start of the hour first: the mixed hour must not reuse that offset.
    expect(utcOffsetMinutes(change - 30 * MIN, 'Australia/Lord_Howe')).toBe(630);
    expect(utcOffsetMinutes(change - 1000, 'Australia/Lord_Howe')).toBe(630);
    expect(utcOffsetMinutes(change, 'Australia/Lord_Howe')).toBe(660);
    expect(localHour(change - 1000, 'Australia/Lord_Howe')).toBe(1); // 01:59:59
    expect(localHour(change, 'Australia/Lord_Howe')).toBe(2); // 02:30
  });

  it('resolves an unknown zone as the fallback, then as UTC', () => {
    const ts = utc('2024-06-01T23:30:00Z');
    expect(localHour(ts, 'Mars/Olympus_Mons', 'Asia/Shanghai')).toBe(7);
    expect(localHour(ts, '', 'Asia/Shanghai')).toBe(7);
    expect(localHour(ts, 'not a zone', 'also/not')).toBe(23);
    expect(utcOffsetMinutes(ts, 'Nope/Nope', 'America/New_York')).toBe(-240);
  });

  it('agrees with Intl for random instants and zones', () => {
    const zones = [
      'Asia/Shanghai',
      'America/New_York',
      'Europe/London',
      'Australia/Lord_Howe',
      'Asia/Kathmandu',
    ];
    fc.assert(
      fc.property(
        fc.integer({ min: utc('2000-01-01T00:00:00Z'), max: utc('2040-01-01T00:00:00Z') }),
        fc.constantFrom(...zones),
        (ts, tz) => {
          expect(localHour(ts, tz)).toBe(intlHour(ts, tz));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('nextLocalHour', () => {
  it('returns the next 09:00 local, strictly after ts', () => {
    // 22:00 Shanghai → next day 09:00 Shanghai = 01:00Z.
    expect(nextLocalHour(utc('2024-01-01T14:00:00Z'), 'Asia/Shanghai', 9)).toBe(utc('2024-01-02T01:00:00Z'));
    // 03:00 Shanghai → same day 09:00.
    expect(nextLocalHour(utc('2024-01-01T19:00:00Z'), 'Asia/Shanghai', 9)).toBe(utc('2024-01-02T01:00:00Z'));
    // Exactly 09:00 → tomorrow; one ms before → today.
    const nine = utc('2024-01-02T01:00:00Z');
    expect(nextLocalHour(nine, 'Asia/Shanghai', 9)).toBe(nine + 24 * HOUR);
    expect(nextLocalHour(nine - 1, 'Asia/Shanghai', 9)).toBe(nine);
  });

  it('crosses the date line direction correctly for western zones', () => {
    // 2024-01-01T03:00Z is 22:00 on Dec 31 in New York → 09:00 Jan 1 New York = 14:00Z.
    expect(nextLocalHour(utc('2024-01-01T03:00:00Z'), 'America/New_York', 9)).toBe(
      utc('2024-01-01T14:00:00Z'),
    );
  });

  it('uses the new offset after a DST change', () => {
    // Saturday 22:00 EST before spring-forward → Sunday 09:00 EDT = 13:00Z.
    expect(nextLocalHour(utc('2024-03-10T03:00:00Z'), 'America/New_York', 9)).toBe(
      utc('2024-03-10T13:00:00Z'),
    );
    // Saturday 22:00 EDT before fall-back → Sunday 09:00 EST = 14:00Z.
    expect(nextLocalHour(utc('2024-11-03T02:00:00Z'), 'America/New_York', 9)).toBe(
      utc('2024-11-03T14:00:00Z'),
    );
  });

  it('in a spring-forward gap returns the instant the clock jumps past the hour', () => {
    // 02:00 does not exist in New York on 2024-03-10; the clock jumps 01:59:59 → 03:00 at 07:00Z.
    expect(nextLocalHour(utc('2024-03-10T05:00:00Z'), 'America/New_York', 2)).toBe(
      utc('2024-03-10T07:00:00Z'),
    );
  });

  it('in a fall-back overlap returns the first occurrence after ts', () => {
    const tz = 'America/New_York';
    // From 00:00 EDT: 01:00 EDT = 05:00Z.
    expect(nextLocalHour(utc('2024-11-03T04:00:00Z'), tz, 1)).toBe(utc('2024-11-03T05:00:00Z'));
    // From 01:30 EDT: 01:00 shows again as EST = 06:00Z.
    expect(nextLocalHour(utc('2024-11-03T05:30:00Z'), tz, 1)).toBe(utc('2024-11-03T06:00:00Z'));
    // From 01:30 EST: next day 01:00 EST = 2024-11-04 06:00Z.
    expect(nextLocalHour(utc('2024-11-03T06:30:00Z'), tz, 1)).toBe(utc('2024-11-04T06:00:00Z'));
  });

  it('always lands on hour:00 local, within two days, strictly after ts', () => {
    const zones = ['Asia/Shanghai', 'America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'Pacific/Auckland'];
    fc.assert(
      fc.property(
        fc.integer({ min: utc('2010-01-01T00:00:00Z'), max: utc('2035-01-01T00:00:00Z') }),
        fc.constantFrom(...zones),
        fc.integer({ min: 0, max: 23 }),
        (ts, tz, hour) => {
          const next = nextLocalHour(ts, tz, hour);
          expect(next).toBeGreaterThan(ts);
          expect(next - ts).toBeLessThanOrEqual(26 * HOUR);
          // Gaps never hit hour:00 in these zones except at 02:00/03:00 transitions.
          if (localHour(next, tz) === hour) {
            const local = next + utcOffsetMinutes(next, tz) * MIN;
            expect(((local % HOUR) + HOUR) % HOUR).toBe(0);
          } else {
            expect(localHour(next - 1, tz)).toBe((hour + 23) % 24);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('rejects hours outside 0..23 and resolves unknown zones as the fallback', () => {
    expect(() => nextLocalHour(0, 'UTC', 24)).toThrow(RangeError);
    expect(() => nextLocalHour(0, 'UTC', 1.5)).toThrow(RangeError);
    expect(nextLocalHour(utc('2024-01-01T14:00:00Z'), 'Bad/Zone', 9, 'Asia/Shanghai')).toBe(
      utc('2024-01-02T01:00:00Z'),
    );
  });
});
