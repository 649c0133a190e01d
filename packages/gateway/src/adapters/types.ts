/**
 * The contract between the gateway core and its execution adapters.
 *
 * The core has already verified the capsule (signatures, expiry, actor, target action,
 * constraints, policy lane, keychain binding) and consumed its one-shot id before it calls
 * `execute()`. An adapter re-checks only what it itself interprets (the URL, method and path
 * against the capsule's constraints; the fixed argv; the payload's shape), performs the act
 * with the secret, and returns a result that has already been scrubbed of the secret.
 */
import { TibetError, type JsonValue } from '@tibet/core';
import type { SecretType } from '@tibet/keychain';
import type { Capsule, ExecRequest, SamVerdict } from '@tibet/sam';

export interface AdapterInput {
  capsule: Capsule;
  request: ExecRequest;
  /**
   * The secret material. The adapter never keeps a reference after `execute()` settles; the
   * gateway wipes it (`fill(0)`) afterwards.
   */
  secret: Uint8Array;
  secretType: SecretType;
  /** Aborted by the gateway on session timeout; the adapter stops and throws. */
  signal: AbortSignal;
}

export interface AdapterResult {
  /** What was done, e.g. `PUT http://127.0.0.1:4873/pkg` (scrubbed of the secret). */
  executed_action: string;
  /** One line for the receipt's `result_summary`; never contains the secret. */
  summary: string;
  /** Returned to the agent; already scrubbed of the secret in every form the masker knows. */
  response: JsonValue;
}

export type AdapterName = 'http-egress' | 'process' | 'signer';

export interface Adapter {
  readonly name: AdapterName;
  /** Whether this adapter performs the capsule's `target_action`. */
  accepts(capsule: Capsule): boolean;
  /** Throws {@link GatewayAdapterError} on refusal or failure. */
  execute(i: AdapterInput): Promise<AdapterResult>;
}

/**
 * `REFUSED`: the adapter would not act (constraint violated, payload malformed, secret type
 * unsuitable); nothing was sent or spawned, unless the refusal came mid-way (a cross-host
 * redirect), in which case the credential was never sent to the new host.
 * `FAILED`: the act was attempted and failed (connection error, spawn error, upstream too large).
 * `ABORTED`: the session signal fired or the adapter's own time limit passed; the request was
 * cancelled or the process group killed.
 */
export type GatewayAdapterErrorCode = 'ADAPTER_REFUSED' | 'ADAPTER_FAILED' | 'ADAPTER_ABORTED';

const ADAPTER_ERROR = Symbol.for('@tibet/gateway/adapter-error');

/**
 * Thrown by `Adapter.execute()`. `verdict` is the receipt's `policy_verdict`. The message has
 * been scrubbed of the secret; no low-level `cause` is attached (a socket or spawn error can
 * carry request headers or environment).
 */
export class GatewayAdapterError extends TibetError<GatewayAdapterErrorCode> {
  readonly [ADAPTER_ERROR] = true;
  override readonly name = 'GatewayAdapterError';
  readonly verdict: SamVerdict;

  constructor(
    verdict: SamVerdict,
    message: string,
    options?: { code?: GatewayAdapterErrorCode; cause?: unknown },
  ) {
    super(options?.code ?? 'ADAPTER_REFUSED', message, { cause: options?.cause });
    this.verdict = verdict;
  }

  static is(e: unknown): e is GatewayAdapterError {
    return (
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[ADAPTER_ERROR] === true
    );
  }
}
