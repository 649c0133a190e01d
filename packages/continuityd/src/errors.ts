import { TibetError } from '@tibet/core';

export type ContinuityErrorCode =
  // appending
  | 'TOKEN_REJECTED'
  | 'ACTOR_UNKNOWN'
  | 'CAUSAL_PARENT_UNKNOWN'
  | 'CAUSAL_PREV_MISMATCH'
  | 'CAUSAL_GENERATION_INVALID'
  | 'DUPLICATE_ACTION'
  | 'WRITE_FAILED'
  | 'LOG_POISONED'
  | 'LOG_CLOSED'
  | 'LOCKED'
  | 'BACKPRESSURE'
  // reading and verifying
  | 'RECORD_MALFORMED'
  | 'CHAIN_BROKEN'
  | 'INDEX_MISMATCH'
  | 'SEGMENT_MISSING'
  | 'SEGMENT_MALFORMED'
  | 'ROOT_MISMATCH'
  | 'CHECKPOINT_MALFORMED'
  | 'CHECKPOINT_SIGNATURE_INVALID'
  | 'CHECKPOINT_INCONSISTENT'
  | 'PROOF_MALFORMED'
  | 'PROOF_INVALID'
  | 'NOT_FOUND'
  | 'STATE_CORRUPT'
  | 'DAEMON_UNAVAILABLE'
  | 'DAEMON_PROTOCOL';

const CONTINUITY_ERROR = Symbol.for('@tibet/continuityd/error');

export class ContinuityError extends TibetError<ContinuityErrorCode> {
  readonly [CONTINUITY_ERROR] = true;
  override readonly name = 'ContinuityError';

  static is(e: unknown): e is ContinuityError {
    return (
      typeof e === 'object' &&
      e !== null &&
      (e as Record<symbol, unknown>)[CONTINUITY_ERROR] === true
    );
  }
}
