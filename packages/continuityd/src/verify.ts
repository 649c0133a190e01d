/**
 * Whole-log verification: everything a second party can check about a log folder with the
 * actors' public keys and the log's public key, reading the files only (no writer, no lock).
 *
 * Never throws for a bad log: every finding becomes a problem with a code and a location
 * (line position, segment file and line number, checkpoint file). Memory does not grow with
 * the number of lines except for one fixed-size entry per action id (16 bytes in an open
 * addressing table, needed for duplicate detection and parents' generations) and one entry
 * per continuity line. Signature checks — the cost — run in batches on worker threads.
 * See docs/continuityd.md.
 */
import { open, readFile, readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  equalBytes,
  fromBase64,
  getProvider,
  toBase64,
  toHex,
  type BackendName,
  type CryptoProvider,
  type KeyResolver,
} from '@tibet/core';
import { parseCheckpoint, verifyCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { MerkleFrontier } from './merkle.js';
import {
  F_PARENT,
  F_PARSED,
  F_PREV_OK,
  F_TPREV,
  SIG_BAD,
  SIG_NO_KEY,
  finishBatch,
  keyCache,
  parseBatch,
  type BatchResult,
  type LineBatch,
} from './verify-worker.js';
import { BatchRing, WorkerPool, workerScript } from './worker-pool.js';

export type VerifyProblemCode =
  | 'META_INVALID'
  | 'IO_ERROR'
  | 'SEGMENT_MISSING'
  | 'SEGMENT_MALFORMED'
  | 'TORN_TAIL'
  | 'RECORD_MALFORMED'
  | 'INDEX_MISMATCH'
  | 'CHAIN_BROKEN'
  | 'RECEIVED_AT_DECREASING'
  | 'ACTOR_UNKNOWN'
  | 'TOKEN_SIGNATURE_INVALID'
  | 'DUPLICATE_ACTION'
  | 'CAUSAL_PARENT_UNKNOWN'
  | 'CAUSAL_PREV_MISMATCH'
  | 'CAUSAL_GENERATION_INVALID'
  | 'ROOT_MISMATCH'
  | 'CHECKPOINT_MALFORMED'
  | 'CHECKPOINT_SIGNATURE_INVALID'
  | 'CHECKPOINT_INCONSISTENT'
  | 'CHECKPOINT_MISSING'
  | 'LOG_TRUNCATED'
  | 'STATE_CORRUPT';

export interface VerifyProblem {
  code: VerifyProblemCode;
  /** `error` fails the verification; `warning` is reported and does not. */
  severity: 'error' | 'warning';
  /** Position of the line in the log (0-based; equals the record index in a sound log). */
  index?: number;
  /** Segment file name. */
  segment?: string;
  /** 1-based line number inside `segment`. */
  line?: number;
  /** Checkpoint file name, or `trusted` for the checkpoint passed by the caller. */
  checkpoint?: string;
  message: string;
}

export type VerifyCheckName =
  | 'meta'
  | 'segments'
  | 'records'
  | 'hash-chain'
  | 'received-at'
  | 'signatures'
  | 'causal'
  | 'merkle'
  | 'checkpoints'
  | 'trusted-checkpoint'
  | 'state';

export interface VerifyCheck {
  name: VerifyCheckName;
  /** No error-severity problem belongs to this check. */
  ok: boolean;
  detail: string;
}

export interface VerifyProgress {
  lines: number;
  bytes: number;
  totalBytes: number;
  segment: string;
}

export interface VerifyStats {
  lines: number;
  bytes: number;
  segments: number;
  checkpoints: number;
  actions: number;
  continuityLines: number;
  signaturesVerified: number;
  externalParents: number;
  /** Worker threads used (0 = on the calling thread). */
  workers: number;
  elapsedMs: number;
  linesPerSecond: number;
  /** Bytes held by the per-action table (grows with the number of actions). */
  actionTableBytes: number;
}

export interface VerifyReport {
  /** No error-severity problem. */
  ok: boolean;
  /** Complete lines read (the Merkle tree size). */
  size: number;
  /** Hex RFC 9162 root over those lines. */
  root: string;
  checks: VerifyCheck[];
  problems: VerifyProblem[];
  /** Problems found per code, including any not listed because of `maxProblems`. */
  problemCounts: Partial<Record<VerifyProblemCode, number>>;
  /** True when more problems were found than `maxProblems`. */
  truncated: boolean;
  stats: VerifyStats;
}

export interface VerifyLogOptions {
  /** Actors' signing keys. */
  registry: KeyResolver;
  /** The log's Ed25519 public key (signs checkpoints). */
  logPublicKey: Uint8Array;
  /** The note key name (default: `key_name` from log.json). */
  logKeyName?: string;
  /** An older signed checkpoint note kept by the verifier. */
  trustedCheckpoint?: string;
  onProgress?: (p: VerifyProgress) => void;
  /** Worker threads for parsing and signatures (default: available cores, at most 8; 0 = inline). */
  workers?: number;
  /** Accept parents that are not in the log (a log written with `allowExternalParents`). */
  allowExternalParents?: boolean;
  /** Most problems listed (default 1,000); all are counted in `problemCounts`. */
  maxProblems?: number;
  /** Lines per batch handed to a worker (default 256). */
  batchLines?: number;
  /** Longest line accepted (default 64 MiB). */
  maxLineBytes?: number;
  provider?: CryptoProvider;
}

const SEGMENT_RE = /^(\d{16})\.jsonl$/;
const CHECKPOINT_RE = /^(\d{16})\.note$/;
const CHUNK = 1 << 20;

const CHECK_OF: Record<VerifyProblemCode, VerifyCheckName> = {
  META_INVALID: 'meta',
  IO_ERROR: 'segments',
  SEGMENT_MISSING: 'segments',
  SEGMENT_MALFORMED: 'segments',
  TORN_TAIL: 'segments',
  RECORD_MALFORMED: 'records',
  INDEX_MISMATCH: 'records',
  CHAIN_BROKEN: 'hash-chain',
  RECEIVED_AT_DECREASING: 'received-at',
  ACTOR_UNKNOWN: 'signatures',
  TOKEN_SIGNATURE_INVALID: 'signatures',
  DUPLICATE_ACTION: 'causal',
  CAUSAL_PARENT_UNKNOWN: 'causal',
  CAUSAL_PREV_MISMATCH: 'causal',
  CAUSAL_GENERATION_INVALID: 'causal',
  ROOT_MISMATCH: 'checkpoints',
  CHECKPOINT_MALFORMED: 'checkpoints',
  CHECKPOINT_SIGNATURE_INVALID: 'checkpoints',
  CHECKPOINT_MISSING: 'checkpoints',
  LOG_TRUNCATED: 'checkpoints',
  CHECKPOINT_INCONSISTENT: 'trusted-checkpoint',
  STATE_CORRUPT: 'state',
};

// ---------------------------------------------------------------------------------------
// per-action table: action id (64 bits) → generation, open addressing, 16 bytes a slot
// ---------------------------------------------------------------------------------------

/**
 * Action ids are `act_` + 16 hex: 64 bits, kept as two u32 words. Generation 0 = empty. A slot
 * is 16 bytes in one buffer — the two words, then the generation as a float64 — so that a
 * probe touches one cache line (the table is random access and, at 10^6 actions, 32 MiB).
 */
export class ActionTable {
  /** Slot i: words 4i (hi), 4i + 1 (lo). */
  #w: Uint32Array;
  /** Slot i: element 2i + 1 (the same buffer as #w). */
  #gen: Float64Array;
  #mask: number;
  #size = 0;
  readonly #seed: number;

  constructor(capacity = 1 << 14, seed = (Math.random() * 0x100000000) >>> 0) {
    let c = 16;
    while (c < capacity) c *= 2;
    const buf = new ArrayBuffer(16 * c);
    this.#w = new Uint32Array(buf);
    this.#gen = new Float64Array(buf);
    this.#mask = c - 1;
    this.#seed = seed;
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): number {
    return this.#gen.byteLength;
  }

  #slot(hi: number, lo: number): number {
    // murmur3 fmix32 over both words, seeded per run (a crafted log cannot force collisions)
    let h = (Math.imul(hi ^ this.#seed, 0x85ebca6b) ^ lo) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    let i = h & this.#mask;
    while (this.#gen[2 * i + 1] !== 0 && !(this.#w[4 * i] === hi && this.#w[4 * i + 1] === lo))
      i = (i + 1) & this.#mask;
    return i;
  }

  /** The generation recorded for the action id (hi, lo words), or undefined. */
  get(hi: number, lo: number): number | undefined {
    const g = this.#gen[2 * this.#slot(hi, lo) + 1]!;
    return g === 0 ? undefined : g;
  }

  /** Record an action id; returns false (and changes nothing) when it is already present. */
  add(hi: number, lo: number, generation: number): boolean {
    if (!(generation >= 1)) throw new RangeError('"generation" must be ≥ 1');
    const i = this.#slot(hi, lo);
    if (this.#gen[2 * i + 1] !== 0) return false;
    this.#w[4 * i] = hi;
    this.#w[4 * i + 1] = lo;
    this.#gen[2 * i + 1] = generation;
    if (++this.#size * 4 > (this.#mask + 1) * 3) this.#grow();
    return true;
  }

  /**
   * Make room for `n` actions in all (at most 3/4 full) in one step, instead of doubling
   * several times on the way (each doubling re-inserts every action).
   */
  reserve(n: number): void {
    let c = this.#mask + 1;
    while (c * 3 < n * 4) c *= 2;
    if (c > this.#mask + 1) this.#grow(c);
  }

  #grow(capacity = 2 * (this.#mask + 1)): void {
    const length = this.#mask + 1;
    const w = this.#w;
    const gen = this.#gen;
    const buf = new ArrayBuffer(16 * capacity);
    this.#w = new Uint32Array(buf);
    this.#gen = new Float64Array(buf);
    this.#mask = capacity - 1;
    for (let j = 0; j < length; j++) {
      const g = gen[2 * j + 1]!;
      if (g === 0) continue;
      const i = this.#slot(w[4 * j]!, w[4 * j + 1]!);
      this.#w[4 * i] = w[4 * j]!;
      this.#w[4 * i + 1] = w[4 * j + 1]!;
      this.#gen[2 * i + 1] = g;
    }
  }
}

/** Whether `a[at, at + b.length)` holds the bytes of `b`. */
function sameAt(a: Uint8Array, at: number, b: Uint8Array): boolean {
  for (let k = 0; k < b.length; k++) if (a[at + k] !== b[k]) return false;
  return true;
}

/** The action id of line `i` of a batch result (for messages). */
function actionOf(r: BatchResult, i: number): string {
  return actionId(r.ids[4 * i]!, r.ids[4 * i + 1]!);
}

/** `act_` + 16 hex from its two 32-bit words. */
export function actionId(hi: number, lo: number): string {
  return `act_${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------
// the verifier
// ---------------------------------------------------------------------------------------

interface Expectation {
  kind: 'stored' | 'trusted' | 'state';
  name: string;
  size: number;
  root?: Uint8Array;
  frontier?: string[];
  lastLineHash?: string | null;
}

interface SegmentEntry {
  name: string;
  first: number;
  path: string;
  bytes: number;
}

interface PosInfo {
  segment: string;
  /** Position of the segment's first line. */
  first: number;
  /** The index the segment's name says its first line holds. */
  named: number;
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Verifier {
  readonly problems: VerifyProblem[] = [];
  readonly counts: Partial<Record<VerifyProblemCode, number>> = {};
  readonly details = new Map<VerifyCheckName, string>();
  readonly provider: CryptoProvider;
  readonly frontier: MerkleFrontier;
  readonly actions: ActionTable;
  readonly lines = new Map<string, { th: Uint8Array; gen: number }>();
  readonly expect = new Map<number, Expectation[]>();
  readonly maxProblems: number;
  truncated = false;
  errors = 0;
  readonly failed = new Set<VerifyCheckName>();
  lockNote = '';
  keyName: string | undefined;
  /** The hash of the last line applied: 32 bytes at lastAt of lastSrc (none yet: null). */
  lastSrc: Uint8Array | null = null;
  lastAt = 0;
  get lastLineHash(): Uint8Array | null {
    return this.lastSrc && this.lastSrc.subarray(this.lastAt, this.lastAt + 32);
  }
  lastRecv = -Infinity;
  /** record index minus position of the line before (to report an index shift once). */
  shift = 0;
  signatures = 0;
  externalParents = 0;
  bytes = 0;
  totalBytes = 0;
  segCount = 0;
  cpCount = 0;
  storedBySize = new Map<number, Uint8Array>();
  /** Segment of the batch being applied, for locations. */
  seg: PosInfo = { segment: '', first: 0, named: 0 };
  /** Index the next record should hold, from the records' own numbering. */
  nextIdx = 0;
  /** Shared memory the batches go to the workers in (when there are workers). */
  ring: BatchRing | undefined;
  /** The open run of lines whose received_at goes back (one problem per run). */
  recvRun: { problem: VerifyProblem | undefined; base: string; count: number } | undefined;

  constructor(
    readonly dir: string,
    readonly o: VerifyLogOptions,
  ) {
    this.provider = o.provider ?? getProvider();
    this.frontier = new MerkleFrontier(0, [], this.provider);
    this.actions = new ActionTable();
    this.maxProblems = o.maxProblems ?? 1000;
  }

  report(
    code: VerifyProblemCode,
    message: string,
    where: Omit<VerifyProblem, 'code' | 'message' | 'severity'> = {},
    severity: 'error' | 'warning' = 'error',
  ): VerifyProblem | undefined {
    this.counts[code] = (this.counts[code] ?? 0) + 1;
    if (severity === 'error') {
      this.errors++;
      this.failed.add(CHECK_OF[code]);
    }
    if (this.problems.length >= this.maxProblems) {
      this.truncated = true;
      return undefined;
    }
    const p: VerifyProblem = { code, severity, ...where, message };
    this.problems.push(p);
    return p;
  }

  at(pos: number): Pick<VerifyProblem, 'index' | 'segment' | 'line'> {
    return { index: pos, segment: this.seg.segment, line: pos - this.seg.first + 1 };
  }

  addExpectation(e: Expectation): void {
    const list = this.expect.get(e.size) ?? [];
    list.push(e);
    this.expect.set(e.size, list);
  }

  // --- meta, checkpoints, state ----------------------------------------------------------

  async readMeta(): Promise<void> {
    let meta: Record<string, unknown> | undefined;
    try {
      const v = JSON.parse(await readFile(join(this.dir, 'log.json'), 'utf8')) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      meta = v as Record<string, unknown>;
    } catch (e) {
      this.report('META_INVALID', `log.json cannot be read: ${msg(e)}`);
    }
    const pk = toBase64(this.o.logPublicKey);
    if (meta) {
      if (meta['format'] !== 'tibet-log-meta/1')
        this.report('META_INVALID', `log.json format is ${JSON.stringify(meta['format'])}`);
      if (meta['public_key'] !== pk)
        this.report('META_INVALID', 'log.json names another log key than the one trusted');
    }
    const name = this.o.logKeyName ?? meta?.['key_name'] ?? meta?.['origin'];
    this.keyName = typeof name === 'string' ? name : undefined;
    if (!this.keyName)
      this.report('META_INVALID', 'no log key name: log.json lacks it and none was given');
    this.details.set(
      'meta',
      `log key ${this.keyName ?? '?'}${meta ? '' : ' (log.json unreadable)'}`,
    );
  }

  verifyNote(note: string, where: string): SignedCheckpoint | undefined {
    let c: SignedCheckpoint;
    try {
      c = parseCheckpoint(note);
    } catch (e) {
      this.report('CHECKPOINT_MALFORMED', msg(e), { checkpoint: where });
      return undefined;
    }
    if (!this.keyName) return undefined;
    if (c.origin !== this.keyName) {
      this.report(
        'CHECKPOINT_MALFORMED',
        `origin "${c.origin}" is not this log's ("${this.keyName}")`,
        { checkpoint: where, index: c.size },
      );
      return undefined;
    }
    try {
      verifyCheckpoint(c, this.keyName, this.o.logPublicKey, this.provider);
    } catch (e) {
      this.report('CHECKPOINT_SIGNATURE_INVALID', msg(e), { checkpoint: where, index: c.size });
      return undefined;
    }
    return c;
  }

  async readCheckpoints(): Promise<void> {
    let names: string[] = [];
    try {
      names = (await readdir(join(this.dir, 'checkpoints'))).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.report('IO_ERROR', `checkpoints/: ${msg(e)}`);
    }
    let leftovers = 0;
    for (const name of names) {
      const m = CHECKPOINT_RE.exec(name);
      if (!m) {
        if (name.endsWith('.tmp')) leftovers++;
        else
          this.report('CHECKPOINT_MALFORMED', `unexpected file checkpoints/${name}`, {
            checkpoint: name,
          });
        continue;
      }
      let note: string;
      try {
        note = await readFile(join(this.dir, 'checkpoints', name), 'utf8');
      } catch (e) {
        this.report('IO_ERROR', msg(e), { checkpoint: name });
        continue;
      }
      this.cpCount++;
      const c = this.verifyNote(note, name);
      if (!c) continue;
      if (c.size !== Number(m[1])) {
        this.report('CHECKPOINT_MALFORMED', `file name says size ${Number(m[1])}, note ${c.size}`, {
          checkpoint: name,
          index: c.size,
        });
        continue;
      }
      this.storedBySize.set(c.size, c.rootHash);
      this.addExpectation({ kind: 'stored', name, size: c.size, root: c.rootHash });
    }
    if (this.o.trustedCheckpoint !== undefined) {
      const c = this.verifyNote(this.o.trustedCheckpoint, 'trusted');
      if (c) {
        this.addExpectation({ kind: 'trusted', name: 'trusted', size: c.size, root: c.rootHash });
        const stored = this.storedBySize.get(c.size);
        if (!stored) {
          this.report(
            'CHECKPOINT_MISSING',
            `the log holds no checkpoint of size ${c.size}, which the trusted checkpoint proves it signed`,
            { checkpoint: 'trusted', index: c.size },
          );
        } else if (!equalBytes(stored, c.rootHash)) {
          this.report(
            'CHECKPOINT_INCONSISTENT',
            `fork: the log key signed two different roots for size ${c.size} (stored ${toHex(stored)}, trusted ${toHex(c.rootHash)})`,
            { checkpoint: `${String(c.size).padStart(16, '0')}.note`, index: c.size },
          );
        }
      }
    }
    this.details.set(
      'checkpoints',
      `${this.cpCount} stored checkpoint(s)${leftovers ? `, ${leftovers} leftover temp file(s) ignored` : ''}`,
    );
  }

  async readState(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(this.dir, 'state.json'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.report('STATE_CORRUPT', `state.json cannot be read: ${msg(e)}`, {}, 'warning');
      this.details.set('state', 'no state.json');
      return;
    }
    try {
      const s = JSON.parse(text) as Record<string, unknown>;
      if (
        s['format'] !== 'tibet-log-state/1' ||
        !Number.isSafeInteger(s['size']) ||
        (s['size'] as number) < 0 ||
        !Array.isArray(s['frontier']) ||
        !(s['last_line_hash'] === null || typeof s['last_line_hash'] === 'string')
      )
        throw new Error('unexpected shape');
      const frontier = (s['frontier'] as unknown[]).map((h) => {
        if (typeof h !== 'string' || fromBase64(h).length !== 32) throw new Error('bad hash');
        return h;
      });
      this.addExpectation({
        kind: 'state',
        name: 'state.json',
        size: s['size'] as number,
        frontier,
        lastLineHash: s['last_line_hash'],
      });
      this.details.set('state', `state.json at size ${s['size'] as number}`);
    } catch (e) {
      this.report('STATE_CORRUPT', `state.json is malformed: ${msg(e)}`);
    }
  }

  /** Compare what was expected at the current tree size with the tree. */
  meet(): void {
    const size = this.frontier.size;
    const list = this.expect.get(size);
    if (!list) return;
    this.expect.delete(size);
    const root = this.frontier.root();
    for (const e of list) {
      switch (e.kind) {
        case 'stored':
          if (!equalBytes(e.root!, root))
            this.report(
              'ROOT_MISMATCH',
              `checkpoint signs root ${toHex(e.root!)} for size ${size}, the lines give ${toHex(root)}`,
              { checkpoint: e.name, index: size },
            );
          break;
        case 'trusted':
          if (!equalBytes(e.root!, root))
            this.report(
              'CHECKPOINT_INCONSISTENT',
              `fork: the trusted checkpoint signs root ${toHex(e.root!)} for size ${size}, this log gives ${toHex(root)}`,
              { checkpoint: 'trusted', index: size },
            );
          break;
        case 'state': {
          const f = this.frontier.hashes.map(toBase64);
          const same = f.length === e.frontier!.length && f.every((h, i) => h === e.frontier![i]);
          const last = this.lastLineHash ? toHex(this.lastLineHash) : null;
          if (!same || (size > 0 && e.lastLineHash !== last))
            this.report(
              'STATE_CORRUPT',
              `state.json (size ${size}) does not match the lines: ${same ? 'last line hash' : 'Merkle frontier'} differs`,
              { index: size },
            );
          break;
        }
      }
    }
  }

  // --- segments ---------------------------------------------------------------------------

  async listSegments(): Promise<SegmentEntry[]> {
    let names: string[];
    try {
      names = await readdir(join(this.dir, 'segments'));
    } catch (e) {
      this.report('SEGMENT_MISSING', `segments/ cannot be read: ${msg(e)}`);
      return [];
    }
    const segs: SegmentEntry[] = [];
    for (const name of names) {
      const m = SEGMENT_RE.exec(name);
      if (!m) {
        this.report('SEGMENT_MALFORMED', `unexpected file segments/${name}`, { segment: name });
        continue;
      }
      const path = join(this.dir, 'segments', name);
      try {
        const st = await stat(path);
        if (!st.isFile()) throw new Error('not a regular file');
        segs.push({ name, first: Number(m[1]), path, bytes: st.size });
        this.totalBytes += st.size;
      } catch (e) {
        this.report('IO_ERROR', msg(e), { segment: name });
      }
    }
    segs.sort((a, b) => a.first - b.first);
    return segs;
  }

  /**
   * Read a segment in chunks and yield batches of complete lines. Bytes after the last
   * newline are a torn tail (reported by the caller from the returned count).
   */
  async *batches(
    s: SegmentEntry,
    firstPos: number,
    nextId: () => number,
    torn: { bytes: number },
  ): AsyncGenerator<LineBatch> {
    const batchLines = Math.max(1, this.o.batchLines ?? 256);
    const maxLine = this.o.maxLineBytes ?? 64 * 1024 * 1024;
    const fh = await open(s.path, 'r');
    try {
      // One read buffer for the segment: the head of a line not yet complete (`have` bytes)
      // is moved to its start and the next chunk read after it, so nothing is allocated a
      // chunk (a new buffer a megabyte counts against V8's old generation and brings a major
      // collection every few chunks). Every batch is copied out before the next read.
      let rb = Buffer.allocUnsafe(2 * CHUNK);
      let have = 0;
      let skipping = false;
      let offset = 0;
      let pos = firstPos;
      for (;;) {
        if (rb.length < have + CHUNK) {
          const bigger = Buffer.allocUnsafe(Math.max(2 * rb.length, have + CHUNK));
          rb.copy(bigger, 0, 0, have);
          rb = bigger;
        }
        const { bytesRead } = await fh.read(rb, have, CHUNK, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        this.bytes += bytesRead;
        // a plain view, not a Buffer: its slice() copies (a Buffer's is another view)
        const data = new Uint8Array(rb.buffer, rb.byteOffset, have + bytesRead);
        const buf = rb.subarray(0, data.length);
        let start = 0;
        let batchStart = 0;
        let ends: number[] = [];
        const flush = (upTo: number): LineBatch | undefined => {
          if (!ends.length) return undefined;
          const b: LineBatch = {
            id: nextId(),
            first: pos,
            buf: this.ring?.copyIn(data.subarray(batchStart, upTo)) ?? data.slice(batchStart, upTo),
            ends: Uint32Array.from(ends),
          };
          pos += ends.length;
          ends = [];
          batchStart = upTo;
          return b;
        };
        for (;;) {
          const nl = buf.indexOf(0x0a, start);
          if (nl < 0) break;
          const lineStart = start;
          start = nl + 1;
          if (skipping) {
            // the rest of an over-long line whose head was dropped (reported already)
            skipping = false;
            batchStart = start;
            continue;
          }
          if (nl - lineStart > maxLine) {
            const b = flush(lineStart);
            if (b) yield b;
            this.report('RECORD_MALFORMED', `line longer than ${maxLine} bytes; skipped`, {
              index: pos,
              segment: s.name,
            });
            batchStart = start;
            continue;
          }
          ends.push(nl - batchStart);
          if (ends.length >= batchLines) {
            const b = flush(start);
            if (b) yield b;
          }
        }
        const b = flush(start);
        if (b) yield b;
        const rest = data.length - start;
        if (skipping) have = 0;
        else if (rest > maxLine) {
          // never buffer more than maxLineBytes of one line
          this.report('RECORD_MALFORMED', `line longer than ${maxLine} bytes; skipped`, {
            index: pos,
            segment: s.name,
          });
          have = 0;
          skipping = true;
        } else {
          rb.copyWithin(0, start, data.length);
          have = rest;
        }
      }
      torn.bytes = have + (skipping ? 1 : 0);
    } finally {
      await fh.close();
    }
  }

  // --- sequential checks -------------------------------------------------------------------

  apply(r: BatchResult): void {
    const errs = new Map(r.errs);
    const sigInfo = new Map(r.sigInfo.map(([j, actor, kid]) => [j, { actor, kid }]));
    for (let i = 0; i < r.n; i++) {
      const pos = r.first + i;
      const prevHash = i === 0 ? this.lastLineHash : null; // (the chain check of line 0)
      this.lastSrc = r.lineHashes;
      this.lastAt = 32 * i;
      this.frontier.push(r.leaves.slice(32 * i, 32 * i + 32));
      const f = r.flags[i]!;
      const idx = f & F_PARSED ? r.num[3 * i]! : undefined;
      if (pos === this.seg.first) this.segmentStart(pos, idx);
      if (idx === undefined) {
        this.report('RECORD_MALFORMED', errs.get(i) ?? 'malformed', this.at(pos));
        this.nextIdx++;
        this.recvRun = undefined;
        this.meet();
        continue;
      }
      const recv = r.num[3 * i + 1]!;
      const gen = r.num[3 * i + 2]!;

      this.nextIdx = idx + 1;
      // index: report where the records' own numbering departs from the line positions
      const shift = idx - pos;
      if (shift !== this.shift || (pos === 0 && shift !== 0)) {
        this.report(
          'INDEX_MISMATCH',
          `line at position ${pos} holds index ${idx}` +
            (shift > this.shift ? ' (lines removed before it)' : ' (lines inserted or moved)'),
          this.at(pos),
        );
      }
      this.shift = shift;
      const chained =
        i === 0
          ? r.firstPrev === (prevHash ? Buffer.from(prevHash).toString('hex') : null)
          : (f & F_PREV_OK) !== 0;
      if (!chained)
        this.report(
          'CHAIN_BROKEN',
          pos === 0
            ? 'the first line has a prev'
            : `prev is not the hash of the line before (line ${pos - 1} altered, or lines removed, inserted or moved here)`,
          this.at(pos),
        );
      if (recv < this.lastRecv) {
        // one problem per run of lines that go back in time; the run's length in its message
        const run = this.recvRun;
        if (run) {
          run.count++;
          this.counts.RECEIVED_AT_DECREASING = (this.counts.RECEIVED_AT_DECREASING ?? 0) + 1;
          if (run.problem)
            run.problem.message = `${run.base} (and the ${run.count} line${run.count > 1 ? 's' : ''} after it)`;
        } else {
          const base = `received_at ${new Date(recv).toISOString()} is before that of an earlier line (${new Date(this.lastRecv).toISOString()})`;
          const problem = this.report('RECEIVED_AT_DECREASING', base, this.at(pos));
          this.recvRun = { problem, base, count: 0 };
        }
      } else {
        this.lastRecv = recv;
        this.recvRun = undefined;
      }
      const sig = (f >> 4) & 3;
      const who = sigInfo.get(i);
      if (sig === SIG_NO_KEY)
        this.report(
          'ACTOR_UNKNOWN',
          `token ${actionOf(r, i)}: no registered key ${who?.kid ?? '?'} for ${who?.actor ?? '?'}`,
          this.at(pos),
        );
      else if (sig === SIG_BAD)
        this.report(
          'TOKEN_SIGNATURE_INVALID',
          `token ${actionOf(r, i)}: signature by ${who?.actor ?? '?'} does not verify`,
          this.at(pos),
        );
      else this.signatures++;
      this.causal(pos, r, i, f, gen);
      this.meet();
    }
  }

  /** Checks at the first line of a segment: its name, and continuity with the one before. */
  segmentStart(pos: number, idx: number | undefined): void {
    const { segment, named } = this.seg;
    if (named > this.nextIdx)
      this.report(
        'SEGMENT_MISSING',
        `segment ${segment} starts at index ${named} but the lines before it end at ${this.nextIdx - 1}: lines ${this.nextIdx}..${named - 1} are missing (a segment or lines were removed)`,
        this.at(pos),
      );
    else if (named < this.nextIdx)
      this.report(
        'SEGMENT_MALFORMED',
        `segment ${segment} starts at index ${named} but the lines before it already reach ${this.nextIdx - 1} (lines inserted, or segments swapped or renamed)`,
        this.at(pos),
      );
    if (idx !== undefined && idx !== named)
      this.report(
        'SEGMENT_MALFORMED',
        `segment ${segment} is named for index ${named} but its first line holds ${idx} (segments swapped or renamed)`,
        this.at(pos),
      );
  }

  causal(pos: number, r: BatchResult, i: number, f: number, gen: number): void {
    const lineId = r.lineIds[r.lineRef[i]!]!;
    const st = this.lines.get(lineId);
    const hasPrev = (f & F_TPREV) !== 0;
    if (!hasPrev ? st !== undefined : st === undefined || !sameAt(r.th, 64 * i + 32, st.th)) {
      const tprev = hasPrev ? `sha256:${toHex(r.th.subarray(64 * i + 32, 64 * i + 64))}` : 'null';
      this.report(
        'CAUSAL_PREV_MISMATCH',
        `token ${actionOf(r, i)}: prev ${tprev} but continuity line ${lineId} ends at ${st ? `sha256:${toHex(st.th)}` : 'null'}`,
        this.at(pos),
      );
    }
    let parentGen: number | undefined;
    if (f & F_PARENT) {
      const hi = r.ids[4 * i + 2]!;
      const lo = r.ids[4 * i + 3]!;
      parentGen = this.actions.get(hi, lo);
      if (parentGen === undefined) {
        if (this.o.allowExternalParents) this.externalParents++;
        else
          this.report(
            'CAUSAL_PARENT_UNKNOWN',
            `parent ${actionId(hi, lo)} of ${actionOf(r, i)} is not earlier in the log`,
            this.at(pos),
          );
      }
    }
    const want = 1 + Math.max(st?.gen ?? 0, parentGen ?? 0);
    const exact = !(f & F_PARENT) || parentGen !== undefined;
    if (exact ? gen !== want : gen < want)
      this.report(
        'CAUSAL_GENERATION_INVALID',
        `token ${actionOf(r, i)}: generation ${gen}, expected ${exact ? '' : 'at least '}${want}`,
        this.at(pos),
      );
    if (!this.actions.add(r.ids[4 * i]!, r.ids[4 * i + 1]!, gen))
      this.report(
        'DUPLICATE_ACTION',
        `action ${actionOf(r, i)} appears earlier in the log`,
        this.at(pos),
      );
    // the line's entry is updated in place: no new array per line for the collector
    if (st) {
      for (let k = 0; k < 32; k++) st.th[k] = r.th[64 * i + k]!;
      st.gen = gen;
    } else this.lines.set(lineId, { th: r.th.slice(64 * i, 64 * i + 32), gen });
  }

  // --- driver ------------------------------------------------------------------------------

  async run(): Promise<VerifyReport> {
    const t0 = performance.now();
    // the workers boot (a Node isolate and the modules, ~0.1 s of CPU each) while this thread
    // reads log.json, the checkpoints and state.json
    const cores = availableParallelism();
    let nWorkers = Math.max(0, Math.floor(this.o.workers ?? Math.min(cores, 8)));
    const script = nWorkers > 0 ? workerScript() : undefined;
    if (!script) nWorkers = 0;
    const rawKey = (actor: string, kid: string): Uint8Array | undefined =>
      this.o.registry.signingKey(actor, kid);
    const inlineKey = keyCache((a, k) => {
      try {
        return rawKey(a, k);
      } catch {
        return undefined;
      }
    }, this.provider);
    const backend: BackendName = this.provider.name;
    const pool =
      script && nWorkers > 0 ? new WorkerPool(nWorkers, script, backend, rawKey) : undefined;
    let segs: SegmentEntry[];
    try {
      await this.readMeta();
      await this.readCheckpoints();
      await this.readState();
      segs = await this.listSegments();
    } catch (e) {
      await pool?.close();
      throw e;
    }
    this.segCount = segs.length;
    try {
      const st = await stat(join(this.dir, 'LOCK'));
      if (st.isFile())
        this.lockNote =
          '; LOCK present: a writer holds (or crashed holding) the log, so a torn tail is expected';
    } catch {
      // no lock: nobody writes
    }

    const inline = (b: LineBatch): BatchResult =>
      finishBatch(parseBatch(b), inlineKey, this.provider);
    const runBatch = (b: LineBatch): Promise<BatchResult> => {
      if (!pool || pool.alive === 0) return Promise.resolve(inline(b));
      // the worker gets a copy of the batch, so a dead worker means re-running it here
      return pool.run(b).catch(() => inline(b));
    };

    let id = 0;
    const nextId = (): number => id++;
    const inflight: { seg: PosInfo; p: Promise<BatchResult>; buf: Uint8Array }[] = [];
    const maxInflight = Math.max(2, nWorkers * 3);
    // room for the batches in flight and the one being cut, at 256 lines of ~2 KB; a batch
    // that does not fit is copied privately instead
    if (pool) this.ring = new BatchRing(Math.max(8, 2 * maxInflight) << 20);
    const drainOne = async (): Promise<void> => {
      const f = inflight.shift()!;
      const r = await f.p;
      this.seg = f.seg;
      this.apply(r);
      if (r.first === 0 && r.n > 0 && f.buf.length > 0) {
        // room for the whole log's actions at once, from the bytes a line of the first batch
        // takes; never more than a line of 512 bytes each would need (a record with its
        // signed token is longer), however short the first lines are
        const est = (this.totalBytes * r.n) / f.buf.length;
        this.actions.reserve(Math.ceil(Math.min(1.05 * est, this.totalBytes / 512)));
      }
      if (this.ring?.holds(f.buf)) this.ring.free(f.buf);
      this.o.onProgress?.({
        lines: this.frontier.size,
        bytes: this.bytes,
        totalBytes: this.totalBytes,
        segment: f.seg.segment,
      });
    };

    try {
      this.meet(); // checkpoints of size 0
      let pos = 0;
      for (let si = 0; si < segs.length; si++) {
        const s = segs[si]!;
        const isLast = si === segs.length - 1;
        if (s.bytes === 0 && !isLast)
          this.report('SEGMENT_MALFORMED', `segment ${s.name} is empty but not the last`, {
            index: pos,
            segment: s.name,
          });
        const info: PosInfo = { segment: s.name, first: pos, named: s.first };
        const torn = { bytes: 0 };
        let count = 0;
        try {
          for await (const b of this.batches(s, pos, nextId, torn)) {
            count += b.ends.length;
            inflight.push({ seg: info, p: runBatch(b), buf: b.buf });
            while (inflight.length >= maxInflight) await drainOne();
          }
        } catch (e) {
          this.report('IO_ERROR', `reading ${s.name}: ${msg(e)}`, { segment: s.name });
        }
        pos += count;
        if (torn.bytes > 0) {
          if (isLast)
            this.report(
              'TORN_TAIL',
              `segment ${s.name} ends with ${torn.bytes} bytes of an incomplete line (never acknowledged by a writer; AuditLog.open cuts it)`,
              { index: pos, segment: s.name, line: count + 1 },
              'warning',
            );
          else
            this.report(
              'SEGMENT_MALFORMED',
              `segment ${s.name} ends with ${torn.bytes} bytes of an incomplete line but is not the last`,
              { index: pos, segment: s.name, line: count + 1 },
            );
        }
      }
      while (inflight.length) await drainOne();
    } finally {
      await Promise.allSettled(inflight.map((f) => f.p));
      await pool?.close();
    }

    // expectations beyond the end: the log lost lines it had signed or recorded
    const size = this.frontier.size;
    for (const [at, list] of [...this.expect].sort((a, b) => a[0] - b[0])) {
      for (const e of list) {
        this.report(
          'LOG_TRUNCATED',
          `${e.kind === 'state' ? 'state.json records' : e.kind === 'trusted' ? 'the trusted checkpoint signs' : 'a stored checkpoint signs'} ${at} lines, the log holds ${size}: lines ${size}..${at - 1} are gone`,
          { index: size, ...(e.kind === 'state' ? {} : { checkpoint: e.name }) },
        );
      }
    }
    if (this.cpCount === 0 && size > 0)
      this.report(
        'CHECKPOINT_MISSING',
        'no signed checkpoint: nothing binds these lines to the log key',
        {},
        'warning',
      );

    const elapsedMs = performance.now() - t0;
    const ok = this.errors === 0;
    const stats: VerifyStats = {
      lines: size,
      bytes: this.bytes,
      segments: this.segCount,
      checkpoints: this.cpCount,
      actions: this.actions.size,
      continuityLines: this.lines.size,
      signaturesVerified: this.signatures,
      externalParents: this.externalParents,
      workers: nWorkers,
      elapsedMs,
      linesPerSecond: elapsedMs > 0 ? (size * 1000) / elapsedMs : 0,
      actionTableBytes: this.actions.bytes,
    };
    const problems = this.problems
      .map((p, i) => ({ p, i }))
      .sort((a, b) => (a.p.index ?? Infinity) - (b.p.index ?? Infinity) || a.i - b.i)
      .map((x) => x.p);
    return {
      ok,
      size,
      root: toHex(this.frontier.root()),
      checks: this.checks(stats),
      problems,
      problemCounts: this.counts,
      truncated: this.truncated,
      stats,
    };
  }

  checks(s: VerifyStats): VerifyCheck[] {
    const d = (name: VerifyCheckName, def: string): VerifyCheck => ({
      name,
      ok: !this.failed.has(name),
      detail: this.details.get(name) ?? def,
    });
    return [
      d('meta', 'log.json'),
      d('segments', `${s.segments} segment(s), ${s.bytes} bytes${this.lockNote}`),
      d('records', `${s.lines} line(s) parsed`),
      d('hash-chain', `${s.lines} link(s)`),
      d('received-at', 'non-decreasing'),
      d('signatures', `${s.signaturesVerified} signature(s) verified with ${s.workers} worker(s)`),
      d(
        'causal',
        `${s.actions} action(s) on ${s.continuityLines} continuity line(s)${s.externalParents ? `, ${s.externalParents} external parent(s)` : ''}`,
      ),
      d('merkle', `root ${toHex(this.frontier.root())} over ${s.lines} line(s)`),
      d('checkpoints', `${s.checkpoints} checkpoint(s)`),
      d(
        'trusted-checkpoint',
        this.o.trustedCheckpoint === undefined ? 'none given' : 'consistent with this log',
      ),
      d('state', 'state.json'),
    ];
  }
}

/**
 * Verify a whole log folder: segment naming and continuity, every line's strict form and
 * index, the hash chain, every token's signature against `registry`, each token's `prev`
 * on its continuity line, generations (1 + max(prev on the line, parent)), parents present,
 * no duplicate action ids, `received_at` non-decreasing, the Merkle root against every
 * stored checkpoint (each signature checked with the log key) and against the caller's
 * `trustedCheckpoint` (same size, other root = a fork), and state.json.
 *
 * Never throws for a bad log; throws TypeError for bad arguments.
 */
export async function verifyLog(dir: string, opts: VerifyLogOptions): Promise<VerifyReport> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('"dir" must be a path');
  if (!opts || typeof opts.registry?.signingKey !== 'function')
    throw new TypeError('"registry" must be a KeyResolver');
  if (!(opts.logPublicKey instanceof Uint8Array) || opts.logPublicKey.length !== 32)
    throw new TypeError(
      `"logPublicKey" expected 32 bytes, got ${(opts.logPublicKey as Uint8Array | undefined)?.length ?? typeof opts.logPublicKey}`,
    );
  if (opts.trustedCheckpoint !== undefined && typeof opts.trustedCheckpoint !== 'string')
    throw new TypeError('"trustedCheckpoint" must be a checkpoint note (string)');
  if (opts.workers !== undefined && !(Number.isInteger(opts.workers) && opts.workers >= 0))
    throw new RangeError('"workers" must be a non-negative integer');
  return new Verifier(dir, opts).run();
}
