/**
 * `tza/1`: pack, read, verify, inspect, open, rewrap, co-sign and unpack sealed bundles.
 * The format is specified in docs/tza.md.
 */
import {
  equalBytes,
  getProvider,
  hpkeOpen,
  hpkeSeal,
  isActorId,
  keyIdOf,
  parseRfc3339,
  rfc3339,
  systemClock,
  systemRandom,
  toHex,
  utf8,
  wipe,
  type Clock,
  type CryptoProvider,
  type Identity,
  type KeyResolver,
  type Random,
} from '@tibet/core';
import { CborTag, decodeCbor, encodeCbor, encodeShaped, type CborValue } from './cbor.js';
import {
  coseSign1,
  parseCoseSign1,
  verifyCoseSign1,
  type ParsedSignature,
  type SignatureHeader,
} from './cose.js';
import { TzaError, type TzaErrorCode } from './errors.js';
import {
  CHUNK_SIZE,
  DEFAULT_LIMITS,
  KIND,
  MANIFEST_NAME,
  NONCE_PREFIX_SIZE,
  RESERVED_NAMES,
  SIGNATURES_NAME,
  TAG_SIZE,
  TZA_FORMAT,
  chunkCount,
  folderConflict,
  checkWrittenManifest,
  parseManifest,
  sealedSize,
  type TzaEntryDescriptor,
  type TzaLimits,
  type TzaManifest,
  type TzaMeta,
  type TzaRecipient,
} from './manifest.js';
import { readTar, unsafeNameReason, writeTar } from './tar.js';
import { writeFilesUnder } from './unpack-fs.js';

/** COSE external_aad for every bundle signature: domain separation. */
export const SIGNATURE_AAD = utf8(TZA_FORMAT);

/** Who an entry is sealed to: an actor id and its X25519 public key. */
export interface RecipientKey {
  id: string;
  encryptionKey: Uint8Array;
}

export interface PackEntry {
  name: string;
  data: Uint8Array;
  mediaType?: string;
  /** Encrypt to the bundle's recipients (default false). */
  sealed?: boolean;
}

export interface PackInput {
  kind: string;
  meta?: TzaMeta;
  entries: readonly PackEntry[];
  recipients?: readonly (RecipientKey | Identity)[];
  /** At least one; each adds a COSE_Sign1 over the manifest. */
  signers: readonly Identity[];
  bundleId?: string;
}

export interface TzaOptions {
  clock?: Clock;
  random?: Random;
  provider?: CryptoProvider;
  limits?: Partial<TzaLimits>;
}

export function limitsOf(o?: Partial<TzaLimits>): TzaLimits {
  if (o) return { ...DEFAULT_LIMITS, ...o };
  const d = DEFAULT_LIMITS;
  return {
    maxEntries: d.maxEntries,
    maxEntrySize: d.maxEntrySize,
    maxTotalSize: d.maxTotalSize,
    maxNameLength: d.maxNameLength,
    maxCborDepth: d.maxCborDepth,
    maxManifestSize: d.maxManifestSize,
    maxSignatures: d.maxSignatures,
    maxRecipients: d.maxRecipients,
  };
}

function recipientKeyOf(r: RecipientKey | Identity): RecipientKey {
  return 'encryptionPublicKey' in r ? { id: r.id, encryptionKey: r.encryptionPublicKey } : r;
}

function wrapInfo(bundleId: string): Uint8Array {
  return encodeCbor(['tza/1 data key', bundleId]);
}

export function entryAad(bundleId: string, name: string): Uint8Array {
  return encodeCbor([TZA_FORMAT, bundleId, name]);
}

function chunkNonce(prefix: Uint8Array, index: number, final: boolean): Uint8Array {
  const n = new Uint8Array(24);
  n.set(prefix, 0);
  new DataView(n.buffer).setUint32(NONCE_PREFIX_SIZE, index, false);
  n[23] = final ? 1 : 0;
  return n;
}

/**
 * The chunking of one sealed entry (docs/tza.md §6.2): how many chunks, how long each is,
 * and the seal and open of chunk `i` under its nonce (prefix ‖ index ‖ final flag) and the
 * entry's additional data. The in-memory and the streaming paths both use this.
 */
export interface EntryCipher {
  readonly chunks: number;
  /** Plaintext bytes in chunk `i` (the stored chunk is {@link TAG_SIZE} longer). */
  plainLength(i: number): number;
  /** Ciphertext ‖ tag of chunk `i`. */
  seal(i: number, plaintext: Uint8Array): Uint8Array;
  /** Plaintext of chunk `i`; throws TzaError `DECRYPT_FAILED` when it does not authenticate. */
  open(i: number, stored: Uint8Array): Uint8Array;
}

export function entryCipher(
  p: CryptoProvider,
  dek: Uint8Array,
  prefix: Uint8Array,
  aad: Uint8Array,
  plainSize: number,
  name: string,
): EntryCipher {
  const chunks = chunkCount(plainSize);
  const plainLength = (i: number): number => Math.min(CHUNK_SIZE, plainSize - i * CHUNK_SIZE);
  return {
    chunks,
    plainLength,
    seal: (i, pt) => p.xchacha20poly1305Seal(dek, chunkNonce(prefix, i, i === chunks - 1), pt, aad),
    open: (i, ct) => {
      try {
        return p.xchacha20poly1305Open(dek, chunkNonce(prefix, i, i === chunks - 1), ct, aad);
      } catch (cause) {
        throw new TzaError('DECRYPT_FAILED', `entry ${name} does not decrypt`, { cause });
      }
    },
  };
}

/** Encrypt one entry as a sequence of XChaCha20-Poly1305 chunks (docs/tza.md §6.2). */
export function sealEntry(
  p: CryptoProvider,
  dek: Uint8Array,
  prefix: Uint8Array,
  aad: Uint8Array,
  data: Uint8Array,
): Uint8Array {
  const c = entryCipher(p, dek, prefix, aad, data.length, '');
  // one chunk: its ciphertext ‖ tag is the stored entry
  if (c.chunks === 1) return c.seal(0, data);
  const out = new Uint8Array(sealedSize(data.length));
  let o = 0;
  for (let i = 0; i < c.chunks; i++) {
    const ct = c.seal(i, data.subarray(i * CHUNK_SIZE, i * CHUNK_SIZE + c.plainLength(i)));
    out.set(ct, o);
    o += ct.length;
  }
  return out;
}

export function openEntry(
  p: CryptoProvider,
  dek: Uint8Array,
  d: TzaEntryDescriptor,
  aad: Uint8Array,
  stored: Uint8Array,
): Uint8Array {
  const plain = d.plain_size ?? 0;
  const c = entryCipher(p, dek, d.nonce!, aad, plain, d.name);
  const out = new Uint8Array(plain);
  let o = 0;
  try {
    for (let i = 0; i < c.chunks; i++) {
      const len = c.plainLength(i) + TAG_SIZE;
      const pt = c.open(i, stored.subarray(o, o + len));
      out.set(pt, i * CHUNK_SIZE);
      wipe(pt);
      o += len;
    }
  } catch (e) {
    wipe(out);
    throw e;
  }
  return out;
}

/** Wrap the data key to one recipient; `info` is {@link wrapInfo} of the bundle id. */
function wrapKey(
  p: CryptoProvider,
  r: RecipientKey,
  dek: Uint8Array,
  info: Uint8Array,
  random: Random,
): TzaRecipient {
  if (!isActorId(r.id))
    throw new TypeError(`"recipient.id" must be a jis: actor id, got ${JSON.stringify(r.id)}`);
  if (!(r.encryptionKey instanceof Uint8Array) || r.encryptionKey.length !== 32) {
    throw new RangeError(`"recipient.encryptionKey" expected 32 bytes`);
  }
  const { enc, ciphertext } = hpkeSeal(p, r.encryptionKey, dek, { info, random });
  return { id: r.id, pk: r.encryptionKey.slice(), enc, wk: ciphertext };
}

// The fields are listed in the order of their encoded keys (RFC 8949 §4.2.1: shorter first,
// then bytewise), so the encoder finds each map already sorted; the bytes do not depend on it.
function manifestValue(m: TzaManifest): { [key: string]: CborValue } {
  return {
    kind: m.kind,
    meta: m.meta,
    format: m.format,
    entries: m.entries.map((e) => {
      const base: Record<string, CborValue> = { name: e.name, size: e.size };
      if (e.sealed) base['nonce'] = e.nonce!;
      base['sealed'] = e.sealed;
      base['sha256'] = e.sha256;
      base['media_type'] = e.media_type;
      if (e.sealed) base['plain_size'] = e.plain_size!;
      return base;
    }),
    bundle_id: m.bundle_id,
    created_at: m.created_at,
    recipients: m.recipients.map((r) => ({ id: r.id, pk: r.pk, wk: r.wk, enc: r.enc })),
  };
}

/** A manifest with its encoding (what the signatures cover) and its signatures. */
export interface SignedManifest {
  manifest: TzaManifest;
  /** `encodeCbor(manifestValue(manifest))`, encoded once for signing and for the archive. */
  manifestBytes: Uint8Array;
  signatures: CborTag[];
}

/**
 * The tar entries of a bundle in order — `manifest.cbor`, the payload entries (their stored
 * bytes, or whatever stands for them in `stored`), `signatures.cbor` — and the tar mtime
 * (`created_at` in whole seconds). The in-memory and the streaming writers both lay this
 * out; the manifest was held to the reader's rules when it was encoded ({@link signed}).
 */
export function bundleLayout<T>(
  { manifest, manifestBytes, signatures }: SignedManifest,
  limits: TzaLimits,
  stored: readonly T[],
): { mtime: number; entries: { name: string; size: number; data: Uint8Array | T }[] } {
  const created = parseRfc3339(manifest.created_at)!;
  const signaturesBytes = encodeCbor(signatures);
  return {
    mtime: Math.floor(created.getTime() / 1000),
    entries: [
      { name: MANIFEST_NAME, size: manifestBytes.length, data: manifestBytes },
      ...manifest.entries.map((e, i) => ({ name: e.name, size: e.size, data: stored[i]! })),
      { name: SIGNATURES_NAME, size: signaturesBytes.length, data: signaturesBytes },
    ],
  };
}

function assemble(
  signed: SignedManifest,
  stored: readonly Uint8Array[],
  limits: TzaLimits,
): Uint8Array {
  const { entries, mtime } = bundleLayout(signed, limits, stored);
  return writeTar(entries, mtime);
}

/**
 * Encode the manifest once, check it as a reader would (a manifest the reader would refuse
 * throws the reader's error), and sign those bytes (one COSE_Sign1 per signer).
 */
function signed(
  manifest: TzaManifest,
  signers: readonly Identity[],
  clock: Clock,
  provider: CryptoProvider,
  limits: TzaLimits,
  earlier: readonly CborTag[] = [],
): SignedManifest {
  const value = manifestValue(manifest);
  const { bytes: manifestBytes, shape } = encodeShaped(value);
  // the writer holds itself to the reader's rules, before anything is signed
  checkWrittenManifest(value, manifestBytes, shape, limits);
  const signatures = signers.map((s) =>
    coseSign1(manifestBytes, s.signer, s.id, SIGNATURE_AAD, { clock, provider }),
  );
  return { manifest, manifestBytes, signatures: [...earlier, ...signatures] };
}

/** What the writer has settled before the first entry: options, bundle id, data key, wraps. */
export interface PackSession {
  provider: CryptoProvider;
  random: Random;
  clock: Clock;
  limits: TzaLimits;
  bundleId: string;
  /** The data key (empty when nothing is sealed); the caller wipes it. */
  dek: Uint8Array;
  recipients: TzaRecipient[];
}

/**
 * Check the pack input (kind, signers, names, recipients ⇔ sealed entries) and draw, in the
 * order of docs/tza.md §10, the bundle id, the data key and one HPKE wrap per recipient.
 * The caller then draws one nonce prefix per sealed entry, in entry order.
 */
export function beginPack(
  input: Omit<PackInput, 'entries'> & {
    entries: readonly { name: string; sealed?: boolean | undefined }[];
  },
  opts: TzaOptions,
): PackSession {
  const provider = opts.provider ?? getProvider();
  const random = opts.random ?? systemRandom;
  const clock = opts.clock ?? systemClock;
  const limits = limitsOf(opts.limits);
  if (!KIND.test(input.kind)) throw new TypeError(`"kind" must match ${KIND.source}`);
  if (!input.signers.length) throw new TypeError('"signers" must name at least one identity');
  const names = new Set<string>();
  for (const e of input.entries) {
    const why = unsafeNameReason(e.name, limits.maxNameLength);
    if (why) throw new TypeError(`entry name ${JSON.stringify(e.name)}: ${why}`);
    if (RESERVED_NAMES.includes(e.name)) throw new TypeError(`entry name ${e.name} is reserved`);
    if (names.has(e.name)) throw new TypeError(`duplicate entry name ${e.name}`);
    names.add(e.name);
  }
  const conflict = folderConflict(input.entries.map((e) => e.name));
  if (conflict)
    throw new TypeError(`entry ${conflict[0]} is also used as a folder by ${conflict[1]}`);
  const anySealed = input.entries.some((e) => e.sealed);
  const recipients = (input.recipients ?? []).map(recipientKeyOf);
  if (anySealed && recipients.length === 0)
    throw new TypeError('sealed entries need at least one recipient');
  if (!anySealed && recipients.length > 0)
    throw new TypeError('recipients given but no entry is sealed');
  const bundleId = input.bundleId ?? `tza_${toHex(random(16))}`;
  const dek = anySealed ? random(32) : new Uint8Array(0);
  try {
    const info = wrapInfo(bundleId);
    const wrapped = recipients.map((r) => wrapKey(provider, r, dek, info, random));
    return { provider, random, clock, limits, bundleId, dek, recipients: wrapped };
  } catch (e) {
    wipe(dek);
    throw e;
  }
}

/** The manifest's description of one stored entry. */
export function describeEntry(
  e: { name: string; mediaType?: string | undefined },
  stored: { size: number; sha256: Uint8Array },
  sealed?: { nonce: Uint8Array; plainSize: number },
): TzaEntryDescriptor {
  const d: TzaEntryDescriptor = {
    name: e.name,
    media_type: e.mediaType ?? 'application/octet-stream',
    sealed: sealed !== undefined,
    size: stored.size,
    sha256: stored.sha256,
  };
  if (sealed) {
    d.nonce = sealed.nonce;
    d.plain_size = sealed.plainSize;
  }
  return d;
}

/**
 * Once every entry is stored and described: the manifest (created now, by the session's
 * clock) and its signatures. The caller lays them out with {@link bundleLayout}.
 */
export function finishPack(
  s: PackSession,
  input: Pick<PackInput, 'kind' | 'meta' | 'signers'>,
  entries: TzaEntryDescriptor[],
): SignedManifest {
  const manifest: TzaManifest = {
    format: TZA_FORMAT,
    bundle_id: s.bundleId,
    kind: input.kind,
    created_at: rfc3339(s.clock.now()),
    meta: input.meta ?? {},
    recipients: s.recipients,
    entries,
  };
  return signed(manifest, input.signers, s.clock, s.provider, s.limits);
}

/**
 * Build a bundle. Same inputs, clock and randomness → identical bytes. Sealed entries are
 * encrypted under one fresh data key, wrapped with HPKE to each recipient.
 */
export function packTza(input: PackInput, opts: TzaOptions = {}): Uint8Array {
  const s = beginPack(input, opts);
  try {
    const stored: Uint8Array[] = [];
    const entries: TzaEntryDescriptor[] = input.entries.map((e) => {
      if (e.sealed) {
        const nonce = s.random(NONCE_PREFIX_SIZE);
        const ct = sealEntry(s.provider, s.dek, nonce, entryAad(s.bundleId, e.name), e.data);
        stored.push(ct);
        return describeEntry(
          e,
          { size: ct.length, sha256: s.provider.sha256(ct) },
          { nonce, plainSize: e.data.length },
        );
      }
      stored.push(e.data);
      return describeEntry(e, { size: e.data.length, sha256: s.provider.sha256(e.data) });
    });
    return assemble(finishPack(s, input, entries), stored, s.limits);
  } finally {
    wipe(s.dek);
  }
}

/** A bundle read and checked for structure and digests (signatures not yet verified). */
export interface ParsedTza {
  manifest: TzaManifest;
  manifestBytes: Uint8Array;
  /** Stored bytes of each payload entry, in manifest order. */
  stored: Uint8Array[];
  signatures: ParsedSignature[];
}

/** docs/tza.md §9 step 1: a family TBZ bundle (`TBZ` magic) is not `tza/1`. */
export function refuseTbz(head: Uint8Array): void {
  if (head.length >= 3 && head[0] === 0x54 && head[1] === 0x42 && head[2] === 0x5a) {
    throw new TzaError(
      'UNKNOWN_FORMAT',
      'this is a TBZ bundle of the family, not tza/1 (use readTbz)',
    );
  }
}

/** §9 step 3: the first tar entry must be the manifest. */
export function requireManifestFirst(entries: readonly { name: string }[]): void {
  const first = entries[0];
  if (!first || first.name !== MANIFEST_NAME)
    throw new TzaError('MANIFEST_MISSING', `first entry must be ${MANIFEST_NAME}`);
}

/** §9 steps 3–4: parse the manifest and check the tar mtime against its `created_at`. */
export function manifestOf(bytes: Uint8Array, mtime: number, limits: TzaLimits): TzaManifest {
  const manifest = parseManifest(bytes, limits);
  if (mtime !== Math.floor(Date.parse(manifest.created_at) / 1000)) {
    throw new TzaError(
      'TAR_NON_CANONICAL',
      'tar mtime must be the manifest created_at in whole seconds',
    );
  }
  return manifest;
}

/** §9 step 5: the last tar entry must be the signatures. */
export function requireSignaturesLast(entries: readonly { name: string }[]): void {
  if (entries.length < 2 || entries[entries.length - 1]!.name !== SIGNATURES_NAME) {
    throw new TzaError('SIGNATURE_MISSING', `last entry must be ${SIGNATURES_NAME}`);
  }
}

/**
 * §9 step 6 for position `i` (0 ≤ i < max(listed, present)): the payload entry found there
 * must be the one the manifest lists there, with its size. Returns its descriptor; the
 * caller then checks the digest with {@link checkDigest}.
 */
export function matchEntry(
  manifest: TzaManifest,
  payload: readonly { name: string; size: number }[],
  i: number,
): TzaEntryDescriptor {
  const listed = manifest.entries;
  const d = listed[i];
  const got = payload[i];
  if (!d) throw new TzaError('ENTRY_UNEXPECTED', `entry ${got!.name} is not in the manifest`);
  if (!got) throw new TzaError('ENTRY_MISSING', `entry ${d.name} is missing`);
  if (got.name !== d.name) {
    const code: TzaErrorCode = listed.some((x) => x.name === got.name)
      ? 'ENTRY_ORDER'
      : 'ENTRY_UNEXPECTED';
    throw new TzaError(code, `entry ${i + 1} is ${got.name}, the manifest lists ${d.name}`);
  }
  if (got.size !== d.size)
    throw new TzaError(
      'SIZE_MISMATCH',
      `entry ${d.name} is ${got.size} bytes, the manifest says ${d.size}`,
    );
  return d;
}

/** The stored bytes of entry `d` hash to `digest`, or `DIGEST_MISMATCH`. */
export function checkDigest(d: TzaEntryDescriptor, digest: Uint8Array): void {
  if (!equalBytes(digest, d.sha256))
    throw new TzaError('DIGEST_MISMATCH', `entry ${d.name} does not match its SHA-256`);
}

/** §9 step 7, structure: the `signatures.cbor` bytes as parsed COSE_Sign1 structures. */
export function parseSignatures(
  bytes: Uint8Array,
  limits: TzaLimits,
  provider: CryptoProvider,
): ParsedSignature[] {
  let sigs: CborValue;
  try {
    sigs = decodeCbor(bytes, {
      maxDepth: 4,
      maxItems: limits.maxSignatures * 8 + 1,
      allowTags: [18],
    });
  } catch (cause) {
    throw new TzaError('SIGNATURE_MALFORMED', 'signatures entry is not canonical CBOR', { cause });
  }
  if (!Array.isArray(sigs) || sigs.length === 0)
    throw new TzaError('SIGNATURE_MISSING', 'no signature on the bundle');
  if (sigs.length > limits.maxSignatures)
    throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxSignatures} signatures`);
  return (sigs as CborValue[]).map((s) => parseCoseSign1(s, provider));
}

/**
 * Read a bundle strictly: tar, manifest first, entries exactly as the manifest lists them
 * (order, size, SHA-256), signatures last. Throws TzaError with the first problem's code.
 */
export function readTza(
  bytes: Uint8Array,
  opts: { limits?: Partial<TzaLimits>; provider?: CryptoProvider } = {},
): ParsedTza {
  const limits = limitsOf(opts.limits);
  const provider = opts.provider ?? getProvider();
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  refuseTbz(bytes);
  const { entries, mtime } = readTar(bytes, limits);
  requireManifestFirst(entries);
  const manifestBytes = entries[0]!.data;
  const manifest = manifestOf(manifestBytes, mtime, limits);
  requireSignaturesLast(entries);
  const payload = entries
    .slice(1, -1)
    .map((e) => ({ name: e.name, data: e.data, size: e.data.length }));
  const stored: Uint8Array[] = [];
  for (let i = 0; i < Math.max(manifest.entries.length, payload.length); i++) {
    const d = matchEntry(manifest, payload, i);
    checkDigest(d, provider.sha256(payload[i]!.data));
    stored.push(payload[i]!.data);
  }
  const signatures = parseSignatures(entries[entries.length - 1]!.data, limits, provider);
  return { manifest, manifestBytes, stored, signatures };
}

/** Which signers a verifier trusts: a key resolver (e.g. an IdentityRegistry) or raw keys. */
export type Trust = KeyResolver | readonly Uint8Array[];

export interface SignerReport {
  signer: string;
  kid: string;
  signedAt: string;
  /** The signature verifies under the key named in its header. */
  valid: boolean;
  /** That key is pinned by the verifier's trust; undefined when no trust was given. */
  trusted: boolean | undefined;
}

export interface VerifyReport {
  valid: boolean;
  /** Set when invalid: the code of the first problem. */
  code?: TzaErrorCode;
  reason?: string;
  bundleId?: string;
  kind?: string;
  /** False when no trust was given: the signatures are intact but their keys unpinned. */
  signersPinned: boolean;
  signers: SignerReport[];
}

export interface VerifyOptions {
  trust?: Trust;
  /** Actor ids that must each have a valid (and, with trust, trusted) signature. */
  requireSigners?: readonly string[];
  provider?: CryptoProvider;
  limits?: Partial<TzaLimits>;
}

function isTrusted(trust: Trust, h: SignatureHeader): boolean {
  if (Array.isArray(trust))
    return (trust as readonly Uint8Array[]).some((k) => equalBytes(k, h.publicKey));
  const k = (trust as KeyResolver).signingKey(h.signer, h.kid);
  return k !== undefined && equalBytes(k, h.publicKey);
}

/** §9 step 7: each signature, then trust (§5.1). Never throws for a bad bundle. */
export function verifyParsed(
  parsed: Pick<ParsedTza, 'manifest' | 'manifestBytes' | 'signatures'>,
  opts: VerifyOptions,
  provider: CryptoProvider,
): VerifyReport {
  const signers: SignerReport[] = parsed.signatures.map((s) => ({
    signer: s.header.signer,
    kid: s.header.kid,
    signedAt: s.header.signedAt,
    valid: verifyCoseSign1(s, parsed.manifestBytes, SIGNATURE_AAD, provider),
    trusted: opts.trust ? isTrusted(opts.trust, s.header) : undefined,
  }));
  // every report has its members in this order (bundleId, kind, signersPinned, signers,
  // valid, then code and reason), written out rather than spread from a base object
  const report = (valid: boolean, code?: TzaErrorCode, reason?: string): VerifyReport => {
    const r: VerifyReport = {
      bundleId: parsed.manifest.bundle_id,
      kind: parsed.manifest.kind,
      signersPinned: opts.trust !== undefined,
      signers,
      valid,
    };
    if (code !== undefined) {
      r.code = code;
      r.reason = reason!;
    }
    return r;
  };
  const badSig = signers.find((s) => !s.valid);
  if (badSig)
    return report(
      false,
      'SIGNATURE_INVALID',
      `signature of ${badSig.signer} (key ${badSig.kid}) does not verify`,
    );
  if (opts.trust && !signers.some((s) => s.trusted)) {
    return report(
      false,
      'SIGNER_UNTRUSTED',
      `no signer is trusted (${signers.map((s) => s.signer).join(', ')})`,
    );
  }
  for (const who of opts.requireSigners ?? []) {
    if (!signers.some((s) => s.signer === who && s.valid && s.trusted !== false)) {
      return report(
        false,
        opts.trust ? 'SIGNER_UNTRUSTED' : 'SIGNATURE_MISSING',
        `no valid signature by ${who}`,
      );
    }
  }
  return report(true);
}

/**
 * Verify a bundle: structure, digests and every signature; with `trust`, at least one
 * signer must be pinned. Never throws for a bad bundle: the report says why and with which
 * code (bad arguments still throw TypeError).
 */
export function verifyTza(bytes: Uint8Array, opts: VerifyOptions = {}): VerifyReport {
  const provider = opts.provider ?? getProvider();
  let parsed: ParsedTza;
  try {
    parsed = readTza(bytes, { provider, ...(opts.limits ? { limits: opts.limits } : {}) });
  } catch (e) {
    return failedReport(e, opts);
  }
  return verifyParsed(parsed, opts, provider);
}

/** The report for a bundle that failed to read (a TzaError); anything else is rethrown. */
export function failedReport(e: unknown, opts: VerifyOptions): VerifyReport {
  if (TzaError.is(e))
    return {
      valid: false,
      code: e.code,
      reason: e.message,
      signersPinned: opts.trust !== undefined,
      signers: [],
    };
  throw e;
}

/** {@link verifyParsed}, throwing the report's code when the bundle is not valid. */
export function requireVerified(
  parsed: Pick<ParsedTza, 'manifest' | 'manifestBytes' | 'signatures'>,
  opts: VerifyOptions,
  provider: CryptoProvider,
): VerifyReport {
  const report = verifyParsed(parsed, opts, provider);
  if (!report.valid) throw new TzaError(report.code!, report.reason!);
  return report;
}

function requireValid(bytes: Uint8Array, opts: VerifyOptions, provider: CryptoProvider): ParsedTza {
  const parsed = readTza(bytes, { provider, ...(opts.limits ? { limits: opts.limits } : {}) });
  requireVerified(parsed, opts, provider);
  return parsed;
}

export interface InspectEntry {
  name: string;
  mediaType: string;
  sealed: boolean;
  size: number;
  plainSize: number;
  sha256: string;
}

export interface InspectReport {
  format: string;
  bundleId: string;
  kind: string;
  createdAt: string;
  meta: TzaMeta;
  recipients: { id: string; kid: string }[];
  entries: InspectEntry[];
  signers: SignerReport[];
  valid: boolean;
  code?: TzaErrorCode;
  reason?: string;
}

/** The readable face of a bundle: metadata, recipients, entries, signers. Never decrypts. */
export function inspectTza(bytes: Uint8Array, opts: VerifyOptions = {}): InspectReport {
  const provider = opts.provider ?? getProvider();
  const parsed = readTza(bytes, { provider, ...(opts.limits ? { limits: opts.limits } : {}) });
  return inspectParsed(parsed, verifyParsed(parsed, opts, provider), provider);
}

/** {@link inspectTza} for a bundle already read and verified (`report` is its verification). */
function inspectParsed(
  parsed: ParsedTza,
  report: VerifyReport,
  provider: CryptoProvider,
): InspectReport {
  const m = parsed.manifest;
  return {
    format: m.format,
    bundleId: m.bundle_id,
    kind: m.kind,
    createdAt: m.created_at,
    meta: m.meta,
    recipients: m.recipients.map((r) => ({ id: r.id, kid: keyIdOf(r.pk, provider) })),
    entries: m.entries.map((e) => ({
      name: e.name,
      mediaType: e.media_type,
      sealed: e.sealed,
      size: e.size,
      plainSize: e.sealed ? e.plain_size! : e.size,
      sha256: toHex(e.sha256),
    })),
    signers: report.signers,
    valid: report.valid,
    ...(report.code ? { code: report.code, reason: report.reason! } : {}),
  };
}

export function unwrapKey(p: CryptoProvider, m: TzaManifest, identity: Identity): Uint8Array {
  const r = m.recipients.find((x) => equalBytes(x.pk, identity.encryptionPublicKey));
  if (!r)
    throw new TzaError(
      'NOT_A_RECIPIENT',
      `${identity.id} is not a recipient of bundle ${m.bundle_id}`,
    );
  try {
    const dek = hpkeOpen(p, identity.agreement, r.enc, r.wk, { info: wrapInfo(m.bundle_id) });
    if (dek.length !== 32) throw new RangeError('data key length');
    return dek;
  } catch (cause) {
    throw new TzaError('KEY_UNWRAP_FAILED', `the data key for ${identity.id} does not unwrap`, {
      cause,
    });
  }
}

export interface OpenedEntry {
  name: string;
  mediaType: string;
  sealed: boolean;
  data: Uint8Array;
}

export interface OpenedTza {
  manifest: TzaManifest;
  entries: OpenedEntry[];
  report: VerifyReport;
  /** Zero every decrypted buffer. */
  destroy(): void;
}

/**
 * Verify, then decrypt the sealed entries with `identity` (which must be a recipient when
 * any entry is sealed). Fails closed: an invalid or, with trust, untrusted bundle is never
 * decrypted.
 */
export function openTza(
  bytes: Uint8Array,
  identity: Identity | undefined,
  opts: VerifyOptions = {},
): OpenedTza {
  const provider = opts.provider ?? getProvider();
  const parsed = readTza(bytes, { provider, ...(opts.limits ? { limits: opts.limits } : {}) });
  // verify once: the report is both the gate and what is returned
  const report = requireVerified(parsed, opts, provider);
  return openVerified(parsed, report, identity, provider);
}

/** Decrypt a bundle that {@link requireVerified} has passed (`report` is its verification). */
function openVerified(
  parsed: ParsedTza,
  report: VerifyReport,
  identity: Identity | undefined,
  provider: CryptoProvider,
): OpenedTza {
  const m = parsed.manifest;
  const anySealed = m.entries.some((e) => e.sealed);
  if (anySealed && !identity)
    throw new TzaError('NOT_A_RECIPIENT', 'an identity is needed to open sealed entries');
  const dek = anySealed ? unwrapKey(provider, m, identity!) : undefined;
  try {
    const entries = m.entries.map((d, i) => ({
      name: d.name,
      mediaType: d.media_type,
      sealed: d.sealed,
      data: d.sealed
        ? openEntry(provider, dek!, d, entryAad(m.bundle_id, d.name), parsed.stored[i]!)
        : parsed.stored[i]!,
    }));
    return {
      manifest: m,
      entries,
      report,
      destroy: () => entries.forEach((e) => e.sealed && wipe(e.data)),
    };
  } finally {
    wipe(dek);
  }
}

export interface RewrapChanges {
  add?: readonly (RecipientKey | Identity)[];
  /** Actor ids to remove. */
  remove?: readonly string[];
  /**
   * Re-encrypt every sealed entry under a fresh data key (so a removed recipient who kept
   * the old key learns nothing from the new bundle). Default false: only the key wraps change.
   */
  rekey?: boolean;
}

/**
 * Change a bundle's recipients. `identity` must be a current recipient (to unwrap the data
 * key). Without `rekey` the sealed payload bytes are kept as they are and only the
 * manifest's recipients change; the bundle is re-signed by `signers` (earlier signatures
 * covered the old manifest and are dropped).
 */
export function rewrapTza(
  bytes: Uint8Array,
  identity: Identity,
  changes: RewrapChanges,
  signers: readonly Identity[],
  opts: TzaOptions & { trust?: Trust } = {},
): Uint8Array {
  const provider = opts.provider ?? getProvider();
  const random = opts.random ?? systemRandom;
  const clock = opts.clock ?? systemClock;
  const limits = limitsOf(opts.limits);
  if (!signers.length) throw new TypeError('"signers" must name at least one identity');
  const parsed = requireValid(
    bytes,
    { limits, provider, ...(opts.trust ? { trust: opts.trust } : {}) },
    provider,
  );
  const m = parsed.manifest;
  if (!m.entries.some((e) => e.sealed))
    throw new TzaError('ENTRY_NOT_SEALED', 'bundle has no sealed entries to rewrap');
  const remove = new Set(changes.remove ?? []);
  for (const id of remove) {
    if (!m.recipients.some((r) => r.id === id))
      throw new TypeError(`"remove": ${id} is not a recipient`);
  }
  const kept = m.recipients.filter((r) => !remove.has(r.id));
  const added = (changes.add ?? [])
    .map(recipientKeyOf)
    .filter((a) => !kept.some((k) => equalBytes(k.pk, a.encryptionKey)));
  if (kept.length + added.length === 0)
    throw new TypeError('a bundle with sealed entries needs at least one recipient');
  let dek = unwrapKey(provider, m, identity);
  const info = wrapInfo(m.bundle_id);
  try {
    if (changes.rekey) {
      const newDek = random(32);
      const stored = parsed.stored.map((s, i) => {
        const d = m.entries[i]!;
        if (!d.sealed) return s;
        const pt = openEntry(provider, dek, d, entryAad(m.bundle_id, d.name), s);
        const nonce = random(NONCE_PREFIX_SIZE);
        const ct = sealEntry(provider, newDek, nonce, entryAad(m.bundle_id, d.name), pt);
        wipe(pt);
        Object.assign(d, { nonce, size: ct.length, sha256: provider.sha256(ct) });
        return ct;
      });
      wipe(dek);
      dek = newDek;
      const recipients = [...kept.map((r) => ({ id: r.id, encryptionKey: r.pk })), ...added].map(
        (r) => wrapKey(provider, r, dek, info, random),
      );
      const manifest = { ...m, recipients };
      return assemble(signed(manifest, signers, clock, provider, limits), stored, limits);
    }
    const recipients = [...kept, ...added.map((r) => wrapKey(provider, r, dek, info, random))];
    const manifest = { ...m, recipients };
    return assemble(signed(manifest, signers, clock, provider, limits), parsed.stored, limits);
  } finally {
    wipe(dek);
  }
}

/** Add `signer`'s COSE_Sign1 to a valid bundle (co-signing); the rest is unchanged. */
export function cosignTza(
  bytes: Uint8Array,
  signer: Identity,
  opts: TzaOptions & { trust?: Trust } = {},
): Uint8Array {
  const provider = opts.provider ?? getProvider();
  const clock = opts.clock ?? systemClock;
  const limits = limitsOf(opts.limits);
  const parsed = requireValid(
    bytes,
    { limits, provider, ...(opts.trust ? { trust: opts.trust } : {}) },
    provider,
  );
  if (parsed.signatures.some((s) => equalBytes(s.header.publicKey, signer.signingPublicKey))) {
    throw new TypeError(`${signer.id} has already signed this bundle`);
  }
  if (parsed.signatures.length >= limits.maxSignatures)
    throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxSignatures} signatures`);
  const existing = parsed.signatures.map(
    (s) => new CborTag(18, [s.protectedBytes, new Map(), null, s.signature]),
  );
  return assemble(
    signed(parsed.manifest, [signer], clock, provider, limits, existing),
    parsed.stored,
    limits,
  );
}

/**
 * Verify, then write the manifest (as `manifest.json`, readable) and every entry under
 * `targetDir`; sealed entries are decrypted with `identity`, or skipped when none is given.
 * Never writes outside `targetDir` and never overwrites.
 */
export async function unpackTza(
  bytes: Uint8Array,
  targetDir: string,
  opts: VerifyOptions & { identity?: Identity } = {},
): Promise<{ written: string[]; skipped: string[] }> {
  const provider = opts.provider ?? getProvider();
  // read and verify once; the decryption and the readable report both use this
  const parsed = readTza(bytes, { provider, ...(opts.limits ? { limits: opts.limits } : {}) });
  const report = requireVerified(parsed, opts, provider);
  const m = parsed.manifest;
  const anySealed = m.entries.some((e) => e.sealed);
  const inspected = inspectParsed(parsed, report, provider);
  const opened =
    anySealed && opts.identity ? openVerified(parsed, report, opts.identity, provider) : undefined;
  const skipped: string[] = [];
  const files = [{ name: 'manifest.json', data: utf8(JSON.stringify(inspected, null, 2) + '\n') }];
  m.entries.forEach((d, i) => {
    if (d.sealed && !opened) skipped.push(d.name);
    else
      files.push({ name: d.name, data: d.sealed ? opened!.entries[i]!.data : parsed.stored[i]! });
  });
  try {
    const written = await writeFilesUnder(targetDir, files);
    return { written, skipped };
  } finally {
    opened?.destroy();
  }
}
