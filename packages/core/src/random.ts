import { chacha20 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from './bytes.js';

/**
 * A source of random bytes. `system` marks the operating system's CSPRNG: backends may then
 * use their own native key generation, which draws from the same kind of source.
 */
export interface Random {
  (length: number): Uint8Array;
  readonly system?: boolean;
}

/** The operating system's CSPRNG (`crypto.getRandomValues`). */
export const systemRandom: Random = Object.assign(
  (length: number): Uint8Array => {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('"length" invalid');
    const out = new Uint8Array(length);
    for (let o = 0; o < length; o += 65536) {
      crypto.getRandomValues(out.subarray(o, Math.min(length, o + 65536)));
    }
    return out;
  },
  { system: true as const },
);

/**
 * A deterministic stream of bytes for tests and reproducible vectors: the ChaCha20 keystream
 * under `SHA-256(seed)`. Never use it for real secrets.
 */
export function seededRandom(seed: string | Uint8Array): Random {
  const key = sha256(typeof seed === 'string' ? utf8(seed) : seed);
  const nonce = new Uint8Array(12);
  let counter = 0;
  let buf = new Uint8Array(0);
  let pos = 0;
  return (length: number): Uint8Array => {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('"length" invalid');
    const out = new Uint8Array(length);
    let o = 0;
    while (o < length) {
      if (pos >= buf.length) {
        buf = chacha20(key, nonce, new Uint8Array(4096), undefined, counter);
        counter += 64;
        pos = 0;
      }
      const n = Math.min(length - o, buf.length - pos);
      out.set(buf.subarray(pos, pos + n), o);
      o += n;
      pos += n;
    }
    return out;
  };
}
