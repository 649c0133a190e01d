/**
 * The family's gateway order of checks that need no keychain and no I/O (docs/sam.md §5).
 */
import { parseRfc3339 } from '@tibet/core';
import {
  capsuleProblems,
  upstreamUrlProblem,
  type Capsule,
  type CheckEvent,
  type ExecRequest,
  type SamVerdict,
} from './capsule.js';

/**
 * How far `issued_at` may lie in the future of the checker's clock (the issuer's clock may
 * run ahead): 30 s. `valid_until` gets no grace: a capsule is valid while
 * `issued_at − skew ≤ now < valid_until`.
 */
export const CLOCK_SKEW_MS = 30_000;

/** The lanes with built-in rules (the family's). Other lanes have none here. */
export const POLICY_LANES = ['publish', 'proxy-egress'] as const;

export type CheckResult =
  { ok: true; events: CheckEvent[] } | { ok: false; verdict: SamVerdict; events: CheckEvent[] };

/**
 * `URL.host`: the lower-case host name (IPv6 in brackets) with `:port` when the port is not
 * the scheme's default — the same value the HTTP adapter compares, so a `host` constraint
 * pins the port too (`registry.example:8443`, but `registry.example` for `https://…:443`).
 */
function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

/**
 * Check a (verified) capsule against what the agent asks for, in the family's order:
 * received → validated (schema, not before `issued_at − skew`, not at or after
 * `valid_until`) → actor equals the request's actor → `target_action` equals the requested
 * action → every capsule constraint present and equal in the request (and a stated
 * `intent`, when the request has one, equal to the capsule's) → policy-lane rules
 * (`publish` needs a `registry` constraint; `proxy-egress` needs target `/proxy/http`, an
 * `upstream_url`, and a `host` constraint equal to its `URL.host`, port included; a request naming another
 * upstream URL or method than the capsule is refused). Stops at the first failure, whose
 * verdict is returned. Pure: no I/O, no clock but `now`. The gateway continues with the
 * keychain binding and appends `sam-denied` to a denial's events itself.
 */
export function checkCapsule(capsule: Capsule, request: ExecRequest, now: Date): CheckResult {
  if (typeof request !== 'object' || request === null)
    throw new TypeError('"request" expected an ExecRequest object');
  if (!(now instanceof Date) || Number.isNaN(now.getTime()))
    throw new TypeError('"now" expected a valid Date');
  const events: CheckEvent[] = [];
  const pass = (action: CheckEvent['action'], detail: string): void => {
    events.push({ action, status: 'pass', detail });
  };
  const deny = (action: CheckEvent['action'], verdict: SamVerdict, detail: string): CheckResult => {
    events.push({ action, status: 'fail', detail: `${verdict}: ${detail}` });
    return { ok: false, verdict, events };
  };
  const c = capsule as Partial<Capsule> | null;
  pass(
    'sam-received',
    `capsule ${typeof c?.sam_id === 'string' ? c.sam_id : '(no id)'} for ${String(request.action)}`,
  );

  // validated: a capsule that breaks the schema is never trusted further
  const problems = capsuleProblems(capsule);
  if (problems.length)
    return deny('sam-validated', 'sam-bundle-invalid', `invalid capsule: ${problems[0]!}`);
  const from = parseRfc3339(capsule.issued_at)!;
  const until = parseRfc3339(capsule.valid_until)!;
  const t = now.getTime();
  if (t < from.getTime() - CLOCK_SKEW_MS)
    return deny(
      'sam-validated',
      'sam-not-yet-valid',
      `issued at ${capsule.issued_at}, now ${now.toISOString()} (more than ${CLOCK_SKEW_MS / 1000} s early)`,
    );
  if (t >= until.getTime())
    return deny(
      'sam-validated',
      'sam-expired',
      `valid until ${capsule.valid_until}, now ${now.toISOString()}`,
    );
  pass(
    'sam-validated',
    `valid ${capsule.issued_at} – ${capsule.valid_until} (now ${now.toISOString()})`,
  );

  if (request.actor_id !== capsule.actor_id)
    return deny(
      'sam-actor-match',
      'sam-actor-mismatch',
      `requested by ${String(request.actor_id)}, capsule is for ${capsule.actor_id}`,
    );
  pass('sam-actor-match', `${capsule.actor_id} is the capsule's actor`);

  // the target action is the capsule's first scope constraint
  if (request.action !== capsule.target_action)
    return deny(
      'sam-constraint-match',
      'sam-target-mismatch',
      `requested action ${String(request.action)}, capsule authorises ${capsule.target_action}`,
    );
  pass('sam-constraint-match', `target_action ${capsule.target_action}`);

  const asked: unknown = request.constraints;
  const askedObj =
    typeof asked === 'object' && asked !== null && !Array.isArray(asked)
      ? (asked as Record<string, unknown>)
      : {};
  for (const k of capsule.constraints) {
    if (!Object.prototype.hasOwnProperty.call(askedObj, k.key))
      return deny(
        'sam-constraint-match',
        'sam-constraint-mismatch',
        `constraint ${k.key} missing from the request`,
      );
    const v = askedObj[k.key];
    if (v !== k.value)
      return deny(
        'sam-constraint-match',
        'sam-constraint-mismatch',
        `constraint ${k.key}: requested ${JSON.stringify(v)}, capsule requires ${JSON.stringify(k.value)}`,
      );
  }
  if (request.intent !== undefined && request.intent !== capsule.intent)
    return deny(
      'sam-constraint-match',
      'sam-constraint-mismatch',
      "the request's stated intent is not the capsule's intent",
    );
  pass(
    'sam-constraint-match',
    capsule.constraints.length
      ? `constraints present and equal: ${capsule.constraints.map((k) => k.key).join(', ')}`
      : 'no constraints',
  );

  // the request may name the upstream only as the capsule does
  if (request.upstream_url !== undefined && request.upstream_url !== capsule.upstream_url)
    return deny(
      'sam-policy-lane',
      'sam-upstream-invalid',
      capsule.upstream_url === null
        ? 'the request names an upstream URL, the capsule none'
        : 'the requested upstream URL is not the capsule upstream_url',
    );
  if (
    request.upstream_method !== undefined &&
    capsule.upstream_method !== null &&
    request.upstream_method !== capsule.upstream_method
  )
    return deny(
      'sam-policy-lane',
      'sam-upstream-invalid',
      `requested method ${String(request.upstream_method)}, capsule allows ${capsule.upstream_method}`,
    );

  const lane = capsule.policy_lane;
  const constraint = (key: string): string | undefined =>
    capsule.constraints.find((k) => k.key === key)?.value;
  if (lane === 'publish') {
    if (constraint('registry') === undefined)
      return deny(
        'sam-policy-lane',
        'sam-policy-lane-invalid',
        'lane publish requires a registry constraint',
      );
    pass('sam-policy-lane', `publish to ${constraint('registry')!}`);
  } else if (lane === 'proxy-egress') {
    if (capsule.target_action !== '/proxy/http')
      return deny(
        'sam-policy-lane',
        'sam-policy-lane-invalid',
        `lane proxy-egress requires target_action /proxy/http, not ${capsule.target_action}`,
      );
    if (capsule.upstream_url === null)
      return deny(
        'sam-policy-lane',
        'sam-upstream-missing',
        'lane proxy-egress needs upstream_url',
      );
    const problem = upstreamUrlProblem(capsule.upstream_url);
    const host = hostOf(capsule.upstream_url);
    if (problem || host === undefined)
      return deny(
        'sam-policy-lane',
        'sam-upstream-invalid',
        `upstream_url ${problem ?? 'invalid'}`,
      );
    const want = constraint('host');
    if (want === undefined)
      return deny(
        'sam-policy-lane',
        'sam-policy-lane-invalid',
        'lane proxy-egress requires a host constraint',
      );
    if (want.toLowerCase() !== host)
      return deny(
        'sam-policy-lane',
        'sam-policy-lane-invalid',
        `host constraint ${want} is not the upstream host ${host}`,
      );
    pass('sam-policy-lane', `proxy-egress to ${host}`);
  } else if (lane === null) {
    pass('sam-policy-lane', 'no policy lane');
  } else {
    pass('sam-policy-lane', `lane ${lane}: no built-in rules (the keychain policy decides)`);
  }
  return { ok: true, events };
}
