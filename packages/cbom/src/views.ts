/**
 * The family's Continuity BOM over a walked graph: the `inspect`, `timeline`, `authority`
 * and `verify` views, and the `verify` check names of tibet-cbom, each `pass|warn|fail`.
 * What each check means for this project's bundles and timelines: docs/cbom.md §3.
 */
import type { JsonValue } from '@tibet/core';
import type { SecretState } from '@tibet/keychain';
import type { GraphBundle } from './bundles.js';
import type {
  CausalGraph,
  CheckStatus,
  GraphNode,
  GraphProblem,
  GraphSecret,
  GraphSubject,
  NodeMark,
} from './model.js';

export const CONTINUITY_BOM_FORMAT = 'tibet-continuity-bom/1';

/** The graph as the views read it (a {@link walk} result, or any CausalGraph). */
export type GraphInput = Omit<CausalGraph, 'secrets'> & {
  bundles?: GraphBundle[];
  secrets: (GraphSecret & { state?: SecretState })[];
};

// ------------------------------------------------------------------ inspect

export interface InspectView {
  subject: GraphSubject;
  log: {
    origin: string;
    key_name: string;
    tree_size: number;
    root_hash: string;
  } | null;
  secrets: {
    secret_id: string;
    secret_type: string;
    issuer: string | null;
    scope: string | null;
    created_at: string | null;
    expires_at: string | null;
    lifecycle_state: string;
    exposure_state: string;
    rotation_required: boolean;
    version: number;
    owner_id: string | null;
    custodian_id: string | null;
    active_operator_id: string | null;
    versions: { version: number; state: string; created_at: string; retired_at: string | null }[];
  }[];
  bundles: {
    file: string;
    format: string;
    kind: string | null;
    bundle_id: string | null;
    status: CheckStatus;
    signers: string[];
    tokens: number;
  }[];
  counts: {
    events: number;
    from_log: number;
    from_bundles: number;
    edges: number;
    broken_edges: number;
    missing_edges: number;
    actors: number;
    problems: number;
  };
}

export function inspectView(g: GraphInput): InspectView {
  return {
    subject: g.subject,
    log: g.log
      ? {
          origin: g.log.origin,
          key_name: g.log.key_name,
          tree_size: g.log.tree_size,
          root_hash: g.log.root_hash,
        }
      : null,
    secrets: g.secrets.map((s) => {
      const st = s.state;
      return {
        secret_id: s.secret_id,
        secret_type: s.secret_type,
        issuer: st?.issuer ?? null,
        scope: st?.scope ?? null,
        created_at: st?.created_at ?? null,
        expires_at: st?.expires_at ?? null,
        lifecycle_state: s.lifecycle_state,
        exposure_state: s.exposure_state,
        rotation_required: s.rotation_required,
        version: s.version,
        owner_id: st?.owner_id ?? null,
        custodian_id: st?.custodian_id ?? null,
        active_operator_id: st?.active_operator_id ?? null,
        versions: (st?.versions ?? []).map((v) => ({
          version: v.version,
          state: v.state,
          created_at: v.created_at,
          retired_at: v.retired_at,
        })),
      };
    }),
    bundles: (g.bundles ?? []).map((b) => ({
      file: b.file,
      format: b.format,
      kind: b.kind,
      bundle_id: b.bundle_id,
      status: b.status,
      signers: b.signers.map((s) => s.signer),
      tokens: b.tokens.length,
    })),
    counts: {
      events: g.nodes.length,
      from_log: g.nodes.filter((n) => n.source.kind === 'log').length,
      from_bundles: g.nodes.filter((n) => n.source.kind === 'bundle').length,
      edges: g.edges.length,
      broken_edges: g.edges.filter((e) => e.status === 'broken').length,
      missing_edges: g.edges.filter((e) => e.status === 'missing').length,
      actors: g.actors.length,
      problems: g.problems.length,
    },
  };
}

// ------------------------------------------------------------------ timeline

export interface TimelineEntry {
  action_id: string;
  parent_action_id: string | null;
  generation: number;
  timestamp: string;
  event: string;
  actor: string;
  actor_class: string;
  secret_id: string | null;
  mark: NodeMark | null;
  summary: string;
  reason: string;
  /** `log #12` or `bundle <file> <entry>` */
  source: string;
  /** Incoming links (prev on the line, parent on another) with their status. */
  links: { kind: 'parent' | 'prev'; from: string; status: 'ok' | 'broken' | 'missing' }[];
  checks: { signature: CheckStatus; chain: CheckStatus; inclusion: CheckStatus };
}

export function sourceLabel(n: GraphNode): string {
  return n.source.kind === 'log'
    ? `log #${n.source.index}`
    : `bundle ${n.source.file} ${n.source.entry}`;
}

export function timelineView(g: CausalGraph): TimelineEntry[] {
  const incoming = new Map<string, TimelineEntry['links']>();
  for (const e of g.edges) {
    const l = incoming.get(e.to) ?? [];
    l.push({ kind: e.kind, from: e.from, status: e.status });
    incoming.set(e.to, l);
  }
  return g.nodes.map((n) => ({
    action_id: n.action_id,
    parent_action_id: n.parent_action_id,
    generation: n.generation,
    timestamp: n.timestamp,
    event: n.event,
    actor: n.actor,
    actor_class: n.actor_class,
    secret_id: n.secret_id,
    mark: n.mark,
    summary: n.summary,
    reason: n.reason,
    source: sourceLabel(n),
    links: incoming.get(n.action_id) ?? [],
    checks: {
      signature: n.checks.signature,
      chain: n.checks.chain,
      inclusion: n.checks.inclusion,
    },
  }));
}

// ------------------------------------------------------------------ authority

/** The family's ownership-transition types, plus `genesis` and `close` (this project's). */
export type TransitionType =
  'genesis' | 'handoff' | 'takeover' | 'supersede' | 'freeze' | 'release' | 'close';

/** The family's statuses. */
export type AuthorityStatus =
  'active' | 'frozen' | 'admin-held' | 'released' | 'handoff-pending' | 'closed';

export interface AuthorityTransition {
  type: TransitionType;
  event: string;
  action_id: string;
  parent_action_id: string | null;
  actor: string;
  actor_class: string;
  at: string;
  authority_mode: string | null;
  role: string | null;
  to: string | null;
  reason: string;
}

export interface AuthorityView {
  secrets: {
    secret_id: string;
    status: AuthorityStatus;
    owner_id: string | null;
    custodian_id: string | null;
    active_operator_id: string | null;
    pending_handoff: { role: string; assignee: string; offered_by: string } | null;
    transitions: AuthorityTransition[];
  }[];
  /** Each actor with the roles it holds now and how many events it signed. */
  actors: { id: string; class: string; roles: string[]; events: number }[];
}

function obj(v: JsonValue | undefined): Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
}

function str(o: Record<string, JsonValue>, k: string): string | null {
  const v = o[k];
  return typeof v === 'string' ? v : null;
}

function transitionType(n: GraphNode): TransitionType | null {
  switch (n.event) {
    case 'secret-created':
    case 'secret-imported':
      return 'genesis';
    case 'secret-delegated':
      return str(obj(n.token.erin), 'role') === 'owner' ? 'handoff' : 'supersede';
    case 'secret-accepted':
      return 'takeover';
    case 'secret-suspended':
      return 'freeze';
    case 'secret-resumed':
      return 'release';
    case 'secret-revoked':
    case 'secret-archived':
    case 'secret-destroyed':
      return 'close';
    default:
      return null;
  }
}

export function statusOf(s: GraphSecret & { state?: SecretState }): AuthorityStatus {
  if (s.state?.pending_handoff) return 'handoff-pending';
  if (s.lifecycle_state === 'suspended') return 'frozen';
  if (s.lifecycle_state === 'deactivated' || s.lifecycle_state === 'destroyed' || s.state?.archived)
    return 'closed';
  if (s.lifecycle_state === 'compromised' || s.rotation_required) return 'admin-held';
  return 'active';
}

export function authorityView(g: GraphInput): AuthorityView {
  const secrets = g.secrets.map((s) => {
    const st = s.state;
    const transitions: AuthorityTransition[] = [];
    for (const n of g.nodes) {
      if (n.secret_id !== s.secret_id) continue;
      const type = transitionType(n);
      if (!type) continue;
      const erin = obj(n.token.erin);
      transitions.push({
        type,
        event: n.event,
        action_id: n.action_id,
        parent_action_id: n.parent_action_id,
        actor: n.actor,
        actor_class: n.actor_class,
        at: n.timestamp,
        authority_mode: str(obj(n.token.eromheen), 'authority_mode'),
        role: str(erin, 'role'),
        to: str(erin, 'target_assignee') ?? (type === 'takeover' ? n.actor : null),
        reason: n.reason,
      });
    }
    return {
      secret_id: s.secret_id,
      status: statusOf(s),
      owner_id: st?.owner_id ?? null,
      custodian_id: st?.custodian_id ?? null,
      active_operator_id: st?.active_operator_id ?? null,
      pending_handoff: st?.pending_handoff
        ? {
            role: st.pending_handoff.role,
            assignee: st.pending_handoff.assignee,
            offered_by: st.pending_handoff.offered_by,
          }
        : null,
      transitions,
    };
  });
  const count = new Map<string, number>();
  for (const n of g.nodes) count.set(n.actor, (count.get(n.actor) ?? 0) + 1);
  const actors = g.actors.map((a) => {
    const roles: string[] = [];
    for (const s of secrets) {
      if (s.owner_id === a.id) roles.push(`owner of ${s.secret_id}`);
      if (s.custodian_id === a.id) roles.push(`custodian of ${s.secret_id}`);
      if (s.active_operator_id === a.id) roles.push(`active operator of ${s.secret_id}`);
    }
    return { id: a.id, class: a.class, roles, events: count.get(a.id) ?? 0 };
  });
  return { secrets, actors };
}

// ------------------------------------------------------------------ verify

export const VERIFY_CHECKS = [
  'content-truth',
  'manifest-present',
  'manifest-verify',
  'surface-tension',
  'transition-required-fields',
  'transition-current-view',
  'transition-parent-link',
  'transition-authority',
  'audit-context',
] as const;

export type VerifyCheckName = (typeof VERIFY_CHECKS)[number];

export interface VerifyCheck {
  name: VerifyCheckName;
  status: CheckStatus;
  detail: string[];
}

export interface VerifyView {
  status: CheckStatus;
  checks: VerifyCheck[];
}

/** Which check a walker problem belongs to (every problem lands in exactly one). */
const CHECK_OF: Record<string, VerifyCheckName> = {
  SIGNATURE_INVALID: 'content-truth',
  SIGNATURE_UNKNOWN_KEY: 'content-truth',
  LOG_KEY_MISSING: 'manifest-present',
  LOG_CHECKPOINT_INVALID: 'manifest-verify',
  BUNDLE_INVALID: 'manifest-verify',
  REVISION_INVALID: 'manifest-verify',
  MATERIAL_INVALID: 'manifest-verify',
  BUNDLE_TOKEN_MISMATCH: 'surface-tension',
  BUNDLE_REF_MISSING: 'surface-tension',
  REVISION_METADATA: 'surface-tension',
  REVISION_NOT_LOGGED: 'surface-tension',
  REVISION_EVENT_MISMATCH: 'surface-tension',
  REVISION_CHAIN_BROKEN: 'surface-tension',
  REVISION_MISSING: 'surface-tension',
  MATERIAL_MISSING: 'surface-tension',
  MATERIAL_DIGEST_MISMATCH: 'surface-tension',
  SECRET_NOT_IN_STORE: 'surface-tension',
  HEAD_MISSING: 'transition-current-view',
  HEAD_MISMATCH: 'transition-current-view',
  STATE_MISMATCH: 'transition-current-view',
  SECRET_NOT_IN_LOG: 'transition-current-view',
  GENESIS_MISSING: 'transition-current-view',
  GENESIS_INCOMPLETE: 'transition-current-view',
  EVENT_UNEXPECTED: 'transition-current-view',
  PREV_BROKEN: 'transition-parent-link',
  PREV_MISSING: 'transition-parent-link',
  PARENT_MISSING: 'transition-parent-link',
  GENERATION_INVALID: 'transition-parent-link',
  EVENT_NOT_ALLOWED: 'transition-authority',
  EVENT_DECISION_MISMATCH: 'transition-authority',
  ACTOR_CLASS_CHANGED: 'transition-authority',
};

function checkOf(p: GraphProblem): VerifyCheckName {
  return CHECK_OF[p.code] ?? 'audit-context';
}

const worst = (a: CheckStatus, b: CheckStatus): CheckStatus =>
  a === 'fail' || b === 'fail' ? 'fail' : a === 'warn' || b === 'warn' ? 'warn' : 'pass';

/** Required fields of a keychain custody transition (the family's CustodyTransition). */
function missingFields(n: GraphNode): string[] {
  const t = n.token;
  const erin = obj(t.erin);
  const ctx = obj(t.eromheen);
  const miss: string[] = [];
  if (!str(erin, 'secret_id')) miss.push('secret_id');
  if (!t.erachter.trim()) miss.push('reason');
  if (t.event === 'secret-denied') {
    for (const k of ['operation', 'requested_by', 'code']) if (!str(erin, k)) miss.push(k);
  } else if (!str(ctx, 'authority_mode')) miss.push('authority_mode');
  if (t.event === 'secret-delegated')
    for (const k of ['role', 'target_assignee']) if (!str(erin, k)) miss.push(k);
  if (t.event === 'secret-proxied' && !str(erin, 'on_behalf_of')) miss.push('on_behalf_of');
  return miss;
}

export function verifyView(g: GraphInput): VerifyView {
  const checks = new Map<VerifyCheckName, VerifyCheck>(
    VERIFY_CHECKS.map((name) => [name, { name, status: 'pass', detail: [] }]),
  );
  const put = (name: VerifyCheckName, status: CheckStatus, d: string): void => {
    const c = checks.get(name)!;
    c.status = worst(c.status, status);
    c.detail.push(d);
  };
  for (const p of g.problems)
    put(checkOf(p), p.severity === 'warning' ? 'warn' : 'fail', `${p.code}: ${p.detail}`);
  const bundles = g.bundles ?? [];
  // content-truth: bundle contents (digests, structure)
  for (const b of bundles)
    if (b.status === 'fail' && b.code && !/SIGNATURE|SIGNER/.test(b.code))
      put('content-truth', 'fail', `${b.file}: ${b.code}`);
  const signed = g.nodes.filter((n) => n.checks.signature === 'pass').length;
  put(
    'content-truth',
    'pass',
    `${signed} of ${g.nodes.length} token signature(s) verify; ${bundles.filter((b) => !b.code || /SIGNATURE|SIGNER/.test(b.code)).length} of ${bundles.length} bundle(s) intact`,
  );
  // manifest-present
  const noManifest = bundles.filter((b) => !b.manifest_present);
  for (const b of noManifest) put('manifest-present', 'fail', `${b.file}: no manifest`);
  if (!bundles.length && !g.log)
    put(
      'manifest-present',
      'warn',
      'no bundle and no log checkpoint in this walk: nothing to check',
    );
  else
    put(
      'manifest-present',
      'pass',
      `${bundles.length - noManifest.length} bundle manifest(s)${g.log ? ', the log key and a checkpoint' : ''}`,
    );
  // manifest-verify
  if (!bundles.length && !g.log)
    put('manifest-verify', 'warn', 'no bundle or checkpoint to verify');
  else
    put(
      'manifest-verify',
      'pass',
      `${bundles.filter((b) => b.status === 'pass').length} of ${bundles.length} bundle(s) signed by a pinned key${g.log ? `; checkpoint of ${g.log.tree_size} lines` : ''}`,
    );
  // surface-tension
  const tbzSurface = bundles.filter((b) =>
    Object.keys(b.meta).some((k) => k.startsWith('surface_')),
  );
  if (!bundles.length)
    put(
      'surface-tension',
      'warn',
      'no bundle surface (metadata) to hold against the log: only the log was walked',
    );
  else
    put(
      'surface-tension',
      'pass',
      `${bundles.length} bundle surface(s) checked against the log${tbzSurface.length ? `; ${tbzSurface.length} TBZ surface field set(s) are unauthenticated hints and are not relied on` : ''}`,
    );
  // transition-required-fields
  const transitions = g.nodes.filter((n) => n.event.startsWith('secret-'));
  for (const n of transitions) {
    const miss = missingFields(n);
    if (miss.length)
      put(
        'transition-required-fields',
        'fail',
        `${n.event} ${n.action_id} lacks ${miss.join(', ')}`,
      );
  }
  if (!transitions.length)
    put('transition-required-fields', 'warn', 'no custody transitions in this graph');
  else put('transition-required-fields', 'pass', `${transitions.length} transition(s) checked`);
  // transition-current-view
  if (!g.secrets.length) put('transition-current-view', 'warn', 'no secret in this graph');
  else
    put(
      'transition-current-view',
      'pass',
      g.secrets
        .map((s) => `${s.secret_id}: v${s.version} ${s.lifecycle_state}, ${s.exposure_state}`)
        .join('; '),
    );
  // transition-parent-link
  const bad = g.edges.filter((e) => e.status !== 'ok');
  put(
    'transition-parent-link',
    'pass',
    `${g.edges.length - bad.length} of ${g.edges.length} link(s) hold`,
  );
  // transition-authority
  const denied = g.nodes.filter((n) => n.mark === 'denied').length;
  put(
    'transition-authority',
    'pass',
    `every applied transition re-decided by the state machine${denied ? `; ${denied} refusal(s) on the record` : ''}`,
  );
  // audit-context
  if (!g.log) put('audit-context', 'warn', 'no signed checkpoint: no event is proven to be logged');
  const fromBundles = g.nodes.filter((n) => n.source.kind === 'bundle').length;
  if (fromBundles)
    put('audit-context', 'warn', `${fromBundles} event(s) only in bundles, not in the audit log`);
  const incFail = g.nodes.filter((n) => n.checks.inclusion === 'fail');
  for (const n of incFail)
    put(
      'audit-context',
      'fail',
      `${n.action_id}: not proven included (${n.checks.detail.join('; ')})`,
    );
  const proven = g.nodes.filter((n) => n.checks.inclusion === 'pass').length;
  put(
    'audit-context',
    'pass',
    `${proven} of ${g.nodes.length} event(s) proven included under the checkpoint`,
  );
  const list = [...checks.values()];
  return { status: list.reduce<CheckStatus>((a, c) => worst(a, c.status), 'pass'), checks: list };
}

// ------------------------------------------------------------------ the document

export interface ContinuityBom {
  /** `tibet-continuity-bom/1` */
  format: typeof CONTINUITY_BOM_FORMAT;
  /** The document's shape version (1). */
  version: 1;
  generated_at: string;
  generator: { name: '@tibet/cbom'; version: string };
  subject: GraphSubject;
  inspect: InspectView;
  timeline: TimelineEntry[];
  authority: AuthorityView;
  verify: VerifyView;
  problems: GraphProblem[];
}

export const CBOM_VERSION = '0.1.0';

/** The Continuity BOM of a walked graph (docs/cbom.md §4). */
export function continuityBom(g: GraphInput): ContinuityBom {
  return {
    format: CONTINUITY_BOM_FORMAT,
    version: 1,
    generated_at: g.generated_at,
    generator: { name: '@tibet/cbom', version: CBOM_VERSION },
    subject: g.subject,
    inspect: inspectView(g),
    timeline: timelineView(g),
    authority: authorityView(g),
    verify: verifyView(g),
    problems: g.problems,
  };
}
