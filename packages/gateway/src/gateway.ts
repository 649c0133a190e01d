/**
 * The gateway: the execution boundary. `exec` takes a capsule and what the agent asks for,
 * and in the family's order of checks (docs/gateway.md §2):
 *
 *   received   the capsule bundle verifies (a capsule whose signatures do not verify is
 *              never executed) → checkCapsule (expiry, actor, target, constraints, lane)
 *   binding    an adapter performs the target; the capsule's `sam-issued` event is in the
 *              audit log, signed by the capsule's issuer and naming this capsule; the issuer
 *              is the secret's owner or custodian
 *   audit      `sam-received` appended (durable) — on failure nothing else happens
 *   one-shot   the ephemeral id is consumed in the durable replay store
 *   keychain   `keychain.use` (writes `secret-proxied`, parent = the capsule's action)
 *   session    `gsess:<ephemeral_id>` opened → adapter executes (session timeout aborts it)
 *              → output masked → material zeroed and read back (destroy confirmed)
 *   receipt    sealed (.tza signed by the gateway) → its `sam-executed` / `sam-denied`
 *              event appended (prev: `sam-received`, parent: `secret-proxied`)
 *
 * Every denial resolves with a sealed `denied` receipt; only audit failures throw.
 */
import {
  getProvider,
  mintToken,
  newActionId,
  parseToken,
  rfc3339,
  systemClock,
  systemRandom,
  verifyToken,
  type Clock,
  type CryptoProvider,
  type Identity,
  type IdentityRegistry,
  type JsonValue,
  type PolicyDecision,
  type Random,
  type TibetToken,
  sha256Hex,
} from '@tibet/core';
import { ContinuityError, type AppendReceipt, type AuditClient } from '@tibet/continuityd';
import { KeychainError, type Keychain, type KeychainErrorCode } from '@tibet/keychain';
import {
  SamError,
  checkCapsule,
  checkIssuance,
  openCapsule,
  verifyExecProof,
  type Capsule,
  type CheckEvent,
  type ExecRequest,
  type SamVerdict,
} from '@tibet/sam';
import { createMasker, type Masker } from './adapters/mask.js';
import type { Adapter, AdapterResult } from './adapters/types.js';
import { GatewayError } from './errors.js';
import {
  ALLOWED,
  isSamVerdict,
  sealReceipt,
  type Receipt,
  type ReceiptVerdict,
} from './receipt.js';
import type { ReplayStore } from './replay.js';
import { GatewaySession } from './session.js';
import { execRequestProblems } from './wire.js';

/** Reads a logged token by its action id (to check a capsule's issuance). */
export type ActionReader = (actionId: string) => Promise<TibetToken | undefined>;

export interface GatewayOptions {
  keychain: Keychain;
  /** The gateway's own identity (class `gateway`): signs its events and receipts. */
  identity: Identity;
  /** Public identities: capsule issuers are pinned here. */
  directory: IdentityRegistry;
  replayStore: ReplayStore;
  adapters: readonly Adapter[];
  /** Where the gateway's events go; default the keychain's audit client (they must be one log). */
  audit?: AuditClient;
  /**
   * How to read a logged token by action id; default: derived from an EmbeddedClient or a
   * DaemonClient. Required for any other AuditClient.
   */
  readAction?: ActionReader;
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
  /** The adapter is aborted and the material wiped after this long (default 30 s). */
  sessionTimeoutMs?: number;
  /**
   * Require the agent's proof of possession (its signed `sam-exec-requested` token) with
   * every exec, and (in the daemon) its `sam-requested` token with every capsule request.
   * Default true. `false` is WEAKER: a capsule (or a claimed actor id) then works as a
   * bearer credential for whoever reaches the gateway; a proof that is given is still
   * verified.
   */
  requireAgentProof?: boolean;
}

export interface ExecResult {
  receipt: Receipt;
  /** The sealed receipt (.tza, signed by the gateway). */
  receiptBytes: Uint8Array;
  /** The adapter's response, masked; null when denied. */
  response: JsonValue | null;
  /** Where the receipt's event (`sam-executed` / `sam-denied`) is in the audit log. */
  logged: AppendReceipt;
}

export const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

/** Keychain refusals of the binding itself; everything else means the secret is unavailable. */
const KEYCHAIN_DENIED: readonly KeychainErrorCode[] = [
  'NOT_AUTHORIZED',
  'POLICY_DENIED',
  'SECRET_EXPOSED',
  'ROTATION_REQUIRED',
  'VERSION_MISMATCH',
];

export function verdictOfKeychainError(code: KeychainErrorCode): SamVerdict {
  return KEYCHAIN_DENIED.includes(code) ? 'sam-keychain-denied' : 'sam-secret-unavailable';
}

const MAX_ERACHTER = 1000;
const clip = (s: string, n = MAX_ERACHTER): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** What one exec attempt has established so far. */
interface Attempt {
  request: ExecRequest;
  events: CheckEvent[];
  capsule?: Capsule;
  capsuleSha256?: string;
  /** The issuance's logged generation. */
  issuance?: { action_id: string; generation: number };
  /** The agent's verified `sam-exec-requested` token (the parent of `sam-received`). */
  proof?: TibetToken;
  received?: TibetToken;
  proxied?: TibetToken;
  sessionId?: string;
  adapter?: Adapter;
}

interface Outcome {
  verdict: ReceiptVerdict;
  detail: string;
  executedAction: string | null;
  summary: string;
  response: JsonValue | null;
  destroyConfirmed: boolean;
}

function deriveReader(audit: AuditClient): ActionReader | undefined {
  const a = audit as unknown as {
    log?: { readRecord?: (n: number) => Promise<{ token: unknown }> };
    call?: <T>(m: 'GET', p: string) => Promise<T>;
  };
  const embedded = a.log;
  if (embedded && typeof embedded.readRecord === 'function') {
    return async (id) => {
      const e = await audit.action(id);
      if (!e) return undefined;
      return parseToken((await embedded.readRecord!(e.index)).token);
    };
  }
  if (typeof a.call === 'function') {
    const call = a.call.bind(audit);
    return async (id) => {
      const e = await audit.action(id);
      if (!e) return undefined;
      const rec = await call<{ token: unknown }>('GET', `/v1/record/${e.index}`);
      return parseToken(rec.token);
    };
  }
  return undefined;
}

function isCausalParentError(e: unknown): boolean {
  return (
    ContinuityError.is(e) &&
    (e.code === 'CAUSAL_PARENT_UNKNOWN' || e.code === 'CAUSAL_GENERATION_INVALID')
  );
}

export class Gateway {
  readonly keychain: Keychain;
  readonly identity: Identity;
  readonly directory: IdentityRegistry;
  readonly replayStore: ReplayStore;
  readonly adapters: readonly Adapter[];
  readonly audit: AuditClient;
  readonly clock: Clock;
  readonly random: Random;
  readonly provider: CryptoProvider;
  readonly sessionTimeoutMs: number;
  readonly requireAgentProof: boolean;
  readonly #readAction: ActionReader;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  constructor(o: GatewayOptions) {
    if (!o || typeof o !== 'object') throw new TypeError('"options" must be an object');
    if (!o.keychain) throw new TypeError('"keychain" is required');
    if (!o.identity || typeof o.identity.sign !== 'function')
      throw new TypeError('"identity" must be an Identity');
    if (o.identity.actorClass !== 'gateway')
      throw new TypeError(
        `"identity" must be of class gateway, ${o.identity.id} is ${o.identity.actorClass}`,
      );
    if (!o.directory) throw new TypeError('"directory" is required');
    if (!o.replayStore || typeof o.replayStore.consume !== 'function')
      throw new TypeError('"replayStore" must be a ReplayStore');
    if (!Array.isArray(o.adapters)) throw new TypeError('"adapters" must be an array');
    const timeout = o.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    if (!(Number.isSafeInteger(timeout) && timeout > 0))
      throw new RangeError('"sessionTimeoutMs" must be a positive integer');
    this.keychain = o.keychain;
    this.identity = o.identity;
    this.directory = o.directory;
    this.replayStore = o.replayStore;
    this.adapters = [...(o.adapters as readonly Adapter[])];
    this.audit = o.audit ?? o.keychain.audit;
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? systemRandom;
    this.provider = o.provider ?? getProvider();
    this.sessionTimeoutMs = timeout;
    if (o.requireAgentProof !== undefined && typeof o.requireAgentProof !== 'boolean')
      throw new TypeError('"requireAgentProof" must be a boolean');
    this.requireAgentProof = o.requireAgentProof ?? true;
    const reader = o.readAction ?? deriveReader(this.audit);
    if (!reader)
      throw new TypeError('"readAction" is required for an audit client that cannot read records');
    this.#readAction = reader;
    this.directory.add(o.identity);
  }

  /** Stop taking new execs and wait for those in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Verify, consume and execute one capsule for `request`, authenticated by `proof`: the
   * agent's `sam-exec-requested` token (sam `mintExecProof`). Without a valid proof the exec
   * is denied (`sam-actor-unauthenticated`) unless `requireAgentProof` is false. Resolves
   * with the sealed receipt (executed or denied). Throws GatewayError `AUDIT_FAILED` when an audit append
   * failed before anything executed, `AUDIT_INCOMPLETE` (with the receipt attached) when the
   * receipt's own event could not be appended, `GATEWAY_CLOSED` after `close()`; TypeError
   * for arguments of the wrong shape.
   */
  exec(capsuleBytes: Uint8Array, request: ExecRequest, proof?: unknown): Promise<ExecResult> {
    if (!(capsuleBytes instanceof Uint8Array))
      throw new TypeError('"capsuleBytes" must be a Uint8Array');
    const problems = execRequestProblems(request);
    if (problems.length) throw new TypeError(`invalid ExecRequest: ${problems.join('; ')}`);
    if (this.#closed)
      return Promise.reject(new GatewayError('GATEWAY_CLOSED', 'the gateway is closed'));
    const p = this.#exec(capsuleBytes, request, proof);
    this.#inFlight.add(p);
    void p.then(
      () => this.#inFlight.delete(p),
      () => this.#inFlight.delete(p),
    );
    return p;
  }

  // ------------------------------------------------------------------ the steps

  async #exec(bytes: Uint8Array, request: ExecRequest, proof: unknown): Promise<ExecResult> {
    const a: Attempt = { request, events: [] };

    // received: the bundle verifies, or nothing about it is trusted
    if (bytes.length === 0) {
      const detail = 'no capsule was presented';
      a.events.push({
        action: 'sam-received',
        status: 'fail',
        detail: `sam-bundle-invalid: ${detail}`,
      });
      return this.#deny(a, 'sam-bundle-invalid', detail);
    }
    let capsule: Capsule;
    try {
      capsule = (
        await openCapsule(bytes, {
          directory: this.directory,
          gateway: this.identity,
          provider: this.provider,
        })
      ).capsule;
    } catch (e) {
      if (!SamError.is(e)) throw e;
      const verdict = e.verdict ?? 'sam-bundle-invalid';
      a.events.push({ action: 'sam-received', status: 'fail', detail: `${verdict}: ${e.message}` });
      return this.#deny(a, verdict, e.message);
    }
    a.capsule = capsule;
    a.capsuleSha256 = sha256Hex(bytes, this.provider);

    // authenticated: the agent signed this request for this capsule with its own key —
    // before any check that could tell an unauthenticated caller about the capsule
    let authEvent: CheckEvent;
    if (proof !== undefined || this.requireAgentProof) {
      try {
        a.proof = verifyExecProof(proof, capsule, request, {
          directory: this.directory,
          now: this.clock.now(),
          provider: this.provider,
        });
      } catch (e) {
        if (!SamError.is(e)) throw e;
        const verdict = e.verdict ?? 'sam-actor-unauthenticated';
        a.events.push(
          {
            action: 'sam-received',
            status: 'pass',
            detail: `capsule ${capsule.sam_id} for ${request.action}`,
          },
          { action: 'sam-actor-match', status: 'fail', detail: `${verdict}: ${e.message}` },
        );
        return this.#deny(a, verdict, e.message);
      }
      let logged;
      try {
        logged = await this.audit.action(a.proof.action_id);
      } catch (cause) {
        throw new GatewayError(
          'AUDIT_FAILED',
          `cannot read the audit log; nothing was executed: ${(cause as Error).message}`,
          { cause },
        );
      }
      if (logged) {
        const detail = `the agent's request ${a.proof.action_id} was presented before`;
        a.events.push({
          action: 'sam-actor-match',
          status: 'fail',
          detail: `sam-replayed: ${detail}`,
        });
        return this.#deny(a, 'sam-replayed', detail);
      }
      authEvent = {
        action: 'sam-actor-match',
        status: 'pass',
        detail: `${a.proof.actor} proved the request: ${a.proof.action_id} signed with key ${a.proof.kid}`,
      };
    } else {
      authEvent = {
        action: 'sam-actor-match',
        status: 'pass',
        detail: 'not authenticated: no agent proof (requireAgentProof is false)',
      };
    }

    // the checks that need no keychain
    const check = checkCapsule(capsule, request, this.clock.now());
    const at = check.events.findIndex((e) => e.action === 'sam-actor-match');
    if (at >= 0 && check.events[at]!.status === 'pass') check.events.splice(at + 1, 0, authEvent);
    a.events.push(...check.events);
    if (!check.ok) {
      const last = check.events[check.events.length - 1]?.detail ?? '';
      const prefix = `${check.verdict}: `;
      return this.#deny(
        a,
        check.verdict,
        last.startsWith(prefix) ? last.slice(prefix.length) : last || check.verdict,
      );
    }
    if (capsule.gateway_id !== null && capsule.gateway_id !== this.identity.id)
      return this.#deny(
        a,
        'sam-bundle-invalid',
        `the capsule is for gateway ${capsule.gateway_id}, this is ${this.identity.id}`,
      );
    const adapter = this.adapters.find((x) => x.accepts(capsule));
    if (!adapter)
      return this.#deny(
        a,
        'sam-gateway-proxy-failed',
        `no adapter performs ${capsule.target_action}`,
      );
    a.adapter = adapter;

    // binding: the issuance is on the record, by an issuer with authority over the secret
    const bound = await this.#checkIssuance(a, capsule);
    if (bound) return bound;

    // audit before any state change: the agent's request, then `sam-received`, durable
    if (a.proof) {
      try {
        await this.audit.append(a.proof, {
          objectId: capsule.sam_id,
          continuityId: a.proof.action_id,
        });
      } catch (cause) {
        if (ContinuityError.is(cause) && cause.code === 'DUPLICATE_ACTION') {
          const detail = `the agent's request ${a.proof.action_id} was presented before`;
          a.events.push({
            action: 'sam-actor-match',
            status: 'fail',
            detail: `sam-replayed: ${detail}`,
          });
          delete a.proof;
          return this.#deny(a, 'sam-replayed', detail);
        }
        throw new GatewayError(
          'AUDIT_FAILED',
          `the agent's sam-exec-requested could not be logged; nothing was executed: ${(cause as Error).message}`,
          { cause },
        );
      }
    }
    const receivedId = newActionId(this.random);
    const received = this.#mint({
      event: 'sam-received',
      erachter: `execute capsule ${capsule.sam_id} for ${capsule.actor_id}: ${capsule.intent}`,
      erin: {
        sam_id: capsule.sam_id,
        ephemeral_id: capsule.ephemeral_id,
        secret_id: capsule.secret_id,
        secret_version: capsule.secret_version,
        target_action: capsule.target_action,
        requested_action: request.action,
        actor_id: request.actor_id,
        issuer_id: capsule.issuer_id,
        capsule_sha256: a.capsuleSha256,
        runtime_adapter: adapter.name,
        agent_proof_action_id: a.proof?.action_id ?? null,
        events: structuredClone(a.events) as unknown as JsonValue,
      },
      capsule,
      prev: null,
      parent: a.proof
        ? { action_id: a.proof.action_id, generation: a.proof.generation }
        : a.issuance!,
      actionId: receivedId,
    });
    try {
      await this.audit.append(received, { objectId: capsule.sam_id, continuityId: receivedId });
    } catch (cause) {
      throw new GatewayError(
        'AUDIT_FAILED',
        `sam-received could not be logged; nothing was executed: ${(cause as Error).message}`,
        { cause },
      );
    }
    a.received = received;

    // one-shot: consumed durably before anything executes
    let consumed;
    try {
      consumed = await this.replayStore.consume({
        ephemeral_id: capsule.ephemeral_id,
        sam_id: capsule.sam_id,
        gateway_id: this.identity.id,
        consumed_at: rfc3339(this.clock.now()),
        valid_until: capsule.valid_until,
        received_action_id: receivedId,
      });
    } catch (e) {
      return this.#deny(
        a,
        'sam-gateway-proxy-failed',
        `the replay store failed; nothing executed: ${(e as Error).message}`,
      );
    }
    if (!consumed.consumed) {
      const p = consumed.previous;
      return this.#deny(
        a,
        'sam-replayed',
        `ephemeral id ${capsule.ephemeral_id} was already consumed${p ? ` at ${p.consumed_at} by ${p.gateway_id}${p.received_action_id ? ` (${p.received_action_id})` : ''}` : ''}`,
      );
    }

    // keychain binding: `secret-proxied` (parent: the capsule's action), material out
    const sessionId = `gsess:${capsule.ephemeral_id}`;
    let used;
    try {
      used = await this.keychain.use({
        actor: this.identity,
        secretId: capsule.secret_id,
        reason: clip(`proxied use for ${capsule.actor_id} (${capsule.sam_id}): ${capsule.intent}`),
        parent: a.issuance!,
        expectVersion: capsule.secret_version,
        onBehalfOf: capsule.actor_id,
        targetAction: capsule.target_action,
        ...(capsule.policy_lane !== null ? { lane: capsule.policy_lane } : {}),
        sessionId,
      });
    } catch (e) {
      if (!KeychainError.is(e)) throw e;
      const verdict = verdictOfKeychainError(e.code);
      a.events.push({
        action: 'sam-keychain-check',
        status: 'fail',
        detail: `${verdict}: ${e.code}: ${e.message}`,
      });
      return this.#deny(a, verdict, `${e.code}: ${e.message}`);
    }
    a.proxied = used.token;
    const rules = used.token.policy.filter((d) => d.decision === 'allow').map((d) => d.rule);
    a.events.push({
      action: 'sam-keychain-check',
      status: 'pass',
      detail: `${capsule.secret_id} v${used.state.version} usable for ${capsule.actor_id} (${rules.join(', ')})`,
    });
    a.events.push({
      action: 'sam-secret-proxied',
      status: 'pass',
      detail: `secret-proxied ${used.token.action_id} (log #${used.receipt.index})`,
    });

    // the session: act, mask, wipe
    const session = new GatewaySession(sessionId, used.material);
    a.sessionId = sessionId;
    a.events.push({ action: 'sam-session-opened', status: 'pass', detail: sessionId });
    let masker: Masker | undefined;
    let outcome: Outcome | undefined;
    try {
      try {
        masker = createMasker(session.material);
      } catch {
        a.events.push({
          action: 'sam-executed',
          status: 'fail',
          detail: 'sam-gateway-proxy-failed: the secret cannot be masked safely; not executed',
        });
        outcome = {
          verdict: 'sam-gateway-proxy-failed',
          detail: 'the secret cannot be masked safely; not executed',
          executedAction: null,
          summary: 'not executed',
          response: null,
          destroyConfirmed: false,
        };
      }
      if (masker) outcome = await this.#run(a, adapter, session, masker, used.state.secret_type);
    } finally {
      masker?.destroy();
      const confirmed = session.destroy();
      a.events.push({
        action: 'sam-session-destroyed',
        status: confirmed ? 'pass' : 'fail',
        detail: confirmed
          ? `${sessionId}: material zeroed and read back as zeros`
          : `${sessionId}: the material could not be confirmed zeroed`,
      });
      outcome ??= {
        verdict: 'sam-gateway-proxy-failed',
        detail: 'the session failed',
        executedAction: null,
        summary: 'the session failed',
        response: null,
        destroyConfirmed: confirmed,
      };
      outcome.destroyConfirmed = confirmed;
    }
    if (outcome.verdict !== ALLOWED) return this.#deny(a, outcome.verdict, outcome.detail, outcome);
    a.events.push({
      action: 'sam-response-sealed',
      status: 'pass',
      detail: 'receipt sealed and signed by the gateway',
    });
    return this.#finish(a, outcome);
  }

  /** Run the adapter under the session timeout; mask everything it returns or throws. */
  async #run(
    a: Attempt,
    adapter: Adapter,
    session: GatewaySession,
    masker: Masker,
    secretType: Awaited<ReturnType<Keychain['use']>>['state']['secret_type'],
  ): Promise<Outcome> {
    const capsule = a.capsule!;
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new GatewayError(
          'SESSION_TIMEOUT',
          `session timed out after ${this.sessionTimeoutMs} ms`,
        );
        ac.abort(err);
        reject(err);
      }, this.sessionTimeoutMs);
    });
    let result: AdapterResult;
    try {
      const run = Promise.resolve().then(() =>
        adapter.execute({
          capsule,
          request: a.request,
          secret: session.material,
          secretType,
          signal: ac.signal,
        }),
      );
      run.catch(() => undefined); // settled after a timeout: nothing waits for it any more
      result = await Promise.race([run, timedOut]);
    } catch (e) {
      const verdict = (e as { verdict?: unknown }).verdict;
      const v: SamVerdict = isSamVerdict(verdict) ? verdict : 'sam-gateway-proxy-failed';
      const timedOutNow = ac.signal.aborted && GatewayError.is(e);
      const message = masker.maskText(
        timedOutNow ? (e as Error).message : e instanceof Error ? e.message : 'the adapter failed',
      );
      a.events.push({
        action: 'sam-executed',
        status: 'fail',
        detail: `${v}: ${adapter.name}: ${message}`,
      });
      return {
        verdict: v,
        detail: `${adapter.name}: ${message}`,
        executedAction: null,
        summary: `${adapter.name} failed: ${message}`,
        response: null,
        destroyConfirmed: false,
      };
    } finally {
      clearTimeout(timer);
    }
    const executedAction = masker.maskText(String(result.executed_action));
    const summary = masker.maskText(String(result.summary));
    const response = masker.maskJson(result.response ?? null);
    const masked =
      executedAction !== result.executed_action ||
      summary !== result.summary ||
      JSON.stringify(response) !== JSON.stringify(result.response ?? null);
    a.events.push({
      action: 'sam-executed',
      status: 'pass',
      detail: `${adapter.name}: ${executedAction}${masked ? ' (the gateway masked secret material in the output)' : ''}`,
    });
    return {
      verdict: ALLOWED,
      detail: summary,
      executedAction,
      summary,
      response,
      destroyConfirmed: false,
    };
  }

  /**
   * The capsule's issuance must be a logged `sam-issued` event signed by its issuer, naming
   * this capsule; the issuer must be the secret's owner or custodian now. Read-only.
   */
  async #checkIssuance(a: Attempt, c: Capsule): Promise<ExecResult | undefined> {
    let token: TibetToken | undefined;
    try {
      token = await this.#readAction(c.action_id);
    } catch (e) {
      if (ContinuityError.is(e) || (e as { code?: string }).code === 'INVALID_TOKEN') {
        token = undefined;
      } else throw e;
    }
    const fail = (verdict: SamVerdict, detail: string): Promise<ExecResult> => {
      a.events.push({
        action: 'sam-keychain-check',
        status: 'fail',
        detail: `${verdict}: ${detail}`,
      });
      return this.#deny(a, verdict, detail);
    };
    if (!token)
      return fail(
        'sam-bundle-invalid',
        `the capsule's issuance ${c.action_id} is not in the audit log`,
      );
    const key = this.directory.signingKey(token.actor, token.kid);
    let signed = false;
    try {
      if (key) signed = verifyToken(token, key, this.provider).action_id === c.action_id;
    } catch {
      signed = false;
    }
    let mismatch: string | undefined = signed ? undefined : 'its signature does not verify';
    if (!mismatch) {
      try {
        checkIssuance(c, token);
      } catch (e) {
        if (!SamError.is(e)) throw e;
        mismatch = e.message;
      }
    }
    if (mismatch)
      return fail(
        'sam-bundle-invalid',
        `the logged action ${c.action_id} is not the issuance of ${c.sam_id}: ${mismatch}`,
      );
    let state;
    try {
      state = await this.keychain.state(c.secret_id);
    } catch (e) {
      if (!KeychainError.is(e)) throw e;
      return fail(verdictOfKeychainError(e.code), `${e.code}: ${e.message}`);
    }
    const role =
      state.owner_id === c.issuer_id
        ? 'owner'
        : state.custodian_id === c.issuer_id
          ? 'custodian'
          : undefined;
    if (!role)
      return fail(
        'sam-signature-invalid',
        `${c.issuer_id} signed the capsule but is neither owner nor custodian of ${c.secret_id}`,
      );
    a.issuance = { action_id: c.action_id, generation: token.generation };
    a.events.push({
      action: 'sam-keychain-check',
      status: 'pass',
      detail: `issued by the ${role} ${c.issuer_id}; sam-issued ${c.action_id} is in the audit log`,
    });
    return undefined;
  }

  // ------------------------------------------------------------------ events and receipts

  #mint(i: {
    event: 'sam-received' | 'sam-executed' | 'sam-denied';
    erachter: string;
    erin: Record<string, JsonValue>;
    capsule: Capsule | undefined;
    prev: TibetToken | null;
    parent: { action_id: string; generation: number } | null;
    actionId: string;
    policy?: PolicyDecision[];
  }): TibetToken {
    const c = i.capsule;
    return mintToken(
      {
        actor: this.identity.id,
        actorClass: 'gateway',
        event: i.event,
        erachter: clip(i.erachter),
        erin: i.erin,
        eraan: c ? [{ object_id: c.sam_id }, { object_id: c.secret_id }] : [],
        eromheen: {
          gateway: this.identity.id,
          ...(c
            ? {
                policy_lane: c.policy_lane,
                capsule_action_id: c.action_id,
                session_id: `gsess:${c.ephemeral_id}`,
              }
            : {}),
        },
        policy: i.policy ?? [],
        prev: i.prev,
        parent: i.parent,
        actionId: i.actionId,
      },
      this.identity,
      { clock: this.clock, random: this.random, provider: this.provider },
    );
  }

  #deny(
    a: Attempt,
    verdict: SamVerdict,
    detail: string,
    o: Partial<Outcome> = {},
  ): Promise<ExecResult> {
    a.events.push({ action: 'sam-denied', status: 'fail', detail: `${verdict}: ${detail}` });
    return this.#finish(a, {
      verdict,
      detail,
      executedAction: null,
      summary: `denied (${verdict}): ${detail}`,
      response: null,
      destroyConfirmed: o.destroyConfirmed ?? false,
    });
  }

  /** Seal the receipt, then append its event; the append failing is AUDIT_INCOMPLETE. */
  async #finish(a: Attempt, o: Outcome): Promise<ExecResult> {
    const c = a.capsule;
    const status = o.verdict === ALLOWED ? 'executed' : 'denied';
    const actionId = newActionId(this.random);
    const receipt: Receipt = {
      sam_id: c?.sam_id ?? null,
      ephemeral_id: c?.ephemeral_id ?? null,
      requested_action: a.request.action,
      executed_action: status === 'executed' ? o.executedAction : null,
      status,
      gateway_actor: this.identity.id,
      executed_at: rfc3339(this.clock.now()),
      result_summary: clip(o.summary, 2000),
      policy_verdict: o.verdict,
      destroy_session_confirmed: o.destroyConfirmed,
      policy_lane: c?.policy_lane ?? null,
      receipt_required: c?.receipt_required ?? true,
      runtime_adapter: a.adapter?.name ?? null,
      events: a.events,
      actor_id: a.request.actor_id,
      secret_id: c?.secret_id ?? null,
      session_id: a.sessionId ?? null,
      capsule_action_id: c?.action_id ?? null,
      received_action_id: a.received?.action_id ?? null,
      proxied_action_id: a.proxied?.action_id ?? null,
      receipt_action_id: actionId,
    };
    const receiptBytes = sealReceipt(receipt, this.identity, {
      clock: this.clock,
      random: this.random,
      provider: this.provider,
    });
    const event = status === 'executed' ? 'sam-executed' : 'sam-denied';
    const erin: Record<string, JsonValue> = {
      sam_id: receipt.sam_id,
      ephemeral_id: receipt.ephemeral_id,
      secret_id: receipt.secret_id,
      actor_id: receipt.actor_id,
      status,
      policy_verdict: receipt.policy_verdict,
      requested_action: receipt.requested_action,
      executed_action: receipt.executed_action,
      runtime_adapter: receipt.runtime_adapter,
      result_summary: receipt.result_summary,
      destroy_session_confirmed: receipt.destroy_session_confirmed,
      session_id: receipt.session_id,
      proxied_action_id: receipt.proxied_action_id,
      receipt_sha256: sha256Hex(receiptBytes, this.provider),
      events: structuredClone(a.events) as unknown as JsonValue,
    };
    const policy: PolicyDecision[] = a.events.map((e) => ({
      rule: e.action,
      decision: e.status === 'pass' ? 'allow' : 'deny',
      detail: clip(e.detail, 500),
    }));
    const erachter =
      status === 'executed'
        ? `executed capsule ${c!.sam_id} for ${c!.actor_id}: ${c!.intent}`
        : `refused ${c ? `capsule ${c.sam_id}` : 'a capsule'} for ${a.request.actor_id}: ${o.verdict}`;
    // the receipt's event continues the attempt's line (prev: sam-received) and, once the
    // secret was used, points at the keychain's secret-proxied event; a denial before
    // sam-received starts its own line, under the capsule's issuance when that is logged
    const parent = a.proxied
      ? { action_id: a.proxied.action_id, generation: a.proxied.generation }
      : a.received
        ? null
        : (a.issuance ?? (c ? { action_id: c.action_id, generation: c.generation } : null));
    const line = a.received?.action_id ?? actionId;
    const mint = (p: typeof parent): TibetToken =>
      this.#mint({
        event,
        erachter,
        erin,
        capsule: c,
        prev: a.received ?? null,
        parent: p,
        actionId,
        policy,
      });
    let logged: AppendReceipt;
    try {
      try {
        logged = await this.audit.append(mint(parent), {
          objectId: c?.sam_id ?? null,
          continuityId: line,
        });
      } catch (e) {
        // a capsule whose issuance is not (yet) in this log: record the denial unlinked
        if (!(isCausalParentError(e) && parent && !a.received)) throw e;
        logged = await this.audit.append(mint(null), {
          objectId: c?.sam_id ?? null,
          continuityId: line,
        });
      }
    } catch (cause) {
      throw new GatewayError(
        a.received && a.proxied ? 'AUDIT_INCOMPLETE' : 'AUDIT_FAILED',
        `the receipt's ${event} event could not be logged: ${(cause as Error).message}`,
        {
          cause,
          receiptBytes,
          ...(status === 'denied' ? { verdict: o.verdict as SamVerdict } : {}),
        },
      );
    }
    return { receipt, receiptBytes, response: status === 'executed' ? o.response : null, logged };
  }
}
