import { CoreError } from '../errors.js';

/** A private Ed25519 key prepared for repeated signing. */
export interface Ed25519PrivateKey {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** A private X25519 key prepared for repeated key agreement. */
export interface X25519PrivateKey {
  readonly publicKey: Uint8Array;
  /** The raw shared secret; throws CoreError `HPKE_INVALID_KEY` if it is all zeros. */
  agree(peerPublicKey: Uint8Array): Uint8Array;
}

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  dkLen: number;
}

/**
 * The primitives every TIBET package builds on. Two backends give identical bytes for
 * identical inputs: `noble` (pure JavaScript, audited, portable to browsers; the reference)
 * and `node` (OpenSSL through `node:crypto`; 10–30× faster on curves).
 */
export interface CryptoProvider {
  readonly name: 'noble' | 'node';
  sha256(data: Uint8Array): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** `seed` is the 32-byte RFC 8032 private key. */
  ed25519(seed: Uint8Array): Ed25519PrivateKey;
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /**
   * `publicKey`, when the caller already has it (a pair it just generated), saves deriving
   * it; it must belong to `secretKey`.
   */
  x25519(secretKey: Uint8Array, publicKey?: Uint8Array): X25519PrivateKey;
  /**
   * Fresh key pair from the operating system's CSPRNG, natively where the backend can; `key`
   * is the pair already prepared for agreement (saves importing the secret key again).
   */
  x25519Generate(): { secretKey: Uint8Array; publicKey: Uint8Array; key?: X25519PrivateKey };
  /** RFC 8439 AEAD; returns ciphertext ‖ 16-byte tag. */
  chacha20poly1305Seal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array;
  /** Throws CoreError `AEAD_OPEN_FAILED` when the tag does not verify. */
  chacha20poly1305Open(
    key: Uint8Array,
    nonce: Uint8Array,
    ciphertext: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array;
  /** XChaCha20-Poly1305 (24-byte nonce); returns ciphertext ‖ 16-byte tag. */
  xchacha20poly1305Seal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array;
  xchacha20poly1305Open(
    key: Uint8Array,
    nonce: Uint8Array,
    ciphertext: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array;
  scrypt(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array>;
}

export function aeadFailed(cause?: unknown): CoreError {
  return new CoreError('AEAD_OPEN_FAILED', 'authenticated decryption failed', { cause });
}

export function isAllZero(b: Uint8Array): boolean {
  let d = 0;
  for (let i = 0; i < b.length; i++) d |= b[i]!;
  return d === 0;
}
