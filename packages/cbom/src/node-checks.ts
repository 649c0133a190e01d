/**
 * The expensive per-node checks of a walk — each token's Ed25519 signature and each log
 * line's RFC 9162 inclusion proof — run over worker threads and the calling thread together.
 *
 * The walk queues checks as soon as it knows them (a log token's signature while the log is
 * still being read, the inclusion proofs once the tree is rebuilt); they are packed into
 * shared memory in batches, and each batch is handed to the workers as it fills, so the
 * workers verify while the calling thread goes on reading, replaying and building the graph.
 * Within a batch every thread (the workers and, at the end, the caller) claims chunks from one
 * atomic counter, so no thread idles while another still has work, and a result is written by
 * the one thread that claimed the job. A worker that fails or dies leaves its unfinished jobs
 * unmarked; the caller then runs them itself. The checks themselves are the same functions the
 * inline path calls (`provider.ed25519Verify`, `verifyInclusion`), on the same bytes; a thread
 * hashes only the steps of a proof whose input differs from the proof before it (see
 * `ProofHasher`).
 *
 * This module is also the worker entry: loaded by a Worker it serves walks, one after the
 * other, until it is stopped (idle workers wait in a pool for a short while, see `Helper`).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { getProvider, type BackendName, type CryptoProvider } from '@tibet/core';
import { verifyInclusion } from '@tibet/continuityd';

/** One node's checks: a signature (when a key was found), an inclusion proof (when cut). */
export interface NodeCheckJob {
  sig?: {
    key: Uint8Array;
    /** The signing input, whole or in parts that are verified as their concatenation. */
    input: Uint8Array | readonly Uint8Array[];
    signature: Uint8Array;
  };
  inclusion?: { leaf: Uint8Array; index: number; proof: readonly Uint8Array[] };
}

/** Result bits per job. */
export const SIG_DONE = 1;
export const SIG_OK = 2;
export const INC_DONE = 4;
export const INC_OK = 8;

/** Jobs per claim. */
const CHUNK = 32;
/** Jobs per batch handed to the workers. */
const BATCH = 512;
/** Jobs in the first batch. */
const FIRST_BATCH = 64;
/** Below this many jobs the workers' start-up costs more than they save. */
export const MIN_PARALLEL_JOBS = 512;

/**
 * A batch in shared memory. The bytes a job checks — its signing input (in one or more parts),
 * its leaf and its proof's hashes — are "pieces": a range of one of the batch's buffers. A
 * piece that is already in shared memory (a log segment, the rebuilt tree: see log-read.ts) is
 * referenced where it is; any other is copied into the batch's own buffer (`bufs[0]`).
 */
interface Shared {
  n: number;
  counter: Int32Array;
  status: Uint8Array;
  keyIdx: Int32Array;
  keys: Uint8Array;
  bufs: SharedArrayBuffer[];
  /** Piece k: buffer index, byte offset, length at 3k, 3k + 1, 3k + 2. */
  pieces: Float64Array;
  /**
   * Job i's pieces start at inP[i]: first its signing input (verified as the concatenation of
   * its pieces), up to its leaf (leafP[i]) or, without one, to the next job's (inP[i + 1]).
   */
  inP: Uint32Array;
  sigs: Uint8Array;
  incIdx: Float64Array;
  /** Job i's leaf (piece leafP[i], −1: none), then its proof's hashes up to piece prEnd[i]. */
  leafP: Int32Array;
  prEnd: Uint32Array;
  root: Uint8Array;
  size: number;
}

interface WorkerInput {
  kind: 'tibet-cbom-node-checks';
  backend: BackendName;
}

/** To a worker: a batch to help with, or "tell me when you are through with walk `end`". */
type ToWorker = { batch: Shared } | { end: number };
/** From a worker: through with every batch of walk `done`. */
type FromWorker = { done: number };

/** Bytes for `n` elements of `size` bytes, rounded up to a multiple of 8. */
function aligned(n: number, size: number): number {
  return Math.ceil((n * size) / 8) * 8;
}

/** Views carved out of one SharedArrayBuffer (one allocation per batch), each 8-aligned. */
class Arena {
  readonly buffer: SharedArrayBuffer;
  #at = 0;
  constructor(bytes: number) {
    this.buffer = new SharedArrayBuffer(Math.max(8, bytes));
  }
  #next(n: number, size: number): number {
    const at = this.#at;
    this.#at += aligned(n, size);
    return at;
  }
  u8(n: number): Uint8Array {
    return new Uint8Array(this.buffer, this.#next(n, 1), n);
  }
  i32(n: number): Int32Array {
    return new Int32Array(this.buffer, this.#next(n, 4), n);
  }
  u32(n: number): Uint32Array {
    return new Uint32Array(this.buffer, this.#next(n, 4), n);
  }
  f64(n: number): Float64Array {
    return new Float64Array(this.buffer, this.#next(n, 8), n);
  }
  /** The offset of the next `n` bytes, reserved (for bytes copied in). */
  reserve(n: number): number {
    return this.#next(n, 1);
  }
}

function isShared(b: Uint8Array): boolean {
  return b.buffer instanceof SharedArrayBuffer;
}

/** Lays a batch's pieces out: shared ones by reference, the others copied into its arena. */
class PieceWriter {
  readonly #s: Shared;
  readonly #own: Uint8Array;
  readonly #bufAt = new Map<ArrayBufferLike, number>();
  #lastBuf: ArrayBufferLike | undefined;
  #lastIdx = 0;
  #copyAt: number;
  #k = 0;

  constructor(s: Shared, arena: Arena, copyAt: number) {
    this.#s = s;
    this.#own = new Uint8Array(arena.buffer);
    this.#copyAt = copyAt;
    s.bufs.push(arena.buffer);
  }

  /** Add `b` as the next piece; returns its number. */
  add(b: Uint8Array): number {
    const k = this.#k++;
    const p = this.#s.pieces;
    const buf = b.buffer;
    if (buf === this.#lastBuf || isShared(b)) {
      if (buf !== this.#lastBuf) {
        let i = this.#bufAt.get(buf);
        if (i === undefined) {
          i = this.#s.bufs.push(buf as SharedArrayBuffer) - 1;
          this.#bufAt.set(buf, i);
        }
        this.#lastBuf = buf;
        this.#lastIdx = i;
      }
      p[3 * k] = this.#lastIdx;
      p[3 * k + 1] = b.byteOffset;
    } else {
      this.#own.set(b, this.#copyAt);
      p[3 * k] = 0;
      p[3 * k + 1] = this.#copyAt;
      this.#copyAt += b.length;
    }
    p[3 * k + 2] = b.length;
    return k;
  }

  get count(): number {
    return this.#k;
  }
}

function pack(
  jobs: readonly NodeCheckJob[],
  checkpoint: { root: Uint8Array; size: number } | undefined,
): Shared {
  const n = jobs.length;
  const keyList: Uint8Array[] = [];
  const keyAt = new Map<Uint8Array, number>();
  const root = checkpoint?.root;
  // first pass: how many pieces, and how many bytes of them are to be copied
  let pieceCount = 0;
  let copyLen = 0;
  const count = (b: Uint8Array): void => {
    pieceCount++;
    if (!isShared(b)) copyLen += b.length;
  };
  for (const j of jobs) {
    if (j.sig) {
      const input = j.sig.input;
      if (input instanceof Uint8Array) count(input);
      else for (const part of input) count(part);
    }
    if (j.inclusion && root) {
      count(j.inclusion.leaf);
      for (const h of j.inclusion.proof) count(h);
    }
  }
  const B = aligned;
  const a = new Arena(
    B(1, 4) +
      B(n, 1) +
      B(n, 4) +
      B(3 * pieceCount, 8) +
      B(n + 1, 4) +
      B(64 * n, 1) +
      B(n, 8) +
      B(n, 4) +
      B(n, 4) +
      B(32, 1) +
      B(copyLen, 1),
  );
  const s: Shared = {
    n,
    counter: a.i32(1),
    status: a.u8(n),
    keyIdx: a.i32(n),
    keys: new Uint8Array(0),
    bufs: [],
    pieces: a.f64(3 * pieceCount),
    inP: a.u32(n + 1),
    sigs: a.u8(64 * n),
    incIdx: a.f64(n),
    leafP: a.i32(n),
    prEnd: a.u32(n),
    root: a.u8(32),
    size: checkpoint?.size ?? 0,
  };
  if (root) s.root.set(root);
  const w = new PieceWriter(s, a, a.reserve(copyLen));
  for (let i = 0; i < n; i++) {
    const j = jobs[i]!;
    s.keyIdx[i] = -1;
    s.incIdx[i] = -1;
    s.leafP[i] = -1;
    s.inP[i] = w.count;
    if (j.sig) {
      let k = keyAt.get(j.sig.key);
      if (k === undefined) {
        k = keyList.push(j.sig.key) - 1;
        keyAt.set(j.sig.key, k);
      }
      s.keyIdx[i] = k;
      const input = j.sig.input;
      if (input instanceof Uint8Array) w.add(input);
      else for (const part of input) w.add(part);
      if (j.sig.signature.length === 64) s.sigs.set(j.sig.signature, 64 * i);
      else s.keyIdx[i] = -2; // a signature that is not 64 bytes never verifies
    }
    if (j.inclusion && root) {
      s.incIdx[i] = j.inclusion.index;
      s.leafP[i] = w.add(j.inclusion.leaf);
      for (const h of j.inclusion.proof) w.add(h);
      s.prEnd[i] = w.count;
    }
  }
  s.inP[n] = w.count;
  s.keys = new Arena(32 * keyList.length).u8(32 * keyList.length);
  keyList.forEach((k, i) => s.keys.set(k, 32 * i));
  return s;
}

/** RFC 9162 node-hash input: 0x01 ‖ left ‖ right. */
const NODE_INPUT = 65;

/**
 * The provider the inclusion proofs of one thread are checked with: `p`, except that a
 * SHA-256 of a node-hash input (65 bytes) byte for byte equal to the one hashed at the same
 * step of the proof checked before gives that digest again (a copy) instead of hashing it
 * anew. Consecutive leaves share most of their path to the root (two neighbours all but their
 * lowest step, and a run of 32 leaves needs about 72 distinct node hashes instead of 448), so
 * this saves most of the hashing, and every proof is still checked in full by
 * `verifyInclusion`: each step's input is compared in full with the one remembered, and the
 * digest given for it is the SHA-256 of exactly those bytes.
 */
class ProofHasher {
  readonly provider: CryptoProvider;
  readonly #p: CryptoProvider;
  readonly #in: Uint8Array[] = [];
  readonly #out: Uint8Array[] = [];
  #step = 0;

  constructor(p: CryptoProvider) {
    this.#p = p;
    // (everything else is `p`'s own, whatever kind of object it is)
    const provider = Object.create(p) as CryptoProvider;
    provider.sha256 = (data) => this.#sha256(data);
    this.provider = provider;
  }

  /** Call before each proof: its hashes are numbered from 0. */
  begin(): void {
    this.#step = 0;
  }

  #sha256(data: Uint8Array): Uint8Array {
    const step = this.#step++;
    if (data.length !== NODE_INPUT) return this.#p.sha256(data);
    let had = this.#in[step];
    if (had) {
      let k = 0;
      while (k < NODE_INPUT && had[k] === data[k]) k++;
      if (k === NODE_INPUT) return new Uint8Array(this.#out[step]!);
    } else this.#in[step] = had = new Uint8Array(NODE_INPUT);
    const digest = this.#p.sha256(data);
    had.set(data);
    this.#out[step] = new Uint8Array(digest);
    return digest;
  }
}

/** One {@link ProofHasher} per provider and thread (this module is loaded once per thread). */
const hashers = new WeakMap<CryptoProvider, ProofHasher>();

function hasherFor(p: CryptoProvider): ProofHasher {
  let h = hashers.get(p);
  if (!h) hashers.set(p, (h = new ProofHasher(p)));
  return h;
}

/** Piece `k` of batch `s` (see {@link Shared}). */
function piece(s: Shared, k: number): Uint8Array {
  const p = s.pieces;
  return new Uint8Array(s.bufs[p[3 * k]!]!, p[3 * k + 1], p[3 * k + 2]);
}

/** Where a signing input in several pieces is put together (per thread, grown as needed). */
let joined = new Uint8Array(4096);

/** The signing input of job `i`: its one piece, or its pieces copied together. */
function signingInput(s: Shared, i: number): Uint8Array {
  const from = s.inP[i]!;
  const to = s.leafP[i]! >= 0 ? s.leafP[i]! : s.inP[i + 1]!;
  if (to - from === 1) return piece(s, from);
  let len = 0;
  for (let k = from; k < to; k++) len += s.pieces[3 * k + 2]!;
  if (joined.length < len) joined = new Uint8Array(2 * len);
  let at = 0;
  for (let k = from; k < to; k++) {
    const b = piece(s, k);
    joined.set(b, at);
    at += b.length;
  }
  return joined.subarray(0, len);
}

/** Run job `i` and record its result bits. */
function runJob(s: Shared, i: number, p: CryptoProvider): void {
  let bits = 0;
  const k = s.keyIdx[i]!;
  if (k >= 0) {
    let ok = false;
    try {
      ok = p.ed25519Verify(
        s.keys.subarray(32 * k, 32 * k + 32),
        signingInput(s, i),
        s.sigs.subarray(64 * i, 64 * i + 64),
      );
    } catch {
      ok = false;
    }
    bits |= SIG_DONE | (ok ? SIG_OK : 0);
  } else if (k === -2) bits |= SIG_DONE;
  const idx = s.incIdx[i]!;
  if (idx >= 0) {
    const leaf = s.leafP[i]!;
    const proof: Uint8Array[] = [];
    for (let h = leaf + 1; h < s.prEnd[i]!; h++) proof.push(piece(s, h));
    let ok = false;
    try {
      const h = hasherFor(p);
      h.begin();
      verifyInclusion(piece(s, leaf), idx, s.size, proof, s.root, h.provider);
      ok = true;
    } catch {
      ok = false;
    }
    bits |= INC_DONE | (ok ? INC_OK : 0);
  }
  Atomics.store(s.status, i, bits | 0x80);
}

/** Claim chunks until none are left (or, with `stop`, none that begins below job `stop`). */
function drain(s: Shared, p: CryptoProvider, stop = Infinity): void {
  for (;;) {
    if (Atomics.load(s.counter, 0) * CHUNK >= stop) return;
    const c = Atomics.add(s.counter, 0, 1);
    const from = c * CHUNK;
    if (from >= s.n) return;
    const to = Math.min(s.n, from + CHUNK);
    for (let i = from; i < to; i++) runJob(s, i, p);
  }
}

/** The worker script: next to this module when built; from dist when running from source. */
function workerScript(): URL | undefined {
  for (const rel of ['./node-checks.js', '../dist/node-checks.js']) {
    const u = new URL(rel, import.meta.url);
    if (u.protocol === 'file:' && existsSync(fileURLToPath(u))) return u;
  }
  return undefined;
}

/**
 * A worker thread. Between walks it waits in a small pool (per backend) for {@link IDLE_MS},
 * so that walks in quick succession (a server, a test suite) do not each pay its start-up of
 * tens of milliseconds; then it is stopped. It never keeps the process alive while idle.
 */
class Helper {
  readonly worker: Worker;
  #alive = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #waits = new Map<number, () => void>();

  constructor(
    script: URL,
    readonly backend: BackendName,
  ) {
    this.worker = new Worker(script, {
      workerData: { kind: 'tibet-cbom-node-checks', backend } satisfies WorkerInput,
    });
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => {
      this.#waits.get(m.done)?.();
      this.#waits.delete(m.done);
    });
    const gone = (): void => {
      this.#alive = false;
      for (const w of this.#waits.values()) w();
      this.#waits.clear();
      this.#leavePool();
    };
    this.worker.once('error', gone);
    this.worker.once('exit', gone);
  }

  get alive(): boolean {
    return this.#alive;
  }

  post(m: ToWorker): void {
    if (!this.#alive) return;
    try {
      this.worker.postMessage(m);
    } catch {
      // a worker that cannot take the message leaves those jobs to the caller
    }
  }

  /** Resolves when the worker is through with every batch of walk `run` (or is gone). */
  through(run: number): Promise<void> {
    if (!this.#alive) return Promise.resolve();
    this.worker.ref(); // the walk waits for it
    const p = new Promise<void>((resolve) => this.#waits.set(run, resolve));
    this.post({ end: run });
    return p.then(() => {
      this.worker.unref();
    });
  }

  /** Back to the pool, or stopped when the pool is full. */
  release(): void {
    if (!this.#alive) return;
    const list = pool.get(this.backend) ?? [];
    pool.set(this.backend, list);
    if (list.length >= MAX_WORKERS) {
      this.stop();
      return;
    }
    list.push(this);
    this.#timer = setTimeout(() => this.stop(), IDLE_MS);
    this.#timer.unref();
  }

  /** Out of the pool for a walk. */
  take(): this {
    clearTimeout(this.#timer);
    this.#leavePool();
    return this;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#leavePool();
    this.#alive = false;
    void this.worker.terminate();
  }

  #leavePool(): void {
    const list = pool.get(this.backend);
    const i = list ? list.indexOf(this) : -1;
    if (i >= 0) list!.splice(i, 1);
  }
}

/** At most this many workers per walk, and in the pool. */
const MAX_WORKERS = 7;
/** How long an idle worker waits in the pool for the next walk. */
const IDLE_MS = 2000;
const pool = new Map<BackendName, Helper[]>();
let runs = 0;

/**
 * A queue of node checks for one walk. {@link NodeChecks.add} returns the job's number;
 * {@link NodeChecks.finish} returns every job's result bits ({@link SIG_OK}, {@link INC_OK}, …)
 * by that number. Workers are used only with one of the stock crypto backends (a caller's own
 * provider is used inline, on this thread, for every job), once at least
 * {@link MIN_PARALLEL_JOBS} jobs are queued, and when `workers` (default: cores − 1, at most 7)
 * is above 0.
 */
export class NodeChecks {
  readonly #p: CryptoProvider;
  readonly #want: number;
  #checkpoint: { root: Uint8Array; size: number } | undefined;
  #pending: NodeCheckJob[] = [];
  readonly #batches: Shared[] = [];
  #count = 0;
  #helpers: Helper[] | undefined;
  #closed = false;

  constructor(p: CryptoProvider, workers?: number) {
    this.#p = p;
    const stock = p === getProvider(p.name);
    this.#want = stock
      ? Math.min(MAX_WORKERS, workers ?? Math.min(MAX_WORKERS, availableParallelism() - 1))
      : 0;
  }

  /** Worker threads started so far. */
  get workers(): number {
    return this.#helpers?.length ?? 0;
  }

  /** Jobs queued so far. */
  get size(): number {
    return this.#count;
  }

  /** The checkpoint that inclusion proofs queued from now on are checked against. */
  setCheckpoint(checkpoint: { root: Uint8Array; size: number } | undefined): void {
    this.flush();
    this.#checkpoint = checkpoint;
  }

  /** Queue one node's checks; returns the job's number. */
  add(job: NodeCheckJob): number {
    if (this.#closed) throw new Error('node checks already finished');
    const id = this.#count++;
    this.#pending.push(job);
    // (the first batch is small, so that started workers begin checking sooner)
    if (this.#pending.length >= (this.#batches.length === 0 ? FIRST_BATCH : BATCH)) this.flush();
    return id;
  }

  /**
   * Start the workers now, before {@link MIN_PARALLEL_JOBS} jobs are queued, when the caller
   * expects that many: they take tens of milliseconds to load. If fewer come, `finish` stops
   * them and runs every job on this thread.
   */
  prestart(): void {
    if (!this.#helpers && this.#want > 0 && !this.#closed) this.#start();
  }

  /** Hand the jobs queued so far to the workers (starting them once there are enough). */
  flush(): void {
    if (!this.#pending.length) return;
    const s = pack(this.#pending, this.#checkpoint);
    this.#pending = [];
    this.#batches.push(s);
    if (this.#helpers) for (const h of this.#helpers) h.post({ batch: s });
    else if (this.#want > 0 && this.#count >= MIN_PARALLEL_JOBS) this.#start();
  }

  #start(): void {
    const script = workerScript();
    const helpers: Helper[] = [];
    this.#helpers = helpers;
    if (!script) return;
    const backend = this.#p.name;
    const idle = pool.get(backend) ?? [];
    while (helpers.length < this.#want) {
      const h = idle.find((x) => x.alive);
      if (h) helpers.push(h.take());
      else
        try {
          helpers.push(new Helper(script, backend));
        } catch {
          break;
        }
    }
    for (const h of helpers) for (const s of this.#batches) h.post({ batch: s });
  }

  /**
   * Help on this thread with the jobs numbered below `end` that no thread has claimed yet
   * (whole batches: those that begin below it), and return; the workers go on meanwhile. With
   * `leave`, the last `leave` of those jobs per worker are left to the workers (as a rule: in
   * chunks). A walk helps with the signatures so, then builds its page while the workers check
   * the last signatures and the inclusion proofs queued after them: `leave` is there so that
   * they are still busy when the page is done (whatever is left then, this thread helps with
   * in `finish`).
   */
  help(end: number, leave = 0): void {
    this.flush();
    const left = leave > 0 ? leave * this.workers : 0;
    const stop = end - left;
    let at = 0;
    for (const s of this.#batches) {
      if (at >= stop) break;
      drain(s, this.#p, left > 0 ? stop - at : Infinity);
      at += s.n;
    }
  }

  /**
   * Help with the remaining jobs on this thread, wait for the workers, run whatever a failed
   * worker left, and return each job's result bits.
   */
  async finish(): Promise<Uint8Array> {
    this.flush();
    this.#closed = true;
    const p = this.#p;
    let helpers = this.#helpers ?? [];
    if (this.#count < MIN_PARALLEL_JOBS) {
      // started early for jobs that did not come: not worth waiting for (a job one of them
      // claimed and did not finish is run below)
      for (const h of helpers) h.release();
      helpers = [];
    }
    for (const s of this.#batches) drain(s, p);
    const run = ++runs;
    await Promise.all(helpers.map((h) => h.through(run)));
    for (const h of helpers) h.release();
    const out = new Uint8Array(this.#count);
    let at = 0;
    for (const s of this.#batches) {
      for (let i = 0; i < s.n; i++) {
        let bits = Atomics.load(s.status, i);
        if (!(bits & 0x80)) {
          runJob(s, i, p); // claimed by a worker that did not finish it
          bits = Atomics.load(s.status, i);
        }
        out[at + i] = bits & 0x7f;
      }
      at += s.n;
    }
    return out;
  }

  /** Stop the workers without waiting for their jobs (the walk failed). */
  cancel(): void {
    this.#closed = true;
    for (const h of this.#helpers ?? []) h.stop();
  }
}

/**
 * Check `jobs` at once: {@link NodeChecks} with every job queued up front. `root`/`size` are
 * the checkpoint every inclusion proof is checked against.
 */
export function startNodeChecks(
  jobs: readonly NodeCheckJob[],
  p: CryptoProvider,
  checkpoint: { root: Uint8Array; size: number } | undefined,
  workers?: number,
): NodeChecks {
  const c = new NodeChecks(p, workers);
  c.setCheckpoint(checkpoint);
  for (const j of jobs) c.add(j);
  c.flush();
  return c;
}

if (
  !isMainThread &&
  parentPort &&
  (workerData as Partial<WorkerInput> | null)?.kind === 'tibet-cbom-node-checks'
) {
  const port = parentPort;
  const p = getProvider((workerData as WorkerInput).backend);
  port.on('message', (m: ToWorker) => {
    if ('end' in m) port.postMessage({ done: m.end } satisfies FromWorker);
    else drain(m.batch, p);
  });
}
