/**
 * Proof of possession by the agent (docs/sam.md §6): the agent signs what it asks for with
 * its own Ed25519 identity key as a TIBET token, so that neither a capsule nor a claimed
 * actor id works as a bearer credential.
 *
 * - `sam-requested`: the agent asks an issuer for a capsule. `erin` = the capsule request
 *   (with `upstream_payload` replaced by its digest), `erachter` = the intent.
 * - `sam-exec-requested`: the agent asks a gateway to execute a capsule. `erin` = `{sam_id,
 *   ephemeral_id, request_sha256}` (SHA-256 of the RFC 8785 form of the ExecRequest),
 *   parent = the capsule's `sam-issued` action.
 *
 * Both are fresh (`timestamp` at most {@link AGENT_PROOF_MAX_AGE_MS} old, at most
 * {@link CLOCK_SKEW_MS} ahead), start their own continuity line (`prev` null) and are
 * appended to the audit log by the verifier as the parent of its own event, so that their
 * action id is used once: a logged proof is a replay.
 */
import {
  CoreError,
  canonicalBytes,
  getProvider,
  isActionId,
  mintToken,
  parseRfc3339,
  parseToken,
  toHex,
  verifyToken,
  type Clock,
  type CryptoProvider,
  type Identity,
  type IdentityRegistry,
  type JsonValue,
  type Random,
  type TibetToken,
  sha256Hex,
} from '@tibet/core';
import {
  capsuleRequestFromJson,
  type Capsule,
  type CapsuleRequest,
  type ExecRequest,
} from './capsule.js';
import { CLOCK_SKEW_MS } from './check.js';
import { SamError } from './errors.js';

/** The event of an agent's capsule request. */
export const SAM_REQUESTED_EVENT = 'sam-requested';
/** The event of an agent's exec request. */
export const SAM_EXEC_REQUESTED_EVENT = 'sam-exec-requested';
/** How old (by its `timestamp`, on the verifier's clock) a proof may be: 120 s. */
export const AGENT_PROOF_MAX_AGE_MS = 120_000;

/** The capsule fields an exec proof names (all readable, also in an encrypted capsule). */
export type ProofCapsuleRef = Pick<Capsule, 'sam_id' | 'ephemeral_id' | 'action_id' | 'generation'>;

export interface ProofOptions {
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
}

/** Hex SHA-256 of a value's RFC 8785 form. */
function canonicalSha256Hex(v: unknown, provider: CryptoProvider): string {
  return sha256Hex(canonicalBytes(v), provider);
}

/** The JSON of a value without its `undefined` members (what goes over the wire). */
function defined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

/** SHA-256 (hex) of the RFC 8785 form of an ExecRequest (absent members omitted). */
export function execRequestDigest(request: ExecRequest, provider = getProvider()): string {
  if (typeof request !== 'object' || request === null)
    throw new TypeError('"request" expected an ExecRequest object');
  try {
    return canonicalSha256Hex(defined(request), provider);
  } catch (cause) {
    throw new TypeError('"request" is not JSON', { cause });
  }
}

/**
 * The `erin` of a `sam-requested` token: the normalised capsule request, its
 * `upstream_payload` replaced by `upstream_payload_sha256` (the payload stays out of the log).
 */
export function requestErin(request: CapsuleRequest, provider = getProvider()): JsonValue {
  const r = capsuleRequestFromJson(request) as unknown as Record<string, JsonValue>;
  const { upstream_payload: payload, ...rest } = r;
  return payload === undefined
    ? rest
    : {
        ...rest,
        upstream_payload_sha256: payload === null ? null : canonicalSha256Hex(payload, provider),
      };
}

function checkAgent(agent: Identity, actorId: string): void {
  if (typeof agent !== 'object' || agent === null || typeof agent.sign !== 'function')
    throw new TypeError('"agent" expected an Identity');
  if (agent.id !== actorId)
    throw new RangeError(`"agent" is ${agent.id}, the request is for ${actorId}`);
}

/** The agent's `sam-requested` token for a capsule request (signed with its own key). */
export function mintRequestProof(
  request: CapsuleRequest,
  agent: Identity,
  o: ProofOptions = {},
): TibetToken {
  const provider = o.provider ?? agent.provider;
  const r = capsuleRequestFromJson(request);
  checkAgent(agent, r.actor_id);
  return mintToken(
    {
      actor: agent.id,
      actorClass: agent.actorClass,
      event: SAM_REQUESTED_EVENT,
      erachter: r.intent,
      erin: requestErin(r, provider),
      eraan: [{ object_id: r.secret_id }],
      eromheen: { target_action: r.target_action, policy_lane: r.policy_lane ?? null },
      prev: null,
      parent: null,
    },
    agent,
    { ...o, provider },
  );
}

/** The agent's `sam-exec-requested` token for presenting `capsule` with `request`. */
export function mintExecProof(
  capsule: ProofCapsuleRef,
  request: ExecRequest,
  agent: Identity,
  o: ProofOptions = {},
): TibetToken {
  const provider = o.provider ?? agent.provider;
  checkAgent(agent, request.actor_id);
  if (!isActionId(capsule.action_id) || !Number.isSafeInteger(capsule.generation))
    throw new TypeError('"capsule" expected sam_id, ephemeral_id, action_id and generation');
  return mintToken(
    {
      actor: agent.id,
      actorClass: agent.actorClass,
      event: SAM_EXEC_REQUESTED_EVENT,
      erachter: `execute ${request.action} under capsule ${capsule.sam_id}`,
      erin: {
        sam_id: capsule.sam_id,
        ephemeral_id: capsule.ephemeral_id,
        request_sha256: execRequestDigest(request, provider),
      },
      eraan: [{ object_id: capsule.sam_id }],
      eromheen: {},
      prev: null,
      parent: { action_id: capsule.action_id, generation: capsule.generation },
    },
    agent,
    { ...o, provider },
  );
}

export interface VerifyProofOptions {
  /** Pins the agent's key by its id (and the key id in the token). */
  directory: IdentityRegistry;
  /** The verifier's time. */
  now: Date;
  provider?: CryptoProvider;
}

function unauthenticated(message: string, cause?: unknown): SamError {
  return new SamError('AGENT_UNAUTHENTICATED', message, {
    verdict: 'sam-actor-unauthenticated',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Structure, event, actor, signature (key pinned by the directory), class, freshness. */
function verifyCommon(
  raw: unknown,
  event: string,
  actorId: string,
  o: VerifyProofOptions,
): TibetToken {
  if (raw === undefined || raw === null) throw unauthenticated('no proof of the agent was given');
  let t: TibetToken;
  try {
    t = parseToken(raw);
  } catch (cause) {
    throw unauthenticated(
      `the proof is not a token: ${CoreError.is(cause) ? cause.message : 'malformed'}`,
      cause,
    );
  }
  if (t.event !== event) throw unauthenticated(`the proof is a ${t.event} token, not ${event}`);
  if (t.actor !== actorId)
    throw unauthenticated(`the proof is signed as ${t.actor}, the request is by ${actorId}`);
  if (t.prev !== null) throw unauthenticated('the proof must start its own line (prev null)');
  const key = o.directory.signingKey(t.actor, t.kid);
  if (!key) throw unauthenticated(`no key ${t.kid} of ${t.actor} is in the directory`);
  try {
    verifyToken(t, key, o.provider ?? getProvider());
  } catch (cause) {
    throw unauthenticated(`the proof's signature does not verify (${t.actor})`, cause);
  }
  const registered = o.directory.get(t.actor).map((p) => p.actor_class);
  if (!registered.includes(t.actor_class))
    throw unauthenticated(`the proof claims class ${t.actor_class}; ${t.actor} is not`);
  const at = parseRfc3339(t.timestamp)!.getTime();
  const now = o.now.getTime();
  if (at > now + CLOCK_SKEW_MS)
    throw unauthenticated(
      `the proof is dated ${t.timestamp}, more than ${CLOCK_SKEW_MS / 1000} s ahead of ${o.now.toISOString()}`,
    );
  if (at < now - AGENT_PROOF_MAX_AGE_MS)
    throw unauthenticated(
      `the proof is stale: dated ${t.timestamp}, more than ${AGENT_PROOF_MAX_AGE_MS / 1000} s before ${o.now.toISOString()}`,
    );
  return t;
}

function sameJson(a: unknown, b: unknown): boolean {
  try {
    return toHex(canonicalBytes(a)) === toHex(canonicalBytes(b));
  } catch {
    return false;
  }
}

/**
 * Verify an agent's `sam-requested` token for `request`: a well-formed token of that event,
 * by `request.actor_id`, with `prev` and `parent` null, signed with a key the directory
 * holds for that id (and of its registered class), dated within [now − 120 s, now + 30 s],
 * whose `erin` is {@link requestErin} of the request and whose `erachter` is its intent.
 * Throws SamError `AGENT_UNAUTHENTICATED` (verdict `sam-actor-unauthenticated`). Whether its
 * action id was used before is the caller's check (the audit log).
 */
export function verifyRequestProof(
  raw: unknown,
  request: CapsuleRequest,
  o: VerifyProofOptions,
): TibetToken {
  const r = capsuleRequestFromJson(request);
  const t = verifyCommon(raw, SAM_REQUESTED_EVENT, r.actor_id, o);
  if (t.parent_action_id !== null) throw unauthenticated('a request proof has no parent');
  if (!sameJson(t.erin, requestErin(r, o.provider ?? getProvider())))
    throw unauthenticated('the proof does not sign this capsule request');
  if (t.erachter !== r.intent) throw unauthenticated("the proof's erachter is not the intent");
  return t;
}

/**
 * Verify an agent's `sam-exec-requested` token for presenting `capsule` with `request`: as
 * {@link verifyRequestProof} for the token itself, by `request.actor_id`; parent = the capsule's action (`action_id`, `generation`);
 * `erin` = `{sam_id, ephemeral_id, request_sha256}` of this capsule and this request.
 * Throws SamError `AGENT_UNAUTHENTICATED` (verdict `sam-actor-unauthenticated`; verdict
 * `sam-actor-mismatch` when a valid proof is by an actor other than the capsule's).
 */
export function verifyExecProof(
  raw: unknown,
  capsule: ProofCapsuleRef & Pick<Capsule, 'actor_id'>,
  request: ExecRequest,
  o: VerifyProofOptions,
): TibetToken {
  const t = verifyCommon(raw, SAM_EXEC_REQUESTED_EVENT, request.actor_id, o);
  if (t.parent_action_id !== capsule.action_id)
    throw unauthenticated("the proof's parent is not the capsule's action");
  if (t.generation !== capsule.generation + 1)
    throw unauthenticated("the proof's generation does not follow the capsule's");
  const erin = t.erin as Record<string, unknown> | null;
  const keys = erin && typeof erin === 'object' ? Object.keys(erin).sort().join() : '';
  if (keys !== 'ephemeral_id,request_sha256,sam_id')
    throw unauthenticated("the proof's erin must be {sam_id, ephemeral_id, request_sha256}");
  if (erin!['sam_id'] !== capsule.sam_id || erin!['ephemeral_id'] !== capsule.ephemeral_id)
    throw unauthenticated('the proof names another capsule');
  let digest: string;
  try {
    digest = execRequestDigest(request, o.provider ?? getProvider());
  } catch (cause) {
    throw unauthenticated('the request is not JSON', cause);
  }
  if (erin!['request_sha256'] !== digest)
    throw unauthenticated('the proof signs another request (request_sha256 differs)');
  // authenticated, but as someone the capsule is not for
  if (t.actor !== capsule.actor_id)
    throw new SamError(
      'AGENT_UNAUTHENTICATED',
      `${t.actor} proved the request, the capsule is for ${capsule.actor_id}`,
      { verdict: 'sam-actor-mismatch' },
    );
  return t;
}
