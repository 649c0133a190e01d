import { hash as nodeHash } from 'node:crypto';
import { toHex } from '../bytes.js';
import { CoreError } from '../errors.js';
import { nobleProvider } from './noble.js';
import { latin1Bytes, nodeProvider } from './node.js';
import type { CryptoProvider } from './provider.js';

export type BackendName = CryptoProvider['name'];

let defaultProvider: CryptoProvider = nodeProvider;

/** The provider for a backend name; the default (`node`, the fast path) when omitted. */
export function getProvider(name?: BackendName): CryptoProvider {
  switch (name) {
    case undefined:
      return defaultProvider;
    case 'noble':
      return nobleProvider;
    case 'node':
      return nodeProvider;
    default:
      throw new CoreError('BACKEND_UNAVAILABLE', `unknown crypto backend "${String(name)}"`);
  }
}

/** Set the process-wide default backend (the `TIBET_CRYPTO` environment variable also does). */
export function setDefaultProvider(p: CryptoProvider | BackendName): void {
  defaultProvider = typeof p === 'string' ? getProvider(p) : p;
}

const env = typeof process !== 'undefined' ? process.env['TIBET_CRYPTO'] : undefined;
if (env === 'noble' || env === 'node') defaultProvider = getProvider(env);

export { nobleProvider, nodeProvider };

/**
 * Lowercase hex of SHA-256(`data`) through `p`: `toHex(p.sha256(data))`, and with the stock
 * node backend straight from OpenSSL's one-shot hash into hex (no copies in between).
 */
export function sha256Hex(data: Uint8Array, p: CryptoProvider = defaultProvider): string {
  return p === nodeProvider && data.length <= 64 * 1024
    ? nodeHash('sha256', data, 'hex')
    : toHex(p.sha256(data));
}

/**
 * SHA-256(`data`) through `p`, written into `out[at, at + 32)` instead of a new array:
 * `out.set(p.sha256(data), at)`, and with the stock node backend straight from OpenSSL's
 * one-shot hash (nothing allocated but the digest's 32-character string). For loops that
 * hash many inputs into one packed result.
 */
export function sha256Into(
  data: Uint8Array,
  out: Uint8Array,
  at: number,
  p: CryptoProvider = defaultProvider,
): void {
  if (!Number.isInteger(at) || at < 0 || at + 32 > out.length)
    throw new RangeError(`sha256Into: no room for 32 bytes at ${at} of ${out.length}`);
  if (p === nodeProvider && data.length <= 64 * 1024)
    latin1Bytes(nodeHash('sha256', data, 'binary'), out, at);
  else out.set(p.sha256(data), at);
}
