import { TibetError } from '@tibet/core';

/** Codes raised by @tibet/cbom. */
export type CbomErrorCode =
  /** The subject (secret, action, bundle, capsule) is nowhere in the sources given. */
  | 'SUBJECT_NOT_FOUND'
  /** No log folder (or no `log.json` in it) where one was expected. */
  | 'LOG_UNREADABLE'
  /** A bundle file cannot be read at all (I/O); a bundle that reads but fails is a problem in the graph. */
  | 'BUNDLE_UNREADABLE'
  /** A compliance report folder is malformed (missing file, bad JSON, wrong shape). */
  | 'REPORT_MALFORMED'
  /** A compliance report folder would overwrite an existing one. */
  | 'REPORT_EXISTS'
  /** An event a report rests on is not covered by a valid signed checkpoint (or does not verify). */
  | 'NOT_PROVABLE'
  /** The key asked about is not a signing key, or the window is empty. */
  | 'INVALID_INPUT';

const CBOM_ERROR = Symbol.for('@tibet/cbom/error');

export class CbomError extends TibetError<CbomErrorCode> {
  readonly [CBOM_ERROR] = true;
  override readonly name = 'CbomError';

  static is(e: unknown): e is CbomError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[CBOM_ERROR] === true
    );
  }
}
