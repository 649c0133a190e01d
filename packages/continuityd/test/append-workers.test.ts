/**
 * Appends whose signatures are checked on worker threads (`verifyWorkers`): the same lines as
 * on the calling thread, in the order of the calls; forged and unknown tokens refused with
 * the same codes while the rest of the burst lands; chains that build on a refused token
 * refused after it; idle workers never keep a process alive. The workers load the built
 * dist, like verifyLog's.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  fromBase64Url,
  getProvider,
  mintToken,
  tokenSigningInput,
  toBase64Url,
  type Identity,
  type TibetToken,
} from '@tibet/core';
import { fixedClock, seededRandom } from '@tibet/core/testing';
import { AuditLog, ContinuityError, verifyLog, type AppendReceipt } from '@tibet/continuityd';
import { SigRing } from '../src/sig-ring.js';
import { BatchRing, workerScript } from '../src/worker-pool.js';
import {
  PKG,
  actors,
  cleanup,
  ensureBuilt,
  logKey,
  makeRegistry,
  mallory,
  segmentFiles,
  tmpDir,
} from './fixtures/helpers.js';

beforeAll(() => ensureBuilt(), 180_000);
const dirs: string[] = [];
afterEach(() => cleanup(dirs));
const clock = fixedClock('2026-11-29T02:00:00.000Z');
const registry = makeRegistry();

/** `perActor` tokens on each actor's own line, interleaved across actors (call order). */
function burst(perActor: number, who: Identity[] = actors, seed = 'burst'): TibetToken[][] {
  const random = seededRandom(seed);
  return who.map((a) => {
    const out: TibetToken[] = [];
    for (let i = 0; i < perActor; i++)
      out.push(
        mintToken(
          {
            actor: a.id,
            actorClass: 'human',
            event: 'secret-proxied',
            erachter: `use ${i} by ${a.id}`,
            prev: out[i - 1] ?? null,
          },
          a,
          { clock, random },
        ),
      );
    return out;
  });
}

function interleave<T>(lines: T[][]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(...lines.map((l) => l.length)); i++)
    for (const l of lines) if (i < l.length) out.push(l[i]!);
  return out;
}

/** A copy of `t` whose signature is another valid-looking one (one bit of it flipped). */
function forge(t: TibetToken): TibetToken {
  const sig = fromBase64Url(t.signature, 'signature');
  sig[10]! ^= 0x01;
  return { ...t, signature: toBase64Url(sig) };
}

/** Lines a log from {@link openWarm} holds before the test's own. */
const WARM_UP = 2;

/**
 * A log with `workers` signature workers, ready: a first burst of {@link WARM_UP} appends (on
 * a line of its own, made with any number of workers, so that logs compare byte for byte)
 * starts them, and the next burst finds them running.
 */
async function openWarm(dir: string, workers: number): Promise<AuditLog> {
  const log = await AuditLog.open({
    dir,
    signer: logKey,
    registry,
    clock,
    checkpointEvery: 0,
    verifyWorkers: workers,
  });
  const warm = burst(WARM_UP, [actors[0]!], 'warm');
  await Promise.all(warm[0]!.map((t) => log.append(t, { continuityId: 'warm-up' })));
  const until = Date.now() + 30_000;
  while (log.verifyWorkersReady < workers && Date.now() < until)
    await new Promise((r) => setTimeout(r, 10));
  expect(log.verifyWorkersReady).toBe(workers);
  return log;
}

type Outcome = AppendReceipt | string;
const settle = (p: Promise<AppendReceipt>): Promise<Outcome> =>
  p.then(
    (r) => r,
    (e: unknown) => (ContinuityError.is(e) ? e.code : `other: ${String(e)}`),
  );

describe('appends checked on worker threads', () => {
  it('write exactly the lines the calling thread writes, in call order', async () => {
    const tokens = interleave(burst(400));
    const bytes: string[] = [];
    for (const workers of [0, 2]) {
      const dir = tmpDir('tibet-append-workers-');
      dirs.push(dir);
      const log = await openWarm(dir, workers);
      // one burst of 1,200 (each line's tokens chained on the ones before, none awaited): more
      // than the ring's 1,024 slots, so the rest wait for one
      const receipts = await Promise.all(tokens.map((t) => log.append(t)));
      expect(receipts.map((r) => r.index)).toEqual([...tokens.keys()].map((i) => WARM_UP + i));
      expect(receipts.map((r) => r.actionId)).toEqual(tokens.map((t) => t.action_id));
      await log.close();
      bytes.push(
        segmentFiles(dir)
          .map((f) => readFileSync(join(dir, 'segments', f), 'utf8'))
          .join(''),
      );
      const rep = await verifyLog(dir, {
        registry,
        logPublicKey: logKey.signingPublicKey,
        workers: 0,
      });
      expect(rep.ok).toBe(true);
      expect(rep.size).toBe(WARM_UP + tokens.length);
    }
    expect(bytes[1]).toBe(bytes[0]);
  });

  it('refuse forged and unknown tokens, and what builds on them, while the rest lands', async () => {
    const dir = tmpDir('tibet-append-workers-');
    dirs.push(dir);
    const log = await openWarm(dir, 2);
    const lines = burst(30);
    const forged = forge(lines[1]![10]!);
    const stranger = burst(3, [mallory], 'stranger')[0]!;
    const calls: { t: TibetToken; want: string }[] = [];
    for (let i = 0; i < 30; i++) {
      calls.push({ t: lines[0]![i]!, want: 'ok' });
      // bob's line: 0..9 land, 10 is forged, 11.. chain on the real 10, which never landed
      calls.push(
        i === 10
          ? { t: forged, want: 'TOKEN_REJECTED' }
          : { t: lines[1]![i]!, want: i < 10 ? 'ok' : 'CAUSAL_PREV_MISMATCH' },
      );
      calls.push({ t: lines[2]![i]!, want: 'ok' });
      if (i < 3) calls.push({ t: stranger[i]!, want: 'ACTOR_UNKNOWN' });
    }
    const before = log.size;
    const outcomes = await Promise.all(calls.map((c) => settle(log.append(c.t))));
    expect(outcomes.map((o) => (typeof o === 'string' ? o : 'ok'))).toEqual(
      calls.map((c) => c.want),
    );
    // the admitted ones are numbered without gaps, in call order
    const admitted = outcomes.filter((o): o is AppendReceipt => typeof o !== 'string');
    expect(admitted.map((r) => r.index)).toEqual(admitted.map((_, k) => before + k));
    expect(admitted.map((r) => r.actionId)).toEqual(
      calls.filter((c) => c.want === 'ok').map((c) => c.t.action_id),
    );
    // bob's line goes on from where it really ends
    const next = mintToken(
      {
        actor: actors[1]!.id,
        actorClass: 'human',
        event: 'secret-proxied',
        erachter: 'after the forgery',
        prev: lines[1]![9]!,
      },
      actors[1]!,
      { clock, random: seededRandom('next') },
    );
    await log.append(next);
    await log.close();
    const text = segmentFiles(dir)
      .map((f) => readFileSync(join(dir, 'segments', f), 'utf8'))
      .join('');
    expect(text).not.toContain(forged.signature);
    expect(text).not.toContain(lines[1]![11]!.action_id);
    expect(text).not.toContain(stranger[0]!.action_id);
    const rep = await verifyLog(dir, {
      registry,
      logPublicKey: logKey.signingPublicKey,
      workers: 0,
    });
    expect(rep.ok).toBe(true);
    expect(rep.size).toBe(before + admitted.length + 1);
  });

  it('build each line from the token as it was at the call, whatever the caller changes later', async () => {
    const tokens = interleave(burst(8, actors, 'changed'));
    const bytes: string[] = [];
    for (const workers of [0, 2, -1]) {
      const dir = tmpDir('tibet-append-workers-');
      dirs.push(dir);
      const log = await openWarm(dir, Math.max(0, workers));
      // the caller's own objects, changed right after each call (while the signatures are
      // being checked): a signature that verifies over nothing, another id, another reason
      const mine = tokens.map((t) => ({ ...t }));
      // -1: a lone append (checked on the calling thread once this turn of the event loop ends)
      const pending = workers === -1 ? [log.append(mine[0]!)] : mine.map((t) => log.append(t));
      for (const t of mine) {
        (t as { signature: string }).signature = forge(t).signature;
        (t as { action_id: string }).action_id = 'act_0000000000000000';
        (t as { erachter: string }).erachter = 'changed';
        (t as { generation: number }).generation = 99;
      }
      const receipts = await Promise.all(pending);
      const want = workers === -1 ? tokens.slice(0, 1) : tokens;
      expect(receipts.map((r) => r.actionId)).toEqual(want.map((t) => t.action_id));
      await log.close();
      const rep = await verifyLog(dir, {
        registry,
        logPublicKey: logKey.signingPublicKey,
        workers: 0,
      });
      expect(rep.ok).toBe(true);
      const text = segmentFiles(dir)
        .map((f) => readFileSync(join(dir, 'segments', f), 'utf8'))
        .join('');
      expect(text).not.toContain('changed"');
      expect(text).not.toContain('act_0000000000000000');
      if (workers !== -1) bytes.push(text);
    }
    expect(bytes[1]).toBe(bytes[0]);
  });

  it('refuses object and continuity ids that are not strings', async () => {
    const dir = tmpDir('tibet-append-workers-');
    dirs.push(dir);
    const log = await openWarm(dir, 0);
    const [t] = burst(1, [actors[1]!], 'not-a-string')[0]!;
    for (const opts of [{ objectId: 12345 }, { continuityId: 7 }, { parentObjectId: ['x'] }])
      await expect(log.append(t!, opts as never)).rejects.toThrow(TypeError);
    await expect(log.append(t!)).resolves.toMatchObject({ actionId: t!.action_id });
    await log.close();
  });

  it('a closed log refuses appends; close waits for the ones being checked', async () => {
    const dir = tmpDir('tibet-append-workers-');
    dirs.push(dir);
    const log = await openWarm(dir, 2);
    const tokens = interleave(burst(20, actors, 'close'));
    const pending = tokens.map((t) => settle(log.append(t)));
    await log.close();
    const outcomes = await Promise.all(pending);
    expect(outcomes.every((o) => typeof o !== 'string')).toBe(true);
    await expect(log.append(burst(1, [actors[0]!], 'late')[0]![0]!)).rejects.toMatchObject({
      code: 'LOG_CLOSED',
    });
  });
});

/** Checks with known answers: forged signatures, altered messages and wrong keys among them. */
function checks(
  n: number,
  seed: string,
): { key: Uint8Array; sig: Uint8Array; message: Uint8Array; want: boolean }[] {
  const p = getProvider('node');
  const per = Math.ceil(n / actors.length);
  return interleave(burst(per, actors, seed))
    .slice(0, n)
    .map((t, i) => {
      const a = actors.find((x) => x.id === t.actor)!;
      const sig = fromBase64Url(t.signature, 'signature');
      if (i % 5 === 2) sig[0]! ^= 0x80; // forged
      const message = tokenSigningInput(t);
      if (i % 7 === 3) message[message.length - 2]! ^= 0x01; // altered message
      const key = (i % 11 === 4 ? actors[(actors.indexOf(a) + 1) % actors.length]! : a)
        .signingPublicKey; // wrong key
      return { key, sig, message, want: p.ed25519Verify(key, message, sig) };
    });
}

/** A ring whose verdicts land in a map (each check's exactly once, or the test fails). */
function ringWith(
  n: number,
  script: URL,
  o?: { slots?: number; messageBytes?: number },
): { ring: SigRing<number>; got: Map<number, boolean>; settled: () => Promise<void> } {
  const got = new Map<number, boolean>();
  let wake: () => void = () => undefined;
  const ring = new SigRing<number>(
    n,
    script,
    'node',
    getProvider('node'),
    (done) => {
      for (const [i, ok] of done) {
        expect(got.has(i)).toBe(false);
        got.set(i, ok);
      }
      wake();
    },
    o,
  );
  const settled = (): Promise<void> =>
    new Promise<void>((r) => {
      wake = r;
    });
  return { ring, got, settled };
}

describe("SigRing (appended tokens' signatures, checked on workers in shared memory)", () => {
  it('answers as the calling thread does, check by check, through wrap-arounds and a full ring', async () => {
    const script = workerScript()!;
    expect(script).toBeDefined();
    const items = checks(240, 'ring');
    expect(items.filter((x) => !x.want).length).toBeGreaterThan(30);
    expect(items.filter((x) => x.want).length).toBeGreaterThan(30);
    // 8 slots and room for about 5 messages: the ring fills and wraps many times over, and
    // what does not fit waits (with copies of its bytes) for a slot
    const { ring, got, settled } = ringWith(2, script, { slots: 8, messageBytes: 5 * 700 });
    // the caller's buffers are reused at once, as the writer's signature scratch is (Buffers,
    // whose slice() is a view, not a copy)
    const keyScratch = Buffer.alloc(32);
    const sigScratch = Buffer.alloc(64);
    const msgScratch = Buffer.alloc(4096);
    items.forEach((x, i) => {
      keyScratch.set(x.key);
      sigScratch.set(x.sig);
      msgScratch.set(x.message);
      const message = msgScratch.subarray(0, x.message.length);
      expect(ring.submit(keyScratch, sigScratch, message, i)).toBe(true);
      keyScratch.fill(0);
      sigScratch.fill(0);
      msgScratch.fill(0);
    });
    expect(ring.pending).toBe(items.length);
    while (got.size < items.length) await settled();
    expect(items.map((_, i) => got.get(i))).toEqual(items.map((x) => x.want));
    expect(ring.pending).toBe(0);
    // what cannot go in is refused, nothing queued: a message larger than the ring, bad sizes
    expect(ring.submit(items[0]!.key, items[0]!.sig, new Uint8Array(5 * 700 + 1), -1)).toBe(false);
    expect(ring.submit(items[0]!.key.subarray(1), items[0]!.sig, items[0]!.message, -1)).toBe(
      false,
    );
    expect(ring.submit(items[0]!.key, items[0]!.sig.subarray(1), items[0]!.message, -1)).toBe(
      false,
    );
    expect(ring.pending).toBe(0);
    await ring.close();
    expect(ring.submit(items[0]!.key, items[0]!.sig, items[0]!.message, -1)).toBe(false);
  }, 60_000);

  it('rings the writer only while it asks to be rung; collect() and ringing = true look at once', async () => {
    const items = checks(24, 'ring-quiet');
    const { ring, got, settled } = ringWith(2, workerScript()!);
    const until = Date.now() + 30_000;
    while (ring.ready < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    ring.ringing = false;
    items.forEach((x, i) => expect(ring.submit(x.key, x.sig, x.message, i)).toBe(true));
    // (two running workers check 24 signatures in a few milliseconds)
    await new Promise((r) => setTimeout(r, 300));
    expect(got.size).toBe(0); // nothing rang
    while (got.size < items.length && Date.now() < until) {
      ring.collect();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(items.map((_, i) => got.get(i))).toEqual(items.map((x) => x.want));
    // turned back on: what is there is read at once, the rest rings
    const more = checks(24, 'ring-quiet-2');
    more.forEach((x, i) => expect(ring.submit(x.key, x.sig, x.message, 100 + i)).toBe(true));
    await new Promise((r) => setTimeout(r, 300));
    expect(got.size).toBe(items.length);
    ring.ringing = true;
    expect(got.size).toBeGreaterThan(items.length);
    while (got.size < items.length + more.length) await settled();
    expect(more.map((_, i) => got.get(100 + i))).toEqual(more.map((x) => x.want));
    await ring.close();
  }, 60_000);

  it('close() checks what is still pending on the calling thread: nothing hangs, nothing is skipped', async () => {
    const items = checks(200, 'ring-close');
    // (64 slots: most of the 200 are still waiting for one when close() comes)
    const { ring, got } = ringWith(1, workerScript()!, { slots: 64 });
    items.forEach((x, i) => expect(ring.submit(x.key, x.sig, x.message, i)).toBe(true));
    await ring.close();
    expect(items.map((_, i) => got.get(i))).toEqual(items.map((x) => x.want));
  }, 60_000);

  it('a worker that dies holding checks: the writer takes them back and checks them itself', async () => {
    // worker 0 takes the first three checks as a real one does, then fails without answering;
    // worker 1 (when there is one) is a real one, started once worker 0 holds its three
    const dir = tmpDir('tibet-sig-ring-');
    dirs.push(dir);
    const fake = join(dir, 'dying-worker.mjs');
    const dist = (pkg: string, file: string): string =>
      JSON.stringify(join(PKG, '..', pkg, 'dist', file));
    writeFileSync(
      fake,
      `import { existsSync, writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { getProvider } from ${dist('core', 'index.js')};
import { READY, TAKEN, serveSigRing, slotStates } from ${dist('continuityd', 'sig-ring.js')};
const d = workerData.ring;
const held = ${JSON.stringify(join(dir, 'held'))} + '-' + d.slots;
const nap = new Int32Array(new SharedArrayBuffer(4));
if (d.worker !== 0) {
  while (!existsSync(held)) Atomics.wait(nap, 0, 0, 1);
  serveSigRing(d, getProvider('node'), (m) => parentPort.postMessage(m));
} else {
  const states = slotStates(d);
  let taken = 0;
  while (taken < 3) {
    for (let s = 0; s < 3; s++)
      if (Atomics.compareExchange(states, s, READY, TAKEN + d.worker) === READY) taken++;
    Atomics.wait(nap, 0, 0, 1);
  }
  writeFileSync(held, '');
  throw new Error('worker lost');
}
`,
    );
    for (const workers of [1, 2]) {
      const items = checks(40, `ring-dies-${workers}`);
      // (a ring of its own size per round: the rounds' flag files differ)
      const { ring, got, settled } = ringWith(workers, pathToFileURL(fake), {
        slots: 64 * workers,
      });
      items.forEach((x, i) => expect(ring.submit(x.key, x.sig, x.message, i)).toBe(true));
      while (got.size < items.length) await settled();
      expect(items.map((_, i) => got.get(i))).toEqual(items.map((x) => x.want));
      expect(ring.alive).toBe(workers - 1);
      // with no worker left the ring takes nothing more: the caller checks on its own thread
      if (workers === 1)
        expect(ring.submit(items[0]!.key, items[0]!.sig, items[0]!.message, 99)).toBe(false);
      await ring.close();
    }
  }, 60_000);
});

describe('BatchRing (the shared memory verifyLog hands batches over in)', () => {
  const bytes = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

  it('copies batches in, first in first out, wrapping around, never over one in use', () => {
    const ring = new BatchRing(100);
    const a = ring.copyIn(bytes(40, 1))!;
    const b = ring.copyIn(bytes(40, 2))!;
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([a.byteOffset, b.byteOffset]).toEqual([0, 40]);
    expect(ring.copyIn(bytes(30, 3))).toBeUndefined(); // 20 left at the end, 0 before a
    ring.free(a);
    const c = ring.copyIn(bytes(30, 3))!; // wraps to the start, before b
    expect(c.byteOffset).toBe(0);
    expect(ring.copyIn(bytes(11, 4))).toBeUndefined(); // 10 between c and b
    const d = ring.copyIn(bytes(10, 4))!;
    expect(d.byteOffset).toBe(30);
    expect([...b].every((x) => x === 2) && [...c].every((x) => x === 3)).toBe(true);
    expect(() => ring.free(c)).toThrow(/oldest first/);
    ring.free(b);
    ring.free(c);
    ring.free(d);
    expect(ring.copyIn(bytes(100, 5))!.byteOffset).toBe(0); // empty again: all of it
    expect(ring.copyIn(bytes(1, 6))).toBeUndefined();
    expect(ring.holds(d) && !ring.holds(bytes(1, 0))).toBe(true);
    expect(new BatchRing(10).copyIn(bytes(11, 0))).toBeUndefined();
    expect(new BatchRing(10).copyIn(new Uint8Array(0))).toBeUndefined();
    expect(() => new BatchRing(10).free(bytes(1, 0))).toThrow(/oldest first/);
  });
});

describe('a process with a log whose workers are idle', () => {
  // started with a V8 flag (which a worker refuses when it is passed on explicitly): the
  // workers still start, for the writer and for verifyLog
  it('exits on its own after its appends, without close()', async () => {
    const dir = tmpDir('tibet-append-workers-');
    dirs.push(dir);
    const script = join(dir, 'burst.mjs');
    const tokens = interleave(burst(16, actors, 'child'));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify(tokens));
    writeFileSync(
      script,
      `import { readFileSync } from 'node:fs';
import { IdentityRegistry, fixedClock } from '${pathUrl(PKG, '../core/dist/index.js')}';
import { testIdentity } from '${pathUrl(PKG, '../core/dist/testing.js')}';
import { AuditLog, verifyLog } from '${pathUrl(PKG, 'dist/index.js')}';
const registry = new IdentityRegistry();
for (const id of ${JSON.stringify(actors.map((a) => a.id))}) registry.add(testIdentity(id, 'human'));
const signer = testIdentity('jis:acme:continuityd', 'system');
const log = await AuditLog.open({ dir: ${JSON.stringify(join(dir, 'log'))}, signer, registry, clock: fixedClock('2026-11-29T02:00:00.000Z'), checkpointEvery: 0, verifyWorkers: 2 });
const tokens = JSON.parse(readFileSync(${JSON.stringify(join(dir, 'tokens.json'))}, 'utf8'));
await Promise.all(tokens.slice(0, 4).map((t) => log.append(t)));
while (log.verifyWorkersReady < 2) await new Promise((r) => setTimeout(r, 10));
const r = await Promise.all(tokens.slice(4).map((t) => log.append(t)));
process.stdout.write('appended ' + (r.length + 4) + ' workers ' + log.verifyWorkersReady + '\\n');
const v = await verifyLog(${JSON.stringify(join(dir, 'log'))}, { registry, logPublicKey: signer.signingPublicKey, workers: 2, batchLines: 4 });
process.stdout.write('verified ' + v.ok + ' ' + v.size + ' workers ' + v.stats.workers + '\\n');
`,
    );
    const started = Date.now();
    const { code, out } = await new Promise<{ code: number | null; out: string }>((res) => {
      const child = spawn(process.execPath, ['--max-old-space-size=512', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        res({ code: c, out });
      });
    });
    expect(code).toBe(0);
    expect(out.trim().split('\n')).toEqual([
      `appended ${tokens.length} workers 2`,
      `verified true ${tokens.length} workers 2`,
    ]);
    expect(Date.now() - started).toBeLessThan(30_000);
    const rep = await verifyLog(join(dir, 'log'), {
      registry,
      logPublicKey: logKey.signingPublicKey,
      workers: 0,
    });
    expect(rep.ok).toBe(true);
    expect(rep.size).toBe(tokens.length);
  }, 60_000);
});

function pathUrl(base: string, rel: string): string {
  return new URL(rel, `file://${base}/`).href;
}
