import { TibetError } from '@tibet/core';

/** Every way a bundle can be refused, each with its own stable code. */
export type TzaErrorCode =
  // CBOR (RFC 8949 §4.2.1 deterministic encoding, read strictly)
  | 'CBOR_MALFORMED'
  | 'CBOR_NON_CANONICAL'
  | 'CBOR_UNSUPPORTED'
  | 'CBOR_TOO_DEEP'
  | 'CBOR_TRAILING_BYTES'
  // tar container
  | 'TAR_TRUNCATED'
  | 'TAR_MALFORMED'
  | 'TAR_CHECKSUM'
  | 'TAR_ENTRY_TYPE'
  | 'TAR_PATH_UNSAFE'
  | 'TAR_DUPLICATE_ENTRY'
  | 'TAR_TRAILING_DATA'
  | 'TAR_NON_CANONICAL'
  // limits
  | 'LIMIT_EXCEEDED'
  // bundle structure
  | 'UNKNOWN_FORMAT'
  | 'UNKNOWN_VERSION'
  | 'MANIFEST_MISSING'
  | 'MANIFEST_INVALID'
  | 'ENTRY_ORDER'
  | 'ENTRY_MISSING'
  | 'ENTRY_UNEXPECTED'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  // signatures
  | 'SIGNATURE_MISSING'
  | 'SIGNATURE_MALFORMED'
  | 'SIGNATURE_INVALID'
  | 'SIGNER_UNTRUSTED'
  // sealed entries
  | 'NOT_A_RECIPIENT'
  | 'KEY_UNWRAP_FAILED'
  | 'DECRYPT_FAILED'
  | 'ENTRY_NOT_SEALED'
  // the family's TBZ bundles
  | 'TBZ_MALFORMED'
  | 'TBZ_TRUNCATED'
  | 'TBZ_TRAILING_BYTES'
  | 'TBZ_BLOCK_COUNT'
  | 'TBZ_MANIFEST_INVALID'
  | 'TBZ_DIGEST_MISMATCH'
  | 'TBZ_SIGNATURE_INVALID'
  | 'TBZ_PATH_UNSAFE'
  // unpacking
  | 'UNPACK_TARGET_EXISTS'
  | 'UNPACK_FAILED';

const TZA_ERROR = Symbol.for('@tibet/tza/error');

export class TzaError extends TibetError<TzaErrorCode> {
  readonly [TZA_ERROR] = true;
  override readonly name = 'TzaError';

  static is(e: unknown): e is TzaError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[TZA_ERROR] === true
    );
  }
}
