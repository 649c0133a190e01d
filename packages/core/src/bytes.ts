/** Byte helpers. Every function returns a fresh `Uint8Array` (never a Node `Buffer`). */

/** Lowercase hex (Buffer's encoder: one string, not one per byte). */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Strict lowercase-or-uppercase hex of even length; throws TypeError otherwise. */
export function fromHex(hex: string, label = 'hex'): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError(`"${label}" expected an even-length hex string`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Copy any view (including a Node Buffer) into a fresh, plain Uint8Array. */
export function copyBytes(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Constant-time comparison for equal-length inputs; false for different lengths. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

const enc = new TextEncoder();
// ignoreBOM: a leading U+FEFF is kept, never silently dropped (these are exact-byte formats)
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

/** Strict UTF-8 decode: throws TypeError on invalid sequences. */
export function fromUtf8(b: Uint8Array): string {
  return dec.decode(b);
}

export function u32be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`"n" out of u32 range`);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

export function i2osp(n: number, len: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`"n" must be a non-negative integer`);
  const out = new Uint8Array(len);
  let v = n;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  if (v !== 0) throw new RangeError(`"n" does not fit in ${len} bytes`);
  return out;
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

export function toBase64Url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Strict standard base64 (with padding); throws TypeError on anything else. */
export function fromBase64(s: string, label = 'base64'): Uint8Array {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    throw new TypeError(`"${label}" expected padded base64`);
  }
  const out = copyBytes(Buffer.from(s, 'base64'));
  if (toBase64(out) !== s) throw new TypeError(`"${label}" is not canonical base64`);
  return out;
}

export function fromBase64Url(s: string, label = 'base64url'): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) {
    throw new TypeError(`"${label}" expected unpadded base64url`);
  }
  const out = copyBytes(Buffer.from(s, 'base64url'));
  if (toBase64Url(out) !== s) throw new TypeError(`"${label}" is not canonical base64url`);
  return out;
}

/** Zero a buffer in place (best effort: JavaScript may have made copies). */
export function wipe(...bufs: (Uint8Array | undefined)[]): void {
  for (const b of bufs) b?.fill(0);
}

export function assertBytes(b: unknown, label: string, len?: number): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`"${label}" expected Uint8Array`);
  if (len !== undefined && b.length !== len) {
    throw new RangeError(`"${label}" expected ${len} bytes, got ${b.length}`);
  }
}
