/**
 * parseRecord proves each untrusted line canonical with core's one-pass check instead of
 * re-serialising it. Real lines of a real log, mutated at random, must be accepted or
 * rejected exactly as the previous rule did (`canonicalize(JSON.parse(text)) === text`, then
 * the same structural checks), with the same error message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { canonicalize, fromUtf8, utf8 } from '@tibet/core';
import { encodeRecord, parseRecord, parseRecordText, type LogRecord } from '@tibet/continuityd';
import { encodeRecordWithTokenText } from '../src/record.js';
import { allLines, buildLog, cleanup, tmpDir } from './fixtures/helpers.js';

const dirs: string[] = [];
let lines: string[] = [];

beforeAll(async () => {
  const dir = tmpDir('tibet-record-canonical-');
  dirs.push(dir);
  await buildLog(dir, 24, { checkpointAfter: [24] });
  lines = allLines(dir).map((l) => l.text);
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

function check(text: string): void {
  // parseRecord reads bytes: what it checks is their decoding (a lone surrogate became U+FFFD)
  const old = oldCanonical(fromUtf8(utf8(text)));
  const got = outcome(text);
  if (old !== null) expect(got).toBe(`record: not canonical JSON (${old})`);
  else expect(got === null || !got.includes('not canonical JSON')).toBe(true);
}

const SPICE = [
  '', ' ', '"', '\\', '\\"', '\\u0041', '\\u001f', '\\u001F', '\\n', '\\/', '0', '1', '-', '.',
  'e', 'E', '+', ',', ':', '{', '}', '[', ']', '"a":1,', 'null', '\ud800', '\u2028', 'é', 'Z',
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
    let t = lines[which % lines.length]!;
    for (const m of ms) {
      const at = m.at % (t.length + 1);
      t = t.slice(0, at) + m.ins + t.slice(at + m.del);
    }
    check(t);
  });

  test.prop([fc.nat(), fc.nat(), fc.nat()], { numRuns: 1000 })(
    'swapping two characters of a real line',
    (which, a, b) => {
      const t = lines[which % lines.length]!;
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
