import { parseRfc3339, type Identity, type IdentityRegistry } from '@tibet/core';
import { Keychain, KeychainError } from '@tibet/keychain';
import {
  SamError,
  capsuleFromTbz,
  capsuleToTbz,
  checkCapsule,
  inspectCapsule,
  issueCapsule,
  openCapsule,
  sealCapsule,
  type Capsule,
  type CapsuleRequest,
  type CheckEvent,
  type SamErrorCode,
  type SamVerdict,
} from '@tibet/sam';
import { checkActor } from '../checks.js';
import { keychainServiceId } from '../config.js';
import { EXIT, UserError, refusal, usage } from '../errors.js';
import { readInput, tibetHome, writeFileAtomic } from '../home.js';
import { loadPrivateIdentity, loadPublicIdentity } from '../identities.js';
import { bold, dim, green, note, out, printJson, red } from '../output.js';
import { HomeRegistry } from '../registry.js';
import { connect } from './continuityd-actions.js';
import type { SamConvertOpts, SamIssueOpts, SamReadOpts, SamVerifyOpts } from './sam.js';

// ------------------------------------------------------------------ errors

const USAGE_CODES: readonly SamErrorCode[] = ['INVALID_REQUEST'];

function hintFor(code: SamErrorCode): string | undefined {
  switch (code) {
    case 'POLICY_DENIED':
      return "see the secret's policy: `tkc policy <secret-id>`";
    case 'NOT_AUTHORIZED':
      return 'only the owner or the custodian may issue: `tkc show <secret-id>`';
    case 'SECRET_UNAVAILABLE':
      return 'rotate it first: `tkc rotate <secret-id> …`';
    case 'SECRET_NOT_FOUND':
      return 'see `tkc list`';
    case 'TTL_TOO_LONG':
      return "ask for a shorter --ttl, or raise the secret's max_capsule_ttl_s (`tkc policy`)";
    case 'AUDIT_FAILED':
      return 'nothing was issued; check the log with `tibet continuityd head`';
    case 'BUNDLE_INVALID':
      return 'the capsule does not verify: do not act on it';
    case 'NOT_A_RECIPIENT':
      return 'the capsule is encrypted to a gateway: pass --as-gateway <its id>';
    case 'AGENT_UNAUTHENTICATED':
      return 'the agent must sign with its own key (--as), known to the issuer (`tibet id import`)';
    case 'PROOF_REPLAYED':
      return 'a signed request is used once: sign a new one';
    case 'INVALID_CAPSULE':
    case 'INVALID_REQUEST':
    case 'ISSUANCE_MISMATCH':
      return undefined;
  }
}

/** SamError and KeychainError leave as one-line UserErrors with their codes. */
function translate(e: unknown): unknown {
  if (SamError.is(e)) return refusal(e, USAGE_CODES, hintFor(e.code));
  if (KeychainError.is(e)) return refusal(e, ['INVALID_INPUT']);
  return e;
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw translate(e);
  }
}

// ------------------------------------------------------------------ arguments

function pairs(list: readonly string[] | undefined, what: string): [string, string][] {
  return (list ?? []).map((p) => {
    const i = p.indexOf('=');
    if (i <= 0) throw usage(`${what}: expected key=value, got "${p}"`);
    return [p.slice(0, i), p.slice(i + 1)];
  });
}

function integer(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(v)) throw usage(`${what}: "${v}" is not a whole number of seconds`);
  return Number(v);
}

function directory(): IdentityRegistry {
  return new HomeRegistry(tibetHome()).registry;
}

async function withIdentity<T>(id: string, fn: (who: Identity) => Promise<T>): Promise<T> {
  checkActor(id, 'identity');
  const who = await loadPrivateIdentity(tibetHome(), id);
  try {
    return await fn(who);
  } finally {
    who.destroy();
  }
}

async function maybeGateway<T>(
  id: string | undefined,
  fn: (gw: Identity | undefined) => Promise<T>,
): Promise<T> {
  if (id === undefined) return fn(undefined);
  return withIdentity(id, (gw) => fn(gw));
}

// ------------------------------------------------------------------ output

function readableLines(c: Partial<Capsule>): void {
  const row = (k: string, v: unknown): void => {
    if (v === undefined) return;
    const s =
      v === null
        ? dim('—')
        : typeof v === 'string'
          ? v
          : Array.isArray(v) && v.length === 0
            ? dim('—')
            : JSON.stringify(v);
    out(`  ${k.padEnd(18)}${s}`);
  };
  row('intent', c.intent);
  row('secret', c.secret_id === undefined ? undefined : `${c.secret_id} v${c.secret_version}`);
  row('target_action', c.target_action);
  row('actor', c.actor_id);
  row('issuer', c.issuer_id);
  row('issued_at', c.issued_at);
  row('valid_until', c.valid_until);
  row('ephemeral_id', c.ephemeral_id);
  row('policy_lane', c.policy_lane);
  if (c.constraints)
    row(
      'constraints',
      c.constraints.length ? c.constraints.map((k) => `${k.key}=${k.value}`).join(', ') : null,
    );
  row('upstream_url', c.upstream_url);
  row('upstream_method', c.upstream_method);
  if (c.upstream_payload !== undefined && c.upstream_payload !== null)
    row('upstream_payload', c.upstream_payload);
  row(
    'receipt_required',
    c.receipt_required === undefined ? undefined : String(c.receipt_required),
  );
  row('supersedes', c.supersedes_sam_id);
  row('gateway', c.gateway_id);
  row('action_id', c.action_id === undefined ? undefined : `${c.action_id} (gen ${c.generation})`);
  for (const n of c.notes ?? []) row('note', n);
}

function eventLine(e: CheckEvent): string {
  const mark = e.status === 'pass' ? green('pass') : red('FAIL');
  return `  ${mark}  ${e.action.padEnd(22)}${e.detail}`;
}

// ------------------------------------------------------------------ commands

export async function issue(secretId: string, o: SamIssueOpts): Promise<void> {
  checkActor(o.as, '--as');
  checkActor(o.for, '--for');
  if (o.toGateway !== undefined) checkActor(o.toGateway, '--to-gateway');
  const request: CapsuleRequest = {
    secret_id: secretId,
    actor_id: o.for,
    target_action: o.action,
    intent: o.intent,
    constraints: pairs(o.constraint, '--constraint').map(([key, value]) => ({ key, value })),
    policy_lane: o.lane ?? null,
    receipt_required: o.receipt,
    ...(o.ttl !== undefined ? { ttl_seconds: integer(o.ttl, '--ttl')! } : {}),
    ...(o.upstreamUrl !== undefined ? { upstream_url: o.upstreamUrl } : {}),
    ...(o.upstreamMethod !== undefined ? { upstream_method: o.upstreamMethod } : {}),
    ...(o.supersedes !== undefined ? { supersedes_sam_id: o.supersedes } : {}),
    ...(o.note?.length ? { notes: o.note } : {}),
  };
  const home = tibetHome();
  const sid = await keychainServiceId(home, o.service);
  const gateway =
    o.toGateway !== undefined ? await loadPublicIdentity(home, o.toGateway) : undefined;
  const audit = await connect(o);
  let service: Identity | undefined;
  let issuer: Identity | undefined;
  let ok = false;
  try {
    await guarded(async () => {
      service = await loadPrivateIdentity(home, sid);
      issuer = o.as === sid ? service : await loadPrivateIdentity(home, o.as);
      const kc = new Keychain({ home, audit, service, directory: directory() });
      const r = await issueCapsule({
        keychain: kc,
        issuer,
        request,
        ...(gateway ? { gateway: publicOf(gateway) } : {}),
      });
      // the event is durable: the capsule exists now, whatever happens to the file
      await writeFileAtomic(o.out, r.bytes, { mode: 0o600, exclusive: true });
      const c = r.capsule;
      if (o.json) {
        printJson({
          file: o.out,
          sam_id: c.sam_id,
          ephemeral_id: c.ephemeral_id,
          action_id: c.action_id,
          generation: c.generation,
          issued_at: c.issued_at,
          valid_until: c.valid_until,
          secret_version: c.secret_version,
          encrypted_to: c.gateway_id,
          capsule: c,
        });
      } else {
        out(
          `${green('issued')} ${bold(c.sam_id)} → ${o.out}  ${dim(`sam-issued · ${c.action_id}`)}`,
        );
        out(
          `  for ${c.actor_id} · ${c.target_action} · ${c.secret_id} v${c.secret_version} · until ${c.valid_until}${c.gateway_id ? ` · encrypted to ${c.gateway_id}` : ''}`,
        );
      }
    });
    ok = true;
  } finally {
    if (issuer && issuer !== service) issuer.destroy();
    service?.destroy();
    if (ok) await audit.close();
    else await audit.close().catch(() => undefined);
  }
}

export async function inspect(file: string, o: SamReadOpts): Promise<void> {
  const bytes = await readInput(file, 'capsule');
  await guarded(async () => {
    const dir = directory();
    const seen = inspectCapsule(bytes, { directory: dir });
    let capsule = seen.capsule;
    if (!capsule && seen.encrypted && o.asGateway !== undefined && seen.verified)
      capsule = await maybeGateway(o.asGateway, async (gw) => {
        return (await openCapsule(bytes, { directory: dir, ...(gw ? { gateway: gw } : {}) }))
          .capsule;
      });
    if (o.json) {
      printJson({
        format: seen.format,
        verified: seen.verified,
        encrypted: seen.encrypted,
        signers: seen.signers,
        ...(seen.error ? { error: seen.error } : {}),
        readable: seen.readable,
        ...(capsule ? { capsule } : {}),
      });
    } else {
      const status = seen.verified ? green('verifies') : red('DOES NOT VERIFY');
      out(
        `${bold(seen.readable.sam_id)}  ${seen.format}${seen.encrypted ? ` · encrypted to ${String(seen.readable.gateway_id)}` : ''} · ${status}`,
      );
      for (const s of seen.signers)
        out(
          `  signer            ${s.signer} (key ${s.kid.slice(0, 16)})${s.trusted ? '' : red(' not in this home')}`,
        );
      readableLines(capsule ?? seen.readable);
      if (seen.encrypted && !capsule)
        note(dim('intent, constraints, upstream and notes are encrypted (--as-gateway <id>)'));
      if (seen.error) note(`${red('error')}: ${seen.error.message} [${seen.error.code}]`);
    }
    if (!seen.verified) process.exitCode = EXIT.failed;
  });
}

export async function verify(file: string, o: SamVerifyOpts): Promise<void> {
  const bytes = await readInput(file, 'capsule');
  if (o.actor !== undefined) checkActor(o.actor, '--actor');
  let now = new Date();
  if (o.at !== undefined) {
    const d = parseRfc3339(o.at);
    if (!d) throw usage(`--at: "${o.at}" is not an RFC 3339 UTC time`, 'e.g. 2026-11-28T12:00:00Z');
    now = d;
  }
  const asked = pairs(o.constraint, '--constraint');
  await guarded(async () => {
    let capsule: Capsule;
    let format: 'tza' | 'tbz';
    try {
      ({ capsule, format } = await maybeGateway(o.asGateway, (gw) =>
        openCapsule(bytes, { directory: directory(), ...(gw ? { gateway: gw } : {}) }),
      ));
    } catch (e) {
      if (!SamError.is(e) || (e.code !== 'BUNDLE_INVALID' && e.code !== 'INVALID_CAPSULE')) throw e;
      const verdict: SamVerdict = e.verdict ?? 'sam-bundle-invalid';
      const events: CheckEvent[] = [
        { action: 'sam-received', status: 'fail', detail: `${verdict}: ${e.message}` },
      ];
      if (o.json) printJson({ ok: false, verdict, events });
      else {
        for (const ev of events) out(eventLine(ev));
        out(`${red('denied')}: ${verdict}`);
      }
      process.exitCode = EXIT.failed;
      return;
    }
    const useOwn = o.actor === undefined && o.action === undefined && asked.length === 0;
    const request = {
      actor_id: o.actor ?? capsule.actor_id,
      action: o.action ?? capsule.target_action,
      constraints: Object.fromEntries(
        useOwn ? capsule.constraints.map((k) => [k.key, k.value]) : asked,
      ),
      ...(o.upstreamUrl !== undefined ? { upstream_url: o.upstreamUrl } : {}),
      ...(o.upstreamMethod !== undefined ? { upstream_method: o.upstreamMethod } : {}),
    };
    const r = checkCapsule(capsule, request, now);
    if (o.json) {
      printJson({
        ok: r.ok,
        ...(r.ok ? {} : { verdict: r.verdict }),
        format,
        sam_id: capsule.sam_id,
        request,
        at: now.toISOString(),
        events: r.events,
      });
    } else {
      out(`${bold(capsule.sam_id)}  ${format} · signed by ${capsule.issuer_id} (pinned)`);
      for (const ev of r.events) out(eventLine(ev));
      out(r.ok ? green('every check passes') : `${red('denied')}: ${r.verdict}`);
      if (useOwn) note(dim("checked against the capsule's own actor, action and constraints"));
    }
    if (!r.ok) process.exitCode = EXIT.failed;
  });
}

export async function toTbz(file: string, o: SamConvertOpts): Promise<void> {
  checkActor(o.as, '--as');
  const bytes = await readInput(file, 'capsule');
  const home = tibetHome();
  const receiver =
    o.receiver !== undefined ? await loadPublicIdentity(home, o.receiver) : undefined;
  await guarded(async () => {
    const { capsule } = await maybeGateway(o.asGateway, (gw) =>
      openCapsule(bytes, { directory: directory(), ...(gw ? { gateway: gw } : {}) }),
    );
    if (capsule.issuer_id !== o.as)
      throw new UserError(`${o.as} is not the issuer of ${capsule.sam_id} (${capsule.issuer_id})`, {
        code: 'NOT_ISSUER',
      });
    if (capsule.gateway_id !== null && !o.allowPlaintext)
      throw new UserError(
        `${capsule.sam_id} is encrypted to ${capsule.gateway_id}; a TBZ is plaintext`,
        { code: 'PLAINTEXT_REFUSED', hint: 'pass --allow-plaintext to convert it anyway' },
      );
    const tbz = await withIdentity(o.as, (issuer) =>
      Promise.resolve().then(() =>
        capsuleToTbz(capsule, issuer, {
          ...(receiver ? { receiver: publicOf(receiver) } : {}),
          ...(o.allowPlaintext ? { allowPlaintext: true } : {}),
        }),
      ),
    );
    await writeFileAtomic(o.out, tbz, { mode: 0o600, exclusive: true });
    if (o.json) printJson({ file: o.out, sam_id: capsule.sam_id, format: 'tbz' });
    else out(`${green('wrote')} ${o.out}  ${dim(`TBZ · ${capsule.sam_id} · plaintext`)}`);
  });
}

export async function fromTbz(file: string, o: SamConvertOpts): Promise<void> {
  checkActor(o.as, '--as');
  const bytes = await readInput(file, 'capsule');
  const home = tibetHome();
  await guarded(async () => {
    const capsule = capsuleFromTbz(bytes, { directory: directory() });
    if (capsule.issuer_id !== o.as)
      throw new UserError(`${o.as} is not the issuer of ${capsule.sam_id} (${capsule.issuer_id})`, {
        code: 'NOT_ISSUER',
      });
    const gateway =
      capsule.gateway_id !== null ? await loadPublicIdentity(home, capsule.gateway_id) : undefined;
    const tza = await withIdentity(o.as, (issuer) =>
      Promise.resolve().then(() =>
        sealCapsule(capsule, issuer, gateway ? { gateway: publicOf(gateway) } : {}),
      ),
    );
    await writeFileAtomic(o.out, tza, { mode: 0o600, exclusive: true });
    if (o.json) printJson({ file: o.out, sam_id: capsule.sam_id, format: 'tza' });
    else out(`${green('wrote')} ${o.out}  ${dim(`tza/1 · ${capsule.sam_id}`)}`);
  });
}

/** The PublicIdentity fields only (loadPublicIdentity adds decoded keys). */
function publicOf(p: Awaited<ReturnType<typeof loadPublicIdentity>>) {
  return {
    format: p.format,
    id: p.id,
    actor_class: p.actor_class,
    created_at: p.created_at,
    signing_key: p.signing_key,
    encryption_key: p.encryption_key,
    self_signature: p.self_signature,
  };
}
