import { TibetError } from '@tibet/core';

export type VaultErrorCode =
  | 'VAULT_NOT_FOUND'
  | 'VAULT_EXISTS'
  | 'INVALID_VAULT_ID'
  | 'INVALID_INPUT'
  /** The actor is not the vault's owner (heartbeat). Logged as `vault-heartbeat-denied`. */
  | 'NOT_OWNER'
  /** The actor is not a beneficiary (open). Logged as `vault-open-denied`. */
  | 'NOT_BENEFICIARY'
  /** The vault has not been released yet (open). Logged as `vault-open-denied`. */
  | 'NOT_RELEASED'
  /** The vault was released: a heartbeat comes too late. Logged as `vault-heartbeat-denied`. */
  | 'ALREADY_RELEASED'
  /** The request's signature does not verify against the directory's key for its actor. */
  | 'SIGNATURE_INVALID'
  /** The secret the vault holds is refused by the keychain (wrapped keychain error). */
  | 'KEYCHAIN_REFUSED'
  /** The secret is already held by another sealed vault. */
  | 'SECRET_IN_VAULT'
  | 'AUDIT_FAILED'
  | 'STORE_CORRUPT'
  | 'STORE_LOCKED';

const VAULT_ERROR = Symbol.for('@tibet/vault/error');

export class VaultError extends TibetError<VaultErrorCode> {
  readonly [VAULT_ERROR] = true;
  override readonly name = 'VaultError';

  static is(e: unknown): e is VaultError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[VAULT_ERROR] === true
    );
  }
}
