import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hash as nodeHash,
  scrypt as nodeScrypt,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { assertBytes, concatBytes, copyBytes, fromBase64Url, toBase64Url, wipe } from '../bytes.js';
import { CoreError } from '../errors.js';
import { aeadFailed, isAllZero, type CryptoProvider, type X25519PrivateKey } from './provider.js';

// A placeholder public key for JWK import: OpenSSL derives the real public key from `d`
// and ignores `x`; we read the derived key back (2–3 µs) rather than import PKCS#8 DER
// (~360 µs here).
const PLACEHOLDER_X = toBase64Url(new Uint8Array(32));

function privateKeyObject(crv: 'Ed25519' | 'X25519', d: Uint8Array): KeyObject {
  return createPrivateKey({
    key: { kty: 'OKP', crv, d: toBase64Url(d), x: PLACEHOLDER_X },
    format: 'jwk',
  });
}

function rawPublicOf(key: KeyObject): Uint8Array {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return fromBase64Url(jwk.x ?? '', 'jwk.x');
}

/**
 * Bounded cache of imported public keys (public data only), keyed by the key's exact bytes
 * (as a latin1 string: one character a byte, the cheapest string of them).
 */
class PublicKeyCache {
  readonly #map = new Map<string, KeyObject>();
  constructor(
    readonly crv: 'Ed25519' | 'X25519',
    readonly max = 4096,
    /** Throws for keys this backend must refuse; run once per key, before caching it. */
    readonly check?: (raw: Uint8Array) => void,
  ) {}
  get(raw: Uint8Array): KeyObject {
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
    let k = this.#map.get(id);
    if (k) {
      // least recently used goes first; the order matters only once the cache is half full
      if (this.#map.size > this.max >> 1) {
        this.#map.delete(id);
        this.#map.set(id, k);
      }
      return k;
    }
    this.check?.(raw);
    k = createPublicKey({ key: { kty: 'OKP', crv: this.crv, x: toBase64Url(raw) }, format: 'jwk' });
    if (this.#map.size >= this.max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
    this.#map.set(id, k);
    return k;
  }
}

/**
 * OpenSSL accepts non-canonical (y ≥ p, "negative zero") and small-order Ed25519 public keys;
 * a small-order key verifies a forged signature for any message. Refuse them, as the `noble`
 * backend does, so that both backends accept exactly the same signatures.
 */
function checkEd25519PublicKey(raw: Uint8Array): void {
  if (ed25519.Point.fromBytes(raw, false).isSmallOrder()) {
    throw new RangeError('small-order Ed25519 public key');
  }
}

const edPublic = new PublicKeyCache('Ed25519', 4096, checkEd25519PublicKey);
const xPublic = new PublicKeyCache('X25519');

const ONE_SHOT_HASH_MAX = 64 * 1024;

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

function leWords(b: Uint8Array): Uint32Array {
  const w = new Uint32Array(b.length / 4);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < w.length; i++) w[i] = dv.getUint32(i * 4, true);
  return w;
}

/** HChaCha20(key, nonce[0..16]) → subkey; the XChaCha20 construction (draft-irtf-cfrg-xchacha). */
function xchachaSubkey(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; iv: Uint8Array } {
  assertBytes(key, 'key', 32);
  assertBytes(nonce, 'nonce', 24);
  const out = new Uint32Array(8);
  const k = leWords(key);
  hchacha(SIGMA, k, leWords(nonce.subarray(0, 16)), out);
  const subkey = new Uint8Array(32);
  const dv = new DataView(subkey.buffer);
  for (let i = 0; i < 8; i++) dv.setUint32(i * 4, out[i]!, true);
  out.fill(0);
  k.fill(0);
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16, 24), 4);
  return { subkey, iv };
}

function chachaSeal(key: Uint8Array, iv: Uint8Array, pt: Uint8Array, aad: Uint8Array): Uint8Array {
  assertBytes(key, 'key', 32);
  assertBytes(iv, 'nonce', 12);
  const c = createCipheriv('chacha20-poly1305', key, iv, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: pt.length });
  const body = c.update(pt);
  const fin = c.final();
  return concatBytes(body, fin, c.getAuthTag());
}

function chachaOpen(key: Uint8Array, iv: Uint8Array, ct: Uint8Array, aad: Uint8Array): Uint8Array {
  assertBytes(key, 'key', 32);
  assertBytes(iv, 'nonce', 12);
  if (ct.length < 16) throw aeadFailed();
  try {
    const d = createDecipheriv('chacha20-poly1305', key, iv, { authTagLength: 16 });
    d.setAAD(aad, { plaintextLength: ct.length - 16 });
    d.setAuthTag(ct.subarray(ct.length - 16));
    const body = d.update(ct.subarray(0, ct.length - 16));
    const fin = d.final();
    const out = concatBytes(body, fin);
    body.fill(0);
    return out;
  } catch (e) {
    throw aeadFailed(e);
  }
}

function x25519Of(key: KeyObject, publicKey: Uint8Array): X25519PrivateKey {
  return {
    publicKey,
    agree(peer) {
      assertBytes(peer, 'peerPublicKey', 32);
      let ss: Uint8Array;
      try {
        ss = copyBytes(diffieHellman({ privateKey: key, publicKey: xPublic.get(peer) }));
      } catch (cause) {
        throw new CoreError('HPKE_INVALID_KEY', 'X25519 agreement failed', { cause });
      }
      if (isAllZero(ss)) throw new CoreError('HPKE_INVALID_KEY', 'X25519 shared secret is zero');
      return ss;
    },
  };
}

/**
 * Write the bytes a latin1 string stands for (one byte a character: a digest from
 * `hash(..., 'binary')`) into `out` at `at`; returns `out`.
 */
export function latin1Bytes(s: string, out: Uint8Array, at: number): Uint8Array {
  for (let k = 0; k < s.length; k++) out[at + k] = s.charCodeAt(k);
  return out;
}

/** The fast backend: OpenSSL through `node:crypto`, long-lived keys kept as KeyObjects. */
export const nodeProvider: CryptoProvider = {
  name: 'node',
  sha256: (data) =>
    // the one-shot form saves building a Hash object (a streaming Hash for large inputs), and
    // its digest as a 'binary' (latin1) string, one byte a character, spares the Buffer it would
    // otherwise allocate outside the heap: the 32 bytes land in a small on-heap array
    data.length <= ONE_SHOT_HASH_MAX
      ? latin1Bytes(nodeHash('sha256', data, 'binary'), new Uint8Array(32), 0)
      : copyBytes(createHash('sha256').update(data).digest()),
  hmacSha256: (key, data) => copyBytes(createHmac('sha256', key).update(data).digest()),
  ed25519(seed) {
    assertBytes(seed, 'seed', 32);
    const key = privateKeyObject('Ed25519', seed);
    const publicKey = rawPublicOf(key);
    return { publicKey, sign: (message) => copyBytes(nodeSign(null, message, key)) };
  },
  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return nodeVerify(null, message, edPublic.get(publicKey), signature);
    } catch {
      return false;
    }
  },
  x25519(secretKey, publicKey) {
    assertBytes(secretKey, 'secretKey', 32);
    if (publicKey !== undefined) {
      // no export of the derived public key: that call was seen to hang Node 20.20 in tight
      // loops of fresh keys (see docs/core-keys.md); the caller's key is used as given
      assertBytes(publicKey, 'publicKey', 32);
      const key = createPrivateKey({
        key: { kty: 'OKP', crv: 'X25519', d: toBase64Url(secretKey), x: toBase64Url(publicKey) },
        format: 'jwk',
      });
      return x25519Of(key, copyBytes(publicKey));
    }
    const key = privateKeyObject('X25519', secretKey);
    return x25519Of(key, rawPublicOf(key));
  },
  x25519Generate() {
    // JWK output straight from generation: exporting a fresh KeyObject as JWK in a tight loop
    // was seen to hang Node 20.20 (shared/spec/performance.md), this form never did
    const kp = generateKeyPairSync('x25519', {
      publicKeyEncoding: { format: 'jwk' },
      privateKeyEncoding: { format: 'jwk' },
    }) as unknown as { publicKey: { x: string }; privateKey: { d: string } };
    return {
      secretKey: fromBase64Url(kp.privateKey.d, 'jwk.d'),
      publicKey: fromBase64Url(kp.publicKey.x, 'jwk.x'),
    };
  },
  chacha20poly1305Seal: chachaSeal,
  chacha20poly1305Open: chachaOpen,
  xchacha20poly1305Seal(key, nonce, pt, aad) {
    const { subkey, iv } = xchachaSubkey(key, nonce);
    try {
      return chachaSeal(subkey, iv, pt, aad);
    } finally {
      wipe(subkey);
    }
  },
  xchacha20poly1305Open(key, nonce, ct, aad) {
    const { subkey, iv } = xchachaSubkey(key, nonce);
    try {
      return chachaOpen(subkey, iv, ct, aad);
    } finally {
      wipe(subkey);
    }
  },
  scrypt: (password, salt, { N, r, p, dkLen }) =>
    new Promise((resolve, reject) => {
      nodeScrypt(
        password,
        salt,
        dkLen,
        { N, r, p, maxmem: 256 * N * r + 1024 * 1024 },
        (err, key) => (err ? reject(err) : resolve(copyBytes(key))),
      );
    }),
};
