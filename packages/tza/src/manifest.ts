/** The `tza/1` manifest: its shape, its strict validation and its limits. */
import { isActorId, parseRfc3339, toHex } from '@tibet/core';
import { CborTag, decodeCbor, type CborValue } from './cbor.js';
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
  allowed: readonly string[],
  where: string,
  errors: string[],
): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) errors.push(`${where}: unknown field "${k}"`);
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
    maxItems: 4 * limits.maxEntries + 4 * limits.maxRecipients + 10_000,
  });
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
  onlyKeys(
    v,
    ['format', 'bundle_id', 'kind', 'created_at', 'meta', 'recipients', 'entries'],
    'manifest',
    e,
  );
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
    const seen = new Set<string>();
    recips.forEach((r: CborValue, i) => {
      const w = `recipients[${i}]`;
      if (!isPlainObject(r)) return void e.push(`${w} must be a map`);
      onlyKeys(r, ['id', 'pk', 'enc', 'wk'], w, e);
      if (!isActorId(r['id'])) e.push(`${w}.id must be a jis: actor id`);
      if (!isBytes(r['pk'], 32)) e.push(`${w}.pk must be 32 bytes`);
      else {
        const k = toHex(r['pk']);
        if (seen.has(k)) e.push(`${w}: duplicate recipient key`);
        seen.add(k);
      }
      if (!isBytes(r['enc'], 32)) e.push(`${w}.enc must be 32 bytes`);
      if (!isBytes(r['wk'], 48)) e.push(`${w}.wk must be 48 bytes`);
    });
  }
  const ents = v['entries'];
  let anySealed = false;
  if (!Array.isArray(ents)) e.push('entries must be an array');
  else {
    if (ents.length > limits.maxEntries - 2)
      throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxEntries - 2} entries`);
    const names = new Set<string>();
    ents.forEach((x: CborValue, i) => {
      const w = `entries[${i}]`;
      if (!isPlainObject(x)) return void e.push(`${w} must be a map`);
      const sealed = x['sealed'];
      onlyKeys(
        x,
        sealed === true
          ? ['name', 'media_type', 'sealed', 'size', 'sha256', 'nonce', 'plain_size']
          : ['name', 'media_type', 'sealed', 'size', 'sha256'],
        w,
        e,
      );
      const name = x['name'];
      if (typeof name !== 'string') e.push(`${w}.name must be text`);
      else {
        const why = unsafeNameReason(name, limits.maxNameLength);
        if (why) e.push(`${w}.name ${JSON.stringify(name.slice(0, 120))}: ${why}`);
        if (RESERVED_NAMES.includes(name)) e.push(`${w}.name ${name} is reserved`);
        if (names.has(name)) e.push(`${w}.name ${name} is a duplicate`);
        names.add(name);
      }
      if (!(typeof x['media_type'] === 'string' && MEDIA_TYPE.test(x['media_type'])))
        e.push(`${w}.media_type must be a lowercase type/subtype`);
      if (typeof sealed !== 'boolean') e.push(`${w}.sealed must be a boolean`);
      if (!isUint(x['size'])) e.push(`${w}.size must be an unsigned integer`);
      else if (x['size'] > limits.maxEntrySize)
        throw new TzaError(
          'LIMIT_EXCEEDED',
          `${w} of ${x['size']} bytes exceeds ${limits.maxEntrySize}`,
        );
      if (!isBytes(x['sha256'], 32)) e.push(`${w}.sha256 must be 32 bytes`);
      if (sealed === true) {
        anySealed = true;
        if (!isBytes(x['nonce'], NONCE_PREFIX_SIZE))
          e.push(`${w}.nonce must be ${NONCE_PREFIX_SIZE} bytes`);
        if (!isUint(x['plain_size'])) e.push(`${w}.plain_size must be an unsigned integer`);
        else if (isUint(x['size']) && sealedSize(x['plain_size']) !== x['size'])
          e.push(`${w}.size does not fit plain_size`);
      }
    });
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
