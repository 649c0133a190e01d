/**
 * The secret masker: replaces every occurrence of a secret, in every encoding an upstream or a
 * child process is likely to echo it in, with a marker (`[REDACTED]`).
 *
 * Forms of a secret (see {@link secretForms}): the raw bytes; standard base64 (padded and
 * unpadded) and base64url; the base64 characters the secret determines when it sits at any of
 * the three byte offsets inside a longer base64 text (so `base64("user:" + secret)` is caught
 * too), for secrets long enough that the fragment is at least 8 characters; lowercase and
 * uppercase hex; and, when the secret is UTF-8 text that changes under them, its URL encoding
 * (`encodeURIComponent`, lowercase escapes, `application/x-www-form-urlencoded`) and its JSON
 * string escaping.
 *
 * Matching is leftmost-longest over all forms. The streaming masker holds back only a tail that
 * could still be the start of a form, so any split of the input into chunks gives exactly the
 * bytes that masking it whole gives. The marker is chosen so that no form can overlap it or be
 * contained in it (a secret such as `]abc` could otherwise re-appear out of `[REDACTED]` + the
 * text after it); hence no form survives masking.
 *
 * What JavaScript cannot guarantee: the forms are kept as `Uint8Array`s that `destroy()` zeroes,
 * but building them creates short-lived strings the engine may keep until garbage collection.
 */
import { toBase64, toBase64Url, toHex, utf8, type JsonValue } from '@tibet/core';

export const REDACTED = '[REDACTED]';

/** Markers tried in order; the first that cannot interact with any form is used. */
const MARKERS = [
  REDACTED,
  '<REDACTED>',
  '{REDACTED}',
  '(REDACTED)',
  '[MASKED]',
  '<MASKED>',
  '[HIDDEN]',
  '#SCRUBBED#',
  '[***]',
  '<***>',
  '|***|',
] as const;

/** Encoded fragments shorter than this are not masked on their own (too many false hits). */
const MIN_FRAGMENT = 8;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lossyUtf8 = new TextDecoder('utf-8');

function asText(b: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(b);
  } catch {
    return undefined;
  }
}

/** Base64 characters wholly determined by `secret` when it starts `shift` bytes into a text. */
function base64Fragment(secret: Uint8Array, shift: number, url: boolean): string {
  const buf = new Uint8Array(shift + secret.length);
  buf.set(secret, shift);
  const enc = url ? toBase64Url(buf) : toBase64(buf).replace(/=+$/, '');
  buf.fill(0);
  const first = Math.ceil((8 * shift) / 6);
  const end = Math.floor((8 * (shift + secret.length)) / 6);
  return enc.slice(first, end);
}

function percentEncodeBytes(b: Uint8Array, lower: boolean): string {
  let s = '';
  for (const x of b) {
    const c = String.fromCharCode(x);
    if (/[A-Za-z0-9\-._~]/.test(c)) s += c;
    else {
      const h = x.toString(16).padStart(2, '0');
      s += '%' + (lower ? h : h.toUpperCase());
    }
  }
  return s;
}

/** Every byte pattern `createMasker` redacts for one secret (deduplicated, non-empty). */
export function secretForms(secret: Uint8Array): Uint8Array[] {
  if (!(secret instanceof Uint8Array)) throw new TypeError('"secret" expected Uint8Array');
  if (secret.length === 0) throw new RangeError('"secret" must not be empty');
  const text: string[] = [];
  const b64 = toBase64(secret);
  text.push(b64, b64.replace(/=+$/, ''), toBase64Url(secret));
  for (const url of [false, true]) {
    for (let shift = 0; shift < 3; shift++) {
      const f = base64Fragment(secret, shift, url);
      if (f.length >= MIN_FRAGMENT) text.push(f);
    }
  }
  const hex = toHex(secret);
  text.push(hex, hex.toUpperCase());
  const s = asText(secret);
  if (s !== undefined) {
    const uri = encodeURIComponent(s);
    text.push(
      uri,
      uri.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
      new URLSearchParams({ a: s }).toString().slice(2),
      JSON.stringify(s).slice(1, -1),
    );
  } else {
    text.push(percentEncodeBytes(secret, false), percentEncodeBytes(secret, true));
  }
  const out: Uint8Array[] = [secret.slice()];
  const seen = new Set<string>([hex]);
  for (const t of text) {
    if (t.length === 0) continue;
    const b = utf8(t);
    const key = toHex(b);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(b);
    } else b.fill(0);
  }
  return out;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function sameBytes(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number, n: number) {
  for (let k = 0; k < n; k++) if (a[aStart + k] !== b[bStart + k]) return false;
  return true;
}

/** Whether `p` can interact with marker `m`: contained in it, containing it, or overlapping. */
function interacts(m: Uint8Array, p: Uint8Array): boolean {
  if (indexOf(m, p) >= 0 || indexOf(p, m) >= 0) return true;
  const n = Math.min(m.length, p.length);
  for (let k = 1; k < n; k++) {
    if (sameBytes(m, m.length - k, p, 0, k)) return true; // marker's end starts a form
    if (sameBytes(p, p.length - k, m, 0, k)) return true; // a form's end starts the marker
  }
  return false;
}

/** A chunk-by-chunk masker; see the module comment for the equivalence guarantee. */
export interface MaskStream {
  /** Masks what can be decided now; holds back a possible start of a form. */
  push(chunk: Uint8Array): Uint8Array;
  /** Masks and returns the held tail. The stream cannot be used afterwards. */
  end(): Uint8Array;
  /** Zeroes and drops the held tail without emitting it (for output cut at a size limit). */
  discard(): void;
  /** Bytes currently held back (never more than the longest form minus one). */
  readonly pending: number;
}

export interface Masker {
  /** The marker text in use (`[REDACTED]` unless a form could interact with it). */
  readonly marker: string;
  /** Number of byte patterns masked. */
  readonly forms: number;
  mask(data: Uint8Array): Uint8Array;
  /** Masks the UTF-8 encoding of `s` (lone surrogates become U+FFFD). */
  maskText(s: string): string;
  /** Masks every string and object key inside a JSON value. */
  maskJson(v: JsonValue): JsonValue;
  /** Whether any form occurs in `data` (a string is taken as UTF-8). */
  contains(data: Uint8Array | string): boolean;
  stream(): MaskStream;
  /** Zeroes the forms; any later use throws. */
  destroy(): void;
}

interface Sink {
  parts: Uint8Array[];
  size: number;
}

function push(sink: Sink, b: Uint8Array): void {
  if (b.length === 0) return;
  sink.parts.push(b);
  sink.size += b.length;
}

function join(sink: Sink): Uint8Array {
  const out = new Uint8Array(sink.size);
  let o = 0;
  for (const p of sink.parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * A masker for one or more secrets (e.g. a `user:password` credential and its password).
 * Throws RangeError for an empty secret, or in the pathological case that every marker
 * candidate interacts with some form of the secret.
 */
export function createMasker(secrets: Uint8Array | readonly Uint8Array[]): Masker {
  const list = secrets instanceof Uint8Array ? [secrets] : [...secrets];
  if (list.length === 0) throw new RangeError('"secrets" must name at least one secret');
  const patterns: Uint8Array[] = [];
  const seen = new Set<string>();
  for (const s of list) {
    for (const f of secretForms(s)) {
      const key = toHex(f);
      if (seen.has(key)) f.fill(0);
      else {
        seen.add(key);
        patterns.push(f);
      }
    }
  }
  seen.clear();
  const markerText = MARKERS.find((m) => {
    const mb = utf8(m);
    return patterns.every((p) => !interacts(mb, p));
  });
  if (markerText === undefined) {
    for (const p of patterns) p.fill(0);
    throw new RangeError('no redaction marker can be used safely with this secret');
  }
  const marker = utf8(markerText);
  const byFirst: (Uint8Array[] | undefined)[] = new Array<Uint8Array[] | undefined>(256);
  for (const p of patterns) (byFirst[p[0]!] ??= []).push(p);
  let destroyed = false;

  const alive = (): void => {
    if (destroyed) throw new Error('masker was destroyed');
  };

  /** Masks `buf` into `sink`; returns where the held-back tail starts (buf.length if none). */
  const scan = (buf: Uint8Array, final: boolean, sink: Sink): number => {
    let i = 0;
    let lit = 0;
    while (i < buf.length) {
      const cands = byFirst[buf[i]!];
      if (cands !== undefined) {
        const avail = buf.length - i;
        let best = 0;
        let pending = false;
        for (const p of cands) {
          if (p.length <= avail) {
            if (p.length > best && sameBytes(buf, i, p, 0, p.length)) best = p.length;
          } else if (!final && sameBytes(buf, i, p, 0, avail)) pending = true;
        }
        if (pending) {
          push(sink, buf.subarray(lit, i));
          return i;
        }
        if (best > 0) {
          push(sink, buf.subarray(lit, i));
          push(sink, marker);
          i += best;
          lit = i;
          continue;
        }
      }
      i++;
    }
    push(sink, buf.subarray(lit));
    return buf.length;
  };

  const mask = (data: Uint8Array): Uint8Array => {
    alive();
    const sink: Sink = { parts: [], size: 0 };
    scan(data, true, sink);
    return join(sink);
  };

  const maskText = (s: string): string => lossyUtf8.decode(mask(utf8(s)));

  const maskJson = (v: JsonValue): JsonValue => {
    if (typeof v === 'string') return maskText(v);
    if (Array.isArray(v)) return v.map(maskJson);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, JsonValue> = {};
      for (const [k, x] of Object.entries(v)) out[maskText(k)] = maskJson(x);
      return out;
    }
    return v;
  };

  return {
    marker: markerText,
    forms: patterns.length,
    mask,
    maskText,
    maskJson,
    contains(data) {
      alive();
      const b = typeof data === 'string' ? utf8(data) : data;
      return patterns.some((p) => indexOf(b, p) >= 0);
    },
    stream() {
      alive();
      let held = new Uint8Array(0);
      let ended = false;
      return {
        get pending() {
          return held.length;
        },
        push(chunk) {
          alive();
          if (ended) throw new Error('mask stream already ended');
          const buf = new Uint8Array(held.length + chunk.length);
          buf.set(held);
          buf.set(chunk, held.length);
          held.fill(0);
          const sink: Sink = { parts: [], size: 0 };
          const at = scan(buf, false, sink);
          const out = join(sink);
          held = buf.slice(at);
          buf.fill(0);
          return out;
        },
        end() {
          alive();
          if (ended) throw new Error('mask stream already ended');
          ended = true;
          const out = mask(held);
          held.fill(0);
          held = new Uint8Array(0);
          return out;
        },
        discard() {
          ended = true;
          held.fill(0);
          held = new Uint8Array(0);
        },
      };
    },
    destroy() {
      destroyed = true;
      for (const p of patterns) p.fill(0);
    },
  };
}
