// Restarts and races with real processes: vault-child.mjs runs the BUILT packages with plain
// node, is killed with SIGKILL, and a new process takes over; two processes race to release
// one vault through a continuityd daemon.
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { utf8 } from '@tibet/core';
import { AuditLog, DaemonClient, serveLog } from '@tibet/continuityd';
import { Keychain } from '@tibet/keychain';
import { Vault, runWatcher, type CheckReport } from '@tibet/vault';
import {
  alice,
  at,
  bob,
  cleanup,
  ensureBuilt,
  events,
  logKey,
  makeDirectory,
  readLog,
  service,
  setup,
  spawnChild,
  tmpHome,
  vaultKey,
  type ChildHandle,
} from './fixtures/helpers.js';
import { fixedClock } from '@tibet/core/testing';

const dirs: string[] = [];
const children: ChildHandle[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
  cleanup(dirs);
});

beforeAll(() => ensureBuilt(), 240_000);

const CONTENT = utf8('restart-test content: 7f3a91c2 never in the log');

/** A home with one dead-man vault (deadline T0 + 1 h), created in this process, log closed. */
async function prepared(): Promise<{ home: string; vaultId: string; secretId: string }> {
  const home = tmpHome(dirs);
  const s = await setup(home);
  try {
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'if alice goes quiet for an hour',
      deadMan: 'PT1H',
      beneficiaries: [bob.id],
    });
    return { home, vaultId: c.info.vault_id, secretId: c.info.secret_id };
  } finally {
    await s.close();
  }
}

function reportsOf(c: ChildHandle): CheckReport[] {
  return c.lines.filter((l) => l.kind === 'report').map((l) => l.data as unknown as CheckReport);
}

async function reports(c: ChildHandle, n: number): Promise<CheckReport[]> {
  for (let k = 0; k < 400 && reportsOf(c).length < n; k++)
    await new Promise((r) => setTimeout(r, 25));
  const got = reportsOf(c);
  expect(
    got.length,
    `stderr: ${(await Promise.race([c.exited, Promise.resolve(null)]))?.stderr ?? ''}`,
  ).toBeGreaterThanOrEqual(n);
  return got;
}

describe('a restart across the deadline', () => {
  it('a watcher killed while sealed; the deadline passes while down; the next start releases, once', async () => {
    const { home, vaultId, secretId } = await prepared();
    // 1. a watcher before the deadline, killed with SIGKILL (it holds the log's and maybe a vault's lock)
    const a = spawnChild({ home, at: at(0.5).toISOString(), mode: 'watch' });
    children.push(a);
    const early = await reports(a, 2);
    expect(early.every((r) => r.vaults[0]!.outcome === 'sealed')).toBe(true);
    a.kill();
    expect((await a.exited).signal).toBe('SIGKILL');

    // 2. the next start is after the deadline: its first check releases
    const b = spawnChild({ home, at: at(3).toISOString(), mode: 'watch' });
    children.push(b);
    const later = await reports(b, 3);
    expect(later[0]!.vaults[0]).toMatchObject({ vault_id: vaultId, outcome: 'released' });
    expect(later.slice(1).every((r) => r.vaults[0]!.outcome === 'already-released')).toBe(true);
    b.kill();
    await b.exited;

    // 3. another start: nothing more happens
    const c = spawnChild({ home, at: at(4).toISOString(), mode: 'watch' });
    children.push(c);
    expect((await reports(c, 1))[0]!.vaults[0]!.outcome).toBe('already-released');
    c.kill();
    await c.exited;

    const log = await readLog(join(home, 'log'));
    expect(events(log, 'vault-released')).toHaveLength(1);
    expect(events(log, 'vault-release-completed')).toHaveLength(1);
    const delegated = events(log, 'secret-delegated');
    expect(delegated).toHaveLength(1);
    expect(delegated[0]!.token.eromheen).toMatchObject({ authority_mode: 'system' });
    expect(delegated[0]!.token.erachter).toBe(
      `dead-man: no heartbeat since ${at(0).toISOString()} (interval PT1H)`,
    );
    expect(events(log, 'vault-released')[0]!.token.erin).toMatchObject({
      due_at: at(1).toISOString(),
      observed_at: at(3).toISOString(),
      late_by_ms: 2 * 3_600_000,
    });

    // bob opens in this process, after all of that
    const s = await setup(home, at(5));
    try {
      const o = await s.vault.open({ actor: bob, vaultId });
      expect(Buffer.from(o.content).equals(Buffer.from(CONTENT))).toBe(true);
      o.content.fill(0);
      expect((await s.kc.state(secretId)).owner_id).toBe(bob.id);
    } finally {
      await s.close();
    }
  });

  it('killed after the release is durable, before the keychain transfer: the next start finishes it, once', async () => {
    const { home, vaultId, secretId } = await prepared();
    const a = spawnChild({ home, at: at(2).toISOString(), mode: 'watch', hangAt: 'released' });
    children.push(a);
    await a.waitFor('hang');
    a.kill();
    await a.exited;
    let log = await readLog(join(home, 'log'));
    expect(events(log, 'vault-released')).toHaveLength(1);
    expect(events(log, 'secret-delegated')).toHaveLength(0);

    // a watcher embedded in this process (as a daemon would run it) picks it up on start
    const s = await setup(home, at(2.5));
    try {
      const seen: CheckReport[] = [];
      const rounds = await runWatcher({
        vaults: s.vault,
        once: true,
        onCheck: (r) => seen.push(r),
      });
      expect(rounds).toBe(1);
      expect(seen[0]!.vaults[0]).toMatchObject({
        vault_id: vaultId,
        outcome: 'completed',
        status: 'released',
      });
      const again = await s.vault.check();
      expect(again.vaults[0]!.outcome).toBe('already-released');
      expect((await s.kc.state(secretId)).owner_id).toBe(bob.id);
      // the release keeps the time it was decided at, by the process that died
      expect((await s.vault.info(vaultId)).release).toMatchObject({
        decided_at: at(2).toISOString(),
        transfer: 'done',
      });
    } finally {
      await s.close();
    }
    log = await readLog(join(home, 'log'));
    expect(events(log, 'vault-released')).toHaveLength(1);
    expect(events(log, 'secret-delegated')).toHaveLength(1);
    expect(events(log, 'secret-policy-changed')).toHaveLength(1);
    expect(events(log, 'vault-release-completed')).toHaveLength(1);
    expect(events(log, 'secret-delegated')[0]!.token.parent_action_id).toBe(
      events(log, 'vault-released')[0]!.token.action_id,
    );
  });
});

describe('two watchers racing', () => {
  it('release once: two processes through one daemon, started at the same moment', async () => {
    const { home, vaultId } = await prepared();
    const directory = makeDirectory();
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
    });
    const socketPath = join(home, 'd.sock');
    const daemon = await serveLog({ log, socketPath });
    try {
      const racers = [0, 1].map(() =>
        spawnChild({ home, socketPath, at: at(2).toISOString(), mode: 'race' }),
      );
      children.push(...racers);
      await Promise.all(racers.map((r) => r.waitFor('ready')));
      for (const r of racers) r.proc.stdin!.write('go\n');
      const results = await Promise.all(racers.map((r) => r.waitFor('report')));
      const outcomes = results.map((r) => (r as unknown as CheckReport).vaults[0]!.outcome).sort();
      expect(outcomes).toEqual(['already-released', 'released']);
      for (const r of racers) expect((await r.exited).code).toBe(0);

      // and a third watcher in this process, through the same daemon
      const audit = new DaemonClient({ socketPath });
      const clock = fixedClock(at(3));
      const kc = new Keychain({ home, audit, service, directory, clock });
      const v = new Vault({ home, keychain: kc, identity: vaultKey, clock });
      expect((await v.check()).vaults).toMatchObject([
        { vault_id: vaultId, outcome: 'already-released' },
      ]);
      await log.drain();
    } finally {
      await daemon.close();
      await log.close();
    }
    const records = await readLog(join(home, 'log'));
    expect(events(records, 'vault-released')).toHaveLength(1);
    expect(events(records, 'secret-delegated')).toHaveLength(1);
    expect(events(records, 'vault-release-completed')).toHaveLength(1);
  });
});
