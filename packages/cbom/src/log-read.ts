/**
 * Reading an audit log folder for the walker: every line kept verbatim (the exact bytes the
 * Merkle tree hashes, read into shared memory, where the walk's worker threads read them),
 * parsed strictly, its index and hash chain checked, the latest signed
 * checkpoint verified under the log's key (`log.json`) and the RFC 9162 tree rebuilt in
 * memory up to the checkpoint's size, so that an inclusion proof of any line can be cut
 * from it in O(log n) without the writer's node store.
 */
import { isAscii } from 'node:buffer';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromBase64, fromUtf8, toHex, type CryptoProvider } from '@tibet/core';
import {
  emptyRoot,
  latestCheckpoint,
  leafHash,
  lineHash,
  listSegments,
  nodeHash,
  parseRecord,
  parseRecordText,
  splitLines,
  verifyCheckpoint,
  type LogRecord,
  type SignedCheckpoint,
} from '@tibet/continuityd';
import { CbomError } from './errors.js';
import type { GraphProblem } from './model.js';

export interface LogKeyInfo {
  origin: string;
  key_name: string;
  /** base64 (standard) raw Ed25519 public key, as `log.json` holds it */
  public_key: string;
}

/** What {@link loadLog} reports while it reads. */
export interface LoadHooks {
  /** Lines in the segments read so far (called before they are parsed). */
  lines?(count: number): void;
  /** A valid record, as soon as it is read. */
  record?(line: LogLine): void;
}

/** One line of the log as read. */
export interface LogLine {
  position: number;
  /** The exact line (UTF-8 text, no newline). */
  text: string;
  /** Hex SHA-256 of the line (what the next line's `prev` names). */
  hash: string;
  leaf: Uint8Array;
  /** Undefined when the line is not a valid record. */
  record: LogRecord | undefined;
  /**
   * The bytes are exactly the UTF-8 of `text` (false when the decoder dropped a leading byte
   * order mark), so for a valid record they are also its RFC 8785 encoding.
   */
  exact: boolean;
  /** Its position on its continuity line (set for valid records). */
  onLine: number;
  /** The line's bytes as read (a view into its segment). */
  bytes: Uint8Array;
  /** `sha256:<hex>` of the record's token, once computed (see walk.ts `lineTokenHash`). */
  tokenHash?: string;
  /** Where the record's token is in the line, once found (null: not in the usual shape). */
  span?: TokenSpan | null;
}

/** Where a log line's token is: in its text, and in its bytes (−1 when they differ). */
export interface TokenSpan {
  start: number;
  end: number;
  byteStart: number;
  byteEnd: number;
}

export interface LoadedLog {
  dir: string;
  lines: LogLine[];
  byAction: Map<string, LogLine>;
  /** Positions of the lines of each continuity line, in log order. */
  byContinuity: Map<string, LogLine[]>;
  byObject: Map<string, LogLine[]>;
  key: LogKeyInfo | undefined;
  /** The latest checkpoint as stored (parsed; see `checkpointValid`). */
  checkpoint: SignedCheckpoint | undefined;
  /** It verifies under the log's key (and names the log's origin). */
  checkpointValid: boolean;
  /** True when the first `checkpoint.size` lines hash to the checkpoint's root. */
  rootMatches: boolean;
  problems: GraphProblem[];
  /** RFC 9162 inclusion proof of `position` against the checkpoint (undefined when not covered). */
  inclusion(position: number): Uint8Array[] | undefined;
  /**
   * `lines.map((l) => l.text).join('\n')` without copying the texts, when every segment was
   * read as ASCII (each line's text then is a slice of its piece's text, and the pieces put
   * together are the lines, each with its newline); undefined otherwise.
   */
  joinedText: string | undefined;
}

async function readLogKey(dir: string): Promise<LogKeyInfo | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'log.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const m = JSON.parse(text) as Record<string, unknown>;
    const { origin, key_name: keyName, public_key: pk } = m;
    if (typeof origin !== 'string' || typeof keyName !== 'string' || typeof pk !== 'string')
      return undefined;
    if (fromBase64(pk, 'public_key').length !== 32) return undefined;
    return { origin, key_name: keyName, public_key: pk };
  } catch {
    return undefined;
  }
}

/**
 * Levels of an RFC 9162 tree over `leaves` (level 0 = leaves), complete pairs only. Every hash
 * is a view into one SharedArrayBuffer, so that the walk's worker threads read the proofs cut
 * from it in place (see node-checks.ts).
 */
function buildLevels(leaves: readonly Uint8Array[], p: CryptoProvider): Uint8Array[][] {
  let total = 0;
  for (let m = leaves.length; m >= 1; m = m >> 1) total += m;
  const mem = new Uint8Array(new SharedArrayBuffer(32 * Math.max(1, total)));
  let at = 0;
  const keep = (h: Uint8Array): Uint8Array => {
    mem.set(h, at);
    const v = mem.subarray(at, at + 32);
    at += 32;
    return v;
  };
  const levels: Uint8Array[][] = [leaves.map(keep)];
  for (;;) {
    const below = levels[levels.length - 1]!;
    if (below.length < 2) break;
    const up: Uint8Array[] = [];
    for (let i = 0; i + 1 < below.length; i += 2)
      up.push(keep(nodeHash(below[i]!, below[i + 1]!, p)));
    levels.push(up);
  }
  return levels;
}

/**
 * The first read of a segment: small, so that its lines are being parsed while the rest is
 * read (and large enough to hold the 512 lines after which a walk starts its workers).
 */
const FIRST_READ = 1 << 20;
/** Each further read (the reading thread copies ~1 GB/s, the parse takes ~70 KB a millisecond). */
const NEXT_READ = 1 << 22;

/**
 * A segment's bytes, read into shared memory (the walk's worker threads read signing inputs
 * from them in place), in pieces: `take(buf, end)` is called with the bytes read so far
 * (`buf[0, end)`) while the next piece is being read, so that reading and parsing overlap.
 * What is there when it is read: a log being appended to is read up to where it was when the
 * read began (its torn tail, a last line without its newline, is left out by the caller).
 * Returns the buffer as read.
 */
async function readSegment(
  path: string,
  take: (buf: Uint8Array, end: number) => void,
): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const buf = new Uint8Array(new SharedArrayBuffer(Math.max(1, size)), 0, size);
    const piece = (at: number): Promise<{ bytesRead: number }> =>
      fh.read(buf, at, Math.min(size - at, at === 0 ? FIRST_READ : NEXT_READ), at);
    let at = 0;
    let reading = size > 0 ? piece(0) : undefined;
    while (reading) {
      const { bytesRead } = await reading;
      at += bytesRead;
      // the next piece is read (on libuv's thread pool) while this one is parsed
      reading = bytesRead > 0 && at < size ? piece(at) : undefined;
      if (bytesRead > 0)
        try {
          take(buf, at);
        } catch (e) {
          // (the file is closed below only once no read into it is under way)
          await reading?.catch(() => undefined);
          throw e;
        }
    }
    return buf.subarray(0, at);
  } finally {
    await fh.close();
  }
}

/**
 * The pieces' texts one after the other, without the last newline: each piece ends with one
 * (a piece is taken up to a newline). Put together as a rope (no text copied: the last piece
 * is sliced before it is joined, a slice of a flat string being a view of it).
 */
function joinPieces(texts: readonly string[]): string {
  if (texts.length === 0) return '';
  let out = '';
  for (let i = 0; i < texts.length - 1; i++) out += texts[i]!;
  return out + texts[texts.length - 1]!.slice(0, -1);
}

function largestPow2Below(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * MTH(D[start:end]) from the levels: aligned power-of-two ranges are read, the others (the
 * ragged right edge of the tree, O(log n) of them) computed once and kept in `memo`.
 */
function subtreeHash(
  levels: Uint8Array[][],
  start: number,
  end: number,
  p: CryptoProvider,
  memo?: Map<string, Uint8Array>,
): Uint8Array {
  const n = end - start;
  if ((n & (n - 1)) === 0 && start % n === 0) {
    const level = Math.log2(n);
    const h = levels[level]?.[start / n];
    if (h) return h;
  }
  const key = `${start}:${end}`;
  const had = memo?.get(key);
  if (had) return had;
  const k = largestPow2Below(n);
  const h = nodeHash(
    subtreeHash(levels, start, start + k, p, memo),
    subtreeHash(levels, start + k, end, p, memo),
    p,
  );
  memo?.set(key, h);
  return h;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[start:end]), leaf's sibling first. */
function path(
  levels: Uint8Array[][],
  m: number,
  start: number,
  end: number,
  p: CryptoProvider,
  out: Uint8Array[],
  memo: Map<string, Uint8Array>,
): void {
  const n = end - start;
  if (n <= 1) return;
  const k = largestPow2Below(n);
  if (m < start + k) {
    path(levels, m, start, start + k, p, out, memo);
    out.push(subtreeHash(levels, start + k, end, p, memo));
  } else {
    path(levels, m, start + k, end, p, out, memo);
    out.push(subtreeHash(levels, start, start + k, p, memo));
  }
}

/**
 * Read a whole log folder. Never throws for a damaged log: every problem (a malformed line,
 * a break of the line-hash chain, a missing segment, a checkpoint that does not verify or
 * does not match the lines) is listed; `LOG_UNREADABLE` only when there is no log here.
 * `hooks.record` is called with each valid record's line as soon as it is read (the walk
 * queues its signature check there, so that workers verify while the rest is still being
 * read); `hooks.lines` with the number of lines read so far, before they are parsed.
 */
export async function loadLog(
  dir: string,
  p: CryptoProvider,
  hooks: LoadHooks = {},
): Promise<LoadedLog> {
  const key = await readLogKey(dir);
  let segments: { first: number; path: string }[];
  try {
    segments = await listSegments(dir);
  } catch (cause) {
    throw new CbomError('LOG_UNREADABLE', `cannot list the log folder ${dir}`, { cause });
  }
  if (!key && segments.length === 0)
    throw new CbomError('LOG_UNREADABLE', `${dir} is not a log folder (no log.json, no segments)`);
  const problems: GraphProblem[] = [];
  if (!key)
    problems.push({
      code: 'LOG_KEY_MISSING',
      severity: 'error',
      detail: `${dir}/log.json is missing or malformed: checkpoints cannot be verified`,
    });
  const lines: LogLine[] = [];
  const byAction = new Map<string, LogLine>();
  const byContinuity = new Map<string, LogLine[]>();
  const byObject = new Map<string, LogLine[]>();
  let prevHash: string | null = null;
  let shift = 0;
  let position = 0;
  let allAscii = true;
  const pieceTexts: string[] = [];
  /** One line as read (`whole`: the text of the piece it is in, which starts at byte `base`). */
  const readLine = (bytes: Uint8Array, whole: string | undefined, base: number): void => {
    const hash = lineHash(bytes, p);
    // decoded once: the record is parsed from the same text the line keeps
    let text: string | undefined;
    if (whole !== undefined) {
      const at = bytes.byteOffset - base;
      text = whole.slice(at, at + bytes.length);
    } else
      try {
        text = fromUtf8(bytes);
      } catch {
        text = undefined;
      }
    let record: LogRecord | undefined;
    try {
      record = text === undefined ? parseRecord(bytes) : parseRecordText(text);
    } catch (e) {
      problems.push({
        code: 'LOG_LINE_MALFORMED',
        severity: 'error',
        detail: `line ${position} is not a valid record: ${(e as Error).message}`,
      });
    }
    const exact = !(bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf);
    const line: LogLine = {
      position,
      text: text ?? '',
      hash,
      leaf: leafHash(bytes, p),
      record,
      exact,
      onLine: -1,
      bytes,
    };
    lines.push(line);
    if (record) {
      const s = record.index - position;
      if (s !== shift) {
        problems.push({
          code: 'LOG_INDEX_MISMATCH',
          severity: 'error',
          action_id: record.token.action_id,
          detail: `line ${position} holds record ${record.index}: ${s > shift ? `${s - shift} record(s) missing before it` : 'a record is repeated or out of place'}`,
        });
        shift = s;
      }
      if (record.prev !== prevHash)
        problems.push({
          code: 'LOG_CHAIN_BROKEN',
          severity: 'error',
          action_id: record.token.action_id,
          detail: `record ${record.index}: its prev is not the hash of the line before it (a line was removed, changed or inserted)`,
        });
      const a = record.token.action_id;
      if (!byAction.has(a)) byAction.set(a, line);
      const c = record.causal.continuity_id;
      const cl = byContinuity.get(c);
      line.onLine = cl ? cl.length : 0;
      if (cl) cl.push(line);
      else byContinuity.set(c, [line]);
      const o = record.causal.object_id;
      if (o !== null) {
        const ol = byObject.get(o);
        if (ol) ol.push(line);
        else byObject.set(o, [line]);
      }
      hooks.record?.(line);
    }
    prevHash = hash;
    position++;
  };
  for (const seg of segments) {
    if (seg.first !== position)
      problems.push({
        code: 'LOG_SEGMENT_MISSING',
        severity: 'error',
        detail: `segment ${seg.path} starts at ${seg.first}, expected ${position}`,
      });
    // The lines of each piece read (every line ended by a newline: splitLines's lines, in
    // order), parsed while the next piece is read.
    let done = 0; // bytes of the segment taken so far (up to a newline)
    const take = (buf: Uint8Array, end: number): void => {
      const nl = buf.lastIndexOf(0x0a, end - 1);
      if (nl < done) return;
      const piece = buf.subarray(done, nl + 1);
      const { lines: raw } = splitLines(piece);
      done = nl + 1;
      hooks.lines?.(position + raw.length);
      // An ASCII piece (the usual case) is decoded once, and each line's text is a slice of
      // it: the same string `fromUtf8` gives for those bytes (ASCII is UTF-8 with one byte a
      // character), in one allocation the collector does not copy instead of one per line.
      const asBuffer = Buffer.from(piece.buffer, piece.byteOffset, piece.length);
      const whole = isAscii(asBuffer) ? asBuffer.toString('latin1') : undefined;
      // (the whole log's text, newlines included: see joinedText)
      if (whole === undefined) allAscii = false;
      else if (allAscii) pieceTexts.push(whole);
      for (const bytes of raw) readLine(bytes, whole, piece.byteOffset);
    };
    await readSegment(seg.path, take);
  }
  let checkpoint: SignedCheckpoint | undefined;
  let checkpointValid = false;
  let rootMatches = false;
  let levels: Uint8Array[][] | undefined;
  try {
    checkpoint = await latestCheckpoint(dir);
    const cp = checkpoint;
    if (cp) {
      if (!key) throw new Error('no log key to verify it with');
      if (cp.origin !== key.origin)
        throw new Error(`origin "${cp.origin}" is not the log's "${key.origin}"`);
      verifyCheckpoint(cp, key.key_name, fromBase64(key.public_key, 'public_key'), p);
      checkpointValid = true;
    } else {
      problems.push({
        code: 'LOG_NO_CHECKPOINT',
        severity: 'warning',
        detail: 'the log has no signed checkpoint yet: no line can be proven included',
      });
    }
  } catch (e) {
    problems.push({
      code: 'LOG_CHECKPOINT_INVALID',
      severity: 'error',
      detail: `the latest checkpoint does not verify: ${(e as Error).message}`,
    });
  }
  if (checkpoint) {
    if (lines.length < checkpoint.size) {
      problems.push({
        code: 'LOG_TRUNCATED',
        severity: 'error',
        detail: `the log holds ${lines.length} lines but its signed checkpoint covers ${checkpoint.size}`,
      });
    } else {
      levels = buildLevels(
        lines.slice(0, checkpoint.size).map((l) => l.leaf),
        p,
      );
      // (the same bytes, now in shared memory: an inclusion job's leaf is read in place)
      const level0 = levels[0]!;
      for (let i = 0; i < level0.length; i++) lines[i]!.leaf = level0[i]!;
      const root =
        checkpoint.size === 0 ? emptyRoot(p) : subtreeHash(levels, 0, checkpoint.size, p);
      rootMatches = toHex(root) === toHex(checkpoint.rootHash);
      if (!rootMatches)
        problems.push({
          code: 'LOG_ROOT_MISMATCH',
          severity: 'error',
          detail: `the first ${checkpoint.size} lines do not hash to the root of the signed checkpoint`,
        });
    }
    const after = lines.length - checkpoint.size;
    if (after > 0)
      problems.push({
        code: 'LOG_NOT_CHECKPOINTED',
        severity: 'warning',
        detail: `${after} line(s) after the latest checkpoint (size ${checkpoint.size}) cannot be proven included yet`,
      });
  }
  const cpSize = checkpoint?.size ?? 0;
  const memo = new Map<string, Uint8Array>();
  return {
    dir,
    lines,
    byAction,
    byContinuity,
    byObject,
    key,
    checkpoint,
    checkpointValid,
    rootMatches,
    problems,
    joinedText: allAscii ? joinPieces(pieceTexts) : undefined,
    inclusion(pos: number): Uint8Array[] | undefined {
      if (!levels || pos < 0 || pos >= cpSize) return undefined;
      const out: Uint8Array[] = [];
      path(levels, pos, 0, cpSize, p, out, memo);
      return out;
    },
  };
}
