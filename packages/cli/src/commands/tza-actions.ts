import { IdentityRegistry, wipe, type Identity } from '@tibet/core';
import {
  inspectTza,
  openTza,
  packTza,
  rewrapTza,
  unpackTza,
  verifyTza,
  writeFilesUnder,
  TzaError,
  type InspectReport,
  type PackEntry,
  type VerifyReport,
} from '@tibet/tza';
import { UserError, usage } from '../errors.js';
import { readInput, tibetHome, writeFileAtomic } from '../home.js';
import { loadPrivateIdentity, loadPublicIdentity } from '../identities.js';
import { bold, dim, green, jsonReplacer, note, out, printJson, red, yellow } from '../output.js';
import type { PackOpts } from './tza.js';

function splitPair(v: string, what: string): [string, string] {
  const i = v.indexOf('=');
  if (i <= 0 || i === v.length - 1) throw usage(`${what} expects name=value, got "${v}"`);
  return [v.slice(0, i), v.slice(i + 1)];
}

async function trustOf(refs: string[] | undefined): Promise<IdentityRegistry | undefined> {
  if (!refs?.length) return undefined;
  const reg = new IdentityRegistry();
  for (const r of refs) {
    const { signingKey: _s, encryptionKey: _e, ...pub } = await loadPublicIdentity(tibetHome(), r);
    reg.add(pub);
  }
  return reg;
}

async function loadAll(refs: string[]): Promise<Identity[]> {
  const out: Identity[] = [];
  for (const r of refs) out.push(await loadPrivateIdentity(tibetHome(), r));
  return out;
}

export async function pack(o: PackOpts): Promise<void> {
  const mediaTypes = new Map((o.mediaType ?? []).map((v) => splitPair(v, '--media-type')));
  const entries: PackEntry[] = [];
  let stdinUsed = false;
  for (const [list, sealed] of [
    [o.entry ?? [], false],
    [o.sealed ?? [], true],
  ] as const) {
    for (const v of list) {
      const [name, path] = splitPair(v, sealed ? '--sealed' : '--entry');
      if (path === '-') {
        if (stdinUsed) throw usage('only one entry can come from stdin');
        stdinUsed = true;
      }
      const mt = mediaTypes.get(name);
      entries.push({
        name,
        data: await readInput(path, 'entry'),
        sealed,
        ...(mt ? { mediaType: mt } : {}),
      });
    }
  }
  if (!entries.length)
    throw usage('nothing to pack', 'add --entry name=path or --sealed name=path');
  const meta: Record<string, string> = {};
  for (const v of o.meta ?? []) {
    const [k, val] = splitPair(v, '--meta');
    meta[k] = val;
  }
  const recipients = [];
  for (const r of o.recipient ?? []) {
    const p = await loadPublicIdentity(tibetHome(), r);
    recipients.push({ id: p.id, encryptionKey: p.encryptionKey });
  }
  const signers = await loadAll(o.signer);
  let bytes: Uint8Array;
  try {
    bytes = packTza({ kind: o.kind, meta, entries, recipients, signers });
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw usage(e.message);
    throw e;
  } finally {
    for (const e of entries) if (e.sealed) wipe(e.data);
    for (const s of signers) s.destroy();
  }
  await writeFileAtomic(o.out, bytes, { mode: 0o644 });
  const r = inspectTza(bytes);
  if (o.json) printJson({ file: o.out, bytes: bytes.length, ...r });
  else
    note(
      `${green('sealed')} ${o.out}: ${r.kind} ${r.bundleId}, ${r.entries.length} entries, ${r.recipients.length} recipients, signed by ${r.signers.map((s) => s.signer).join(', ')}`,
    );
}

function printSigners(r: { signers: VerifyReport['signers'] }, pinned: boolean): void {
  for (const s of r.signers) {
    const state = !s.valid
      ? red('BAD SIGNATURE')
      : s.trusted === true
        ? green('valid, trusted')
        : s.trusted === false
          ? yellow('valid, NOT trusted')
          : green('valid');
    out(`  signer  ${s.signer}  key ${s.kid}  ${dim(s.signedAt)}  ${state}`);
  }
  if (!pinned) out(dim('  (signer keys not pinned: pass --trust to check who signed)'));
}

function renderInspect(file: string, r: InspectReport): void {
  out(`${bold(file)}  ${r.format}  ${r.kind}  ${r.bundleId}`);
  out(`  created ${r.createdAt}`);
  for (const [k, v] of Object.entries(r.meta))
    out(`  meta    ${k} = ${JSON.stringify(v, jsonReplacer)}`);
  for (const x of r.recipients) out(`  to      ${x.id}  key ${x.kid}`);
  for (const e of r.entries) {
    out(
      `  entry   ${e.name}  ${e.mediaType}  ${e.sealed ? `sealed, ${e.plainSize} bytes` : `${e.size} bytes`}  sha256 ${e.sha256.slice(0, 16)}…`,
    );
  }
  printSigners(r, false);
  out(
    r.valid
      ? green('  integrity: ok')
      : red(`  integrity: FAILED ${r.reason ?? ''} [${r.code ?? ''}]`),
  );
}

async function readBundle(file: string): Promise<Uint8Array> {
  return readInput(file, 'bundle');
}

function refused(e: unknown): never {
  if (TzaError.is(e)) throw new UserError(e.message, { code: e.code });
  throw e;
}

export async function inspect(file: string, o: { json?: boolean }): Promise<void> {
  const bytes = await readBundle(file);
  let r: InspectReport;
  try {
    r = inspectTza(bytes);
  } catch (e) {
    refused(e);
  }
  if (o.json) printJson(r);
  else renderInspect(file, r);
}

export async function verify(
  file: string,
  o: { trust?: string[]; requireSigner?: string[]; json?: boolean },
): Promise<void> {
  const bytes = await readBundle(file);
  const trust = await trustOf(o.trust);
  const r = verifyTza(bytes, {
    ...(trust ? { trust } : {}),
    ...(o.requireSigner ? { requireSigners: o.requireSigner } : {}),
  });
  if (o.json) printJson({ file, ...r });
  else {
    out(
      r.valid
        ? `${green('VALID')}  ${file}  ${r.kind} ${r.bundleId}`
        : `${red('INVALID')}  ${file}: ${r.reason} [${r.code}]`,
    );
    printSigners(r, r.signersPinned);
  }
  if (!r.valid) process.exitCode = 1;
}

export async function open(
  file: string,
  o: { as: string; entry?: string; stdout?: boolean; outDir?: string; trust?: string[] },
): Promise<void> {
  if (Boolean(o.stdout) === Boolean(o.outDir))
    throw usage('give exactly one of --stdout or --out-dir');
  if (o.stdout && !o.entry) throw usage('--stdout needs --entry <name>');
  const bytes = await readBundle(file);
  const trust = await trustOf(o.trust);
  const me = await loadPrivateIdentity(tibetHome(), o.as);
  try {
    let opened;
    try {
      opened = openTza(bytes, me, trust ? { trust } : {});
    } catch (e) {
      refused(e);
    }
    try {
      const chosen = o.entry ? opened.entries.filter((e) => e.name === o.entry) : opened.entries;
      if (!chosen.length) throw usage(`no entry named ${o.entry ?? ''}`);
      if (o.stdout) {
        await new Promise<void>((res, rej) =>
          process.stdout.write(chosen[0]!.data, (err) => (err ? rej(err) : res())),
        );
      } else {
        const written = await writeFilesUnder(o.outDir!, chosen);
        note(`${green('opened')} ${written.length} entries into ${o.outDir}`);
      }
    } finally {
      opened.destroy();
    }
  } finally {
    me.destroy();
  }
}

export async function unpack(
  file: string,
  dir: string,
  o: { as?: string; trust?: string[]; json?: boolean },
): Promise<void> {
  const bytes = await readBundle(file);
  const trust = await trustOf(o.trust);
  const me = o.as ? await loadPrivateIdentity(tibetHome(), o.as) : undefined;
  try {
    const r = await unpackTza(bytes, dir, {
      ...(trust ? { trust } : {}),
      ...(me ? { identity: me } : {}),
    }).catch(refused);
    if (o.json) printJson(r);
    else {
      for (const w of r.written) out(w);
      if (r.skipped.length)
        note(yellow(`skipped sealed entries (no --as): ${r.skipped.join(', ')}`));
    }
  } finally {
    me?.destroy();
  }
}

export async function rewrap(
  file: string,
  o: {
    as: string;
    add?: string[];
    remove?: string[];
    rekey?: boolean;
    signer: string[];
    out: string;
    trust?: string[];
  },
): Promise<void> {
  const bytes = await readBundle(file);
  const trust = await trustOf(o.trust);
  const add = [];
  for (const r of o.add ?? []) {
    const p = await loadPublicIdentity(tibetHome(), r);
    add.push({ id: p.id, encryptionKey: p.encryptionKey });
  }
  const me = await loadPrivateIdentity(tibetHome(), o.as);
  const signers = await loadAll(o.signer);
  try {
    let next: Uint8Array;
    try {
      next = rewrapTza(
        bytes,
        me,
        { add, remove: o.remove ?? [], rekey: Boolean(o.rekey) },
        signers,
        trust ? { trust } : {},
      );
    } catch (e) {
      if (e instanceof TypeError) throw usage(e.message);
      refused(e);
    }
    await writeFileAtomic(o.out, next);
    const r = inspectTza(next);
    note(`${green('rewrapped')} ${o.out}: recipients ${r.recipients.map((x) => x.id).join(', ')}`);
  } finally {
    me.destroy();
    for (const s of signers) s.destroy();
  }
}
