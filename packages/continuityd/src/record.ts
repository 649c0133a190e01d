/**
 * One line of the audit log: the RFC 8785 canonical JSON of a record, then `\n`. The line's
 * bytes without the newline are the RFC 9162 leaf entry; `prev` is SHA-256 of the previous
 * line's bytes (the hash chain). See docs/continuityd.md.
 */
import {
  canonicalize,
  fromUtf8,
  getProvider,
  parseCanonicalJson,
  rfc3339Millis,
  parseToken,
  sha256Hex,
  utf8,
  type CryptoProvider,
  type PolicyDecision,
  type TibetToken,
  TOKEN_TYPE,
} from '@tibet/core';
import { ContinuityError } from './errors.js';

export const RECORD_VERSION = 'tibet-log/1';

/** The family's causal block (tibet-continuityd), derived from the token plus the object. */
export interface CausalBlock {
  actor_id: string;
  action_id: string;
  parent_action_id: string | null;
  object_id: string | null;
  parent_object_id: string | null;
  /** The line this event continues: its token's `prev` is the previous token on it. */
  continuity_id: string;
  generation: number;
  causal_reason: string;
}

export interface LogRecord {
  v: typeof RECORD_VERSION;
  index: number;
  /** Hex SHA-256 of the previous line's bytes; null for index 0. */
  prev: string | null;
  /** When the log accepted the event (non-decreasing along the log). */
  received_at: string;
  causal: CausalBlock;
  token: TibetToken;
}

/** Object and continuity ids: 1–128 of [A-Za-z0-9_.:@/-]. */
export const OBJECT_ID = /^[A-Za-z0-9_.:@/-]{1,128}$/;

export function encodeRecord(r: LogRecord): Uint8Array {
  return utf8(canonicalize(r));
}

/**
 * {@link encodeRecord} for a writer that already holds the token's RFC 8785 text
 * (`tokenText === canonicalize(r.token)`): the same bytes, without serialising the token a
 * second time. The members of a record in RFC 8785 order are `causal, index, prev,
 * received_at, token, v`, and the RFC 8785 form of a nested object is its form on its own, so
 * the line is assembled from the parts; `index` is a safe integer (its ECMAScript form is
 * its decimal digits) and `received_at`/`prev` need no escapes (RFC 3339 text, hex or null).
 * With `newline`, the bytes end with the line's `\n` (one encoding for the writer).
 */
export function encodeRecordWithTokenText(
  r: LogRecord,
  tokenText: string,
  newline = false,
): Uint8Array {
  if (!Number.isSafeInteger(r.index) || r.index < 0) throw new RangeError('bad record index');
  return utf8(
    `{"causal":${canonicalize(r.causal)},"index":${r.index},"prev":${JSON.stringify(r.prev)},` +
      `"received_at":${JSON.stringify(r.received_at)},"token":${tokenText},` +
      `"v":${JSON.stringify(r.v)}}` +
      (newline ? '\n' : ''),
  );
}

export function lineHash(line: Uint8Array, p: CryptoProvider = getProvider()): string {
  return sha256Hex(line, p);
}

const RECORD_KEYS: ReadonlySet<string> = new Set([
  'v',
  'index',
  'prev',
  'received_at',
  'causal',
  'token',
]);
const CAUSAL_KEYS = [
  'actor_id',
  'action_id',
  'parent_action_id',
  'object_id',
  'parent_object_id',
  'continuity_id',
  'generation',
  'causal_reason',
] as const;
const CAUSAL_KEY_SET: ReadonlySet<string> = new Set(CAUSAL_KEYS);
const HEX64 = /^[0-9a-f]{64}$/;

function bad(msg: string, index?: number): never {
  throw new ContinuityError(
    'RECORD_MALFORMED',
    `${index === undefined ? 'record' : `line ${index}`}: ${msg}`,
  );
}

/**
 * Parse one line (without its newline) strictly: canonical JSON, known fields, a valid
 * token shape, a causal block consistent with the token. No signature check here.
 */
export function parseRecord(line: Uint8Array, expectIndex?: number): LogRecord {
  let text: string;
  try {
    text = fromUtf8(line);
  } catch {
    bad('not UTF-8', expectIndex);
  }
  return parseRecordText(text, expectIndex);
}

/**
 * {@link parseRecord} for a caller that has already decoded the line: `text` must be
 * `fromUtf8` of the line's bytes (core's strict decoder), so that the record parsed is the one
 * the bytes hold. Same checks, same errors.
 */
export function parseRecordText(text: string, expectIndex?: number): LogRecord {
  let v: unknown;
  try {
    v = parseCanonicalJson(text);
  } catch (e) {
    bad(`not canonical JSON (${(e as Error).message})`, expectIndex);
  }
  return checkRecord(v, expectIndex);
}

/** The checks of {@link parseRecordText} on a value parsed from canonical JSON text. */
function checkRecord(v: unknown, expectIndex?: number): LogRecord {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('not an object', expectIndex);
  const r = v as Record<string, unknown>;
  // for-in allocates no key array; JSON.parse gives plain objects, and a key that is not an
  // own one (an enumerable member added to Object.prototype) is refused like any other
  for (const k in r) if (!RECORD_KEYS.has(k)) bad(`unknown field "${k}"`, expectIndex);
  if (r['v'] !== RECORD_VERSION) bad(`v must be ${RECORD_VERSION}`, expectIndex);
  const index = r['index'];
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0)
    bad('index must be a non-negative integer', expectIndex);
  if (expectIndex !== undefined && index !== expectIndex) {
    throw new ContinuityError('INDEX_MISMATCH', `line ${expectIndex} holds index ${index}`);
  }
  const prev = r['prev'];
  if (index === 0 ? prev !== null : !(typeof prev === 'string' && HEX64.test(prev)))
    bad('prev must be 64 hex (null at index 0)', index);
  if (rfc3339Millis(r['received_at']) === undefined) bad('received_at must be RFC 3339 UTC', index);
  let token: TibetToken;
  try {
    // the whole line is proven RFC 8785 text, so the token needs no second canonicality walk
    token = parseToken(r['token'], { fromCanonicalJson: true });
  } catch (e) {
    bad(`token: ${(e as Error).message}`, index);
  }
  const c = r['causal'] as Record<string, unknown> | null;
  if (typeof c !== 'object' || c === null || Array.isArray(c))
    bad('causal must be an object', index);
  for (const k in c) if (!CAUSAL_KEY_SET.has(k)) bad(`causal: unknown field "${k}"`, index);
  for (const k of CAUSAL_KEYS) if (!(k in c)) bad(`causal.${k} missing`, index);
  // (equal to the token's, which parseToken has held to the actor and action id forms)
  if (c['actor_id'] !== token.actor) bad('causal.actor_id must equal token.actor', index);
  if (c['action_id'] !== token.action_id) bad('causal.action_id must equal token.action_id', index);
  if (c['parent_action_id'] !== token.parent_action_id)
    bad('causal.parent_action_id must equal token.parent_action_id', index);
  if (c['generation'] !== token.generation)
    bad('causal.generation must equal token.generation', index);
  if (c['causal_reason'] !== token.erachter)
    bad('causal.causal_reason must equal token.erachter', index);
  for (const k of ['object_id', 'parent_object_id'] as const) {
    if (c[k] !== null && !(typeof c[k] === 'string' && OBJECT_ID.test(c[k])))
      bad(`causal.${k} must be an id or null`, index);
  }
  if (!(typeof c['continuity_id'] === 'string' && OBJECT_ID.test(c['continuity_id'])))
    bad('causal.continuity_id must be an id', index);
  return r as unknown as LogRecord;
}

const TOKEN_KEY = utf8(',"token":{');
const RECORD_TAIL = utf8(`,"v":${JSON.stringify(RECORD_VERSION)}}`);
const SIG_KEY = utf8(',"signature":"');
const SIG_LEN = 86;

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * The token's canonical bytes and its signing input, cut out of the line's bytes.
 *
 * Sound only for a line that `parseRecord` accepted: the line is then the RFC 8785 form of
 * the record, whose members are sorted (`causal, index, prev, received_at, token, v`), and
 * the RFC 8785 form of an object nested in it is exactly the RFC 8785 form of that object
 * on its own. So the token's canonical bytes run from the `{` after the first unescaped
 * `,"token":` (nothing before it can hold an unescaped quote outside a member name, and
 * parseRecord allows no other member named "token" before it) to the `}` before the final
 * `,"v":"tibet-log/1"}`; and the token's signing input (RFC 8785 of the token without
 * `signature`) is those bytes without the last `,"signature":"<86 chars>"` (the members
 * after it, `timestamp` and `typ`, hold RFC 3339 text and a constant). This saves two
 * re-serialisations per line; every cut is checked and any surprise falls back to the
 * canonicalising functions, so the result is exact either way (a property test compares them).
 */
export function tokenSlices(
  line: Uint8Array,
  t: TibetToken,
): { token: Uint8Array; signingInput: Uint8Array } | undefined {
  const c = tokenCut(line, t);
  if (!c) return undefined;
  // copied (not a view, not a pooled Buffer) so that a caller may keep or transfer it
  const signingInput = new Uint8Array(c.end - c.start - (c.sigEnd - c.sig));
  signingInput.set(line.subarray(c.start, c.sig));
  signingInput.set(line.subarray(c.sigEnd, c.end), c.sig - c.start);
  return { token: line.subarray(c.start, c.end), signingInput };
}

/**
 * Where {@link tokenSlices} cuts: the token's bytes are `line[start, end)`, its signature
 * member `,"signature":"<86 chars>"` is `line[sig, sigEnd)`, so its signing input is
 * `line[start, sig)` followed by `line[sigEnd, end)`. Same soundness condition; undefined
 * when the line does not have that shape.
 */
export function tokenCut(line: Uint8Array, t: Pick<TibetToken, 'signature'>): TokenCut | undefined {
  const b = asBuffer(line);
  const at = b.indexOf(TOKEN_KEY);
  if (at < 0) return undefined;
  const start = at + TOKEN_KEY.length - 1;
  const end = line.length - RECORD_TAIL.length;
  if (end <= start || line[end - 1] !== 0x7d) return undefined;
  for (let k = 0; k < RECORD_TAIL.length; k++)
    if (line[end + k] !== RECORD_TAIL[k]) return undefined;
  // the last `,"signature":"` of the token (searching back from its closing brace)
  const s = b.lastIndexOf(SIG_KEY, end - SIG_KEY.length);
  if (s < start) return undefined;
  const v = s + SIG_KEY.length;
  const sig = t.signature;
  if (sig.length !== SIG_LEN || v + SIG_LEN >= end || line[v + SIG_LEN] !== 0x22) return undefined;
  for (let k = 0; k < SIG_LEN; k++) if (line[v + k] !== sig.charCodeAt(k)) return undefined;
  return { start, sig: s, sigEnd: v + SIG_LEN + 1, end };
}

// ---------------------------------------------------------------------------------------
// The verifier's fast path: a line proven canonical and read in one pass over its text
// ---------------------------------------------------------------------------------------

/** A token without its content members (`erin`, `eraan`, `eromheen`), which were not built. */
export type TokenHead = Omit<TibetToken, 'erin' | 'eraan' | 'eromheen'>;

/** A record whose token's content members were proven canonical JSON but not built. */
export type RecordHead = Omit<LogRecord, 'token'> & { token: TokenHead };

/** Where a line's token and its signature member are (see {@link tokenCut}). */
export interface TokenCut {
  start: number;
  sig: number;
  sigEnd: number;
  end: number;
}

/** A line {@link parseRecordHead} read: its record (content elided) and its token's cut. */
export interface ScannedLine {
  record: RecordHead;
  cut: TokenCut;
}

// The scanner's state: the line's text (ASCII, so a character offset is a byte offset) and
// the position of the next character. One scan runs at a time on a thread, start to end.
let S = '';
let I = 0;
/** What a scanning function returns when the line does not have the expected shape. */
const NO = undefined;
/** Nesting allowed inside a token's content members before the scan leaves the line to parseRecord. */
const MAX_CONTENT_DEPTH = 64;

/**
 * Whether every byte of `b` is printable ASCII or DEL (0x20–0x7f), four bytes a step: a word
 * with a byte ≥ 0x80 has a high bit set; in a word without one, `(v − 0x20202020) & ~v &
 * 0x80808080` is non-zero exactly when a byte is < 0x20 (the "hasless" test of Bit Twiddling
 * Hacks: a borrow reaches a byte only from a lower one that is itself < 0x20).
 */
function printableAscii(b: Uint8Array): boolean {
  const off = b.byteOffset;
  const n = b.length;
  let i = 0;
  for (; i < n && (off + i) % 4 !== 0; i++) if (b[i]! < 0x20 || b[i]! > 0x7f) return false;
  const words = (n - i) >>> 2;
  if (words > 0) {
    const w = new Uint32Array(b.buffer, off + i, words);
    for (let k = 0; k < words; k++) {
      const v = w[k]!;
      if ((v & 0x80808080) !== 0 || ((v - 0x20202020) & ~v & 0x80808080) !== 0) return false;
    }
    i += 4 * words;
  }
  for (; i < n; i++) if (b[i]! < 0x20 || b[i]! > 0x7f) return false;
  return true;
}

const TYP_TAIL = `,"typ":${JSON.stringify(TOKEN_TYPE)}}`;
const RECORD_TAIL_TEXT = `,"v":${JSON.stringify(RECORD_VERSION)}}`;

function lit(t: string): boolean {
  if (!S.startsWith(t, I)) return false;
  I += t.length;
  return true;
}

/** A string token at I; its value (the text holds no escape or control, checked up front). */
function str(): string | undefined {
  if (S.charCodeAt(I) !== 0x22) return NO;
  const q = S.indexOf('"', I + 1);
  if (q < 0) return NO;
  const v = S.slice(I + 1, q);
  I = q + 1;
  return v;
}

/** `null` or a string token. */
function strOrNull(): string | null | undefined {
  return lit('null') ? null : str();
}

/**
 * An integer token at I in its ECMAScript form (no leading zero, no `-0`) of at most 15
 * digits, so a safe integer; NaN otherwise (a fraction or exponent stops the digits, and the
 * caller then fails on the character after them).
 */
function int(): number {
  let i = I;
  const neg = S.charCodeAt(i) === 0x2d;
  if (neg) i++;
  const d0 = i;
  let v = 0;
  for (; i < S.length; i++) {
    const c = S.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + (c - 0x30);
  }
  const n = i - d0;
  if (n === 0 || n > 15 || (S.charCodeAt(d0) === 0x30 && (n > 1 || neg))) return NaN;
  I = i;
  return neg ? -v : v;
}

/** Whether the member name `S[a0, a1)` sorts strictly before `S[b0, b1)` (UTF-16 order). */
function before(a0: number, a1: number, b0: number, b1: number): boolean {
  const la = a1 - a0;
  const lb = b1 - b0;
  const m = la < lb ? la : lb;
  for (let k = 0; k < m; k++) {
    const x = S.charCodeAt(a0 + k);
    const y = S.charCodeAt(b0 + k);
    if (x !== y) return x < y;
  }
  return la < lb;
}

/** Any JSON value at I, in RFC 8785 form (as far as this scanner knows it), skipped. */
function skipValue(depth: number): boolean {
  if (depth > MAX_CONTENT_DEPTH) return false;
  const c = S.charCodeAt(I);
  if (c === 0x22) {
    const q = S.indexOf('"', I + 1);
    if (q < 0) return false;
    I = q + 1;
    return true;
  }
  if (c === 0x7b) {
    I++;
    if (S.charCodeAt(I) === 0x7d) {
      I++;
      return true;
    }
    let p0 = -1;
    let p1 = -1;
    for (;;) {
      if (S.charCodeAt(I) !== 0x22) return false;
      const k0 = I + 1;
      const k1 = S.indexOf('"', k0);
      if (k1 < 0 || (p0 >= 0 && !before(p0, p1, k0, k1))) return false;
      p0 = k0;
      p1 = k1;
      I = k1 + 1;
      if (S.charCodeAt(I) !== 0x3a) return false;
      I++;
      if (!skipValue(depth + 1)) return false;
      const d = S.charCodeAt(I++);
      if (d === 0x7d) return true;
      if (d !== 0x2c) return false;
    }
  }
  if (c === 0x5b) {
    I++;
    if (S.charCodeAt(I) === 0x5d) {
      I++;
      return true;
    }
    for (;;) {
      if (!skipValue(depth + 1)) return false;
      const d = S.charCodeAt(I++);
      if (d === 0x5d) return true;
      if (d !== 0x2c) return false;
    }
  }
  if (c === 0x74) return lit('true');
  if (c === 0x66) return lit('false');
  if (c === 0x6e) return lit('null');
  return !Number.isNaN(int());
}

/** A token's `policy` array: decisions of exactly `decision`, optional `detail`, `rule`. */
function policy(): PolicyDecision[] | undefined {
  if (!lit('[')) return NO;
  const out: PolicyDecision[] = [];
  if (lit(']')) return out;
  for (;;) {
    if (!lit('{"decision":')) return NO;
    const decision = str();
    if (decision === NO) return NO;
    let detail: string | undefined;
    if (lit(',"detail":') && (detail = str()) === NO) return NO;
    if (!lit(',"rule":')) return NO;
    const rule = str();
    if (rule === NO || !lit('}')) return NO;
    // the same members JSON.parse would give (no `detail` member when there is none)
    out.push((detail === NO ? { decision, rule } : { decision, detail, rule }) as PolicyDecision);
    if (lit(']')) return out;
    if (!lit(',')) return NO;
  }
}

/**
 * The verifier's fast path of {@link parseRecord}: for a line of the usual shape — ASCII, no
 * escape, integers of at most 15 digits, no deeper nesting than a few dozen levels — one pass
 * over the line's text proves it the RFC 8785 form of a record (the members in their sorted
 * order, exactly the record's, the causal block's and the token's; member names sorted inside
 * the token's content; nothing else) and reads the members the verifier needs; then the same
 * checks as {@link parseRecord} run on those values. The token's content members are
 * proven canonical but not built, so what comes back is a {@link RecordHead}, with the token's
 * cut ({@link tokenCut}) read on the way.
 *
 * Undefined whenever the line is anything else, including every line `parseRecord` would
 * refuse: the caller then runs `parseRecord`, which decides and names the reason. So this
 * accepts a subset of what `parseRecord` accepts, with the same values (a property test holds
 * it to that), and refuses nothing on its own.
 */
export function parseRecordHead(line: Uint8Array): ScannedLine | undefined {
  // ASCII without controls (none is in a canonical line) and without escapes:
  // a character offset is then a byte offset, and a string token ends at the next quote
  if (!printableAscii(line)) return NO;
  const s = asBuffer(line).toString('latin1');
  if (s.indexOf('\\') >= 0) return NO;
  S = s;
  I = 0;
  try {
    return scanRecord();
  } finally {
    S = '';
  }
}

function scanRecord(): ScannedLine | undefined {
  if (!lit('{"causal":{"action_id":')) return NO;
  const cAction = str();
  if (cAction === NO || !lit(',"actor_id":')) return NO;
  const cActor = str();
  if (cActor === NO || !lit(',"causal_reason":')) return NO;
  const cReason = str();
  if (cReason === NO || !lit(',"continuity_id":')) return NO;
  const cContinuity = str();
  if (cContinuity === NO || !lit(',"generation":')) return NO;
  const cGeneration = int();
  if (Number.isNaN(cGeneration) || !lit(',"object_id":')) return NO;
  const cObject = strOrNull();
  if (cObject === NO || !lit(',"parent_action_id":')) return NO;
  const cParentAction = strOrNull();
  if (cParentAction === NO || !lit(',"parent_object_id":')) return NO;
  const cParentObject = strOrNull();
  if (cParentObject === NO || !lit('},"index":')) return NO;
  const index = int();
  if (Number.isNaN(index) || !lit(',"prev":')) return NO;
  const prev = strOrNull();
  if (prev === NO || !lit(',"received_at":')) return NO;
  const receivedAt = str();
  if (receivedAt === NO || !lit(',"token":{"action_id":')) return NO;
  const start = I - '{"action_id":'.length;
  const actionId = str();
  if (actionId === NO || !lit(',"actor":')) return NO;
  const actor = str();
  if (actor === NO || !lit(',"actor_class":')) return NO;
  const actorClass = str();
  if (actorClass === NO || !lit(',"eraan":') || !skipValue(0) || !lit(',"erachter":')) return NO;
  const erachter = str();
  if (erachter === NO || !lit(',"erin":') || !skipValue(0)) return NO;
  if (!lit(',"eromheen":') || !skipValue(0) || !lit(',"event":')) return NO;
  const event = str();
  if (event === NO || !lit(',"generation":')) return NO;
  const generation = int();
  if (Number.isNaN(generation) || !lit(',"kid":')) return NO;
  const kid = str();
  if (kid === NO || !lit(',"parent_action_id":')) return NO;
  const parentAction = strOrNull();
  if (parentAction === NO || !lit(',"policy":')) return NO;
  const decisions = policy();
  if (decisions === NO || !lit(',"prev":')) return NO;
  const tokenPrev = strOrNull();
  if (tokenPrev === NO) return NO;
  const sig = I;
  if (!lit(',"signature":')) return NO;
  const signature = str();
  const sigEnd = I;
  if (signature === NO || !lit(',"timestamp":')) return NO;
  const timestamp = str();
  // `typ` and `v` hold their one allowed value (any other is refused, by parseRecord)
  if (timestamp === NO || !lit(TYP_TAIL)) return NO;
  const end = I;
  if (!lit(RECORD_TAIL_TEXT) || I !== S.length) return NO;
  // The members as JSON.parse would give them, in the same order; the content members stand
  // in as null (parseToken only asks that they be present), and none of them is read later.
  const value = {
    causal: {
      action_id: cAction,
      actor_id: cActor,
      causal_reason: cReason,
      continuity_id: cContinuity,
      generation: cGeneration,
      object_id: cObject,
      parent_action_id: cParentAction,
      parent_object_id: cParentObject,
    },
    index,
    prev,
    received_at: receivedAt,
    token: {
      action_id: actionId,
      actor,
      actor_class: actorClass,
      eraan: null,
      erachter,
      erin: null,
      eromheen: null,
      event,
      generation,
      kid,
      parent_action_id: parentAction,
      policy: decisions,
      prev: tokenPrev,
      signature,
      timestamp,
      typ: TOKEN_TYPE,
    },
    v: RECORD_VERSION,
  };
  let record: RecordHead;
  try {
    record = checkRecord(value);
  } catch {
    return NO; // parseRecord names the reason
  }
  return { record, cut: { start, sig, sigEnd, end } };
}
