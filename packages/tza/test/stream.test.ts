/**
 * The streaming API (src/stream.ts): byte identity with packTza, bounded memory on a large
 * sealed entry, the same verdicts as verifyTza/openTza on tampered files, and no temporary
 * files left behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8, type Clock, type Identity } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  TzaError,
  openTza,
  packTza,
  verifyTza,
  type PackEntry,
  type TzaErrorCode,
  type TzaLimits,
  type VerifyOptions,
} from '@tibet/tza';
import {
  openTzaFile,
  packTzaToFile,
  verifyTzaFile,
  type OpenedTzaFile,
  type PackFileEntry,
  type PackFileInput,
} from '../src/stream.js';
import { BLOCK } from '../src/tar.js';
import { actor, flipBit, headerOffset, indexOf, type ActorName } from './vectors/tza/support.js';

const clock = fixedClock('2026-11-28T12:00:00.000Z');
const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'human');
const carol = testIdentity('jis:acme:carol', 'machine');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tza-stream-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileNo = 0;
async function fileWith(data: Uint8Array): Promise<string> {
  const p = join(dir, `in-${fileNo++}.bin`);
  await writeFile(p, data);
  return p;
}
async function outPath(): Promise<string> {
  const d = join(dir, `out-${fileNo++}`);
  await mkdir(d);
  return join(d, 'bundle.tza');
}
/** Byte equality without vitest's element-by-element diff (slow on large arrays). */
function expectSameBytes(got: Uint8Array, want: Uint8Array): void {
  let at = -1;
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) {
      at = i;
      break;
    }
  }
  expect({ length: got.length, firstDifference: at }).toEqual({
    length: want.length,
    firstDifference: -1,
  });
}
const bytesOf = async (p: string): Promise<Uint8Array> => new Uint8Array(await readFile(p));

/** A clock that moves one second per reading: the two packers must read it in the same order. */
function tickingClock(): Clock {
  let t = Date.parse('2026-11-28T12:00:00.000Z');
  return { now: () => new Date((t += 1000)) };
}

interface Spec {
  name: string;
  size: number;
  sealed?: boolean;
  mediaType?: string;
}

/** The same bundle through packTza (all in memory) and packTzaToFile (`asFile` entries as files). */
async function packBoth(
  specs: readonly Spec[],
  asFile: (s: Spec, i: number) => boolean,
  opts: { seed?: string; clock?: () => Clock; signers?: Identity[] } = {},
): Promise<{ memory: Uint8Array; file: Uint8Array; data: Map<string, Uint8Array> }> {
  const data = new Map(specs.map((s) => [s.name, seededRandom(`data:${s.name}`)(s.size)]));
  const anySealed = specs.some((s) => s.sealed);
  const base = {
    kind: 'file',
    meta: { issuer: 'jis:acme:alice', note: 'streaming' },
    ...(anySealed ? { recipients: [alice, bob] } : {}),
    signers: opts.signers ?? [alice, bob],
  };
  const memEntries: PackEntry[] = specs.map((s) => ({
    name: s.name,
    data: data.get(s.name)!,
    ...(s.sealed ? { sealed: true } : {}),
    ...(s.mediaType ? { mediaType: s.mediaType } : {}),
  }));
  const fileEntries: (PackEntry | PackFileEntry)[] = [];
  for (const [i, s] of specs.entries()) {
    fileEntries.push(
      asFile(s, i)
        ? {
            name: s.name,
            path: await fileWith(data.get(s.name)!),
            ...(s.sealed ? { sealed: true } : {}),
            ...(s.mediaType ? { mediaType: s.mediaType } : {}),
          }
        : memEntries[i]!,
    );
  }
  const seed = opts.seed ?? 'stream';
  const memory = packTza(
    { ...base, entries: memEntries },
    { clock: opts.clock?.() ?? clock, random: seededRandom(seed) },
  );
  const out = await outPath();
  const res = await packTzaToFile(
    out,
    { ...base, entries: fileEntries },
    { clock: opts.clock?.() ?? clock, random: seededRandom(seed) },
  );
  const file = await bytesOf(out);
  expect(res.size).toBe(file.length);
  return { memory, file, data };
}

const BOUNDARY: Spec[] = [
  { name: 'empty-sealed.bin', size: 0, sealed: true },
  { name: 'one-chunk.bin', size: 65_536, sealed: true },
  { name: 'one-chunk-plus-one.bin', size: 65_537, sealed: true },
  { name: 'small-sealed.bin', size: 100, sealed: true },
  { name: 'record.json', size: 300, mediaType: 'application/json' },
  { name: 'empty.txt', size: 0 },
  { name: 'block.bin', size: 512 },
  { name: 'dir/multi.bin', size: 3 * 65_536 + 5, sealed: true },
  { name: 'dir/plain-large.bin', size: 200_001 },
];

describe('packTzaToFile: the same bytes as packTza', () => {
  it('with every entry a file (0, 65,536 and 65,537-byte sealed entries, multi-chunk, plain)', async () => {
    const { memory, file } = await packBoth(BOUNDARY, () => true);
    expectSameBytes(file, memory);
    expect(verifyTza(file).valid).toBe(true);
  });

  it('with files and in-memory entries mixed (randomness drawn in entry order)', async () => {
    const { memory, file } = await packBoth(BOUNDARY, (_, i) => i % 2 === 0);
    expectSameBytes(file, memory);
  });

  it('with in-memory entries only', async () => {
    const { memory, file } = await packBoth(BOUNDARY, () => false);
    expectSameBytes(file, memory);
  });

  it('reads the clock in the same order as packTza (created_at, then each signature)', async () => {
    const { memory, file } = await packBoth(BOUNDARY.slice(0, 3), () => true, {
      clock: tickingClock,
    });
    expectSameBytes(file, memory);
  });

  it('with plain entries only (no recipients, no data key) and one signer', async () => {
    const specs = BOUNDARY.filter((s) => !s.sealed);
    const { memory, file } = await packBoth(specs, () => true, { signers: [alice] });
    expectSameBytes(file, memory);
  });

  it('with a single 0-byte sealed file', async () => {
    const { memory, file } = await packBoth([{ name: 'z', size: 0, sealed: true }], () => true);
    expectSameBytes(file, memory);
  });
});

async function drain(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<TzaErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (TzaError.is(e)) return e.code;
    throw e;
  }
}

describe('openTzaFile', () => {
  it('streams every entry back, in chunks of at most 64 KiB, with the verifyTza report', async () => {
    const { file, data } = await packBoth(BOUNDARY, () => true);
    const p = join(dir, 'open.tza');
    await writeFile(p, file);
    const o = await openTzaFile(p, bob);
    try {
      expect(o.entryNames).toEqual(BOUNDARY.map((s) => s.name));
      expect(o.report).toEqual(verifyTza(file));
      expect(o.manifest).toEqual(openTza(file, bob).manifest);
      for (const s of BOUNDARY) {
        const chunks = await drain(o.stream(s.name));
        expect(chunks.every((c) => c.length <= 65_536)).toBe(true);
        expect(chunks.length).toBe(Math.ceil(s.size / 65_536) || (s.sealed ? 1 : 0));
        expectSameBytes(Buffer.concat(chunks), data.get(s.name)!);
        expectSameBytes(await o.readAll(s.name), data.get(s.name)!);
      }
      await expect(o.readAll('nope')).rejects.toThrow(TypeError);
    } finally {
      await o.close();
    }
    await expect(o.readAll('record.json')).rejects.toThrow(/closed/);
  });

  it('applies trust and recipients as openTza does', async () => {
    const { file } = await packBoth(BOUNDARY.slice(0, 2), () => true, { signers: [alice] });
    const p = join(dir, 'trust.tza');
    await writeFile(p, file);
    expect(await codeOf(openTzaFile(p, carol))).toBe('NOT_A_RECIPIENT');
    expect(await codeOf(openTzaFile(p, undefined))).toBe('NOT_A_RECIPIENT');
    const onlyBob = { trust: [bob.signingPublicKey] };
    expect(await codeOf(openTzaFile(p, alice, onlyBob))).toBe('SIGNER_UNTRUSTED');
    expect(() => openTza(file, alice, onlyBob)).toThrow(
      expect.objectContaining({ code: 'SIGNER_UNTRUSTED' }),
    );
    const req = { trust: [alice.signingPublicKey], requireSigners: ['jis:acme:bob'] };
    expect(await codeOf(openTzaFile(p, alice, req))).toBe('SIGNER_UNTRUSTED');
    const ok = await openTzaFile(p, alice, { trust: [alice.signingPublicKey] });
    expect(ok.report).toMatchObject({ valid: true, signersPinned: true });
    await ok.close();
  });
});

describe('tampered, truncated and extended files', () => {
  const SPECS: Spec[] = [
    { name: 'sealed.bin', size: 150_000, sealed: true },
    { name: 'plain.bin', size: 100_000 },
  ];
  let good: Uint8Array;
  let data: Map<string, Uint8Array>;
  beforeAll(async () => {
    ({ file: good, data } = await packBoth(SPECS, () => true, { signers: [alice] }));
  });

  async function asFile(bytes: Uint8Array): Promise<string> {
    const p = join(dir, `mut-${fileNo++}.tza`);
    await writeFile(p, bytes);
    return p;
  }

  it('a flipped byte in a sealed chunk: DECRYPT_FAILED when that chunk is reached', async () => {
    const at = headerOffset(good, 'sealed.bin') + BLOCK + 65_536 + 16 + 10; // inside chunk 1
    const bad = flipBit(good, at);
    const p = await asFile(bad);
    expect(verifyTza(bad).code).toBe('DIGEST_MISMATCH');
    expect((await verifyTzaFile(p)).code).toBe('DIGEST_MISMATCH');
    // The manifest and its signatures are intact, so the file opens (entry digests are
    // checked while streaming, not at open). Chunk 0 authenticates and is released; chunk 1
    // fails its Poly1305 tag before the end-of-entry digest is reached: DECRYPT_FAILED, and
    // nothing of chunk 1 or later is ever released.
    const o = await openTzaFile(p, alice);
    const got: Uint8Array[] = [];
    const code = await codeOf(
      (async () => {
        for await (const c of o.stream('sealed.bin')) got.push(c);
      })(),
    );
    expect(code).toBe('DECRYPT_FAILED');
    expect(got.length).toBe(1);
    expectSameBytes(got[0]!, data.get('sealed.bin')!.subarray(0, 65_536));
    expect(await codeOf(o.readAll('sealed.bin'))).toBe('DECRYPT_FAILED');
    expectSameBytes(await o.readAll('plain.bin'), data.get('plain.bin')!);
    await o.close();
    expect(() => openTza(bad, alice)).toThrow(expect.objectContaining({ code: 'DIGEST_MISMATCH' }));
  });

  it('a flipped byte in a plain entry: DIGEST_MISMATCH at the end of the stream', async () => {
    const bad = flipBit(good, headerOffset(good, 'plain.bin') + BLOCK + 99_999);
    const p = await asFile(bad);
    expect((await verifyTzaFile(p)).code).toBe('DIGEST_MISMATCH');
    const o = await openTzaFile(p, alice);
    expect(await codeOf(o.readAll('plain.bin'))).toBe('DIGEST_MISMATCH');
    expectSameBytes(await o.readAll('sealed.bin'), data.get('sealed.bin')!);
    await o.close();
  });

  it('a flipped bit in the manifest or a signature: SIGNATURE_INVALID at open', async () => {
    const m = headerOffset(good, 'manifest.cbor') + BLOCK;
    // a character of meta.note ("streaming" → "stseaming"): still a valid manifest
    const inMeta = flipBit(good, indexOf(good, utf8('streaming'), m) + 2, 0);
    // a bit of sealed.bin's sha256 in the manifest: verifyTza checks entry digests before
    // signatures (DIGEST_MISMATCH); openTzaFile checks signatures at open and digests while
    // streaming, so the changed manifest is caught first by its signature
    const digest = readSha256(good, 'sealed.bin');
    const inDigest = flipBit(good, indexOf(good, digest, m) + 5, 3);
    // the last byte of the signature (the last 64 bytes of signatures.cbor's data)
    const s = headerOffset(good, 'signatures.cbor');
    const sigEnd = s + BLOCK + sizeField(good, s);
    const inSig = flipBit(good, sigEnd - 1, 0);
    for (const [bad, verifyCode, openCode] of [
      [inMeta, 'SIGNATURE_INVALID', 'SIGNATURE_INVALID'],
      [inDigest, 'DIGEST_MISMATCH', 'SIGNATURE_INVALID'],
      [inSig, 'SIGNATURE_INVALID', 'SIGNATURE_INVALID'],
    ] as const) {
      const p = await asFile(bad);
      expect(verifyTza(bad).code).toBe(verifyCode);
      expect(await verifyTzaFile(p)).toEqual(verifyTza(bad));
      expect(await codeOf(openTzaFile(p, alice))).toBe(openCode);
    }
  });

  it('truncated files: TAR_TRUNCATED, as verifyTza', async () => {
    for (const len of [0, 100, 512, 1024, good.length - 1024, good.length - 512, good.length - 1]) {
      const bad = good.slice(0, len);
      const p = await asFile(bad);
      expect(verifyTza(bad).code).toBe('TAR_TRUNCATED');
      expect(await verifyTzaFile(p)).toEqual(verifyTza(bad));
      expect(await codeOf(openTzaFile(p, alice))).toBe('TAR_TRUNCATED');
    }
  });

  it('trailing data: TAR_TRAILING_DATA (a partial block: TAR_TRUNCATED), as verifyTza', async () => {
    for (const [extra, code] of [
      [new Uint8Array(512), 'TAR_TRAILING_DATA'],
      [new Uint8Array(1024).fill(7), 'TAR_TRAILING_DATA'],
      [new Uint8Array(1), 'TAR_TRUNCATED'],
    ] as const) {
      const bad = new Uint8Array([...good, ...extra]);
      const p = await asFile(bad);
      expect(verifyTza(bad).code).toBe(code);
      expect(await verifyTzaFile(p)).toEqual(verifyTza(bad));
      expect(await codeOf(openTzaFile(p, alice))).toBe(code);
    }
  });

  it('a file cut after open: TAR_TRUNCATED from the stream', async () => {
    const p = await asFile(good);
    const o = await openTzaFile(p, alice);
    writeFileSync(p, good.subarray(0, headerOffset(good, 'sealed.bin') + BLOCK + 70_000));
    expect(await codeOf(o.readAll('sealed.bin'))).toBe('TAR_TRUNCATED');
    await o.close();
  });
});

/** The sha256 field of entry `name`, read from the manifest via openTza. */
function readSha256(bundle: Uint8Array, name: string): Uint8Array {
  return openTza(bundle, alice).manifest.entries.find((e) => e.name === name)!.sha256;
}
function sizeField(bundle: Uint8Array, headerAt: number): number {
  return parseInt(Buffer.from(bundle.subarray(headerAt + 124, headerAt + 135)).toString(), 8);
}

describe('verifyTzaFile agrees with verifyTza', () => {
  const VECTORS = fileURLToPath(new URL('./vectors/tza/', import.meta.url));
  interface Failure {
    file: string;
    expect_code: TzaErrorCode;
    trust?: ActorName[];
    limits?: Partial<TzaLimits>;
    open_as?: ActorName;
  }
  const failures = (
    JSON.parse(readFileSync(join(VECTORS, 'failures.json'), 'utf8')) as { failures: Failure[] }
  ).failures;

  it.each(failures.map((f) => [f.file, f] as const))(
    'golden vector %s: same report, and openTzaFile refuses as openTza does',
    async (_, f) => {
      const p = join(VECTORS, f.file);
      const bytes = new Uint8Array(readFileSync(p));
      const opts: VerifyOptions = {
        ...(f.trust ? { trust: f.trust.map((n) => actor(n).signingPublicKey) } : {}),
        ...(f.limits ? { limits: f.limits } : {}),
      };
      expect(await verifyTzaFile(p, opts)).toEqual(verifyTza(bytes, opts));
      const who = actor(f.open_as ?? 'alice');
      let memCode: TzaErrorCode | 'ok' = 'ok';
      try {
        openTza(bytes, who, opts);
      } catch (e) {
        memCode = (e as TzaError).code;
      }
      expect(memCode).toBe(f.expect_code);
      const fileCode = await codeOf(openAll(p, who, opts));
      if (memCode === 'DIGEST_MISMATCH') {
        // openTzaFile checks digests while streaming: a payload bit flip surfaces there
        // (DECRYPT_FAILED for a sealed chunk, DIGEST_MISMATCH for a plain entry); a flip in
        // the manifest's sha256 field is caught at open by the signature instead
        expect(['DIGEST_MISMATCH', 'DECRYPT_FAILED', 'SIGNATURE_INVALID']).toContain(fileCode);
      } else {
        expect(fileCode).toBe(memCode);
      }
    },
  );

  it('on a sweep of bit flips, truncations and extensions of a small bundle', async () => {
    const { file: good } = await packBoth(
      [
        { name: 'a.json', size: 40, mediaType: 'application/json' },
        { name: 'b.bin', size: 700, sealed: true },
      ],
      () => true,
      { signers: [alice] },
    );
    const mutants: Uint8Array[] = [good];
    for (let i = 0; i < good.length; i += 37) mutants.push(flipBit(good, i, i % 8));
    for (let n = 0; n <= good.length; n += 256) mutants.push(good.slice(0, n));
    mutants.push(new Uint8Array([...good, ...new Uint8Array(512)]));
    const seen = new Set<string>();
    for (const [k, bad] of mutants.entries()) {
      const p = join(dir, `sweep-${k}.tza`);
      await writeFile(p, bad);
      for (const opts of [
        {},
        { trust: [alice.signingPublicKey] },
        { trust: [bob.signingPublicKey] },
      ]) {
        const want = verifyTza(bad, opts);
        seen.add(want.code ?? 'valid');
        expect(await verifyTzaFile(p, opts)).toEqual(want);
      }
    }
    // the sweep reaches many different verdicts, not just one
    expect(seen.size).toBeGreaterThanOrEqual(8);
  });
});

async function openAll(p: string, who: Identity, opts: VerifyOptions): Promise<void> {
  const o: OpenedTzaFile = await openTzaFile(p, who, opts);
  try {
    for (const n of o.entryNames) await o.readAll(n);
  } finally {
    await o.close();
  }
}

/** `who`, signing with `sign` instead of its key (everything else inherited). */
function withSigner(who: Identity, sign: (msg: Uint8Array) => Uint8Array): Identity {
  return Object.create(who, {
    signer: { value: { publicKey: who.signingPublicKey, sign } },
  }) as Identity;
}

describe('packTzaToFile failures leave nothing behind', () => {
  async function listing(out: string): Promise<string[]> {
    return (await readdir(join(out, '..'))).sort();
  }

  it('an unreadable input path', async () => {
    const out = await outPath();
    const input: PackFileInput = {
      kind: 'file',
      entries: [
        { name: 'a', data: utf8('x') },
        { name: 'b', path: join(dir, 'does-not-exist'), sealed: true },
      ],
      recipients: [alice],
      signers: [alice],
    };
    await expect(packTzaToFile(out, input, { clock })).rejects.toThrow(/ENOENT/);
    input.entries = [{ name: 'b', path: dir }];
    delete input.recipients;
    await expect(packTzaToFile(out, input, { clock })).rejects.toThrow(/not a regular file/);
    expect(await listing(out)).toEqual([]);
  });

  it('a failure after sealed temporary files exist (a signer that throws)', async () => {
    const out = await outPath();
    const big = await fileWith(seededRandom('t')(200_000));
    const broken = withSigner(alice, () => {
      throw new Error('signer offline');
    });
    await expect(
      packTzaToFile(
        out,
        {
          kind: 'file',
          entries: [
            { name: 'x', path: big, sealed: true },
            { name: 'y', path: big, sealed: true },
          ],
          recipients: [alice],
          signers: [broken],
        },
        { clock },
      ),
    ).rejects.toThrow('signer offline');
    expect(await listing(out)).toEqual([]);
  });

  it('a plain input that changes between its two passes (and while the tar is written)', async () => {
    for (const change of ['rewrite', 'append'] as const) {
      const out = await outPath();
      await writeFile(out, 'previous bundle');
      const plain = await fileWith(seededRandom('p')(300_000));
      const sealed = await fileWith(seededRandom('s')(100_000));
      // the signer runs after the first pass over every entry and before the tar is
      // written: change the plain input there
      const meddling = withSigner(alice, (msg) => {
        if (change === 'rewrite') writeFileSync(plain, seededRandom('q')(300_000));
        else writeFileSync(plain, seededRandom('p')(300_001));
        return alice.signer.sign(msg);
      });
      await expect(
        packTzaToFile(
          out,
          {
            kind: 'file',
            entries: [
              { name: 's', path: sealed, sealed: true },
              { name: 'p', path: plain },
            ],
            recipients: [alice],
            signers: [meddling],
          },
          { clock },
        ),
      ).rejects.toThrow(change === 'rewrite' ? /changed.*SHA-256/ : /changed.*longer/);
      // only the previous bundle, untouched
      expect(await listing(out)).toEqual(['bundle.tza']);
      expect(await readFile(out, 'utf8')).toBe('previous bundle');
    }
  });

  it('limits are checked before anything is read', async () => {
    const out = await outPath();
    const f = await fileWith(new Uint8Array(70_000));
    const input: PackFileInput = {
      kind: 'file',
      entries: [{ name: 'f', path: f, sealed: true }],
      recipients: [alice],
      signers: [alice],
    };
    await expect(packTzaToFile(out, input, { limits: { maxEntrySize: 70_000 } })).rejects.toThrow(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED' }),
    );
    await expect(packTzaToFile(out, input, { limits: { maxTotalSize: 70_000 } })).rejects.toThrow(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED' }),
    );
    expect(await listing(out)).toEqual([]);
  });
});

describe('bounded memory', () => {
  const MIB = 1024 * 1024;
  const SIZE = Number(process.env['TZA_STREAM_MIB'] ?? 200) * MIB;

  it(`packs and opens a ${SIZE / MIB} MiB sealed file entry with RSS growth under 64 MiB`, async () => {
    const big = join(tmpdir(), `tza-stream-big-${process.pid}-${Date.now()}.bin`);
    const out = await outPath();
    try {
      // the input, written in 1 MiB blocks (each stamped with its index)
      const block = randomBytes(MIB);
      const want = createHash('sha256');
      await writeFile(big, new Uint8Array(0));
      for (let i = 0; i < SIZE / MIB; i++) {
        block.writeUInt32BE(i, 0);
        want.update(block);
        await appendFile(big, block);
      }
      const wantHex = want.digest('hex');
      const limits = { maxEntrySize: SIZE + MIB, maxTotalSize: SIZE + 2 * MIB };

      let peak = 0;
      const sample = (): void => {
        peak = Math.max(peak, process.memoryUsage().rss);
      };
      const timer = setInterval(sample, 2);
      const base = process.memoryUsage().rss;
      const t0 = performance.now();
      let packPeak: number;
      let openPeak: number;
      let tPack: number;
      let tOpen: number;
      try {
        peak = base;
        await packTzaToFile(
          out,
          {
            kind: 'file',
            entries: [
              { name: 'readme.txt', data: utf8('large sealed file') },
              { name: 'big.bin', path: big, sealed: true },
            ],
            recipients: [alice],
            signers: [alice],
          },
          { clock, limits },
        );
        sample();
        packPeak = peak;
        tPack = performance.now() - t0;

        peak = process.memoryUsage().rss;
        const o = await openTzaFile(out, alice, { limits });
        const got = createHash('sha256');
        let n = 0;
        let chunks = 0;
        for await (const c of o.stream('big.bin')) {
          got.update(c);
          n += c.length;
          if (++chunks % 64 === 0) sample();
        }
        await o.close();
        sample();
        openPeak = peak;
        tOpen = performance.now() - t0 - tPack;
        expect(n).toBe(SIZE);
        expect(got.digest('hex')).toBe(wantHex);
        expect((await verifyTzaFile(out, { limits })).valid).toBe(true);
      } finally {
        clearInterval(timer);
      }
      const tTotal = performance.now() - t0;
      const growPack = (packPeak - base) / MIB;
      const growOpen = (openPeak - base) / MIB;
      console.log(
        `[stream] ${SIZE / MIB} MiB sealed entry: pack ${(tPack / 1000).toFixed(1)} s, ` +
          `open+stream ${(tOpen / 1000).toFixed(1)} s, then verifyTzaFile ${((tTotal - tPack - tOpen) / 1000).toFixed(1)} s; RSS base ${(base / MIB).toFixed(0)} MiB, ` +
          `peak growth pack ${growPack.toFixed(1)} MiB, open/stream ${growOpen.toFixed(1)} MiB`,
      );
      expect(growPack).toBeLessThan(64);
      expect(growOpen).toBeLessThan(64);
      // no temporary file is left beside the bundle
      expect(await readdir(join(out, '..'))).toEqual(['bundle.tza']);
    } finally {
      await rm(big, { force: true });
      await rm(out, { force: true });
    }
  }, 120_000);
});
