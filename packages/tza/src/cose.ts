/**
 * COSE_Sign1 (RFC 9052 §4.2) with EdDSA (-8) over Ed25519, detached payload: the bundle's
 * manifest bytes are the payload and are not repeated inside the signature.
 */
import {
  equalBytes,
  isActorId,
  keyIdOf,
  rfc3339,
  fromHex,
  toHex,
  type Clock,
  type CryptoProvider,
  type Ed25519PrivateKey,
} from '@tibet/core';
import { CborTag, decodeCbor, encodeCbor, type CborKey, type CborValue } from './cbor.js';
import { TzaError } from './errors.js';

export const COSE_SIGN1_TAG = 18;
export const COSE_ALG_EDDSA = -8;
const HDR_ALG = 1;
const HDR_KID = 4;

/** The protected header of one signature, as read. */
export interface SignatureHeader {
  alg: typeof COSE_ALG_EDDSA;
  /** Key id: first 8 bytes of SHA-256(public key), hex. */
  kid: string;
  /** The signer's actor id. */
  signer: string;
  /** The signer's Ed25519 public key (whether it is trusted is decided from outside). */
  publicKey: Uint8Array;
  signedAt: string;
}

export interface ParsedSignature {
  header: SignatureHeader;
  protectedBytes: Uint8Array;
  signature: Uint8Array;
}

/** The length of a CBOR head whose argument is `n` (RFC 8949 §3). */
function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

/** Write the CBOR head of a byte string of length `n` at `o`; returns the offset after it. */
function putBstrHead(out: Uint8Array, o: number, n: number): number {
  if (n < 24) {
    out[o] = 0x40 | n;
    return o + 1;
  }
  if (n < 0x100) {
    out[o] = 0x58;
    out[o + 1] = n;
    return o + 2;
  }
  if (n < 0x10000) {
    out[o] = 0x59;
    out[o + 1] = n >>> 8;
    out[o + 2] = n & 0xff;
    return o + 3;
  }
  if (n < 0x100000000) {
    out[o] = 0x5a;
    new DataView(out.buffer, out.byteOffset).setUint32(o + 1, n, false);
    return o + 5;
  }
  out[o] = 0x5b;
  new DataView(out.buffer, out.byteOffset).setBigUint64(o + 1, BigInt(n), false);
  return o + 9;
}

/** `0x84` (the head of an array of four), then the text string "Signature1". */
const SIG1_PREFIX = Uint8Array.of(0x84, ...encodeCbor('Signature1'));

/**
 * Sig_structure = ["Signature1", body_protected, external_aad, payload]: the deterministic
 * CBOR of that array (the same bytes as `encodeCbor` gives), written straight into one
 * buffer of its exact length. Nothing secret is in it, so no shared writer is needed.
 */
export function sigStructure(
  protectedBytes: Uint8Array,
  payload: Uint8Array,
  externalAad: Uint8Array,
): Uint8Array {
  const parts = [protectedBytes, externalAad, payload];
  let size = SIG1_PREFIX.length;
  for (const p of parts) size += headLength(p.length) + p.length;
  const out = new Uint8Array(size);
  out.set(SIG1_PREFIX, 0);
  let o = SIG1_PREFIX.length;
  for (const p of parts) {
    o = putBstrHead(out, o, p.length);
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * The protected header of a signer without its last field: the head of a map of five, then
 * alg, kid, pk, signer and the key "signed_at" (in the order of their encoded keys: 1, 4,
 * "pk", "signer", "signed_at"), so that the header is this prefix followed by the encoded
 * `signed_at` text. Kept per signing key object and used only while that key's public key
 * and the signer id are exactly the ones it was made from.
 */
interface HeaderPrefix {
  publicKey: Uint8Array;
  signer: string;
  prefix: Uint8Array;
}
const headerPrefixes = new WeakMap<Ed25519PrivateKey, HeaderPrefix>();

function protectedHeader(
  key: Ed25519PrivateKey,
  signer: string,
  signedAt: string,
  provider: CryptoProvider,
): Uint8Array {
  let c = headerPrefixes.get(key);
  if (!c || c.signer !== signer || !equalBytes(c.publicKey, key.publicKey)) {
    const publicKey = key.publicKey.slice();
    // signed_at encodes last (its key sorts last) and the empty text is the one byte 0x60
    const full = encodeCbor(
      new Map<string | number, CborValue>([
        [HDR_ALG, COSE_ALG_EDDSA],
        [HDR_KID, fromHex(keyIdOf(publicKey, provider))],
        ['signer', signer],
        ['pk', publicKey],
        ['signed_at', ''],
      ]),
    );
    c = { publicKey, signer, prefix: full.subarray(0, full.length - 1) };
    headerPrefixes.set(key, c);
  }
  const at = encodeCbor(signedAt);
  const out = new Uint8Array(c.prefix.length + at.length);
  out.set(c.prefix, 0);
  out.set(at, c.prefix.length);
  return out;
}

export function coseSign1(
  payload: Uint8Array,
  key: Ed25519PrivateKey,
  signer: string,
  externalAad: Uint8Array,
  opts: { clock: Clock; provider: CryptoProvider },
): CborTag {
  const protectedBytes = protectedHeader(key, signer, rfc3339(opts.clock.now()), opts.provider);
  const signature = key.sign(sigStructure(protectedBytes, payload, externalAad));
  return new CborTag(COSE_SIGN1_TAG, [protectedBytes, new Map(), null, signature]);
}

function malformed(msg: string): never {
  throw new TzaError('SIGNATURE_MALFORMED', msg);
}

/** Parse one COSE_Sign1 (structure only). */
export function parseCoseSign1(v: CborValue, provider: CryptoProvider): ParsedSignature {
  if (!(v instanceof CborTag) || v.tag !== COSE_SIGN1_TAG)
    malformed('signature is not a tagged COSE_Sign1');
  const arr = v.value;
  if (!Array.isArray(arr) || arr.length !== 4) malformed('COSE_Sign1 must be an array of 4');
  const [protectedBytes, unprotectedHdr, payload, signature] = arr as CborValue[];
  if (!(protectedBytes instanceof Uint8Array)) malformed('protected header must be a byte string');
  if (!(
    unprotectedHdr instanceof Map ||
    (typeof unprotectedHdr === 'object' &&
      unprotectedHdr !== null &&
      !Array.isArray(unprotectedHdr) &&
      !(unprotectedHdr instanceof Uint8Array) &&
      !(unprotectedHdr instanceof CborTag) &&
      Object.keys(unprotectedHdr).length === 0)
  )) {
    malformed('unprotected header must be an empty map');
  }
  if (unprotectedHdr instanceof Map && unprotectedHdr.size !== 0)
    malformed('unprotected header must be an empty map');
  if (payload !== null) malformed('payload must be detached (nil)');
  if (!(signature instanceof Uint8Array) || signature.length !== 64)
    malformed('signature must be 64 bytes');
  let hdr: CborValue;
  try {
    hdr = decodeCbor(protectedBytes, { maxDepth: 2, maxItems: 16 });
  } catch (cause) {
    throw new TzaError('SIGNATURE_MALFORMED', 'protected header is not canonical CBOR', { cause });
  }
  if (!(hdr instanceof Map) || hdr.size !== 5)
    malformed('protected header must hold exactly alg, kid, signer, pk, signed_at');
  const h = hdr as ReadonlyMap<CborKey, CborValue>;
  const alg = h.get(HDR_ALG);
  const kid = h.get(HDR_KID);
  const signer = h.get('signer');
  const pk = h.get('pk');
  const signedAt = h.get('signed_at');
  if (alg !== COSE_ALG_EDDSA) malformed('unsupported algorithm (only EdDSA, -8)');
  if (!(kid instanceof Uint8Array) || kid.length !== 8) malformed('kid must be 8 bytes');
  if (!isActorId(signer)) malformed('signer must be a jis: actor id');
  if (!(pk instanceof Uint8Array) || pk.length !== 32) malformed('pk must be 32 bytes');
  if (typeof signedAt !== 'string' || Number.isNaN(Date.parse(signedAt)))
    malformed('signed_at must be RFC 3339');
  // the kid is the first 8 bytes of SHA-256(pk) (keyIdOf is their hex)
  if (!equalBytes(kid, provider.sha256(pk).subarray(0, 8))) malformed('kid does not match pk');
  return {
    header: { alg: COSE_ALG_EDDSA, kid: toHex(kid), signer, publicKey: pk, signedAt },
    protectedBytes,
    signature: signature.slice(),
  };
}

export function verifyCoseSign1(
  sig: ParsedSignature,
  payload: Uint8Array,
  externalAad: Uint8Array,
  provider: CryptoProvider,
): boolean {
  return provider.ed25519Verify(
    sig.header.publicKey,
    sigStructure(sig.protectedBytes, payload, externalAad),
    sig.signature,
  );
}
