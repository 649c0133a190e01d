import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { assertBytes, copyBytes } from '../bytes.js';
import { CoreError } from '../errors.js';
import { aeadFailed, isAllZero, type CryptoProvider } from './provider.js';

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
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
  x25519(secretKey) {
    assertBytes(secretKey, 'secretKey', 32);
    const sk = copyBytes(secretKey);
    const publicKey = x25519.getPublicKey(sk);
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
