/**
 * `canonicalize` against the serialiser it replaced on the fast path, kept here verbatim as the
 * oracle: for random values — JSON, and values that are not (non-finite numbers, lone
 * surrogates in values and names, holes and undefined, non-plain objects, deep nesting) — the
 * same text, or the same error code and message.
 */
import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { CoreError, canonicalize } from '@tibet/core';

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function fail(path: string, what: string): never {
  throw new CoreError('JSON_NOT_CANONICALIZABLE', `cannot canonicalize ${what} at ${path}`);
}

function str(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) fail(path, 'a string with a lone surrogate');
  return JSON.stringify(s);
}

/** The previous serialiser, verbatim. */
function ser(v: unknown, path: string, depth: number): string {
  if (depth > 128) fail(path, 'nesting deeper than 128');
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) fail(path, 'a non-finite number');
      return Object.is(v, -0) ? '0' : String(v);
    case 'string':
      return str(v, path);
    case 'object': {
      if (Array.isArray(v)) {
        return `[${Array.from(v, (x, i) => (x === undefined ? fail(`${path}[${i}]`, 'undefined') : ser(x, `${path}[${i}]`, depth + 1))).join(',')}]`;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) fail(path, 'a non-plain object');
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${str(k, path)}:${ser(obj[k], `${path}.${k}`, depth + 1)}`).join(',')}}`;
    }
    default:
      return fail(path, `a value of type ${typeof v}`);
  }
}

function outcome(f: () => string): { text: string } | { code: string; message: string } {
  try {
    return { text: f() };
  } catch (e) {
    if (!CoreError.is(e)) throw e;
    return { code: e.code, message: e.message };
  }
}

function same(v: unknown): void {
  expect(outcome(() => canonicalize(v))).toEqual(outcome(() => ser(v, '$', 0)));
}

const oddString = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
  fc.constantFrom('\ud800', '\udc00', 'a\ud83d', '\ud83d\ude00', '\u0000', '"\\', '\u2028', 'é'),
);
const oddNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(-0, NaN, Infinity, -Infinity, 1e21, 5e-324),
);
const oddLeaf = fc.oneof(
  { weight: 6, arbitrary: fc.oneof(oddString, oddNumber, fc.boolean(), fc.constant(null)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      undefined,
      new Date(0),
      new Uint8Array(2),
      new Map(),
      () => 1,
      Symbol('s'),
    ),
  },
);
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    oddLeaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.sparseArray(tie('value'), { maxLength: 3 }),
    fc.dictionary(oddString, tie('value'), { maxKeys: 5 }),
    fc.dictionary(oddString, tie('value'), { maxKeys: 3, noNullPrototype: false }),
  ),
}));

describe('canonicalize agrees with the previous serialiser', () => {
  test.prop([value], { numRuns: 6000 })('random values, JSON or not', (v) => same(v));

  test.prop([fc.integer({ min: 120, max: 135 }), fc.boolean()], { numRuns: 40 })(
    'nesting around the limit',
    (depth, arrays) => {
      let v: unknown = 1;
      for (let i = 0; i < depth; i++) v = arrays ? [v] : { k: v };
      same(v);
    },
  );
});
