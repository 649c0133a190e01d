/**
 * RFC 8785 JSON Canonicalization Scheme (JCS). Written here rather than taken from a
 * dependency because signatures depend on these exact bytes; tested against the RFC's
 * vectors.
 */
import { utf8 } from './bytes.js';
import { CoreError } from './errors.js';

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function fail(path: string, what: string): never {
  throw new CoreError('JSON_NOT_CANONICALIZABLE', `cannot canonicalize ${what} at ${path}`);
}

function str(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) fail(path, 'a string with a lone surrogate');
  // ECMAScript JSON.stringify escapes exactly as RFC 8785 §3.2.2.2 requires for well-formed
  // strings: \b \t \n \f \r \" \\ as short forms, other controls as \u00xx (lowercase).
  return JSON.stringify(s);
}

function ser(v: unknown, path: string, depth: number): string {
  if (depth > 128) fail(path, 'nesting deeper than 128');
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) fail(path, 'a non-finite number');
      // ECMAScript Number serialization is the one RFC 8785 §3.2.2.3 specifies; -0 → "0".
      return Object.is(v, -0) ? '0' : String(v);
    case 'string':
      return str(v, path);
    case 'object': {
      if (Array.isArray(v)) {
        // Array.from visits holes (as undefined) where map would skip them and emit "[1,,2]".
        return `[${Array.from(v, (x, i) => (x === undefined ? fail(`${path}[${i}]`, 'undefined') : ser(x, `${path}[${i}]`, depth + 1))).join(',')}]`;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) fail(path, 'a non-plain object');
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort(); // UTF-16 code unit order, as RFC 8785 §3.2.3 requires
      return `{${keys.map((k) => `${str(k, path)}:${ser(obj[k], `${path}.${k}`, depth + 1)}`).join(',')}}`;
    }
    default:
      return fail(path, `a value of type ${typeof v}`);
  }
}

/**
 * Thrown by {@link fast} for anything it does not serialise ({@link ser} then names why): one
 * object made once, so that refusing costs no stack capture.
 */
const NOT_PLAIN = new Error('not canonicalizable');
const ANY_SURROGATE = /[\ud800-\udfff]/;

function fastStr(s: string): string {
  // V8 answers ANY_SURROGATE without a scan for a one-byte string; only a string that holds a
  // surrogate pays for the pairing check
  if (ANY_SURROGATE.test(s) && LONE_SURROGATE.test(s)) throw NOT_PLAIN;
  return JSON.stringify(s);
}

/**
 * {@link ser} without the path bookkeeping (no string is built for a member's path): the
 * same text for every value ser accepts, and {@link NOT_PLAIN} for every value it refuses.
 */
function fast(v: unknown, depth: number): string {
  if (depth > 128) throw NOT_PLAIN;
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw NOT_PLAIN;
      return Object.is(v, -0) ? '0' : String(v);
    case 'string':
      return fastStr(v);
    case 'object': {
      if (Array.isArray(v)) {
        const a = v as unknown[];
        let out = '[';
        for (let i = 0; i < a.length; i++) {
          const x = a[i]; // a hole reads as undefined, which ser refuses too
          if (x === undefined) throw NOT_PLAIN;
          out += (i === 0 ? '' : ',') + fast(x, depth + 1);
        }
        return out + ']';
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN;
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj);
      let sorted = true;
      for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1]! < keys[i]!;
      if (!sorted) keys.sort(); // UTF-16 code unit order, as RFC 8785 §3.2.3 requires
      let out = '{';
      let first = true;
      for (const k of keys) {
        const x = obj[k];
        if (x === undefined) continue;
        out += (first ? '' : ',') + fastStr(k) + ':' + fast(x, depth + 1);
        first = false;
      }
      return out + '}';
    }
    default:
      throw NOT_PLAIN;
  }
}

/**
 * The RFC 8785 canonical form of a JSON value as a string. Properties whose value is
 * `undefined` are left out (as JSON.stringify does); anything that is not JSON — a
 * non-finite number, a BigInt, a Date, a typed array, a lone surrogate — throws CoreError
 * `JSON_NOT_CANONICALIZABLE`.
 */
export function canonicalize(value: unknown): string {
  try {
    return fast(value, 0);
  } catch (e) {
    if (e !== NOT_PLAIN) throw e;
  }
  // refused: the path-keeping serialiser finds where and throws the error that says so
  return ser(value, '$', 0);
}

/** The UTF-8 bytes of {@link canonicalize}. */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalize(value));
}

/**
 * Whether `canonicalize(v)` would succeed, without building its text: the same rules as
 * {@link canonicalize} (depth ≤ 128; finite numbers; strings and member names without lone
 * surrogates; arrays without undefined elements or holes; plain objects, members whose value
 * is undefined left out; nothing else).
 */
export function isCanonicalizable(v: unknown): boolean {
  return canonicalizable(v, 0);
}

function canonicalizable(v: unknown, depth: number): boolean {
  if (depth > 128) return false;
  if (v === null) return true;
  switch (typeof v) {
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'string':
      return !LONE_SURROGATE.test(v);
    case 'object': {
      if (Array.isArray(v)) {
        // a hole reads as undefined, as in ser()
        for (let i = 0; i < v.length; i++) {
          const x = (v as unknown[])[i];
          if (x === undefined || !canonicalizable(x, depth + 1)) return false;
        }
        return true;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      const obj = v as Record<string, unknown>;
      for (const k of Object.keys(obj)) {
        const x = obj[k];
        if (x === undefined) continue;
        if (LONE_SURROGATE.test(k) || !canonicalizable(x, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

// ---------------------------------------------------------------- canonical text check
//
// A single pass over JSON text that accepts exactly the texts `canonicalize(JSON.parse(t))`
// reproduces: no whitespace; `true`/`false`/`null`; numbers written as ECMAScript writes
// them (String(Number(x)) === x, so no `-0`, `1.0`, `1e2`, leading zeros or non-finite
// values); strings with only the escapes JSON.stringify emits (the seven short forms and
// `\u00xx` in lowercase for the other controls below U+0020) and no lone surrogate; members
// in strictly increasing UTF-16 order of their names (so no duplicates); nesting ≤ 128. It
// allocates nothing for the common case, where re-serialising a parsed line allocated its
// whole text again.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

// eslint-disable-next-line no-control-regex
const PLAIN = /[^"\\\u0000-\u001f\ud800-\udfff]*/y;

// What can make a string token more than "quote, characters, quote": an escape, a surrogate
// (must be checked for pairing), a raw control (not JSON). Each is tested on its own: V8 answers
// the first two without a scan for most texts (a one-byte string holds no surrogate).
const SURROGATE = /[\ud800-\udfff]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f]/;

/** Whether every string token of `text` ends at its next quote; `parsed`: JSON.parse accepted it. */
function isPlain(text: string, parsed: boolean): boolean {
  // JSON.parse refuses raw controls inside strings, and the scanner refuses them elsewhere
  return text.indexOf('\\') < 0 && !SURROGATE.test(text) && (parsed || !CONTROL.test(text));
}

/** Scanner state: the text, the position of the next character, and {@link isPlain} of the text. */
interface Scan {
  s: string;
  i: number;
  plain: boolean;
}

/** A string token at `s.i` (on its opening quote); returns its end (after the closing quote) or -1; sets `esc`. */
function scanString(sc: Scan, esc: { v: boolean }): number {
  const s = sc.s;
  esc.v = false;
  if (sc.plain) {
    const q = s.indexOf('"', sc.i + 1);
    return q < 0 ? -1 : q + 1;
  }
  let i = sc.i + 1;
  const n = s.length;
  for (;;) {
    PLAIN.lastIndex = i; // skip a run of characters that stand for themselves
    PLAIN.test(s);
    i = PLAIN.lastIndex;
    if (i >= n) return -1;
    const c = s.charCodeAt(i);
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c === BACKSLASH) {
      esc.v = true;
      const e = s.charCodeAt(i + 1);
      // \" \\ \b \f \n \r \t
      if (
        e === 0x22 ||
        e === 0x5c ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        i += 2;
        continue;
      }
      // \u00xx, lowercase hex, only for a control that has no short form
      if (e !== 0x75 || s.charCodeAt(i + 2) !== ZERO || s.charCodeAt(i + 3) !== ZERO) return -1;
      const h = s.charCodeAt(i + 4);
      const l = s.charCodeAt(i + 5);
      if (h !== 0x30 && h !== 0x31) return -1;
      let lv: number;
      if (l >= 0x30 && l <= 0x39) lv = l - 0x30;
      else if (l >= 0x61 && l <= 0x66) lv = l - 0x61 + 10;
      else return -1;
      const code = (h - 0x30) * 16 + lv;
      if (code === 8 || code === 9 || code === 10 || code === 12 || code === 13) return -1;
      i += 6;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      // a surrogate must be the high half of a pair
      if (c > 0xdbff) return -1;
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1;
      i += 2;
      continue;
    }
    i++;
  }
}

/** -1, 0 or 1: the UTF-16 order of two member names given as string tokens (quotes included). */
function compareNames(
  s: string,
  a0: number,
  a1: number,
  aEsc: boolean,
  b0: number,
  b1: number,
  bEsc: boolean,
): number {
  if (aEsc || bEsc) {
    const a = JSON.parse(s.slice(a0, a1)) as string;
    const b = JSON.parse(s.slice(b0, b1)) as string;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  // without escapes a name is the text between its quotes
  const la = a1 - a0 - 2;
  const lb = b1 - b0 - 2;
  const m = la < lb ? la : lb;
  for (let k = 1; k <= m; k++) {
    const x = s.charCodeAt(a0 + k);
    const y = s.charCodeAt(b0 + k);
    if (x !== y) return x < y ? -1 : 1;
  }
  return la < lb ? -1 : la > lb ? 1 : 0;
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

function scanNumber(sc: Scan): boolean {
  const s = sc.s;
  const start = sc.i;
  let i = start;
  const n = s.length;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (!(isDigit(c) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === MINUS)) break;
  }
  sc.i = i;
  // fast path: a plain integer of at most 15 digits without a leading zero is its own form
  let j = start;
  if (s.charCodeAt(j) === MINUS) j++;
  const digits = i - j;
  if (digits >= 1 && digits <= 15) {
    const first = s.charCodeAt(j);
    let plain = first >= 0x31 && first <= NINE;
    for (let k = j + 1; plain && k < i; k++) plain = isDigit(s.charCodeAt(k));
    if (plain) return true;
    if (digits === 1 && first === ZERO && j === start) return true; // "0"
  }
  // otherwise: exactly the ECMAScript form of a finite number (which is also valid JSON)
  const tok = s.slice(start, i);
  const v = Number(tok);
  return Number.isFinite(v) && String(v) === tok;
}

function scanValue(sc: Scan, depth: number, esc: { v: boolean }): boolean {
  if (depth > 128) return false;
  const s = sc.s;
  const c = s.charCodeAt(sc.i);
  switch (c) {
    case LBRACE: {
      sc.i++;
      if (s.charCodeAt(sc.i) === RBRACE) {
        sc.i++;
        return true;
      }
      let p0 = -1;
      let p1 = -1;
      let pEsc = false;
      for (;;) {
        if (s.charCodeAt(sc.i) !== QUOTE) return false;
        const k0 = sc.i;
        const k1 = scanString(sc, esc);
        if (k1 < 0) return false;
        const kEsc = esc.v;
        if (p0 >= 0 && compareNames(s, p0, p1, pEsc, k0, k1, kEsc) >= 0) return false;
        p0 = k0;
        p1 = k1;
        pEsc = kEsc;
        sc.i = k1;
        if (s.charCodeAt(sc.i) !== COLON) return false;
        sc.i++;
        if (!scanValue(sc, depth + 1, esc)) return false;
        const d = s.charCodeAt(sc.i);
        sc.i++;
        if (d === RBRACE) return true;
        if (d !== COMMA) return false;
      }
    }
    case LBRACKET: {
      sc.i++;
      if (s.charCodeAt(sc.i) === RBRACKET) {
        sc.i++;
        return true;
      }
      for (;;) {
        if (!scanValue(sc, depth + 1, esc)) return false;
        const d = s.charCodeAt(sc.i);
        sc.i++;
        if (d === RBRACKET) return true;
        if (d !== COMMA) return false;
      }
    }
    case QUOTE: {
      const e = scanString(sc, esc);
      if (e < 0) return false;
      sc.i = e;
      return true;
    }
    case 0x74: // true
      if (!s.startsWith('true', sc.i)) return false;
      sc.i += 4;
      return true;
    case 0x66: // false
      if (!s.startsWith('false', sc.i)) return false;
      sc.i += 5;
      return true;
    case 0x6e: // null
      if (!s.startsWith('null', sc.i)) return false;
      sc.i += 4;
      return true;
    default:
      if (c === MINUS || isDigit(c)) return scanNumber(sc);
      return false;
  }
}

/**
 * Whether `text` is exactly the RFC 8785 canonical form of the JSON value it holds (so
 * `canonicalize(JSON.parse(text)) === text`), checked in one pass without parsing or
 * re-serialising it.
 */
export function isCanonicalJson(text: string): boolean {
  if (typeof text !== 'string') return false;
  return scanCanonical(text, false);
}

function scanCanonical(text: string, parsed: boolean): boolean {
  const sc: Scan = { s: text, i: 0, plain: isPlain(text, parsed) };
  return scanValue(sc, 0, { v: false }) && sc.i === text.length;
}

/**
 * Parse JSON text that must already be in RFC 8785 canonical form (a signed line or token).
 * Throws CoreError `NON_CANONICAL_JSON` for malformed or non-canonical text, including
 * duplicate keys and insignificant whitespace.
 */
export function parseCanonicalJson(text: string): JsonValue {
  let v: JsonValue;
  try {
    v = JSON.parse(text) as JsonValue;
  } catch (cause) {
    throw new CoreError('NON_CANONICAL_JSON', 'malformed JSON', { cause });
  }
  // The one-pass check proves the common case; whatever it does not accept goes through the
  // full re-serialisation below, which also names the reason.
  if (scanCanonical(text, true)) return v;
  let again: string;
  try {
    again = canonicalize(v);
  } catch (cause) {
    throw new CoreError('NON_CANONICAL_JSON', 'JSON value cannot be canonicalized', { cause });
  }
  if (again !== text)
    throw new CoreError('NON_CANONICAL_JSON', 'JSON text is not in RFC 8785 form');
  return v;
}
