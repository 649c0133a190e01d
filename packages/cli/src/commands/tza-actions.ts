import { IdentityRegistry, wipe, type Identity } from '@tibet/core';
import {
  inspectTza,
  openTza,
  packTza,
  rewrapTza,
  unpackTza,
  verifyTza,
  detectFormat,
  unpackTbz,
  verifyTbz,
  writeFilesUnder,
  TzaError,
  type InspectReport,
  type PackEntry,
  type TbzVerifyResult,
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

async function trustedKeys(refs: string[] | undefined): Promise<Uint8Array[] | undefined> {
  if (!refs?.length) return undefined;
  const keys: Uint8Array[] = [];
  for (const r of refs) keys.push((await loadPublicIdentity(tibetHome(), r)).signingKey);
  return keys;
}

function renderTbz(file: string, r: TbzVerifyResult): void {
  const m = r.bundle?.manifest;
  out(`${bold(file)}  TBZ (tibet-drop format A)${m ? `  ${m.payload_type}  tpid ${m.tpid}` : ''}`);
  if (m) {
    out(`  created ${m.created_at}`);
    out(`  from    ${m.sender_aint}  key ${m.sender_pubkey.slice(0, 16)}…`);
    out(`  to      ${m.receiver_aint}  key ${m.receiver_pubkey.slice(0, 16)}…`);
    for (const b of m.blocks)
      out(
        `  block   ${b.index} ${b.name}  ${b.size_bytes} bytes  sha256 ${b.content_sha256.slice(0, 16)}…`,
      );
  }
  for (const c of r.checks) {
    const st =
      c.status === 'pass' ? green('pass') : c.status === 'warn' ? yellow('warn') : red('FAIL');
    out(
      `  check   ${c.check}${c.block ? ` #${c.block}` : ''}  ${st}  ${dim(c.detail)}${c.code ? ` [${c.code}]` : ''}`,
    );
  }
}

function tbzFailure(r: TbzVerifyResult): { code: string; reason: string } | undefined {
  const f = r.checks.find((c) => c.status === 'fail');
  return f ? { code: f.code ?? 'TBZ_MALFORMED', reason: f.detail } : undefined;
}

export async function inspect(file: string, o: { json?: boolean }): Promise<void> {
  const bytes = await readBundle(file);
  if (detectFormat(bytes) === 'tbz') {
    const r = verifyTbz(bytes);
    if (!r.bundle) {
      const f = tbzFailure(r)!;
      throw new UserError(f.reason, { code: f.code });
    }
    if (o.json)
      printJson({
        format: 'tbz',
        valid: r.valid,
        senderPinned: r.senderPinned,
        manifest: r.bundle.manifest,
        checks: r.checks,
      });
    else renderTbz(file, r);
    return;
  }
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
  if (detectFormat(bytes) === 'tbz') {
    if (o.requireSigner?.length) {
      throw usage('--require-signer applies to tza/1 bundles; TBZ has one sender: use --trust');
    }
    const keys = await trustedKeys(o.trust);
    const r = verifyTbz(bytes, keys ? { trustedSenderKeys: keys } : {});
    const f = tbzFailure(r);
    if (o.json) {
      printJson({
        file,
        format: 'tbz',
        valid: r.valid,
        code: f?.code,
        reason: f?.reason,
        senderPinned: r.senderPinned,
        authenticated: r.authenticated,
        checks: r.checks,
      });
    } else {
      out(
        r.valid
          ? `${green('VALID')}  ${file}  TBZ ${r.bundle?.manifest.payload_type ?? ''}`
          : `${red('INVALID')}  ${file}: ${f?.reason} [${f?.code}]`,
      );
      if (!r.senderPinned && r.valid)
        out(dim('  (sender key not pinned: pass --trust to check who sent it)'));
    }
    if (!r.valid) process.exitCode = 1;
    return;
  }
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
  o: {
    as: string;
    entry?: string;
    stdout?: boolean;
    outDir?: string;
    trust?: string[];
    json?: boolean;
  },
): Promise<void> {
  if (Boolean(o.stdout) === Boolean(o.outDir))
    throw usage('give exactly one of --stdout or --out-dir');
  if (o.stdout && o.json)
    throw usage('--json cannot be combined with --stdout (the content is all that goes there)');
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
        if (o.json)
          printJson({
            opened: file,
            out_dir: o.outDir,
            entries: chosen.map((e, i) => ({
              name: e.name,
              size: e.data.length,
              path: written[i],
            })),
          });
        else note(`${green('opened')} ${written.length} entries into ${o.outDir}`);
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
  if (detectFormat(bytes) === 'tbz') {
    const keys = await trustedKeys(o.trust);
    if (!keys) {
      throw usage(
        'unpacking a TBZ bundle needs --trust <sender>: its sender key comes from the bundle itself',
      );
    }
    const r = await unpackTbz(bytes, dir, { trustedSenderKeys: keys }).catch(refused);
    if (o.json) printJson({ files: r.files });
    else for (const f of r.files) out(f.path);
    return;
  }
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
    json?: boolean;
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
    if (o.json)
      printJson({
        rewrapped: file,
        out: o.out,
        rekeyed: Boolean(o.rekey),
        recipients: r.recipients.map((x) => x.id),
      });
    else
      note(
        `${green('rewrapped')} ${o.out}: recipients ${r.recipients.map((x) => x.id).join(', ')}`,
      );
  } finally {
    me.destroy();
    for (const s of signers) s.destroy();
  }
}
