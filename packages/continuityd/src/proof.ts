/**
 * Proof verification and the C2SP `tlog-proof` file.
 *
 * - `verifyInclusion` / `verifyConsistency`: RFC 9162 §2.1.3.2 and §2.1.4.2, pure (hashing
 *   only), in plain arithmetic so that tree sizes up to 2^53 − 1 work (no 32-bit bit ops).
 * - `formatTlogProof` / `parseTlogProof`: the c2sp.org/tlog-proof@v1 text format:
 *
 *       c2sp.org/tlog-proof@v1
 *       [extra <base64>]
 *       index <decimal>
 *       <base64 hash>        (zero or more: the RFC 9162 inclusion proof, leaf's sibling first)
 *       <empty line>
 *       <the signed checkpoint note, verbatim>
 *
 * - `verifyTlogProof`: offline, with only the log's public key: checkpoint signature, then the
 *   inclusion of the entry under the checkpoint's root.
 * - `exportTlogProof`: build that file for record `index` of a log folder.
 *
 * See docs/continuityd-proofs.md.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertBytes,
  equalBytes,
  fromBase64,
  fromUtf8,
  getProvider,
  toBase64,
  type CryptoProvider,
} from '@tibet/core';
import { parseCheckpoint, verifyCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { ContinuityError } from './errors.js';
import { latestCheckpoint, listSegments, splitLines } from './log.js';
import { emptyRoot, leafHash as rfcLeafHash, nodeHash } from './merkle.js';
import { parseRecord } from './record.js';
import { TreeStore } from './tree-store.js';

export const TLOG_PROOF_HEADER = 'c2sp.org/tlog-proof@v1';
/** Trees stay below 2^53 leaves, so no valid inclusion proof has more than 53 hashes. */
export const MAX_PROOF_HASHES = 64;
/** Largest tlog-proof file accepted (the checkpoint note alone may be 64 KiB). */
export const MAX_TLOG_PROOF_BYTES = 256 * 1024;

const HASH = 32;
const HASH_B64 = /^[A-Za-z0-9+/]{43}=$/;
const INDEX_LINE = /^index (0|[1-9][0-9]{0,15})$/;

function invalid(msg: string): never {
  throw new ContinuityError('PROOF_INVALID', msg);
}

function malformed(msg: string, cause?: unknown): never {
  throw new ContinuityError(
    'PROOF_MALFORMED',
    `tlog-proof: ${msg}`,
    cause === undefined ? undefined : { cause },
  );
}

const half = (x: number): number => Math.floor(x / 2);
const odd = (x: number): boolean => x % 2 === 1;

function checkSize(n: unknown, label: string): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`"${label}" must be a non-negative safe integer`);
}

function checkProofHashes(proof: readonly Uint8Array[]): void {
  if (!isArray(proof)) throw new TypeError('"proof" expected an array of hashes');
  if (proof.length > MAX_PROOF_HASHES)
    throw new ContinuityError('PROOF_MALFORMED', `proof has ${proof.length} hashes (max 64)`);
  proof.forEach((h, i) => {
    if (!(h instanceof Uint8Array) || h.length !== HASH)
      throw new ContinuityError('PROOF_MALFORMED', `proof hash ${i} is not 32 bytes`);
  });
}

/** Array.isArray without narrowing the argument to any[]. */
function isArray(v: unknown): boolean {
  return Array.isArray(v);
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** The number of hashes in the RFC 9162 inclusion proof of `index` in a tree of `size`. */
export function inclusionProofLength(index: number, size: number): number {
  checkSize(index, 'index');
  checkSize(size, 'size');
  if (index >= size) throw new RangeError('"index" must be below "size"');
  let len = 0;
  let m = index;
  let n = size;
  while (n > 1) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    if (m < k) n = k;
    else {
      m -= k;
      n -= k;
    }
    len++;
  }
  return len;
}

/**
 * RFC 9162 §2.1.3.2: check that `leafHash` is leaf `index` of the tree of `size` leaves whose
 * MTH is `root`. Throws `PROOF_INVALID` when it is not (wrong index, size, length or hashes),
 * `PROOF_MALFORMED` when a proof element is not a 32-byte hash.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
  p: CryptoProvider = getProvider(),
): void {
  assertBytes(leafHash, 'leafHash', HASH);
  assertBytes(root, 'root', HASH);
  checkSize(index, 'index');
  checkSize(size, 'size');
  checkProofHashes(proof);
  // 1. leaf_index >= tree_size fails
  if (index >= size) invalid(`inclusion proof: index ${index} is not below tree size ${size}`);
  // 2.–3.
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  // 4.
  for (const h of proof) {
    if (sn === 0) invalid('inclusion proof: too many hashes');
    if (odd(fn) || fn === sn) {
      r = nodeHash(h, r, p);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, h, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 5.
  if (sn !== 0) invalid('inclusion proof: too few hashes');
  if (!equalBytes(r, root)) invalid('inclusion proof: computed root does not match');
}

/**
 * RFC 9162 §2.1.4.2: check that the tree of `newSize` leaves (MTH `newRoot`) extends the
 * tree of `oldSize` leaves (MTH `oldRoot`). Beyond the RFC (which covers 0 < old < new):
 * equal sizes need an empty proof and equal roots; old size 0 needs an empty proof and the
 * empty-tree root. Throws `PROOF_INVALID` / `PROOF_MALFORMED`.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
  p: CryptoProvider = getProvider(),
): void {
  checkSize(oldSize, 'oldSize');
  checkSize(newSize, 'newSize');
  assertBytes(oldRoot, 'oldRoot', HASH);
  assertBytes(newRoot, 'newRoot', HASH);
  checkProofHashes(proof);
  if (oldSize > newSize) invalid(`consistency proof: old size ${oldSize} > new size ${newSize}`);
  if (oldSize === newSize) {
    if (proof.length) invalid('consistency proof between equal sizes must be empty');
    if (!equalBytes(oldRoot, newRoot)) invalid('consistency proof: equal sizes, different roots');
    return;
  }
  if (oldSize === 0) {
    if (proof.length) invalid('consistency proof from the empty tree must be empty');
    if (!equalBytes(oldRoot, emptyRoot(p)))
      invalid('consistency proof: old root is not the empty-tree root');
    return;
  }
  // 1.
  if (proof.length === 0) invalid('consistency proof: empty');
  // 2.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : [...proof];
  // 3.
  let fn = oldSize - 1;
  let sn = newSize - 1;
  // 4.
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // 5.
  let fr = path[0]!;
  let sr = path[0]!;
  // 6.
  for (const c of path.slice(1)) {
    if (sn === 0) invalid('consistency proof: too many hashes');
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr, p);
      sr = nodeHash(c, sr, p);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 7.
  if (sn !== 0) invalid('consistency proof: too few hashes');
  if (!equalBytes(fr, oldRoot)) invalid('consistency proof: old root does not match');
  if (!equalBytes(sr, newRoot)) invalid('consistency proof: new root does not match');
}

/** A parsed c2sp.org/tlog-proof@v1 file. */
export interface TlogProof {
  index: number;
  /** The inclusion proof, leaf's sibling first. */
  proof: Uint8Array[];
  /** The checkpoint note as it appears in the file (parsed, signatures not checked). */
  checkpoint: SignedCheckpoint;
  /** Opaque, unauthenticated extra data, when the file has an `extra` line. */
  extra?: Uint8Array;
}

export interface TlogProofInput {
  index: number;
  proof: readonly Uint8Array[];
  /** The signed checkpoint note (included verbatim). */
  checkpoint: string | SignedCheckpoint;
  extra?: Uint8Array;
}

/**
 * Write a c2sp.org/tlog-proof@v1 file. Refuses input that would not parse back or that is
 * inconsistent with itself (index not below the checkpoint's size, wrong proof length).
 */
export function formatTlogProof(input: TlogProofInput): string {
  const { index, proof, extra } = input;
  checkSize(index, 'index');
  if (!isArray(proof)) throw new TypeError('"proof" expected an array of hashes');
  proof.forEach((h, i) => assertBytes(h, `proof[${i}]`, HASH));
  if (extra !== undefined) assertBytes(extra, 'extra');
  const note = typeof input.checkpoint === 'string' ? input.checkpoint : input.checkpoint.note;
  const cp = parseCheckpoint(note);
  if (index >= cp.size)
    throw new RangeError(`"index" ${index} is not below the checkpoint's tree size ${cp.size}`);
  const want = inclusionProofLength(index, cp.size);
  if (proof.length !== want)
    throw new RangeError(`"proof" expected ${want} hashes for index ${index} of ${cp.size}`);
  const lines = [TLOG_PROOF_HEADER];
  if (extra !== undefined) lines.push(`extra ${toBase64(extra)}`);
  lines.push(`index ${index}`);
  for (const h of proof) lines.push(toBase64(h));
  const out = `${lines.join('\n')}\n\n${note}`;
  if (out.length > MAX_TLOG_PROOF_BYTES) throw new RangeError('tlog-proof would be too large');
  return out;
}

/**
 * Parse a c2sp.org/tlog-proof@v1 file strictly: `\n` line ends only, the exact header,
 * canonical padded base64 (RFC 4648 §4), an index without leading zeros, 32-byte hashes,
 * and a checkpoint note that parses strictly (anything after it is part of the note, so
 * trailing bytes fail as `CHECKPOINT_MALFORMED`). No signature or proof check here.
 */
export function parseTlogProof(input: string | Uint8Array): TlogProof {
  let text: string;
  if (input instanceof Uint8Array) {
    if (input.length > MAX_TLOG_PROOF_BYTES) malformed('file too large');
    try {
      text = fromUtf8(input);
    } catch (e) {
      malformed('not UTF-8', e);
    }
  } else if (typeof input === 'string') {
    text = input;
  } else {
    throw new TypeError('"input" expected a string or Uint8Array');
  }
  if (text.length > MAX_TLOG_PROOF_BYTES) malformed('file too large');
  const sep = text.indexOf('\n\n');
  if (sep < 0) malformed('no empty line before the checkpoint');
  const head = text.slice(0, sep).split('\n');
  const note = text.slice(sep + 2);
  if (head[0] !== TLOG_PROOF_HEADER) malformed(`first line must be ${TLOG_PROOF_HEADER}`);
  let i = 1;
  let extra: Uint8Array | undefined;
  if (head[i]?.startsWith('extra ')) {
    try {
      extra = fromBase64(head[i]!.slice('extra '.length), 'extra');
    } catch (e) {
      malformed('extra data is not canonical base64', e);
    }
    i++;
  }
  const m = INDEX_LINE.exec(head[i] ?? '');
  if (!m) malformed('expected an "index N" line (decimal, no leading zeros)');
  const index = Number(m[1]);
  if (!Number.isSafeInteger(index)) malformed('index too large');
  i++;
  const lines = head.slice(i);
  if (lines.length > MAX_PROOF_HASHES) malformed(`more than ${MAX_PROOF_HASHES} proof hashes`);
  const proof = lines.map((l, j) => {
    if (!HASH_B64.test(l)) malformed(`proof line ${j + 1} is not a base64 SHA-256 hash`);
    try {
      return fromBase64(l, 'proof hash');
    } catch (e) {
      malformed(`proof line ${j + 1} is not canonical base64`, e);
    }
  });
  const checkpoint = parseCheckpoint(note);
  return extra === undefined ? { index, proof, checkpoint } : { index, proof, checkpoint, extra };
}

export interface VerifyTlogProofOptions {
  /** The logged entry (for this log: the record line's bytes, without the newline)… */
  entry?: Uint8Array;
  /** …or its RFC 9162 leaf hash, SHA-256(0x00 ‖ entry). Exactly one of the two. */
  leafHash?: Uint8Array;
  /** The log's signed-note key name and Ed25519 public key. */
  logKeyName: string;
  logPublicKey: Uint8Array;
  /**
   * The origin line the checkpoint must carry. Default: `logKeyName` (this log names its
   * key after its origin); `null` skips the check.
   */
  origin?: string | null;
  provider?: CryptoProvider;
}

export interface VerifiedTlogProof {
  index: number;
  size: number;
  rootHash: Uint8Array;
  leafHash: Uint8Array;
  checkpoint: SignedCheckpoint;
  /** Present when the file has it; NOT authenticated by the proof. */
  extra?: Uint8Array;
}

/**
 * Verify a tlog-proof offline: parse strictly, check the structure (origin, index below the
 * tree size, proof length), then the log's signature on the checkpoint, then the inclusion
 * of the entry under the checkpoint's root. Throws `PROOF_MALFORMED`, `CHECKPOINT_MALFORMED`,
 * `PROOF_INVALID` or `CHECKPOINT_SIGNATURE_INVALID`.
 */
export function verifyTlogProof(
  text: string | Uint8Array,
  o: VerifyTlogProofOptions,
): VerifiedTlogProof {
  const p = o.provider ?? getProvider();
  if ((o.entry === undefined) === (o.leafHash === undefined))
    throw new TypeError('give exactly one of "entry" and "leafHash"');
  if (o.entry !== undefined) assertBytes(o.entry, 'entry');
  if (o.leafHash !== undefined) assertBytes(o.leafHash, 'leafHash', HASH);
  if (typeof o.logKeyName !== 'string' || !o.logKeyName)
    throw new TypeError('"logKeyName" expected a key name');
  assertBytes(o.logPublicKey, 'logPublicKey', 32);
  const leaf = o.leafHash ?? rfcLeafHash(o.entry!, p);
  const t = parseTlogProof(text);
  const cp = t.checkpoint;
  const origin = o.origin === undefined ? o.logKeyName : o.origin;
  if (origin !== null && cp.origin !== origin)
    invalid(`checkpoint origin "${cp.origin}" is not the expected "${origin}"`);
  if (t.index >= cp.size) invalid(`index ${t.index} is not below the checkpoint's size ${cp.size}`);
  const want = inclusionProofLength(t.index, cp.size);
  if (t.proof.length !== want)
    invalid(
      `inclusion proof has ${t.proof.length} hashes; index ${t.index} of ${cp.size} needs ${want}`,
    );
  verifyCheckpoint(cp, o.logKeyName, o.logPublicKey, p);
  verifyInclusion(leaf, t.index, cp.size, t.proof, cp.rootHash, p);
  const out: VerifiedTlogProof = {
    index: t.index,
    size: cp.size,
    rootHash: cp.rootHash,
    leafHash: leaf,
    checkpoint: cp,
  };
  if (t.extra !== undefined) out.extra = t.extra;
  return out;
}

/**
 * The bytes of record `index` of a log folder as they are hashed into the tree: the line
 * without its newline (checked to be a well-formed record at that index). Reads the one
 * segment that holds it.
 */
export async function readLogLine(dir: string, index: number): Promise<Uint8Array> {
  checkSize(index, 'index');
  const segs = await listSegments(dir);
  let seg: { first: number; path: string } | undefined;
  for (const s of segs) if (s.first <= index) seg = s;
  if (!seg) throw new ContinuityError('NOT_FOUND', `no segment holds record ${index}`);
  const { lines } = splitLines(new Uint8Array(await readFile(seg.path)));
  const line = lines[index - seg.first];
  if (!line) throw new ContinuityError('NOT_FOUND', `no record ${index} in ${dir}`);
  parseRecord(line, index);
  return line.slice();
}

interface LogKey {
  origin: string;
  keyName: string;
  publicKey: Uint8Array;
}

async function readLogKey(dir: string): Promise<LogKey> {
  const path = join(dir, 'log.json');
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const { origin, key_name: keyName, public_key: pk } = m;
    if (typeof origin !== 'string' || typeof keyName !== 'string' || typeof pk !== 'string')
      throw new TypeError('missing origin, key_name or public_key');
    return { origin, keyName, publicKey: fromBase64(pk, 'public_key') };
  } catch (e) {
    throw new ContinuityError('STATE_CORRUPT', `cannot read the log key from ${path}`, {
      cause: e,
    });
  }
}

export interface ExportTlogProofOptions {
  /** The checkpoint to prove against (default: the log's latest). */
  checkpoint?: string | SignedCheckpoint;
  /** An open node store (e.g. the writer's observer); default: `<dir>/tree`, read-only. */
  tree?: TreeStore;
  /** Opaque extra data for the `extra` line. */
  extra?: Uint8Array;
  provider?: CryptoProvider;
}

/**
 * Build the c2sp.org/tlog-proof@v1 file for record `index` of the log in `dir`: its line,
 * the latest checkpoint (or the given one; it must be signed by the log's key), and the
 * inclusion proof from the node store (O(log n) reads), checked against the checkpoint's
 * root before it is returned (`ROOT_MISMATCH` if the store disagrees with the checkpoint).
 */
export async function exportTlogProof(
  dir: string,
  index: number,
  o: ExportTlogProofOptions = {},
): Promise<string> {
  checkSize(index, 'index');
  const p = o.provider ?? getProvider();
  const key = await readLogKey(dir);
  let cp: SignedCheckpoint | undefined;
  if (o.checkpoint !== undefined) {
    cp = typeof o.checkpoint === 'string' ? parseCheckpoint(o.checkpoint) : o.checkpoint;
  } else {
    cp = await latestCheckpoint(dir);
    if (!cp)
      throw new ContinuityError(
        'NOT_FOUND',
        `log ${dir} has no checkpoint yet: sign one (AuditLog.checkpoint()) before exporting proofs`,
      );
  }
  if (cp.size <= index)
    throw new ContinuityError(
      'NOT_FOUND',
      `record ${index} is not covered by the ${o.checkpoint ? 'given' : 'latest'} checkpoint (tree size ${cp.size}): sign a checkpoint after it was appended, then export again`,
    );
  if (cp.origin !== key.origin)
    invalid(`checkpoint origin "${cp.origin}" is not this log's origin "${key.origin}"`);
  verifyCheckpoint(cp, key.keyName, key.publicKey, p);
  const line = await readLogLine(dir, index);
  const tree = o.tree ?? (await TreeStore.openForLog(dir, { readOnly: true, provider: p }));
  try {
    if (tree.size < cp.size)
      throw new ContinuityError(
        'NOT_FOUND',
        `the node store ${tree.dir} holds ${tree.size} leaves but the checkpoint needs ${cp.size}: open the log with a TreeStore observer (it catches up from the segments) and export again`,
      );
    const proof = await tree.inclusionProof(index, cp.size);
    try {
      verifyInclusion(rfcLeafHash(line, p), index, cp.size, proof, cp.rootHash, p);
    } catch (e) {
      throw new ContinuityError(
        'ROOT_MISMATCH',
        `the node store ${tree.dir} disagrees with the checkpoint of size ${cp.size} (delete it to rebuild it from the log)`,
        { cause: e },
      );
    }
    const input: TlogProofInput = { index, proof, checkpoint: cp.note };
    if (o.extra !== undefined) input.extra = o.extra;
    return formatTlogProof(input);
  } finally {
    if (!o.tree) await tree.close();
  }
}
