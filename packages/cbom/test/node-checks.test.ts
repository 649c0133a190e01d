/**
 * The walk's signature and inclusion checks give the same graph on worker threads as on the
 * calling thread — for a sound log and for one with a forged signature.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityRegistry, fixedClock, getProvider, mintToken, systemClock } from '@tibet/core';
import { seededRandom, testIdentity } from '@tibet/core/testing';
import { AuditLog, listSegments } from '@tibet/continuityd';
import { ensureBuilt } from '../../../test/support/build-dist.js';
import { walk } from '../src/index.js';
import { MIN_PARALLEL_JOBS, startNodeChecks } from '../src/node-checks.js';

const alice = testIdentity('jis:acme:alice', 'human');
const logKey = testIdentity('jis:acme:auditlog', 'system');
const directory = new IdentityRegistry();
directory.add(alice);
const N = MIN_PARALLEL_JOBS + 88;
const now = new Date('2026-12-01T00:00:00Z');
let dir: string;

beforeAll(async () => {
  // the workers run the built module (dist/node-checks.js)
  ensureBuilt(['core', 'tza', 'continuityd', 'keychain', 'cbom']);
  dir = mkdtempSync(join(tmpdir(), 'tibet-cbom-checks-'));
  const log = await AuditLog.open({
    dir,
    signer: logKey,
    registry: directory,
    clock: systemClock,
  });
  const random = seededRandom('cbom-node-checks');
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    const id = `sec_checks_${String(i).padStart(6, '0')}`;
    const t = mintToken(
      {
        actor: alice.id,
        actorClass: 'human',
        event: 'secret-imported',
        erachter: `test secret ${i}`,
        erin: { secret_id: id, secret_type: 'api_key', version: 1 },
        eraan: [{ object_id: id }],
      },
      alice,
      { clock: fixedClock(new Date(Date.UTC(2026, 0, 1, 0, 0, i))), random },
    );
    pending.push(log.append(t, { objectId: id }));
  }
  await Promise.all(pending);
  await log.checkpoint();
  await log.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const both = async () => {
  const o = { logDir: dir, directory, subject: 'home', store: 'none' as const, now };
  return [await walk({ ...o, workers: 0 }), await walk({ ...o, workers: 1 })] as const;
};

describe('node checks on worker threads', () => {
  it('starts workers for a large graph with a stock backend, none for a small one', async () => {
    const big = startNodeChecks(
      Array.from({ length: MIN_PARALLEL_JOBS }, () => ({})),
      getProvider(),
      undefined,
      1,
    );
    expect(big.workers).toBe(1);
    expect(await big.finish()).toHaveLength(MIN_PARALLEL_JOBS);
    const small = startNodeChecks([{}], getProvider(), undefined, 1);
    expect(small.workers).toBe(0);
  });

  it('a sound log: every signature and inclusion proof passes, the same graph either way', async () => {
    const [inline, parallel] = await both();
    expect(inline.nodes).toHaveLength(N);
    expect(inline.nodes.every((n) => n.checks.signature === 'pass')).toBe(true);
    expect(inline.nodes.every((n) => n.checks.inclusion === 'pass')).toBe(true);
    expect(parallel).toEqual(inline);
  });

  it('a forged signature on line 300 fails its node, the same graph either way', async () => {
    const seg = (await listSegments(dir))[0]!.path;
    const text = readFileSync(seg, 'utf8');
    const lines = text.split('\n');
    const k = 300;
    const sig = /"signature":"([A-Za-z0-9_-]{86})"/.exec(lines[k]!)![1]!;
    const forged = sig.slice(0, 10) + (sig[10] === 'A' ? 'B' : 'A') + sig.slice(11);
    lines[k] = lines[k]!.replace(sig, forged);
    writeFileSync(seg, lines.join('\n'));
    try {
      const [inline, parallel] = await both();
      expect(parallel).toEqual(inline);
      const bad = inline.nodes.filter((n) => n.checks.signature === 'fail');
      expect(bad.map((n) => n.source)).toEqual([expect.objectContaining({ index: k })]);
      expect(inline.problems.map((p) => p.code)).toContain('SIGNATURE_INVALID');
      // the line changed, so it is no longer the leaf the checkpoint signed
      expect(bad[0]!.checks.inclusion).toBe('fail');
    } finally {
      writeFileSync(seg, text);
    }
  });
});
