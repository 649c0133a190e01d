/** unpackTbz against real directories under os.tmpdir(). */
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fromUtf8, utf8 } from '@tibet/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeCbor } from '../src/cbor.js';
import { TzaError } from '../src/errors.js';
import type { TzaErrorCode } from '../src/errors.js';
import { readTbz, unpackTbz, writeTbz } from '../src/tbz.js';
import { BOB_PUB, FILE_BLOCKS, KEYS, rawTbz } from './vectors/tbz/make-vectors.js';

const alice = KEYS.alice.signer;
const ALICE = [alice.publicKey];

const good = writeTbz(
  {
    senderAint: 'alice.aint',
    receiverAint: 'bob.aint',
    receiverPubkey: BOB_PUB,
    payloadType: 'file',
    blocks: FILE_BLOCKS,
    tpid: '0192f1a0-7c3e-7a4b-8c2d-000000000002',
    createdAt: '2026-05-09T12:00:01Z',
  },
  alice,
);

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tbz-unpack-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<TzaErrorCode | 'no error' | 'not a TzaError'> {
  try {
    await p;
  } catch (e) {
    return TzaError.is(e) ? e.code : 'not a TzaError';
  }
  return 'no error';
}

/** Every path under dir, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map((e) => e.split(path.sep).join('/')).sort();
}

describe('unpackTbz', () => {
  it('writes every block under the target, with private modes', async () => {
    const target = path.join(tmp, 'out', 'nested');
    const r = await unpackTbz(good, target, { trustedSenderKeys: ALICE });
    expect(r.verification?.authenticated).toBe(true);
    expect(r.manifest.payload_type).toBe('file');
    expect(r.files.map((f) => f.name)).toEqual(['hello.txt', 'docs/notes.md']);
    expect(await tree(target)).toEqual(['docs', 'docs/notes.md', 'hello.txt']);
    for (const b of FILE_BLOCKS) {
      expect(fromUtf8(await readFile(path.join(target, b.name)))).toBe(fromUtf8(b.content));
    }
    if (process.platform !== 'win32') {
      expect((await lstat(path.join(target, 'hello.txt'))).mode & 0o777).toBe(
        0o600 & ~process.umask(),
      );
      expect((await lstat(path.join(target, 'docs'))).mode & 0o777).toBe(0o700 & ~process.umask());
    }
  });

  it('accepts a parsed bundle and custom modes', async () => {
    const r = await unpackTbz(readTbz(good), tmp, { trustedSenderKeys: ALICE, fileMode: 0o640 });
    expect(r.files).toHaveLength(2);
    if (process.platform !== 'win32') {
      expect((await lstat(path.join(tmp, 'hello.txt'))).mode & 0o777).toBe(
        0o640 & ~process.umask(),
      );
    }
  });

  it('refuses an unpinned sender unless told, and an untrusted one always', async () => {
    expect(await codeOf(unpackTbz(good, tmp))).toBe('SIGNER_UNTRUSTED');
    expect(await tree(tmp)).toEqual([]);
    const mallory = [KEYS.mallory.signer.publicKey];
    expect(
      await codeOf(unpackTbz(good, tmp, { trustedSenderKeys: mallory, allowUnpinnedSender: true })),
    ).toBe('SIGNER_UNTRUSTED');
    expect(await tree(tmp)).toEqual([]);
    const r = await unpackTbz(good, tmp, { allowUnpinnedSender: true });
    expect(r.verification).toMatchObject({
      valid: true,
      senderPinned: false,
      authenticated: false,
    });
    expect(await tree(tmp)).toEqual(['docs', 'docs/notes.md', 'hello.txt']);
  });

  it('refuses a tampered bundle before writing anything', async () => {
    const bad = Uint8Array.from(good);
    bad[bad.length - 1]! ^= 1;
    expect(await codeOf(unpackTbz(bad, tmp, { trustedSenderKeys: ALICE }))).toBe(
      'TBZ_DIGEST_MISMATCH',
    );
    expect(await tree(tmp)).toEqual([]);
    // unsafeSkipVerification writes it anyway: that is what the name says
    await unpackTbz(bad, tmp, { unsafeSkipVerification: true });
    expect(await tree(tmp)).toEqual(['docs', 'docs/notes.md', 'hello.txt']);
  });

  it('refuses traversal and absolute names, even without verification', async () => {
    const target = path.join(tmp, 'target');
    await mkdir(target);
    for (const name of ['../evil', '/tmp/evil', 'a/../../evil', '..\\evil']) {
      const bytes = rawTbz(alice, [{ name, content: utf8('pwned') }]);
      expect(await codeOf(unpackTbz(bytes, target, { trustedSenderKeys: ALICE })), name).toBe(
        'TBZ_PATH_UNSAFE',
      );
      expect(await codeOf(unpackTbz(bytes, target, { unsafeSkipVerification: true })), name).toBe(
        'TBZ_PATH_UNSAFE',
      );
    }
    expect(await tree(tmp)).toEqual(['target']);
  });

  it('refuses a hand-built bundle object with an unsafe name', async () => {
    const b = readTbz(good);
    const rename = <T extends { name: string }>(x: T, i: number): T =>
      i === 0 ? { ...x, name: '../evil' } : x;
    // renamed block only: it no longer matches the manifest
    const evil1 = { ...b, blocks: b.blocks.map(rename) };
    expect(await codeOf(unpackTbz(evil1, tmp, { unsafeSkipVerification: true }))).toBe(
      'TBZ_MALFORMED',
    );
    // renamed everywhere, manifest bytes re-encoded to match: the name itself is refused
    const manifest = { ...b.manifest, blocks: b.manifest.blocks.map(rename) };
    const evil2 = {
      manifest,
      blocks: b.blocks.map(rename),
      manifestBytes: encodeCbor({ ...manifest }),
    };
    expect(await codeOf(unpackTbz(evil2, tmp, { unsafeSkipVerification: true }))).toBe(
      'TBZ_PATH_UNSAFE',
    );
    expect(await tree(tmp)).toEqual([]);
  });

  it('never overwrites an existing file, and leaves it untouched', async () => {
    await writeFile(path.join(tmp, 'hello.txt'), 'mine');
    expect(await codeOf(unpackTbz(good, tmp, { trustedSenderKeys: ALICE }))).toBe(
      'UNPACK_TARGET_EXISTS',
    );
    expect(await readFile(path.join(tmp, 'hello.txt'), 'utf8')).toBe('mine');
    expect(await tree(tmp)).toEqual(['hello.txt']);
  });

  it('unpacking twice into the same directory is refused the second time', async () => {
    await unpackTbz(good, tmp, { trustedSenderKeys: ALICE });
    expect(await codeOf(unpackTbz(good, tmp, { trustedSenderKeys: ALICE }))).toBe(
      'UNPACK_TARGET_EXISTS',
    );
  });

  it.skipIf(process.platform === 'win32')(
    'does not write through a symlink at the file path',
    async () => {
      const outside = path.join(tmp, 'outside');
      const target = path.join(tmp, 'target');
      await mkdir(target);
      await symlink(path.join(outside, 'victim.txt'), path.join(target, 'hello.txt')); // dangling
      expect(await codeOf(unpackTbz(good, target, { trustedSenderKeys: ALICE }))).toBe(
        'UNPACK_TARGET_EXISTS',
      );
      await expect(lstat(outside)).rejects.toThrow();
    },
  );

  it.skipIf(process.platform === 'win32')(
    'does not follow a symlinked directory out of the target, and removes what it wrote',
    async () => {
      const outside = path.join(tmp, 'outside');
      const target = path.join(tmp, 'target');
      await mkdir(outside);
      await mkdir(target);
      await symlink(outside, path.join(target, 'docs'));
      expect(await codeOf(unpackTbz(good, target, { trustedSenderKeys: ALICE }))).toBe(
        'UNPACK_FAILED',
      );
      expect(await readdir(outside)).toEqual([]);
      // hello.txt was written before docs/ was reached; it has been removed again
      expect(await tree(target)).toEqual(['docs']);
    },
  );

  it.skipIf(process.platform === 'win32')(
    'the target itself may be a symlink the caller chose',
    async () => {
      const real = path.join(tmp, 'real');
      await mkdir(real);
      await symlink(real, path.join(tmp, 'link'));
      await unpackTbz(good, path.join(tmp, 'link'), { trustedSenderKeys: ALICE });
      expect(await tree(real)).toEqual(['docs', 'docs/notes.md', 'hello.txt']);
    },
  );

  it('refuses a parent that is a file', async () => {
    await writeFile(path.join(tmp, 'docs'), 'a file, not a directory');
    expect(await codeOf(unpackTbz(good, tmp, { trustedSenderKeys: ALICE }))).toBe('UNPACK_FAILED');
    expect(await tree(tmp)).toEqual(['docs']);
  });

  it('refuses a target that is a file', async () => {
    const f = path.join(tmp, 'file');
    await writeFile(f, '');
    expect(await codeOf(unpackTbz(good, f, { trustedSenderKeys: ALICE }))).toBe('UNPACK_FAILED');
  });

  it('rejects bad arguments', async () => {
    await expect(unpackTbz(good, '', { trustedSenderKeys: ALICE })).rejects.toThrow(TypeError);
    await expect(
      unpackTbz(good, tmp, { trustedSenderKeys: ALICE, fileMode: 0o1777 }),
    ).rejects.toThrow(RangeError);
  });
});
