/**
 * The audit log writer (embedded mode): append-only JSONL segments, a hash chain, an RFC
 * 9162 Merkle tree kept as its frontier, signed C2SP checkpoints, group commit (appends that
 * arrive together share one fdatasync), crash recovery and fail-closed writes.
 *
 * An append resolves only once its line is durable. When a write or sync fails, the batch
 * and everything queued behind it are rejected, the segment is cut back to its last durable
 * length, and the log refuses further appends (`LOG_POISONED`) until it is reopened.
 */
import { constants, fdatasync as fsFdatasync, write as fsWrite } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  CoreError,
  equalBytes,
  fromBase64,
  getProvider,
  keyIdOf,
  parseToken,
  rfc3339,
  sha256Hex,
  systemClock,
  toBase64,
  toHex,
  tokenHash,
  type Clock,
  type CryptoProvider,
  type Identity,
  type KeyResolver,
  type TibetToken,
} from '@tibet/core';
import { signCheckpoint, verifierKey, type SignedCheckpoint } from './checkpoint.js';
import { ContinuityError } from './errors.js';
import { DirLock } from './lock.js';
import {
  MemoryIndex,
  type ActionEntry,
  type IndexedRecord,
  type LogIndex,
  type LogObserver,
} from './log-index.js';
import { MerkleFrontier, leafHash } from './merkle.js';
import {
  OBJECT_ID,
  lineHash,
  parseRecord,
  tokenSlices,
  type CausalBlock,
  type LogRecord,
} from './record.js';
import { SigRing } from './sig-ring.js';
import { workerScript } from './worker-pool.js';
import { signatureInto } from './verify-worker.js';
import {
  ByteArena,
  causalText,
  encodeLineInto,
  tokenBytesInto,
  type TokenBytes,
} from './line-bytes.js';

export const SEGMENT_DIGITS = 16;

/** File operations the writer uses for the data path; tests replace them to inject faults. */
export interface LogIo {
  write(fh: FileHandle, data: Uint8Array, position: number): Promise<void>;
  datasync(fh: FileHandle): Promise<void>;
  truncate(fh: FileHandle, length: number): Promise<void>;
}

/**
 * The data path through Node's callback API on the handle's descriptor: the same system calls
 * as the FileHandle methods, with less work per call on the calling thread (a batch is one
 * write and one fdatasync).
 */
export const nodeIo: LogIo = {
  async write(fh, data, position) {
    let off = 0;
    while (off < data.length) {
      const n = await new Promise<number>((resolve, reject) =>
        fsWrite(fh.fd, data, off, data.length - off, position + off, (e, written) =>
          e ? reject(e) : resolve(written),
        ),
      );
      if (n <= 0) throw new Error('short write');
      off += n;
    }
  },
  datasync: (fh) =>
    new Promise<void>((resolve, reject) => fsFdatasync(fh.fd, (e) => (e ? reject(e) : resolve()))),
  truncate: (fh, length) => fh.truncate(length),
};

export interface AuditLogOptions {
  dir: string;
  /** The log's own identity: signs checkpoints. */
  signer: Identity;
  /** Actors whose tokens may be appended. */
  registry: KeyResolver;
  /** C2SP origin line (default `<signer id>/log`). */
  origin?: string;
  segmentMaxBytes?: number;
  /** Sign a checkpoint after this many appends (default 1,000; 0 = only on demand). */
  checkpointEvery?: number;
  /** Most lines queued before `append` waits (back-pressure; default 8,192). */
  maxPending?: number;
  /** Most lines written per fdatasync (default 1,024). */
  maxBatch?: number;
  /** Accept parents that are not in this log (default false: fail closed). */
  allowExternalParents?: boolean;
  clock?: Clock;
  provider?: CryptoProvider;
  index?: LogIndex;
  /** More sinks fed every durable record (e.g. the Merkle node store for proofs). */
  observers?: LogObserver[];
  io?: LogIo;
  /** Lock mode written into LOCK (`embedded` or `daemon`). */
  lockMode?: string;
  /**
   * Worker threads that check appended tokens' signatures when appends arrive together
   * (default: the available cores, at most 4; 0 = always on the calling thread). Started at
   * the first burst of appends, stopped by `close()`; a lone append is checked on the calling
   * thread.
   */
  verifyWorkers?: number;
}

export interface AppendOptions {
  objectId?: string | null;
  parentObjectId?: string | null;
  /** The line this token continues; default: the object id, else the actor. */
  continuityId?: string;
}

export interface AppendReceipt {
  index: number;
  /** Hex SHA-256 of the line (what the next line's `prev` holds). */
  lineHash: string;
  /** Hex RFC 9162 leaf hash. */
  leafHash: string;
  actionId: string;
  receivedAt: string;
}

/**
 * An append whose token is parsed and whose signature is being checked. The token's members
 * the writer uses later are copied here when it is parsed: the caller keeps its token object
 * and could change it while the signature is being checked; the line is built from the bytes
 * and values taken at the call, never from the object as it is later.
 */
interface Incoming {
  actionId: string;
  actor: string;
  generation: number;
  parentActionId: string | null;
  /** The token's `prev`. */
  prev: string | null;
  signature: string;
  /** `erachter`'s RFC 8785 text. */
  reasonJson: string;
  /**
   * UTF-8 of the token's RFC 8785 text (a view into the writer's token arena): hashed for the
   * token hash, copied into the line.
   */
  tokenBytes: Uint8Array;
  /** Its signing input (`tokenBytes` without the signature member), in the same arena. */
  input: Uint8Array;
  opts: AppendOptions;
  key: Uint8Array;
  /** 0 while the signature is being checked; then SIG_VALID or the rejection. */
  verdict: 0 | typeof SIG_VALID | ContinuityError;
  resolve: (r: AppendReceipt) => void;
  reject: (e: unknown) => void;
}

const SIG_VALID = 1;
/** Where a signature is decoded to be checked on this thread (the check is synchronous). */
const sigScratch = Buffer.alloc(64);

const NO_OPTIONS: AppendOptions = Object.freeze({});
const OPTION_IDS = ['objectId', 'parentObjectId', 'continuityId'] as const;

/** A batch written at `[start, end)` of the segment, its `fdatasync` running. */
interface Syncing {
  batch: Pending[];
  start: number;
  end: number;
  sync: Promise<void>;
}

interface Pending {
  bytes: Uint8Array;
  rec: IndexedRecord;
  leaf: Uint8Array;
  receipt: AppendReceipt;
  resolve(r: AppendReceipt): void;
  reject(e: unknown): void;
}

export interface LogMeta {
  format: 'tibet-log-meta/1';
  origin: string;
  key_name: string;
  public_key: string;
  verifier_key: string;
  log_actor: string;
  created_at: string;
}

interface PersistedState {
  format: 'tibet-log-state/1';
  size: number;
  frontier: string[];
  last_line_hash: string | null;
  last_received_at: string | null;
}

export function segmentName(firstIndex: number): string {
  return `${String(firstIndex).padStart(SEGMENT_DIGITS, '0')}.jsonl`;
}

export async function listSegments(dir: string): Promise<{ first: number; path: string }[]> {
  let names: string[] = [];
  try {
    names = await readdir(join(dir, 'segments'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const segs = names
    .filter((n) => new RegExp(`^\\d{${SEGMENT_DIGITS}}\\.jsonl$`).test(n))
    .map((n) => ({ first: Number(n.slice(0, SEGMENT_DIGITS)), path: join(dir, 'segments', n) }))
    .sort((a, b) => a.first - b.first);
  return segs;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Durable replace: temp file, fsync, rename, fsync folder. */
export async function writeDurable(
  path: string,
  data: string | Uint8Array,
  dir: string,
): Promise<void> {
  // a unique name per call: concurrent writers of the same target never share a temp file
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dir);
}

/** Temp files left by a process killed in the middle of a durable write. */
async function removeStaleTemps(dir: string): Promise<void> {
  for (const d of [dir, join(dir, 'checkpoints')]) {
    let names: string[] = [];
    try {
      names = await readdir(d);
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith('.tmp')) await unlink(join(d, n)).catch(() => undefined);
  }
}

/** Split a segment's bytes into complete lines; returns the lines and the torn tail length. */
export function splitLines(buf: Uint8Array): { lines: Uint8Array[]; tornBytes: number } {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    if (nl < 0) break;
    lines.push(buf.subarray(start, nl));
    start = nl + 1;
  }
  return { lines, tornBytes: buf.length - start };
}

export class AuditLog {
  readonly dir: string;
  readonly origin: string;
  readonly provider: CryptoProvider;
  readonly index: LogIndex;
  readonly #sinks: LogObserver[];
  readonly #o: AuditLogOptions;
  readonly #clock: Clock;
  readonly #io: LogIo;
  readonly #lock: DirLock;
  readonly #frontier: MerkleFrontier;
  #nextIndex: number;
  #lastLineHash: string | null;
  #lastReceived: number;
  #segFirst: number;
  #segBytes: number;
  #fh: FileHandle;
  #queue: Pending[] = [];
  #pendingActions = new Map<string, ActionEntry>();
  #pendingLines = new Map<string, ActionEntry>();
  #flushing: Promise<void> | undefined;
  #poisoned: unknown;
  #closed = false;
  #sinceCheckpoint = 0;
  #latest: SignedCheckpoint | undefined;
  #waiters: (() => void)[] = [];
  /** Appends in arrival order, from parsing until their line is queued (or they are refused). */
  #incoming: Incoming[] = [];
  #incomingHead = 0;
  /** Appends whose signature nobody checks yet. */
  #unsent: Incoming[] = [];
  #dispatchQueued = false;
  #idle: (() => void)[] = [];
  #ring: SigRing<Incoming> | undefined;
  #ringFailed = false;
  /** Appended tokens' UTF-8, from parsing until their line is assembled. */
  readonly #tokenArena = new ByteArena();
  /** The lines waiting for their batch (a batch is written from here without a copy). */
  readonly #lineArena = new ByteArena();
  /** `received_at` of the last line assembled, and the instant (ms) it stands for. */
  #receivedMs = Number.NaN;
  #receivedText = '';

  private constructor(
    o: AuditLogOptions,
    s: {
      lock: DirLock;
      frontier: MerkleFrontier;
      lastLineHash: string | null;
      lastReceived: number;
      segFirst: number;
      segBytes: number;
      fh: FileHandle;
      latest: SignedCheckpoint | undefined;
      origin: string;
    },
  ) {
    this.#o = o;
    this.dir = o.dir;
    this.origin = s.origin;
    this.provider = o.provider ?? getProvider();
    this.index = o.index ?? new MemoryIndex();
    this.#sinks = [this.index, ...(o.observers ?? [])];
    this.#clock = o.clock ?? systemClock;
    this.#io = o.io ?? nodeIo;
    this.#lock = s.lock;
    this.#frontier = s.frontier;
    this.#nextIndex = s.frontier.size;
    this.#lastLineHash = s.lastLineHash;
    this.#lastReceived = s.lastReceived;
    this.#segFirst = s.segFirst;
    this.#segBytes = s.segBytes;
    this.#fh = s.fh;
    this.#latest = s.latest;
  }

  /** Open (creating if needed) and recover a log directory; takes the writer lock. */
  static async open(o: AuditLogOptions): Promise<AuditLog> {
    const provider = o.provider ?? getProvider();
    const dir = o.dir;
    await mkdir(join(dir, 'segments'), { recursive: true });
    await mkdir(join(dir, 'checkpoints'), { recursive: true });
    await fsyncDir(dir);
    const lock = await DirLock.acquire(dir, o.lockMode ?? 'embedded');
    try {
      const origin = await AuditLog.#meta(o, provider);
      const index = o.index ?? new MemoryIndex();
      const oo = { ...o, index };
      const rec = await recover(dir, [index, ...(o.observers ?? [])], provider);
      const segs = await listSegments(dir);
      let segFirst: number;
      let path: string;
      if (segs.length === 0) {
        segFirst = 0;
        path = join(dir, 'segments', segmentName(0));
      } else {
        segFirst = segs[segs.length - 1]!.first;
        path = segs[segs.length - 1]!.path;
      }
      const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
      if (segs.length === 0) await fsyncDir(join(dir, 'segments'));
      const segBytes = (await fh.stat()).size;
      const latest = await latestCheckpoint(dir);
      // a log shorter than what it already signed, or different at that size, is refused:
      // appending would reuse covered indexes and fork the log's own history
      if (latest && rec.frontier.size < latest.size) {
        throw new ContinuityError(
          'STATE_CORRUPT',
          `log ${dir} holds ${rec.frontier.size} lines but its checkpoint ${latest.size} signed more: lines are missing (run verify)`,
        );
      }
      if (
        latest &&
        rec.frontier.size === latest.size &&
        !equalBytes(rec.frontier.root(), latest.rootHash)
      ) {
        throw new ContinuityError(
          'ROOT_MISMATCH',
          `log ${dir} does not match its latest signed checkpoint (run verify)`,
        );
      }
      await removeStaleTemps(dir);
      const log = new AuditLog(oo, {
        lock,
        frontier: rec.frontier,
        lastLineHash: rec.lastLineHash,
        lastReceived: rec.lastReceived,
        segFirst,
        segBytes,
        fh,
        latest,
        origin,
      });
      return log;
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  static async #meta(o: AuditLogOptions, p: CryptoProvider): Promise<string> {
    const path = join(o.dir, 'log.json');
    let meta: LogMeta | undefined;
    try {
      meta = JSON.parse(await readFile(path, 'utf8')) as LogMeta;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ContinuityError('STATE_CORRUPT', `cannot read ${path}`, { cause: e });
      }
    }
    if (meta) {
      if (meta.public_key !== toBase64(o.signer.signingPublicKey)) {
        throw new ContinuityError(
          'STATE_CORRUPT',
          `log ${o.dir} belongs to another key (${meta.log_actor})`,
        );
      }
      return meta.origin;
    }
    const origin = o.origin ?? `${o.signer.id}/log`;
    const created: LogMeta = {
      format: 'tibet-log-meta/1',
      origin,
      key_name: origin,
      public_key: toBase64(o.signer.signingPublicKey),
      verifier_key: verifierKey(origin, o.signer.signingPublicKey, p),
      log_actor: o.signer.id,
      created_at: rfc3339((o.clock ?? systemClock).now()),
    };
    await writeDurable(path, JSON.stringify(created, null, 2) + '\n', o.dir);
    return origin;
  }

  /** Number of lines in the log, durable or queued. */
  get size(): number {
    return this.#nextIndex;
  }

  /** Number of durable lines. */
  get durableSize(): number {
    return this.#frontier.size;
  }

  /** Worker threads ready to check appended tokens' signatures (0 until a burst starts them). */
  get verifyWorkersReady(): number {
    return this.#ring?.ready ?? 0;
  }

  get latestCheckpoint(): SignedCheckpoint | undefined {
    return this.#latest;
  }

  /** Current Merkle root over the durable lines. */
  root(): Uint8Array {
    return this.#frontier.root();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ContinuityError('LOG_CLOSED', 'the audit log is closed');
    if (this.#poisoned !== undefined) {
      throw new ContinuityError(
        'LOG_POISONED',
        'the audit log failed a write and refuses appends until reopened',
        { cause: this.#poisoned },
      );
    }
  }

  #lookupAction(id: string): ActionEntry | undefined {
    return this.#pendingActions.get(id) ?? this.index.action(id);
  }

  #lookupLine(id: string): ActionEntry | undefined {
    return this.#pendingLines.get(id) ?? this.index.lastOnLine(id);
  }

  /**
   * Validate and append one signed token. Resolves once the line is durable; rejects with a
   * ContinuityError when the token is refused or the write fails (then nothing was acknowledged).
   *
   * Appends are admitted in the order of their calls: the token's form and key are checked at
   * once, its signature on the calling thread or, when appends arrive together, on a worker
   * thread, and the causal checks (duplicate action, parent, prev, generation) against
   * everything admitted before it once its signature has verified.
   */
  append(token: unknown, opts: AppendOptions = NO_OPTIONS): Promise<AppendReceipt> {
    // not an async function: the common case (room in the queue) makes one promise, not two
    try {
      this.#checkOpen();
      if (this.#queue.length + this.#incomingCount() >= (this.#o.maxPending ?? 8192))
        return this.#appendWhenRoom(token, opts);
      return this.#submit(this.#prepare(token, opts));
    } catch (e) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- whatever was thrown, as an async function would reject with it
      return Promise.reject(e);
    }
  }

  /** {@link append} once the queue has room (back-pressure). */
  async #appendWhenRoom(token: unknown, opts: AppendOptions): Promise<AppendReceipt> {
    const maxPending = this.#o.maxPending ?? 8192;
    while (this.#queue.length + this.#incomingCount() >= maxPending) {
      await new Promise<void>((res) => this.#waiters.push(res));
      this.#checkOpen();
    }
    return this.#submit(this.#prepare(token, opts));
  }

  /** Hand a prepared append to a verifier; resolves once its line is durable. */
  #submit(job: Incoming): Promise<AppendReceipt> {
    return new Promise<AppendReceipt>((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
      this.#incoming.push(job);
      this.#unsent.push(job);
      // in a burst (a second append in this turn, or checks still pending) each goes to the
      // workers at once, so that checking it overlaps with preparing the next; a lone one
      // once this turn of the event loop has made all the appends it will make
      if (this.#inBurst(this.#unsent.length)) this.#dispatch();
      else if (!this.#dispatchQueued) {
        this.#dispatchQueued = true;
        setImmediate(() => {
          this.#dispatchQueued = false;
          this.#dispatch();
        });
      }
    });
  }

  #incomingCount(): number {
    return this.#incoming.length - this.#incomingHead;
  }

  /**
   * Parse the token and find its key: the checks that need nothing admitted before it. The
   * token is serialised once: the signature is checked over that text's signing-input cut,
   * and the same text is hashed (`tokenHash`) and written into the line, so the bytes
   * verified are the bytes stored.
   */
  #prepare(token: unknown, opts: AppendOptions): Incoming {
    let t: TibetToken;
    let tb: TokenBytes;
    try {
      t = parseToken(token);
      tb = tokenBytesInto(this.#tokenArena, t);
    } catch (e) {
      throw new ContinuityError('TOKEN_REJECTED', (e as Error).message, { cause: e });
    }
    const key = this.#o.registry.signingKey(t.actor, t.kid);
    if (!key)
      throw new ContinuityError('ACTOR_UNKNOWN', `no registered key ${t.kid} for ${t.actor}`);
    if (key.length !== 32 || !this.#keyHasId(key, t.kid)) {
      const cause = new CoreError(
        'TOKEN_SIGNATURE_INVALID',
        `token ${t.action_id}: key id does not match the key given`,
      );
      throw new ContinuityError('TOKEN_REJECTED', cause.message, { cause });
    }
    return {
      actionId: t.action_id,
      actor: t.actor,
      generation: t.generation,
      parentActionId: t.parent_action_id,
      prev: t.prev,
      signature: t.signature,
      reasonJson: tb.reasonJson,
      tokenBytes: tb.token,
      input: tb.input,
      opts,
      key,
      verdict: 0,
      resolve: () => undefined,
      reject: () => undefined,
    };
  }

  /**
   * Key ids already computed: a key id → a copy of the key bytes found to have it. (A
   * registry may hand out a fresh copy of a key for every lookup, so the cache is keyed on
   * the id and holds the exact bytes it vouches for.)
   */
  readonly #kids = new Map<string, Uint8Array>();

  /** Whether `keyIdOf(key) === kid`, hashing a key only the first time its bytes are seen. */
  #keyHasId(key: Uint8Array, kid: string): boolean {
    const hit = this.#kids.get(kid);
    if (hit && equalBytes(hit, key)) return true;
    if (keyIdOf(key, this.provider) !== kid) return false;
    if (this.#kids.size >= 4096) this.#kids.clear();
    this.#kids.set(kid, Uint8Array.from(key));
    return true;
  }

  /** Check the signature on this thread. */
  #verifyHere(j: Incoming): void {
    let ok = false;
    try {
      ok =
        signatureInto(j.signature, sigScratch, 0) &&
        this.provider.ed25519Verify(j.key, j.input, sigScratch);
    } catch {
      ok = false;
    }
    this.#setVerdict(j, ok);
  }

  #setVerdict(j: Incoming, ok: boolean): void {
    if (ok) {
      j.verdict = SIG_VALID;
      return;
    }
    const cause = new CoreError(
      'TOKEN_SIGNATURE_INVALID',
      `token ${j.actionId}: signature does not verify`,
    );
    j.verdict = new ContinuityError('TOKEN_REJECTED', cause.message, { cause });
  }

  /**
   * Hand the appends that arrived since the last call to a verifier: this thread for a lone
   * one (or when no worker is ready, or the ring cannot take it), else the workers' ring.
   */
  #dispatch(): void {
    const jobs = this.#unsent;
    if (jobs.length === 0) return;
    this.#unsent = [];
    const ring = this.#inBurst(jobs.length) ? this.#workers() : undefined;
    if (!ring || ring.ready === 0) {
      for (const j of jobs) this.#verifyHere(j);
      this.#admit();
      return;
    }
    let here = false;
    for (const j of jobs) {
      // a signature that does not decode cannot verify: refused without a worker
      if (!signatureInto(j.signature, sigScratch, 0)) this.#setVerdict(j, false);
      else if (ring.submit(j.key, sigScratch, j.input, j)) continue;
      else this.#verifyHere(j);
      here = true;
    }
    if (here) this.#admit();
  }

  /** Whether `n` appends waiting to be handed over are part of a burst (else one is lone). */
  #inBurst(n: number): boolean {
    return n > 1 || (this.#ring?.pending ?? 0) > 0;
  }

  /** Verdicts from the workers' ring. */
  #settleChecks = (done: [Incoming, boolean][]): void => {
    for (const [j, ok] of done) this.#setVerdict(j, ok);
    this.#admit();
  };

  /** The signature workers, started at the first burst of appends (undefined: none). */
  #workers(): SigRing<Incoming> | undefined {
    if (this.#ring) return this.#ring.alive > 0 ? this.#ring : undefined;
    if (this.#ringFailed) return undefined;
    const n = Math.min(4, Math.max(0, Math.floor(this.#o.verifyWorkers ?? availableParallelism())));
    const script = n > 0 ? workerScript() : undefined;
    if (!script) {
      this.#ringFailed = true;
      return undefined;
    }
    try {
      this.#ring = new SigRing(n, script, this.provider.name, this.provider, this.#settleChecks);
    } catch {
      this.#ringFailed = true;
    }
    return this.#ring;
  }

  /**
   * Admit the appends at the head of the arrival order whose signature check is done: refuse
   * a bad signature, run the causal checks, and queue the line.
   */
  #admit(): void {
    const inc = this.#incoming;
    let freed = false;
    while (this.#incomingHead < inc.length) {
      const j = inc[this.#incomingHead]!;
      if (j.verdict === 0) break;
      inc[this.#incomingHead++] = undefined as unknown as Incoming;
      freed = true;
      try {
        this.#checkOpen();
        if (j.verdict !== SIG_VALID) throw j.verdict;
        this.#enqueue(j);
      } catch (e) {
        j.reject(e);
      }
    }
    if (this.#incomingHead === inc.length) {
      this.#incoming = [];
      this.#incomingHead = 0;
      const idle = this.#idle;
      this.#idle = [];
      for (const f of idle) f();
    } else if (this.#incomingHead > 1024 && this.#incomingHead * 2 > inc.length) {
      this.#incoming = inc.slice(this.#incomingHead);
      this.#incomingHead = 0;
    }
    if (freed) this.#wake();
    if (this.#queue.length) this.#kick();
  }

  /** The causal checks against everything admitted before, then the line into the queue. */
  #enqueue(j: Incoming): void {
    const { opts } = j;
    this.#causalCheck(j, opts);
    const objectId = opts.objectId ?? null;
    const continuityId = opts.continuityId ?? objectId ?? j.actor;
    const index = this.#nextIndex;
    const now = Math.max(this.#clock.now().getTime(), this.#lastReceived);
    if (now !== this.#receivedMs) {
      this.#receivedMs = now;
      this.#receivedText = rfc3339(new Date(now));
    }
    const receivedAt = this.#receivedText;
    const causal: CausalBlock = {
      action_id: j.actionId,
      actor_id: j.actor,
      causal_reason: '', // written from reasonJson
      continuity_id: continuityId,
      generation: j.generation,
      object_id: objectId,
      parent_action_id: j.parentActionId,
      parent_object_id: opts.parentObjectId ?? null,
    };
    const bytes = encodeLineInto(
      this.#lineArena,
      causalText(causal, j.reasonJson),
      index,
      this.#lastLineHash,
      receivedAt,
      j.tokenBytes,
    );
    const line = bytes.subarray(0, bytes.length - 1);
    const lh = lineHash(line, this.provider);
    const leaf = leafHash(line, this.provider);
    const th = `sha256:${sha256Hex(j.tokenBytes, this.provider)}`;
    const rec: IndexedRecord = {
      index,
      generation: j.generation,
      tokenHash: th,
      actionId: j.actionId,
      actor: j.actor,
      objectId,
      continuityId,
      receivedAt: now,
      leafHash: leaf,
    };
    this.#nextIndex++;
    this.#lastLineHash = lh;
    this.#lastReceived = now;
    // the record is the pending entry too (an ActionEntry with more members): lookups read
    // index, generation and tokenHash only
    this.#pendingActions.set(j.actionId, rec);
    this.#pendingLines.set(continuityId, rec);
    const receipt: AppendReceipt = {
      index,
      lineHash: lh,
      leafHash: toHex(leaf),
      actionId: j.actionId,
      receivedAt,
    };
    this.#queue.push({ bytes, leaf, receipt, resolve: j.resolve, reject: j.reject, rec });
  }

  /** The checks that depend on what was admitted before: ids, parent, prev, generation. */
  #causalCheck(t: Incoming, opts: AppendOptions): void {
    for (const k of OPTION_IDS) {
      const v: unknown = opts[k];
      // a string: the line's causal block writes these as JSON strings (causalText)
      if (v !== undefined && v !== null && (typeof v !== 'string' || !OBJECT_ID.test(v)))
        throw new TypeError(`"${k}" must match ${OBJECT_ID.source}`);
    }
    if (this.#lookupAction(t.actionId)) {
      throw new ContinuityError('DUPLICATE_ACTION', `action ${t.actionId} is already in the log`);
    }
    const parent = t.parentActionId ? this.#lookupAction(t.parentActionId) : undefined;
    if (t.parentActionId && !parent && !this.#o.allowExternalParents) {
      throw new ContinuityError(
        'CAUSAL_PARENT_UNKNOWN',
        `parent ${t.parentActionId} of ${t.actionId} is not in the log`,
      );
    }
    const continuityId = opts.continuityId ?? opts.objectId ?? t.actor;
    const prev = this.#lookupLine(continuityId);
    if ((prev?.tokenHash ?? null) !== t.prev) {
      throw new ContinuityError(
        'CAUSAL_PREV_MISMATCH',
        `token ${t.actionId}: prev ${t.prev ?? 'null'} but the line ${continuityId} ends at ${prev?.tokenHash ?? 'null'}`,
      );
    }
    const parentGen = parent?.generation ?? 0;
    const want = 1 + Math.max(prev?.generation ?? 0, parentGen);
    const ok = parent || !t.parentActionId ? t.generation === want : t.generation >= want;
    if (!ok) {
      throw new ContinuityError(
        'CAUSAL_GENERATION_INVALID',
        `token ${t.actionId}: generation ${t.generation}, expected ${want}`,
      );
    }
  }

  #kick(): void {
    if (this.#flushing) return;
    // while batches are written, the verdicts of the signature workers are collected at each
    // turn of the loop (it wakes for every write and sync) instead of each ringing this thread
    if (this.#ring) this.#ring.ringing = false;
    this.#flushing = this.#flushLoop().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length && this.#poisoned === undefined) this.#kick();
      // (collects what came meanwhile, which may kick again)
      else if (this.#ring) this.#ring.ringing = true;
    });
  }

  /**
   * Write queued batches, each with one write and one `fdatasync`, two stages deep: the next
   * batch is written while the `fdatasync` of the one before is still running (each sync
   * starts only once its own batch's write has completed, so it covers that batch), and a
   * batch is acknowledged only once its own sync has returned, after every batch before it.
   */
  async #flushLoop(): Promise<void> {
    const maxBatch = this.#o.maxBatch ?? 1024;
    /** The batch written whose `fdatasync` is running. */
    let synced: Syncing | undefined;
    while (this.#poisoned === undefined && (this.#queue.length || synced)) {
      const batch = this.#queue.splice(0, maxBatch);
      let next: Syncing | undefined;
      if (batch.length) {
        this.#wake();
        let len = 0;
        for (const p of batch) len += p.bytes.length;
        const buf = joinAdjacent(batch, len);
        let start = this.#segBytes;
        try {
          if (this.#rotationDue(len)) {
            // a new segment starts only after the old one's lines are all durable
            const s = synced;
            synced = undefined;
            if (s && !(await this.#settle(s, batch))) return;
            await this.#rotate(batch[0]!.rec.index);
            start = 0;
          }
          await this.#io.write(this.#fh, buf, start);
        } catch (e) {
          // the batch before may still turn out durable: settle it first
          if (synced && !(await this.#settle(synced, batch))) return;
          await this.#poison(e, batch, this.#segFirst === batch[0]!.rec.index ? 0 : start);
          return;
        }
        this.#segBytes = start + len;
        const sync = this.#io.datasync(this.#fh);
        // observed by #settle; never left as an unhandled rejection
        sync.catch(() => undefined);
        next = { batch, start, end: start + len, sync };
      }
      if (synced && !(await this.#settle(synced, next?.batch ?? []))) return;
      synced = next;
      // every turn has waited for a write or a sync by now (so this loop is #flushing, and
      // appends admitted here join its queue)
      this.#ring?.collect();
    }
  }

  /**
   * Wait for a written batch's `fdatasync`, then acknowledge it: extend the Merkle frontier,
   * feed the index and observers, resolve its appends, sign a checkpoint if one is due. On a
   * failure the log is poisoned and cut back to its last durable length, and `behind` (the
   * batch written after it, if any) is rejected with everything queued. False if it failed.
   */
  async #settle(w: Syncing, behind: Pending[]): Promise<boolean> {
    const { batch } = w;
    try {
      await w.sync;
    } catch (e) {
      await this.#poison(e, [...batch, ...behind], w.start);
      return false;
    }
    for (const p of batch) this.#frontier.push(p.leaf);
    const recs: IndexedRecord[] = [];
    for (const p of batch) recs.push(p.rec);
    try {
      for (const sink of this.#sinks) sink.add(recs);
    } catch (e) {
      // the lines are durable but not acknowledged; the next open re-indexes them
      await this.#poison(e, [...batch, ...behind], w.end);
      return false;
    }
    for (const p of batch) {
      if (this.#pendingActions.get(p.rec.actionId)?.index === p.rec.index)
        this.#pendingActions.delete(p.rec.actionId);
      if (this.#pendingLines.get(p.rec.continuityId)?.index === p.rec.index)
        this.#pendingLines.delete(p.rec.continuityId);
    }
    this.#sinceCheckpoint += batch.length;
    for (const p of batch) p.resolve(p.receipt);
    const every = this.#o.checkpointEvery ?? 1000;
    if (every > 0 && this.#sinceCheckpoint >= every) {
      try {
        await this.#writeCheckpoint();
      } catch (e) {
        await this.#poison(e, behind, w.end);
        return false;
      }
    }
    return true;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Whether `len` more bytes would take the segment past `segmentMaxBytes` (§4). */
  #rotationDue(len: number): boolean {
    const max = this.#o.segmentMaxBytes ?? 64 * 1024 * 1024;
    return this.#segBytes !== 0 && this.#segBytes + len > max;
  }

  async #rotate(firstIndex: number): Promise<void> {
    await this.#fh.sync();
    await this.#fh.close();
    const path = join(this.dir, 'segments', segmentName(firstIndex));
    this.#fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
    await fsyncDir(join(this.dir, 'segments'));
    this.#segFirst = firstIndex;
    this.#segBytes = 0;
  }

  async #poison(cause: unknown, batch: Pending[], cutTo: number): Promise<void> {
    this.#poisoned = cause;
    const err = new ContinuityError(
      'WRITE_FAILED',
      `audit log write failed: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
    try {
      await this.#io.truncate(this.#fh, cutTo);
      await this.#io.datasync(this.#fh);
      this.#segBytes = cutTo;
    } catch {
      // recovery at the next open cuts whatever is torn
    }
    // nothing that failed may look logged to lookups (a keychain's recovery asks `action()`)
    this.#pendingActions.clear();
    this.#pendingLines.clear();
    for (const p of [...batch, ...this.#queue.splice(0)]) p.reject(err);
    this.#wake();
  }

  #checkpointChain: Promise<unknown> = Promise.resolve();

  /** One checkpoint at a time (explicit and automatic ones may overlap otherwise). */
  #writeCheckpoint(): Promise<SignedCheckpoint> {
    const run = this.#checkpointChain.then(
      () => this.#writeCheckpointNow(),
      () => this.#writeCheckpointNow(),
    );
    this.#checkpointChain = run.catch(() => undefined);
    return run;
  }

  async #writeCheckpointNow(): Promise<SignedCheckpoint> {
    const size = this.#frontier.size;
    if (this.#latest && this.#latest.size === size) return this.#latest;
    const signed = signCheckpoint(
      { origin: this.origin, size, rootHash: this.#frontier.root(), extensions: [] },
      this.origin,
      this.#o.signer.signer,
      this.provider,
    );
    const cpDir = join(this.dir, 'checkpoints');
    await writeDurable(
      join(cpDir, `${String(size).padStart(SEGMENT_DIGITS, '0')}.note`),
      signed.note,
      cpDir,
    );
    await this.#saveState();
    for (const sink of this.#sinks) await sink.flush();
    this.#latest = signed;
    this.#sinceCheckpoint = 0;
    return signed;
  }

  async #saveState(): Promise<void> {
    const s: PersistedState = {
      format: 'tibet-log-state/1',
      size: this.#frontier.size,
      frontier: this.#frontier.hashes.map(toBase64),
      last_line_hash: this.#frontier.size === this.#nextIndex ? this.#lastLineHash : null,
      last_received_at: rfc3339(new Date(this.#lastReceived)),
    };
    if (s.last_line_hash === null && s.size > 0) return; // only save quiescent states
    await writeDurable(join(this.dir, 'state.json'), JSON.stringify(s) + '\n', this.dir);
  }

  /**
   * Where an action is, if it is durably in the log (queued appends are not reported: they
   * may still fail). Call `drain()` first to settle appends in flight.
   */
  action(actionId: string): ActionEntry | undefined {
    return this.index.action(actionId);
  }

  /** The latest durable entry on a continuity line. */
  lastOnLine(continuityId: string): ActionEntry | undefined {
    return this.index.lastOnLine(continuityId);
  }

  /** Wait until every append made so far is durable (or failed). */
  async drain(): Promise<void> {
    while (this.#incomingCount() || this.#flushing || this.#queue.length) {
      if (this.#incomingCount()) await new Promise<void>((res) => this.#idle.push(res));
      else if (this.#flushing) await this.#flushing;
      else this.#kick();
    }
  }

  /** Sign and store a checkpoint of the current (durable) tree. */
  async checkpoint(): Promise<SignedCheckpoint> {
    this.#checkOpen();
    await this.drain();
    this.#checkOpen();
    return this.#writeCheckpoint();
  }

  /** Read one durable record by index (scans its segment; the persisted index makes this O(1)). */
  async readRecord(index: number): Promise<LogRecord> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#frontier.size) {
      throw new ContinuityError(
        'NOT_FOUND',
        `no record ${index} (log size ${this.#frontier.size})`,
      );
    }
    return readRecordFrom(this.dir, index);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.drain();
    this.#closed = true;
    try {
      if (this.#poisoned === undefined) {
        await this.#fh.sync();
        await this.#saveState();
        for (const sink of this.#sinks) await sink.flush();
      }
    } finally {
      await this.#ring?.close();
      await this.#fh.close();
      for (const sink of this.#sinks) await sink.close();
      await this.#lock.release();
    }
  }
}

/**
 * The bytes of a batch's lines, in order, as one array of `len` bytes: a view of the arena
 * block when they lie there one after the other (lines are assembled in queue order, so they
 * do unless a block filled in between), else a copy.
 */
function joinAdjacent(batch: readonly Pending[], len: number): Uint8Array {
  const first = batch[0]!.bytes;
  const last = batch[batch.length - 1]!.bytes;
  if (
    first.buffer === last.buffer &&
    last.byteOffset + last.length - first.byteOffset === len &&
    adjacent(batch)
  )
    return new Uint8Array(first.buffer, first.byteOffset, len);
  const buf = new Uint8Array(len);
  let o = 0;
  for (const p of batch) {
    buf.set(p.bytes, o);
    o += p.bytes.length;
  }
  return buf;
}

/** Whether each line of the batch starts where the one before it ends, in one buffer. */
function adjacent(batch: readonly Pending[]): boolean {
  let prev = batch[0]!.bytes;
  for (let i = 1; i < batch.length; i++) {
    const b = batch[i]!.bytes;
    if (b.buffer !== prev.buffer || b.byteOffset !== prev.byteOffset + prev.length) return false;
    prev = b;
  }
  return true;
}

/** Read record `index` from a log folder by scanning the segment that holds it. */
export async function readRecordFrom(dir: string, index: number): Promise<LogRecord> {
  const segs = await listSegments(dir);
  let seg: { first: number; path: string } | undefined;
  for (const s of segs) if (s.first <= index) seg = s;
  if (!seg) throw new ContinuityError('NOT_FOUND', `no segment holds record ${index}`);
  const { lines } = splitLines(new Uint8Array(await readFile(seg.path)));
  const line = lines[index - seg.first];
  if (!line) throw new ContinuityError('NOT_FOUND', `no record ${index}`);
  return parseRecord(line, index);
}

export async function latestCheckpoint(dir: string): Promise<SignedCheckpoint | undefined> {
  const { parseCheckpoint } = await import('./checkpoint.js');
  let names: string[] = [];
  try {
    names = (await readdir(join(dir, 'checkpoints')))
      .filter((n) => /^\d{16}\.note$/.test(n))
      .sort();
  } catch {
    return undefined;
  }
  const last = names[names.length - 1];
  if (!last) return undefined;
  return parseCheckpoint(await readFile(join(dir, 'checkpoints', last), 'utf8'));
}

/**
 * `tokenHash` of a line's token, hashed from the token's own text in the line (parseRecord
 * has accepted the line, so that text is the token's RFC 8785 form) instead of serialising
 * the token again; falls back to serialising when the cut does not apply.
 */
function tokenHashOfLine(line: Uint8Array, t: TibetToken, provider: CryptoProvider): string {
  const cut = tokenSlices(line, t);
  return cut ? `sha256:${sha256Hex(cut.token, provider)}` : tokenHash(t, provider);
}

/**
 * Bring a log folder to a consistent state after a crash: the torn tail of the last
 * segment (bytes after its last newline: never acknowledged) is cut off and synced; every
 * line after the persisted state is re-read (index, chain and record shape checked) to
 * rebuild the Merkle frontier and the index. A malformed complete line stops the open.
 */
export async function recover(
  dir: string,
  sinks: readonly LogObserver[],
  provider: CryptoProvider,
): Promise<{
  frontier: MerkleFrontier;
  lastLineHash: string | null;
  lastReceived: number;
  cutBytes: number;
}> {
  const segs = await listSegments(dir);
  // the persisted state lets us skip what every sink already holds; a memory index holds
  // nothing, so it replays everything (O(n) hashing, no signature checks)
  const indexed = Math.min(...sinks.map((s) => s.indexedSize()), Number.MAX_SAFE_INTEGER);
  let state: PersistedState | undefined;
  try {
    state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as PersistedState;
  } catch {
    state = undefined;
  }
  let frontier = new MerkleFrontier(0, [], provider);
  let lastLineHash: string | null = null;
  let lastReceived = 0;
  let from = 0;
  if (
    state &&
    state.format === 'tibet-log-state/1' &&
    Number.isSafeInteger(state.size) &&
    state.size <= indexed &&
    state.size > 0
  ) {
    try {
      frontier = new MerkleFrontier(
        state.size,
        state.frontier.map((h) => fromBase64(h)),
        provider,
      );
      lastLineHash = state.last_line_hash;
      lastReceived = Date.parse(state.last_received_at ?? '') || 0;
      from = state.size;
    } catch {
      frontier = new MerkleFrontier(0, [], provider);
      from = 0;
    }
  }
  let expect = 0;
  let cutBytes = 0;
  for (let si = 0; si < segs.length; si++) {
    const s = segs[si]!;
    if (s.first !== expect)
      throw new ContinuityError(
        'SEGMENT_MISSING',
        `segment ${segmentName(expect)} is missing (found ${segmentName(s.first)})`,
      );
    const next = segs[si + 1];
    if (next && next.first <= from) {
      expect = next.first;
      continue;
    }
    const buf = new Uint8Array(await readFile(s.path));
    const { lines, tornBytes } = splitLines(buf);
    if (tornBytes > 0) {
      if (next)
        throw new ContinuityError(
          'SEGMENT_MALFORMED',
          `segment ${segmentName(s.first)} has a torn line but is not the last`,
        );
      const fh = await open(s.path, constants.O_RDWR);
      try {
        await fh.truncate(buf.length - tornBytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      cutBytes = tornBytes;
    }
    const batch: IndexedRecord[] = [];
    lines.forEach((line, i) => {
      const idx = s.first + i;
      if (idx < from) return;
      const r = parseRecord(line, idx);
      if (r.prev !== lastLineHash) {
        throw new ContinuityError(
          'CHAIN_BROKEN',
          `line ${idx}: prev does not match the hash of line ${idx - 1}`,
        );
      }
      lastLineHash = lineHash(line, provider);
      lastReceived = Math.max(lastReceived, Date.parse(r.received_at));
      const leaf = leafHash(line, provider);
      frontier.push(leaf);
      if (idx >= indexed) {
        batch.push({
          leafHash: leaf,
          index: idx,
          generation: r.token.generation,
          tokenHash: tokenHashOfLine(line, r.token, provider),
          actionId: r.token.action_id,
          actor: r.token.actor,
          objectId: r.causal.object_id,
          continuityId: r.causal.continuity_id,
          receivedAt: Date.parse(r.received_at),
        });
      }
    });
    if (batch.length) {
      for (const sink of sinks) {
        const have = sink.indexedSize();
        const mine = have > batch[0]!.index ? batch.filter((b) => b.index >= have) : batch;
        if (mine.length) sink.add(mine);
      }
    }
    expect = s.first + lines.length;
  }
  if (frontier.size < from)
    throw new ContinuityError(
      'STATE_CORRUPT',
      `state says ${from} lines, segments hold ${frontier.size}`,
    );
  return { frontier, lastLineHash, lastReceived, cutBytes };
}
