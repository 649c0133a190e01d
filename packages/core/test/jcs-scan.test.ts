/**
 * The one-pass canonical-text check (`isCanonicalJson`, used by `parseCanonicalJson`) against
 * the definition it replaces on the fast path: text is canonical when
 * `canonicalize(JSON.parse(text)) === text`. Random canonical texts, random mutations of them,
 * other serialisations of the same values and random character soup must get the same answer.
 */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { CoreError, canonicalize, isCanonicalJson, parseCanonicalJson } from '@tibet/core';

/** The previous acceptance rule, verbatim. */
function reference(text: string): { ok: true } | { ok: false; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, message: 'malformed JSON' };
  }
  let again: string;
  try {
    again = canonicalize(v);
  } catch {
    return { ok: false, message: 'JSON value cannot be canonicalized' };
  }
  return again === text
    ? { ok: true }
    : { ok: false, message: 'JSON text is not in RFC 8785 form' };
}

function same(text: string): void {
  const want = reference(text);
  expect(isCanonicalJson(text), JSON.stringify(text)).toBe(want.ok);
  try {
    const v = parseCanonicalJson(text);
    expect(want.ok, JSON.stringify(text)).toBe(true);
    expect(canonicalize(v)).toBe(text);
  } catch (e) {
    expect(CoreError.is(e) && e.code === 'NON_CANONICAL_JSON').toBe(true);
    expect(want).toEqual({ ok: false, message: (e as Error).message });
  }
}

const SPICE = [
  '"', '\\', 'u', '0', '1', '9', 'a', 'f', 'F', 'e', 'E', '+', '-', '.', ',', ':', '{', '}',
  '[', ']', ' ', '\t', '\n', '/', 'b', 'n', 'r', 't', 'true', 'null', '\ud800', '\udc00',
  '\ud83d\ude00', '\u2028', '\u007f', '\u0000', '\u001f', 'é', '\\u00', '\\u001f', '\\u001F',
  '\\u0008', '\\u0041', '\\ud83d', '\\ude00', '\\"', '\\\\', '\\/', '"a":1', '"a"', '"__proto__"',
  '0.0', '1e2', '1E2', '1e+21', '-0', '00', '1.', '.5', '5e-324', '1e400',
]; // prettier-ignore

/** A JSON value generator with the characters and numbers where canonical forms differ. */
const anyKey = fc.oneof(
  fc.string({ maxLength: 4 }),
  fc.constantFrom('a', 'b', 'aa', 'A', '1', '10', '2', '__proto__', 'é', '\ud83d\ude00', '\uff61', '\u0000', '"', '\\'),
  fc.string({ unit: 'binary', maxLength: 3 }),
); // prettier-ignore
const anyString = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.string({ unit: fc.constantFrom('\u0000', '\b', '\t', '\n', '\f', '\r', '\u001f', '\u007f', '"', '\\', '/', '\u2028', '\ud83d', '\ude00', 'x'), maxLength: 6 }),
); // prettier-ignore
const anyNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e21, 1e-7, 123456789012345, 1234567890123456, 2 ** 53, 0.1, 5e-324, 1.7976931348623157e308),
); // prettier-ignore
const { json } = fc.letrec((tie) => ({
  json: fc.oneof(
    { depthSize: 'small' },
    anyString,
    anyNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 4 }),
    fc.dictionary(anyKey, tie('json'), { maxKeys: 5 }),
  ),
}));

function canonicalOrNull(v: unknown): string | null {
  try {
    return canonicalize(v);
  } catch {
    return null;
  }
}

const mutation = fc.record({
  at: fc.nat(),
  del: fc.nat({ max: 3 }),
  ins: fc.constantFrom(...SPICE, ''),
});

function mutate(text: string, m: { at: number; del: number; ins: string }): string {
  const at = text.length === 0 ? 0 : m.at % (text.length + 1);
  return text.slice(0, at) + m.ins + text.slice(at + m.del);
}

describe('isCanonicalJson agrees with canonicalize(JSON.parse(text)) === text', () => {
  test.prop([json], { numRuns: 2000 })('canonical texts of random values', (v) => {
    const t = canonicalOrNull(v);
    if (t !== null) same(t);
    same(JSON.stringify(v)); // insertion order, lone surrogates escaped, -0 as 0 …
    same(JSON.stringify(v, null, 1));
  });

  test.prop([json, fc.array(mutation, { minLength: 1, maxLength: 3 })], { numRuns: 4000 })(
    'random mutations of canonical texts',
    (v, ms) => {
      let t = canonicalOrNull(v) ?? JSON.stringify(v);
      for (const m of ms) t = mutate(t, m);
      same(t);
    },
  );

  test.prop([fc.array(fc.constantFrom(...SPICE), { maxLength: 12 })], { numRuns: 3000 })(
    'character soup',
    (parts) => same(parts.join('')),
  );

  test.prop([fc.double({ noNaN: true }), fc.nat({ max: 20 })], { numRuns: 2000 })(
    'numbers in every notation',
    (d, k) => {
      for (const t of [
        String(d),
        d.toExponential(),
        d.toExponential(k),
        d.toPrecision(k + 1),
        Number.isFinite(d) && Math.abs(d) < 1e21 ? d.toFixed(k) : String(d),
        `0${String(d)}`,
        String(d).replace('e', 'E'),
        String(d).replace('e+', 'e'),
        `[${String(d)}]`,
        `{"n":${String(d)}}`,
      ])
        same(t);
    },
  );

  test.prop([fc.nat({ max: 0xffff }), fc.constantFrom('x', '"', '\\')], { numRuns: 2000 })(
    'every \\u escape, upper and lower case',
    (code, tail) => {
      const hex = code.toString(16).padStart(4, '0');
      for (const t of [
        `"\\u${hex}${tail === '"' ? '' : tail}"`,
        `"\\u${hex.toUpperCase()}"`,
        `{"\\u${hex}":1}`,
        `"${String.fromCharCode(code)}"`,
        `{"${String.fromCharCode(code)}":1,"a":2}`,
      ])
        same(t);
    },
  );

  it('member order, duplicates and escaped names', () => {
    for (const t of [
      '{"a":1,"b":2}',
      '{"b":2,"a":1}',
      '{"a":1,"a":1}',
      '{"a":1,"a":2}',
      '{"":0,"a":1}',
      '{"a":1,"":0}',
      '{"a":1,"aa":2}',
      '{"aa":2,"a":1}',
      '{"10":1,"2":2}',
      '{"2":1,"10":2}',
      '{"\\n":1,"a":2}',
      '{"\\u001f":1,"\\n":2}',
      '{"\\n":1,"\\u001f":2}',
      '{"\\"":1,"\\\\":2}',
      '{"\\\\":1,"\\"":2}',
      '{"\ud83d\ude00":1,"\uff61":2}',
      '{"\uff61":1,"\ud83d\ude00":2}',
      '{"__proto__":1,"a":2}',
      '{"__proto__":1,"__proto__":1}',
      '{}',
      '[]',
      '{"a":{}}',
      '{"a":[]}',
      '[{},[],""]',
      ' {}',
      '{} ',
      '{ }',
      '[ ]',
      '\ufeff{}',
      '',
      'true',
      'tru',
      'nul',
      'falsey',
      '"\u2028\u2029\u007f"',
      '"\\u007f"',
      '"\\/"',
      '"/"',
    ])
      same(t);
  });

  it('nesting up to 128 levels and no deeper', () => {
    for (const d of [126, 127, 128, 129, 130])
      for (const inner of ['', '1', '"x"', '{}', '[]'])
        for (const t of ['['.repeat(d) + inner + ']'.repeat(d), '{"a":'.repeat(d) + (inner || '0') + '}'.repeat(d)])
          same(t); // prettier-ignore
  });

  it('rejects what is not a string', () => {
    expect(isCanonicalJson(1 as unknown as string)).toBe(false);
  });
});
