/** Property tests for the TBZ reader, verifier and writer. */
import path from 'node:path';
import { concatBytes, toHex, utf8 } from '@tibet/core';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { TzaError } from '../src/errors.js';
import { readTbz, verifyTbz, writeTbz } from '../src/tbz.js';
import type { TbzWriteInput } from '../src/tbz.js';
import {
  BOB_PUB,
  FILE_BLOCKS,
  KEYS,
  SAM_JSON,
  flipBit,
  rawTbz,
} from './vectors/tbz/make-vectors.js';

const alice = KEYS.alice.signer;
const ALICE = [alice.publicKey];

/** Never authenticated: readTbz throws a TzaError, or verification fails. */
function refused(bytes: Uint8Array): boolean {
  let r;
  try {
    r = verifyTbz(bytes, { trustedSenderKeys: ALICE });
  } catch (e) {
    if (TzaError.is(e)) return true;
    throw e;
  }
  return !r.valid && !r.authenticated;
}

const samBundle = writeTbz(
  {
    senderAint: 'alice.aint',
    receiverAint: 'gateway.aint',
    receiverPubkey: BOB_PUB,
    payloadType: 'sam_capsule',
    blocks: [{ name: 'sam.json', content: SAM_JSON }],
    tpid: '0192f1a0-7c3e-7a4b-8c2d-000000000001',
    createdAt: '2026-05-09T12:00:00Z',
  },
  alice,
);
const filesBundle = writeTbz(
  {
    senderAint: 'alice.aint',
    receiverAint: 'bob.aint',
    receiverPubkey: BOB_PUB,
    payloadType: 'file',
    blocks: FILE_BLOCKS,
    transferOutTokenId: 'tok-1',
    surface: { timeFragment: '2026-05-09', context: 'demo', profile: 'claude', priority: 'urgent' },
    tpid: '0192f1a0-7c3e-7a4b-8c2d-000000000002',
    createdAt: '2026-05-09T12:00:01Z',
  },
  alice,
);

describe('single bit flips', () => {
  it('every one of the bits of a SAM capsule bundle, flipped alone, is detected', () => {
    expect(verifyTbz(samBundle, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
    const missed: number[] = [];
    for (let bit = 0; bit < samBundle.length * 8; bit++) {
      if (!refused(flipBit(samBundle, bit))) missed.push(bit);
    }
    expect(missed).toEqual([]);
  });

  test.prop([fc.nat({ max: filesBundle.length * 8 - 1 })], { numRuns: 2000 })(
    'any single bit flip of a two-block bundle never verifies',
    (bit) => {
      expect(refused(flipBit(filesBundle, bit))).toBe(true);
    },
  );

  test.prop(
    [fc.uniqueArray(fc.nat({ max: filesBundle.length * 8 - 1 }), { minLength: 2, maxLength: 8 })],
    {
      numRuns: 300,
    },
  )('several bit flips never verify', (bits) => {
    let b = filesBundle;
    for (const bit of bits) b = flipBit(b, bit);
    expect(refused(b)).toBe(true);
  });
});

describe('framing', () => {
  test.prop([fc.uint8Array({ minLength: 1, maxLength: 64 })], { numRuns: 200 })(
    'appended bytes are TBZ_TRAILING_BYTES',
    (extra) => {
      expect(() => readTbz(concatBytes(filesBundle, extra))).toThrow(
        expect.objectContaining({ code: 'TBZ_TRAILING_BYTES' }),
      );
    },
  );

  test.prop([fc.uint8Array({ maxLength: 2048 })], { numRuns: 500 })(
    'arbitrary bytes after the magic fail closed with a TzaError',
    (tail) => {
      const bytes = concatBytes(Uint8Array.of(0x54, 0x42, 0x5a, 0x01), tail);
      try {
        readTbz(bytes);
      } catch (e) {
        expect(TzaError.is(e)).toBe(true);
      }
    },
  );

  test.prop(
    [fc.nat({ max: filesBundle.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 16 })],
    {
      numRuns: 300,
    },
  )('overwriting a run of bytes fails closed and never verifies', (at, patch) => {
    const b = Uint8Array.from(filesBundle);
    b.set(patch.subarray(0, b.length - at), at);
    if (toHex(b) === toHex(filesBundle)) return;
    expect(refused(b)).toBe(true);
  });
});

const segment = fc.stringMatching(/^[A-Za-z0-9._ -]{1,12}$/).filter((s) => s !== '.' && s !== '..');
const safeName = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));

/** Names whose paths do not clash: unique, and none is a directory of another. */
function noClash(names: string[]): boolean {
  const set = new Set(names);
  return names.every((n) =>
    n.split('/').every((_, i, segs) => i === 0 || !set.has(segs.slice(0, i).join('/'))),
  );
}

const writeInput: fc.Arbitrary<TbzWriteInput> = fc.record({
  senderAint: fc.string({ minLength: 1, maxLength: 20 }),
  receiverAint: fc.string({ minLength: 1, maxLength: 20 }),
  receiverPubkey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  payloadType: fc.constantFrom('sam_capsule', 'sam_gateway_receipt', 'file', 'ai_state'),
  blocks: fc
    .uniqueArray(safeName, { maxLength: 5 })
    .filter(noClash)
    .chain((names) =>
      fc.tuple(
        ...names.map((name) =>
          fc.uint8Array({ maxLength: 300 }).map((content) => ({ name, content })),
        ),
      ),
    ),
  transferOutTokenId: fc.option(fc.string({ maxLength: 20 }), { nil: null }),
  surface: fc.option(
    fc.record(
      {
        timeFragment: fc.string(),
        context: fc.string(),
        profile: fc.string(),
        priority: fc.string(),
      },
      { requiredKeys: [] },
    ),
    { nil: undefined },
  ),
  tpid: fc.uuid({ version: [4, 7] }),
  createdAt: fc
    .date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('9999-12-31T23:59:59Z'),
      noInvalidDate: true,
    })
    .map((d) => `${d.toISOString().slice(0, 19)}Z`),
});

describe('round trip', () => {
  test.prop([writeInput], { numRuns: 150 })(
    'read(write(x)) gives x back, verified and deterministic',
    (x) => {
      const bytes = writeTbz(x, alice);
      expect(toHex(writeTbz(x, alice))).toBe(toHex(bytes));
      const b = readTbz(bytes);
      expect(b.blocks).toEqual(
        x.blocks.map((blk, i) => ({ index: i + 1, name: blk.name, content: blk.content })),
      );
      expect(b.manifest).toMatchObject({
        sender_aint: x.senderAint,
        receiver_aint: x.receiverAint,
        receiver_pubkey: toHex(x.receiverPubkey as Uint8Array),
        payload_type: x.payloadType,
        tpid: x.tpid,
        created_at: x.createdAt,
        transfer_out_token_id: x.transferOutTokenId ?? null,
        block_count: x.blocks.length + 1,
      });
      expect(b.manifest.surface_context).toBe(x.surface?.context);
      expect(verifyTbz(bytes, { trustedSenderKeys: ALICE }).authenticated).toBe(true);
    },
  );
});

describe('block names', () => {
  const anyName = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc
      .array(fc.constantFrom('a', '.', '..', '', '/', '\\', 'C:', 'b.txt', '\0', ' '), {
        maxLength: 6,
      })
      .map((p) => p.join('')),
    fc
      .array(fc.constantFrom('a', '.', '..', '', 'C:', 'b.txt'), { maxLength: 5 })
      .map((p) => p.join('/')),
  );

  test.prop([anyName], { numRuns: 1000 })(
    'a name readTbz accepts stays inside any target, on POSIX and Windows path rules',
    (name) => {
      let accepted = true;
      try {
        readTbz(rawTbz(alice, [{ name, content: utf8('x') }]));
      } catch (e) {
        expect(TzaError.is(e) && e.code).toBe('TBZ_PATH_UNSAFE');
        accepted = false;
      }
      if (!accepted) return;
      for (const [p, root] of [
        [path.posix, '/srv/target'],
        [path.win32, 'C:\\srv\\target'],
      ] as const) {
        const dest = p.resolve(root, name);
        expect(dest.startsWith(root + p.sep), `${JSON.stringify(name)} → ${dest}`).toBe(true);
      }
      expect(path.posix.normalize(name)).toBe(name);
    },
  );
});
