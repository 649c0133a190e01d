import { CoreError, assertActorClass, parseActorId, parsePublicIdentity } from '@tibet/core';
import { readInput, tibetHome, writeFileAtomic } from '../home.js';
import {
  createStoredIdentity,
  describeIdentity,
  identityPaths,
  listIdentities,
  loadPublicIdentity,
} from '../identities.js';
import { UserError, usage } from '../errors.js';
import { bold, dim, note, out, printJson } from '../output.js';

function checkId(id: string): void {
  try {
    parseActorId(id);
  } catch {
    throw usage(
      `"${id}" is not an actor id`,
      'actor ids look like jis:<org>:<name>, e.g. jis:acme:alice',
    );
  }
}

export async function create(id: string, o: { class: string; json?: boolean }): Promise<void> {
  checkId(id);
  try {
    assertActorClass(o.class);
  } catch {
    throw usage(
      `"${o.class}" is not an actor class`,
      'use human, machine, external, mcp-server, gateway or system',
    );
  }
  const { identity, paths } = await createStoredIdentity(tibetHome(), id, o.class);
  identity.destroy();
  if (o.json) printJson({ ...identity.public, key_file: paths.key, public_file: paths.pub });
  else {
    out(`${bold('created')} ${id} (${o.class})`);
    out(`  key id        ${identity.keyId}`);
    out(`  private keys  ${paths.key} ${dim('(encrypted)')}`);
    out(`  public        ${paths.pub}`);
  }
}

export async function list(o: { json?: boolean }): Promise<void> {
  const ids = await listIdentities(tibetHome());
  if (o.json) return printJson(ids);
  if (!ids.length)
    return note(`no identities in ${tibetHome()} (create one with \`tibet id create\`)`);
  for (const p of ids) out(`${p.id.padEnd(32)} ${p.actor_class.padEnd(11)} ${dim(p.created_at)}`);
}

export async function show(ref: string, o: { json?: boolean }): Promise<void> {
  const p = await loadPublicIdentity(tibetHome(), ref);
  const { signingKey: _s, encryptionKey: _e, ...pub } = p;
  if (o.json) return printJson(pub);
  for (const [k, v] of Object.entries(describeIdentity(p))) out(`${k.padEnd(15)} ${v}`);
}

export async function exportPublic(
  ref: string,
  o: { out?: string; json?: boolean },
): Promise<void> {
  const { signingKey: _s, encryptionKey: _e, ...pub } = await loadPublicIdentity(tibetHome(), ref);
  const text = JSON.stringify(pub, null, 2) + '\n';
  if (o.out) {
    await writeFileAtomic(o.out, text);
    if (o.json) printJson({ id: pub.id, out: o.out });
    else note(`wrote ${o.out}`);
  } else process.stdout.write(text);
}

export async function importPublic(file: string, o: { json?: boolean }): Promise<void> {
  const bytes = await readInput(file, 'public identity');
  let parsed: ReturnType<typeof parsePublicIdentity>;
  try {
    let v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
    if (typeof v === 'object' && v !== null && 'public' in v) v = v.public;
    parsed = parsePublicIdentity(v);
  } catch (e) {
    if (e instanceof SyntaxError || e instanceof TypeError || CoreError.is(e))
      throw new UserError(`${file} is not a valid public identity: ${e.message}`, {
        code: CoreError.is(e) ? e.code : 'KEYFILE_INVALID',
      });
    throw e;
  }
  const { signingKey: _s, encryptionKey: _e, ...pub } = parsed;
  const home = tibetHome();
  const { pub: path } = identityPaths(home, pub.id);
  try {
    const known = await loadPublicIdentity(home, pub.id);
    if (known.signing_key !== pub.signing_key || known.encryption_key !== pub.encryption_key)
      throw new UserError(`${pub.id} is already known here with other keys; not replaced`, {
        code: 'IDENTITY_CONFLICT',
        hint: `compare with \`tibet id show ${pub.id}\``,
      });
    if (o.json) printJson(pub);
    else note(`${pub.id} is already trusted (same keys)`);
    return;
  } catch (e) {
    if (UserError.is(e) && e.code === 'IDENTITY_CONFLICT') throw e;
    // not known yet (or unreadable): import it
  }
  await writeFileAtomic(path, JSON.stringify(pub, null, 2) + '\n', { mode: 0o644 });
  if (o.json) printJson(pub);
  else out(`${bold('imported')} ${pub.id} (${pub.actor_class}) → ${path}`);
}
