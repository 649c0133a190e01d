/**
 * The capsule: its fields, its ids, and the strict validation of capsules and capsule
 * requests that come from outside (bundles, JSON bodies). See docs/sam.md §2.
 */
import {
  CoreError,
  canonicalBytes,
  isActionId,
  isActorId,
  parseCanonicalJson,
  parseRfc3339,
  toHex,
  type JsonValue,
  type Random,
} from '@tibet/core';
import { SECRET_ID } from '@tibet/keychain';
import { SamError } from './errors.js';

export interface Constraint {
  key: string;
  value: string;
}

/** The family's capsule fields (shared/spec/family.md) + this project's additions (marked +). */
export interface Capsule {
  /** `sam_` + 12 lowercase hex. */
  sam_id: string;
  /** Human-readable why (non-empty). */
  intent: string;
  secret_id: string;
  /** + The secret version the capsule is bound to. */
  secret_version: number;
  /** E.g. `/upload/npm`, `/proxy/http`, `/exec`, `/sign`. */
  target_action: string;
  /** The requesting actor (agent). */
  actor_id: string;
  /** + The authorising actor who signed (owner or custodian). */
  issuer_id: string;
  /** + RFC 3339 UTC. */
  issued_at: string;
  /** RFC 3339 UTC; default issued_at + 300 s, capped by the secret's `max_capsule_ttl_s`. */
  valid_until: string;
  /** `eph_` + 12 lowercase hex, one-shot. */
  ephemeral_id: string;
  policy_lane: string | null;
  /** Default true. */
  receipt_required: boolean;
  supersedes_sam_id: string | null;
  upstream_url: string | null;
  upstream_method: string | null;
  upstream_payload: JsonValue | null;
  constraints: Constraint[];
  notes: string[];
  /** + The capsule's own action: its `sam-issued` token in the audit log. */
  action_id: string;
  /** + That token's generation. */
  generation: number;
  /** + Set when the capsule is encrypted to one gateway. */
  gateway_id: string | null;
}

/** What the agent asks the gateway to do (the "request" the capsule is checked against). */
export interface ExecRequest {
  actor_id: string;
  /** Compared with capsule.target_action. */
  action: string;
  /** Every capsule constraint must be present and equal. */
  constraints: Record<string, string>;
  upstream_url?: string;
  upstream_method?: string;
  payload?: JsonValue;
  /** + The intent the agent states (the family's `/proxy` body); when present it must be the capsule's. */
  intent?: string;
}

/** The family's denial codes, plus this project's (marked +). */
export type SamVerdict =
  | 'sam-expired'
  | 'sam-actor-mismatch'
  | 'sam-constraint-mismatch'
  | 'sam-policy-lane-invalid'
  | 'sam-keychain-denied'
  | 'sam-secret-unavailable'
  | 'sam-bundle-invalid'
  | 'sam-upstream-missing'
  | 'sam-upstream-invalid'
  | 'sam-gateway-proxy-failed'
  | 'sam-gateway-url-required'
  /** + target_action differs from the requested action. */
  | 'sam-target-mismatch'
  /** + The ephemeral id was already consumed. */
  | 'sam-replayed'
  /** + A signature does not verify / the signer is not the authorised issuer. */
  | 'sam-signature-invalid'
  /** + issued_at in the future beyond the clock skew. */
  | 'sam-not-yet-valid'
  /** + The agent's signed proof is missing or does not authenticate this request. */
  | 'sam-actor-unauthenticated';

/** Every verdict, in the order of the type above. */
export const SAM_VERDICTS: readonly SamVerdict[] = [
  'sam-expired',
  'sam-actor-mismatch',
  'sam-constraint-mismatch',
  'sam-policy-lane-invalid',
  'sam-keychain-denied',
  'sam-secret-unavailable',
  'sam-bundle-invalid',
  'sam-upstream-missing',
  'sam-upstream-invalid',
  'sam-gateway-proxy-failed',
  'sam-gateway-url-required',
  'sam-target-mismatch',
  'sam-replayed',
  'sam-signature-invalid',
  'sam-not-yet-valid',
  'sam-actor-unauthenticated',
];

/** The family's receipt event actions. */
export type CheckAction =
  | 'sam-received'
  | 'sam-validated'
  | 'sam-actor-match'
  | 'sam-constraint-match'
  | 'sam-policy-lane'
  | 'sam-keychain-check'
  | 'sam-session-opened'
  | 'sam-secret-proxied'
  | 'sam-executed'
  | 'sam-session-destroyed'
  | 'sam-response-sealed'
  | 'sam-denied';

export interface CheckEvent {
  action: CheckAction;
  status: 'pass' | 'fail';
  detail: string;
}

/** What an authorising actor asks {@link issueCapsule} to issue. */
export interface CapsuleRequest {
  secret_id: string;
  actor_id: string;
  target_action: string;
  intent: string;
  constraints?: Constraint[];
  policy_lane?: string | null;
  /** Lifetime in seconds; default min(300, the secret's `max_capsule_ttl_s`). */
  ttl_seconds?: number;
  upstream_url?: string | null;
  upstream_method?: string | null;
  upstream_payload?: JsonValue | null;
  receipt_required?: boolean;
  supersedes_sam_id?: string | null;
  notes?: string[];
}

// ------------------------------------------------------------------ limits and patterns

/** Size and count limits of every capsule field (docs/sam.md §2.2). */
export const CAPSULE_LIMITS = Object.freeze({
  intentChars: 1024,
  targetActionChars: 200,
  constraints: 32,
  constraintKeyChars: 64,
  constraintValueChars: 512,
  notes: 16,
  noteChars: 512,
  urlChars: 2048,
  /** Bytes of the RFC 8785 form of `upstream_payload`. */
  payloadBytes: 65536,
  payloadDepth: 16,
  /** Longest lifetime any capsule may have (the keychain's own cap on `max_capsule_ttl_s`). */
  maxTtlSeconds: 86_400,
  /** Bytes of the whole RFC 8785 capsule. */
  capsuleBytes: 131072,
});

/** Default lifetime (the family's): 300 s. */
export const DEFAULT_TTL_SECONDS = 300;

export const SAM_ID = /^sam_[0-9a-f]{12}$/;
export const EPHEMERAL_ID = /^eph_[0-9a-f]{12}$/;
/** `/segment/segment…`: segments of `[A-Za-z0-9._~-]`, none `.` or `..`. */
const TARGET_ACTION = /^(\/[A-Za-z0-9._~-]+)+$/;
const LANE = /^[a-z][a-z0-9-]{0,63}$/;
const CONSTRAINT_KEY = /^[a-z][a-z0-9_.-]{0,63}$/;
/** An HTTP method token, upper case. */
const METHOD = /^[A-Z]{1,16}$/;
// C0 controls and DEL; tab and newline are allowed only in intent and notes
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_EXCEPT_TAB_NL = /[\u0000-\u0008\u000b-\u001f\u007f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isSamId(v: unknown): v is string {
  return typeof v === 'string' && SAM_ID.test(v);
}

export function isEphemeralId(v: unknown): v is string {
  return typeof v === 'string' && EPHEMERAL_ID.test(v);
}

/** `sam_` + 12 lowercase hex from `random` (6 bytes of a CSPRNG by default). */
export function newSamId(random: Random): string {
  return `sam_${toHex(random(6))}`;
}

/** `eph_` + 12 lowercase hex from `random`. */
export function newEphemeralId(random: Random): string {
  return `eph_${toHex(random(6))}`;
}

/** The fields of a capsule, in the order of the table in docs/sam.md. */
export const CAPSULE_FIELDS = [
  'sam_id',
  'intent',
  'secret_id',
  'secret_version',
  'target_action',
  'actor_id',
  'issuer_id',
  'issued_at',
  'valid_until',
  'ephemeral_id',
  'policy_lane',
  'receipt_required',
  'supersedes_sam_id',
  'upstream_url',
  'upstream_method',
  'upstream_payload',
  'constraints',
  'notes',
  'action_id',
  'generation',
  'gateway_id',
] as const satisfies readonly (keyof Capsule)[];

const REQUEST_FIELDS = [
  'secret_id',
  'actor_id',
  'target_action',
  'intent',
  'constraints',
  'policy_lane',
  'ttl_seconds',
  'upstream_url',
  'upstream_method',
  'upstream_payload',
  'receipt_required',
  'supersedes_sam_id',
  'notes',
] as const satisfies readonly (keyof CapsuleRequest)[];

// ------------------------------------------------------------------ field checks

type Errors = string[];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(
  e: Errors,
  v: unknown,
  name: string,
  max: number,
  o: { multiline?: boolean; nonEmpty?: boolean } = {},
): void {
  if (typeof v !== 'string') return void e.push(`${name} must be a string`);
  if ((o.nonEmpty ?? true) && v.trim().length === 0) e.push(`${name} must not be empty`);
  if (v.length > max) e.push(`${name} longer than ${max} characters`);
  if ((o.multiline ? CONTROL_EXCEPT_TAB_NL : CONTROL).test(v))
    e.push(`${name} contains control characters`);
  if (LONE_SURROGATE.test(v)) e.push(`${name} is not well-formed Unicode`);
}

function jsonDepth(v: unknown, d = 0): number {
  if (Array.isArray(v)) return Math.max(d + 1, ...v.map((x) => jsonDepth(x, d + 1)));
  if (isObject(v)) return Math.max(d + 1, ...Object.values(v).map((x) => jsonDepth(x, d + 1)));
  return d;
}

/** Why an upstream URL is not acceptable, or undefined when it is. */
export function upstreamUrlProblem(v: string): string | undefined {
  if (v.length > CAPSULE_LIMITS.urlChars) return `longer than ${CAPSULE_LIMITS.urlChars}`;
  if (CONTROL.test(v) || /\s/.test(v)) return 'contains whitespace or control characters';
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'not an absolute URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must be http: or https:';
  if (u.username !== '' || u.password !== '') return 'must not carry credentials';
  if (u.hostname === '') return 'has no host';
  return undefined;
}

function checkConstraints(e: Errors, v: unknown): void {
  if (!Array.isArray(v)) return void e.push('constraints must be an array');
  if (v.length > CAPSULE_LIMITS.constraints)
    e.push(`constraints: more than ${CAPSULE_LIMITS.constraints}`);
  const seen = new Set<string>();
  v.slice(0, CAPSULE_LIMITS.constraints + 1).forEach((c: unknown, i) => {
    if (!isObject(c)) return void e.push(`constraints[${i}] must be an object`);
    for (const k of Object.keys(c))
      if (k !== 'key' && k !== 'value') e.push(`constraints[${i}]: unknown field "${k}"`);
    const key = c['key'];
    if (typeof key !== 'string' || !CONSTRAINT_KEY.test(key))
      e.push(`constraints[${i}].key must match [a-z][a-z0-9_.-]{0,63}`);
    else if (seen.has(key)) e.push(`constraints: key "${key}" appears twice`);
    else seen.add(key);
    text(e, c['value'], `constraints[${i}].value`, CAPSULE_LIMITS.constraintValueChars);
  });
}

function checkNotes(e: Errors, v: unknown): void {
  if (!Array.isArray(v)) return void e.push('notes must be an array');
  if (v.length > CAPSULE_LIMITS.notes) e.push(`notes: more than ${CAPSULE_LIMITS.notes}`);
  v.slice(0, CAPSULE_LIMITS.notes + 1).forEach((n, i) =>
    text(e, n, `notes[${i}]`, CAPSULE_LIMITS.noteChars, { multiline: true }),
  );
}

function checkPayload(e: Errors, v: unknown): void {
  if (v === null) return;
  let bytes: Uint8Array;
  try {
    bytes = canonicalBytes(v);
  } catch {
    return void e.push('upstream_payload is not JSON');
  }
  if (bytes.length > CAPSULE_LIMITS.payloadBytes)
    e.push(`upstream_payload larger than ${CAPSULE_LIMITS.payloadBytes} bytes`);
  else if (jsonDepth(v) > CAPSULE_LIMITS.payloadDepth)
    e.push(`upstream_payload nested deeper than ${CAPSULE_LIMITS.payloadDepth}`);
}

/** Field checks shared by capsules and requests (for the fields both have). */
function checkCommon(e: Errors, o: Record<string, unknown>, request: boolean): void {
  const has = (k: string): boolean => !request || o[k] !== undefined;
  if (typeof o['secret_id'] !== 'string' || !SECRET_ID.test(o['secret_id']))
    e.push('secret_id must be a secret id (3–96 of a-z 0-9 _ . -, starting a-z)');
  if (!isActorId(o['actor_id'])) e.push('actor_id must be jis:<org>:<name>');
  const t = o['target_action'];
  if (
    typeof t !== 'string' ||
    t.length > CAPSULE_LIMITS.targetActionChars ||
    !TARGET_ACTION.test(t) ||
    t.split('/').some((s) => s === '.' || s === '..')
  )
    e.push('target_action must be a path like /upload/npm (segments of A-Z a-z 0-9 . _ ~ -)');
  text(e, o['intent'], 'intent', CAPSULE_LIMITS.intentChars, { multiline: true });
  if (has('constraints')) checkConstraints(e, o['constraints']);
  if (has('policy_lane')) {
    const l = o['policy_lane'];
    if (l !== null && !(typeof l === 'string' && LANE.test(l)))
      e.push('policy_lane must be null or match [a-z][a-z0-9-]{0,63}');
  }
  if (has('upstream_url')) {
    const u = o['upstream_url'];
    if (u !== null) {
      if (typeof u !== 'string') e.push('upstream_url must be a string or null');
      else {
        const p = upstreamUrlProblem(u);
        if (p) e.push(`upstream_url ${p}`);
      }
    }
  }
  if (has('upstream_method')) {
    const m = o['upstream_method'];
    if (m !== null && !(typeof m === 'string' && METHOD.test(m)))
      e.push('upstream_method must be null or an upper-case HTTP method');
  }
  if (has('upstream_payload')) checkPayload(e, o['upstream_payload']);
  if (has('receipt_required') && typeof o['receipt_required'] !== 'boolean')
    e.push('receipt_required must be a boolean');
  if (has('supersedes_sam_id')) {
    const s = o['supersedes_sam_id'];
    if (s !== null && !isSamId(s)) e.push('supersedes_sam_id must be null or a sam id');
  }
  if (has('notes')) checkNotes(e, o['notes']);
}

function fail(code: 'INVALID_CAPSULE' | 'INVALID_REQUEST', what: string, e: Errors): never {
  const shown = e.slice(0, 20).join('; ') + (e.length > 20 ? `; … ${e.length - 20} more` : '');
  throw new SamError(code, `${what}: ${shown}`, {
    ...(code === 'INVALID_CAPSULE' ? { verdict: 'sam-bundle-invalid' as const } : {}),
  });
}

/** Every problem with an untrusted capsule; empty when it is valid. */
export function capsuleProblems(v: unknown): string[] {
  const e: Errors = [];
  if (!isObject(v)) return ['a capsule must be a JSON object'];
  for (const k of Object.keys(v))
    if (!(CAPSULE_FIELDS as readonly string[]).includes(k)) e.push(`unknown field "${k}"`);
  for (const k of CAPSULE_FIELDS) if (!(k in v)) e.push(`${k} is missing`);
  if (e.length) return e;
  checkCommon(e, v, false);
  if (!isSamId(v['sam_id'])) e.push('sam_id must be sam_ + 12 lowercase hex');
  if (!isEphemeralId(v['ephemeral_id'])) e.push('ephemeral_id must be eph_ + 12 lowercase hex');
  if (v['supersedes_sam_id'] !== null && v['supersedes_sam_id'] === v['sam_id'])
    e.push('a capsule cannot supersede itself');
  const ver = v['secret_version'];
  if (!(typeof ver === 'number' && Number.isSafeInteger(ver) && ver >= 1 && ver <= 2 ** 31))
    e.push('secret_version must be an integer ≥ 1');
  if (!isActorId(v['issuer_id'])) e.push('issuer_id must be jis:<org>:<name>');
  const from = parseRfc3339(v['issued_at']);
  const until = parseRfc3339(v['valid_until']);
  if (!from) e.push('issued_at must be RFC 3339 UTC');
  if (!until) e.push('valid_until must be RFC 3339 UTC');
  if (from && until) {
    const ttl = until.getTime() - from.getTime();
    if (ttl <= 0) e.push('valid_until must be after issued_at');
    else if (ttl > CAPSULE_LIMITS.maxTtlSeconds * 1000)
      e.push(`valid_until more than ${CAPSULE_LIMITS.maxTtlSeconds} s after issued_at`);
  }
  if (!isActionId(v['action_id'])) e.push('action_id must be act_ + 16 lowercase hex');
  const g = v['generation'];
  if (!(typeof g === 'number' && Number.isSafeInteger(g) && g >= 1))
    e.push('generation must be an integer ≥ 1');
  const gw = v['gateway_id'];
  if (gw !== null && !isActorId(gw)) e.push('gateway_id must be null or jis:<org>:<name>');
  if (e.length === 0) {
    try {
      if (canonicalBytes(v).length > CAPSULE_LIMITS.capsuleBytes)
        e.push(`capsule larger than ${CAPSULE_LIMITS.capsuleBytes} bytes`);
    } catch {
      e.push('capsule is not JSON');
    }
  }
  return e;
}

/**
 * Validate an untrusted capsule (e.g. decoded from a bundle). Unknown or missing fields,
 * wrong types, bad ids, over-long strings: SamError `INVALID_CAPSULE` listing every problem
 * (verdict `sam-bundle-invalid`). Returns a deep copy.
 */
export function parseCapsule(v: unknown): Capsule {
  const e = capsuleProblems(v);
  if (e.length) fail('INVALID_CAPSULE', 'invalid capsule', e);
  return structuredClone(v) as Capsule;
}

/** The RFC 8785 canonical JSON of a (valid) capsule: the `sam.json` entry and TBZ block. */
export function encodeCapsule(c: Capsule): Uint8Array {
  return canonicalBytes(parseCapsule(c));
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decode `sam.json` bytes: strict UTF-8, RFC 8785 canonical form (so that one capsule has
 * exactly one encoding), then {@link parseCapsule}. Throws SamError `INVALID_CAPSULE`.
 */
export function decodeCapsule(bytes: Uint8Array): Capsule {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  if (bytes.length > CAPSULE_LIMITS.capsuleBytes)
    fail('INVALID_CAPSULE', 'invalid capsule', [
      `encoding larger than ${CAPSULE_LIMITS.capsuleBytes} bytes`,
    ]);
  let v: JsonValue;
  try {
    v = parseCanonicalJson(UTF8.decode(bytes));
  } catch (cause) {
    const why = CoreError.is(cause) ? cause.message : 'not UTF-8';
    throw new SamError('INVALID_CAPSULE', `invalid capsule: ${why}`, {
      cause,
      verdict: 'sam-bundle-invalid',
    });
  }
  return parseCapsule(v);
}

/** The capsule without the two fields its own audit token defines (the token's `erin`). */
export function capsuleBody(c: Capsule): Omit<Capsule, 'action_id' | 'generation'> {
  const { action_id: _a, generation: _g, ...body } = c;
  return body;
}

/**
 * Validate a capsule request: from an API caller or an untrusted JSON body (the gateway
 * daemon's `POST` of an agent). Unknown fields, wrong types, over-long strings: SamError
 * `INVALID_REQUEST` listing every problem. Returns a fresh, normalised copy (absent optional
 * fields stay absent).
 */
export function capsuleRequestFromJson(v: unknown): CapsuleRequest {
  const e: Errors = [];
  if (!isObject(v)) fail('INVALID_REQUEST', 'invalid capsule request', ['must be a JSON object']);
  for (const k of Object.keys(v))
    if (!(REQUEST_FIELDS as readonly string[]).includes(k)) e.push(`unknown field "${k}"`);
  for (const k of ['secret_id', 'actor_id', 'target_action', 'intent'])
    if (v[k] === undefined) e.push(`${k} is missing`);
  if (e.length) fail('INVALID_REQUEST', 'invalid capsule request', e);
  checkCommon(e, v, true);
  const ttl = v['ttl_seconds'];
  if (
    ttl !== undefined &&
    !(
      typeof ttl === 'number' &&
      Number.isSafeInteger(ttl) &&
      ttl >= 1 &&
      ttl <= CAPSULE_LIMITS.maxTtlSeconds
    )
  )
    e.push(`ttl_seconds must be an integer 1..${CAPSULE_LIMITS.maxTtlSeconds}`);
  if (e.length) fail('INVALID_REQUEST', 'invalid capsule request', e);
  const copy = structuredClone<Record<string, unknown>>(v);
  for (const k of Object.keys(copy)) if (copy[k] === undefined) delete copy[k];
  return copy as unknown as CapsuleRequest;
}
