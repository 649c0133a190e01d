/**
 * The writer's byte assembly for appends: an appended token's RFC 8785 bytes and its signing
 * input, and the log line around them, written into large reused blocks ({@link ByteArena})
 * rather than built as strings and encoded into a fresh array each. The bytes are the same as
 * `utf8(canonicalize(token))`, `tokenSigningInput(token)` and `encodeRecord(record)` (property
 * tests compare them); only where they live differs.
 */
import { canonicalize, utf8, type TibetToken } from '@tibet/core';
import { RECORD_VERSION, type CausalBlock } from './record.js';

/**
 * Bytes kept from when they are made until they are written or hashed (appended tokens'
 * bytes, the lines waiting for their batch), handed out from large blocks instead of one
 * allocation each. A block is never reused: when it is full a new one is started, and the old
 * one lives on while views of it do. Consecutive takes from one block are adjacent, so the
 * lines of a batch usually lie in one run of bytes and are written without a copy.
 */
export class ByteArena {
  #buf: Uint8Array;
  #at = 0;

  constructor(readonly blockBytes = 1 << 20) {
    if (!Number.isSafeInteger(blockBytes) || blockBytes < 1)
      throw new RangeError('"blockBytes" must be a positive integer');
    this.#buf = new Uint8Array(blockBytes);
  }

  /** A view of `n` free bytes, to fill and then keep (a prefix of) with {@link take}. */
  room(n: number): Uint8Array {
    if (this.#at + n > this.#buf.length) {
      this.#buf = new Uint8Array(Math.max(this.blockBytes, n));
      this.#at = 0;
    }
    return this.#buf.subarray(this.#at, this.#at + n);
  }

  /** Keep the first `n` bytes of the last {@link room} (`n` at most its length). */
  take(n: number): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0 || this.#at + n > this.#buf.length)
      throw new RangeError('ByteArena: take beyond the room given');
    const v = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }
}

const textEncoder = new TextEncoder();

/** UTF-8 of `s` into `out` from `at`; `out` must have room for `3 * s.length` bytes there. */
function encodeAt(s: string, out: Uint8Array, at: number): number {
  const { read, written } = textEncoder.encodeInto(s, at === 0 ? out : out.subarray(at));
  if (read !== s.length) throw new Error('line-bytes: short encode');
  return at + written;
}

/** `,"signature":"<86 characters>"`: the member cut out of a token for its signing input. */
export const SIGNATURE_MEMBER_BYTES = 14 + 86 + 1;

/** An appended token's bytes, in an arena. */
export interface TokenBytes {
  /** UTF-8 of its RFC 8785 text: what is hashed for `tokenHash` and stored in the line. */
  token: Uint8Array;
  /** Its signing input: that text without the `signature` member. */
  input: Uint8Array;
  /** `erachter`'s RFC 8785 text (its JSON.stringify), as in the token: for the causal block. */
  reasonJson: string;
}

/**
 * The RFC 8785 bytes and the signing input of a token `parseToken` has accepted, into `arena`.
 *
 * Sound only for such a token: it has exactly the sixteen members, every one defined, and is
 * canonicalizable (no lone surrogate, plain objects, finite numbers). Its members in RFC 8785
 * order (UTF-16 code units) are `action_id, actor, actor_class, eraan, erachter, erin,
 * eromheen, event, generation, kid, parent_action_id, policy, prev, signature, timestamp,
 * typ`; the members parseToken holds to patterns of plain ASCII (ids, classes, hex, RFC 3339,
 * base64url, the type) need no escapes, `generation` is a safe integer (its decimal digits),
 * `erachter` is a string (its RFC 8785 form is its JSON.stringify) and the four JSON values
 * take `canonicalize`. The signing input is the same text without `,"signature":"…"`, which
 * sits between `prev` and `timestamp`. A token that is not what parseToken promises would
 * give other bytes, which its signature then does not match: such a token is refused, never
 * stored.
 */
export function tokenBytesInto(arena: ByteArena, t: TibetToken): TokenBytes {
  const pa = t.parent_action_id === null ? 'null' : `"${t.parent_action_id}"`;
  const prev = t.prev === null ? 'null' : `"${t.prev}"`;
  const reasonJson = JSON.stringify(t.erachter);
  const head =
    `{"action_id":"${t.action_id}","actor":"${t.actor}","actor_class":"${t.actor_class}",` +
    `"eraan":${canonicalize(t.eraan)},"erachter":${reasonJson},` +
    `"erin":${canonicalize(t.erin)},"eromheen":${canonicalize(t.eromheen)},` +
    `"event":"${t.event}","generation":${t.generation},"kid":"${t.kid}",` +
    `"parent_action_id":${pa},"policy":${canonicalize(t.policy)},"prev":${prev}`;
  const sig = `,"signature":"${t.signature}"`;
  const tail = `,"timestamp":"${t.timestamp}","typ":"${t.typ}"}`;
  if (sig.length !== SIGNATURE_MEMBER_BYTES) throw new TypeError('signature must be 86 characters');
  const text = head + sig + tail;
  const room = arena.room(3 * text.length);
  const end = encodeAt(text, room, 0);
  // the signature member and what follows it are ASCII (base64url, RFC 3339, the type): as
  // many bytes as characters
  const sigEnd = end - tail.length;
  const headEnd = sigEnd - sig.length;
  if (room[headEnd] !== 0x2c || room[sigEnd] !== 0x2c || room[end - 1] !== 0x7d)
    throw new TypeError('token members are not ASCII where they must be');
  const token = arena.take(end);
  const input = arena.room(end - sig.length);
  input.set(token.subarray(0, headEnd));
  input.set(token.subarray(sigEnd), headEnd);
  return { token, input: arena.take(input.length), reasonJson };
}

/**
 * The RFC 8785 text of a causal block the writer builds (the same text as `canonicalize` of
 * the block), written out directly in its members' canonical order `action_id, actor_id,
 * causal_reason, continuity_id, generation, object_id, parent_action_id, parent_object_id`.
 *
 * Sound only for the writer's own blocks: the ids are strings of plain ASCII that need no
 * escapes (action and actor ids as parseToken accepts them, object and continuity ids matching
 * `OBJECT_ID`, checked by the writer before it builds the line), `generation` is a safe
 * integer, and `reasonJson` is `JSON.stringify(causal_reason)` (from {@link tokenBytesInto}).
 * Property tests compare it with `canonicalize`.
 */
export function causalText(c: CausalBlock, reasonJson: string): string {
  return (
    `{"action_id":"${c.action_id}","actor_id":"${c.actor_id}","causal_reason":${reasonJson},` +
    `"continuity_id":"${c.continuity_id}","generation":${c.generation},` +
    `"object_id":${c.object_id === null ? 'null' : `"${c.object_id}"`},` +
    `"parent_action_id":${c.parent_action_id === null ? 'null' : `"${c.parent_action_id}"`},` +
    `"parent_object_id":${c.parent_object_id === null ? 'null' : `"${c.parent_object_id}"`}}`
  );
}

/** What follows the token in every line: the last member and the line's end. */
const LINE_TAIL = utf8(`,"v":${JSON.stringify(RECORD_VERSION)}}\n`);

/**
 * A line's bytes (with its `\n`) assembled in `arena` from the record's members and the
 * token's RFC 8785 bytes: the same bytes as `encodeRecordWithTokenText(r, tokenText, true)`
 * (the token's text being `tokenBytes` decoded). In RFC 8785 order a record's members are
 * `causal, index, prev, received_at, token, v`; `causalText` is the canonical text of the
 * causal block, `index` a safe integer, `prev` lowercase hex or null and `receivedAt` RFC 3339
 * text (the writer's own values: no escapes needed).
 */
export function encodeLineInto(
  arena: ByteArena,
  causalText: string,
  index: number,
  prev: string | null,
  receivedAt: string,
  tokenBytes: Uint8Array,
): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError('bad record index');
  const head =
    `{"causal":${causalText},"index":${index},"prev":${prev === null ? 'null' : `"${prev}"`},` +
    `"received_at":"${receivedAt}","token":`;
  const room = arena.room(3 * head.length + tokenBytes.length + LINE_TAIL.length);
  const at = encodeAt(head, room, 0);
  room.set(tokenBytes, at);
  room.set(LINE_TAIL, at + tokenBytes.length);
  return arena.take(at + tokenBytes.length + LINE_TAIL.length);
}
