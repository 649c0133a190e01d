/** The `tza/1` manifest: its shape, its strict validation and its limits. */
import { isActorId, parseRfc3339 } from '@tibet/core';
import { CborTag, decodeCbor, type CborValue, type EncodedShape } from './cbor.js';
import { TzaError } from './errors.js';
import { unsafeNameReason } from './tar.js';

export const TZA_FORMAT = 'tza/1';
export const MANIFEST_NAME = 'manifest.cbor';
export const SIGNATURES_NAME = 'signatures.cbor';
/** `manifest.json` is reserved too: unpacking writes the readable report there. */
export const RESERVED_NAMES: readonly string[] = [MANIFEST_NAME, SIGNATURES_NAME, 'manifest.json'];
/** Plaintext bytes per sealed chunk. */
export const CHUNK_SIZE = 65536;
export const TAG_SIZE = 16;
export const NONCE_PREFIX_SIZE = 19;

export interface TzaRecipient {
  /** The recipient's actor id. */
  id: string;
  /** The recipient's X25519 public key. */
  pk: Uint8Array;
  /** HPKE encapsulated key. */
  enc: Uint8Array;
  /** The data key sealed with HPKE (32 + 16 bytes). */
  wk: Uint8Array;
}

export interface TzaEntryDescriptor {
  name: string;
  media_type: string;
  sealed: boolean;
  /** Stored (ciphertext for sealed entries) size in bytes. */
  size: number;
  /** SHA-256 of the stored bytes. */
  sha256: Uint8Array;
  /** Sealed only: 19-byte nonce prefix of the entry's chunks. */
  nonce?: Uint8Array;
  /** Sealed only: plaintext size. */
  plain_size?: number;
}

export type TzaMeta = { readonly [key: string]: CborValue };

export interface TzaManifest {
  format: typeof TZA_FORMAT;
  bundle_id: string;
  kind: string;
  created_at: string;
  meta: TzaMeta;
  recipients: TzaRecipient[];
  entries: TzaEntryDescriptor[];
}

export interface TzaLimits {
  maxEntries: number;
  maxEntrySize: number;
  maxTotalSize: number;
  maxNameLength: number;
  maxCborDepth: number;
  maxManifestSize: number;
  maxSignatures: number;
  maxRecipients: number;
}

export const DEFAULT_LIMITS: Readonly<TzaLimits> = Object.freeze({
  maxEntries: 1024,
  maxEntrySize: 64 * 1024 * 1024,
  maxTotalSize: 256 * 1024 * 1024,
  maxNameLength: 100,
  maxCborDepth: 16,
  maxManifestSize: 1024 * 1024,
  maxSignatures: 16,
  maxRecipients: 64,
});

export const BUNDLE_ID = /^tza_[0-9a-f]{32}$/;
export const KIND = /^[a-z][a-z0-9-]{0,31}$/;
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/**
 * Names that could not all be unpacked side by side: `a` and `a/b` (a file that is also
 * a folder). Returns the first such pair.
 */
export function folderConflict(names: readonly string[]): [string, string] | undefined {
  // only a name with a "/" can sit inside a folder
  if (!names.some((n) => n.includes('/'))) return undefined;
  const set = new Set(names.filter(Boolean));
  for (const n of set) {
    const segs = n.split('/');
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/');
      if (set.has(dir)) return [dir, n];
    }
  }
  return undefined;
}

/** Number of chunks a sealed entry of `plainSize` bytes has (at least one). */
export function chunkCount(plainSize: number): number {
  return Math.max(1, Math.ceil(plainSize / CHUNK_SIZE));
}

export function sealedSize(plainSize: number): number {
  return plainSize + TAG_SIZE * chunkCount(plainSize);
}

function isPlainObject(v: unknown): v is Record<string, CborValue> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof Uint8Array) &&
    !(v instanceof Map) &&
    !(v instanceof CborTag)
  );
}

function isBytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function onlyKeys(
  o: Record<string, unknown>,
  allowed: ReadonlySet<string>,
  where: string | (() => string),
  errors: string[],
): void {
  for (const k of Object.keys(o)) {
    if (!allowed.has(k))
      errors.push(`${typeof where === 'string' ? where : where()}: unknown field "${k}"`);
  }
}

const MANIFEST_KEYS: ReadonlySet<string> = new Set([
  'format',
  'bundle_id',
  'kind',
  'created_at',
  'meta',
  'recipients',
  'entries',
]);
const RECIPIENT_KEYS: ReadonlySet<string> = new Set(['id', 'pk', 'enc', 'wk']);
const SEALED_ENTRY_KEYS: ReadonlySet<string> = new Set([
  'name',
  'media_type',
  'sealed',
  'size',
  'sha256',
  'nonce',
  'plain_size',
]);
const PLAIN_ENTRY_KEYS: ReadonlySet<string> = new Set([
  'name',
  'media_type',
  'sealed',
  'size',
  'sha256',
]);

/** Some earlier key in `keys[0, i)` has the same bytes as `keys[i]` (all 32 bytes long). */
function seenBefore(keys: readonly Uint8Array[], i: number): boolean {
  const k = keys[i]!;
  for (let j = 0; j < i; j++) {
    const o = keys[j]!;
    let same = true;
    for (let b = 0; b < 32; b++) {
      if (o[b] !== k[b]) {
        same = false;
        break;
      }
    }
    if (same) return true;
  }
  return false;
}

/**
 * Decode and validate manifest bytes. CBOR errors keep their own codes; a structurally
 * wrong manifest raises `MANIFEST_INVALID` listing every problem; a `tza/N` other than 1
 * raises `UNKNOWN_VERSION`.
 */
export function parseManifest(bytes: Uint8Array, limits: TzaLimits = DEFAULT_LIMITS): TzaManifest {
  if (bytes.length > limits.maxManifestSize) {
    throw new TzaError(
      'LIMIT_EXCEEDED',
      `manifest of ${bytes.length} bytes exceeds ${limits.maxManifestSize}`,
    );
  }
  const v = decodeCbor(bytes, {
    maxDepth: limits.maxCborDepth,
    maxItems: manifestMaxItems(limits),
  });
  return validateManifest(v, limits);
}

/** The most array elements and map entries a manifest's CBOR may hold. */
function manifestMaxItems(limits: TzaLimits): number {
  return 4 * limits.maxEntries + 4 * limits.maxRecipients + 10_000;
}

/**
 * The writer's check of a manifest it has just encoded (docs/tza.md §11): `bytes` is
 * `encodeShaped(value)`, `shape` what that encoding recorded, and nothing has run since.
 * Returns true when {@link parseManifest} is sure to accept `bytes`; otherwise runs it (and
 * returns false when it accepts), so a manifest the reader would refuse throws exactly the
 * reader's error.
 *
 * Why the fast path is sure: the size is checked on the bytes themselves. A `plain` shape
 * holds no tag and only text-keyed maps and is canonical and well-formed (the encoder
 * writes nothing else), so within the depth and item limits (counted as the decoder
 * counts them) it decodes, to the same tree as `value`: the same members with the same
 * strings, numbers, booleans and bytes. The validation below is the reader's, run on
 * `value` itself; it never looks at the order of members, only at their names and
 * values. The one member it cannot trust `value` for is `meta`, the caller's object (its
 * type is read again by the validator): for it the bytes are read — `meta` must be
 * encoded as a map, whose keys a plain shape makes text, so it decodes to a plain
 * object; `value` is validated with an empty `meta` in its place.
 */
export function checkWrittenManifest(
  value: { readonly [key: string]: CborValue },
  bytes: Uint8Array,
  shape: EncodedShape,
  limits: TzaLimits,
): boolean {
  if (
    bytes.length <= limits.maxManifestSize &&
    shape.plain &&
    shape.depth <= limits.maxCborDepth &&
    shape.items <= manifestMaxItems(limits) &&
    metaIsMap(bytes)
  ) {
    try {
      validateManifest(
        {
          format: value['format']!,
          bundle_id: value['bundle_id']!,
          kind: value['kind']!,
          created_at: value['created_at']!,
          meta: {},
          recipients: value['recipients']!,
          entries: value['entries']!,
        },
        limits,
      );
      // and `value` has exactly those seven members (as the decoded manifest will)
      const keys = Object.keys(value);
      if (keys.length === 7 && keys.every((k) => MANIFEST_KEYS.has(k))) return true;
    } catch (e) {
      if (!TzaError.is(e)) throw e;
    }
  }
  parseManifest(bytes, limits);
  return false;
}

/**
 * The encoded manifest is a map of seven entries whose first two are `"kind"` with a text
 * value and `"meta"` (the order of their encoded keys), and `meta`'s value is a map.
 */
function metaIsMap(b: Uint8Array): boolean {
  if (b[0] !== 0xa7 || !hasKeyAt(b, 1, KEY_KIND)) return false;
  // "kind": a text string with a one- or two-byte head
  let o = 1 + KEY_KIND.length;
  const h = b[o]!;
  if (h >= 0x60 && h < 0x78) o += 1 + (h - 0x60);
  else if (h === 0x78) o += 2 + b[o + 1]!;
  else return false;
  return hasKeyAt(b, o, KEY_META) && b[o + KEY_META.length]! >> 5 === 5;
}

const KEY_KIND = Uint8Array.of(0x64, 0x6b, 0x69, 0x6e, 0x64); // text "kind"
const KEY_META = Uint8Array.of(0x64, 0x6d, 0x65, 0x74, 0x61); // text "meta"

function hasKeyAt(b: Uint8Array, at: number, key: Uint8Array): boolean {
  if (at + key.length >= b.length) return false;
  for (let i = 0; i < key.length; i++) if (b[at + i] !== key[i]) return false;
  return true;
}

/** The checks of {@link parseManifest} after decoding, on the decoded value `v`. */
function validateManifest(v: CborValue, limits: TzaLimits): TzaManifest {
  if (!isPlainObject(v))
    throw new TzaError('MANIFEST_INVALID', 'manifest must be a map with text keys');
  const fmt = v['format'];
  if (typeof fmt === 'string' && fmt !== TZA_FORMAT && /^tza\//.test(fmt)) {
    throw new TzaError(
      'UNKNOWN_VERSION',
      `unsupported bundle version ${JSON.stringify(fmt.slice(0, 40))} (this reader knows ${TZA_FORMAT})`,
    );
  }
  const e: string[] = [];
  onlyKeys(v, MANIFEST_KEYS, 'manifest', e);
  if (fmt !== TZA_FORMAT) e.push(`format must be "${TZA_FORMAT}"`);
  if (!(typeof v['bundle_id'] === 'string' && BUNDLE_ID.test(v['bundle_id'])))
    e.push('bundle_id must be tza_ + 32 hex');
  if (!(typeof v['kind'] === 'string' && KIND.test(v['kind'])))
    e.push('kind must match [a-z][a-z0-9-]{0,31}');
  if (!parseRfc3339(v['created_at'])) e.push('created_at must be RFC 3339 UTC');
  if (!isPlainObject(v['meta'])) e.push('meta must be a map with text keys');
  const recips = v['recipients'];
  if (!Array.isArray(recips)) e.push('recipients must be an array');
  else {
    if (recips.length > limits.maxRecipients)
      throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxRecipients} recipients`);
    // the recipients' 32-byte keys so far, for duplicates (compared byte for byte)
    const pks: Uint8Array[] = [];
    for (let i = 0; i < recips.length; i++) {
      const r = recips[i] as CborValue;
      const w = (): string => `recipients[${i}]`;
      if (!isPlainObject(r)) {
        e.push(`${w()} must be a map`);
        continue;
      }
      onlyKeys(r, RECIPIENT_KEYS, w, e);
      if (!isActorId(r['id'])) e.push(`${w()}.id must be a jis: actor id`);
      const pk = r['pk'];
      if (!isBytes(pk, 32)) e.push(`${w()}.pk must be 32 bytes`);
      else {
        pks.push(pk);
        if (seenBefore(pks, pks.length - 1)) e.push(`${w()}: duplicate recipient key`);
      }
      if (!isBytes(r['enc'], 32)) e.push(`${w()}.enc must be 32 bytes`);
      if (!isBytes(r['wk'], 48)) e.push(`${w()}.wk must be 48 bytes`);
    }
  }
  const ents = v['entries'];
  let anySealed = false;
  if (!Array.isArray(ents)) e.push('entries must be an array');
  else {
    if (ents.length > limits.maxEntries - 2)
      throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxEntries - 2} entries`);
    const names = new Set<string>();
    for (let i = 0; i < ents.length; i++) {
      const x = ents[i] as CborValue;
      const w = (): string => `entries[${i}]`;
      if (!isPlainObject(x)) {
        e.push(`${w()} must be a map`);
        continue;
      }
      const sealed = x['sealed'];
      onlyKeys(x, sealed === true ? SEALED_ENTRY_KEYS : PLAIN_ENTRY_KEYS, w, e);
      const name = x['name'];
      if (typeof name !== 'string') e.push(`${w()}.name must be text`);
      else {
        const why = unsafeNameReason(name, limits.maxNameLength);
        if (why) e.push(`${w()}.name ${JSON.stringify(name.slice(0, 120))}: ${why}`);
        if (RESERVED_NAMES.includes(name)) e.push(`${w()}.name ${name} is reserved`);
        if (names.has(name)) e.push(`${w()}.name ${name} is a duplicate`);
        names.add(name);
      }
      if (!(typeof x['media_type'] === 'string' && MEDIA_TYPE.test(x['media_type'])))
        e.push(`${w()}.media_type must be a lowercase type/subtype`);
      if (typeof sealed !== 'boolean') e.push(`${w()}.sealed must be a boolean`);
      const size = x['size'];
      if (!isUint(size)) e.push(`${w()}.size must be an unsigned integer`);
      else if (size > limits.maxEntrySize)
        throw new TzaError(
          'LIMIT_EXCEEDED',
          `${w()} of ${size} bytes exceeds ${limits.maxEntrySize}`,
        );
      if (!isBytes(x['sha256'], 32)) e.push(`${w()}.sha256 must be 32 bytes`);
      if (sealed === true) {
        anySealed = true;
        if (!isBytes(x['nonce'], NONCE_PREFIX_SIZE))
          e.push(`${w()}.nonce must be ${NONCE_PREFIX_SIZE} bytes`);
        const plain = x['plain_size'];
        if (!isUint(plain)) e.push(`${w()}.plain_size must be an unsigned integer`);
        else if (isUint(size) && sealedSize(plain) !== size)
          e.push(`${w()}.size does not fit plain_size`);
      }
    }
  }
  if (Array.isArray(ents)) {
    const conflict = folderConflict(
      ents.map((x: CborValue) =>
        isPlainObject(x) && typeof x['name'] === 'string' ? x['name'] : '',
      ),
    );
    if (conflict) e.push(`entry ${conflict[0]} is also used as a folder by ${conflict[1]}`);
  }
  if (anySealed && Array.isArray(recips) && recips.length === 0)
    e.push('sealed entries need at least one recipient');
  if (!anySealed && Array.isArray(recips) && recips.length > 0)
    e.push('recipients without sealed entries');
  if (e.length)
    throw new TzaError(
      'MANIFEST_INVALID',
      `invalid manifest: ${e.slice(0, 20).join('; ')}${e.length > 20 ? `; … ${e.length - 20} more` : ''}`,
    );
  return v as unknown as TzaManifest;
}
