/**
 * The gateway's receipt: the family's receipt fields plus this project's causal links,
 * sealed in a `.tza` (kind `sam-gateway-receipt`, one entry `receipt.json` holding the RFC
 * 8785 canonical JSON of the receipt) signed by the gateway identity.
 */
import {
  canonicalBytes,
  getProvider,
  isActionId,
  isActorId,
  parseRfc3339,
  type Clock,
  type CryptoProvider,
  type Identity,
  type IdentityRegistry,
  type Random,
} from '@tibet/core';
import { SAM_VERDICTS, type CheckAction, type CheckEvent, type SamVerdict } from '@tibet/sam';
import { openTza, packTza } from '@tibet/tza';
import { GatewayError } from './errors.js';

export const RECEIPT_KIND = 'sam-gateway-receipt';
export const RECEIPT_ENTRY = 'receipt.json';
/** `policy_verdict` of an executed capsule; a denial carries its SamVerdict. */
export const ALLOWED = 'allowed';

export type ReceiptVerdict = SamVerdict | typeof ALLOWED;

export interface Receipt {
  // ---- the family's receipt fields
  /** Null only when the capsule could not be read at all (bundle invalid). */
  sam_id: string | null;
  ephemeral_id: string | null;
  requested_action: string;
  executed_action: string | null;
  status: 'executed' | 'denied';
  gateway_actor: string;
  /** RFC 3339 UTC: when the gateway finished (executed or denied). */
  executed_at: string;
  result_summary: string;
  policy_verdict: ReceiptVerdict;
  /** The session's material was zeroed and read back as zeros (false when no session opened). */
  destroy_session_confirmed: boolean;
  policy_lane: string | null;
  receipt_required: boolean;
  runtime_adapter: string | null;
  events: CheckEvent[];
  // ---- this project's additions
  /** The requesting actor (the request's `actor_id`). */
  actor_id: string;
  secret_id: string | null;
  /** `gsess:<ephemeral_id>` when a session was opened. */
  session_id: string | null;
  /** The capsule's `sam-issued` action. */
  capsule_action_id: string | null;
  /** The gateway's `sam-received` event (null when denied before it). */
  received_action_id: string | null;
  /** The keychain's `secret-proxied` event (null when the secret was not used). */
  proxied_action_id: string | null;
  /** The event (`sam-executed` / `sam-denied`) that records this receipt in the audit log. */
  receipt_action_id: string;
}

export const RECEIPT_FIELDS = [
  'sam_id',
  'ephemeral_id',
  'requested_action',
  'executed_action',
  'status',
  'gateway_actor',
  'executed_at',
  'result_summary',
  'policy_verdict',
  'destroy_session_confirmed',
  'policy_lane',
  'receipt_required',
  'runtime_adapter',
  'events',
  'actor_id',
  'secret_id',
  'session_id',
  'capsule_action_id',
  'received_action_id',
  'proxied_action_id',
  'receipt_action_id',
] as const satisfies readonly (keyof Receipt)[];

export const CHECK_ACTIONS: readonly CheckAction[] = [
  'sam-received',
  'sam-validated',
  'sam-actor-match',
  'sam-constraint-match',
  'sam-policy-lane',
  'sam-keychain-check',
  'sam-session-opened',
  'sam-secret-proxied',
  'sam-executed',
  'sam-session-destroyed',
  'sam-response-sealed',
  'sam-denied',
];

export function isSamVerdict(v: unknown): v is SamVerdict {
  return typeof v === 'string' && (SAM_VERDICTS as readonly string[]).includes(v);
}

/** Every problem with an untrusted receipt object (empty when it is well formed). */
export function receiptProblems(v: unknown): string[] {
  const e: string[] = [];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return ['not an object'];
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!(RECEIPT_FIELDS as readonly string[]).includes(k)) e.push(`unknown field "${k}"`);
  for (const k of RECEIPT_FIELDS) if (!(k in o)) e.push(`missing "${k}"`);
  const str = (k: string, nullable: boolean): void => {
    const x = o[k];
    if (!(typeof x === 'string' || (nullable && x === null)))
      e.push(`"${k}" must be a string${nullable ? ' or null' : ''}`);
  };
  for (const k of ['requested_action', 'result_summary']) str(k, false);
  for (const k of [
    'sam_id',
    'ephemeral_id',
    'executed_action',
    'policy_lane',
    'runtime_adapter',
    'secret_id',
    'session_id',
  ])
    str(k, true);
  if (o['status'] !== 'executed' && o['status'] !== 'denied')
    e.push('"status" must be executed or denied');
  if (!isActorId(o['gateway_actor'])) e.push('"gateway_actor" must be an actor id');
  if (!isActorId(o['actor_id']) && o['actor_id'] !== '')
    e.push('"actor_id" must be an actor id (or empty when unknown)');
  if (!parseRfc3339(o['executed_at'])) e.push('"executed_at" must be RFC 3339 UTC');
  if (!(o['policy_verdict'] === ALLOWED || isSamVerdict(o['policy_verdict'])))
    e.push('"policy_verdict" is not a known verdict');
  else if ((o['policy_verdict'] === ALLOWED) !== (o['status'] === 'executed'))
    e.push('"policy_verdict" does not agree with "status"');
  for (const k of ['destroy_session_confirmed', 'receipt_required'])
    if (typeof o[k] !== 'boolean') e.push(`"${k}" must be a boolean`);
  for (const k of ['capsule_action_id', 'received_action_id', 'proxied_action_id'])
    if (o[k] !== null && !isActionId(o[k])) e.push(`"${k}" must be an action id or null`);
  if (!isActionId(o['receipt_action_id'])) e.push('"receipt_action_id" must be an action id');
  if (!Array.isArray(o['events'])) e.push('"events" must be an array');
  else
    o['events'].forEach((x: unknown, i) => {
      const ev = x as Record<string, unknown>;
      if (typeof x !== 'object' || x === null || Array.isArray(x))
        return void e.push(`events[${i}] must be an object`);
      if (Object.keys(ev).sort().join() !== 'action,detail,status')
        e.push(`events[${i}] must have exactly action, status, detail`);
      if (!(CHECK_ACTIONS as readonly unknown[]).includes(ev['action']))
        e.push(`events[${i}].action is not a check action`);
      if (ev['status'] !== 'pass' && ev['status'] !== 'fail')
        e.push(`events[${i}].status must be pass or fail`);
      if (typeof ev['detail'] !== 'string') e.push(`events[${i}].detail must be a string`);
    });
  return e;
}

/** Seal a receipt: the `.tza` bytes, signed by `gateway` (whose id must be `gateway_actor`). */
export function sealReceipt(
  receipt: Receipt,
  gateway: Identity,
  o: { clock?: Clock; random?: Random; provider?: CryptoProvider } = {},
): Uint8Array {
  if (receipt.gateway_actor !== gateway.id)
    throw new TypeError(`"gateway_actor" is ${receipt.gateway_actor}, the signer ${gateway.id}`);
  const problems = receiptProblems(receipt);
  if (problems.length) throw new TypeError(`invalid receipt: ${problems.join('; ')}`);
  const body: Record<string, unknown> = {};
  for (const k of RECEIPT_FIELDS) body[k] = receipt[k];
  return packTza(
    {
      kind: RECEIPT_KIND,
      meta: {
        sam_id: receipt.sam_id,
        ephemeral_id: receipt.ephemeral_id,
        status: receipt.status,
        policy_verdict: receipt.policy_verdict,
        gateway_actor: receipt.gateway_actor,
        receipt_action_id: receipt.receipt_action_id,
      },
      entries: [
        {
          name: RECEIPT_ENTRY,
          data: canonicalBytes(body),
          mediaType: 'application/json',
        },
      ],
      signers: [gateway],
    },
    {
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.random ? { random: o.random } : {}),
      ...(o.provider ? { provider: o.provider } : {}),
    },
  );
}

/**
 * Open and verify a receipt: the bundle's signature must verify under a key that
 * `directory` holds for the receipt's `gateway_actor`, and that actor must be of class
 * `gateway`. Throws GatewayError `RECEIPT_INVALID` otherwise.
 */
export function openReceipt(
  bytes: Uint8Array,
  o: { directory: IdentityRegistry; provider?: CryptoProvider },
): { receipt: Receipt; bundleId: string; sha256: Uint8Array } {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" must be a Uint8Array');
  const provider = o.provider ?? getProvider();
  const invalid = (m: string, cause?: unknown): never => {
    throw new GatewayError('RECEIPT_INVALID', `receipt: ${m}`, cause ? { cause } : {});
  };
  let opened;
  try {
    opened = openTza(bytes, undefined, { trust: o.directory, provider });
  } catch (cause) {
    return invalid(`does not verify (${(cause as Error).message})`, cause);
  }
  const m = opened.manifest;
  if (m.kind !== RECEIPT_KIND) invalid(`kind is ${m.kind}, not ${RECEIPT_KIND}`);
  if (m.entries.length !== 1 || opened.entries[0]?.name !== RECEIPT_ENTRY)
    invalid(`must hold exactly one entry ${RECEIPT_ENTRY}`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(opened.entries[0]!.data));
  } catch (cause) {
    return invalid('receipt.json is not JSON', cause);
  }
  const problems = receiptProblems(v);
  if (problems.length) invalid(problems.join('; '));
  const r = v as Receipt;
  const signers = opened.report.signers;
  if (!signers.some((s) => s.signer === r.gateway_actor && s.valid && s.trusted))
    invalid(`not signed by its gateway ${r.gateway_actor}`);
  const pub = o.directory.get(r.gateway_actor);
  if (!pub.length || pub.some((p) => p.actor_class !== 'gateway'))
    invalid(`${r.gateway_actor} is not a registered gateway`);
  for (const k of [
    'sam_id',
    'ephemeral_id',
    'status',
    'policy_verdict',
    'receipt_action_id',
  ] as const)
    if (m.meta[k] !== r[k]) invalid(`metadata ${k} does not match the receipt`);
  return { receipt: r, bundleId: m.bundle_id, sha256: provider.sha256(bytes) };
}
