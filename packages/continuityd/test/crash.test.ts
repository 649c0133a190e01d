/**
 * Crash safety with real processes: a child (test/fixtures/crash-writer.mjs, plain node on
 * the BUILT packages) appends from several concurrent producers and prints each index only
 * after `append` resolved; the parent SIGKILLs it at a random moment, or at a chosen point
 * (mid-write, before fdatasync, inside a checkpoint, right after a segment rotation), then
 * reopens the log in-process and checks: no torn line outside the tail of the last segment,
 * every acknowledged index present with exactly the acknowledged token, the torn tail cut,
 * appending continues on the right chain, and verifyLog passes.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityRegistry, mintToken, tokenHash, type TibetToken } from '@tibet/core';
import { seededRandom, testIdentity } from '@tibet/core/testing';
import { AuditLog, lineHash, parseRecord } from '@tibet/continuityd';
import { verifyLog } from '../src/verify.js';
import { HERE, cleanup, ensureBuilt, logKey, segmentFiles, tmpDir } from './fixtures/helpers.js';

const WRITER = join(HERE, 'crash-writer.mjs');
const PRODUCERS = 6;
const producers = Array.from({ length: PRODUCERS }, (_, i) =>
  testIdentity(`jis:acme:producer${i}`, 'machine'),
);
const auditor = testIdentity('jis:acme:auditor', 'system');
const registry = new IdentityRegistry();
for (const p of [...producers, auditor]) registry.add(p);
const dirs: string[] = [];
const rnd = seededRandom(`crash:${process.pid}`);
function randomInt(lo: number, hi: number): number {
  const [a, b] = rnd(2);
  return lo + ((a! * 256 + b!) % (hi - lo + 1));
}

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => cleanup(dirs));

interface ChildConfig {
  dir: string;
  producers?: number;
  depth?: number;
  segmentMaxBytes?: number;
  checkpointEvery?: number;
  hang?: 'mid-write' | 'before-sync' | 'in-checkpoint' | 'rotation';
}

interface ChildRun {
  acks: Map<number, string>;
  readySize: number;
  hungAt?: string;
  other: string[];
  killedAfterMs: number;
}

/** Run the writer; SIGKILL it `delayMs` after it is ready, or as soon as it reports a hang. */
function runChild(cfg: ChildConfig, delayMs: number | 'on-hang'): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [WRITER, JSON.stringify({ producers: PRODUCERS, ...cfg })],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const run: ChildRun = { acks: new Map(), readySize: -1, other: [], killedAfterMs: 0 };
    let buf = '';
    let stderr = '';
    let readyAt = 0;
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) {
        run.killedAfterMs = performance.now() - readyAt;
        child.kill('SIGKILL');
      }
    };
    const watchdog = setTimeout(() => {
      kill();
      reject(new Error(`child did not get to the kill point: ${stderr}\n${run.other.join('\n')}`));
    }, 20_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [kind, a, b] = line.split(' ');
        if (kind === 'ack') run.acks.set(Number(a), b!);
        else if (kind === 'ready') {
          run.readySize = Number(a);
          readyAt = performance.now();
          if (delayMs !== 'on-hang') setTimeout(kill, delayMs);
        } else if (kind === 'hang') {
          run.hungAt = a ?? '';
          kill();
        } else run.other.push(line);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      if (signal !== 'SIGKILL')
        reject(new Error(`child ended with ${code ?? signal}, not by SIGKILL: ${stderr}`));
      else resolve(run);
    });
  });
}

interface Evidence {
  tornTails: number;
  tornBytes: number;
  /** Temp files of durable writes (checkpoint notes, state.json) cut short by the kill. */
  tempFiles: Set<string>;
  emptyLastSegments: number;
}

/** The raw folder right after the kill, before anything repairs it. */
function inspectRaw(dir: string, ev: Evidence): void {
  const segs = segmentFiles(dir);
  segs.forEach((s, i) => {
    const b = readFileSync(join(dir, 'segments', s));
    const torn = b.length > 0 && b[b.length - 1] !== 0x0a;
    if (i < segs.length - 1) {
      // only the last segment may end in a partial line
      expect(torn, `segment ${s} (not the last) ends mid-line`).toBe(false);
      expect(b.length, `segment ${s} (not the last) is empty`).toBeGreaterThan(0);
    } else {
      if (torn) {
        ev.tornTails++;
        ev.tornBytes += b.length - (b.lastIndexOf(0x0a) + 1);
      }
      if (b.length === 0) ev.emptyLastSegments++;
    }
  });
  for (const d of ['.', 'checkpoints'])
    for (const n of readdirSync(join(dir, d))) if (n.endsWith('.tmp')) ev.tempFiles.add(n);
}

/** Every complete line, parsed strictly at its index. */
function readAll(dir: string): { bytes: Buffer[]; tokens: TibetToken[] } {
  const bytes: Buffer[] = [];
  for (const s of segmentFiles(dir)) {
    const b = readFileSync(join(dir, 'segments', s));
    expect(b.length === 0 || b[b.length - 1] === 0x0a, `${s} ends mid-line after open`).toBe(true);
    let from = 0;
    for (let nl = b.indexOf(0x0a); nl >= 0; nl = b.indexOf(0x0a, from)) {
      bytes.push(b.subarray(from, nl));
      from = nl + 1;
    }
  }
  return { bytes, tokens: bytes.map((l, i) => parseRecord(l, i).token) };
}

const auditorRandom = seededRandom('auditor');

/** Reopen in-process, check the acknowledged lines, append one more, verify. */
async function afterCrash(
  dir: string,
  acks: Map<number, string>,
  opts: { verify: boolean },
): Promise<number> {
  const log = await AuditLog.open({ dir, signer: logKey, registry });
  const size = log.size;
  const { bytes, tokens } = readAll(dir);
  expect(bytes.length).toBe(size);
  for (const [index, th] of acks) {
    expect(index, `acknowledged index ${index} is gone (size ${size})`).toBeLessThan(size);
    expect(tokenHash(tokens[index]!), `line ${index} is not the acknowledged token`).toBe(th);
  }
  // appending continues on the right chain
  const e = log.index.lastOnLine(auditor.id);
  const auditorPrev = e ? (await log.readRecord(e.index)).token : null;
  const t = mintToken(
    {
      actor: auditor.id,
      actorClass: 'system',
      event: 'log-reopened',
      erachter: 'checks the log after a crash',
      prev: auditorPrev,
    },
    auditor,
    { random: auditorRandom },
  );
  const receipt = await log.append(t);
  expect(receipt.index).toBe(size);
  const rec = await log.readRecord(size);
  expect(rec.prev).toBe(size > 0 ? lineHash(bytes[size - 1]!) : null);
  expect(rec.token.prev).toBe(auditorPrev ? tokenHash(auditorPrev) : null);
  await log.close();
  if (opts.verify) {
    const r = await verifyLog(dir, { registry, logPublicKey: logKey.signingPublicKey, workers: 0 });
    // a young log may have no checkpoint yet (a warning); nothing else may be reported
    expect(r.problems.filter((p) => p.code !== 'CHECKPOINT_MISSING')).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.size).toBe(size + 1);
  }
  return size + 1;
}

function newEvidence(): Evidence {
  return { tornTails: 0, tornBytes: 0, tempFiles: new Set(), emptyLastSegments: 0 };
}

async function crashLoop(
  name: string,
  cfg: Omit<ChildConfig, 'dir'>,
  iterations: number,
): Promise<{ ev: Evidence; acks: number; size: number; dir: string }> {
  const dir = tmpDir(`tibet-crash-${name}-`);
  dirs.push(dir);
  const ev = newEvidence();
  const all = new Map<number, string>();
  let size = 0;
  for (let i = 0; i < iterations; i++) {
    const run = await runChild({ dir, ...cfg }, randomInt(5, 150));
    expect(run.other.filter((l) => l.startsWith('err'))).toEqual([]);
    expect(run.readySize).toBe(size);
    inspectRaw(dir, ev);
    for (const [k, v] of run.acks) all.set(k, v);
    size = await afterCrash(dir, run.acks, { verify: true });
  }
  // nothing acknowledged in an earlier life was lost later
  const { tokens } = readAll(dir);
  for (const [index, th] of all) expect(tokenHash(tokens[index]!)).toBe(th);
  const r = await verifyLog(dir, { registry, logPublicKey: logKey.signingPublicKey });
  expect(r.ok).toBe(true);
  console.log(
    `${name}: ${iterations} kills, ${all.size} acknowledged of ${r.size} lines in ${r.stats.segments} segment(s), ` +
      `${r.stats.checkpoints} checkpoint(s); torn tails cut ${ev.tornTails} (${ev.tornBytes} bytes), ` +
      `temp files left by a killed durable write ${ev.tempFiles.size}, empty last segments ${ev.emptyLastSegments}`,
  );
  return { ev, acks: all.size, size: r.size, dir };
}

describe('SIGKILL at random moments', () => {
  it('loses nothing acknowledged, tears nothing but the tail, keeps the chain', async () => {
    const { acks } = await crashLoop(
      'random',
      { segmentMaxBytes: 48 * 1024, checkpointEvery: 40, depth: 4 },
      20,
    );
    expect(acks).toBeGreaterThan(100);
  }, 120_000);

  it('with a checkpoint after every group commit (kills land inside checkpoint writes)', async () => {
    await crashLoop('checkpoint', { checkpointEvery: 1, segmentMaxBytes: 48 * 1024, depth: 2 }, 6);
  }, 120_000);

  it('with tiny segments (kills land inside rotations)', async () => {
    const { size } = await crashLoop(
      'rotation',
      { segmentMaxBytes: 2_500, checkpointEvery: 25, depth: 1 },
      6,
    );
    expect(size).toBeGreaterThan(10);
  }, 120_000);
});

describe('SIGKILL at a chosen point', () => {
  const points = [
    { hang: 'mid-write', cfg: {} },
    { hang: 'before-sync', cfg: {} },
    { hang: 'in-checkpoint', cfg: { checkpointEvery: 3 } },
    { hang: 'rotation', cfg: { segmentMaxBytes: 3_000 } },
  ] as const;
  for (const p of points) {
    it(
      p.hang,
      async () => {
        const dir = tmpDir(`tibet-crash-${p.hang}-`);
        dirs.push(dir);
        const ev = newEvidence();
        // a first life that ends normally killed, so the point is hit on a log with history
        const first = await runChild({ dir, segmentMaxBytes: 3_000, ...p.cfg }, 60);
        inspectRaw(dir, newEvidence());
        let size = await afterCrash(dir, first.acks, { verify: false });
        const run = await runChild({ dir, hang: p.hang, ...p.cfg }, 'on-hang');
        expect(run.hungAt).toBe(p.hang);
        expect(run.readySize).toBe(size);
        inspectRaw(dir, ev);
        switch (p.hang) {
          case 'mid-write':
            // half a batch reached the disk and was synced: a torn tail that open() cuts
            expect(ev.tornTails).toBe(1);
            expect(ev.tornBytes).toBeGreaterThan(0);
            break;
          case 'rotation':
            expect(ev.emptyLastSegments).toBe(1);
            break;
          case 'in-checkpoint': {
            const notes = readdirSync(join(dir, 'checkpoints')).filter((n) => n.endsWith('.note'));
            expect(notes.length).toBeGreaterThan(0);
            break;
          }
          case 'before-sync':
            break;
        }
        size = await afterCrash(dir, run.acks, { verify: true });
        expect(size).toBeGreaterThan(first.acks.size);
      },
      60_000,
    );
  }
});

describe('the writer under concurrent checkpoints', () => {
  /**
   * FIXED (was: log.ts `writeDurable`, lines 170–185, called from `#writeCheckpoint`, lines
   * 591–610): the temporary file is `${path}.${process.pid}.tmp`, the same name for two
   * durable writes of the same file by one process. `checkpoint()` (lines 633–638) can run
   * while the flush loop writes an automatic checkpoint (`checkpointEvery`, lines 543–551),
   * and two `checkpoint()` calls can run at once: both write `state.json.<pid>.tmp` (or the
   * same `<size>.note.<pid>.tmp`); the first rename moves the file the second is still
   * writing, the second rename fails with ENOENT. From the flush loop that poisons the log
   * (every later append fails with LOG_POISONED); from `checkpoint()` the caller gets a raw
   * ENOENT. A crash between the two can also leave a renamed file that the other writer
   * truncated and had not finished writing. Fix: a unique temp name per call (a counter or
   * random suffix) and serialising #writeCheckpoint behind one promise.
   */
  it('checkpoint() while appends trigger automatic checkpoints never poisons the log', async () => {
    const dir = tmpDir('tibet-cp-race-');
    dirs.push(dir);
    const a = producers[0]!;
    const log = await AuditLog.open({ dir, signer: logKey, registry, checkpointEvery: 1 });
    const random = seededRandom('race');
    let prev: TibetToken | null = null;
    try {
      for (let round = 0; round < 200; round++) {
        const t = mintToken(
          { actor: a.id, actorClass: 'machine', event: 'x', erachter: 'race', prev },
          a,
          { random },
        );
        prev = t;
        const cp = log.checkpoint();
        cp.catch(() => undefined); // awaited below; not unhandled while we yield
        await new Promise((r) => setImmediate(r));
        await Promise.all([cp, log.append(t)]);
      }
    } finally {
      await log.close().catch(() => undefined);
    }
  });
});
