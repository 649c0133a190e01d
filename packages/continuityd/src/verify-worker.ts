/**
 * The per-line half of {@link verifyLog}: strict parsing, line and leaf hashes, token hash and
 * the Ed25519 signature check, for one batch of lines. Everything here is independent of the
 * lines before the batch, so batches run in parallel on worker threads; the sequential checks
 * (hash chain across batches, index continuity, causal maps, Merkle tree) stay in verify.ts.
 *
 * This module is both a library (verify.ts runs batches inline with it) and a worker entry:
 * loaded by a Worker started by verify.ts, it serves batches on `parentPort`.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import {
  getProvider,
  keyIdOf,
  rfc3339Millis,
  sha256Into,
  tokenHash,
  tokenSigningInput,
  type BackendName,
  type CryptoProvider,
} from '@tibet/core';
import { leafHashInto } from './merkle.js';
import { serveSigRing, type SigRingData } from './sig-ring.js';
import {
  parseRecord,
  parseRecordHead,
  tokenCut,
  tokenSlices,
  type LogRecord,
  type RecordHead,
  type TokenCut,
} from './record.js';

export { tokenSlices };

/** A batch of complete lines from one segment: the bytes, with each line's `\n` kept. */
export interface LineBatch {
  id: number;
  /** Position (0-based line number in the whole log) of the first line. */
  first: number;
  /** The lines' bytes, each followed by its newline. */
  buf: Uint8Array;
  /** Offset of each line's newline in `buf` (exclusive end of the line). */
  ends: Uint32Array;
}

/** Signature status of one line. */
export const SIG_OK = 0;
export const SIG_BAD = 1;
export const SIG_NO_KEY = 2;
export const SIG_NOT_CHECKED = 3;
export type SigStatus = typeof SIG_OK | typeof SIG_BAD | typeof SIG_NO_KEY | typeof SIG_NOT_CHECKED;

/** Bits of {@link BatchResult.flags}; bits 4–5 hold the {@link SigStatus}. */
export const F_PARSED = 1;
/** `prev` equals the hash of the line before it in the same batch (unused for line 0). */
export const F_PREV_OK = 2;
export const F_PARENT = 4;
export const F_TPREV = 8;

/**
 * What the sequential half needs to know about a batch, packed in typed arrays so that
 * handing it back from a worker costs a few copies, not one object per line.
 */
export interface BatchResult {
  id: number;
  first: number;
  n: number;
  /** Per line: record index, received_at (ms), generation. */
  num: Float64Array;
  /** Per line: F_* bits and the signature status (`(flags >> 4) & 3`). */
  flags: Uint8Array;
  /** Per line: action id and parent action id as 64-bit words (hi, lo, hi, lo). */
  ids: Uint32Array;
  /** Per line: SHA-256 of the token (32 bytes), then the token's `prev` hash (32, or zeros). */
  th: Uint8Array;
  /** Per line: SHA-256 of the line (what the next line's `prev` holds). */
  lineHashes: Uint8Array;
  /** Per line: RFC 9162 leaf hash. */
  leaves: Uint8Array;
  /** Continuity ids used in the batch, and each line's entry in that table. */
  lineIds: string[];
  lineRef: Uint32Array;
  /** `prev` of the batch's first line. */
  firstPrev: string | null;
  /** Lines that did not parse: [offset in batch, message]. */
  errs: [number, string][];
  /** Lines whose signature did not verify or whose key is unknown: [offset, actor, kid]. */
  sigInfo: [number, string, string][];
}

/**
 * One line that parsed, with where its token is in it: read by the fast path (the token's
 * content not built) or by `parseRecord`; without a cut (a line of another shape, which only
 * `parseRecord` reads), the whole record, whose token is then serialised again.
 */
export type ParsedLine =
  { record: RecordHead; cut: TokenCut } | { record: LogRecord; cut: undefined };

/** A parsed, not yet signature-checked batch (pass 1). */
export interface ParsedBatch {
  batch: LineBatch;
  records: (ParsedLine | string)[];
}

/**
 * Pass 1: parse every line of a batch strictly. A string entry is the parse error. Each line
 * goes through {@link parseRecordHead} first and, when that does not take it, `parseRecord`:
 * the same lines accepted, with the same values, the same errors.
 */
export function parseBatch(batch: LineBatch): ParsedBatch {
  const records: (ParsedLine | string)[] = [];
  let from = 0;
  for (let i = 0; i < batch.ends.length; i++) {
    const end = batch.ends[i]!;
    const line = batch.buf.subarray(from, end);
    from = end + 1;
    const fast = parseRecordHead(line);
    if (fast) {
      records.push(fast);
      continue;
    }
    try {
      const record = parseRecord(line);
      const cut = tokenCut(line, record.token);
      records.push(cut ? { record, cut } : { record, cut: undefined });
    } catch (e) {
      records.push((e as Error).message);
    }
  }
  return { batch, records };
}

/** `actor \n kid` pairs of a parsed batch that `has` does not know yet (for key look-ups). */
export function keyPairs(p: ParsedBatch, has: (actor: string, kid: string) => boolean): string[] {
  const out = new Set<string>();
  let lastActor = '';
  let lastKid = '';
  for (const r of p.records) {
    if (typeof r === 'string') continue;
    const { actor, kid } = r.record.token;
    if ((actor === lastActor && kid === lastKid) || has(actor, kid)) continue;
    lastActor = actor;
    lastKid = kid;
    out.add(`${actor}\n${kid}`);
  }
  return [...out];
}

/**
 * The 64 bytes of a signature `parseToken` has accepted (86 characters of canonical
 * base64url, which that check holds it to) into `out[at, at + 64)`; false if it does not
 * decode to exactly 64 bytes. (`out` a Buffer: no view made per call.) Shared by the verifier
 * and the writer.
 */
export function signatureInto(sig: string, out: Uint8Array, at: number): boolean {
  if (sig.length !== 86 || at + 64 > out.length) return false;
  const b = Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.length);
  return b.write(sig, at, 64, 'base64url') === 64;
}

/** The value of a lowercase hex digit (the text is already validated). */
function nib(c: number): number {
  return c > 0x39 ? c - 0x57 : c - 0x30;
}

/**
 * 64 lowercase hex (already validated by parseToken) starting at `from` in `hex`, into 32
 * bytes at `at` of the Buffer `out` (Node's hex decoder).
 */
function hexToBytes(hex: string, from: number, out: Buffer, at: number): void {
  out.write(hex.slice(from), at, 32, 'hex');
}

const hexScratch = Buffer.alloc(32);

/** Whether `hex` (64 lowercase hex, already validated) spells the 32 bytes of `b` at `at`. */
function hexIs(hex: string, b: Uint8Array, at: number): boolean {
  hexScratch.write(hex, 0, 32, 'hex');
  for (let k = 0; k < 32; k++) if (hexScratch[k] !== b[at + k]) return false;
  return true;
}

/** The 32-bit word of 8 lowercase hex digits at `at` of an (already validated) action id. */
function word(id: string, at: number): number {
  let v = 0;
  for (let k = at; k < at + 8; k++) v = (v << 4) | nib(id.charCodeAt(k));
  return v >>> 0;
}

/** This thread's scratch arrays for the signatures of one batch (finishBatch runs to the end). */
interface Scratch {
  keys: Uint8Array;
  sigs: Uint8Array;
  sigsBuf: Buffer;
  inputs: Uint8Array;
  ends: Uint32Array;
}
let scratch: Scratch | undefined;

function grown(a: Uint8Array, size: number): Uint8Array {
  if (a.length >= size) return a;
  const b = new Uint8Array(Math.max(size, 2 * a.length));
  b.set(a);
  return b;
}

/** Scratch for a batch of `lines` lines and `bytes` bytes (signing inputs are cut from them). */
function scratchFor(bytes: number, lines: number): Scratch {
  let s = scratch;
  if (!s || s.ends.length < lines) {
    const sigs = new Uint8Array(64 * lines);
    s = {
      keys: new Uint8Array(32 * lines),
      sigs,
      sigsBuf: Buffer.from(sigs.buffer, sigs.byteOffset, sigs.byteLength),
      inputs: s?.inputs ?? new Uint8Array(0),
      ends: new Uint32Array(lines),
    };
  }
  s.inputs = grown(s.inputs, bytes);
  scratch = s;
  return s;
}

/**
 * Pass 2: hashes and signatures. `keyOf` returns the actor's Ed25519 key for a kid, already
 * checked to have that key id, or undefined for an unknown actor or kid.
 */
export function finishBatch(
  p: ParsedBatch,
  keyOf: (actor: string, kid: string) => Uint8Array | undefined,
  provider: CryptoProvider,
): BatchResult {
  const { batch, records } = p;
  const n = batch.ends.length;
  const mem = new ArrayBuffer(173 * n);
  const r: BatchResult = {
    id: batch.id,
    first: batch.first,
    n,
    // the per-line arrays are views of one buffer (one allocation, one transfer back)
    num: new Float64Array(mem, 0, 3 * n),
    ids: new Uint32Array(mem, 24 * n, 4 * n),
    lineRef: new Uint32Array(mem, 40 * n, n),
    th: new Uint8Array(mem, 44 * n, 64 * n),
    lineHashes: new Uint8Array(mem, 108 * n, 32 * n),
    leaves: new Uint8Array(mem, 140 * n, 32 * n),
    flags: new Uint8Array(mem, 172 * n, n),
    lineIds: [],
    firstPrev: null,
    errs: [],
    sigInfo: [],
  };
  const lineIdx = new Map<string, number>();
  const th = Buffer.from(mem, 44 * n, 64 * n); // r.th, for Node's hex decoder
  // the signatures to check, packed into this thread's scratch arrays (see verifySigBatch)
  const s = scratchFor(batch.buf.length, n);
  const checkLine = new Uint32Array(n);
  let nChecks = 0;
  let inputEnd = 0;
  let from = 0;
  for (let i = 0; i < n; i++) {
    const end = batch.ends[i]!;
    const line = batch.buf.subarray(from, end);
    from = end + 1;
    sha256Into(line, r.lineHashes, 32 * i, provider);
    leafHashInto(line, r.leaves, 32 * i, provider);
    const parsed = records[i]!;
    if (typeof parsed === 'string') {
      r.errs.push([i, parsed]);
      r.flags[i] = SIG_NOT_CHECKED << 4;
      continue;
    }
    const rec = parsed.record;
    const t = rec.token;
    let f = F_PARSED;
    if (i === 0) r.firstPrev = rec.prev;
    else if (rec.prev !== null && hexIs(rec.prev, r.lineHashes, 32 * (i - 1))) f |= F_PREV_OK;
    r.num[3 * i] = rec.index;
    // parseRecord has checked the form, so this is the instant (ms) it stands for
    r.num[3 * i + 1] = rfc3339Millis(rec.received_at)!;
    r.num[3 * i + 2] = t.generation;
    r.ids[4 * i] = word(t.action_id, 4);
    r.ids[4 * i + 1] = word(t.action_id, 12);
    if (t.parent_action_id !== null) {
      f |= F_PARENT;
      r.ids[4 * i + 2] = word(t.parent_action_id, 4);
      r.ids[4 * i + 3] = word(t.parent_action_id, 12);
    }
    if (t.prev !== null) {
      f |= F_TPREV;
      hexToBytes(t.prev, 7, th, 64 * i + 32);
    }
    let li = lineIdx.get(rec.causal.continuity_id);
    if (li === undefined) {
      li = r.lineIds.push(rec.causal.continuity_id) - 1;
      lineIdx.set(rec.causal.continuity_id, li);
    }
    r.lineRef[i] = li;
    if (parsed.cut)
      sha256Into(line.subarray(parsed.cut.start, parsed.cut.end), r.th, 64 * i, provider);
    else hexToBytes(tokenHash(parsed.record.token, provider), 7, th, 64 * i);
    r.flags[i] = f;
    const key = keyOf(t.actor, t.kid);
    if (!key) {
      r.flags[i] = f | (SIG_NO_KEY << 4);
      r.sigInfo.push([i, t.actor, t.kid]);
      continue;
    }
    if (parsed.cut) {
      const cut = parsed.cut;
      s.inputs = grown(s.inputs, inputEnd + (cut.end - cut.start));
      s.inputs.set(line.subarray(cut.start, cut.sig), inputEnd);
      inputEnd += cut.sig - cut.start;
      s.inputs.set(line.subarray(cut.sigEnd, cut.end), inputEnd);
      inputEnd += cut.end - cut.sigEnd;
    } else {
      const input = tokenSigningInput(parsed.record.token);
      s.inputs = grown(s.inputs, inputEnd + input.length);
      s.inputs.set(input, inputEnd);
      inputEnd += input.length;
    }
    // one that does not decode is zeroed: it cannot verify, and fails the check below
    if (!signatureInto(t.signature, s.sigsBuf, 64 * nChecks))
      s.sigs.fill(0, 64 * nChecks, 64 * nChecks + 64);
    s.keys.set(key, 32 * nChecks);
    s.ends[nChecks] = inputEnd;
    checkLine[nChecks++] = i;
  }
  // The signatures last, one after another: the verifier's code and tables stay hot in the
  // cache instead of alternating with the parsing and hashing above.
  const ok = verifySigBatch(
    {
      keys: s.keys.subarray(0, 32 * nChecks),
      sigs: s.sigs.subarray(0, 64 * nChecks),
      inputs: s.inputs.subarray(0, inputEnd),
      ends: s.ends.subarray(0, nChecks),
    },
    provider,
  );
  for (let k = 0; k < nChecks; k++) {
    if (ok[k]) continue;
    const i = checkLine[k]!;
    const t = (records[i] as ParsedLine).record.token;
    r.sigInfo.push([i, t.actor, t.kid]);
    r.flags[i]! |= SIG_BAD << 4;
  }
  if (r.sigInfo.length > 1) r.sigInfo.sort((a, b) => a[0] - b[0]);
  return r;
}

/**
 * Wrap a raw key resolver: each (actor, kid) is resolved once; a key whose key id is not the
 * kid it was returned for counts as unknown.
 */
export function keyCache(
  resolve: (actor: string, kid: string) => Uint8Array | undefined | null,
  provider: CryptoProvider,
): (actor: string, kid: string) => Uint8Array | undefined {
  const cache = new Map<string, Map<string, Uint8Array | null>>();
  return (actor, kid) => {
    let byKid = cache.get(actor);
    if (!byKid) cache.set(actor, (byKid = new Map<string, Uint8Array | null>()));
    let v = byKid.get(kid);
    if (v === undefined) {
      const raw = resolve(actor, kid) ?? null;
      v = raw && raw.length === 32 && keyIdOf(raw, provider) === kid ? raw : null;
      byKid.set(kid, v);
    }
    return v ?? undefined;
  };
}

// ---------------------------------------------------------------------------------------
// worker protocol
// ---------------------------------------------------------------------------------------

/**
 * Signatures to check, packed: item `i` is the Ed25519 public key `keys[32i, 32i+32)`, the
 * signature `sigs[64i, 64i+64)` and the signed message `inputs[ends[i-1], ends[i])` (from 0
 * for the first).
 */
export interface SigBatch {
  keys: Uint8Array;
  sigs: Uint8Array;
  inputs: Uint8Array;
  ends: Uint32Array;
}

/** One byte per item of a {@link SigBatch}: 1 when the signature verifies, else 0. */
export function verifySigBatch(b: SigBatch, provider: CryptoProvider): Uint8Array {
  const n = b.ends.length;
  if (b.keys.length !== 32 * n || b.sigs.length !== 64 * n)
    throw new RangeError('signature batch: sizes do not match');
  const ok = new Uint8Array(n);
  let from = 0;
  for (let i = 0; i < n; i++) {
    const end = b.ends[i]!;
    if (end < from || end > b.inputs.length)
      throw new RangeError('signature batch: bad message bounds');
    try {
      ok[i] = provider.ed25519Verify(
        b.keys.subarray(32 * i, 32 * i + 32),
        b.inputs.subarray(from, end),
        b.sigs.subarray(64 * i, 64 * i + 64),
      )
        ? 1
        : 0;
    } catch {
      ok[i] = 0;
    }
    from = end;
  }
  return ok;
}

/** main → worker */
export type ToWorker =
  | { t: 'batch'; id: number; first: number; buf: Uint8Array; ends: Uint32Array }
  | { t: 'keys'; id: number; keys: [string, Uint8Array | null][] };

/** worker → main */
export type FromWorker =
  | { t: 'need'; id: number; pairs: string[] }
  | { t: 'done'; id: number; result: BatchResult }
  | { t: 'fail'; id: number; message: string };

export interface VerifyWorkerData {
  kind: 'tibet-verify-worker';
  backend: BackendName;
  /** Serve the slots of this {@link SigRing} instead of messages. */
  ring?: SigRingData | undefined;
}

function serve(): void {
  const port = parentPort!;
  const data = workerData as VerifyWorkerData;
  const provider = getProvider(data.backend);
  if (data.ring) {
    serveSigRing(data.ring, provider, (m) => port.postMessage(m));
    return;
  }
  const known = new Map<string, Uint8Array | null>();
  const knownActors = new Map<string, Set<string>>();
  const has = (actor: string, kid: string): boolean => knownActors.get(actor)?.has(kid) === true;
  const waiting = new Map<number, (keys: [string, Uint8Array | null][]) => void>();
  const keyOf = keyCache((actor, kid) => known.get(`${actor}\n${kid}`), provider);
  let chain: Promise<void> = Promise.resolve();

  // a batch in shared memory is copied here once: small copies out of a SharedArrayBuffer
  // take V8's slow path (~8× a plain one), and the lines are copied from in several places
  let own = new Uint8Array(0);
  async function handle(m: Extract<ToWorker, { t: 'batch' }>): Promise<void> {
    let buf = m.buf;
    if (buf.buffer instanceof SharedArrayBuffer) {
      if (own.length < buf.length) own = new Uint8Array(Math.max(buf.length, 2 * own.length));
      own.set(buf);
      buf = own.subarray(0, buf.length);
    }
    const parsed = parseBatch({ id: m.id, first: m.first, buf, ends: m.ends });
    const missing = keyPairs(parsed, has);
    if (missing.length) {
      const keys = await new Promise<[string, Uint8Array | null][]>((res) => {
        waiting.set(m.id, res);
        port.postMessage({ t: 'need', id: m.id, pairs: missing } satisfies FromWorker);
      });
      for (const [k, v] of keys) {
        known.set(k, v);
        const [actor = '', kid = ''] = k.split('\n');
        let kids = knownActors.get(actor);
        if (!kids) knownActors.set(actor, (kids = new Set()));
        kids.add(kid);
      }
    }
    const r = finishBatch(parsed, keyOf, provider);
    // the arrays share one buffer (see finishBatch)
    port.postMessage({ t: 'done', id: m.id, result: r } satisfies FromWorker, [
      r.num.buffer as ArrayBuffer,
    ]);
  }

  port.on('message', (m: ToWorker) => {
    if (m.t === 'keys') {
      const res = waiting.get(m.id);
      waiting.delete(m.id);
      res?.(m.keys);
      return;
    }
    chain = chain
      .then(() => handle(m))
      .catch((e: unknown) => {
        port.postMessage({ t: 'fail', id: m.id, message: String(e) } satisfies FromWorker);
      });
  });
}

if (
  !isMainThread &&
  parentPort &&
  (workerData as Partial<VerifyWorkerData> | null)?.kind === 'tibet-verify-worker'
) {
  serve();
}
