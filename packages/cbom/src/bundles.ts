/**
 * Reading bundles generically for the walker: a `tza/1` bundle (the keychain's revisions and
 * material, sam capsules, gateway receipts, …) or a family TBZ bundle. Each is verified
 * (structure, digests, every signature, signer pinned by the directory) and searched for
 * TIBET tokens in its readable (unsealed) JSON entries; sealed entries are never opened.
 * Nothing here depends on what @tibet/sam or @tibet/gateway put inside their bundles beyond
 * "a JSON entry may be a token, or hold one under `token` / `tokens` / `events`".
 */
import { readFile } from 'node:fs/promises';
import {
  fromBase64Url,
  parseToken,
  toHex,
  type CryptoProvider,
  type IdentityRegistry,
  type TibetToken,
} from '@tibet/core';
import {
  TzaError,
  detectFormat,
  readTza,
  verifyTbz,
  verifyTza,
  type CborValue,
  type TzaManifest,
} from '@tibet/tza';
import { CbomError } from './errors.js';
import type { CheckStatus } from './model.js';

/** A bundle as the walker saw it. Part of the graph (`graph.bundles`). */
export interface GraphBundle {
  file: string;
  format: 'tza' | 'tbz' | 'unknown';
  /** `tza/1` bundle id, or the TBZ `tpid`. */
  bundle_id: string | null;
  /** `tza/1` kind (`secret-state`, `secret`, `sam-capsule`, …) or the TBZ payload type. */
  kind: string | null;
  created_at: string | null;
  /** Readable metadata (tza `meta`; TBZ surface fields), CBOR bytes as hex. Never sealed content. */
  meta: Record<string, unknown>;
  /** Signers: actor id (tza) or `sender_aint` (TBZ), whether the signature verifies and is pinned. */
  signers: { signer: string; valid: boolean; trusted: boolean }[];
  /** pass: intact, every signature valid, a signer pinned by the directory. */
  status: CheckStatus;
  /** The @tibet/tza error code of the first failure, when it failed. */
  code: string | null;
  detail: string[];
  /** Action ids of the tokens found inside. */
  tokens: string[];
  /** Action ids its metadata names (`meta.action_id`, `meta.parent_action_id`, …). */
  refs: string[];
  /** The manifest is present and parsed (the family's manifest-present). */
  manifest_present: boolean;
}

export interface LoadedBundle {
  info: GraphBundle;
  tokens: { entry: string; token: TibetToken }[];
}

function cborToJson(v: CborValue): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(cborToJson);
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v as Map<unknown, CborValue>) o[String(k)] = cborToJson(x);
    return o;
  }
  if (typeof v === 'object' && v !== null) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, CborValue>)) o[k] = cborToJson(x);
    return o;
  }
  return typeof v === 'bigint' ? String(v) : v;
}

const MAX_TOKENS_PER_ENTRY = 10_000;

/** Tokens in a parsed JSON value: itself, or under `token`, `tokens`, `events`, `receipt`. */
function tokensIn(v: unknown, out: TibetToken[], depth = 0): void {
  if (depth > 3 || out.length >= MAX_TOKENS_PER_ENTRY) return;
  if (Array.isArray(v)) {
    for (const x of v) tokensIn(x, out, depth + 1);
    return;
  }
  if (typeof v !== 'object' || v === null) return;
  const o = v as Record<string, unknown>;
  if (o['typ'] === 'tibet-token/1') {
    try {
      out.push(parseToken(o));
    } catch {
      // a malformed token is not a token: the entry's digest was still checked
    }
    return;
  }
  for (const k of ['token', 'tokens', 'events', 'receipt', 'capsule'])
    if (k in o) tokensIn(o[k], out, depth + 1);
}

function refsIn(meta: Record<string, unknown>): string[] {
  const refs: string[] = [];
  for (const k of ['action_id', 'parent_action_id', 'issued_action_id', 'executed_action_id']) {
    const v = meta[k];
    if (typeof v === 'string' && /^act_[0-9a-f]{16}$/.test(v)) refs.push(v);
  }
  return refs;
}

function jsonEntry(name: string, mediaType: string): boolean {
  return mediaType === 'application/json' || name.endsWith('.json') || name.endsWith('.jsonl');
}

function parseJsonEntry(name: string, data: Uint8Array): unknown[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    return [];
  }
  if (name.endsWith('.jsonl')) {
    const out: unknown[] = [];
    for (const l of text.split('\n')) {
      if (!l.trim()) continue;
      try {
        out.push(JSON.parse(l));
      } catch {
        // not a JSON line: skipped
      }
    }
    return out;
  }
  try {
    return [JSON.parse(text)];
  } catch {
    return [];
  }
}

function trustedHex(directory: IdentityRegistry): Set<string> {
  const s = new Set<string>();
  for (const p of directory.all()) s.add(toHex(fromBase64Url(p.signing_key)));
  return s;
}

function readTzaBundle(
  file: string,
  bytes: Uint8Array,
  directory: IdentityRegistry,
  p: CryptoProvider,
): LoadedBundle {
  const report = verifyTza(bytes, { trust: directory, provider: p });
  const info: GraphBundle = {
    file,
    format: 'tza',
    bundle_id: report.bundleId ?? null,
    kind: report.kind ?? null,
    created_at: null,
    meta: {},
    signers: report.signers.map((s) => ({
      signer: s.signer,
      valid: s.valid,
      trusted: s.trusted === true,
    })),
    status: report.valid ? 'pass' : 'fail',
    code: report.valid ? null : (report.code ?? 'INVALID'),
    detail: report.valid
      ? [`signed by ${report.signers.map((s) => s.signer).join(', ')}`]
      : [`${report.code ?? 'INVALID'}: ${report.reason ?? 'does not verify'}`],
    tokens: [],
    refs: [],
    manifest_present: false,
  };
  const tokens: LoadedBundle['tokens'] = [];
  let manifest: TzaManifest;
  let stored: Uint8Array[];
  try {
    ({ manifest, stored } = readTza(bytes, { provider: p }));
  } catch (e) {
    if (!TzaError.is(e)) throw e;
    info.manifest_present = e.code !== 'MANIFEST_MISSING' && e.code !== 'MANIFEST_INVALID';
    return { info, tokens };
  }
  info.manifest_present = true;
  info.created_at = manifest.created_at;
  info.meta = cborToJson(manifest.meta) as Record<string, unknown>;
  info.refs = refsIn(info.meta);
  manifest.entries.forEach((d, i) => {
    if (d.sealed || !jsonEntry(d.name, d.media_type)) return;
    const found: TibetToken[] = [];
    for (const v of parseJsonEntry(d.name, stored[i]!)) tokensIn(v, found);
    for (const token of found) tokens.push({ entry: d.name, token });
  });
  info.tokens = tokens.map((t) => t.token.action_id);
  return { info, tokens };
}

function readTbzBundle(
  file: string,
  bytes: Uint8Array,
  directory: IdentityRegistry,
  p: CryptoProvider,
): LoadedBundle {
  const keys = trustedHex(directory);
  const r = verifyTbz(bytes, { trustedSenderKeys: (hex) => keys.has(hex), provider: p });
  const m = r.bundle?.manifest;
  const failed = r.checks.filter((c) => c.status === 'fail');
  const info: GraphBundle = {
    file,
    format: 'tbz',
    bundle_id: m?.tpid ?? null,
    kind: m?.payload_type ?? null,
    created_at: m?.created_at ?? null,
    meta: {},
    signers: m
      ? [
          {
            signer: m.sender_aint,
            valid: r.valid || failed.every((c) => c.check === 'sender-pinned'),
            trusted: r.senderPinned,
          },
        ]
      : [],
    status: r.authenticated ? 'pass' : 'fail',
    code: r.authenticated ? null : (failed[0]?.code ?? 'SIGNER_UNTRUSTED'),
    detail: r.authenticated
      ? [`signed by ${m?.sender_aint ?? '?'} (pinned)`]
      : failed.length
        ? failed.map((c) => `${c.check}: ${c.detail}`)
        : ['the sender key is not in the directory'],
    tokens: [],
    refs: [],
    manifest_present: m !== undefined,
  };
  const tokens: LoadedBundle['tokens'] = [];
  if (m) {
    const meta: Record<string, unknown> = { transfer_out_token_id: m.transfer_out_token_id };
    for (const k of [
      'surface_time_fragment',
      'surface_context',
      'surface_profile',
      'surface_priority',
    ] as const)
      if (m[k] !== undefined) meta[k] = m[k];
    info.meta = meta;
    for (const b of r.bundle?.blocks ?? []) {
      if (!jsonEntry(b.name, '')) continue;
      const found: TibetToken[] = [];
      for (const v of parseJsonEntry(b.name, b.content)) tokensIn(v, found);
      for (const token of found) tokens.push({ entry: b.name, token });
    }
    info.tokens = tokens.map((t) => t.token.action_id);
  }
  return { info, tokens };
}

/** Read and verify one bundle file. Throws `BUNDLE_UNREADABLE` only when it cannot be read. */
export async function loadBundle(
  file: string,
  directory: IdentityRegistry,
  p: CryptoProvider,
): Promise<LoadedBundle> {
  let bytes: Uint8Array;
  try {
    const b = await readFile(file);
    bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (cause) {
    throw new CbomError('BUNDLE_UNREADABLE', `cannot read the bundle ${file}`, { cause });
  }
  return loadBundleBytes(file, bytes, directory, p);
}

export function loadBundleBytes(
  file: string,
  bytes: Uint8Array,
  directory: IdentityRegistry,
  p: CryptoProvider,
): LoadedBundle {
  const format = bytes.length ? detectFormat(bytes) : 'unknown';
  if (format === 'tbz') return readTbzBundle(file, bytes, directory, p);
  if (format === 'tza') return readTzaBundle(file, bytes, directory, p);
  return {
    info: {
      file,
      format: 'unknown',
      bundle_id: null,
      kind: null,
      created_at: null,
      meta: {},
      signers: [],
      status: 'fail',
      code: 'UNKNOWN_FORMAT',
      detail: ['neither a tza/1 nor a TBZ bundle'],
      tokens: [],
      refs: [],
      manifest_present: false,
    },
    tokens: [],
  };
}
