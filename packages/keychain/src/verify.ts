/**
 * Check a keychain against its audit log, read-only (no lock, no recovery):
 *
 *  - the log: every line parses, indexes are contiguous, the hash chain holds, and the
 *    latest signed checkpoint's root matches the lines it covers;
 *  - each secret's line: every token's signature (against the registry), the `prev` chain
 *    (a removed event leaves a gap), and every event re-decided and applied by the state
 *    machine from the creation event on;
 *  - the store: every revision bundle verifies under the keychain's service key, names the
 *    digest of the revision before it, revision numbers run 1..HEAD, HEAD names the latest,
 *    each revision's action is in the log with the same event and revision number, and its
 *    state equals the replayed state after that event (differences listed);
 *  - the material: the current version's bundle is where the revisions say, verifies, and
 *    hashes to its `material_sha256` (superseded bundles are shredded by design).
 *
 * Every problem has a stable code and a location (revision, log index, action id, material
 * file number). Warnings (a revision a crash left for recovery, an old creation event that
 * does not record everything) do not make the report fail.
 */
import {
  canonicalize,
  verifyToken,
  type JsonValue,
  type KeyResolver,
  sha256Hex,
} from '@tibet/core';
import { openTza, verifyTza } from '@tibet/tza';
import { KeychainError } from './errors.js';
import type { Keychain } from './keychain.js';
import {
  LogFolderSource,
  replay,
  secretLine,
  stateAfter,
  timelineSourceFor,
  type LogProblem,
  type LogProblemCode,
  type ReplayProblemCode,
  type ReplayStep,
  type TimelineSource,
} from './queries.js';
import type { SecretState } from './state.js';
import type { Head } from './store.js';
import { SECRET_ID } from './vocabulary.js';

export type KeychainVerifyCode =
  | LogProblemCode
  | ReplayProblemCode
  | 'EVENT_SIGNATURE_INVALID'
  | 'EVENT_MISSING'
  | 'EVENT_WITHOUT_REVISION'
  | 'SECRET_NOT_IN_STORE'
  | 'HEAD_MISSING'
  | 'HEAD_INVALID'
  | 'HEAD_MISMATCH'
  | 'REVISION_MISSING'
  | 'REVISION_INVALID'
  | 'REVISION_METADATA'
  | 'REVISION_CHAIN_BROKEN'
  | 'REVISION_PENDING'
  | 'REVISION_NOT_LOGGED'
  | 'REVISION_EVENT_MISMATCH'
  | 'REVISION_STATE_MISMATCH'
  | 'STATE_MISMATCH'
  | 'MATERIAL_MISSING'
  | 'MATERIAL_INVALID'
  | 'MATERIAL_DIGEST_MISMATCH'
  | 'MATERIAL_UNTRACKED';

export interface StateDifference {
  /** JSON path, e.g. `versions[1].material_sha256`. */
  path: string;
  stored: JsonValue | undefined;
  replayed: JsonValue | undefined;
}

export interface KeychainProblem {
  code: KeychainVerifyCode;
  message: string;
  severity: 'error' | 'warning';
  revision?: number;
  /** Log index of the event concerned. */
  index?: number;
  action_id?: string;
  /** Material file number (`material-<n>.tza`). */
  material_seq?: number;
  /** For a state mismatch: where the stored and the replayed state differ. */
  differences?: StateDifference[];
}

export interface SecretVerifyReport {
  id: string;
  ok: boolean;
  problems: KeychainProblem[];
}

export interface KeychainVerifyReport {
  ok: boolean;
  secrets: SecretVerifyReport[];
  /** Problems of the log itself (not tied to one secret). */
  log: { ok: boolean; problems: LogProblem[] };
}

export interface VerifyKeychainOptions {
  /** Read the log from this folder (scanned in full; default: the keychain's audit client). */
  logDir?: string;
  /** Whose keys verify the events' signatures (default: the keychain's directory). */
  registry?: KeyResolver;
  /** Read the log through this source instead. */
  source?: TimelineSource;
}

/** Where two JSON values differ (at most `max` places). */
export function diffStates(stored: unknown, replayed: unknown, max = 50): StateDifference[] {
  const out: StateDifference[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (out.length >= max) return;
    if (Array.isArray(a) && Array.isArray(b)) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) walk(a[i], b[i], `${path}[${i}]`);
      return;
    }
    if (isObj(a) && isObj(b)) {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      for (const k of keys) walk(a[k], b[k], path ? `${path}.${k}` : k);
      return;
    }
    const ja = a === undefined ? undefined : canonicalize(a);
    const jb = b === undefined ? undefined : canonicalize(b);
    if (ja !== jb)
      out.push({
        path: path || '$',
        stored: a as JsonValue | undefined,
        replayed: b as JsonValue | undefined,
      });
  };
  walk(stored, replayed, '');
  return out;
}

interface ParsedRevision {
  revision: number;
  sha256: string;
  actionId: string;
  event: string;
  prev: string | null;
  state: SecretState;
}

function describe(diffs: readonly StateDifference[]): string {
  const shown = diffs.slice(0, 5).map((d) => d.path);
  return `${shown.join(', ')}${diffs.length > shown.length ? `, … (${diffs.length} in all)` : ''}`;
}

async function verifySecret(
  kc: Keychain,
  id: string,
  source: TimelineSource,
  registry: KeyResolver,
): Promise<SecretVerifyReport | undefined> {
  const p = kc.provider;
  const problems: KeychainProblem[] = [];
  const report = (
    severity: 'error' | 'warning',
    code: KeychainVerifyCode,
    message: string,
    at: Omit<KeychainProblem, 'code' | 'message' | 'severity'> = {},
  ): void => {
    problems.push({ code, message, severity, ...at });
  };
  const sha = (b: Uint8Array): string => sha256Hex(b, p);

  // ------------------------------------------------------------ the secret's line
  const { events, gaps } = secretLine(await source.eventsFor(id), id, p);
  for (const g of gaps)
    report(
      'error',
      'EVENT_MISSING',
      g.expected_prev === null
        ? `the first event of ${id} in the log (index ${g.index}) names a predecessor that is not there: earlier events were removed`
        : `event ${g.action_id} (index ${g.index}) does not name the event before it on ${id}'s line: an event before it was removed, changed, reordered or inserted`,
      { index: g.index, action_id: g.action_id },
    );
  for (const e of events) {
    const key = registry.signingKey(e.actor, e.token.kid);
    let why: string | undefined;
    if (!key) why = `no registered key ${e.token.kid} for ${e.actor}`;
    else {
      try {
        verifyToken(e.token, key, p);
      } catch (err) {
        why = (err as Error).message;
      }
    }
    if (why)
      report('error', 'EVENT_SIGNATURE_INVALID', `event at index ${e.index}: ${why}`, {
        index: e.index,
        action_id: e.action_id,
      });
  }
  const r = replay(events);
  for (const q of r.problems)
    report(q.code === 'GENESIS_INCOMPLETE' ? 'warning' : 'error', q.code, q.message, {
      index: q.index,
      action_id: q.action_id,
    });
  const stepOf = new Map<string, ReplayStep>(r.steps.map((s) => [s.event.action_id, s]));

  // ------------------------------------------------------------ the store
  let head: Head | undefined;
  try {
    head = await kc.store.head(id);
  } catch (e) {
    if (!KeychainError.is(e)) throw e;
    report('error', 'HEAD_INVALID', e.message);
  }
  const revs = await kc.store.revisions(id);
  if (!head && revs.length === 0) {
    // a folder with nothing in it (e.g. left by a lock on an id that was never created)
    if (!events.length && !problems.length) return undefined;
    if (events.length)
      report(
        'error',
        'SECRET_NOT_IN_STORE',
        `the log holds ${events.length} event(s) of ${id} but the store has no revision of it`,
        { index: events[0]!.index, action_id: events[0]!.action_id },
      );
    return { id, ok: !problems.some((x) => x.severity === 'error'), problems };
  }
  const top = head?.revision ?? 0;
  if (!head && revs.some((n) => n > 1))
    report('error', 'HEAD_MISSING', `${id} has revisions but no HEAD`);
  for (let n = 1; n <= Math.max(top, ...revs); n++)
    if (!revs.includes(n))
      report('error', 'REVISION_MISSING', `revision ${n} of ${id} is missing`, { revision: n });

  const parsed = new Map<number, ParsedRevision>();
  const invalid = new Set<number>();
  const digests = new Map<number, string>();
  for (const n of revs) {
    const bytes = await kc.store.readRevision(id, n);
    const digest = sha(bytes);
    digests.set(n, digest);
    let rev: ParsedRevision;
    try {
      const opened = openTza(bytes, undefined, {
        trust: [kc.service.signingPublicKey],
        provider: p,
      });
      const m = opened.manifest.meta as Record<string, unknown>;
      const entry = opened.entries.find((x) => x.name === 'state.json');
      if (
        opened.manifest.kind !== 'secret-state' ||
        m['secret_id'] !== id ||
        m['revision'] !== n ||
        typeof m['action_id'] !== 'string' ||
        typeof m['event'] !== 'string' ||
        !(m['prev_sha256'] === null || typeof m['prev_sha256'] === 'string') ||
        !entry
      ) {
        report(
          'error',
          'REVISION_METADATA',
          `revision ${n} of ${id} does not describe itself as revision ${n} of ${id}`,
          { revision: n },
        );
        invalid.add(n);
        continue;
      }
      rev = {
        revision: n,
        sha256: digest,
        actionId: m['action_id'],
        event: m['event'],
        prev: m['prev_sha256'],
        state: JSON.parse(new TextDecoder().decode(entry.data)) as SecretState,
      };
    } catch (e) {
      report(
        'error',
        'REVISION_INVALID',
        `revision ${n} of ${id} does not verify under the keychain's key: ${(e as Error).message}`,
        { revision: n },
      );
      invalid.add(n);
      continue;
    }
    parsed.set(n, rev);
    const want = n === 1 ? null : (digests.get(n - 1) ?? undefined);
    if (want !== undefined && rev.prev !== want)
      report(
        'error',
        'REVISION_CHAIN_BROKEN',
        n === 1
          ? `revision 1 of ${id} names a previous revision`
          : `revision ${n} of ${id} names a digest of revision ${n - 1} that it does not have: revision ${n - 1} was changed or replaced`,
        { revision: n },
      );
  }

  if (head) {
    const h = parsed.get(head.revision);
    if (!revs.includes(head.revision))
      report('error', 'HEAD_MISMATCH', `HEAD names revision ${head.revision}, which is missing`, {
        revision: head.revision,
      });
    else if (digests.get(head.revision) !== head.sha256)
      report(
        'error',
        'HEAD_MISMATCH',
        `HEAD's digest does not match revision ${head.revision} of ${id}`,
        { revision: head.revision },
      );
    else if (h && h.actionId !== head.action_id)
      report(
        'error',
        'HEAD_MISMATCH',
        `HEAD names action ${head.action_id}, revision ${head.revision} holds ${h.actionId}`,
        { revision: head.revision },
      );
  }

  // ------------------------------------------------------------ store ↔ log
  const revisionActions = new Set<string>();
  let mismatched = false;
  for (const rev of parsed.values()) {
    revisionActions.add(rev.actionId);
    const n = rev.revision;
    const step = stepOf.get(rev.actionId);
    if (n > top) {
      report(
        'warning',
        'REVISION_PENDING',
        step
          ? `revision ${n} of ${id} is logged (${rev.actionId}) but not yet current: recovery makes it current`
          : `revision ${n} of ${id} is not logged: recovery discards it`,
        { revision: n, action_id: rev.actionId },
      );
      continue;
    }
    if (!step) {
      report(
        'error',
        'REVISION_NOT_LOGGED',
        `revision ${n} of ${id} records action ${rev.actionId}, which is not in the log`,
        { revision: n, action_id: rev.actionId },
      );
      continue;
    }
    const e = step.event;
    if (e.event !== rev.event || e.erin['revision'] !== n) {
      report(
        'error',
        'REVISION_EVENT_MISMATCH',
        `revision ${n} of ${id} says ${rev.event}; the log's ${e.action_id} is ${e.event} for revision ${JSON.stringify(e.erin['revision'])}`,
        { revision: n, index: e.index, action_id: e.action_id },
      );
      continue;
    }
    // local: revision n is revision n-1 with event n applied (so a problem shows where it
    // is); where revision n-1 cannot be read, the replay from creation stands in for it
    const before = n === 1 ? undefined : parsed.get(n - 1)?.state;
    const expected =
      n === 1 || before ? stateAfter(before, e) : gaps.length ? undefined : step.state;
    if (!expected) continue;
    const diffs = diffStates(rev.state, expected);
    if (diffs.length) {
      mismatched = true;
      report(
        'error',
        n === top ? 'STATE_MISMATCH' : 'REVISION_STATE_MISMATCH',
        `${n === top ? 'the current state' : `revision ${n}`} of ${id} is not what its event ${e.action_id} makes of ${n === 1 ? 'nothing' : `revision ${n - 1}`}: ${describe(diffs)}`,
        { revision: n, index: e.index, action_id: e.action_id, differences: diffs },
      );
    }
  }
  // cumulative: the whole line replayed from its creation reaches the current state (only
  // meaningful on a complete line; a gap is reported above)
  const headRev = parsed.get(top);
  const headStep = headRev && stepOf.get(headRev.actionId);
  if (!mismatched && !gaps.length && headRev && headStep?.state) {
    const diffs = diffStates(headRev.state, headStep.state);
    if (diffs.length)
      report(
        'error',
        'STATE_MISMATCH',
        `the current state of ${id} differs from the replay of its line from creation: ${describe(diffs)}`,
        {
          revision: top,
          index: headStep.event.index,
          action_id: headRev.actionId,
          differences: diffs,
        },
      );
  }
  for (const st of r.steps) {
    if (!st.applied || revisionActions.has(st.event.action_id)) continue;
    // its revision is there but unreadable: reported above
    const claimed = st.event.erin['revision'];
    if (typeof claimed === 'number' && invalid.has(claimed)) continue;
    report(
      'error',
      'EVENT_WITHOUT_REVISION',
      `the log's ${st.event.event} ${st.event.action_id} (index ${st.event.index}) has no revision in the store`,
      { index: st.event.index, action_id: st.event.action_id },
    );
  }

  // ------------------------------------------------------------ material
  const current = parsed.get(top)?.state;
  if (current) {
    const seqOf = new Map<string, number>();
    for (const rev of [...parsed.values()].filter((x) => x.revision <= top)) {
      const d = rev.state.versions[rev.state.versions.length - 1]?.material_sha256;
      if (d) seqOf.set(d, rev.state.material_seq);
    }
    // only the current version's material is kept: a rotation, reseal or destroy shreds
    // the bundles it supersedes
    const live = current.lifecycle_state === 'destroyed' ? [] : current.versions.slice(-1);
    for (const v of live) {
      if (!v.material_sha256) continue;
      const seq = seqOf.get(v.material_sha256);
      if (seq === undefined) {
        report(
          'error',
          'MATERIAL_UNTRACKED',
          `no revision of ${id} says which material file holds version ${v.version}`,
          { revision: top },
        );
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = await kc.store.readMaterial(id, seq);
      } catch (e) {
        if (!KeychainError.is(e)) throw e;
        report(
          'error',
          'MATERIAL_MISSING',
          `material ${seq} of ${id} (version ${v.version}) is missing`,
          { material_seq: seq },
        );
        continue;
      }
      if (sha(bytes) !== v.material_sha256) {
        report(
          'error',
          'MATERIAL_DIGEST_MISMATCH',
          `material ${seq} of ${id} does not hash to version ${v.version}'s material_sha256`,
          { material_seq: seq },
        );
        continue;
      }
      const vr = verifyTza(bytes, { trust: [kc.service.signingPublicKey], provider: p });
      if (!vr.valid || !vr.signers.some((s) => s.valid && s.trusted))
        report(
          'error',
          'MATERIAL_INVALID',
          `material ${seq} of ${id} does not verify under the keychain's key${vr.reason ? `: ${vr.reason}` : ''}`,
          { material_seq: seq },
        );
    }
  }
  return { id, ok: !problems.some((x) => x.severity === 'error'), problems };
}

/**
 * Verify every secret of a keychain against the audit log (see the module comment). Reads
 * the whole log once (a folder scan, or through the audit client) and never writes.
 */
export async function verifyKeychain(
  kc: Keychain,
  o: VerifyKeychainOptions = {},
): Promise<KeychainVerifyReport> {
  const source =
    o.source ??
    (o.logDir !== undefined
      ? new LogFolderSource(o.logDir, { query: false, provider: kc.provider })
      : timelineSourceFor(kc.audit, { query: false, provider: kc.provider }));
  const registry = o.registry ?? kc.directory;
  const logProblems = source.integrity ? await source.integrity() : [];
  const ids = new Set([...(await kc.store.list()), ...(await source.secretIds())]);
  const secrets: SecretVerifyReport[] = [];
  for (const id of [...ids].sort()) {
    if (!SECRET_ID.test(id)) {
      // a creation event for an id the keychain would never accept
      secrets.push({
        id,
        ok: false,
        problems: [
          {
            code: 'SECRET_NOT_IN_STORE',
            severity: 'error',
            message: `the log has a creation event for ${JSON.stringify(id)}, which is not a valid secret id`,
          },
        ],
      });
      continue;
    }
    const s = await verifySecret(kc, id, source, registry);
    if (s) secrets.push(s);
  }
  const logOk = logProblems.length === 0;
  return {
    ok: logOk && secrets.every((s) => s.ok),
    secrets,
    log: { ok: logOk, problems: logProblems },
  };
}
