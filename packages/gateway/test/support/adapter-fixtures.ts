/**
 * Fixtures for the adapter tests: capsules and requests built by hand (the adapters are called
 * the way the gateway core calls them, after its own checks), and a search for a secret in
 * every form that is independent of the masker under test (it uses Node's Buffer encoders).
 */
import { expect } from 'vitest';
import type { SecretType } from '@tibet/keychain';
import type { Capsule, Constraint, ExecRequest } from '@tibet/sam';
import type { AdapterInput } from '../../src/adapters/types.js';

export function makeCapsule(
  target_action: string,
  o: Partial<Omit<Capsule, 'constraints'>> & { constraints?: Record<string, string> } = {},
): Capsule {
  const { constraints = {}, ...rest } = o;
  return {
    sam_id: 'sam_0123456789ab',
    intent: 'adapter test',
    secret_id: 'sec_test',
    secret_version: 1,
    target_action,
    actor_id: 'jis:acme:agent',
    issuer_id: 'jis:acme:alice',
    issued_at: '2026-11-28T12:00:00.000Z',
    valid_until: '2026-11-28T12:05:00.000Z',
    ephemeral_id: 'eph_0123456789ab',
    policy_lane: null,
    receipt_required: true,
    supersedes_sam_id: null,
    upstream_url: null,
    upstream_method: null,
    upstream_payload: null,
    constraints: Object.entries(constraints).map(([key, value]): Constraint => ({ key, value })),
    notes: [],
    action_id: 'act_0123456789abcdef',
    generation: 1,
    gateway_id: null,
    ...rest,
  };
}

export function makeRequest(c: Capsule, o: Partial<ExecRequest> = {}): ExecRequest {
  return {
    actor_id: c.actor_id,
    action: c.target_action,
    constraints: Object.fromEntries(c.constraints.map((x) => [x.key, x.value])),
    ...o,
  };
}

export function makeInput(
  capsule: Capsule,
  secret: string | Uint8Array,
  secretType: SecretType,
  o: { request?: Partial<ExecRequest>; signal?: AbortSignal } = {},
): AdapterInput {
  return {
    capsule,
    request: makeRequest(capsule, o.request),
    secret: typeof secret === 'string' ? new Uint8Array(Buffer.from(secret, 'utf8')) : secret,
    secretType,
    signal: o.signal ?? new AbortController().signal,
  };
}

/** The secret as raw text (when UTF-8), base64 (±padding), base64url, hex, HEX, URL-encoded. */
export function formsOf(secret: string | Uint8Array): string[] {
  const b = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  const forms = [
    b.toString('base64'),
    b.toString('base64').replace(/=+$/, ''),
    b.toString('base64url'),
    b.toString('hex'),
    b.toString('hex').toUpperCase(),
    b.toString('latin1'),
  ];
  const text = b.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(b)) forms.push(text, encodeURIComponent(text));
  return [...new Set(forms)];
}

/** Asserts that no form of any of the secrets occurs in the value (serialised as JSON). */
export function expectNoSecret(value: unknown, ...secrets: (string | Uint8Array)[]): void {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  for (const s of secrets) {
    for (const f of formsOf(s)) expect(text.includes(f), `found a form of the secret`).toBe(false);
  }
}
