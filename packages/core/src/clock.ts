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

/** Parse a strict RFC 3339 UTC (`Z`) timestamp; returns undefined if it is not one. */
export function parseRfc3339(s: unknown): Date | undefined {
  if (typeof s !== 'string' || !RFC3339_UTC.test(s)) return undefined;
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return undefined;
  // Date rolls impossible dates over (02-30 → 03-02) and accepts 24:00; RFC 3339 allows neither.
  return d.toISOString().slice(0, 19) === s.slice(0, 19) ? d : undefined;
}
