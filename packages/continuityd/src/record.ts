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
  type TibetToken,
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
export function tokenCut(
  line: Uint8Array,
  t: TibetToken,
): { start: number; sig: number; sigEnd: number; end: number } | undefined {
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
