/**
 * The strict deterministic ustar subset (src/tar.ts): round trips, the header checksum, byte
 * equality with GNU tar's own ustar output, and refusal of every single-byte change to a
 * header, with and without the checksum fixed up by the attacker.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { equalBytes, toHex, utf8 } from '@tibet/core';
import { seededRandom } from '@tibet/core/testing';
import { TzaError, unsafeNameReason, type TzaErrorCode } from '@tibet/tza';
import {
  BLOCK,
  paddedSize,
  parseHeader,
  readTar,
  tarHeader,
  writeTar,
  type TarEntry,
  type TarLimits,
} from '../src/tar.js';
import { fixChecksum } from './vectors/tza/support.js';

const LIMITS: TarLimits = {
  maxEntries: 1024,
  maxEntrySize: 1 << 26,
  maxTotalSize: 1 << 28,
  maxNameLength: 100,
};

function codeOf(f: () => unknown): TzaErrorCode | 'NO_ERROR' | `OTHER ${string}` {
  try {
    f();
    return 'NO_ERROR';
  } catch (e) {
    if (TzaError.is(e)) return e.code;
    return `OTHER ${(e as Error).name}: ${(e as Error).message}`;
  }
}

// a safe relative path of 1..100 bytes: segments of [A-Za-z0-9._ -], never "." or ".."
const segment = fc
  .string({ unit: fc.constantFrom(...'abcxyzABZ019._- '.split('')), minLength: 1, maxLength: 24 })
  .filter((s) => s !== '.' && s !== '..');
const safeName = fc
  .array(segment, { minLength: 1, maxLength: 5 })
  .map((s) => s.join('/'))
  .filter((n) => n.length <= 100);
const entriesArb = fc
  .uniqueArray(fc.tuple(safeName, fc.integer({ min: 0, max: 2000 }), fc.string({ maxLength: 6 })), {
    minLength: 1,
    maxLength: 8,
    selector: ([n]) => n,
  })
  .map((list) =>
    list.map(([name, size, seed]): TarEntry => ({ name, data: seededRandom(`tar:${seed}`)(size) })),
  );
const mtimeArb = fc.oneof(
  fc.integer({ min: 0, max: 8 ** 11 - 1 }),
  fc.constantFrom(0, 1795867200, 8 ** 11 - 1),
);

/** Offsets of the headers of an archive written by writeTar. */
function headerOffsets(entries: readonly TarEntry[]): number[] {
  const out: number[] = [];
  let o = 0;
  for (const e of entries) {
    out.push(o);
    o += BLOCK + paddedSize(e.data.length);
  }
  return out;
}

describe('tar round trip and layout', () => {
  test.prop([entriesArb, mtimeArb], { numRuns: 150 })(
    'readTar(writeTar(x)) gives x back',
    (entries, mtime) => {
      const tar = writeTar(entries, mtime);
      expect(tar.length % BLOCK).toBe(0);
      const total = entries.reduce((n, e) => n + BLOCK + paddedSize(e.data.length), 2 * BLOCK);
      expect(tar.length).toBe(total);
      const back = readTar(tar, LIMITS);
      expect(back.mtime).toBe(mtime);
      expect(back.entries.map((e) => e.name)).toEqual(entries.map((e) => e.name));
      back.entries.forEach((e, i) => expect(equalBytes(e.data, entries[i]!.data)).toBe(true));
      // every byte that is not a header or data is zero
      let o = 0;
      for (const e of entries) {
        o += BLOCK + e.data.length;
        const end = o - e.data.length + paddedSize(e.data.length);
        expect(tar.subarray(o, end).every((b) => b === 0)).toBe(true);
        o = end;
      }
      expect(tar.subarray(o).every((b) => b === 0)).toBe(true);
    },
  );

  test.prop(
    [safeName, fc.integer({ min: 0, max: 8 ** 11 - 1 }), fc.integer({ min: 0, max: 8 ** 11 - 1 })],
    {
      numRuns: 300,
    },
  )(
    'the header checksum is the byte sum with the field as spaces, as "%06o\\0 "',
    (name, size, mtime) => {
      const h = tarHeader(name, size, mtime);
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      expect(Buffer.from(h.subarray(148, 156)).toString('latin1')).toBe(
        sum.toString(8).padStart(6, '0') + '\0 ',
      );
      expect(parseHeader(h, LIMITS)).toEqual({ name, size, mtime });
    },
  );

  it('tarHeader refuses names of 0 or more than 100 bytes and sizes that do not fit', () => {
    expect(() => tarHeader('', 0, 0)).toThrow(RangeError);
    expect(() => tarHeader('a'.repeat(101), 0, 0)).toThrow(RangeError);
    expect(() => tarHeader('a', 8 ** 11, 0)).toThrow(RangeError);
    expect(parseHeader(tarHeader('a'.repeat(100), 0, 0), LIMITS).name).toBe('a'.repeat(100));
  });
});

let gnuTar = false;
try {
  gnuTar = execFileSync('tar', ['--version'], { encoding: 'utf8' }).includes('GNU tar');
} catch {
  gnuTar = false;
}

describe.skipIf(!gnuTar)('GNU tar agrees', () => {
  test.prop([entriesArb, fc.integer({ min: 0, max: 2 ** 32 })], { numRuns: 12 })(
    'GNU tar --format=ustar writes the same bytes as writeTar, and extracts writeTar output',
    (entries, mtime) => {
      // GNU tar only takes regular files here: skip names that would also need a folder
      // named like a file of the set (a and a/b)
      const names = new Set(entries.map((e) => e.name));
      fc.pre(
        entries.every(
          (e) =>
            !e.name
              .split('/')
              .slice(0, -1)
              .some((_, i, s) => names.has(s.slice(0, i + 1).join('/'))),
        ),
      );
      const dir = mkdtempSync(join(tmpdir(), 'tza-gnutar-'));
      try {
        const src = join(dir, 'src');
        for (const e of entries) {
          mkdirSync(dirname(join(src, e.name)), { recursive: true });
          writeFileSync(join(src, e.name), e.data);
        }
        const ours = writeTar(entries, mtime);
        const theirs = join(dir, 'gnu.tar');
        execFileSync(
          'tar',
          [
            '--format=ustar',
            '-b',
            '1',
            '--owner=0',
            '--group=0',
            '--numeric-owner',
            '--mode=0644',
            `--mtime=@${mtime}`,
            '--no-recursion',
            '-cf',
            theirs,
            '--',
            ...entries.map((e) => e.name),
          ],
          { cwd: src, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        const gnu = new Uint8Array(readFileSync(theirs));
        expect(toHex(gnu)).toBe(toHex(ours));
        // and GNU tar reads ours without a warning
        const out = join(dir, 'out');
        mkdirSync(out);
        writeFileSync(join(dir, 'ours.tar'), ours);
        const x = spawnSync(
          'tar',
          ['--warning=no-timestamp', '-xf', join(dir, 'ours.tar'), '-C', out],
          { encoding: 'utf8' },
        );
        expect([x.status, x.stderr]).toEqual([0, '']);
        for (const e of entries)
          expect(equalBytes(new Uint8Array(readFileSync(join(out, e.name))), e.data)).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('tar header tampering', () => {
  const entries: TarEntry[] = [
    { name: 'manifest.cbor', data: utf8('m'.repeat(300)) },
    { name: 'dir/entry.bin', data: seededRandom('tamper')(700) },
    { name: 'signatures.cbor', data: new Uint8Array(0) },
  ];
  const mtime = 1795867200;
  const tar = writeTar(entries, mtime);
  const offsets = headerOffsets(entries);

  it('any single-byte change anywhere in any header is refused', () => {
    const missed: string[] = [];
    let tried = 0;
    for (const [k, off] of offsets.entries()) {
      for (let i = 0; i < BLOCK; i++) {
        for (const mutate of [
          (b: number) => b ^ 0x01,
          (b: number) => b ^ 0x80,
          (b: number) => (b === 0 ? 0x30 : 0),
          (b: number) => (b + 0x41) & 0xff,
        ]) {
          const c = tar.slice();
          const nb = mutate(c[off + i]!);
          if (nb === c[off + i]) continue;
          c[off + i] = nb;
          tried++;
          const got = codeOf(() => readTar(c, LIMITS));
          if (!got.startsWith('TAR_')) missed.push(`header ${k} byte ${i} -> ${nb}: ${got}`);
        }
      }
    }
    expect(tried).toBeGreaterThan(3 * BLOCK * 3);
    expect(missed).toEqual([]);
  });

  it('a single-byte change with the checksum fixed up is refused outside the name, size and mtime digits', () => {
    // the name, size and mtime fields can be changed to other valid values: the bundle layer
    // (manifest names, sizes and digests; created_at) catches those. Everything else in a
    // header has exactly one allowed value.
    const missed: string[] = [];
    for (const [k, off] of offsets.entries()) {
      const nameLen = utf8(entries[k]!.name).length;
      for (let i = 0; i < BLOCK; i++) {
        if (i <= nameLen || (i >= 124 && i < 135) || (i >= 136 && i < 147) || (i >= 148 && i < 156))
          continue;
        for (const v of [0x00, 0x20, 0x30, 0x37, 0x41, 0xff]) {
          const c = tar.slice();
          if (c[off + i] === v) continue;
          c[off + i] = v;
          fixChecksum(c.subarray(off, off + BLOCK));
          const got = codeOf(() => readTar(c, LIMITS));
          if (!got.startsWith('TAR_') && got !== 'LIMIT_EXCEEDED')
            missed.push(`header ${k} byte ${i} = ${v}: ${got}`);
        }
      }
    }
    expect(missed).toEqual([]);
  });

  it.each([
    ['0', 'NO_ERROR'],
    ['\0', 'TAR_ENTRY_TYPE'], // old-style regular file
    ['1', 'TAR_ENTRY_TYPE'], // hard link
    ['2', 'TAR_ENTRY_TYPE'], // symlink
    ['3', 'TAR_ENTRY_TYPE'], // character device
    ['4', 'TAR_ENTRY_TYPE'], // block device
    ['5', 'TAR_ENTRY_TYPE'], // directory
    ['6', 'TAR_ENTRY_TYPE'], // FIFO
    ['7', 'TAR_ENTRY_TYPE'], // contiguous file
    ['x', 'TAR_ENTRY_TYPE'], // pax extended header
    ['g', 'TAR_ENTRY_TYPE'], // pax global header
    ['L', 'TAR_ENTRY_TYPE'], // GNU long name
    ['K', 'TAR_ENTRY_TYPE'], // GNU long link
  ] as const)('typeflag %j → %s (checksum fixed)', (flag, code) => {
    const c = tar.slice();
    const off = offsets[1]!;
    c[off + 156] = flag.charCodeAt(0);
    fixChecksum(c.subarray(off, off + BLOCK));
    expect(codeOf(() => readTar(c, LIMITS))).toBe(code);
  });

  it('archive-level damage is refused with its code', () => {
    const end = tar.length - 2 * BLOCK;
    expect(codeOf(() => readTar(tar.subarray(0, tar.length - 1), LIMITS))).toBe('TAR_TRUNCATED');
    expect(codeOf(() => readTar(tar.subarray(0, end), LIMITS))).toBe('TAR_TRUNCATED');
    expect(codeOf(() => readTar(tar.subarray(0, end + BLOCK), LIMITS))).toBe('TAR_TRUNCATED');
    expect(codeOf(() => readTar(new Uint8Array(0), LIMITS))).toBe('TAR_TRUNCATED');
    expect(codeOf(() => readTar(new Uint8Array(BLOCK), LIMITS))).toBe('TAR_TRUNCATED');
    expect(codeOf(() => readTar(new Uint8Array(2 * BLOCK), LIMITS))).toBe('NO_ERROR');
    const more = new Uint8Array(tar.length + BLOCK);
    more.set(tar);
    expect(codeOf(() => readTar(more, LIMITS))).toBe('TAR_TRAILING_DATA');
    more[tar.length + 7] = 1;
    expect(codeOf(() => readTar(more, LIMITS))).toBe('TAR_TRAILING_DATA');
    const pad = tar.slice();
    pad[offsets[0]! + BLOCK + 300] = 1; // first padding byte after a 300-byte entry
    expect(codeOf(() => readTar(pad, LIMITS))).toBe('TAR_NON_CANONICAL');
    const dup = writeTar([entries[0]!, entries[0]!], mtime);
    expect(codeOf(() => readTar(dup, LIMITS))).toBe('TAR_DUPLICATE_ENTRY');
    const mixed = writeTar([entries[0]!], mtime);
    const second = writeTar([entries[1]!], mtime + 1);
    const both = new Uint8Array(mixed.length - 2 * BLOCK + second.length);
    both.set(mixed.subarray(0, mixed.length - 2 * BLOCK));
    both.set(second, mixed.length - 2 * BLOCK);
    expect(codeOf(() => readTar(both, LIMITS))).toBe('TAR_NON_CANONICAL');
  });

  it('limits are enforced before the data is read', () => {
    expect(codeOf(() => readTar(tar, { ...LIMITS, maxEntries: 2 }))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => readTar(tar, { ...LIMITS, maxEntrySize: 699 }))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => readTar(tar, { ...LIMITS, maxTotalSize: tar.length - 1 }))).toBe(
      'LIMIT_EXCEEDED',
    );
    expect(codeOf(() => readTar(tar, { ...LIMITS, maxNameLength: 12 }))).toBe('LIMIT_EXCEEDED');
    // a header that claims 8 GiB in a 2 KiB archive
    const huge = writeTar([{ name: 'a', data: new Uint8Array(0) }], 0);
    huge.set(utf8('77777777777\0'), 124);
    fixChecksum(huge.subarray(0, BLOCK));
    expect(codeOf(() => readTar(huge, LIMITS))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => readTar(huge, { ...LIMITS, maxEntrySize: 2 ** 40 }))).toBe('TAR_TRUNCATED');
  });
});

describe('entry names', () => {
  it.each([
    ['../evil', 'path segment'],
    ['a/../b', 'path segment'],
    ['./a', 'path segment'],
    ['a/.', 'path segment'],
    ['/etc/passwd', 'absolute path'],
    ['C:evil', 'drive-letter'],
    ['c:/evil', 'drive-letter'],
    ['a\\b', 'backslash'],
    ['..\\evil', 'backslash'],
    ['a//b', 'empty path segment'],
    ['a/', 'empty path segment'],
    ['', 'empty name'],
    ['caf\u00e9', 'non-ASCII'],
    ['a\u0000b', 'control'],
    ['a\nb', 'control'],
    ['a\u007fb', 'control'],
    ['x'.repeat(101), 'longer than'],
  ])('%j is unsafe (%s)', (name, why) => {
    expect(unsafeNameReason(name)).toContain(why);
  });

  it.each([
    'a',
    'a b',
    '..a',
    'a..',
    '.hidden',
    '...',
    'dir/file.txt',
    'x'.repeat(100),
    'a/b/c/d',
    '-rf',
    '~',
    '$HOME',
  ])('%j is a safe name', (name) => {
    expect(unsafeNameReason(name)).toBeUndefined();
  });

  /** The rule as first written (regexes and split): the single-pass check must agree. */
  function referenceReason(name: string, maxBytes = 100): string | undefined {
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

  test.prop(
    [
      fc.oneof(
        fc.string({
          unit: fc.constantFrom(
            'a',
            'Z',
            '.',
            '/',
            '\\',
            ':',
            ' ',
            '~',
            '\u007f',
            '\n',
            'é',
            '\u{1F600}',
          ),
          maxLength: 12,
        }),
        fc.string({ maxLength: 110 }),
        fc.string({ unit: 'grapheme', maxLength: 60 }),
      ),
      fc.integer({ min: 1, max: 120 }),
    ],
    { numRuns: 2000 },
  )('gives the reason the reference rule gives, for any string and limit', (name, max) => {
    expect(unsafeNameReason(name, max)).toBe(referenceReason(name, max));
  });

  it.each(['.', '..', '/', 'a/..', '../', 'C:', 'a:', '1:x', ':a', 'ab:'])(
    '%j: the same reason as the reference rule',
    (name) => {
      expect(unsafeNameReason(name)).toBe(referenceReason(name));
    },
  );

  test.prop([safeName], { numRuns: 200 })(
    'generated safe names pass and survive a header',
    (name) => {
      expect(unsafeNameReason(name)).toBeUndefined();
      expect(parseHeader(tarHeader(name, 0, 0), LIMITS).name).toBe(name);
    },
  );

  it.each(['../evil', '/etc/passwd', 'a/./b', 'a\\b'])(
    'a header named %j is refused as TAR_PATH_UNSAFE',
    (name) => {
      const tar = writeTar([{ name, data: utf8('x') }], 0);
      expect(codeOf(() => readTar(tar, LIMITS))).toBe('TAR_PATH_UNSAFE');
    },
  );
});
