/**
 * ISO 8601 durations of fixed length, for the dead-man interval: weeks, days, hours,
 * minutes and seconds (`P30D`, `PT12H`, `P1DT2H30M`, `P2W`, `PT0.5S`). Years and months
 * have no fixed length and are refused.
 */
const DURATION =
  /^P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10}(?:\.\d{1,3})?)S)?)?$/;

/** The shortest and longest dead-man interval accepted (1 s … 100 years of days). */
export const MIN_INTERVAL_MS = 1000;
export const MAX_INTERVAL_MS = 36_525 * 86_400_000;

/** Milliseconds of an ISO 8601 duration, or undefined when it is not one this accepts. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v !== 'string' || v.length > 40) return undefined;
  const m = DURATION.exec(v);
  if (!m || v === 'P' || v.endsWith('T')) return undefined;
  const [, w, d, h, min, s] = m;
  if ([w, d, h, min, s].every((x) => x === undefined)) return undefined;
  const ms =
    Number(w ?? 0) * 7 * 86_400_000 +
    Number(d ?? 0) * 86_400_000 +
    Number(h ?? 0) * 3_600_000 +
    Number(min ?? 0) * 60_000 +
    Math.round(Number(s ?? 0) * 1000);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A human form of a span of milliseconds: `2d 3h 4m 5s`, `0s`. */
export function formatSpan(ms: number): string {
  if (ms <= 0) return '0s';
  const s = Math.floor(ms / 1000);
  const parts: string[] = [];
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (sec || parts.length === 0) parts.push(`${sec}s`);
  return parts.join(' ');
}
