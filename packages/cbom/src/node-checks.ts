/**
 * The expensive per-node checks of a walk — each token's Ed25519 signature and each log
 * line's RFC 9162 inclusion proof — run over worker threads and the calling thread together.
 *
 * The jobs are packed into shared memory; every thread (the workers and, once it has nothing
 * else to do, the caller) claims chunks of them from one atomic counter, so no thread idles
 * while another still has work, and a result is written by the one thread that claimed the
 * job. A worker that fails or dies leaves its unfinished jobs unmarked; the caller then runs
 * them itself. The checks themselves are the same functions the inline path calls
 * (`provider.ed25519Verify`, `verifyInclusion`), on the same bytes.
 *
 * This module is also the worker entry: loaded by a Worker it serves one run and exits.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { getProvider, type BackendName, type CryptoProvider } from '@tibet/core';
import { verifyInclusion } from '@tibet/continuityd';

/** One node's checks: a signature (when a key was found), an inclusion proof (when cut). */
export interface NodeCheckJob {
  sig?: { key: Uint8Array; input: Uint8Array; signature: Uint8Array };
  inclusion?: { leaf: Uint8Array; index: number; proof: readonly Uint8Array[] };
}

/** Result bits per job. */
export const SIG_DONE = 1;
export const SIG_OK = 2;
export const INC_DONE = 4;
export const INC_OK = 8;

/** Jobs per claim. */
const CHUNK = 32;
/** Below this many jobs the workers' start-up costs more than they save. */
export const MIN_PARALLEL_JOBS = 512;

interface Shared {
  n: number;
  counter: Int32Array;
  status: Uint8Array;
  keyIdx: Int32Array;
  keys: Uint8Array;
  inOff: Float64Array;
  inBytes: Uint8Array;
  sigs: Uint8Array;
  incIdx: Float64Array;
  leaves: Uint8Array;
  prOff: Uint32Array;
  prBytes: Uint8Array;
  root: Uint8Array;
  size: number;
}

interface WorkerInput {
  kind: 'tibet-cbom-node-checks';
  backend: BackendName;
  shared: Shared;
}

function sab(bytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(Math.max(8, bytes));
}

function pack(jobs: readonly NodeCheckJob[], root: Uint8Array | undefined, size: number): Shared {
  const n = jobs.length;
  const keyList: Uint8Array[] = [];
  const keyAt = new Map<Uint8Array, number>();
  let inLen = 0;
  let prCount = 0;
  for (const j of jobs) {
    if (j.sig) inLen += j.sig.input.length;
    if (j.inclusion) prCount += j.inclusion.proof.length;
  }
  const s: Shared = {
    n,
    counter: new Int32Array(sab(4)),
    status: new Uint8Array(sab(n)),
    keyIdx: new Int32Array(sab(4 * n)),
    keys: new Uint8Array(0),
    inOff: new Float64Array(sab(8 * (n + 1))),
    inBytes: new Uint8Array(sab(inLen)),
    sigs: new Uint8Array(sab(64 * n)),
    incIdx: new Float64Array(sab(8 * n)),
    leaves: new Uint8Array(sab(32 * n)),
    prOff: new Uint32Array(sab(4 * (n + 1))),
    prBytes: new Uint8Array(sab(32 * prCount)),
    root: new Uint8Array(sab(32)),
    size,
  };
  if (root) s.root.set(root);
  let off = 0;
  let pr = 0;
  jobs.forEach((j, i) => {
    s.inOff[i] = off;
    s.prOff[i] = pr;
    s.keyIdx[i] = -1;
    s.incIdx[i] = -1;
    if (j.sig) {
      let k = keyAt.get(j.sig.key);
      if (k === undefined) {
        k = keyList.push(j.sig.key) - 1;
        keyAt.set(j.sig.key, k);
      }
      s.keyIdx[i] = k;
      s.inBytes.set(j.sig.input, off);
      off += j.sig.input.length;
      if (j.sig.signature.length === 64) s.sigs.set(j.sig.signature, 64 * i);
    }
    if (j.inclusion && root) {
      s.incIdx[i] = j.inclusion.index;
      s.leaves.set(j.inclusion.leaf, 32 * i);
      for (const h of j.inclusion.proof) s.prBytes.set(h, 32 * pr++);
    }
  });
  s.inOff[n] = off;
  s.prOff[n] = pr;
  s.keys = new Uint8Array(sab(32 * keyList.length));
  keyList.forEach((k, i) => s.keys.set(k, 32 * i));
  return s;
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
        s.inBytes.subarray(s.inOff[i], s.inOff[i + 1]),
        s.sigs.subarray(64 * i, 64 * i + 64),
      );
    } catch {
      ok = false;
    }
    bits |= SIG_DONE | (ok ? SIG_OK : 0);
  }
  const idx = s.incIdx[i]!;
  if (idx >= 0) {
    const proof: Uint8Array[] = [];
    for (let h = s.prOff[i]!; h < s.prOff[i + 1]!; h++)
      proof.push(s.prBytes.subarray(32 * h, 32 * h + 32));
    let ok = false;
    try {
      verifyInclusion(s.leaves.subarray(32 * i, 32 * i + 32), idx, s.size, proof, s.root, p);
      ok = true;
    } catch {
      ok = false;
    }
    bits |= INC_DONE | (ok ? INC_OK : 0);
  }
  Atomics.store(s.status, i, bits | 0x80);
}

/** Claim chunks until none are left. */
function drain(s: Shared, p: CryptoProvider): void {
  for (;;) {
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

/** A run of node checks in progress. */
export interface NodeCheckRun {
  /**
   * Help with the remaining jobs on this thread, wait for the workers, run whatever a failed
   * worker left, and return each job's result bits ({@link SIG_OK}, {@link INC_OK}, …).
   */
  finish(): Promise<Uint8Array>;
  /** Worker threads started. */
  readonly workers: number;
}

/**
 * Start checking `jobs`. Workers are used only with one of the stock crypto backends (a
 * caller's own provider is used inline, on this thread, for every job), when there are at
 * least {@link MIN_PARALLEL_JOBS} jobs and `workers` (default: cores − 1, at most 7) is above 0.
 * `root`/`size` are the checkpoint every inclusion proof is checked against.
 */
export function startNodeChecks(
  jobs: readonly NodeCheckJob[],
  p: CryptoProvider,
  checkpoint: { root: Uint8Array; size: number } | undefined,
  workers?: number,
): NodeCheckRun {
  const s = pack(jobs, checkpoint?.root, checkpoint?.size ?? 0);
  const stock = p === getProvider(p.name);
  const want = workers ?? Math.min(7, availableParallelism() - 1);
  const script = stock && want > 0 && jobs.length >= MIN_PARALLEL_JOBS ? workerScript() : undefined;
  const n = script ? Math.min(want, Math.ceil(jobs.length / CHUNK)) : 0;
  const ended: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    let w: Worker;
    try {
      w = new Worker(script!, {
        workerData: {
          kind: 'tibet-cbom-node-checks',
          backend: p.name,
          shared: s,
        } satisfies WorkerInput,
      });
    } catch {
      break;
    }
    ended.push(
      new Promise<void>((resolve) => {
        w.once('message', () => resolve());
        w.once('error', () => resolve());
        w.once('exit', () => resolve());
      }),
    );
  }
  return {
    workers: ended.length,
    async finish(): Promise<Uint8Array> {
      drain(s, p);
      await Promise.all(ended);
      const out = new Uint8Array(s.n);
      for (let i = 0; i < s.n; i++) {
        let bits = Atomics.load(s.status, i);
        if (!(bits & 0x80)) {
          runJob(s, i, p); // claimed by a worker that did not finish it
          bits = Atomics.load(s.status, i);
        }
        out[i] = bits & 0x7f;
      }
      return out;
    },
  };
}

if (
  !isMainThread &&
  parentPort &&
  (workerData as Partial<WorkerInput> | null)?.kind === 'tibet-cbom-node-checks'
) {
  const d = workerData as WorkerInput;
  drain(d.shared, getProvider(d.backend));
  parentPort.postMessage('done');
}
