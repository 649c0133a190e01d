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
  const s = n.toString(8);
  if (s.length > width - 1)
    throw new RangeError(`value ${n} does not fit a ${width}-byte tar field`);
  return s.padStart(width - 1, '0') + '\0';
}

/**
 * A name is safe when it is a relative path of non-empty segments made of printable ASCII
 * other than `\`, with no `.` or `..` segment. Returns a reason when it is not.
 */
export function unsafeNameReason(name: string, maxBytes = MAX_NAME_BYTES): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'empty name';
  if (utf8(name).length > maxBytes) return `name longer than ${maxBytes} bytes`;
  if (!/^[\x21-\x7e]+$/.test(name.replaceAll(' ', '!')))
    return 'name has a control or non-ASCII character';
  if (name.includes('\\')) return 'name has a backslash';
  if (name.startsWith('/')) return 'absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'drive-letter path';
  for (const seg of name.split('/')) {
    if (seg === '') return 'empty path segment';
    if (seg === '.' || seg === '..') return `"${seg}" path segment`;
  }
  return undefined;
}

export function tarHeader(name: string, size: number, mtime: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const put = (off: number, s: string): void => {
    h.set(utf8(s), off);
  };
  const nb = utf8(name);
  if (nb.length === 0 || nb.length > MAX_NAME_BYTES)
    throw new RangeError(`tar name must be 1..${MAX_NAME_BYTES} bytes`);
  h.set(nb, 0);
  put(100, '0000644\0');
  put(108, '0000000\0');
  put(116, '0000000\0');
  put(124, octal(size, 12));
  put(136, octal(mtime, 12));
  put(148, '        ');
  put(156, '0');
  put(257, 'ustar\0');
  put(263, '00');
  put(329, '0000000\0');
  put(337, '0000000\0');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  put(148, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

export function paddedSize(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** Write entries in the order given; the archive ends with two zero blocks. */
export function writeTar(entries: readonly TarEntry[], mtime: number): Uint8Array {
  let total = 2 * BLOCK;
  for (const e of entries) total += BLOCK + paddedSize(e.data.length);
  const out = new Uint8Array(total);
  let o = 0;
  for (const e of entries) {
    out.set(tarHeader(e.name, e.data.length, mtime), o);
    o += BLOCK;
    out.set(e.data, o);
    o += paddedSize(e.data.length);
  }
  return out;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function parseOctal(field: Uint8Array, what: string): number {
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
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  if (stored !== sum) throw new TzaError('TAR_CHECKSUM', 'tar header checksum mismatch');
  if (fromUtf8Safe(h.subarray(257, 265)) !== 'ustar\u000000') {
    throw new TzaError('TAR_MALFORMED', 'not a POSIX ustar header');
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

function fromUtf8Safe(b: Uint8Array): string {
  try {
    return fromUtf8(b);
  } catch {
    throw new TzaError('TAR_MALFORMED', 'tar header field is not UTF-8');
  }
}

function parseOctalChecksum(f: Uint8Array): number {
  const s = fromUtf8Safe(f);
  const m = /^([0-7]{6})\0 $/.exec(s);
  if (!m) throw new TzaError('TAR_MALFORMED', 'tar checksum field malformed');
  return parseInt(m[1]!, 8);
}

/**
 * Strictly read a whole archive in memory. Every header must be byte-identical to the one
 * {@link tarHeader} writes for its name, size and the archive's mtime.
 */
export function readTar(
  bytes: Uint8Array,
  limits: TarLimits,
): { entries: TarEntry[]; mtime: number } {
  if (bytes.length > limits.maxTotalSize) {
    throw new TzaError(
      'LIMIT_EXCEEDED',
      `bundle of ${bytes.length} bytes exceeds ${limits.maxTotalSize}`,
    );
  }
  if (bytes.length % BLOCK !== 0) {
    throw new TzaError(
      'TAR_TRUNCATED',
      `archive length ${bytes.length} is not a multiple of ${BLOCK}`,
    );
  }
  const entries: TarEntry[] = [];
  const names = new Set<string>();
  let mtime: number | undefined;
  let o = 0;
  for (;;) {
    if (o + BLOCK > bytes.length)
      throw new TzaError('TAR_TRUNCATED', 'archive ends without its end-of-archive marker');
    const h = bytes.subarray(o, o + BLOCK);
    if (isZero(h)) {
      if (o + 2 * BLOCK > bytes.length || !isZero(bytes.subarray(o + BLOCK, o + 2 * BLOCK))) {
        throw new TzaError('TAR_TRUNCATED', 'end-of-archive marker is incomplete');
      }
      if (o + 2 * BLOCK !== bytes.length) {
        throw new TzaError(
          'TAR_TRAILING_DATA',
          `${bytes.length - o - 2 * BLOCK} bytes after the end of the archive`,
        );
      }
      break;
    }
    if (entries.length >= limits.maxEntries) {
      throw new TzaError('LIMIT_EXCEEDED', `more than ${limits.maxEntries} entries`);
    }
    const { name, size, mtime: mt } = parseHeader(h, limits);
    if (size > limits.maxEntrySize)
      throw new TzaError(
        'LIMIT_EXCEEDED',
        `entry ${name} of ${size} bytes exceeds ${limits.maxEntrySize}`,
      );
    mtime ??= mt;
    const canonical = tarHeader(name, size, mtime);
    for (let i = 0; i < BLOCK; i++) {
      if (canonical[i] !== h[i])
        throw new TzaError(
          'TAR_NON_CANONICAL',
          `tar header of ${name} differs from the canonical form at byte ${i}`,
        );
    }
    if (names.has(name)) throw new TzaError('TAR_DUPLICATE_ENTRY', `duplicate entry ${name}`);
    names.add(name);
    o += BLOCK;
    const padded = paddedSize(size);
    if (o + padded > bytes.length)
      throw new TzaError('TAR_TRUNCATED', `entry ${name} is truncated`);
    if (!isZero(bytes.subarray(o + size, o + padded)))
      throw new TzaError('TAR_NON_CANONICAL', `padding after ${name} is not zero`);
    entries.push({ name, data: bytes.slice(o, o + size) });
    o += padded;
  }
  return { entries, mtime: mtime ?? 0 };
}
