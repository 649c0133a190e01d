/**
 * The persisted index of an audit log folder, kept in `<dir>/index/` (see
 * docs/continuityd-index.md for the file formats and the reasoning).
 *
 * Records are indexed in chunks of `chunkRecords` (default 2,048). The writer keeps the open
 * chunk in memory; a full chunk becomes an immutable level-0 *run* file, and `fanIn` (default
 * 32) level-0 runs are merged into one level-1 run of 65,536 records. A run maps, for its
 * records: action id → (index, generation, token hash); continuity line → its last entry in
 * the run; actor → indexes; object → indexes. Each key kind has a blocked Bloom filter, and
 * every 4 KiB page of a run has a CRC-32. Lookups probe the open chunk, then the runs newest
 * first, through a bounded LRU page cache, so a writer's memory stays flat however long the
 * log grows; they are synchronous (the writer validates causality synchronously).
 *
 * Beside the runs: `offsets.bin` (8 bytes per record: its byte offset in its segment) and
 * `times.bin` (the received_at of every 16th record), appended on `flush()`, and
 * `MANIFEST.json`, replaced atomically on `flush()`, which says how many records are durably
 * indexed, which runs hold them, and binds the index to its log (origin, key, the leaf hash
 * of the last indexed line). A writer that finds the index missing, damaged or belonging to
 * another log discards it and rebuilds it from the log; readers (`readOnly`) never write.
 */
import {
  closeSync,
  constants,
  fdatasync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  read as readCallback,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import {
  canonicalize,
  getProvider,
  isActionId,
  systemRandom,
  toHex,
  utf8,
  type CryptoProvider,
  sha256Hex,
} from '@tibet/core';
import { ContinuityError } from './errors.js';
import type { ActionEntry, IndexedRecord, LogIndex } from './log-index.js';
import { SEGMENT_DIGITS, readRecordFrom, segmentName, writeDurable } from './log.js';
import { leafHash } from './merkle.js';
import { parseRecord, type LogRecord } from './record.js';

const fdatasyncAsync = promisify(fdatasync);

export const INDEX_FORMAT = 'tibet-log-index/2';
/** The format before level-2 runs: still read (it is a /2 index without them). */
const INDEX_FORMAT_1 = 'tibet-log-index/1';
const MANIFEST = 'MANIFEST.json';
const OFFSETS = 'offsets.bin';
const TIMES = 'times.bin';
const PAGE = 4096;
/** received_at is kept for every FENCE-th record: a time search reads ≤ log2(FENCE) + 2 lines. */
const FENCE = 16;
const DEFAULT_CHUNK = 2048;
const DEFAULT_FAN_IN = 32;
const DEFAULT_CACHE = 16 * 1024 * 1024;
/** Level-1 runs that start a merge into a level-2 run. */
const L2_TRIGGER = 4;
/** Level-1 spans a level-2 run covers at most (16 × 65,536 records with the default sizes). */
const L2_SPANS = 16;
/** Records of a merged run at most: level-2 merges stop short of it. */
const MAX_RUN_RECORDS = 2 ** 24;
/** Entries of times.bin kept in memory before they are written out (between flushes). */
const TIMES_SPILL = 4096;
const SCAN_BLOCK = 1024 * 1024;
/** Lines this close together in a segment are read together by `linesAt`, up to COALESCE_MAX. */
const COALESCE_GAP = 16 * 1024;
const COALESCE_MAX = 1024 * 1024;
/** A read that takes longer than this (ms) came from the disk, not the OS page cache. */
const SLOW_READ_MS = 0.075;
const MAX_U48 = 2 ** 48 - 1;

// ---------------------------------------------------------------------------------------
// Run file layout (little-endian). Page 0 holds the header; then the CRC table (one CRC-32
// per data page); then the data pages, which hold the sections back to back.

const RUN_MAGIC = Buffer.from('TIBETIX1', 'latin1');
const RUN_VERSION = 1;
const S_ACTION_BLOOM = 0;
const S_ACTIONS = 1;
const S_LINE_BLOOM = 2;
const S_LINES = 3;
const S_LINE_KEYS = 4;
const S_ACTOR_BLOOM = 5;
const S_ACTORS = 6;
const S_ACTOR_KEYS = 7;
const S_ACTOR_POSTINGS = 8;
const S_OBJECT_BLOOM = 9;
const S_OBJECTS = 10;
const S_OBJECT_KEYS = 11;
const S_OBJECT_POSTINGS = 12;
const N_SECTIONS = 13;
/** bloom, key table, key bytes, postings */
const POSTING_SECTIONS = {
  actor: [S_ACTOR_BLOOM, S_ACTORS, S_ACTOR_KEYS, S_ACTOR_POSTINGS],
  object: [S_OBJECT_BLOOM, S_OBJECTS, S_OBJECT_KEYS, S_OBJECT_POSTINGS],
} as const;
const H_SECTIONS = 48;
const H_CRC = H_SECTIONS + N_SECTIONS * 8;
const HEADER_LEN = H_CRC + 4;
/** action id (8) · record offset in the run (u32) · generation (u48) · token hash (32) */
const ACTION_ENTRY = 50;
/** key offset (u32) · key length (u16) · record offset (u32) · generation (u48) · hash (32) */
const LINE_ENTRY = 48;
/** key offset (u32) · key length (u16) · first posting (u32) · posting count (u32) */
const POSTING_ENTRY = 14;

/** What a reader reads first of a run: the header page and a CRC table of up to 4,096 pages. */
const HEAD_READ = 5 * PAGE;

/** Whether this machine stores a Uint32Array little-endian, as the files do. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const BLOOM_BLOCK = 64;
const BLOOM_BITS_PER_KEY = 10;
const BLOOM_PROBES = 7;

export interface DiskIndexOptions {
  /** Records per level-0 run (default 2,048): a writer holds at most this many in memory. */
  chunkRecords?: number;
  /** Level-0 runs merged into one level-1 run (default 32: level-1 runs of 65,536 records). */
  fanIn?: number;
  /** Bytes of index pages cached in memory (default 16 MiB). */
  cacheBytes?: number;
  /**
   * Open for queries only: never writes, never rebuilds, and verifies each index page as it
   * reads it instead of the whole index at open. A missing index reads as empty; a damaged
   * one throws `STATE_CORRUPT`.
   */
  readOnly?: boolean;
  provider?: CryptoProvider;
  /** Called with the reason when a writer discards an existing index to rebuild it. */
  onRebuild?: (reason: string) => void;
  /** Called for every log line read through the index (tests count them). */
  onLineRead?: (index: number) => void;
  /**
   * Issue the reads of {@link DiskIndex.linesAt} together from the start. By default they
   * go one at a time while the OS page cache serves them (cheapest then), and together once
   * two of them have come from the disk.
   */
  readsTogether?: boolean;
}

export interface IndexRange {
  /** First log index to consider (inclusive). */
  fromIndex?: number;
  /** Log index to stop before (exclusive). */
  toIndex?: number;
  limit?: number;
}

export interface DiskIndexStats {
  /** Records held (durable or not). */
  size: number;
  /** Records whose index is durable (the last flush). */
  flushed: number;
  /** Run files in use. */
  runs: number;
  /** Records held in memory only (open chunk and chunks whose run could not be written). */
  inMemory: number;
  cachedPages: number;
}

/** Where a record starts: the first index of its segment and the byte offset in it. */
export interface LogPosition {
  index: number;
  segment: number;
  offset: number;
}

interface RunInfo {
  name: string;
  level: number;
  start: number;
  count: number;
  bytes: number;
}

interface SegmentEnd {
  first: number;
  /** Byte offset just past the last indexed line of this segment. */
  end: number;
}

interface Manifest {
  format: typeof INDEX_FORMAT | typeof INDEX_FORMAT_1;
  origin: string;
  log_key: string;
  index_id: string;
  size: number;
  chunk: number;
  fan_in: number;
  fence: number;
  runs: RunInfo[];
  segments: SegmentEnd[];
  offsets_crc: number;
  times_crc: number;
  /** Hex RFC 9162 leaf hash of line size-1: binds the index to this log's history. */
  last_leaf: string | null;
  /** Hex SHA-256 of the RFC 8785 form of the manifest without this member. */
  checksum: string;
}

/** A merge in progress into a run of `level`. */
interface MergeJob {
  level: number;
  parts: Run[];
  steps: Generator<undefined, RunInfo, undefined>;
}

interface Chunk {
  start: number;
  count: number;
  actions: Map<string, ActionEntry>;
  lines: Map<string, ActionEntry>;
  actors: Map<string, number[]>;
  objects: Map<string, number[]>;
}

function corrupt(msg: string, cause?: unknown): ContinuityError {
  return new ContinuityError(
    'STATE_CORRUPT',
    `index: ${msg}`,
    cause === undefined ? undefined : { cause },
  );
}

function emptyChunk(start: number): Chunk {
  return {
    start,
    count: 0,
    actions: new Map(),
    lines: new Map(),
    actors: new Map(),
    objects: new Map(),
  };
}

function pushTo(m: Map<string, number[]>, k: string, v: number): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

function pad16(n: number): string {
  return String(n).padStart(SEGMENT_DIGITS, '0');
}

function readFull(fd: number, buf: Uint8Array, pos: number, label: string): void {
  let o = 0;
  while (o < buf.length) {
    const n = readSync(fd, buf, o, buf.length - o, pos + o);
    if (n <= 0) throw corrupt(`${label}: short read at byte ${pos + o}`);
    o += n;
  }
}

/** {@link readFull} through the thread pool, so that many reads can be in flight at once. */
function readFullAsync(fd: number, buf: Uint8Array, pos: number, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (o: number): void => {
      readCallback(fd, buf, o, buf.length - o, pos + o, (err, n) => {
        if (err) reject(err);
        else if (n <= 0) reject(corrupt(`${label}: short read at byte ${pos + o}`));
        else if (o + n < buf.length) step(o + n);
        else resolve();
      });
    };
    if (buf.length === 0) resolve();
    else step(0);
  });
}

/**
 * Promise.all, but settling only once every promise has: reads still in flight must not
 * outlive a failure (their descriptors would be closed under them). Throws the first error.
 */
async function settled<T>(all: readonly Promise<T>[]): Promise<T[]> {
  const r = await Promise.allSettled(all);
  const bad = r.find((x) => x.status === 'rejected');
  if (bad) throw bad.reason;
  return r.map((x) => (x as PromiseFulfilledResult<T>).value);
}

function writeFull(fd: number, buf: Uint8Array, pos: number): void {
  let o = 0;
  while (o < buf.length) {
    const n = writeSync(fd, buf, o, buf.length - o, pos + o);
    if (n <= 0) throw new Error('short write');
    o += n;
  }
}

function isErrno(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === code;
}

/**
 * A monotonic clock in ms. Not `performance.now()`: Node loads perf_hooks on first use of the
 * `performance` global, which costs a process that has just started ~1 ms of its first query.
 */
function clockMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Whether to keep reading synchronously: one read at a time is cheapest while the OS page
 * cache holds the file (a few µs each), but from the disk (~0.1 ms each here) reads issued
 * together through the thread pool finish several times sooner. Two reads that took longer
 * than a cached read can decide for reading together; eight that did not, for reading one
 * at a time without timing the rest (timing costs too, in a process that just started).
 */
class Pace {
  #seen = 0;
  #slow: number;
  constructor(together = false) {
    this.#slow = together ? 2 : 0;
  }
  get sync(): boolean {
    return this.#slow < 2;
  }
  /** Whether reads are still being timed. */
  get timing(): boolean {
    return this.#slow < 2 && this.#seen < 9;
  }
  /**
   * Note how long one read took (an index page; or a line with its offsets, opening the
   * file not counted). The first is not counted: it also pays for warming the code up.
   */
  took(ms: number): void {
    if (this.#seen++ > 0 && ms > SLOW_READ_MS) this.#slow++;
  }
}

// ---------------------------------------------------------------------------------------
// Hashing for the Bloom filters (not cryptographic; the same in every process).

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A key's Bloom block selector and bit positions (computed once per lookup). */
interface KeyHash {
  block: number;
  bits: number[];
}

/** Hash a key's bytes (an action id's 8 bytes; other keys' UTF-8). */
function hashKey(k: Uint8Array): KeyHash {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < k.length; i++) {
    const c = k[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  const h2 = fmix(b);
  const bits: number[] = [];
  let x = h2;
  const step = ((h2 >>> 17) | (h2 << 15) | 1) >>> 0;
  for (let i = 0; i < BLOOM_PROBES; i++) {
    bits.push(x & 511);
    x = (x + step) >>> 0;
  }
  return { block: fmix(a ^ k.length), bits };
}

/** A blocked Bloom filter over `n` keys. */
function buildBloom(n: number, key: (i: number) => Uint8Array): Buffer {
  if (n === 0) return Buffer.alloc(0);
  const blocks = Math.ceil((n * BLOOM_BITS_PER_KEY) / (BLOOM_BLOCK * 8));
  const b = Buffer.alloc(blocks * BLOOM_BLOCK);
  for (let i = 0; i < n; i++) {
    const h = hashKey(key(i));
    const base = (h.block % blocks) * BLOOM_BLOCK;
    for (const bit of h.bits) b[base + (bit >>> 3)]! |= 1 << (bit & 7);
  }
  return b;
}

// ---------------------------------------------------------------------------------------
// Page cache: whole 4 KiB pages of index files, least recently used evicted first.

class PageCache {
  readonly #max: number;
  readonly #pages = new Map<number, Buffer>();
  #nextFile = 1;

  constructor(bytes: number) {
    this.#max = Math.max(16, Math.floor(bytes / PAGE));
  }
  fileNo(): number {
    return this.#nextFile++;
  }
  get(key: number): Buffer | undefined {
    const p = this.#pages.get(key);
    if (p !== undefined) {
      this.#pages.delete(key);
      this.#pages.set(key, p);
    }
    return p;
  }
  set(key: number, p: Buffer): void {
    this.#pages.set(key, p);
    if (this.#pages.size > this.#max) {
      const first = this.#pages.keys().next();
      if (!first.done) this.#pages.delete(first.value);
    }
  }
  get size(): number {
    return this.#pages.size;
  }
}

/** Positioned, page-cached reads of one file; data pages checked against their CRC. */
class PagedFile {
  readonly #no: number;
  constructor(
    readonly fd: number,
    readonly cache: PageCache,
    readonly label: string,
    public size: number,
    readonly crcs?: Uint32Array,
    readonly firstDataPage = 0,
  ) {
    this.#no = cache.fileNo();
  }

  #key(p: number): number {
    return this.#no * 2 ** 32 + p;
  }

  /** Check a page just read against its CRC and cache it. */
  #admit(p: number, b: Buffer): Buffer {
    if (this.crcs && p >= this.firstDataPage) {
      const want = this.crcs[p - this.firstDataPage];
      if (want === undefined || crc32(b) !== want)
        throw corrupt(`${this.label}: page ${p} fails its checksum`);
    }
    this.cache.set(this.#key(p), b);
    return b;
  }

  #page(p: number, need: number): Buffer {
    const hit = this.cache.get(this.#key(p));
    if (hit !== undefined && hit.length >= need) return hit;
    const start = p * PAGE;
    const len = Math.min(PAGE, this.size - start);
    if (len < need) throw corrupt(`${this.label}: read past the end`);
    const b = Buffer.allocUnsafe(len);
    readFull(this.fd, b, start, this.label);
    return this.#admit(p, b);
  }

  /** The pages holding these byte positions that are not cached yet, once each, in order. */
  missing(positions: Iterable<number>): number[] {
    const want = new Set<number>();
    for (const pos of positions) {
      if (!(pos >= 0 && pos < this.size)) continue; // left to read() to refuse
      const p = Math.floor(pos / PAGE);
      const hit = this.cache.get(this.#key(p));
      if (hit === undefined || hit.length < Math.min(PAGE, this.size - p * PAGE)) want.add(p);
    }
    return [...want];
  }

  /** Pages [p0, p1] read directly (not through the cache), each checked against its CRC. */
  readPages(p0: number, p1: number): Buffer {
    const start = p0 * PAGE;
    const end = Math.min(this.size, (p1 + 1) * PAGE);
    if (!(p0 >= 0 && start < end)) throw corrupt(`${this.label}: read past the end`);
    const b = Buffer.allocUnsafe(end - start);
    readFull(this.fd, b, start, this.label);
    if (this.crcs) {
      for (let p = Math.max(p0, this.firstDataPage); p * PAGE < end; p++) {
        const page = b.subarray((p - p0) * PAGE, Math.min(b.length, (p - p0 + 1) * PAGE));
        const want = this.crcs[p - this.firstDataPage];
        if (want === undefined || crc32(page) !== want)
          throw corrupt(`${this.label}: page ${p} fails its checksum`);
      }
    }
    return b;
  }

  /**
   * Read these pages all at once, through the thread pool (a cold page cache serves them in
   * parallel); checked and cached as {@link read} would.
   */
  async loadAll(pages: readonly number[]): Promise<void> {
    await settled(
      pages.map(async (p) => {
        const b = Buffer.allocUnsafe(Math.min(PAGE, this.size - p * PAGE));
        await readFullAsync(this.fd, b, p * PAGE, this.label);
        this.#admit(p, b);
      }),
    );
  }

  read(pos: number, len: number): Buffer {
    if (!(pos >= 0 && len >= 0 && pos + len <= this.size))
      throw corrupt(`${this.label}: read of ${len} bytes at ${pos} past the end (${this.size})`);
    if (len === 0) return Buffer.alloc(0);
    const p0 = Math.floor(pos / PAGE);
    const p1 = Math.floor((pos + len - 1) / PAGE);
    if (p0 === p1) {
      const o = pos - p0 * PAGE;
      return this.#page(p0, o + len).subarray(o, o + len);
    }
    const out = Buffer.allocUnsafe(len);
    let w = 0;
    for (let p = p0; p <= p1; p++) {
      const from = p === p0 ? pos - p0 * PAGE : 0;
      const to = p === p1 ? pos + len - p1 * PAGE : PAGE;
      const page = this.#page(p, to);
      page.copy(out, w, from, to);
      w += to - from;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------
// Building and reading run files.

function writeTokenHash(b: Buffer, o: number, h: string): void {
  b.write(h.slice(7), o, 32, 'hex');
}

function readTokenHash(b: Buffer, o: number): string {
  return `sha256:${b.toString('hex', o, o + 32)}`;
}

function sortedKeys(m: Map<string, unknown>): { key: string; bytes: Buffer }[] {
  return [...m.keys()]
    .map((key) => ({ key, bytes: Buffer.from(key, 'utf8') }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes));
}

function buildRun(c: Chunk, level: number, id: Buffer): Buffer {
  const sections: Buffer[] = [];
  // action ids are act_ + 16 lowercase hex: string order is the order of their bytes
  const ids = [...c.actions.keys()].sort();
  const acts = Buffer.alloc(ids.length * ACTION_ENTRY);
  ids.forEach((aid, i) => {
    const e = c.actions.get(aid)!;
    const o = i * ACTION_ENTRY;
    acts.write(aid.slice(4), o, 8, 'hex');
    acts.writeUInt32LE(e.index - c.start, o + 8);
    acts.writeUIntLE(e.generation, o + 12, 6);
    writeTokenHash(acts, o + 18, e.tokenHash);
  });
  sections[S_ACTION_BLOOM] = buildBloom(ids.length, (i) =>
    acts.subarray(i * ACTION_ENTRY, i * ACTION_ENTRY + 8),
  );
  sections[S_ACTIONS] = acts;

  const lineKeys = sortedKeys(c.lines);
  const lines = Buffer.alloc(lineKeys.length * LINE_ENTRY);
  const lineBlob: Buffer[] = [];
  let blobLen = 0;
  lineKeys.forEach(({ key, bytes }, i) => {
    const e = c.lines.get(key)!;
    const o = i * LINE_ENTRY;
    lines.writeUInt32LE(blobLen, o);
    lines.writeUInt16LE(bytes.length, o + 4);
    lines.writeUInt32LE(e.index - c.start, o + 6);
    lines.writeUIntLE(e.generation, o + 10, 6);
    writeTokenHash(lines, o + 16, e.tokenHash);
    lineBlob.push(bytes);
    blobLen += bytes.length;
  });
  sections[S_LINE_BLOOM] = buildBloom(lineKeys.length, (i) => lineKeys[i]!.bytes);
  sections[S_LINES] = lines;
  sections[S_LINE_KEYS] = Buffer.concat(lineBlob);

  const postingSections = (
    m: Map<string, number[]>,
    [sBloom, sTable, sKeys, sPosts]: readonly [number, number, number, number],
  ): void => {
    const keys = sortedKeys(m);
    const table = Buffer.alloc(keys.length * POSTING_ENTRY);
    const blob: Buffer[] = [];
    let total = 0;
    for (const v of m.values()) total += v.length;
    const posts = Buffer.alloc(total * 4);
    let kOff = 0;
    let pOff = 0;
    keys.forEach(({ key, bytes }, i) => {
      const list = m.get(key)!;
      const o = i * POSTING_ENTRY;
      table.writeUInt32LE(kOff, o);
      table.writeUInt16LE(bytes.length, o + 4);
      table.writeUInt32LE(pOff, o + 6);
      table.writeUInt32LE(list.length, o + 10);
      for (const idx of list) posts.writeUInt32LE(idx - c.start, 4 * pOff++);
      blob.push(bytes);
      kOff += bytes.length;
    });
    sections[sBloom] = buildBloom(keys.length, (i) => keys[i]!.bytes);
    sections[sTable] = table;
    sections[sKeys] = Buffer.concat(blob);
    sections[sPosts] = posts;
  };
  postingSections(c.actors, POSTING_SECTIONS.actor);
  postingSections(c.objects, POSTING_SECTIONS.object);
  return assembleRun(sections, level, c.start, c.count, id);
}

/** Write the header page of a run: fields, section offsets and lengths, and its CRCs. */
function writeRunHeader(
  file: Buffer,
  h: { level: number; start: number; count: number; id: Buffer; dataPages: number },
  lens: readonly number[],
  tableCrc: number,
): void {
  const tablePages = Math.ceil((h.dataPages * 4) / PAGE);
  RUN_MAGIC.copy(file, 0);
  file.writeUInt32LE(RUN_VERSION, 8);
  file.writeUInt32LE(h.level, 12);
  file.writeUIntLE(h.start, 16, 6);
  file.writeUInt32LE(h.count, 24);
  file.writeUInt32LE(h.dataPages, 28);
  h.id.copy(file, 32);
  file.writeUInt32LE(tablePages, 40);
  let off = (1 + tablePages) * PAGE;
  lens.forEach((l, i) => {
    file.writeUInt32LE(off, H_SECTIONS + 8 * i);
    file.writeUInt32LE(l, H_SECTIONS + 8 * i + 4);
    off += l;
  });
  file.writeUInt32LE(tableCrc, 44);
  file.writeUInt32LE(crc32(file.subarray(0, H_CRC)), H_CRC);
}

/** Header page, page CRC table, then the sections back to back. */
function assembleRun(
  sections: readonly Buffer[],
  level: number,
  start: number,
  count: number,
  id: Buffer,
): Buffer {
  let dataLen = 0;
  for (const s of sections) dataLen += s.length;
  const dataPages = Math.ceil(dataLen / PAGE);
  const tablePages = Math.ceil((dataPages * 4) / PAGE);
  const dataStart = (1 + tablePages) * PAGE;
  const file = Buffer.alloc(dataStart + dataLen);
  let off = dataStart;
  for (const s of sections) {
    s.copy(file, off);
    off += s.length;
  }
  for (let p = 0; p < dataPages; p++) {
    const a = dataStart + p * PAGE;
    file.writeUInt32LE(crc32(file.subarray(a, Math.min(a + PAGE, file.length))), PAGE + 4 * p);
  }
  writeRunHeader(
    file,
    { level, start, count, id, dataPages },
    sections.map((s) => s.length),
    crc32(file.subarray(PAGE, PAGE + dataPages * 4)),
  );
  return file;
}

/** A run's bytes, read whole and checked (the writer's open chunk, from the partial run). */
interface RunBytes {
  start: number;
  count: number;
  name: string;
  sec: (i: number) => Buffer;
}

/** A binary heap of list numbers, ordered by `less`. */
class ListHeap {
  readonly #h: number[] = [];
  constructor(readonly less: (a: number, b: number) => boolean) {}
  push(l: number): void {
    const h = this.#h;
    let i = h.push(l) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): number | undefined {
    const h = this.#h;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    h[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }
}

/** Entries merged (or postings copied) between two yields of {@link mergeInto}. */
const MERGE_STEP = 256;
/** Bytes a merge reads of a source section at a time. */
const MERGE_WINDOW = 64 * 1024;
/** Bytes a merge buffers per output section, and copies per step when it assembles the run. */
const MERGE_CHUNK = 256 * 1024;

/**
 * One section of a run file read front to back in windows of whole pages, each page checked
 * against its CRC (a merge reads its sources this way: memory stays a few windows per
 * source, however large the runs).
 */
class SectionReader {
  #buf: Buffer = Buffer.alloc(0);
  /** File position of #buf[0]. */
  #at = 0;
  constructor(
    readonly file: PagedFile,
    readonly off: number,
    readonly length: number,
    readonly label: string,
  ) {}

  /** `n` bytes at `pos` of the section (valid after later reads too). */
  read(pos: number, n: number): Buffer {
    if (!(pos >= 0 && n >= 0 && pos + n <= this.length))
      throw corrupt(`${this.label}: a reference past the end of its section`);
    const a = this.off + pos;
    if (a < this.#at || a + n > this.#at + this.#buf.length) {
      const end = Math.max(a + n, Math.min(this.off + this.length, a + MERGE_WINDOW));
      const p0 = Math.floor(a / PAGE);
      this.#buf = this.file.readPages(p0, Math.max(p0, Math.ceil(end / PAGE) - 1));
      this.#at = p0 * PAGE;
    }
    return this.#buf.subarray(a - this.#at, a - this.#at + n);
  }
}

/** An output section being written to a temporary file, buffered. */
class SectionSink {
  readonly #fd: number;
  readonly #buf = Buffer.allocUnsafe(MERGE_CHUNK);
  #n = 0;
  #written = 0;
  #closed = false;
  constructor(readonly path: string) {
    this.#fd = openSync(path, 'w', 0o644);
  }
  get length(): number {
    return this.#written + this.#n;
  }
  write(b: Uint8Array): void {
    if (this.#n + b.length > this.#buf.length) this.#flush();
    if (b.length >= this.#buf.length) {
      writeFull(this.#fd, b, this.#written);
      this.#written += b.length;
      return;
    }
    this.#buf.set(b, this.#n);
    this.#n += b.length;
  }
  #flush(): void {
    if (this.#n === 0) return;
    writeFull(this.#fd, this.#buf.subarray(0, this.#n), this.#written);
    this.#written += this.#n;
    this.#n = 0;
  }
  /** Flush and close (once); the bytes stay in the file until {@link remove}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#flush();
    } finally {
      closeSync(this.#fd);
    }
  }
  /** Copy [pos, pos + n) of the (closed) file into `into`. */
  readBack(into: Buffer, pos: number): void {
    const fd = openSync(this.path, 'r');
    try {
      readFull(fd, into, pos, this.path);
    } finally {
      closeSync(fd);
    }
  }
  remove(): void {
    rmSync(this.path, { force: true });
  }
}

/** A Bloom filter filled key by key, sized for at most `upTo` keys. */
class BloomBuilder {
  readonly bytes: Buffer;
  readonly #blocks: number;
  constructor(upTo: number) {
    this.#blocks = upTo > 0 ? Math.ceil((upTo * BLOOM_BITS_PER_KEY) / (BLOOM_BLOCK * 8)) : 0;
    this.bytes = Buffer.alloc(this.#blocks * BLOOM_BLOCK);
  }
  add(key: Uint8Array): void {
    const h = hashKey(key);
    const base = (h.block % this.#blocks) * BLOOM_BLOCK;
    for (const bit of h.bits) this.bytes[base + (bit >>> 3)]! |= 1 << (bit & 7);
  }
}

/**
 * Merge adjacent runs (in log order) into one run file `dir/name` starting at `parts[0]`'s
 * first record: a k-way merge of each sorted section, record offsets rebased. Where a key is
 * in several runs the later one wins (actions, line ends) or the postings are concatenated.
 * It streams: the sources are read in windows, each output section goes to a temporary file,
 * and the run is then assembled from them (header, page CRCs) into `name.tmp` and renamed.
 * Each Bloom filter is sized for the keys of the sources (an upper bound of the merged keys:
 * never fewer bits per key than a run built at once). A generator that yields every
 * {@link MERGE_STEP} entries, so that the writer spreads a merge over many `add()` calls;
 * returning early (`.return()`) removes its temporary files.
 */
function* mergeInto(
  parts: readonly Run[],
  level: number,
  id: Buffer,
  dir: string,
  name: string,
): Generator<undefined, RunInfo, undefined> {
  const start = parts[0]!.start;
  let count = 0;
  for (const r of parts) count += r.info.count;
  const shift = parts.map((r) => r.start - start);
  const path = join(dir, name);
  const sinks = new Map<number, SectionSink>();
  const sinkFor = (s: number): SectionSink => {
    let k = sinks.get(s);
    if (!k) sinks.set(s, (k = new SectionSink(`${path}.tmp-${s}`)));
    return k;
  };
  const blooms = new Map<number, Buffer>();
  let work = 0;
  let yielded = 0;
  const due = (): boolean => {
    if (work - yielded < MERGE_STEP) return false;
    yielded = work;
    return true;
  };
  let done = false;
  try {
    // actions: fixed entries keyed by 8 bytes
    {
      const src = parts.map((r) => r.reader(S_ACTIONS));
      const n = src.map((s) => s.length / ACTION_ENTRY);
      const pos = parts.map(() => 0);
      const cur: Buffer[] = [];
      const hi = new Float64Array(parts.length);
      const lo = new Float64Array(parts.length);
      const load = (l: number): boolean => {
        if (pos[l]! >= n[l]!) return false;
        const e = src[l]!.read(pos[l]! * ACTION_ENTRY, ACTION_ENTRY);
        cur[l] = e;
        hi[l] = e.readUInt32BE(0);
        lo[l] = e.readUInt32BE(4);
        return true;
      };
      const heap = new ListHeap((a, b) =>
        hi[a] !== hi[b] ? hi[a]! < hi[b]! : lo[a] !== lo[b] ? lo[a]! < lo[b]! : a < b,
      );
      let total = 0;
      for (let l = 0; l < parts.length; l++) {
        total += n[l]!;
        if (load(l)) heap.push(l);
      }
      const bloom = new BloomBuilder(total);
      const out = sinkFor(S_ACTIONS);
      let pending: Buffer | undefined;
      for (let l = heap.pop(); l !== undefined; l = heap.pop()) {
        const e = Buffer.from(cur[l]!);
        e.writeUInt32LE(e.readUInt32LE(8) + shift[l]!, 8);
        // the same action id in a later run replaces the earlier entry
        if (!pending || pending.compare(e, 0, 8, 0, 8) !== 0) {
          if (pending) {
            out.write(pending);
            bloom.add(pending.subarray(0, 8));
          }
        }
        pending = e;
        pos[l]!++;
        if (load(l)) heap.push(l);
        work++;
        if (due()) yield;
      }
      if (pending) {
        out.write(pending);
        bloom.add(pending.subarray(0, 8));
      }
      blooms.set(S_ACTION_BLOOM, bloom.bytes);
    }

    /** k-way merge of key tables; `emit` gets each distinct key with its holders, in run order. */
    const mergeKeys = function* (
      sTable: number,
      sKeys: number,
      width: number,
      emit: (key: Buffer, holders: { l: number; e: Buffer }[]) => void,
    ): Generator<undefined, void, undefined> {
      const tables = parts.map((r) => r.reader(sTable));
      const blobs = parts.map((r) => r.reader(sKeys));
      const n = tables.map((t) => t.length / width);
      const pos = parts.map(() => 0);
      const cur: Buffer[] = [];
      const ent: Buffer[] = [];
      const load = (l: number): boolean => {
        if (pos[l]! >= n[l]!) return false;
        const e = tables[l]!.read(pos[l]! * width, width);
        ent[l] = e;
        cur[l] = blobs[l]!.read(e.readUInt32LE(0), e.readUInt16LE(4));
        return true;
      };
      const heap = new ListHeap((a, b) => {
        const c = Buffer.compare(cur[a]!, cur[b]!);
        return c !== 0 ? c < 0 : a < b;
      });
      for (let l = 0; l < parts.length; l++) if (load(l)) heap.push(l);
      let key: Buffer | undefined;
      let holders: { l: number; e: Buffer }[] = [];
      for (let l = heap.pop(); l !== undefined; l = heap.pop()) {
        if (key && key.equals(cur[l]!)) holders.push({ l, e: ent[l]! });
        else {
          if (key) emit(key, holders);
          key = cur[l]!;
          holders = [{ l, e: ent[l]! }];
        }
        pos[l]!++;
        if (load(l)) heap.push(l);
        work++;
        if (due()) yield;
      }
      if (key) emit(key, holders);
    };
    const keyCount = (sTable: number, width: number): number =>
      parts.reduce((s, r) => s + r.sectionLength(sTable) / width, 0);

    // line ends: the latest run's entry per line
    {
      const table = sinkFor(S_LINES);
      const keys = sinkFor(S_LINE_KEYS);
      const bloom = new BloomBuilder(keyCount(S_LINES, LINE_ENTRY));
      let kOff = 0;
      yield* mergeKeys(S_LINES, S_LINE_KEYS, LINE_ENTRY, (key, holders) => {
        const { l, e } = holders[holders.length - 1]!;
        const t = Buffer.from(e);
        t.writeUInt32LE(kOff, 0);
        t.writeUInt16LE(key.length, 4);
        t.writeUInt32LE(e.readUInt32LE(6) + shift[l]!, 6);
        table.write(t);
        keys.write(key);
        bloom.add(key);
        kOff += key.length;
      });
      blooms.set(S_LINE_BLOOM, bloom.bytes);
    }

    // actors and objects: postings concatenated in run order (so still ascending)
    for (const kind of ['actor', 'object'] as const) {
      const [sBloom, sTable, sKeys, sPosts] = POSTING_SECTIONS[kind];
      const table = sinkFor(sTable);
      const keys = sinkFor(sKeys);
      const posts = sinkFor(sPosts);
      const src = parts.map((r) => r.reader(sPosts));
      const bloom = new BloomBuilder(keyCount(sTable, POSTING_ENTRY));
      let kOff = 0;
      let pOff = 0;
      yield* mergeKeys(sTable, sKeys, POSTING_ENTRY, (key, holders) => {
        const first = pOff;
        for (const { l, e } of holders) {
          const p0 = e.readUInt32LE(6);
          const c = e.readUInt32LE(10);
          for (let i = 0; i < c;) {
            const take = Math.min(c - i, 1024);
            const b = Buffer.from(src[l]!.read(4 * (p0 + i), 4 * take));
            for (let j = 0; j < take; j++)
              b.writeUInt32LE(b.readUInt32LE(4 * j) + shift[l]!, 4 * j);
            posts.write(b);
            i += take;
          }
          pOff += c;
          work += c;
        }
        const t = Buffer.alloc(POSTING_ENTRY);
        t.writeUInt32LE(kOff, 0);
        t.writeUInt16LE(key.length, 4);
        t.writeUInt32LE(first, 6);
        t.writeUInt32LE(pOff - first, 10);
        table.write(t);
        keys.write(key);
        bloom.add(key);
        kOff += key.length;
      });
      blooms.set(sBloom, bloom.bytes);
    }

    // assemble: the sections back to back after the header page and the page CRC table
    for (const k of sinks.values()) k.close();
    const lens: number[] = [];
    for (let s = 0; s < N_SECTIONS; s++)
      lens.push(blooms.get(s)?.length ?? sinks.get(s)?.length ?? 0);
    const dataLen = lens.reduce((a, b) => a + b, 0);
    const dataPages = Math.ceil(dataLen / PAGE);
    const tablePages = Math.ceil((dataPages * 4) / PAGE);
    const dataStart = (1 + tablePages) * PAGE;
    if (dataStart + dataLen > 0xffffffff) throw new RangeError(`${name}: a run over 4 GiB`);
    const crcs = Buffer.alloc(dataPages * 4);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      let at = dataStart;
      let pageNo = 0;
      let pageFill = 0;
      let pageCrc = 0;
      const put = (b: Buffer): void => {
        writeFull(fd, b, at);
        at += b.length;
        for (let i = 0; i < b.length;) {
          const take = Math.min(PAGE - pageFill, b.length - i);
          pageCrc = crc32(b.subarray(i, i + take), pageCrc);
          pageFill += take;
          i += take;
          if (pageFill === PAGE) {
            crcs.writeUInt32LE(pageCrc, 4 * pageNo++);
            pageFill = 0;
            pageCrc = 0;
          }
        }
      };
      const chunk = Buffer.allocUnsafe(MERGE_CHUNK);
      for (let s = 0; s < N_SECTIONS; s++) {
        const bloom = blooms.get(s);
        if (bloom) put(bloom);
        const k = sinks.get(s);
        if (!k) continue;
        for (let pos = 0; pos < k.length; pos += chunk.length) {
          const view = chunk.subarray(0, Math.min(chunk.length, k.length - pos));
          k.readBack(view, pos);
          put(view);
          // a step copies about as many bytes as MERGE_STEP entries take
          work += Math.ceil(view.length / 64);
          if (due()) yield;
        }
      }
      if (pageFill > 0) crcs.writeUInt32LE(pageCrc, 4 * pageNo++);
      writeFull(fd, crcs, PAGE);
      const head = Buffer.alloc(PAGE);
      writeRunHeader(head, { level, start, count, id, dataPages }, lens, crc32(crcs));
      writeFull(fd, head, 0);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    done = true;
    return { name, level, start, count, bytes: dataStart + dataLen };
  } finally {
    for (const k of sinks.values()) {
      try {
        k.close();
      } catch {
        // a write that failed: the file goes anyway
      }
      k.remove();
    }
    if (!done) rmSync(`${path}.tmp`, { force: true });
  }
}

type PostingKind = 'actor' | 'object';

/** One immutable run file, open for lookups. */
class Run {
  readonly #f: PagedFile;
  readonly #off: number[];
  readonly #len: number[];

  private constructor(
    readonly info: RunInfo,
    f: PagedFile,
    off: number[],
    len: number[],
  ) {
    this.#f = f;
    this.#off = off;
    this.#len = len;
  }

  get start(): number {
    return this.info.start;
  }
  get end(): number {
    return this.info.start + this.info.count;
  }

  /** Open and check the header and CRC table; `verifyAll` also checks every data page. */
  static open(dir: string, info: RunInfo, cache: PageCache, id: Buffer, verifyAll: boolean): Run {
    const label = info.name;
    const fd = openSync(join(dir, info.name), 'r');
    try {
      const size = fstatSync(fd).size;
      if (size !== info.bytes)
        throw corrupt(`${label}: ${size} bytes, manifest says ${info.bytes}`);
      if (size < PAGE) throw corrupt(`${label}: too short`);
      // one read for the header page and (usually all of) the page CRC table after it
      const head = Buffer.allocUnsafe(Math.min(size, HEAD_READ));
      readFull(fd, head, 0, label);
      const h = head.subarray(0, HEADER_LEN);
      if (!h.subarray(0, 8).equals(RUN_MAGIC)) throw corrupt(`${label}: not a run file`);
      if (crc32(h.subarray(0, H_CRC)) !== h.readUInt32LE(H_CRC))
        throw corrupt(`${label}: header fails its checksum`);
      if (h.readUInt32LE(8) !== RUN_VERSION) throw corrupt(`${label}: unknown version`);
      if (
        h.readUInt32LE(12) !== info.level ||
        h.readUIntLE(16, 6) !== info.start ||
        h.readUInt32LE(24) !== info.count ||
        !h.subarray(32, 40).equals(id)
      )
        throw corrupt(`${label}: header does not match the manifest`);
      const dataPages = h.readUInt32LE(28);
      const tablePages = h.readUInt32LE(40);
      if (tablePages !== Math.ceil((dataPages * 4) / PAGE))
        throw corrupt(`${label}: bad page table size`);
      const dataStart = (1 + tablePages) * PAGE;
      const fits =
        dataPages === 0
          ? size === dataStart
          : size > dataStart + (dataPages - 1) * PAGE && size <= dataStart + dataPages * PAGE;
      if (!fits) throw corrupt(`${label}: size does not match its page count`);
      let table: Buffer;
      if (PAGE + dataPages * 4 <= head.length) table = head.subarray(PAGE, PAGE + dataPages * 4);
      else {
        table = Buffer.allocUnsafe(dataPages * 4);
        readFull(fd, table, PAGE, label);
      }
      if (crc32(table) !== h.readUInt32LE(44))
        throw corrupt(`${label}: page table fails its checksum`);
      const crcs = new Uint32Array(dataPages);
      if (LITTLE_ENDIAN) new Uint8Array(crcs.buffer).set(table);
      else for (let p = 0; p < dataPages; p++) crcs[p] = table.readUInt32LE(4 * p);
      const off: number[] = [];
      const len: number[] = [];
      let expect = dataStart;
      for (let i = 0; i < N_SECTIONS; i++) {
        const o = h.readUInt32LE(H_SECTIONS + 8 * i);
        const l = h.readUInt32LE(H_SECTIONS + 8 * i + 4);
        if (o !== expect || o + l > size) throw corrupt(`${label}: bad section ${i}`);
        off.push(o);
        len.push(l);
        expect = o + l;
      }
      if (expect !== size) throw corrupt(`${label}: trailing bytes`);
      const unit: [number, number][] = [
        [S_ACTION_BLOOM, BLOOM_BLOCK],
        [S_ACTIONS, ACTION_ENTRY],
        [S_LINE_BLOOM, BLOOM_BLOCK],
        [S_LINES, LINE_ENTRY],
        [S_ACTOR_BLOOM, BLOOM_BLOCK],
        [S_ACTORS, POSTING_ENTRY],
        [S_ACTOR_POSTINGS, 4],
        [S_OBJECT_BLOOM, BLOOM_BLOCK],
        [S_OBJECTS, POSTING_ENTRY],
        [S_OBJECT_POSTINGS, 4],
      ];
      for (const [s, u] of unit)
        if (len[s]! % u !== 0) throw corrupt(`${label}: section ${s} is not whole entries`);
      if (len[S_ACTIONS]! / ACTION_ENTRY > info.count)
        throw corrupt(`${label}: more actions than records`);
      if (verifyAll) {
        const block = Buffer.allocUnsafe(Math.min(SCAN_BLOCK, size - dataStart));
        for (let p = 0; p < dataPages;) {
          const pos = dataStart + p * PAGE;
          const n = Math.min(block.length, size - pos);
          const view = block.subarray(0, n);
          readFull(fd, view, pos, label);
          for (let q = 0; q * PAGE < n; q++, p++) {
            const pg = view.subarray(q * PAGE, Math.min(n, (q + 1) * PAGE));
            if (crc32(pg) !== crcs[p]) throw corrupt(`${label}: page ${p} fails its checksum`);
          }
        }
      }
      return new Run(info, new PagedFile(fd, cache, label, size, crcs, 1 + tablePages), off, len);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  close(): void {
    try {
      closeSync(this.#f.fd);
    } catch {
      // already closed
    }
  }

  /** Read one section front to back (for merging). */
  reader(section: number): SectionReader {
    return new SectionReader(
      this.#f,
      this.#off[section]!,
      this.#len[section]!,
      `${this.info.name} section ${section}`,
    );
  }

  sectionLength(section: number): number {
    return this.#len[section]!;
  }

  #bloom(section: number, h: KeyHash): boolean {
    const len = this.#len[section]!;
    if (len === 0) return false;
    const blocks = len / BLOOM_BLOCK;
    const block = this.#f.read(this.#off[section]! + (h.block % blocks) * BLOOM_BLOCK, BLOOM_BLOCK);
    for (const bit of h.bits) if ((block[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
    return true;
  }

  #rel(rel: number): number {
    if (rel >= this.info.count) throw corrupt(`${this.info.name}: record offset out of range`);
    return this.info.start + rel;
  }

  /** `key`: the action id's 8 bytes. */
  action(key: Buffer, h: KeyHash): ActionEntry | undefined {
    if (!this.#bloom(S_ACTION_BLOOM, h)) return undefined;
    const base = this.#off[S_ACTIONS]!;
    let lo = 0;
    let hi = this.#len[S_ACTIONS]! / ACTION_ENTRY;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.#f.read(base + mid * ACTION_ENTRY, ACTION_ENTRY);
      const c = Buffer.compare(e.subarray(0, 8), key);
      if (c === 0)
        return {
          index: this.#rel(e.readUInt32LE(8)),
          generation: e.readUIntLE(12, 6),
          tokenHash: readTokenHash(e, 18),
        };
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /** Binary search of a key table; returns the entry's bytes. */
  #find(table: number, keys: number, width: number, key: Buffer): Buffer | undefined {
    const base = this.#off[table]!;
    const kBase = this.#off[keys]!;
    const kLen = this.#len[keys]!;
    let lo = 0;
    let hi = this.#len[table]! / width;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.#f.read(base + mid * width, width);
      const ko = e.readUInt32LE(0);
      const kl = e.readUInt16LE(4);
      if (ko + kl > kLen) throw corrupt(`${this.info.name}: key out of range`);
      const c = Buffer.compare(this.#f.read(kBase + ko, kl), key);
      if (c === 0) return e;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  line(key: Buffer, h: KeyHash): ActionEntry | undefined {
    if (!this.#bloom(S_LINE_BLOOM, h)) return undefined;
    const e = this.#find(S_LINES, S_LINE_KEYS, LINE_ENTRY, key);
    if (!e) return undefined;
    return {
      index: this.#rel(e.readUInt32LE(6)),
      generation: e.readUIntLE(10, 6),
      tokenHash: readTokenHash(e, 16),
    };
  }

  /** Append to `out` the indexes in [lo, hi) for the key, at most `limit` of them. */
  postings(
    kind: PostingKind,
    key: Buffer,
    h: KeyHash,
    lo: number,
    hi: number,
    limit: number,
    out: number[],
  ): void {
    const [sBloom, sTable, sKeys, sPosts] = POSTING_SECTIONS[kind];
    if (!this.#bloom(sBloom, h)) return;
    const e = this.#find(sTable, sKeys, POSTING_ENTRY, key);
    if (!e) return;
    const first = e.readUInt32LE(6);
    const n = e.readUInt32LE(10);
    const pBase = this.#off[sPosts]!;
    if ((first + n) * 4 > this.#len[sPosts]!)
      throw corrupt(`${this.info.name}: postings out of range`);
    const relLo = Math.max(0, lo - this.start);
    const relHi = Math.min(this.info.count, hi - this.start);
    // first posting ≥ relLo
    let a = 0;
    let b = n;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (this.#f.read(pBase + 4 * (first + mid), 4).readUInt32LE(0) < relLo) a = mid + 1;
      else b = mid;
    }
    let prev = -1;
    while (a < n && limit > 0) {
      const take = Math.min(n - a, limit, 1024);
      const block = this.#f.read(pBase + 4 * (first + a), 4 * take);
      for (let i = 0; i < take; i++) {
        const rel = block.readUInt32LE(4 * i);
        if (rel <= prev) throw corrupt(`${this.info.name}: postings out of order`);
        prev = rel;
        if (rel >= relHi) return;
        out.push(this.#rel(rel));
        if (--limit === 0) return;
      }
      a += take;
    }
  }

  /** The whole run, read and checked (for merging, and for the writer's open chunk). */
  bytes(): RunBytes {
    const f = this.#f;
    const all = Buffer.allocUnsafe(f.size);
    readFull(f.fd, all, 0, this.info.name);
    const crcs = f.crcs!;
    const first = f.firstDataPage;
    for (let p = 0; p < crcs.length; p++) {
      const a = (first + p) * PAGE;
      if (crc32(all.subarray(a, Math.min(a + PAGE, all.length))) !== crcs[p])
        throw corrupt(`${this.info.name}: page ${first + p} fails its checksum`);
    }
    const off = this.#off;
    const len = this.#len;
    return {
      start: this.start,
      count: this.info.count,
      name: this.info.name,
      sec: (i) => all.subarray(off[i], off[i]! + len[i]!),
    };
  }

  /** Read the whole run back into maps (the writer's open chunk, from the partial run). */
  decode(): Chunk {
    const { sec } = this.bytes();
    const c = emptyChunk(this.start);
    c.count = this.info.count;
    const acts = sec(S_ACTIONS);
    for (let o = 0; o < acts.length; o += ACTION_ENTRY) {
      c.actions.set(`act_${acts.toString('hex', o, o + 8)}`, {
        index: this.#rel(acts.readUInt32LE(o + 8)),
        generation: acts.readUIntLE(o + 12, 6),
        tokenHash: readTokenHash(acts, o + 18),
      });
    }
    const keyAt = (blob: Buffer, e: Buffer, o: number): string => {
      const ko = e.readUInt32LE(o);
      const kl = e.readUInt16LE(o + 4);
      if (ko + kl > blob.length) throw corrupt(`${this.info.name}: key out of range`);
      return blob.toString('utf8', ko, ko + kl);
    };
    const lines = sec(S_LINES);
    const lineKeys = sec(S_LINE_KEYS);
    for (let o = 0; o < lines.length; o += LINE_ENTRY) {
      c.lines.set(keyAt(lineKeys, lines, o), {
        index: this.#rel(lines.readUInt32LE(o + 6)),
        generation: lines.readUIntLE(o + 10, 6),
        tokenHash: readTokenHash(lines, o + 16),
      });
    }
    for (const [kind, m] of [
      ['actor', c.actors],
      ['object', c.objects],
    ] as const) {
      const [, sTable, sKeys, sPosts] = POSTING_SECTIONS[kind];
      const table = sec(sTable);
      const keys = sec(sKeys);
      const posts = sec(sPosts);
      for (let o = 0; o < table.length; o += POSTING_ENTRY) {
        const p0 = table.readUInt32LE(o + 6);
        const n = table.readUInt32LE(o + 10);
        if ((p0 + n) * 4 > posts.length) throw corrupt(`${this.info.name}: postings out of range`);
        const list: number[] = [];
        for (let i = 0; i < n; i++) {
          const idx = this.#rel(posts.readUInt32LE(4 * (p0 + i)));
          if (list.length && idx <= list[list.length - 1]!)
            throw corrupt(`${this.info.name}: postings out of order`);
          list.push(idx);
        }
        m.set(keyAt(keys, table, o), list);
      }
    }
    return c;
  }
}

// ---------------------------------------------------------------------------------------
// The manifest.

function manifestChecksum(m: Omit<Manifest, 'checksum'>, p: CryptoProvider): string {
  return sha256Hex(utf8(canonicalize(m)), p);
}

function isNat(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parse and check a manifest strictly; throws a reason. */
function parseManifest(text: string, p: CryptoProvider): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw corrupt('MANIFEST.json is not JSON', e);
  }
  const m = v as Manifest;
  if (
    typeof v !== 'object' ||
    v === null ||
    (m.format !== INDEX_FORMAT && m.format !== INDEX_FORMAT_1)
  )
    throw corrupt('MANIFEST.json has an unknown format');
  const { checksum, ...rest } = m;
  let sum: string;
  try {
    sum = manifestChecksum(rest, p);
  } catch (e) {
    throw corrupt('MANIFEST.json is not canonicalizable', e);
  }
  if (checksum !== sum) throw corrupt('MANIFEST.json fails its checksum');
  const ok =
    typeof m.origin === 'string' &&
    typeof m.log_key === 'string' &&
    typeof m.index_id === 'string' &&
    /^[0-9a-f]{16}$/.test(m.index_id) &&
    isNat(m.size) &&
    isNat(m.chunk) &&
    m.chunk >= 2 &&
    m.chunk <= 2 ** 20 &&
    isNat(m.fan_in) &&
    m.fan_in >= 2 &&
    m.chunk * m.fan_in <= 2 ** 24 &&
    m.fence === FENCE &&
    Array.isArray(m.runs) &&
    Array.isArray(m.segments) &&
    isNat(m.offsets_crc) &&
    isNat(m.times_crc) &&
    (m.last_leaf === null ||
      (typeof m.last_leaf === 'string' && /^[0-9a-f]{64}$/.test(m.last_leaf)));
  if (!ok) throw corrupt('MANIFEST.json is malformed');
  // runs tile [0, size): level-2 runs (whole level-1 spans), then level-1 runs, then
  // level-0 runs, then at most one partial run
  let at = 0;
  let above = 2;
  const big = m.chunk * m.fan_in;
  const maxLevel = m.format === INDEX_FORMAT_1 ? 1 : 2;
  m.runs.forEach((r, i) => {
    const good =
      typeof r === 'object' &&
      r !== null &&
      isNat(r.start) &&
      isNat(r.count) &&
      isNat(r.bytes) &&
      (r.level === 0 || r.level === 1 || r.level === 2) &&
      r.level <= maxLevel &&
      r.level <= above &&
      r.start === at &&
      (r.level === 2
        ? r.count > 0 && r.count % big === 0 && r.start % big === 0 && r.count <= MAX_RUN_RECORDS
        : r.level === 1
          ? r.count === big && r.start % big === 0
          : r.start % m.chunk === 0 &&
            r.count > 0 &&
            (r.count === m.chunk || (r.count < m.chunk && i === m.runs.length - 1))) &&
      r.name === runName(r.level, r.start, r.count, m.chunk);
    if (!good) throw corrupt(`MANIFEST.json: run ${i} is malformed`);
    above = r.level;
    at += r.count;
  });
  if (at !== m.size) throw corrupt('MANIFEST.json: runs do not cover the index');
  let first = -1;
  for (const s of m.segments) {
    if (!(typeof s === 'object' && s !== null && isNat(s.first) && isNat(s.end) && s.first > first))
      throw corrupt('MANIFEST.json: bad segment table');
    first = s.first;
  }
  if (m.size > 0 !== m.segments.length > 0 || (m.segments[0] && m.segments[0].first !== 0))
    throw corrupt('MANIFEST.json: bad segment table');
  if (m.segments.length && m.segments[m.segments.length - 1]!.first >= Math.max(1, m.size))
    throw corrupt('MANIFEST.json: segment table runs past the index');
  if ((m.size === 0) !== (m.last_leaf === null)) throw corrupt('MANIFEST.json: bad last leaf');
  return m;
}

function runName(level: number, start: number, count: number, chunk: number): string {
  if (level === 2) return `L2-${pad16(start)}-${count}.run`;
  if (level === 1) return `L1-${pad16(start)}.run`;
  if (count === chunk) return `L0-${pad16(start)}.run`;
  return `P-${pad16(start)}-${count}.run`;
}

interface LogBinding {
  origin: string;
  logKey: string;
}

function readBinding(dir: string): LogBinding | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, 'log.json'), 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text) as { origin?: unknown; public_key?: unknown };
    if (typeof v.origin === 'string' && typeof v.public_key === 'string')
      return { origin: v.origin, logKey: v.public_key };
  } catch {
    // fall through
  }
  throw new ContinuityError('STATE_CORRUPT', `cannot read ${join(dir, 'log.json')}`);
}

function segmentFiles(dir: string): number[] {
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, 'segments'));
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw e;
  }
  const re = new RegExp(`^\\d{${SEGMENT_DIGITS}}\\.jsonl$`);
  return names
    .filter((n) => re.test(n))
    .map((n) => Number(n.slice(0, SEGMENT_DIGITS)))
    .sort((a, b) => a - b);
}

/** Whether this process holds the folder's writer lock (see lock.ts). */
function holdsWriterLock(dir: string): boolean {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8')) as {
      pid?: unknown;
      host?: unknown;
    };
    return v.pid === process.pid && v.host === hostname();
  } catch {
    return false;
  }
}

function checkLimit(limit: number): void {
  if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0)))
    throw new RangeError(`"limit" expected a non-negative integer, got ${limit}`);
}

// ---------------------------------------------------------------------------------------

/**
 * A {@link LogIndex} persisted beside the log in `<dir>/index/`. Pass it to
 * `AuditLog.open({ dir, index: new DiskIndex(dir) })`: it loads lazily on first use (inside
 * `open`, after the writer lock is taken), so that `recover()` replays only the records it
 * does not hold yet. With `readOnly: true` it serves queries beside a running writer.
 */
export class DiskIndex implements LogIndex {
  readonly dir: string;
  readonly indexDir: string;
  readonly readOnly: boolean;
  readonly #o: DiskIndexOptions;
  readonly #p: CryptoProvider;
  readonly #cache: PageCache;
  #loaded = false;
  #closed = false;
  #binding: LogBinding | undefined;
  #id: Buffer = Buffer.alloc(8);
  #chunk: number;
  #fanIn: number;
  /** Sealed runs in log order (for readers: also the partial run). */
  #runs: Run[] = [];
  /** Full chunks whose run file could not be written yet (a failing disk); retried. */
  #unsealed: Chunk[] = [];
  #open: Chunk = emptyChunk(0);
  #size = 0;
  /** Leaf hash of the last record added: hex from the manifest, or the writer's bytes. */
  #lastLeaf: string | Uint8Array | null = null;
  #sealError: unknown;
  /** Merges in progress (at most one per level): advanced a little by every add(). */
  #merges: MergeJob[] = [];
  // durable state
  #committed: Manifest | undefined;
  #committedPartial: string | undefined;
  #toSync = new Set<string>();
  #obsolete: string[] = [];
  #flushChain: Promise<void> = Promise.resolve();
  // offsets.bin: byte offset of each record in its segment
  #offFd: number | undefined;
  #offFile: PagedFile | undefined;
  #offCount = 0;
  #offCrc = 0;
  #segs: SegmentEnd[] = [];
  // times.bin: received_at of every FENCE-th record
  #timesFd: number | undefined;
  #timesFile: PagedFile | undefined;
  #timesCount = 0;
  #timesCrc = 0;
  #timesPending: number[] = [];
  #segFds = new Map<number, number>();
  /** Reads of log lines in flight (segment descriptors are not closed meanwhile). */
  #inflight = 0;
  /** The MANIFEST.json text this index was loaded from (undefined: there was none). */
  #manifestText: string | undefined;

  constructor(dir: string, options: DiskIndexOptions = {}) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('"dir" expected a folder path');
    const chunk = options.chunkRecords ?? DEFAULT_CHUNK;
    const fanIn = options.fanIn ?? DEFAULT_FAN_IN;
    if (!Number.isSafeInteger(chunk) || chunk < 2 || chunk > 2 ** 20)
      throw new RangeError(`"chunkRecords" expected 2..2^20, got ${chunk}`);
    if (!Number.isSafeInteger(fanIn) || fanIn < 2 || chunk * fanIn > 2 ** 24)
      throw new RangeError(`"fanIn" expected ≥ 2 with chunkRecords × fanIn ≤ 2^24, got ${fanIn}`);
    const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE;
    if (!(Number.isFinite(cacheBytes) && cacheBytes >= 0))
      throw new RangeError(`"cacheBytes" expected a non-negative number, got ${cacheBytes}`);
    this.dir = dir;
    this.indexDir = join(dir, 'index');
    this.readOnly = options.readOnly ?? false;
    this.#o = options;
    this.#p = options.provider ?? getProvider();
    this.#cache = new PageCache(cacheBytes);
    this.#chunk = chunk;
    this.#fanIn = fanIn;
  }

  // ------------------------------------------------------------------ loading

  #live(): void {
    if (this.#closed) throw new ContinuityError('LOG_CLOSED', 'the index is closed');
    if (!this.#loaded) this.#load();
  }

  #load(): void {
    if (this.readOnly) {
      // a writer may replace the manifest and delete runs it no longer needs between our
      // reading the manifest and opening the runs: read again
      for (let attempt = 0; ; attempt++) {
        try {
          this.#loadFrom(false);
          break;
        } catch (e) {
          this.#closeFiles();
          if (!isErrno(e, 'ENOENT') || attempt >= 4) throw e;
        }
      }
      this.#loaded = true;
      return;
    }
    // a writer rewrites and may wipe index/: only under the log's writer lock
    if (!holdsWriterLock(this.dir))
      throw new ContinuityError(
        'LOCKED',
        `a writable DiskIndex needs the writer lock of ${this.dir}: pass it to AuditLog.open, or open it readOnly`,
      );
    try {
      this.#loadFrom(true);
    } catch (e) {
      this.#closeFiles();
      // damage (including garbage that trips a range check) is repaired by a rebuild; an
      // I/O error such as EIO or EACCES is not ours to paper over
      const damage =
        (ContinuityError.is(e) && e.code === 'STATE_CORRUPT') ||
        isErrno(e, 'ENOENT') ||
        (e instanceof RangeError && !ContinuityError.is(e));
      if (!damage) throw e;
      this.#reset((e as Error).message);
    }
    this.#loaded = true;
  }

  #loadFrom(writer: boolean): void {
    this.#clear(); // a retry must not see what a failed attempt set
    this.#binding = readBinding(this.dir);
    let text: string | undefined;
    try {
      text = readFileSync(join(this.indexDir, MANIFEST), 'utf8');
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
    }
    this.#manifestText = text;
    if (text === undefined) {
      if (writer) this.#reset(undefined);
      return;
    }
    const m = parseManifest(text, this.#p);
    if (!this.#binding) throw corrupt(`${this.dir} has no log.json`);
    if (m.origin !== this.#binding.origin || m.log_key !== this.#binding.logKey)
      throw corrupt('the index belongs to another log');
    this.#id = Buffer.from(m.index_id, 'hex');
    this.#chunk = m.chunk;
    this.#fanIn = m.fan_in;
    this.#size = m.size;
    this.#segs = m.segments.map((s) => ({ ...s }));
    this.#lastLeaf = m.last_leaf;

    const runs: Run[] = [];
    try {
      for (const r of m.runs) runs.push(Run.open(this.indexDir, r, this.#cache, this.#id, writer));
    } catch (e) {
      for (const r of runs) r.close();
      throw e;
    }
    this.#runs = runs;

    // offsets and times
    const timesN = Math.ceil(m.size / FENCE);
    const mode = writer ? constants.O_RDWR : constants.O_RDONLY;
    this.#offFd = openSync(join(this.indexDir, OFFSETS), mode);
    this.#timesFd = openSync(join(this.indexDir, TIMES), mode);
    const offSize = fstatSync(this.#offFd).size;
    const timesSize = fstatSync(this.#timesFd).size;
    if (offSize < 8 * m.size) throw corrupt(`${OFFSETS} is shorter than the index`);
    if (timesSize < 8 * timesN) throw corrupt(`${TIMES} is shorter than the index`);
    this.#offCount = m.size;
    this.#offCrc = m.offsets_crc;
    this.#timesCount = timesN;
    this.#timesCrc = m.times_crc;
    this.#offFile = new PagedFile(this.#offFd, this.#cache, OFFSETS, 8 * m.size);
    this.#timesFile = new PagedFile(this.#timesFd, this.#cache, TIMES, 8 * timesN);
    this.#committed = m;

    if (!writer) return;

    // a writer checks everything once, so that damage is repaired by a rebuild now rather
    // than found later by a lookup
    if (crcOfFile(this.#offFd, 8 * m.size) !== m.offsets_crc)
      throw corrupt(`${OFFSETS} fails its checksum`);
    if (crcOfFile(this.#timesFd, 8 * timesN) !== m.times_crc)
      throw corrupt(`${TIMES} fails its checksum`);
    const onDisk = segmentFiles(this.dir);
    m.segments.forEach((s, i) => {
      if (onDisk[i] !== s.first) throw corrupt('the segment table does not match the log');
    });
    if (m.size > 0) {
      let line: Uint8Array;
      try {
        line = this.#lineAt(m.size - 1);
        parseRecord(line, m.size - 1);
      } catch (e) {
        throw corrupt(`line ${m.size - 1} is not where the index says`, e);
      }
      if (toHex(leafHash(line, this.#p)) !== m.last_leaf)
        throw corrupt(`line ${m.size - 1} differs from the line that was indexed`);
    }
    // the partial run becomes the open chunk again
    const last = this.#runs[this.#runs.length - 1];
    if (last && last.info.level === 0 && last.info.count < this.#chunk) {
      this.#open = last.decode();
      this.#committedPartial = last.info.name;
      last.close();
      this.#runs.pop();
    } else {
      this.#open = emptyChunk(m.size);
    }
    // a merge that a close or crash interrupted starts again
    this.#merge();
    // leftovers of an interrupted flush, seal or merge
    const keep = new Set([MANIFEST, OFFSETS, TIMES, ...m.runs.map((r) => r.name)]);
    for (const n of readdirSync(this.indexDir)) {
      if (!keep.has(n)) rmSync(join(this.indexDir, n), { force: true, recursive: true });
    }
  }

  /** Start empty (a new index, or a rebuild after damage). */
  #reset(reason: string | undefined): void {
    if (this.readOnly) throw corrupt(reason ?? 'no index');
    let existed = false;
    try {
      existed = readdirSync(this.indexDir).length > 0;
    } catch {
      existed = false;
    }
    if (existed) rmSync(this.indexDir, { recursive: true, force: true });
    this.#clear();
    this.#binding = readBinding(this.dir);
    this.#id = Buffer.from(systemRandom(8));
    if (existed && reason !== undefined) this.#o.onRebuild?.(reason);
  }

  /** The state of an empty index (no files open). */
  #clear(): void {
    this.#chunk = this.#o.chunkRecords ?? DEFAULT_CHUNK;
    this.#fanIn = this.#o.fanIn ?? DEFAULT_FAN_IN;
    this.#runs = [];
    this.#unsealed = [];
    for (const m of [...this.#merges]) this.#dropMerge(m);
    this.#open = emptyChunk(0);
    this.#size = 0;
    this.#lastLeaf = null;
    this.#committed = undefined;
    this.#committedPartial = undefined;
    this.#segs = [];
    this.#offCount = 0;
    this.#offCrc = 0;
    this.#timesCount = 0;
    this.#timesCrc = 0;
    this.#timesPending = [];
  }

  #closeFiles(): void {
    for (const r of this.#runs) r.close();
    this.#runs = [];
    for (const fd of [this.#offFd, this.#timesFd, ...this.#segFds.values()]) {
      if (fd === undefined) continue;
      try {
        closeSync(fd);
      } catch {
        // ignore
      }
    }
    this.#offFd = this.#timesFd = undefined;
    this.#offFile = this.#timesFile = undefined;
    this.#segFds.clear();
  }

  /**
   * For a reader: whether the index on disk changed since this reader loaded it (the writer
   * flushed, merged or rebuilt it: `MANIFEST.json` was replaced), so that a reader kept open
   * across queries knows to open a fresh one. False before the first load.
   */
  stale(): boolean {
    if (!this.readOnly || !this.#loaded || this.#closed) return false;
    let text: string | undefined;
    try {
      text = readFileSync(join(this.indexDir, MANIFEST), 'utf8');
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
    }
    return text !== this.#manifestText;
  }

  // ------------------------------------------------------------------ LogIndex

  indexedSize(): number {
    this.#live();
    return this.#size;
  }

  action(actionId: string): ActionEntry | undefined {
    this.#live();
    if (!isActionId(actionId)) return undefined;
    const o = this.#open.actions.get(actionId);
    if (o) return { ...o };
    for (let i = this.#unsealed.length - 1; i >= 0; i--) {
      const e = this.#unsealed[i]!.actions.get(actionId);
      if (e) return { ...e };
    }
    const key = Buffer.from(actionId.slice(4), 'hex');
    const h = hashKey(key);
    for (let i = this.#runs.length - 1; i >= 0; i--) {
      const e = this.#runs[i]!.action(key, h);
      if (e) return e;
    }
    return undefined;
  }

  lastOnLine(continuityId: string): ActionEntry | undefined {
    this.#live();
    const o = this.#open.lines.get(continuityId);
    if (o) return { ...o };
    for (let i = this.#unsealed.length - 1; i >= 0; i--) {
      const e = this.#unsealed[i]!.lines.get(continuityId);
      if (e) return { ...e };
    }
    const key = Buffer.from(continuityId, 'utf8');
    if (key.length > 0xffff) return undefined;
    const h = hashKey(key);
    for (let i = this.#runs.length - 1; i >= 0; i--) {
      const e = this.#runs[i]!.line(key, h);
      if (e) return e;
    }
    return undefined;
  }

  byActor(actor: string, limit = Infinity): number[] {
    return this.lookup('actor', actor, { limit });
  }

  byObject(objectId: string, limit = Infinity): number[] {
    return this.lookup('object', objectId, { limit });
  }

  /** Indexes of the records by an actor or about an object within a range, ascending. */
  lookup(kind: PostingKind, key: string, range: IndexRange = {}): number[] {
    this.#live();
    const lo = range.fromIndex ?? 0;
    const hi = range.toIndex ?? Infinity;
    const limit = range.limit ?? Infinity;
    checkLimit(limit);
    const out: number[] = [];
    const kb = Buffer.from(key, 'utf8');
    if (limit === 0 || lo >= hi || kb.length > 0xffff) return out;
    const h = hashKey(kb);
    for (const r of this.#runs) {
      if (r.end <= lo) continue;
      if (r.start >= hi) return out;
      r.postings(kind, kb, h, lo, hi, limit - out.length, out);
      if (out.length >= limit) return out;
    }
    for (const c of [...this.#unsealed, this.#open]) {
      const list = (kind === 'actor' ? c.actors : c.objects).get(key);
      if (!list) continue;
      for (const i of list) {
        if (i < lo) continue;
        if (i >= hi) return out;
        out.push(i);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  add(records: readonly IndexedRecord[]): void {
    this.#live();
    if (this.readOnly) throw new TypeError('a read-only DiskIndex cannot add records');
    for (const r of records) {
      if (r.index < this.#size) continue;
      if (r.index !== this.#size)
        throw new RangeError(`"index" expected record ${this.#size}, got ${r.index}`);
      if (!isActionId(r.actionId)) throw new TypeError(`record ${r.index}: bad action id`);
      if (!/^sha256:[0-9a-f]{64}$/.test(r.tokenHash))
        throw new TypeError(`record ${r.index}: bad token hash`);
      if (!(Number.isSafeInteger(r.generation) && r.generation >= 0 && r.generation <= MAX_U48))
        throw new RangeError(`record ${r.index}: generation out of range`);
      const e: ActionEntry = { index: r.index, generation: r.generation, tokenHash: r.tokenHash };
      const c = this.#open;
      c.actions.set(r.actionId, e);
      c.lines.set(r.continuityId, e);
      pushTo(c.actors, r.actor, r.index);
      if (r.objectId) pushTo(c.objects, r.objectId, r.index);
      c.count++;
      if (r.index % FENCE === 0) this.#timesPending.push(r.receivedAt);
      this.#lastLeaf = r.leafHash;
      this.#size++;
      if (c.count === this.#chunk) {
        this.#unsealed.push(c);
        this.#open = emptyChunk(this.#size);
        this.#seal();
      }
    }
    // one step (MERGE_STEP entries) per 16 records: a merge of 65,536 records (~300,000
    // entries over its sections) completes within ~20,000 records, long before the next
    this.#advanceMerge(Math.ceil(records.length / 16));
    if (this.#timesPending.length >= TIMES_SPILL) {
      try {
        this.#writeTimes();
      } catch {
        // kept in memory; flush() retries and reports
      }
    }
  }

  /** Write full chunks as level-0 runs, and merge level-0 runs. A failure keeps them in memory. */
  #seal(): void {
    try {
      while (this.#unsealed.length) {
        const c = this.#unsealed[0]!;
        const info = this.#writeRun(c, 0);
        this.#runs.push(Run.open(this.indexDir, info, this.#cache, this.#id, false));
        this.#unsealed.shift();
        try {
          this.#merge();
        } catch {
          // a level-0 run that cannot be read back: left as it is (lookups will report it)
        }
      }
      this.#sealError = undefined;
    } catch (e) {
      this.#sealError = e;
    }
  }

  /**
   * Start the merges that are due, at most one per level: the oldest `fanIn` level-0 runs
   * into a level-1 run; and, once {@link L2_TRIGGER} level-1 runs exist, those (up to
   * {@link L2_SPANS} of them) into a level-2 run, together with the last level-2 run while
   * the result stays within `L2_SPANS` level-1 spans. So a lookup probes at most one
   * level-2 run per ~1M records (with the default sizes), three level-1 runs and the
   * level-0 runs; and each record is rewritten a bounded number of times (level 2: about
   * 2.5 on average), however long the log.
   */
  #merge(): void {
    if (!this.#merges.some((m) => m.level === 1)) {
      const l0 = this.#runs.filter((r) => r.info.level === 0);
      if (l0.length >= this.#fanIn) this.#startMerge(1, l0.slice(0, this.#fanIn));
    }
    if (!this.#merges.some((m) => m.level === 2)) {
      const span = this.#chunk * this.#fanIn;
      const cap = Math.min(L2_SPANS, Math.floor(MAX_RUN_RECORDS / span));
      const l1 = this.#runs.filter((r) => r.info.level === 1);
      if (cap >= 2 && l1.length >= L2_TRIGGER) {
        const parts = l1.slice(0, cap);
        const l2 = this.#runs.filter((r) => r.info.level === 2);
        const last = l2[l2.length - 1];
        if (last && last.end === parts[0]!.start && last.info.count / span + parts.length <= cap)
          parts.unshift(last);
        this.#startMerge(2, parts);
      }
    }
  }

  #startMerge(level: number, parts: Run[]): void {
    const start = parts[0]!.start;
    const count = parts.reduce((n, r) => n + r.info.count, 0);
    const name = runName(level, start, count, this.#chunk);
    this.#merges.push({
      level,
      parts,
      steps: mergeInto(parts, level, this.#id, this.indexDir, name),
    });
  }

  /** Stop a merge in progress (its temporary files are removed). */
  #dropMerge(m: MergeJob): void {
    this.#merges = this.#merges.filter((x) => x !== m);
    try {
      m.steps.return(undefined as unknown as RunInfo);
    } catch {
      // cleaning up is best effort: the next writer open removes what is left
    }
  }

  /**
   * Advance each merge in progress by `steps` × MERGE_STEP entries (a level-2 merge, which
   * is larger, twice that); when one is done, swap the merged run in for its parts. Until
   * then the parts keep answering lookups. A failure drops the merge (the parts stay; it is
   * tried again at the next seal).
   */
  #advanceMerge(steps: number): void {
    for (const m of [...this.#merges]) {
      try {
        for (let i = 0; i < steps * m.level; i++) {
          const r = m.steps.next();
          if (!r.done) continue;
          this.#merges = this.#merges.filter((x) => x !== m);
          this.#toSync.add(r.value.name);
          const run = Run.open(this.indexDir, r.value, this.#cache, this.#id, false);
          const at = this.#runs.indexOf(m.parts[0]!);
          this.#runs.splice(at, m.parts.length, run);
          for (const p of m.parts) {
            p.close();
            this.#obsolete.push(p.info.name);
            this.#toSync.delete(p.info.name);
          }
          this.#merge();
          break;
        }
      } catch (e) {
        this.#dropMerge(m);
        this.#sealError = e;
      }
    }
  }

  #writeRun(c: Chunk, level: number): RunInfo {
    const bytes = buildRun(c, level, this.#id);
    return this.#writeBytes(
      runName(level, c.start, c.count, this.#chunk),
      bytes,
      level,
      c.start,
      c.count,
    );
  }

  #writeBytes(name: string, bytes: Buffer, level: number, start: number, count: number): RunInfo {
    mkdirSync(this.indexDir, { recursive: true });
    const path = join(this.indexDir, name);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeFull(fd, bytes, 0);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    // made durable by the next flush(), before a manifest names it
    this.#toSync.add(name);
    return { name, level, start, count, bytes: bytes.length };
  }

  #ensureFiles(): void {
    if (this.#offFd !== undefined && this.#timesFd !== undefined) return;
    mkdirSync(this.indexDir, { recursive: true });
    const mode = constants.O_RDWR | constants.O_CREAT;
    if (this.#offFd === undefined) {
      this.#offFd = openSync(join(this.indexDir, OFFSETS), mode, 0o644);
      ftruncateSync(this.#offFd, 8 * this.#offCount);
      this.#offFile = new PagedFile(this.#offFd, this.#cache, OFFSETS, 8 * this.#offCount);
    }
    if (this.#timesFd === undefined) {
      this.#timesFd = openSync(join(this.indexDir, TIMES), mode, 0o644);
      ftruncateSync(this.#timesFd, 8 * this.#timesCount);
      this.#timesFile = new PagedFile(this.#timesFd, this.#cache, TIMES, 8 * this.#timesCount);
    }
  }

  #writeTimes(): void {
    if (!this.#timesPending.length) return;
    this.#ensureFiles();
    const n = this.#timesPending.length;
    const b = Buffer.allocUnsafe(8 * n);
    this.#timesPending.forEach((t, i) => b.writeDoubleLE(t, 8 * i));
    writeFull(this.#timesFd!, b, 8 * this.#timesCount);
    this.#timesCrc = crc32(b, this.#timesCrc);
    this.#timesCount += n;
    this.#timesFile!.size = 8 * this.#timesCount;
    this.#timesPending = [];
  }

  /** Persist what was added: runs, offsets, times, then the manifest. */
  async flush(): Promise<void> {
    this.#live();
    if (this.readOnly) return;
    const next = this.#flushChain.then(() => this.#flushOnce());
    this.#flushChain = next.catch(() => undefined);
    await next;
  }

  async #flushOnce(): Promise<void> {
    if (this.#unsealed.length) this.#seal();
    if (this.#unsealed.length) {
      throw new ContinuityError('WRITE_FAILED', 'index: cannot write a run', {
        cause: this.#sealError,
      });
    }
    const target = this.#size;
    const partialName =
      this.#open.count > 0
        ? runName(0, this.#open.start, this.#open.count, this.#chunk)
        : undefined;
    if (
      this.#committed &&
      target === this.#committed.size &&
      partialName === this.#committedPartial &&
      this.#obsolete.length === 0 &&
      this.#toSync.size === 0
    )
      return;
    // --- synchronous snapshot of the state this flush makes durable
    this.#ensureFiles();
    this.#writeTimes();
    const timesCrc = this.#timesCrc;
    const runs = this.#runs.map((r) => ({ ...r.info }));
    if (partialName !== undefined) {
      if (partialName === this.#committedPartial) {
        runs.push(this.#committed!.runs[this.#committed!.runs.length - 1]!);
      } else {
        runs.push(this.#writeRun(this.#open, 0));
      }
    }
    const toSync = [...this.#toSync];
    this.#toSync.clear();
    const obsolete = this.#obsolete.splice(0);
    const lastLeaf =
      typeof this.#lastLeaf === 'object' && this.#lastLeaf !== null
        ? toHex(this.#lastLeaf)
        : this.#lastLeaf;
    const binding = this.#binding ?? readBinding(this.dir);
    if (!binding) throw new ContinuityError('STATE_CORRUPT', `${this.dir} has no log.json`);
    this.#binding = binding;
    // --- asynchronous part
    try {
      await this.#scanOffsets(target);
      for (const name of toSync) {
        let fh;
        try {
          fh = await openAsync(join(this.indexDir, name), 'r+');
        } catch (e) {
          if (isErrno(e, 'ENOENT')) continue; // merged away since
          throw e;
        }
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      await fdatasyncAsync(this.#offFd!);
      await fdatasyncAsync(this.#timesFd!);
      await syncDir(this.indexDir);
      const body: Omit<Manifest, 'checksum'> = {
        format: INDEX_FORMAT,
        origin: binding.origin,
        log_key: binding.logKey,
        index_id: this.#id.toString('hex'),
        size: target,
        chunk: this.#chunk,
        fan_in: this.#fanIn,
        fence: FENCE,
        runs,
        segments: this.#segs.map((s) => ({ ...s })),
        offsets_crc: this.#offCrc,
        times_crc: timesCrc,
        last_leaf: target > 0 ? lastLeaf : null,
      };
      const m: Manifest = { ...body, checksum: manifestChecksum(body, this.#p) };
      await writeDurable(
        join(this.indexDir, MANIFEST),
        JSON.stringify(m, null, 1) + '\n',
        this.indexDir,
      );
      const oldPartial = this.#committedPartial;
      this.#committed = m;
      this.#committedPartial = partialName;
      if (oldPartial !== undefined && oldPartial !== partialName) obsolete.push(oldPartial);
    } catch (e) {
      for (const n of toSync) this.#toSync.add(n);
      this.#obsolete.unshift(...obsolete);
      throw e;
    }
    for (const n of obsolete) {
      try {
        unlinkSync(join(this.indexDir, n));
      } catch {
        // cleaned at the next open
      }
    }
  }

  /** Find where records [#offCount, target) start, reading the log; append to offsets.bin. */
  async #scanOffsets(target: number): Promise<void> {
    let k = this.#offCount;
    if (k >= target) return;
    if (!this.#segs.length) this.#segs.push({ first: 0, end: 0 });
    let seg = this.#segs[this.#segs.length - 1]!;
    let fh: FileHandle | undefined = await openAsync(
      join(this.dir, 'segments', segmentName(seg.first)),
      'r',
    );
    const buf = Buffer.allocUnsafe(SCAN_BLOCK);
    const out = Buffer.alloc(8 * 8192);
    let outN = 0;
    let lineStart = seg.end;
    let readPos = seg.end;
    const emit = (): void => {
      if (!outN) return;
      const b = out.subarray(0, 8 * outN);
      writeFull(this.#offFd!, b, 8 * this.#offCount);
      this.#offCrc = crc32(b, this.#offCrc);
      this.#offCount += outN;
      this.#offFile!.size = 8 * this.#offCount;
      seg.end = lineStart;
      outN = 0;
    };
    try {
      while (k < target) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, readPos);
        if (bytesRead === 0) {
          if (lineStart !== readPos)
            throw corrupt(`${segmentName(seg.first)} ends inside line ${k}`);
          emit();
          await fh.close();
          fh = undefined;
          try {
            fh = await openAsync(join(this.dir, 'segments', segmentName(k)), 'r');
          } catch (e) {
            throw corrupt(`the log has no line ${k} (no segment ${segmentName(k)})`, e);
          }
          seg = { first: k, end: 0 };
          this.#segs.push(seg);
          lineStart = readPos = 0;
          continue;
        }
        const view = buf.subarray(0, bytesRead);
        let i = 0;
        while (k < target) {
          const nl = view.indexOf(0x0a, i);
          if (nl < 0) break;
          out.writeUIntLE(lineStart, 8 * outN, 6);
          out.writeUInt16LE(0, 8 * outN + 6);
          outN++;
          k++;
          lineStart = readPos + nl + 1;
          i = nl + 1;
          if (outN === 8192) emit();
        }
        readPos += bytesRead;
      }
      emit();
    } finally {
      await fh?.close();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#flushChain;
    if (this.#merges.length && this.#committed) {
      // finish the merges in progress (and those they lead to) and commit them, rather than
      // leave their parts to the next session. Never throws: AuditLog.close releases the
      // lock after this.
      try {
        while (this.#merges.length) this.#advanceMerge(64);
        if (this.#sealError === undefined) await this.#flushOnce();
      } catch {
        // the manifest still names the parts: nothing lost
      }
    }
    this.#closed = true;
    for (const m of [...this.#merges]) this.#dropMerge(m);
    this.#closeFiles();
  }

  // ------------------------------------------------------------------ reading the log

  /** Records whose line can be read through the index (offsets known). */
  get readableSize(): number {
    this.#live();
    return this.#offCount;
  }

  get stats(): DiskIndexStats {
    this.#live();
    let inMemory = this.#open.count;
    for (const c of this.#unsealed) inMemory += c.count;
    return {
      size: this.#size,
      flushed: this.#committed?.size ?? 0,
      runs: this.#runs.length,
      inMemory,
      cachedPages: this.#cache.size,
    };
  }

  #offset(i: number): number {
    const b = this.#offFile!.read(8 * i, 8);
    if (b.readUInt16LE(6) !== 0) throw corrupt(`${OFFSETS}: entry ${i} out of range`);
    return b.readUIntLE(0, 6);
  }

  #segmentOf(i: number): { seg: SegmentEnd; next: number } {
    let lo = 0;
    let hi = this.#segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#segs[mid]!.first <= i) lo = mid + 1;
      else hi = mid;
    }
    const seg = this.#segs[lo - 1];
    if (!seg) throw corrupt(`no segment holds line ${i}`);
    return { seg, next: this.#segs[lo]?.first ?? Infinity };
  }

  /** Where line `index` starts (for readers that continue from there). */
  positionOf(index: number): LogPosition {
    this.#live();
    if (!(Number.isSafeInteger(index) && index >= 0 && index <= this.#offCount))
      throw new RangeError(`"index" expected 0..${this.#offCount}, got ${index}`);
    if (index === this.#offCount) {
      const last = this.#segs[this.#segs.length - 1];
      return { index, segment: last?.first ?? 0, offset: last?.end ?? 0 };
    }
    const { seg } = this.#segmentOf(index);
    return { index, segment: seg.first, offset: this.#offset(index) };
  }

  #segFd(first: number): number {
    let fd = this.#segFds.get(first);
    if (fd !== undefined) {
      this.#segFds.delete(first);
      this.#segFds.set(first, fd);
      return fd;
    }
    fd = openSync(join(this.dir, 'segments', segmentName(first)), 'r');
    this.#segFds.set(first, fd);
    return fd;
  }

  /** Keep at most 16 segments open (least recently used closed), once no read is in flight. */
  #trimSegFds(): void {
    if (this.#inflight > 0) return;
    while (this.#segFds.size > 16) {
      const oldest = this.#segFds.entries().next().value;
      if (!oldest) break;
      this.#segFds.delete(oldest[0]);
      try {
        closeSync(oldest[1]);
      } catch {
        // already closed
      }
    }
  }

  /** The bytes of line `index` (without its newline), by one positioned read. */
  lineAt(index: number): Uint8Array {
    this.#live();
    return this.#lineAt(index);
  }

  /** Where line `index` is: its segment and the bytes [off, end) it takes, newline included. */
  #span(index: number): { first: number; off: number; end: number } {
    if (!(Number.isSafeInteger(index) && index >= 0 && index < this.#offCount))
      throw new ContinuityError(
        'NOT_FOUND',
        `no indexed line ${index} (${this.#offCount} indexed)`,
      );
    const { seg, next } = this.#segmentOf(index);
    const off = this.#offset(index);
    const end = index + 1 < this.#offCount && index + 1 < next ? this.#offset(index + 1) : seg.end;
    if (!(end > off)) throw corrupt(`${OFFSETS}: line ${index} has no bytes`);
    return { first: seg.first, off, end };
  }

  /** The line without its newline, after checking that the index located it exactly. */
  #checkLine(index: number, buf: Uint8Array): Uint8Array {
    this.#o.onLineRead?.(index);
    if (buf[buf.length - 1] !== 0x0a)
      throw corrupt(`${OFFSETS}: line ${index} does not end where the index says`);
    return buf.subarray(0, buf.length - 1);
  }

  #lineAt(index: number): Uint8Array {
    const { first, off, end } = this.#span(index);
    const buf = new Uint8Array(end - off);
    readFull(this.#segFd(first), buf, off, segmentName(first));
    this.#trimSegFds();
    return this.#checkLine(index, buf);
  }

  /**
   * The bytes of these lines (without their newlines), in the order given, read all at once:
   * the offsets pages they need, then the lines, each batch issued together through the
   * thread pool (a cold page cache serves them in parallel), lines close to each other in
   * one read. Each line is checked as {@link lineAt} checks it.
   */
  async linesAt(indexes: readonly number[]): Promise<Uint8Array[]> {
    this.#live();
    const n = this.#offCount;
    for (const i of indexes) {
      if (!(Number.isSafeInteger(i) && i >= 0 && i < n))
        throw new ContinuityError('NOT_FOUND', `no indexed line ${i} (${n} indexed)`);
    }
    const out = new Array<Uint8Array>(indexes.length);
    const pace = new Pace(this.#o.readsTogether === true);
    this.#inflight++;
    try {
      // one at a time while the OS page cache serves them
      let k = 0;
      for (; k < indexes.length && pace.sync; k++) {
        const index = indexes[k]!;
        if (!pace.timing) {
          out[k] = this.#lineAt(index);
          continue;
        }
        const t0 = clockMs();
        const { first, off, end } = this.#span(index);
        const t1 = clockMs();
        const fd = this.#segFd(first);
        const buf = new Uint8Array(end - off);
        const t2 = clockMs();
        readFull(fd, buf, off, segmentName(first));
        pace.took(t1 - t0 + (clockMs() - t2));
        out[k] = this.#checkLine(index, buf);
      }
      if (k < indexes.length) await this.#linesTogether(indexes.slice(k), out, k);
      return out;
    } finally {
      this.#inflight--;
      this.#trimSegFds();
    }
  }

  /** The rest of {@link linesAt} once reads come from the disk: issued together. */
  async #linesTogether(indexes: readonly number[], out: Uint8Array[], at: number): Promise<void> {
    const n = this.#offCount;
    const positions: number[] = [];
    for (const i of indexes) {
      positions.push(8 * i);
      if (i + 1 < n) positions.push(8 * (i + 1));
    }
    await this.#offFile!.loadAll(this.#offFile!.missing(positions));
    // neighbours (in one segment, close together) share one read
    const spans = indexes.map((index, k) => ({ k, index, ...this.#span(index) }));
    spans.sort((a, b) => a.first - b.first || a.off - b.off);
    const reads: { first: number; off: number; end: number; of: typeof spans }[] = [];
    for (const sp of spans) {
      const last = reads[reads.length - 1];
      if (
        last &&
        last.first === sp.first &&
        sp.off >= last.off &&
        sp.off - last.end <= COALESCE_GAP &&
        Math.max(last.end, sp.end) - last.off <= COALESCE_MAX
      ) {
        last.end = Math.max(last.end, sp.end);
        last.of.push(sp);
      } else reads.push({ first: sp.first, off: sp.off, end: sp.end, of: [sp] });
    }
    const bufs = await settled(
      reads.map(async (rd) => {
        const buf = new Uint8Array(rd.end - rd.off);
        await readFullAsync(this.#segFd(rd.first), buf, rd.off, segmentName(rd.first));
        return buf;
      }),
    );
    const got = new Array<Uint8Array>(indexes.length);
    reads.forEach((rd, r) => {
      for (const sp of rd.of) got[sp.k] = bufs[r]!.subarray(sp.off - rd.off, sp.end - rd.off);
    });
    indexes.forEach((index, k) => (out[at + k] = this.#checkLine(index, got[k]!)));
  }

  /** Read record `index` with one positioned read (a scan for lines not flushed yet). */
  async readRecordAt(index: number): Promise<LogRecord> {
    this.#live();
    if (index >= this.#offCount && index < this.#size && Number.isSafeInteger(index))
      return readRecordFrom(this.dir, index);
    return parseRecord(this.#lineAt(index), index);
  }

  #fenceAt(j: number): number {
    if (j < this.#timesCount) return this.#timesFile!.read(8 * j, 8).readDoubleLE(0);
    const t = this.#timesPending[j - this.#timesCount];
    if (t === undefined) throw corrupt(`${TIMES}: no entry ${j}`);
    return t;
  }

  /**
   * The first indexed record with received_at ≥ `ms` (or `readableSize` if none): a binary
   * search of times.bin, then of at most 16 lines, then a check of the lines on both sides.
   */
  firstIndexAtOrAfter(
    ms: number,
    receivedAt: (index: number) => number = (i) =>
      Date.parse(parseRecord(this.lineAt(i), i).received_at),
  ): number {
    this.#live();
    const n = this.#offCount;
    if (n === 0) return 0;
    let a = 0;
    let b = Math.ceil(n / FENCE);
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (this.#fenceAt(mid) < ms) a = mid + 1;
      else b = mid;
    }
    let lo = a === 0 ? 0 : (a - 1) * FENCE + 1;
    let hi = a === 0 ? 0 : Math.min(a * FENCE, n);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (receivedAt(mid) < ms) lo = mid + 1;
      else hi = mid;
    }
    if ((lo === 0 || receivedAt(lo - 1) < ms) && (lo === n || receivedAt(lo) >= ms)) return lo;
    // times.bin disagrees with the log: search the lines themselves
    lo = 0;
    hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (receivedAt(mid) < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function crcOfFile(fd: number, length: number): number {
  let crc = 0;
  const buf = Buffer.allocUnsafe(Math.min(SCAN_BLOCK, Math.max(1, length)));
  for (let pos = 0; pos < length;) {
    const n = Math.min(buf.length, length - pos);
    const view = buf.subarray(0, n);
    readFull(fd, view, pos, 'index');
    crc = crc32(view, crc);
    pos += n;
  }
  return crc;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await openAsync(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
