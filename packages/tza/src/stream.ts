/**
 * `tza/1` on disk with bounded memory: pack entries that are files, and open or verify a
 * bundle file by seeking from header to header and streaming entries in chunk-sized reads.
 * The bytes are those of `packTza` for the same inputs, clock and randomness; every format
 * rule comes from bundle.ts and tar.ts (the chunk cipher, the manifest, the signatures, the
 * tar layout and the strict tar walk), this file only moves bytes between files.
 * See docs/tza.md, "Streaming".
 */
import { createHash, randomUUID } from 'node:crypto';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { equalBytes, getProvider, wipe, type CryptoProvider, type Identity } from '@tibet/core';
import {
  beginPack,
  bundleLayout,
  checkDigest,
  describeEntry,
  entryAad,
  entryCipher,
  failedReport,
  finishPack,
  limitsOf,
  manifestOf,
  matchEntry,
  parseSignatures,
  refuseTbz,
  requireManifestFirst,
  requireSignaturesLast,
  requireVerified,
  sealEntry,
  unwrapKey,
  verifyParsed,
  type EntryCipher,
  type PackEntry,
  type PackInput,
  type TzaOptions,
  type VerifyOptions,
  type VerifyReport,
} from './bundle.js';
import type { ParsedSignature } from './cose.js';
import { TzaError } from './errors.js';
import {
  CHUNK_SIZE,
  NONCE_PREFIX_SIZE,
  TAG_SIZE,
  sealedSize,
  type TzaEntryDescriptor,
  type TzaLimits,
  type TzaManifest,
} from './manifest.js';
import { BLOCK, MAX_TAR_ENTRY_SIZE, TarWalker, tarLayout, tarSize, type TarSpan } from './tar.js';

/** An entry whose bytes are in a file, read while packing (never held whole in memory). */
export interface PackFileEntry {
  name: string;
  path: string;
  mediaType?: string;
  /** Encrypt to the bundle's recipients (default false). */
  sealed?: boolean;
}

export interface PackFileInput extends Omit<PackInput, 'entries'> {
  entries: readonly (PackEntry | PackFileEntry)[];
}

export interface PackFileResult {
  manifest: TzaManifest;
  /** Length of the bundle file in bytes. */
  size: number;
}

/** Bytes moved per read or write when copying and hashing (the sealing pass reads chunks). */
const COPY_BLOCK = 16 * CHUNK_SIZE;

/** A stored entry that lives in a file: `size` bytes whose SHA-256 is `sha256`. */
interface FileSource {
  path: string;
  size: number;
  sha256: Uint8Array;
}

function sha256Digest(h: ReturnType<typeof createHash>): Uint8Array {
  return new Uint8Array(h.digest());
}

/** Read up to `length` bytes at `position` into `buf`; fewer only at the end of the file. */
async function readInto(
  fh: FileHandle,
  buf: Uint8Array,
  length: number,
  position: number,
): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let o = 0; o < data.length;) {
    const { bytesWritten } = await fh.write(data, o, data.length - o, position + o);
    o += bytesWritten;
  }
}

function changed(path: string, what: string): Error {
  return new Error(`input file ${path} changed while the bundle was being written (${what})`);
}

/** Temporary names in the output's folder, so that the final rename stays on one file system. */
function tempPath(outPath: string, what: string): string {
  return join(dirname(outPath), `.${basename(outPath)}.${randomUUID()}.${what}.tmp`);
}

/**
 * Pass over exactly `size` bytes of `path` in {@link COPY_BLOCK} reads, hashing them and
 * handing each block to `sink`. Throws if the file is shorter or longer than `size` or,
 * when `expect` is given, if its SHA-256 differs.
 */
async function passFile(
  path: string,
  size: number,
  sink?: (block: Uint8Array, offset: number) => Promise<void>,
  expect?: Uint8Array,
): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  const buf = new Uint8Array(Math.min(COPY_BLOCK, Math.max(1, size)));
  try {
    const hash = createHash('sha256');
    for (let o = 0; o < size;) {
      const n = Math.min(buf.length, size - o);
      if ((await readInto(fh, buf, n, o)) < n) throw changed(path, `shorter than ${size} bytes`);
      const block = buf.subarray(0, n);
      hash.update(block);
      if (sink) await sink(block, o);
      o += n;
    }
    if ((await readInto(fh, buf, 1, size)) !== 0) throw changed(path, `longer than ${size} bytes`);
    const digest = sha256Digest(hash);
    if (expect && !equalBytes(digest, expect)) throw changed(path, 'its SHA-256 differs');
    return digest;
  } finally {
    buf.fill(0);
    await fh.close();
  }
}

/**
 * Encrypt `plainSize` bytes of `path` with `cipher`, chunk by chunk, into a new file `tmp`;
 * returns the SHA-256 of the ciphertext written.
 */
async function sealFile(
  path: string,
  plainSize: number,
  cipher: EntryCipher,
  tmp: string,
): Promise<Uint8Array> {
  const src = await open(path, 'r');
  const pt = new Uint8Array(CHUNK_SIZE);
  try {
    const out = await open(tmp, 'wx', 0o600);
    try {
      const hash = createHash('sha256');
      let pos = 0;
      for (let i = 0; i < cipher.chunks; i++) {
        const n = cipher.plainLength(i);
        if ((await readInto(src, pt, n, i * CHUNK_SIZE)) < n)
          throw changed(path, `shorter than ${plainSize} bytes`);
        const ct = cipher.seal(i, pt.subarray(0, n));
        hash.update(ct);
        await writeAll(out, ct, pos);
        pos += ct.length;
      }
      if ((await readInto(src, pt, 1, plainSize)) !== 0)
        throw changed(path, `longer than ${plainSize} bytes`);
      await out.sync();
      return sha256Digest(hash);
    } finally {
      await out.close();
    }
  } finally {
    wipe(pt);
    await src.close();
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // already gone, or never created
  }
}

function isFileEntry(e: PackEntry | PackFileEntry): e is PackFileEntry {
  return 'path' in e;
}

/**
 * Like `packTza`, written to `outPath`, with entries that may be files (`{ name, path }`).
 * Identical bytes to `packTza` for the same inputs, clock and randomness. Memory stays
 * bounded whatever the entry sizes: a sealed file is encrypted in one streaming pass into a
 * temporary file (hashing the ciphertext); a plain file is hashed once, then hashed again
 * while it is copied into the bundle (a file that changed in between aborts the pack).
 * The bundle is written to a temporary file in the same folder, fsynced and renamed over
 * `outPath`, and the folder is fsynced; temporary files are removed whatever happens.
 * Entry and bundle sizes are checked against `limits` before anything is read.
 */
export async function packTzaToFile(
  outPath: string,
  input: PackFileInput,
  opts: TzaOptions = {},
): Promise<PackFileResult> {
  if (typeof outPath !== 'string' || outPath === '')
    throw new TypeError('"outPath" expected a file path');
  const limits = limitsOf(opts.limits);
  // sizes first: the stored size of every entry, checked against the limits up front
  const sizes: number[] = [];
  for (const e of input.entries) {
    let size: number;
    if (isFileEntry(e)) {
      if ('data' in e) throw new TypeError(`entry ${e.name}: give "data" or "path", not both`);
      if (typeof e.path !== 'string' || e.path === '')
        throw new TypeError(`entry ${e.name}: "path" expected a file path`);
      const st = await stat(e.path);
      if (!st.isFile()) throw new TypeError(`entry ${e.name}: ${e.path} is not a regular file`);
      size = st.size;
    } else {
      if (!(e.data instanceof Uint8Array))
        throw new TypeError(`entry ${e.name}: "data" expected Uint8Array (or give "path")`);
      size = e.data.length;
    }
    sizes.push(size);
    const stored = e.sealed ? sealedSize(size) : size;
    if (stored > MAX_TAR_ENTRY_SIZE)
      throw new RangeError(`entry ${e.name} of ${stored} bytes does not fit a ustar size field`);
    if (stored > limits.maxEntrySize)
      throw new TzaError(
        'LIMIT_EXCEEDED',
        `entry ${e.name} of ${stored} bytes exceeds ${limits.maxEntrySize}`,
      );
  }
  // manifest and signatures at least add a header each
  const atLeast = tarSize([
    { size: 0 },
    ...input.entries.map((e, i) => ({ size: e.sealed ? sealedSize(sizes[i]!) : sizes[i]! })),
    { size: 0 },
  ]);
  if (atLeast > limits.maxTotalSize)
    throw new TzaError(
      'LIMIT_EXCEEDED',
      `bundle of ${atLeast}+ bytes exceeds ${limits.maxTotalSize}`,
    );

  const s = beginPack(input, opts);
  const temps: string[] = [];
  try {
    const sources: (Uint8Array | FileSource)[] = [];
    const entries: TzaEntryDescriptor[] = [];
    for (const [i, e] of input.entries.entries()) {
      const size = sizes[i]!;
      if (e.sealed) {
        // one nonce prefix per sealed entry, in entry order, as packTza draws them
        const nonce = s.random(NONCE_PREFIX_SIZE);
        const aad = entryAad(s.bundleId, e.name);
        let stored: { size: number; sha256: Uint8Array };
        if (isFileEntry(e)) {
          const tmp = tempPath(outPath, 'entry');
          temps.push(tmp);
          const cipher = entryCipher(s.provider, s.dek, nonce, aad, size, e.name);
          stored = { size: sealedSize(size), sha256: await sealFile(e.path, size, cipher, tmp) };
          sources.push({ path: tmp, ...stored });
        } else {
          const ct = sealEntry(s.provider, s.dek, nonce, aad, e.data);
          stored = { size: ct.length, sha256: s.provider.sha256(ct) };
          sources.push(ct);
        }
        entries.push(describeEntry(e, stored, { nonce, plainSize: size }));
      } else if (isFileEntry(e)) {
        const stored = { size, sha256: await passFile(e.path, size) };
        sources.push({ path: e.path, ...stored });
        entries.push(describeEntry(e, stored));
      } else {
        entries.push(describeEntry(e, { size, sha256: s.provider.sha256(e.data) }));
        sources.push(e.data);
      }
    }
    const signedManifest = finishPack(s, input, entries);
    const { manifest } = signedManifest;
    const layout = bundleLayout(signedManifest, s.limits, sources);
    const total = tarSize(layout.entries);
    if (total > limits.maxTotalSize)
      throw new TzaError(
        'LIMIT_EXCEEDED',
        `bundle of ${total} bytes exceeds ${limits.maxTotalSize}`,
      );

    const tmpOut = tempPath(outPath, 'tza');
    temps.push(tmpOut);
    const out = await open(tmpOut, 'wx');
    try {
      let pos = 0;
      for (const piece of tarLayout(layout.entries, layout.mtime)) {
        const data = piece instanceof Uint8Array ? piece : piece.data;
        if (data instanceof Uint8Array) {
          await writeAll(out, data, pos);
        } else {
          const base = pos;
          await passFile(data.path, data.size, (b, o) => writeAll(out, b, base + o), data.sha256);
        }
        pos += data instanceof Uint8Array ? data.length : data.size;
      }
      if (pos !== total) throw new Error(`internal: wrote ${pos} bytes, expected ${total}`);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmpOut, outPath);
    temps.pop();
    const dir = await open(dirname(outPath), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return { manifest, size: total };
  } finally {
    wipe(s.dek);
    for (const t of temps) await removeQuietly(t);
  }
}

// ---------------------------------------------------------------------------------------
// reading

/** Fill `buf` from `position`; a file that ends sooner is `TAR_TRUNCATED`. */
async function readExactly(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  if ((await readInto(fh, buf, buf.length, position)) < buf.length)
    throw new TzaError('TAR_TRUNCATED', `bundle file ends before byte ${position + buf.length}`);
}

/** Exactly `length` bytes at `position`, in a fresh buffer. */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await readExactly(fh, buf, position);
  return buf;
}

interface ParsedTzaFile {
  manifest: TzaManifest;
  manifestBytes: Uint8Array;
  signatures: ParsedSignature[];
  /** Where each payload entry's stored bytes lie, in manifest order. */
  spans: TarSpan[];
}

async function hashSpan(fh: FileHandle, span: TarSpan): Promise<Uint8Array> {
  const hash = createHash('sha256');
  const buf = new Uint8Array(Math.min(COPY_BLOCK, Math.max(1, span.size)));
  for (let o = 0; o < span.size;) {
    const n = Math.min(buf.length, span.size - o);
    if ((await readInto(fh, buf, n, span.offset + o)) < n)
      throw new TzaError('TAR_TRUNCATED', `entry ${span.name} is truncated`);
    hash.update(buf.subarray(0, n));
    o += n;
  }
  return sha256Digest(hash);
}

/**
 * `readTza` over a file handle, in the same order of checks (docs/tza.md §9), reading only
 * headers, padding, the manifest and the signatures. With `digests`, every entry is hashed
 * in a streaming pass, in order, as `readTza` does; without, entry digests are left to
 * whoever streams the entry.
 */
async function readTzaFile(
  fh: FileHandle,
  limits: TzaLimits,
  provider: CryptoProvider,
  digests: boolean,
): Promise<ParsedTzaFile> {
  const { size } = await fh.stat();
  refuseTbz(await readAt(fh, 0, Math.min(3, size)));
  const w = new TarWalker(size, limits);
  const spans: TarSpan[] = [];
  for (let o = 0; ;) {
    w.checkBlock(o);
    const span = w.entry(await readAt(fh, o, BLOCK), o);
    if (!span) {
      w.endMarker(o, o + 2 * BLOCK <= size ? await readAt(fh, o + BLOCK, BLOCK) : undefined);
      break;
    }
    w.padding(span, await readAt(fh, span.offset + span.size, span.end - span.offset - span.size));
    spans.push(span);
    o = span.end;
  }
  requireManifestFirst(spans);
  const first = spans[0]!;
  // parseManifest checks this too, but only once the bytes are read: check before reading
  if (first.size > limits.maxManifestSize)
    throw new TzaError(
      'LIMIT_EXCEEDED',
      `manifest of ${first.size} bytes exceeds ${limits.maxManifestSize}`,
    );
  const manifestBytes = await readAt(fh, first.offset, first.size);
  const manifest = manifestOf(manifestBytes, w.mtime, limits);
  requireSignaturesLast(spans);
  const payload = spans.slice(1, -1);
  for (let i = 0; i < Math.max(manifest.entries.length, payload.length); i++) {
    const d = matchEntry(manifest, payload, i);
    if (digests) checkDigest(d, await hashSpan(fh, payload[i]!));
  }
  const last = spans[spans.length - 1]!;
  // A valid signatures entry is a few hundred bytes per signature; holding it to the
  // manifest's size limit keeps a hostile one from being loaded whole (readTza, which has
  // the whole bundle in memory already, does not need this bound).
  if (last.size > limits.maxManifestSize)
    throw new TzaError(
      'LIMIT_EXCEEDED',
      `signatures entry of ${last.size} bytes exceeds ${limits.maxManifestSize}`,
    );
  const signatures = parseSignatures(await readAt(fh, last.offset, last.size), limits, provider);
  return { manifest, manifestBytes, signatures, spans: payload };
}

/**
 * `verifyTza` for a bundle file: the same checks in the same order and the same report,
 * with entry digests computed by streaming (memory stays bounded whatever the entry sizes).
 * Never throws for a bad bundle; a file that cannot be opened or read still throws.
 */
export async function verifyTzaFile(path: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const provider = opts.provider ?? getProvider();
  const fh = await open(path, 'r');
  let parsed: ParsedTzaFile;
  try {
    parsed = await readTzaFile(fh, limitsOf(opts.limits), provider, true);
  } catch (e) {
    return failedReport(e, opts);
  } finally {
    await fh.close();
  }
  return verifyParsed(parsed, opts, provider);
}

/** A verified bundle file, open for streaming its entries. */
export interface OpenedTzaFile {
  manifest: TzaManifest;
  report: VerifyReport;
  /** The payload entries' names, in bundle order. */
  entryNames: string[];
  /**
   * The entry's bytes (plaintext for sealed entries) in chunks of at most 64 KiB. Sealed
   * chunks are released only once they authenticate; the stored bytes' SHA-256 is checked
   * against the manifest after the last chunk (`DIGEST_MISMATCH`). Treat what was received
   * as final only once the iteration has ended without an error.
   */
  stream(name: string): AsyncIterable<Uint8Array>;
  /** The whole entry in one fresh buffer (bounded by `limits.maxEntrySize`). */
  readAll(name: string): Promise<Uint8Array>;
  /** Close the file and zero the data key. */
  close(): Promise<void>;
}

/**
 * `openTza` for a bundle file: verify structure, manifest, signatures and trust exactly as
 * `openTza` does (same checks, same codes) without loading any entry, unwrap the data key
 * with `identity`, and return a handle that streams entries. Entry digests are checked as
 * each entry is streamed, not here: a bit flipped inside an entry surfaces from `stream`
 * (`DECRYPT_FAILED` for a sealed chunk, `DIGEST_MISMATCH` otherwise). Use `verifyTzaFile`
 * first for a verdict on every stored byte before reading anything.
 */
export async function openTzaFile(
  path: string,
  identity: Identity | undefined,
  opts: VerifyOptions = {},
): Promise<OpenedTzaFile> {
  const provider = opts.provider ?? getProvider();
  const fh = await open(path, 'r');
  let dek: Uint8Array | undefined;
  try {
    const parsed = await readTzaFile(fh, limitsOf(opts.limits), provider, false);
    const report = requireVerified(parsed, opts, provider);
    const m = parsed.manifest;
    const anySealed = m.entries.some((e) => e.sealed);
    if (anySealed && !identity)
      throw new TzaError('NOT_A_RECIPIENT', 'an identity is needed to open sealed entries');
    dek = anySealed ? unwrapKey(provider, m, identity!) : undefined;
    return openedFile(fh, parsed, report, dek, provider);
  } catch (e) {
    wipe(dek);
    await fh.close();
    throw e;
  }
}

function openedFile(
  fh: FileHandle,
  parsed: ParsedTzaFile,
  report: VerifyReport,
  dek: Uint8Array | undefined,
  provider: CryptoProvider,
): OpenedTzaFile {
  const m = parsed.manifest;
  let closed = false;
  const find = (name: string): number => {
    if (closed) throw new TypeError('the bundle file is closed');
    const i = m.entries.findIndex((e) => e.name === name);
    if (i < 0) throw new TypeError(`bundle ${m.bundle_id} has no entry ${JSON.stringify(name)}`);
    return i;
  };
  async function* chunks(d: TzaEntryDescriptor, span: TarSpan): AsyncGenerator<Uint8Array> {
    const hash = createHash('sha256');
    if (d.sealed) {
      const aad = entryAad(m.bundle_id, d.name);
      const cipher = entryCipher(provider, dek!, d.nonce!, aad, d.plain_size!, d.name);
      // the stored chunk is never released, so one buffer serves every read
      const buf = new Uint8Array(Math.min(CHUNK_SIZE, d.plain_size!) + TAG_SIZE);
      for (let i = 0, pos = span.offset; i < cipher.chunks; i++) {
        const stored = buf.subarray(0, cipher.plainLength(i) + TAG_SIZE);
        await readExactly(fh, stored, pos);
        pos += stored.length;
        hash.update(stored);
        // released only once it authenticates under the key wrapped in the signed manifest,
        // at its index, with the final flag exactly on the last chunk
        yield cipher.open(i, stored);
      }
    } else {
      for (let o = 0; o < d.size; o += CHUNK_SIZE) {
        const b = await readAt(fh, span.offset + o, Math.min(CHUNK_SIZE, d.size - o));
        hash.update(b);
        yield b;
      }
    }
    checkDigest(d, sha256Digest(hash));
  }
  const stream = (name: string): AsyncIterable<Uint8Array> => {
    const i = find(name);
    return chunks(m.entries[i]!, parsed.spans[i]!);
  };
  return {
    manifest: m,
    report,
    entryNames: m.entries.map((e) => e.name),
    stream,
    async readAll(name) {
      const d = m.entries[find(name)]!;
      const out = new Uint8Array(d.sealed ? d.plain_size! : d.size);
      let o = 0;
      try {
        for await (const c of stream(name)) {
          out.set(c, o);
          o += c.length;
          if (d.sealed) wipe(c);
        }
      } catch (e) {
        wipe(out);
        throw e;
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      wipe(dek);
      await fh.close();
    },
  };
}
