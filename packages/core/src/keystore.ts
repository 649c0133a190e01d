/**
 * Private keys at rest: an identity's two private keys encrypted under a passphrase
 * (scrypt, RFC 7914, then XChaCha20-Poly1305). The public part stays readable and is
 * bound to the ciphertext as additional data. Never written in plaintext.
 */
import { concatBytes, equalBytes, fromBase64Url, toBase64Url, utf8, wipe } from './bytes.js';
import { getProvider } from './crypto/index.js';
import type { CryptoProvider, ScryptParams } from './crypto/provider.js';
import { CoreError } from './errors.js';
import { Identity, parsePublicIdentity, type PublicIdentity } from './identity.js';
import { canonicalBytes } from './jcs.js';
import { systemRandom, type Random } from './random.js';

export const KEYFILE_FORMAT = 'tibet-identity-key/1' as const;

/** scrypt N=2^15, r=8, p=1: ~0.1 s here; OWASP's minimum for scrypt. */
export const DEFAULT_SCRYPT: Omit<ScryptParams, 'dkLen'> = { N: 2 ** 15, r: 8, p: 1 };

export interface KeyFile {
  format: typeof KEYFILE_FORMAT;
  public: PublicIdentity;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  aead: { name: 'xchacha20-poly1305'; nonce: string };
  ciphertext: string;
}

function passBytes(passphrase: string | Uint8Array): Uint8Array {
  const b =
    typeof passphrase === 'string'
      ? utf8(passphrase.normalize('NFC'))
      : Uint8Array.from(passphrase);
  if (b.length === 0)
    throw new CoreError('PASSPHRASE_REQUIRED', 'an empty passphrase is not allowed');
  return b;
}

/** Encrypt an identity's private keys under a passphrase. */
export async function encryptIdentity(
  identity: Identity,
  passphrase: string | Uint8Array,
  opts: { random?: Random; scrypt?: Omit<ScryptParams, 'dkLen'>; provider?: CryptoProvider } = {},
): Promise<KeyFile> {
  const provider = opts.provider ?? identity.provider;
  const random = opts.random ?? systemRandom;
  const params = opts.scrypt ?? DEFAULT_SCRYPT;
  checkParams(params.N, params.r, params.p);
  const pass = passBytes(passphrase);
  const salt = random(16);
  const nonce = random(24);
  const head = {
    format: KEYFILE_FORMAT,
    public: identity.public,
    kdf: { name: 'scrypt' as const, ...params, salt: toBase64Url(salt) },
    aead: { name: 'xchacha20-poly1305' as const, nonce: toBase64Url(nonce) },
  };
  const kek = await provider.scrypt(pass, salt, { ...params, dkLen: 32 });
  const { signingSeed, encryptionSecret } = identity.exportSecrets();
  const pt = concatBytes(signingSeed, encryptionSecret);
  try {
    const ct = provider.xchacha20poly1305Seal(kek, nonce, pt, canonicalBytes(head));
    return { ...head, ciphertext: toBase64Url(ct) };
  } finally {
    wipe(kek, pt, signingSeed, encryptionSecret, pass);
  }
}

/**
 * Accepted scrypt parameters: N a power of two in 2^10..2^20, r 1..32, p 1..16, and at
 * most 256 MiB of memory (128·N·r) and 64× the default work (N·r·p ≤ 2^24), so that a
 * hostile key file cannot make opening it take gigabytes or minutes.
 */
function checkParams(N: unknown, r: unknown, p: unknown): void {
  const ok =
    typeof N === 'number' &&
    Number.isInteger(N) &&
    N >= 2 ** 10 &&
    N <= 2 ** 20 &&
    (N & (N - 1)) === 0 &&
    typeof r === 'number' &&
    Number.isInteger(r) &&
    r >= 1 &&
    r <= 32 &&
    typeof p === 'number' &&
    Number.isInteger(p) &&
    p >= 1 &&
    p <= 16 &&
    128 * N * r <= 256 * 1024 * 1024 &&
    N * r * p <= 2 ** 24;
  if (!ok) {
    throw new CoreError(
      'KEYFILE_UNSUPPORTED',
      'scrypt parameters out of the accepted range (N 2^10..2^20, r 1..32, p 1..16, memory ≤ 256 MiB, N·r·p ≤ 2^24)',
    );
  }
}

/** Validate an untrusted key file's structure (no decryption). */
export function parseKeyFile(v: unknown, provider: CryptoProvider = getProvider()): KeyFile {
  const bad = (m: string): never => {
    throw new CoreError('KEYFILE_INVALID', `key file: ${m}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('not an object');
  const o = v as Record<string, unknown>;
  if (o['format'] !== KEYFILE_FORMAT) {
    throw new CoreError(
      'KEYFILE_UNSUPPORTED',
      `key file: unknown format ${JSON.stringify(o['format'])}`,
    );
  }
  for (const k of Object.keys(o))
    if (!['format', 'public', 'kdf', 'aead', 'ciphertext'].includes(k)) bad(`unknown field "${k}"`);
  parsePublicIdentity(o['public'], provider);
  const kdf = o['kdf'] as Record<string, unknown> | null;
  if (typeof kdf !== 'object' || kdf === null || kdf['name'] !== 'scrypt') {
    throw new CoreError('KEYFILE_UNSUPPORTED', 'key file: only scrypt is supported');
  }
  checkParams(kdf['N'], kdf['r'], kdf['p']);
  const aead = o['aead'] as Record<string, unknown> | null;
  if (typeof aead !== 'object' || aead === null || aead['name'] !== 'xchacha20-poly1305') {
    throw new CoreError('KEYFILE_UNSUPPORTED', 'key file: only xchacha20-poly1305 is supported');
  }
  try {
    if (fromBase64Url(kdf['salt'] as string).length < 16) bad('salt too short');
    if (fromBase64Url(aead['nonce'] as string).length !== 24) bad('nonce must be 24 bytes');
    if (fromBase64Url(o['ciphertext'] as string).length !== 64 + 16)
      bad('ciphertext has the wrong length');
  } catch (cause) {
    if (CoreError.is(cause)) throw cause;
    throw new CoreError('KEYFILE_INVALID', 'key file: bad base64url', { cause });
  }
  return o as unknown as KeyFile;
}

/**
 * Decrypt a key file. Throws CoreError `PASSPHRASE_WRONG` when the passphrase (or the file)
 * does not authenticate, `KEYFILE_INVALID` / `KEYFILE_UNSUPPORTED` for a malformed file.
 */
export async function decryptIdentity(
  file: unknown,
  passphrase: string | Uint8Array,
  provider: CryptoProvider = getProvider(),
): Promise<Identity> {
  const kf = parseKeyFile(file, provider);
  const pass = passBytes(passphrase);
  const { format, public: pub, kdf, aead } = kf;
  const kek = await provider.scrypt(pass, fromBase64Url(kdf.salt), {
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    dkLen: 32,
  });
  let pt: Uint8Array;
  try {
    pt = provider.xchacha20poly1305Open(
      kek,
      fromBase64Url(aead.nonce),
      fromBase64Url(kf.ciphertext),
      canonicalBytes({ format, public: pub, kdf, aead }),
    );
  } catch (cause) {
    throw new CoreError('PASSPHRASE_WRONG', 'wrong passphrase, or the key file was altered', {
      cause,
    });
  } finally {
    wipe(kek, pass);
  }
  const identity = new Identity(
    pt.slice(0, 32),
    pt.slice(32, 64),
    { id: pub.id, actorClass: pub.actor_class, createdAt: pub.created_at },
    provider,
  );
  wipe(pt);
  if (
    !equalBytes(identity.signingPublicKey, fromBase64Url(pub.signing_key)) ||
    !equalBytes(identity.encryptionPublicKey, fromBase64Url(pub.encryption_key))
  ) {
    identity.destroy();
    throw new CoreError('KEYFILE_INVALID', 'key file: private keys do not match its public keys');
  }
  return identity;
}
