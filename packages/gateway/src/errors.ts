import { TibetError } from '@tibet/core';
import type { SamVerdict } from '@tibet/sam';

/**
 * Codes raised by @tibet/gateway. A policy denial is NOT an error: `Gateway.exec` resolves
 * with a sealed `denied` receipt. These codes are for what is not a verdict on the capsule.
 */
export type GatewayErrorCode =
  /** An audit append failed before anything executed: nothing was done. */
  | 'AUDIT_FAILED'
  /**
   * The act was performed (its `sam-received` and `secret-proxied` events are durable) but
   * the receipt's event could not be appended; the sealed receipt is attached to the error.
   */
  | 'AUDIT_INCOMPLETE'
  /** The replay store could not record (or read) a consumption: nothing executed. */
  | 'REPLAY_STORE_FAILED'
  /** A receipt bundle does not verify or is malformed. */
  | 'RECEIPT_INVALID'
  /** A request body, ExecRequest, or wire message is malformed. */
  | 'INVALID_REQUEST'
  /** The daemon has no issuer identity, so it cannot issue capsules. */
  | 'NOT_CONFIGURED'
  /** Capsule issuance was refused (the sam code is in `detailCode`). */
  | 'ISSUE_REFUSED'
  | 'NOT_FOUND'
  | 'BACKPRESSURE'
  | 'DAEMON_UNAVAILABLE'
  | 'DAEMON_PROTOCOL'
  | 'GATEWAY_CLOSED'
  /** The adapter did not settle within the session timeout (internal: becomes a denial). */
  | 'SESSION_TIMEOUT';

const GATEWAY_ERROR = Symbol.for('@tibet/gateway/error');

export class GatewayError extends TibetError<GatewayErrorCode> {
  readonly [GATEWAY_ERROR] = true;
  override readonly name = 'GatewayError';
  /** For ISSUE_REFUSED: the refusing package's code (e.g. a SamError code). */
  readonly detailCode: string | undefined;
  /** For ISSUE_REFUSED: the sam verdict, when the refusal carried one. */
  readonly verdict: SamVerdict | undefined;
  /** For AUDIT_INCOMPLETE (and AUDIT_FAILED after a denial was sealed): the receipt. */
  readonly receiptBytes: Uint8Array | undefined;

  constructor(
    code: GatewayErrorCode,
    message: string,
    o: {
      cause?: unknown;
      detailCode?: string;
      verdict?: SamVerdict;
      receiptBytes?: Uint8Array;
    } = {},
  ) {
    super(code, message, o.cause === undefined ? undefined : { cause: o.cause });
    this.detailCode = o.detailCode;
    this.verdict = o.verdict;
    this.receiptBytes = o.receiptBytes;
  }

  static is(e: unknown): e is GatewayError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[GATEWAY_ERROR] === true
    );
  }
}
