/**
 * The TIBET token: one signed causal event. Signing input is the UTF-8 of the RFC 8785
 * canonical JSON of the token without its `signature` member (see docs/core-token.md).
 */
import { fromBase64Url, toBase64Url, toHex, utf8 } from './bytes.js';
import { rfc3339, rfc3339Millis, systemClock, type Clock } from './clock.js';
import { getProvider, sha256Hex } from './crypto/index.js';
import type { CryptoProvider, Ed25519PrivateKey } from './crypto/provider.js';
import { CoreError } from './errors.js';
import {
  ACTOR_CLASSES,
  isActorClass,
  isActorId,
  keyIdOf,
  type ActorClass,
  type Identity,
} from './identity.js';
import { canonicalBytes, isCanonicalizable, type JsonObject, type JsonValue } from './jcs.js';
import { systemRandom, type Random } from './random.js';

export const TOKEN_TYPE = 'tibet-token/1';

/** One policy decision that applied to an event (allow or deny, and the rule that decided). */
export interface PolicyDecision {
  rule: string;
  decision: 'allow' | 'deny';
  detail?: string;
}

export interface TokenBody {
  typ: typeof TOKEN_TYPE;
  /** `act_` + 16 lowercase hex. */
  action_id: string;
  parent_action_id: string | null;
  /** `sha256:<hex>` of the previous token on the same line, or null for the first. */
  prev: string | null;
  /** Causal-time generation: 1 + max(prev's, parent's). */
  generation: number;
  /** RFC 3339 UTC. Recorded, never used to reorder. */
  timestamp: string;
  actor: string;
  actor_class: ActorClass;
  /** Key id (hex, 16 chars) of the actor's Ed25519 key that signed. */
  kid: string;
  event: string;
  /** Content: what happened. */
  erin: JsonValue;
  /** References: what it is attached to. */
  eraan: JsonValue;
  /** Context around it. */
  eromheen: JsonValue;
  /** Intent: why. Required, non-empty, human-readable. */
  erachter: string;
  policy: PolicyDecision[];
}

export interface TibetToken extends TokenBody {
  /** Ed25519 signature, base64url (86 characters). */
  signature: string;
}

const ACTION_ID = /^act_[0-9a-f]{16}$/;
const HASH_REF = /^sha256:[0-9a-f]{64}$/;
const KID = /^[0-9a-f]{16}$/;
const EVENT = /^[a-z][a-z0-9._-]{0,63}$/;
const TOKEN_KEYS = [
  'typ',
  'action_id',
  'parent_action_id',
  'prev',
  'generation',
  'timestamp',
  'actor',
  'actor_class',
  'kid',
  'event',
  'erin',
  'eraan',
  'eromheen',
  'erachter',
  'policy',
  'signature',
] as const;
const TOKEN_KEY_SET: ReadonlySet<string> = new Set(TOKEN_KEYS);

export function newActionId(random: Random = systemRandom): string {
  return `act_${toHex(random(8))}`;
}

export function isActionId(v: unknown): v is string {
  return typeof v === 'string' && ACTION_ID.test(v);
}

/** The canonical unpadded base64url of 64 bytes: 86 characters, the last one carrying 2 bits. */
const SIGNATURE_TEXT = /^[A-Za-z0-9_-]{85}[AQgw]$/;

/**
 * Whether `v` is a token signature's text as `parseToken` accepts it: the canonical unpadded
 * base64url of 64 bytes, so exactly one text for each 64 bytes and one decoding for each text.
 */
export function isSignatureText(v: unknown): v is string {
  return typeof v === 'string' && SIGNATURE_TEXT.test(v);
}

/** The signing input: UTF-8 of the RFC 8785 form of the token without `signature`. */
export function tokenSigningInput(token: TokenBody | TibetToken): Uint8Array {
  const { signature: _sig, ...body } = token as TibetToken;
  return canonicalBytes(body);
}

/** `sha256:<hex>` over the RFC 8785 form of the whole signed token: what `prev` holds. */
export function tokenHash(token: TibetToken, provider: CryptoProvider = getProvider()): string {
  return `sha256:${sha256Hex(canonicalBytes(token), provider)}`;
}

/** The causal-time rule: 1 + the larger of the predecessor's and the parent's generation. */
export function nextGeneration(
  prev?: { generation: number } | null,
  parent?: { generation: number } | null,
): number {
  return 1 + Math.max(prev?.generation ?? 0, parent?.generation ?? 0);
}

export interface MintTokenInput {
  actor: string;
  actorClass: ActorClass;
  event: string;
  erachter: string;
  erin?: JsonValue;
  eraan?: JsonValue;
  eromheen?: JsonValue;
  policy?: PolicyDecision[];
  /**
   * The previous token on the same line, if any — the token itself, or its hash and
   * generation (as a log's index reports them).
   */
  prev?: TibetToken | { hash: string; generation: number } | null;
  /** The causal parent (on this or another line), if any. */
  parent?: { action_id: string; generation: number } | null;
  actionId?: string;
}

export interface MintOptions {
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
}

/** Mint and sign a token. Throws CoreError `INVALID_TOKEN` listing every bad field. */
export function mintToken(
  input: MintTokenInput,
  signer: Identity | Ed25519PrivateKey,
  opts: MintOptions = {},
): TibetToken {
  const provider = opts.provider ?? ('provider' in signer ? signer.provider : getProvider());
  const key: Ed25519PrivateKey = 'signer' in signer ? signer.signer : signer;
  const prev = input.prev ?? null;
  const body: TokenBody = {
    typ: TOKEN_TYPE,
    action_id: input.actionId ?? newActionId(opts.random),
    parent_action_id: input.parent?.action_id ?? null,
    prev: prev ? ('hash' in prev ? prev.hash : tokenHash(prev, provider)) : null,
    generation: nextGeneration(prev, input.parent),
    timestamp: rfc3339((opts.clock ?? systemClock).now()),
    actor: input.actor,
    actor_class: input.actorClass,
    kid: keyIdOf(key.publicKey, provider),
    event: input.event,
    erin: input.erin ?? null,
    eraan: input.eraan ?? [],
    eromheen: input.eromheen ?? {},
    erachter: input.erachter,
    policy: input.policy ?? [],
  };
  const errors = tokenFieldErrors(body, false);
  if (errors.length) throw new CoreError('INVALID_TOKEN', `invalid token: ${errors.join('; ')}`);
  return { ...body, signature: toBase64Url(key.sign(tokenSigningInput(body))) };
}

const NOT_BLANK = /\S/;
const POLICY_KEYS: ReadonlySet<string> = new Set(['rule', 'decision', 'detail']);

function tokenFieldErrors(
  o: Record<string, unknown> | TokenBody,
  withSig: boolean,
  fromCanonicalJson = false,
): string[] {
  const t = o as Record<string, unknown>;
  const e: string[] = [];
  for (const k in t) {
    if (!TOKEN_KEY_SET.has(k)) e.push(`unknown field "${k}"`);
  }
  if (t['typ'] !== TOKEN_TYPE) e.push(`typ must be "${TOKEN_TYPE}"`);
  if (!isActionId(t['action_id'])) e.push('action_id must be act_ + 16 hex');
  if (t['parent_action_id'] !== null && !isActionId(t['parent_action_id']))
    e.push('parent_action_id must be an action id or null');
  if (t['prev'] !== null && !(typeof t['prev'] === 'string' && HASH_REF.test(t['prev'])))
    e.push('prev must be sha256:<64 hex> or null');
  const g = t['generation'];
  if (!(typeof g === 'number' && Number.isSafeInteger(g) && g >= 1))
    e.push('generation must be an integer ≥ 1');
  if (t['prev'] === null && t['parent_action_id'] === null && g !== 1)
    e.push('a token without prev or parent must have generation 1');
  if (rfc3339Millis(t['timestamp']) === undefined) e.push('timestamp must be RFC 3339 UTC');
  if (!isActorId(t['actor'])) e.push('actor must be jis:<org>:<name>');
  if (!isActorClass(t['actor_class']))
    e.push(`actor_class must be one of ${ACTOR_CLASSES.join(', ')}`);
  if (!(typeof t['kid'] === 'string' && KID.test(t['kid']))) e.push('kid must be 16 hex');
  if (!(typeof t['event'] === 'string' && EVENT.test(t['event'])))
    e.push('event must match [a-z][a-z0-9._-]{0,63}');
  // \S: anything but what trim() removes (WhiteSpace and LineTerminator, the same set)
  if (!(typeof t['erachter'] === 'string' && NOT_BLANK.test(t['erachter'])))
    e.push('erachter (intent) is required and must be non-empty');
  else if (t['erachter'].length > 4096) e.push('erachter longer than 4096 characters');
  for (const k of ['erin', 'eraan', 'eromheen'] as const)
    if (t[k] === undefined) e.push(`${k} is required`);
  const pol = t['policy'];
  if (!Array.isArray(pol)) e.push('policy must be an array');
  else
    for (let i = 0; i < pol.length; i++) {
      const p: unknown = pol[i];
      const d = p as Record<string, unknown>;
      if (typeof p !== 'object' || p === null || Array.isArray(p)) {
        e.push(`policy[${i}] must be an object`);
        continue;
      }
      if (typeof d['rule'] !== 'string' || d['rule'] === '')
        e.push(`policy[${i}].rule must be a non-empty string`);
      if (d['decision'] !== 'allow' && d['decision'] !== 'deny')
        e.push(`policy[${i}].decision must be allow or deny`);
      if (d['detail'] !== undefined && typeof d['detail'] !== 'string')
        e.push(`policy[${i}].detail must be a string`);
      for (const k in d) if (!POLICY_KEYS.has(k)) e.push(`policy[${i}] unknown field "${k}"`);
    }
  if (withSig && !isSignatureText(t['signature']))
    e.push('signature must be the base64url of 64 bytes (86 characters)');
  if (!fromCanonicalJson && !isCanonicalizable(t)) e.push('token is not canonicalizable JSON');
  return e;
}

export interface ParseTokenOptions {
  /**
   * `v` came out of `parseCanonicalJson` (or `JSON.parse` of text proven RFC 8785), so it is
   * canonicalizable by construction and that walk over the whole token is skipped. Do not set
   * it for values built or changed in code.
   */
  fromCanonicalJson?: boolean;
}

/** Validate the structure of an untrusted token (no signature check). */
export function parseToken(v: unknown, opts: ParseTokenOptions = {}): TibetToken {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new CoreError('INVALID_TOKEN', 'token must be a JSON object');
  }
  const errors = tokenFieldErrors(v as Record<string, unknown>, true, opts.fromCanonicalJson);
  if (errors.length) throw new CoreError('INVALID_TOKEN', `invalid token: ${errors.join('; ')}`);
  return v as TibetToken;
}

/** Check a token's structure and its signature against `publicKey` (whose key id must match). */
export function verifyToken(
  token: unknown,
  publicKey: Uint8Array,
  provider: CryptoProvider = getProvider(),
): TibetToken {
  return verifyParsedToken(parseToken(token), publicKey, provider);
}

/**
 * The signing input of a signed token cut out of the token's own RFC 8785 text, instead of
 * serialising the token again: the text without its `signature` member. In RFC 8785 member
 * order `signature` is followed only by `timestamp` and `typ`, so the text must end with
 * `,"signature":"<sig>","timestamp":"<ts>","typ":"tibet-token/1"}` built from the token's own
 * values; removing one member from a canonical object's text leaves the canonical text of the
 * object without it. Undefined when the text does not end that way.
 *
 * Sound only when `text` is the RFC 8785 form of `token` — e.g. the token's slice of a log
 * line that `parseRecord` accepted, `token` being the record parsed from that same line.
 * Anything else would let the bytes verified differ from the token reported.
 *
 * `bytes`, when the caller holds them, must be the UTF-8 of `text`: the input is then cut
 * from them instead of encoding the text again (the same bytes).
 */
export function signingInputOfCanonical(
  text: string,
  token: TibetToken,
  bytes?: Uint8Array,
): Uint8Array | undefined {
  const after = `,"timestamp":${JSON.stringify(token.timestamp)},"typ":"${TOKEN_TYPE}"}`;
  const member = `,"signature":"${token.signature}"`;
  if (!text.endsWith(after) || text.length < member.length + after.length + 1) return undefined;
  const cut = text.length - after.length - member.length;
  if (!text.startsWith(member, cut)) return undefined;
  if (!bytes) return utf8(text.slice(0, cut) + after);
  // the two members are ASCII (base64url, RFC 3339, a constant): as many bytes as characters
  const tail = member.length + after.length;
  const head = bytes.length - tail;
  if (head < 1 || bytes[head] !== 0x2c || bytes[bytes.length - 1] !== 0x7d) return undefined;
  const out = new Uint8Array(bytes.length - member.length);
  out.set(bytes.subarray(0, head));
  out.set(bytes.subarray(bytes.length - after.length), head);
  return out;
}

/**
 * {@link verifyToken} for a token `parseToken` has already accepted (e.g. inside a record
 * `parseRecord` accepted): the key id check and the signature, without validating the
 * structure again. `signingInput` defaults to {@link tokenSigningInput}; a caller that holds
 * the token's canonical text may pass {@link signingInputOfCanonical} of it instead (same
 * bytes, no re-serialisation). Throws CoreError `TOKEN_SIGNATURE_INVALID`.
 */
export function verifyParsedToken(
  t: TibetToken,
  publicKey: Uint8Array,
  provider: CryptoProvider = getProvider(),
  signingInput?: Uint8Array,
): TibetToken {
  if (keyIdOf(publicKey, provider) !== t.kid) {
    throw new CoreError(
      'TOKEN_SIGNATURE_INVALID',
      `token ${t.action_id}: key id does not match the key given`,
    );
  }
  const sig = fromBase64Url(t.signature, 'signature');
  if (!provider.ed25519Verify(publicKey, signingInput ?? tokenSigningInput(t), sig)) {
    throw new CoreError(
      'TOKEN_SIGNATURE_INVALID',
      `token ${t.action_id}: signature does not verify`,
    );
  }
  return t;
}

/** Resolves the signing key an actor used, e.g. an {@link IdentityRegistry}. */
export interface KeyResolver {
  signingKey(actor: string, kid: string): Uint8Array | undefined;
}

/**
 * Verify one line of tokens in order: each signature against the registry, each `prev`
 * equal to the hash of the token before it, generations following the causal-time rule
 * (parents looked up among the tokens given or through `parents`). Throws CoreError with
 * the index of the first failure.
 */
export function verifyLine(
  tokens: readonly unknown[],
  keys: KeyResolver,
  opts: {
    provider?: CryptoProvider;
    parents?: (actionId: string) => { generation: number } | undefined;
  } = {},
): TibetToken[] {
  const provider = opts.provider ?? getProvider();
  const out: TibetToken[] = [];
  const seen = new Map<string, TibetToken>();
  tokens.forEach((raw, i) => {
    const shape = parseToken(raw);
    const key = keys.signingKey(shape.actor, shape.kid);
    if (!key) {
      throw new CoreError(
        'TOKEN_SIGNATURE_INVALID',
        `token #${i} (${shape.action_id}): no registered key ${shape.kid} for ${shape.actor}`,
      );
    }
    const t = verifyToken(shape, key, provider);
    const before = out[i - 1];
    const wantPrev = before ? tokenHash(before, provider) : null;
    if (t.prev !== wantPrev) {
      throw new CoreError(
        'TOKEN_CHAIN_BROKEN',
        `token #${i} (${t.action_id}): prev does not match the token before it`,
      );
    }
    if (seen.has(t.action_id)) {
      throw new CoreError('TOKEN_CHAIN_BROKEN', `token #${i}: duplicate action id ${t.action_id}`);
    }
    const parent = t.parent_action_id
      ? (seen.get(t.parent_action_id) ?? opts.parents?.(t.parent_action_id))
      : null;
    if (t.parent_action_id && !parent) {
      throw new CoreError(
        'TOKEN_CHAIN_BROKEN',
        `token #${i} (${t.action_id}): parent ${t.parent_action_id} not found`,
      );
    }
    if (t.generation !== nextGeneration(before, parent)) {
      throw new CoreError(
        'TOKEN_GENERATION_INVALID',
        `token #${i} (${t.action_id}): generation ${t.generation}, expected ${nextGeneration(before, parent)}`,
      );
    }
    seen.set(t.action_id, t);
    out.push(t);
  });
  return out;
}

export type { JsonObject };
