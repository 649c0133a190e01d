/**
 * The family's error base. Every package defines one subclass with its own string-literal
 * union of codes and its own `Symbol.for` marker, so that `XError.is(e)` works across
 * duplicate copies of a package (where `instanceof` does not).
 */
const TIBET_ERROR = Symbol.for('@tibet/error');

export abstract class TibetError<C extends string = string> extends Error {
  readonly code: C;
  readonly [TIBET_ERROR] = true;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** True for an error of any TIBET package. */
  static isTibetError(e: unknown): e is TibetError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[TIBET_ERROR] === true
    );
  }
}

/** Codes raised by @tibet/core. */
export type CoreErrorCode =
  | 'INVALID_ACTOR_ID'
  | 'INVALID_ACTOR_CLASS'
  | 'INVALID_TOKEN'
  | 'TOKEN_SIGNATURE_INVALID'
  | 'TOKEN_CHAIN_BROKEN'
  | 'TOKEN_GENERATION_INVALID'
  | 'NON_CANONICAL_JSON'
  | 'JSON_NOT_CANONICALIZABLE'
  | 'KEYFILE_INVALID'
  | 'KEYFILE_UNSUPPORTED'
  | 'PASSPHRASE_WRONG'
  | 'PASSPHRASE_REQUIRED'
  | 'HPKE_OPEN_FAILED'
  | 'HPKE_INVALID_KEY'
  | 'AEAD_OPEN_FAILED'
  | 'BACKEND_UNAVAILABLE';

const CORE_ERROR = Symbol.for('@tibet/core/error');

export class CoreError extends TibetError<CoreErrorCode> {
  readonly [CORE_ERROR] = true;
  override readonly name = 'CoreError';

  static is(e: unknown): e is CoreError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[CORE_ERROR] === true
    );
  }
}
