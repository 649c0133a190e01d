/**
 * The deterministic POSIX ustar subset that `tza/1` uses, read and written here because the
 * bundle's bytes are part of its specification (docs/tza.md §2):
 *
 * - regular files only (typeflag `0`), names of 1–100 bytes in the `name` field (no prefix),
 * - mode `0000644`, uid/gid `0000000`, empty uname/gname, devmajor/devminor `0000000`,
 * - mtime fixed by the writer (the bundle's creation time, whole seconds),
 * - data padded with zeros to 512 bytes, then two zero blocks, then nothing.
 *
 * The reader rebuilds the canonical header for each entry and compares every byte, so
 * any other tar (GNU/pax extensions, links, devices, directories, other modes) is refused.
 */
import { fromUtf8, utf8 } from '@tibet/core';
import { TzaError } from './errors.js';

export const BLOCK = 512;
export const MAX_NAME_BYTES = 100;
/** The largest entry the 12-byte size field holds (11 octal digits): 8 GiB − 1. */
export const MAX_TAR_ENTRY_SIZE = 0o77777777777;

export interface TarEntry {
  name: string;
  data: Uint8Array;
}

export interface TarLimits {
  maxEntries: number;
  maxEntrySize: number;
  maxTotalSize: number;
  maxNameLength: number;
}

function octal(n: number, width: number): string {
  // width-1 octal digits then NUL
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`tar field value must be a non-negative integer, got ${n}`);
  }
  const s = n.toString(8);
  if (s.length > width - 1)
    throw new RangeError(`value ${n} does not fit a ${width}-byte tar field`);
  return s.padStart(width - 1, '0') + '\0';
}

/** The length of the UTF-8 form of `s` (ASCII counted without encoding). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return utf8(s).length;
  return s.length;
}

/**
 * A name is safe when it is a relative path of non-empty segments made of printable ASCII
 * other than `\`, with no `.` or `..` segment. Returns a reason when it is not.
 */
export function unsafeNameReason(name: string, maxBytes = MAX_NAME_BYTES): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'empty name';
  const n = name.length;
  // one pass: printable ASCII (space to "~") only, and whether a backslash occurs
  let printable = true;
  let backslash = false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) printable = false;
    else if (c === 0x5c) backslash = true;
  }
  // a printable name is ASCII: its UTF-8 length is its length
  if ((printable ? n : utf8Length(name)) > maxBytes) return `name longer than ${maxBytes} bytes`;
  if (!printable) return 'name has a control or non-ASCII character';
  if (backslash) return 'name has a backslash';
  if (name.charCodeAt(0) === 0x2f) return 'absolute path';
  if (n >= 2 && name.charCodeAt(1) === 0x3a && isAsciiLetter(name.charCodeAt(0)))
    return 'drive-letter path';
  // the "/"-separated segments in order: none empty, none "." or ".."
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && name.charCodeAt(i) !== 0x2f) continue;
    const len = i - start;
    if (len === 0) return 'empty path segment';
    if (
      name.charCodeAt(start) === 0x2e &&
      (len === 1 || (len === 2 && name.charCodeAt(start + 1) === 0x2e))
    )
      return `"${name.slice(start, i)}" path segment`;
    start = i + 1;
  }
  return undefined;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/**
 * Every byte of a `tza/1` header that does not depend on the entry: mode, uid, gid, the
 * typeflag, the ustar magic and version, devmajor and devminor, and the checksum field as
 * eight spaces (how the checksum is computed). Name, size and mtime are zeros here.
 */
const TEMPLATE = ((): Uint8Array => {
  const h = new Uint8Array(BLOCK);
  const put = (off: number, s: string): void => {
    for (let i = 0; i < s.length; i++) h[off + i] = s.charCodeAt(i);
  };
  put(100, '0000644\0');
  put(108, '0000000\0');
  put(116, '0000000\0');
  put(148, '        ');
  put(156, '0');
  put(257, 'ustar\0');
  put(263, '00');
  put(329, '0000000\0');
  put(337, '0000000\0');
  return h;
})();
const TEMPLATE_SUM = TEMPLATE.reduce((a, b) => a + b, 0);

/** `octal(n, width)` written as ASCII at `off`; returns the sum of the bytes written. */
function putOctal(h: Uint8Array, off: number, n: number, width: number): number {
  const s = octal(n, width);
  let sum = 0;
  for (let i = 0; i < width; i++) {
    const c = s.charCodeAt(i);
    h[off + i] = c;
    sum += c;
  }
  return sum;
}

/**
 * Write the canonical header of an entry into `h` at `off` (512 bytes, which the caller
 * provides; any previous content is overwritten).
 */
export function writeTarHeader(
  h: Uint8Array,
  off: number,
  name: string,
  size: number,
  mtime: number,
): void {
  const nb = utf8(name);
  if (nb.length === 0 || nb.length > MAX_NAME_BYTES)
    throw new RangeError(`tar name must be 1..${MAX_NAME_BYTES} bytes`);
  h.set(TEMPLATE, off);
  h.set(nb, off);
  let sum = TEMPLATE_SUM;
  for (let i = 0; i < nb.length; i++) sum += nb[i]!;
  sum += putOctal(h, off + 124, size, 12);
  sum += putOctal(h, off + 136, mtime, 12);
  // six octal digits, NUL, space (the largest possible sum, 512 × 255, fits in six)
  const cs = sum.toString(8).padStart(6, '0');
  for (let i = 0; i < 6; i++) h[off + 148 + i] = cs.charCodeAt(i);
  h[off + 154] = 0;
  h[off + 155] = 0x20;
}

export function tarHeader(name: string, size: number, mtime: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  writeTarHeader(h, 0, name, size, mtime);
  return h;
}

export function paddedSize(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** Length of an archive holding entries of these data sizes (headers, padding, end marker). */
export function tarSize(entries: readonly { size: number }[]): number {
  let total = 2 * BLOCK;
  for (const e of entries) total += BLOCK + paddedSize(e.size);
  return total;
}

/**
 * The archive in the order a writer emits it: for each entry its header, then the entry
 * itself (yielded as given, for the caller to write its `size` data bytes), then zero
 * padding to the next block; finally the two zero blocks of the end marker. Both the
 * in-memory {@link writeTar} and the streaming file writer follow this one layout.
 */
export function* tarLayout<T extends { readonly name: string; readonly size: number }>(
  entries: readonly T[],
  mtime: number,
): Generator<Uint8Array | T> {
  for (const e of entries) {
    yield tarHeader(e.name, e.size, mtime);
    yield e;
    if (paddedSize(e.size) > e.size) yield new Uint8Array(paddedSize(e.size) - e.size);
  }
  yield new Uint8Array(2 * BLOCK);
}

/**
 * Write entries in the order given; the archive ends with two zero blocks. The same layout
 * as {@link tarLayout}, written straight into one buffer.
 */
export function writeTar(entries: readonly TarEntry[], mtime: number): Uint8Array {
  let total = 2 * BLOCK;
  for (const e of entries) total += BLOCK + paddedSize(e.data.length);
  const out = new Uint8Array(total); // zeros: the padding and the end marker
  let o = 0;
  for (const e of entries) {
    writeTarHeader(out, o, e.name, e.data.length, mtime);
    out.set(e.data, o + BLOCK);
    o += BLOCK + paddedSize(e.data.length);
  }
  return out;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The value of a field of `width - 1` octal digits then NUL, read straight from the bytes;
 * undefined when the field has any other form (the caller then reports why).
 */
function octalField(h: Uint8Array, off: number, width: number): number | undefined {
  let n = 0;
  for (let i = off; i < off + width - 1; i++) {
    const c = h[i]!;
    if (c < 0x30 || c > 0x37) return undefined;
    n = n * 8 + (c - 0x30);
  }
  return h[off + width - 1] === 0 ? n : undefined;
}

function parseOctal(field: Uint8Array, what: string): number {
  const fast = field.length === 12 ? octalField(field, 0, 12) : undefined;
  if (fast !== undefined) return fast;
  let s: string;
  try {
    s = fromUtf8(field);
  } catch {
    throw new TzaError('TAR_MALFORMED', `tar ${what} is not text`);
  }
  const m = /^([0-7]{1,11})\0$/.exec(s);
  if (!m) throw new TzaError('TAR_MALFORMED', `tar ${what} is not a NUL-terminated octal number`);
  return parseInt(m[1]!, 8);
}

/** The name, size and mtime of a header; checks the checksum and the ustar magic. */
export function parseHeader(
  h: Uint8Array,
  limits: TarLimits,
): { name: string; size: number; mtime: number } {
  const stored = parseOctalChecksum(h.subarray(148, 156));
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += h[i]!;
  for (let i = 156; i < BLOCK; i++) sum += h[i]!;
  if (stored !== sum) throw new TzaError('TAR_CHECKSUM', 'tar header checksum mismatch');
  // the magic and version bytes must be exactly "ustar\0" "00"
  for (let i = 0; i < 8; i++) {
    if (h[257 + i] !== USTAR[i]) throw new TzaError('TAR_MALFORMED', 'not a POSIX ustar header');
  }
  const type = h[156]!;
  if (type !== 0x30) {
    throw new TzaError(
      'TAR_ENTRY_TYPE',
      `tar entry type ${JSON.stringify(String.fromCharCode(type))} refused: only regular files`,
    );
  }
  const nameEnd = h.subarray(0, 100).indexOf(0);
  const rawName = h.subarray(0, nameEnd === -1 ? 100 : nameEnd);
  const name = fromUtf8Safe(rawName);
  if (!isZero(h.subarray(345, 500)))
    throw new TzaError('TAR_NON_CANONICAL', 'tar prefix field must be empty');
  const reason = unsafeNameReason(name, Math.min(limits.maxNameLength, MAX_NAME_BYTES));
  if (reason) {
    throw new TzaError(
      reason.startsWith('name longer') ? 'LIMIT_EXCEEDED' : 'TAR_PATH_UNSAFE',
      `unsafe entry name ${JSON.stringify(name.slice(0, 120))}: ${reason}`,
    );
  }
  const size = parseOctal(h.subarray(124, 136), 'size');
  const mtime = parseOctal(h.subarray(136, 148), 'mtime');
  return { name, size, mtime };
}

const USTAR = Uint8Array.of(0x75, 0x73, 0x74, 0x61, 0x72, 0x00, 0x30, 0x30);

/** The text of `b` when every byte is ASCII (valid UTF-8 of the same text), else undefined. */
function asciiOf(b: Uint8Array): string | undefined {
  let s = '';
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

function fromUtf8Safe(b: Uint8Array): string {
  // names are ASCII in practice: those skip the UTF-8 decoder
  const ascii = asciiOf(b);
  if (ascii !== undefined) return ascii;
  try {
    return fromUtf8(b);
  } catch {
    throw new TzaError('TAR_MALFORMED', 'tar header field is not UTF-8');
  }
}

function parseOctalChecksum(f: Uint8Array): number {
  // six octal digits, NUL, space
  if (f.length === 8 && f[7] === 0x20) {
    const fast = octalField(f, 0, 7);
    if (fast !== undefined) return fast;
  }
  const s = fromUtf8Safe(f);
  const m = /^([0-7]{6})\0 $/.exec(s);
  if (!m) throw new TzaError('TAR_MALFORMED', 'tar checksum field malformed');
  return parseInt(m[1]!, 8);
}

/** Where an entry's data lies in the archive: `size` bytes at `offset`, then zero padding to `end`. */
export interface TarSpan {
  name: string;
  size: number;
  offset: number;
  end: number;
}

/**
 * The strict walk over an archive of `length` bytes, shared by {@link readTar} (bytes in
 * memory) and the file reader (which seeks from header to header and never loads entries).
 * The caller reads each block at the offsets the walker names and hands it in; the walker
 * applies every rule of docs/tza.md §2 in one place and order:
 *
 *     const w = new TarWalker(length, limits);
 *     for (let o = 0; ; ) {
 *       w.checkBlock(o);
 *       const span = w.entry(blockAt(o), o);
 *       if (!span) { w.endMarker(o, o + 2 * BLOCK <= length ? blockAt(o + BLOCK) : undefined); break; }
 *       w.padding(span, bytesAt(span.offset + span.size, span.end));
 *       o = span.end;
 *     }
 */
/** Where {@link TarWalker.entry} builds the canonical header it compares with (never escapes). */
const SCRATCH = new Uint8Array(BLOCK);

export class TarWalker {
  private readonly names = new Set<string>();
  private count = 0;
  private mtimeSeen: number | undefined;

  constructor(
    readonly length: number,
    private readonly limits: TarLimits,
  ) {
    if (length > limits.maxTotalSize) {
      throw new TzaError(
        'LIMIT_EXCEEDED',
        `bundle of ${length} bytes exceeds ${limits.maxTotalSize}`,
      );
    }
    if (length % BLOCK !== 0) {
      throw new TzaError('TAR_TRUNCATED', `archive length ${length} is not a multiple of ${BLOCK}`);
    }
  }

  /** The archive's mtime (that of its first header; 0 for an archive without entries). */
  get mtime(): number {
    return this.mtimeSeen ?? 0;
  }

  /** A header is due at `o`: it must lie inside the archive. */
  checkBlock(o: number): void {
    if (o + BLOCK > this.length)
      throw new TzaError('TAR_TRUNCATED', 'archive ends without its end-of-archive marker');
  }

  /**
   * Check the header block `h` found at `o`. Returns the entry it introduces, or undefined
   * when `h` is a zero block (the end marker begins: call {@link endMarker}).
   */
  entry(h: Uint8Array, o: number): TarSpan | undefined {
    if (isZero(h)) return undefined;
    if (this.count >= this.limits.maxEntries) {
      throw new TzaError('LIMIT_EXCEEDED', `more than ${this.limits.maxEntries} entries`);
    }
    const { name, size, mtime: mt } = parseHeader(h, this.limits);
    if (size > this.limits.maxEntrySize)
      throw new TzaError(
        'LIMIT_EXCEEDED',
        `entry ${name} of ${size} bytes exceeds ${this.limits.maxEntrySize}`,
      );
    this.mtimeSeen ??= mt;
    const canonical = SCRATCH;
    writeTarHeader(canonical, 0, name, size, this.mtimeSeen);
    for (let i = 0; i < BLOCK; i++) {
      if (canonical[i] !== h[i])
        throw new TzaError(
          'TAR_NON_CANONICAL',
          `tar header of ${name} differs from the canonical form at byte ${i}`,
        );
    }
    if (this.names.has(name)) throw new TzaError('TAR_DUPLICATE_ENTRY', `duplicate entry ${name}`);
    this.names.add(name);
    this.count++;
    const offset = o + BLOCK;
    const end = offset + paddedSize(size);
    if (end > this.length) throw new TzaError('TAR_TRUNCATED', `entry ${name} is truncated`);
    return { name, size, offset, end };
  }

  /** The padding bytes after an entry's data (`span.end - span.offset - span.size` of them). */
  padding(span: TarSpan, pad: Uint8Array): void {
    if (!isZero(pad))
      throw new TzaError('TAR_NON_CANONICAL', `padding after ${span.name} is not zero`);
  }

  /**
   * The end marker begins at `o`; `second` is the block after it, or undefined when the
   * archive has no room for it. Nothing may follow the two zero blocks.
   */
  endMarker(o: number, second: Uint8Array | undefined): void {
    if (o + 2 * BLOCK > this.length || !second || !isZero(second)) {
      throw new TzaError('TAR_TRUNCATED', 'end-of-archive marker is incomplete');
    }
    if (o + 2 * BLOCK !== this.length) {
      throw new TzaError(
        'TAR_TRAILING_DATA',
        `${this.length - o - 2 * BLOCK} bytes after the end of the archive`,
      );
    }
  }
}

/**
 * Strictly read a whole archive in memory. Every header must be byte-identical to the one
 * {@link tarHeader} writes for its name, size and the archive's mtime.
 */
export function readTar(
  bytes: Uint8Array,
  limits: TarLimits,
): { entries: TarEntry[]; mtime: number } {
  const w = new TarWalker(bytes.length, limits);
  const entries: TarEntry[] = [];
  for (let o = 0; ;) {
    w.checkBlock(o);
    const span = w.entry(bytes.subarray(o, o + BLOCK), o);
    if (!span) {
      w.endMarker(
        o,
        bytes.length >= o + 2 * BLOCK ? bytes.subarray(o + BLOCK, o + 2 * BLOCK) : undefined,
      );
      break;
    }
    w.padding(span, bytes.subarray(span.offset + span.size, span.end));
    // a fresh copy even when `bytes` is a Node Buffer (whose slice is a view)
    const data = new Uint8Array(bytes.subarray(span.offset, span.offset + span.size));
    entries.push({ name: span.name, data });
    o = span.end;
  }
  return { entries, mtime: w.mtime };
}
