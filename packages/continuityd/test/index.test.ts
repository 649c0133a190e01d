import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  IdentityRegistry,
  canonicalize,
  getProvider,
  mintToken,
  toHex,
  utf8,
  type Identity,
  type TibetToken,
} from '@tibet/core';
import { manualClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  DirLock,
  MemoryIndex,
  type AppendOptions,
  type IndexedRecord,
  type LogIndex,
} from '@tibet/continuityd';
import { DiskIndex, type DiskIndexOptions } from '../src/disk-index.js';

const logKey = testIdentity('jis:acme:continuityd', 'system');
const people = ['alice', 'bob', 'carol', 'dave'].map((n) => testIdentity(`jis:acme:${n}`));
const registry = new IdentityRegistry();
for (const p of people) registry.add(p);

const dirs: string[] = [];
const abandoned: AuditLog[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tibet-index-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A DiskIndex that counts the records fed to it (what recovery replays). */
class CountingIndex extends DiskIndex {
  added = 0;
  override add(records: readonly IndexedRecord[]): void {
    this.added += records.length;
    super.add(records);
  }
}

interface Step {
  token: TibetToken;
  opts: AppendOptions;
}

/**
 * A random causal workload: tokens by several actors on several continuity lines (each
 * token's prev is the line's last token), a third of them with a parent on another line,
 * objects shared between lines or absent.
 */
function workload(seed: string, n: number, startAt = '2026-11-28T12:00:00.000Z'): Step[] {
  const random = seededRandom(seed);
  const pick = (k: number): number => {
    const b = random(4);
    return ((b[0]! | (b[1]! << 8) | (b[2]! << 16)) >>> 0) % k;
  };
  const clock = manualClock(startAt);
  const lines = Array.from({ length: 7 }, (_, i) => `line-${i}`);
  const last = new Map<string, TibetToken>();
  const all: TibetToken[] = [];
  const steps: Step[] = [];
  for (let i = 0; i < n; i++) {
    const line = lines[pick(lines.length)]!;
    const who: Identity = people[pick(people.length)]!;
    const parent = all.length && pick(3) === 0 ? all[pick(all.length)]! : null;
    const r = pick(10);
    const objectId = r < 6 ? `obj-${pick(12)}` : null;
    clock.advance(pick(4) * 250);
    const token = mintToken(
      {
        actor: who.id,
        actorClass: 'human',
        event: 'secret-proxied',
        erachter: `step ${i}`,
        prev: last.get(line) ?? null,
        parent: parent ? { action_id: parent.action_id, generation: parent.generation } : null,
      },
      who,
      { clock, random },
    );
    last.set(line, token);
    all.push(token);
    steps.push({ token, opts: { objectId, continuityId: line } });
  }
  return steps;
}

/** Append steps, some one by one and some in concurrent bursts (group commit). */
async function feed(log: AuditLog, steps: readonly Step[], seed: string): Promise<void> {
  const random = seededRandom(seed);
  let i = 0;
  while (i < steps.length) {
    const burst = 1 + (random(1)[0]! % 12);
    const group = steps.slice(i, i + burst);
    await Promise.all(group.map((s) => log.append(s.token, s.opts)));
    i += group.length;
  }
}

function keysOf(steps: readonly Step[]): {
  actions: string[];
  lines: string[];
  actors: string[];
  objects: string[];
} {
  return {
    actions: [
      ...steps.map((s) => s.token.action_id),
      'act_0000000000000000',
      'act_ffffffffffffffff',
    ],
    lines: [...new Set(steps.map((s) => s.opts.continuityId!)), 'line-none', 'jis:acme:alice'],
    actors: [...people.map((p) => p.id), 'jis:acme:nobody'],
    objects: [...Array.from({ length: 12 }, (_, i) => `obj-${i}`), 'obj-none'],
  };
}

function expectSameAnswers(mem: LogIndex, disk: LogIndex, steps: readonly Step[]): void {
  const k = keysOf(steps);
  expect(disk.indexedSize()).toBe(mem.indexedSize());
  for (const a of k.actions) expect(disk.action(a), a).toEqual(mem.action(a));
  for (const l of k.lines) expect(disk.lastOnLine(l), l).toEqual(mem.lastOnLine(l));
  for (const limit of [undefined, 0, 1, 3, 17, 1000]) {
    for (const a of k.actors) expect(disk.byActor(a, limit), a).toEqual(mem.byActor(a, limit));
    for (const o of k.objects) expect(disk.byObject(o, limit), o).toEqual(mem.byObject(o, limit));
  }
}

const small: DiskIndexOptions = { chunkRecords: 8, fanIn: 4 };

interface ManifestRun {
  name: string;
  level: number;
  start: number;
  count: number;
}

function manifestOf(
  dir: string,
): { format: string; runs: ManifestRun[] } & Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, 'index', 'MANIFEST.json'), 'utf8')) as {
    format: string;
    runs: ManifestRun[];
  };
}

/** Rewrite the manifest (with a valid checksum), as another version of the code could have. */
function rewriteManifest(dir: string, edit: (m: Record<string, unknown>) => void): void {
  const { checksum, ...body } = manifestOf(dir);
  void checksum;
  edit(body);
  const sum = toHex(getProvider().sha256(utf8(canonicalize(body))));
  writeFileSync(
    join(dir, 'index', 'MANIFEST.json'),
    JSON.stringify({ ...body, checksum: sum }, null, 1) + '\n',
  );
}

async function openPair(
  dirMem: string,
  dirDisk: string,
  opts: DiskIndexOptions = small,
  extra: { checkpointEvery?: number; segmentMaxBytes?: number } = {},
): Promise<{ mem: AuditLog; disk: AuditLog; index: CountingIndex }> {
  const clock = manualClock('2026-11-28T12:00:00.000Z');
  const mem = await AuditLog.open({ dir: dirMem, signer: logKey, registry, clock, ...extra });
  const index = new CountingIndex(dirDisk, opts);
  const disk = await AuditLog.open({
    dir: dirDisk,
    signer: logKey,
    registry,
    clock,
    index,
    ...extra,
  });
  return { mem, disk, index };
}

describe('DiskIndex', () => {
  it('answers exactly as MemoryIndex through the writer, across seals, merges and reopen', async () => {
    // the last case has merges of ~1,000 entries: each spans several add() calls, and
    // lookups meanwhile go to the level-0 runs being merged
    const cases: [string, number, DiskIndexOptions][] = [
      ['w1', 260, small],
      ['w2', 260, small],
      ['w3', 260, { chunkRecords: 5, fanIn: 3 }],
      ['w4', 700, { chunkRecords: 96, fanIn: 3 }],
      // level-1 runs of 8 records: level-2 merges into runs of up to 16 × 8, several of them
      ['w5', 700, { chunkRecords: 4, fanIn: 2 }],
    ];
    for (const [seed, count, opts] of cases) {
      const dm = tmp();
      const dd = tmp();
      const steps = workload(seed, count);
      let { mem, disk } = await openPair(dm, dd, opts, { checkpointEvery: 23 });
      // compare while writing: the writer relies on these answers synchronously
      for (let at = 0; at < steps.length; at += 65) {
        const part = steps.slice(at, at + 65);
        await feed(mem, part, `${seed}-feed-${at}`);
        await feed(disk, part, `${seed}-feed-${at}`);
        expectSameAnswers(mem.index, disk.index, steps.slice(0, at + 65));
      }
      expect(disk.root()).toEqual(mem.root());
      await mem.close();
      await disk.close();
      // level-2 runs cover whole level-1 spans, at most 16 of them, before the level-1 runs
      const span = opts.chunkRecords! * opts.fanIn!;
      const runs = manifestOf(dd).runs;
      const l2 = runs.filter((r) => r.level === 2);
      if (count / span >= 8) expect(l2.length, seed).toBeGreaterThan(0);
      if (count / span >= 40) expect(l2.length, seed).toBeGreaterThan(1);
      for (const r of l2) {
        expect(r.count % span).toBe(0);
        expect(r.count / span).toBeLessThanOrEqual(16);
      }
      expect(runs.map((r) => r.level)).toEqual(
        runs
          .map((r) => r.level)
          .sort()
          .reverse(),
      );
      expect(runs.filter((r) => r.level === 1).length).toBeLessThan(4);
      const reopened = await openPair(dm, dd, opts);
      mem = reopened.mem;
      disk = reopened.disk;
      expect(reopened.index.added).toBe(0);
      expectSameAnswers(mem.index, disk.index, steps);
      // and keeps going
      // more tokens on new lines (their prev chains start fresh)
      const more = workload(`${seed}-more`, 40, '2026-11-29T00:00:00.000Z').map((s) => ({
        token: s.token,
        opts: { ...s.opts, continuityId: `${s.opts.continuityId!}-b` },
      }));
      await feed(mem, more, 'x');
      await feed(disk, more, 'x');
      expectSameAnswers(mem.index, disk.index, [...steps, ...more]);
      await mem.close();
      await disk.close();
    }
  });

  it('works with the default sizes (one open chunk, no seal) and a MemoryIndex reference', async () => {
    const dd = tmp();
    const steps = workload('defaults', 120);
    const index = new DiskIndex(dd);
    const disk = await AuditLog.open({
      dir: dd,
      signer: logKey,
      registry,
      clock: manualClock('2026-11-28T12:00:00.000Z'),
      index,
    });
    await feed(disk, steps, 'f');
    const ref = new MemoryIndex();
    // the reference is fed what the writer would have fed it
    const recs: IndexedRecord[] = [];
    for (let i = 0; i < steps.length; i++) {
      const r = await disk.readRecord(i);
      recs.push({
        index: i,
        generation: r.token.generation,
        tokenHash: index.action(r.token.action_id)!.tokenHash,
        actionId: r.token.action_id,
        actor: r.token.actor,
        objectId: r.causal.object_id,
        continuityId: r.causal.continuity_id,
        receivedAt: Date.parse(r.received_at),
        leafHash: new Uint8Array(32),
      });
    }
    ref.add(recs);
    expectSameAnswers(ref, index, steps);
    await disk.close();
  });

  it('after a crash replays only what the last flush did not cover', async () => {
    const dd = tmp();
    const dm = tmp();
    const steps = workload('crash', 150);
    const { mem, disk } = await openPair(dm, dd, small, { checkpointEvery: 0 });
    await feed(disk, steps.slice(0, 100), 'a');
    await disk.checkpoint(); // flushes the index: 100 records durable
    await feed(disk, steps.slice(100), 'b'); // durable in the log, not in the index
    // the process dies here: no close, no flush. Take the lock over as a restart would.
    abandoned.push(disk); // (kept referenced: its file handle is never closed)
    unlinkSync(join(dd, 'LOCK'));
    const index = new CountingIndex(dd, small);
    const again = await AuditLog.open({ dir: dd, signer: logKey, registry, index });
    expect(again.size).toBe(150);
    expect(index.added).toBe(50);
    await feed(mem, steps, 'm');
    expectSameAnswers(mem.index, again.index, steps);
    await again.close();
    await mem.close();
  });

  it('rebuilds a deleted, damaged or foreign index from the log', async () => {
    const dm = tmp();
    const dd = tmp();
    const steps = workload('damage', 120);
    const { mem, disk } = await openPair(dm, dd, small, { checkpointEvery: 0 });
    await feed(mem, steps, 'a');
    await feed(disk, steps, 'a');
    await disk.close();
    const indexDir = join(dd, 'index');
    const runFile = (): string => readdirSync(indexDir).find((n) => n.startsWith('L1-'))!;

    const damages: [string, () => void, RegExp | undefined][] = [
      ['deleted', () => rmSync(indexDir, { recursive: true }), undefined],
      [
        'bit flip in a run',
        () => {
          const p = join(indexDir, runFile());
          const b = readFileSync(p);
          b[b.length - 10]! ^= 0x40;
          writeFileSync(p, b);
        },
        /checksum/,
      ],
      ['run missing', () => unlinkSync(join(indexDir, runFile())), /ENOENT|no such file/],
      [
        'garbage manifest',
        () => writeFileSync(join(indexDir, 'MANIFEST.json'), '{"format":'),
        /JSON/,
      ],
      ['offsets cut', () => truncateSync(join(indexDir, 'offsets.bin'), 100), /offsets/],
      [
        'times damaged',
        () => {
          const p = join(indexDir, 'times.bin');
          const b = readFileSync(p);
          b[3]! ^= 1;
          writeFileSync(p, b);
        },
        /times/,
      ],
      [
        'manifest edited',
        () => {
          const p = join(indexDir, 'MANIFEST.json');
          writeFileSync(p, readFileSync(p, 'utf8').replace(/"size": \d+/, '"size": 3'));
        },
        /checksum/,
      ],
    ];
    for (const [what, damage, reason] of damages) {
      damage();
      const reasons: string[] = [];
      const index = new CountingIndex(dd, { ...small, onRebuild: (r) => reasons.push(r) });
      const log = await AuditLog.open({ dir: dd, signer: logKey, registry, index });
      expect(index.added, what).toBe(120);
      if (reason) expect(reasons.join(), what).toMatch(reason);
      else expect(reasons, what).toEqual([]);
      expectSameAnswers(mem.index, log.index, steps);
      await log.close();
      const clean = new CountingIndex(dd, small);
      const log2 = await AuditLog.open({ dir: dd, signer: logKey, registry, index: clean });
      expect(clean.added, `${what}: repaired`).toBe(0);
      await log2.close();
    }

    // an index copied from another log under the same key: the last-leaf check catches it
    const other = tmp();
    const o = await AuditLog.open({
      dir: other,
      signer: logKey,
      registry,
      index: new DiskIndex(other, small),
    });
    await feed(o, workload('other', 130), 'o');
    await o.close();
    rmSync(indexDir, { recursive: true });
    cpSync(join(other, 'index'), indexDir, { recursive: true });
    const reasons: string[] = [];
    const index = new CountingIndex(dd, { ...small, onRebuild: (r) => reasons.push(r) });
    const log = await AuditLog.open({ dir: dd, signer: logKey, registry, index });
    expect(reasons.join()).toMatch(/line 129|differs/);
    expect(index.added).toBe(120);
    expectSameAnswers(mem.index, log.index, steps);
    await log.close();
    await mem.close();
  });

  it('looks up postings within an index range', async () => {
    const dd = tmp();
    const steps = workload('range', 150);
    const index = new DiskIndex(dd, small);
    const log = await AuditLog.open({
      dir: dd,
      signer: logKey,
      registry,
      index,
      checkpointEvery: 40,
    });
    await feed(log, steps, 'r');
    const mem = new MemoryIndex();
    const k = keysOf(steps);
    const check = (d: DiskIndex): void => {
      const random = seededRandom('ranges');
      for (let n = 0; n < 400; n++) {
        const [a, b, c] = random(3);
        const from = a! % 160;
        const to = from + (b! % 60);
        const limit = c! % 3 === 0 ? undefined : c! % 9;
        const actor = k.actors[n % k.actors.length]!;
        const object = k.objects[n % k.objects.length]!;
        const want = (all: number[]): number[] =>
          all.filter((i) => i >= from && i < to).slice(0, limit ?? Infinity);
        const range = { fromIndex: from, toIndex: to, ...(limit === undefined ? {} : { limit }) };
        expect(d.lookup('actor', actor, range)).toEqual(want(mem.byActor(actor)));
        expect(d.lookup('object', object, range)).toEqual(want(mem.byObject(object)));
      }
    };
    // the reference: every record, as the writer fed it
    for (let i = 0; i < steps.length; i++) {
      const r = await log.readRecord(i);
      mem.add([
        {
          index: i,
          generation: r.token.generation,
          tokenHash: 'sha256:' + '0'.repeat(64),
          actionId: r.token.action_id,
          actor: r.token.actor,
          objectId: r.causal.object_id,
          continuityId: r.causal.continuity_id,
          receivedAt: Date.parse(r.received_at),
          leafHash: new Uint8Array(32),
        },
      ]);
    }
    check(index); // the writer's view: runs, open chunk
    await log.close();
    const reader = new DiskIndex(dd, { readOnly: true });
    check(reader); // a reader's view: runs and the partial run
    await reader.close();
  });

  it('serves a long-lived reader while the writer merges and deletes what it reads', async () => {
    const dm = tmp();
    const dd = tmp();
    const steps = workload('reader', 200);
    const { mem, disk } = await openPair(
      dm,
      dd,
      { chunkRecords: 4, fanIn: 4 },
      { checkpointEvery: 5 },
    );
    await feed(mem, steps.slice(0, 70), 'a');
    await feed(disk, steps.slice(0, 70), 'a');
    await disk.checkpoint();
    const reader = new DiskIndex(dd, { readOnly: true });
    expect(reader.indexedSize()).toBe(70);
    const before = readdirSync(join(dd, 'index')).filter(
      (n) => n.startsWith('L0-') || n.startsWith('P-'),
    );
    expect(before.length).toBeGreaterThan(0);
    // 130 more: level-0 runs merged away and deleted, partial runs replaced, the manifest
    // replaced a few dozen times
    await feed(disk, steps.slice(70), 'b');
    await disk.checkpoint();
    const after = readdirSync(join(dd, 'index'));
    expect(before.filter((n) => after.includes(n))).toEqual([]);
    // the reader still answers for what it saw (its files stay open)
    expectSameAnswers(mem.index, reader, steps.slice(0, 70));
    for (let i = 0; i < 70; i++) expect((await reader.readRecordAt(i)).index).toBe(i);
    await reader.close();
    // and a new reader sees everything
    await feed(mem, steps.slice(70), 'b');
    const fresh = new DiskIndex(dd, { readOnly: true });
    expectSameAnswers(mem.index, fresh, steps);
    await fresh.close();
    await disk.close();
    await mem.close();
  });

  it('reads any record with one positioned read, across segments', async () => {
    const dd = tmp();
    const steps = workload('read', 90);
    const reads: number[] = [];
    const index = new DiskIndex(dd, { ...small, onLineRead: (i) => reads.push(i) });
    const log = await AuditLog.open({
      dir: dd,
      signer: logKey,
      registry,
      index,
      segmentMaxBytes: 6000,
      checkpointEvery: 0,
    });
    await feed(log, steps, 'r');
    await log.checkpoint();
    expect(readdirSync(join(dd, 'segments')).length).toBeGreaterThan(5);
    for (let i = 0; i < steps.length; i++) {
      reads.length = 0;
      expect(await index.readRecordAt(i)).toEqual(await log.readRecord(i));
      expect(reads).toEqual([i]);
    }
    // many lines at once: the same bytes, one at a time or issued together (neighbours in
    // one read), in the order asked, repeats included
    const together = new DiskIndex(dd, { readOnly: true, readsTogether: true });
    const reader = new DiskIndex(dd, { readOnly: true });
    const random = seededRandom('lines');
    for (let n = 0; n < 30; n++) {
      const want = Array.from(random(1 + (n % 25)), (b) => b % steps.length);
      if (n % 3 === 0) want.push(...Array.from({ length: 12 }, (_, k) => (n + k) % steps.length));
      const one = want.map((i) => Buffer.from(index.lineAt(i)));
      reads.length = 0;
      expect((await index.linesAt(want)).map((l) => Buffer.from(l))).toEqual(one);
      expect([...reads].sort((a, b) => a - b)).toEqual([...want].sort((a, b) => a - b));
      expect((await together.linesAt(want)).map((l) => Buffer.from(l))).toEqual(one);
      expect((await reader.linesAt(want)).map((l) => Buffer.from(l))).toEqual(one);
    }
    expect(await index.linesAt([])).toEqual([]);
    await expect(together.linesAt([0, steps.length])).rejects.toThrow(/no indexed line/);
    await expect(together.linesAt([-1])).rejects.toThrow(/no indexed line/);
    await log.close();
    // a line that does not end where the index says is refused, on either path
    const seg = join(dd, 'segments', readdirSync(join(dd, 'segments')).sort()[0]!);
    const text = readFileSync(seg);
    const nl = text.indexOf(0x0a);
    text[nl] = 0x20;
    writeFileSync(seg, text);
    for (const r of [reader, together])
      await expect(r.linesAt([1, 0, 2])).rejects.toThrow(/does not end where the index says/);
    await reader.close();
    await together.close();
  });

  it('keeps a writer flat: in memory only the open chunk', async () => {
    const dd = tmp();
    const index = new DiskIndex(dd, { chunkRecords: 16, fanIn: 4 });
    const log = await AuditLog.open({
      dir: dd,
      signer: logKey,
      registry,
      index,
      clock: manualClock('2026-11-28T12:00:00.000Z'),
    });
    await feed(log, workload('flat', 200), 'f');
    const s = index.stats;
    expect(s.size).toBe(200);
    expect(s.inMemory).toBeLessThan(16);
    expect(s.runs).toBeLessThanOrEqual(200 / 64 + 4);
    await log.close();
    expect(existsSync(join(dd, 'index', 'MANIFEST.json'))).toBe(true);
    // close finished any merge in progress: fewer than fanIn level-0 runs are left
    const files = readdirSync(join(dd, 'index'));
    expect(files.filter((f) => f.startsWith('L0-')).length).toBeLessThan(4);
    expect(files.filter((f) => f.startsWith('L1-')).length).toBe(3);
  });

  it('finishes a merge in progress at close, and commits it', async () => {
    const dd = tmp();
    const dm = tmp();
    const opts = { chunkRecords: 64, fanIn: 4 };
    const { mem, disk, index } = await openPair(dm, dd, opts, { checkpointEvery: 50 });
    const steps = workload('closing', 256);
    await feed(mem, steps, 'c');
    // one append per batch: the seal of the 4th level-0 run (record 255) starts a merge of
    // ~400 entries and advances it by one step of 256 only
    for (const s of steps) await disk.append(s.token, s.opts);
    expect(index.stats.runs).toBe(4);
    await disk.close();
    const files = readdirSync(join(dd, 'index'));
    expect(files.filter((f) => f.startsWith('L1-'))).toEqual(['L1-0000000000000000.run']);
    expect(files.filter((f) => f.startsWith('L0-'))).toEqual([]);
    const again = new CountingIndex(dd, opts);
    const log = await AuditLog.open({ dir: dd, signer: logKey, registry, index: again });
    expect(again.added).toBe(0);
    expect(again.stats.runs).toBe(1);
    expectSameAnswers(mem.index, again, steps);
    await log.close();
    await mem.close();
  });

  it('merges like MemoryIndex answers when keys repeat across runs (latest wins)', async () => {
    // the writer refuses duplicate action ids, but recover() feeds whatever the log holds
    const dd = tmp();
    const lock = await DirLock.acquire(dd, 'test');
    const random = seededRandom('dups');
    const ids = Array.from({ length: 40 }, () => `act_${Buffer.from(random(8)).toString('hex')}`);
    const recs: IndexedRecord[] = Array.from({ length: 900 }, (_, i) => {
      const r = random(4);
      return {
        index: i,
        generation: 1 + r[0]!,
        tokenHash: `sha256:${Buffer.from(random(32)).toString('hex')}`,
        actionId: ids[r[1]! % ids.length]!,
        actor: people[r[2]! % people.length]!.id,
        objectId: r[3]! % 4 === 0 ? null : `obj-${r[3]! % 30}`,
        continuityId: `line-${r[2]! % 25}`,
        receivedAt: i,
        leafHash: new Uint8Array(32),
      };
    });
    const mem = new MemoryIndex();
    const disk = new DiskIndex(dd, { chunkRecords: 16, fanIn: 5 });
    for (let i = 0; i < recs.length; i += 7) {
      mem.add(recs.slice(i, i + 7));
      disk.add(recs.slice(i, i + 7));
    }
    for (const id of ids) expect(disk.action(id), id).toEqual(mem.action(id));
    for (let l = 0; l < 25; l++)
      expect(disk.lastOnLine(`line-${l}`)).toEqual(mem.lastOnLine(`line-${l}`));
    for (const p of people) expect(disk.byActor(p.id)).toEqual(mem.byActor(p.id));
    for (let o = 0; o < 30; o++)
      expect(disk.byObject(`obj-${o}`)).toEqual(mem.byObject(`obj-${o}`));
    expect(disk.stats.runs).toBeLessThan(900 / 80 + 5); // merged
    await disk.close();
    await lock.release();
  });

  it('reads an index of the previous format, and brings it up to date as the writer', async () => {
    const dd = tmp();
    const dm = tmp();
    const steps = workload('format-1', 100);
    const first = await openPair(dm, dd, small, { checkpointEvery: 0 });
    const mem = first.mem;
    let disk = first.disk;
    await feed(mem, steps, 'a');
    await feed(disk, steps, 'a'); // three level-1 spans: no level-2 run yet
    await disk.close();
    expect(manifestOf(dd).runs.some((r) => r.level === 2)).toBe(false);
    rewriteManifest(dd, (m) => (m['format'] = 'tibet-log-index/1'));
    const reader = new DiskIndex(dd, { readOnly: true });
    expectSameAnswers(mem.index, reader, steps);
    await reader.close();
    // the writer takes it as it is (nothing replayed) and writes the new format
    const reopened = await openPair(tmp(), dd, small, { checkpointEvery: 0 });
    await reopened.mem.close();
    disk = reopened.disk;
    expect(reopened.index.added).toBe(0);
    const more = workload('format-1b', 60, '2026-11-29T00:00:00.000Z').map((s) => ({
      token: s.token,
      opts: { ...s.opts, continuityId: `${s.opts.continuityId!}-b` },
    }));
    await feed(mem, more, 'b');
    await feed(disk, more, 'b');
    await disk.close();
    const m = manifestOf(dd);
    expect(m.format).toBe('tibet-log-index/2');
    expect(m.runs.some((r) => r.level === 2)).toBe(true);
    const fresh = new DiskIndex(dd, { readOnly: true });
    expectSameAnswers(mem.index, fresh, [...steps, ...more]);
    await fresh.close();
    // a level-2 run is not something the previous format can name: damage, rebuilt
    rewriteManifest(dd, (x) => (x['format'] = 'tibet-log-index/1'));
    expect(() => new DiskIndex(dd, { readOnly: true }).indexedSize()).toThrow(/run 0 is malformed/);
    const reasons: string[] = [];
    const rebuilt = new CountingIndex(dd, { ...small, onRebuild: (r) => reasons.push(r) });
    const again = await AuditLog.open({ dir: dd, signer: logKey, registry, index: rebuilt });
    expect(reasons).toEqual([expect.stringMatching(/run 0 is malformed/)]);
    expect(rebuilt.added).toBe(160);
    expectSameAnswers(mem.index, again.index, [...steps, ...more]);
    await again.close();
    await mem.close();
  });

  it('after a crash during a level-2 merge: its temporary files go, its parts still answer', async () => {
    const dd = tmp();
    const dm = tmp();
    const opts = { chunkRecords: 16, fanIn: 2 };
    const { mem, disk } = await openPair(dm, dd, opts, { checkpointEvery: 0 });
    const steps = workload('l2-crash', 140);
    await feed(mem, steps.slice(0, 129), 'm');
    // one record per add(): the 4th level-1 run (record 127) starts a level-2 merge of
    // ~600 entries, advanced by two steps of 256 per add
    for (const s of steps.slice(0, 129)) await disk.append(s.token, s.opts);
    await disk.checkpoint();
    const files = readdirSync(join(dd, 'index'));
    expect(files.some((f) => /^L2-.*\.tmp-\d+$/.test(f))).toBe(true);
    expect(manifestOf(dd).runs.filter((r) => r.level === 1).length).toBe(4);
    // the process dies here
    abandoned.push(disk);
    unlinkSync(join(dd, 'LOCK'));
    const index = new CountingIndex(dd, opts);
    const again = await AuditLog.open({ dir: dd, signer: logKey, registry, index });
    expect(index.added).toBe(0);
    expect(readdirSync(join(dd, 'index')).filter((f) => f.includes('.tmp'))).toEqual([]);
    expectSameAnswers(mem.index, again.index, steps.slice(0, 129));
    await feed(mem, steps.slice(129), 'n');
    for (const s of steps.slice(129)) await again.append(s.token, s.opts);
    await again.close(); // finishes the merge it restarted
    expect(manifestOf(dd).runs.map((r) => r.name)).toEqual([
      'L2-0000000000000000-128.run',
      'P-0000000000000128-12.run',
    ]);
    const fresh = new DiskIndex(dd, { readOnly: true });
    expectSameAnswers(mem.index, fresh, steps);
    await fresh.close();
    await mem.close();
  });

  it('refuses bad arguments', () => {
    expect(() => new DiskIndex('')).toThrow(TypeError);
    expect(() => new DiskIndex('/x', { chunkRecords: 1 })).toThrow(RangeError);
    expect(() => new DiskIndex('/x', { fanIn: 1 })).toThrow(RangeError);
    const d = tmp();
    // a writable index outside the writer lock would fight the writer for index/
    expect(() => new DiskIndex(d).indexedSize()).toThrow(/writer lock/);
    const idx = new DiskIndex(d, { readOnly: true });
    expect(idx.indexedSize()).toBe(0);
    expect(() => idx.byActor('jis:acme:alice', -1)).toThrow(RangeError);
    expect(() => idx.add([])).toThrow(TypeError);
  });
});
