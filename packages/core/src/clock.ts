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
  const ms = rfc3339Millis(s);
  return ms === undefined ? undefined : new Date(ms);
}

/**
 * The instant of a strict RFC 3339 UTC timestamp in milliseconds since the epoch, by exactly
 * the rules of {@link parseRfc3339} (which is built on it), without building a Date; undefined
 * if it is not one.
 */
export function rfc3339Millis(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  let y: number, mo: number, d: number, h: number, mi: number, sec: number, ms: number;
  if (s.length === 24 && isMillisForm(s)) {
    // the form rfc3339() writes (fixed positions): read the digits without a regex match
    y = num(s, 0, 4);
    mo = num(s, 5, 7);
    d = num(s, 8, 10);
    h = num(s, 11, 13);
    mi = num(s, 14, 16);
    sec = num(s, 17, 19);
    ms = num(s, 20, 23);
  } else {
    const m = RFC3339_UTC.exec(s);
    if (!m) return undefined;
    y = Number(m[1]);
    mo = Number(m[2]);
    d = Number(m[3]);
    h = Number(m[4]);
    mi = Number(m[5]);
    sec = Number(m[6]);
    ms = m[7] ? Number(`${m[7].slice(1)}00`.slice(0, 3)) : 0;
  }
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return undefined;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  if (d > (mo === 2 && leap ? 29 : DAYS_IN_MONTH[mo - 1]!)) return undefined;
  // Date.UTC maps years 0–99 to 1900–1999: setUTCFullYear for those
  if (y >= 100) return Date.UTC(y, mo - 1, d, h, mi, sec, ms);
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, sec, ms);
  return t.getTime();
}

const DIGIT_AT = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];

/** `YYYY-MM-DDTHH:MM:SS.sssZ` exactly (ASCII digits where digits go). */
function isMillisForm(s: string): boolean {
  if (
    s.charCodeAt(4) !== 0x2d ||
    s.charCodeAt(7) !== 0x2d ||
    s.charCodeAt(10) !== 0x54 ||
    s.charCodeAt(13) !== 0x3a ||
    s.charCodeAt(16) !== 0x3a ||
    s.charCodeAt(19) !== 0x2e ||
    s.charCodeAt(23) !== 0x5a
  )
    return false;
  for (const i of DIGIT_AT) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** The decimal value of the ASCII digits s[from, to). */
function num(s: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) v = v * 10 + (s.charCodeAt(i) - 0x30);
  return v;
}
