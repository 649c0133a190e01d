import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { assertBytes, concatBytes, copyBytes, equalBytes } from '../bytes.js';
import { CoreError } from '../errors.js';
import { aeadFailed, isAllZero, type CryptoProvider } from './provider.js';

const Point = ed25519.Point;

/**
 * Ed25519 verification with the exact acceptance rules of the `node` backend, so that both
 * backends accept the same set of signatures (noble's own `verify` checks the cofactored
 * equation, OpenSSL the cofactorless one; they disagree on mixed-order points). Rules:
 * RFC 8032 strict decoding of A (y < p, no "negative zero"), small-order A rejected, S < L,
 * and the cofactorless equation checked by comparing encode([S]B - [k]A) with the bytes of R
 * (which also rejects a non-canonical R).
 */
function verifyStrict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const A = Point.fromBytes(publicKey, false);
  if (A.isSmallOrder()) return false;
  const r = signature.subarray(0, 32);
  const s = bytesToNumberLE(signature.subarray(32, 64));
  if (s >= Point.Fn.ORDER) return false;
  const k = Point.Fn.create(bytesToNumberLE(sha512(concatBytes(r, publicKey, message))));
  const R = Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k));
  return equalBytes(R.toBytes(), r);
}

/** The reference backend: @noble/curves, @noble/ciphers, @noble/hashes. */
export const nobleProvider: CryptoProvider = {
  name: 'noble',
  sha256: (data) => sha256(data),
  hmacSha256: (key, data) => hmac(sha256, key, data),
  ed25519(seed) {
    assertBytes(seed, 'seed', 32);
    const sk = copyBytes(seed);
    const publicKey = ed25519.getPublicKey(sk);
    return { publicKey, sign: (message) => ed25519.sign(message, sk) };
  },
  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return verifyStrict(publicKey, message, signature);
    } catch {
      return false;
    }
  },
  x25519(secretKey, knownPublicKey) {
    assertBytes(secretKey, 'secretKey', 32);
    const sk = copyBytes(secretKey);
    const publicKey = knownPublicKey ? copyBytes(knownPublicKey) : x25519.getPublicKey(sk);
    return {
      publicKey,
      agree(peer) {
        assertBytes(peer, 'peerPublicKey', 32);
        let ss: Uint8Array;
        try {
          ss = x25519.getSharedSecret(sk, peer);
        } catch (cause) {
          throw new CoreError('HPKE_INVALID_KEY', 'X25519 agreement failed', { cause });
        }
        if (isAllZero(ss)) throw new CoreError('HPKE_INVALID_KEY', 'X25519 shared secret is zero');
        return ss;
      },
    };
  },
  x25519Generate() {
    const secretKey = x25519.utils.randomSecretKey();
    return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
  },
  chacha20poly1305Seal: (key, nonce, pt, aad) => chacha20poly1305(key, nonce, aad).encrypt(pt),
  chacha20poly1305Open(key, nonce, ct, aad) {
    try {
      return chacha20poly1305(key, nonce, aad).decrypt(ct);
    } catch (e) {
      throw aeadFailed(e);
    }
  },
  xchacha20poly1305Seal: (key, nonce, pt, aad) => xchacha20poly1305(key, nonce, aad).encrypt(pt),
  xchacha20poly1305Open(key, nonce, ct, aad) {
    try {
      return xchacha20poly1305(key, nonce, aad).decrypt(ct);
    } catch (e) {
      throw aeadFailed(e);
    }
  },
  scrypt: (password, salt, { N, r, p, dkLen }) =>
    scryptAsync(password, salt, { N, r, p, dkLen, maxmem: 256 * N * r + 1024 * 1024 }),
};
