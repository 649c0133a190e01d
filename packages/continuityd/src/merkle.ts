/**
 * RFC 9162 §2.1 Merkle tree hashing, with the tree kept as its "frontier" (the roots of the
 * perfect subtrees that make up the left-to-right decomposition of the tree): O(log n)
 * work and state per append, no rebuild at start.
 */
import { concatBytes, getProvider, sha256Into, type CryptoProvider } from '@tibet/core';

const LEAF = Uint8Array.of(0x00);
const NODE = Uint8Array.of(0x01);

/** 0x00 ‖ entry, reused (grown as needed): public bytes, hashed at once. */
let leafInput = new Uint8Array(4096);

export function leafHash(entry: Uint8Array, p: CryptoProvider = getProvider()): Uint8Array {
  const out = new Uint8Array(32);
  leafHashInto(entry, out, 0, p);
  return out;
}

/** {@link leafHash} written into `out[at, at + 32)`. */
export function leafHashInto(
  entry: Uint8Array,
  out: Uint8Array,
  at: number,
  p: CryptoProvider = getProvider(),
): void {
  if (entry.length >= 1 << 16) {
    out.set(p.sha256(concatBytes(LEAF, entry)), at);
    return;
  }
  if (leafInput.length < entry.length + 1) leafInput = new Uint8Array(2 * entry.length + 1);
  leafInput[0] = 0x00;
  leafInput.set(entry, 1);
  sha256Into(leafInput.subarray(0, entry.length + 1), out, at, p);
}

/**
 * 0x01 ‖ left ‖ right, reused for every node hash: public bytes, hashed at once (a provider's
 * `sha256` returns a new array and does not keep its input).
 */
const nodeInput = new Uint8Array(65);
nodeInput[0] = 0x01;

export function nodeHash(
  left: Uint8Array,
  right: Uint8Array,
  p: CryptoProvider = getProvider(),
): Uint8Array {
  if (left.length !== 32 || right.length !== 32) return p.sha256(concatBytes(NODE, left, right));
  nodeInput.set(left, 1);
  nodeInput.set(right, 33);
  return p.sha256(nodeInput);
}

/** MTH of the empty tree: SHA-256 of the empty string. */
export function emptyRoot(p: CryptoProvider = getProvider()): Uint8Array {
  return p.sha256(new Uint8Array(0));
}

/**
 * The compact state of a tree of `size` leaves: one hash per set bit of `size`, from the
 * largest subtree (leftmost) to the smallest (rightmost).
 */
export class MerkleFrontier {
  constructor(
    public size = 0,
    public readonly hashes: Uint8Array[] = [],
    readonly provider: CryptoProvider = getProvider(),
  ) {
    if (popcount(size) !== hashes.length) throw new RangeError('frontier does not fit its size');
  }

  /** Add one leaf hash; O(log n). */
  push(leaf: Uint8Array): void {
    let h = leaf;
    let s = this.size;
    // merge while the lowest subtree is complete at this level
    while (s & 1) {
      h = nodeHash(this.hashes.pop()!, h, this.provider);
      s >>= 1;
    }
    this.hashes.push(h);
    this.size++;
  }

  /** The root hash (MTH) of the current tree. */
  root(): Uint8Array {
    if (this.size === 0) return emptyRoot(this.provider);
    let h = this.hashes[this.hashes.length - 1]!;
    for (let i = this.hashes.length - 2; i >= 0; i--)
      h = nodeHash(this.hashes[i]!, h, this.provider);
    return h;
  }

  clone(): MerkleFrontier {
    return new MerkleFrontier(
      this.size,
      this.hashes.map((h) => h.slice()),
      this.provider,
    );
  }
}

export function popcount(n: number): number {
  let c = 0;
  while (n > 0) {
    c += n % 2;
    n = Math.floor(n / 2);
  }
  return c;
}

/** MTH(D[n]) computed directly from leaf hashes (reference; O(n)). */
export function rootOf(
  leaves: readonly Uint8Array[],
  p: CryptoProvider = getProvider(),
): Uint8Array {
  const f = new MerkleFrontier(0, [], p);
  for (const l of leaves) f.push(l);
  return f.root();
}
