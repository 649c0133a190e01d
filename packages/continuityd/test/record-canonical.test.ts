/**
 * parseRecord proves each untrusted line canonical with core's one-pass check instead of
 * re-serialising it. Real lines of a real log, mutated at random, must be accepted or
 * rejected exactly as the previous rule did (`canonicalize(JSON.parse(text)) === text`, then
 * the same structural checks), with the same error message.
 *
 * The verifier's fast path, parseRecordHead, must take only lines parseRecord accepts, and
 * read the same values from them: every text checked here is also put to it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { canonicalize, fromUtf8, utf8 } from '@tibet/core';
import { encodeRecord, parseRecord, parseRecordText, type LogRecord } from '@tibet/continuityd';
import { encodeRecordWithTokenText, parseRecordHead, tokenCut } from '../src/record.js';
import { allLines, buildLog, cleanup, tmpDir } from './fixtures/helpers.js';

const dirs: string[] = [];
let lines: string[] = [];
/** The same lines all with ASCII content (the fast path's usual input), and both together. */
let asciiLines: string[] = [];
let pool: string[] = [];

beforeAll(async () => {
  const dir = tmpDir('tibet-record-canonical-');
  dirs.push(dir);
  await buildLog(dir, 24, { checkpointAfter: [24] });
  lines = allLines(dir).map((l) => l.text);
  asciiLines = lines.map((t, i) =>
    fromUtf8(
      encodeRecord(
        asciiRecord(
          t,
          [
            { n: i, note: 'plain' },
            [1, -2, 0, true, false, null, 'x', [], {}, { a: [{ b: 'c' }] }],
            { a: 1, aa: 2, b: { '': 0, ' ': 1, A: 2, a: 3 }, z: 'DEL \u007f is not escaped' },
            123456789012345,
          ][i % 4],
        ),
      ),
    ),
  );
  pool = [...lines, ...asciiLines];
}, 60_000);
afterAll(() => cleanup(dirs));

/** The previous canonical check, verbatim; null when it accepts, else the reason it gave. */
function oldCanonical(text: string): string | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'malformed JSON';
  }
  let again: string;
  try {
    again = canonicalize(v);
  } catch {
    return 'JSON value cannot be canonicalized';
  }
  return again === text ? null : 'JSON text is not in RFC 8785 form';
}

function outcome(text: string): string | null {
  let got: string | null;
  try {
    parseRecord(utf8(text));
    got = null;
  } catch (e) {
    got = (e as Error).message;
  }
  // parseRecordText of the bytes' decoding answers the same, record or error
  const bytes = utf8(text);
  let again: LogRecord | string;
  try {
    again = parseRecordText(fromUtf8(bytes));
  } catch (e) {
    again = (e as Error).message;
  }
  if (got === null) expect(again).toEqual(parseRecord(bytes));
  else expect(again).toBe(got);
  return got;
}

/**
 * parseRecordHead of `bytes`: 'declined', or 'fast' after checking that parseRecord accepts
 * the line with the same values (the token's content members stand in as null) and the same
 * cut.
 */
function head(bytes: Uint8Array): 'fast' | 'declined' {
  const h = parseRecordHead(bytes);
  if (!h) return 'declined';
  const full = parseRecord(bytes); // throws (and fails the test) if the fast path was wrong
  const { erin: _i, eraan: _a, eromheen: _o, ...scalars } = full.token;
  expect(h.record).toStrictEqual({
    ...full,
    token: { ...scalars, erin: null, eraan: null, eromheen: null },
  });
  expect(h.cut).toStrictEqual(tokenCut(bytes, full.token));
  return 'fast';
}

/** `bytes` copied to `offset` bytes into a larger buffer (the fast path reads words). */
function at(bytes: Uint8Array, offset: number): Uint8Array {
  const b = new Uint8Array(bytes.length + 8);
  b.set(bytes, offset);
  return b.subarray(offset, offset + bytes.length);
}

/** A real line's record with ASCII content (every other fixture line's `erin` is not). */
function asciiRecord(t: string, erin: unknown = { n: 1, note: 'plain' }): LogRecord {
  const r = JSON.parse(t) as LogRecord;
  return { ...r, token: { ...r.token, erin } as LogRecord['token'] };
}

function check(text: string): void {
  // parseRecord reads bytes: what it checks is their decoding (a lone surrogate became U+FFFD)
  const old = oldCanonical(fromUtf8(utf8(text)));
  for (let o = 0; o < 4; o++) head(at(utf8(text), o));
  const got = outcome(text);
  if (old !== null) expect(got).toBe(`record: not canonical JSON (${old})`);
  else expect(got === null || !got.includes('not canonical JSON')).toBe(true);
}

const SPICE = [
  '', ' ', '"', '\\', '\\"', '\\u0041', '\\u001f', '\\u001F', '\\n', '\\/', '0', '1', '-', '.',
  'e', 'E', '+', ',', ':', '{', '}', '[', ']', '"a":1,', 'null', '\ud800', '\u2028', 'é', 'Z',
  '\u0000', '\u0001', '\t', '\n', '\u001f', '\u007f', '\u0080', '"z":', '"a":', '00', '-0',
  '1234567890123456', 'true', 'false', '[]', '{}',
]; // prettier-ignore

describe('parseRecord: the canonical check agrees with re-serialising', () => {
  it('accepts every real line and rejects re-ordered or re-spaced ones as before', () => {
    expect(lines.length).toBe(24);
    for (const t of lines) {
      expect(outcome(t)).toBeNull();
      check(t);
      const v = JSON.parse(t) as Record<string, unknown>;
      check(JSON.stringify(v, null, 1));
      const { v: version, ...rest } = v;
      check(JSON.stringify({ v: version, ...rest })); // member order
      check(t.replace('"index":', '"index": '));
      check(t.replace(/"index":(\d+)/, '"index":$1.0'));
      check(t.replace(/"index":(\d+)/, '"index":$1e0'));
      check(t.replace(/"generation":(\d+)/, '"generation":0$1'));
      check(t.replace('"v":"tibet-log/1"', '"v":"tibet-log\\/1"'));
      check(t.replace('"v":"tibet-log/1"', '"v":"tibet\\u002dlog/1"'));
      check(t.replace('}', ',"index":0}'));
    }
  });

  test.prop(
    [
      fc.nat(),
      fc.array(
        fc.record({ at: fc.nat(), del: fc.nat({ max: 2 }), ins: fc.constantFrom(...SPICE) }),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
    ],
    { numRuns: 3000 },
  )('random mutations of real lines', (which, ms) => {
    let t = pool[which % pool.length]!;
    for (const m of ms) {
      const at = m.at % (t.length + 1);
      t = t.slice(0, at) + m.ins + t.slice(at + m.del);
    }
    check(t);
  });

  test.prop([fc.nat(), fc.nat(), fc.nat()], { numRuns: 1000 })(
    'swapping two characters of a real line',
    (which, a, b) => {
      const t = pool[which % pool.length]!;
      const i = a % t.length;
      const j = b % t.length;
      const c = [...t];
      [c[i], c[j]] = [c[j]!, c[i]!];
      check(c.join(''));
    },
  );
});

describe('encodeRecordWithTokenText (the writer assembles the line around the token text)', () => {
  const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });
  test.prop(
    [
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.option(fc.stringMatching(/^[0-9a-f]{64}$/), { nil: null }),
      fc.date({
        min: new Date('0001-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      json,
      json,
    ],
    { numRuns: 500 },
  )('gives exactly encodeRecord’s bytes', (index, prev, at, reason, erin, eromheen) => {
    const real = JSON.parse(lines[index % lines.length]!) as LogRecord;
    const token = { ...real.token, erachter: reason || 'x', erin, eromheen } as LogRecord['token'];
    const r: LogRecord = {
      ...real,
      index,
      prev,
      received_at: at.toISOString(),
      causal: { ...real.causal, causal_reason: reason || 'x', object_id: reason ? null : 'a/b' },
      token,
    };
    expect(fromUtf8(encodeRecordWithTokenText(r, canonicalize(r.token)))).toBe(
      fromUtf8(encodeRecord(r)),
    );
  });
});

describe('parseRecordHead (the verifier’s fast path)', () => {
  it('reads every ASCII line as parseRecord does, at any alignment, and leaves the rest', () => {
    expect(asciiLines.length).toBe(24);
    for (const t of asciiLines)
      for (let o = 0; o < 4; o++) expect(head(at(utf8(t), o))).toBe('fast');
    // every other line of the fixture holds non-ASCII content: parseRecord reads those
    const kinds = lines.map((t) => head(utf8(t)));
    lines.forEach((t, i) => expect(kinds[i]).toBe(/^[ -~]*$/.test(t) ? 'fast' : 'declined'));
    expect(kinds.filter((k) => k === 'fast').length).toBe(12);
  });

  it('declines a control or non-ASCII byte anywhere, at any alignment', () => {
    const bytes = utf8(asciiLines[0]!);
    for (const bad of [0x00, 0x01, 0x09, 0x0a, 0x1f, 0x80, 0xc3, 0xff])
      for (let p = 0; p < bytes.length; p += p < 64 || p > bytes.length - 64 ? 1 : 7)
        for (let o = 0; o < 4; o++) {
          const b = at(bytes, o);
          const keep = b[p]!;
          b[p] = bad;
          expect(parseRecordHead(b)).toBeUndefined();
          b[p] = keep;
        }
  });

  /** A value the fast path reads: printable ASCII strings without quote or backslash, short integers. */
  function plain(v: unknown): boolean {
    if (typeof v === 'string') return /^[\u0020-\u007f]*$/.test(v) && !/["\\]/.test(v);
    if (typeof v === 'number') return Number.isSafeInteger(v) && Math.abs(v) < 1e15;
    if (Array.isArray(v)) return v.every(plain);
    if (v !== null && typeof v === 'object')
      return Object.entries(v).every(([k, x]) => plain(k) && plain(x));
    return true;
  }

  const content = fc.jsonValue({ maxDepth: 4 });
  test.prop([fc.nat(), content, content, content], { numRuns: 1500 })(
    'random token content: the same values, and the fast path taken whenever it can be',
    (which, erin, eraan, eromheen) => {
      const r = asciiRecord(asciiLines[which % asciiLines.length]!);
      const rec = { ...r, token: { ...r.token, erin, eraan, eromheen } } as LogRecord;
      const bytes = encodeRecord(rec);
      const expected = plain(erin) && plain(eraan) && plain(eromheen) ? 'fast' : 'declined';
      for (let o = 0; o < 4; o++) expect(head(at(bytes, o))).toBe(expected);
      // the same content written without sorting its member names: only a canonical text passes
      const text = fromUtf8(bytes);
      const canonicalErin = `"erin":${canonicalize(erin)}`;
      check(text.replace(canonicalErin, `"erin":${JSON.stringify(erin)}`));
    },
  );
});
