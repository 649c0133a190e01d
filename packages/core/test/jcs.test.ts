/** RFC 8785 canonical JSON: edge cases and properties (the RFC's own vectors are in vectors.test.ts). */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { canonicalBytes, canonicalize, parseCanonicalJson, toHex } from '@tibet/core';
import { expectCoreError } from './helpers.js';

const notCanonicalizable = (v: unknown) =>
  expectCoreError(() => canonicalize(v), 'JSON_NOT_CANONICALIZABLE');
const nonCanonical = (text: string) =>
  expectCoreError(() => parseCanonicalJson(text), 'NON_CANONICAL_JSON');

/** Deep copy of a JSON value with every object's keys inserted in a shuffled order. */
function shuffled(v: unknown, rnd: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffled(x, rnd));
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      Object.defineProperty(out, k, {
        value: shuffled((v as Record<string, unknown>)[k], rnd),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}

describe('canonicalize: strings', () => {
  it('rejects lone surrogates in values and keys, accepts proper pairs', () => {
    for (const s of ['\ud800', '\udfff', 'a\ud83d', '\ude00b', '\udc00\ud800', 'x\ud83dy']) {
      notCanonicalizable(s);
      notCanonicalizable({ k: s });
      notCanonicalizable({ [s]: 1 });
      notCanonicalizable([s]);
    }
    expect(canonicalize('\ud83d\ude00')).toBe('"😀"');
    expect(toHex(canonicalBytes('😀'))).toBe('22f09f988022');
  });

  it('escapes exactly as RFC 8785 §3.2.2.2 says', () => {
    expect(canonicalize('\b\t\n\f\r"\\/')).toBe('"\\b\\t\\n\\f\\r\\"\\\\/"');
    expect(canonicalize('\u0000\u0001\u001f')).toBe('"\\u0000\\u0001\\u001f"');
    // DEL, C1 controls, U+2028/2029 and non-ASCII are emitted as they are.
    expect(canonicalize('\u007f\u0080\u2028\u2029é€')).toBe('"\u007f\u0080\u2028\u2029é€"');
  });

  it('sorts keys by UTF-16 code units, not code points or locale', () => {
    // U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FB33 (code-point order would differ).
    expect(canonicalize({ '\ufb33': 1, '\u{1f600}': 2, a: 3, B: 4, '10': 5, '9': 6 })).toBe(
      '{"10":5,"9":6,"B":4,"a":3,"\u{1f600}":2,"\ufb33":1}',
    );
  });
});

describe('canonicalize: numbers', () => {
  it('writes -0 as 0, everywhere', () => {
    expect(canonicalize(-0)).toBe('0');
    expect(canonicalize({ a: [-0, { b: -0 }] })).toBe('{"a":[0,{"b":0}]}');
  });

  it('rejects NaN and ±Infinity', () => {
    for (const x of [NaN, Infinity, -Infinity]) {
      notCanonicalizable(x);
      notCanonicalizable({ deep: [1, { x }] });
    }
  });

  it('uses the ECMAScript number form', () => {
    expect(canonicalize([1e21, 1e-7, 123e-20, 0.1 + 0.2, 2 ** 53, -5e-324])).toBe(
      '[1e+21,1e-7,1.23e-18,0.30000000000000004,9007199254740992,-5e-324]',
    );
  });
});

describe('canonicalize: values that are not JSON', () => {
  it('rejects BigInt, Date, Map, Set, typed arrays, class instances, functions and symbols', () => {
    class Point {
      x = 1;
    }
    for (const v of [
      10n,
      new Date(0),
      new Map(),
      new Set(),
      new Uint8Array(2),
      new Point(),
      () => 1,
      Symbol('s'),
      undefined,
      /re/,
      new Error('e'),
    ]) {
      notCanonicalizable(v);
      notCanonicalizable([v]);
      // An undefined member is left out (see below); everything else fails when nested too.
      if (v !== undefined) notCanonicalizable({ nested: { v } });
    }
  });

  it('accepts null-prototype objects', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o['b'] = 1;
    o['a'] = null;
    expect(canonicalize(o)).toBe('{"a":null,"b":1}');
  });

  it('leaves out object members that are undefined (as JSON.stringify does)', () => {
    expect(canonicalize({ a: undefined, b: 1, c: { d: undefined } })).toBe('{"b":1,"c":{}}');
  });

  it('rejects undefined array elements and holes', () => {
    notCanonicalizable([1, undefined, 2]);
    notCanonicalizable({ a: [undefined] });
    // eslint-disable-next-line no-sparse-arrays
    notCanonicalizable([1, , 2]);
    notCanonicalizable(new Array(3));
  });

  it('limits nesting to 128 levels', () => {
    let ok: unknown = 1;
    for (let i = 0; i < 128; i++) ok = [ok];
    expect(canonicalize(ok)).toBe(`${'['.repeat(128)}1${']'.repeat(128)}`);
    notCanonicalizable([ok]);
    let deepObj: unknown = {};
    for (let i = 0; i < 200; i++) deepObj = { a: deepObj };
    notCanonicalizable(deepObj);
  });
});

describe('__proto__ keys', () => {
  it('survive canonicalization and strict parsing without touching prototypes', () => {
    const text = '{"__proto__":{"polluted":true},"a":1}';
    const v = JSON.parse(text) as Record<string, unknown>;
    expect(canonicalize(v)).toBe(text);
    const back = parseCanonicalJson(text) as Record<string, unknown>;
    expect(Object.keys(back)).toEqual(['__proto__', 'a']);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(back, '__proto__')?.value).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(canonicalize(back)).toBe(text);
    expect(canonicalize(JSON.parse('{"b":{"__proto__":[]}}'))).toBe('{"b":{"__proto__":[]}}');
  });

  it('sorts __proto__ among the other keys', () => {
    expect(canonicalize(JSON.parse('{"z":0,"__proto__":1,"A":2}'))).toBe(
      '{"A":2,"__proto__":1,"z":0}',
    );
  });
});

describe('parseCanonicalJson', () => {
  it('accepts canonical text and returns the value', () => {
    expect(parseCanonicalJson('{"a":[1,"x",null,true],"b":{}}')).toEqual({
      a: [1, 'x', null, true],
      b: {},
    });
    expect(parseCanonicalJson('"s"')).toBe('s');
    expect(parseCanonicalJson('0')).toBe(0);
  });

  it('rejects duplicate keys, even when the last value equals the first', () => {
    nonCanonical('{"a":1,"a":1}');
    nonCanonical('{"a":1,"a":2}');
    nonCanonical('{"a":{"b":1,"b":1}}');
  });

  it('rejects insignificant whitespace anywhere', () => {
    for (const t of [
      ' {}',
      '{} ',
      '{}\n',
      '{ }',
      '{"a": 1}',
      '{"a" :1}',
      '[1, 2]',
      '[1 ,2]',
      '\t1',
      '{"a":1}\r\n',
    ]) {
      nonCanonical(t);
    }
  });

  it('rejects non-canonical numbers, escapes and key order', () => {
    for (const t of [
      '1.0',
      '1E3',
      '-0',
      '0.10',
      '1e21',
      '{"b":1,"a":2}',
      '"\\u0041"',
      '"\\/"',
      '"\\u001F"',
      '"é"'.replace('é', '\\u00e9'),
    ]) {
      nonCanonical(t);
    }
    nonCanonical('12345678901234567890'); // loses precision: canonical form differs
  });

  it('rejects malformed JSON and lone surrogate escapes with NON_CANONICAL_JSON', () => {
    for (const t of [
      '',
      '{',
      '{"a":1,}',
      "{'a':1}",
      'undefined',
      'NaN',
      '"\\ud800"',
      '["\\udc00"]',
      '{"a":1}x',
    ]) {
      nonCanonical(t);
    }
  });
});

describe('properties', () => {
  const json = fc.jsonValue({ stringUnit: 'binary', maxDepth: 6 });

  test.prop([json])('canonical text is a fixed point and parses back to the value', (v) => {
    const c = canonicalize(v);
    expect(parseCanonicalJson(c)).toEqual(JSON.parse(JSON.stringify(v)));
    expect(canonicalize(JSON.parse(c))).toBe(c);
  });

  test.prop([json, fc.integer()])('key insertion order does not matter', (v, seed) => {
    let x = seed | 0;
    const rnd = () => {
      x = (Math.imul(x, 1103515245) + 12345) | 0;
      return ((x >>> 8) & 0xffff) / 0x10000;
    };
    expect(canonicalize(shuffled(v, rnd))).toBe(canonicalize(v));
  });

  test.prop([json])(
    'pretty-printed text is rejected whenever it differs from the canonical form',
    (v) => {
      const pretty = JSON.stringify(v, null, 1);
      if (pretty !== canonicalize(v)) nonCanonical(pretty);
    },
  );

  test.prop([json])('canonicalBytes is the UTF-8 of canonicalize', (v) => {
    expect(toHex(canonicalBytes(v))).toBe(toHex(new TextEncoder().encode(canonicalize(v))));
  });
});
