/**
 * The Merkle node store: every complete perfect subtree hash of the log's RFC 9162 tree, kept
 * beside the log in `<logdir>/tree/` so that inclusion and consistency proofs for any tree
 * size ≤ n take O(log n) small positioned reads, never O(n) work.
 *
 * Layout: one append-only file per level, `level-00.bin`, `level-01.bin`, …, 32 bytes per
 * hash. Level 0 holds the leaf hashes; level k entry i is the hash of the perfect subtree over
 * leaves [i·2^k, (i+1)·2^k), so level k holds ⌊n / 2^k⌋ entries and entry i sits at byte
 * offset 32·i. `head.json` records the leaf count that is durable (every level file was
 * fdatasynced up to it before the file was replaced) and the root at that count.
 *
 * The store is a cache of the log: it is not synced per append, because it can always be
 * rebuilt from the segments. `indexedSize()` reports only the durable count, so the log's
 * recovery replays the rest. On open every level file is cut to the length the durable count
 * implies; a level file that is shorter than that (truncated by hand, lost blocks) lowers the
 * durable count to what all levels still hold, and the log replays from there.
 *
 * Memory: the hashes not yet written out (at most `bufferHashes` per level) and the "frontier"
 * (the last, still unpaired entry of each level: one hash per set bit of n). Neither grows
 * with n beyond O(log n).
 */
import {
  closeSync,
  constants,
  fdatasync as fdatasyncCb,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  read as readCb,
  readSync,
  renameSync,
  writeSync,
  close as closeCb,
} from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  assertBytes,
  equalBytes,
  fromBase64,
  getProvider,
  toBase64,
  type CryptoProvider,
} from '@tibet/core';
import { ContinuityError } from './errors.js';
import { DirLock } from './lock.js';
import type { IndexedRecord, LogObserver } from './log-index.js';
import { writeDurable } from './log.js';
import { emptyRoot, nodeHash } from './merkle.js';

const fdatasync = promisify(fdatasyncCb);
const closeFd = promisify(closeCb);
const readAt = promisify(readCb);

const HASH = 32;
/** Tree sizes stay below 2^53 (safe integers), so there are at most 53 levels. */
const MAX_LEVELS = 53;
export const TREE_DIR = 'tree';
export const TREE_HEAD = 'head.json';
const HEAD_FORMAT = 'tibet-tree/1';

export function levelFileName(level: number): string {
  return `level-${String(level).padStart(2, '0')}.bin`;
}

export interface TreeStoreOptions {
  /**
   * Open without the lock and without repairing anything: for readers beside a running
   * writer (e.g. exporting a proof). Sees only what `head.json` declares durable.
   */
  readOnly?: boolean;
  provider?: CryptoProvider;
  /** Hashes kept in memory per level before they are written out (not synced); default 4,096. */
  bufferHashes?: number;
  /** Test and metrics hook: called once for every hash read from a level file. */
  onRead?: (level: number, index: number) => void;
}

interface Head {
  format: typeof HEAD_FORMAT;
  size: number;
  root: string;
}

/** A perfect subtree: level k, position i (leaves [i·2^k, (i+1)·2^k)). */
type Node = readonly [level: number, index: number];
/** A range of leaves [start, end) whose MTH appears in a proof. */
type Range = readonly [start: number, end: number];

/** Largest power of two strictly below n (n ≥ 2); the split point k of RFC 9162 §2.1.1. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The perfect subtrees that make up [start, end), largest (leftmost) first. Every range an
 * RFC 9162 proof names starts at a multiple of a power of two at least as large as the range,
 * so each part is an aligned, stored subtree.
 */
export function rangeNodes(start: number, end: number): Node[] {
  const out: Node[] = [];
  let pos = start;
  let m = end - start;
  while (m > 0) {
    let p = 1;
    let level = 0;
    while (p * 2 <= m) {
      p *= 2;
      level++;
    }
    out.push([level, pos / p]);
    pos += p;
    m -= p;
  }
  return out;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]) as the leaf ranges of its elements, in proof order. */
export function inclusionRanges(index: number, size: number): Range[] {
  const out: Range[] = [];
  let a = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      out.push([a + k, a + n]); // PATH(m, D[0:k]) : MTH(D[k:n])
      n = k;
    } else {
      out.push([a, a + k]); // PATH(m - k, D[k:n]) : MTH(D[0:k])
      a += k;
      m -= k;
      n -= k;
    }
  }
  return out.reverse();
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as leaf ranges, in proof order. */
export function consistencyRanges(oldSize: number, newSize: number): Range[] {
  const out: Range[] = [];
  if (oldSize === 0 || oldSize === newSize) return out;
  let a = 0;
  let m = oldSize;
  let n = newSize;
  let b = true;
  for (;;) {
    if (m === n) {
      if (!b) out.push([a, a + n]); // SUBPROOF(m, D[m], false) = {MTH(D[m])}
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      out.push([a + k, a + n]); // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
      n = k;
    } else {
      out.push([a, a + k]); // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
      a += k;
      m -= k;
      n -= k;
      b = false;
    }
  }
  return out.reverse();
}

function corrupt(msg: string, cause?: unknown): ContinuityError {
  return new ContinuityError('STATE_CORRUPT', `tree store: ${msg}`, cause ? { cause } : undefined);
}

function writeAllSync(fd: number, data: Uint8Array, position: number): void {
  let off = 0;
  while (off < data.length) {
    const n = writeSync(fd, data, off, data.length - off, position + off);
    if (n <= 0) throw new Error('short write');
    off += n;
  }
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeDurableSync(path: string, text: string, dir: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
  try {
    writeAllSync(fd, new TextEncoder().encode(text), 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDirSync(dir);
}

function parseHead(text: string): Head | undefined {
  try {
    const v = JSON.parse(text) as Partial<Head>;
    if (
      v.format !== HEAD_FORMAT ||
      typeof v.size !== 'number' ||
      !Number.isSafeInteger(v.size) ||
      v.size < 0 ||
      typeof v.root !== 'string' ||
      fromBase64(v.root, 'root').length !== HASH
    )
      return undefined;
    return { format: HEAD_FORMAT, size: v.size, root: v.root };
  } catch {
    return undefined;
  }
}

function headText(size: number, root: Uint8Array): string {
  const h: Head = { format: HEAD_FORMAT, size, root: toBase64(root) };
  return JSON.stringify(h) + '\n';
}

export class TreeStore implements LogObserver {
  readonly dir: string;
  readonly readOnly: boolean;
  readonly provider: CryptoProvider;
  readonly #lock: DirLock | undefined;
  readonly #bufMax: number;
  readonly #onRead: ((level: number, index: number) => void) | undefined;
  /** Open file descriptor per level (created lazily when a level first gets an entry). */
  readonly #fds: (number | undefined)[] = [];
  /** Entries of each level that are in its file (written, not necessarily synced). */
  readonly #written: number[] = [];
  /** Entries of each level: ⌊n / 2^k⌋. */
  readonly #counts: number[] = [];
  /** Entries not yet written out, per level: `#bufLen[k]` hashes from index `#written[k]`. */
  readonly #buf: (Uint8Array | undefined)[] = [];
  readonly #bufLen: number[] = [];
  /** The last entry of each level with an odd count (the left child waiting for its pair). */
  readonly #frontier: (Uint8Array | undefined)[] = [];
  /** Levels written since the last sync. */
  readonly #dirty = new Set<number>();
  #n = 0;
  #synced = 0;
  #newFiles = false;
  #epoch = 0;
  #error: ContinuityError | undefined;
  #closed = false;
  #flushChain: Promise<void> = Promise.resolve();

  private constructor(dir: string, o: TreeStoreOptions, lock: DirLock | undefined) {
    this.dir = dir;
    this.readOnly = o.readOnly ?? false;
    this.provider = o.provider ?? getProvider();
    this.#lock = lock;
    this.#onRead = o.onRead;
    const b = o.bufferHashes ?? 4096;
    if (!Number.isSafeInteger(b) || b < 1) throw new RangeError('"bufferHashes" must be ≥ 1');
    this.#bufMax = b;
  }

  /** Open (creating if needed) the node store of a log folder: `<logDir>/tree`. */
  static openForLog(logDir: string, o: TreeStoreOptions = {}): Promise<TreeStore> {
    return TreeStore.open(join(logDir, TREE_DIR), o);
  }

  /**
   * Open (creating if needed) a node store folder. A writable store takes the folder's lock,
   * cuts every level file to what `head.json` declares durable and is consistent across
   * levels, and loads the frontier (O(log n) reads).
   */
  static async open(dir: string, o: TreeStoreOptions = {}): Promise<TreeStore> {
    const readOnly = o.readOnly ?? false;
    if (!readOnly) await mkdir(dir, { recursive: true });
    const lock = readOnly ? undefined : await DirLock.acquire(dir, 'tree-store');
    const t = new TreeStore(dir, o, lock);
    try {
      await t.#load();
    } catch (e) {
      t.#closeFdsSync();
      await lock?.release();
      throw e;
    }
    return t;
  }

  async #load(): Promise<void> {
    let head: Head | undefined;
    try {
      head = parseHead(await readFile(join(this.dir, TREE_HEAD), 'utf8'));
    } catch {
      head = undefined; // none yet, or unreadable: rebuild from the log
    }
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    // open every level file present (and any the head needs)
    const want = head?.size ?? 0;
    const lengths: number[] = [];
    for (let k = 0; k < MAX_LEVELS; k++) {
      const name = levelFileName(k);
      const present = names.includes(name);
      if (!present && 2 ** k > want) continue;
      if (!present) {
        lengths[k] = 0;
        continue;
      }
      const fd = openSync(
        join(this.dir, name),
        this.readOnly ? constants.O_RDONLY : constants.O_RDWR,
      );
      this.#fds[k] = fd;
      lengths[k] = Math.floor(fstatSync(fd).size / HASH);
    }
    // the durable count every level can back: level k must hold ⌊n / 2^k⌋ entries
    let n = want;
    for (let k = 0; k < MAX_LEVELS && 2 ** k <= n; k++) {
      const len = lengths[k] ?? 0;
      if (Math.floor(n / 2 ** k) > len) n = (len + 1) * 2 ** k - 1;
    }
    this.#setCounts(n);
    for (let k = 0; k < MAX_LEVELS; k++) this.#written[k] = this.#counts[k]!;
    this.#loadFrontier();
    if (head && n === head.size && !equalBytes(this.#frontierRoot(), fromBase64(head.root))) {
      // the files do not hold the tree the head describes: start over (the log replays it)
      if (this.readOnly) throw corrupt(`${this.dir} does not match its head.json`);
      n = 0;
      this.#setCounts(0);
      for (let k = 0; k < MAX_LEVELS; k++) this.#written[k] = 0;
      this.#frontier.length = 0;
    }
    this.#n = n;
    this.#synced = n;
    if (this.readOnly) return;
    // make the head match before cutting the files, so a crash in between stays consistent
    if (!head || head.size !== n) {
      await writeDurable(join(this.dir, TREE_HEAD), headText(n, this.#frontierRoot()), this.dir);
    }
    for (let k = 0; k < MAX_LEVELS; k++) {
      const fd = this.#fds[k];
      if (fd === undefined) continue;
      if (fstatSync(fd).size !== this.#counts[k]! * HASH) {
        ftruncateSync(fd, this.#counts[k]! * HASH);
        this.#dirty.add(k);
      }
    }
  }

  #setCounts(n: number): void {
    for (let k = 0; k < MAX_LEVELS; k++) this.#counts[k] = Math.floor(n / 2 ** k);
  }

  #loadFrontier(): void {
    this.#frontier.length = 0;
    for (let k = 0; k < MAX_LEVELS; k++) {
      const c = this.#counts[k]!;
      if (c % 2 === 1) this.#frontier[k] = this.#getSync(k, c - 1);
    }
  }

  /** MTH of the whole tree from the frontier (no reads). */
  #frontierRoot(): Uint8Array {
    let h: Uint8Array | undefined;
    for (let k = 0; k < MAX_LEVELS; k++) {
      const f = this.#frontier[k];
      if (f) h = h ? nodeHash(f, h, this.provider) : f;
    }
    return h ?? emptyRoot(this.provider);
  }

  /** Leaves held (durable or not); proofs can be made for any size up to this. */
  get size(): number {
    return this.#n;
  }

  /** Leaves durably in the files (what recovery may skip). */
  indexedSize(): number {
    return this.#synced;
  }

  #usable(): void {
    if (this.#closed) throw new ContinuityError('LOG_CLOSED', `tree store ${this.dir} is closed`);
    if (this.#error) throw this.#error;
  }

  #fail(e: unknown): void {
    this.#error ??= ContinuityError.is(e)
      ? e
      : new ContinuityError('WRITE_FAILED', `tree store ${this.dir}: ${(e as Error).message}`, {
          cause: e,
        });
  }

  #failed(e: unknown): ContinuityError {
    this.#fail(e);
    return this.#error!;
  }

  /**
   * LogObserver: take durable records in order. Never throws (the writer calls it after its
   * own sync): a failure leaves the store unusable until it is reopened, and `flush()` and
   * every query report it. Records already held are checked against the stored leaf; a
   * different leaf (the log was replaced or cut) rewinds the store to that index.
   */
  add(records: readonly IndexedRecord[]): void {
    if (this.readOnly) throw new TypeError('tree store is read-only');
    if (this.#error || this.#closed) {
      this.#fail(corrupt('records added after close or failure'));
      return;
    }
    try {
      for (const r of records) {
        if (r.index < this.#n) {
          if (equalBytes(this.#getSync(0, r.index), r.leafHash)) continue;
          this.#rewind(r.index);
        } else if (r.index > this.#n) {
          throw corrupt(`record ${r.index} arrived but the store holds ${this.#n} leaves`);
        }
        this.#push(r.leafHash);
      }
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Append leaf hashes directly (without a log): index n, n+1, …. */
  appendLeafHashes(hashes: readonly Uint8Array[]): void {
    if (this.readOnly) throw new TypeError('tree store is read-only');
    this.#usable();
    for (const h of hashes) assertBytes(h, 'leaf hash', HASH);
    try {
      for (const h of hashes) this.#push(h);
    } catch (e) {
      throw this.#failed(e);
    }
  }

  #push(leaf: Uint8Array): void {
    if (this.#n >= Number.MAX_SAFE_INTEGER) throw new RangeError('tree size limit reached');
    let h = leaf;
    let k = 0;
    for (;;) {
      this.#appendAt(k, h);
      if (this.#counts[k]! % 2 === 1) {
        this.#frontier[k] = h.slice();
        break;
      }
      const left = this.#frontier[k]!;
      this.#frontier[k] = undefined;
      h = nodeHash(left, h, this.provider);
      k++;
    }
    this.#n++;
  }

  #appendAt(k: number, h: Uint8Array): void {
    const len = this.#bufLen[k] ?? 0;
    let buf = this.#buf[k];
    if (!buf || buf.length < (len + 1) * HASH) {
      const grown = new Uint8Array(Math.min(this.#bufMax, Math.max(16, len * 2)) * HASH);
      if (buf) grown.set(buf.subarray(0, len * HASH));
      this.#buf[k] = buf = grown;
    }
    buf.set(h, len * HASH);
    this.#bufLen[k] = len + 1;
    this.#counts[k] = this.#counts[k]! + 1;
    if (len + 1 >= this.#bufMax) this.#spill(k);
  }

  #fd(k: number): number {
    let fd = this.#fds[k];
    if (fd === undefined) {
      fd = openSync(join(this.dir, levelFileName(k)), constants.O_RDWR | constants.O_CREAT, 0o644);
      this.#fds[k] = fd;
      this.#newFiles = true;
    }
    return fd;
  }

  /** Write a level's buffered entries to its file (page cache; synced by `flush`). */
  #spill(k: number): void {
    const len = this.#bufLen[k] ?? 0;
    if (!len) return;
    writeAllSync(this.#fd(k), this.#buf[k]!.subarray(0, len * HASH), this.#written[k]! * HASH);
    this.#written[k] = this.#written[k]! + len;
    this.#bufLen[k] = 0;
    if (len * 4 < this.#bufMax) this.#buf[k] = undefined; // let small levels shrink
    this.#dirty.add(k);
  }

  /** Cut the store back to m leaves (a record disagreed with what it held). */
  #rewind(m: number): void {
    this.#epoch++;
    const written = this.#written.slice();
    this.#setCounts(m);
    // the new frontier, read while the files and buffers still hold the longer tree
    const frontier: (Uint8Array | undefined)[] = [];
    for (let k = 0; k < MAX_LEVELS; k++) {
      const c = this.#counts[k]!;
      if (c % 2 === 1)
        frontier[k] =
          c - 1 < written[k]! ? this.#readSync(k, c - 1) : this.#fromBuf(k, c - 1, written[k]!);
    }
    this.#frontier.length = 0;
    frontier.forEach((f, k) => (this.#frontier[k] = f));
    if (m < this.#synced) {
      // declare the shorter tree durable before cutting: a crash in between stays consistent
      writeDurableSync(join(this.dir, TREE_HEAD), headText(m, this.#frontierRoot()), this.dir);
      this.#synced = m;
    }
    for (let k = 0; k < MAX_LEVELS; k++) {
      const c = this.#counts[k]!;
      const w = written[k]!;
      if (c < w) {
        ftruncateSync(this.#fds[k]!, c * HASH);
        this.#written[k] = c;
        this.#bufLen[k] = 0;
        this.#dirty.add(k);
      } else {
        this.#bufLen[k] = c - w;
      }
    }
    this.#n = m;
  }

  #fromBuf(k: number, i: number, written: number): Uint8Array {
    const j = i - written;
    if (j < 0 || j >= (this.#bufLen[k] ?? 0)) throw corrupt(`level ${k} entry ${i} is not held`);
    return this.#buf[k]!.slice(j * HASH, (j + 1) * HASH);
  }

  #readSync(k: number, i: number): Uint8Array {
    const fd = this.#fds[k];
    if (fd === undefined) throw corrupt(`level ${k} has no file`);
    const out = new Uint8Array(HASH);
    const got = readSync(fd, out, 0, HASH, i * HASH);
    if (got !== HASH) throw corrupt(`${levelFileName(k)} is shorter than expected`);
    this.#onRead?.(k, i);
    return out;
  }

  #getSync(k: number, i: number): Uint8Array {
    const c = this.#counts[k]!;
    if (i === c - 1 && this.#frontier[k]) return this.#frontier[k].slice();
    if (i >= this.#written[k]!) return this.#fromBuf(k, i, this.#written[k]!);
    return this.#readSync(k, i);
  }

  async #get(k: number, i: number): Promise<Uint8Array> {
    if (i < 0 || i >= this.#counts[k]!) throw corrupt(`level ${k} entry ${i} is not held`);
    if (i === this.#counts[k]! - 1 && this.#frontier[k]) return this.#frontier[k].slice();
    if (i >= this.#written[k]!) return this.#fromBuf(k, i, this.#written[k]!);
    const fd = this.#fds[k];
    if (fd === undefined) throw corrupt(`level ${k} has no file`);
    const out = new Uint8Array(HASH);
    const { bytesRead } = await readAt(fd, out, 0, HASH, i * HASH);
    if (bytesRead !== HASH) throw corrupt(`${levelFileName(k)} is shorter than expected`);
    this.#onRead?.(k, i);
    return out;
  }

  /** MTHs of the given leaf ranges: fetches each distinct stored subtree once, in parallel. */
  async #rangeHashes(ranges: readonly Range[]): Promise<Uint8Array[]> {
    const parts = ranges.map(([a, b]) => rangeNodes(a, b));
    const keys = new Map<string, Node>();
    for (const ps of parts) for (const p of ps) keys.set(`${p[0]}:${p[1]}`, p);
    const entries = [...keys];
    const hashes = await Promise.all(entries.map(([, [k, i]]) => this.#get(k, i)));
    const got = new Map<string, Uint8Array>();
    entries.forEach(([key], j) => got.set(key, hashes[j]!));
    return parts.map((ps) => {
      // MTH of [a, b): fold the perfect parts from the right (RFC 9162 §2.1.1 split)
      let h = got.get(`${ps[ps.length - 1]![0]}:${ps[ps.length - 1]![1]}`)!;
      for (let j = ps.length - 2; j >= 0; j--)
        h = nodeHash(got.get(`${ps[j]![0]}:${ps[j]![1]}`)!, h, this.provider);
      return h;
    });
  }

  #checkSize(size: number, label: string): void {
    if (!Number.isSafeInteger(size) || size < 0)
      throw new RangeError(`"${label}" must be a non-negative integer`);
    if (size > this.#n)
      throw new ContinuityError(
        'NOT_FOUND',
        `tree store holds ${this.#n} leaves; ${label} ${size} is beyond it`,
      );
  }

  /** MTH of the first `size` leaves: at most popcount(size) reads. */
  async root(size: number = this.#n): Promise<Uint8Array> {
    this.#usable();
    this.#checkSize(size, 'size');
    if (size === 0) return emptyRoot(this.provider);
    const [h] = await this.#rangeHashes([[0, size]]);
    return h!;
  }

  /** Leaf hash at `index`. */
  async leafHash(index: number): Promise<Uint8Array> {
    this.#usable();
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#n)
      throw new ContinuityError('NOT_FOUND', `tree store has no leaf ${index} (size ${this.#n})`);
    return this.#get(0, index);
  }

  /** RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size` leaves. */
  async inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    this.#usable();
    this.#checkSize(size, 'size');
    if (!Number.isSafeInteger(index) || index < 0 || index >= size)
      throw new RangeError(`"index" must be in [0, ${size})`);
    return this.#rangeHashes(inclusionRanges(index, size));
  }

  /**
   * RFC 9162 §2.1.4.1 consistency proof from `oldSize` to `newSize` leaves. Empty when
   * oldSize is 0 or equals newSize.
   */
  async consistencyProof(oldSize: number, newSize: number): Promise<Uint8Array[]> {
    this.#usable();
    this.#checkSize(newSize, 'newSize');
    if (!Number.isSafeInteger(oldSize) || oldSize < 0 || oldSize > newSize)
      throw new RangeError(`"oldSize" must be in [0, ${newSize}]`);
    return this.#rangeHashes(consistencyRanges(oldSize, newSize));
  }

  /**
   * Write out everything buffered, fdatasync the level files, then durably replace
   * `head.json`. Afterwards `indexedSize()` is the count at the start of the call.
   */
  flush(): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    const run = this.#flushChain.then(() => this.#flushNow());
    this.#flushChain = run.catch(() => undefined);
    return run;
  }

  async #flushNow(): Promise<void> {
    this.#usable();
    const n = this.#n;
    if (n === this.#synced && this.#dirty.size === 0) return;
    const epoch = this.#epoch;
    try {
      const root = this.#frontierRoot();
      for (let k = 0; k < MAX_LEVELS; k++) this.#spill(k);
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      await Promise.all(dirty.map((k) => fdatasync(this.#fds[k]!)));
      if (this.#newFiles) {
        this.#newFiles = false;
        fsyncDirSync(this.dir);
      }
      if (epoch !== this.#epoch) return; // rewound meanwhile: the rewind wrote the head
      await writeDurable(join(this.dir, TREE_HEAD), headText(n, root), this.dir);
      if (epoch === this.#epoch) this.#synced = n;
    } catch (e) {
      throw this.#failed(e);
    }
  }

  #closeFdsSync(): void {
    for (const fd of this.#fds.splice(0)) if (fd !== undefined) closeSync(fd);
  }

  /** Flush (unless the store failed) and release the files and the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (!this.readOnly && !this.#error) await this.flush();
      else await this.#flushChain;
    } finally {
      this.#closed = true;
      const fds = this.#fds.splice(0).filter((fd): fd is number => fd !== undefined);
      await Promise.all(fds.map((fd) => closeFd(fd)));
      await this.#lock?.release();
    }
  }
}
