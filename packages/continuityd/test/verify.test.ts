/**
 * verifyLog on sound logs: every check passes, the report matches the writer (root, size),
 * the trusted-checkpoint path, worker and inline modes agree, the token cut-out used on
 * the hot path equals the canonical functions, and the per-action table. The 20,000-line
 * run prints lines/s beside bare Ed25519 verify calls/s measured in the same run (no
 * timing is asserted).
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { fc, test as fcTest } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken, toBase64Url, tokenHash, tokenSigningInput, type JsonValue } from '@tibet/core';
import { fixedClock, seededRandom } from '@tibet/core/testing';
import { AuditLog, encodeRecord, parseRecord, type LogRecord } from '@tibet/continuityd';
import { ActionTable, verifyLog, type VerifyReport } from '../src/verify.js';
import { tokenSlices } from '../src/verify-worker.js';
import {
  actors,
  buildLog,
  cleanup,
  ensureBuilt,
  logKey,
  makeRegistry,
  tmpDir,
  type BuiltLog,
} from './fixtures/helpers.js';

const dirs: string[] = [];
const registry = makeRegistry();
const logPublicKey = logKey.signingPublicKey;
let small: BuiltLog;

beforeAll(async () => {
  ensureBuilt(); // worker threads load dist/verify-worker.js
  const dir = tmpDir();
  dirs.push(dir);
  small = await buildLog(dir, 200, { segmentMaxBytes: 20_000, checkpointAfter: [50, 120, 200] });
}, 120_000);
afterAll(() => cleanup(dirs));

/** The parts of a report that must not depend on how it was computed. */
function essence(r: VerifyReport): unknown {
  return {
    ok: r.ok,
    size: r.size,
    root: r.root,
    problems: r.problems,
    counts: r.problemCounts,
    checks: r.checks.map((c) => ({ ...c, detail: c.name === 'signatures' ? '' : c.detail })),
    actions: r.stats.actions,
    lines: r.stats.continuityLines,
  };
}

describe('verifyLog on a sound log', () => {
  it('passes every check, inline and on workers, and agrees with the writer', async () => {
    const log = await AuditLog.open({ dir: small.dir, signer: logKey, registry });
    const root = Buffer.from(log.root()).toString('hex');
    const cp = log.latestCheckpoint!;
    await log.close();
    const progress: number[] = [];
    const inline = await verifyLog(small.dir, {
      registry,
      logPublicKey,
      workers: 0,
      onProgress: (p) => progress.push(p.lines),
    });
    expect(inline.problems).toEqual([]);
    expect(inline.ok).toBe(true);
    expect(inline.size).toBe(200);
    expect(inline.root).toBe(root);
    expect(inline.checks.every((c) => c.ok)).toBe(true);
    expect(inline.checks.map((c) => c.name)).toEqual([
      'meta',
      'segments',
      'records',
      'hash-chain',
      'received-at',
      'signatures',
      'causal',
      'merkle',
      'checkpoints',
      'trusted-checkpoint',
      'state',
    ]);
    expect(inline.stats).toMatchObject({
      lines: 200,
      checkpoints: 3,
      actions: 200,
      continuityLines: 5,
      signaturesVerified: 200,
      workers: 0,
    });
    expect(inline.stats.segments).toBeGreaterThan(5);
    expect(progress[progress.length - 1]).toBe(200);
    const pooled = await verifyLog(small.dir, {
      registry,
      logPublicKey,
      workers: 2,
      batchLines: 16,
      trustedCheckpoint: cp.note,
    });
    expect(pooled.stats.workers).toBe(2);
    expect(essence(pooled)).toEqual(essence({ ...inline, checks: pooled.checks }));
    expect(pooled.checks.find((c) => c.name === 'trusted-checkpoint')).toMatchObject({
      ok: true,
      detail: 'consistent with this log',
    });
  });

  it('accepts an older trusted checkpoint (the log grew since)', async () => {
    const r = await verifyLog(small.dir, {
      registry,
      logPublicKey,
      workers: 0,
      trustedCheckpoint: small.checkpoints[0]!.note,
    });
    expect(r.ok).toBe(true);
  });

  it('reports external parents only when they are not allowed', async () => {
    const dir = tmpDir();
    dirs.push(dir);
    const reg = makeRegistry();
    const log = await AuditLog.open({
      dir,
      signer: logKey,
      registry: reg,
      allowExternalParents: true,
      clock: fixedClock('2026-11-28T12:00:00.000Z'),
    });
    const a = actors[0]!;
    const t = mintToken(
      {
        actor: a.id,
        actorClass: 'human',
        event: 'secret-proxied',
        erachter: 'continues work logged elsewhere',
        parent: { action_id: 'act_00000000000000aa', generation: 7 },
      },
      a,
      { random: seededRandom('ext') },
    );
    await log.append(t);
    await log.close();
    const strict = await verifyLog(dir, { registry: reg, logPublicKey, workers: 0 });
    expect(strict.problems).toContainEqual(
      expect.objectContaining({ code: 'CAUSAL_PARENT_UNKNOWN', index: 0 }),
    );
    const lax = await verifyLog(dir, {
      registry: reg,
      logPublicKey,
      workers: 0,
      allowExternalParents: true,
    });
    expect(lax.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(lax.stats.externalParents).toBe(1);
  });

  it('lists at most maxProblems and still counts them all', async () => {
    const r = await verifyLog(small.dir, {
      registry: { signingKey: () => undefined },
      logPublicKey,
      workers: 0,
      maxProblems: 5,
    });
    expect(r.ok).toBe(false);
    expect(r.problems).toHaveLength(5);
    expect(r.truncated).toBe(true);
    expect(r.problemCounts.ACTOR_UNKNOWN).toBe(200);
    expect(r.checks.find((c) => c.name === 'signatures')?.ok).toBe(false);
  });

  it('notes a LOCK left by a writer', async () => {
    const dir = tmpDir();
    dirs.push(dir);
    cpSync(small.dir, dir, { recursive: true });
    writeFileSync(join(dir, 'LOCK'), '{"pid":1}\n');
    const r = await verifyLog(dir, { registry, logPublicKey, workers: 0 });
    expect(r.ok).toBe(true);
    expect(r.checks.find((c) => c.name === 'segments')?.detail).toMatch(/LOCK present/);
  });

  it('rejects bad arguments with TypeError/RangeError, never a bad log', async () => {
    await expect(verifyLog('', { registry, logPublicKey })).rejects.toThrow(TypeError);
    await expect(
      verifyLog(small.dir, { registry, logPublicKey: new Uint8Array(16) }),
    ).rejects.toThrow('"logPublicKey" expected 32 bytes, got 16');
    await expect(verifyLog(small.dir, { registry: {} as never, logPublicKey })).rejects.toThrow(
      TypeError,
    );
    await expect(verifyLog(small.dir, { registry, logPublicKey, workers: -1 })).rejects.toThrow(
      RangeError,
    );
    const missing = await verifyLog(join(small.dir, 'nope'), { registry, logPublicKey });
    expect(missing.ok).toBe(false);
    expect(missing.problems.map((p) => p.code)).toEqual(
      expect.arrayContaining(['META_INVALID', 'SEGMENT_MISSING']),
    );
  });
});

describe('the token cut out of a line', () => {
  const json: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;
  const tricky = fc.constantFrom<JsonValue>(
    { signature: 'x', token: { signature: '"' } },
    ',"token":{',
    '","signature":"',
    { v: 'tibet-log/1' },
    '\u2028\u00e9\ud83d\ude00"\\',
  );
  fcTest.prop([fc.oneof(json, tricky), fc.oneof(json, tricky), fc.string({ minLength: 1 })], {
    numRuns: 150,
  })('equals tokenHash and tokenSigningInput', (erin, eromheen, reason) => {
    const a = actors[1]!;
    const t = mintToken(
      {
        actor: a.id,
        actorClass: 'human',
        event: 'secret-proxied',
        erachter: reason.trim() ? reason : 'why',
        erin,
        eromheen,
      },
      a,
      { random: seededRandom(reason), clock: fixedClock('2026-11-28T12:00:00.000Z') },
    );
    const rec: LogRecord = {
      v: 'tibet-log/1',
      index: 3,
      prev: 'ab'.repeat(32),
      received_at: '2026-11-28T12:00:00.000Z',
      causal: {
        actor_id: t.actor,
        action_id: t.action_id,
        parent_action_id: null,
        object_id: null,
        parent_object_id: null,
        continuity_id: 'obj_x',
        generation: t.generation,
        causal_reason: t.erachter,
      },
      token: t,
    };
    const line = encodeRecord(rec);
    parseRecord(line);
    const cut = tokenSlices(line, t);
    expect(cut).toBeDefined();
    expect(`sha256:${Buffer.from(a.provider.sha256(cut!.token)).toString('hex')}`).toBe(
      tokenHash(t),
    );
    expect(Buffer.from(cut!.signingInput).equals(tokenSigningInput(t))).toBe(true);
    // a signature that is not the one in the line is not cut
    expect(tokenSlices(line, { ...t, signature: toBase64Url(new Uint8Array(64)) })).toBeUndefined();
  });
});

describe('ActionTable', () => {
  it('finds, refuses duplicates and grows', () => {
    const t = new ActionTable(16, 1);
    const ids: [number, number][] = [];
    const rnd = seededRandom('ids');
    for (let i = 0; i < 5000; i++) {
      const b = rnd(8);
      const dv = new DataView(b.buffer);
      ids.push([dv.getUint32(0), dv.getUint32(4)]);
    }
    ids.forEach(([hi, lo], i) => expect(t.add(hi, lo, i + 1)).toBe(true));
    expect(t.size).toBe(5000);
    ids.forEach(([hi, lo], i) => expect(t.get(hi, lo)).toBe(i + 1));
    expect(t.add(ids[7]![0], ids[7]![1], 99)).toBe(false);
    expect(t.get(ids[7]![0], ids[7]![1])).toBe(8);
    expect(t.get(0, 0)).toBeUndefined();
    // 16 bytes a slot, at most 3/4 full
    expect(t.bytes).toBe(16 * 8192);
    expect(() => t.add(1, 2, 0)).toThrow(RangeError);
    // room made at once keeps what is there and needs no doubling on the way
    const r = new ActionTable(16, 2);
    ids.slice(0, 10).forEach(([hi, lo], i) => r.add(hi, lo, i + 1));
    r.reserve(5000);
    expect(r.bytes).toBe(16 * 8192);
    ids.forEach(([hi, lo], i) => expect(r.add(hi, lo, i + 1)).toBe(i >= 10));
    expect(r.bytes).toBe(16 * 8192);
    ids.forEach(([hi, lo], i) => expect(r.get(hi, lo)).toBe(i + 1));
    r.reserve(100);
    expect(r.bytes).toBe(16 * 8192);
  });
});

/** Bare Ed25519 verify calls per second with node:crypto on `threads` threads at once. */
async function bareVerifyRate(threads: number, ms: number): Promise<number> {
  const a = actors[0]!;
  const msg = new Uint8Array(700).fill(7);
  const sig = a.signer.sign(msg);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { createPublicKey, verify } = require('node:crypto');
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: workerData.x }, format: 'jwk' });
    const msg = Buffer.from(workerData.msg), sig = Buffer.from(workerData.sig);
    let n = 0; const t0 = performance.now();
    while (performance.now() - t0 < workerData.ms) { for (let i = 0; i < 64; i++) if (!verify(null, msg, key, sig)) throw new Error('bad'); n += 64; }
    parentPort.postMessage(n * 1000 / (performance.now() - t0));`;
  const data = { x: toBase64Url(a.signingPublicKey), msg, sig, ms };
  if (threads === 0) {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: data.x }, format: 'jwk' });
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (let i = 0; i < 64; i++) nodeVerify(null, msg, key, sig);
      n += 64;
    }
    return (n * 1000) / (performance.now() - t0);
  }
  const rates = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise<number>((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: data });
          w.once('message', (r: number) => {
            resolve(r);
            void w.terminate();
          });
          w.once('error', reject);
        }),
    ),
  );
  return rates.reduce((x, y) => x + y, 0);
}

describe('20,000 lines', () => {
  it('gives the same report with 1 and 2 workers (and prints throughput)', async () => {
    const dir = tmpDir();
    dirs.push(dir);
    await buildLog(dir, 20_000, {
      segmentMaxBytes: 4 * 1024 * 1024,
      checkpointAfter: [5_000, 20_000],
      concurrency: 512,
      seed: 'big',
    });
    const bare1 = await bareVerifyRate(0, 700);
    const one = await verifyLog(dir, { registry, logPublicKey, workers: 1 });
    const two = await verifyLog(dir, { registry, logPublicKey, workers: 2 });
    const bare2 = await bareVerifyRate(2, 700);
    expect(one.ok).toBe(true);
    expect(one.size).toBe(20_000);
    expect(one.stats.workers).toBe(1);
    expect(two.stats.workers).toBe(2);
    expect(essence(two)).toEqual(essence({ ...one, checks: two.checks }));
    const pct = (x: number, y: number): string => `${Math.round((100 * x) / y)} %`;
    console.log(
      [
        `verifyLog, 20,000 lines (${(one.stats.bytes / 1e6).toFixed(1)} MB), node backend:`,
        `  1 worker : ${Math.round(one.stats.linesPerSecond)} lines/s`,
        `  2 workers: ${Math.round(two.stats.linesPerSecond)} lines/s`,
        `  bare Ed25519 verify, 1 thread : ${Math.round(bare1)} calls/s  (2 workers = ${pct(two.stats.linesPerSecond, bare1)})`,
        `  bare Ed25519 verify, 2 threads: ${Math.round(bare2)} calls/s  (2 workers = ${pct(two.stats.linesPerSecond, bare2)})`,
        `  action table: ${one.stats.actionTableBytes} bytes for ${one.stats.actions} actions`,
      ].join('\n'),
    );
  }, 120_000);
});

describe('over-long lines', () => {
  it('are reported and skipped, never buffered beyond maxLineBytes', async () => {
    const dir = tmpDir();
    dirs.push(dir);
    cpSync(small.dir, dir, { recursive: true });
    const seg = join(dir, 'segments', '0000000000000000.jsonl');
    // a 3 MiB line (longer than a read chunk) inserted after the first line
    const body = readFileSync(seg);
    const nl = body.indexOf(0x0a) + 1;
    writeFileSync(
      seg,
      Buffer.concat([
        body.subarray(0, nl),
        Buffer.alloc(3 << 20, 0x61),
        Buffer.of(0x0a),
        body.subarray(nl),
      ]),
    );
    const r = await verifyLog(dir, { registry, logPublicKey, workers: 0, maxLineBytes: 1 << 20 });
    expect(r.ok).toBe(false);
    expect(r.problemCounts.RECORD_MALFORMED).toBe(1);
    expect(r.problems[0]).toMatchObject({
      code: 'RECORD_MALFORMED',
      index: 1,
      segment: '0000000000000000.jsonl',
    });
    // the skipped line is not in the tree: everything else still lines up
    expect(r.size).toBe(200);
    expect(r.problems.filter((p) => p.severity === 'error')).toHaveLength(1);
    // short lines over the limit inside one chunk are skipped the same way
    const tight = await verifyLog(small.dir, {
      registry,
      logPublicKey,
      workers: 0,
      maxLineBytes: 100,
    });
    expect(tight.problemCounts.RECORD_MALFORMED).toBe(200);
    expect(tight.size).toBe(0);
  });
});
