import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { REDACTED, createMasker, secretForms, type Masker } from '../src/adapters/mask.js';
import { formsOf } from './support/adapter-fixtures.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const dec = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

function includes(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

function streamed(m: Masker, data: Uint8Array, cuts: number[]): Uint8Array {
  const s = m.stream();
  const parts: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts.map((x) => x % (data.length + 1))].sort((a, b) => a - b)) {
    parts.push(Buffer.from(s.push(data.slice(at, c))));
    at = c;
  }
  parts.push(Buffer.from(s.push(data.slice(at))), Buffer.from(s.end()));
  return new Uint8Array(Buffer.concat(parts));
}

/** A masker, or undefined in the (documented) case that no marker is safe for the secret. */
function maskerOrSkip(secret: Uint8Array): Masker | undefined {
  try {
    return createMasker(secret);
  } catch (e) {
    expect(e).toBeInstanceOf(RangeError);
    return undefined;
  }
}

// Output built from random bytes, whole forms of the secret and prefixes of them (which must be
// held back and then released unchanged).
// Secrets are random bytes, or short strings over the marker's own alphabet, which stress the
// marker choice (a secret must never re-form out of a marker and the text around it).
const secretArb = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 24 }),
  fc.string({ unit: fc.constantFrom(...'[]<>REDACTx'), minLength: 1, maxLength: 10 }).map(enc),
);
const caseArb = secretArb.chain((secret) => {
  const forms = secretForms(secret);
  const piece = fc.oneof(
    fc.uint8Array({ maxLength: 12 }),
    fc.constantFrom(...forms),
    fc
      .tuple(fc.constantFrom(...forms), fc.nat())
      .map(([f, n]) => f.slice(0, n % Math.max(1, f.length))),
    fc.constantFrom(...forms).map((f) => f.slice(1)),
    fc.constantFrom(...'[REDACTED]<>]['.split('')).map(enc),
  );
  return fc.record({
    secret: fc.constant(secret),
    pieces: fc.array(piece, { maxLength: 12 }),
    cuts: fc.array(fc.nat(), { maxLength: 10 }),
  });
});

describe('masker', () => {
  test.prop([caseArb], { numRuns: 400 })(
    'any split of the output masks exactly as the whole; no form of the secret survives',
    ({ secret, pieces, cuts }) => {
      const m = maskerOrSkip(secret);
      fc.pre(m !== undefined);
      const data = new Uint8Array(Buffer.concat(pieces.map((p) => Buffer.from(p))));
      const whole = m.mask(data);
      expect(dec(streamed(m, data, cuts))).toBe(dec(whole));
      for (const f of secretForms(secret)) expect(includes(whole, f)).toBe(false);
      for (const f of formsOf(secret)) expect(dec(whole).includes(f)).toBe(false);
    },
  );

  test.prop([caseArb], { numRuns: 100 })('byte-by-byte streaming equals whole', (c) => {
    const m = maskerOrSkip(c.secret);
    fc.pre(m !== undefined);
    const data = new Uint8Array(Buffer.concat(c.pieces.map((p) => Buffer.from(p))));
    const cuts = Array.from({ length: data.length }, (_, k) => k);
    expect(dec(streamed(m, data, cuts))).toBe(dec(m.mask(data)));
  });

  test.prop([fc.string({ minLength: 1, maxLength: 30 }), fc.array(fc.string(), { maxLength: 5 })])(
    'text masking removes the secret from any surrounding text',
    (secret, around) => {
      const m = maskerOrSkip(enc(secret));
      fc.pre(m !== undefined);
      const text = around.join(secret);
      const out = m.maskText(`${text}${secret}`);
      expect(out.includes(secret)).toBe(false);
    },
  );

  it('masks raw, base64, base64url, hex, HEX, URL-encoded and JSON-escaped forms', () => {
    const secret = 'pa"ss w/ord+=?&é_0123456789';
    const m = createMasker(enc(secret));
    const b = Buffer.from(secret, 'utf8');
    const samples = [
      secret,
      b.toString('base64'),
      b.toString('base64url'),
      b.toString('hex'),
      b.toString('hex').toUpperCase(),
      encodeURIComponent(secret),
      encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (x) => x.toLowerCase()),
      new URLSearchParams({ q: secret }).toString().slice(2),
      JSON.stringify(secret).slice(1, -1),
    ];
    for (const s of samples) expect(m.maskText(`<${s}>`)).toBe(`<${REDACTED}>`);
  });

  it('masks the secret inside a longer base64 text at every byte offset', () => {
    const secret = 'tok_9f8e7d6c5b4a39281706_secret';
    const m = createMasker(enc(secret));
    for (const prefix of ['', 'u', 'us', 'usr', 'user', 'user:']) {
      const b64 = Buffer.from(`${prefix}${secret}`).toString('base64');
      const out = m.maskText(b64);
      expect(out).toContain(REDACTED);
      expect(out.length).toBeLessThan(b64.length);
      // what remains cannot be decoded back into a useful part of the secret
      expect(out.replace(REDACTED, '').length).toBeLessThan(12);
    }
  });

  it('picks another marker when the secret could re-form out of [REDACTED]', () => {
    const secret = ']abcdefgh';
    const m = createMasker(enc(secret));
    expect(m.marker).not.toBe(REDACTED);
    const out = m.maskText(`]abcdefgh${'abcdefgh'}`);
    expect(out.includes(secret)).toBe(false);
    // with [REDACTED] the output would have been '[REDACTED]abcdefgh', which contains it
    expect(`${REDACTED}abcdefgh`.includes(secret)).toBe(true);
  });

  it('masks strings and keys inside JSON values, leaving the rest alone', () => {
    const m = createMasker(enc('sekret-value-42'));
    expect(
      m.maskJson({
        a: 'x sekret-value-42 y',
        n: 1,
        b: [true, null, 'sekret-value-42'],
        ['k-sekret-value-42']: 'v',
      }),
    ).toEqual({ a: `x ${REDACTED} y`, n: 1, b: [true, null, REDACTED], [`k-${REDACTED}`]: 'v' });
  });

  it('masks several secrets at once and reports whether one occurs', () => {
    const m = createMasker([enc('first-secret-1'), enc('second-secret-2')]);
    expect(m.maskText('first-secret-1/second-secret-2')).toBe(`${REDACTED}/${REDACTED}`);
    expect(m.contains('a second-secret-2 b')).toBe(true);
    expect(m.contains('nothing here')).toBe(false);
  });

  it('holds back only a possible start of a form', () => {
    const m = createMasker(enc('abcdefgh'));
    const s = m.stream();
    expect(dec(s.push(enc('xxabc')))).toBe('xx');
    expect(s.pending).toBe(3);
    expect(dec(s.push(enc('dX')))).toBe('abcdX');
    expect(s.pending).toBe(0);
    expect(dec(s.push(enc('abcdefg')))).toBe('');
    expect(dec(s.end())).toBe('abcdefg');
    expect(() => s.push(enc('x'))).toThrow();
  });

  it('can drop a held tail without emitting it', () => {
    const m = createMasker(enc('abcdefgh'));
    const s = m.stream();
    expect(dec(s.push(enc('..abcdef')))).toBe('..');
    s.discard();
    expect(s.pending).toBe(0);
  });

  it('zeroes its forms on destroy and refuses further use', () => {
    const m = createMasker(enc('abcdefgh'));
    m.destroy();
    expect(() => m.mask(enc('abcdefgh'))).toThrow(/destroyed/);
  });

  it('rejects an empty secret and bad arguments', () => {
    expect(() => createMasker(new Uint8Array(0))).toThrow(RangeError);
    expect(() => createMasker([])).toThrow(RangeError);
    expect(() => secretForms('x' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
