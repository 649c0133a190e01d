/**
 * The daemon's JSON messages, validated strictly in both directions (docs/gateway.md §6).
 */
import { fromBase64, isActionId, toBase64, type JsonValue } from '@tibet/core';
import {
  SamError,
  capsuleRequestFromJson,
  type CapsuleRequest,
  type ExecRequest,
} from '@tibet/sam';
import { GatewayError } from './errors.js';
import { receiptProblems, type Receipt } from './receipt.js';

const REQUEST_KEYS = [
  'actor_id',
  'action',
  'constraints',
  'upstream_url',
  'upstream_method',
  'payload',
  'intent',
] as const;

export const WIRE_LIMITS = Object.freeze({
  /** Longest capsule accepted on the wire (bytes, before base64). */
  capsuleBytes: 256 * 1024,
  constraints: 64,
  stringLength: 8192,
  jsonDepth: 64,
});

function jsonProblem(v: unknown, depth: number): string | undefined {
  if (depth > WIRE_LIMITS.jsonDepth) return 'nested too deeply';
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : 'a number is not finite';
  if (Array.isArray(v)) {
    for (const x of v) {
      const p = jsonProblem(x, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) {
      const p = jsonProblem(x, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  return `${typeof v} is not JSON`;
}

/** Every problem with an ExecRequest from outside (empty when well formed). */
export function execRequestProblems(v: unknown): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return ['not an object'];
  const o = v as Record<string, unknown>;
  const e: string[] = [];
  for (const k of Object.keys(o))
    if (!(REQUEST_KEYS as readonly string[]).includes(k)) e.push(`unknown field "${k}"`);
  for (const k of ['actor_id', 'action'] as const) {
    if (typeof o[k] !== 'string' || o[k] === '') e.push(`"${k}" must be a non-empty string`);
    else if (o[k].length > WIRE_LIMITS.stringLength) e.push(`"${k}" is too long`);
  }
  const c = o['constraints'];
  if (typeof c !== 'object' || c === null || Array.isArray(c))
    e.push('"constraints" must be an object of strings');
  else {
    const entries = Object.entries(c);
    if (entries.length > WIRE_LIMITS.constraints) e.push('"constraints": too many');
    for (const [k, x] of entries)
      if (typeof x !== 'string' || x.length > WIRE_LIMITS.stringLength)
        e.push(`"constraints.${k}" must be a string`);
  }
  for (const k of ['upstream_url', 'upstream_method', 'intent'] as const)
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k].length > WIRE_LIMITS.stringLength))
      e.push(`"${k}" must be a string`);
  if (o['payload'] !== undefined) {
    const p = jsonProblem(o['payload'], 0);
    if (p) e.push(`"payload": ${p}`);
  }
  return e;
}

/** An ExecRequest from untrusted JSON; GatewayError `INVALID_REQUEST` lists every problem. */
export function execRequestFromJson(v: unknown): ExecRequest {
  const problems = execRequestProblems(v);
  if (problems.length)
    throw new GatewayError('INVALID_REQUEST', `invalid exec request: ${problems.join('; ')}`);
  const o = v as Record<string, unknown>;
  return {
    actor_id: o['actor_id'] as string,
    action: o['action'] as string,
    constraints: Object.fromEntries(Object.entries(o['constraints'] as Record<string, string>)),
    ...(o['upstream_url'] !== undefined ? { upstream_url: o['upstream_url'] as string } : {}),
    ...(o['upstream_method'] !== undefined
      ? { upstream_method: o['upstream_method'] as string }
      : {}),
    ...(o['payload'] !== undefined ? { payload: o['payload'] as JsonValue } : {}),
    ...(o['intent'] !== undefined ? { intent: o['intent'] as string } : {}),
  };
}

/** Largest agent proof token accepted on the wire (bytes of its JSON). */
const MAX_PROOF_BYTES = 16 * 1024;

/**
 * An agent's proof token from a wire message: a JSON object (its structure and signature
 * are the gateway's to check), bounded in size. Absent → undefined.
 */
export function proofFromJson(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new GatewayError('INVALID_REQUEST', '"proof" must be a token object');
  const p = jsonProblem(v, 0);
  if (p) throw new GatewayError('INVALID_REQUEST', `"proof": ${p}`);
  if (JSON.stringify(v).length > MAX_PROOF_BYTES)
    throw new GatewayError('INVALID_REQUEST', `"proof" is larger than ${MAX_PROOF_BYTES} bytes`);
  return v as Record<string, unknown>;
}

/** The `X-Tibet-Proof` header: base64 of the token's JSON. */
export function proofFromHeader(v: string | string[] | undefined): unknown {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new GatewayError('INVALID_REQUEST', 'one X-Tibet-Proof header');
  const bytes = decodeBase64Field(v, 'X-Tibet-Proof', MAX_PROOF_BYTES);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new GatewayError('INVALID_REQUEST', '"X-Tibet-Proof" is not base64 of JSON', { cause });
  }
  return proofFromJson(json);
}

/** Base64 (standard, padded) of a capsule or receipt, checked against the size limit. */
export function decodeBase64Field(v: unknown, name: string, max: number): Uint8Array {
  if (typeof v !== 'string' || v === '')
    throw new GatewayError('INVALID_REQUEST', `"${name}" must be base64`);
  if (v.length > Math.ceil(max / 3) * 4 + 4)
    throw new GatewayError('INVALID_REQUEST', `"${name}" is larger than ${max} bytes`);
  try {
    return fromBase64(v, name);
  } catch (cause) {
    throw new GatewayError('INVALID_REQUEST', `"${name}" is not base64`, { cause });
  }
}

/** `POST /v1/exec` body. */
export interface ExecBody {
  /** The capsule bundle, base64. */
  capsule: string;
  request: ExecRequest;
  /** The agent's `sam-exec-requested` token (sam `mintExecProof`). */
  proof?: unknown;
}

export function execBodyFromJson(v: unknown): {
  capsule: Uint8Array;
  request: ExecRequest;
  proof: unknown;
} {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new GatewayError(
      'INVALID_REQUEST',
      'body must be {"capsule": base64, "request": {…}, "proof": {…}}',
    );
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'capsule' && k !== 'request' && k !== 'proof')
      throw new GatewayError('INVALID_REQUEST', `unknown field "${k}"`);
  return {
    capsule: decodeBase64Field(o['capsule'], 'capsule', WIRE_LIMITS.capsuleBytes),
    request: execRequestFromJson(o['request']),
    proof: proofFromJson(o['proof']),
  };
}

/** `POST /v1/capsules` body: the agent's capsule request and its `sam-requested` token. */
export interface CapsuleRequestBody {
  request: CapsuleRequest;
  proof?: unknown;
}

export function capsuleBodyFromJson(v: unknown): { request: CapsuleRequest; proof: unknown } {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new GatewayError('INVALID_REQUEST', 'body must be {"request": {…}, "proof": {…}}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'request' && k !== 'proof')
      throw new GatewayError('INVALID_REQUEST', `unknown field "${k}"`);
  let request: CapsuleRequest;
  try {
    request = capsuleRequestFromJson(o['request']);
  } catch (e) {
    if (SamError.is(e))
      throw new GatewayError('INVALID_REQUEST', e.message, { detailCode: e.code });
    throw e;
  }
  return { request, proof: proofFromJson(o['proof']) };
}

/** `POST /v1/exec` (and `/proxy`) answer: the receipt both sealed and as JSON. */
export interface ExecAnswer {
  status: 'executed' | 'denied';
  policy_verdict: string;
  /** The sealed receipt (.tza), base64. */
  receipt_tza: string;
  receipt: Receipt;
  response: JsonValue | null;
  /** Index of the receipt's event in the audit log. */
  log_index: number;
}

export function execAnswer(r: {
  receipt: Receipt;
  receiptBytes: Uint8Array;
  response: JsonValue | null;
  logged: { index: number };
}): ExecAnswer {
  return {
    status: r.receipt.status,
    policy_verdict: r.receipt.policy_verdict,
    receipt_tza: toBase64(r.receiptBytes),
    receipt: r.receipt,
    response: r.response,
    log_index: r.logged.index,
  };
}

/** Validate an answer from a daemon (the receipt's signature is checked separately). */
export function execAnswerFromJson(v: unknown): ExecAnswer & { receiptBytes: Uint8Array } {
  const bad = (m: string): never => {
    throw new GatewayError('DAEMON_PROTOCOL', `exec answer: ${m}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('not an object');
  const o = v as Record<string, unknown>;
  const problems = receiptProblems(o['receipt']);
  if (problems.length) bad(`receipt: ${problems.join('; ')}`);
  const receipt = o['receipt'] as Receipt;
  if (o['status'] !== receipt.status || o['policy_verdict'] !== receipt.policy_verdict)
    bad('status does not match the receipt');
  if (!Number.isSafeInteger(o['log_index'])) bad('"log_index" must be an integer');
  const p = jsonProblem(o['response'], 0);
  if (o['response'] === undefined || p) bad(`"response" ${p ?? 'missing'}`);
  let receiptBytes: Uint8Array;
  try {
    receiptBytes = decodeBase64Field(o['receipt_tza'], 'receipt_tza', 16 * 1024 * 1024);
  } catch {
    return bad('"receipt_tza" is not base64');
  }
  if (!isActionId(receipt.receipt_action_id)) bad('bad receipt_action_id');
  return {
    status: receipt.status,
    policy_verdict: receipt.policy_verdict,
    receipt_tza: o['receipt_tza'] as string,
    receipt,
    response: o['response'] as JsonValue | null,
    log_index: o['log_index'] as number,
    receiptBytes,
  };
}
