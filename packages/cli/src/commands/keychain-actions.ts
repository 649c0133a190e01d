import { existsSync } from 'node:fs';
import { isActorId, parseRfc3339, utf8, wipe, type Identity } from '@tibet/core';
import {
  AUTHORITY_MODES,
  CUSTODY_ROLES,
  GENERATABLE_TYPES,
  Keychain,
  KeychainError,
  REPORTABLE_EXPOSURES,
  SECRET_ID,
  KeychainTimeline,
  parseSecretType,
  timelineSourceFor,
  toRecord,
  verifyKeychain,
  type AuthorityMode,
  type CustodyRole,
  type KeychainErrorCode,
  type Outcome,
  type ReportableExposure,
  type SecretPolicy,
  type SecretState,
  type SecretType,
} from '@tibet/keychain';
import { checkActor } from '../checks.js';
import {
  keychainConfigPath,
  keychainServiceId,
  readKeychainConfig,
  type KeychainConfig,
} from '../config.js';
import { EXIT, UserError, refusal, usage } from '../errors.js';
import { readInput, readStdin, tibetHome, writeFileAtomic } from '../home.js';
import {
  createStoredIdentity,
  identityPaths,
  loadPrivateIdentity,
  loadPublicIdentity,
} from '../identities.js';
import { bold, dim, green, note, out, printJson, red, yellow } from '../output.js';
import { HomeRegistry } from '../registry.js';
import { connect } from './continuityd-actions.js';
import type {
  KcActing,
  KcAddOpts,
  KcCommon,
  KcPolicyOpts,
  KcQueryOpts,
  KcSource,
} from './keychain.js';

// ------------------------------------------------------------------ errors

/** Keychain codes that mean "the input was wrong" (exit 2) rather than "refused" (exit 1). */
const USAGE_CODES: readonly KeychainErrorCode[] = [
  'INVALID_INPUT',
  'INVALID_SECRET_ID',
  'INVALID_SECRET_TYPE',
];

function hintFor(code: KeychainErrorCode, id: string | undefined): string | undefined {
  const x = id ?? '<secret-id>';
  switch (code) {
    case 'SECRET_NOT_FOUND':
      return 'see `tkc list`';
    case 'SECRET_EXISTS':
      return `to replace its material, rotate it: \`tkc rotate ${x} …\``;
    case 'SECRET_EXPOSED':
    case 'ROTATION_REQUIRED':
      return `rotate it first: \`tkc rotate ${x} --from-stdin …\``;
    case 'VERSION_MISMATCH':
      return 'the secret was rotated since the capsule was issued: ask for a new capsule';
    case 'POLICY_DENIED':
      return `the refusal is logged (secret-denied); see \`tkc policy ${x}\``;
    case 'NOT_AUTHORIZED':
      return `the refusal is logged (secret-denied); see who holds which role: \`tkc show ${x}\``;
    case 'INVALID_TRANSITION':
    case 'SECRET_EXPIRED':
    case 'SECRET_DESTROYED':
      return `see its lifecycle: \`tkc show ${x}\``;
    case 'HANDOFF_NOT_PENDING':
      return 'an owner handoff is offered with `tkc delegate --role owner` first';
    case 'NOT_A_RECIPIENT':
      return (
        'the material is sealed to the keychain, the owner, the custodian and each actor named ' +
        `by id in the reveal policy: see \`tkc show ${x}\``
      );
    case 'AUDIT_FAILED':
      return 'nothing changed; check the log with `tibet continuityd head`';
    case 'STORE_LOCKED':
      return 'another process is changing this secret; try again';
    case 'STORE_CORRUPT':
      return 'the store does not verify: do not change it by hand; restore from a backup';
    case 'INVALID_INPUT':
    case 'INVALID_SECRET_ID':
    case 'INVALID_SECRET_TYPE':
      return undefined;
  }
}

/** A KeychainError becomes a one-line UserError with its code; anything else passes. */
function translate(e: unknown, id?: string): unknown {
  return KeychainError.is(e) ? refusal(e, USAGE_CODES, hintFor(e.code, id)) : e;
}

function invalid(code: KeychainErrorCode, message: string, hint?: string): UserError {
  return new UserError(message, { exitCode: EXIT.usage, code, ...(hint ? { hint } : {}) });
}

// ------------------------------------------------------------------ checks

function checkSecretId(id: string): void {
  if (!SECRET_ID.test(id))
    throw invalid(
      'INVALID_SECRET_ID',
      `"${id}" is not a secret id`,
      '3–96 of a-z 0-9 _ . - starting with a letter, e.g. sec_pypi_001',
    );
}

function checkType(t: string, generate: boolean): SecretType {
  const type = parseSecretType(t);
  if (!type) throw invalid('INVALID_SECRET_TYPE', `unknown secret type "${t}"`, 'see --help');
  if (generate && !GENERATABLE_TYPES.includes(type))
    throw invalid(
      'INVALID_SECRET_TYPE',
      `the keychain cannot generate a ${type}`,
      `import it with \`tkc add\`; generatable: ${GENERATABLE_TYPES.join(', ')}`,
    );
  return type;
}

function checkText(v: string, what: string): string {
  if (!v.trim()) throw usage(`${what} must not be empty`);
  return v;
}

const RFC3339_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?[+-]\d{2}:\d{2}$/;

function checkDate(v: string | undefined): Date | undefined {
  if (v === undefined) return undefined;
  const d = parseRfc3339(v) ?? (RFC3339_OFFSET.test(v) ? new Date(v) : undefined);
  if (!d || Number.isNaN(d.getTime()))
    throw usage(`--expires: "${v}" is not an RFC 3339 time`, 'e.g. 2027-01-01T00:00:00Z');
  return d;
}

function oneOf<T extends string>(v: string, list: readonly T[], what: string): T {
  if (!(list as readonly string[]).includes(v))
    throw usage(`${what} must be one of ${list.join(', ')}; got "${v}"`);
  return v as T;
}

// ------------------------------------------------------------------ material sources

interface Material {
  bytes: Uint8Array;
  /** What is recorded in the event: the kind of source, never the value or a path. */
  source: 'stdin' | 'file' | 'env';
}

function countSources(o: KcSource & { generate?: boolean }): number {
  return [o.fromStdin, o.fromFile !== undefined, o.fromEnv !== undefined, o.generate].filter(
    Boolean,
  ).length;
}

/** Read the secret from the one source given. Never from an argument. */
async function readMaterial(o: KcSource): Promise<Material> {
  let m: Material;
  if (o.fromStdin) {
    if (process.stdin.isTTY)
      throw usage(
        '--from-stdin: stdin is a terminal, where the secret would be echoed',
        'pipe it in (printf %s "$TOKEN" | tkc …), or use --from-file or --from-env',
      );
    m = { bytes: await readStdin(), source: 'stdin' };
  } else if (o.fromFile !== undefined) {
    m = { bytes: await readInput(o.fromFile, 'secret file'), source: 'file' };
  } else {
    const name = o.fromEnv!;
    const v = process.env[name];
    if (v === undefined) throw usage(`--from-env: ${name} is not set`);
    // the string itself cannot be wiped; at least this process stops handing it on
    delete process.env[name];
    m = { bytes: utf8(v), source: 'env' };
  }
  if (m.bytes.length === 0) throw invalid('INVALID_INPUT', 'the secret is empty');
  if (m.source !== 'file' && m.bytes[m.bytes.length - 1] === 0x0a)
    note(
      yellow(
        'warning: the secret ends with a newline, which is kept as part of it (printf %s avoids it)',
        process.stderr,
      ),
    );
  return m;
}

// ------------------------------------------------------------------ the keychain, opened

interface Session {
  kc: Keychain;
  /** The acting identity (`--as`), when the command has one. */
  actor: Identity;
}

/**
 * Open the keychain for one command: connect to the log, unlock the keychain's identity
 * (and the actor's, when `as` is given), run `fn`, then wipe the keys and close the log.
 * Every KeychainError leaves as a UserError with its code.
 */
async function withKeychain<T>(
  o: KcCommon,
  as: string | undefined,
  secretId: string | undefined,
  fn: (s: Session) => Promise<T>,
): Promise<T> {
  const home = tibetHome();
  const sid = await keychainServiceId(home, o.service);
  if (as !== undefined) checkActor(as, '--as');
  const audit = await connect(o);
  let service: Identity | undefined;
  let actor: Identity | undefined;
  let failed = false;
  try {
    service = await loadPrivateIdentity(home, sid);
    if (service.id !== sid)
      throw new UserError(`the key file of ${sid} holds ${service.id}`, {
        code: 'KEYFILE_INVALID',
      });
    actor = as === undefined || as === sid ? service : await loadPrivateIdentity(home, as);
    const kc = new Keychain({
      home,
      audit,
      service,
      directory: new HomeRegistry(home).registry,
    });
    return await fn({ kc, actor });
  } catch (e) {
    failed = true;
    throw translate(e, secretId);
  } finally {
    if (actor && actor !== service) actor.destroy();
    service?.destroy();
    if (failed) await audit.close().catch(() => undefined);
    else await audit.close();
  }
}

// ------------------------------------------------------------------ output

function custody(s: SecretState): string {
  return [
    `owner ${s.owner_id ?? '—'}`,
    `custodian ${s.custodian_id ?? '—'}`,
    `operator ${s.active_operator_id ?? '—'}`,
  ].join(' · ');
}

function condition(s: SecretState, stream?: NodeJS.WriteStream): string {
  const leaked = !['sealed', 'in-use', 'rotated'].includes(s.exposure_state);
  const life =
    s.lifecycle_state === 'active' ? green(s.lifecycle_state, stream) : s.lifecycle_state;
  return [
    `v${s.version}`,
    s.lifecycle_state === 'compromised' ? red(life, stream) : life,
    leaked ? red(s.exposure_state, stream) : s.exposure_state,
    ...(s.rotation_required ? [yellow('rotation required', stream)] : []),
    ...(s.archived ? ['archived'] : []),
  ].join(' · ');
}

/** The result of a change: JSON on stdout, or two human lines (stderr when `quiet`). */
function done(
  o: KcCommon,
  verb: string,
  r: Outcome,
  extra: Record<string, unknown> = {},
  quiet = false,
): void {
  if (o.json) {
    printJson({
      event: r.token.event,
      action_id: r.receipt.actionId,
      log_index: r.receipt.index,
      received_at: r.receipt.receivedAt,
      lifecycle_state: r.state.lifecycle_state,
      version: r.state.version,
      record: r.record,
      ...extra,
    });
    return;
  }
  const stream = quiet ? process.stderr : process.stdout;
  const say = quiet ? note : out;
  say(
    `${green(verb, stream)} ${bold(r.state.secret_id, stream)}  ${dim(`${r.token.event} · log #${r.receipt.index} · ${r.receipt.actionId}`, stream)}`,
  );
  say(`  ${condition(r.state, stream)} · ${custody(r.state)}`);
}

function policyLines(p: SecretPolicy): string[] {
  const l = (v: string[]): string => (v.length ? v.join(', ') : dim('(nobody)'));
  return [
    `reveal     ${l(p.reveal)}`,
    `use        ${l(p.use)}`,
    `targets    ${l(p.targets)}`,
    `lanes      ${l(p.lanes)}`,
    `max ttl    ${p.max_capsule_ttl_s} s`,
  ];
}

function renderState(s: SecretState): void {
  out(`${bold(s.secret_id)}  ${s.secret_type}  ${condition(s)}`);
  const row = (k: string, v: string | null | undefined): void =>
    out(`  ${k.padEnd(14)}${v ?? dim('—')}`);
  row('issuer', s.issuer);
  row('scope', s.scope);
  row('created', s.created_at);
  row('expires', s.expires_at);
  row('owner', s.owner_id);
  row('custodian', s.custodian_id);
  row('operator', s.active_operator_id);
  if (s.pending_handoff)
    row(
      'pending',
      `${s.pending_handoff.role} → ${s.pending_handoff.assignee} (offered by ${s.pending_handoff.offered_by})`,
    );
  row('exposure', s.exposure_state);
  if (s.exposure_evidence !== null) row('evidence', s.exposure_evidence);
  row('rotation', s.rotation_required ? yellow('required') : 'not required');
  row('last access', s.last_access_action_id);
  row('last rotation', s.last_rotation_action_id);
  if (s.public_key) row('public key', s.public_key);
  for (const n of s.notes) row('note', n);
  out('  policy');
  for (const l of policyLines(s.policy)) out(`    ${l}`);
  out('  versions');
  for (const v of s.versions)
    out(
      `    v${v.version}  ${v.state.padEnd(12)} created ${v.created_at}${v.retired_at ? `  retired ${v.retired_at}` : ''}${v.material_sha256 ? '' : dim('  (material shredded)')}`,
    );
}

async function writeStdout(data: Uint8Array): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(data, (err) => (err ? reject(err) : resolve())),
  );
}

// ------------------------------------------------------------------ commands

export async function init(o: { org: string; log?: string; json?: boolean }): Promise<void> {
  const service = `jis:${o.org}:keychain`;
  if (!isActorId(service))
    throw usage(`--org: "${o.org}" is not an organisation name`, 'e.g. --org acme');
  const log = o.log ?? `jis:${o.org}:auditlog`;
  checkActor(log, '--log');
  const home = tibetHome();
  const existing = await readKeychainConfig(home);
  if (existing && existing.service !== service)
    throw new UserError(`${home} already has a keychain: ${existing.service}`, {
      code: 'KEYCHAIN_EXISTS',
      hint: 'use another TIBET_HOME for another organisation',
    });
  const made: {
    role: string;
    id: string;
    created: boolean;
    key_file: string;
    public_file: string;
  }[] = [];
  for (const [role, id] of [
    ['keychain', service],
    ['log', log],
  ] as const) {
    const paths = identityPaths(home, id);
    if (existsSync(paths.pub)) {
      const pub = await loadPublicIdentity(home, id);
      if (pub.actor_class !== 'system')
        throw new UserError(`${id} exists with class ${pub.actor_class}, not system`, {
          code: 'WRONG_ACTOR_CLASS',
          hint: role === 'log' ? 'choose another with --log <id>' : 'use another organisation',
        });
      made.push({ role, id, created: false, key_file: paths.key, public_file: paths.pub });
    } else {
      const { identity } = await createStoredIdentity(home, id, 'system');
      identity.destroy();
      made.push({ role, id, created: true, key_file: paths.key, public_file: paths.pub });
    }
  }
  const config: KeychainConfig = { format: 'tibet-keychain-config/1', service, log };
  const wroteConfig = existing?.log !== log;
  if (wroteConfig)
    await writeFileAtomic(keychainConfigPath(home), JSON.stringify(config, null, 2) + '\n', {
      mode: 0o644,
    });
  if (o.json) {
    printJson({ home, service, log, identities: made, config: keychainConfigPath(home) });
    return;
  }
  for (const m of made) {
    const what =
      m.role === 'keychain'
        ? "the keychain's identity: signs revisions and refusals, opens sealed material"
        : "the audit log's identity: signs checkpoints";
    out(`${m.created ? green('created') : dim('exists ')} ${bold(m.id)} (system)  ${dim(what)}`);
    if (m.created) out(`  private keys  ${m.key_file} ${dim('(encrypted)')}`);
  }
  out(`${wroteConfig ? green('wrote  ') : dim('exists ')} ${keychainConfigPath(home)}`);
  note(
    `next: run the log (\`tibet continuityd serve --as ${log} &\`), or pass --log-as ${log} to each command`,
  );
}

export async function add(id: string, o: KcAddOpts): Promise<void> {
  checkSecretId(id);
  checkType(o.type, false);
  checkText(o.issuer, '--issuer');
  checkText(o.scope, '--scope');
  checkText(o.why, '--why');
  const expiresAt = checkDate(o.expires);
  if (o.operator !== undefined) checkActor(o.operator, '--operator');
  const n = countSources(o);
  if (n !== 1)
    throw usage(
      n === 0
        ? 'the secret needs a source: --from-stdin, --from-file PATH or --from-env VAR'
        : 'give only one of --from-stdin, --from-file, --from-env',
      'a secret is never taken from an argument (it would show in ps and shell history)',
    );
  const m = await readMaterial(o);
  try {
    await withKeychain(o, o.as, id, async ({ kc, actor }) => {
      const r = await kc.add({
        actor,
        secretId: id,
        type: o.type,
        issuer: o.issuer,
        scope: o.scope,
        material: m.bytes,
        expiresAt: expiresAt ?? null,
        ...(o.operator !== undefined ? { activeOperator: o.operator } : {}),
        reason: o.why,
        source: m.source,
      });
      done(o, 'imported', r);
    });
  } finally {
    wipe(m.bytes);
  }
}

export async function generate(id: string, o: Omit<KcAddOpts, keyof KcSource>): Promise<void> {
  checkSecretId(id);
  checkType(o.type, true);
  checkText(o.issuer, '--issuer');
  checkText(o.scope, '--scope');
  checkText(o.why, '--why');
  const expiresAt = checkDate(o.expires);
  if (o.operator !== undefined) checkActor(o.operator, '--operator');
  await withKeychain(o, o.as, id, async ({ kc, actor }) => {
    const r = await kc.add({
      actor,
      secretId: id,
      type: o.type,
      issuer: o.issuer,
      scope: o.scope,
      expiresAt: expiresAt ?? null,
      ...(o.operator !== undefined ? { activeOperator: o.operator } : {}),
      reason: o.why,
    });
    done(o, 'generated', r, { public_key: r.state.public_key });
    if (!o.json && r.state.public_key) out(`  public key ${r.state.public_key}`);
  });
}

export async function reveal(
  id: string,
  o: KcActing & { out?: string; stdout?: boolean },
): Promise<void> {
  checkSecretId(id);
  checkText(o.why, '--why');
  if ((o.out !== undefined) === Boolean(o.stdout))
    throw usage(
      'say where the secret goes: exactly one of --out FILE or --stdout',
      'a secret is never printed by default',
    );
  if (o.stdout && o.json)
    throw usage('--json cannot be combined with --stdout (the secret is all that goes there)');
  if (o.out !== undefined && existsSync(o.out))
    throw usage(`${o.out} already exists`, 'reveal never overwrites: choose a new file');
  await withKeychain(o, o.as, id, async ({ kc, actor }) => {
    const r = await kc.reveal({ actor, secretId: id, reason: o.why });
    try {
      if (o.stdout) await writeStdout(r.material);
      else await writeFileAtomic(o.out!, r.material, { mode: 0o600, exclusive: true });
    } finally {
      wipe(r.material);
    }
    done(o, 'revealed', r, o.out !== undefined ? { file: o.out } : {}, Boolean(o.stdout));
    if (o.out !== undefined && !o.json) out(`  written to ${o.out} ${dim('(mode 0600)')}`);
  });
}

export async function delegate(
  id: string,
  o: KcActing & { role: string; to: string; authority?: string },
): Promise<void> {
  checkSecretId(id);
  checkText(o.why, '--why');
  const role = oneOf<CustodyRole>(o.role, CUSTODY_ROLES, '--role');
  checkActor(o.to, '--to');
  const mode =
    o.authority === undefined
      ? undefined
      : oneOf<AuthorityMode>(o.authority, AUTHORITY_MODES, '--authority');
  await withKeychain(o, o.as, id, async ({ kc, actor }) => {
    const r = await kc.delegate({
      actor,
      secretId: id,
      reason: o.why,
      role,
      assignee: o.to,
      ...(mode ? { authorityMode: mode } : {}),
    });
    const pending = r.state.pending_handoff;
    done(o, pending ? 'offered' : 'delegated', r, { pending_handoff: pending });
    if (!o.json && pending)
      out(
        `  ${pending.role} of ${id} is offered to ${pending.assignee}; it takes effect when they run \`tkc accept ${id} --as ${pending.assignee} --why …\``,
      );
  });
}

export async function accept(id: string, o: KcActing): Promise<void> {
  checkSecretId(id);
  checkText(o.why, '--why');
  await withKeychain(o, o.as, id, async ({ kc, actor }) => {
    done(o, 'accepted', await kc.accept({ actor, secretId: id, reason: o.why }));
  });
}

export async function expose(
  id: string,
  o: KcActing & { state: string; evidence: string },
): Promise<void> {
  checkSecretId(id);
  checkText(o.why, '--why');
  const exposure = oneOf<ReportableExposure>(o.state, REPORTABLE_EXPOSURES, '--state');
  checkText(o.evidence, '--evidence');
  await withKeychain(o, o.as, id, async ({ kc, actor }) => {
    const r = await kc.expose({
      actor,
      secretId: id,
      reason: o.why,
      exposure,
      evidence: o.evidence,
    });
    done(o, 'exposed', r);
    if (!o.json) note(`rotate it: tkc rotate ${id} --from-stdin --as … --why …`);
  });
}

export async function rotate(
  id: string,
  o: KcActing & KcSource & { generate?: boolean },
): Promise<void> {
  checkSecretId(id);
  checkText(o.why, '--why');
  const n = countSources(o);
  if (n !== 1)
    throw usage(
      n === 0
        ? 'the new version needs a source: --from-stdin, --from-file PATH, --from-env VAR or --generate'
        : 'give only one of --from-stdin, --from-file, --from-env, --generate',
      'a secret is never taken from an argument (it would show in ps and shell history)',
    );
  const m = o.generate ? undefined : await readMaterial(o);
  try {
    await withKeychain(o, o.as, id, async ({ kc, actor }) => {
      const r = await kc.rotate({
        actor,
        secretId: id,
        reason: o.why,
        ...(m ? { material: m.bytes } : {}),
      });
      done(o, 'rotated', r, { public_key: r.state.public_key });
      if (!o.json && r.state.public_key) out(`  public key ${r.state.public_key}`);
    });
  } finally {
    if (m) wipe(m.bytes);
  }
}

export async function lifecycle(
  op: 'revoke' | 'archive' | 'suspend' | 'resume' | 'destroy',
  id: string,
  o: KcActing,
): Promise<void> {
  checkSecretId(id);
  checkText(o.why, '--why');
  await withKeychain(o, o.as, id, async ({ kc, actor }) => {
    const i = { actor, secretId: id, reason: o.why };
    switch (op) {
      case 'revoke':
        return done(o, 'revoked', await kc.revoke(i));
      case 'archive':
        return done(o, 'archived', await kc.archive(i));
      case 'suspend':
        return done(o, 'suspended', await kc.suspend(i));
      case 'resume':
        return done(o, 'resumed', await kc.resume(i));
      case 'destroy':
        return done(o, 'destroyed', await kc.destroy(i));
    }
  });
}

export async function list(o: KcCommon & { full?: boolean }): Promise<void> {
  await withKeychain(o, undefined, undefined, async ({ kc }) => {
    const all = await kc.list();
    if (o.json) {
      for (const s of all) out(JSON.stringify(o.full ? s : toRecord(s)));
      return;
    }
    if (!all.length) return note('no secrets yet (add one with `tkc add`)');
    for (const s of all)
      out(
        `${s.secret_id.padEnd(24)} ${s.secret_type.padEnd(20)} ${condition(s)}  ${dim(`owner ${s.owner_id ?? '—'}`)}`,
      );
  });
}

export async function show(id: string, o: KcCommon & { full?: boolean }): Promise<void> {
  checkSecretId(id);
  await withKeychain(o, undefined, id, async ({ kc }) => {
    const s = await kc.state(id);
    if (o.json) printJson(o.full ? s : toRecord(s));
    else renderState(s);
  });
}

function splitList(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

export async function policy(id: string, o: KcPolicyOpts): Promise<void> {
  checkSecretId(id);
  const change: Partial<SecretPolicy> = {};
  const lists = [
    ['reveal', o.reveal],
    ['use', o.use],
    ['targets', o.targets],
    ['lanes', o.lanes],
  ] as const;
  for (const [k, v] of lists) {
    const l = splitList(v);
    if (l) change[k] = l;
  }
  if (o.maxTtl !== undefined) {
    const n = Number(o.maxTtl);
    if (!/^\d+$/.test(o.maxTtl) || !(n >= 1 && n <= 86_400))
      throw usage('--max-ttl must be a whole number of seconds, 1..86400');
    change.max_capsule_ttl_s = n;
  }
  const changing = Object.keys(change).length > 0;
  if (!changing) {
    await withKeychain(o, undefined, id, async ({ kc }) => {
      const p = (await kc.state(id)).policy;
      if (o.json) printJson(p);
      else for (const l of policyLines(p)) out(l);
    });
    return;
  }
  if (o.as === undefined || o.why === undefined)
    throw usage('changing the policy needs --as <id> and --why <text>');
  checkText(o.why, '--why');
  const { as, why } = o;
  await withKeychain(o, as, id, async ({ kc, actor }) => {
    const r = await kc.setPolicy({ actor, secretId: id, reason: why, policy: change });
    done(o, 'policy changed', r, { policy: r.state.policy });
    if (!o.json) for (const l of policyLines(r.state.policy)) out(`    ${l}`);
  });
}

/** The timeline queries (`history`, `who-could`, `who-did`, `last-used`, `dependents`) and `verify`. */
export async function query(name: string, id: string | undefined, o: KcQueryOpts): Promise<void> {
  if (id !== undefined && !SECRET_ID.test(id)) throw usage(`"${id}" is not a secret id`);
  if (name !== 'verify' && id === undefined) throw usage(`${name} needs a secret id`);
  let at = new Date();
  if (o.at !== undefined) {
    const d = parseRfc3339(o.at);
    if (!d) throw usage('--at must be an RFC 3339 UTC time, e.g. 2026-11-28T12:00:00Z');
    at = d;
  }
  const action = o.action ?? (name === 'who-could' ? 'use' : undefined);
  if (action !== undefined && action !== 'reveal' && action !== 'use')
    throw usage('--action must be reveal or use');
  await withKeychain(o, undefined, id, async ({ kc }) => {
    if (name === 'verify') {
      const report = await verifyKeychain(kc);
      const shown = id ? report.secrets.filter((x) => x.id === id) : report.secrets;
      const ok = shown.every((x) => x.ok);
      if (o.json) printJson({ ...report, ok, secrets: shown });
      else {
        for (const x of shown) {
          out(`${x.ok ? green('ok     ') : red('FAILED ')} ${x.id}`);
          for (const p of x.problems)
            out(
              `        ${p.code}${p.revision !== undefined ? ` (revision ${p.revision})` : ''}: ${p.message}`,
            );
        }
        if (!shown.length) note('no secrets');
      }
      if (!ok) process.exitCode = EXIT.failed;
      return;
    }
    const t = new KeychainTimeline(timelineSourceFor(kc.audit));
    const sid = id!;
    switch (name) {
      case 'history': {
        const h = await t.history(sid);
        if (o.json) {
          for (const e of h.entries) process.stdout.write(JSON.stringify(e) + '\n');
          return;
        }
        for (const e of h.entries) {
          const who =
            e.outcome === 'denied'
              ? `${e.requested_by ?? e.actor} ${red('DENIED')} ${e.operation ?? ''} [${e.code ?? ''}]`
              : `${e.actor} (${e.actor_class})`;
          out(
            `#${String(e.index).padEnd(5)} ${dim(e.at)}  ${bold(e.event.padEnd(22))} ${who}  ${dim(e.action_id)}${e.parent_action_id ? dim(` ← ${e.parent_action_id}`) : ''}`,
          );
          if (e.reason) out(`        ${e.reason}`);
        }
        for (const g of h.gaps) out(yellow(`  gap: ${JSON.stringify(g)}`));
        for (const p of h.problems) out(red(`  problem: ${JSON.stringify(p)}`));
        return;
      }
      case 'who-could': {
        const a = await t.whoCould(sid, at, action as 'reveal' | 'use', {
          ...(o.target ? { targetAction: o.target } : {}),
          ...(o.lane ? { lane: o.lane } : {}),
        });
        if (o.json) return printJson(a);
        out(`who could ${a.action} ${sid} at ${a.at}:`);
        if (!a.existed) return out('  nobody: the secret did not exist yet');
        if (a.blocked) out(red(`  nobody: ${a.blocked.rule} — ${a.blocked.reason}`));
        for (const h of a.actors)
          out(
            `  ${green(h.actor)}  ${h.grants.map((g) => `${g.rule}${g.role ? ` (${g.role})` : ''}`).join(', ')}`,
          );
        for (const r of a.refused) out(`  ${dim(`${r.actor} refused by ${r.rule} [${r.code}]`)}`);
        out(dim(`  evidence: ${a.evidence.map((e) => `#${e.index}`).join(' ')}`));
        return;
      }
      case 'who-did': {
        const a = await t.whoDid(sid, action);
        if (o.json) return printJson(a);
        for (const x of a.accesses)
          out(
            `#${String(x.index).padEnd(5)} ${dim(x.at)}  ${x.action.padEnd(6)} ${x.actor}${x.on_behalf_of ? ` for ${x.on_behalf_of}` : ''}${x.target_action ? ` → ${x.target_action}` : ''}  ${dim(x.action_id)}`,
          );
        for (const d of a.denied) out(red(`  denied: ${JSON.stringify(d)}`));
        if (!a.accesses.length) out('nobody revealed or used it');
        return;
      }
      case 'last-used': {
        const a = await t.lastUsed(sid);
        if (o.json) return printJson(a);
        const l = a.last;
        out(
          l
            ? `${l.action} by ${l.actor}${l.on_behalf_of ? ` for ${l.on_behalf_of}` : ''} at ${l.at} (#${l.index}, ${l.action_id})`
            : 'never revealed or used',
        );
        return;
      }
      case 'dependents': {
        const a = await t.dependents(sid);
        if (o.json) return printJson(a);
        out(
          `since ${a.since ? `${a.since.event} ${a.since.at} (v${a.since.version})` : 'creation'}:`,
        );
        if (a.active_operator) out(`  active operator  ${a.active_operator.actor}`);
        for (const p of a.principals) out(`  used for        ${JSON.stringify(p)}`);
        for (const g of a.gateways) out(`  gateway         ${JSON.stringify(g)}`);
        for (const x of a.targets) out(`  target          ${x.target_action} (${x.uses} uses)`);
        for (const x of a.sessions) out(`  session         ${x.session_id} ${dim(x.at)}`);
        for (const x of a.revealed_to) out(`  revealed to     ${JSON.stringify(x)}`);
        return;
      }
      default:
        throw usage(`unknown query ${name}`);
    }
  });
}
