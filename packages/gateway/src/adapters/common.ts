/** Helpers shared by the adapters: constraint lookup, the fixed-or-requested payload, errors. */
import { canonicalize, toBase64, type JsonValue } from '@tibet/core';
import type { Capsule, ExecRequest, SamVerdict } from '@tibet/sam';
import type { MaskStream, Masker } from './mask.js';
import { GatewayAdapterError } from './types.js';

export function refuse(verdict: SamVerdict, message: string): GatewayAdapterError {
  return new GatewayAdapterError(verdict, message, { code: 'ADAPTER_REFUSED' });
}

export function failed(message: string): GatewayAdapterError {
  return new GatewayAdapterError('sam-gateway-proxy-failed', message, { code: 'ADAPTER_FAILED' });
}

export function aborted(message: string): GatewayAdapterError {
  return new GatewayAdapterError('sam-gateway-proxy-failed', message, { code: 'ADAPTER_ABORTED' });
}

/**
 * The single value of a capsule constraint, or undefined when the capsule has none. Two
 * constraints with the same key and different values are a malformed capsule: refused.
 */
export function constraint(capsule: Capsule, key: string): string | undefined {
  let value: string | undefined;
  for (const c of capsule.constraints) {
    if (c.key !== key) continue;
    if (value !== undefined && value !== c.value) {
      throw refuse('sam-constraint-mismatch', `the capsule has conflicting "${key}" constraints`);
    }
    value = c.value;
  }
  return value;
}

export function isObject(v: unknown): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The payload the adapter acts on: the capsule's `upstream_payload` when the issuer fixed one
 * (a request payload must then be absent or canonically equal), else the request's payload.
 */
export function resolvePayload(capsule: Capsule, request: ExecRequest): JsonValue | undefined {
  const fixed = capsule.upstream_payload;
  const asked = request.payload;
  if (fixed !== null) {
    if (asked !== undefined && !sameJson(fixed, asked)) {
      throw refuse('sam-constraint-mismatch', 'the capsule fixes the payload; the request differs');
    }
    return fixed;
  }
  return asked ?? undefined;
}

function sameJson(a: JsonValue, b: JsonValue): boolean {
  try {
    return canonicalize(a) === canonicalize(b);
  } catch {
    return false;
  }
}

/** `n` as `1.2 KiB` style text for summaries. */
export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function intOption(v: number | undefined, label: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`"${label}" expected an integer ≥ 0`);
  return v;
}

/**
 * Collects masked output up to `limit` bytes. Output is cut after masking, and the masker's
 * held-back tail is dropped (not emitted) when cut, so a cut never exposes part of a secret.
 */
export class MaskedCollector {
  readonly #stream: MaskStream;
  readonly #limit: number;
  readonly #parts: Uint8Array[] = [];
  #size = 0;
  #truncated = false;
  #ended = false;

  constructor(masker: Masker, limit: number) {
    this.#stream = masker.stream();
    this.#limit = limit;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  /** Feeds raw bytes (zeroed afterwards); returns false once the limit is reached. */
  push(raw: Uint8Array): boolean {
    if (!this.#truncated && !this.#ended) this.#take(this.#stream.push(raw));
    raw.fill(0);
    return !this.#truncated;
  }

  /** The masked bytes (at most `limit`). */
  end(): Uint8Array {
    if (!this.#ended) {
      this.#ended = true;
      if (this.#truncated) this.#stream.discard();
      else this.#take(this.#stream.end());
    }
    const out = new Uint8Array(this.#size);
    let o = 0;
    for (const p of this.#parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** Drops everything held (on failure paths). */
  discard(): void {
    this.#ended = true;
    this.#stream.discard();
    for (const p of this.#parts) p.fill(0);
    this.#parts.length = 0;
    this.#size = 0;
  }

  #take(b: Uint8Array): void {
    if (this.#truncated || b.length === 0) return;
    if (this.#size + b.length > this.#limit) {
      this.#parts.push(b.slice(0, this.#limit - this.#size));
      b.fill(0);
      this.#size = this.#limit;
      this.#truncated = true;
    } else {
      this.#parts.push(b);
      this.#size += b.length;
    }
  }
}

/**
 * Text when the bytes are UTF-8 (an incomplete character cut off at a size limit is dropped),
 * else base64.
 */
export function textOrBase64(
  b: Uint8Array,
  truncated: boolean,
): { text: string; encoding: 'utf8' | 'base64' } {
  const dec = new TextDecoder('utf-8', { fatal: true });
  const tries = truncated ? [0, 1, 2, 3] : [0];
  for (const cut of tries) {
    if (cut > b.length) break;
    try {
      return { text: dec.decode(b.subarray(0, b.length - cut)), encoding: 'utf8' };
    } catch {
      // try a shorter cut, then fall back to base64
    }
  }
  return { text: toBase64(b), encoding: 'base64' };
}
