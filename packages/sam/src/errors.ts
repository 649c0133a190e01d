import { TibetError } from '@tibet/core';
import type { SamVerdict } from './capsule.js';

/** Codes raised by @tibet/sam. */
export type SamErrorCode =
  /** An untrusted capsule (JSON or decoded) breaks the schema: unknown field, bad id, size, … */
  | 'INVALID_CAPSULE'
  /** A capsule request (API input or untrusted JSON body) breaks the schema. */
  | 'INVALID_REQUEST'
  /** The secret is not in the keychain. */
  | 'SECRET_NOT_FOUND'
  /** The issuer is neither the secret's owner nor its custodian. */
  | 'NOT_AUTHORIZED'
  /** The keychain's policy refuses the use (`mayUse`); the message carries its reason. */
  | 'POLICY_DENIED'
  /** The secret is exposed (leaked) or must be rotated first. */
  | 'SECRET_UNAVAILABLE'
  /** The requested lifetime exceeds the secret's `max_capsule_ttl_s`. */
  | 'TTL_TOO_LONG'
  /** The `sam-issued` event could not be appended to the audit log: no capsule. */
  | 'AUDIT_FAILED'
  /** A bundle (tza/1 or TBZ) that does not verify: structure, signature, signer, schema. */
  | 'BUNDLE_INVALID'
  /** An encrypted capsule and no (or the wrong) gateway identity to open it. */
  | 'NOT_A_RECIPIENT'
  /** A capsule and an audit token that do not describe the same issuance. */
  | 'ISSUANCE_MISMATCH'
  /**
   * The agent's proof of possession (its signed `sam-requested` / `sam-exec-requested` token)
   * is missing, malformed, not by the requesting actor, not verifiable against the directory,
   * stale, or signs something else (verdict `sam-actor-unauthenticated`).
   */
  | 'AGENT_UNAUTHENTICATED'
  /** The agent's proof token was used before: its action id is in the audit log. */
  | 'PROOF_REPLAYED';

const SAM_ERROR = Symbol.for('@tibet/sam/error');

export class SamError extends TibetError<SamErrorCode> {
  readonly [SAM_ERROR] = true;
  override readonly name = 'SamError';
  /** The family's denial code this failure maps to, when it has one. */
  readonly verdict?: SamVerdict;

  constructor(
    code: SamErrorCode,
    message: string,
    options?: { cause?: unknown; verdict?: SamVerdict },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.verdict !== undefined) this.verdict = options.verdict;
  }

  static is(e: unknown): e is SamError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[SAM_ERROR] === true
    );
  }
}
