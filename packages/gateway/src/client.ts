/**
 * A client of the gateway daemon, over its Unix socket or loopback HTTP: what agents and the
 * CLI use. It holds no secret and no custodian key: only, as `agent`, the agent's own
 * identity, with which it signs each capsule request (`sam-requested`) and each exec
 * (`sam-exec-requested`) — the proof of possession the daemon requires. With a `directory`
 * it verifies every receipt's signature (by a registered gateway) and that the sealed
 * receipt is the one described.
 */
import {
  IdentityRegistry,
  canonicalize,
  toBase64,
  utf8,
  type Clock,
  type Identity,
  type JsonValue,
  type TibetToken,
} from '@tibet/core';
import {
  capsuleRequestFromJson,
  inspectCapsule,
  mintExecProof,
  mintRequestProof,
  openCapsuleSync,
  parseCapsule,
  type Capsule,
  type CapsuleRequest,
  type ExecRequest,
  type ProofCapsuleRef,
} from '@tibet/sam';
import { requestJson } from '@tibet/continuityd';
import { proxyRequest } from './daemon.js';
import { GatewayError, type GatewayErrorCode } from './errors.js';
import { isSamVerdict, openReceipt, type Receipt } from './receipt.js';
import { decodeBase64Field, execAnswerFromJson, execRequestProblems, WIRE_LIMITS } from './wire.js';

export type GatewayAddress =
  { socketPath: string } | { host: '127.0.0.1' | '::1' | 'localhost'; port: number };

export interface GatewayClientOptions {
  timeoutMs?: number;
  /** Verify receipts (and issued capsules) against these public identities. */
  directory?: IdentityRegistry;
  /**
   * The agent's own identity: every request and exec is signed with it (its id must be the
   * request's actor). Without it requests go unsigned, which a daemon with
   * `requireAgentProof` (the default) refuses.
   */
  agent?: Identity;
  /** The clock that dates the proofs (default the system clock). */
  clock?: Clock;
}

export interface ClientExecResult {
  receipt: Receipt;
  receiptBytes: Uint8Array;
  response: JsonValue | null;
  /** Index of the receipt's event in the gateway's audit log. */
  logIndex: number;
  /** True when the receipt's signature was checked against `directory`. */
  verified: boolean;
}

export interface Health {
  ok: boolean;
  gateway: string;
  adapters: string[];
  issuer: string | null;
  issues_here: boolean;
  /** Whether agents must sign their requests (`requireAgentProof`). */
  agent_proof_required: boolean;
  /**
   * Who runs `/exec` commands: `separate-user`, `same-user` (development only: the command can
   * read the gateway's keys), `refused`, `unknown` (a custom adapter); null without `/exec`.
   */
  exec_isolation?: 'separate-user' | 'same-user' | 'refused' | 'unknown' | null;
}

const CODES: readonly GatewayErrorCode[] = [
  'AUDIT_FAILED',
  'AUDIT_INCOMPLETE',
  'REPLAY_STORE_FAILED',
  'RECEIPT_INVALID',
  'INVALID_REQUEST',
  'NOT_CONFIGURED',
  'ISSUE_REFUSED',
  'NOT_FOUND',
  'BACKPRESSURE',
  'DAEMON_UNAVAILABLE',
  'DAEMON_PROTOCOL',
  'GATEWAY_CLOSED',
  'SESSION_TIMEOUT',
];

/** `http://127.0.0.1:PORT` (or `[::1]`, `localhost`) as an address; anything else is refused. */
export function parseGatewayUrl(u: string): GatewayAddress {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new TypeError(`not a URL: ${u}`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.protocol !== 'http:' || !['127.0.0.1', '::1', 'localhost'].includes(host))
    throw new TypeError('the gateway URL must be http:// on a loopback address');
  return { host: host as '127.0.0.1', port: Number(url.port || 80) };
}

export class GatewayClient {
  readonly address: GatewayAddress;

  constructor(
    address: GatewayAddress | string,
    readonly opts: GatewayClientOptions = {},
  ) {
    this.address = typeof address === 'string' ? parseGatewayUrl(address) : address;
  }

  /** One JSON call; non-2xx answers with an `error` become GatewayError with their code. */
  async call(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: unknown }> {
    const answer = await requestJson(this.address, method, path, body, {
      peer: 'the gateway',
      timeoutMs: this.opts.timeoutMs ?? 120_000,
      headers,
      unavailable: (message, cause) => new GatewayError('DAEMON_UNAVAILABLE', message, { cause }),
      protocol: (message, cause) => new GatewayError('DAEMON_PROTOCOL', message, { cause }),
      isOwn: (e) => GatewayError.is(e),
    });
    const { status, body: v } = answer;
    const err = (v as { error?: Record<string, unknown> } | null)?.error;
    if (status >= 400 && err && typeof err === 'object') {
      const code = CODES.includes(err['code'] as GatewayErrorCode)
        ? (err['code'] as GatewayErrorCode)
        : 'DAEMON_PROTOCOL';
      let receiptBytes: Uint8Array | undefined;
      try {
        receiptBytes =
          err['receipt_tza'] === undefined
            ? undefined
            : decodeBase64Field(err['receipt_tza'], 'receipt_tza', 16 * 1024 * 1024);
      } catch {
        receiptBytes = undefined;
      }
      throw new GatewayError(
        code,
        typeof err['message'] === 'string' ? err['message'] : `HTTP ${status}`,
        {
          ...(typeof err['detail_code'] === 'string' ? { detailCode: err['detail_code'] } : {}),
          ...(isSamVerdict(err['verdict']) ? { verdict: err['verdict'] } : {}),
          ...(receiptBytes ? { receiptBytes } : {}),
        },
      );
    }
    return answer;
  }

  async health(): Promise<Health> {
    const { body } = await this.call('GET', '/v1/health');
    const h = body as Health;
    if (typeof h !== 'object' || h === null || typeof h.gateway !== 'string')
      throw new GatewayError('DAEMON_PROTOCOL', 'health: unexpected answer');
    return h;
  }

  #result(body: unknown): ClientExecResult {
    const a = execAnswerFromJson(body);
    let verified = false;
    if (this.opts.directory) {
      const opened = openReceipt(a.receiptBytes, { directory: this.opts.directory });
      if (canonicalize(opened.receipt) !== canonicalize(a.receipt))
        throw new GatewayError('RECEIPT_INVALID', 'the sealed receipt is not the one described');
      verified = true;
    }
    return {
      receipt: a.receipt,
      receiptBytes: a.receiptBytes,
      response: a.response,
      logIndex: a.log_index,
      verified,
    };
  }

  /** The exec proof for `capsule` (its readable routing fields) and `req`, when an agent is set. */
  #execProof(capsule: Uint8Array, req: ExecRequest): TibetToken | undefined {
    const agent = this.opts.agent;
    if (!agent) return undefined;
    let ref: ProofCapsuleRef;
    try {
      ref = inspectCapsule(capsule, {
        directory: this.opts.directory ?? new IdentityRegistry(),
      }).readable;
    } catch {
      return undefined; // not a capsule bundle: the gateway denies it before any proof matters
    }
    return mintExecProof(ref, req, agent, this.opts.clock ? { clock: this.opts.clock } : {});
  }

  /**
   * Present a capsule with a request, signed by `agent` (or with the given `proof`);
   * resolves with the receipt whether executed or denied.
   */
  async exec(
    capsule: Uint8Array,
    req: ExecRequest,
    o: { proof?: unknown } = {},
  ): Promise<ClientExecResult> {
    if (!(capsule instanceof Uint8Array)) throw new TypeError('"capsule" must be a Uint8Array');
    if (capsule.length > WIRE_LIMITS.capsuleBytes)
      throw new RangeError(`"capsule" is larger than ${WIRE_LIMITS.capsuleBytes} bytes`);
    const problems = execRequestProblems(req);
    if (problems.length) throw new TypeError(`invalid ExecRequest: ${problems.join('; ')}`);
    const proof = 'proof' in o ? o.proof : this.#execProof(capsule, req);
    const { body } = await this.call('POST', '/v1/exec', {
      capsule: toBase64(capsule),
      request: req,
      ...(proof !== undefined ? { proof } : {}),
    });
    return this.#result(body);
  }

  /** The family's `POST /proxy`, the capsule in `X-Tibet-Capsule` (none: denied). */
  async proxy(
    body: {
      agent_id: string;
      intent: string;
      target_url: string;
      method: string;
      payload?: JsonValue;
      headers?: Record<string, string>;
      constraints?: Record<string, string>;
    },
    capsule?: Uint8Array,
  ): Promise<ClientExecResult> {
    const proof = capsule ? this.#execProof(capsule, proxyRequest(body).request) : undefined;
    const { body: answer } = await this.call('POST', '/proxy', body, {
      ...(capsule ? { 'x-tibet-capsule': toBase64(capsule) } : {}),
      ...(proof ? { 'x-tibet-proof': toBase64(utf8(JSON.stringify(proof))) } : {}),
    });
    return this.#result(answer);
  }

  /**
   * Ask the daemon's issuer for a capsule, signed by `agent` (or with the given `proof`).
   * With a `directory` that knows the issuer, the returned bundle is opened and verified and
   * must be the capsule described (`verified: true`); an unknown issuer is not verified.
   */
  async requestCapsule(
    r: CapsuleRequest,
    given: { proof?: unknown } = {},
  ): Promise<{ bytes: Uint8Array; capsule: Capsule; actionId: string; verified: boolean }> {
    const req = capsuleRequestFromJson(r);
    const agent = this.opts.agent;
    const proof =
      'proof' in given
        ? given.proof
        : agent
          ? mintRequestProof(req, agent, this.opts.clock ? { clock: this.opts.clock } : {})
          : undefined;
    const { body } = await this.call('POST', '/v1/capsules', {
      request: req,
      ...(proof !== undefined ? { proof } : {}),
    });
    const o = body as Record<string, unknown>;
    if (typeof o !== 'object' || o === null)
      throw new GatewayError('DAEMON_PROTOCOL', 'capsules: unexpected answer');
    let capsule: Capsule;
    let bytes: Uint8Array;
    try {
      capsule = parseCapsule(o['capsule']);
      bytes = decodeBase64Field(o['capsule_tza'], 'capsule_tza', WIRE_LIMITS.capsuleBytes);
    } catch (cause) {
      throw new GatewayError('DAEMON_PROTOCOL', 'capsules: malformed answer', { cause });
    }
    // verified when the directory knows the issuer (a known issuer with another key fails)
    const dir = this.opts.directory;
    let verified = false;
    if (dir && capsule.gateway_id === null && dir.get(capsule.issuer_id).length > 0) {
      let opened: Capsule;
      try {
        opened = openCapsuleSync(bytes, { directory: dir }).capsule;
      } catch (cause) {
        throw new GatewayError('DAEMON_PROTOCOL', 'the issued bundle does not verify', { cause });
      }
      if (canonicalize(opened) !== canonicalize(capsule))
        throw new GatewayError('DAEMON_PROTOCOL', 'the issued bundle is not the capsule described');
      verified = true;
    }
    return { bytes, capsule, actionId: capsule.action_id, verified };
  }
}
