/**
 * Generator of the golden TBZ vectors in this directory.
 *
 *   TBZ_REGEN=1 npx vitest run packages/tza/test/tbz-vectors.test.ts   (writes the files)
 *   npx vitest run packages/tza/test/tbz-vectors.test.ts               (checks they match)
 *
 * Valid bundles come from `writeTbz`. Failure bundles come either from a byte mutation of a
 * valid one (truncate, flip a bit, append, patch a header field) or from `rawTbz` below, a
 * second, deliberately independent builder that signs whatever manifest it is given, so
 * that the vectors can hold things `writeTbz` refuses to write (unsafe names, unknown
 * keys, wrong counts, unsorted CBOR). Everything is deterministic: keys come from fixed
 * seeds, tpids and times are fixed, Ed25519 signatures are deterministic.
 */
import { canonicalBytes, concatBytes, getProvider, toHex, u32be, utf8 } from '@tibet/core';
import type { Ed25519PrivateKey } from '@tibet/core';
import { encodeCbor } from '../../../src/cbor.js';
import type { CborValue } from '../../../src/cbor.js';
import type { TzaErrorCode } from '../../../src/errors.js';
import { writeTbz } from '../../../src/tbz.js';
import type { TbzLimits } from '../../../src/tbz.js';

const provider = getProvider('noble');

export interface VectorKey {
  /** The 32-byte RFC 8032 private key: SHA-256 of `tibet-tbz-vector-key:<name>`. */
  seed: string;
  public: string;
}

export interface VectorEntry {
  file: string;
  sha256: string;
  expect: 'valid' | 'failure';
  /** Where a failure is raised: `read` = readTbz throws; `verify` = verifyTbz fails. */
  stage?: 'read' | 'verify';
  code?: TzaErrorCode;
  /** What to pin as sender when verifying (lowercase hex raw Ed25519 keys). */
  trusted_sender_keys: string[];
  /** Limits to read with, when not the defaults. */
  limits?: Partial<TbzLimits>;
  description: string;
}

export interface VectorIndex {
  format: 'tibet-tbz-vectors/1';
  generator: string;
  keys: Record<string, VectorKey>;
  vectors: VectorEntry[];
}

function key(name: string): { signer: Ed25519PrivateKey; info: VectorKey } {
  const seed = provider.sha256(utf8(`tibet-tbz-vector-key:${name}`));
  const signer = provider.ed25519(seed);
  return { signer, info: { seed: toHex(seed), public: toHex(signer.publicKey) } };
}

export const KEYS = {
  alice: key('alice'),
  bob: key('bob'),
  mallory: key('mallory'),
};

export const ALICE_PUB = KEYS.alice.info.public;
export const BOB_PUB = KEYS.bob.info.public;

/** A SAM capsule record (tibet-sam fields), as canonical JSON (RFC 8785). */
export const SAM_JSON = canonicalBytes({
  sam_id: 'sam_0123456789ab',
  intent: 'publish tibet-core 0.4.2 to PyPI',
  secret_id: 'sec_pypi_001',
  target_action: '/upload/pypi',
  actor_id: 'jis:acme:alice',
  valid_until: '2026-05-09T12:05:00Z',
  ephemeral_id: 'eph_a1b2c3d4e5f6',
  policy_lane: 'publish',
  receipt_required: true,
  upstream_payload: { package: 'tibet-core', version: '0.4.2' },
  constraints: [{ key: 'registry', value: 'pypi' }],
  notes: [],
});

export const FILE_BLOCKS = [
  { name: 'hello.txt', content: utf8('hello, bob\n') },
  { name: 'docs/notes.md', content: utf8('# Notes\n\nTwo blocks, one in a subdirectory.\n') },
];

// ---------------------------------------------------------------------------------------
// An independent raw builder

export interface RawBlock {
  name: string;
  content: Uint8Array;
}

/** Sign block i (1-based) as the family does: SHA256(content) ‖ UTF-8(name) ‖ u32be(i). */
export function rawBlockSig(signer: Ed25519PrivateKey, b: RawBlock, i: number): string {
  return toHex(signer.sign(concatBytes(provider.sha256(b.content), utf8(b.name), u32be(i))));
}

export function rawBlockEntries(
  signer: Ed25519PrivateKey,
  blocks: readonly RawBlock[],
): CborValue[] {
  return blocks.map((b, k) => ({
    index: k + 1,
    name: b.name,
    content_sha256: toHex(provider.sha256(b.content)),
    size_bytes: b.content.length,
    ed25519_sig: rawBlockSig(signer, b, k + 1),
  }));
}

/** The fields the family's `pack_bundle` writes, in its (Python dict) order. */
export function rawManifest(
  signer: Ed25519PrivateKey,
  blocks: readonly RawBlock[],
  over: Record<string, CborValue> = {},
): Record<string, CborValue> {
  return {
    tbz_format_version: 1,
    airdrop_format_version: 1,
    tpid: '0192f1a0-7c3e-7a4b-8c2d-1e2f3a4b5c6d',
    sender_aint: 'alice.aint',
    sender_pubkey: toHex(signer.publicKey),
    receiver_aint: 'bob.aint',
    receiver_pubkey: BOB_PUB,
    payload_type: 'file',
    block_count: blocks.length + 1,
    blocks: rawBlockEntries(signer, blocks),
    created_at: '2026-05-09T12:00:00Z',
    transfer_out_token_id: null,
    ...over,
  };
}

/** manifest_sig over the canonical CBOR of the manifest without it. */
export function rawSign(
  signer: Ed25519PrivateKey,
  m: Record<string, CborValue>,
): Record<string, CborValue> {
  return { ...m, manifest_sig: toHex(signer.sign(encodeCbor(m))) };
}

/** Frame a manifest and blocks: "TBZ" 01 | u32 total | u32 mlen | manifest | (u32 len | bytes)*. */
export function rawFrame(
  manifestBytes: Uint8Array,
  blocks: readonly Uint8Array[],
  totalBlocks = blocks.length + 1,
): Uint8Array {
  return concatBytes(
    Uint8Array.of(0x54, 0x42, 0x5a, 0x01),
    u32be(totalBlocks),
    u32be(manifestBytes.length),
    manifestBytes,
    ...blocks.flatMap((b) => [u32be(b.length), b]),
  );
}

export function rawTbz(
  signer: Ed25519PrivateKey,
  blocks: readonly RawBlock[],
  over: Record<string, CborValue> = {},
): Uint8Array {
  const m = rawSign(signer, rawManifest(signer, blocks, over));
  return rawFrame(
    encodeCbor(m),
    blocks.map((b) => b.content),
  );
}

/** CBOR of a text-keyed map in insertion order (not deterministic encoding). */
export function encodeUnsortedMap(m: Record<string, CborValue>): Uint8Array {
  const entries = Object.entries(m);
  const head =
    entries.length < 24
      ? Uint8Array.of(0xa0 | entries.length)
      : Uint8Array.of(0xb8, entries.length);
  return concatBytes(head, ...entries.flatMap(([k, v]) => [encodeCbor(k), encodeCbor(v)]));
}

// ---------------------------------------------------------------------------------------
// Byte surgery on a valid bundle

/** Offsets of a well-formed bundle's parts. */
export function layout(b: Uint8Array): {
  manifestStart: number;
  manifestLen: number;
  blockStarts: number[];
} {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const total = dv.getUint32(4, false);
  const manifestLen = dv.getUint32(8, false);
  let pos = 12 + manifestLen;
  const blockStarts: number[] = [];
  for (let i = 1; i < total; i++) {
    blockStarts.push(pos);
    pos += 4 + dv.getUint32(pos, false);
  }
  return { manifestStart: 12, manifestLen, blockStarts };
}

export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(b);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------
// The vectors

export function buildVectors(): { files: Map<string, Uint8Array>; index: VectorIndex } {
  const { alice, mallory } = KEYS;
  const files = new Map<string, Uint8Array>();
  const vectors: VectorEntry[] = [];
  const add = (
    file: string,
    bytes: Uint8Array,
    e: Omit<VectorEntry, 'file' | 'sha256' | 'trusted_sender_keys'> & {
      trusted_sender_keys?: string[];
    },
  ): void => {
    if (!files.has(file)) files.set(file, bytes);
    vectors.push({
      file,
      sha256: toHex(provider.sha256(bytes)),
      trusted_sender_keys: [ALICE_PUB],
      ...e,
    });
  };

  const sam = writeTbz(
    {
      senderAint: 'alice.aint',
      receiverAint: 'gateway.aint',
      receiverPubkey: BOB_PUB,
      payloadType: 'sam_capsule',
      blocks: [{ name: 'sam.json', content: SAM_JSON }],
      tpid: '0192f1a0-7c3e-7a4b-8c2d-000000000001',
      createdAt: '2026-05-09T12:00:00Z',
    },
    alice.signer,
    { provider },
  );
  add('valid-sam-capsule.tbz', sam, {
    expect: 'valid',
    description:
      'writeTbz: payload_type sam_capsule, one block sam.json (a SAM capsule as RFC 8785 JSON), transfer_out_token_id null',
  });

  const filesBundle = writeTbz(
    {
      senderAint: 'alice.aint',
      receiverAint: 'bob.aint',
      receiverPubkey: BOB_PUB,
      payloadType: 'file',
      blocks: FILE_BLOCKS,
      transferOutTokenId: 'tok-1',
      surface: {
        timeFragment: '2026-05-09',
        context: 'airdrop-demo',
        profile: 'claude',
        priority: 'urgent',
      },
      tpid: '0192f1a0-7c3e-7a4b-8c2d-000000000002',
      createdAt: '2026-05-09T12:00:01Z',
    },
    alice.signer,
    { provider },
  );
  add('valid-files.tbz', filesBundle, {
    expect: 'valid',
    description:
      'writeTbz: payload_type file, blocks hello.txt and docs/notes.md, transfer_out_token_id "tok-1", all four surface_* fields',
  });

  const { manifestStart, manifestLen, blockStarts } = layout(filesBundle);

  add('fail-truncated.tbz', filesBundle.subarray(0, filesBundle.length - 3), {
    expect: 'failure',
    stage: 'read',
    code: 'TBZ_TRUNCATED',
    description: 'valid-files.tbz without its last 3 bytes',
  });

  add('fail-trailing-bytes.tbz', concatBytes(filesBundle, Uint8Array.of(0)), {
    expect: 'failure',
    stage: 'read',
    code: 'TBZ_TRAILING_BYTES',
    description: 'valid-files.tbz with one 0x00 byte appended',
  });

  const badVersion = Uint8Array.from(filesBundle);
  badVersion[3] = 0x02;
  add('fail-bad-version.tbz', badVersion, {
    expect: 'failure',
    stage: 'read',
    code: 'UNKNOWN_VERSION',
    description: 'valid-files.tbz with version byte 0x02',
  });

  // "bob.aint" → "cob.aint": still canonical CBOR, no longer what was signed
  const at = indexOf(filesBundle, utf8('bob.aint'), manifestStart);
  if (at < 0 || at >= manifestStart + manifestLen) throw new Error('receiver_aint not found');
  add('fail-manifest-bitflip-signed.tbz', flipBit(filesBundle, at * 8), {
    expect: 'failure',
    stage: 'verify',
    code: 'TBZ_SIGNATURE_INVALID',
    description: `valid-files.tbz with bit 0 of byte ${at} flipped (receiver_aint "bob.aint" → "cob.aint")`,
  });

  // map(17) → map(16): the last key/value pair becomes trailing CBOR
  add('fail-manifest-bitflip-structure.tbz', flipBit(filesBundle, manifestStart * 8), {
    expect: 'failure',
    stage: 'read',
    code: 'TBZ_MANIFEST_INVALID',
    description: `valid-files.tbz with bit 0 of byte ${manifestStart} (the manifest's map header) flipped`,
  });

  const lastByte = filesBundle.length - 1;
  add('fail-block-bitflip.tbz', flipBit(filesBundle, lastByte * 8), {
    expect: 'failure',
    stage: 'verify',
    code: 'TBZ_DIGEST_MISMATCH',
    description: `valid-files.tbz with bit 0 of byte ${lastByte} (last byte of block 2) flipped`,
  });

  const wrongCount = Uint8Array.from(filesBundle);
  new DataView(wrongCount.buffer).setUint32(4, 4, false);
  add('fail-block-count-header.tbz', wrongCount, {
    expect: 'failure',
    stage: 'read',
    code: 'TBZ_BLOCK_COUNT',
    description: 'valid-files.tbz with header total_blocks 3 → 4 (the manifest says 3)',
  });

  add('fail-block-count-manifest.tbz', rawTbz(alice.signer, FILE_BLOCKS, { block_count: 4 }), {
    expect: 'failure',
    stage: 'read',
    code: 'TBZ_BLOCK_COUNT',
    description: 'rawTbz: two blocks, header total_blocks 3, signed manifest with block_count 4',
  });

  const [b1, b2] = blockStarts as [number, number];
  add(
    'fail-blocks-swapped.tbz',
    concatBytes(
      filesBundle.subarray(0, b1),
      filesBundle.subarray(b2),
      filesBundle.subarray(b1, b2),
    ),
    {
      expect: 'failure',
      stage: 'read',
      code: 'TBZ_MALFORMED',
      description:
        'valid-files.tbz with its two block frames swapped (lengths no longer match size_bytes)',
    },
  );

  const paths: [string, string, string][] = [
    ['fail-path-traversal.tbz', '../evil', 'a block named "../evil"'],
    ['fail-path-absolute.tbz', '/tmp/evil', 'a block named "/tmp/evil"'],
    ['fail-path-backslash.tbz', '..\\evil.txt', 'a block named "..\\evil.txt"'],
    ['fail-path-drive.tbz', 'C:/evil.txt', 'a block named "C:/evil.txt"'],
    ['fail-path-dotdot-inside.tbz', 'docs/../../evil', 'a block named "docs/../../evil"'],
  ];
  for (const [file, name, what] of paths) {
    add(file, rawTbz(alice.signer, [{ name, content: utf8('pwned\n') }]), {
      expect: 'failure',
      stage: 'read',
      code: 'TBZ_PATH_UNSAFE',
      description: `rawTbz, validly signed by alice: ${what}`,
    });
  }
  add(
    'fail-path-duplicate.tbz',
    rawTbz(alice.signer, [
      { name: 'a.txt', content: utf8('first\n') },
      { name: 'a.txt', content: utf8('second\n') },
    ]),
    {
      expect: 'failure',
      stage: 'read',
      code: 'TBZ_PATH_UNSAFE',
      description: 'rawTbz, validly signed by alice: two blocks both named "a.txt"',
    },
  );

  {
    const m = rawSign(alice.signer, rawManifest(alice.signer, FILE_BLOCKS));
    add(
      'fail-manifest-non-canonical.tbz',
      rawFrame(
        encodeUnsortedMap(m),
        FILE_BLOCKS.map((b) => b.content),
      ),
      {
        expect: 'failure',
        stage: 'read',
        code: 'TBZ_MANIFEST_INVALID',
        description:
          'rawTbz manifest encoded with its keys in insertion (Python dict) order instead of sorted; signature over the canonical form (cause: CBOR_NON_CANONICAL)',
      },
    );
  }

  add('fail-manifest-unknown-key.tbz', rawTbz(alice.signer, FILE_BLOCKS, { evil: true }), {
    expect: 'failure',
    stage: 'read',
    code: 'TBZ_MANIFEST_INVALID',
    description: 'rawTbz, validly signed by alice: manifest with an extra key "evil"',
  });

  const byMallory = writeTbz(
    {
      senderAint: 'alice.aint',
      receiverAint: 'bob.aint',
      receiverPubkey: BOB_PUB,
      payloadType: 'file',
      blocks: FILE_BLOCKS,
      tpid: '0192f1a0-7c3e-7a4b-8c2d-000000000003',
      createdAt: '2026-05-09T12:00:02Z',
    },
    mallory.signer,
    { provider },
  );
  add('fail-untrusted-signer.tbz', byMallory, {
    expect: 'failure',
    stage: 'verify',
    code: 'SIGNER_UNTRUSTED',
    description:
      'writeTbz by mallory claiming sender_aint "alice.aint"; intact and self-consistent, so it verifies when nothing is pinned, but fails with alice pinned',
  });

  {
    const m = rawManifest(alice.signer, FILE_BLOCKS);
    const forged = { ...m, manifest_sig: toHex(mallory.signer.sign(encodeCbor(m))) };
    add(
      'fail-forged-manifest-sig.tbz',
      rawFrame(
        encodeCbor(forged),
        FILE_BLOCKS.map((b) => b.content),
      ),
      {
        expect: 'failure',
        stage: 'verify',
        code: 'TBZ_SIGNATURE_INVALID',
        description:
          'rawTbz: sender_pubkey and block signatures by alice, manifest_sig made by mallory',
      },
    );
  }

  {
    const m = rawManifest(alice.signer, FILE_BLOCKS);
    const blocks = m['blocks'] as Record<string, CborValue>[];
    blocks[1] = { ...blocks[1], ed25519_sig: rawBlockSig(mallory.signer, FILE_BLOCKS[1]!, 2) };
    add(
      'fail-forged-block-sig.tbz',
      rawFrame(
        encodeCbor(rawSign(alice.signer, m)),
        FILE_BLOCKS.map((b) => b.content),
      ),
      {
        expect: 'failure',
        stage: 'verify',
        code: 'TBZ_SIGNATURE_INVALID',
        description:
          'rawTbz: block 2 ed25519_sig made by mallory, manifest signed by alice (over that entry)',
      },
    );
  }

  add('valid-files.tbz', filesBundle, {
    expect: 'failure',
    stage: 'read',
    code: 'LIMIT_EXCEEDED',
    limits: { maxBlockBytes: 16 },
    description: 'valid-files.tbz read with maxBlockBytes 16 (block 2 is longer)',
  });

  return {
    files,
    index: {
      format: 'tibet-tbz-vectors/1',
      generator: 'packages/tza/test/vectors/tbz/make-vectors.ts',
      keys: { alice: KEYS.alice.info, bob: KEYS.bob.info, mallory: KEYS.mallory.info },
      vectors,
    },
  };
}
