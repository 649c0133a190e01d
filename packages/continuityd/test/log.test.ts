import { mkdtempSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry, mintToken, type TibetToken } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  ContinuityError,
  verifyCheckpoint,
  type LogIo,
  nodeIo,
} from '@tibet/continuityd';

const logKey = testIdentity('jis:acme:continuityd', 'system');
const alice = testIdentity('jis:acme:alice', 'human');
const registry = new IdentityRegistry();
registry.add(alice);
const clock = fixedClock('2026-11-28T12:00:00.000Z');
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tibet-log-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function chain(n: number, seed = 'c'): TibetToken[] {
  const random = seededRandom(seed);
  const out: TibetToken[] = [];
  for (let i = 0; i < n; i++) {
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
}

describe('AuditLog', () => {
  it('appends durably with group commit, reopens, checkpoints', async () => {
    const dir = tmp();
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock, checkpointEvery: 0 });
    const toks = chain(50);
    const receipts = await Promise.all(toks.map((t) => log.append(t)));
    expect(receipts.map((r) => r.index)).toEqual([...Array(50).keys()]);
    const cp = await log.checkpoint();
    expect(cp.size).toBe(50);
    verifyCheckpoint(cp.note, log.origin, logKey.signingPublicKey);
    const root = log.root();
    await log.close();
    const again = await AuditLog.open({ dir, signer: logKey, registry, clock });
    expect(again.size).toBe(50);
    expect(again.root()).toEqual(root);
    const more = chain(51).slice(50);
    await again.append(more[0]!);
    expect(again.size).toBe(51);
    await again.close();
  });

  it('refuses a second embedded writer, naming the holder', async () => {
    const dir = tmp();
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock });
    const second = AuditLog.open({ dir, signer: logKey, registry, clock });
    await expect(second).rejects.toMatchObject({ code: 'LOCKED' });
    await expect(second).rejects.toThrow(`pid ${process.pid}`);
    await log.close();
  });

  it('refuses broken causality and unknown actors', async () => {
    const dir = tmp();
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock });
    const toks = chain(3);
    await log.append(toks[0]!);
    await expect(log.append(toks[2]!)).rejects.toMatchObject({ code: 'CAUSAL_PREV_MISMATCH' });
    await expect(log.append(toks[0]!)).rejects.toMatchObject({ code: 'DUPLICATE_ACTION' });
    const bob = testIdentity('jis:acme:bob');
    const tb = mintToken({ actor: bob.id, actorClass: 'human', event: 'x', erachter: 'y' }, bob, {
      clock,
    });
    await expect(log.append(tb)).rejects.toMatchObject({ code: 'ACTOR_UNKNOWN' });
    await log.close();
  });

  it('cuts a torn tail at open', async () => {
    const dir = tmp();
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock });
    for (const t of chain(5)) await log.append(t);
    await log.close();
    appendFileSync(join(dir, 'segments', '0000000000000000.jsonl'), '{"v":"tibet-log/1","ind');
    const again = await AuditLog.open({ dir, signer: logKey, registry, clock });
    expect(again.size).toBe(5);
    expect(
      readFileSync(join(dir, 'segments', '0000000000000000.jsonl'), 'utf8').endsWith('}\n'),
    ).toBe(true);
    await again.close();
  });

  it('fails closed when the disk fails: nothing acknowledged, log poisoned', async () => {
    const dir = tmp();
    let fail = false;
    const io: LogIo = {
      ...nodeIo,
      datasync: async (fh) => {
        if (fail) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        return nodeIo.datasync(fh);
      },
    };
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock, io });
    const toks = chain(4);
    await log.append(toks[0]!);
    fail = true;
    await expect(log.append(toks[1]!)).rejects.toMatchObject({ code: 'WRITE_FAILED' });
    await expect(log.append(toks[2]!)).rejects.toSatisfy(
      (e) => ContinuityError.is(e) && e.code === 'LOG_POISONED',
    );
    await log.close();
    const again = await AuditLog.open({ dir, signer: logKey, registry, clock });
    expect(again.size).toBe(1);
    await again.append(toks[1]!);
    await again.close();
  });

  /**
   * An io whose next two fdatasyncs after `arm()` wait until the test releases them (with an
   * error or not), so that a second batch is written while the first one's sync still runs.
   */
  function gatedIo(): {
    io: LogIo;
    gates: ((e?: Error) => void)[];
    writes: () => number;
    arm: () => void;
  } {
    const gates: ((e?: Error) => void)[] = [];
    let writes = 0;
    let armed = false;
    const io: LogIo = {
      ...nodeIo,
      write: (fh, d, at) => {
        writes++;
        return nodeIo.write(fh, d, at);
      },
      datasync: (fh) =>
        !armed || gates.length >= 2
          ? nodeIo.datasync(fh)
          : new Promise<void>((resolve, reject) => {
              gates.push((e) => {
                if (e) reject(e);
                else nodeIo.datasync(fh).then(resolve, reject);
              });
            }),
    };
    return { io, gates, writes: () => writes, arm: () => (armed = true) };
  }

  async function until(f: () => boolean): Promise<void> {
    for (let i = 0; i < 10_000 && !f(); i++) await new Promise((r) => setImmediate(r));
    expect(f()).toBe(true);
  }

  it('writes the next batch while the one before syncs, and acknowledges in order', async () => {
    const dir = tmp();
    const { io, gates, writes, arm } = gatedIo();
    const opts = { dir, signer: logKey, registry, clock, checkpointEvery: 0 };
    const log = await AuditLog.open({ ...opts, io, maxBatch: 1, verifyWorkers: 0 });
    const toks = chain(3);
    arm();
    const done: number[] = [];
    const all = toks.map((t) => log.append(t).then((r) => done.push(r.index)));
    // batch 0 written and syncing; batch 1 written while it syncs, its own sync started
    await until(() => gates.length === 2);
    expect(writes()).toBe(2);
    expect(done).toEqual([]);
    gates[1]!(); // the later sync returns first: nothing may be acknowledged before batch 0
    await until(() => writes() === 2 && gates.length === 2);
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(done).toEqual([]);
    gates[0]!();
    await Promise.all(all);
    expect(done).toEqual([0, 1, 2]);
    await log.close();
    const again = await AuditLog.open(opts);
    expect(again.size).toBe(3);
    await again.close();
  });

  it('rejects the batch written behind a failed sync too, and cuts both off', async () => {
    const dir = tmp();
    const { io, gates, arm } = gatedIo();
    const opts = { dir, signer: logKey, registry, clock, checkpointEvery: 0 };
    const log = await AuditLog.open({ ...opts, io, maxBatch: 1, verifyWorkers: 0 });
    const toks = chain(4);
    await log.append(toks[0]!); // durable: the gates hold the next two syncs
    arm();
    const pending = toks.slice(1).map((t) => log.append(t));
    const outcomes = Promise.allSettled(pending);
    await until(() => gates.length === 2);
    gates[0]!(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    const settled = await outcomes;
    for (const o of settled) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'WRITE_FAILED' });
    }
    gates[1]!();
    await expect(log.append(toks[1]!)).rejects.toMatchObject({ code: 'LOG_POISONED' });
    await log.close();
    const again = await AuditLog.open(opts);
    expect(again.size).toBe(1);
    await again.append(toks[1]!);
    await again.close();
  });

  it('rotates segments and keeps the chain across them', async () => {
    const dir = tmp();
    const log = await AuditLog.open({
      dir,
      signer: logKey,
      registry,
      clock,
      segmentMaxBytes: 4000,
    });
    for (const t of chain(30)) await log.append(t);
    const root = log.root();
    await log.close();
    const again = await AuditLog.open({ dir, signer: logKey, registry, clock });
    expect(again.root()).toEqual(root);
    expect((await again.readRecord(29)).index).toBe(29);
    await again.close();
  });
});
