import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IdentityRegistry, parsePublicIdentity } from '@tibet/core';
import { SamError, decodeCapsule, openCapsule } from '../src/index.js';
import { buildVectors, gw, type VectorEntry } from './vectors/generate.js';

const DIR = join(import.meta.dirname, 'vectors');
const built = buildVectors();
if (process.env['SAM_WRITE_VECTORS'] === '1')
  for (const [name, bytes] of built.files) writeFileSync(join(DIR, name), bytes);

const read = (name: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, name)));

describe('golden capsule vectors (test/vectors)', () => {
  const index = JSON.parse(readFileSync(join(DIR, 'index.json'), 'utf8')) as VectorEntry[];
  const directory = new IdentityRegistry();
  for (const p of JSON.parse(readFileSync(join(DIR, 'identities.json'), 'utf8')) as unknown[])
    directory.add(parsePublicIdentity(p) && (p as never));

  it('are reproduced byte for byte from their inputs', () => {
    for (const [name, bytes] of built.files) {
      expect(existsSync(join(DIR, name)), name).toBe(true);
      expect(Buffer.from(read(name)).equals(Buffer.from(bytes)), name).toBe(true);
    }
  });

  for (const v of index)
    it(`${v.file}: ${v.expect}${v.code ? ` ${v.code} ${v.verdict}` : ''}`, async () => {
      const bytes = read(v.file);
      const o = { directory, ...(v.as_gateway ? { gateway: gw } : {}) };
      if (v.expect === 'success') {
        const r = await openCapsule(bytes, o);
        expect(r.format).toBe(v.format);
        expect(r.capsule).toEqual(decodeCapsule(read(v.capsule!)));
      } else {
        const e = await openCapsule(bytes, o).catch((x: unknown) => x);
        expect(SamError.is(e)).toBe(true);
        expect({ code: (e as SamError).code, verdict: (e as SamError).verdict }).toEqual({
          code: v.code,
          verdict: v.verdict,
        });
        if (v.cause) expect((e as { cause?: { code?: string } }).cause?.code).toBe(v.cause);
      }
    });
});
