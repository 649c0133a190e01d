/**
 * The questions users ask of a secret, answered from its timeline in the audit log.
 *
 * Every keychain event is a signed token on the secret's own continuity line (object id =
 * continuity id = secret id). The answers here are computed from those events only: the
 * state of a secret at any time T is the replay, with the state machine's own `apply`, of
 * its events up to T (causal order; wall-clock only bounds the prefix). Every answer
 * carries `evidence`: the events it rests on, each with its log index, action id and line
 * hash (SHA-256 of the log line, what the next line's `prev` holds) and RFC 9162 leaf hash,
 * so that it can be checked against a signed checkpoint (see {@link KeychainTimeline.withProofs}).
 *
 * Layers:
 *  - {@link TimelineSource}: where records come from (a log folder, by scan or through the
 *    persisted index; or an {@link AuditClient});
 *  - {@link secretLine} and {@link replay}: records → the secret's events → states;
 *  - pure queries over the events ({@link history}, {@link whoCould}, …);
 *  - {@link KeychainTimeline}: the same queries, reading through a source.
 *
 * See docs/keychain.md §Queries.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canonicalize,
  fromBase64,
  getProvider,
  isActorId,
  sha256Hex,
  toHex,
  tokenHash,
  utf8,
  type ActorClass,
  type CryptoProvider,
  type JsonValue,
  type PolicyDecision,
  type TibetToken,
} from '@tibet/core';
import * as continuityd from '@tibet/continuityd';
import {
  ContinuityError,
  DaemonClient,
  EmbeddedClient,
  MerkleFrontier,
  RECORD_VERSION,
  encodeRecord,
  latestCheckpoint,
  leafHash,
  lineHash,
  listSegments,
  parseRecord,
  splitLines,
  verifyCheckpoint,
  type AuditClient,
  type LogRecord,
  type SignedCheckpoint,
} from '@tibet/continuityd';
import {
  DEFAULT_POLICY,
  EVENT_OF,
  apply,
  applyShared,
  decide,
  versionsToEdit,
  type ApplyInput,
  type Decision,
  type Operation,
  type Request,
  type SecretPolicy,
  type SecretState,
} from './state.js';
import {
  AUTHORITY_MODES,
  REPORTABLE_EXPOSURES,
  parseSecretType,
  type AuthorityMode,
  type CustodyRole,
  type ExposureState,
  type LifecycleState,
  type ReportableExposure,
  type SecretType,
} from './vocabulary.js';

// ===================================================================== sources

/** A problem found in the log itself while reading it. */
export type LogProblemCode =
  | 'LOG_SEGMENT_MISSING'
  | 'LOG_LINE_MALFORMED'
  | 'LOG_INDEX_MISMATCH'
  | 'LOG_CHAIN_BROKEN'
  | 'LOG_CHECKPOINT_INVALID'
  | 'LOG_TRUNCATED'
  | 'LOG_ROOT_MISMATCH';

export interface LogProblem {
  code: LogProblemCode;
  message: string;
  /** Position (0-based line number across segments) where it was found. */
  index?: number;
}

/** Where a timeline's records come from. */
export interface TimelineSource {
  /** The records whose object id is `secretId`, in log order. */
  eventsFor(secretId: string): Promise<LogRecord[]>;
  /** Every secret with a creation event in the log, sorted. */
  secretIds(): Promise<string[]>;
  /** One record by action id (to describe a parent: a capsule, a session), if logged. */
  byAction(actionId: string): Promise<LogRecord | undefined>;
  /** Problems found in the log while reading it (chain, indexes, checkpoint). */
  integrity?(): Promise<LogProblem[]>;
  /**
   * The hashes of a record this source returned, computed from the line's own bytes as it
   * read them (undefined: not known, the record is re-encoded and hashed instead).
   */
  hashesOf?(record: LogRecord): RecordHashes | undefined;
}

/**
 * The persisted index's query function (`queryLog` of `@tibet/continuityd`), or anything
 * with its shape: records matching an object id or an action id, in log order.
 */
export type LogQueryFn = (
  dir: string,
  query: { objectId?: string; actionId?: string },
) => Promise<{ index: number; record: LogRecord; line?: Uint8Array }[]>;

/**
 * The lines records were parsed from (strictly: a parsed line is the RFC 8785 form of its
 * record), by record object, so that their hashes are taken from the bytes read instead of
 * re-encoding the record; filled by the sources of this module as they read.
 */
class LineBytes {
  readonly #lines = new WeakMap<LogRecord, Uint8Array | RecordHashes>();

  constructor(readonly provider: CryptoProvider) {}

  set(r: LogRecord, line: Uint8Array): void {
    this.#lines.set(r, line);
  }

  hashesOf(r: LogRecord): RecordHashes | undefined {
    const v = this.#lines.get(r);
    if (v === undefined || !(v instanceof Uint8Array)) return v;
    const h = hashesFromLine(v, r, this.provider);
    this.#lines.set(r, h);
    return h;
  }
}

const RECORD_TAIL = utf8(`,"v":${JSON.stringify(RECORD_VERSION)}}`);

/**
 * Where the token is in its record's line. The line is canonical (the parser checked it):
 * `{"causal":{…},"index":I,"prev":P,"received_at":R,"token":{…},"v":"tibet-log/1"}`, members
 * in that order. The text from `,"index":` to `"token":` can only occur once: the causal
 * block has no member named index, and inside a string every `"` is escaped (`\"`), so a
 * `,"` there is not possible. The token's canonical form is its text in the line.
 */
function tokenBytesIn(line: Uint8Array, r: LogRecord): Uint8Array | undefined {
  const b = Buffer.from(line.buffer, line.byteOffset, line.byteLength);
  const end = b.length - RECORD_TAIL.length;
  if (end <= 0 || !b.subarray(end).equals(RECORD_TAIL)) return undefined;
  const head = `,"index":${JSON.stringify(r.index)},"prev":${JSON.stringify(r.prev)},"received_at":${JSON.stringify(r.received_at)},"token":`;
  const at = b.indexOf(head, 0, 'utf8');
  if (at < 0) return undefined;
  const start = at + Buffer.byteLength(head);
  if (!(start < end && b[start] === 0x7b && b[end - 1] === 0x7d)) return undefined;
  return line.subarray(start, end);
}

/** The hashes of a record's line, from its bytes. */
function hashesFromLine(line: Uint8Array, r: LogRecord, provider: CryptoProvider): RecordHashes {
  const token = tokenBytesIn(line, r);
  return {
    line_hash: lineHash(line, provider),
    leaf_hash: toHex(leafHash(line, provider)),
    token_hash: token ? `sha256:${sha256Hex(token, provider)}` : tokenHash(r.token, provider),
  };
}

/** `queryLog`, when the installed `@tibet/continuityd` exports it. */
function exportedQueryLog(): LogQueryFn | undefined {
  const f = (continuityd as unknown as Record<string, unknown>)['queryLog'];
  return typeof f === 'function' ? (f as LogQueryFn) : undefined;
}

/** A log folder read whole: its records, indexed, and what was wrong with it. */
export interface LogScan {
  records: LogRecord[];
  byObject: Map<string, LogRecord[]>;
  byAction: Map<string, LogRecord>;
  problems: LogProblem[];
}

/** Index a list of records read in log order, checking indexes and the hash chain. */
class RecordSet {
  readonly records: LogRecord[] = [];
  readonly byObject = new Map<string, LogRecord[]>();
  readonly byAction = new Map<string, LogRecord>();
  readonly problems: LogProblem[] = [];
  #prevHash: string | null = null;
  #shift = 0;

  /** Add the record at `position` (its bytes hash to `hash`); `undefined` = unreadable line. */
  add(position: number, r: LogRecord | undefined, hash: string, why?: string): void {
    if (!r) {
      this.problems.push({
        code: 'LOG_LINE_MALFORMED',
        index: position,
        message: `line ${position} is not a valid record${why ? `: ${why}` : ''}`,
      });
      this.#prevHash = hash;
      return;
    }
    const shift = r.index - position;
    if (shift !== this.#shift) {
      this.problems.push({
        code: 'LOG_INDEX_MISMATCH',
        index: position,
        message: `line ${position} holds record ${r.index}: ${shift > this.#shift ? `${shift - this.#shift} record(s) missing before it` : 'a record is repeated or out of place'}`,
      });
      this.#shift = shift;
    }
    if (r.prev !== this.#prevHash) {
      this.problems.push({
        code: 'LOG_CHAIN_BROKEN',
        index: position,
        message: `record ${r.index}: prev does not match the hash of the line before it (a line was removed, changed or inserted)`,
      });
    }
    this.#prevHash = hash;
    this.records.push(r);
    const o = r.causal.object_id;
    if (o !== null) {
      const list = this.byObject.get(o);
      if (list) list.push(r);
      else this.byObject.set(o, [r]);
    }
    if (!this.byAction.has(r.causal.action_id)) this.byAction.set(r.causal.action_id, r);
  }

  result(): LogScan {
    return {
      records: this.records,
      byObject: this.byObject,
      byAction: this.byAction,
      problems: this.problems,
    };
  }
}

function secretIdsOf(records: readonly LogRecord[]): string[] {
  const ids = new Set<string>();
  for (const r of records) {
    const o = r.causal.object_id;
    if (o !== null && r.causal.continuity_id === o && GENESIS_EVENTS.has(r.token.event)) ids.add(o);
  }
  return [...ids].sort();
}

async function readLogKey(
  dir: string,
): Promise<{ keyName: string; publicKey: Uint8Array } | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'log.json'), 'utf8')) as Record<string, unknown>;
    if (typeof m['key_name'] !== 'string' || typeof m['public_key'] !== 'string') return undefined;
    return { keyName: m['key_name'], publicKey: fromBase64(m['public_key'], 'public_key') };
  } catch {
    return undefined;
  }
}

/**
 * Read a whole log folder: every line parsed (a bad line is reported, not fatal), indexes
 * and the hash chain checked, and the Merkle root recomputed at the latest signed
 * checkpoint's size and compared with it.
 */
async function scanFolder(
  dir: string,
  provider: CryptoProvider,
  bytes: LineBytes,
): Promise<LogScan> {
  const set = new RecordSet();
  let cp: SignedCheckpoint | undefined;
  let cpProblem: LogProblem | undefined;
  try {
    cp = await latestCheckpoint(dir);
    if (cp) {
      const key = await readLogKey(dir);
      if (!key) throw new Error('log.json has no key');
      verifyCheckpoint(cp, key.keyName, key.publicKey, provider);
    }
  } catch (e) {
    cpProblem = {
      code: 'LOG_CHECKPOINT_INVALID',
      message: `the latest checkpoint does not verify: ${(e as Error).message}`,
    };
    cp = undefined;
  }
  const frontier = new MerkleFrontier(0, [], provider);
  let rootAtCheckpoint: Uint8Array | undefined = cp?.size === 0 ? frontier.root() : undefined;
  let position = 0;
  for (const seg of await listSegments(dir)) {
    if (seg.first !== position) {
      set.problems.push({
        code: 'LOG_SEGMENT_MISSING',
        index: position,
        message: `segment ${seg.path} starts at ${seg.first}, expected ${position}`,
      });
    }
    const { lines } = splitLines(new Uint8Array(await readFile(seg.path)));
    for (const line of lines) {
      const hash = lineHash(line, provider);
      frontier.push(leafHash(line, provider));
      let r: LogRecord | undefined;
      let why: string | undefined;
      try {
        r = parseRecord(line);
        bytes.set(r, line);
      } catch (e) {
        why = (e as Error).message;
      }
      set.add(position, r, hash, why);
      position++;
      if (cp && frontier.size === cp.size) rootAtCheckpoint = frontier.root();
    }
  }
  if (cpProblem) set.problems.push(cpProblem);
  if (cp) {
    if (position < cp.size) {
      set.problems.push({
        code: 'LOG_TRUNCATED',
        index: position,
        message: `the log holds ${position} lines but its signed checkpoint covers ${cp.size}`,
      });
    } else if (!rootAtCheckpoint || toHex(rootAtCheckpoint) !== toHex(cp.rootHash)) {
      set.problems.push({
        code: 'LOG_ROOT_MISMATCH',
        index: cp.size - 1,
        message: `the first ${cp.size} lines do not hash to the root of the signed checkpoint`,
      });
    }
  }
  return set.result();
}

export interface LogFolderSourceOptions {
  /**
   * Use the persisted index: a `queryLog`-shaped function, `false` to always scan, or
   * undefined to use `queryLog` when `@tibet/continuityd` exports it. When the index
   * cannot answer (none built, or it disagrees with the log), the source scans instead.
   */
  query?: LogQueryFn | false;
  provider?: CryptoProvider;
}

/**
 * A timeline read from a log folder (beside a running writer: no lock is taken). Reads one
 * secret through the persisted index when there is one, else scans the folder once and
 * keeps the result until a segment or checkpoint changes.
 */
export class LogFolderSource implements TimelineSource {
  readonly dir: string;
  readonly provider: CryptoProvider;
  #query: LogQueryFn | undefined;
  #scan: { key: string; result: LogScan } | undefined;
  readonly #bytes: LineBytes;
  /** How the last read was answered. */
  lastMode: 'index' | 'scan' | undefined;

  constructor(dir: string, o: LogFolderSourceOptions = {}) {
    this.dir = dir;
    this.provider = o.provider ?? getProvider();
    this.#query = o.query === false ? undefined : (o.query ?? exportedQueryLog());
    this.#bytes = new LineBytes(this.provider);
  }

  hashesOf(record: LogRecord): RecordHashes | undefined {
    return this.#bytes.hashesOf(record);
  }

  async #fingerprint(): Promise<string> {
    const parts: string[] = [];
    for (const s of await listSegments(this.dir)) {
      const st = await stat(s.path);
      parts.push(`${s.first}:${st.size}:${st.mtimeMs}`);
    }
    try {
      const st = await stat(join(this.dir, 'checkpoints'));
      parts.push(`cp:${st.mtimeMs}`);
    } catch {
      parts.push('cp:-');
    }
    return parts.join('|');
  }

  /** The whole folder, scanned (cached while the files are unchanged). */
  async scan(): Promise<LogScan> {
    const key = await this.#fingerprint();
    if (this.#scan?.key !== key)
      this.#scan = { key, result: await scanFolder(this.dir, this.provider, this.#bytes) };
    this.lastMode = 'scan';
    return this.#scan.result;
  }

  async #indexed(q: { objectId?: string; actionId?: string }): Promise<LogRecord[] | undefined> {
    if (!this.#query) return undefined;
    try {
      const hits = await this.#query(this.dir, q);
      this.lastMode = 'index';
      for (const h of hits) if (h.line) this.#bytes.set(h.record, h.line);
      return hits.map((h) => h.record);
    } catch (e) {
      // no index, or one that disagrees with the log: the scan reads the log itself
      if (!ContinuityError.is(e)) throw e;
      this.#query = undefined;
      return undefined;
    }
  }

  async eventsFor(secretId: string): Promise<LogRecord[]> {
    const hit = await this.#indexed({ objectId: secretId });
    if (hit) return hit;
    return [...((await this.scan()).byObject.get(secretId) ?? [])];
  }

  async secretIds(): Promise<string[]> {
    return secretIdsOf((await this.scan()).records);
  }

  async byAction(actionId: string): Promise<LogRecord | undefined> {
    const hit = await this.#indexed({ actionId });
    if (hit) return hit[0];
    return (await this.scan()).byAction.get(actionId);
  }

  async integrity(): Promise<LogProblem[]> {
    return [...(await this.scan()).problems];
  }
}

export interface AuditClientSourceOptions {
  /**
   * Read record `index` (the parsed JSON record). Default: `log.readRecord` for an
   * {@link EmbeddedClient}, `GET /v1/record/<index>` for a {@link DaemonClient}.
   */
  readRecord?: (index: number) => Promise<unknown>;
  provider?: CryptoProvider;
}

/**
 * A timeline read through an {@link AuditClient}. The client interface has no query by
 * object, so this reads every record once (then only new ones), checks each strictly
 * (canonical form, chain) and indexes them in memory. Fine for a daemon with a modest log;
 * beside the log folder, prefer {@link LogFolderSource}.
 */
export class AuditClientSource implements TimelineSource {
  readonly provider: CryptoProvider;
  readonly #read: (index: number) => Promise<unknown>;
  readonly #set: RecordSet;
  readonly #bytes: LineBytes;
  #next = 0;

  constructor(
    readonly client: AuditClient,
    o: AuditClientSourceOptions = {},
  ) {
    this.provider = o.provider ?? getProvider();
    this.#set = new RecordSet();
    this.#bytes = new LineBytes(this.provider);
    if (o.readRecord) this.#read = o.readRecord;
    else if (client instanceof EmbeddedClient) this.#read = (i) => client.log.readRecord(i);
    else if (client instanceof DaemonClient)
      this.#read = (i) => client.call<unknown>('GET', `/v1/record/${i}`);
    else throw new TypeError('"readRecord" is needed for this kind of AuditClient');
  }

  async #sync(): Promise<RecordSet> {
    const size = (await this.client.head()).size;
    const set = this.#set;
    for (; this.#next < size; this.#next++) {
      const i = this.#next;
      const raw = await this.#read(i);
      let line: Uint8Array;
      try {
        line = utf8(canonicalize(raw));
      } catch (e) {
        set.add(i, undefined, '', (e as Error).message);
        continue;
      }
      let r: LogRecord | undefined;
      let why: string | undefined;
      try {
        r = parseRecord(line);
        this.#bytes.set(r, line);
      } catch (e) {
        why = (e as Error).message;
      }
      set.add(i, r, lineHash(line, this.provider), why);
    }
    return set;
  }

  async eventsFor(secretId: string): Promise<LogRecord[]> {
    return [...((await this.#sync()).byObject.get(secretId) ?? [])];
  }

  async secretIds(): Promise<string[]> {
    return secretIdsOf((await this.#sync()).records);
  }

  async byAction(actionId: string): Promise<LogRecord | undefined> {
    return (await this.#sync()).byAction.get(actionId);
  }

  async integrity(): Promise<LogProblem[]> {
    return [...(await this.#sync()).problems];
  }

  hashesOf(record: LogRecord): RecordHashes | undefined {
    return this.#bytes.hashesOf(record);
  }
}

/**
 * The natural source for a keychain's audit client: the log folder itself for an embedded
 * log, else reading through the client.
 */
export function timelineSourceFor(
  audit: AuditClient,
  o: LogFolderSourceOptions = {},
): TimelineSource {
  if (audit instanceof EmbeddedClient) return new LogFolderSource(audit.log.dir, o);
  return new AuditClientSource(audit, o.provider ? { provider: o.provider } : {});
}

// ===================================================================== events

/** One keychain event, with where it is in the log. */
export interface KeychainEvent {
  index: number;
  /** Hex SHA-256 of the log line (the next line's `prev`). */
  line_hash: string;
  /** Hex RFC 9162 leaf hash of the line (what an inclusion proof proves). */
  leaf_hash: string;
  /** `sha256:<hex>` of the token (what the next token on the line names as `prev`). */
  token_hash: string;
  action_id: string;
  parent_action_id: string | null;
  generation: number;
  event: string;
  actor: string;
  actor_class: ActorClass;
  /** The token's timestamp: when the keychain decided (RFC 3339). */
  at: string;
  /** When the log accepted it. */
  received_at: string;
  /** erachter: why. */
  reason: string;
  authority_mode: string | null;
  decisions: PolicyDecision[];
  erin: Record<string, JsonValue>;
  eromheen: Record<string, JsonValue>;
  token: TibetToken;
}

/** A break in a secret's line: an event's `prev` does not name the event before it. */
export interface LineGap {
  /** The log index of the event whose `prev` does not match. */
  index: number;
  action_id: string;
  expected_prev: string | null;
  found_prev: string | null;
}

function objectOf(v: JsonValue | undefined): Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
}

function str(o: Record<string, JsonValue>, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' ? v : undefined;
}

/** The three hashes of a record's line, when the caller already holds them. */
export interface RecordHashes {
  /** Hex SHA-256 of the line. */
  line_hash: string;
  /** Hex RFC 9162 leaf hash of the line. */
  leaf_hash: string;
  /** `sha256:<hex>` of the token. */
  token_hash: string;
}

function toEvent(r: LogRecord, provider: CryptoProvider, known?: RecordHashes): KeychainEvent {
  let h = known;
  if (!h) {
    const line = encodeRecord(r);
    h = {
      line_hash: lineHash(line, provider),
      leaf_hash: toHex(leafHash(line, provider)),
      token_hash: tokenHash(r.token, provider),
    };
  }
  const t = r.token;
  const eromheen = objectOf(t.eromheen);
  return {
    index: r.index,
    line_hash: h.line_hash,
    leaf_hash: h.leaf_hash,
    token_hash: h.token_hash,
    action_id: t.action_id,
    parent_action_id: t.parent_action_id,
    generation: t.generation,
    event: t.event,
    actor: t.actor,
    actor_class: t.actor_class,
    at: t.timestamp,
    received_at: r.received_at,
    reason: t.erachter,
    authority_mode: str(eromheen, 'authority_mode') ?? null,
    decisions: t.policy,
    erin: objectOf(t.erin),
    eromheen,
    token: t,
  };
}

/**
 * The secret's own line out of its records: the events on continuity line `secretId`, in
 * causal order (log order on one line: the log accepts a token only when its `prev` names
 * the line's last event), and every place where the `prev` chain does not hold — an event
 * missing, reordered or inserted. A reader that has just read and hashed the lines may pass
 * `hashes` (the record's line, leaf and token hashes, exactly as they would be computed here —
 * e.g. from the line's own bytes) so that each record is not re-encoded and hashed again.
 */
export function secretLine(
  records: readonly LogRecord[],
  secretId: string,
  provider: CryptoProvider = getProvider(),
  hashes?: (r: LogRecord) => RecordHashes | undefined,
): { events: KeychainEvent[]; gaps: LineGap[] } {
  // the records on the line, the first of each index, then (stably) by index: in one pass,
  // sorted only when they are not in order already (as a log reads them)
  const seen = new Set<number>();
  const mine: LogRecord[] = [];
  let ordered = true;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.causal.object_id !== secretId || r.causal.continuity_id !== secretId) continue;
    if (seen.has(r.index)) continue;
    seen.add(r.index);
    if (mine.length > 0 && r.index < mine[mine.length - 1]!.index) ordered = false;
    mine.push(r);
  }
  if (!ordered) mine.sort((a, b) => a.index - b.index);
  const events = new Array<KeychainEvent>(mine.length);
  for (let i = 0; i < mine.length; i++) events[i] = toEvent(mine[i]!, provider, hashes?.(mine[i]!));
  return { events, gaps: lineGaps(events) };
}

/** Where the `prev` chain of a secret's events (in causal order) does not hold. */
export function lineGaps(events: readonly KeychainEvent[]): LineGap[] {
  const gaps: LineGap[] = [];
  let prev: string | null = null;
  for (const e of events) {
    if (e.token.prev !== prev)
      gaps.push({
        index: e.index,
        action_id: e.action_id,
        expected_prev: prev,
        found_prev: e.token.prev,
      });
    prev = e.token_hash;
  }
  return gaps;
}

// ===================================================================== replay

const GENESIS_EVENTS = new Set(['secret-created', 'secret-imported']);

const OP_OF: ReadonlyMap<string, Operation> = new Map(
  (Object.entries(EVENT_OF) as [Operation, string][]).map(([op, ev]) => [ev, op]),
);

/** The fields whose last change a query cites as evidence. */
export type TrackedField =
  | 'owner_id'
  | 'custodian_id'
  | 'active_operator_id'
  | 'policy'
  | 'lifecycle_state'
  | 'exposure_state'
  | 'rotation_required'
  | 'expires_at'
  | 'pending_handoff'
  | 'version'
  | 'archived';

const TRACKED: readonly TrackedField[] = [
  'owner_id',
  'custodian_id',
  'active_operator_id',
  'policy',
  'lifecycle_state',
  'exposure_state',
  'rotation_required',
  'expires_at',
  'pending_handoff',
  'version',
  'archived',
];

export type ReplayProblemCode =
  | 'GENESIS_MISSING'
  | 'GENESIS_INCOMPLETE'
  | 'EVENT_UNEXPECTED'
  | 'EVENT_NOT_ALLOWED'
  | 'EVENT_DECISION_MISMATCH';

export interface ReplayProblem {
  code: ReplayProblemCode;
  message: string;
  index: number;
  action_id: string;
}

/** For each tracked field, the event that last set it. */
export type Established = Partial<Record<TrackedField, KeychainEvent>>;

export interface ReplayStep {
  event: KeychainEvent;
  /**
   * The state after the event (the state before it for a denial). Read-only: the states of a
   * replay share the members an event does not change (and steps share `established`).
   */
  state: SecretState | undefined;
  /** False for denials and events that could not be applied. */
  applied: boolean;
  /** {@link Replay.established} as of this step. */
  established: Established;
}

export interface Replay {
  secret_id: string;
  /** The state after the last event replayed; undefined before the secret existed. */
  state: SecretState | undefined;
  steps: ReplayStep[];
  /** The creation event. */
  genesis: KeychainEvent | undefined;
  /** For each tracked field, the event that last set it (the genesis event at first). */
  established: Established;
  problems: ReplayProblem[];
}

/**
 * No lone surrogate (RFC 8785 canonicalization refuses them): `String.prototype.isWellFormed`
 * (ES2024, Node ≥ 20), the same test as `/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/`
 * failing, several times cheaper.
 */
function wellFormed(v: string): boolean {
  return (v as string & { isWellFormed(): boolean }).isWellFormed();
}

/** A value whose RFC 8785 form is equal to another such value's exactly when they are ===. */
function simple(v: unknown): boolean {
  return (
    v === null ||
    typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isFinite(v)) || // −0 and 0 both give "0"
    (typeof v === 'string' && wellFormed(v)) // canonicalize refuses lone surrogates
  );
}

/**
 * True only when `a` and `b` are provably the same JSON value with the same RFC 8785 form,
 * built of simple values, arrays without holes and plain objects without undefined members
 * (anything else, and any difference, is left to the canonical comparison).
 */
function provablySame(a: unknown, b: unknown, depth: number): boolean {
  // a simple `a` (see simple()): the same only when b === a (then b is simple too)
  switch (typeof a) {
    case 'string':
      return a === b && wellFormed(a);
    case 'number':
      return a === b && Number.isFinite(a);
    case 'boolean':
      return a === b;
    case 'object':
      if (a === null) return b === null;
      break;
    default:
      return false;
  }
  if (typeof b !== 'object' || b === null || depth > 100) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++)
      if (!(i in a) || !(i in b) || !provablySame(a[i], b[i], depth + 1)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const pa = Object.getPrototypeOf(a) as unknown;
  const pb = Object.getPrototypeOf(b) as unknown;
  if ((pa !== Object.prototype && pa !== null) || (pb !== Object.prototype && pb !== null))
    return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  const oa = a as Record<string, unknown>;
  const ob = b as Record<string, unknown>;
  for (const k of ka) {
    if (oa[k] === undefined || !Object.hasOwn(ob, k) || !wellFormed(k)) return false;
    if (!provablySame(oa[k], ob[k], depth + 1)) return false;
  }
  return true;
}

function same(a: unknown, b: unknown): boolean {
  if (simple(a) && simple(b)) return a === b;
  return provablySame(a, b, 0) || canonicalize(a) === canonicalize(b);
}

/**
 * {@link same} for the decisions {@link decide} lists (`a`: its `{ rule, decision, detail }`
 * literals, strings all three) and the ones an event records (`b`, anything): provablySame's
 * checks for that shape — same length, each recorded entry a plain object with exactly these
 * three own members, each === the decided one and without lone surrogates — without its
 * generic walk. Any other shape, and any difference, is left to {@link same} (so the answer
 * is same()'s in every case).
 */
/**
 * Whether `o` has exactly three enumerable members, all its own (what `Object.keys(o).length
 * === 3` tells for a plain object, without allocating the key array).
 */
function threeOwnMembers(o: object): boolean {
  let n = 0;
  for (const k in o) if (!Object.hasOwn(o, k) || ++n > 3) return false;
  return n === 3;
}

function sameDecisions(a: readonly PolicyDecision[], b: unknown): boolean {
  fast: {
    if (!Array.isArray(b) || b.length !== a.length) break fast;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y: unknown = b[i];
      if (typeof y !== 'object' || y === null || Array.isArray(y)) break fast;
      const proto = Object.getPrototypeOf(y) as unknown;
      if (proto !== Object.prototype && proto !== null) break fast;
      const { rule, decision, detail } = x;
      const o = y as Partial<Record<keyof PolicyDecision, unknown>>;
      if (
        typeof rule !== 'string' ||
        typeof decision !== 'string' ||
        typeof detail !== 'string' ||
        o.rule !== rule ||
        o.decision !== decision ||
        o.detail !== detail ||
        !Object.hasOwn(o, 'rule') ||
        !Object.hasOwn(o, 'decision') ||
        !Object.hasOwn(o, 'detail') ||
        !wellFormed(rule) ||
        !wellFormed(decision) ||
        !wellFormed(detail) ||
        !threeOwnMembers(o) ||
        !threeOwnMembers(x)
      )
        break fast;
    }
    return true;
  }
  return same(a, b);
}

/**
 * {@link same} for a replay whose states share unchanged members (see `applyShared`): an
 * object compared with itself is proven plain JSON (provablySame) once per replay and then
 * remembered in `proven` (a replay's states are its own and are not edited while it runs);
 * every other comparison is {@link same}'s.
 */
function sameShared(a: unknown, b: unknown, proven: WeakSet<object>): boolean {
  if (a === b)
    switch (typeof a) {
      // what same() answers for these, without testing both sides
      case 'boolean':
        return true;
      case 'string':
        if (wellFormed(a)) return true;
        break;
      case 'number':
        if (Number.isFinite(a)) return true;
        break;
      case 'object':
        if (a === null || proven.has(a)) return true;
        if (provablySame(a, a, 0)) {
          proven.add(a);
          return true;
        }
        break;
      default:
        break;
    }
  return same(a, b);
}

function genesisState(e: KeychainEvent): { state: SecretState; missing: string[] } {
  const { erin, eromheen } = e;
  const missing: string[] = [];
  const want = <T>(o: Record<string, JsonValue>, k: string, dflt: T): T => {
    if (!(k in o)) {
      missing.push(k);
      return dflt;
    }
    return o[k] as T;
  };
  const policy = want<SecretPolicy>(eromheen, 'policy', { ...DEFAULT_POLICY });
  const type = parseSecretType(erin['secret_type']);
  if (!type) missing.push('secret_type');
  const sha = want<string | null>(erin, 'material_sha256', null);
  // (members in SecretState's order, the order state.ts's shallowState copies them in)
  const state: SecretState = {
    secret_id: str(erin, 'secret_id') ?? '',
    secret_type: type ?? 'api_key',
    issuer: str(eromheen, 'issuer') ?? '',
    scope: str(eromheen, 'scope') ?? '',
    created_at: e.at,
    expires_at: want<string | null>(eromheen, 'expires_at', null),
    owner_id: (eromheen['owner_id'] as string | null | undefined) ?? null,
    custodian_id: (eromheen['custodian_id'] as string | null | undefined) ?? null,
    active_operator_id: want<string | null>(eromheen, 'active_operator_id', null),
    last_access_action_id: null,
    last_rotation_action_id: null,
    exposure_state: 'sealed',
    rotation_required: false,
    notes: [...want<string[]>(erin, 'notes', [])],
    lifecycle_state: 'active',
    archived: false,
    version: 1,
    versions: [
      {
        version: 1,
        created_at: e.at,
        material_sha256: sha,
        state: 'active',
        retired_at: null,
        action_id: e.action_id,
      },
    ],
    material_seq: typeof erin['material_seq'] === 'number' ? erin['material_seq'] : 1,
    policy: structuredClone(policy),
    pending_handoff: null,
    exposure_evidence: null,
    public_key: str(erin, 'public_key') ?? null,
    transitions: [{ state: 'active', at: e.at, action_id: e.action_id }],
  };
  return { state, missing };
}

/** The request the keychain decided, rebuilt from what its event records. */
export function requestOf(e: KeychainEvent, op: Operation): Request {
  const { erin, eromheen } = e;
  const mode = str(eromheen, 'authority_mode');
  const r: Request = { op, actor: e.actor, actorClass: e.actor_class, at: new Date(e.at) };
  if (mode && (AUTHORITY_MODES as readonly string[]).includes(mode))
    r.authorityMode = mode as AuthorityMode;
  const target = str(erin, 'target_action');
  const lane = str(eromheen, 'policy_lane');
  switch (op) {
    case 'use':
      r.onBehalfOf = str(erin, 'on_behalf_of') ?? e.actor;
      if (target) r.targetAction = target;
      if (lane) r.lane = lane;
      {
        const v = (erin as Record<string, unknown> | undefined)?.['expected_version'];
        if (typeof v === 'number' && Number.isSafeInteger(v)) r.expectVersion = v;
      }
      break;
    case 'delegate': {
      const role = str(erin, 'role');
      const assignee = str(erin, 'target_assignee');
      if (role) r.role = role as CustodyRole;
      if (assignee) r.assignee = assignee;
      break;
    }
    case 'expose': {
      const x = str(erin, 'exposure_state');
      if (x && (REPORTABLE_EXPOSURES as readonly string[]).includes(x))
        r.exposure = x as ReportableExposure;
      break;
    }
    default:
      break;
  }
  return r;
}

function applyEvent(
  prev: SecretState,
  e: KeychainEvent,
  op: Operation,
  req: Request,
  shared: boolean,
): SecretState {
  // (the request is the caller's own, fresh from requestOf: completed in place)
  const input = req as ApplyInput;
  input.actionId = e.action_id;
  const { erin } = e;
  const evidence = str(erin, 'evidence');
  if (evidence !== undefined) input.evidence = evidence;
  if (op === 'policy' && typeof erin['policy'] === 'object' && erin['policy'] !== null)
    input.policy = erin['policy'] as unknown as SecretPolicy;
  if (op === 'rotate') {
    const sha = erin['material_sha256'];
    if (typeof sha === 'string') input.materialSha256 = sha;
    input.publicKey = str(erin, 'public_key') ?? null;
  }
  const next = shared ? applyShared(prev, input) : apply(prev, input);
  // which sealed material is current: rotation and resealing to new holders change it
  if (typeof erin['material_seq'] === 'number') next.material_seq = erin['material_seq'];
  if ('material_sha256' in erin && op !== 'destroy') {
    const sha = (erin['material_sha256'] as string | null) ?? null;
    const cur = next.versions[next.versions.length - 1];
    // (a shared version list is copied only to change it)
    if (cur && cur.material_sha256 !== sha) {
      const versions = versionsToEdit(next, prev);
      versions[versions.length - 1]!.material_sha256 = sha;
    }
  }
  if ('public_key' in erin) next.public_key = (erin['public_key'] as string | null) ?? null;
  return next;
}

/**
 * The state one event leads to from `prev` (from nothing for a creation event), without the
 * decision check; `undefined` for a denial or an event that does not apply. Lets a verifier
 * check each stored revision against the one before it and its own event.
 */
export function stateAfter(
  prev: SecretState | undefined,
  e: KeychainEvent,
): SecretState | undefined {
  if (GENESIS_EVENTS.has(e.event)) return prev ? undefined : genesisState(e).state;
  const op = OP_OF.get(e.event);
  if (!prev || !op) return undefined;
  try {
    return applyEvent(prev, e, op, requestOf(e, op), false);
  } catch {
    return undefined;
  }
}

/**
 * Replay a secret's events with the state machine: the genesis event builds the first
 * state, every later event is re-decided with {@link decide} (it must have been allowed,
 * with the decisions the token lists) and applied with {@link apply}; denials change
 * nothing. With `until`, stops before the first event (in causal order) stamped after it.
 * With `steps: false`, `steps` is left empty (for a caller that needs only the end: the
 * state, `established`, the problems — the same as with them; nothing is kept per event).
 * The states it returns share unchanged members with one another: treat them as read-only.
 */
export function replay(
  events: readonly KeychainEvent[],
  o: { until?: Date; steps?: boolean } = {},
): Replay {
  const limit = o.until?.getTime();
  const out: Replay = {
    secret_id: '',
    state: undefined,
    steps: [],
    genesis: undefined,
    established: {},
    problems: [],
  };
  // Each step's `established` is a snapshot: copied when a field is set, shared by the steps
  // in between. The states share the members an event does not change (applyShared).
  let established: Established = {};
  const proven = new WeakSet<object>();
  const problem = (code: ReplayProblemCode, e: KeychainEvent, message: string): void => {
    out.problems.push({ code, message, index: e.index, action_id: e.action_id });
  };
  const keep = o.steps !== false;
  const step = (event: KeychainEvent, state: SecretState | undefined, applied: boolean): void => {
    if (keep) out.steps.push({ event, state, applied, established });
  };
  // (index loops: a replay runs once per event of a long history)
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (limit !== undefined && Date.parse(e.at) > limit) break;
    const before = out.state;
    if (e.event === 'secret-denied') {
      step(e, before, false);
      continue;
    }
    if (GENESIS_EVENTS.has(e.event)) {
      if (before) {
        problem('EVENT_UNEXPECTED', e, `${e.event} ${e.action_id} on a secret that exists`);
        step(e, before, false);
        continue;
      }
      const g = genesisState(e);
      if (g.missing.length)
        problem(
          'GENESIS_INCOMPLETE',
          e,
          `${e.event} ${e.action_id} does not record ${g.missing.join(', ')}: defaults assumed`,
        );
      out.secret_id = g.state.secret_id;
      out.genesis = e;
      out.state = g.state;
      established = { ...established };
      for (const f of TRACKED) established[f] = e;
      step(e, g.state, true);
      continue;
    }
    const op = OP_OF.get(e.event);
    if (!op) {
      problem('EVENT_UNEXPECTED', e, `unknown keychain event ${e.event} (${e.action_id})`);
      step(e, before, false);
      continue;
    }
    if (!before) {
      problem('GENESIS_MISSING', e, `${e.event} ${e.action_id} before the secret was created`);
      step(e, before, false);
      continue;
    }
    // (decide and apply only read the request: one serves both)
    const req = requestOf(e, op);
    const d: Decision = decide(before, req);
    if (!d.allowed)
      problem(
        'EVENT_NOT_ALLOWED',
        e,
        `${e.event} ${e.action_id} by ${e.actor} was not allowed by the state before it: ${d.reason}`,
      );
    else if (!sameDecisions(d.decisions, e.decisions))
      problem(
        'EVENT_DECISION_MISMATCH',
        e,
        `${e.event} ${e.action_id}: the decisions it lists are not the ones the state machine makes`,
      );
    let next: SecretState;
    try {
      next = applyEvent(before, e, op, req, true);
    } catch (err) {
      problem('EVENT_UNEXPECTED', e, `${e.event} ${e.action_id} cannot be applied: ${String(err)}`);
      step(e, before, false);
      continue;
    }
    let copied = false;
    for (let k = 0; k < TRACKED.length; k++) {
      const f = TRACKED[k]!;
      if (!sameShared(before[f], next[f], proven)) {
        if (!copied) established = { ...established };
        copied = true;
        established[f] = e;
      }
    }
    out.state = next;
    step(e, next, true);
  }
  out.established = { ...established };
  return out;
}

// ===================================================================== evidence

/** One event an answer rests on. */
export interface Evidence {
  index: number;
  action_id: string;
  line_hash?: string;
  leaf_hash?: string;
  event: string;
  at?: string;
  /** Why it is cited (e.g. `owner`, `policy`, `use`). */
  why?: string;
  /** A c2sp.org/tlog-proof of the line, when attached by {@link KeychainTimeline.withProofs}. */
  proof?: string;
}

class EvidenceSet {
  readonly #m = new Map<number, Evidence>();
  add(e: KeychainEvent | undefined, why: string): void {
    if (!e) return;
    const had = this.#m.get(e.index);
    if (had) {
      const whys = new Set((had.why ?? '').split(', ').filter(Boolean));
      whys.add(why);
      had.why = [...whys].join(', ');
      return;
    }
    this.#m.set(e.index, {
      index: e.index,
      action_id: e.action_id,
      line_hash: e.line_hash,
      leaf_hash: e.leaf_hash,
      event: e.event,
      at: e.at,
      why,
    });
  }
  list(): Evidence[] {
    return [...this.#m.values()].sort((a, b) => a.index - b.index);
  }
}

// ===================================================================== history

export interface HistoryEntry {
  index: number;
  line_hash: string;
  action_id: string;
  parent_action_id: string | null;
  generation: number;
  event: string;
  /** `applied` (changed or used the secret), or `denied` (a refusal on the record). */
  outcome: 'applied' | 'denied' | 'invalid';
  actor: string;
  actor_class: ActorClass;
  /** For a denial: who asked, for what. */
  requested_by?: string;
  operation?: string;
  code?: string;
  /** For a proxied use: whom the act was for. */
  on_behalf_of?: string;
  at: string;
  received_at: string;
  reason: string;
  authority_mode: string | null;
  decisions: PolicyDecision[];
  /** The state after the event, in brief. */
  lifecycle_state?: LifecycleState;
  exposure_state?: ExposureState;
  version?: number;
}

export interface HistoryAnswer {
  secret_id: string;
  entries: HistoryEntry[];
  gaps: LineGap[];
  problems: ReplayProblem[];
  evidence: Evidence[];
}

/** Every event of a secret in causal order, with who, what, why and the decisions. */
export function history(secretId: string, events: readonly KeychainEvent[]): HistoryAnswer {
  const r = replay(events);
  const ev = new EvidenceSet();
  const entries = r.steps.map(({ event: e, state, applied }): HistoryEntry => {
    ev.add(e, e.event);
    const denied = e.event === 'secret-denied';
    const h: HistoryEntry = {
      index: e.index,
      line_hash: e.line_hash,
      action_id: e.action_id,
      parent_action_id: e.parent_action_id,
      generation: e.generation,
      event: e.event,
      outcome: denied ? 'denied' : applied ? 'applied' : 'invalid',
      actor: e.actor,
      actor_class: e.actor_class,
      at: e.at,
      received_at: e.received_at,
      reason: e.reason,
      authority_mode: e.authority_mode,
      decisions: e.decisions,
    };
    if (denied) {
      const rb = str(e.erin, 'requested_by');
      const op = str(e.erin, 'operation');
      const code = str(e.erin, 'code');
      if (rb) h.requested_by = rb;
      if (op) h.operation = op;
      if (code) h.code = code;
    }
    const obo = str(e.erin, 'on_behalf_of');
    if (obo) h.on_behalf_of = obo;
    if (state) {
      h.lifecycle_state = state.lifecycle_state;
      h.exposure_state = state.exposure_state;
      h.version = state.version;
    }
    return h;
  });
  return {
    secret_id: secretId,
    entries,
    gaps: lineGaps(events),
    problems: r.problems,
    evidence: ev.list(),
  };
}

// ===================================================================== who could

export type AccessAction = 'reveal' | 'use';

/** Why an actor is granted: the policy entry that matched, and through which custody role. */
export interface Grant {
  rule: 'policy.reveal' | 'policy.use' | 'custody.active_operator';
  entry: string;
  /** For a `role:` entry or the active operator: the role, and the event that gave it. */
  role?: CustodyRole;
  since_action_id?: string;
}

export interface Holder {
  actor: string;
  grants: Grant[];
  /** The state machine's decisions for this actor at T. */
  decisions: PolicyDecision[];
}

export interface Refusal {
  actor: string;
  rule: string;
  code: string;
  reason: string;
}

/** A secret's custody and policy at a time, with role entries resolved. */
export interface StateAt {
  at: string;
  owner_id: string | null;
  custodian_id: string | null;
  active_operator_id: string | null;
  pending_handoff: SecretState['pending_handoff'];
  lifecycle_state: LifecycleState;
  exposure_state: ExposureState;
  rotation_required: boolean;
  expires_at: string | null;
  expired: boolean;
  version: number;
  policy: SecretPolicy;
  /** Each `reveal` and `use` entry with the actors it stands for at that time. */
  resolved: {
    reveal: { entry: string; actors: string[] }[];
    use: { entry: string; actors: string[] }[];
  };
}

export interface WhoCouldAnswer {
  secret_id: string;
  at: string;
  action: AccessAction;
  /** False when the secret did not exist yet at T. */
  existed: boolean;
  state: StateAt | null;
  /** Who could: each with the rules that grant it. For `use`, these are the principals a gateway may act for. */
  actors: Holder[];
  /** Listed in the policy (or holding a role) but refused at T, with the rule that refused. */
  refused: Refusal[];
  /** When nobody could (lifecycle, exposure, expiry, rotation): the rule that stops everyone. */
  blocked: Refusal | null;
  /** For `use`: who may carry out the act for a principal. */
  executors?: string;
  evidence: Evidence[];
}

const ROLE_FIELD: Record<CustodyRole, 'owner_id' | 'custodian_id' | 'active_operator_id'> = {
  owner: 'owner_id',
  custodian: 'custodian_id',
  active_operator: 'active_operator_id',
};

function roleField(role: string): 'owner_id' | 'custodian_id' | 'active_operator_id' | undefined {
  return (ROLE_FIELD as Record<string, 'owner_id' | 'custodian_id' | 'active_operator_id'>)[role];
}

function resolveEntry(s: SecretState, entry: string): string[] {
  if (entry.startsWith('role:')) {
    const f = roleField(entry.slice(5));
    const who = f ? s[f] : null;
    return who ? [who] : [];
  }
  return [entry];
}

function stateAt(s: SecretState, at: Date): StateAt {
  return {
    at: at.toISOString(),
    owner_id: s.owner_id,
    custodian_id: s.custodian_id,
    active_operator_id: s.active_operator_id,
    pending_handoff: s.pending_handoff,
    lifecycle_state: s.lifecycle_state,
    exposure_state: s.exposure_state,
    rotation_required: s.rotation_required,
    expires_at: s.expires_at,
    expired: s.expires_at !== null && at.getTime() >= Date.parse(s.expires_at),
    version: s.version,
    policy: s.policy,
    resolved: {
      reveal: s.policy.reveal.map((entry) => ({ entry, actors: resolveEntry(s, entry) })),
      use: s.policy.use.map((entry) => ({ entry, actors: resolveEntry(s, entry) })),
    },
  };
}

/** Rules that stop every actor alike. */
const BLOCKING_RULES = new Set(['lifecycle', 'exposure', 'expiry', 'rotation']);

function evaluate(
  s: SecretState,
  action: AccessAction,
  actor: string,
  at: Date,
  o: { targetAction?: string; lane?: string },
): Decision {
  return decide(
    s,
    action === 'reveal'
      ? { op: 'reveal', actor, actorClass: 'human', at }
      : {
          op: 'use',
          actor,
          actorClass: 'gateway',
          at,
          onBehalfOf: actor,
          ...(o.targetAction !== undefined ? { targetAction: o.targetAction } : {}),
          ...(o.lane !== undefined ? { lane: o.lane } : {}),
        },
  );
}

/** A secret's state at some point of its replay, with what established it. */
interface View {
  state: SecretState | undefined;
  established: Established;
  genesis: KeychainEvent | undefined;
}

function grantsOf(v: View, s: SecretState, action: AccessAction, actor: string): Grant[] {
  const list = action === 'reveal' ? s.policy.reveal : s.policy.use;
  const rule = action === 'reveal' ? 'policy.reveal' : 'policy.use';
  const out: Grant[] = [];
  for (const entry of list) {
    if (entry === actor || entry === '*') out.push({ rule, entry });
    else if (entry.startsWith('role:')) {
      const f = roleField(entry.slice(5));
      if (f && s[f] === actor) {
        const g: Grant = { rule, entry, role: entry.slice(5) as CustodyRole };
        const since = v.established[f]?.action_id;
        if (since) g.since_action_id = since;
        out.push(g);
      }
    }
  }
  if (action === 'use' && s.active_operator_id === actor) {
    const g: Grant = {
      rule: 'custody.active_operator',
      entry: actor,
      role: 'active_operator',
    };
    const since = v.established.active_operator_id?.action_id;
    if (since) g.since_action_id = since;
    out.push(g);
  }
  return out;
}

function candidatesOf(s: SecretState, action: AccessAction): string[] {
  const list = action === 'reveal' ? s.policy.reveal : s.policy.use;
  const c = new Set<string>();
  for (const e of list) for (const a of resolveEntry(s, e)) c.add(a);
  if (action === 'use' && s.active_operator_id) c.add(s.active_operator_id);
  return [...c];
}

function citeState(ev: EvidenceSet, v: View, fields: readonly TrackedField[]): void {
  ev.add(v.genesis, 'created');
  for (const f of fields) ev.add(v.established[f], f);
}

function whoCouldFrom(
  secretId: string,
  r: View,
  at: Date,
  action: AccessAction,
  o: { targetAction?: string; lane?: string },
): WhoCouldAnswer {
  const s = r.state;
  const base = { secret_id: secretId, at: at.toISOString(), action };
  if (!s)
    return {
      ...base,
      existed: false,
      state: null,
      actors: [],
      refused: [],
      blocked: null,
      evidence: [],
    };
  const ev = new EvidenceSet();
  const actors: Holder[] = [];
  const refused: Refusal[] = [];
  let blocked: Refusal | null = null;
  for (const actor of candidatesOf(s, action)) {
    const d = evaluate(s, action, actor, at, o);
    if (d.allowed) {
      actors.push({ actor, grants: grantsOf(r, s, action, actor), decisions: d.decisions });
    } else {
      const last = d.decisions[d.decisions.length - 1]!;
      const ref = { actor, rule: last.rule, code: d.code ?? 'POLICY_DENIED', reason: d.reason };
      if (BLOCKING_RULES.has(last.rule)) blocked ??= { ...ref, actor: '*' };
      else refused.push(ref);
    }
  }
  if (blocked) {
    // the gate stops everyone: the evaluation never reached the per-actor rules
    refused.length = 0;
    actors.length = 0;
  }
  citeState(ev, r, [
    'owner_id',
    'custodian_id',
    'active_operator_id',
    'policy',
    'lifecycle_state',
    'exposure_state',
    'rotation_required',
  ]);
  const answer: WhoCouldAnswer = {
    ...base,
    existed: true,
    state: stateAt(s, at),
    actors,
    refused,
    blocked,
    evidence: ev.list(),
  };
  if (action === 'use')
    answer.executors = `any gateway-class actor, or the custodian${s.custodian_id ? ` (${s.custodian_id})` : ''}, acting for a principal above`;
  return answer;
}

/**
 * Who could reveal (or have the secret used for them) at time `at`: the secret's events up to
 * T replayed to its custody and policy as of T, every listed actor and role holder put to
 * the state machine, and the rules that grant each. Evidence: the events that established
 * that custody, policy, lifecycle and exposure.
 */
export function whoCould(
  secretId: string,
  events: readonly KeychainEvent[],
  at: Date,
  action: AccessAction,
  o: { targetAction?: string; lane?: string } = {},
): WhoCouldAnswer {
  return whoCouldFrom(secretId, replay(events, { until: at }), at, action, o);
}

// ===================================================================== who did

export interface Access {
  action: AccessAction;
  /** Who revealed it, or the gateway that proxied the use. */
  actor: string;
  actor_class: ActorClass;
  /** For a use: the principal (the capsule's requesting actor). */
  on_behalf_of: string | null;
  action_id: string;
  parent_action_id: string | null;
  index: number;
  line_hash: string;
  at: string;
  reason: string;
  target_action: string | null;
  lane: string | null;
  session_id: string | null;
  /** The secret's version (and thus material) in use. */
  version: number | null;
}

export interface AccessSummary {
  actor: string;
  as: 'revealer' | 'principal' | 'gateway';
  count: number;
  action_ids: string[];
  last_at: string;
}

export interface DeniedAttempt {
  requested_by: string;
  operation: string;
  code: string;
  reason: string;
  at: string;
  action_id: string;
  index: number;
}

export interface WhoDidAnswer {
  secret_id: string;
  action: AccessAction | 'any';
  accesses: Access[];
  actors: AccessSummary[];
  /** Refused attempts of the same kind, on the record. */
  denied: DeniedAttempt[];
  evidence: Evidence[];
}

const ACCESS_EVENT: Record<AccessAction, string> = {
  reveal: 'secret-unsealed',
  use: 'secret-proxied',
};

function accessesOf(steps: readonly ReplayStep[], action?: AccessAction): Access[] {
  const out: Access[] = [];
  for (const st of steps) {
    const e = st.event;
    if (!st.applied) continue;
    const kind: AccessAction | undefined =
      e.event === ACCESS_EVENT.reveal ? 'reveal' : e.event === ACCESS_EVENT.use ? 'use' : undefined;
    if (!kind || (action && kind !== action)) continue;
    out.push({
      action: kind,
      actor: e.actor,
      actor_class: e.actor_class,
      on_behalf_of: kind === 'use' ? (str(e.erin, 'on_behalf_of') ?? null) : null,
      action_id: e.action_id,
      parent_action_id: e.parent_action_id,
      index: e.index,
      line_hash: e.line_hash,
      at: e.at,
      reason: e.reason,
      target_action: str(e.erin, 'target_action') ?? null,
      lane: str(e.eromheen, 'policy_lane') ?? null,
      session_id: str(e.erin, 'session_id') ?? null,
      version: st.state?.version ?? null,
    });
  }
  return out;
}

function deniedOf(r: Replay, ops: readonly string[]): DeniedAttempt[] {
  return r.steps
    .filter((s) => s.event.event === 'secret-denied')
    .map((s) => s.event)
    .filter((e) => ops.includes(str(e.erin, 'operation') ?? ''))
    .map((e) => ({
      requested_by: str(e.erin, 'requested_by') ?? e.actor,
      operation: str(e.erin, 'operation') ?? '',
      code: str(e.erin, 'code') ?? '',
      reason: e.reason,
      at: e.at,
      action_id: e.action_id,
      index: e.index,
    }));
}

function summarize(accesses: readonly Access[]): AccessSummary[] {
  const m = new Map<string, AccessSummary>();
  const add = (actor: string, as: AccessSummary['as'], a: Access): void => {
    const k = `${as} ${actor}`;
    const s = m.get(k) ?? { actor, as, count: 0, action_ids: [], last_at: a.at };
    s.count++;
    s.action_ids.push(a.action_id);
    s.last_at = a.at;
    m.set(k, s);
  };
  for (const a of accesses) {
    if (a.action === 'reveal') add(a.actor, 'revealer', a);
    else {
      add(a.on_behalf_of ?? a.actor, 'principal', a);
      add(a.actor, 'gateway', a);
    }
  }
  return [...m.values()];
}

/** Who actually revealed it or had it used (`secret-unsealed`, `secret-proxied`), and who was refused. */
export function whoDid(
  secretId: string,
  events: readonly KeychainEvent[],
  action?: AccessAction,
): WhoDidAnswer {
  const r = replay(events);
  const accesses = accessesOf(r.steps, action);
  const denied = deniedOf(r, action ? [action] : ['reveal', 'use']);
  const ev = new EvidenceSet();
  const byIndex = new Map(events.map((e) => [e.index, e]));
  for (const a of accesses) ev.add(byIndex.get(a.index), a.action);
  for (const d of denied) ev.add(byIndex.get(d.index), `denied ${d.operation}`);
  return {
    secret_id: secretId,
    action: action ?? 'any',
    accesses,
    actors: summarize(accesses),
    denied,
    evidence: ev.list(),
  };
}

export interface LastUsedAnswer {
  secret_id: string;
  /** The last reveal or proxied use, if any. */
  last: Access | null;
  last_reveal: Access | null;
  last_use: Access | null;
  /** Whether the replayed state's `last_access_action_id` names the same event. */
  state_agrees: boolean;
  evidence: Evidence[];
}

/** When, by whom and for whom the secret was last revealed or used. */
export function lastUsed(secretId: string, events: readonly KeychainEvent[]): LastUsedAnswer {
  const r = replay(events);
  const all = accessesOf(r.steps);
  const last = all[all.length - 1] ?? null;
  const lastOf = (k: AccessAction): Access | null =>
    [...all].reverse().find((a) => a.action === k) ?? null;
  const ev = new EvidenceSet();
  const byIndex = new Map(events.map((e) => [e.index, e]));
  if (last) ev.add(byIndex.get(last.index), `last ${last.action}`);
  const lr = lastOf('reveal');
  const lu = lastOf('use');
  if (lr) ev.add(byIndex.get(lr.index), 'last reveal');
  if (lu) ev.add(byIndex.get(lu.index), 'last use');
  return {
    secret_id: secretId,
    last,
    last_reveal: lr,
    last_use: lu,
    state_agrees: (r.state?.last_access_action_id ?? null) === (last?.action_id ?? null),
    evidence: ev.list(),
  };
}

// ===================================================================== dependents

export interface ParentRef {
  action_id: string;
  /** What the log says the parent is, when it is in the log (a capsule, a session, …). */
  actor?: string;
  event?: string;
  object_id?: string | null;
  uses: string[];
}

export interface DependentsAnswer {
  secret_id: string;
  /** The last rotation (or the creation) — what depends on the current material since then. */
  since: { action_id: string; event: string; at: string; version: number } | null;
  active_operator: { actor: string; since_action_id: string | null } | null;
  /** Principals the secret was used for since the rotation. */
  principals: AccessSummary[];
  gateways: AccessSummary[];
  sessions: { session_id: string; action_id: string; at: string }[];
  targets: { target_action: string; uses: number; action_ids: string[] }[];
  lanes: string[];
  /** Causal parents of the uses (capsules): who and what, when they are in the log. */
  parents: ParentRef[];
  /** Who saw the plaintext since the rotation (they may hold copies). */
  revealed_to: AccessSummary[];
  pending_handoff: (NonNullable<SecretState['pending_handoff']> & { at?: string }) | null;
  evidence: Evidence[];
}

/**
 * What depends on the secret before a rotation: the active operator, everything seen in the
 * proxied uses since the last rotation (principals, gateways, sessions, targets, lanes, the
 * capsules that were their parents), who had it revealed, and a pending handoff. `parents`
 * describes parent actions found in the log (see {@link TimelineSource.byAction}).
 */
export function dependents(
  secretId: string,
  events: readonly KeychainEvent[],
  parents: ReadonlyMap<string, LogRecord> = new Map(),
): DependentsAnswer {
  const r = replay(events);
  const s = r.state;
  const ev = new EvidenceSet();
  let sinceStep = -1;
  r.steps.forEach((st, i) => {
    if (st.applied && (st.event.event === 'secret-rotated' || GENESIS_EVENTS.has(st.event.event)))
      sinceStep = i;
  });
  const sinceEv = r.steps[sinceStep];
  ev.add(sinceEv?.event, 'since');
  const after = r.steps.slice(sinceStep + 1);
  const uses = accessesOf(after, 'use');
  const reveals = accessesOf(after, 'reveal');
  const byIndex = new Map(events.map((e) => [e.index, e]));
  for (const a of uses) ev.add(byIndex.get(a.index), 'use');
  for (const a of reveals) ev.add(byIndex.get(a.index), 'reveal');
  const summaries = summarize(uses);
  const targets = new Map<string, { target_action: string; uses: number; action_ids: string[] }>();
  const parentRefs = new Map<string, ParentRef>();
  for (const u of uses) {
    if (u.target_action) {
      const t = targets.get(u.target_action) ?? {
        target_action: u.target_action,
        uses: 0,
        action_ids: [],
      };
      t.uses++;
      t.action_ids.push(u.action_id);
      targets.set(u.target_action, t);
    }
    if (u.parent_action_id) {
      const p = parentRefs.get(u.parent_action_id) ?? { action_id: u.parent_action_id, uses: [] };
      const rec = parents.get(u.parent_action_id);
      if (rec) {
        p.actor = rec.token.actor;
        p.event = rec.token.event;
        p.object_id = rec.causal.object_id;
      }
      p.uses.push(u.action_id);
      parentRefs.set(u.parent_action_id, p);
    }
  }
  let active: DependentsAnswer['active_operator'] = null;
  if (s?.active_operator_id) {
    active = {
      actor: s.active_operator_id,
      since_action_id: r.established.active_operator_id?.action_id ?? null,
    };
    ev.add(r.established.active_operator_id, 'active operator');
  }
  let pending: DependentsAnswer['pending_handoff'] = null;
  if (s?.pending_handoff) {
    const offer = events.find((e) => e.action_id === s.pending_handoff!.action_id);
    pending = { ...s.pending_handoff, ...(offer ? { at: offer.at } : {}) };
    ev.add(offer, 'pending handoff');
  }
  return {
    secret_id: secretId,
    since: sinceEv
      ? {
          action_id: sinceEv.event.action_id,
          event: sinceEv.event.event,
          at: sinceEv.event.at,
          version: sinceEv.state?.version ?? 0,
        }
      : null,
    active_operator: active,
    principals: summaries.filter((x) => x.as === 'principal'),
    gateways: summaries.filter((x) => x.as === 'gateway'),
    sessions: uses
      .filter((u) => u.session_id !== null)
      .map((u) => ({ session_id: u.session_id!, action_id: u.action_id, at: u.at })),
    targets: [...targets.values()],
    lanes: [...new Set(uses.map((u) => u.lane).filter((l): l is string => l !== null))],
    parents: [...parentRefs.values()],
    revealed_to: summarize(reveals),
    pending_handoff: pending,
    evidence: ev.list(),
  };
}

// ===================================================================== due

export type DueKind = 'exposed' | 'rotation_required' | 'expiring' | 'expired';

export interface DueReason {
  kind: DueKind;
  detail: string;
  evidence: Evidence[];
}

export interface DueItem {
  secret_id: string;
  secret_type: SecretType;
  lifecycle_state: LifecycleState;
  exposure_state: ExposureState;
  expires_at: string | null;
  reasons: DueReason[];
}

export interface DueAnswer {
  at: string;
  within_days: number;
  items: DueItem[];
  evidence: Evidence[];
}

const EXPOSED: readonly ExposureState[] = [
  'chat-disclosed',
  'git-leaked',
  'log-leaked',
  'suspected',
];

/**
 * What needs attention now, across secrets: exposed (leaked or suspected), rotation
 * required, expiring within `withinDays` (default 30), past expiry. Destroyed and archived
 * secrets are left out: nothing can be done with them but their timeline.
 */
export function due(
  secrets: readonly { secretId: string; events: readonly KeychainEvent[] }[],
  now: Date,
  o: { withinDays?: number } = {},
): DueAnswer {
  const within = o.withinDays ?? 30;
  if (!(Number.isFinite(within) && within >= 0))
    throw new RangeError(`"withinDays" expected a non-negative number, got ${within}`);
  const all = new EvidenceSet();
  const items: DueItem[] = [];
  for (const { secretId, events } of secrets) {
    const r = replay(events, { until: now });
    const s = r.state;
    if (!s || s.lifecycle_state === 'destroyed' || s.archived) continue;
    const reasons: DueReason[] = [];
    const reason = (kind: DueKind, detail: string, f: TrackedField): void => {
      const ev = new EvidenceSet();
      ev.add(r.established[f], f);
      all.add(r.established[f], `${secretId} ${kind}`);
      reasons.push({ kind, detail, evidence: ev.list() });
    };
    if (EXPOSED.includes(s.exposure_state))
      reason(
        'exposed',
        `${s.exposure_state}${s.exposure_evidence ? `: ${s.exposure_evidence}` : ''}`,
        'exposure_state',
      );
    if (s.rotation_required) reason('rotation_required', 'must be rotated', 'rotation_required');
    if (s.expires_at !== null) {
      const left = Date.parse(s.expires_at) - now.getTime();
      if (left <= 0) reason('expired', `expired at ${s.expires_at}`, 'expires_at');
      else if (left <= within * 86_400_000)
        reason(
          'expiring',
          `expires at ${s.expires_at} (in ${Math.ceil(left / 86_400_000)} day(s))`,
          'expires_at',
        );
    }
    if (reasons.length)
      items.push({
        secret_id: secretId,
        secret_type: s.secret_type,
        lifecycle_state: s.lifecycle_state,
        exposure_state: s.exposure_state,
        expires_at: s.expires_at,
        reasons,
      });
  }
  return { at: now.toISOString(), within_days: within, items, evidence: all.list() };
}

// ===================================================================== signing keys

export const SIGNING_TYPES: readonly SecretType[] = [
  'signing_key',
  'ssh_key',
  'webhook_signer',
  'smart_contract_signer',
  'tls_cert',
];

export interface SigningWay {
  /**
   * In the window: `custody` (a recipient of the sealed material), `reveal` / `use` (allowed
   * by the policy). Before it, for a version still current in the window: `custody-before`,
   * `revealed-before` (an actual reveal: a plaintext copy may have been kept). `exposed`: the
   * version was reported leaked (or suspected), so anyone (`*`) may have had it.
   */
  how: 'custody' | 'reveal' | 'use' | 'custody-before' | 'revealed-before' | 'exposed';
  role?: CustodyRole;
  rule?: string;
  from: string;
  to: string;
  /** The key version current in that stretch. */
  version: number;
  /** The event that started this stretch of state. */
  action_id: string;
}

export interface CouldHaveSigned {
  actor: string;
  ways: SigningWay[];
}

export interface WhoCouldHaveSignedAnswer {
  secret_id: string;
  from: string;
  to: string;
  actors: CouldHaveSigned[];
  /** The keychain's own service identity always holds a sealed copy too. */
  note: string;
  evidence: Evidence[];
}

function assertWindow(from: Date, to: Date): void {
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()))
    throw new TypeError('"from" and "to" must be valid dates');
  if (from.getTime() > to.getTime()) throw new RangeError('"from" must not be after "to"');
}

function assertSigning(secretId: string, r: Replay): void {
  const t = r.state?.secret_type;
  if (t && !SIGNING_TYPES.includes(t))
    throw new TypeError(`${secretId} is a ${t}, not a signing key (${SIGNING_TYPES.join(', ')})`);
}

const SEALED_BY_POLICY = 'sealed copy: named in policy.reveal';

/**
 * Actors the material is sealed to because the reveal policy names them (the keychain seals
 * to owner, custodian and every id in `policy.reveal`), other than owner and custodian.
 */
function revealRecipients(s: SecretState): string[] {
  return [...new Set(s.policy.reveal.filter((e) => isActorId(e)))].filter(
    (id) => id !== s.owner_id && id !== s.custodian_id,
  );
}

/**
 * Who could have signed with a signing key between `from` and `to` (with `anyType`, who could
 * have acted with any credential — e.g. published with a registry token): for every stretch of
 * constant state in the window (split at each event and at expiry), the holders of a sealed
 * copy (owner, custodian, ids named in the reveal policy) and everyone the policy let reveal
 * it or have it used for them.
 */
export function whoCouldHaveSigned(
  secretId: string,
  events: readonly KeychainEvent[],
  from: Date,
  to: Date,
  o: { anyType?: boolean } = {},
): WhoCouldHaveSignedAnswer {
  assertWindow(from, to);
  const full = replay(events, { until: to });
  if (!o.anyType) assertSigning(secretId, full);
  const ev = new EvidenceSet();
  // stretches of constant state: the state at `from`, then one per applied event inside
  // the window, each split at expiry so that what follows it is judged expired
  const first = replay(events, { until: from });
  const cuts: { at: number; v: View; cause: KeychainEvent | undefined }[] = [
    {
      at: from.getTime(),
      v: first,
      cause: [...first.steps].reverse().find((x) => x.applied)?.event,
    },
  ];
  for (const st of full.steps.slice(first.steps.length)) {
    if (!st.applied) continue;
    cuts.push({
      at: Date.parse(st.event.at),
      v: { state: st.state, established: st.established, genesis: full.genesis },
      cause: st.event,
    });
  }
  const stretches: { from: number; to: number; v: View; cause: KeychainEvent | undefined }[] = [];
  cuts.forEach((c, i) => {
    const end = i + 1 < cuts.length ? cuts[i + 1]!.at : to.getTime();
    const exp = c.v.state?.expires_at ? Date.parse(c.v.state.expires_at) : NaN;
    if (exp > c.at && exp < end) {
      stretches.push({ from: c.at, to: exp, v: c.v, cause: c.cause });
      stretches.push({ from: exp, to: end, v: c.v, cause: c.cause });
    } else stretches.push({ from: c.at, to: end, v: c.v, cause: c.cause });
  });
  const byActor = new Map<string, SigningWay[]>();
  const add = (actor: string, w: SigningWay): void => {
    const list = byActor.get(actor) ?? [];
    // one way held across consecutive stretches is one entry
    const same = list.find(
      (x) =>
        x.how === w.how &&
        x.role === w.role &&
        x.rule === w.rule &&
        x.version === w.version &&
        x.to === w.from,
    );
    if (same) same.to = w.to;
    else list.push(w);
    byActor.set(actor, list);
  };
  const byIndex = new Map(events.map((e) => [e.index, e]));
  for (const st of stretches) {
    const s = st.v.state;
    if (!s || !st.cause) continue;
    const span = {
      from: new Date(st.from).toISOString(),
      to: new Date(st.to).toISOString(),
      version: s.version,
      action_id: st.cause.action_id,
    };
    let any = false;
    if (EXPOSED.includes(s.exposure_state)) {
      // a reported leak of the current version: anyone could have had it
      add('*', { how: 'exposed', rule: s.exposure_state, ...span });
      ev.add(st.v.established.exposure_state, 'exposure');
      any = true;
    }
    if (s.lifecycle_state !== 'destroyed') {
      for (const role of ['owner', 'custodian'] as const) {
        const who = s[ROLE_FIELD[role]];
        if (who) {
          add(who, { how: 'custody', role, ...span });
          ev.add(st.v.established[ROLE_FIELD[role]], role);
          any = true;
        }
      }
      // the material is sealed to every actor named in the reveal policy too
      for (const who of revealRecipients(s)) {
        add(who, { how: 'custody', rule: SEALED_BY_POLICY, ...span });
        ev.add(st.v.established.policy, 'policy');
        any = true;
      }
    }
    for (const action of ['reveal', 'use'] as const) {
      const a = whoCouldFrom(secretId, st.v, new Date(st.from), action, {});
      for (const h of a.actors) {
        const g = h.grants[0];
        add(h.actor, {
          how: action,
          ...(g?.role ? { role: g.role } : {}),
          ...(g ? { rule: `${g.rule}: ${g.entry}` } : {}),
          ...span,
        });
        any = true;
      }
      for (const e of a.evidence) ev.add(byIndex.get(e.index), e.why ?? '');
    }
    if (any) ev.add(st.cause, 'stretch start');
  }
  // earlier copies of a version still current in the window
  const versions = new Set(stretches.map((st) => st.v.state?.version));
  first.steps.forEach((st, i) => {
    const s = st.state;
    if (!st.applied || !s || !versions.has(s.version) || s.lifecycle_state === 'destroyed') return;
    const e = st.event;
    const next = first.steps.slice(i + 1).find((x) => x.applied)?.event.at ?? from.toISOString();
    const span = { from: e.at, to: next, version: s.version, action_id: e.action_id };
    for (const role of ['owner', 'custodian'] as const) {
      const who = s[ROLE_FIELD[role]];
      if (who) add(who, { how: 'custody-before', role, ...span });
    }
    for (const who of revealRecipients(s))
      add(who, { how: 'custody-before', rule: SEALED_BY_POLICY, ...span });
    if (e.event === 'secret-unsealed') {
      add(e.actor, { how: 'revealed-before', ...span, to: e.at });
      ev.add(e, 'revealed before the window');
    }
  });
  return {
    secret_id: secretId,
    from: from.toISOString(),
    to: to.toISOString(),
    actors: [...byActor.entries()].map(([actor, ways]) => ({ actor, ways })),
    note: 'the keychain service identity also holds a sealed copy of every version',
    evidence: ev.list(),
  };
}

export interface WhoDidSignAnswer {
  secret_id: string;
  from: string;
  to: string;
  /** Proxied uses in the window: signatures made through a gateway. */
  signed: Access[];
  /** Reveals in the window: the plaintext left the keychain, so these actors could sign offline. */
  revealed: Access[];
  denied: DeniedAttempt[];
  evidence: Evidence[];
}

/**
 * Who signed with a signing key between `from` and `to`: the `secret-proxied` events (every
 * proxied use of a signing key is a signature; `targetPrefix` narrows to target actions such
 * as `/sign`), plus reveals in the window, which put the key outside the keychain.
 */
export function whoDidSign(
  secretId: string,
  events: readonly KeychainEvent[],
  from: Date,
  to: Date,
  o: { targetPrefix?: string; anyType?: boolean } = {},
): WhoDidSignAnswer {
  assertWindow(from, to);
  const r = replay(events);
  if (!o.anyType) assertSigning(secretId, r);
  const inWindow = (a: { at: string }): boolean => {
    const t = Date.parse(a.at);
    return t >= from.getTime() && t <= to.getTime();
  };
  const signed = accessesOf(r.steps, 'use')
    .filter(inWindow)
    .filter((a) => !o.targetPrefix || (a.target_action ?? '').startsWith(o.targetPrefix));
  const revealed = accessesOf(r.steps, 'reveal').filter(inWindow);
  const denied = deniedOf(r, ['use', 'reveal']).filter(inWindow);
  const ev = new EvidenceSet();
  const byIndex = new Map(events.map((e) => [e.index, e]));
  for (const a of signed) ev.add(byIndex.get(a.index), 'signature');
  for (const a of revealed) ev.add(byIndex.get(a.index), 'reveal');
  for (const d of denied) ev.add(byIndex.get(d.index), `denied ${d.operation}`);
  return {
    secret_id: secretId,
    from: from.toISOString(),
    to: to.toISOString(),
    signed,
    revealed,
    denied,
    evidence: ev.list(),
  };
}

// ===================================================================== timeline

export interface KeychainTimelineOptions {
  /**
   * Build an offline proof of one log line (e.g. `(i) => exportTlogProof(logDir, i)` from
   * `@tibet/continuityd`): {@link KeychainTimeline.withProofs} attaches one per evidence item.
   */
  prove?: (index: number) => Promise<string>;
  provider?: CryptoProvider;
}

/** The queries, reading a secret's events through a {@link TimelineSource}. */
export class KeychainTimeline {
  readonly provider: CryptoProvider;
  constructor(
    readonly source: TimelineSource,
    readonly options: KeychainTimelineOptions = {},
  ) {
    this.provider = options.provider ?? getProvider();
  }

  /** The secret's events in causal order. */
  async events(secretId: string): Promise<KeychainEvent[]> {
    const records = await this.source.eventsFor(secretId);
    const src = this.source;
    const hashes = src.hashesOf ? (r: LogRecord) => src.hashesOf!(r) : undefined;
    return secretLine(records, secretId, this.provider, hashes).events;
  }

  async replay(secretId: string, until?: Date): Promise<Replay> {
    return replay(await this.events(secretId), until ? { until } : {});
  }

  async history(secretId: string): Promise<HistoryAnswer> {
    return history(secretId, await this.events(secretId));
  }

  async whoCould(
    secretId: string,
    at: Date,
    action: AccessAction,
    o: { targetAction?: string; lane?: string } = {},
  ): Promise<WhoCouldAnswer> {
    return whoCould(secretId, await this.events(secretId), at, action, o);
  }

  async whoDid(secretId: string, action?: AccessAction): Promise<WhoDidAnswer> {
    return whoDid(secretId, await this.events(secretId), action);
  }

  async lastUsed(secretId: string): Promise<LastUsedAnswer> {
    return lastUsed(secretId, await this.events(secretId));
  }

  async dependents(secretId: string): Promise<DependentsAnswer> {
    const events = await this.events(secretId);
    const parents = new Map<string, LogRecord>();
    for (const e of events) {
      if (e.event !== 'secret-proxied' || !e.parent_action_id || parents.has(e.parent_action_id))
        continue;
      const rec = await this.source.byAction(e.parent_action_id);
      if (rec) parents.set(e.parent_action_id, rec);
    }
    return dependents(secretId, events, parents);
  }

  /** {@link due} across every secret in the source (or the ids given). */
  async due(
    now: Date,
    o: { withinDays?: number; ids?: readonly string[] } = {},
  ): Promise<DueAnswer> {
    const ids = o.ids ?? (await this.source.secretIds());
    const secrets: { secretId: string; events: KeychainEvent[] }[] = [];
    for (const secretId of ids) secrets.push({ secretId, events: await this.events(secretId) });
    return due(secrets, now, o.withinDays !== undefined ? { withinDays: o.withinDays } : {});
  }

  async whoCouldHaveSigned(
    secretId: string,
    from: Date,
    to: Date,
    o: { anyType?: boolean } = {},
  ): Promise<WhoCouldHaveSignedAnswer> {
    return whoCouldHaveSigned(secretId, await this.events(secretId), from, to, o);
  }

  async whoDidSign(
    secretId: string,
    from: Date,
    to: Date,
    o: { targetPrefix?: string; anyType?: boolean } = {},
  ): Promise<WhoDidSignAnswer> {
    return whoDidSign(secretId, await this.events(secretId), from, to, o);
  }

  /** The answer with a tlog proof attached to each evidence item (needs `prove`). */
  async withProofs<T extends { evidence: Evidence[] }>(answer: T): Promise<T> {
    const prove = this.options.prove;
    if (!prove) throw new TypeError('this timeline has no "prove" function');
    const evidence: Evidence[] = [];
    for (const e of answer.evidence) evidence.push({ ...e, proof: await prove(e.index) });
    return { ...answer, evidence };
  }
}
