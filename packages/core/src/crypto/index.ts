import { hash as nodeHash } from 'node:crypto';
import { toHex } from '../bytes.js';
import { CoreError } from '../errors.js';
import { nobleProvider } from './noble.js';
import { nodeProvider } from './node.js';
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
