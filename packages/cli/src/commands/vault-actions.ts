import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isActorId, parseRfc3339, utf8, wipe, type Identity } from '@tibet/core';
import type { AuditClient } from '@tibet/continuityd';
import { Keychain, KeychainError, SECRET_ID } from '@tibet/keychain';
import {
  Vault,
  VaultError,
  VAULT_ID,
  formatSpan,
  runWatcher,
  type CheckReport,
  type VaultErrorCode,
  type VaultInfo,
} from '@tibet/vault';
import { checkActor } from '../checks.js';
import { keychainServiceId, readJsonConfig } from '../config.js';
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
  VaultActingOpts,
  VaultCommon,
  VaultCreateOpts,
  VaultListOpts,
  VaultOpenOpts,
  VaultWatchOpts,
} from './vault.js';

// ------------------------------------------------------------------ errors

const USAGE_CODES: readonly VaultErrorCode[] = ['INVALID_INPUT', 'INVALID_VAULT_ID'];

function hintFor(code: VaultErrorCode, id: string | undefined): string | undefined {
  const x = id ?? '<vault-id>';
  switch (code) {
    case 'VAULT_NOT_FOUND':
      return 'see `tibet vault list`';
    case 'NOT_OWNER':
    case 'NOT_BENEFICIARY':
    case 'SIGNATURE_INVALID':
      return `the refusal is logged; see who may: \`tibet vault info ${x}\``;
    case 'NOT_RELEASED':
      return `the refusal is logged; see when it releases: \`tibet vault info ${x}\``;
    case 'ALREADY_RELEASED':
      return `the vault was released; see \`tibet vault info ${x}\``;
    case 'KEYCHAIN_REFUSED':
      return 'see the secret in the keychain: `tkc show <secret-id>`';
    case 'SECRET_IN_VAULT':
      return 'one sealed vault per secret';
    case 'AUDIT_FAILED':
      return 'nothing changed; check the log with `tibet continuityd head`';
    case 'STORE_LOCKED':
      return 'another process is working on this vault; try again';
    case 'STORE_CORRUPT':
      return 'the vault store does not verify: do not change it by hand; restore from a backup';
    case 'VAULT_EXISTS':
    case 'INVALID_INPUT':
    case 'INVALID_VAULT_ID':
      return undefined;
  }
}

function translate(e: unknown, id?: string): unknown {
  if (VaultError.is(e)) return refusal(e, USAGE_CODES, hintFor(e.code, id));
  if (KeychainError.is(e)) return refusal(e, ['INVALID_INPUT']);
  return e;
}

function checkVaultId(id: string): void {
  if (!VAULT_ID.test(id))
    throw new UserError(`"${id}" is not a vault id`, {
      exitCode: EXIT.usage,
      code: 'INVALID_VAULT_ID',
      hint: 'vault ids look like vlt_0123456789abcdef (see `tibet vault list`)',
    });
}

// ------------------------------------------------------------------ configuration

interface VaultConfig {
  format: 'tibet-vault-config/1';
  identity: string;
}

const vaultConfigPath = (home: string): string => join(home, 'vault', 'config.json');

async function vaultIdentityId(home: string, o: VaultCommon): Promise<string> {
  if (o.vault !== undefined) {
    checkActor(o.vault, '--vault');
    return o.vault;
  }
  const c = (await readJsonConfig(vaultConfigPath(home))) as
    Partial<VaultConfig> | undefined | null;
  if (c === undefined)
    throw usage(
      `no vault in ${home}`,
      'run `tibet vault init --org <org>` first, or pass --vault <id>',
    );
  if (c?.format !== 'tibet-vault-config/1' || !isActorId(c.identity))
    throw new UserError(`${vaultConfigPath(home)} is not a vault configuration`, {
      code: 'CONFIG_INVALID',
      hint: 'remove it and run `tibet vault init` again',
    });
  return c.identity;
}

interface Session {
  vault: Vault;
  actor: Identity | undefined;
}

/**
 * Open the keychain and the vault for one command: connect to the log, unlock the
 * keychain's and the vault's identities (and the actor's, when `as` is given), run `fn`,
 * then wipe the keys and close the log. VaultError and KeychainError leave as UserError.
 */
async function withVault<T>(
  o: VaultCommon,
  as: string | undefined,
  vaultId: string | undefined,
  fn: (s: Session) => Promise<T>,
): Promise<T> {
  const home = tibetHome();
  const sid = await keychainServiceId(home, o.service);
  const vid = await vaultIdentityId(home, o);
  if (as !== undefined) checkActor(as, '--as');
  const audit = await connect(o);
  const held: Identity[] = [];
  const unlock = async (id: string): Promise<Identity> => {
    const have = held.find((h) => h.id === id);
    if (have) return have;
    const i = await loadPrivateIdentity(home, id);
    held.push(i);
    if (i.id !== id)
      throw new UserError(`the key file of ${id} holds ${i.id}`, { code: 'KEYFILE_INVALID' });
    return i;
  };
  let failed = false;
  try {
    const service = await unlock(sid);
    const identity = await unlock(vid);
    const actor = as === undefined ? undefined : await unlock(as);
    const directory = new HomeRegistry(home).registry;
    const keychain = new Keychain({ home, audit, service, directory });
    const vault = new Vault({ home, keychain, identity, directory });
    return await fn({ vault, actor });
  } catch (e) {
    failed = true;
    throw translate(e, vaultId);
  } finally {
    for (const h of held) h.destroy();
    if (failed) await audit.close().catch(() => undefined);
    else await audit.close();
  }
}

/**
 * The vault watcher inside another daemon (`tibet continuityd serve --watch-vaults`): a Vault
 * over the daemon's own audit client; checks every `intervalMs` until `signal` aborts.
 * Errors of one check are reported and the next check goes on.
 */
export async function watchInDaemon(
  audit: AuditClient,
  intervalMs: number,
  signal: AbortSignal,
  report: (line: string) => void,
): Promise<{ done: Promise<void> }> {
  const home = tibetHome();
  const service = await loadPrivateIdentity(home, await keychainServiceId(home, undefined));
  const identity = await loadPrivateIdentity(home, await vaultIdentityId(home, {}));
  const directory = new HomeRegistry(home).registry;
  const keychain = new Keychain({ home, audit, service, directory });
  const vault = new Vault({ home, keychain, identity, directory });
  const done = runWatcher({
    vaults: vault,
    intervalMs,
    signal,
    onCheck: (r) => {
      if (r.clock === 'regressed') report(`vault clock reads ${r.at}, before ${r.high_water}`);
      for (const v of r.vaults)
        if (v.outcome !== 'sealed' && v.outcome !== 'already-released')
          report(
            `vault ${v.vault_id}: ${v.outcome}${v.reason ? ` (${v.reason})` : ''}${v.error ? ` ${v.error.code}: ${v.error.message}` : ''}`,
          );
    },
    onError: (e) => report(`vault check failed: ${e instanceof Error ? e.message : String(e)}`),
  })
    .then(() => undefined)
    .finally(() => {
      service.destroy();
      identity.destroy();
    });
  return { done };
}

// ------------------------------------------------------------------ output

function statusText(v: VaultInfo, stream?: NodeJS.WriteStream): string {
  switch (v.status) {
    case 'sealed':
      return green('sealed', stream);
    case 'due':
      return yellow('due', stream);
    case 'releasing':
      return yellow('releasing', stream);
    case 'released':
      return bold('released', stream);
    case 'release-failed':
      return red('release-failed', stream);
  }
}

function whenText(v: VaultInfo): string {
  if (v.release) return `released ${v.release.decided_at} (${v.release.reason})`;
  if (v.time_until_release_ms === 0) return `due since ${v.release_at ?? '?'}`;
  return `releases ${v.release_at ?? '?'} (in ${formatSpan(v.time_until_release_ms ?? 0)})`;
}

function renderInfo(v: VaultInfo): void {
  out(`${bold(v.vault_id)}  ${statusText(v, process.stdout)}  ${dim(v.secret_id)}`);
  const row = (k: string, val: string | null): void => out(`  ${k.padEnd(14)}${val ?? dim('—')}`);
  row('note', v.public_note);
  row('owner', v.owner_id);
  row('beneficiaries', v.beneficiaries.join(', '));
  row('created', v.created_at);
  row('unlock at', v.unlock_at);
  row('dead-man', v.dead_man_interval);
  if (v.dead_man_interval)
    row('heartbeat', `${v.last_heartbeat_at ?? '—'} (${v.heartbeats} so far)`);
  row('deadline', v.deadline);
  row('when', whenText(v));
  if (v.release?.transfer === 'failed')
    row('failure', `${v.release.failure?.message ?? '?'} [${v.release.failure?.code ?? '?'}]`);
}

// ------------------------------------------------------------------ commands

export async function init(o: { org: string; json?: boolean }): Promise<void> {
  const id = `jis:${o.org}:vault`;
  if (!isActorId(id))
    throw usage(`--org: "${o.org}" is not an organisation name`, 'e.g. --org acme');
  const home = tibetHome();
  const existing = (await readJsonConfig(vaultConfigPath(home))) as
    Partial<VaultConfig> | undefined;
  if (existing?.identity !== undefined && existing.identity !== id)
    throw new UserError(`${home} already has a vault: ${String(existing.identity)}`, {
      code: 'VAULT_CONFIG_EXISTS',
      hint: 'use another TIBET_HOME for another organisation',
    });
  const paths = identityPaths(home, id);
  let created = false;
  if (existsSync(paths.pub)) {
    const pub = await loadPublicIdentity(home, id);
    if (pub.actor_class !== 'system')
      throw new UserError(`${id} exists with class ${pub.actor_class}, not system`, {
        code: 'WRONG_ACTOR_CLASS',
      });
  } else {
    const { identity } = await createStoredIdentity(home, id, 'system');
    identity.destroy();
    created = true;
  }
  const config: VaultConfig = { format: 'tibet-vault-config/1', identity: id };
  if (!existing)
    await writeFileAtomic(vaultConfigPath(home), JSON.stringify(config, null, 2) + '\n', {
      mode: 0o644,
    });
  if (o.json) {
    printJson({ home, identity: id, created, key_file: paths.key, config: vaultConfigPath(home) });
    return;
  }
  out(
    `${created ? green('created') : dim('exists ')} ${bold(id)} (system)  ${dim("the vault's identity: signs records and releases")}`,
  );
  if (created) out(`  private keys  ${paths.key} ${dim('(encrypted)')}`);
  out(`${existing ? dim('exists ') : green('wrote  ')} ${vaultConfigPath(home)}`);
}

async function readContent(o: VaultCreateOpts): Promise<{ bytes: Uint8Array; source: string }> {
  if (o.fromStdin) {
    if (process.stdin.isTTY)
      throw usage(
        '--from-stdin: stdin is a terminal, where the content would be echoed',
        'pipe it in, or use --from-file or --from-env',
      );
    return { bytes: await readStdin(), source: 'stdin' };
  }
  if (o.fromFile !== undefined)
    return { bytes: await readInput(o.fromFile, 'content file'), source: 'file' };
  const name = o.fromEnv!;
  const v = process.env[name];
  if (v === undefined) throw usage(`--from-env: ${name} is not set`);
  delete process.env[name];
  return { bytes: utf8(v), source: 'env' };
}

export async function create(o: VaultCreateOpts): Promise<void> {
  checkActor(o.as, '--as');
  for (const b of o.beneficiary) checkActor(b, '--beneficiary');
  if (o.id !== undefined) checkVaultId(o.id);
  if (o.unlockAt === undefined && o.deadMan === undefined)
    throw usage('give --unlock-at, --dead-man, or both');
  const sources = [
    o.fromStdin,
    o.fromFile !== undefined,
    o.fromEnv !== undefined,
    o.secret !== undefined,
  ].filter(Boolean).length;
  if (sources !== 1)
    throw usage(
      sources === 0
        ? 'the vault needs content: --from-stdin, --from-file PATH, --from-env VAR, or --secret ID'
        : 'give only one of --from-stdin, --from-file, --from-env, --secret',
      'content is never taken from an argument (it would show in ps and shell history)',
    );
  if (o.secret !== undefined && !SECRET_ID.test(o.secret))
    throw usage(`--secret: "${o.secret}" is not a secret id`);
  if (o.secret !== undefined && o.type !== undefined)
    throw usage('--type is for new content, not for --secret');
  const content = o.secret === undefined ? await readContent(o) : undefined;
  if (content && content.bytes.length === 0) throw usage('the content is empty');
  try {
    await withVault(o, o.as, o.id, async ({ vault, actor }) => {
      const r = await vault.create({
        actor: actor!,
        publicNote: o.note,
        beneficiaries: o.beneficiary,
        ...(content ? { content: content.bytes, source: content.source } : {}),
        ...(o.secret !== undefined ? { secretId: o.secret } : {}),
        ...(o.type !== undefined ? { type: o.type } : {}),
        ...(o.unlockAt !== undefined ? { unlockAt: o.unlockAt } : {}),
        ...(o.deadMan !== undefined ? { deadMan: o.deadMan } : {}),
        ...(o.id !== undefined ? { vaultId: o.id } : {}),
        ...(o.why !== undefined ? { reason: o.why } : {}),
      });
      if (o.json) {
        printJson({
          event: r.token.event,
          action_id: r.token.action_id,
          log_index: r.receipt.index,
          secret_action_id: r.secretActionId,
          ...r.info,
        });
        return;
      }
      out(
        `${green('sealed')} ${bold(r.info.vault_id)}  ${dim(`vault-created · log #${r.receipt.index} · ${r.token.action_id}`)}`,
      );
      out(`  ${whenText(r.info)} · for ${r.info.beneficiaries.join(', ')}`);
      if (r.info.dead_man_interval)
        out(`  send heartbeats: tibet vault heartbeat ${r.info.vault_id} --as ${r.info.owner_id}`);
    });
  } finally {
    if (content) wipe(content.bytes);
  }
}

export async function heartbeat(id: string, o: VaultActingOpts): Promise<void> {
  checkVaultId(id);
  await withVault(o, o.as, id, async ({ vault, actor }) => {
    const r = await vault.heartbeat({
      actor: actor!,
      vaultId: id,
      ...(o.why !== undefined ? { reason: o.why } : {}),
    });
    if (o.json) {
      printJson({
        event: r.token.event,
        action_id: r.token.action_id,
        log_index: r.receipt.index,
        ...r.info,
      });
      return;
    }
    out(
      `${green('heartbeat')} ${bold(id)}  ${dim(`log #${r.receipt.index} · ${r.token.action_id}`)}`,
    );
    out(`  next deadline ${r.info.deadline ?? '—'} (${whenText(r.info)})`);
  });
}

function reportLines(r: CheckReport, all: boolean): void {
  if (r.clock === 'regressed')
    note(
      yellow(
        `warning: the clock reads ${r.at}, before ${r.high_water} already seen: nothing is released`,
        process.stderr,
      ),
    );
  for (const v of r.vaults) {
    if (!all && (v.outcome === 'sealed' || v.outcome === 'already-released')) continue;
    const what =
      v.outcome === 'error'
        ? red(`error ${v.error?.code ?? ''}: ${v.error?.message ?? ''}`, process.stderr)
        : v.outcome === 'released' || v.outcome === 'completed'
          ? green(`${v.outcome}: ${v.reason ?? ''}`, process.stderr)
          : `${v.outcome}${v.release_at ? ` (releases ${v.release_at})` : ''}`;
    note(`${v.vault_id}  ${what}`);
  }
}

export async function check(o: VaultCommon & { at?: string }): Promise<void> {
  let at: Date | undefined;
  if (o.at !== undefined) {
    const d = parseRfc3339(o.at);
    if (!d) throw usage(`--at "${o.at}" is not an RFC 3339 UTC time`, 'e.g. 2027-01-01T00:00:00Z');
    at = d;
  }
  await withVault(o, undefined, undefined, async ({ vault }) => {
    const r = await vault.check(at ? { at } : {});
    if (o.json) printJson(r);
    else {
      reportLines(r, true);
      if (r.vaults.length === 0) note(dim('no vaults', process.stderr));
    }
  });
}

export async function open(id: string, o: VaultOpenOpts): Promise<void> {
  checkVaultId(id);
  if ((o.out !== undefined) === Boolean(o.stdout))
    throw usage(
      'say where the content goes: exactly one of --out FILE or --stdout',
      'content is never printed by default',
    );
  if (o.stdout && o.json)
    throw usage('--json cannot be combined with --stdout (the content is all that goes there)');
  if (o.out !== undefined && existsSync(o.out))
    throw usage(`${o.out} already exists`, 'open never overwrites: choose a new file');
  await withVault(o, o.as, id, async ({ vault, actor }) => {
    const r = await vault.open({
      actor: actor!,
      vaultId: id,
      ...(o.why !== undefined ? { reason: o.why } : {}),
    });
    try {
      if (o.stdout)
        await new Promise<void>((resolve, reject) =>
          process.stdout.write(r.content, (err) => (err ? reject(err) : resolve())),
        );
      else await writeFileAtomic(o.out!, r.content, { mode: 0o600, exclusive: true });
    } finally {
      wipe(r.content);
    }
    const summary = {
      event: 'vault-opened',
      vault_id: r.vault_id,
      secret_id: r.secret_id,
      action_id: r.action_id,
      unsealed_action_id: r.unsealed_action_id,
      ...(o.out !== undefined ? { file: o.out } : {}),
    };
    if (o.json) printJson(summary);
    else
      note(
        `${green('opened')} ${bold(id)}  ${dim(`vault-opened ${r.action_id} · secret-unsealed ${r.unsealed_action_id}`)}${o.out !== undefined ? `\n  written to ${o.out} (mode 0600)` : ''}`,
      );
  });
}

export async function list(o: VaultListOpts): Promise<void> {
  if (o.owner !== undefined) checkActor(o.owner, '--owner');
  if (o.beneficiary !== undefined) checkActor(o.beneficiary, '--beneficiary');
  await withVault(o, undefined, undefined, async ({ vault }) => {
    const all = await vault.list({
      ...(o.owner !== undefined ? { owner: o.owner } : {}),
      ...(o.beneficiary !== undefined ? { beneficiary: o.beneficiary } : {}),
    });
    if (o.json) {
      printJson(all);
      return;
    }
    if (all.length === 0) note(dim('no vaults', process.stderr));
    for (const v of all)
      out(
        `${bold(v.vault_id)}  ${statusText(v, process.stdout)}  ${whenText(v)}  ${dim(v.public_note)}`,
      );
  });
}

export async function info(id: string, o: VaultCommon): Promise<void> {
  checkVaultId(id);
  await withVault(o, undefined, id, async ({ vault }) => {
    const v = await vault.info(id);
    if (o.json) printJson(v);
    else renderInfo(v);
  });
}

export async function watch(o: VaultWatchOpts): Promise<void> {
  const seconds = o.interval === undefined ? 30 : Number(o.interval);
  if (!(Number.isFinite(seconds) && seconds >= 0.05 && seconds <= 86_400))
    throw usage('--interval must be a number of seconds between 0.05 and 86400');
  await withVault(o, undefined, undefined, async ({ vault }) => {
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      if (!o.json)
        note(
          dim(`watching ${vault.home}/vault every ${seconds} s (Ctrl-C to stop)`, process.stderr),
        );
      await runWatcher({
        vaults: vault,
        intervalMs: Math.round(seconds * 1000),
        signal: stop.signal,
        ...(o.once ? { once: true } : {}),
        onCheck: (r) => {
          if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
          else reportLines(r, false);
        },
        onError: (e) => {
          const msg = e instanceof Error ? e.message : String(e);
          if (o.json) process.stdout.write(JSON.stringify({ error: { message: msg } }) + '\n');
          note(red(`check failed: ${msg}`, process.stderr));
        },
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}
