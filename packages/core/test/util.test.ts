/** Randomness, clocks, byte codecs, errors and the testing subpath. */
import { describe, expect, it, vi } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { chacha20 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  CoreError,
  TibetError,
  assertBytes,
  concatBytes,
  copyBytes,
  equalBytes,
  fixedClock,
  fromBase64,
  fromBase64Url,
  fromHex,
  fromUtf8,
  i2osp,
  manualClock,
  parseRfc3339,
  rfc3339Millis,
  rfc3339,
  seededRandom,
  systemClock,
  systemRandom,
  toBase64,
  toBase64Url,
  toHex,
  u32be,
  utf8,
  wipe,
} from '@tibet/core';
import * as testing from '@tibet/core/testing';

describe('seededRandom', () => {
  it('is the ChaCha20 keystream under SHA-256(seed), zero nonce, counter from 0', () => {
    const expected = chacha20(sha256(utf8('tibet')), new Uint8Array(12), new Uint8Array(10000));
    expect(toHex(seededRandom('tibet')(10000))).toBe(toHex(expected));
    expect(toHex(seededRandom(utf8('tibet'))(64))).toBe(toHex(expected.subarray(0, 64)));
  });

  it('is deterministic per seed and differs between seeds', () => {
    expect(toHex(seededRandom('a')(48))).toBe(toHex(seededRandom('a')(48)));
    expect(toHex(seededRandom('a')(48))).not.toBe(toHex(seededRandom('b')(48)));
    expect(seededRandom('a').system).toBeUndefined();
  });

  test.prop([fc.string(), fc.array(fc.nat({ max: 5000 }), { maxLength: 12 })])(
    'chunking does not change the stream (across 4096-byte refills too)',
    (seed, sizes) => {
      const total = sizes.reduce((a, b) => a + b, 0);
      const r = seededRandom(seed);
      const parts = sizes.map((n) => r(n));
      expect(toHex(concatBytes(...parts))).toBe(toHex(seededRandom(seed)(total)));
    },
  );

  it('rejects bad lengths and returns empty arrays for 0', () => {
    const r = seededRandom('x');
    expect(r(0)).toEqual(new Uint8Array(0));
    for (const n of [-1, 1.5, NaN, Infinity]) expect(() => r(n)).toThrow(RangeError);
  });
});

describe('systemRandom', () => {
  it('is marked as the system CSPRNG and returns fresh bytes', () => {
    expect(systemRandom.system).toBe(true);
    const a = systemRandom(32);
    expect(a).toBeInstanceOf(Uint8Array);
    expect(a.length).toBe(32);
    expect(toHex(a)).not.toBe(toHex(systemRandom(32)));
  });

  it('fills more than the 65536-byte getRandomValues quota', () => {
    const big = systemRandom(200_000);
    expect(big.length).toBe(200_000);
    expect(big.subarray(150_000).some((b) => b !== 0)).toBe(true);
    for (const n of [-1, 0.5]) expect(() => systemRandom(n)).toThrow(RangeError);
  });

  it('never hands out the same bytes twice, each time in a buffer of its own', () => {
    const seen = new Set<string>();
    const outs: Uint8Array[] = [];
    // several pool refills' worth, in sizes that do not divide the pool
    for (let i = 0; i < 600; i++) {
      const a = systemRandom(16 + (i % 3) * 8);
      expect(a.byteOffset).toBe(0);
      expect(a.buffer.byteLength).toBe(a.length);
      seen.add(toHex(a));
      outs.push(a);
    }
    expect(seen.size).toBe(600);
    // wiping one output leaves every other intact
    const before = outs.map(toHex);
    wipe(outs[10]);
    expect(outs.map(toHex).filter((h, i) => h !== before[i])).toHaveLength(1);
    expect(systemRandom(0)).toEqual(new Uint8Array(0));
  });
});

/**
 * The pool behind `systemRandom`, observed through the real `crypto.getRandomValues` (the
 * spy calls through and records which array it filled, and a copy of what it put there).
 */
describe('systemRandom pool', () => {
  function observe(): { fills: { target: Uint8Array; drawn: Uint8Array }[]; restore: () => void } {
    const real = crypto.getRandomValues.bind(crypto);
    const fills: { target: Uint8Array; drawn: Uint8Array }[] = [];
    const spy = vi
      .spyOn(crypto, 'getRandomValues')
      .mockImplementation(<T extends ArrayBufferView | null>(a: T): T => {
        const r = real(a as unknown as Uint8Array);
        fills.push({ target: r, drawn: r.slice() });
        return a;
      });
    return { fills, restore: () => spy.mockRestore() };
  }

  /** Draw until the pool is refilled; returns the pool, what was drawn into it, and `used`. */
  function freshPool(fills: { target: Uint8Array; drawn: Uint8Array }[]) {
    for (let i = 0; i < 64; i++) {
      const n = fills.length;
      const out = systemRandom(256);
      if (fills.length > n) {
        const { target: pool, drawn } = fills[fills.length - 1]!;
        expect(toHex(out)).toBe(toHex(drawn.subarray(0, 256)));
        return { pool, drawn, used: 256 };
      }
    }
    throw new Error('the pool was never refilled');
  }

  it('hands out copies of the pool in order and zeroes each handed-out region at once', () => {
    const o = observe();
    try {
      const { pool, drawn } = freshPool(o.fills);
      expect(pool.length).toBe(4096);
      let used = 256;
      for (const n of [1, 16, 19, 32, 32, 0, 255, 256]) {
        const out = systemRandom(n);
        expect(out.buffer).not.toBe(pool.buffer);
        expect(toHex(out)).toBe(toHex(drawn.subarray(used, used + n)));
        used += n;
        // everything handed out so far is zero in the pool; the rest is untouched
        expect(pool.subarray(0, used).every((b) => b === 0)).toBe(true);
        expect(toHex(pool.subarray(used))).toBe(toHex(drawn.subarray(used)));
      }
      expect(o.fills).toHaveLength(1); // all of it from one draw of the OS
    } finally {
      o.restore();
    }
  });

  it('refills when a request does not fit: the leftover bytes are never handed out', () => {
    const o = observe();
    try {
      const { pool, drawn } = freshPool(o.fills);
      let used = 256;
      while (4096 - used >= 200) {
        expect(toHex(systemRandom(200))).toBe(toHex(drawn.subarray(used, used + 200)));
        used += 200;
      }
      const left = 4096 - used; // 96 bytes, fewer than the next request
      expect(left).toBeLessThan(200);
      const leftover = toHex(drawn.subarray(used));
      const out = systemRandom(200);
      expect(o.fills).toHaveLength(2);
      const second = o.fills[1]!;
      expect(second.target).toBe(pool); // the same pool, refilled whole
      expect(toHex(out)).toBe(toHex(second.drawn.subarray(0, 200)));
      expect(toHex(out)).not.toContain(leftover);
      expect(pool.subarray(0, 200).every((b) => b === 0)).toBe(true);
      expect(toHex(pool.subarray(200))).toBe(toHex(second.drawn.subarray(200)));
      // a request that fits exactly empties the pool without another draw
      const rest = 4096 - 200;
      let got = 0;
      while (got < rest) got += systemRandom(Math.min(256, rest - got)).length;
      expect(o.fills).toHaveLength(2);
      expect(pool.every((b) => b === 0)).toBe(true);
      systemRandom(1);
      expect(o.fills).toHaveLength(3);
    } finally {
      o.restore();
    }
  });

  it('draws requests longer than 256 bytes straight from the OS, leaving the pool alone', () => {
    const o = observe();
    try {
      const { pool, drawn } = freshPool(o.fills);
      for (const n of [257, 4096, 5000]) {
        const out = systemRandom(n);
        const last = o.fills[o.fills.length - 1]!;
        expect(last.target).not.toBe(pool);
        expect(last.target.buffer).toBe(out.buffer);
        expect(toHex(out)).toBe(toHex(last.drawn));
      }
      expect(o.fills).toHaveLength(4);
      // the pool went on from where it was
      expect(toHex(systemRandom(8))).toBe(toHex(drawn.subarray(256, 264)));
    } finally {
      o.restore();
    }
  });
});

describe('clocks', () => {
  it('fixedClock always returns the same instant, as a fresh Date', () => {
    const c = fixedClock('2026-01-01T00:00:00.000Z');
    const d = c.now();
    d.setFullYear(1999);
    expect(c.now().toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(fixedClock(new Date(5)).now().getTime()).toBe(5);
    expect(() => fixedClock('not a date')).toThrow(TypeError);
  });

  it('manualClock moves only when told to, backwards too', () => {
    const c = manualClock('2026-01-01T00:00:00.000Z');
    expect(rfc3339(c.now())).toBe('2026-01-01T00:00:00.000Z');
    c.advance(1500);
    expect(rfc3339(c.now())).toBe('2026-01-01T00:00:01.500Z');
    c.advance(-2500);
    expect(rfc3339(c.now())).toBe('2025-12-31T23:59:59.000Z');
    c.set('2030-06-01T12:00:00Z');
    expect(rfc3339(c.now())).toBe('2030-06-01T12:00:00.000Z');
    expect(() => c.set('nope')).toThrow(TypeError);
    expect(rfc3339(c.now())).toBe('2030-06-01T12:00:00.000Z');
    expect(() => manualClock('nope')).toThrow(TypeError);
  });

  it('systemClock follows the real time', () => {
    expect(Math.abs(systemClock.now().getTime() - Date.now())).toBeLessThan(1000);
  });

  it('parseRfc3339 accepts only real UTC instants written with Z', () => {
    for (const s of [
      '2026-01-01T00:00:00Z',
      '2026-01-01T00:00:00.1Z',
      '2026-01-01T23:59:59.123456789Z',
      '2024-02-29T12:00:00Z',
      '2000-02-29T12:00:00Z',
      '0001-01-01T00:00:00Z',
    ]) {
      expect(parseRfc3339(s), s).toBeInstanceOf(Date);
    }
    for (const s of [
      '2026-01-01T00:00:00',
      '2026-01-01T00:00:00z',
      '2026-01-01t00:00:00Z',
      '2026-01-01 00:00:00Z',
      '2026-01-01T00:00:00+00:00',
      '2026-01-01T00:00Z',
      '2026-01-01T00:00:00.Z',
      '2026-02-29T00:00:00Z',
      '2026-02-30T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '2100-02-29T00:00:00Z',
      '2026-04-31T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01T23:60:00Z',
      '2026-01-01T23:59:60Z',
      '+002026-01-01T00:00:00Z',
      ' 2026-01-01T00:00:00Z',
      '',
    ]) {
      expect(parseRfc3339(s), s).toBeUndefined();
    }
    for (const v of [null, 1, new Date()]) expect(parseRfc3339(v)).toBeUndefined();
  });

  // The reference: let Date parse it, and refuse what Date rolled over (02-30 → 03-02, 24:00).
  const RFC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;
  const referenceParse = (s: string): number | undefined => {
    if (!RFC.test(s)) return undefined;
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return undefined;
    return d.toISOString().slice(0, 19) === s.slice(0, 19) ? d.getTime() : undefined;
  };
  const pad = (n: number, w: number): string => String(n).padStart(w, '0');
  test.prop([
    fc.integer({ min: 0, max: 9999 }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: 0, max: 25 }),
    fc.integer({ min: 0, max: 61 }),
    fc.integer({ min: 0, max: 61 }),
    fc.option(fc.stringMatching(/^[0-9]{1,9}$/), { nil: undefined }),
  ])('parseRfc3339 agrees with Date on every field combination', (y, mo, d, h, mi, s, frac) => {
    const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}${
      frac === undefined ? '' : `.${frac}`
    }Z`;
    expect(parseRfc3339(text)?.getTime(), text).toBe(referenceParse(text));
    expect(rfc3339Millis(text), text).toBe(referenceParse(text));
  });

  // The millisecond form rfc3339() writes is read without the regex: the same answers.
  test.prop([
    fc.integer({ min: 0, max: 9999 }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: 0, max: 25 }),
    fc.integer({ min: 0, max: 61 }),
    fc.integer({ min: 0, max: 61 }),
    fc.integer({ min: 0, max: 999 }),
  ])('the fixed-position millisecond form agrees with Date', (y, mo, d, h, mi, s, ms) => {
    const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(ms, 3)}Z`;
    expect(text).toHaveLength(24);
    expect(parseRfc3339(text)?.getTime(), text).toBe(referenceParse(text));
    expect(rfc3339Millis(text), text).toBe(referenceParse(text));
  });

  it('the millisecond form refuses a non-digit or a wrong separator anywhere', () => {
    const good = '2026-03-04T05:06:07.089Z';
    expect(parseRfc3339(good)?.getTime()).toBe(Date.UTC(2026, 2, 4, 5, 6, 7, 89));
    expect(parseRfc3339('0050-06-01T00:00:00.000Z')?.toISOString()).toBe(
      '0050-06-01T00:00:00.000Z',
    );
    for (let i = 0; i < good.length; i++) {
      for (const c of ['a', '/', ' ', ':', '-', '.', 'Z', '٣']) {
        if (c === good[i]) continue;
        const bad = good.slice(0, i) + c + good.slice(i + 1);
        expect(parseRfc3339(bad)?.getTime(), bad).toBe(referenceParse(bad));
      }
    }
  });

  test.prop([
    fc.date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('9999-12-31T23:59:59Z'),
      noInvalidDate: true,
    }),
  ])('rfc3339 output parses back to the same instant', (d) => {
    expect(parseRfc3339(rfc3339(d))?.getTime()).toBe(d.getTime());
  });
});

describe('hex and base64 codecs', () => {
  test.prop([fc.uint8Array({ maxLength: 100 })])(
    'decode(encode(x)) = x for hex, base64 and base64url',
    (b) => {
      expect(fromHex(toHex(b))).toEqual(b);
      expect(fromBase64(toBase64(b))).toEqual(b);
      expect(fromBase64Url(toBase64Url(b))).toEqual(b);
      expect(toHex(b)).toMatch(/^[0-9a-f]*$/);
    },
  );

  test.prop([
    fc.string({
      unit: fc.constantFrom(
        ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/='.split(''),
      ),
      maxLength: 24,
    }),
  ])('fromBase64 accepts exactly the canonical encodings (encode(decode(s)) = s)', (s) => {
    let out: Uint8Array | undefined;
    try {
      out = fromBase64(s);
    } catch (e) {
      expect(e).toBeInstanceOf(TypeError);
    }
    if (out) expect(toBase64(out)).toBe(s);
    else expect(Buffer.from(s, 'base64').toString('base64')).not.toBe(s);
  });

  test.prop([
    fc.string({
      unit: fc.constantFrom(
        ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_='.split(''),
      ),
      maxLength: 24,
    }),
  ])('fromBase64Url accepts exactly the canonical encodings', (s) => {
    let out: Uint8Array | undefined;
    try {
      out = fromBase64Url(s);
    } catch (e) {
      expect(e).toBeInstanceOf(TypeError);
    }
    if (out) expect(toBase64Url(out)).toBe(s);
  });

  it('fromBase64 is strict', () => {
    expect(fromBase64('QQ==')).toEqual(Uint8Array.of(0x41));
    for (const s of [
      'QQ',
      'QQ=',
      'QR==',
      'Q===',
      '====',
      'QQ==QQ==',
      'Q Q=',
      ' QQ==',
      'QQ==\n',
      '-_-_',
      'QUJD\n',
      'QUJ*',
    ]) {
      expect(() => fromBase64(s), s).toThrow(TypeError);
    }
    expect(() => fromBase64(1 as never)).toThrow(TypeError);
    expect(() => fromBase64('QQ', 'salt')).toThrow('"salt"');
  });

  it('fromBase64Url is strict', () => {
    expect(fromBase64Url('QQ')).toEqual(Uint8Array.of(0x41));
    expect(fromBase64Url('-_8')).toEqual(Uint8Array.of(0xfb, 0xff));
    for (const s of ['QQ==', 'QR', 'Q', 'QUJDQ', '+/8', 'Q Q', 'QQ\n']) {
      expect(() => fromBase64Url(s), s).toThrow(TypeError);
    }
  });

  it('fromHex is strict about length and alphabet (either case)', () => {
    expect(fromHex('00ff7F')).toEqual(Uint8Array.of(0, 255, 127));
    expect(fromHex('')).toEqual(new Uint8Array(0));
    for (const s of ['0', 'abc', 'zz', '0x00', ' 00', '00 ', '0g', '+1']) {
      expect(() => fromHex(s), s).toThrow(TypeError);
    }
    expect(() => fromHex(null as never)).toThrow(TypeError);
  });

  it('returns plain Uint8Arrays, never Node Buffers, and encodes views correctly', () => {
    for (const b of [
      fromHex('00'),
      fromBase64('AA=='),
      fromBase64Url('AA'),
      copyBytes(Buffer.from('x')),
      utf8('x'),
    ]) {
      expect(Buffer.isBuffer(b)).toBe(false);
      expect(b.constructor).toBe(Uint8Array);
    }
    const big = Uint8Array.of(1, 2, 3, 4, 5, 6, 7);
    expect(toHex(big.subarray(2, 4))).toBe('0304');
    expect(toBase64(big.subarray(2, 4))).toBe(Buffer.from([3, 4]).toString('base64'));
    expect(toBase64Url(big.subarray(5))).toBe(Buffer.from([6, 7]).toString('base64url'));
  });
});

describe('other byte helpers', () => {
  it('utf8 / fromUtf8 (strict)', () => {
    expect(fromUtf8(utf8('héllo 😀'))).toBe('héllo 😀');
    expect(() => fromUtf8(Uint8Array.of(0xc3))).toThrow(TypeError);
    expect(() => fromUtf8(Uint8Array.of(0xed, 0xa0, 0x80))).toThrow(TypeError); // encoded surrogate
  });

  it('equalBytes, concatBytes, wipe, assertBytes', () => {
    expect(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(equalBytes(Uint8Array.of(1), Uint8Array.of(1, 0))).toBe(false);
    expect(concatBytes(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3))).toEqual(
      Uint8Array.of(1, 2, 3),
    );
    const a = Uint8Array.of(1, 2);
    const b = Uint8Array.of(3);
    wipe(a, undefined, b);
    expect([...a, ...b]).toEqual([0, 0, 0]);
    expect(() => assertBytes([1, 2], 'key')).toThrow(TypeError);
    expect(() => assertBytes(new Uint8Array(16), 'key', 32)).toThrow(
      '"key" expected 32 bytes, got 16',
    );
  });

  it('u32be and i2osp', () => {
    expect(u32be(0x01020304)).toEqual(Uint8Array.of(1, 2, 3, 4));
    for (const n of [-1, 2 ** 32, 1.5]) expect(() => u32be(n)).toThrow(RangeError);
    expect(i2osp(258, 2)).toEqual(Uint8Array.of(1, 2));
    expect(i2osp(0, 0)).toEqual(new Uint8Array(0));
    expect(() => i2osp(256, 1)).toThrow(RangeError);
    expect(() => i2osp(-1, 4)).toThrow(RangeError);
  });
});

describe('errors', () => {
  it('CoreError carries a code and a cause, and is recognised without instanceof', () => {
    const cause = new Error('low level');
    const e = new CoreError('AEAD_OPEN_FAILED', 'failed', { cause });
    expect(e.code).toBe('AEAD_OPEN_FAILED');
    expect(e.cause).toBe(cause);
    expect(e.name).toBe('CoreError');
    expect(e).toBeInstanceOf(Error);
    expect(CoreError.is(e)).toBe(true);
    expect(TibetError.isTibetError(e)).toBe(true);
    // A CoreError from a duplicate copy of the package carries the same Symbol.for markers.
    const foreign = Object.assign(new Error('x'), {
      code: 'INVALID_TOKEN',
      [Symbol.for('@tibet/core/error')]: true,
      [Symbol.for('@tibet/error')]: true,
    });
    expect(CoreError.is(foreign)).toBe(true);
    expect(TibetError.isTibetError(foreign)).toBe(true);
    for (const v of [new Error('x'), null, undefined, 'CoreError', { code: 'INVALID_TOKEN' }]) {
      expect(CoreError.is(v)).toBe(false);
    }
    expect(new CoreError('INVALID_TOKEN', 'm').cause).toBeUndefined();
  });
});

describe('@tibet/core/testing', () => {
  it('exports cheap scrypt parameters and deterministic identities', () => {
    expect(testing.TEST_SCRYPT).toEqual({ N: 1024, r: 8, p: 1 });
    const a = testing.testIdentity('jis:acme:t');
    const b = testing.testIdentity('jis:acme:t');
    expect(a.public).toEqual(b.public);
    expect(a.actorClass).toBe('human');
    expect(a.public.created_at).toBe('2026-01-01T00:00:00.000Z');
    expect(
      testing.testIdentity('jis:acme:t', 'machine', { seed: 'other' }).public.signing_key,
    ).not.toBe(a.public.signing_key);
    expect(typeof testing.seededRandom).toBe('function');
    expect(typeof testing.fixedClock).toBe('function');
    expect(typeof testing.manualClock).toBe('function');
  });
});
