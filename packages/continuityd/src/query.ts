/**
 * Reading an audit log folder beside its writer: indexed queries (`queryLog`) and a reader
 * that follows appends (`tailLog`). Neither takes the writer lock nor writes anything: they
 * read the index's last flushed state (a `MANIFEST.json` replaced atomically, immutable run
 * files, append-only offsets) and then scan the few lines appended since. See
 * docs/continuityd-index.md.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isActionId, parseRfc3339 } from '@tibet/core';
import { DiskIndex, type LogPosition } from './disk-index.js';
import { ContinuityError } from './errors.js';
import { listSegments, segmentName } from './log.js';
import { OBJECT_ID, lineHash, parseRecord, type LogRecord } from './record.js';

/** A point in time: a Date, an RFC 3339 UTC string, or milliseconds since 1970. */
export type TimeInput = Date | string | number;

export interface LogQuery {
  actionId?: string;
  objectId?: string;
  actor?: string;
  /** Records with received_at ≥ `from` (inclusive). */
  from?: TimeInput;
  /** Records with received_at < `to` (exclusive). */
  to?: TimeInput;
  /** First log index to consider: pass the last index returned + 1 to page. */
  fromIndex?: number;
  /** Most records returned (the first ones, in log order). */
  limit?: number;
}

export interface QueryOptions {
  /**
   * Also scan the lines appended after the index's last flush (default true). The writer
   * flushes its index at every checkpoint, so this is at most `checkpointEvery` lines.
   */
  unindexed?: boolean;
  /** Called for every log line read (the index's point: few of them). */
  onLineRead?: (index: number) => void;
  /**
   * Index page cache of a reader opened for this query alone (implies `shared: false`).
   * The shared reader caches 4 MiB.
   */
  cacheBytes?: number;
  /**
   * Use the process's reader of this folder's index (default true): opened by the first
   * query, kept while queries use it and for {@link SHARED_READER_IDLE_MS} after the last,
   * and replaced as soon as the index on disk changes (each query compares the index's
   * `MANIFEST.json` with the one the reader loaded). `false`: open a reader for this query
   * and close it after, as a one-off command would.
   */
  shared?: boolean;
}

export interface LogHit {
  index: number;
  record: LogRecord;
  /**
   * The line's bytes, without the newline: what `record` was parsed from (strictly, so they
   * are its RFC 8785 form). Its SHA-256 is what the next line's `prev` holds.
   */
  line: Uint8Array;
}

export interface TailOptions {
  /** First index to return; negative counts from the end (-10: the last ten). Default 0. */
  from?: number;
  /** Keep waiting for appends until `signal` aborts (default false: stop at the end). */
  follow?: boolean;
  /** Ends the iteration cleanly (no error) when aborted. */
  signal?: AbortSignal;
  /** How often to look for appends when the folder watch says nothing (default 250 ms). */
  pollMs?: number;
}

interface CheckedQuery {
  actionId: string | undefined;
  objectId: string | undefined;
  actor: string | undefined;
  from: number | undefined;
  to: number | undefined;
  fromIndex: number;
  limit: number;
}

function timeOf(name: string, v: TimeInput | undefined): number | undefined {
  if (v === undefined) return undefined;
  let t: number;
  if (v instanceof Date) t = v.getTime();
  else if (typeof v === 'string') t = parseRfc3339(v)?.getTime() ?? NaN;
  else if (typeof v === 'number') t = v;
  else throw new TypeError(`"${name}" expected a Date, an RFC 3339 string or milliseconds`);
  if (!Number.isFinite(t)) throw new TypeError(`"${name}" is not a valid time`);
  return t;
}

function checkQuery(q: LogQuery): CheckedQuery {
  if (typeof q !== 'object' || q === null) throw new TypeError('"query" expected an object');
  const errors: string[] = [];
  if (q.actionId !== undefined && !isActionId(q.actionId))
    errors.push('"actionId" expected act_ + 16 hex');
  if (q.objectId !== undefined && !(typeof q.objectId === 'string' && OBJECT_ID.test(q.objectId)))
    errors.push(`"objectId" expected to match ${OBJECT_ID.source}`);
  if (q.actor !== undefined && !(typeof q.actor === 'string' && q.actor !== ''))
    errors.push('"actor" expected a non-empty string');
  const nat = (name: string, v: unknown): void => {
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= 0))
      errors.push(`"${name}" expected a non-negative integer, got ${JSON.stringify(v)}`);
  };
  nat('fromIndex', q.fromIndex);
  nat('limit', q.limit);
  if (errors.length) throw new TypeError(`invalid query: ${errors.join('; ')}`);
  return {
    actionId: q.actionId,
    objectId: q.objectId,
    actor: q.actor,
    from: timeOf('from', q.from),
    to: timeOf('to', q.to),
    fromIndex: q.fromIndex ?? 0,
    limit: q.limit ?? Infinity,
  };
}

function matches(r: LogRecord, q: CheckedQuery): boolean {
  if (q.actionId !== undefined && r.causal.action_id !== q.actionId) return false;
  if (q.objectId !== undefined && r.causal.object_id !== q.objectId) return false;
  if (q.actor !== undefined && r.causal.actor_id !== q.actor) return false;
  const t = Date.parse(r.received_at);
  if (q.from !== undefined && t < q.from) return false;
  if (q.to !== undefined && t >= q.to) return false;
  return true;
}

function disagrees(index: number, what: string): ContinuityError {
  return new ContinuityError(
    'STATE_CORRUPT',
    `index: line ${index} does not hold the ${what} the index says; open the log with a DiskIndex to rebuild it`,
  );
}

/** Walks one key's postings in ascending order, jumping ahead with a fresh index lookup. */
class Postings {
  #buf: number[] = [];
  #pos = 0;
  #next: number;
  #done = false;
  constructor(
    readonly idx: DiskIndex,
    readonly kind: 'actor' | 'object',
    readonly key: string,
    lo: number,
    readonly hi: number,
  ) {
    this.#next = lo;
  }

  /** The first index ≥ x holding the key, or undefined. */
  seek(x: number): number | undefined {
    for (;;) {
      while (this.#pos < this.#buf.length && this.#buf[this.#pos]! < x) this.#pos++;
      if (this.#pos < this.#buf.length) return this.#buf[this.#pos];
      if (this.#done) return undefined;
      const batch = 256;
      const from = Math.max(x, this.#next);
      this.#buf = this.idx.lookup(this.kind, this.key, {
        fromIndex: from,
        toIndex: this.hi,
        limit: batch,
      });
      this.#pos = 0;
      if (this.#buf.length < batch) this.#done = true;
      else this.#next = this.#buf[batch - 1]! + 1;
    }
  }
}

/** How long the shared reader of a folder stays open after its last query. */
export const SHARED_READER_IDLE_MS = 5_000;
const SHARED_CACHE = 4 * 1024 * 1024;

/** A read-only index kept open across queries; closed when unused and idle, or replaced. */
interface SharedReader {
  key: string;
  idx: DiskIndex;
  users: number;
  /** Replaced by a fresher reader (or failed): closed when its last user is done. */
  retired: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const sharedReaders = new Map<string, SharedReader>();

function retire(s: SharedReader): void {
  if (sharedReaders.get(s.key) === s) sharedReaders.delete(s.key);
  s.retired = true;
  if (s.timer !== undefined) clearTimeout(s.timer);
  s.timer = undefined;
  if (s.users === 0) void s.idx.close();
}

/** The folder's shared reader, fresh: a new one if the index on disk changed since. */
function acquireReader(dir: string): SharedReader {
  const key = resolve(dir);
  let s = sharedReaders.get(key);
  if (s) {
    let stale: boolean;
    try {
      stale = s.idx.stale();
    } catch {
      stale = true;
    }
    if (stale) {
      retire(s);
      s = undefined;
    }
  }
  if (!s) {
    s = {
      key,
      idx: new DiskIndex(dir, { readOnly: true, cacheBytes: SHARED_CACHE }),
      users: 0,
      retired: false,
      timer: undefined,
    };
    sharedReaders.set(key, s);
  }
  if (s.timer !== undefined) clearTimeout(s.timer);
  s.timer = undefined;
  s.users++;
  return s;
}

function releaseReader(s: SharedReader, failed: boolean): void {
  s.users--;
  if (failed || s.retired) {
    // a reader that failed (damage, a vanished folder) is not trusted with the next query
    retire(s);
    return;
  }
  if (s.users > 0) return;
  const t = setTimeout(() => {
    if (s.users === 0) retire(s);
  }, SHARED_READER_IDLE_MS);
  t.unref();
  s.timer = t;
}

/**
 * Find records through the log's DiskIndex, reading only the lines that match (read
 * together, close ones in one read) plus a handful for a time bound. Filters combine with
 * AND; results are in log order. Every returned line is parsed and checked against the
 * query: an index that disagrees with the log fails the query with `STATE_CORRUPT` rather
 * than mislead. Needs no lock: safe beside a running writer.
 */
export async function queryLog(
  dir: string,
  query: LogQuery = {},
  options: QueryOptions = {},
): Promise<LogHit[]> {
  const q = checkQuery(query);
  if (q.limit === 0) return [];
  const own = options.shared === false || options.cacheBytes !== undefined;
  if (own) {
    const idx = new DiskIndex(dir, {
      readOnly: true,
      cacheBytes: options.cacheBytes ?? SHARED_CACHE,
    });
    try {
      return await queryWith(idx, dir, q, options);
    } finally {
      await idx.close();
    }
  }
  const s = acquireReader(dir);
  let failed = true;
  try {
    const hits = await queryWith(s.idx, dir, q, options);
    failed = false;
    return hits;
  } finally {
    releaseReader(s, failed);
  }
}

async function queryWith(
  idx: DiskIndex,
  dir: string,
  q: CheckedQuery,
  options: QueryOptions,
): Promise<LogHit[]> {
  const n = idx.readableSize;
  const hits: LogHit[] = [];
  const memo = new Map<number, { record: LogRecord; line: Uint8Array }>();
  const onLine = options.onLineRead;
  const parsed = (i: number, line: Uint8Array): { record: LogRecord; line: Uint8Array } => {
    onLine?.(i);
    const v = { record: parseRecord(line, i), line };
    memo.set(i, v);
    return v;
  };
  const read = (i: number): { record: LogRecord; line: Uint8Array } =>
    memo.get(i) ?? parsed(i, idx.lineAt(i));
  /** Read (together) and parse the lines not read yet. */
  const readAll = async (list: readonly number[]): Promise<void> => {
    const todo = list.filter((i) => !memo.has(i));
    if (todo.length < 2) {
      for (const i of todo) read(i);
      return;
    }
    const lines = await idx.linesAt(todo);
    todo.forEach((i, k) => parsed(i, lines[k]!));
  };
  const rec = (i: number): LogRecord => read(i).record;
  const receivedAt = (i: number): number => Date.parse(rec(i).received_at);
  let lo = Math.min(q.fromIndex, n);
  let hi = n;
  if (q.from !== undefined && lo < hi)
    lo = Math.max(lo, idx.firstIndexAtOrAfter(q.from, receivedAt));
  const keyed = q.actionId !== undefined || q.actor !== undefined || q.objectId !== undefined;
  if (keyed && q.to !== undefined && lo < hi)
    hi = Math.min(hi, idx.firstIndexAtOrAfter(q.to, receivedAt));

  const claimed = (i: number, field: 'action id' | 'actor' | 'object'): void => {
    const r = rec(i);
    const ok =
      field === 'action id'
        ? r.causal.action_id === q.actionId
        : field === 'actor'
          ? r.causal.actor_id === q.actor
          : r.causal.object_id === q.objectId;
    if (!ok) throw disagrees(i, field);
    if (matches(r, q)) hits.push({ index: i, record: r, line: memo.get(i)!.line });
  };

  if (lo < hi) {
    if (q.actionId !== undefined) {
      const e = idx.action(q.actionId);
      if (e && e.index >= lo && e.index < hi) claimed(e.index, 'action id');
    } else if (q.actor !== undefined && q.objectId !== undefined) {
      // the join needs only the postings: collect what may still be hits, then read those
      // lines together (every index found is in [lo, hi), so all are hits unless
      // received_at went backwards in the log)
      const a = new Postings(idx, 'object', q.objectId, lo, hi);
      const b = new Postings(idx, 'actor', q.actor, lo, hi);
      let x = lo;
      for (let done = false; !done && hits.length < q.limit;) {
        const both: number[] = [];
        while (both.length < q.limit - hits.length) {
          const i = a.seek(x);
          const j = i === undefined ? undefined : b.seek(i);
          if (i === undefined || j === undefined) {
            done = true;
            break;
          }
          if (i === j) both.push(i);
          x = i === j ? i + 1 : j;
        }
        await readAll(both);
        for (const i of both) {
          if (rec(i).causal.actor_id !== q.actor) throw disagrees(i, 'actor');
          claimed(i, 'object');
        }
      }
    } else if (q.actor !== undefined || q.objectId !== undefined) {
      const kind = q.actor !== undefined ? 'actor' : 'object';
      const key = (q.actor ?? q.objectId)!;
      const list = idx.lookup(kind, key, { fromIndex: lo, toIndex: hi, limit: q.limit });
      await readAll(list);
      for (const i of list) claimed(i, kind);
    } else {
      for (let i = lo; i < hi && hits.length < q.limit; i++) {
        const { record: r, line } = read(i);
        if (q.to !== undefined && Date.parse(r.received_at) >= q.to) break;
        if (matches(r, q)) hits.push({ index: i, record: r, line });
      }
    }
  }

  if (options.unindexed !== false && hits.length < q.limit) {
    const tail = idx.positionOf(n);
    if (tailIsEmpty(dir, tail)) return hits;
    try {
      for await (const { index, line } of readLines(dir, tail, { follow: false })) {
        options.onLineRead?.(index);
        const r = parseRecord(line, index);
        if (index >= q.fromIndex && matches(r, q)) {
          hits.push({ index, record: r, line });
          if (hits.length >= q.limit) break;
        }
      }
    } catch (e) {
      // the writer never cuts durable (indexed) lines: a log shorter than its index is damage
      if (ContinuityError.is(e) && e.code === 'CHAIN_BROKEN')
        throw new ContinuityError('STATE_CORRUPT', `index: the log is shorter than its index`, {
          cause: e,
        });
      throw e;
    }
  }
  return hits;
}

/**
 * Whether nothing was appended after `end` (the index's last flushed line): its segment ends
 * exactly there and the segment that would follow does not exist. Two `stat`s instead of
 * opening and reading the segment; anything else (lines appended, a segment cut back or
 * missing) is left to {@link readLines}, which reads or reports it.
 */
function tailIsEmpty(dir: string, end: LogPosition): boolean {
  try {
    if (statSync(join(dir, 'segments', segmentName(end.segment))).size !== end.offset) return false;
  } catch {
    return false;
  }
  if (end.index === end.segment) return true; // the segment is empty: it is the next one
  try {
    statSync(join(dir, 'segments', segmentName(end.index)));
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * The log's records in order from `from`, as an async iterable; with `follow`, keeps
 * returning appends as they land until `signal` aborts (then it ends without an error).
 * Lines are returned once complete; each is parsed with its expected index and checked to
 * chain to the one before. A line the writer had written but then cut back (a failed
 * write: never acknowledged) makes the iteration throw `CHAIN_BROKEN`.
 */
export function tailLog(dir: string, options: TailOptions = {}): AsyncIterable<LogHit> {
  const from = options.from ?? 0;
  if (!Number.isSafeInteger(from)) throw new TypeError(`"from" expected an integer, got ${from}`);
  const pollMs = options.pollMs ?? 250;
  if (!(Number.isFinite(pollMs) && pollMs > 0))
    throw new RangeError(`"pollMs" expected a positive number, got ${pollMs}`);
  const follow = options.follow ?? false;
  const signal = options.signal;

  async function* run(): AsyncGenerator<LogHit, void, undefined> {
    if (signal?.aborted) return;
    const { start, target } = await locate(dir, from);
    let prevHash: string | undefined;
    for await (const { index, line } of readLines(dir, start, {
      follow,
      pollMs,
      ...(signal ? { signal } : {}),
    })) {
      const r = parseRecord(line, index);
      if (prevHash !== undefined && r.prev !== prevHash)
        throw new ContinuityError(
          'CHAIN_BROKEN',
          `line ${index}: prev does not match line ${index - 1} as read before (the log was rewritten under the reader)`,
        );
      prevHash = lineHash(line);
      if (index >= target) yield { index, record: r, line };
    }
  }
  return run();
}

/** Where to start reading for record `from` (negative: from the end). */
async function locate(dir: string, from: number): Promise<{ start: LogPosition; target: number }> {
  let idx: DiskIndex | undefined = new DiskIndex(dir, { readOnly: true, cacheBytes: 1024 * 1024 });
  let n = 0;
  try {
    n = idx.readableSize;
  } catch (e) {
    // a damaged index only costs a scan here
    if (!(ContinuityError.is(e) && e.code === 'STATE_CORRUPT')) throw e;
    await idx.close();
    idx = undefined;
  }
  try {
    let target = from;
    if (from < 0) {
      let total = n;
      const tailStart = idx ? idx.positionOf(n) : { index: 0, segment: 0, offset: 0 };
      for await (const l of readLines(dir, tailStart, { follow: false })) total = l.index + 1;
      target = Math.max(0, total + from);
    }
    if (idx && target < n) return { start: idx.positionOf(target), target };
    let start: LogPosition = idx ? idx.positionOf(n) : { index: 0, segment: 0, offset: 0 };
    // skip whole segments that end before the target
    for (const s of await listSegments(dir)) {
      if (s.first > start.index && s.first <= target)
        start = { index: s.first, segment: s.first, offset: 0 };
    }
    return { start, target };
  } finally {
    await idx?.close();
  }
}

/** Wakes a waiting reader when the segments folder changes, on a timer, or on abort. */
class ChangeWaiter {
  #watcher: FSWatcher | undefined;
  #dirty = false;
  #wake: (() => void) | undefined;
  readonly #onAbort = (): void => this.#poke();

  constructor(
    dir: string,
    readonly signal: AbortSignal | undefined,
  ) {
    try {
      this.#watcher = watch(join(dir, 'segments'), { persistent: false }, () => this.#poke());
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // no folder yet, or no watch support: the timer does
    }
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  #poke(): void {
    this.#dirty = true;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Forget earlier changes: call before reading. */
  arm(): void {
    this.#dirty = false;
  }

  async wait(ms: number): Promise<void> {
    if (this.#dirty || this.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  close(): void {
    this.#watcher?.close();
    this.signal?.removeEventListener('abort', this.#onAbort);
    this.#poke();
  }
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Complete lines from a position on, across segments; a line is yielded once its newline
 * is there. With `follow`, waits for more at the end instead of returning.
 */
async function* readLines(
  dir: string,
  start: LogPosition,
  o: { follow: boolean; signal?: AbortSignal; pollMs?: number },
): AsyncGenerator<{ index: number; line: Uint8Array }, void, undefined> {
  let index = start.index;
  let seg = start.segment;
  let consumed = start.offset; // just past the last line returned
  let readPos = consumed;
  let carry: Buffer = Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(256 * 1024);
  const waiter = o.follow ? new ChangeWaiter(dir, o.signal) : undefined;
  const segPath = (first: number): string => join(dir, 'segments', segmentName(first));
  let fh: FileHandle | undefined;
  try {
    for (;;) {
      if (o.signal?.aborted) return;
      waiter?.arm();
      fh ??= await openIfExists(segPath(seg));
      if (fh) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, readPos);
        if (bytesRead > 0) {
          readPos += bytesRead;
          const data = carry.length
            ? Buffer.concat([carry, buf.subarray(0, bytesRead)])
            : buf.subarray(0, bytesRead);
          let i = 0;
          for (;;) {
            const nl = data.indexOf(0x0a, i);
            if (nl < 0) break;
            const line = new Uint8Array(data.subarray(i, nl));
            consumed += nl + 1 - i;
            i = nl + 1;
            yield { index: index++, line };
          }
          carry = Buffer.from(data.subarray(i));
          continue;
        }
        const size = (await fh.stat()).size;
        if (size < consumed)
          throw new ContinuityError(
            'CHAIN_BROKEN',
            `${segmentName(seg)} was cut back below line ${index - 1}, which was already read (a failed write)`,
          );
        if (size < readPos) {
          // an incomplete line was cut off (recovery or a failed write): read again from here
          readPos = consumed;
          carry = Buffer.alloc(0);
          continue;
        }
        if (carry.length === 0) {
          const next = await openIfExists(segPath(index));
          if (next) {
            await fh.close();
            fh = next;
            seg = index;
            consumed = readPos = 0;
            continue;
          }
        }
      }
      if (!waiter) return;
      await waiter.wait(o.pollMs ?? 250);
    }
  } finally {
    waiter?.close();
    await fh?.close();
  }
}
