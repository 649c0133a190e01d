/**
 * A secret's state and the pure rules that change it. No I/O: the keychain asks
 * {@link decide} whether an operation is allowed (and which rules decided), then
 * {@link apply} computes the next state.
 */
import type { ActorClass, PolicyDecision } from '@tibet/core';
import { KeychainError, type KeychainErrorCode } from './errors.js';
import {
  LEAKED,
  type AuthorityMode,
  type CustodyRole,
  type ExposureState,
  type LifecycleState,
  type ReportableExposure,
  type SecretType,
  type TimelineEvent,
} from './vocabulary.js';

/** Who may do what with one secret. Entries are actor ids or `role:<custody role>`. */
export interface SecretPolicy {
  reveal: string[];
  /** Who may have the secret used for them (request capsules / proxied use). */
  use: string[];
  /** Allowed target actions (`/upload/pypi`), `*` for any, or a prefix ending in `*`. */
  targets: string[];
  /** Allowed policy lanes, `*` for any. */
  lanes: string[];
  /** Longest capsule lifetime the keychain accepts for this secret, in seconds. */
  max_capsule_ttl_s: number;
}

export const DEFAULT_POLICY: Readonly<SecretPolicy> = Object.freeze({
  reveal: ['role:owner'],
  use: ['role:active_operator', 'role:custodian'],
  targets: ['*'],
  lanes: ['*'],
  max_capsule_ttl_s: 300,
});

export interface VersionInfo {
  version: number;
  created_at: string;
  /** SHA-256 (hex) of the material bundle; null once shredded. */
  material_sha256: string | null;
  state: LifecycleState;
  retired_at: string | null;
  action_id: string;
}

export interface PendingHandoff {
  role: CustodyRole;
  assignee: string;
  offered_by: string;
  action_id: string;
  authority_mode: AuthorityMode;
}

/** Everything the keychain knows about a secret, except its material. */
export interface SecretState {
  // the family's SecretRecord
  secret_id: string;
  secret_type: SecretType;
  issuer: string;
  scope: string;
  created_at: string;
  expires_at: string | null;
  owner_id: string | null;
  custodian_id: string | null;
  active_operator_id: string | null;
  last_access_action_id: string | null;
  last_rotation_action_id: string | null;
  exposure_state: ExposureState;
  rotation_required: boolean;
  notes: string[];
  // this project's additions
  lifecycle_state: LifecycleState;
  archived: boolean;
  version: number;
  versions: VersionInfo[];
  /** Which material bundle is current (bumped by rotation and by resealing to new holders). */
  material_seq: number;
  policy: SecretPolicy;
  pending_handoff: PendingHandoff | null;
  exposure_evidence: string | null;
  /** Public part of generated key material (signing keys, SSH keys, contract signers). */
  public_key: string | null;
  /** Every lifecycle transition with its time and action (NIST SP 800-57 asks for the times). */
  transitions: { state: LifecycleState; at: string; action_id: string }[];
}

/** The family's auditable, secret-free projection. */
export interface SecretRecord {
  secret_id: string;
  secret_type: SecretType;
  issuer: string;
  scope: string;
  created_at: string;
  expires_at?: string;
  owner_id?: string;
  custodian_id?: string;
  active_operator_id?: string;
  last_access_action_id?: string;
  last_rotation_action_id?: string;
  exposure_state: ExposureState;
  rotation_required: boolean;
  notes: string[];
}

export function toRecord(s: SecretState): SecretRecord {
  return {
    secret_id: s.secret_id,
    secret_type: s.secret_type,
    issuer: s.issuer,
    scope: s.scope,
    created_at: s.created_at,
    ...(s.expires_at ? { expires_at: s.expires_at } : {}),
    ...(s.owner_id ? { owner_id: s.owner_id } : {}),
    ...(s.custodian_id ? { custodian_id: s.custodian_id } : {}),
    ...(s.active_operator_id ? { active_operator_id: s.active_operator_id } : {}),
    ...(s.last_access_action_id ? { last_access_action_id: s.last_access_action_id } : {}),
    ...(s.last_rotation_action_id ? { last_rotation_action_id: s.last_rotation_action_id } : {}),
    exposure_state: s.exposure_state,
    rotation_required: s.rotation_required,
    notes: [...s.notes],
  };
}

export type Operation =
  | 'reveal'
  | 'use'
  | 'delegate'
  | 'accept'
  | 'expose'
  | 'rotate'
  | 'revoke'
  | 'archive'
  | 'suspend'
  | 'resume'
  | 'destroy'
  | 'policy';

export const EVENT_OF: Record<Operation, TimelineEvent> = {
  reveal: 'secret-unsealed',
  use: 'secret-proxied',
  delegate: 'secret-delegated',
  accept: 'secret-accepted',
  expose: 'secret-exposed',
  rotate: 'secret-rotated',
  revoke: 'secret-revoked',
  archive: 'secret-archived',
  suspend: 'secret-suspended',
  resume: 'secret-resumed',
  destroy: 'secret-destroyed',
  policy: 'secret-policy-changed',
};

/** Lifecycle states from which an operation is legal. */
const LEGAL_FROM: Record<Operation, readonly LifecycleState[]> = {
  reveal: ['active'],
  use: ['active'],
  delegate: ['pre-activation', 'active', 'suspended'],
  accept: ['pre-activation', 'active', 'suspended'],
  expose: ['pre-activation', 'active', 'suspended', 'deactivated', 'compromised'],
  rotate: ['pre-activation', 'active', 'suspended', 'compromised'],
  revoke: ['pre-activation', 'active', 'suspended', 'compromised'],
  archive: ['active', 'suspended', 'deactivated', 'compromised'],
  suspend: ['active'],
  resume: ['suspended'],
  destroy: ['pre-activation', 'active', 'suspended', 'deactivated', 'compromised'],
  policy: ['pre-activation', 'active', 'suspended'],
};

export interface Request {
  op: Operation;
  actor: string;
  actorClass: ActorClass;
  at: Date;
  /** For `use`: whom the act is for (the capsule's requesting actor). */
  onBehalfOf?: string;
  targetAction?: string;
  lane?: string;
  /** For `delegate`. */
  role?: CustodyRole;
  assignee?: string;
  authorityMode?: AuthorityMode;
  /** For `expose`. */
  exposure?: ReportableExposure;
  /** For `use`: the secret version the capsule was issued for. */
  expectVersion?: number;
}

export interface Decision {
  allowed: boolean;
  code?: KeychainErrorCode;
  reason: string;
  /** Every rule that was checked, in order: what goes into the token's `policy`. */
  decisions: PolicyDecision[];
}

function rolesOf(s: SecretState, actor: string): CustodyRole[] {
  const r: CustodyRole[] = [];
  if (s.owner_id === actor) r.push('owner');
  if (s.custodian_id === actor) r.push('custodian');
  if (s.active_operator_id === actor) r.push('active_operator');
  return r;
}

/** Does a policy list (`jis:` ids and `role:` entries) include this actor? */
export function listAllows(s: SecretState, list: readonly string[], actor: string): boolean {
  const roles = rolesOf(s, actor);
  return list.some(
    (e) =>
      e === actor ||
      e === '*' ||
      (e.startsWith('role:') && roles.includes(e.slice(5) as CustodyRole)),
  );
}

function patternAllows(list: readonly string[], v: string): boolean {
  return list.some(
    (p) => p === '*' || p === v || (p.endsWith('*') && v.startsWith(p.slice(0, -1))),
  );
}

/**
 * Decide whether `req` may happen to `s`. Never throws for a refusal: the caller records
 * denials too. Rules are checked in a fixed order and each one checked is listed.
 */
export function decide(s: SecretState, req: Request): Decision {
  const decisions: PolicyDecision[] = [];
  const deny = (rule: string, code: KeychainErrorCode, reason: string): Decision => {
    decisions.push({ rule, decision: 'deny', detail: reason });
    return { allowed: false, code, reason, decisions };
  };
  const allow = (rule: string, detail: string): void => {
    decisions.push({ rule, decision: 'allow', detail });
  };
  if (s.lifecycle_state === 'destroyed')
    return deny('lifecycle', 'SECRET_DESTROYED', `${s.secret_id} is destroyed`);
  if ((req.op === 'use' || req.op === 'reveal') && LEAKED.includes(s.exposure_state)) {
    return deny(
      'exposure',
      'SECRET_EXPOSED',
      `${s.secret_id} is ${s.exposure_state}: rotate it first`,
    );
  }
  if (s.archived && req.op === 'rotate') {
    return deny(
      'lifecycle',
      'INVALID_TRANSITION',
      `${s.secret_id} is archived: it cannot be rotated back into service`,
    );
  }
  if (!LEGAL_FROM[req.op].includes(s.lifecycle_state)) {
    return deny(
      'lifecycle',
      'INVALID_TRANSITION',
      `cannot ${req.op} a secret in state ${s.lifecycle_state}`,
    );
  }
  allow('lifecycle', `${req.op} allowed from ${s.lifecycle_state}`);
  const roles = rolesOf(s, req.actor);
  const expired = s.expires_at !== null && req.at.getTime() >= Date.parse(s.expires_at);
  switch (req.op) {
    case 'reveal': {
      if (expired)
        return deny('expiry', 'SECRET_EXPIRED', `${s.secret_id} expired at ${s.expires_at}`);
      if (!listAllows(s, s.policy.reveal, req.actor))
        return deny('policy.reveal', 'POLICY_DENIED', `${req.actor} may not reveal ${s.secret_id}`);
      allow('policy.reveal', `${req.actor} may reveal`);
      break;
    }
    case 'use': {
      const who = req.onBehalfOf ?? req.actor;
      if (expired)
        return deny('expiry', 'SECRET_EXPIRED', `${s.secret_id} expired at ${s.expires_at}`);
      if (LEAKED.includes(s.exposure_state))
        return deny('exposure', 'SECRET_EXPOSED', `${s.secret_id} is ${s.exposure_state}`);
      allow('exposure', `exposure ${s.exposure_state}`);
      if (s.rotation_required)
        return deny('rotation', 'ROTATION_REQUIRED', `${s.secret_id} must be rotated first`);
      allow('rotation', 'no rotation required');
      if (req.expectVersion !== undefined) {
        if (req.expectVersion !== s.version) {
          return deny(
            'version',
            'VERSION_MISMATCH',
            `issued for v${req.expectVersion}, the secret is at v${s.version}`,
          );
        }
        allow('version', `v${s.version}`);
      }
      if (s.active_operator_id && s.active_operator_id !== who) {
        return deny(
          'custody.active_operator',
          'NOT_AUTHORIZED',
          `${who} is not the active operator (${s.active_operator_id})`,
        );
      }
      if (!listAllows(s, s.policy.use, who))
        return deny('policy.use', 'POLICY_DENIED', `${who} may not use ${s.secret_id}`);
      allow('policy.use', `${who} may use`);
      if (req.targetAction !== undefined) {
        if (!patternAllows(s.policy.targets, req.targetAction))
          return deny('policy.targets', 'POLICY_DENIED', `target ${req.targetAction} not allowed`);
        allow('policy.targets', `target ${req.targetAction}`);
      }
      if (req.lane !== undefined) {
        if (!patternAllows(s.policy.lanes, req.lane))
          return deny('policy.lanes', 'POLICY_DENIED', `lane ${req.lane} not allowed`);
        allow('policy.lanes', `lane ${req.lane}`);
      }
      if (req.actor !== who && req.actorClass !== 'gateway' && !roles.includes('custodian')) {
        return deny(
          'authority.proxy',
          'NOT_AUTHORIZED',
          `${req.actor} may not act for ${who} (only a gateway or the custodian)`,
        );
      }
      break;
    }
    case 'delegate': {
      const role = req.role;
      if (!role || !req.assignee)
        return deny('input', 'INVALID_INPUT', 'delegate needs a role and an assignee');
      const mode = req.authorityMode ?? 'admin';
      const byOwner = roles.includes('owner');
      const bySystem = req.actorClass === 'system' && mode === 'system';
      const ok =
        role === 'active_operator'
          ? byOwner || roles.includes('custodian') || bySystem
          : byOwner || bySystem;
      if (!ok)
        return deny(
          'authority.delegate',
          'NOT_AUTHORIZED',
          `${req.actor} has no authority to assign ${role}`,
        );
      allow(
        'authority.delegate',
        `${req.actor} (${roles.join('+') || req.actorClass}) may assign ${role} in ${mode} mode`,
      );
      break;
    }
    case 'accept': {
      if (!s.pending_handoff)
        return deny('handoff', 'HANDOFF_NOT_PENDING', `no handoff of ${s.secret_id} is pending`);
      if (s.pending_handoff.assignee !== req.actor)
        return deny(
          'handoff',
          'NOT_AUTHORIZED',
          `the pending handoff is to ${s.pending_handoff.assignee}`,
        );
      allow('handoff', `${req.actor} accepts ${s.pending_handoff.role}`);
      break;
    }
    case 'expose': {
      if (!req.exposure) return deny('input', 'INVALID_INPUT', 'expose needs an exposure state');
      allow('authority.expose', 'anyone registered may report an exposure (triage)');
      break;
    }
    case 'rotate':
    case 'revoke':
    case 'archive':
    case 'suspend':
    case 'resume': {
      if (
        !roles.includes('owner') &&
        !roles.includes('custodian') &&
        !(req.actorClass === 'system' && req.authorityMode === 'system')
      ) {
        return deny(
          `authority.${req.op}`,
          'NOT_AUTHORIZED',
          `only the owner or custodian may ${req.op} ${s.secret_id}`,
        );
      }
      allow(`authority.${req.op}`, `${req.actor} is ${roles.join('+') || 'system'}`);
      break;
    }
    case 'destroy': {
      if (!roles.includes('owner'))
        return deny(
          'authority.destroy',
          'NOT_AUTHORIZED',
          `only the owner may destroy ${s.secret_id}`,
        );
      allow('authority.destroy', `${req.actor} is the owner`);
      break;
    }
    case 'policy': {
      // a `system` actor in `system` mode may too (e.g. a vault's release), as it may already
      // assign the owner role in that mode
      const bySystem = req.actorClass === 'system' && req.authorityMode === 'system';
      if (!roles.includes('owner') && !bySystem)
        return deny(
          'authority.policy',
          'NOT_AUTHORIZED',
          `only the owner may change the policy of ${s.secret_id}`,
        );
      allow(
        'authority.policy',
        roles.includes('owner') ? `${req.actor} is the owner` : `${req.actor} is system`,
      );
      break;
    }
  }
  return { allowed: true, reason: 'allowed', decisions };
}

/** Throw the decision's refusal as a KeychainError. */
export function refuse(d: Decision): never {
  throw new KeychainError(d.code ?? 'POLICY_DENIED', d.reason);
}

function transition(
  s: SecretState,
  prev: SecretState,
  to: LifecycleState,
  at: string,
  actionId: string,
): void {
  if (s.lifecycle_state === to) return;
  s.lifecycle_state = to;
  ownTransitions(s, prev).push({ state: to, at, action_id: actionId });
  const versions = ownVersions(s, prev);
  const cur = versions[versions.length - 1];
  if (cur) cur.state = to;
}

export interface ApplyInput extends Request {
  actionId: string;
  evidence?: string;
  policy?: SecretPolicy;
  /** For rotate: the new version's material digest and public part. */
  materialSha256?: string;
  publicKey?: string | null;
  note?: string;
}

/**
 * A deep copy of a state, field by field (every member is a primitive, an array of strings,
 * or flat objects of primitives): several times cheaper than `structuredClone`, which a
 * replay of a long history pays once per event.
 */
export function cloneState(prev: SecretState): SecretState {
  return {
    ...prev,
    notes: [...prev.notes],
    versions: prev.versions.map((v) => ({ ...v })),
    policy: clonePolicy(prev.policy),
    pending_handoff: prev.pending_handoff ? { ...prev.pending_handoff } : null,
    transitions: prev.transitions.map((t) => ({ ...t })),
  };
}

function clonePolicy(p: SecretPolicy): SecretPolicy {
  return {
    ...p,
    reveal: [...p.reveal],
    use: [...p.use],
    targets: [...p.targets],
    lanes: [...p.lanes],
  };
}

/**
 * A policy that {@link clonePolicy} copies without fail: an object whose four lists are
 * arrays. (A state replayed from a log may hold anything its creation event recorded; for
 * anything else the copy is made, so that it fails exactly where a full copy fails.)
 */
function policyCopiesCleanly(p: SecretPolicy): boolean {
  return (
    typeof p === 'object' &&
    p !== null &&
    Array.isArray(p.reveal) &&
    Array.isArray(p.use) &&
    Array.isArray(p.targets) &&
    Array.isArray(p.lanes)
  );
}

/**
 * The members of `s` that {@link applyTo} changes in place are copied the first time it
 * changes them (while they are still `prev`'s own): `versions` (and each version, as a
 * transition or rotation edits the current one), `transitions` and `notes`. Every other
 * member is replaced, never edited.
 */
function ownVersions(s: SecretState, prev: SecretState): VersionInfo[] {
  if (s.versions === prev.versions) s.versions = prev.versions.map((v) => ({ ...v }));
  return s.versions;
}

function ownTransitions(s: SecretState, prev: SecretState): SecretState['transitions'] {
  if (s.transitions === prev.transitions) s.transitions = prev.transitions.map((t) => ({ ...t }));
  return s.transitions;
}

function ownNotes(s: SecretState, prev: SecretState): string[] {
  if (s.notes === prev.notes) s.notes = [...prev.notes];
  return s.notes;
}

/** The next state after an allowed request (the input state is not modified). */
export function apply(prev: SecretState, r: ApplyInput): SecretState {
  return applyTo(cloneState(prev), prev, r, r.at.toISOString());
}

/**
 * {@link apply} with structural sharing, for a replay: the next state shares with `prev` every
 * member the request does not change (the policy, a pending handoff, the version list, the
 * transitions, the notes — each copied only when changed), and `prev` is not modified. Its
 * fields hold the same values as `apply`'s, and it throws where `apply` throws. The states
 * it returns must be treated as read-only (editing one in place would edit the others).
 * Internal: not exported by the package.
 */
export function applyShared(prev: SecretState, r: ApplyInput): SecretState {
  const policy = policyCopiesCleanly(prev.policy) ? prev.policy : clonePolicy(prev.policy);
  const s = shallowState(prev, policy);
  // the time is written only by lifecycle changes; an invalid one throws here as in apply
  if (STAMPED.has(r.op) || Number.isNaN(r.at.getTime()))
    return applyTo(s, prev, r, r.at.toISOString());
  return applyTo(s, prev, r, '');
}

/**
 * A copy of the members of a state (as `{ ...p, policy }`, several times cheaper): every
 * member of {@link SecretState}, in its order, which is the order a replay's first state is
 * built in (queries.ts, genesisState) — so that the states serialise alike.
 */
function shallowState(p: SecretState, policy: SecretPolicy): SecretState {
  return {
    secret_id: p.secret_id,
    secret_type: p.secret_type,
    issuer: p.issuer,
    scope: p.scope,
    created_at: p.created_at,
    expires_at: p.expires_at,
    owner_id: p.owner_id,
    custodian_id: p.custodian_id,
    active_operator_id: p.active_operator_id,
    last_access_action_id: p.last_access_action_id,
    last_rotation_action_id: p.last_rotation_action_id,
    exposure_state: p.exposure_state,
    rotation_required: p.rotation_required,
    notes: p.notes,
    lifecycle_state: p.lifecycle_state,
    archived: p.archived,
    version: p.version,
    versions: p.versions,
    material_seq: p.material_seq,
    policy,
    pending_handoff: p.pending_handoff,
    exposure_evidence: p.exposure_evidence,
    public_key: p.public_key,
    transitions: p.transitions,
  };
}

/**
 * The version list of `next` (from {@link applyShared} or {@link apply} of `prev`), owned by
 * `next`: copied first when it is still `prev`'s. Internal.
 */
export function versionsToEdit(next: SecretState, prev: SecretState): VersionInfo[] {
  return ownVersions(next, prev);
}

/** The operations whose changes record the time (`at` below). */
const STAMPED: ReadonlySet<Operation> = new Set([
  'expose',
  'rotate',
  'revoke',
  'archive',
  'suspend',
  'resume',
  'destroy',
]);

/**
 * Compute the next state into `s`: a copy of `prev` whose members may still be `prev`'s.
 * `at` is `r.at` in ISO form (unused, and may be '', for an operation not in STAMPED).
 */
function applyTo(s: SecretState, prev: SecretState, r: ApplyInput, at: string): SecretState {
  switch (r.op) {
    case 'reveal':
    case 'use':
      s.last_access_action_id = r.actionId;
      if (r.op === 'use' && s.exposure_state === 'sealed') s.exposure_state = 'in-use';
      break;
    case 'delegate': {
      const role = r.role!;
      const assignee = r.assignee!;
      if (role === 'owner' && r.authorityMode !== 'system') {
        // a new owner must accept: the handoff stays pending until co-signed by `accept`
        s.pending_handoff = {
          role,
          assignee,
          offered_by: r.actor,
          action_id: r.actionId,
          authority_mode: r.authorityMode ?? 'admin',
        };
      } else {
        setRole(s, role, assignee);
      }
      break;
    }
    case 'accept': {
      const h = s.pending_handoff!;
      setRole(s, h.role, h.assignee);
      s.pending_handoff = null;
      break;
    }
    case 'expose':
      s.exposure_state = r.exposure!;
      s.exposure_evidence = r.evidence ?? null;
      s.rotation_required = true;
      if (r.exposure !== 'suspected') transition(s, prev, 'compromised', at, r.actionId);
      break;
    case 'rotate': {
      const versions = ownVersions(s, prev);
      const old = versions[versions.length - 1];
      if (old) {
        old.state = old.state === 'compromised' ? 'compromised' : 'deactivated';
        old.retired_at = at;
      }
      s.version += 1;
      versions.push({
        version: s.version,
        created_at: at,
        material_sha256: r.materialSha256 ?? null,
        state: 'active',
        retired_at: null,
        action_id: r.actionId,
      });
      s.exposure_state = 'sealed';
      s.exposure_evidence = null;
      s.rotation_required = false;
      s.last_rotation_action_id = r.actionId;
      s.public_key = r.publicKey ?? null;
      s.lifecycle_state = 'active';
      ownTransitions(s, prev).push({ state: 'active', at, action_id: r.actionId });
      break;
    }
    case 'revoke':
      transition(
        s,
        prev,
        s.exposure_state !== 'sealed' &&
          s.exposure_state !== 'in-use' &&
          s.exposure_state !== 'rotated'
          ? 'compromised'
          : 'deactivated',
        at,
        r.actionId,
      );
      break;
    case 'archive':
      s.archived = true;
      if (s.lifecycle_state !== 'compromised') transition(s, prev, 'deactivated', at, r.actionId);
      break;
    case 'suspend':
      transition(s, prev, 'suspended', at, r.actionId);
      break;
    case 'resume':
      transition(s, prev, 'active', at, r.actionId);
      break;
    case 'destroy':
      transition(s, prev, 'destroyed', at, r.actionId);
      for (const v of ownVersions(s, prev)) {
        v.material_sha256 = null;
        v.state = 'destroyed';
        v.retired_at ??= at;
      }
      break;
    case 'policy':
      s.policy = clonePolicy(r.policy!);
      break;
  }
  if (r.note) ownNotes(s, prev).push(r.note);
  return s;
}

function setRole(s: SecretState, role: CustodyRole, who: string): void {
  if (role === 'owner') s.owner_id = who;
  else if (role === 'custodian') s.custodian_id = who;
  else s.active_operator_id = who;
}

export function validatePolicy(p: unknown): SecretPolicy {
  const bad = (m: string): never => {
    throw new KeychainError('INVALID_INPUT', `policy: ${m}`);
  };
  if (typeof p !== 'object' || p === null || Array.isArray(p)) bad('must be an object');
  const o = p as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['reveal', 'use', 'targets', 'lanes', 'max_capsule_ttl_s'].includes(k))
      bad(`unknown field "${k}"`);
  const list = (k: string): string[] => {
    const v = o[k] ?? (DEFAULT_POLICY as unknown as Record<string, unknown>)[k];
    if (
      !Array.isArray(v) ||
      v.some((x) => typeof x !== 'string' || x.length === 0 || x.length > 200)
    )
      bad(`${k} must be a list of strings`);
    return [...(v as string[])];
  };
  const ttl = o['max_capsule_ttl_s'] ?? DEFAULT_POLICY.max_capsule_ttl_s;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > 86_400)
    bad('max_capsule_ttl_s must be 1..86400');
  return {
    reveal: list('reveal'),
    use: list('use'),
    targets: list('targets'),
    lanes: list('lanes'),
    max_capsule_ttl_s: ttl as number,
  };
}

export function isLeaked(e: ExposureState): boolean {
  return LEAKED.includes(e);
}
