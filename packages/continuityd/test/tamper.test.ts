/**
 * Tamper evidence: a 200-line log over several segments (three actors, two shared object
 * lines, cross-line parents, four checkpoints, state.json at close) is mutated on disk in
 * every way we could think of, and verifyLog must report each mutation with a code and
 * the place (line position, segment and line number, or checkpoint file).
 */
import {
  cpSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken, nextGeneration } from '@tibet/core';
import { seededRandom } from '@tibet/core/testing';
import {
  AuditLog,
  encodeRecord,
  lineHash,
  parseRecord,
  signCheckpoint,
  type LogRecord,
} from '@tibet/continuityd';
import { verifyLog, type VerifyProblem, type VerifyReport } from '../src/verify.js';
import {
  actors,
  allLines,
  buildLog,
  cleanup,
  locate,
  logKey,
  makeRegistry,
  mallory,
  rewriteSegment,
  segmentFiles,
  tmpDir,
  type BuiltLog,
} from './fixtures/helpers.js';

const dirs: string[] = [];
const registry = makeRegistry();
const logPublicKey = logKey.signingPublicKey;
const N = 200;
const CHECKPOINTS = [50, 100, 150, 190];
let pristine: BuiltLog;

beforeAll(async () => {
  const dir = tmpDir('tibet-tamper-');
  dirs.push(dir);
  pristine = await buildLog(dir, N, { segmentMaxBytes: 20_000, checkpointAfter: CHECKPOINTS });
}, 120_000);
afterAll(() => cleanup(dirs));

function copy(): string {
  const d = tmpDir('tibet-tamper-');
  dirs.push(d);
  cpSync(pristine.dir, d, { recursive: true });
  return d;
}

function verify(dir: string, trustedCheckpoint?: string): Promise<VerifyReport> {
  return verifyLog(dir, {
    registry,
    logPublicKey,
    workers: 0,
    ...(trustedCheckpoint ? { trustedCheckpoint } : {}),
  });
}

/** Where line `index` of the pristine log lives. */
function where(index: number): Pick<VerifyProblem, 'index' | 'segment' | 'line'> {
  const { segment, at } = locate(pristine.dir, index);
  return { index, segment, line: at + 1 };
}

function expectProblem(r: VerifyReport, p: Partial<VerifyProblem>): void {
  expect(r.problems).toContainEqual(expect.objectContaining(p));
}

function cpName(size: number): string {
  return `${String(size).padStart(16, '0')}.note`;
}

/** Replace line `index` (in place, same segment) with `f(text)`. */
function editLine(dir: string, index: number, f: (text: string) => string): void {
  const { segment, lines, at } = locate(dir, index);
  const before = lines[at]!;
  lines[at] = f(before);
  expect(lines[at]).not.toBe(before);
  rewriteSegment(dir, segment, lines);
}

describe('the pristine log', () => {
  it('verifies, with the trusted checkpoint too', async () => {
    const r = await verify(pristine.dir, pristine.checkpoints[3]!.note);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.size).toBe(N);
    expect(segmentFiles(pristine.dir).length).toBeGreaterThanOrEqual(8);
    expect(new Set(pristine.placements.map((p) => p.continuityId)).size).toBe(5);
    expect(pristine.tokens.filter((t) => t.parent_action_id).length).toBeGreaterThan(40);
  });
});

describe('one byte changed in a line', () => {
  it('in the token (content): signature fails there, chain breaks after', async () => {
    const dir = copy();
    editLine(dir, 37, (s) => s.replace('"erin":{"n":37,', '"erin":{"n":38,'));
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    expectProblem(r, { code: 'TOKEN_SIGNATURE_INVALID', ...where(37) });
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(38) });
    expectProblem(r, { code: 'ROOT_MISMATCH', checkpoint: cpName(50), index: 50 });
    expectProblem(r, { code: 'STATE_CORRUPT', index: N });
    // the next token on the same continuity line names the original token as prev
    const line = pristine.placements[37]!.continuityId;
    const next = pristine.placements.findIndex((p, i) => i > 37 && p.continuityId === line);
    expectProblem(r, { code: 'CAUSAL_PREV_MISMATCH', ...where(next) });
  });

  it('a byte-order mark put in front of a line: malformed there, never silently stripped', async () => {
    const dir = copy();
    const { lines, at } = locate(dir, 37);
    const original = Buffer.from(lines[at]!);
    expect(() => parseRecord(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), original]))).toThrow();
    editLine(dir, 37, (s) => '\uFEFF' + s);
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    expect(
      r.problems.find((p) => p.index === 37),
      JSON.stringify(r.problems),
    ).toBeDefined();
  });

  it('in the causal block (not signed by the actor): the chain catches it', async () => {
    const dir = copy();
    const k = pristine.placements.findIndex((p, i) => i > 60 && p.objectId === 'obj_vault');
    editLine(dir, k, (s) => s.replace('"object_id":"obj_vault"', '"object_id":"obj_vaulu"'));
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(k + 1) });
    expectProblem(r, { code: 'ROOT_MISMATCH', checkpoint: cpName(100), index: 100 });
    // no false blame on the line's signature
    expect(r.problems.filter((p) => p.code === 'TOKEN_SIGNATURE_INVALID')).toEqual([]);
  });

  it('in received_at: time goes backwards there, chain breaks after', async () => {
    const dir = copy();
    editLine(dir, 120, (s) => s.replace('"received_at":"2026-', '"received_at":"2025-'));
    const r = await verify(dir);
    expectProblem(r, { code: 'RECEIVED_AT_DECREASING', ...where(120) });
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(121) });
  });

  it('anywhere (25 seeded random bytes): always reported at that line or the next', async () => {
    const rnd = seededRandom('flips');
    const all = allLines(pristine.dir);
    for (let n = 0; n < 25; n++) {
      const [a, b, c] = rnd(3);
      const k = (a! * 256 + b!) % (N - 1); // not the last line: its successor holds the evidence
      const text = Buffer.from(all[k]!.text);
      const at = (c! * 7919 + n * 131) % text.length;
      let v = (text[at]! + 1 + (c! % 200)) % 256;
      if (v === 0x0a || v === text[at]) v = 0x41 === text[at] ? 0x42 : 0x41;
      text[at] = v;
      const dir = copy();
      const { segment, lines, at: li } = locate(dir, k);
      writeFileSync(
        join(dir, 'segments', segment),
        Buffer.concat(
          lines.map((l, i) =>
            Buffer.concat([i === li ? text : Buffer.from(l, 'utf8'), Buffer.of(0x0a)]),
          ),
        ),
      );
      const r = await verify(dir);
      expect(r.ok, `byte ${at} of line ${k}`).toBe(false);
      expect(
        r.problems.some((p) => p.severity === 'error' && (p.index === k || p.index === k + 1)),
        `byte ${at} of line ${k}: ${JSON.stringify(r.problems.slice(0, 3))}`,
      ).toBe(true);
    }
  });
});

describe('lines removed, added, moved', () => {
  it('a line deleted', async () => {
    const dir = copy();
    const { segment, lines, at } = locate(dir, 75);
    lines.splice(at, 1);
    rewriteSegment(dir, segment, lines);
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    expectProblem(r, { code: 'INDEX_MISMATCH', ...where(75) });
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(75) });
    // reported once, where it happened: the next segments still fit the records' numbering
    expect(r.problemCounts.INDEX_MISMATCH).toBe(1);
    expect(r.problemCounts.SEGMENT_MISSING).toBeUndefined();
    expectProblem(r, { code: 'ROOT_MISMATCH', checkpoint: cpName(100) });
    expectProblem(r, { code: 'LOG_TRUNCATED', index: N - 1 });
  });

  it('a forged line spliced in (validly signed by a registered actor)', async () => {
    const dir = copy();
    const k = 90;
    const { segment, lines, at } = locate(dir, k);
    const before = parseRecord(Buffer.from(locate(dir, k - 1).lines[locate(dir, k - 1).at]!));
    const alice = actors[0]!;
    const lastAlice = [...pristine.tokens.slice(0, k)]
      .map((t, i) => [t, pristine.placements[i]!] as const)
      .filter(([, p]) => p.continuityId === alice.id)
      .pop()![0];
    const forged = mintToken(
      {
        actor: alice.id,
        actorClass: 'human',
        event: 'secret-exposed',
        erachter: 'nothing to see here',
        prev: lastAlice,
      },
      alice,
      { random: seededRandom('forge') },
    );
    const rec: LogRecord = {
      v: 'tibet-log/1',
      index: k,
      prev: lineHash(Buffer.from(locate(dir, k - 1).lines[locate(dir, k - 1).at]!)),
      received_at: before.received_at,
      causal: {
        actor_id: forged.actor,
        action_id: forged.action_id,
        parent_action_id: null,
        object_id: null,
        parent_object_id: null,
        continuity_id: alice.id,
        generation: nextGeneration(lastAlice),
        causal_reason: forged.erachter,
      },
      token: forged,
    };
    lines.splice(at, 0, Buffer.from(encodeRecord(rec)).toString('utf8'));
    rewriteSegment(dir, segment, lines);
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    // the forgery itself is well signed and well chained; what follows it is not
    expect(r.problems.filter((p) => p.index === k)).toEqual([]);
    expectProblem(r, { code: 'INDEX_MISMATCH', index: k + 1, segment });
    expectProblem(r, { code: 'CHAIN_BROKEN', index: k + 1, segment });
    expectProblem(r, { code: 'ROOT_MISMATCH', checkpoint: cpName(100) });
    const nextAlice = pristine.placements.findIndex(
      (p, i) => i >= k && p.continuityId === alice.id,
    );
    expectProblem(r, { code: 'CAUSAL_PREV_MISMATCH', index: nextAlice + 1 });
  });

  it('a line by an unregistered actor spliced in', async () => {
    const dir = copy();
    const k = 30;
    const { segment, lines, at } = locate(dir, k);
    const prevLine = Buffer.from(locate(dir, k - 1).lines[locate(dir, k - 1).at]!);
    const t = mintToken(
      { actor: mallory.id, actorClass: 'human', event: 'secret-exposed', erachter: 'mine now' },
      mallory,
      { random: seededRandom('mallory') },
    );
    const rec: LogRecord = {
      v: 'tibet-log/1',
      index: k,
      prev: lineHash(prevLine),
      received_at: parseRecord(prevLine).received_at,
      causal: {
        actor_id: t.actor,
        action_id: t.action_id,
        parent_action_id: null,
        object_id: null,
        parent_object_id: null,
        continuity_id: t.actor,
        generation: 1,
        causal_reason: t.erachter,
      },
      token: t,
    };
    lines.splice(at, 0, Buffer.from(encodeRecord(rec)).toString('utf8'));
    rewriteSegment(dir, segment, lines);
    const r = await verify(dir);
    expectProblem(r, { code: 'ACTOR_UNKNOWN', index: k, segment });
  });

  it('an old line replayed at the end (duplicate action)', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    const last = segs[segs.length - 1]!;
    const replay = locate(dir, 10).lines[locate(dir, 10).at]!;
    writeFileSync(
      join(dir, 'segments', last),
      readFileSync(join(dir, 'segments', last), 'utf8') + replay + '\n',
    );
    const r = await verify(dir);
    expectProblem(r, { code: 'DUPLICATE_ACTION', index: N, segment: last });
    expectProblem(r, { code: 'INDEX_MISMATCH', index: N, segment: last });
    expectProblem(r, { code: 'CHAIN_BROKEN', index: N, segment: last });
  });

  it('two lines swapped', async () => {
    const dir = copy();
    const { segment, lines, at } = locate(dir, 140);
    expect(at + 1).toBeLessThan(lines.length);
    [lines[at], lines[at + 1]] = [lines[at + 1]!, lines[at]!];
    rewriteSegment(dir, segment, lines);
    const r = await verify(dir);
    expectProblem(r, { code: 'INDEX_MISMATCH', ...where(140) });
    expectProblem(r, { code: 'INDEX_MISMATCH', ...where(141) });
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(140) });
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(141) });
    expectProblem(r, { code: 'CHAIN_BROKEN', ...where(142) });
    expectProblem(r, { code: 'ROOT_MISMATCH', checkpoint: cpName(150) });
  });
});

describe('segments', () => {
  it("two segments' contents swapped", async () => {
    const dir = copy();
    const [, , s2, s3] = segmentFiles(dir);
    const a = readFileSync(join(dir, 'segments', s2!));
    const b = readFileSync(join(dir, 'segments', s3!));
    writeFileSync(join(dir, 'segments', s2!), b);
    writeFileSync(join(dir, 'segments', s3!), a);
    const r = await verify(dir);
    expect(r.ok).toBe(false);
    const first2 = Number(s2!.slice(0, 16));
    expectProblem(r, { code: 'SEGMENT_MALFORMED', index: first2, segment: s2!, line: 1 });
    expectProblem(r, { code: 'INDEX_MISMATCH', index: first2, segment: s2!, line: 1 });
    expectProblem(r, { code: 'CHAIN_BROKEN', index: first2, segment: s2!, line: 1 });
  });

  it('a middle segment deleted', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    unlinkSync(join(dir, 'segments', segs[3]!));
    const r = await verify(dir);
    expectProblem(r, {
      code: 'SEGMENT_MISSING',
      segment: segs[4]!,
      index: Number(segs[3]!.slice(0, 16)),
    });
    expectProblem(r, { code: 'CHAIN_BROKEN', segment: segs[4]!, line: 1 });
  });

  it('the first segment deleted', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    unlinkSync(join(dir, 'segments', segs[0]!));
    const r = await verify(dir);
    expectProblem(r, { code: 'SEGMENT_MISSING', segment: segs[1]!, index: 0 });
  });

  it('the last segment deleted: only the checkpoints and state.json can tell', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    const last = segs[segs.length - 1]!;
    unlinkSync(join(dir, 'segments', last));
    const r = await verify(dir);
    const kept = Number(last.slice(0, 16));
    expect(r.size).toBe(kept);
    expectProblem(r, { code: 'LOG_TRUNCATED', index: kept, checkpoint: cpName(190) });
    expectProblem(r, { code: 'LOG_TRUNCATED', index: kept });
    const withTrusted = await verify(dir, pristine.checkpoints[3]!.note);
    expectProblem(withTrusted, { code: 'LOG_TRUNCATED', index: kept, checkpoint: 'trusted' });
  });

  it('a stray file in segments/', async () => {
    const dir = copy();
    writeFileSync(join(dir, 'segments', '12.jsonl'), '');
    const r = await verify(dir);
    expectProblem(r, { code: 'SEGMENT_MALFORMED', segment: '12.jsonl' });
  });

  it('the last segment cut mid-line: a torn tail, reported; AuditLog.open repairs it', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    const last = segs[segs.length - 1]!;
    const path = join(dir, 'segments', last);
    const body = readFileSync(path);
    truncateSync(path, body.length - 100);
    const r = await verify(dir);
    expectProblem(r, {
      code: 'TORN_TAIL',
      severity: 'warning',
      segment: last,
      index: N - 1,
    });
    // state.json (written at close) recorded the line that is now torn
    expectProblem(r, { code: 'LOG_TRUNCATED', index: N - 1, severity: 'error' });
    const log = await AuditLog.open({ dir, signer: logKey, registry });
    expect(log.size).toBe(N - 1);
    await log.close();
    expect(readFileSync(path, 'utf8').endsWith('}\n')).toBe(true);
    const after = await verify(dir);
    expect(after.problems.filter((p) => p.code === 'TORN_TAIL')).toEqual([]);
    expect(after.ok).toBe(true);
    expect(after.size).toBe(N - 1);
    // a verifier that kept the checkpoint of size 190 still sees a consistent prefix
    expect((await verify(dir, pristine.checkpoints[3]!.note)).ok).toBe(true);
  });

  it('a torn line in a segment that is not the last', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    const path = join(dir, 'segments', segs[2]!);
    writeFileSync(path, readFileSync(path).subarray(0, -40));
    const r = await verify(dir);
    expectProblem(r, { code: 'SEGMENT_MALFORMED', segment: segs[2]! });
  });
});

describe('checkpoints', () => {
  it('a whole fork of the same size, re-signed: the kept checkpoint exposes it', async () => {
    const forkDir = tmpDir('tibet-fork-');
    dirs.push(forkDir);
    const fork = await buildLog(forkDir, N, {
      segmentMaxBytes: 20_000,
      checkpointAfter: CHECKPOINTS,
      seed: 'fork',
    });
    const dir = copy();
    rmSync(dir, { recursive: true });
    cpSync(fork.dir, dir, { recursive: true });
    // on its own the fork is a perfectly good log
    expect((await verify(dir)).ok).toBe(true);
    const kept = pristine.checkpoints[3]!; // size 190
    const r = await verify(dir, kept.note);
    expect(r.ok).toBe(false);
    expectProblem(r, { code: 'CHECKPOINT_INCONSISTENT', checkpoint: 'trusted', index: 190 });
    expectProblem(r, { code: 'CHECKPOINT_INCONSISTENT', checkpoint: cpName(190), index: 190 });
    expect(r.problems.find((p) => p.checkpoint === 'trusted')!.message).toMatch(/^fork/);
    expect(r.checks.find((c) => c.name === 'trusted-checkpoint')?.ok).toBe(false);
  });

  it('a checkpoint signature altered', async () => {
    const dir = copy();
    const path = join(dir, 'checkpoints', cpName(100));
    const note = readFileSync(path, 'utf8');
    const i = note.lastIndexOf(' ') + 10;
    writeFileSync(path, note.slice(0, i) + (note[i] === 'A' ? 'B' : 'A') + note.slice(i + 1));
    const r = await verify(dir);
    expectProblem(r, { code: 'CHECKPOINT_SIGNATURE_INVALID', checkpoint: cpName(100) });
  });

  it('a checkpoint root altered, signature kept', async () => {
    const dir = copy();
    const path = join(dir, 'checkpoints', cpName(150));
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[2] = Buffer.alloc(32, 7).toString('base64');
    writeFileSync(path, lines.join('\n'));
    const r = await verify(dir);
    expectProblem(r, { code: 'CHECKPOINT_SIGNATURE_INVALID', checkpoint: cpName(150) });
  });

  it('a checkpoint signed by another key under the log key name', async () => {
    const dir = copy();
    const log = await AuditLog.open({ dir, signer: logKey, registry });
    const root = log.root();
    await log.close();
    const forged = signCheckpoint(
      { origin: pristine.origin, size: N, rootHash: root, extensions: [] },
      pristine.origin,
      mallory.signer,
    );
    writeFileSync(join(dir, 'checkpoints', cpName(N)), forged.note);
    const r = await verify(dir);
    expectProblem(r, { code: 'CHECKPOINT_SIGNATURE_INVALID', checkpoint: cpName(N), index: N });
  });

  it('a validly signed checkpoint under a wrong file name', async () => {
    const dir = copy();
    cpSync(join(dir, 'checkpoints', cpName(50)), join(dir, 'checkpoints', cpName(60)));
    const r = await verify(dir);
    expectProblem(r, { code: 'CHECKPOINT_MALFORMED', checkpoint: cpName(60) });
  });

  it('the checkpoints deleted', async () => {
    const dir = copy();
    for (const f of readdirSync(join(dir, 'checkpoints'))) unlinkSync(join(dir, 'checkpoints', f));
    const alone = await verify(dir);
    expectProblem(alone, { code: 'CHECKPOINT_MISSING', severity: 'warning' });
    const kept = await verify(dir, pristine.checkpoints[1]!.note);
    expect(kept.ok).toBe(false);
    expectProblem(kept, {
      code: 'CHECKPOINT_MISSING',
      severity: 'error',
      checkpoint: 'trusted',
      index: 100,
    });
  });

  it('a trusted checkpoint that was not signed by the log key', async () => {
    const forged = signCheckpoint(
      { origin: pristine.origin, size: 100, rootHash: new Uint8Array(32), extensions: [] },
      pristine.origin,
      mallory.signer,
    );
    const r = await verify(pristine.dir, forged.note);
    expectProblem(r, { code: 'CHECKPOINT_SIGNATURE_INVALID', checkpoint: 'trusted' });
  });
});

describe('state and meta files', () => {
  it('state.json rewritten', async () => {
    const dir = copy();
    const path = join(dir, 'state.json');
    const s = JSON.parse(readFileSync(path, 'utf8')) as { last_line_hash: string };
    s.last_line_hash = '00'.repeat(32);
    writeFileSync(path, JSON.stringify(s));
    const r = await verify(dir);
    expectProblem(r, { code: 'STATE_CORRUPT', index: N });
  });

  it('log.json naming another key', async () => {
    const dir = copy();
    const path = join(dir, 'log.json');
    const m = JSON.parse(readFileSync(path, 'utf8')) as { public_key: string };
    m.public_key = Buffer.from(mallory.signingPublicKey).toString('base64');
    writeFileSync(path, JSON.stringify(m));
    const r = await verify(dir);
    expectProblem(r, { code: 'META_INVALID' });
  });
});

describe('the writer on a tampered folder', () => {
  /**
   * FIXED (was: log.ts AuditLog.open / recover): open() did not
   * compare the recovered tree with the latest signed checkpoint nor with state.json. With
   * the last segment removed (or cut), it opens a log that is shorter than what it already
   * signed, appends new lines at indexes the old checkpoint covers, and the next checkpoint
   * of that size overwrites the old note (same file name, different root): the writer
   * forks its own history and destroys the evidence. It should refuse with STATE_CORRUPT
   * (or CHECKPOINT_INCONSISTENT) when the segments hold fewer lines than the latest
   * checkpoint or than state.json, or when the root at the checkpoint's size differs.
   */
  it('refuses to open a log shorter than its latest signed checkpoint', async () => {
    const dir = copy();
    const segs = segmentFiles(dir);
    unlinkSync(join(dir, 'segments', segs[segs.length - 1]!));
    const opened = await AuditLog.open({ dir, signer: logKey, registry }).catch((e: unknown) => e);
    if (opened instanceof AuditLog) await opened.close();
    expect(opened).toMatchObject({ code: 'STATE_CORRUPT' });
  });
});
