/**
 * The worker threads that work off the calling thread: {@link WorkerPool}, for
 * {@link verifyLog} (batches of log lines: parse, hash, verify, by message), and the workers of
 * the writer's `SigRing` (appended tokens' signatures, in shared memory). Each runs
 * verify-worker.js; see there and sig-ring.ts for the protocols.
 *
 * A worker is referenced (keeps the process alive) only while it has requests in flight, so
 * an idle pool never holds a process open. A request whose worker fails or exits is rejected;
 * callers then do the work on their own thread, so a lost worker never turns into a skipped
 * check.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BackendName } from '@tibet/core';
import type {
  BatchResult,
  FromWorker,
  LineBatch,
  ToWorker,
  VerifyWorkerData,
} from './verify-worker.js';
import type { SigRingData } from './sig-ring.js';

/** The worker script: next to this module when built; from dist when running from source. */
export function workerScript(): URL | undefined {
  for (const rel of ['./verify-worker.js', '../dist/verify-worker.js']) {
    const u = new URL(rel, import.meta.url);
    if (u.protocol === 'file:' && existsSync(fileURLToPath(u))) return u;
  }
  return undefined;
}

/**
 * The Node options for a worker: left to Node (which passes the process's own on, less those a
 * worker cannot take, such as V8 flags like `--max-old-space-size`) unless the process runs
 * with the family's `@tibet/source` export condition. The worker script is built JavaScript
 * and must load the built packages, while that condition (the test runner's) would point them
 * at TypeScript sources it cannot load; then the options are the process's without it.
 */
function workerExecArgv(): string[] | undefined {
  const out: string[] = [];
  const argv = process.execArgv;
  let strip = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((a === '--conditions' || a === '-C') && argv[i + 1] === SOURCE_CONDITION) {
      i++;
      strip = true;
    } else if (a === `--conditions=${SOURCE_CONDITION}`) strip = true;
    else out.push(a);
  }
  return strip ? out : undefined;
}

/** Only the export conditions of a list of Node options (what a worker must keep). */
function conditionsOnly(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((a === '--conditions' || a === '-C') && i + 1 < argv.length) out.push(a, argv[++i]!);
    else if (a.startsWith('--conditions=')) out.push(a);
  }
  return out;
}

/**
 * Start a verify worker (serving {@link WorkerPool} messages, or, given `ring`, the slots of a
 * `SigRing`). Explicit options that a worker refuses (V8 flags beside the source
 * condition) are dropped down to the export conditions rather than failing the start.
 */
export function startWorker(script: URL, backend: BackendName, ring?: SigRingData): Worker {
  const workerData = { kind: 'tibet-verify-worker', backend, ring } satisfies VerifyWorkerData;
  const execArgv = workerExecArgv();
  try {
    return new Worker(script, { workerData, execArgv });
  } catch (e) {
    if (!execArgv || (e as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return new Worker(script, { workerData, execArgv: conditionsOnly(execArgv) });
  }
}

const SOURCE_CONDITION = '@tibet/source';

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve(r: unknown): void; reject(e: unknown): void }>;
  online: boolean;
  dead: boolean;
}

/**
 * Shared memory for the line batches handed to workers, used first in, first out: a batch's
 * bytes are copied in once, the workers read them in place (a SharedArrayBuffer crosses to a
 * worker without a copy), and the region is freed when the batch's result has been applied —
 * until then the caller can still check the batch on its own thread should its worker fail.
 * Nothing else writes a region while it is allocated.
 */
export class BatchRing {
  readonly #buf: Uint8Array;
  /** Allocated regions, oldest first. */
  readonly #used: { start: number; end: number }[] = [];

  constructor(bytes: number) {
    this.#buf = new Uint8Array(new SharedArrayBuffer(bytes));
  }

  /**
   * A copy of `src` in the ring, or undefined when it has no room for it (then the caller
   * keeps a private copy). Regions must be freed in the order they were taken.
   */
  copyIn(src: Uint8Array): Uint8Array | undefined {
    const n = src.length;
    const size = this.#buf.length;
    if (n === 0 || n > size) return undefined;
    let at: number;
    const first = this.#used[0];
    const last = this.#used[this.#used.length - 1];
    if (!first || !last) at = 0;
    else if (last.start >= first.start) {
      // in use: [first.start, last.end); free: after it, then before it
      if (last.end + n <= size) at = last.end;
      else if (n <= first.start) at = 0;
      else return undefined;
    } else if (last.end + n <= first.start)
      at = last.end; // wrapped: free between the two
    else return undefined;
    this.#used.push({ start: at, end: at + n });
    const view = this.#buf.subarray(at, at + n);
    view.set(src);
    return view;
  }

  /** Free the oldest region; `view` must be it. */
  free(view: Uint8Array): void {
    const u = this.#used[0];
    if (!u || view.buffer !== this.#buf.buffer || view.byteOffset !== u.start)
      throw new Error('BatchRing: regions are freed oldest first');
    this.#used.shift();
  }

  /** The shared memory itself (for the workers that read the regions). */
  get buffer(): SharedArrayBuffer {
    return this.#buf.buffer as SharedArrayBuffer;
  }

  /** Whether `view` lies in this ring. */
  holds(view: Uint8Array): boolean {
    return view.buffer === this.#buf.buffer;
  }
}

export class WorkerPool {
  readonly #slots: Slot[] = [];
  #next = 0;

  /**
   * @param resolveKey answers a worker's request for actors' keys (line batches name actors,
   *   not keys); a throwing or missing resolver answers "unknown".
   */
  constructor(
    n: number,
    script: URL,
    backend: BackendName,
    resolveKey?: (actor: string, kid: string) => Uint8Array | undefined,
  ) {
    for (let i = 0; i < n; i++) {
      let worker: Worker;
      try {
        worker = startWorker(script, backend);
      } catch {
        // a worker that cannot start is one fewer: its share is checked on the calling thread
        continue;
      }
      worker.unref();
      const slot: Slot = { worker, pending: new Map(), online: false, dead: false };
      worker.on('online', () => {
        slot.online = true;
      });
      worker.on('message', (m: FromWorker) => {
        switch (m.t) {
          case 'need': {
            const keys: [string, Uint8Array | null][] = m.pairs.map((p) => {
              const [actor = '', kid = ''] = p.split('\n');
              let k: Uint8Array | undefined;
              try {
                k = resolveKey?.(actor, kid);
              } catch {
                k = undefined;
              }
              return [p, k ? Uint8Array.from(k) : null];
            });
            worker.postMessage({ t: 'keys', id: m.id, keys } satisfies ToWorker);
            break;
          }
          case 'done':
            this.#settle(slot, m.id, (p) => p.resolve(m.result));
            break;
          case 'fail':
            this.#settle(slot, m.id, (p) => p.reject(new Error(m.message)));
            break;
        }
      });
      const die = (e: unknown): void => {
        if (slot.dead) return;
        slot.dead = true;
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
        worker.unref();
      };
      worker.on('error', die);
      worker.on('exit', (code) => die(new Error(`verify worker exited with code ${code}`)));
      this.#slots.push(slot);
    }
  }

  #settle(
    slot: Slot,
    id: number,
    f: (p: { resolve(r: unknown): void; reject(e: unknown): void }) => void,
  ): void {
    const p = slot.pending.get(id);
    if (!p) return;
    slot.pending.delete(id);
    if (slot.pending.size === 0) slot.worker.unref();
    f(p);
  }

  /** Workers that have not failed. */
  get alive(): number {
    return this.#slots.filter((s) => !s.dead).length;
  }

  /** Workers that have started and not failed (requests to a booting worker wait for it). */
  get ready(): number {
    return this.#slots.filter((s) => s.online && !s.dead).length;
  }

  /** The live worker with the fewest requests in flight (round robin among equals). */
  #pick(): Slot | undefined {
    let best: Slot | undefined;
    const n = this.#slots.length;
    for (let k = 0; k < n; k++) {
      const s = this.#slots[(this.#next + k) % n]!;
      if (!s.dead && (!best || s.pending.size < best.pending.size)) best = s;
    }
    this.#next++;
    return best;
  }

  #send<R>(msg: ToWorker, transfer: ArrayBuffer[]): Promise<R> {
    const slot = this.#pick();
    if (!slot) return Promise.reject(new Error('no verify worker alive'));
    return new Promise<R>((resolve, reject) => {
      if (slot.pending.size === 0) slot.worker.ref();
      slot.pending.set(msg.id, { resolve, reject });
      slot.worker.postMessage(msg, transfer);
    });
  }

  /**
   * Parse, hash and verify a batch of log lines. The worker reads the batch in place when it
   * lies in shared memory ({@link BatchRing}), else gets a copy; either way the caller keeps it,
   * to check it on its own thread should the worker fail.
   */
  run(b: LineBatch): Promise<BatchResult> {
    return this.#send<BatchResult>(
      { t: 'batch', id: b.id, first: b.first, buf: b.buf, ends: b.ends },
      [],
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
