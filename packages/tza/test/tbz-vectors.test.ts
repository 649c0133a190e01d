/**
 * Golden TBZ vectors: committed `.tbz` files plus `vectors.json` naming what each must do.
 * With TBZ_REGEN=1 this test rewrites them from `vectors/tbz/make-vectors.ts`; otherwise it
 * checks that regenerating gives the committed bytes (so the writer stays deterministic
 * across versions) and that each file reads, verifies or fails as recorded.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyBytes, fromHex, getProvider, toHex } from '@tibet/core';
import { describe, expect, it } from 'vitest';
import { TzaError } from '../src/errors.js';
import { detectFormat, readTbz, verifyTbz } from '../src/tbz.js';
import { buildVectors } from './vectors/tbz/make-vectors.js';
import type { VectorIndex } from './vectors/tbz/make-vectors.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'vectors', 'tbz');
const REGEN = process.env['TBZ_REGEN'] === '1';

async function load(file: string): Promise<Uint8Array> {
  return copyBytes(await readFile(join(DIR, file)));
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

const nonCanonical = await load('fail-manifest-non-canonical.tbz').catch(() => new Uint8Array(0));

describe('TBZ golden vectors', () => {
  it.runIf(REGEN)('regenerates the vectors (TBZ_REGEN=1)', async () => {
    const { files, index } = buildVectors();
    for (const [name, bytes] of files) await writeFile(join(DIR, name), bytes);
    await writeFile(join(DIR, 'vectors.json'), `${JSON.stringify(index, null, 2)}\n`);
  });

  it('regenerating gives the committed bytes and index', async () => {
    const { files, index } = buildVectors();
    const committed = JSON.parse(await readFile(join(DIR, 'vectors.json'), 'utf8')) as VectorIndex;
    expect(committed).toEqual(JSON.parse(JSON.stringify(index)));
    for (const [name, bytes] of files) expect(toHex(await load(name)), name).toBe(toHex(bytes));
    // no stray vector files
    const onDisk = (await readdir(DIR)).filter((f) => f.endsWith('.tbz')).sort();
    expect(onDisk).toEqual([...files.keys()].sort());
  });

  it('every vector reads, verifies or fails exactly as recorded', async () => {
    const index = JSON.parse(await readFile(join(DIR, 'vectors.json'), 'utf8')) as VectorIndex;
    expect(index.vectors.length).toBeGreaterThanOrEqual(20);
    for (const v of index.vectors) {
      const bytes = await load(v.file);
      expect(toHex(getProvider().sha256(bytes)), v.file).toBe(v.sha256);
      const trustedSenderKeys = v.trusted_sender_keys.map((k) => fromHex(k));
      const limits = v.limits ?? {};
      const label = `${v.file}: ${v.description}`;
      if (v.expect === 'valid') {
        expect(detectFormat(bytes), label).toBe('tbz');
        const r = verifyTbz(bytes, { trustedSenderKeys, limits });
        expect(
          r.checks.filter((c) => c.status !== 'pass'),
          label,
        ).toEqual([]);
        expect(r.authenticated, label).toBe(true);
        continue;
      }
      if (v.stage === 'read') {
        const e = thrown(() => readTbz(bytes, limits));
        expect(TzaError.is(e), label).toBe(true);
        expect((e as TzaError).code, label).toBe(v.code);
        // verifyTbz reports the same code as a failed parse check
        const r = verifyTbz(bytes, { trustedSenderKeys, limits });
        expect(r.valid, label).toBe(false);
        expect(r.checks, label).toEqual([
          expect.objectContaining({ check: 'parse', status: 'fail', code: v.code }),
        ]);
      } else {
        expect(() => readTbz(bytes, limits), label).not.toThrow();
        const r = verifyTbz(bytes, { trustedSenderKeys, limits });
        expect(r.valid, label).toBe(false);
        expect(r.authenticated, label).toBe(false);
        expect(r.checks.find((c) => c.status === 'fail')?.code, label).toBe(v.code);
        const e = thrown(() =>
          verifyTbz(bytes, { trustedSenderKeys, limits, throwOnFailure: true }),
        );
        expect((e as TzaError).code, label).toBe(v.code);
      }
    }
  });

  it('the untrusted-signer vector is intact: it fails only on pinning', async () => {
    const bytes = await load('fail-untrusted-signer.tbz');
    const r = verifyTbz(bytes);
    expect(r.valid).toBe(true);
    expect(r.senderPinned).toBe(false);
    expect(r.authenticated).toBe(false);
  });

  it('the non-canonical vector is refused because of its CBOR encoding', () => {
    const nc = thrown(() => readTbz(nonCanonical));
    expect(TzaError.is(nc) && nc.code).toBe('TBZ_MANIFEST_INVALID');
    const cause = (nc as TzaError).cause;
    expect(TzaError.is(cause) && cause.code).toBe('CBOR_NON_CANONICAL');
  });
});
