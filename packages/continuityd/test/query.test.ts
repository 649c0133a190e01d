import {
  cpSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry, mintToken, type Clock, type TibetToken } from '@tibet/core';
import { manualClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  ContinuityError,
  type AppendOptions,
  type AuditLogOptions,
  type LogRecord,
} from '@tibet/continuityd';
import { DiskIndex } from '../src/disk-index.js';
import { queryLog, tailLog, type LogHit, type LogQuery } from '../src/query.js';

const logKey = testIdentity('jis:acme:continuityd', 'system');
const people = ['alice', 'bob', 'carol'].map((n) => testIdentity(`jis:acme:${n}`));
const registry = new IdentityRegistry();
for (const p of people) registry.add(p);

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tibet-query-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Step {
  token: TibetToken;
  opts: AppendOptions;
  /** When the log receives it (ms): the log's clock is set to this before the append. */
  at: number;
}

function picker(seed: string): (k: number) => number {
  const random = seededRandom(seed);
  return (k) => {
    const b = random(4);
    return ((b[0]! | (b[1]! << 8) | (b[2]! << 16)) >>> 0) % k;
  };
}

/** Tokens on a few lines with cross-line parents; the clock moves 0–3 × 250 ms per token. */
function workload(
  seed: string,
  n: number,
  clock = manualClock('2026-11-28T12:00:00.000Z'),
): Step[] {
  const pick = picker(seed);
  const random = seededRandom(`${seed}-mint`);
  const last = new Map<string, TibetToken>();
  const all: TibetToken[] = [];
  const out: Step[] = [];
  for (let i = 0; i < n; i++) {
    const who = people[pick(people.length)]!;
    const objectId = pick(4) === 0 ? null : `obj-${pick(9)}`;
    const line = `${seed}-line-${pick(5)}`;
    const parent = all.length && pick(3) === 0 ? all[pick(all.length)]! : null;
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
    out.push({ token, opts: { objectId, continuityId: line }, at: clock.now().getTime() });
  }
  return out;
}

/** Append in order, the log's clock at each step's time. */
async function appendAll(
  log: AuditLog,
  clock: ReturnType<typeof manualClock>,
  steps: readonly Step[],
): Promise<void> {
  for (const s of steps) {
    clock.set(new Date(s.at));
    await log.append(s.token, s.opts);
  }
}

/** What a query must return, by brute force over every record. */
function expected(all: readonly LogRecord[], q: LogQuery, upTo = all.length): number[] {
  const t = (v: LogQuery['from']): number | undefined =>
    v === undefined
      ? undefined
      : v instanceof Date
        ? v.getTime()
        : typeof v === 'string'
          ? Date.parse(v)
          : v;
  const from = t(q.from);
  const to = t(q.to);
  const out: number[] = [];
  for (const r of all.slice(0, upTo)) {
    const at = Date.parse(r.received_at);
    if (q.actionId !== undefined && r.causal.action_id !== q.actionId) continue;
    if (q.objectId !== undefined && r.causal.object_id !== q.objectId) continue;
    if (q.actor !== undefined && r.causal.actor_id !== q.actor) continue;
    if (from !== undefined && at < from) continue;
    if (to !== undefined && at >= to) continue;
    if (q.fromIndex !== undefined && r.index < q.fromIndex) continue;
    out.push(r.index);
  }
  return out.slice(0, q.limit ?? Infinity);
}

/** A writer with a persisted index of small runs (`chunkRecords` lines, merged `fanIn` at a time). */
function openIndexed(
  dir: string,
  clock: Clock,
  chunkRecords: number,
  fanIn: number,
  more: Partial<AuditLogOptions> = {},
): Promise<AuditLog> {
  return AuditLog.open({
    dir,
    signer: logKey,
    registry,
    clock,
    ...more,
    index: new DiskIndex(dir, { chunkRecords, fanIn }),
  });
}

async function collect(it: AsyncIterable<LogHit>): Promise<LogHit[]> {
  const out: LogHit[] = [];
  for await (const h of it) out.push(h);
  return out;
}

describe('queryLog', () => {
  it('returns exactly the matching records, beside a writer with an unflushed tail', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('q', 340);
    const log = await openIndexed(dir, clock, 16, 4, {
      checkpointEvery: 0,
      segmentMaxBytes: 40_000,
    });
    await appendAll(log, clock, steps.slice(0, 300));
    await log.checkpoint(); // index flushed at 300
    await appendAll(log, clock, steps.slice(300)); // 40 unindexed lines
    const all: LogRecord[] = [];
    for (let i = 0; i < log.size; i++) all.push(await log.readRecord(i));

    const pick = picker('queries');
    const times = all.map((r) => r.received_at);
    expect(new Set(times).size).toBeGreaterThan(200); // times vary (and repeat)
    expect(new Set(times).size).toBeLessThan(340);
    for (let n = 0; n < 250; n++) {
      const q: LogQuery = {};
      const r = all[pick(all.length)]!;
      if (pick(5) === 0) q.actionId = pick(8) ? r.causal.action_id : 'act_0123456789abcdef';
      if (pick(2) === 0) q.objectId = `obj-${pick(10)}`;
      if (pick(2) === 0) q.actor = people[pick(3)]!.id;
      if (pick(2) === 0) {
        const a = pick(times.length);
        const b = Math.min(times.length - 1, a + pick(60));
        const form = pick(3);
        const conv = (s: string): Date | string | number =>
          form === 0 ? s : form === 1 ? new Date(s) : Date.parse(s);
        if (pick(3)) q.from = conv(times[a]!);
        if (pick(3)) q.to = conv(times[b]!);
      }
      if (pick(4) === 0) q.fromIndex = pick(all.length + 5);
      if (pick(2) === 0) q.limit = pick(12);
      const reads: number[] = [];
      const got = await queryLog(dir, q, { onLineRead: (i) => reads.push(i) });
      expect(
        got.map((h) => h.index),
        JSON.stringify(q),
      ).toEqual(expected(all, q));
      for (const h of got) expect(h.record).toEqual(all[h.index]);
      // the indexed part costs the matches plus a few lines per time bound
      const indexedReads = reads.filter((i) => i < 300);
      const matchesIndexed = got.filter((h) => h.index < 300).length;
      const keyed = q.actionId ?? q.objectId ?? q.actor;
      if (keyed)
        expect(indexedReads.length, JSON.stringify(q)).toBeLessThanOrEqual(matchesIndexed + 16);
      // a time bound costs ≤ log2(16) + 2 lines through times.bin, plus the line that ends the range
      else if (q.from !== undefined && (q.fromIndex ?? 0) === 0)
        expect(indexedReads.length, JSON.stringify(q)).toBeLessThanOrEqual(matchesIndexed + 7);

      const indexedOnly = await queryLog(dir, q, { unindexed: false });
      expect(indexedOnly.map((h) => h.index)).toEqual(expected(all, q, 300));
    }
    await log.close();
  });

  it('scans the whole log when there is no index yet, and refuses bad queries', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('noindex', 40);
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock });
    await appendAll(log, clock, steps);
    await log.close();
    const hits = await queryLog(dir, { actor: people[0]!.id });
    expect(hits.length).toBe(steps.filter((s) => s.token.actor === people[0]!.id).length);
    await expect(queryLog(dir, { actionId: 'nope' })).rejects.toThrow(TypeError);
    await expect(queryLog(dir, { limit: -1 })).rejects.toThrow(/limit/);
    await expect(queryLog(dir, { from: '2026-13-01T00:00:00Z' })).rejects.toThrow(/from/);
    expect(await queryLog(dir, { limit: 0 })).toEqual([]);
  });

  it('keeps one reader per folder open across queries, and replaces it when the index changes', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('shared', 120);
    const log = await openIndexed(dir, clock, 8, 2, { checkpointEvery: 0 });
    await appendAll(log, clock, steps.slice(0, 60));
    await log.checkpoint();
    const seg = readFileSync(join(dir, 'segments', '0000000000000000.jsonl'));
    const lines = seg.toString('utf8').split('\n');
    const all = async (): Promise<LogRecord[]> => {
      const out: LogRecord[] = [];
      for (let i = 0; i < log.size; i++) out.push(await log.readRecord(i));
      return out;
    };
    const q = { objectId: 'obj-3' };
    const first = await queryLog(dir, q, { unindexed: false });
    expect(first.map((h) => h.index)).toEqual(expected(await all(), q));
    // each hit comes with the bytes it was parsed from: the log's line
    for (const h of first) expect(Buffer.from(h.line).toString('utf8')).toBe(lines[h.index]);
    // the writer appends and flushes its index: the next query reads the new manifest (only
    // the index can answer: the unindexed tail is not read)
    await appendAll(log, clock, steps.slice(60));
    await log.checkpoint();
    const second = await queryLog(dir, q, { unindexed: false });
    expect(second.map((h) => h.index)).toEqual(expected(await all(), q));
    expect(second.length).toBeGreaterThan(first.length);
    // a reader for this query alone answers the same
    expect(await queryLog(dir, q, { shared: false })).toEqual(second);
    expect(await queryLog(dir, q, { cacheBytes: 1 << 16 })).toEqual(second);
    // a rebuilt index (a new manifest, new runs) is picked up as well
    await log.close();
    rmSync(join(dir, 'index'), { recursive: true });
    const again = await openIndexed(dir, clock, 16, 2);
    const records = await all();
    await again.close(); // the rebuilt index is flushed
    expect(await queryLog(dir, q, { unindexed: false })).toEqual(second);
    expect((await queryLog(dir, { actor: people[1]!.id })).map((h) => h.index)).toEqual(
      expected(records, { actor: people[1]!.id }),
    );
  });

  it('fails closed when the index disagrees with the log', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('lie', 60);
    const log = await openIndexed(dir, clock, 8, 2);
    await appendAll(log, clock, steps);
    await log.close();
    const seg = join(dir, 'segments', '0000000000000000.jsonl');
    const code = async (q: LogQuery): Promise<unknown> =>
      queryLog(dir, q).then(
        () => 'no error',
        (e: unknown) => (ContinuityError.is(e) ? e.code : e),
      );
    // object_id is not covered by the token's signature: edit one in place (same length)
    const victim = steps.findIndex((s) => s.opts.objectId === 'obj-3');
    expect(victim).toBeGreaterThanOrEqual(0);
    const text = readFileSync(seg, 'utf8').split('\n');
    text[victim] = text[victim]!.replace('"object_id":"obj-3"', '"object_id":"obj-4"');
    writeFileSync(seg, text.join('\n'));
    expect(await code({ objectId: 'obj-3' })).toBe('STATE_CORRUPT');
    // cut the last line off: the log is shorter than its index
    truncateSync(seg, statSync(seg).size - 10);
    expect(await code({ actor: people[0]!.id })).toBe('STATE_CORRUPT');
  });

  it('reads past the index exactly when lines follow it, in its last segment or a new one', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('tail', 80);
    const log = await openIndexed(dir, clock, 8, 2, { checkpointEvery: 0 });
    await appendAll(log, clock, steps.slice(0, 60));
    await log.checkpoint(); // index flushed at 60
    await appendAll(log, clock, steps.slice(60)); // 20 lines after it, in the same segment
    const all: LogRecord[] = [];
    for (let i = 0; i < log.size; i++) all.push(await log.readRecord(i));
    const seg0 = '0000000000000000.jsonl';
    const lines = readFileSync(join(dir, 'segments', seg0), 'utf8').split('\n');
    expect(lines).toHaveLength(81);
    const head = lines.slice(0, 60).join('\n') + '\n';
    // copies of the folder as the writer left it: the index ends at line 60 in each
    const variant = (name: string, after: 'same segment' | 'new segment' | 'none'): string => {
      const d = join(tmp(), name);
      cpSync(dir, d, { recursive: true });
      if (after === 'same segment') return d;
      writeFileSync(join(d, 'segments', seg0), head);
      if (after === 'new segment')
        writeFileSync(
          join(d, 'segments', '0000000000000060.jsonl'),
          lines.slice(60, 80).join('\n') + '\n',
        );
      return d;
    };
    const q: LogQuery = { objectId: 'obj-2' };
    const want = expected(all, q);
    expect(want.some((i) => i >= 60) && want.some((i) => i < 60)).toBe(true);
    for (const after of ['same segment', 'new segment', 'none'] as const) {
      const d = variant(after.replace(' ', '-'), after);
      const reads: number[] = [];
      const got = await queryLog(d, q, { onLineRead: (i) => reads.push(i) });
      const upTo = after === 'none' ? 60 : 80;
      expect(
        got.map((h) => h.index),
        after,
      ).toEqual(expected(all, q, upTo));
      for (const h of got) expect(h.record).toEqual(all[h.index]);
      if (after === 'none') expect(reads.every((i) => i < 60)).toBe(true);
      else expect(reads.filter((i) => i >= 60)).toEqual([...Array(20).keys()].map((k) => 60 + k));
    }
    await log.close();
  });
});

describe('queryLog with a damaged times.bin', () => {
  it('still answers right: every time bound is checked against the lines themselves', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('times', 200);
    const log = await AuditLog.open({
      dir,
      signer: logKey,
      registry,
      clock,
      index: new DiskIndex(dir),
    });
    await appendAll(log, clock, steps);
    const all: LogRecord[] = [];
    for (let i = 0; i < log.size; i++) all.push(await log.readRecord(i));
    await log.close();
    // every time bound: exact, and ≤ log2(16) + 2 distinct lines read
    const reader = new DiskIndex(dir, { readOnly: true });
    const ms = all.map((r) => Date.parse(r.received_at));
    for (const t of [...new Set(ms), ms[0]! - 1, ms[ms.length - 1]! + 1]) {
      const read = new Set<number>();
      const got = reader.firstIndexAtOrAfter(t, (i) => {
        read.add(i);
        return ms[i]!;
      });
      const want = ms.findIndex((x) => x >= t);
      expect(got).toBe(want < 0 ? ms.length : want);
      expect(read.size).toBeLessThanOrEqual(6);
    }
    await reader.close();
    // readers do not checksum times.bin (the writer does, at open): scramble it
    const p = join(dir, 'index', 'times.bin');
    const b = readFileSync(p);
    for (let i = 0; i < b.length; i += 8) b.writeDoubleLE(((i * 7919) % 97) * 1e9, i);
    writeFileSync(p, b);
    expect(new Set(all.map((r) => r.received_at)).size).toBeGreaterThan(100);
    const pick = picker('times-q');
    for (let n = 0; n < 60; n++) {
      const a = pick(all.length);
      const q: LogQuery = {
        from: all[a]!.received_at,
        to: all[Math.min(all.length - 1, a + pick(30))]!.received_at,
      };
      if (pick(2)) q.actor = people[pick(3)]!.id;
      expect((await queryLog(dir, q)).map((h) => h.index)).toEqual(expected(all, q));
    }
  });
});

describe('tailLog', () => {
  it('reads from an index, from the end, and follows appends until aborted', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const steps = workload('tail', 80);
    const log = await openIndexed(dir, clock, 8, 2, {
      checkpointEvery: 20,
      segmentMaxBytes: 20_000,
    });
    await appendAll(log, clock, steps.slice(0, 50));
    const all: LogRecord[] = [];
    for (let i = 0; i < 50; i++) all.push(await log.readRecord(i));

    expect((await collect(tailLog(dir))).map((h) => h.record)).toEqual(all);
    expect((await collect(tailLog(dir, { from: 33 }))).map((h) => h.index)).toEqual(
      [...Array(17).keys()].map((i) => 33 + i),
    );
    expect((await collect(tailLog(dir, { from: -5 }))).map((h) => h.index)).toEqual([
      45, 46, 47, 48, 49,
    ]);
    expect(await collect(tailLog(dir, { from: 50 }))).toEqual([]);

    // follow: appends arrive, across segment rotations, until the signal aborts
    const ac = new AbortController();
    const seen: number[] = [];
    let resolveSeen: () => void = () => undefined;
    const reached = new Promise<void>((res) => (resolveSeen = res));
    const follower = (async () => {
      for await (const h of tailLog(dir, {
        from: 45,
        follow: true,
        signal: ac.signal,
        pollMs: 50,
      })) {
        seen.push(h.index);
        if (h.index === 79) resolveSeen();
      }
      return 'ended';
    })();
    for (const s of steps.slice(50)) {
      await appendAll(log, clock, [s]);
      if (s === steps[65]) await new Promise((r) => setTimeout(r, 30));
    }
    await reached;
    ac.abort();
    expect(await follower).toBe('ended');
    expect(seen).toEqual([...Array(35).keys()].map((i) => 45 + i));

    // aborting while it waits ends it too
    const ac2 = new AbortController();
    const waiting = collect(
      tailLog(dir, { from: 80, follow: true, signal: ac2.signal, pollMs: 10_000 }),
    );
    setTimeout(() => ac2.abort(), 50);
    expect(await waiting).toEqual([]);
    await log.close();
  });

  it('throws when lines it returned are cut away under it', async () => {
    const dir = tmp();
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock });
    for (const s of workload('cut', 10)) await log.append(s.token, s.opts);
    await log.close();
    const ac = new AbortController();
    const it = tailLog(dir, { follow: true, signal: ac.signal, pollMs: 20 })[
      Symbol.asyncIterator
    ]();
    for (let i = 0; i < 10; i++) await it.next();
    truncateSync(join(dir, 'segments', '0000000000000000.jsonl'), 100);
    await expect(it.next()).rejects.toSatisfy(
      (e) => ContinuityError.is(e) && e.code === 'CHAIN_BROKEN',
    );
    ac.abort();
  });

  it('refuses bad options', () => {
    expect(() => tailLog('/x', { from: 1.5 })).toThrow(TypeError);
    expect(() => tailLog('/x', { pollMs: 0 })).toThrow(RangeError);
  });
});
