/**
 * Properties of whole `tza/1` bundles: pack → open for every recipient, identical bytes
 * from both crypto backends, every single-bit flip and every truncation detected, the
 * wrong identity refused, rewrap keeping the payload bytes.
 */
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  equalBytes,
  getProvider,
  toHex,
  utf8,
  type CryptoProvider,
  type Identity,
} from '@tibet/core';
import { seededRandom, testIdentity } from '@tibet/core/testing';
import {
  TzaError,
  cosignTza,
  inspectTza,
  openTza,
  packTza,
  readTza,
  rewrapTza,
  verifyTza,
  type PackEntry,
  type TzaErrorCode,
} from '@tibet/tza';
import { folderConflict } from '../src/manifest.js';
import { BLOCK } from '../src/tar.js';
import { actor, clock, type ActorName } from './vectors/tza/support.js';

const mallory = testIdentity('jis:evil:mallory', 'external');

function codeOf(f: () => unknown): TzaErrorCode | 'NO_ERROR' | `OTHER ${string}` {
  try {
    f();
    return 'NO_ERROR';
  } catch (e) {
    if (TzaError.is(e)) return e.code;
    return `OTHER ${(e as Error).name}: ${(e as Error).message}`;
  }
}

// ---------------------------------------------------------------------------------------
// arbitrary bundles

const segment = fc
  .string({ unit: fc.constantFrom(...'abcxyz019._-'.split('')), minLength: 1, maxLength: 16 })
  .filter((s) => s !== '.' && s !== '..');
const entryName = fc
  .array(segment, { minLength: 1, maxLength: 3 })
  .map((s) => s.join('/'))
  .filter((n) => n !== 'manifest.cbor' && n !== 'signatures.cbor');
const size = fc.oneof(
  fc.constantFrom(0, 1, 16, 65535, 65536, 65537, 131072, 150000),
  fc.integer({ min: 0, max: 150_000 }),
  fc.integer({ min: 0, max: 600 }),
);
const RECIPIENTS: ActorName[] = ['alice', 'bob', 'carol'];

interface Spec {
  kind: string;
  entries: { name: string; size: number; sealed: boolean; seed: string }[];
  recipients: ActorName[];
  signers: ActorName[];
  seed: string;
}
const specArb: fc.Arbitrary<Spec> = fc
  .record({
    kind: fc.constantFrom('secret', 'file', 'capsule', 'a-b9'),
    entries: fc.uniqueArray(
      fc.record({ name: entryName, size, sealed: fc.boolean(), seed: fc.string({ maxLength: 4 }) }),
      { minLength: 1, maxLength: 4, selector: (e) => e.name },
    ),
    recipients: fc.shuffledSubarray(RECIPIENTS, { minLength: 1, maxLength: 3 }),
    signers: fc.shuffledSubarray(RECIPIENTS, { minLength: 1, maxLength: 2 }),
    seed: fc.string({ maxLength: 8 }),
  })
  // names such as `c` and `c/a` cannot be unpacked side by side, and packTza refuses them
  // (a test of its own): these properties are about bundles that can be made
  .filter((s) => folderConflict(s.entries.map((e) => e.name)) === undefined)
  .map((s) => ({ ...s, recipients: s.entries.some((e) => e.sealed) ? s.recipients : [] }));

function dataOf(e: Spec['entries'][number]): Uint8Array {
  return seededRandom(`data:${e.seed}:${e.name}`)(e.size);
}

function pack(
  s: Spec,
  provider: CryptoProvider = getProvider(),
): { bytes: Uint8Array; data: Uint8Array[] } {
  const data = s.entries.map(dataOf);
  const entries: PackEntry[] = s.entries.map((e, i) => ({
    name: e.name,
    data: data[i]!,
    sealed: e.sealed,
  }));
  const bytes = packTza(
    {
      kind: s.kind,
      meta: { seed: s.seed },
      entries,
      recipients: s.recipients.map((r) => actor(r, provider)),
      signers: s.signers.map((r) => actor(r, provider)),
    },
    { clock, random: seededRandom(`bundle:${s.seed}`), provider },
  );
  return { bytes, data };
}

/** One small signed bundle (an unsealed and a sealed entry, one recipient). */
const small = packTza(
  {
    kind: 'secret',
    meta: { issuer: 'jis:acme:alice' },
    entries: [
      { name: 'note.txt', data: utf8('hello'), mediaType: 'text/plain' },
      { name: 'key.bin', data: seededRandom('small')(32), sealed: true },
    ],
    recipients: [actor('alice')],
    signers: [actor('alice')],
  },
  { clock, random: seededRandom('tza-small') },
);

// ---------------------------------------------------------------------------------------

describe('tza/1 bundle properties', () => {
  test.prop([specArb], { numRuns: 25 })(
    'pack → open gives the same data for every recipient',
    (s) => {
      const { bytes, data } = pack(s);
      const report = verifyTza(bytes, { trust: s.signers.map((n) => actor(n).signingPublicKey) });
      expect(report).toMatchObject({ valid: true, kind: s.kind });
      expect(report.signers.map((x) => x.signer)).toEqual(s.signers.map((n) => actor(n).id));
      const who = s.recipients.length ? s.recipients : (['carol'] as ActorName[]);
      for (const r of who) {
        const o = openTza(bytes, actor(r));
        expect(o.entries.map((e) => e.name)).toEqual(s.entries.map((e) => e.name));
        o.entries.forEach((e, i) => {
          expect(e.sealed).toBe(s.entries[i]!.sealed);
          expect(equalBytes(e.data, data[i]!), `${e.name} for ${r}`).toBe(true);
        });
        o.destroy();
      }
      // a sealed entry's plaintext never appears in the bundle (for entries long enough to tell)
      s.entries.forEach((e, i) => {
        if (e.sealed && e.size >= 16)
          expect(Buffer.from(bytes).includes(Buffer.from(data[i]!.subarray(0, 16)))).toBe(false);
      });
    },
  );

  test.prop([specArb], { numRuns: 8 })(
    "the noble and node backends pack identical bytes and open each other's bundles",
    (s) => {
      const node = pack(s, getProvider('node'));
      const noble = pack(s, getProvider('noble'));
      expect(toHex(getProvider().sha256(noble.bytes))).toBe(
        toHex(getProvider().sha256(node.bytes)),
      );
      for (const provider of [getProvider('noble'), getProvider('node')]) {
        const o = openTza(node.bytes, actor(s.recipients[0] ?? 'alice', provider), { provider });
        o.entries.forEach((e, i) => expect(equalBytes(e.data, node.data[i]!)).toBe(true));
      }
    },
  );

  test.prop([specArb, fc.array(fc.nat(), { minLength: 20, maxLength: 20 })], { numRuns: 15 })(
    'truncation at every 512-byte boundary and at random offsets is detected',
    (s, offsets) => {
      const { bytes } = pack(s);
      const cuts = new Set<number>();
      for (let k = 0; k < bytes.length; k += BLOCK) cuts.add(k);
      for (const o of offsets) cuts.add(o % bytes.length);
      for (const k of cuts) {
        const r = verifyTza(bytes.subarray(0, k));
        expect(r.valid, `cut at ${k} of ${bytes.length}`).toBe(false);
        expect(r.code).toBe('TAR_TRUNCATED');
      }
    },
  );

  test.prop([specArb.filter((s) => s.recipients.length > 0)], { numRuns: 10 })(
    'a bundle opened with the wrong identity fails with NOT_A_RECIPIENT',
    (s) => {
      const { bytes } = pack(s);
      const outsiders = [
        mallory,
        ...RECIPIENTS.filter((r) => !s.recipients.includes(r)).map((r) => actor(r)),
      ];
      for (const who of outsiders)
        expect(codeOf(() => openTza(bytes, who))).toBe('NOT_A_RECIPIENT');
      expect(codeOf(() => openTza(bytes, undefined))).toBe('NOT_A_RECIPIENT');
    },
  );

  test.prop([specArb.filter((s) => s.recipients.length > 0), fc.boolean()], { numRuns: 10 })(
    'rewrapTza add/remove keeps the payload bytes; rekey changes them but not the plaintext',
    (s, rekey) => {
      const { bytes, data } = pack(s);
      const keep = s.recipients[0]!;
      const removed = s.recipients.slice(1);
      const added: Identity[] = [
        mallory,
        ...RECIPIENTS.filter((r) => !s.recipients.includes(r)).map((r) => actor(r)),
      ];
      const out = rewrapTza(
        bytes,
        actor(keep),
        { add: added, remove: removed.map((r) => actor(r).id), rekey },
        [actor('alice')],
        { clock, random: seededRandom(`rewrap:${s.seed}`) },
      );
      const before = readTza(bytes);
      const after = readTza(out);
      expect(after.manifest.bundle_id).toBe(before.manifest.bundle_id);
      expect(after.manifest.recipients.map((r) => r.id).sort()).toEqual(
        [actor(keep).id, ...added.map((a) => a.id)].sort(),
      );
      after.stored.forEach((st, i) => {
        const same = equalBytes(st, before.stored[i]!);
        if (!rekey || !s.entries[i]!.sealed)
          expect(same, `${s.entries[i]!.name} stored bytes kept`).toBe(true);
        else expect(same, `${s.entries[i]!.name} re-encrypted`).toBe(false);
      });
      for (const who of [actor(keep), ...added]) {
        const o = openTza(out, who);
        o.entries.forEach((e, i) => expect(equalBytes(e.data, data[i]!)).toBe(true));
      }
      for (const r of removed) expect(codeOf(() => openTza(out, actor(r)))).toBe('NOT_A_RECIPIENT');
      expect(verifyTza(out, { trust: [actor('alice').signingPublicKey] }).valid).toBe(true);
    },
  );
});

describe('tza/1 tamper evidence on one small bundle', () => {
  it('is small (under 6 KiB)', () => {
    expect(small.length).toBeLessThanOrEqual(6 * 1024);
  });

  it('every single bit flip anywhere in the bundle is detected', () => {
    const missed: string[] = [];
    const codes = new Map<string, number>();
    const c = small.slice();
    for (let i = 0; i < small.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        c[i]! ^= 1 << bit;
        const r = verifyTza(c);
        c[i]! ^= 1 << bit;
        if (r.valid) missed.push(`byte ${i} bit ${bit}`);
        else codes.set(r.code!, (codes.get(r.code!) ?? 0) + 1);
      }
    }
    expect(missed).toEqual([]);
    // the checks that catch them (all of these are exercised)
    for (const code of [
      'TAR_CHECKSUM',
      'TAR_NON_CANONICAL',
      'SIGNATURE_INVALID',
      'DIGEST_MISMATCH',
    ]) {
      expect(codes.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });

  it('every single-byte change that keeps the bundle readable is caught by the signature or a digest', () => {
    // replace each byte of the manifest and payload data by 0x00/0xff: structure may stay valid
    const parsed = readTza(small);
    const mStart = BLOCK;
    const missed: number[] = [];
    for (let i = mStart; i < mStart + parsed.manifestBytes.length; i++) {
      for (const v of [0x00, 0xff, small[i]! ^ 0x20]) {
        if (v === small[i]) continue;
        const c = small.slice();
        c[i] = v;
        if (verifyTza(c).valid) missed.push(i);
      }
    }
    expect(missed).toEqual([]);
  });

  it('appending anything is detected', () => {
    for (const extra of [
      Uint8Array.of(0),
      new Uint8Array(BLOCK),
      new Uint8Array(2 * BLOCK),
      small,
    ]) {
      const c = new Uint8Array(small.length + extra.length);
      c.set(small);
      c.set(extra, small.length);
      expect(verifyTza(c).valid).toBe(false);
    }
  });

  it('a co-signature keeps the manifest and payload bytes and adds a signature', () => {
    const co = cosignTza(small, actor('bob'), { clock });
    const a = readTza(small);
    const b = readTza(co);
    expect(equalBytes(a.manifestBytes, b.manifestBytes)).toBe(true);
    b.stored.forEach((s, i) => expect(equalBytes(s, a.stored[i]!)).toBe(true));
    expect(b.signatures.map((s) => s.header.signer)).toEqual(['jis:acme:alice', 'jis:acme:bob']);
    expect(verifyTza(co, { requireSigners: ['jis:acme:alice', 'jis:acme:bob'] }).valid).toBe(true);
    // the co-signature alone is not enough when only alice is pinned … but alice's is
    expect(verifyTza(co, { trust: [actor('alice').signingPublicKey] }).valid).toBe(true);
    expect(verifyTza(co, { trust: [actor('carol').signingPublicKey] }).code).toBe(
      'SIGNER_UNTRUSTED',
    );
  });

  it('inspect shows the readable face and never the sealed bytes', () => {
    const i = inspectTza(small);
    expect(i.entries.map((e) => [e.name, e.sealed, e.plainSize])).toEqual([
      ['note.txt', false, 5],
      ['key.bin', true, 32],
    ]);
    expect(i.recipients.map((r) => r.id)).toEqual(['jis:acme:alice']);
    expect(JSON.stringify(i)).not.toContain(toHex(seededRandom('small')(32)));
  });
});

describe('regressions (bugs found by these tests, now fixed)', () => {
  // FIXED 1 (src/tar.ts octal(), via src/bundle.ts assemble()): a clock before 1970 gives a
  // negative mtime; octal(-1, 12) writes "000000000-1\0", so packTza returns a bundle its
  // own reader refuses (TAR_MALFORMED). Expected: packTza throws RangeError (or the format
  // defines pre-epoch times) instead of emitting an unreadable bundle.
  it('packTza with a pre-1970 clock either throws RangeError or makes a readable bundle', () => {
    let b: Uint8Array;
    try {
      b = packTza(
        { kind: 'file', entries: [{ name: 'a', data: utf8('x') }], signers: [actor('alice')] },
        {
          clock: { now: () => new Date('1969-12-31T23:59:59.000Z') },
          random: seededRandom('epoch'),
        },
      );
    } catch (e) {
      expect(e).toBeInstanceOf(RangeError);
      return;
    }
    expect(verifyTza(b)).toMatchObject({ valid: true });
  });

  // FIXED 2 (src/tar.ts readTar `bytes.slice(o, o + size)`, src/cbor.ts Reader `this.b.slice`):
  // on a Node Buffer (what fs.readFileSync returns) Buffer#slice is a view, not a copy, so
  // readTza/openTza return Buffers that alias the caller's input (unsealed entry data,
  // manifestBytes, manifest byte fields). Conventions: return fresh Uint8Array, never Buffer.
  it('readTza/openTza of a Node Buffer return fresh plain Uint8Arrays', () => {
    const input = Buffer.from(small);
    const parsed = readTza(input);
    const opened = openTza(input, actor('alice'));
    for (const b of [
      parsed.manifestBytes,
      parsed.stored[0]!,
      parsed.manifest.entries[0]!.sha256,
      opened.entries[0]!.data,
    ]) {
      expect(Object.getPrototypeOf(b)).toBe(Uint8Array.prototype);
    }
    input.fill(0);
    expect(opened.entries[0]!.data).toEqual(utf8('hello'));
  });
});
