import {
  concatBytes,
  fixedClock,
  fromHex,
  getProvider,
  seededRandom,
  toHex,
  u32be,
  utf8,
} from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../src/cbor.js';
import { TzaError } from '../src/errors.js';
import type { TzaErrorCode } from '../src/errors.js';
import { TBZ_MAGIC, detectFormat, readTbz, verifyTbz, writeTbz } from '../src/tbz.js';
import type { TbzBundle, TbzWriteInput } from '../src/tbz.js';
import {
  BOB_PUB,
  FILE_BLOCKS,
  KEYS,
  SAM_JSON,
  layout,
  rawFrame,
  rawManifest,
  rawSign,
  rawTbz,
} from './vectors/tbz/make-vectors.js';

const alice = KEYS.alice.signer;
const mallory = KEYS.mallory.signer;
const ALICE = [alice.publicKey];

function input(over: Partial<TbzWriteInput> = {}): TbzWriteInput {
  return {
    senderAint: 'alice.aint',
    receiverAint: 'bob.aint',
    receiverPubkey: BOB_PUB,
    payloadType: 'file',
    blocks: FILE_BLOCKS,
    tpid: '0192f1a0-7c3e-7a4b-8c2d-1e2f3a4b5c6d',
    createdAt: '2026-05-09T12:00:00Z',
    ...over,
  };
}

function codeOf(f: () => unknown): TzaErrorCode | 'no error' | 'not a TzaError' {
  try {
    f();
  } catch (e) {
    return TzaError.is(e) ? e.code : 'not a TzaError';
  }
  return 'no error';
}

function firstFailure(bytes: Uint8Array | TbzBundle, trusted = ALICE): TzaErrorCode | undefined {
  return verifyTbz(bytes, { trustedSenderKeys: trusted }).checks.find((c) => c.status === 'fail')
    ?.code;
}

/** A valid two-block bundle with one manifest value changed, re-signed by alice. */
function resigned(over: Record<string, Parameters<typeof encodeCbor>[0]>): Uint8Array {
  return rawTbz(alice, FILE_BLOCKS, over);
}

describe('detectFormat', () => {
  it('recognises TBZ by its magic and version', () => {
    expect(detectFormat(writeTbz(input(), alice))).toBe('tbz');
    expect(detectFormat(TBZ_MAGIC)).toBe('tbz');
    expect(detectFormat(Uint8Array.of(0x54, 0x42, 0x5a, 0x02))).toBe('unknown');
    expect(detectFormat(Uint8Array.of(0x54, 0x42, 0x5a))).toBe('unknown');
    expect(detectFormat(new Uint8Array(0))).toBe('unknown');
    expect(detectFormat(utf8('PK\x03\x04 a zip'))).toBe('unknown');
  });

  it('recognises a ustar header for manifest.cbor as the tar-based .tza', () => {
    const h = new Uint8Array(1024);
    h.set(utf8('manifest.cbor'), 0);
    h.set(utf8('ustar\0'), 257);
    h.set(utf8('00'), 263);
    expect(detectFormat(h)).toBe('tza');
    expect(detectFormat(h.subarray(0, 511))).toBe('unknown');
    const gnu = Uint8Array.from(h);
    gnu.set(utf8('ustar  \0'), 257); // old GNU magic is not POSIX ustar
    expect(detectFormat(gnu)).toBe('unknown');
    const other = Uint8Array.from(h);
    other.set(utf8('payload.bin\0\0'), 0);
    expect(detectFormat(other)).toBe('unknown');
    const longer = Uint8Array.from(h);
    longer[13] = 0x78; // "manifest.cborx"
    expect(detectFormat(longer)).toBe('unknown');
    const prefixed = Uint8Array.from(h);
    prefixed.set(utf8('dir'), 345); // ustar prefix: the full name is dir/manifest.cbor
    expect(detectFormat(prefixed)).toBe('unknown');
  });

  it('TBZ_MAGIC is a copy', () => {
    const bytes = writeTbz(input(), alice);
    TBZ_MAGIC[0] = 0;
    try {
      expect(() => readTbz(bytes)).not.toThrow();
    } finally {
      TBZ_MAGIC[0] = 0x54;
    }
  });
});

describe('writeTbz → readTbz → verifyTbz', () => {
  it('round trips a SAM capsule', () => {
    const bytes = writeTbz(
      input({ payloadType: 'sam_capsule', blocks: [{ name: 'sam.json', content: SAM_JSON }] }),
      alice,
    );
    const b = readTbz(bytes);
    expect(b.manifest.payload_type).toBe('sam_capsule');
    expect(b.blocks).toEqual([{ index: 1, name: 'sam.json', content: SAM_JSON }]);
    expect(b.manifest.block_count).toBe(2);
    expect(b.manifest.transfer_out_token_id).toBeNull();
    expect(b.manifest.sender_pubkey).toBe(toHex(alice.publicKey));
    const r = verifyTbz(bytes, { trustedSenderKeys: ALICE });
    expect(r).toMatchObject({ valid: true, senderPinned: true, authenticated: true });
    expect(r.checks.map((c) => `${c.check}:${c.status}`)).toEqual([
      'parse:pass',
      'sender-pinned:pass',
      'manifest-signature:pass',
      'block-count:pass',
      'block-digest:pass',
      'block-signature:pass',
    ]);
  });

  it('round trips files, surface fields and a transfer token id', () => {
    const bytes = writeTbz(
      input({
        transferOutTokenId: 'tok-1',
        surface: {
          timeFragment: '2026-05-09',
          context: 'demo',
          profile: 'claude',
          priority: 'urgent',
        },
      }),
      alice,
    );
    const { manifest, blocks, manifestBytes } = readTbz(bytes);
    expect(blocks.map((b) => b.name)).toEqual(['hello.txt', 'docs/notes.md']);
    expect(blocks.map((b) => b.content)).toEqual(FILE_BLOCKS.map((b) => b.content));
    expect(manifest).toMatchObject({
      tbz_format_version: 1,
      airdrop_format_version: 1,
      tpid: '0192f1a0-7c3e-7a4b-8c2d-1e2f3a4b5c6d',
      sender_aint: 'alice.aint',
      receiver_aint: 'bob.aint',
      receiver_pubkey: BOB_PUB,
      payload_type: 'file',
      block_count: 3,
      created_at: '2026-05-09T12:00:00Z',
      transfer_out_token_id: 'tok-1',
      surface_time_fragment: '2026-05-09',
      surface_context: 'demo',
      surface_profile: 'claude',
      surface_priority: 'urgent',
    });
    expect(manifest.blocks[1]).toEqual({
      index: 2,
      name: 'docs/notes.md',
      content_sha256: toHex(getProvider().sha256(FILE_BLOCKS[1]!.content)),
      size_bytes: FILE_BLOCKS[1]!.content.length,
      ed25519_sig: manifest.blocks[1]!.ed25519_sig,
    });
    expect(encodeCbor({ ...manifest })).toEqual(manifestBytes);
    expect(verifyTbz(bytes, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
  });

  it('accepts a bundle with no payload blocks', () => {
    const bytes = writeTbz(input({ blocks: [] }), alice);
    expect(readTbz(bytes).manifest.block_count).toBe(1);
    expect(verifyTbz(bytes, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
  });

  it('agrees byte for byte with the independent raw builder', () => {
    const viaWriter = writeTbz(input(), alice);
    expect(toHex(viaWriter)).toBe(toHex(rawTbz(alice, FILE_BLOCKS)));
  });

  it('is deterministic, and identical on both crypto backends', () => {
    const a = writeTbz(input(), alice, { provider: getProvider('noble') });
    const b = writeTbz(input(), alice, { provider: getProvider('node') });
    const c = writeTbz(input(), getProvider('node').ed25519(fromHex(KEYS.alice.info.seed)));
    expect(toHex(a)).toBe(toHex(b));
    expect(toHex(a)).toBe(toHex(c));
    for (const p of ['noble', 'node'] as const) {
      expect(
        verifyTbz(a, { trustedSenderKeys: ALICE, provider: getProvider(p) }).authenticated,
      ).toBe(true);
    }
  });

  it('draws tpid and created_at from the given Random and Clock', () => {
    const opts = { random: seededRandom('tpid'), clock: fixedClock('2026-11-28T15:20:16.987Z') };
    const i = input({ tpid: undefined, createdAt: undefined });
    const a = readTbz(writeTbz(i, alice, opts)).manifest;
    const b = readTbz(
      writeTbz(i, alice, { random: seededRandom('tpid'), clock: opts.clock }),
    ).manifest;
    expect(a.tpid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.tpid).toBe(b.tpid);
    expect(a.created_at).toBe('2026-11-28T15:20:16Z');
    const c = readTbz(writeTbz(i, alice)).manifest; // system random and clock
    expect(c.tpid).not.toBe(a.tpid);
  });

  it('works with a core Identity signer and byte receiver keys', () => {
    const id = testIdentity('jis:acme:alice', 'human');
    const bob = testIdentity('jis:acme:bob', 'machine');
    const bytes = writeTbz(input({ receiverPubkey: bob.signingPublicKey }), id.signer);
    const r = verifyTbz(bytes, { trustedSenderKeys: [id.signingPublicKey] });
    expect(r.authenticated).toBe(true);
    expect(r.bundle?.manifest.receiver_pubkey).toBe(toHex(bob.signingPublicKey));
  });

  it('returns fresh Uint8Arrays, also when given a Buffer', () => {
    const bytes = writeTbz(input(), alice);
    const b = readTbz(Buffer.from(bytes));
    expect(Buffer.isBuffer(b.manifestBytes)).toBe(false);
    expect(b.manifestBytes.constructor).toBe(Uint8Array);
    for (const block of b.blocks) {
      expect(block.content.constructor).toBe(Uint8Array);
      expect(block.content.buffer).not.toBe(bytes.buffer);
    }
    expect(writeTbz(input(), alice).constructor).toBe(Uint8Array);
    // a Buffer that is a view into a larger pool
    const pooled = Buffer.concat([Buffer.alloc(7), Buffer.from(bytes)]).subarray(7);
    expect(verifyTbz(pooled, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
  });
});

describe('writeTbz rejects bad arguments with TypeError/RangeError', () => {
  const cases: [string, () => unknown, typeof TypeError | typeof RangeError][] = [
    ['empty senderAint', () => writeTbz(input({ senderAint: '' }), alice), TypeError],
    ['empty payloadType', () => writeTbz(input({ payloadType: '' }), alice), TypeError],
    ['short receiver key', () => writeTbz(input({ receiverPubkey: 'abcd' }), alice), RangeError],
    [
      '31-byte receiver key',
      () => writeTbz(input({ receiverPubkey: new Uint8Array(31) }), alice),
      RangeError,
    ],
    [
      'uppercase tpid',
      () => writeTbz(input({ tpid: '0192F1A0-7C3E-7A4B-8C2D-1E2F3A4B5C6D' }), alice),
      RangeError,
    ],
    [
      'created_at with ms',
      () => writeTbz(input({ createdAt: '2026-05-09T12:00:00.000Z' }), alice),
      RangeError,
    ],
    [
      'created_at Feb 30',
      () => writeTbz(input({ createdAt: '2026-02-30T12:00:00Z' }), alice),
      RangeError,
    ],
    [
      'unsafe name',
      () => writeTbz(input({ blocks: [{ name: '../x', content: new Uint8Array(1) }] }), alice),
      RangeError,
    ],
    [
      'duplicate name',
      () =>
        writeTbz(
          input({
            blocks: [
              { name: 'a', content: new Uint8Array(1) },
              { name: 'a', content: new Uint8Array(1) },
            ],
          }),
          alice,
        ),
      RangeError,
    ],
    [
      'file/directory clash',
      () =>
        writeTbz(
          input({
            blocks: [
              { name: 'a', content: new Uint8Array(1) },
              { name: 'a/b', content: new Uint8Array(1) },
            ],
          }),
          alice,
        ),
      RangeError,
    ],
    [
      'content not bytes',
      () => writeTbz(input({ blocks: [{ name: 'a', content: 'x' as never }] }), alice),
      TypeError,
    ],
    ['too many blocks', () => writeTbz(input(), alice, { limits: { maxBlocks: 1 } }), RangeError],
    [
      'block too large',
      () => writeTbz(input(), alice, { limits: { maxBlockBytes: 4 } }),
      RangeError,
    ],
    [
      'manifest too large',
      () => writeTbz(input(), alice, { limits: { maxManifestBytes: 100 } }),
      RangeError,
    ],
    [
      'bundle too large',
      () => writeTbz(input(), alice, { limits: { maxTotalBytes: 100 } }),
      RangeError,
    ],
    ['bad limit', () => writeTbz(input(), alice, { limits: { maxBlocks: -1 } }), RangeError],
    ['bad signer', () => writeTbz(input(), { publicKey: new Uint8Array(32) } as never), TypeError],
    ['bad surface', () => writeTbz(input({ surface: { context: 1 as never } }), alice), TypeError],
  ];
  for (const [label, f, type] of cases) {
    it(label, () => {
      expect(f).toThrow(type);
    });
  }

  it('refuses a signer whose signatures do not match its public key', () => {
    const liar = { publicKey: alice.publicKey, sign: (m: Uint8Array) => mallory.sign(m) };
    expect(() => writeTbz(input(), liar)).toThrow(/does not verify/);
  });
});

describe('readTbz: framing', () => {
  const good = writeTbz(input(), alice);
  const { manifestLen, blockStarts } = layout(good);

  it('rejects other formats and versions', () => {
    expect(codeOf(() => readTbz(utf8('PK\x03\x04....')))).toBe('UNKNOWN_FORMAT');
    expect(codeOf(() => readTbz(utf8('TBX\x01')))).toBe('UNKNOWN_FORMAT');
    const v0 = Uint8Array.from(good);
    v0[3] = 0;
    expect(codeOf(() => readTbz(v0))).toBe('UNKNOWN_VERSION');
    expect(codeOf(() => readTbz('TBZ' as never))).toBe('not a TzaError');
  });

  it('reports every proper prefix as truncated', () => {
    for (let n = 0; n < good.length; n++) {
      expect(
        codeOf(() => readTbz(good.subarray(0, n))),
        `prefix ${n}`,
      ).toBe('TBZ_TRUNCATED');
    }
  });

  it('rejects trailing bytes', () => {
    expect(codeOf(() => readTbz(concatBytes(good, Uint8Array.of(0))))).toBe('TBZ_TRAILING_BYTES');
    expect(codeOf(() => readTbz(concatBytes(good, u32be(0))))).toBe('TBZ_TRAILING_BYTES');
  });

  it('rejects a total_blocks of 0 or one that disagrees with the manifest', () => {
    for (const n of [0, 1, 2, 4]) {
      const b = Uint8Array.from(good);
      new DataView(b.buffer).setUint32(4, n, false);
      expect(
        codeOf(() => readTbz(b)),
        `total ${n}`,
      ).toBe('TBZ_BLOCK_COUNT');
    }
  });

  it('rejects a manifest block_count that disagrees', () => {
    expect(codeOf(() => readTbz(resigned({ block_count: 2 })))).toBe('TBZ_BLOCK_COUNT');
    expect(codeOf(() => readTbz(resigned({ block_count: 4 })))).toBe('TBZ_BLOCK_COUNT');
    // manifest and header agree with each other but not with the blocks listed
    const m = rawSign(alice, rawManifest(alice, FILE_BLOCKS, { block_count: 4 }));
    const b = rawFrame(encodeCbor(m), [...FILE_BLOCKS.map((x) => x.content), new Uint8Array(0)]);
    expect(codeOf(() => readTbz(b))).toBe('TBZ_BLOCK_COUNT');
  });

  it('rejects a block whose length disagrees with size_bytes', () => {
    const [b1, b2] = blockStarts as [number, number];
    const swapped = concatBytes(good.subarray(0, b1), good.subarray(b2), good.subarray(b1, b2));
    expect(codeOf(() => readTbz(swapped))).toBe('TBZ_MALFORMED');
  });

  it('checks limits before allocating', () => {
    expect(codeOf(() => readTbz(good, { maxTotalBytes: good.length - 1 }))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => readTbz(good, { maxTotalBytes: good.length }))).toBe('no error');
    expect(codeOf(() => readTbz(good, { maxBlocks: 1 }))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => readTbz(good, { maxManifestBytes: manifestLen - 1 }))).toBe(
      'LIMIT_EXCEEDED',
    );
    expect(codeOf(() => readTbz(good, { maxBlockBytes: FILE_BLOCKS[1]!.content.length - 1 }))).toBe(
      'LIMIT_EXCEEDED',
    );
    // huge declared sizes in a tiny file: refused by the limit, nothing allocated
    const hugeCount = concatBytes(TBZ_MAGIC, u32be(0xffffffff), u32be(1));
    expect(codeOf(() => readTbz(hugeCount))).toBe('LIMIT_EXCEEDED');
    const hugeManifest = concatBytes(TBZ_MAGIC, u32be(1), u32be(0xffffffff));
    expect(codeOf(() => readTbz(hugeManifest))).toBe('LIMIT_EXCEEDED');
    const hugeBlock = Uint8Array.from(good);
    new DataView(hugeBlock.buffer).setUint32(blockStarts[0]!, 0x7fffffff, false);
    expect(codeOf(() => readTbz(hugeBlock))).toBe('LIMIT_EXCEEDED');
    expect(() => readTbz(good, { maxBlocks: 1.5 })).toThrow(RangeError);
  });
});

describe('readTbz: manifest', () => {
  it('rejects manifests that are not deterministic CBOR, keeping the CBOR error as cause', () => {
    const m = encodeCbor(rawSign(alice, rawManifest(alice, FILE_BLOCKS)));
    const blocks = FILE_BLOCKS.map((b) => b.content);
    // non-shortest map length: 0xb8 0x0d instead of 0xad
    const long = concatBytes(Uint8Array.of(0xb8, m[0]! & 0x1f), m.subarray(1));
    for (const [bytes, cause] of [
      [rawFrame(long, blocks), 'CBOR_NON_CANONICAL'],
      [rawFrame(new Uint8Array(0), blocks), 'CBOR_MALFORMED'],
      [rawFrame(concatBytes(m, Uint8Array.of(0)), blocks), 'CBOR_TRAILING_BYTES'],
      [rawFrame(Uint8Array.of(0xf9, 0x3c, 0x00), blocks), 'CBOR_UNSUPPORTED'],
    ] as const) {
      try {
        readTbz(bytes);
        expect.unreachable();
      } catch (e) {
        expect(TzaError.is(e) && e.code).toBe('TBZ_MANIFEST_INVALID');
        expect(TzaError.is((e as Error).cause) && ((e as Error).cause as TzaError).code).toBe(
          cause,
        );
      }
    }
  });

  it('rejects a manifest that is not a text-keyed map', () => {
    const blocks = FILE_BLOCKS.map((b) => b.content);
    expect(codeOf(() => readTbz(rawFrame(encodeCbor([1, 2]), blocks)))).toBe(
      'TBZ_MANIFEST_INVALID',
    );
    expect(codeOf(() => readTbz(rawFrame(encodeCbor(new Map([[1, 2]])), blocks)))).toBe(
      'TBZ_MANIFEST_INVALID',
    );
  });

  it('collects every field error in one message', () => {
    const bad = resigned({
      tpid: 'not-a-uuid',
      sender_aint: '',
      receiver_pubkey: 'AB'.repeat(32),
      created_at: '2026-05-09 12:00:00',
      transfer_out_token_id: 7,
      surface_context: null,
      extra: 1,
    });
    try {
      readTbz(bad);
      expect.unreachable();
    } catch (e) {
      expect(TzaError.is(e) && e.code).toBe('TBZ_MANIFEST_INVALID');
      const msg = (e as Error).message;
      for (const s of [
        'tpid',
        'sender_aint',
        'receiver_pubkey',
        'created_at',
        'transfer_out_token_id',
        'surface_context',
        '"extra"',
      ]) {
        expect(msg).toContain(s);
      }
    }
  });

  it('validates each field', () => {
    const cases: Record<string, Parameters<typeof encodeCbor>[0]>[] = [
      { tbz_format_version: '1' },
      { airdrop_format_version: true },
      { tpid: '0192F1A0-7C3E-7A4B-8C2D-1E2F3A4B5C6D' },
      { sender_pubkey: 'ab' },
      { receiver_pubkey: 7 },
      { receiver_aint: '' },
      { payload_type: null },
      { created_at: '2026-13-01T00:00:00Z' },
      { created_at: '2026-05-09T24:00:00Z' },
      { created_at: '2026-05-09T12:00:00+00:00' },
      { surface_priority: 3 },
      { blocks: {} },
    ];
    for (const over of cases) {
      expect(
        codeOf(() => readTbz(resigned(over))),
        JSON.stringify(over),
      ).toBe('TBZ_MANIFEST_INVALID');
    }
    const badSig = {
      ...rawSign(alice, rawManifest(alice, FILE_BLOCKS)),
      manifest_sig: 'AB'.repeat(64),
    };
    const sigBytes = rawFrame(
      encodeCbor(badSig),
      FILE_BLOCKS.map((x) => x.content),
    );
    expect(codeOf(() => readTbz(sigBytes))).toBe('TBZ_MANIFEST_INVALID');
    // missing keys
    for (const k of ['tpid', 'transfer_out_token_id', 'blocks', 'manifest_sig']) {
      const m: Record<string, Parameters<typeof encodeCbor>[0]> = rawSign(
        alice,
        rawManifest(alice, FILE_BLOCKS),
      );
      delete m[k];
      const b = rawFrame(
        encodeCbor(m),
        FILE_BLOCKS.map((x) => x.content),
      );
      expect(
        codeOf(() => readTbz(b)),
        k,
      ).toBe('TBZ_MANIFEST_INVALID');
    }
  });

  it('validates block entries: 1-based indices in order, hex, sizes, no extra keys', () => {
    const entries = (
      f: (e: Record<string, Parameters<typeof encodeCbor>[0]>, i: number) => void,
    ) => {
      const m = rawManifest(alice, FILE_BLOCKS);
      const list = (m['blocks'] as Record<string, Parameters<typeof encodeCbor>[0]>[]).map((e) => ({
        ...e,
      }));
      list.forEach(f);
      return rawFrame(
        encodeCbor(rawSign(alice, { ...m, blocks: list })),
        FILE_BLOCKS.map((x) => x.content),
      );
    };
    expect(codeOf(() => readTbz(entries((e, i) => (e['index'] = i))))).toBe('TBZ_MANIFEST_INVALID');
    expect(codeOf(() => readTbz(entries((e, i) => (e['index'] = 2 - i))))).toBe(
      'TBZ_MANIFEST_INVALID',
    );
    expect(
      codeOf(() =>
        readTbz(
          entries((e) => (e['content_sha256'] = (e['content_sha256'] as string).toUpperCase())),
        ),
      ),
    ).toBe('TBZ_MANIFEST_INVALID');
    expect(codeOf(() => readTbz(entries((e) => (e['size_bytes'] = -1))))).toBe(
      'TBZ_MANIFEST_INVALID',
    );
    expect(codeOf(() => readTbz(entries((e) => (e['ed25519_sig'] = ''))))).toBe(
      'TBZ_MANIFEST_INVALID',
    );
    expect(codeOf(() => readTbz(entries((e) => (e['name'] = 5))))).toBe('TBZ_MANIFEST_INVALID');
    expect(codeOf(() => readTbz(entries((e) => (e['mode'] = 420))))).toBe('TBZ_MANIFEST_INVALID');
    expect(codeOf(() => readTbz(entries((e) => delete e['size_bytes'])))).toBe(
      'TBZ_MANIFEST_INVALID',
    );
  });

  it('raises UNKNOWN_VERSION for a manifest of another version', () => {
    expect(codeOf(() => readTbz(resigned({ tbz_format_version: 2 })))).toBe('UNKNOWN_VERSION');
    expect(codeOf(() => readTbz(resigned({ airdrop_format_version: 2 })))).toBe('UNKNOWN_VERSION');
  });

  it('does not mistake inherited properties for manifest keys', () => {
    const m: Record<string, Parameters<typeof encodeCbor>[0]> = rawSign(
      alice,
      rawManifest(alice, FILE_BLOCKS),
    );
    delete m['tpid'];
    m['toString'] = 'x';
    const b = rawFrame(
      encodeCbor(m),
      FILE_BLOCKS.map((x) => x.content),
    );
    expect(codeOf(() => readTbz(b))).toBe('TBZ_MANIFEST_INVALID');
    // a "__proto__" key is an ordinary unknown key, not a prototype change
    const p = resigned({ ['__proto__']: { polluted: true } });
    expect(codeOf(() => readTbz(p))).toBe('TBZ_MANIFEST_INVALID');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('readTbz: block names', () => {
  const unsafe = [
    '../evil',
    '..',
    '.',
    'a/../../evil',
    'a/./b',
    '/etc/passwd',
    '//server/share',
    'C:/evil',
    'c:evil',
    'a\\b',
    '..\\evil',
    'a\0b',
    'a\nb',
    'a\x7fb',
    '',
    'a//b',
    'a/',
    'x'.repeat(256),
    `${'d/'.repeat(2100)}f`,
  ];
  for (const name of unsafe) {
    it(`rejects ${JSON.stringify(name.length > 30 ? `${name.slice(0, 30)}…` : name)}`, () => {
      expect(codeOf(() => readTbz(rawTbz(alice, [{ name, content: utf8('x') }])))).toBe(
        'TBZ_PATH_UNSAFE',
      );
    });
  }

  it('accepts ordinary relative names, including non-ASCII and dots inside names', () => {
    const names = [
      'a',
      'dir/sub/file.txt',
      '.hidden',
      'a..b',
      '...',
      'ünïcødé/文件.md',
      'x'.repeat(255),
    ];
    const bytes = writeTbz(
      input({ blocks: names.map((name) => ({ name, content: utf8(name) })) }),
      alice,
    );
    expect(readTbz(bytes).blocks.map((b) => b.name)).toEqual(names);
    expect(verifyTbz(bytes, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
  });

  it('rejects duplicates and a name that is also a directory', () => {
    const twice = [
      { name: 'a.txt', content: utf8('1') },
      { name: 'a.txt', content: utf8('2') },
    ];
    expect(codeOf(() => readTbz(rawTbz(alice, twice)))).toBe('TBZ_PATH_UNSAFE');
    const clash = [
      { name: 'd/f', content: utf8('1') },
      { name: 'd', content: utf8('2') },
    ];
    expect(codeOf(() => readTbz(rawTbz(alice, clash)))).toBe('TBZ_PATH_UNSAFE');
  });
});

describe('verifyTbz', () => {
  const good = writeTbz(input(), alice);

  it('says an unpinned sender is not authenticated', () => {
    const r = verifyTbz(good);
    expect(r).toMatchObject({
      valid: true,
      senderPinned: false,
      authenticated: false,
      senderPubkey: toHex(alice.publicKey),
    });
    expect(r.checks.find((c) => c.check === 'sender-pinned')).toMatchObject({ status: 'warn' });
    // throwOnFailure does not throw for a warning
    expect(verifyTbz(good, { throwOnFailure: true }).valid).toBe(true);
  });

  it('rejects a sender that is not pinned, by key list or predicate', () => {
    expect(firstFailure(good, [mallory.publicKey])).toBe('SIGNER_UNTRUSTED');
    expect(firstFailure(good, [])).toBe('SIGNER_UNTRUSTED');
    const seen: string[] = [];
    const r = verifyTbz(good, {
      trustedSenderKeys: (hex) => {
        seen.push(hex);
        return hex === toHex(alice.publicKey);
      },
    });
    expect(r.authenticated).toBe(true);
    expect(seen).toEqual([toHex(alice.publicKey)]);
    expect(verifyTbz(good, { trustedSenderKeys: () => false }).checks[1]).toMatchObject({
      check: 'sender-pinned',
      status: 'fail',
      code: 'SIGNER_UNTRUSTED',
    });
    expect(() => verifyTbz(good, { trustedSenderKeys: [new Uint8Array(31)] })).toThrow(RangeError);
    expect(() => verifyTbz(good, { trustedSenderKeys: 'x' as never })).toThrow(TypeError);
  });

  it('a bundle re-signed by someone else under the claimed key fails', () => {
    const m = rawManifest(alice, FILE_BLOCKS);
    const forged = rawFrame(
      encodeCbor({ ...m, manifest_sig: toHex(mallory.sign(encodeCbor(m))) }),
      FILE_BLOCKS.map((b) => b.content),
    );
    const r = verifyTbz(forged, { trustedSenderKeys: ALICE });
    expect(r.valid).toBe(false);
    expect(r.checks.filter((c) => c.status === 'fail').map((c) => c.check)).toEqual([
      'manifest-signature',
    ]);
  });

  it('detects changed content, listing both the digest and the signature failure', () => {
    const bad = Uint8Array.from(good);
    bad[bad.length - 1]! ^= 0x20;
    const r = verifyTbz(bad, { trustedSenderKeys: ALICE });
    expect(r.checks.filter((c) => c.status === 'fail')).toEqual([
      expect.objectContaining({ check: 'block-digest', block: 2, code: 'TBZ_DIGEST_MISMATCH' }),
      expect.objectContaining({
        check: 'block-signature',
        block: 2,
        code: 'TBZ_SIGNATURE_INVALID',
      }),
    ]);
    try {
      verifyTbz(bad, { trustedSenderKeys: ALICE, throwOnFailure: true });
      expect.unreachable();
    } catch (e) {
      expect(TzaError.is(e) && e.code).toBe('TBZ_DIGEST_MISMATCH');
    }
  });

  it('detects a block signature from another key even when the manifest is signed', () => {
    const m = rawManifest(alice, FILE_BLOCKS);
    const entries = m['blocks'] as Record<string, Parameters<typeof encodeCbor>[0]>[];
    const msg = concatBytes(
      getProvider().sha256(FILE_BLOCKS[0]!.content),
      utf8('hello.txt'),
      u32be(1),
    );
    entries[0] = { ...entries[0], ed25519_sig: toHex(mallory.sign(msg)) };
    const b = rawFrame(
      encodeCbor(rawSign(alice, m)),
      FILE_BLOCKS.map((x) => x.content),
    );
    const r = verifyTbz(b, { trustedSenderKeys: ALICE });
    expect(r.checks.filter((c) => c.status === 'fail')).toEqual([
      expect.objectContaining({
        check: 'block-signature',
        block: 1,
        code: 'TBZ_SIGNATURE_INVALID',
      }),
    ]);
  });

  it('binds block signatures to name and index', () => {
    // a block signature made for another name or index does not verify
    const m = rawManifest(alice, FILE_BLOCKS);
    const entries = m['blocks'] as Record<string, Parameters<typeof encodeCbor>[0]>[];
    const digest = getProvider().sha256(FILE_BLOCKS[0]!.content);
    for (const [name, i] of [
      ['other.txt', 1],
      ['hello.txt', 2],
    ] as const) {
      entries[0] = {
        ...entries[0],
        ed25519_sig: toHex(alice.sign(concatBytes(digest, utf8(name), u32be(i)))),
      };
      const b = rawFrame(
        encodeCbor(rawSign(alice, m)),
        FILE_BLOCKS.map((x) => x.content),
      );
      expect(firstFailure(b)).toBe('TBZ_SIGNATURE_INVALID');
    }
  });

  it('reports a bundle that does not parse as one failed parse check', () => {
    const r = verifyTbz(good.subarray(0, 20), { trustedSenderKeys: ALICE });
    expect(r).toEqual({
      valid: false,
      senderPinned: false,
      authenticated: false,
      senderPubkey: undefined,
      bundle: undefined,
      checks: [expect.objectContaining({ check: 'parse', status: 'fail', code: 'TBZ_TRUNCATED' })],
    });
    expect(codeOf(() => verifyTbz(good.subarray(0, 20), { throwOnFailure: true }))).toBe(
      'TBZ_TRUNCATED',
    );
  });

  it('re-checks a bundle object instead of trusting it', () => {
    const b = readTbz(good);
    expect(verifyTbz(b, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
    const changedContent: TbzBundle = {
      ...b,
      blocks: b.blocks.map((x, i) => (i === 0 ? { ...x, content: utf8('HELLO, bob\n') } : x)),
    };
    expect(firstFailure(changedContent)).toBe('TBZ_DIGEST_MISMATCH');
    const changedManifest: TbzBundle = {
      ...b,
      manifest: { ...b.manifest, receiver_aint: 'eve.aint' },
    };
    expect(firstFailure(changedManifest)).toBe('TBZ_MANIFEST_INVALID');
    const droppedBlock: TbzBundle = { ...b, blocks: b.blocks.slice(0, 1) };
    expect(firstFailure(droppedBlock)).toBe('TBZ_BLOCK_COUNT');
    const renamed: TbzBundle = {
      ...b,
      blocks: b.blocks.map((x) => ({ ...x, name: `x/${x.name}` })),
    };
    expect(firstFailure(renamed)).toBe('TBZ_MALFORMED');
    const resized: TbzBundle = {
      ...b,
      blocks: b.blocks.map((x) => ({ ...x, content: concatBytes(x.content, utf8('!')) })),
    };
    expect(firstFailure(resized)).toBe('TBZ_MALFORMED');
  });
});
