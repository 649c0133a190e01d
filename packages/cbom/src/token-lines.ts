/**
 * Log tokens whose exact JSON text the walk found inside their log line. The walk parses each
 * token from its line (a line `parseRecord` accepted, so the slice is the token's RFC 8785
 * text), freezes it (deeply: a token is signed evidence, and nothing may change it after the
 * walk), and notes where in the line it is. `renderHtml` then carries such a token once,
 * inside its line, without serialising it again to prove that the two are the same: a frozen
 * token cannot have changed since it was parsed from that very text. Any other token (not
 * from a walk, or a copy) is compared by its JSON text.
 */
import type { TibetToken } from '@tibet/core';

const inLine = new WeakMap<object, { line: string; start: number; end: number }>();

function deepFreeze(v: unknown): void {
  if (typeof v !== 'object' || v === null) return;
  Object.freeze(v);
  // (members that are not objects are tested here, not in a call each: a token has ~30)
  if (Array.isArray(v))
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'object' && x !== null) deepFreeze(x);
    }
  // (for…in, not Object.keys: no array per object; parsed JSON has only own plain members)
  else
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      if (typeof x === 'object' && x !== null) deepFreeze(x);
    }
}

/**
 * Freeze `token` and note that `line.slice(start, end)` is its JSON text — only for a token
 * parsed from exactly that slice.
 */
export function noteTokenInLine(token: TibetToken, line: string, start: number, end: number): void {
  deepFreeze(token);
  inLine.set(token, { line, start, end });
}

/** Where `line` holds `token`'s JSON text, when the walk noted it (see {@link noteTokenInLine}). */
export function tokenInLine(token: unknown, line: string): [number, number] | undefined {
  if (typeof token !== 'object' || token === null) return undefined;
  const at = inLine.get(token);
  return at !== undefined && at.line === line ? [at.start, at.end] : undefined;
}
