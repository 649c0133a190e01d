/**
 * A large log written straight into segment files (every line a valid record with a real
 * token signature), indexed through DiskIndex as the writer would feed it, then queried:
 * each query must read only a few lines. Timings and memory are printed, never asserted
 * (except a generous memory bound). TIBET_SCALE=1 adds a million-record run.
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  IdentityRegistry,
  canonicalize,
  getProvider,
  mintToken,
  rfc3339,
  toBase64,
  tokenHash,
  verifyToken,
  type Identity,
  type TibetToken,
} from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  DirLock,
  MerkleFrontier,
  encodeRecord,
  leafHash,
  lineHash,
  parseRecord,
  segmentName,
  verifierKey,
  type IndexedRecord,
} from '@tibet/continuityd';
import { DiskIndex } from '../src/disk-index.js';
import { queryLog, tailLog, type LogQuery } from '../src/query.js';

const provider = getProvider();
const logKey = testIdentity('jis:acme:continuityd', 'system');
const users: Identity[] = Array.from({ length: 32 }, (_, i) => testIdentity(`jis:acme:user${i}`));
const registry = new IdentityRegistry();
for (const u of users) registry.add(u);
const BASE = Date.parse('2026-11-28T12:00:00.000Z');
const POOL = 1024;
const SEGMENT_MAX = 32 * 1024 * 1024;
const MiB = 1024 * 1024;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Minted {
  token: TibetToken;
  canon: string;
  hash: string;
}

function mint(who: Identity, erachter: string, random: ReturnType<typeof seededRandom>): Minted {
  const token = mintToken(
    { actor: who.id, actorClass: 'human', event: 'secret-proxied', erachter },
    who,
    { clock: fixedClock('2026-11-28T11:00:00.000Z'), random },
  );
  return { token, canon: canonicalize(token), hash: tokenHash(token, provider) };
}

/** The shape of the generated log, for computing expected answers without reading it. */
const shape = {
  /** `obj-rare` is on 10 records whatever the size */
  rareEvery: 20_011,
  time: (i: number): number => BASE + Math.floor(i / 4), // 4 records per millisecond
  object: (i: number): string | null =>
    i % shape.rareEvery === 7 ? 'obj-rare' : i % 11 === 0 ? null : `obj-${(i * 31) % 4000}`,
  needleAt: [13, 50_001, 123_457] as const,
};

const js = (v: string): string => JSON.stringify(v);

/** RFC 8785 form of a record, written out by hand (canonicalize is too slow for 10^6 lines). */
function recordLine(
  i: number,
  prev: string | null,
  at: string,
  m: Minted,
  objectId: string | null,
  continuityId: string,
): string {
  const t = m.token;
  return (
    `{"causal":{"action_id":${js(t.action_id)},"actor_id":${js(t.actor)},` +
    `"causal_reason":${js(t.erachter)},"continuity_id":${js(continuityId)},` +
    `"generation":${t.generation},"object_id":${objectId === null ? 'null' : js(objectId)},` +
    `"parent_action_id":null,"parent_object_id":null},"index":${i},` +
    `"prev":${prev === null ? 'null' : js(prev)},"received_at":${js(at)},` +
    `"token":${m.canon},"v":"tibet-log/1"}`
  );
}

interface Built {
  dir: string;
  n: number;
  pool: Minted[];
  needles: Minted[];
  rssBefore: number;
  rssPeak: number;
  /** RSS (MiB) after each quarter */
  rssAt: string[];
  buildMs: number;
  /** ms: the longest add() of a 1,024-record batch (a seal plus a merge) */
  slowestAdd: number;
}

/**
 * Write `n` records into segment files and feed them to a DiskIndex in batches of 1,024,
 * flushing every 4,096 (as a writer's checkpoints would). Also writes log.json and
 * state.json, so that AuditLog.open finds a consistent, already indexed log.
 */
async function buildLog(n: number): Promise<Built> {
  shape.rareEvery = Math.ceil(n / 10) + 1;
  const dir = mkdtempSync(join(tmpdir(), 'tibet-large-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'segments'));
  mkdirSync(join(dir, 'checkpoints'));
  const origin = `${logKey.id}/log`;
  writeFileSync(
    join(dir, 'log.json'),
    JSON.stringify({
      format: 'tibet-log-meta/1',
      origin,
      key_name: origin,
      public_key: toBase64(logKey.signingPublicKey),
      verifier_key: verifierKey(origin, logKey.signingPublicKey),
      log_actor: logKey.id,
      created_at: '2026-11-28T11:00:00.000Z',
    }),
  );
  const random = seededRandom('large');
  const pool = Array.from({ length: POOL }, (_, k) =>
    mint(users[k % users.length]!, `use ${k}`, random),
  );
  const needles = shape.needleAt.map((_, k) => mint(users[k]!, `needle ${k}`, random));
  const needleOf = new Map<number, Minted>(shape.needleAt.map((at, k) => [at, needles[k]!]));

  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const rssAt: string[] = [];
  let slowestAdd = 0;
  const t0 = performance.now();
  const lock = await DirLock.acquire(dir, 'test'); // we play the writer
  const index = new DiskIndex(dir);
  index.indexedSize(); // load (empty)
  const frontier = new MerkleFrontier(0, [], provider);
  let prev: string | null = null;
  let segFirst = 0;
  let segBytes = 0;
  let fd = openSync(join(dir, 'segments', segmentName(0)), 'w');
  const BATCH = 1024;
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH);
    const lines: string[] = [];
    const recs: IndexedRecord[] = [];
    for (let i = start; i < end; i++) {
      const m = needleOf.get(i) ?? pool[(i * 7) % POOL]!;
      const objectId = shape.object(i);
      const continuityId = objectId ?? m.token.actor;
      const ms = shape.time(i);
      const text = recordLine(i, prev, rfc3339(new Date(ms)), m, objectId, continuityId);
      const bytes = Buffer.from(text, 'utf8');
      prev = lineHash(bytes, provider);
      const leaf = leafHash(bytes, provider);
      frontier.push(leaf);
      lines.push(text);
      recs.push({
        index: i,
        generation: m.token.generation,
        tokenHash: m.hash,
        actionId: m.token.action_id,
        actor: m.token.actor,
        objectId,
        continuityId,
        receivedAt: ms,
        leafHash: leaf,
      });
    }
    const chunk = Buffer.from(lines.join('\n') + '\n', 'utf8');
    if (segBytes > 0 && segBytes + chunk.length > SEGMENT_MAX) {
      closeSync(fd);
      segFirst = start;
      segBytes = 0;
      fd = openSync(join(dir, 'segments', segmentName(segFirst)), 'w');
    }
    writeSync(fd, chunk, 0, chunk.length, segBytes);
    segBytes += chunk.length;
    const ta = performance.now();
    index.add(recs); // what the writer does once a batch is durable
    slowestAdd = Math.max(slowestAdd, performance.now() - ta);
    if ((end / BATCH) % 32 === 0 || end === n) await index.flush();
    const rss = process.memoryUsage().rss;
    rssPeak = Math.max(rssPeak, rss);
    if (Math.floor(end / (n / 4)) > Math.floor(start / (n / 4)))
      rssAt.push(`${Math.round(end / 1000)}k: ${(rss / MiB).toFixed(0)}`);
  }
  closeSync(fd);
  await index.close();
  await lock.release();
  const buildMs = performance.now() - t0;
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({
      format: 'tibet-log-state/1',
      size: n,
      frontier: frontier.hashes.map(toBase64),
      last_line_hash: prev,
      last_received_at: rfc3339(new Date(shape.time(n - 1))),
    }) + '\n',
  );
  return { dir, n, pool, needles, rssBefore, rssPeak, rssAt, buildMs, slowestAdd };
}

function dirBytes(d: string): number {
  let total = 0;
  for (const name of readdirSync(d)) total += statSync(join(d, name)).size;
  return total;
}

/** Run the query suite; returns a printable table row per query. */
async function querySuite(b: Built): Promise<void> {
  const { dir, n } = b;
  const mid = Math.floor(n / 2);
  const actor = users[5]!.id;
  const firstByActor = (k: number): number[] => {
    const out: number[] = [];
    for (let i = 0; out.length < k && i < n; i++) {
      const m = shape.needleAt.includes(i as 13) ? undefined : b.pool[(i * 7) % POOL]!;
      if (m?.token.actor === actor) out.push(i);
    }
    return out;
  };
  const rare: number[] = [];
  for (let i = 0; i < n; i++) if (shape.object(i) === 'obj-rare') rare.push(i);
  expect(rare.length).toBe(10);
  const tFrom = shape.time(mid);
  const inRange = (i: number, from: number, to: number): boolean =>
    shape.time(i) >= from && shape.time(i) < to;
  const someObject = shape.object(mid + 2)!;
  expect(someObject).toMatch(/^obj-\d+$/);
  const objectInWindow: number[] = [];
  const wFrom = shape.time(mid - 40_000);
  const wTo = shape.time(mid + 40_000);
  for (let i = 0; i < n; i++)
    if (shape.object(i) === someObject && inRange(i, wFrom, wTo)) objectInWindow.push(i);

  const cases: { name: string; q: LogQuery; want: number[] }[] = [
    {
      name: 'action id',
      q: { actionId: b.needles[1]!.token.action_id },
      want: [shape.needleAt[1]],
    },
    { name: 'object id (10 matches)', q: { objectId: 'obj-rare' }, want: rare },
    { name: 'actor, limit 20', q: { actor, limit: 20 }, want: firstByActor(20) },
    {
      name: 'time range (5 ms)',
      q: { from: new Date(tFrom), to: new Date(tFrom + 5) },
      want: [...Array(20).keys()].map((k) => mid + k),
    },
    {
      name: 'object + 20 s window',
      q: { objectId: someObject, from: wFrom, to: wTo },
      want: objectInWindow,
    },
    {
      name: 'actor from index, limit 10',
      q: { actor, fromIndex: mid, limit: 10 },
      want: (() => {
        const out: number[] = [];
        for (let i = mid; out.length < 10; i++)
          if (b.pool[(i * 7) % POOL]!.token.actor === actor) out.push(i);
        return out;
      })(),
    },
  ];
  const rows: string[] = [];
  for (const c of cases) {
    let reads = 0;
    const t0 = performance.now();
    const hits = await queryLog(dir, c.q, { onLineRead: () => reads++, shared: false });
    const ms = performance.now() - t0;
    rows.push(
      `  ${c.name.padEnd(28)} ${String(hits.length).padStart(3)} hits  ${String(reads).padStart(3)} lines read  ${ms.toFixed(2).padStart(7)} ms`,
    );
    expect(
      hits.map((h) => h.index),
      c.name,
    ).toEqual(c.want);
    expect(reads, c.name).toBeLessThanOrEqual(32);
    for (const h of hits) expect(h.record.index).toBe(h.index);
  }
  // a second round: warm OS page cache, a fresh reader each time (as a CLI would)
  for (const c of cases) {
    const t0 = performance.now();
    await queryLog(dir, c.q, { shared: false });
    rows.push(
      `  (again) ${c.name.padEnd(20)} ${(performance.now() - t0).toFixed(2).padStart(7)} ms`,
    );
  }
  // a third: the process's reader, kept open between queries (the first one opens it)
  for (const c of cases) {
    const t0 = performance.now();
    expect((await queryLog(dir, c.q)).map((h) => h.index)).toEqual(c.want);
    rows.push(
      `  (kept reader) ${c.name.padEnd(14)} ${(performance.now() - t0).toFixed(2).padStart(7)} ms`,
    );
  }
  // tail from the end
  const t0 = performance.now();
  const last: number[] = [];
  for await (const h of tailLog(dir, { from: -3 })) last.push(h.index);
  rows.push(`  tail -3                      ${(performance.now() - t0).toFixed(2).padStart(7)} ms`);
  expect(last).toEqual([n - 3, n - 2, n - 1]);
  console.log(`queries on ${n.toLocaleString('en')} records:\n${rows.join('\n')}`);
}

async function scenario(n: number): Promise<void> {
  const b = await buildLog(n);
  const idxBytes = dirBytes(join(b.dir, 'index'));
  const logBytes = dirBytes(join(b.dir, 'segments'));
  console.log(
    `built ${n.toLocaleString('en')} records in ${(b.buildMs / 1000).toFixed(1)} s; ` +
      `RSS ${(b.rssBefore / MiB).toFixed(0)} → peak ${(b.rssPeak / MiB).toFixed(0)} MiB ` +
      `(+${((b.rssPeak - b.rssBefore) / MiB).toFixed(0)} MiB while indexing; by quarter ${b.rssAt.join(', ')}); ` +
      `index ${(idxBytes / MiB).toFixed(1)} MiB = ${(idxBytes / n).toFixed(1)} B/record ` +
      `(log ${(logBytes / n).toFixed(0)} B/record); slowest add() of 1,024 records ${b.slowestAdd.toFixed(0)} ms`,
  );
  expect(b.rssPeak - b.rssBefore).toBeLessThan(150 * MiB);

  // the lines are what the writer would have written
  for (const i of [0, 1, 13, n - 1]) {
    const rec = (await queryLog(b.dir, { fromIndex: i, limit: 1 }))[0]!.record;
    expect(Buffer.from(encodeRecord(rec)).toString()).toBe(
      recordLine(
        i,
        rec.prev,
        rec.received_at,
        { token: rec.token, canon: canonicalize(rec.token), hash: '' },
        shape.object(i),
        rec.causal.continuity_id,
      ),
    );
    const who = users.find((u) => u.id === rec.token.actor)!;
    verifyToken(rec.token, who.signingPublicKey);
  }

  await querySuite(b);

  // a writer opens it without replaying anything, and appends through the index
  class Counting extends DiskIndex {
    added = 0;
    override add(r: readonly IndexedRecord[]): void {
      this.added += r.length;
      super.add(r);
    }
  }
  const index = new Counting(b.dir);
  const t0 = performance.now();
  const log = await AuditLog.open({
    dir: b.dir,
    signer: logKey,
    registry,
    index,
    checkpointEvery: 0,
  });
  const openMs = performance.now() - t0;
  expect(log.size).toBe(n);
  expect(index.added).toBe(0);
  // the writer's synchronous lookups (every append: a duplicate check that misses, the
  // line's last token, often a parent)
  const lookups = 20_000;
  const rnd = seededRandom('lookups');
  const missing = Array.from(
    { length: lookups },
    () => `act_${Buffer.from(rnd(8)).toString('hex')}`,
  );
  let t = performance.now();
  let found = 0;
  for (const id of missing) if (index.action(id)) found++;
  const missUs = ((performance.now() - t) * 1000) / lookups;
  t = performance.now();
  for (let k = 0; k < lookups; k++) index.action(b.pool[k % POOL]!.token.action_id);
  const hitUs = ((performance.now() - t) * 1000) / lookups;
  t = performance.now();
  for (let k = 0; k < lookups; k++) index.lastOnLine(`obj-${k % 4000}`);
  const lineUs = ((performance.now() - t) * 1000) / lookups;
  expect(found).toBe(0);
  console.log(
    `writer lookups over ${index.stats.runs} runs: action miss ${missUs.toFixed(1)} µs, ` +
      `action hit ${hitUs.toFixed(1)} µs, lastOnLine ${lineUs.toFixed(1)} µs ` +
      `(${index.stats.cachedPages} pages cached)`,
  );
  const parent = b.needles[0]!.token;
  const child = mintToken(
    {
      actor: users[1]!.id,
      actorClass: 'human',
      event: 'secret-proxied',
      erachter: 'after the bulk',
      parent: { action_id: parent.action_id, generation: parent.generation },
    },
    users[1]!,
  );
  const t1 = performance.now();
  const receipt = await log.append(child, { continuityId: 'fresh-line' });
  const appendMs = performance.now() - t1;
  expect(receipt.index).toBe(n);
  await expect(log.append(b.pool[3]!.token)).rejects.toMatchObject({ code: 'DUPLICATE_ACTION' });
  await log.close();
  console.log(
    `writer open (index verified, nothing replayed) ${openMs.toFixed(0)} ms; first append ${appendMs.toFixed(1)} ms`,
  );
  const hit = await queryLog(b.dir, { actionId: child.action_id });
  expect(hit.map((h) => h.index)).toEqual([n]);
  expect(parseRecord(Buffer.from(encodeRecord(hit[0]!.record)), n).causal.continuity_id).toBe(
    'fresh-line',
  );
}

describe('DiskIndex at scale', () => {
  it('200,000 records: queries read ≤ 32 lines; indexing memory stays flat', async () => {
    await scenario(200_000);
  });

  it.skipIf(!process.env['TIBET_SCALE'])(
    '1,000,000 records (TIBET_SCALE)',
    async () => {
      await scenario(1_000_000);
    },
    600_000,
  );

  it.skipIf(!process.env['TIBET_SCALE'])(
    'index bytes per record with unique action ids (TIBET_SCALE)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tibet-unique-'));
      dirs.push(dir);
      const lock = await DirLock.acquire(dir, 'test');
      const index = new DiskIndex(dir);
      index.indexedSize();
      const n = 65_536 * 4;
      const random = seededRandom('unique');
      for (let s = 0; s < n; s += 1024) {
        const recs: IndexedRecord[] = [];
        for (let i = s; i < s + 1024; i++) {
          const objectId = shape.object(i);
          recs.push({
            index: i,
            generation: 1 + (i % 50),
            tokenHash: `sha256:${Buffer.from(random(32)).toString('hex')}`,
            actionId: `act_${Buffer.from(random(8)).toString('hex')}`,
            actor: users[i % 32]!.id,
            objectId,
            continuityId: objectId ?? users[i % 32]!.id,
            receivedAt: shape.time(i),
            leafHash: new Uint8Array(32),
          });
        }
        index.add(recs);
      }
      const runs = readdirSync(join(dir, 'index')).filter((f) => f.startsWith('L1-'));
      expect(runs.length).toBeGreaterThanOrEqual(3); // the last merge may still be running
      let bytes = 0;
      for (const f of runs) bytes += statSync(join(dir, 'index', f)).size;
      const perRecord = bytes / (runs.length * 65_536);
      console.log(
        `unique action ids: level-1 runs ${perRecord.toFixed(1)} B/record, ` +
          `+ 8 (offsets) + 0.5 (times) = ${(perRecord + 8.5).toFixed(1)} B/record`,
      );
      await index.close();
      await lock.release();
    },
  );
});
