/**
 * Scale: 1,000,000 leaf hashes pushed straight into a TreeStore (no AuditLog). Proof
 * generation must stay O(log n): every proof is checked to read fewer than 64 hashes from
 * disk (counted through the `onRead` hook). Timings are printed, not asserted.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '@tibet/core/testing';
import { MerkleFrontier } from '../src/merkle.js';
import { verifyConsistency, verifyInclusion } from '../src/proof.js';
import { TreeStore, levelFileName } from '../src/tree-store.js';

const N = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'tibet-scale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function leaf(i: number): Uint8Array {
  const b = new Uint8Array(5);
  b[0] = 0;
  new DataView(b.buffer).setUint32(1, i);
  return new Uint8Array(createHash('sha256').update(b).digest());
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const avg = s.reduce((a, b) => a + b, 0) / s.length;
  const p = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return `avg ${avg.toFixed(3)} ms, p50 ${p(0.5).toFixed(3)}, p99 ${p(0.99).toFixed(3)}, max ${p(1).toFixed(3)}`;
}

describe('TreeStore at 1,000,000 leaves', () => {
  it('builds, reopens and proves with O(log n) reads', async () => {
    const rnd = seededRandom('scale');
    const uniform = (n: number): number => {
      const b = rnd(4);
      return (b[0]! * 2 ** 24 + b[1]! * 2 ** 16 + b[2]! * 2 ** 8 + b[3]!) % n;
    };
    // sizes whose roots we take from the log's own MerkleFrontier while building
    const sizes = new Set<number>([N, 1, 2, 3, 2 ** 19, 2 ** 19 + 1, 999_999]);
    while (sizes.size < 40) sizes.add(1 + uniform(N));
    const roots = new Map<number, Uint8Array>();

    let reads = 0;
    const onRead = (): void => {
      reads++;
    };
    const store = await TreeStore.open(join(dir, 'tree'), { onRead });
    const frontier = new MerkleFrontier();
    const heap0 = process.memoryUsage().heapUsed;
    let t0 = performance.now();
    let storeMs = 0;
    const CHUNK = 8192;
    for (let i = 0; i < N; i += CHUNK) {
      const hs: Uint8Array[] = [];
      for (let j = i; j < Math.min(N, i + CHUNK); j++) {
        const h = leaf(j);
        hs.push(h);
        frontier.push(h);
        if (sizes.has(frontier.size)) roots.set(frontier.size, frontier.root());
      }
      const a = performance.now();
      store.appendLeafHashes(hs);
      storeMs += performance.now() - a;
    }
    const buildMs = performance.now() - t0;
    const heap1 = process.memoryUsage().heapUsed;
    t0 = performance.now();
    await store.flush();
    const flushMs = performance.now() - t0;
    expect(store.indexedSize()).toBe(N);
    expect(statSync(join(dir, 'tree', levelFileName(0))).size).toBe(N * 32);
    expect(statSync(join(dir, 'tree', levelFileName(19))).size).toBe(32);
    await store.close();

    t0 = performance.now();
    const t = await TreeStore.open(join(dir, 'tree'), { onRead });
    const openMs = performance.now() - t0;
    expect(t.size).toBe(N);
    expect(await t.root(N)).toEqual(roots.get(N));

    // inclusion proofs at the full size and at sizes whose roots came from the frontier
    const gen: number[] = [];
    const ver: number[] = [];
    let maxReads = 0;
    const cases: [number, number][] = [];
    for (let j = 0; j < 1000; j++) cases.push([uniform(N), N]);
    for (const s of sizes) for (let j = 0; j < 10; j++) cases.push([uniform(s), s]);
    cases.push([0, N], [N - 1, N], [2 ** 19, 2 ** 19 + 1]);
    for (const [index, size] of cases) {
      reads = 0;
      const a = performance.now();
      const proof = await t.inclusionProof(index, size);
      gen.push(performance.now() - a);
      maxReads = Math.max(maxReads, reads);
      expect(reads).toBeLessThan(64);
      expect(proof.length).toBeLessThanOrEqual(20);
      const b = performance.now();
      verifyInclusion(leaf(index), index, size, proof, roots.get(size)!);
      ver.push(performance.now() - b);
    }

    // root(size) and consistency proofs between random sizes
    const cgen: number[] = [];
    let maxCReads = 0;
    let maxRootReads = 0;
    const sizeList = [...sizes];
    for (let j = 0; j < 300; j++) {
      const m = sizeList[uniform(sizeList.length)]!;
      const n = sizeList[uniform(sizeList.length)]!;
      const [lo, hi] = m <= n ? [m, n] : [n, m];
      reads = 0;
      expect(await t.root(lo)).toEqual(roots.get(lo));
      maxRootReads = Math.max(maxRootReads, reads);
      reads = 0;
      const a = performance.now();
      const proof = await t.consistencyProof(lo, hi);
      cgen.push(performance.now() - a);
      maxCReads = Math.max(maxCReads, reads);
      expect(reads).toBeLessThan(64);
      verifyConsistency(lo, hi, roots.get(lo)!, roots.get(hi)!, proof);
    }
    await t.close();

    console.log(
      [
        `TreeStore ${N.toLocaleString('en')} leaves:`,
        `  appendLeafHashes total ${(storeMs / 1000).toFixed(2)} s (${((storeMs * 1000) / N).toFixed(2)} µs/leaf); whole build loop ${(buildMs / 1000).toFixed(2)} s incl. leaf hashing and a MerkleFrontier cross-check`,
        `  flush ${flushMs.toFixed(0)} ms; reopen ${openMs.toFixed(1)} ms`,
        `  heap growth while building ${((heap1 - heap0) / 2 ** 20).toFixed(1)} MiB (GC-dependent)`,
        `  inclusion proof generation (${gen.length}): ${stats(gen)}; max ${maxReads} hashes read`,
        `  inclusion proof verification: ${stats(ver)}`,
        `  consistency proof generation (${cgen.length}): ${stats(cgen)}; max ${maxCReads} hashes read; root(size) max ${maxRootReads} reads`,
      ].join('\n'),
    );
  });
});
