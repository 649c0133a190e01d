/**
 * The strict deterministic CBOR codec (RFC 8949 §4.2.1) against properties, an independent
 * reference encoder written here from the RFC text, the RFC's Appendix A examples, and every
 * kind of non-canonical or hostile input the decoder must refuse (each with its code).
 *
 * cbor-x is not installed in this workspace (and does not sort map keys anyway), so the
 * cross-check is against `refEncode` below, which shares no code with src/cbor.ts.
 */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { fromHex, toHex } from '@tibet/core';
import { TzaError, type TzaErrorCode } from '@tibet/tza';
import {
  CborTag,
  decodeCbor,
  encodeCbor,
  type CborDecodeLimits,
  type CborKey,
  type CborValue,
} from '../src/cbor.js';

// ---------------------------------------------------------------------------------------
// reference encoder: RFC 8949 §4.2.1 "core deterministic encoding requirements"
//  - arguments in the shortest form (§4.2.1, first bullet: 0..23 in the initial byte,
//    then 1, 2, 4 or 8 bytes), definite lengths only;
//  - map keys sorted by the bytewise lexicographic order of their deterministic encodings.

function refHead(major: number, n: number | bigint): number[] {
  const v = BigInt(n);
  if (v < 0n) throw new RangeError('negative argument');
  if (v < 24n) return [(major << 5) | Number(v)];
  const [width, ai] =
    v <= 0xffn ? [1, 24] : v <= 0xffffn ? [2, 25] : v <= 0xffffffffn ? [4, 26] : [8, 27];
  const out = [(major << 5) | ai];
  for (let i = width - 1; i >= 0; i--) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
  return out;
}

function refEncode(v: CborValue): number[] {
  if (v === null) return [0xf6];
  if (v === false) return [0xf4];
  if (v === true) return [0xf5];
  if (typeof v === 'number') return v >= 0 ? refHead(0, v) : refHead(1, -1n - BigInt(v));
  if (typeof v === 'string') {
    const b = [...Buffer.from(v, 'utf8')];
    return [...refHead(3, b.length), ...b];
  }
  if (v instanceof Uint8Array) return [...refHead(2, v.length), ...v];
  if (v instanceof CborTag) return [...refHead(6, v.tag), ...refEncode(v.value)];
  if (Array.isArray(v)) return [...refHead(4, v.length), ...(v as CborValue[]).flatMap(refEncode)];
  const pairs: [CborKey, CborValue][] =
    v instanceof Map
      ? [...(v as Map<CborKey, CborValue>)]
      : Object.entries(v as Record<string, CborValue>);
  const enc = pairs
    .map(([k, x]) => ({ k: Buffer.from(refEncode(k)), x: refEncode(x) }))
    .sort((a, b) => Buffer.compare(a.k, b.k));
  return [...refHead(5, enc.length), ...enc.flatMap((e) => [...e.k, ...e.x])];
}
const ref = (v: CborValue): Uint8Array => Uint8Array.from(refEncode(v));

// ---------------------------------------------------------------------------------------
// arbitraries for the supported subset

const TAGS = [0, 1, 2, 18, 23, 24, 32, 255, 256, 65535, 65536, 4294967296];
const boundaryInts = [
  0,
  1,
  23,
  24,
  255,
  256,
  65535,
  65536,
  4294967295,
  4294967296,
  Number.MAX_SAFE_INTEGER,
  -1,
  -24,
  -25,
  -256,
  -257,
  -65536,
  -65537,
  -4294967296,
  -4294967297,
  -Number.MAX_SAFE_INTEGER,
];
const int = fc.oneof(
  fc.maxSafeInteger(),
  fc.integer({ min: -300, max: 300 }),
  fc.constantFrom(...boundaryInts),
);
const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.string({ maxLength: 30 }));
const leaf: fc.Arbitrary<CborValue> = fc.oneof(
  int,
  text,
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ minLength: 250, maxLength: 300 }),
  fc.boolean(),
  fc.constant(null),
);

const { value: cborValue } = fc.letrec<{
  value: CborValue;
  array: CborValue[];
  object: Record<string, CborValue>;
  map: Map<CborKey, CborValue>;
  tag: CborTag;
}>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 6 },
    leaf,
    tie('array'),
    tie('object'),
    tie('map'),
    tie('tag'),
  ),
  array: fc.array(tie('value'), { maxLength: 6 }),
  object: fc.dictionary(text, tie('value'), { maxKeys: 6, noNullPrototype: true }),
  // Maps with at least one integer key (a map of text keys only comes back as an object)
  map: fc
    .tuple(
      fc.uniqueArray(fc.tuple(int, tie('value')), {
        minLength: 1,
        maxLength: 4,
        selector: ([k]) => k,
      }),
      fc.uniqueArray(fc.tuple(text, tie('value')), { maxLength: 3, selector: ([k]) => k }),
    )
    .map(([a, b]) => new Map<CborKey, CborValue>([...a, ...b])),
  tag: fc.tuple(fc.constantFrom(...TAGS), tie('value')).map(([t, x]) => new CborTag(t, x)),
}));

const DECODE: CborDecodeLimits = { allowTags: TAGS, maxDepth: 16 };

function codeOf(f: () => unknown): TzaErrorCode | 'NO_ERROR' | `OTHER ${string}` {
  try {
    f();
    return 'NO_ERROR';
  } catch (e) {
    if (TzaError.is(e)) return e.code;
    return `OTHER ${(e as Error).name}: ${(e as Error).message}`;
  }
}
const dec =
  (b: Uint8Array | string, limits: CborDecodeLimits = DECODE): (() => unknown) =>
  () =>
    decodeCbor(typeof b === 'string' ? fromHex(b.replaceAll(' ', '')) : b, limits);

// ---------------------------------------------------------------------------------------

describe('CBOR properties', () => {
  test.prop([cborValue], { numRuns: 400 })('decode(encode(x)) deep-equals x', (x) => {
    expect(decodeCbor(encodeCbor(x), DECODE)).toEqual(x);
  });

  test.prop([cborValue], { numRuns: 400 })('encodeCbor agrees with the reference encoder', (x) => {
    const got = encodeCbor(x);
    expect(Object.getPrototypeOf(got)).toBe(Uint8Array.prototype);
    expect(toHex(got)).toBe(toHex(ref(x)));
  });

  test.prop([cborValue], { numRuns: 300 })(
    'encode(decode(b)) equals b for canonical bytes',
    (x) => {
      const b = ref(x);
      expect(toHex(encodeCbor(decodeCbor(b, DECODE)))).toBe(toHex(b));
    },
  );

  test.prop([cborValue, fc.uint8Array({ minLength: 1, maxLength: 8 })], { numRuns: 200 })(
    'trailing bytes are refused (CBOR_TRAILING_BYTES)',
    (x, extra) => {
      const b = ref(x);
      const withExtra = new Uint8Array(b.length + extra.length);
      withExtra.set(b);
      withExtra.set(extra, b.length);
      expect(codeOf(dec(withExtra))).toBe('CBOR_TRAILING_BYTES');
    },
  );

  test.prop([cborValue], { numRuns: 100 })(
    'every truncation of a valid encoding is refused (CBOR_MALFORMED)',
    (x) => {
      const b = ref(x);
      // every cut for encodings up to 1 KiB, 1024 evenly spread cuts beyond
      const step = Math.max(1, Math.floor(b.length / 1024));
      const wrong: string[] = [];
      for (let k = 0; k < b.length; k += step) {
        const got = codeOf(dec(b.subarray(0, k)));
        if (got !== 'CBOR_MALFORMED') wrong.push(`cut at ${k}: ${got}`);
      }
      expect(wrong, toHex(b).slice(0, 200)).toEqual([]);
    },
  );

  const WIDTHS = [0, 1, 2, 4, 8] as const;
  const shortestWidth = (n: number): number =>
    n < 24 ? 0 : n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffff ? 4 : 8;
  function head(major: number, n: number, width: number): number[] {
    if (width === 0) return [(major << 5) | n];
    const out = [(major << 5) | { 1: 24, 2: 25, 4: 26, 8: 27 }[width as 1 | 2 | 4 | 8]];
    for (let i = width - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn));
    return out;
  }
  test.prop(
    [
      fc.integer({ min: 0, max: 6 }),
      fc.oneof(fc.integer({ min: 0, max: 300 }), fc.maxSafeNat()),
      fc.nat(),
    ],
    { numRuns: 400 },
  )(
    'a longer-than-shortest argument is refused in every major type (CBOR_NON_CANONICAL)',
    (major, n0, pick) => {
      // keep the item complete so that only the argument's width is wrong
      let n = major >= 2 && major <= 5 ? n0 % 301 : n0;
      if (shortestWidth(n) === 8) n = n % 2 ** 32; // a longer head than 8 bytes does not exist
      if (major === 1) n = Math.min(n, Number.MAX_SAFE_INTEGER - 1);
      const longer = WIDTHS.filter((w) => w > shortestWidth(n));
      const width = longer[pick % longer.length]!;
      const body: number[] =
        major === 2
          ? Array<number>(n).fill(7)
          : major === 3
            ? Array<number>(n).fill(0x61)
            : major === 4
              ? Array<number>(n).fill(0xf6)
              : major === 5
                ? Array.from({ length: n }, (_, i) => [...refHead(0, i), 0xf6]).flat()
                : major === 6
                  ? [0x00]
                  : [];
      const bytes = Uint8Array.from([...head(major, n, width), ...body]);
      // sanity: the same item with the shortest head is accepted
      const canonical = Uint8Array.from([...refHead(major, n), ...body]);
      const limits = { ...DECODE, allowTags: [n], maxItems: 1000 };
      expect(codeOf(dec(canonical, limits))).toBe('NO_ERROR');
      expect(codeOf(dec(bytes, limits))).toBe('CBOR_NON_CANONICAL');
    },
  );

  const mapValue = fc
    .uniqueArray(fc.tuple(fc.oneof(int, text), cborValue), {
      minLength: 2,
      maxLength: 6,
      selector: ([k]) => `${typeof k}:${String(k)}`,
    })
    .map((pairs) => new Map<CborKey, CborValue>(pairs));
  test.prop([mapValue, fc.nat()], { numRuns: 150 })(
    'map keys out of bytewise order are refused (CBOR_NON_CANONICAL)',
    (m, seed) => {
      const enc = [...m].map(([k, x]) => ({ k: ref(k), x: ref(x) }));
      enc.sort((a, b) => Buffer.compare(a.k, b.k));
      // swap one adjacent pair: the result is out of order
      const i = seed % (enc.length - 1);
      [enc[i], enc[i + 1]] = [enc[i + 1]!, enc[i]!];
      const bytes = Uint8Array.from([
        ...refHead(5, enc.length),
        ...enc.flatMap((e) => [...e.k, ...e.x]),
      ]);
      expect(codeOf(dec(bytes))).toBe('CBOR_NON_CANONICAL');
    },
  );

  test.prop([mapValue, fc.nat()], { numRuns: 150 })(
    'duplicate map keys are refused (CBOR_NON_CANONICAL)',
    (m, seed) => {
      const enc = [...m].map(([k, x]) => ({ k: ref(k), x: ref(x) }));
      enc.sort((a, b) => Buffer.compare(a.k, b.k));
      const i = seed % enc.length;
      enc.splice(i + 1, 0, { k: enc[i]!.k, x: Uint8Array.of(0xf6) });
      const bytes = Uint8Array.from([
        ...refHead(5, enc.length),
        ...enc.flatMap((e) => [...e.k, ...e.x]),
      ]);
      expect(codeOf(dec(bytes))).toBe('CBOR_NON_CANONICAL');
    },
  );

  test.prop([fc.constantFrom(2, 3, 4, 5), fc.integer({ min: 1, max: 40 })], { numRuns: 100 })(
    'a length claim bigger than the input is refused before allocating (CBOR_MALFORMED)',
    (major, extra) => {
      const n = 5;
      const body =
        major === 2 || major === 3
          ? Array<number>(n).fill(0x61)
          : major === 4
            ? Array<number>(n).fill(0x00)
            : Array.from({ length: n }, (_, i) => [i, 0x00]).flat();
      expect(codeOf(dec(Uint8Array.from([...refHead(major, n), ...body])))).toBe('NO_ERROR');
      expect(codeOf(dec(Uint8Array.from([...refHead(major, n + extra), ...body])))).toBe(
        'CBOR_MALFORMED',
      );
    },
  );
});

describe('CBOR examples (RFC 8949 Appendix A, §4.2.1)', () => {
  const examples: [CborValue, string][] = [
    [0, '00'],
    [1, '01'],
    [10, '0a'],
    [23, '17'],
    [24, '1818'],
    [25, '1819'],
    [100, '1864'],
    [1000, '1903e8'],
    [1000000, '1a000f4240'],
    [1000000000000, '1b000000e8d4a51000'],
    // the high bit of a 16-, 32- and 64-bit argument (read unsigned)
    [0xffff, '19ffff'],
    [0x80000000, '1a80000000'],
    [0xffffffff, '1affffffff'],
    [0x100000000, '1b0000000100000000'],
    [0x1fffff00000000, '1b001fffff00000000'],
    [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [-1, '20'],
    [-10, '29'],
    [-100, '3863'],
    [-1000, '3903e7'],
    [-Number.MAX_SAFE_INTEGER, '3b001ffffffffffffe'],
    [false, 'f4'],
    [true, 'f5'],
    [null, 'f6'],
    [new CborTag(1, 1363896240), 'c11a514b67b0'],
    [new CborTag(23, fromHex('01020304')), 'd74401020304'],
    [new CborTag(24, fromHex('6449455446')), 'd818456449455446'],
    [
      new CborTag(32, 'http://www.example.com'),
      'd82076687474703a2f2f7777772e6578616d706c652e636f6d',
    ],
    [new Uint8Array(0), '40'],
    [fromHex('01020304'), '4401020304'],
    ['', '60'],
    ['a', '6161'],
    ['IETF', '6449455446'],
    ['"\\', '62225c'],
    ['\u00fc', '62c3bc'],
    ['\u6c34', '63e6b0b4'],
    ['\ud800\udd51', '64f0908591'],
    [[], '80'],
    [[1, 2, 3], '83010203'],
    [[1, [2, 3], [4, 5]], '8301820203820405'],
    [
      Array.from({ length: 25 }, (_, i) => i + 1),
      '98190102030405060708090a0b0c0d0e0f101112131415161718181819',
    ],
    [{}, 'a0'],
    [
      new Map([
        [1, 2],
        [3, 4],
      ]),
      'a201020304',
    ],
    [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
    [['a', { b: 'c' }], '826161a161626163'],
    [{ a: 'A', b: 'B', c: 'C', d: 'D', e: 'E' }, 'a56161614161626142616361436164614461656145'],
    // §4.2.1: keys sorted by their encoded bytes, so 10, 100, -1, "z", "aa"
    [
      new Map<CborKey, CborValue>([
        ['aa', 5],
        ['z', 4],
        [-1, 3],
        [100, 2],
        [10, 1],
      ]),
      'a50a011864022003617a04626161' + '05',
    ],
    // shorter text keys first, whatever the insertion order
    [{ bb: 1, a: 2, ccc: 3 }, 'a36161026262620163636363' + '03'],
  ];
  it.each(examples.map(([v, hex], i) => [i, hex, v] as const))(
    'example %i encodes to %s and back',
    (_i, hex, v) => {
      expect(toHex(encodeCbor(v))).toBe(hex);
      expect(toHex(ref(v))).toBe(hex);
      const back = decodeCbor(fromHex(hex), DECODE);
      expect(toHex(encodeCbor(back))).toBe(hex);
    },
  );
});

describe('CBOR rejection table', () => {
  const nested = (open: string, n: number, inner = '00'): string => open.repeat(n) + inner;
  const cases: [string, string, TzaErrorCode | 'ANY'][] = [
    // non-shortest arguments
    ['uint 0 in one extra byte', '1800', 'CBOR_NON_CANONICAL'],
    ['uint 23 in one extra byte', '1817', 'CBOR_NON_CANONICAL'],
    ['uint 255 in two bytes', '1900ff', 'CBOR_NON_CANONICAL'],
    ['uint 65535 in four bytes', '1a0000ffff', 'CBOR_NON_CANONICAL'],
    ['uint 2^32-1 in eight bytes', '1b00000000ffffffff', 'CBOR_NON_CANONICAL'],
    ['negint -1 in one extra byte', '3800', 'CBOR_NON_CANONICAL'],
    ['byte string length 1 in one extra byte', '580100', 'CBOR_NON_CANONICAL'],
    ['text length 1 in two bytes', '79000161', 'CBOR_NON_CANONICAL'],
    ['array length 0 in one extra byte', '9800', 'CBOR_NON_CANONICAL'],
    ['map length 0 in one extra byte', 'b800', 'CBOR_NON_CANONICAL'],
    // indefinite lengths
    ['indefinite byte string', '5f4100ff', 'CBOR_NON_CANONICAL'],
    ['indefinite text', '7f6161ff', 'CBOR_NON_CANONICAL'],
    ['indefinite array', '9f01ff', 'CBOR_NON_CANONICAL'],
    ['indefinite map', 'bf616101ff', 'CBOR_NON_CANONICAL'],
    ['indefinite array inside an array', '819fff', 'CBOR_NON_CANONICAL'],
    ['ai 31 on an unsigned integer', '1f', 'ANY'],
    ['stray break', 'ff', 'ANY'],
    // unsorted and duplicate keys
    ['unsorted text keys', 'a2616201616102', 'CBOR_NON_CANONICAL'],
    ['longer key before shorter', 'a262616101616202', 'CBOR_NON_CANONICAL'],
    ['unsorted int keys', 'a202010102', 'CBOR_NON_CANONICAL'],
    ['text key before int key', 'a2616101' + '0102', 'CBOR_NON_CANONICAL'],
    ['duplicate text keys', 'a2616101616102', 'CBOR_NON_CANONICAL'],
    ['duplicate int keys', 'a201010101', 'CBOR_NON_CANONICAL'],
    // floats, undefined and other simple values
    ['half float 1.0', 'f93c00', 'CBOR_UNSUPPORTED'],
    ['half float 0.0', 'f90000', 'CBOR_UNSUPPORTED'],
    ['single float 1.0', 'fa3f800000', 'CBOR_UNSUPPORTED'],
    ['double float 1.1', 'fb3ff199999999999a', 'CBOR_UNSUPPORTED'],
    ['float inside a map', 'a16161f93c00', 'CBOR_UNSUPPORTED'],
    ['undefined', 'f7', 'CBOR_UNSUPPORTED'],
    ['simple value 16', 'f0', 'CBOR_UNSUPPORTED'],
    ['simple value 32 (two bytes)', 'f820', 'CBOR_UNSUPPORTED'],
    ['simple value 0 in two bytes', 'f800', 'ANY'],
    ['reserved ai 28 (simple)', 'fc', 'ANY'],
    // reserved additional information
    ['reserved ai 28 (uint)', '1c', 'CBOR_MALFORMED'],
    ['reserved ai 29 (text)', '7d', 'CBOR_MALFORMED'],
    ['reserved ai 30 (map)', 'be', 'CBOR_MALFORMED'],
    // malformed text
    ['invalid UTF-8', '62c328', 'CBOR_MALFORMED'],
    ['overlong UTF-8 NUL', '62c080', 'CBOR_MALFORMED'],
    ['UTF-8 of a lone surrogate', '63eda080', 'CBOR_MALFORMED'],
    ['truncated UTF-8 sequence', '61e6', 'CBOR_MALFORMED'],
    // integers outside the safe range
    ['uint 2^53', '1b0020000000000000', 'CBOR_UNSUPPORTED'],
    ['uint 2^64-1', '1bffffffffffffffff', 'CBOR_UNSUPPORTED'],
    ['negint -2^53', '3b001fffffffffffff', 'CBOR_UNSUPPORTED'],
    ['negint -2^64', '3bffffffffffffffff', 'CBOR_UNSUPPORTED'],
    // map keys of other types
    ['byte-string key', 'a1410000', 'CBOR_UNSUPPORTED'],
    ['null key', 'a1f600', 'CBOR_UNSUPPORTED'],
    ['array key', 'a18000', 'CBOR_UNSUPPORTED'],
    // length claims bigger than the input (must fail without allocating)
    ['byte string claims 2^32 bytes', '5b0000000100000000', 'CBOR_MALFORMED'],
    ['text claims 4 GiB - 1', '7affffffff', 'CBOR_MALFORMED'],
    ['array claims 2^53-1 items', '9b001fffffffffffff', 'CBOR_MALFORMED'],
    ['map claims 2^53-1 pairs', 'bb001fffffffffffff', 'CBOR_MALFORMED'],
    ['array claims 2^64-1 items', '9bffffffffffffffff', 'CBOR_UNSUPPORTED'],
    ['array of 3 holds 2', '830102', 'CBOR_MALFORMED'],
    ['map of 2 holds 1 pair', 'a20102', 'CBOR_MALFORMED'],
    // truncated heads
    ['empty input', '', 'CBOR_MALFORMED'],
    ['uint16 head cut', '1901', 'CBOR_MALFORMED'],
    ['uint64 head cut', '1b00000000', 'CBOR_MALFORMED'],
    // trailing bytes
    ['two items', '0000', 'CBOR_TRAILING_BYTES'],
    ['item then garbage', '8101ff', 'CBOR_TRAILING_BYTES'],
    // depth bombs
    ['100,000 nested arrays', nested('81', 100_000), 'CBOR_TOO_DEEP'],
    ['100,000 nested maps', nested('a100', 100_000), 'CBOR_TOO_DEEP'],
    ['17 nested arrays', nested('81', 17), 'CBOR_TOO_DEEP'],
    ['100,000 nested tags', nested('c1', 100_000), 'CBOR_TOO_DEEP'],
    // tags
    ['tag not in the allowed list', 'd9ffff00', 'CBOR_UNSUPPORTED'],
  ];
  it.each(cases)('%s (%s) → %s', (_name, hex, code) => {
    const t0 = performance.now();
    const got = codeOf(dec(hex, { ...DECODE, allowTags: [1] }));
    expect(performance.now() - t0).toBeLessThan(200);
    if (code === 'ANY') expect(got).toMatch(/^CBOR_/);
    else expect(got).toBe(code);
  });

  it('depth limit boundary: 16 nested arrays decode, 17 do not; maxDepth is honoured', () => {
    expect(codeOf(dec(nested('81', 16)))).toBe('NO_ERROR');
    expect(codeOf(dec(nested('81', 17)))).toBe('CBOR_TOO_DEEP');
    expect(codeOf(dec(nested('81', 3), { ...DECODE, maxDepth: 2 }))).toBe('CBOR_TOO_DEEP');
    expect(codeOf(dec(nested('81', 2), { ...DECODE, maxDepth: 2 }))).toBe('NO_ERROR');
  });

  it('tags are refused unless allowed', () => {
    expect(codeOf(() => decodeCbor(fromHex('d24100')))).toBe('CBOR_UNSUPPORTED');
    expect(decodeCbor(fromHex('d24100'), { allowTags: [18] })).toEqual(
      new CborTag(18, new Uint8Array([0])),
    );
  });

  it('maxItems bounds the total of array elements and map pairs', () => {
    const arr = encodeCbor(Array.from({ length: 10 }, (_, i) => i));
    expect(codeOf(dec(arr, { ...DECODE, maxItems: 9 }))).toBe('CBOR_UNSUPPORTED');
    expect(codeOf(dec(arr, { ...DECODE, maxItems: 10 }))).toBe('NO_ERROR');
    const nestedArr = encodeCbor([[1, 2], [3, 4], { a: 1, b: 2 }]);
    expect(codeOf(dec(nestedArr, { ...DECODE, maxItems: 8 }))).toBe('CBOR_UNSUPPORTED');
    expect(codeOf(dec(nestedArr, { ...DECODE, maxItems: 9 }))).toBe('NO_ERROR');
  });

  it('decoded byte strings are fresh copies, not views of the input', () => {
    const input = fromHex('824201024103');
    const out = decodeCbor(input) as Uint8Array[];
    input.fill(0);
    expect(out).toEqual([Uint8Array.of(1, 2), Uint8Array.of(3)]);
  });
});

describe('regressions (bugs found by these tests, now fixed)', () => {
  // FIXED 2 (src/cbor.ts, Reader.item major type 2: `this.b.slice(this.pos, this.pos + n)`):
  // when the input is a Node Buffer, Buffer#slice returns a view that shares memory with the
  // input (and is a Buffer), so decoded byte strings change when the caller reuses its buffer.
  // Expected: fresh plain Uint8Array copies, as for a Uint8Array input (copy with
  // `Uint8Array.prototype.slice.call(...)` or `new Uint8Array(subarray)`).
  it('decoded byte strings of a Node Buffer input are fresh Uint8Array copies', () => {
    const input = Buffer.from('824201024103', 'hex');
    const out = decodeCbor(input) as Uint8Array[];
    input.fill(0);
    expect(out.map((b) => Object.getPrototypeOf(b) === Uint8Array.prototype)).toEqual([true, true]);
    expect(out.map((b) => [...b])).toEqual([[1, 2], [3]]);
  });
});

describe('CBOR encoder refuses values outside the subset', () => {
  const bad: [string, unknown][] = [
    ['a float', 1.5],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['an unsafe integer', 2 ** 53],
    ['undefined', undefined],
    ['a bigint', 5n],
    ['a lone surrogate', '\ud800'],
    ['a Date', new Date(0)],
    ['a function', () => 1],
    ['a symbol', Symbol('x')],
    ['a Map with a byte-string key', new Map([[new Uint8Array(1), 1]])],
    ['an array with a hole', Object.assign(new Array<number>(3), { 0: 1, 2: 3 })],
    [
      'a class instance',
      new (class X {
        a = 1;
      })(),
    ],
  ];
  it.each(bad)('%s', (_n, v) => {
    expect(() => encodeCbor(v as CborValue)).toThrow(TypeError);
  });

  it('nesting deeper than 64 is refused with RangeError', () => {
    let v: CborValue = 0;
    for (let i = 0; i < 66; i++) v = [v];
    expect(() => encodeCbor(v)).toThrow(RangeError);
  });

  it('-0 encodes as 0 and undefined object fields are dropped', () => {
    expect(toHex(encodeCbor(-0))).toBe('00');
    expect(toHex(encodeCbor({ a: 1, b: undefined } as unknown as CborValue))).toBe('a1616101');
  });
});

describe('CBOR fast paths (reused writer, ASCII text) agree with the reference', () => {
  const strings = [
    '',
    'a',
    'x'.repeat(16),
    'x'.repeat(17),
    'x'.repeat(15) + '\u00e9',
    'x'.repeat(23),
    'x'.repeat(24),
    'x'.repeat(64),
    'x'.repeat(65),
    'x'.repeat(300),
    'abc\u00e9',
    '\u00e9abc',
    'x'.repeat(63) + '\u20ac',
    'x'.repeat(64) + '\u20ac',
    'emoji \u{1f600} after ascii',
    '\u007f\u0000',
  ];
  it.each(strings.map((s) => [s.length, s]))('a text string of %i chars round-trips', (_n, s) => {
    expect(toHex(encodeCbor(s))).toBe(toHex(ref(s)));
    expect(decodeCbor(encodeCbor(s))).toBe(s);
  });

  it('a lone surrogate after an ASCII prefix is refused, and the next encoding is whole', () => {
    expect(() => encodeCbor(['ok', 'ab\ud800'])).toThrow(TypeError);
    expect(() => encodeCbor({ k: 'x'.repeat(100) + '\udc00' })).toThrow(TypeError);
    const v: CborValue = { a: 'b', list: [1, 'two', new Uint8Array([3])] };
    expect(toHex(encodeCbor(v))).toBe(toHex(ref(v)));
  });

  it('values larger than the kept writer, then small ones, encode exactly', () => {
    const big = new Uint8Array(200_000).map((_, i) => i & 0xff);
    expect(toHex(encodeCbor(big))).toBe(toHex(ref(big)));
    const small: CborValue = ['s', 1];
    expect(toHex(encodeCbor(small))).toBe(toHex(ref(small)));
    // each result is its own copy: a later encoding does not change an earlier result
    const first = encodeCbor('first');
    encodeCbor('second');
    expect(decodeCbor(first)).toBe('first');
  });

  it('map keys not yet seen (encoded inside an encoding) do not disturb the outer value', () => {
    const keys = Array.from({ length: 5 }, (_, i) => `fresh-key-${i}-not-seen-before`);
    const v: CborValue = Object.fromEntries(keys.map((k, i) => [k, [i, k]]));
    expect(toHex(encodeCbor(v))).toBe(toHex(ref(v)));
  });

  it('map keys decoded through the key cache are exact, colliding hashes too', () => {
    // "Aa" and "BB" have the same 31-multiplier hash; "é" keys and long keys bypass the cache
    const v: CborValue = {
      Aa: 1,
      BB: 2,
      ['caf\u00e9']: 3,
      ['k'.repeat(23)]: 4,
      ['k'.repeat(24)]: 5,
      ['k'.repeat(16)]: 'v'.repeat(16),
      ['k'.repeat(17)]: 'v'.repeat(17),
    };
    for (let i = 0; i < 3; i++) {
      const d = decodeCbor(ref(v)) as Record<string, CborValue>;
      expect(d).toEqual(v);
      expect(Object.keys(d).sort()).toEqual(Object.keys(v).sort());
      expect(toHex(encodeCbor(d))).toBe(toHex(ref(v)));
    }
    expect(decodeCbor(ref({ BB: 1 }))).toEqual({ BB: 1 });
    expect(decodeCbor(ref({ Aa: 1 }))).toEqual({ Aa: 1 });
  });

  it('a decoded "__proto__" key is an own property, never the prototype', () => {
    const bytes = ref({ ['__proto__']: 1, a: 2 });
    const o = decodeCbor(bytes) as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.keys(o).sort()).toEqual(['__proto__', 'a']);
    expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value).toBe(1);
  });
});
