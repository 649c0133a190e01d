/**
 * Several processes, one log: a continuityd daemon (serveLog, in this process, on a Unix
 * socket) and four real child processes (test/fixtures/keychain-child.mjs, plain node on the
 * BUILT packages), each with its own Keychain and a DaemonClient on the same home, released
 * together, each doing ~25 operations on ONE shared secret and on a secret of its own, and
 * all four racing to create the same new secret. Afterwards, from the files:
 *
 *  - nothing lost, nothing invented: every acknowledged operation's event is in the log
 *    exactly once (same action, event, revision, reason), every recorded refusal is there
 *    once as `secret-denied`, and the log holds nothing else;
 *  - per secret, the acknowledged revisions are exactly 1..HEAD (a linear, contiguous
 *    chain, each revision linked to its predecessor), HEAD is the last one, and the secret's
 *    continuity line in the log is linear — each token's prev is the previous token on the
 *    line — with the state-changing events in revision order (helpers.ts `auditSecret`);
 *  - exactly one of the racing creates won;
 *  - the shared secret holds the material of the last rotation in log order.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyToken, type TibetToken } from '@tibet/core';
import {
  AuditLog,
  DaemonClient,
  EmbeddedClient,
  nodeIo,
  serveLog,
  type LogIo,
  type LogRecord,
} from '@tibet/continuityd';
import { Keychain, KeychainError, type SecretPolicy } from '@tibet/keychain';
import {
  alice,
  auditSecret,
  bob,
  bot,
  carol,
  cleanup,
  ensureBuilt,
  logKey,
  makeDirectory,
  materialFor,
  openMaterialFile,
  readLog,
  service,
  spawnChild,
  tmpHome,
  type ChildHandle,
  type ChildLine,
} from './fixtures/helpers.js';

const WORKERS = 4;
const OPS = 25;
const SHARED = 'sec_shared_001';
const directory = makeDirectory();
const dirs: string[] = [];

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => cleanup(dirs));

interface Result extends ChildLine {
  worker: number;
}

describe('four processes through one continuityd daemon', () => {
  it('lose nothing: every acknowledged event once, linear revision chains and lines', async () => {
    const home = tmpHome(dirs, 'tibet-kc-conc-');
    const seed = `concurrency:${Date.now()}`;
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
    });
    const socketPath = join(home, 'd.sock');
    const daemon = await serveLog({ log, socketPath });
    let children: ChildHandle[] = [];
    try {
      const kc0 = new Keychain({
        home,
        audit: new DaemonClient({ socketPath }),
        service,
        directory,
      });
      const created = await kc0.add({
        actor: alice,
        secretId: SHARED,
        type: 'api_key',
        issuer: 'pypi.org',
        scope: 'upload:acme-lib',
        material: materialFor(seed, 'shared:base'),
        activeOperator: bot.id,
        reason: 'the shared secret',
      });
      children = Array.from({ length: WORKERS }, (_, worker) =>
        spawnChild(
          { home, socketPath, seed, mode: 'worker', worker, ops: OPS, shared: SHARED },
          100_000,
        ),
      );
      await Promise.all(children.map((c) => c.ready));
      for (const c of children) c.proc.stdin!.write('go\n'); // released together
      const ends = await Promise.all(children.map((c) => c.exited));
      ends.forEach((e, i) =>
        expect(e, `worker ${i}: ${e.stderr}`).toMatchObject({ code: 0, signal: null }),
      );

      const results: Result[] = children.flatMap((c, worker) =>
        c.lines
          .filter((l) => ['ack', 'denied', 'exists', 'err'].includes(l.kind))
          .map((l) => ({ ...l, worker })),
      );
      expect(results.filter((r) => r.kind === 'err')).toEqual([]);
      for (let w = 0; w < WORKERS; w++) {
        expect(results.filter((r) => r.worker === w).map((r) => r.n)).toEqual(
          Array.from({ length: OPS + 2 }, (_, i) => i),
        );
        expect(children[w]!.lines.at(-1)?.kind).toBe('done');
      }
      const acks = results.filter((r) => r.kind === 'ack');
      const denied = results.filter((r) => r.kind === 'denied');
      // the race to create one new secret: one winner, three told it exists
      expect(acks.filter((r) => r.data['secret'] === 'sec_race_001').length).toBe(1);
      expect(results.filter((r) => r.kind === 'exists').map((r) => r.data['secret'])).toEqual(
        Array<string>(WORKERS - 1).fill('sec_race_001'),
      );

      await daemon.close();
      await log.drain();
      const records = await readLog(join(home, 'log'));

      // every token is the signed one its actor made
      for (const r of records) {
        const key = directory.signingKey(r.token.actor, r.token.kid);
        expect(key, r.token.actor).toBeDefined();
        expect(() => verifyToken(r.token, key!)).not.toThrow();
      }
      // nothing lost, nothing twice, nothing else
      const byAction = new Map<string, LogRecord[]>();
      for (const r of records)
        byAction.set(r.token.action_id, [...(byAction.get(r.token.action_id) ?? []), r]);
      for (const a of acks) {
        const found = byAction.get(a.data['action_id'] as string) ?? [];
        expect(found.length, JSON.stringify(a)).toBe(1);
        const r = found[0]!;
        expect(r.causal.continuity_id).toBe(a.data['secret']);
        expect(r.causal.object_id).toBe(a.data['secret']);
        expect(r.token.event).toBe(a.data['event']);
        expect(r.token.erachter).toBe(a.data['reason']);
        expect((r.token.erin as Record<string, unknown>)['revision']).toBe(a.data['revision']);
      }
      const denials = records.filter((r) => r.token.event === 'secret-denied');
      for (const d of denied) {
        const found = denials.filter(
          (r) => (r.token.erin as Record<string, unknown>)['requested_reason'] === d.data['reason'],
        );
        expect(found.length, JSON.stringify(d)).toBe(1);
        expect(found[0]!.causal.continuity_id).toBe(d.data['secret']);
        expect((found[0]!.token.erin as Record<string, unknown>)['code']).toBe(d.data['code']);
      }
      expect(byAction.get(created.token.action_id)?.length).toBe(1);
      expect(records.length).toBe(1 + acks.length + denied.length);
      expect(denied.length).toBeGreaterThan(0); // mallory's reveals at least

      // per secret: acknowledged revisions are exactly 1..HEAD; store and log agree
      const kc = new Keychain({ home, audit: new EmbeddedClient(log), service, directory });
      const ids = [
        SHARED,
        'sec_race_001',
        ...Array.from({ length: WORKERS }, (_, w) => `sec_w${w}_001`),
      ];
      expect((await kc.ids()).sort()).toEqual([...ids].sort());
      for (const id of ids) {
        const audit = await auditSecret(kc, records, id, { recover: false });
        expect(audit.problems).toEqual([]);
        const revs = acks
          .filter((a) => a.data['secret'] === id)
          .map((a) => a.data['revision'] as number);
        if (id === SHARED) revs.push(1); // created by this process
        expect(revs.sort((a, b) => a - b)).toEqual(
          Array.from({ length: audit.revisions.length }, (_, i) => i + 1),
        );
        expect((await kc.store.head(id))!.revision).toBe(audit.revisions.length);
      }

      // the shared line really interleaved the processes
      const sharedLine = records.filter((r) => r.causal.continuity_id === SHARED);
      const workerOf = (t: TibetToken): string => {
        const why =
          t.event === 'secret-denied'
            ? (t.erin as Record<string, unknown>)['requested_reason']
            : t.erachter;
        return /^w(\d) /.exec(String(why))?.[1] ?? 'parent';
      };
      let switches = 0;
      sharedLine.forEach((r, i) => {
        if (i > 0 && workerOf(r.token) !== workerOf(sharedLine[i - 1]!.token)) switches++;
      });
      expect(switches).toBeGreaterThanOrEqual(WORKERS);

      process.stdout.write(
        `[keychain concurrency] ${WORKERS} processes: ${acks.length} acknowledged, ${denied.length} refused and recorded, ` +
          `${records.length} log records; shared line ${sharedLine.length} events, ${switches} switches between processes\n`,
      );

      // the shared secret holds the last rotation's material (in log order)
      const rotations = sharedLine.filter((r) => r.token.event === 'secret-rotated');
      const lastRot = acks.find((a) => a.data['action_id'] === rotations.at(-1)?.token.action_id);
      const s = await kc.state(SHARED);
      expect(s.version).toBe(1 + rotations.length);
      expect(openMaterialFile(home, SHARED, s.material_seq, alice)).toEqual(
        materialFor(seed, (lastRot?.data['material'] as string | undefined) ?? 'shared:base'),
      );
    } finally {
      for (const c of children) c.kill();
      await daemon.close();
      await log.close().catch(() => undefined);
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------
// bugs, each reproduced deterministically: a plain test reproduces (asserting its set-up)
// and records; the `it.fails` beside it asserts only the property the bug violates
// ---------------------------------------------------------------------------------------

describe('concurrency bugs', () => {
  // FIXED (was keychain.ts `setPolicy`): the new policy is merged with `this.state(...)` read
  // BEFORE `#operate` takes the secret's lock, so two policy changes that overlap (two
  // processes, or two calls in one) each merge with the same old policy and the later commit
  // silently undoes the earlier one — a lost update, and the event of the later change
  // records a policy that drops the earlier change. Reproduction: kcB.setPolicy({use: +carol})
  // reads the policy; kcA.setPolicy({reveal: +bob}) commits; kcB commits → reveal lost.
  const lost: { policy?: SecretPolicy; events?: number } = {};
  it('reproduce: two policy changes overlap', async () => {
    const home = tmpHome(dirs, 'tibet-kc-lost-');
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
    });
    try {
      const audit = new EmbeddedClient(log);
      const kcA = new Keychain({ home, audit, service, directory });
      const kcB = new Keychain({ home, audit, service, directory });
      const id = 'sec_policy_001';
      await kcA.add({
        actor: alice,
        secretId: id,
        type: 'api_key',
        issuer: 'x',
        scope: 'y',
        material: materialFor('lost', 'm'),
        reason: 'setup',
      });
      // B's second lock (the one #operate takes) waits until A's whole change is committed
      const lock = kcB.store.lock.bind(kcB.store);
      let calls = 0;
      kcB.store.lock = async (sid, timeoutMs) => {
        if (++calls === 1)
          await kcA.setPolicy({
            actor: alice,
            secretId: id,
            policy: { reveal: ['role:owner', bob.id] },
            reason: 'let bob reveal',
          });
        return lock(sid, timeoutMs);
      };
      await kcB.setPolicy({
        actor: alice,
        secretId: id,
        policy: { use: ['role:active_operator', 'role:custodian', carol.id] },
        reason: 'let carol use',
      });
      expect(calls).toBe(1);
      lost.policy = (await kcA.state(id)).policy;
      await log.drain();
      lost.events = (await readLog(join(home, 'log'))).filter(
        (r) => r.token.event === 'secret-policy-changed',
      ).length;
      expect(lost.events).toBe(2); // both changes were accepted and recorded
      expect(lost.policy.use).toContain(carol.id);
    } finally {
      await log.close();
    }
  });
  it('FIXED: … both changes are in the final policy', () => {
    expect(lost.policy?.reveal).toContain(bob.id);
  });

  // FIXED (was keychain.ts `#operate` / `add`, the catch around `#append`): every append error is
  // treated as "not recorded" — the revision (and new material) is discarded and
  // AUDIT_FAILED thrown — but a DaemonClient timeout or dropped connection is ambiguous: the
  // daemon may have (and here did) make the event durable. The log then holds an event whose
  // revision the store threw away; store and log disagree, and the next operation's revision
  // reuses the number. Recovery would have settled it: leave the revision for `#recover`
  // (which asks the log) when the failure is not a definite refusal. Reproduction: daemon
  // whose fsync takes 2.5 s, DaemonClient with timeoutMs 1000: suspend → AUDIT_FAILED, yet
  // the log holds the secret-suspended event and the state is `active`.
  const ambiguous: { lifecycle?: string; logged?: boolean; problems?: string[] } = {};
  it('reproduce: the daemon makes the event durable after the client timed out', async () => {
    const home = tmpHome(dirs, 'tibet-kc-timeout-');
    let slow = false;
    const io: LogIo = {
      ...nodeIo,
      datasync: async (fh) => {
        if (slow) await sleep(2_500);
        return nodeIo.datasync(fh);
      },
    };
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
      io,
    });
    const socketPath = join(home, 'd.sock');
    const daemon = await serveLog({ log, socketPath });
    try {
      const kc = new Keychain({
        home,
        audit: new DaemonClient({ socketPath }, { timeoutMs: 1_000 }),
        service,
        directory,
      });
      const id = 'sec_timeout_001';
      await kc.add({
        actor: alice,
        secretId: id,
        type: 'api_key',
        issuer: 'x',
        scope: 'y',
        material: materialFor('amb', 'm'),
        reason: 'setup',
      });
      slow = true;
      await expect(kc.suspend({ actor: alice, secretId: id, reason: 'pause' })).rejects.toSatisfy(
        (e) => KeychainError.is(e) && e.code === 'AUDIT_FAILED',
      );
      slow = false;
      await log.drain();
      const records = await readLog(join(home, 'log'));
      ambiguous.logged = records.some((r) => r.token.event === 'secret-suspended');
      expect(ambiguous.logged).toBe(true);
      ambiguous.lifecycle = (await kc.state(id)).lifecycle_state;
      ambiguous.problems = (await auditSecret(kc, records, id)).problems;
    } finally {
      await daemon.close();
      await log.close();
    }
  });
  it('FIXED: … the store agrees with the log', () => {
    expect(ambiguous.problems).toEqual([]);
    expect(ambiguous.lifecycle).toBe('suspended');
  });
});
