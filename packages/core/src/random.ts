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

/** Bytes drawn from the OS CSPRNG at once into {@link systemRandom}'s pool. */
const POOL_SIZE = 4096;
/** Requests longer than this bypass the pool and go straight to the OS CSPRNG. */
const POOL_MAX_REQUEST = 256;

/**
 * The pool of {@link systemRandom}: one per thread (a module's state is per worker thread),
 * refilled whole from `crypto.getRandomValues`. Bytes from `poolPos` on have not been handed
 * out; every byte before it has been copied out once and was zeroed at once.
 */
const pool = new Uint8Array(POOL_SIZE);
let poolPos = POOL_SIZE;

function fromOs(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let o = 0; o < length; o += 65536) {
    crypto.getRandomValues(out.subarray(o, Math.min(length, o + 65536)));
  }
  return out;
}

/**
 * The operating system's CSPRNG (`crypto.getRandomValues`). Requests of up to 256 bytes are
 * served from a per-thread pool of 4096 bytes drawn from it at once (one call to the OS
 * costs about as much for 4 KiB as for 16 bytes): each request gets a fresh copy of bytes
 * no one else has been given, and those bytes are zeroed in the pool as they are handed
 * out. When the pool holds fewer bytes than asked for, it is refilled whole (the bytes left
 * over are overwritten, never handed out). Longer requests go straight to the OS. The
 * pool's unread bytes live in process memory until used, like any key material drawn from
 * them (docs/core-keys.md §2).
 */
export const systemRandom: Random = Object.assign(
  (length: number): Uint8Array => {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('"length" invalid');
    if (length > POOL_MAX_REQUEST) return fromOs(length);
    if (length > POOL_SIZE - poolPos) {
      crypto.getRandomValues(pool);
      poolPos = 0;
    }
    const end = poolPos + length;
    const out = pool.slice(poolPos, end);
    pool.fill(0, poolPos, end);
    poolPos = end;
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
