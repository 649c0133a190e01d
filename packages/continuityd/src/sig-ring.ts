/**
 * The appended tokens' signature checks on worker threads, handed over in shared memory: the
 * writer puts each check (key, signature, signed message) into a slot of a ring and goes on;
 * the workers take slots one at a time as they become free, so a burst spreads over them
 * check by check, and a busy worker takes its next check without a message or a wake-up. A
 * worker that writes a verdict rings the writer (one message) only when the writer asks to be
 * rung (it does not while it will look on its own soon: {@link SigRing.ringing}) and has not
 * been rung since it last looked; the writer then collects every verdict there is
 * (docs/continuityd.md §8.1).
 *
 * Layout of the control block (Int32, one SharedArrayBuffer): the counters below, then one
 * state word per slot, then each slot's message offset and length in the message ring, then
 * each slot's 32-byte key and 64-byte signature. The signed messages are in a second buffer,
 * a {@link BatchRing}, taken and freed first in, first out.
 *
 * A slot's state moves EMPTY → READY (the writer, after filling it) → TAKEN + worker (the
 * worker, by compare-and-swap, so exactly one worker checks it) → OK or BAD (that worker, by
 * compare-and-swap from its own TAKEN) → EMPTY (the writer, once it has read the verdict). A
 * worker that dies leaves its slots TAKEN by it: the writer takes them back (compare-and-swap
 * to MINE) and checks them on its own thread, so a lost worker never turns into a skipped
 * check, and a late write from anyone else cannot land in a slot the writer has taken back.
 */
import type { Worker } from 'node:worker_threads';
import type { BackendName, CryptoProvider } from '@tibet/core';
import { BatchRing, startWorker } from './worker-pool.js';

/** Counters at the start of the control block. */
const PUBLISHED = 0; // sequence number of the next slot the writer fills (wraps at 2^32)
const HINT = 1; // no slot before this sequence number is READY
const STOP = 2;
const SLEEPERS = 3; // workers waiting on PUBLISHED
const BELL = 4; // 1: a worker has rung the writer, which has not looked since
const CALL = 5; // 1: the writer wants to be rung (0: it will look on its own soon)
const COUNTERS = 8;

const EMPTY = 0;
export const READY = 1;
const OK = 2;
const BAD = 3;
/** Taken back by the writer, which checks it itself. */
const MINE = 4;
/** TAKEN + worker number. */
export const TAKEN = 16;

/** What a ring worker gets in its workerData. */
export interface SigRingData {
  ctl: SharedArrayBuffer;
  messages: SharedArrayBuffer;
  slots: number;
  worker: number;
}

interface Views {
  ctl: Int32Array;
  /** Per slot: message offset, message length. */
  meta: Int32Array;
  /** Per slot: key (32 bytes) then signature (64 bytes). */
  keySig: Uint8Array;
  messages: Uint8Array;
}

/** The slots' state words of a ring (for tests that play a worker). */
export function slotStates(d: SigRingData): Int32Array {
  return new Int32Array(d.ctl, 4 * COUNTERS, d.slots);
}

function views(ctl: SharedArrayBuffer, messages: SharedArrayBuffer, slots: number): Views {
  return {
    ctl: new Int32Array(ctl, 0, COUNTERS + slots),
    meta: new Int32Array(ctl, 4 * (COUNTERS + slots), 2 * slots),
    keySig: new Uint8Array(ctl, 4 * (COUNTERS + 3 * slots), 96 * slots),
    messages: new Uint8Array(messages),
  };
}

/**
 * The worker's side: take READY slots, check them, write the verdicts; sleep on PUBLISHED
 * when there are none. Runs until STOP is set (or the worker is terminated); the worker's
 * event loop does not run meanwhile, and it needs none: it gets no messages.
 */
export function serveSigRing(
  d: SigRingData,
  provider: CryptoProvider,
  ring: (message: null) => void,
): void {
  const { ctl, meta, keySig, messages } = views(d.ctl, d.messages, d.slots);
  const mask = d.slots - 1;
  const mine = TAKEN + d.worker;
  // checks read private copies: Node's verify would otherwise read shared memory the writer
  // could in principle change under it (it does not: a slot is the taker's until its verdict)
  const key = new Uint8Array(32);
  const sig = new Uint8Array(64);
  let msg = new Uint8Array(4096);
  for (;;) {
    if (Atomics.load(ctl, STOP) !== 0) return;
    const published = Atomics.load(ctl, PUBLISHED);
    const hint = Atomics.load(ctl, HINT);
    let span = (published - hint) | 0;
    let from = hint;
    if (span < 0 || span > d.slots) {
      // a hint from before a wrap or far behind: look at every slot in use
      from = (published - d.slots) | 0;
      span = d.slots;
    }
    let slot = -1;
    for (let i = 0; i < span; i++) {
      const n = (from + i) | 0;
      const s = n & mask;
      if (
        Atomics.load(ctl, COUNTERS + s) === READY &&
        Atomics.compareExchange(ctl, COUNTERS + s, READY, mine) === READY
      ) {
        slot = s;
        Atomics.compareExchange(ctl, HINT, hint, (n + 1) | 0);
        break;
      }
    }
    if (slot < 0) {
      Atomics.add(ctl, SLEEPERS, 1);
      // sleeps only if nothing was published since `published` was read; woken by the writer
      // (or by close); the timeout is a guard, not the mechanism
      if (Atomics.load(ctl, STOP) === 0) Atomics.wait(ctl, PUBLISHED, published, 1000);
      Atomics.sub(ctl, SLEEPERS, 1);
      continue;
    }
    const at = meta[2 * slot]!;
    const len = meta[2 * slot + 1]!;
    let ok = false;
    if (at >= 0 && len >= 0 && at + len <= messages.length) {
      if (msg.length < len) msg = new Uint8Array(Math.max(len, 2 * msg.length));
      key.set(keySig.subarray(96 * slot, 96 * slot + 32));
      sig.set(keySig.subarray(96 * slot + 32, 96 * slot + 96));
      msg.set(messages.subarray(at, at + len));
      try {
        ok = provider.ed25519Verify(key, msg.subarray(0, len), sig);
      } catch {
        ok = false;
      }
    }
    Atomics.compareExchange(ctl, COUNTERS + slot, mine, ok ? OK : BAD);
    if (Atomics.load(ctl, CALL) !== 0 && Atomics.compareExchange(ctl, BELL, 0, 1) === 0) ring(null);
  }
}

interface Member {
  worker: Worker;
  online: boolean;
  dead: boolean;
}

/**
 * The writer's side. `settle` receives the verdicts collected at each look (a check's tag
 * and whether its signature verified), each check's exactly once.
 */
export class SigRing<T> {
  readonly #v: Views;
  readonly #slots: number;
  readonly #mask: number;
  readonly #messages: BatchRing;
  readonly #members: Member[] = [];
  readonly #tags: (T | undefined)[];
  readonly #regions: (Uint8Array | undefined)[];
  /**
   * Checks submitted while every slot (or the message ring) was in use, with copies of their
   * bytes, first in first out: they take slots as verdicts free them.
   */
  #waiting: { key: Uint8Array; sig: Uint8Array; message: Uint8Array; tag: T }[] = [];
  #waitingHead = 0;
  /** Sequence numbers: the oldest slot not yet emptied, and the next to fill. */
  #tail = 0;
  #next = 0;
  #closed = false;
  #referenced = false;
  #alive = 0;
  #ready = 0;

  constructor(
    n: number,
    script: URL,
    backend: BackendName,
    readonly provider: CryptoProvider,
    readonly settle: (done: [T, boolean][]) => void,
    o: { slots?: number; messageBytes?: number } = {},
  ) {
    const slots = o.slots ?? 1024;
    if (slots < 2 || (slots & (slots - 1)) !== 0) throw new RangeError('slots: a power of two');
    this.#slots = slots;
    this.#mask = slots - 1;
    this.#messages = new BatchRing(o.messageBytes ?? 1 << 20);
    const ctl = new SharedArrayBuffer(4 * (COUNTERS + 3 * slots) + 96 * slots);
    this.#v = views(ctl, this.#messages.buffer, slots);
    this.#v.ctl[CALL] = 1;
    this.#tags = new Array<T | undefined>(slots);
    this.#regions = new Array<Uint8Array | undefined>(slots);
    for (let i = 0; i < n; i++) {
      const data: SigRingData = { ctl, messages: this.#messages.buffer, slots, worker: i };
      let worker: Worker;
      try {
        worker = startWorker(script, backend, data);
      } catch {
        continue; // one fewer: its share goes to the others, or to the writer
      }
      worker.unref();
      const m: Member = { worker, online: false, dead: false };
      this.#alive++;
      worker.on('online', () => {
        if (m.dead) return;
        m.online = true;
        this.#ready++;
      });
      worker.on('message', () => this.collect());
      const die = (): void => {
        if (m.dead) return;
        m.dead = true;
        this.#alive--;
        if (m.online) this.#ready--;
        worker.unref();
        if (!this.#closed) this.#takeBack(i);
      };
      worker.on('error', die);
      worker.on('exit', die);
      this.#members.push(m);
    }
  }

  /** Workers that have not failed. */
  get alive(): number {
    return this.#alive;
  }

  /** Workers that have started and not failed. */
  get ready(): number {
    return this.#ready;
  }

  /** Checks submitted and not yet settled. */
  get pending(): number {
    return ((this.#next - this.#tail) | 0) + this.#waiting.length - this.#waitingHead;
  }

  /**
   * Queue one check: `key` (32 bytes), `sig` (64 bytes), the signed `message`, and the `tag`
   * its verdict is settled with (not undefined). When every slot is in use it waits, with
   * copies of its bytes, for one to be freed. False, with nothing queued, when the ring is
   * closed or has no live worker, or the message is larger than the whole message ring: then
   * the caller checks it itself.
   */
  submit(key: Uint8Array, sig: Uint8Array, message: Uint8Array, tag: T): boolean {
    if (this.#closed || key.length !== 32 || sig.length !== 64) return false;
    if (this.#alive === 0 || message.length > this.#messages.buffer.byteLength) return false;
    if (this.#waitingHead === this.#waiting.length && this.#publish(key, sig, message, tag))
      return true;
    // copies (new Uint8Array(x) copies; a Buffer's slice() would not): the caller may reuse
    // its buffers at once
    this.#waiting.push({
      key: new Uint8Array(key),
      sig: new Uint8Array(sig),
      message: new Uint8Array(message),
      tag,
    });
    if (!this.#referenced) this.#ref(true);
    return true;
  }

  /** Fill the next slot and publish it; false when no slot or no message room is free. */
  #publish(key: Uint8Array, sig: Uint8Array, message: Uint8Array, tag: T): boolean {
    if (((this.#next - this.#tail) | 0) >= this.#slots) return false;
    const region = this.#messages.copyIn(message);
    if (!region && message.length > 0) return false;
    const { ctl, meta, keySig } = this.#v;
    const s = this.#next & this.#mask;
    meta[2 * s] = region ? region.byteOffset : 0;
    meta[2 * s + 1] = message.length;
    keySig.set(key, 96 * s);
    keySig.set(sig, 96 * s + 32);
    this.#tags[s] = tag;
    this.#regions[s] = region;
    Atomics.store(ctl, COUNTERS + s, READY);
    this.#next = (this.#next + 1) | 0;
    Atomics.store(ctl, PUBLISHED, this.#next);
    if (Atomics.load(ctl, SLEEPERS) > 0) Atomics.notify(ctl, PUBLISHED, 1);
    if (!this.#referenced) this.#ref(true);
    return true;
  }

  /** Keep the process alive while checks are pending (an idle ring never holds it open). */
  #ref(on: boolean): void {
    this.#referenced = on;
    for (const m of this.#members) {
      if (m.dead) continue;
      if (on) m.worker.ref();
      else m.worker.unref();
    }
  }

  /**
   * Whether the workers ring the writer when they write a verdict (the default). A writer
   * that is about to look anyway (it will wake for something else soon) turns it off and calls
   * {@link collect} then; turning it back on looks at once, so no verdict written meanwhile
   * goes unseen.
   */
  set ringing(on: boolean) {
    Atomics.store(this.#v.ctl, CALL, on ? 1 : 0);
    if (on) this.collect();
  }

  /** Read every verdict written since the last look; empty the slots settled in order. */
  collect(): void {
    const { ctl } = this.#v;
    Atomics.store(ctl, BELL, 0); // before reading: a verdict written after this rings again
    const done: [T, boolean][] = [];
    for (let n = this.#tail; n !== this.#next; n = (n + 1) | 0) {
      const s = n & this.#mask;
      const st = Atomics.load(ctl, COUNTERS + s);
      if ((st === OK || st === BAD) && this.#tags[s] !== undefined) {
        done.push([this.#tags[s], st === OK]);
        this.#tags[s] = undefined;
      }
    }
    this.#retire();
    if (done.length) this.settle(done);
  }

  /** Empty the settled slots at the tail, freeing their messages (first in, first out). */
  #retire(): void {
    const { ctl } = this.#v;
    while (this.#tail !== this.#next) {
      const s = this.#tail & this.#mask;
      if (this.#tags[s] !== undefined) break;
      Atomics.store(ctl, COUNTERS + s, EMPTY);
      const r = this.#regions[s];
      if (r) this.#messages.free(r);
      this.#regions[s] = undefined;
      this.#tail = (this.#tail + 1) | 0;
    }
    while (this.#waitingHead < this.#waiting.length) {
      const w = this.#waiting[this.#waitingHead]!;
      if (!this.#publish(w.key, w.sig, w.message, w.tag)) break;
      this.#waiting[this.#waitingHead++] = undefined as never;
    }
    if (this.#waitingHead === this.#waiting.length) {
      this.#waiting = [];
      this.#waitingHead = 0;
    }
    if (this.pending === 0 && this.#referenced) this.#ref(false);
  }

  /**
   * A worker died: check here whatever it had taken, and, when no worker is left, whatever is
   * still waiting.
   */
  #takeBack(worker: number): void {
    const none = this.#alive === 0;
    this.#checkHere((st) => st === TAKEN + worker || (none && st === READY), none);
  }

  /**
   * Take back the pending slots whose state `which` picks, and with `waiting` the checks
   * waiting for a slot; check them here, settle them.
   */
  #checkHere(which: (state: number) => boolean, waiting: boolean): void {
    const { ctl, meta, keySig, messages } = this.#v;
    const done: [T, boolean][] = [];
    if (waiting) {
      for (let i = this.#waitingHead; i < this.#waiting.length; i++) {
        const w = this.#waiting[i]!;
        done.push([w.tag, this.#verify(w.key, w.message, w.sig)]);
      }
      this.#waiting = [];
      this.#waitingHead = 0;
    }
    for (let n = this.#tail; n !== this.#next; n = (n + 1) | 0) {
      const s = n & this.#mask;
      const tag = this.#tags[s];
      if (tag === undefined) continue;
      const st = Atomics.load(ctl, COUNTERS + s);
      if (!which(st) || Atomics.compareExchange(ctl, COUNTERS + s, st, MINE) !== st) continue;
      const at = meta[2 * s]!;
      const ok = this.#verify(
        keySig.slice(96 * s, 96 * s + 32),
        messages.slice(at, at + meta[2 * s + 1]!),
        keySig.slice(96 * s + 32, 96 * s + 96),
      );
      done.push([tag, ok]);
      this.#tags[s] = undefined;
    }
    this.collect();
    if (done.length) this.settle(done);
  }

  #verify(key: Uint8Array, message: Uint8Array, sig: Uint8Array): boolean {
    try {
      return this.provider.ed25519Verify(key, message, sig);
    } catch {
      return false;
    }
  }

  /**
   * Stop the workers; checks still pending are then made here (and settled), so none is left
   * hanging and none is skipped.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#v.ctl, STOP, 1);
    Atomics.notify(this.#v.ctl, PUBLISHED);
    await Promise.all(this.#members.map((m) => m.worker.terminate()));
    this.#checkHere((st) => st === READY || st >= TAKEN, true);
  }
}
