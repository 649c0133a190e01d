/**
 * The family's legacy **TBZ** bundle ("format A"): the `.tza` files of the Python
 * tibet-drop, which start with `TBZ` and a version byte `0x01`. Nothing in it is
 * encrypted; a manifest (deterministic CBOR, RFC 8949 §4.2.1) lists the payload blocks with
 * their SHA-256 and an Ed25519 signature each, and carries an Ed25519 signature of its own.
 *
 * Layout (all integers unsigned 32-bit big-endian):
 *
 *     "TBZ" 0x01 | total_blocks | manifest_len | manifest | (block_len | block)*
 *
 * where `total_blocks` counts the manifest as block 0, so it is `payload blocks + 1`.
 *
 * - {@link readTbz} checks that a file is well formed and self-consistent (framing, limits,
 *   manifest schema, counts, sizes, safe block names) and does no cryptography.
 * - {@link verifyTbz} checks the signatures and digests, and whether the sender key (which
 *   comes from the bundle itself) is one the caller trusts.
 * - {@link writeTbz} builds a bundle byte for byte deterministically.
 * - {@link unpackTbz} verifies, then writes the blocks under a directory without ever
 *   leaving it.
 *
 * See `docs/tbz.md` for the exact format, the order of checks and the security notes.
 */
import {
  assertBytes,
  concatBytes,
  copyBytes,
  equalBytes,
  fromHex,
  getProvider,
  systemClock,
  systemRandom,
  toHex,
  u32be,
  utf8,
} from '@tibet/core';
import type { Clock, CryptoProvider, Ed25519PrivateKey, Random } from '@tibet/core';
import { decodeCbor, encodeCbor } from './cbor.js';
import type { CborValue } from './cbor.js';
import { TzaError } from './errors.js';
import type { TzaErrorCode } from './errors.js';

// ---------------------------------------------------------------------------------------
// Public types

/** What the first bytes of a file say it is. */
export type TbzFormat = 'tbz' | 'tza' | 'unknown';

/** Size and count limits checked before anything is allocated. */
export interface TbzLimits {
  /** Most payload blocks (the manifest is not counted). Default 1,024. */
  maxBlocks: number;
  /** Largest manifest in bytes. Default 1 MiB. */
  maxManifestBytes: number;
  /** Largest single payload block in bytes. Default 64 MiB. */
  maxBlockBytes: number;
  /** Largest whole bundle in bytes. Default 256 MiB. */
  maxTotalBytes: number;
}

/** One entry of the manifest's `blocks` array. */
export type TbzManifestBlock = {
  /** 1-based position of the block in the file. */
  index: number;
  /** Relative path, `/`-separated. */
  name: string;
  /** SHA-256 of the content, 64 lowercase hex digits. */
  content_sha256: string;
  size_bytes: number;
  /** Ed25519 over `SHA256(content) ‖ UTF-8(name) ‖ u32be(index)`, 128 lowercase hex digits. */
  ed25519_sig: string;
};

/** The TBZ manifest, exactly as stored (snake_case keys are the wire names). */
export type TbzManifest = {
  tbz_format_version: 1;
  airdrop_format_version: 1;
  /** Transfer pair id: a lowercase, hyphenated UUID. */
  tpid: string;
  sender_aint: string;
  /** Raw Ed25519 public key of the sender, 64 lowercase hex digits. */
  sender_pubkey: string;
  receiver_aint: string;
  /** Raw 32-byte public key of the intended receiver, 64 lowercase hex digits. */
  receiver_pubkey: string;
  /** E.g. `sam_capsule`, `sam_gateway_receipt`, `file`. */
  payload_type: string;
  /** Payload blocks + 1 (the manifest). */
  block_count: number;
  blocks: TbzManifestBlock[];
  /** `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds). */
  created_at: string;
  transfer_out_token_id: string | null;
  surface_time_fragment?: string;
  surface_context?: string;
  surface_profile?: string;
  surface_priority?: string;
  /** Ed25519 over the canonical CBOR of the manifest without this key, 128 lowercase hex. */
  manifest_sig: string;
};

/** A payload block as read from the file. */
export interface TbzBlock {
  /** 1-based, as in the manifest. */
  index: number;
  name: string;
  content: Uint8Array;
}

/** A parsed, well-formed (not yet verified) TBZ bundle. */
export interface TbzBundle {
  manifest: TbzManifest;
  blocks: TbzBlock[];
  /** The manifest exactly as stored (canonical CBOR, including `manifest_sig`). */
  manifestBytes: Uint8Array;
}

/** The optional "semantic surface" fields, mirrored from the family's file names. */
export interface TbzSurface {
  timeFragment?: string | undefined;
  context?: string | undefined;
  profile?: string | undefined;
  priority?: string | undefined;
}

export interface TbzWriteInput {
  senderAint: string;
  receiverAint: string;
  /** 32 bytes, or 64 hex digits. */
  receiverPubkey: string | Uint8Array;
  payloadType: string;
  blocks: readonly { readonly name: string; readonly content: Uint8Array }[];
  /** Default `null`. */
  transferOutTokenId?: string | null | undefined;
  surface?: TbzSurface | undefined;
  /** Lowercase hyphenated UUID; default a UUID v4 drawn from `opts.random`. */
  tpid?: string | undefined;
  /** `YYYY-MM-DDTHH:MM:SSZ`; default `opts.clock.now()` truncated to whole seconds. */
  createdAt?: string | undefined;
}

export interface TbzWriteOptions {
  /** Source of the default tpid. Default the system CSPRNG. */
  random?: Random | undefined;
  /** Source of the default created_at. Default the system clock. */
  clock?: Clock | undefined;
  /** Used for SHA-256 and for checking the signer's manifest signature. */
  provider?: CryptoProvider | undefined;
  /** The writer refuses to produce what a reader with these limits would refuse. */
  limits?: Partial<TbzLimits> | undefined;
}

/** A trust anchor for the sender: raw public keys, or a predicate on the lowercase hex key. */
export type TbzTrustedSenders = readonly Uint8Array[] | ((pubkeyHex: string) => boolean);

export interface TbzVerifyOptions {
  /**
   * Keys the caller accepts as sender. Without it the bundle can only be shown to be
   * intact and signed by *the key it names itself*, which anyone can generate: the result
   * then has `senderPinned: false` and `authenticated: false`.
   */
  trustedSenderKeys?: TbzTrustedSenders | undefined;
  provider?: CryptoProvider | undefined;
  limits?: Partial<TbzLimits> | undefined;
  /** Throw a TzaError with the first failing check's code instead of returning. */
  throwOnFailure?: boolean | undefined;
}

export type TbzCheckName =
  | 'parse'
  | 'sender-pinned'
  | 'manifest-signature'
  | 'block-count'
  | 'block-digest'
  | 'block-signature';

export interface TbzCheck {
  check: TbzCheckName;
  /** `warn` only for `sender-pinned` when no trusted keys were given. */
  status: 'pass' | 'warn' | 'fail';
  detail: string;
  /** On `fail`: the stable error code this failure raises with `throwOnFailure`. */
  code?: TzaErrorCode;
  /** For block checks: the 1-based block index. */
  block?: number;
}

export interface TbzVerifyResult {
  /**
   * No check failed: intact and signed by `senderPubkey`, and, when `trustedSenderKeys` was
   * given, that key is trusted. Without `trustedSenderKeys` it says nothing about who sent it.
   */
  valid: boolean;
  /** The sender key was checked against `trustedSenderKeys` and is trusted. */
  senderPinned: boolean;
  /** `valid && senderPinned`: the only value that means "this came from a sender I trust". */
  authenticated: boolean;
  /** The sender key named by the manifest (lowercase hex), when the bundle parsed. */
  senderPubkey: string | undefined;
  checks: TbzCheck[];
  /** The parsed bundle, when it parsed. */
  bundle: TbzBundle | undefined;
}

export interface TbzUnpackOptions extends Omit<TbzVerifyOptions, 'throwOnFailure'> {
  /** Unpack a valid bundle even though its sender is not pinned. Default false. */
  allowUnpinnedSender?: boolean | undefined;
  /** Skip signature verification entirely (names are still checked). Default false. */
  unsafeSkipVerification?: boolean | undefined;
  /** Mode of created files (before umask). Default 0o600: payloads may be sensitive. */
  fileMode?: number | undefined;
  /** Mode of created directories (before umask). Default 0o700. */
  dirMode?: number | undefined;
}

export interface TbzUnpackResult {
  manifest: TbzManifest;
  files: { name: string; path: string; size: number }[];
  /** Undefined only with `unsafeSkipVerification`. */
  verification: TbzVerifyResult | undefined;
}

// ---------------------------------------------------------------------------------------
// Constants and small helpers

const MAGIC = Uint8Array.of(0x54, 0x42, 0x5a, 0x01);
/** `TBZ` followed by the only supported version byte, `0x01`. A copy: mutating it is harmless. */
export const TBZ_MAGIC: Uint8Array = Uint8Array.from(MAGIC);

const HEADER_BYTES = 12;
const DEFAULT_LIMITS: Readonly<TbzLimits> = Object.freeze({
  maxBlocks: 1024,
  maxManifestBytes: 1024 * 1024,
  maxBlockBytes: 64 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
});
const MAX_NAME_BYTES = 4096;
const MAX_SEGMENT_BYTES = 255;
const MAX_REPORTED_ERRORS = 20;

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CREATED_AT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

const REQUIRED_KEYS = [
  'tbz_format_version',
  'airdrop_format_version',
  'tpid',
  'sender_aint',
  'sender_pubkey',
  'receiver_aint',
  'receiver_pubkey',
  'payload_type',
  'block_count',
  'blocks',
  'created_at',
  'transfer_out_token_id',
  'manifest_sig',
] as const;
const SURFACE_KEYS = [
  'surface_time_fragment',
  'surface_context',
  'surface_profile',
  'surface_priority',
] as const;
const BLOCK_KEYS = ['index', 'name', 'content_sha256', 'size_bytes', 'ed25519_sig'] as const;
const KNOWN_KEYS: ReadonlySet<string> = new Set<string>([...REQUIRED_KEYS, ...SURFACE_KEYS]);
const KNOWN_BLOCK_KEYS: ReadonlySet<string> = new Set<string>(BLOCK_KEYS);

type Rec = Record<string, CborValue>;

/** Quote untrusted text for a message: JSON escapes control characters; long text is cut. */
function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

function isRecord(v: unknown): v is Rec {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** For argument checks: a boolean, not a type guard, so declared types are kept. */
function isPlainObject(v: unknown): boolean {
  return isRecord(v);
}

function isList(v: unknown): boolean {
  return Array.isArray(v);
}

/** Own properties only: decoded maps are ordinary objects, so `toString` etc. are inherited. */
function own(o: Rec, k: string): CborValue | undefined {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

function isUint(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

function isCreatedAt(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  const m = CREATED_AT.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return false;
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, se));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

function formatCreatedAt(d: Date): string {
  const s = `${d.toISOString().slice(0, 19)}Z`;
  if (!isCreatedAt(s)) throw new RangeError(`"clock" gave a time outside years 0000–9999`);
  return s;
}

function resolveLimits(l: Partial<TbzLimits> | undefined): TbzLimits {
  const out: TbzLimits = { ...DEFAULT_LIMITS };
  if (l === undefined) return out;
  if (!isPlainObject(l)) throw new TypeError('"limits" expected an object');
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof TbzLimits)[]) {
    const v = l[k];
    if (v === undefined) continue;
    if (!isUint(v)) throw new RangeError(`"limits.${k}" expected a non-negative integer`);
    out[k] = v;
  }
  return out;
}

function limitExceeded(what: string, n: number, max: number): TzaError {
  return new TzaError('LIMIT_EXCEEDED', `TBZ: ${what} is ${n}, the limit is ${max}`);
}

/** Why a block name is unsafe to use as a relative path, or undefined when it is safe. */
function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0) return 'contains NUL';
    if (c < 0x20 || c === 0x7f) return 'contains a control character';
    if (c === 0x5c) return 'contains a backslash';
  }
  if (name.startsWith('/')) return 'is an absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'starts with a drive letter';
  if (utf8(name).length > MAX_NAME_BYTES) return `is longer than ${MAX_NAME_BYTES} bytes`;
  for (const seg of name.split('/')) {
    if (seg === '') return 'has an empty path segment';
    if (seg === '.' || seg === '..') return `has a "${seg}" segment`;
    if (utf8(seg).length > MAX_SEGMENT_BYTES) {
      return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
    }
  }
  return undefined;
}

/**
 * Problems with a list of names as a set of files: each unsafe name, each duplicate, and
 * each name that is also a parent directory of another (`a` and `a/b`).
 */
function nameSetProblems(names: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const dirs = new Set<string>();
  names.forEach((name, i) => {
    const p = nameProblem(name);
    if (p !== undefined) problems.push(`block ${i + 1} name ${quote(name)} ${p}`);
    else if (seen.has(name)) problems.push(`block ${i + 1} name ${quote(name)} is a duplicate`);
    seen.add(name);
    const segs = name.split('/');
    for (let j = 1; j < segs.length; j++) dirs.add(segs.slice(0, j).join('/'));
  });
  names.forEach((name, i) => {
    if (dirs.has(name)) {
      problems.push(`block ${i + 1} name ${quote(name)} is also the directory of another block`);
    }
  });
  return problems;
}

function joinProblems(prefix: string, problems: readonly string[]): string {
  const shown = problems.slice(0, MAX_REPORTED_ERRORS).join('; ');
  const more =
    problems.length > MAX_REPORTED_ERRORS
      ? `; and ${problems.length - MAX_REPORTED_ERRORS} more`
      : '';
  return `${prefix}: ${shown}${more}`;
}

// ---------------------------------------------------------------------------------------
// Manifest schema

/** The manifest as a CBOR value, keys listed explicitly (no stray properties can slip in). */
function manifestToCbor(m: TbzManifest, withSig: boolean): Rec {
  const o: Rec = {
    tbz_format_version: m.tbz_format_version,
    airdrop_format_version: m.airdrop_format_version,
    tpid: m.tpid,
    sender_aint: m.sender_aint,
    sender_pubkey: m.sender_pubkey,
    receiver_aint: m.receiver_aint,
    receiver_pubkey: m.receiver_pubkey,
    payload_type: m.payload_type,
    block_count: m.block_count,
    blocks: m.blocks.map((b) => ({
      index: b.index,
      name: b.name,
      content_sha256: b.content_sha256,
      size_bytes: b.size_bytes,
      ed25519_sig: b.ed25519_sig,
    })),
    created_at: m.created_at,
    transfer_out_token_id: m.transfer_out_token_id,
  };
  for (const k of SURFACE_KEYS) {
    const v = m[k];
    if (v !== undefined) o[k] = v;
  }
  if (withSig) o['manifest_sig'] = m.manifest_sig;
  return o;
}

/**
 * Check a decoded manifest against the schema, collecting every field error into one
 * `TBZ_MANIFEST_INVALID`. Version numbers other than 1 raise `UNKNOWN_VERSION` first.
 * Returns a fresh, typed copy.
 */
function validateManifest(v: unknown): TbzManifest {
  if (!isRecord(v)) {
    throw new TzaError('TBZ_MANIFEST_INVALID', 'TBZ manifest must be a CBOR map with text keys');
  }
  for (const k of ['tbz_format_version', 'airdrop_format_version']) {
    const x = own(v, k);
    if (isUint(x) && x !== 1) {
      throw new TzaError('UNKNOWN_VERSION', `TBZ manifest ${k} is ${x}; only 1 is supported`);
    }
  }
  const errs: string[] = [];
  for (const k of Object.keys(v)) if (!KNOWN_KEYS.has(k)) errs.push(`unknown key ${quote(k)}`);
  for (const k of REQUIRED_KEYS) if (!Object.hasOwn(v, k)) errs.push(`missing ${k}`);

  const field = <T>(k: string, ok: (x: unknown) => x is T, what: string): T | undefined => {
    if (!Object.hasOwn(v, k)) return undefined;
    const x = own(v, k);
    if (ok(x)) return x;
    errs.push(`${k} must be ${what}`);
    return undefined;
  };
  const isOne = (x: unknown): x is 1 => x === 1;
  const isText = (x: unknown): x is string => typeof x === 'string';
  const isNonEmpty = (x: unknown): x is string => typeof x === 'string' && x.length > 0;
  const isHex64 = (x: unknown): x is string => typeof x === 'string' && HEX64.test(x);
  const isHex128 = (x: unknown): x is string => typeof x === 'string' && HEX128.test(x);
  const isUuid = (x: unknown): x is string => typeof x === 'string' && UUID.test(x);
  const isCount = (x: unknown): x is number => isUint(x, 0xffffffff) && x >= 1;
  const isTokenId = (x: unknown): x is string | null => x === null || typeof x === 'string';
  const isArray = (x: unknown): x is readonly CborValue[] => Array.isArray(x);

  const tbzVersion = field('tbz_format_version', isOne, 'the integer 1');
  const airdropVersion = field('airdrop_format_version', isOne, 'the integer 1');
  const tpid = field('tpid', isUuid, 'a lowercase hyphenated UUID');
  const senderAint = field('sender_aint', isNonEmpty, 'a non-empty text string');
  const senderPubkey = field('sender_pubkey', isHex64, '64 lowercase hex digits');
  const receiverAint = field('receiver_aint', isNonEmpty, 'a non-empty text string');
  const receiverPubkey = field('receiver_pubkey', isHex64, '64 lowercase hex digits');
  const payloadType = field('payload_type', isNonEmpty, 'a non-empty text string');
  const blockCount = field('block_count', isCount, 'an integer from 1 to 2^32-1');
  const createdAt = field('created_at', isCreatedAt, 'a UTC time YYYY-MM-DDTHH:MM:SSZ');
  const tokenId = field('transfer_out_token_id', isTokenId, 'a text string or null');
  const manifestSig = field('manifest_sig', isHex128, '128 lowercase hex digits');
  const surface: Partial<Record<(typeof SURFACE_KEYS)[number], string>> = {};
  for (const k of SURFACE_KEYS) {
    const x = field(k, isText, 'a text string');
    if (x !== undefined) surface[k] = x;
  }

  const blocks: TbzManifestBlock[] = [];
  const rawBlocks = field('blocks', isArray, 'an array');
  rawBlocks?.forEach((b, i) => {
    const at = `blocks[${i}]`;
    if (!isRecord(b)) {
      errs.push(`${at} must be a map with text keys`);
      return;
    }
    for (const k of Object.keys(b))
      if (!KNOWN_BLOCK_KEYS.has(k)) errs.push(`${at} has unknown key ${quote(k)}`);
    for (const k of BLOCK_KEYS) if (!Object.hasOwn(b, k)) errs.push(`${at} is missing ${k}`);
    const index = own(b, 'index');
    const name = own(b, 'name');
    const sha = own(b, 'content_sha256');
    const size = own(b, 'size_bytes');
    const sig = own(b, 'ed25519_sig');
    let ok = true;
    const bad = (msg: string): void => {
      errs.push(`${at}.${msg}`);
      ok = false;
    };
    if (index !== undefined && index !== i + 1) bad(`index must be ${i + 1} (1-based, in order)`);
    if (name !== undefined && typeof name !== 'string') bad('name must be a text string');
    if (sha !== undefined && !isHex64(sha)) bad('content_sha256 must be 64 lowercase hex digits');
    if (size !== undefined && !isUint(size, 0xffffffff))
      bad('size_bytes must be an integer from 0 to 2^32-1');
    if (sig !== undefined && !isHex128(sig)) bad('ed25519_sig must be 128 lowercase hex digits');
    if (ok && typeof name === 'string' && isHex64(sha) && isUint(size) && isHex128(sig)) {
      blocks.push({ index: i + 1, name, content_sha256: sha, size_bytes: size, ed25519_sig: sig });
    }
  });

  if (errs.length > 0)
    throw new TzaError('TBZ_MANIFEST_INVALID', joinProblems('TBZ manifest invalid', errs));
  // Every field is now present and valid; the checks below only narrow the types.
  if (
    tbzVersion === undefined ||
    airdropVersion === undefined ||
    tpid === undefined ||
    senderAint === undefined ||
    senderPubkey === undefined ||
    receiverAint === undefined ||
    receiverPubkey === undefined ||
    payloadType === undefined ||
    blockCount === undefined ||
    createdAt === undefined ||
    tokenId === undefined ||
    manifestSig === undefined
  ) {
    throw new TzaError('TBZ_MANIFEST_INVALID', 'TBZ manifest invalid');
  }
  return {
    tbz_format_version: tbzVersion,
    airdrop_format_version: airdropVersion,
    tpid,
    sender_aint: senderAint,
    sender_pubkey: senderPubkey,
    receiver_aint: receiverAint,
    receiver_pubkey: receiverPubkey,
    payload_type: payloadType,
    block_count: blockCount,
    blocks,
    created_at: createdAt,
    transfer_out_token_id: tokenId,
    ...surface,
    manifest_sig: manifestSig,
  };
}

/** Decode + schema + names + counts. `totalBlocks` is the header's count. */
function parseManifest(
  manifestBytes: Uint8Array,
  totalBlocks: number,
  lim: TbzLimits,
): TbzManifest {
  let value: CborValue;
  try {
    // root map → blocks array → block map → values: depth 3
    value = decodeCbor(manifestBytes, { maxDepth: 4, maxItems: 64 + 6 * lim.maxBlocks });
  } catch (e) {
    if (!TzaError.is(e)) throw e;
    throw new TzaError(
      'TBZ_MANIFEST_INVALID',
      `TBZ manifest is not deterministic CBOR (${e.code}): ${e.message}`,
      {
        cause: e,
      },
    );
  }
  const manifest = validateManifest(value);
  checkNames(manifest);
  checkCounts(manifest, totalBlocks);
  return manifest;
}

function checkNames(manifest: TbzManifest): void {
  const problems = nameSetProblems(manifest.blocks.map((b) => b.name));
  if (problems.length > 0)
    throw new TzaError('TBZ_PATH_UNSAFE', joinProblems('TBZ block names unsafe', problems));
}

function checkCounts(manifest: TbzManifest, totalBlocks: number): void {
  if (manifest.block_count !== totalBlocks || manifest.blocks.length + 1 !== totalBlocks) {
    throw new TzaError(
      'TBZ_BLOCK_COUNT',
      `TBZ block counts disagree: header total_blocks ${totalBlocks}, manifest block_count ` +
        `${manifest.block_count}, manifest lists ${manifest.blocks.length} payload blocks (+1 for the manifest)`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Detect and read

function isUstarManifest(b: Uint8Array): boolean {
  if (b.length < 512) return false;
  const at = (off: number, s: string): boolean => {
    for (let i = 0; i < s.length; i++) if (b[off + i] !== s.charCodeAt(i)) return false;
    return true;
  };
  // name field (0..100) "manifest.cbor" NUL-terminated; ustar prefix field (345..500) empty
  return at(257, 'ustar\0') && at(263, '00') && at(0, 'manifest.cbor\0') && b[345] === 0;
}

/**
 * Tell the family's TBZ bundles from this project's tar-based `.tza` by their first bytes:
 * `tbz` when they start `54 42 5A 01`; `tza` when the first 512 bytes are a POSIX ustar
 * header (`ustar\0`, version `00`) for `manifest.cbor`; else `unknown`. A `TBZ` file with
 * another version byte is `unknown` here; {@link readTbz} reports it as `UNKNOWN_VERSION`.
 */
export function detectFormat(bytes: Uint8Array): TbzFormat {
  assertBytes(bytes, 'bytes');
  if (bytes.length >= 4 && MAGIC.every((m, i) => bytes[i] === m)) return 'tbz';
  if (isUstarManifest(bytes)) return 'tza';
  return 'unknown';
}

class Cursor {
  pos = 0;
  readonly dv: DataView;
  constructor(readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  u32(what: string): number {
    if (this.b.length - this.pos < 4) {
      throw new TzaError(
        'TBZ_TRUNCATED',
        `TBZ truncated: ${what} needs 4 bytes at offset ${this.pos}, ${this.b.length - this.pos} left`,
      );
    }
    const n = this.dv.getUint32(this.pos, false);
    this.pos += 4;
    return n;
  }
  /** A fresh copy of the next `n` bytes (never a view of a caller's Buffer). */
  take(n: number, what: string): Uint8Array {
    if (this.b.length - this.pos < n) {
      throw new TzaError(
        'TBZ_TRUNCATED',
        `TBZ truncated: ${what} needs ${n} bytes at offset ${this.pos}, ${this.b.length - this.pos} left`,
      );
    }
    const out = copyBytes(this.b.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
}

/**
 * Parse a TBZ bundle strictly. Checks, in order: magic (`UNKNOWN_FORMAT`), version byte
 * (`UNKNOWN_VERSION`), total size, block count and manifest length against `limits`
 * (`LIMIT_EXCEEDED`), framing (`TBZ_TRUNCATED`), the manifest (`TBZ_MANIFEST_INVALID`,
 * `UNKNOWN_VERSION`), block names (`TBZ_PATH_UNSAFE`), the three block counts
 * (`TBZ_BLOCK_COUNT`), each block's length against the limit and the manifest's
 * `size_bytes` and the bytes left (`LIMIT_EXCEEDED`, `TBZ_MALFORMED`, `TBZ_TRUNCATED`), then trailing bytes
 * (`TBZ_TRAILING_BYTES`). Does no cryptography: see {@link verifyTbz}.
 */
export function readTbz(bytes: Uint8Array, limits?: Partial<TbzLimits>): TbzBundle {
  assertBytes(bytes, 'bytes');
  const lim = resolveLimits(limits);
  for (let i = 0; i < 3 && i < bytes.length; i++) {
    if (bytes[i] !== MAGIC[i])
      throw new TzaError('UNKNOWN_FORMAT', 'not a TBZ bundle: it does not start with "TBZ"');
  }
  if (bytes.length < 4)
    throw new TzaError(
      'TBZ_TRUNCATED',
      `TBZ truncated: ${bytes.length} bytes, the header needs ${HEADER_BYTES}`,
    );
  if (bytes[3] !== MAGIC[3]) {
    throw new TzaError(
      'UNKNOWN_VERSION',
      `TBZ version byte is 0x${toHex(bytes.subarray(3, 4))}; only 0x01 is supported`,
    );
  }
  if (bytes.length > lim.maxTotalBytes)
    throw limitExceeded('bundle size', bytes.length, lim.maxTotalBytes);

  const r = new Cursor(bytes);
  r.pos = 4;
  const totalBlocks = r.u32('total_blocks');
  if (totalBlocks === 0)
    throw new TzaError('TBZ_BLOCK_COUNT', 'TBZ total_blocks is 0; it must count the manifest');
  if (totalBlocks - 1 > lim.maxBlocks)
    throw limitExceeded('payload block count', totalBlocks - 1, lim.maxBlocks);
  const manifestLen = r.u32('manifest length');
  if (manifestLen > lim.maxManifestBytes)
    throw limitExceeded('manifest length', manifestLen, lim.maxManifestBytes);
  const manifestBytes = r.take(manifestLen, 'manifest');
  const manifest = parseManifest(manifestBytes, totalBlocks, lim);

  const blocks: TbzBlock[] = [];
  for (const entry of manifest.blocks) {
    const len = r.u32(`length of block ${entry.index}`);
    if (len > lim.maxBlockBytes)
      throw limitExceeded(`block ${entry.index} length`, len, lim.maxBlockBytes);
    if (len !== entry.size_bytes) {
      throw new TzaError(
        'TBZ_MALFORMED',
        `TBZ block ${entry.index} (${quote(entry.name)}) is ${len} bytes but the manifest says ${entry.size_bytes}`,
      );
    }
    const content = r.take(len, `block ${entry.index}`);
    blocks.push({ index: entry.index, name: entry.name, content });
  }
  if (r.pos !== bytes.length) {
    throw new TzaError(
      'TBZ_TRAILING_BYTES',
      `TBZ has ${bytes.length - r.pos} bytes after the last block`,
    );
  }
  return { manifest, blocks, manifestBytes };
}

/** Re-check a bundle object (which a caller may have built or changed) as readTbz would. */
function checkBundle(bundle: TbzBundle, limits: Partial<TbzLimits> | undefined): TbzBundle {
  if (!isPlainObject(bundle) || !isList(bundle.blocks))
    throw new TypeError('"bundle" expected a TbzBundle');
  assertBytes(bundle.manifestBytes, 'bundle.manifestBytes');
  const lim = resolveLimits(limits);
  if (bundle.blocks.length > lim.maxBlocks)
    throw limitExceeded('payload block count', bundle.blocks.length, lim.maxBlocks);
  if (bundle.manifestBytes.length > lim.maxManifestBytes) {
    throw limitExceeded('manifest length', bundle.manifestBytes.length, lim.maxManifestBytes);
  }
  const manifest = parseManifest(bundle.manifestBytes, bundle.blocks.length + 1, lim);
  let same = false;
  try {
    same =
      isPlainObject(bundle.manifest) &&
      equalBytes(encodeCbor(manifestToCbor(bundle.manifest, true)), bundle.manifestBytes);
  } catch {
    // a hand-built manifest with values CBOR cannot hold: not the stored one either
  }
  if (!same)
    throw new TzaError(
      'TBZ_MANIFEST_INVALID',
      'bundle.manifest does not match bundle.manifestBytes',
    );
  let total = HEADER_BYTES + bundle.manifestBytes.length;
  const blocks = bundle.blocks.map((b, i): TbzBlock => {
    const entry = manifest.blocks[i]!;
    assertBytes(b.content, `bundle.blocks[${i}].content`);
    if (b.content.length > lim.maxBlockBytes)
      throw limitExceeded(`block ${i + 1} length`, b.content.length, lim.maxBlockBytes);
    total += 4 + b.content.length;
    if (b.index !== entry.index || b.name !== entry.name || b.content.length !== entry.size_bytes) {
      throw new TzaError(
        'TBZ_MALFORMED',
        `bundle.blocks[${i}] does not match manifest block ${entry.index}`,
      );
    }
    // copied: what is verified must be what gets used, whatever the caller does meanwhile
    return { index: entry.index, name: entry.name, content: copyBytes(b.content) };
  });
  if (total > lim.maxTotalBytes) throw limitExceeded('bundle size', total, lim.maxTotalBytes);
  return { manifest, blocks, manifestBytes: copyBytes(bundle.manifestBytes) };
}

// ---------------------------------------------------------------------------------------
// Verify

function blockSigningInput(contentSha256: Uint8Array, name: string, index: number): Uint8Array {
  return concatBytes(contentSha256, utf8(name), u32be(index));
}

function trustPredicate(t: TbzTrustedSenders): (pub: Uint8Array) => boolean {
  if (typeof t === 'function') {
    return (pub) => {
      const r = t(toHex(pub));
      if (typeof r !== 'boolean') throw new TypeError('"trustedSenderKeys" must return a boolean');
      return r;
    };
  }
  if (!isList(t))
    throw new TypeError('"trustedSenderKeys" expected an array of keys or a function');
  t.forEach((k, i) => assertBytes(k, `trustedSenderKeys[${i}]`, 32));
  const keys = t.map((k) => copyBytes(k));
  return (pub) => keys.some((k) => equalBytes(k, pub));
}

/**
 * Check a TBZ bundle's signatures, digests and counts, and whether its sender is trusted.
 * Returns every check; `authenticated` is true only when all pass *and* the sender key is
 * in `trustedSenderKeys`. Bundles that do not parse give a single failed `parse` check.
 * With `throwOnFailure`, throws a TzaError carrying the first failure's code instead.
 * Bad arguments throw TypeError/RangeError.
 */
export function verifyTbz(
  input: Uint8Array | TbzBundle,
  opts: TbzVerifyOptions = {},
): TbzVerifyResult {
  const provider = opts.provider ?? getProvider();
  const trusted =
    opts.trustedSenderKeys === undefined ? undefined : trustPredicate(opts.trustedSenderKeys);
  const throwOnFailure = opts.throwOnFailure === true;
  const checks: TbzCheck[] = [];

  let bundle: TbzBundle;
  try {
    bundle =
      input instanceof Uint8Array ? readTbz(input, opts.limits) : checkBundle(input, opts.limits);
  } catch (e) {
    if (!TzaError.is(e)) throw e;
    if (throwOnFailure) throw e;
    checks.push({ check: 'parse', status: 'fail', code: e.code, detail: e.message });
    return {
      valid: false,
      senderPinned: false,
      authenticated: false,
      senderPubkey: undefined,
      checks,
      bundle: undefined,
    };
  }

  const fail = (c: Omit<TbzCheck, 'status'> & { code: TzaErrorCode }): void => {
    if (throwOnFailure) throw new TzaError(c.code, c.detail);
    checks.push({ ...c, status: 'fail' });
  };
  const pass = (c: Omit<TbzCheck, 'status'>): void => {
    checks.push({ ...c, status: 'pass' });
  };

  const { manifest, blocks } = bundle;
  pass({
    check: 'parse',
    detail: `well-formed: ${blocks.length} payload block(s), manifest ${bundle.manifestBytes.length} bytes`,
  });
  const senderPub = fromHex(manifest.sender_pubkey);

  let senderPinned = false;
  if (trusted === undefined) {
    checks.push({
      check: 'sender-pinned',
      status: 'warn',
      detail:
        'no trusted sender keys given: the sender key comes from the bundle itself, so this shows ' +
        'integrity, not who sent it',
    });
  } else if (trusted(senderPub)) {
    senderPinned = true;
    pass({ check: 'sender-pinned', detail: `sender key ${manifest.sender_pubkey} is trusted` });
  } else {
    fail({
      check: 'sender-pinned',
      code: 'SIGNER_UNTRUSTED',
      detail: `sender key ${manifest.sender_pubkey} is not trusted`,
    });
  }

  const signed = encodeCbor(manifestToCbor(manifest, false));
  if (provider.ed25519Verify(senderPub, signed, fromHex(manifest.manifest_sig))) {
    pass({ check: 'manifest-signature', detail: 'manifest_sig verifies under sender_pubkey' });
  } else {
    fail({
      check: 'manifest-signature',
      code: 'TBZ_SIGNATURE_INVALID',
      detail: 'manifest_sig does not verify under sender_pubkey',
    });
  }

  if (manifest.block_count === blocks.length + 1 && manifest.blocks.length === blocks.length) {
    pass({
      check: 'block-count',
      detail: `block_count ${manifest.block_count} = ${blocks.length} payload blocks + manifest`,
    });
  } else {
    fail({
      check: 'block-count',
      code: 'TBZ_BLOCK_COUNT',
      detail: `block_count ${manifest.block_count} does not match ${blocks.length} payload blocks + manifest`,
    });
  }

  blocks.forEach((block, i) => {
    const entry = manifest.blocks[i]!;
    const label = `block ${entry.index} (${quote(entry.name)})`;
    const digest = provider.sha256(block.content);
    if (block.content.length === entry.size_bytes && toHex(digest) === entry.content_sha256) {
      pass({
        check: 'block-digest',
        block: entry.index,
        detail: `${label}: size and SHA-256 match`,
      });
    } else {
      fail({
        check: 'block-digest',
        block: entry.index,
        code: 'TBZ_DIGEST_MISMATCH',
        detail: `${label}: content does not match size_bytes/content_sha256`,
      });
    }
    // Over the SHA-256 of the content actually present, as the sender signed it.
    const msg = blockSigningInput(digest, entry.name, entry.index);
    if (provider.ed25519Verify(senderPub, msg, fromHex(entry.ed25519_sig))) {
      pass({
        check: 'block-signature',
        block: entry.index,
        detail: `${label}: ed25519_sig verifies`,
      });
    } else {
      fail({
        check: 'block-signature',
        block: entry.index,
        code: 'TBZ_SIGNATURE_INVALID',
        detail: `${label}: ed25519_sig does not verify under sender_pubkey`,
      });
    }
  });

  const valid = checks.every((c) => c.status !== 'fail');
  return {
    valid,
    senderPinned,
    authenticated: valid && senderPinned,
    senderPubkey: manifest.sender_pubkey,
    checks,
    bundle,
  };
}

// ---------------------------------------------------------------------------------------
// Write

function requireText(v: unknown, label: string): string {
  if (typeof v !== 'string' || v.length === 0)
    throw new TypeError(`"${label}" expected a non-empty string`);
  return v;
}

function uuidV4(random: Random): string {
  const b = random(16);
  assertBytes(b, 'random(16)', 16);
  const u = copyBytes(b);
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  const h = toHex(u);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Build a TBZ bundle, signing each block and the manifest with `signerKey` (whose public
 * key becomes `sender_pubkey`). Deterministic: the same input, key, tpid and created_at
 * give the same bytes (Ed25519 signatures are deterministic). Bad input throws
 * TypeError/RangeError; the writer never emits what {@link readTbz} would refuse.
 */
export function writeTbz(
  input: TbzWriteInput,
  signerKey: Ed25519PrivateKey,
  opts: TbzWriteOptions = {},
): Uint8Array {
  if (!isPlainObject(input)) throw new TypeError('"input" expected an object');
  if (typeof signerKey !== 'object' || signerKey === null || typeof signerKey.sign !== 'function') {
    throw new TypeError('"signerKey" expected an Ed25519PrivateKey');
  }
  assertBytes(signerKey.publicKey, 'signerKey.publicKey', 32);
  const provider = opts.provider ?? getProvider();
  const lim = resolveLimits(opts.limits);

  const senderAint = requireText(input.senderAint, 'senderAint');
  const receiverAint = requireText(input.receiverAint, 'receiverAint');
  const payloadType = requireText(input.payloadType, 'payloadType');
  let receiverPubkey: string;
  if (typeof input.receiverPubkey === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(input.receiverPubkey))
      throw new RangeError('"receiverPubkey" expected 64 hex digits');
    receiverPubkey = input.receiverPubkey.toLowerCase();
  } else {
    assertBytes(input.receiverPubkey, 'receiverPubkey', 32);
    receiverPubkey = toHex(input.receiverPubkey);
  }
  const tokenId = input.transferOutTokenId ?? null;
  if (tokenId !== null && typeof tokenId !== 'string')
    throw new TypeError('"transferOutTokenId" expected a string or null');
  const tpid = input.tpid ?? uuidV4(opts.random ?? systemRandom);
  if (typeof tpid !== 'string' || !UUID.test(tpid))
    throw new RangeError('"tpid" expected a lowercase hyphenated UUID');
  const createdAt = input.createdAt ?? formatCreatedAt((opts.clock ?? systemClock).now());
  if (!isCreatedAt(createdAt))
    throw new RangeError('"createdAt" expected a UTC time YYYY-MM-DDTHH:MM:SSZ');

  const surface: Partial<Record<(typeof SURFACE_KEYS)[number], string>> = {};
  if (input.surface !== undefined) {
    if (!isPlainObject(input.surface)) throw new TypeError('"surface" expected an object');
    const map = [
      ['timeFragment', 'surface_time_fragment'],
      ['context', 'surface_context'],
      ['profile', 'surface_profile'],
      ['priority', 'surface_priority'],
    ] as const;
    for (const [from, to] of map) {
      const v = input.surface[from];
      if (v === undefined) continue;
      if (typeof v !== 'string') throw new TypeError(`"surface.${from}" expected a string`);
      surface[to] = v;
    }
  }

  if (!isList(input.blocks)) throw new TypeError('"blocks" expected an array');
  const blocks = input.blocks;
  if (blocks.length > lim.maxBlocks)
    throw new RangeError(`"blocks" has ${blocks.length} entries, the limit is ${lim.maxBlocks}`);
  let total = HEADER_BYTES;
  blocks.forEach((b, i) => {
    if (!isPlainObject(b) || typeof b.name !== 'string')
      throw new TypeError(`"blocks[${i}].name" expected a string`);
    assertBytes(b.content, `blocks[${i}].content`);
    if (b.content.length > lim.maxBlockBytes) {
      throw new RangeError(
        `"blocks[${i}].content" is ${b.content.length} bytes, the limit is ${lim.maxBlockBytes}`,
      );
    }
    total += 4 + b.content.length;
  });
  const nameIssues = nameSetProblems(blocks.map((b) => b.name));
  if (nameIssues.length > 0) throw new RangeError(joinProblems('"blocks" names', nameIssues));

  const entries: TbzManifestBlock[] = blocks.map((b, i) => {
    const digest = provider.sha256(b.content);
    const sig = signerKey.sign(blockSigningInput(digest, b.name, i + 1));
    return {
      index: i + 1,
      name: b.name,
      content_sha256: toHex(digest),
      size_bytes: b.content.length,
      ed25519_sig: toHex(sig),
    };
  });
  const manifest: TbzManifest = {
    tbz_format_version: 1,
    airdrop_format_version: 1,
    tpid,
    sender_aint: senderAint,
    sender_pubkey: toHex(signerKey.publicKey),
    receiver_aint: receiverAint,
    receiver_pubkey: receiverPubkey,
    payload_type: payloadType,
    block_count: blocks.length + 1,
    blocks: entries,
    created_at: createdAt,
    transfer_out_token_id: tokenId,
    ...surface,
    manifest_sig: '',
  };
  const signed = encodeCbor(manifestToCbor(manifest, false));
  const manifestSig = signerKey.sign(signed);
  // A signer that gives bad signatures (wrong key object, fault) must not produce a bundle.
  if (!provider.ed25519Verify(signerKey.publicKey, signed, manifestSig)) {
    throw new Error('signerKey produced a signature that does not verify under its public key');
  }
  manifest.manifest_sig = toHex(manifestSig);
  const manifestBytes = encodeCbor(manifestToCbor(manifest, true));
  if (manifestBytes.length > lim.maxManifestBytes) {
    throw new RangeError(
      `the manifest would be ${manifestBytes.length} bytes, the limit is ${lim.maxManifestBytes}`,
    );
  }
  total += manifestBytes.length;
  if (total > lim.maxTotalBytes)
    throw new RangeError(`the bundle would be ${total} bytes, the limit is ${lim.maxTotalBytes}`);
  // Writer and reader must agree: run the reader's manifest checks on what we wrote.
  parseManifest(manifestBytes, blocks.length + 1, lim);

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  dv.setUint32(4, blocks.length + 1, false);
  dv.setUint32(8, manifestBytes.length, false);
  out.set(manifestBytes, HEADER_BYTES);
  let pos = HEADER_BYTES + manifestBytes.length;
  for (const b of blocks) {
    dv.setUint32(pos, b.content.length, false);
    out.set(b.content, pos + 4);
    pos += 4 + b.content.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Unpack

function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = e.code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}

function unpackFailed(msg: string, cause?: unknown): TzaError {
  return new TzaError('UNPACK_FAILED', msg, cause === undefined ? undefined : { cause });
}

/**
 * Verify a bundle, then write each block to `targetDir/<name>`. Refuses unless the bundle
 * is valid and its sender pinned (`trustedSenderKeys`), unless `allowUnpinnedSender` or
 * `unsafeSkipVerification` say otherwise. Never overwrites (`UNPACK_TARGET_EXISTS`), never
 * follows a symlink out of the target (`O_NOFOLLOW`, plain-directory parents, realpath
 * containment; `UNPACK_FAILED`), fsyncs every file and directory it writes, and on failure
 * removes what it created. `targetDir` is created if missing.
 */
export async function unpackTbz(
  input: Uint8Array | TbzBundle,
  targetDir: string,
  opts: TbzUnpackOptions = {},
): Promise<TbzUnpackResult> {
  if (typeof targetDir !== 'string' || targetDir.length === 0)
    throw new TypeError('"targetDir" expected a path');
  const fileMode = opts.fileMode ?? 0o600;
  const dirMode = opts.dirMode ?? 0o700;
  if (!isUint(fileMode, 0o777)) throw new RangeError('"fileMode" expected a mode from 0 to 0o777');
  if (!isUint(dirMode, 0o777)) throw new RangeError('"dirMode" expected a mode from 0 to 0o777');

  let bundle: TbzBundle;
  let verification: TbzVerifyResult | undefined;
  if (opts.unsafeSkipVerification === true) {
    bundle =
      input instanceof Uint8Array ? readTbz(input, opts.limits) : checkBundle(input, opts.limits);
  } else {
    verification = verifyTbz(input, {
      trustedSenderKeys: opts.trustedSenderKeys,
      provider: opts.provider,
      limits: opts.limits,
      throwOnFailure: true,
    });
    if (!verification.senderPinned && opts.allowUnpinnedSender !== true) {
      throw new TzaError(
        'SIGNER_UNTRUSTED',
        'refusing to unpack: the sender key is not pinned; pass trustedSenderKeys (or allowUnpinnedSender: true)',
      );
    }
    if (verification.bundle === undefined) throw new Error('unreachable: verified bundle missing');
    bundle = verification.bundle;
  }
  // Names were checked when parsing; check again right before they touch the file system.
  checkNames(bundle.manifest);

  // Loaded lazily so that reading, verifying and writing bundles work outside Node.
  const fs = await import('node:fs/promises');
  const { constants } = await import('node:fs');
  const path = await import('node:path');
  const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
  const openFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;

  let root: string;
  try {
    await fs.mkdir(targetDir, { recursive: true, mode: dirMode });
    root = await fs.realpath(targetDir);
    if (!(await fs.lstat(root)).isDirectory())
      throw unpackFailed(`target ${quote(targetDir)} is not a directory`);
  } catch (e) {
    throw TzaError.is(e)
      ? e
      : unpackFailed(`cannot prepare target ${quote(targetDir)}: ${String(e)}`, e);
  }
  const inside = (p: string): boolean => p === root || p.startsWith(root + path.sep);

  const plan = bundle.blocks.map((b) => {
    const segs = b.name.split('/');
    const dest = path.join(root, ...segs);
    // Defence in depth: the name checks above already exclude every way out.
    if (!inside(path.dirname(dest)) || dest === root)
      throw new TzaError('TBZ_PATH_UNSAFE', `block name ${quote(b.name)} leaves the target`);
    return { block: b, segs, dest };
  });

  // Refuse before writing anything if a target already exists.
  for (const { block, dest } of plan) {
    try {
      await fs.lstat(dest);
    } catch (e) {
      const c = errnoCode(e);
      if (c === 'ENOENT' || c === 'ENOTDIR') continue;
      throw unpackFailed(`cannot check ${quote(block.name)}: ${String(e)}`, e);
    }
    throw new TzaError(
      'UNPACK_TARGET_EXISTS',
      `refusing to overwrite ${quote(block.name)} in the target`,
    );
  }

  const createdFiles: string[] = [];
  const createdDirs: string[] = [];
  const touchedDirs = new Set<string>([root]);
  const files: TbzUnpackResult['files'] = [];
  try {
    for (const { block, segs, dest } of plan) {
      let dir = root;
      for (const seg of segs.slice(0, -1)) {
        dir = path.join(dir, seg);
        try {
          await fs.mkdir(dir, { mode: dirMode });
          createdDirs.push(dir);
          touchedDirs.add(path.dirname(dir));
        } catch (e) {
          if (errnoCode(e) !== 'EEXIST')
            throw unpackFailed(`cannot create directory for ${quote(block.name)}: ${String(e)}`, e);
          const st = await fs.lstat(dir);
          if (st.isSymbolicLink() || !st.isDirectory()) {
            throw unpackFailed(
              `a parent of ${quote(block.name)} in the target is a symlink or not a directory`,
            );
          }
        }
      }
      const realParent = await fs.realpath(dir);
      if (!inside(realParent))
        throw unpackFailed(`the directory of ${quote(block.name)} resolves outside the target`);

      let fh;
      try {
        fh = await fs.open(dest, openFlags, fileMode);
      } catch (e) {
        const c = errnoCode(e);
        if (c === 'EEXIST' || c === 'ELOOP') {
          throw new TzaError(
            'UNPACK_TARGET_EXISTS',
            `refusing to overwrite ${quote(block.name)} in the target`,
            { cause: e },
          );
        }
        throw unpackFailed(`cannot create ${quote(block.name)}: ${String(e)}`, e);
      }
      createdFiles.push(dest);
      touchedDirs.add(path.dirname(dest));
      try {
        await fh.writeFile(block.content);
        await fh.sync();
      } finally {
        await fh.close();
      }
      files.push({ name: block.name, path: dest, size: block.content.length });
    }
    // Make the new directory entries durable too (best effort: not every platform can).
    for (const d of touchedDirs) {
      let dh;
      try {
        dh = await fs.open(d, constants.O_RDONLY);
        await dh.sync();
      } catch {
        // e.g. Windows cannot open directories
      } finally {
        await dh?.close();
      }
    }
  } catch (e) {
    for (const f of createdFiles.reverse()) await fs.unlink(f).catch(() => undefined);
    for (const d of createdDirs.reverse()) await fs.rmdir(d).catch(() => undefined);
    throw TzaError.is(e) ? e : unpackFailed(`unpacking failed: ${String(e)}`, e);
  }
  return { manifest: bundle.manifest, files, verification };
}
