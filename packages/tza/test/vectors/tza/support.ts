/**
 * Shared by the `tza/1` golden vectors (test/tza-vectors.test.ts) and the property tests:
 * the test identities, and byte-level tools to build mutated archives with the internal
 * modules (so a mutation can be made "correct except for one thing": a valid tar checksum
 * around an unsafe name, a re-signed manifest around a non-canonical CBOR form, …).
 *
 * Test-only: the identities below derive their private keys from public seeds.
 */
import { concatBytes, getProvider, utf8, type CryptoProvider, type Identity } from '@tibet/core';
import { fixedClock, testIdentity } from '@tibet/core/testing';
import { encodeCbor, type CborValue } from '../../../src/cbor.js';
import { coseSign1 } from '../../../src/cose.js';
import { DEFAULT_LIMITS } from '../../../src/manifest.js';
import { BLOCK, paddedSize, readTar, tarHeader } from '../../../src/tar.js';

export const CREATED_AT = '2026-11-28T12:00:00.000Z';
export const COSIGNED_AT = '2026-11-28T12:05:00.000Z';
export const clock = fixedClock(CREATED_AT);
export const cosignClock = fixedClock(COSIGNED_AT);
export const SIGNATURE_AAD = utf8('tza/1');

export const ACTORS = {
  alice: { id: 'jis:acme:alice', actorClass: 'human' },
  bob: { id: 'jis:acme:bob', actorClass: 'human' },
  carol: { id: 'jis:acme:carol', actorClass: 'machine' },
  /** Claims alice's actor id with a key of its own: never pinned as alice. */
  impostor: { id: 'jis:acme:alice', actorClass: 'human', seed: 'impostor:jis:acme:alice' },
} as const;
export type ActorName = keyof typeof ACTORS;

/** The derivation seed of an actor's keys (see testIdentity in @tibet/core/testing). */
export function seedOf(name: ActorName): string {
  const a = ACTORS[name];
  return 'seed' in a ? a.seed : `identity:${a.id}`;
}

const cache = new Map<string, Identity>();
/** Deterministic identity for `name`, built with `provider` (so each backend signs itself). */
export function actor(name: ActorName, provider: CryptoProvider = getProvider()): Identity {
  const key = `${name}/${provider.name}`;
  let id = cache.get(key);
  if (!id) {
    const a = ACTORS[name];
    id = testIdentity(a.id, a.actorClass, { seed: seedOf(name), provider });
    cache.set(key, id);
  }
  return id;
}

// ---------------------------------------------------------------------------------------
// tar surgery

export interface RawEntry {
  /** The 512-byte header, written as is. */
  header: Uint8Array;
  data: Uint8Array;
}

/** Recompute a header's checksum field (bytes 148..155) after a patch. */
export function fixChecksum(h: Uint8Array): Uint8Array {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.set(utf8(sum.toString(8).padStart(6, '0') + '\0 '), 148);
  return h;
}

/** The canonical header for (name, size, mtime), optionally patched, with a valid checksum. */
export function header(
  name: string,
  size: number,
  mtime: number,
  patch?: (h: Uint8Array) => void,
): Uint8Array {
  const h = tarHeader(name, size, mtime);
  if (patch) {
    patch(h);
    fixChecksum(h);
  }
  return h;
}

/** Write a name into the 100-byte name field (NUL padded) of a header. */
export function setName(h: Uint8Array, name: string): void {
  h.fill(0, 0, 100);
  h.set(utf8(name), 0);
}

/** Split a (well-formed) archive into its headers and data, and its mtime. */
export function splitTar(bytes: Uint8Array): {
  entries: (RawEntry & { name: string })[];
  mtime: number;
} {
  const { entries, mtime } = readTar(bytes, DEFAULT_LIMITS);
  let o = 0;
  const out = entries.map((e) => {
    const h = bytes.slice(o, o + BLOCK);
    o += BLOCK + paddedSize(e.data.length);
    return { name: e.name, header: h, data: e.data };
  });
  return { entries: out, mtime };
}

/** Headers and data, each data padded with zeros, then the two zero blocks. */
export function joinTar(entries: readonly RawEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    parts.push(e.header);
    const padded = new Uint8Array(paddedSize(e.data.length));
    padded.set(e.data);
    parts.push(padded);
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return concatBytes(...parts);
}

/** Offset of the header of the entry called `name` in an archive. */
export function headerOffset(bytes: Uint8Array, name: string): number {
  let o = 0;
  for (const e of splitTar(bytes).entries) {
    if (e.name === name) return o;
    o += BLOCK + paddedSize(e.data.length);
  }
  throw new Error(`no entry ${name}`);
}

/** Offset of the first occurrence of `needle` in `hay` at or after `from`. */
export function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

export function flipBit(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  const c = bytes.slice();
  c[offset]! ^= 1 << bit;
  return c;
}

// ---------------------------------------------------------------------------------------
// CBOR surgery and re-signing

/** A CBOR head with the argument in exactly `width` extra bytes (0 = in the initial byte). */
export function cborHead(major: number, n: number, width: 0 | 1 | 2 | 4 | 8): Uint8Array {
  if (width === 0) {
    if (n > 23) throw new RangeError('argument too large for width 0');
    return Uint8Array.of((major << 5) | n);
  }
  const ai = { 1: 24, 2: 25, 4: 26, 8: 27 }[width];
  const out = new Uint8Array(1 + width);
  out[0] = (major << 5) | ai;
  let v = BigInt(n);
  for (let i = width; i >= 1; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A text-keyed map with its entries in exactly the order given (canonical or not). */
export function mapInOrder(pairs: readonly (readonly [string, CborValue])[]): Uint8Array {
  return concatBytes(
    cborHead(5, pairs.length, pairs.length < 24 ? 0 : 1),
    ...pairs.flatMap(([k, v]) => [encodeCbor(k), encodeCbor(v)]),
  );
}

/**
 * Replace the manifest of a bundle with `manifestBytes` and sign those bytes again with
 * `signers` (COSE_Sign1, EdDSA, external_aad "tza/1"), keeping every other entry and the
 * tar mtime, so that only what changed in the manifest can be the reason for a failure.
 */
export function resign(
  bundle: Uint8Array,
  manifestBytes: Uint8Array,
  signers: readonly Identity[],
  provider: CryptoProvider = getProvider(),
): Uint8Array {
  const { entries, mtime } = splitTar(bundle);
  const sigs = signers.map((s) =>
    coseSign1(manifestBytes, s.signer, s.id, SIGNATURE_AAD, { clock, provider }),
  );
  const sigBytes = encodeCbor(sigs);
  const rebuilt = entries.map((e, i) => {
    if (i === 0)
      return { header: header(e.name, manifestBytes.length, mtime), data: manifestBytes };
    if (i === entries.length - 1)
      return { header: header(e.name, sigBytes.length, mtime), data: sigBytes };
    return e;
  });
  return joinTar(rebuilt);
}
