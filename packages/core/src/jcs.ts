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
 * The RFC 8785 canonical form of a JSON value as a string. Properties whose value is
 * `undefined` are left out (as JSON.stringify does); anything that is not JSON — a
 * non-finite number, a BigInt, a Date, a typed array, a lone surrogate — throws CoreError
 * `JSON_NOT_CANONICALIZABLE`.
 */
export function canonicalize(value: unknown): string {
  return ser(value, '$', 0);
}

/** The UTF-8 bytes of {@link canonicalize}. */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalize(value));
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
