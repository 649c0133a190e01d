import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry, utf8, type TibetToken } from '@tibet/core';
import { manualClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  EmbeddedClient,
  nodeIo,
  readRecordFrom,
  type AuditClient,
  type LogIo,
} from '@tibet/continuityd';
import { Keychain, KeychainError, KeychainTimeline, LogFolderSource } from '@tibet/keychain';

const service = testIdentity('jis:acme:keychain', 'system');
const logKey = testIdentity('jis:acme:auditlog', 'system');
const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'human');
const bot = testIdentity('jis:acme:release-bot', 'mcp-server');
const gw = testIdentity('jis:acme:gateway', 'gateway');
const TOKEN = utf8('pypi-AgEIcHlwaS5vcmcCJDQ1ZmM0-the-real-secret');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(io?: LogIo) {
  const home = mkdtempSync(join(tmpdir(), 'tibet-kc-'));
  dirs.push(home);
  const directory = new IdentityRegistry();
  for (const who of [service, alice, bob, bot, gw]) directory.add(who);
  const clock = manualClock('2026-11-28T12:00:00.000Z');
  const log = await AuditLog.open({
    dir: join(home, 'log'),
    signer: logKey,
    registry: directory,
    clock,
    ...(io ? { io } : {}),
  });
  const audit: AuditClient = new EmbeddedClient(log);
  const kc = new Keychain({ home, audit, service, directory, clock, random: seededRandom(home) });
  return { home, log, audit, kc, clock };
}

async function events(home: string, log: AuditLog): Promise<TibetToken[]> {
  await log.drain();
  const out: TibetToken[] = [];
  for (let i = 0; i < log.durableSize; i++)
    out.push((await readRecordFrom(join(home, 'log'), i)).token);
  return out;
}

function filesContaining(root: string, needle: Uint8Array): string[] {
  const hits: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (readFileSync(p).includes(Buffer.from(needle))) hits.push(p);
    }
  };
  walk(root);
  return hits;
}

describe('Keychain', () => {
  it('imports, reveals, delegates, proxies, exposes, rotates — every step on the timeline', async () => {
    const { home, log, kc } = await setup();
    const add = await kc.add({
      actor: alice,
      secretId: 'sec_pypi_001',
      type: 'pypi_token',
      issuer: 'pypi.org',
      scope: 'upload:acme-lib',
      material: TOKEN.slice(),
      reason: 'publish token for acme-lib',
      source: 'stdin',
    });
    expect(add.record).toMatchObject({
      secret_id: 'sec_pypi_001',
      owner_id: alice.id,
      custodian_id: service.id,
      exposure_state: 'sealed',
      rotation_required: false,
    });
    const shown = await kc.reveal({
      actor: alice,
      secretId: 'sec_pypi_001',
      reason: 'check the token',
    });
    expect(shown.material).toEqual(TOKEN);
    await kc.delegate({
      actor: alice,
      secretId: 'sec_pypi_001',
      role: 'active_operator',
      assignee: bot.id,
      reason: 'release bot publishes acme-lib',
    });
    const used = await kc.use({
      actor: gw,
      secretId: 'sec_pypi_001',
      onBehalfOf: bot.id,
      targetAction: '/upload/pypi',
      lane: 'publish',
      reason: 'publish acme-lib 1.2.0',
    });
    expect(used.material).toEqual(TOKEN);
    expect(used.record.exposure_state).toBe('in-use');
    // bob is neither the operator nor allowed: denied, and the denial is on the timeline
    await expect(
      kc.use({ actor: gw, secretId: 'sec_pypi_001', onBehalfOf: bob.id, reason: 'try' }),
    ).rejects.toMatchObject({ code: 'NOT_AUTHORIZED' });
    await kc.expose({
      actor: bob,
      secretId: 'sec_pypi_001',
      exposure: 'log-leaked',
      evidence: 'ci log #4411 line 88',
      reason: 'token printed in CI log',
    });
    await expect(
      kc.use({ actor: gw, secretId: 'sec_pypi_001', onBehalfOf: bot.id, reason: 'publish again' }),
    ).rejects.toMatchObject({ code: 'SECRET_EXPOSED' });
    const rot = await kc.rotate({
      actor: alice,
      secretId: 'sec_pypi_001',
      material: utf8('pypi-NEW-token-value'),
      reason: 'rotate after CI leak',
    });
    expect(rot.record).toMatchObject({ exposure_state: 'sealed', rotation_required: false });
    expect(rot.state.versions.map((v) => v.state)).toEqual(['compromised', 'active']);
    const again = await kc.use({
      actor: gw,
      secretId: 'sec_pypi_001',
      onBehalfOf: bot.id,
      reason: 'publish 1.2.1',
    });
    expect(again.material).toEqual(utf8('pypi-NEW-token-value'));
    const evs = (await events(home, log)).map((t) => t.event);
    expect(evs).toEqual([
      'secret-imported',
      'secret-unsealed',
      'secret-delegated',
      'secret-proxied',
      'secret-denied',
      'secret-exposed',
      'secret-denied',
      'secret-rotated',
      'secret-proxied',
    ]);
    // the token's bytes are in no file but its sealed bundle (and not even there in the clear)
    expect(filesContaining(home, TOKEN)).toEqual([]);
    await log.close();
  });

  it('refuses illegal transitions with stable codes', async () => {
    const { log, kc } = await setup();
    await kc.add({
      actor: alice,
      secretId: 'sec_gh_1',
      type: 'github_pat',
      issuer: 'github.com',
      scope: 'repo',
      material: utf8('ghp_x'),
      reason: 'r',
    });
    await expect(
      kc.reveal({ actor: bob, secretId: 'sec_gh_1', reason: 'peek' }),
    ).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(
      kc.delegate({
        actor: bob,
        secretId: 'sec_gh_1',
        role: 'custodian',
        assignee: bob.id,
        reason: 'grab',
      }),
    ).rejects.toMatchObject({ code: 'NOT_AUTHORIZED' });
    await kc.revoke({ actor: alice, secretId: 'sec_gh_1', reason: 'no longer needed' });
    await expect(
      kc.reveal({ actor: alice, secretId: 'sec_gh_1', reason: 'peek' }),
    ).rejects.toMatchObject({ code: 'INVALID_TRANSITION' });
    await kc.destroy({ actor: alice, secretId: 'sec_gh_1', reason: 'shred' });
    await expect(
      kc.rotate({ actor: alice, secretId: 'sec_gh_1', reason: 'r' }),
    ).rejects.toMatchObject({ code: 'SECRET_DESTROYED' });
    expect((await kc.state('sec_gh_1')).lifecycle_state).toBe('destroyed');
    await expect(
      kc.add({
        actor: alice,
        secretId: 'sec_gh_1',
        type: 'github_pat',
        issuer: 'x',
        scope: 'y',
        material: utf8('z'),
        reason: 'r',
      }),
    ).rejects.toMatchObject({ code: 'SECRET_EXISTS' });
    await log.close();
  });

  it('an owner handoff waits for the new owner to accept (co-signed)', async () => {
    const { log, kc } = await setup();
    await kc.add({
      actor: alice,
      secretId: 'sec_root_1',
      type: 'root_password',
      issuer: 'db01',
      scope: 'root',
      reason: 'generate root password',
    });
    await kc.delegate({
      actor: alice,
      secretId: 'sec_root_1',
      role: 'owner',
      assignee: bob.id,
      reason: 'bob takes over db01',
    });
    expect((await kc.show('sec_root_1')).owner_id).toBe(alice.id);
    await expect(
      kc.accept({ actor: alice, secretId: 'sec_root_1', reason: 'x' }),
    ).rejects.toMatchObject({ code: 'NOT_AUTHORIZED' });
    await kc.accept({ actor: bob, secretId: 'sec_root_1', reason: 'I take it' });
    expect((await kc.show('sec_root_1')).owner_id).toBe(bob.id);
    // the material was resealed: alice can no longer open it, bob can
    expect(
      (await kc.reveal({ actor: bob, secretId: 'sec_root_1', reason: 'login' })).material.length,
    ).toBe(28);
    await log.close();
  });

  it('does not change state when the audit log cannot be written', async () => {
    let fail = false;
    const io: LogIo = {
      ...nodeIo,
      datasync: async (fh) => {
        if (fail) throw new Error('EIO');
        return nodeIo.datasync(fh);
      },
    };
    const { log, kc } = await setup(io);
    await kc.add({
      actor: alice,
      secretId: 'sec_x_1',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k'),
      reason: 'r',
    });
    fail = true;
    await expect(
      kc.suspend({ actor: alice, secretId: 'sec_x_1', reason: 'pause' }),
    ).rejects.toSatisfy((e) => KeychainError.is(e) && e.code === 'AUDIT_FAILED');
    expect((await kc.state('sec_x_1')).lifecycle_state).toBe('active');
    expect(await kc.store.revisions('sec_x_1')).toEqual([1]);
    await log.close().catch(() => undefined);
  });

  it('recovers a crash between the log append and the HEAD update', async () => {
    const { log, kc, home, audit } = await setup();
    await kc.add({
      actor: alice,
      secretId: 'sec_y_1',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k'),
      reason: 'r',
    });
    // simulate: the next operation crashed right after its event became durable
    const commit = kc.store.commit.bind(kc.store);
    kc.store.commit = () => Promise.reject(new Error('crash before HEAD'));
    await expect(
      kc.suspend({ actor: alice, secretId: 'sec_y_1', reason: 'pause' }),
    ).rejects.toThrow('crash before HEAD');
    kc.store.commit = commit;
    const fresh = new Keychain({ home, audit, service, directory: kc.directory });
    expect((await fresh.state('sec_y_1')).lifecycle_state).toBe('suspended');
    await log.close();
  });
});

describe('capsules bound to a version', () => {
  it('a use for the current version replays cleanly; after a rotation it is refused', async () => {
    const { home, log, kc } = await setup();
    await kc.add({
      actor: alice,
      secretId: 'sec_v_1',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k1'),
      reason: 'r',
      activeOperator: bot.id,
    });
    const used = await kc.use({
      actor: gw,
      secretId: 'sec_v_1',
      onBehalfOf: bot.id,
      expectVersion: 1,
      reason: 'capsule for v1',
    });
    expect(used.material).toEqual(utf8('k1'));
    await kc.rotate({ actor: alice, secretId: 'sec_v_1', material: utf8('k2'), reason: 'rotate' });
    await expect(
      kc.use({
        actor: gw,
        secretId: 'sec_v_1',
        onBehalfOf: bot.id,
        expectVersion: 1,
        reason: 'old capsule',
      }),
    ).rejects.toMatchObject({ code: 'VERSION_MISMATCH' });
    await log.drain();
    const h = await new KeychainTimeline(new LogFolderSource(join(home, 'log'))).history('sec_v_1');
    expect(h.problems).toEqual([]);
    expect(h.entries.map((e) => e.event)).toEqual([
      'secret-imported',
      'secret-proxied',
      'secret-rotated',
      'secret-denied',
    ]);
    await log.close();
  });
});
