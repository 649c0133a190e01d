/** Shared test helpers for @tibet/core. Not a test file itself (no `.test.ts`). */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { CoreError, getProvider, type CoreErrorCode, type CryptoProvider } from '@tibet/core';

export const noble: CryptoProvider = getProvider('noble');
export const node: CryptoProvider = getProvider('node');
export const BACKENDS = [noble, node] as const;

export const VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'vectors');

/** The path of a vector file, or undefined when it is not there (yet). */
export function vectorPath(name: string): string | undefined {
  const p = join(VECTORS_DIR, name);
  return existsSync(p) ? p : undefined;
}

export function readVector<T>(name: string): T {
  return JSON.parse(readFileSync(join(VECTORS_DIR, name), 'utf8')) as T;
}

/** Catch what `fn` throws (failing the test if it returns normally). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected the function to throw');
}

export async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the promise to reject');
}

/** Assert that `e` is a CoreError (recognised by its marker, not instanceof) with `code`. */
export function expectCode(e: unknown, code: CoreErrorCode): CoreError {
  expect(CoreError.is(e), `expected a CoreError ${code}, got ${String(e)}`).toBe(true);
  expect((e as CoreError).code).toBe(code);
  return e as CoreError;
}

export function expectCoreError(fn: () => unknown, code: CoreErrorCode): CoreError {
  return expectCode(thrown(fn), code);
}

export async function expectCoreErrorAsync(
  p: Promise<unknown>,
  code: CoreErrorCode,
): Promise<CoreError> {
  return expectCode(await rejected(p), code);
}

/** A copy of `b` with bit `bit` (taken modulo the bit length) flipped. */
export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(b);
  const i = bit % (b.length * 8);
  out[i >> 3]! ^= 1 << (i & 7);
  return out;
}

/** A deep copy of plain JSON data. */
export function clone<T>(v: T): T {
  return structuredClone(v);
}
