/**
 * Deterministic CBOR (RFC 8949 §4.2.1, "core deterministic encoding") for the subset the
 * family signs: unsigned and negative integers (safe-integer range), byte strings, text
 * strings, arrays, maps, tags, false, true and null. No floats, no `undefined`, no
 * indefinite lengths. Hand-written because signatures cover these exact bytes.
 *
 * The decoder is strict: it rejects every non-canonical form (longer-than-needed
 * arguments, unsorted or duplicate map keys, indefinite lengths), invalid UTF-8, floats
 * and other simple values, trailing bytes, and structures deeper or larger than its limits,
 * checking every length against the bytes that remain before allocating.
 */
import { TzaError } from './errors.js';

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {
    if (!Number.isSafeInteger(tag) || tag < 0)
      throw new RangeError('"tag" must be a non-negative integer');
  }
}

export type CborKey = string | number;
export type CborValue =
  | number
  | string
  | boolean
  | null
  | Uint8Array
  | CborTag
  | readonly CborValue[]
  | ReadonlyMap<CborKey, CborValue>
  | { readonly [key: string]: CborValue };

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Writer {
  buf: Uint8Array;
  dv: DataView;
  len = 0;
  /** What the encoding written so far holds (see {@link EncodedShape}). */
  depth = 0;
  items = 0;
  plain = true;
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
  }
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf.fill(0, 0, this.len);
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }
  byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    const n = b.length;
    this.reserve(n);
    if (n <= 32) {
      const buf = this.buf;
      let o = this.len;
      for (let i = 0; i < n; i++) buf[o++] = b[i]!;
    } else this.buf.set(b, this.len);
    this.len += n;
  }
  head(major: number, n: number): void {
    const m = major << 5;
    this.reserve(9);
    const b = this.buf;
    if (n < 24) b[this.len++] = m | n;
    else if (n < 0x100) {
      b[this.len++] = m | 24;
      b[this.len++] = n;
    } else if (n < 0x10000) {
      b[this.len++] = m | 25;
      b[this.len++] = n >>> 8;
      b[this.len++] = n & 0xff;
    } else if (n < 0x100000000) {
      b[this.len++] = m | 26;
      this.dv.setUint32(this.len, n, false);
      this.len += 4;
    } else {
      b[this.len++] = m | 27;
      this.dv.setBigUint64(this.len, BigInt(n), false);
      this.len += 8;
    }
  }
  /**
   * A text string: ASCII is written byte for byte (its UTF-8 form); anything else goes
   * through the encoder and must be well-formed Unicode (no lone surrogates).
   */
  text(v: string): void {
    const n = v.length;
    const start = this.len;
    this.head(3, n);
    this.reserve(n);
    const b = this.buf;
    let o = this.len;
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c >= 0x80) {
        this.len = start;
        const u = te.encode(v);
        if (td.decode(u) !== v) throw new TypeError('CBOR: text string is not well-formed Unicode');
        this.head(3, u.length);
        return this.bytes(u);
      }
      b[o++] = c;
    }
    this.len = o;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/**
 * One writer is kept and reused, so that encoding a manifest does not grow a fresh buffer
 * from 256 bytes each time. It is zeroed after each use (encoded values can hold key
 * material) and dropped when it grew beyond {@link SHARED_WRITER_MAX}. A nested call
 * (encoding a map key from inside an encoding) gets a writer of its own.
 */
const SHARED_WRITER_MAX = 64 * 1024;
let shared: Writer | undefined = new Writer(4096);

/** {@link compareBytes} of `b[as, ae)` and `b[bs, be)`, without making views. */
function compareRanges(b: Uint8Array, as: number, ae: number, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) if (b[as + i] !== b[bs + i]) return b[as + i]! - b[bs + i]!;
  return ae - as - (be - bs);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * A map's entries given as their keys' encodings and their values: written in the order of
 * the keys' encodings (RFC 8949 §4.2.1). Keys already in that order (strictly ascending) are
 * only checked; otherwise they are sorted, and two equal encodings are a duplicate key.
 */
function encodeEntries(w: Writer, kbs: Uint8Array[], vals: CborValue[], depth: number): void {
  const n = kbs.length;
  w.items += n;
  let sorted = true;
  for (let i = 1; i < n; i++) {
    if (compareBytes(kbs[i - 1]!, kbs[i]!) >= 0) {
      sorted = false;
      break;
    }
  }
  w.head(5, n);
  if (sorted) {
    for (let i = 0; i < n; i++) {
      w.bytes(kbs[i]!);
      encodeInto(w, vals[i]!, depth + 1);
    }
    return;
  }
  const order: number[] = [];
  for (let i = 0; i < n; i++) order.push(i);
  order.sort((a, b) => compareBytes(kbs[a]!, kbs[b]!));
  for (let i = 1; i < n; i++) {
    if (compareBytes(kbs[order[i - 1]!]!, kbs[order[i]!]!) === 0)
      throw new TypeError('CBOR: duplicate map key');
  }
  for (const i of order) {
    w.bytes(kbs[i]!);
    encodeInto(w, vals[i]!, depth + 1);
  }
}

/**
 * A real Uint8Array (not a proxy, a subclass or an array with another prototype) with no
 * own `length` property: its `length` is the built-in getter's, its internal length, and
 * reading it runs no caller code.
 */
function isGenuineBytes(v: Uint8Array): boolean {
  return (
    ArrayBuffer.isView(v) &&
    Object.getPrototypeOf(v) === Uint8Array.prototype &&
    !Object.prototype.hasOwnProperty.call(v, 'length')
  );
}

function encodeInto(w: Writer, v: CborValue, depth: number): void {
  if (depth > 64) throw new RangeError('CBOR value nested deeper than 64');
  if (depth > w.depth) w.depth = depth;
  switch (typeof v) {
    case 'string':
      return w.text(v);
    case 'number':
      if (!Number.isSafeInteger(v))
        throw new TypeError(`CBOR: only safe integers are allowed, got ${v}`);
      // -0 is 0
      return v >= 0 ? w.head(0, v === 0 ? 0 : v) : w.head(1, -1 - v);
    case 'boolean':
      return w.byte(v ? 0xf5 : 0xf4);
    case 'object':
      break;
    default:
      throw new TypeError(`CBOR: unsupported type ${typeof v}`);
  }
  if (v === null) return w.byte(0xf6);
  if (v instanceof Uint8Array) {
    if (!isGenuineBytes(v)) w.plain = false;
    w.head(2, v.length);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    const a = v as readonly CborValue[];
    const n = a.length;
    w.items += n;
    w.head(4, n);
    for (let i = 0; i < n; i++) encodeInto(w, a[i]!, depth + 1);
    return;
  }
  if (v instanceof CborTag) {
    w.plain = false;
    w.head(6, v.tag);
    return encodeInto(w, v.value, depth + 1);
  }
  const kbs: Uint8Array[] = [];
  const vals: CborValue[] = [];
  if (v instanceof Map) {
    w.plain = false;
    for (const [k, x] of v as Map<CborKey, CborValue>) {
      if (typeof k !== 'string' && typeof k !== 'number')
        throw new TypeError('CBOR: map keys must be text or integers');
      kbs.push(keyBytes(k));
      vals.push(x);
    }
  } else {
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError('CBOR: unsupported object type');
    if (proto === null) w.plain = false;
    const o = v as Record<string, CborValue>;
    const keys = Object.keys(o);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const x = o[k];
      if (x !== undefined) {
        if (k === '__proto__') w.plain = false;
        kbs.push(keyBytes(k));
        vals.push(x);
      } else w.plain = false;
    }
  }
  encodeEntries(w, kbs, vals, depth);
}

// Map keys repeat (every manifest, entry and recipient has the same few): their encodings
// are cached, bounded.
const KEY_CACHE = new Map<CborKey, Uint8Array>();
function keyBytes(k: CborKey): Uint8Array {
  let b = KEY_CACHE.get(k);
  if (!b) {
    b = encodeCbor(k);
    if (KEY_CACHE.size < 4096) KEY_CACHE.set(k, b);
  }
  return b;
}

/** Deterministic encoding of `v`. Throws TypeError/RangeError on values outside the subset. */
export function encodeCbor(v: CborValue): Uint8Array {
  return encodeShaped(v).bytes;
}

/**
 * What the decoder will meet in an encoding, recorded by the encoder as it wrote it:
 * - `depth`: the deepest item (the top item is at 0; array elements, map keys and values
 *   one deeper than their container), as {@link CborDecodeLimits.maxDepth} counts it;
 * - `items`: array elements and map entries together, as {@link CborDecodeLimits.maxItems}
 *   counts them;
 * - `plain`: the value was made only of null, booleans, safe integers, text, genuine
 *   `Uint8Array`s (prototype `Uint8Array.prototype`), arrays and objects with prototype
 *   `Object.prototype` and no `undefined` member and no `"__proto__"` key — no tag, no
 *   `Map`. Such an encoding holds no tag and only text-keyed maps, and decodes (within the
 *   limits) to the same tree: every object a plain object with the same members, every
 *   array the same length, every byte string the same bytes.
 */
export interface EncodedShape {
  depth: number;
  items: number;
  plain: boolean;
}

/** {@link encodeCbor}, with the {@link EncodedShape} of what it wrote. */
export function encodeShaped(v: CborValue): { bytes: Uint8Array; shape: EncodedShape } {
  const w = shared ?? new Writer();
  shared = undefined;
  try {
    encodeInto(w, v, 0);
    return { bytes: w.result(), shape: { depth: w.depth, items: w.items, plain: w.plain } };
  } finally {
    w.buf.fill(0, 0, w.len);
    w.len = 0;
    w.depth = 0;
    w.items = 0;
    w.plain = true;
    if (w.buf.length <= SHARED_WRITER_MAX) shared = w;
  }
}

export interface CborDecodeLimits {
  /** Deepest nesting of arrays, maps and tags (default 16). */
  maxDepth?: number;
  /** Most items (all array elements and map entries together; default 100,000). */
  maxItems?: number;
  /** Tags that may appear (default: none). */
  allowTags?: readonly number[];
}

/** Short text strings (map keys, ids, names) are decoded here when they are plain ASCII. */
const ASCII_FAST_MAX = 16;

/** The `n` bytes at `at` as a string when all are ASCII (valid UTF-8 as it is), else undefined. */
function asciiText(b: Uint8Array, at: number, n: number): string | undefined {
  let s = '';
  for (let i = at; i < at + n; i++) {
    const c = b[i]!;
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Map keys repeat (the same few field names in every manifest): a short ASCII key is looked
 * up in a small direct-mapped table by a hash of its bytes and compared byte for byte with
 * the string found there, so the decoder hands out one string per key. A miss (a new key, or
 * another key in the same slot) decodes the key and takes the slot.
 */
const KEY_SLOTS = 256;
const keySlots: (string | undefined)[] = new Array<string | undefined>(KEY_SLOTS).fill(undefined);

function keyText(b: Uint8Array, at: number, n: number): string | undefined {
  let h = n;
  for (let i = at; i < at + n; i++) {
    const c = b[i]!;
    if (c >= 0x80) return undefined;
    h = (Math.imul(h, 31) + c) | 0;
  }
  const slot = (h ^ (h >>> 8) ^ (h >>> 16)) & (KEY_SLOTS - 1);
  const s = keySlots[slot];
  if (s !== undefined && s.length === n) {
    let i = 0;
    while (i < n && s.charCodeAt(i) === b[at + i]) i++;
    if (i === n) return s;
  }
  const t = asciiText(b, at, n)!;
  keySlots[slot] = t;
  return t;
}

/** The big-endian unsigned 32-bit integer at `b[at, at + 4)`. */
function uint32At(b: Uint8Array, at: number): number {
  return b[at]! * 0x1000000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
}

class Reader {
  pos = 0;
  items = 0;
  /** The major type of the head {@link head} read last. */
  major = 0;
  constructor(
    readonly b: Uint8Array,
    readonly maxDepth: number,
    readonly maxItems: number,
    readonly allowTags: readonly number[],
  ) {}

  fail(
    code: 'CBOR_MALFORMED' | 'CBOR_NON_CANONICAL' | 'CBOR_UNSUPPORTED' | 'CBOR_TOO_DEEP',
    msg: string,
  ): never {
    throw new TzaError(code, `CBOR at byte ${this.pos}: ${msg}`);
  }

  need(n: number): void {
    if (n > this.b.length - this.pos)
      this.fail('CBOR_MALFORMED', `needs ${n} more bytes, ${this.b.length - this.pos} left`);
  }

  /** Reads a head: sets {@link major} and returns the argument; enforces the shortest form. */
  head(): number {
    this.need(1);
    const ib = this.b[this.pos++]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    this.major = major;
    if (major === 7 || ai < 24) return ai;
    let n: number;
    const b = this.b;
    const p = this.pos;
    switch (ai) {
      case 24:
        this.need(1);
        n = this.b[this.pos]!;
        this.pos += 1;
        if (n < 24) this.fail('CBOR_NON_CANONICAL', 'argument not in its shortest form');
        break;
      case 25:
        this.need(2);
        n = (b[p]! << 8) | b[p + 1]!;
        this.pos += 2;
        if (n < 0x100) this.fail('CBOR_NON_CANONICAL', 'argument not in its shortest form');
        break;
      case 26:
        this.need(4);
        n = uint32At(b, p);
        this.pos += 4;
        if (n < 0x10000) this.fail('CBOR_NON_CANONICAL', 'argument not in its shortest form');
        break;
      case 27: {
        this.need(8);
        const hi = uint32At(b, p);
        const lo = uint32At(b, p + 4);
        this.pos += 8;
        // below 2^32 when the high half is zero; above 2^53 − 1 when it exceeds 21 bits
        if (hi === 0) this.fail('CBOR_NON_CANONICAL', 'argument not in its shortest form');
        if (hi > 0x1fffff) this.fail('CBOR_UNSUPPORTED', 'integer beyond the safe range');
        n = hi * 0x100000000 + lo;
        break;
      }
      case 31:
        return this.fail('CBOR_NON_CANONICAL', 'indefinite lengths are not allowed');
      default:
        return this.fail('CBOR_MALFORMED', `reserved additional information ${ai}`);
    }
    return n;
  }

  count(n: number): void {
    this.items += n;
    if (this.items > this.maxItems)
      this.fail('CBOR_UNSUPPORTED', `more than ${this.maxItems} items`);
  }

  item(depth: number): CborValue {
    if (depth > this.maxDepth) this.fail('CBOR_TOO_DEEP', `nested deeper than ${this.maxDepth}`);
    const start = this.pos;
    const n = this.head();
    switch (this.major) {
      case 0:
        return n;
      case 1:
        if (n >= Number.MAX_SAFE_INTEGER)
          this.fail('CBOR_UNSUPPORTED', 'integer beyond the safe range');
        return -1 - n;
      case 2: {
        this.need(n);
        // a fresh copy even when the input is a Node Buffer (whose slice is a view)
        const out = new Uint8Array(n);
        const b = this.b;
        const at = this.pos;
        if (n <= 64) for (let i = 0; i < n; i++) out[i] = b[at + i]!;
        else out.set(b.subarray(at, at + n));
        this.pos += n;
        return out;
      }
      case 3: {
        this.need(n);
        let s = n <= ASCII_FAST_MAX ? asciiText(this.b, this.pos, n) : undefined;
        if (s === undefined) {
          try {
            s = td.decode(this.b.subarray(this.pos, this.pos + n));
          } catch {
            this.fail('CBOR_MALFORMED', 'text string is not valid UTF-8');
          }
        }
        this.pos += n;
        return s;
      }
      case 4: {
        // each element takes at least one byte: check before allocating
        this.need(n);
        this.count(n);
        const arr: CborValue[] = [];
        for (let i = 0; i < n; i++) arr.push(this.item(depth + 1));
        return arr;
      }
      case 5: {
        this.need(n * 2);
        this.count(n);
        // Keys are in bytewise order (checked below) and every integer key encodes below
        // every text key (major types 0 and 1 before 3): a map has only text keys exactly
        // when its first key is text. Those become plain objects, the others Maps.
        let o: Record<string, CborValue> | undefined;
        let m: Map<CborKey, CborValue> | undefined;
        // the previous key's encoding: bytes [prevStart, prevEnd) of the input
        let prevStart = -1;
        let prevEnd = -1;
        for (let i = 0; i < n; i++) {
          const ks = this.pos;
          const kb = this.b[ks]!;
          let k: CborValue | undefined;
          // a short text key (head byte 0x60–0x77) of plain ASCII: the same string each time
          if (kb >= 0x60 && kb < 0x78 && ks + 1 + (kb - 0x60) <= this.b.length) {
            k = keyText(this.b, ks + 1, kb - 0x60);
            if (k !== undefined) this.pos = ks + 1 + (kb - 0x60);
          }
          if (k === undefined) k = this.item(depth + 1);
          if (typeof k !== 'string' && typeof k !== 'number')
            this.fail('CBOR_UNSUPPORTED', 'map keys must be text or integers');
          if (prevStart >= 0) {
            const c = compareRanges(this.b, prevStart, prevEnd, ks, this.pos);
            if (c === 0) this.fail('CBOR_NON_CANONICAL', 'duplicate map key');
            if (c > 0) this.fail('CBOR_NON_CANONICAL', 'map keys not in bytewise order');
          }
          prevStart = ks;
          prevEnd = this.pos;
          if (i === 0 && typeof k === 'number') m = new Map();
          const val = this.item(depth + 1);
          if (m) m.set(k, val);
          else {
            o ??= {};
            // own data properties, never a setter: a "__proto__" key is just a key
            if (k === '__proto__')
              Object.defineProperty(o, k, {
                value: val,
                enumerable: true,
                writable: true,
                configurable: true,
              });
            else o[k as string] = val;
          }
        }
        return m ?? o ?? {};
      }
      case 6: {
        if (!this.allowTags.includes(n)) this.fail('CBOR_UNSUPPORTED', `tag ${n} not allowed here`);
        return new CborTag(n, this.item(depth + 1));
      }
      default: {
        // major 7: n is the additional information
        if (n === 20) return false;
        if (n === 21) return true;
        if (n === 22) return null;
        this.pos = start;
        return this.fail(
          'CBOR_UNSUPPORTED',
          n >= 25 && n <= 27 ? 'floats are not allowed' : `simple value ${n} not allowed`,
        );
      }
    }
  }
}

/**
 * Strictly decode one deterministic CBOR item that fills `bytes` exactly. Text-keyed maps
 * come back as plain objects, others as `Map`s. Throws TzaError `CBOR_*`.
 */
export function decodeCbor(bytes: Uint8Array, limits: CborDecodeLimits = {}): CborValue {
  const r = new Reader(
    bytes,
    limits.maxDepth ?? 16,
    limits.maxItems ?? 100_000,
    limits.allowTags ?? [],
  );
  const v = r.item(0);
  if (r.pos !== bytes.length) {
    throw new TzaError('CBOR_TRAILING_BYTES', `CBOR: ${bytes.length - r.pos} bytes after the item`);
  }
  return v;
}
