/** A clock that tests can control. Time is recorded, never used to reorder history. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that always returns the same instant. */
export function fixedClock(at: Date | string): Clock {
  const t = new Date(at).getTime();
  if (Number.isNaN(t)) throw new TypeError('"at" is not a valid date');
  return { now: () => new Date(t) };
}

/** A clock that moves only when told to (and may be moved backwards, to test that). */
export interface ManualClock extends Clock {
  set(at: Date | string): void;
  advance(ms: number): void;
}

export function manualClock(start: Date | string): ManualClock {
  let t = new Date(start).getTime();
  if (Number.isNaN(t)) throw new TypeError('"start" is not a valid date');
  return {
    now: () => new Date(t),
    set(at) {
      const n = new Date(at).getTime();
      if (Number.isNaN(n)) throw new TypeError('"at" is not a valid date');
      t = n;
    },
    advance(ms) {
      t += ms;
    },
  };
}

const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;

/** RFC 3339 UTC with millisecond precision and `Z`, e.g. `2026-11-28T15:20:16.123Z`. */
export function rfc3339(d: Date): string {
  return d.toISOString();
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Parse a strict RFC 3339 UTC (`Z`) timestamp; returns undefined if it is not one. Fields are
 * range-checked here (no month 13, no 30 February, no 24:00, no leap second 60: RFC 3339
 * permits it, JavaScript time cannot hold it), so nothing is rolled over; a fraction keeps its
 * first three digits (milliseconds, truncated). Years 0000–9999.
 */
export function parseRfc3339(s: unknown): Date | undefined {
  if (typeof s !== 'string') return undefined;
  const m = RFC3339_UTC.exec(s);
  if (!m) return undefined;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const sec = Number(m[6]);
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return undefined;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  if (d > (mo === 2 && leap ? 29 : DAYS_IN_MONTH[mo - 1]!)) return undefined;
  const ms = m[7] ? Number(`${m[7].slice(1)}00`.slice(0, 3)) : 0;
  const t = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, sec, ms);
  return t;
}
