/**
 * The node store beside a real AuditLog: observer feed, reopen, recovery from a deleted tree
 * folder, a truncated level file, unsynced bytes past the head, and a store that does not
 * belong to the log; then proofs exported from the folder and verified offline.
 */
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry, mintToken, type TibetToken } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import { parseCheckpoint } from '../src/checkpoint.js';
import { AuditLog } from '../src/log.js';
import { leafHash } from '../src/merkle.js';
import {
  exportTlogProof,
  readLogLine,
  verifyConsistency,
  verifyInclusion,
  verifyTlogProof,
} from '../src/proof.js';
import { TreeStore, levelFileName } from '../src/tree-store.js';

const logKey = testIdentity('jis:acme:continuityd', 'system');
const alice = testIdentity('jis:acme:alice', 'human');
const registry = new IdentityRegistry();
registry.add(alice);
const clock = fixedClock('2026-11-28T12:00:00.000Z');
const ORIGIN = `${logKey.id}/log`;
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tibet-tree-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const tokens = ((): TibetToken[] => {
  const random = seededRandom('tree-store');
  const out: TibetToken[] = [];
  for (let i = 0; i < 80; i++) {
    out.push(
      mintToken(
        {
          actor: alice.id,
          actorClass: 'human',
          event: 'secret-proxied',
          erachter: `use ${i}`,
          prev: out[i - 1] ?? null,
        },
        alice,
        { clock, random },
      ),
    );
  }
  return out;
})();

async function openLog(
  dir: string,
  extra: { checkpointEvery?: number; bufferHashes?: number } = {},
): Promise<{ log: AuditLog; tree: TreeStore }> {
  const tree = await TreeStore.openForLog(dir, { bufferHashes: extra.bufferHashes ?? 5 });
  const log = await AuditLog.open({
    dir,
    signer: logKey,
    registry,
    clock,
    segmentMaxBytes: 6000,
    checkpointEvery: extra.checkpointEvery ?? 0,
    observers: [tree],
  });
  return { log, tree };
}

/** Every record of the log proves against the latest checkpoint, both from the store and as
 *  an exported tlog-proof verified offline. */
async function checkAll(dir: string, tree?: TreeStore): Promise<void> {
  const cps = readdirSync(join(dir, 'checkpoints')).sort();
  const cp = parseCheckpoint(readFileSync(join(dir, 'checkpoints', cps[cps.length - 1]!), 'utf8'));
  for (let i = 0; i < cp.size; i++) {
    const text = await exportTlogProof(dir, i, tree ? { tree } : {});
    const entry = await readLogLine(dir, i);
    const v = verifyTlogProof(text, {
      entry,
      logKeyName: ORIGIN,
      logPublicKey: logKey.signingPublicKey,
    });
    expect(v.size).toBe(cp.size);
  }
}

describe('TreeStore as an AuditLog observer', () => {
  it('tracks the log: roots, proofs, checkpoints, reopen', async () => {
    const dir = tmp();
    const { log, tree } = await openLog(dir, { checkpointEvery: 10 });
    expect(tree.indexedSize()).toBe(0);
    for (const t of tokens.slice(0, 45)) await log.append(t);
    expect(tree.size).toBe(45);
    expect(await tree.root(45)).toEqual(log.root());
    // checkpoints flushed the store: it declares durable what the last checkpoint covered
    expect(tree.indexedSize()).toBeGreaterThanOrEqual(40);
    const cps = readdirSync(join(dir, 'checkpoints')).sort();
    expect(cps.length).toBeGreaterThanOrEqual(4);
    const notes = cps.map((n) =>
      parseCheckpoint(readFileSync(join(dir, 'checkpoints', n), 'utf8')),
    );
    for (const c of notes) expect(await tree.root(c.size)).toEqual(c.rootHash);
    // consistency between every pair of checkpoints
    for (const a of notes)
      for (const b of notes)
        if (a.size <= b.size)
          verifyConsistency(
            a.size,
            b.size,
            a.rootHash,
            b.rootHash,
            await tree.consistencyProof(a.size, b.size),
          );
    // the live store (with unsynced entries) can serve exports while the log is open
    await checkAll(dir, tree);
    await log.close();

    const again = await openLog(dir);
    expect(again.tree.indexedSize()).toBe(45);
    expect(again.tree.size).toBe(45);
    for (const t of tokens.slice(45, 50)) await again.log.append(t);
    const cp = await again.log.checkpoint();
    expect(await again.tree.root(50)).toEqual(again.log.root());
    const leaf = leafHash(await readLogLine(dir, 47));
    verifyInclusion(leaf, 47, 50, await again.tree.inclusionProof(47, 50), cp.rootHash);
    await again.log.close();
    // closed log: read-only export from the folder
    await checkAll(dir);
  });

  it('export says clearly when no checkpoint covers the record', async () => {
    const dir = tmp();
    const { log } = await openLog(dir);
    for (const t of tokens.slice(0, 3)) await log.append(t);
    await expect(exportTlogProof(dir, 0)).rejects.toThrow(/no checkpoint/);
    await log.checkpoint();
    await log.append(tokens[3]!);
    await expect(exportTlogProof(dir, 3)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(exportTlogProof(dir, 3)).rejects.toThrow(
      /record 3 is not covered by the latest checkpoint \(tree size 3\)/,
    );
    await log.close();
    await expect(exportTlogProof(dir, 2)).resolves.toMatch(/^c2sp\.org\/tlog-proof@v1\nindex 2\n/);
  });

  it('rebuilds from the log after the tree folder is deleted', async () => {
    const dir = tmp();
    const first = await openLog(dir);
    for (const t of tokens.slice(0, 30)) await first.log.append(t);
    await first.log.checkpoint();
    const root = first.log.root();
    await first.log.close();
    rmSync(join(dir, 'tree'), { recursive: true });
    await expect(exportTlogProof(dir, 1)).rejects.toThrow(/holds 0 leaves/);

    const { log, tree } = await openLog(dir);
    expect(tree.size).toBe(30);
    expect(tree.indexedSize()).toBe(0); // replayed, not yet synced
    expect(await tree.root(30)).toEqual(root);
    await log.close();
    const t2 = await TreeStore.openForLog(dir);
    expect(t2.indexedSize()).toBe(30);
    await t2.close();
    await checkAll(dir);
  });

  it('recovers after a level file is truncated or has unsynced bytes past the head', async () => {
    const dir = tmp();
    const first = await openLog(dir);
    for (const t of tokens.slice(0, 37)) await first.log.append(t);
    await first.log.checkpoint();
    const root = first.log.root();
    await first.log.close();

    // level 2 (subtrees of 4 leaves) cut to 3 entries and a half: only 15 leaves stay backed
    truncateSync(join(dir, 'tree', levelFileName(2)), 3 * 32 + 16);
    // level 0 gets bytes past the durable head (as after a crash between write and sync)
    appendFileSync(join(dir, 'tree', levelFileName(0)), new Uint8Array(32 * 3 + 7).fill(0xee));
    const t = await TreeStore.openForLog(dir);
    expect(t.indexedSize()).toBe(15);
    expect(statSync(join(dir, 'tree', levelFileName(0))).size).toBe(15 * 32);
    expect(statSync(join(dir, 'tree', levelFileName(2))).size).toBe(3 * 32);
    expect(statSync(join(dir, 'tree', levelFileName(3))).size).toBe(1 * 32);
    expect(statSync(join(dir, 'tree', levelFileName(5))).size).toBe(0);
    await t.close();

    const { log, tree } = await openLog(dir);
    expect(tree.size).toBe(37);
    expect(await tree.root(37)).toEqual(root);
    for (const tok of tokens.slice(37, 41)) await log.append(tok);
    await log.checkpoint();
    expect(await tree.root(41)).toEqual(log.root());
    await log.close();
    await checkAll(dir);
  });

  it('starts over when the files do not match head.json; export catches other damage', async () => {
    const dir = tmp();
    const first = await openLog(dir);
    for (const t of tokens.slice(0, 12)) await first.log.append(t);
    await first.log.checkpoint();
    await first.log.close();
    const flip = (level: number, byte: number): void => {
      const p = join(dir, 'tree', levelFileName(level));
      const bytes = readFileSync(p);
      bytes[byte] = bytes[byte]! ^ 1;
      truncateSync(p, 0);
      appendFileSync(p, bytes);
    };
    // an interior node (level 2 entry 1, leaves 4..7) is not checked at open, but every
    // export checks its proof against the signed checkpoint
    flip(2, 40);
    await expect(exportTlogProof(dir, 0)).rejects.toMatchObject({ code: 'ROOT_MISMATCH' });
    await expect(exportTlogProof(dir, 3)).rejects.toMatchObject({ code: 'ROOT_MISMATCH' });
    // proofs that do not use that node are still right
    for (const i of [4, 5, 9]) await expect(exportTlogProof(dir, i)).resolves.toMatch(/^c2sp/);
    // a frontier node (level 2 entry 2, leaves 8..11) no longer gives the head's root: the
    // store starts over and the log replays it
    flip(2, 72);
    const t = await TreeStore.openForLog(dir);
    expect(t.indexedSize()).toBe(0);
    await t.close();
    const { log, tree } = await openLog(dir);
    expect(await tree.root(12)).toEqual(log.root());
    await log.close();
    await checkAll(dir);
  });

  it('rewinds a store that does not belong to the log', async () => {
    const dir = tmp();
    const stray = await TreeStore.openForLog(dir);
    stray.appendLeafHashes(Array.from({ length: 10 }, (_, i) => leafHash(Uint8Array.of(i))));
    await stray.close();
    const { log, tree } = await openLog(dir);
    expect(tree.size).toBe(10); // the log is empty: nothing to compare yet
    for (const t of tokens.slice(0, 6)) await log.append(t);
    expect(tree.size).toBe(6);
    expect(tree.indexedSize()).toBe(0);
    expect(await tree.root(6)).toEqual(log.root());
    await log.checkpoint();
    expect(tree.indexedSize()).toBe(6);
    await log.close();
    await checkAll(dir);
  });

  it('a read-only store beside the writer sees only the durable head and changes nothing', async () => {
    const dir = tmp();
    const { log, tree } = await openLog(dir, { bufferHashes: 2 });
    for (const t of tokens.slice(0, 9)) await log.append(t);
    await log.checkpoint();
    for (const t of tokens.slice(9, 20)) await log.append(t);
    const sizeBefore = statSync(join(dir, 'tree', levelFileName(0))).size;
    expect(sizeBefore).toBeGreaterThan(9 * 32); // written out, not synced
    const ro = await TreeStore.openForLog(dir, { readOnly: true });
    expect(ro.size).toBe(9);
    expect(await ro.root(9)).toEqual(await tree.root(9));
    expect(statSync(join(dir, 'tree', levelFileName(0))).size).toBe(sizeBefore);
    expect(() => ro.add([])).toThrow(TypeError);
    await ro.close();
    // a second writer is refused
    await expect(TreeStore.openForLog(dir)).rejects.toMatchObject({ code: 'LOCKED' });
    await log.close();
  });

  it('verifyTlogProof refuses ambiguous options and a checkpoint of another origin', async () => {
    const dir = tmp();
    const { log } = await openLog(dir);
    for (const t of tokens.slice(0, 3)) await log.append(t);
    await log.checkpoint();
    await log.close();
    const text = await exportTlogProof(dir, 1);
    const entry = await readLogLine(dir, 1);
    const base = { logKeyName: ORIGIN, logPublicKey: logKey.signingPublicKey };
    expect(() => verifyTlogProof(text, base)).toThrow(TypeError);
    expect(() => verifyTlogProof(text, { ...base, entry, leafHash: leafHash(entry) })).toThrow(
      TypeError,
    );
    expect(() => verifyTlogProof(text, { ...base, entry, origin: 'other/log' })).toThrow(
      expect.objectContaining({ code: 'PROOF_INVALID' }) as Error,
    );
    expect(verifyTlogProof(text, { ...base, entry, origin: null }).index).toBe(1);
  });
});
