import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CoreError,
  createIdentity,
  decryptIdentity,
  encryptIdentity,
  isActorId,
  parseActorId,
  parsePublicIdentity,
  type ActorClass,
  type Identity,
  type PublicIdentity,
} from '@tibet/core';
import { listDir } from '@tibet/continuityd/durable';
import { UserError, usage } from './errors.js';
import { writeFileAtomic } from './home.js';
import { getPassphrase } from './passphrase.js';

export function identityPaths(home: string, id: string): { key: string; pub: string } {
  const { org, name } = parseActorId(id);
  const dir = join(home, 'identities', org);
  return { key: join(dir, `${name}.key.json`), pub: join(dir, `${name}.pub.json`) };
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new UserError(`no ${what} at ${path}`, {
        exitCode: 2,
        code: 'NOT_FOUND',
        hint: 'see `tibet id list`',
      });
    throw usage(`cannot read ${what} ${path}: ${code ?? String(e)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new UserError(`${what} ${path} is not valid JSON`, { code: 'KEYFILE_INVALID', cause });
  }
}

export async function createStoredIdentity(
  home: string,
  id: string,
  actorClass: ActorClass,
): Promise<{ identity: Identity; paths: { key: string; pub: string } }> {
  const paths = identityPaths(home, id);
  const identity = createIdentity({ id, actorClass });
  const pass = await getPassphrase(`Passphrase for ${id}: `, { confirm: true });
  const keyFile = await encryptIdentity(identity, pass);
  await writeFileAtomic(paths.key, JSON.stringify(keyFile, null, 2) + '\n', {
    mode: 0o600,
    exclusive: true,
  });
  await writeFileAtomic(paths.pub, JSON.stringify(identity.public, null, 2) + '\n', {
    mode: 0o644,
  });
  return { identity, paths };
}

/** Load an identity's private keys (asks for its passphrase). `ref` is an id or a key file. */
export async function loadPrivateIdentity(home: string, ref: string): Promise<Identity> {
  const path = isActorId(ref) ? identityPaths(home, ref).key : ref;
  const file = await readJson(path, 'key file');
  const id = (file as { public?: { id?: unknown } }).public?.id;
  const pass = await getPassphrase(`Passphrase for ${typeof id === 'string' ? id : path}: `);
  return decryptIdentity(file, pass);
}

/** Load a public identity. `ref` is an id (from the home) or a `.pub.json` / key file path. */
export async function loadPublicIdentity(
  home: string,
  ref: string,
): Promise<PublicIdentity & { signingKey: Uint8Array; encryptionKey: Uint8Array }> {
  const path = isActorId(ref) ? identityPaths(home, ref).pub : ref;
  let v = await readJson(path, 'public identity');
  if (typeof v === 'object' && v !== null && 'public' in v) v = v.public;
  return parsePublicIdentity(v);
}

export async function listIdentities(home: string): Promise<PublicIdentity[]> {
  const out: PublicIdentity[] = [];
  const root = join(home, 'identities');
  for (const org of (await listDir(root)).sort()) {
    for (const f of (await listDir(join(root, org))).sort()) {
      if (!f.endsWith('.pub.json')) continue;
      try {
        out.push(await loadPublicIdentity(home, join(root, org, f)));
      } catch (e) {
        if (!CoreError.is(e) && !UserError.is(e)) throw e;
      }
    }
  }
  return out;
}

export function describeIdentity(p: PublicIdentity): Record<string, string> {
  return {
    id: p.id,
    actor_class: p.actor_class,
    created_at: p.created_at,
    signing_key: p.signing_key,
    encryption_key: p.encryption_key,
  };
}
