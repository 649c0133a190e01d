import { TibetError } from '@tibet/core';

export type KeychainErrorCode =
  | 'SECRET_NOT_FOUND'
  | 'SECRET_EXISTS'
  | 'INVALID_SECRET_ID'
  | 'INVALID_SECRET_TYPE'
  | 'INVALID_TRANSITION'
  | 'NOT_AUTHORIZED'
  | 'POLICY_DENIED'
  | 'SECRET_EXPIRED'
  | 'SECRET_EXPOSED'
  | 'ROTATION_REQUIRED'
  | 'VERSION_MISMATCH'
  | 'SECRET_DESTROYED'
  | 'HANDOFF_NOT_PENDING'
  | 'NOT_A_RECIPIENT'
  | 'AUDIT_FAILED'
  | 'STORE_CORRUPT'
  | 'STORE_LOCKED'
  | 'INVALID_INPUT';

const KEYCHAIN_ERROR = Symbol.for('@tibet/keychain/error');

export class KeychainError extends TibetError<KeychainErrorCode> {
  readonly [KEYCHAIN_ERROR] = true;
  override readonly name = 'KeychainError';

  static is(e: unknown): e is KeychainError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[KEYCHAIN_ERROR] === true
    );
  }
}
