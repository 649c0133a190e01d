/**
 * Issuing (authorising) a capsule: the keychain's policy, the issuer's custody role, the
 * lifetime cap, a signed `sam-issued` token durably in the audit log, then the sealed
 * bundle (docs/sam.md §4).
 */
import { ContinuityError } from '@tibet/continuityd';
import {
  canonicalBytes,
  canonicalize,
  getProvider,
  isActorId,
  mintToken,
  newActionId,
  parsePublicIdentity,
  rfc3339,
  type Clock,
  type Identity,
  type JsonValue,
  type PolicyDecision,
  type CryptoProvider,
  type IdentityRegistry,
  type PublicIdentity,
  type Random,
  type TibetToken,
  sha256Hex,
} from '@tibet/core';
import { KeychainError, type Keychain, type SecretState } from '@tibet/keychain';
import { sealCapsule } from './bundle.js';
import {
  DEFAULT_TTL_SECONDS,
  capsuleBody,
  capsuleRequestFromJson,
  newEphemeralId,
  newSamId,
  parseCapsule,
  type Capsule,
  type CapsuleRequest,
} from './capsule.js';
import { SamError, type SamErrorCode } from './errors.js';
import { requestErin, verifyRequestProof } from './proof.js';

/** The event of a capsule's own token. */
export const SAM_ISSUED_EVENT = 'sam-issued';
/** The event of a refused issuance (signed by the issuer). */
export const SAM_ISSUE_DENIED_EVENT = 'sam-issue-denied';

const LEAKED = ['chat-disclosed', 'git-leaked', 'log-leaked'];

export interface IssueOptions {
  keychain: Keychain;
  /** The authorising actor: the secret's owner or custodian. Signs the token and the bundle. */
  issuer: Identity;
  request: CapsuleRequest;
  /** Encrypt the capsule to this gateway (sets `gateway_id`). */
  gateway?: PublicIdentity;
  /** Default the keychain's clock. */
  clock?: Clock;
  /** Default the keychain's randomness (the system CSPRNG unless a test seeded it). */
  random?: Random;
  /**
   * The requesting agent's proof of possession: its `sam-requested` token over `request`
   * (see `mintRequestProof`). When given it is verified (directory, actor, freshness, not
   * logged before), appended to the audit log, and becomes the parent of `sam-issued`.
   */
  requestProof?: unknown;
  /** Refuse a request without `requestProof` (default false: the issuer acts on its own). */
  requireRequestProof?: boolean;
  /** Pins the agent's key for `requestProof`; default the keychain's directory. */
  directory?: IdentityRegistry;
}

export interface Issued {
  /** The sealed `tza/1` bundle. */
  bytes: Uint8Array;
  capsule: Capsule;
  /** The `sam-issued` token, durable in the audit log. */
  token: TibetToken;
  /** The agent's `sam-requested` token (its parent), when a proof was given. */
  requestToken?: TibetToken;
}

/**
 * The `erin` of a capsule's `sam-issued` token: the capsule without `action_id` and
 * `generation` (the token's own), and with `upstream_payload` replaced by
 * `upstream_payload_sha256` (hex SHA-256 of its RFC 8785 form, null without a payload) —
 * the log names the payload, it does not copy it.
 */
export function issuanceErin(
  c: Omit<Capsule, 'action_id' | 'generation'> | Capsule,
  provider: CryptoProvider = getProvider(),
): JsonValue {
  const { upstream_payload: payload, ...rest } = capsuleBody(c as Capsule);
  return {
    ...(rest as unknown as Record<string, JsonValue>),
    upstream_payload_sha256: payload === null ? null : sha256Hex(canonicalBytes(payload), provider),
  };
}

/**
 * The state the capsule is issued against and the action that made it current. The HEAD is
 * read before and after the state so that both belong to the same revision.
 */
async function currentState(
  kc: Keychain,
  secretId: string,
): Promise<{ state: SecretState; actionId: string }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const state = await kc.state(secretId); // finishes a half-done operation first
    const head = await kc.store.head(secretId);
    if (!head) break;
    const again = await kc.state(secretId);
    const head2 = await kc.store.head(secretId);
    if (head2?.action_id === head.action_id && again.version === state.version)
      return { state: again, actionId: head.action_id };
  }
  throw new SamError('SECRET_NOT_FOUND', `${secretId} keeps changing or has no current revision`);
}

function keychainFailure(e: unknown, secretId: string): never {
  if (KeychainError.is(e) && e.code === 'SECRET_NOT_FOUND')
    throw new SamError('SECRET_NOT_FOUND', `no secret ${secretId}`, {
      cause: e,
      verdict: 'sam-secret-unavailable',
    });
  throw e;
}

/**
 * Issue (authorise) a capsule. In order: the request is validated (`INVALID_REQUEST`); the
 * secret is read (`SECRET_NOT_FOUND`); the issuer must be its owner or custodian
 * (`NOT_AUTHORIZED`); it must not be exposed or awaiting rotation (`SECRET_UNAVAILABLE`);
 * `keychain.mayUse(secret, actor, target, lane)` must allow (`POLICY_DENIED`, with the
 * keychain's reason); the lifetime must not exceed the secret's `max_capsule_ttl_s`
 * (`TTL_TOO_LONG`; default min(300 s, the cap)). The capsule is bound to the current secret
 * version and sealed (signed by the issuer, encrypted to `gateway` when given); its
 * `sam-issued` token (parent: the action that made the secret's state current; its own
 * continuity line `sam_id`) is appended durably to `keychain.audit` before anything is
 * returned — when the append fails (`AUDIT_FAILED`) there is no capsule.
 */
export async function issueCapsule(o: IssueOptions): Promise<Issued> {
  if (typeof o !== 'object' || o === null) throw new TypeError('"o" expected an object');
  const kc = o.keychain;
  const issuer = o.issuer;
  if (typeof kc !== 'object' || kc === null || typeof kc.mayUse !== 'function')
    throw new TypeError('"keychain" expected a Keychain');
  if (
    typeof issuer !== 'object' ||
    issuer === null ||
    typeof issuer.sign !== 'function' ||
    !isActorId(issuer.id)
  )
    throw new TypeError('"issuer" expected an Identity');
  const req = capsuleRequestFromJson(o.request);
  const gateway = o.gateway ? parsePublicIdentity(o.gateway, kc.provider) : undefined;
  const clock = o.clock ?? kc.clock;
  const random = o.random ?? kc.random;
  const directory = o.directory ?? kc.directory;

  // the agent's proof: verified first; every refusal from here on is on the record
  let proof: TibetToken | undefined;
  let proofLogged = false;
  const refuse = async (e: SamError): Promise<never> => {
    await logDenial(kc, issuer, req, e, proofLogged ? proof : undefined, clock, random);
    throw e;
  };
  if (o.requestProof !== undefined || o.requireRequestProof === true) {
    try {
      proof = verifyRequestProof(o.requestProof, req, {
        directory,
        now: clock.now(),
        provider: kc.provider,
      });
    } catch (e) {
      if (!SamError.is(e)) throw e;
      return refuse(e);
    }
    let seen;
    try {
      seen = await kc.audit.action(proof.action_id);
    } catch (cause) {
      throw new SamError('AUDIT_FAILED', `cannot read the audit log: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (seen) return refuse(replayed(proof));
  }
  /** The proof goes on the record before the issuer's answer to it (its own line). */
  const logProof = async (): Promise<void> => {
    if (!proof || proofLogged) return;
    try {
      await kc.audit.append(proof, {
        objectId: req.secret_id,
        continuityId: proof.action_id,
      });
      proofLogged = true;
    } catch (cause) {
      if (ContinuityError.is(cause) && cause.code === 'DUPLICATE_ACTION')
        return refuse(replayed(proof));
      throw new SamError(
        'AUDIT_FAILED',
        `the audit log refused or failed the agent's sam-requested event: ${(cause as Error).message}`,
        { cause },
      );
    }
  };
  const deny = async (e: SamError): Promise<never> => {
    await logProof();
    return refuse(e);
  };

  let current: { state: SecretState; actionId: string };
  try {
    current = await currentState(kc, req.secret_id);
  } catch (e) {
    try {
      keychainFailure(e, req.secret_id);
    } catch (f) {
      if (SamError.is(f) && f.code === 'SECRET_NOT_FOUND') return deny(f);
      throw f;
    }
  }
  const { state } = current;
  const decisions: PolicyDecision[] = [];

  const role =
    state.owner_id === issuer.id ? 'owner' : state.custodian_id === issuer.id ? 'custodian' : null;
  if (!role)
    return deny(
      new SamError(
        'NOT_AUTHORIZED',
        `${issuer.id} is neither the owner nor the custodian of ${req.secret_id}`,
        { verdict: 'sam-keychain-denied' },
      ),
    );
  decisions.push({ rule: 'sam.issuer', decision: 'allow', detail: `${issuer.id} is the ${role}` });
  if (proof)
    decisions.push({
      rule: 'sam.agent-proof',
      decision: 'allow',
      detail: `${proof.actor} signed the request (${proof.action_id}, key ${proof.kid})`,
    });

  if (LEAKED.includes(state.exposure_state) || state.rotation_required)
    return deny(
      new SamError(
        'SECRET_UNAVAILABLE',
        `${req.secret_id} is ${state.exposure_state}${state.rotation_required ? ' and must be rotated first' : ''}`,
        { verdict: 'sam-secret-unavailable' },
      ),
    );

  const lane = req.policy_lane ?? null;
  let may: Awaited<ReturnType<Keychain['mayUse']>>;
  try {
    may = await kc.mayUse(req.secret_id, req.actor_id, req.target_action, lane ?? undefined);
  } catch (e) {
    keychainFailure(e, req.secret_id);
  }
  if (!may.allowed)
    return deny(
      new SamError('POLICY_DENIED', `the keychain refuses: ${may.reason}`, {
        verdict: 'sam-keychain-denied',
      }),
    );
  decisions.push(...may.decisions);

  const cap = state.policy.max_capsule_ttl_s;
  const ttl = req.ttl_seconds ?? Math.min(DEFAULT_TTL_SECONDS, cap);
  if (ttl > cap)
    return deny(
      new SamError(
        'TTL_TOO_LONG',
        `a ${ttl} s capsule exceeds the ${cap} s max_capsule_ttl_s of ${req.secret_id}`,
      ),
    );
  decisions.push({ rule: 'sam.ttl', decision: 'allow', detail: `${ttl} s ≤ ${cap} s` });

  // the parent: the agent's request when it proved it, else the action that made the
  // secret's state current (which is named in eraan either way)
  let stateParent: { action_id: string; generation: number };
  try {
    const entry = await kc.audit.action(current.actionId);
    if (!entry) throw new Error(`action ${current.actionId} is not in the log`);
    stateParent = { action_id: current.actionId, generation: entry.generation };
  } catch (cause) {
    throw new SamError(
      'AUDIT_FAILED',
      `cannot find the secret's current action in the audit log: ${(cause as Error).message}`,
      { cause },
    );
  }
  const parent = proof ? { action_id: proof.action_id, generation: proof.generation } : stateParent;

  const now = clock.now();
  const issuedAt = rfc3339(now);
  const body: Omit<Capsule, 'action_id' | 'generation'> = {
    sam_id: newSamId(random),
    intent: req.intent,
    secret_id: req.secret_id,
    secret_version: state.version,
    target_action: req.target_action,
    actor_id: req.actor_id,
    issuer_id: issuer.id,
    issued_at: issuedAt,
    valid_until: rfc3339(new Date(now.getTime() + ttl * 1000)),
    ephemeral_id: newEphemeralId(random),
    policy_lane: lane,
    receipt_required: req.receipt_required ?? true,
    supersedes_sam_id: req.supersedes_sam_id ?? null,
    upstream_url: req.upstream_url ?? null,
    upstream_method: req.upstream_method ?? null,
    upstream_payload: req.upstream_payload ?? null,
    constraints: (req.constraints ?? []).map((c) => ({ key: c.key, value: c.value })),
    notes: [...(req.notes ?? [])],
    gateway_id: gateway?.id ?? null,
  };
  const token = mintToken(
    {
      actor: issuer.id,
      actorClass: issuer.actorClass,
      event: SAM_ISSUED_EVENT,
      erachter: req.intent,
      erin: issuanceErin(body, kc.provider),
      eraan: [
        { object_id: req.secret_id, secret_version: state.version },
        { action_id: stateParent.action_id, rel: 'authorised-against' },
        ...(proof ? [{ action_id: proof.action_id, rel: 'requested-by', actor: proof.actor }] : []),
      ],
      eromheen: {
        authority: role,
        ttl_s: ttl,
        policy_lane: lane,
        gateway_id: body.gateway_id,
        agent_authenticated: proof !== undefined,
      },
      policy: decisions,
      prev: null,
      parent,
      actionId: newActionId(random),
    },
    issuer,
    { clock: { now: () => now }, random, provider: kc.provider },
  );
  const capsule = parseCapsule({
    ...body,
    action_id: token.action_id,
    generation: token.generation,
  });
  // sealed before the append: a capsule that cannot be sealed is never logged as issued
  const bytes = sealCapsule(capsule, issuer, {
    ...(o.gateway ? { gateway: o.gateway } : {}),
    clock: { now: () => now },
    random,
    provider: kc.provider,
  });
  try {
    await logProof();
  } catch (e) {
    bytes.fill(0);
    throw e;
  }
  try {
    await kc.audit.append(token, {
      objectId: capsule.sam_id,
      continuityId: capsule.sam_id,
      parentObjectId: capsule.secret_id,
    });
  } catch (cause) {
    bytes.fill(0);
    throw new SamError(
      'AUDIT_FAILED',
      `the audit log refused or failed the sam-issued event: ${(cause as Error).message}`,
      { cause },
    );
  }
  return { bytes, capsule, token, ...(proof ? { requestToken: proof } : {}) };
}

function replayed(proof: TibetToken): SamError {
  return new SamError(
    'PROOF_REPLAYED',
    `the agent's request ${proof.action_id} was presented before (it is in the audit log)`,
    { verdict: 'sam-replayed' },
  );
}

/**
 * Put a refusal on the record: a `sam-issue-denied` token signed by the keychain's service
 * identity (as the keychain signs its own `secret-denied`), naming the issuer that was asked,
 * on its own line (object: the secret), parent = the agent's logged request when it proved
 * one. Best effort, like `secret-denied`: the refusal stands even if the log fails.
 */
async function logDenial(
  kc: Keychain,
  issuer: Identity,
  req: CapsuleRequest,
  e: SamError,
  proof: TibetToken | undefined,
  clock: Clock,
  random: Random,
): Promise<void> {
  const code: SamErrorCode = e.code;
  const signer = kc.service;
  try {
    const actionId = newActionId(random);
    const token = mintToken(
      {
        actor: signer.id,
        actorClass: signer.actorClass,
        event: SAM_ISSUE_DENIED_EVENT,
        erachter: `refused a capsule for ${req.actor_id} on ${req.secret_id}: ${code}`,
        erin: {
          issuer_id: issuer.id,
          secret_id: req.secret_id,
          actor_id: req.actor_id,
          target_action: req.target_action,
          policy_lane: req.policy_lane ?? null,
          code,
          verdict: e.verdict ?? null,
          reason: e.message.slice(0, 1000),
          agent_authenticated: proof !== undefined,
          request_sha256: sha256Hex(canonicalBytes(requestErin(req, kc.provider)), kc.provider),
        },
        eraan: [{ object_id: req.secret_id }],
        eromheen: {},
        policy: [
          { rule: 'sam.issue', decision: 'deny', detail: `${code}: ${e.message.slice(0, 400)}` },
        ],
        prev: null,
        parent: proof ? { action_id: proof.action_id, generation: proof.generation } : null,
        actionId,
      },
      signer,
      { clock, random, provider: kc.provider },
    );
    await kc.audit.append(token, { objectId: req.secret_id, continuityId: actionId });
  } catch {
    // best effort: the refusal is thrown regardless
  }
}

/**
 * Check that an audit token is the issuance of this capsule: a `sam-issued` token by the
 * capsule's issuer whose action id and generation are the capsule's and whose `erin` is
 * {@link issuanceErin} of the capsule (its payload as a digest). Throws SamError `ISSUANCE_MISMATCH`. (The token's
 * signature is checked by the log, or by the caller with `verifyToken`.)
 */
export function checkIssuance(capsule: Capsule, token: TibetToken): void {
  const c = parseCapsule(capsule);
  const problems: string[] = [];
  if (token.event !== SAM_ISSUED_EVENT) problems.push(`event is ${token.event}`);
  if (token.actor !== c.issuer_id) problems.push(`actor ${token.actor} is not the issuer`);
  if (token.action_id !== c.action_id) problems.push('action id differs');
  if (token.generation !== c.generation) problems.push('generation differs');
  if (!sameJson(token.erin, issuanceErin(c))) problems.push('erin is not the capsule');
  if (problems.length)
    throw new SamError(
      'ISSUANCE_MISMATCH',
      `token ${token.action_id} does not issue ${c.sam_id}: ${problems.join('; ')}`,
      { verdict: 'sam-bundle-invalid' },
    );
}

function sameJson(a: unknown, b: unknown): boolean {
  try {
    return canonicalize(a) === canonicalize(b);
  } catch {
    return false;
  }
}
