// The vault's behaviour against real parts: files with fsync, an embedded audit log in a
// temp dir, the keychain, and a manual clock.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { utf8, verifyToken } from '@tibet/core';
import { KeychainError, KeychainTimeline, LogFolderSource } from '@tibet/keychain';
import { VaultError, formatSpan, parseDuration, vaultLine, type VaultInfo } from '@tibet/vault';
import {
  HOUR,
  T0,
  alice,
  at,
  bob,
  carol,
  cleanup,
  containsContent,
  events,
  fakeAlice,
  filesContaining,
  mallory,
  readLog,
  setup,
  tmpHome,
  vaultKey,
  type Setup,
} from './fixtures/helpers.js';

const dirs: string[] = [];
const open: Setup[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  cleanup(dirs);
});

const CONTENT = utf8('the recovery phrase: correct horse battery staple 0xC0FFEE');

async function home(start: string | Date = T0): Promise<Setup> {
  const s = await setup(tmpHome(dirs), start);
  open.push(s);
  return s;
}

async function refusal(p: Promise<unknown>): Promise<VaultError> {
  try {
    await p;
  } catch (e) {
    if (VaultError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a VaultError');
}

describe('durations', () => {
  it('parses fixed-length ISO 8601 durations and refuses the rest', () => {
    expect(parseDuration('P30D')).toBe(30 * 24 * HOUR);
    expect(parseDuration('PT12H')).toBe(12 * HOUR);
    expect(parseDuration('P1DT2H30M')).toBe(26.5 * HOUR);
    expect(parseDuration('P2W')).toBe(14 * 24 * HOUR);
    expect(parseDuration('PT0.5S')).toBe(500);
    for (const bad of ['P1M', 'P1Y', 'P', 'PT', '30d', '', 'P-1D', 'P1DT', 'PT1H ', 42])
      expect(parseDuration(bad), String(bad)).toBeUndefined();
    expect(formatSpan(26.5 * HOUR + 4000)).toBe('1d 2h 30m 4s');
    expect(formatSpan(-5)).toBe('0s');
  });
});

describe('release on a date', () => {
  it('stays sealed before unlock_at, releases at it, exactly once', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'for bob, on 1 December',
      unlockAt: '2026-12-01T00:00:00Z',
      beneficiaries: [bob.id],
    });
    expect(c.info).toMatchObject({
      status: 'sealed',
      owner_id: alice.id,
      unlock_at: '2026-12-01T00:00:00.000Z',
      release_at: '2026-12-01T00:00:00.000Z',
      deadline: null,
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    expect(id).toMatch(/^vlt_[0-9a-f]{16}$/);
    expect(c.info.time_until_release_ms).toBe(Date.parse('2026-12-01T00:00:00Z') - Date.parse(T0));

    s.clock.set('2026-11-30T23:59:59.999Z');
    expect((await s.vault.check()).vaults).toMatchObject([{ vault_id: id, outcome: 'sealed' }]);
    expect((await s.vault.info(id)).time_until_release_ms).toBe(1);

    s.clock.set('2026-12-01T00:00:00.000Z');
    const r = await s.vault.check();
    expect(r.vaults).toMatchObject([
      {
        vault_id: id,
        outcome: 'released',
        status: 'released',
        reason: 'unlock_at 2026-12-01T00:00:00.000Z reached',
      },
    ]);
    s.clock.advance(HOUR);
    expect((await s.vault.check()).vaults).toMatchObject([{ outcome: 'already-released' }]);

    const info = await s.vault.info(id);
    expect(info).toMatchObject({
      status: 'released',
      release_at: null,
      time_until_release_ms: null,
    });
    expect(info.release).toMatchObject({
      trigger: 'unlock_at',
      due_at: '2026-12-01T00:00:00.000Z',
      decided_at: '2026-12-01T00:00:00.000Z',
      transfer: 'done',
      detected_by: 'check',
    });
    const ks = await s.kc.state(c.info.secret_id);
    expect(ks.owner_id).toBe(bob.id);
    expect(ks.policy.reveal).toEqual([bob.id]);

    const o = await s.vault.open({ actor: bob, vaultId: id, reason: 'read it' });
    expect(Buffer.from(o.content).equals(Buffer.from(CONTENT))).toBe(true);
    o.content.fill(0);

    await s.log.drain();
    const log = await readLog(join(s.home, 'log'));
    expect(events(log, 'vault-released')).toHaveLength(1);
    expect(events(log, 'secret-delegated')).toHaveLength(1);
    expect(events(log, 'vault-release-completed')).toHaveLength(1);
  });
});

describe('dead-man switch', () => {
  it('releases after missed heartbeats; each heartbeat resets the deadline', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'if I go quiet for a day',
      deadMan: 'P1D',
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    expect(c.info.deadline).toBe(at(24).toISOString());

    // heartbeats every 20 h keep it sealed well past the first deadline
    for (let k = 1; k <= 3; k++) {
      s.clock.set(at(20 * k));
      expect((await s.vault.check()).vaults[0]!.outcome).toBe('sealed');
      const hb = await s.vault.heartbeat({ actor: alice, vaultId: id });
      expect(hb.info.deadline).toBe(at(20 * k + 24).toISOString());
      expect(hb.info.heartbeats).toBe(k);
      expect(hb.token.actor).toBe(alice.id); // the owner's own signed token
      verifyToken(hb.token, alice.signingPublicKey);
    }
    // 60 h: last heartbeat; silence until the deadline at 84 h
    s.clock.set(new Date(at(84).getTime() - 1));
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('sealed');
    s.clock.set(at(84));
    const r = await s.vault.check();
    expect(r.vaults[0]).toMatchObject({
      outcome: 'released',
      reason: `dead-man: no heartbeat since ${at(60).toISOString()} (interval P1D)`,
    });
    // a heartbeat after the release is refused and logged
    const late = await refusal(s.vault.heartbeat({ actor: alice, vaultId: id }));
    expect(late.code).toBe('ALREADY_RELEASED');
    await s.log.drain();
    const log = await readLog(join(s.home, 'log'));
    expect(events(log, 'vault-heartbeat')).toHaveLength(3);
    const denied = events(log, 'vault-heartbeat-denied');
    expect(denied).toHaveLength(1);
    expect(denied[0]!.token.erin).toMatchObject({
      code: 'ALREADY_RELEASED',
      requested_by: alice.id,
    });
  });

  it('a heartbeat that comes after the deadline releases instead (no watcher needed)', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      deadMan: 'PT1H',
      beneficiaries: [bob.id],
    });
    s.clock.set(at(2));
    const e = await refusal(s.vault.heartbeat({ actor: alice, vaultId: c.info.vault_id }));
    expect(e.code).toBe('ALREADY_RELEASED');
    const info = await s.vault.info(c.info.vault_id);
    expect(info.status).toBe('released');
    expect(info.release).toMatchObject({ detected_by: 'heartbeat', due_at: at(1).toISOString() });
  });

  it('refuses and logs a heartbeat by anyone but the owner, or with a key not registered', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      deadMan: 'PT1H',
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    s.clock.set(at(0.5));
    for (const who of [bob, mallory]) {
      const e = await refusal(s.vault.heartbeat({ actor: who, vaultId: id }));
      expect(e.code).toBe('NOT_OWNER');
    }
    const forged = await refusal(s.vault.heartbeat({ actor: fakeAlice, vaultId: id }));
    expect(forged.code).toBe('SIGNATURE_INVALID');
    // the deadline did not move
    expect((await s.vault.info(id)).deadline).toBe(at(1).toISOString());
    await s.log.drain();
    const line = (await readLog(join(s.home, 'log'))).filter(
      (r) => r.causal.continuity_id === vaultLine(id),
    );
    const denied = events(line, 'vault-heartbeat-denied');
    expect(denied.map((r) => (r.token.erin as Record<string, unknown>)['requested_by'])).toEqual([
      bob.id,
      mallory.id,
      alice.id,
    ]);
    expect(denied.map((r) => (r.token.erin as Record<string, unknown>)['code'])).toEqual([
      'NOT_OWNER',
      'NOT_OWNER',
      'SIGNATURE_INVALID',
    ]);
    for (const d of denied) {
      expect(d.token.actor).toBe(vaultKey.id);
      verifyToken(d.token, vaultKey.signingPublicKey);
    }
    expect(events(line, 'vault-heartbeat')).toHaveLength(0);
    s.clock.set(at(1));
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('released');
  });

  it('with both unlock_at and a dead-man interval: the later of the two', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'not before the 30th, and only if I am silent',
      unlockAt: at(48),
      deadMan: 'PT10H',
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    s.clock.set(at(20)); // deadline passed, the date not
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('sealed');
    s.clock.set(at(45));
    await s.vault.heartbeat({ actor: alice, vaultId: id }); // deadline → 55 h
    s.clock.set(at(50)); // the date passed, the new deadline not
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('sealed');
    expect((await s.vault.info(id)).release_at).toBe(at(55).toISOString());
    s.clock.set(at(55));
    const r = await s.vault.check();
    expect(r.vaults[0]).toMatchObject({
      outcome: 'released',
      reason: `unlock_at ${at(48).toISOString()} reached and dead-man: no heartbeat since ${at(45).toISOString()} (interval PT10H)`,
    });
  });
});

describe('open', () => {
  it('before the release: denied and logged, even for a beneficiary; the keychain refuses too', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      unlockAt: at(10),
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    s.clock.set(at(9));
    const e = await refusal(s.vault.open({ actor: bob, vaultId: id }));
    expect(e.code).toBe('NOT_RELEASED');
    expect(e.message).toContain(at(10).toISOString());
    // around the vault, straight through the keychain: nobody may reveal it, the owner included
    for (const who of [bob, alice]) {
      await expect(
        s.kc.reveal({ actor: who, secretId: c.info.secret_id, reason: 'peek' }),
      ).rejects.toSatisfy((x: unknown) => KeychainError.is(x) && x.code === 'POLICY_DENIED');
    }
    await s.log.drain();
    const log = await readLog(join(s.home, 'log'));
    const denied = events(log, 'vault-open-denied');
    expect(denied).toHaveLength(1);
    expect(denied[0]!.token.erin).toMatchObject({
      code: 'NOT_RELEASED',
      requested_by: bob.id,
      status: 'sealed',
    });
    expect(events(log, 'secret-unsealed')).toHaveLength(0);
  });

  it('by someone who is not a beneficiary: refused, before and after the release', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      unlockAt: at(1),
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    expect((await refusal(s.vault.open({ actor: mallory, vaultId: id }))).code).toBe(
      'NOT_BENEFICIARY',
    );
    s.clock.set(at(2));
    await s.vault.check();
    for (const who of [mallory, alice])
      expect((await refusal(s.vault.open({ actor: who, vaultId: id }))).code).toBe(
        'NOT_BENEFICIARY',
      );
    // and not through the keychain either
    await expect(
      s.kc.reveal({ actor: mallory, secretId: c.info.secret_id, reason: 'peek' }),
    ).rejects.toSatisfy((x: unknown) => KeychainError.is(x) && x.code === 'POLICY_DENIED');
    await s.log.drain();
    const log = await readLog(join(s.home, 'log'));
    expect(
      events(log, 'vault-open-denied').map(
        (r) => (r.token.erin as Record<string, unknown>)['code'],
      ),
    ).toEqual(['NOT_BENEFICIARY', 'NOT_BENEFICIARY', 'NOT_BENEFICIARY']);
  });

  it('several beneficiaries: the first becomes owner, every one can open', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'to bob and carol',
      unlockAt: at(1),
      beneficiaries: [bob.id, carol.id],
    });
    s.clock.set(at(1));
    await s.vault.check();
    const ks = await s.kc.state(c.info.secret_id);
    expect(ks).toMatchObject({ owner_id: bob.id });
    expect(ks.policy.reveal).toEqual([bob.id, carol.id]);
    for (const who of [bob, carol]) {
      const o = await s.vault.open({ actor: who, vaultId: c.info.vault_id });
      expect(Buffer.from(o.content).equals(Buffer.from(CONTENT))).toBe(true);
      o.content.fill(0);
    }
    // the previous owner's copy is gone: the material is resealed to the new holders
    await expect(
      s.kc.reveal({ actor: alice, secretId: c.info.secret_id, reason: 'mine?' }),
    ).rejects.toSatisfy((x: unknown) => KeychainError.is(x));
  });
});

describe('time', () => {
  it('a clock that jumps backwards never releases; one warning per jump', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      deadMan: 'PT2H',
      beneficiaries: [bob.id],
    });
    const id = c.info.vault_id;
    s.clock.set(at(1.5));
    await s.vault.check(); // high water 1.5 h
    // a heartbeat while the clock reads the past is stamped with the high-water mark
    s.clock.set(at(-10));
    const hb = await s.vault.heartbeat({ actor: alice, vaultId: id });
    expect(hb.info.last_heartbeat_at).toBe(at(1.5).toISOString());
    expect(hb.info.deadline).toBe(at(3.5).toISOString());
    for (const h of [-5, 0, 1, 1.4]) {
      s.clock.set(at(h));
      const r = await s.vault.check();
      expect(r.clock).toBe('regressed');
      expect(r.vaults[0]!.outcome).toBe('waiting-clock');
    }
    // forward again, then back again: a second jump, a second warning
    s.clock.set(at(2));
    expect((await s.vault.check()).clock).toBe('ok');
    s.clock.set(at(1));
    const r2 = await s.vault.check();
    expect(r2).toMatchObject({ clock: 'regressed', high_water: at(2).toISOString() });
    expect(r2.vaults[0]!.outcome).toBe('waiting-clock');
    s.clock.set(at(3.4));
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('sealed');
    s.clock.set(at(3.5));
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('released');
    await s.log.drain();
    const warnings = events(await readLog(join(s.home, 'log')), 'vault-clock-regressed');
    expect(warnings.map((w) => (w.token.erin as Record<string, unknown>)['high_water'])).toEqual([
      at(1.5).toISOString(),
      at(2).toISOString(),
    ]);
    expect(warnings[0]!.token.actor).toBe(vaultKey.id);
  });

  it('never releases on a backwards reading even when that reading is past the deadline of a jump-forward', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      unlockAt: at(5),
      beneficiaries: [bob.id],
    });
    s.clock.set(at(100)); // a wildly wrong clock…
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('released'); // …is believed (documented)
    const c2 = await s.vault.create({
      actor: alice,
      content: utf8('second'),
      publicNote: 'n',
      unlockAt: at(200),
      beneficiaries: [bob.id],
    });
    s.clock.set(at(6)); // corrected: every reading below 100 h is "backwards"
    const r = await s.vault.check();
    expect(r.clock).toBe('regressed');
    expect(r.vaults.find((v) => v.vault_id === c2.info.vault_id)!.outcome).toBe('waiting-clock');
    expect(c.info.vault_id).not.toBe(c2.info.vault_id);
  });
});

describe('create', () => {
  it('validates input before anything is written', async () => {
    const s = await home();
    const bad = async (o: Record<string, unknown>): Promise<string> => {
      const e = await refusal(
        s.vault.create({
          actor: alice,
          content: CONTENT,
          publicNote: 'n',
          unlockAt: at(1),
          beneficiaries: [bob.id],
          ...o,
        }),
      );
      expect(e.code === 'INVALID_INPUT' || e.code === 'VAULT_EXISTS').toBe(true);
      return e.message;
    };
    expect(await bad({ unlockAt: undefined })).toContain('give unlockAt, deadMan, or both');
    expect(await bad({ unlockAt: at(-1) })).toContain('not in the future');
    expect(await bad({ unlockAt: 'tomorrow' })).toContain('RFC 3339');
    expect(await bad({ deadMan: 'P1M' })).toContain('ISO 8601');
    expect(await bad({ beneficiaries: [] })).toContain('beneficiaries');
    expect(await bad({ beneficiaries: [bob.id, bob.id] })).toContain('twice');
    expect(await bad({ beneficiaries: ['jis:acme:nobody'] })).toContain('not registered');
    expect(await bad({ beneficiaries: [vaultKey.id] })).toContain('service identity');
    expect(await bad({ content: new Uint8Array(0) })).toContain('content');
    expect(await bad({ secretId: 'sec_x_1' })).toContain('either content or secretId');
    expect(await bad({ vaultId: 'Bad Id' })).toContain('vault id');
    expect(await s.vault.list()).toEqual([]);
    expect(await s.kc.ids()).toEqual([]);
  });

  it('over an existing keychain secret: only its owner, and not if a beneficiary can already read it', async () => {
    const s = await home();
    await s.kc.add({
      actor: alice,
      secretId: 'sec_root_001',
      type: 'root_password',
      issuer: 'db1',
      scope: 'root',
      reason: 'db root',
    });
    expect(
      (
        await refusal(
          s.vault.create({
            actor: bob,
            secretId: 'sec_root_001',
            publicNote: 'n',
            deadMan: 'P7D',
            beneficiaries: [carol.id],
          }),
        )
      ).code,
    ).toBe('NOT_OWNER');
    await s.kc.setPolicy({
      actor: alice,
      secretId: 'sec_root_001',
      policy: { reveal: ['role:owner', carol.id] },
      reason: 'carol on call',
    });
    const e = await refusal(
      s.vault.create({
        actor: alice,
        secretId: 'sec_root_001',
        publicNote: 'n',
        deadMan: 'P7D',
        beneficiaries: [carol.id],
      }),
    );
    expect(e.message).toContain('can already reveal');
    const ok = await s.vault.create({
      actor: alice,
      secretId: 'sec_root_001',
      publicNote: 'db root to bob if I vanish',
      deadMan: 'P7D',
      beneficiaries: [bob.id],
    });
    expect(ok.info.origin).toBe('secret');
    expect(
      (
        await refusal(
          s.vault.create({
            actor: alice,
            secretId: 'sec_root_001',
            publicNote: 'n',
            deadMan: 'P7D',
            beneficiaries: [bob.id],
          }),
        )
      ).code,
    ).toBe('SECRET_IN_VAULT');
    s.clock.set(at(24 * 7));
    expect((await s.vault.check()).vaults[0]!.outcome).toBe('released');
    const ks = await s.kc.state('sec_root_001');
    expect(ks.owner_id).toBe(bob.id);
    expect(ks.policy.reveal).toEqual([bob.id]); // carol's grant is replaced by the beneficiaries
    const o = await s.vault.open({ actor: bob, vaultId: ok.info.vault_id });
    expect(o.content.length).toBeGreaterThan(0);
    o.content.fill(0);
  });
});

describe('the whole story', () => {
  it('is in the keychain timeline of the secret, causally linked to the vault line', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      deadMan: 'PT1H',
      beneficiaries: [bob.id, carol.id],
    });
    const id = c.info.vault_id;
    const sid = c.info.secret_id;
    s.clock.set(at(0.5));
    await s.vault.heartbeat({ actor: alice, vaultId: id, reason: 'still here' });
    await refusal(s.vault.open({ actor: bob, vaultId: id }));
    s.clock.set(at(2));
    await s.vault.check();
    const o = await s.vault.open({ actor: carol, vaultId: id, reason: 'as instructed' });
    o.content.fill(0);
    await s.log.drain();

    const timeline = new KeychainTimeline(new LogFolderSource(join(s.home, 'log')));
    const h = await timeline.history(sid);
    expect(h.problems).toEqual([]);
    expect(h.gaps).toEqual([]);
    expect(h.entries.map((e) => [e.event, e.actor, e.authority_mode])).toEqual([
      ['secret-imported', alice.id, 'admin'],
      ['secret-delegated', vaultKey.id, 'system'],
      ['secret-policy-changed', vaultKey.id, 'system'],
      ['secret-unsealed', carol.id, 'admin'],
    ]);
    const reason = `dead-man: no heartbeat since ${at(0.5).toISOString()} (interval PT1H)`;
    const log = await readLog(join(s.home, 'log'));
    const released = events(log, 'vault-released')[0]!;
    const opened = events(log, 'vault-opened')[0]!;
    const [, delegated, policy, unsealed] = h.entries;
    expect(delegated).toMatchObject({ reason, parent_action_id: released.token.action_id });
    expect(policy).toMatchObject({ reason, parent_action_id: released.token.action_id });
    expect(unsealed).toMatchObject({ parent_action_id: opened.token.action_id });
    expect(opened.token.parent_action_id).toBe(released.token.action_id);
    expect(h.entries.every((e) => e.outcome === 'applied')).toBe(true);

    // the vault's own line, in causal order
    const line = log.filter((r) => r.causal.continuity_id === vaultLine(id));
    expect(line.map((r) => r.token.event)).toEqual([
      'vault-created',
      'vault-heartbeat',
      'vault-open-denied',
      'vault-released',
      'vault-release-completed',
      'vault-opened',
    ]);
    expect(line[0]!.token.parent_action_id).toBe(c.secretActionId);
    for (let k = 1; k < line.length; k++)
      expect(line[k]!.token.generation).toBeGreaterThan(line[k - 1]!.token.generation);
    expect(released.token).toMatchObject({
      actor: vaultKey.id,
      actor_class: 'system',
      erachter: reason,
      eromheen: { authority_mode: 'system' },
    });
    expect(released.token.erin).toMatchObject({
      trigger: 'dead-man',
      due_at: at(1.5).toISOString(),
      observed_at: at(2).toISOString(),
      late_by_ms: 0.5 * HOUR,
    });
  });

  it('no content bytes in any audit line, vault file, info/list output or error', async () => {
    const s = await home();
    const outputs: string[] = [];
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'public words only',
      unlockAt: at(1),
      deadMan: 'PT30M',
      beneficiaries: [bob.id],
    });
    outputs.push(JSON.stringify(c.info), JSON.stringify(c.token));
    const id = c.info.vault_id;
    for (const f of [
      () => s.vault.open({ actor: bob, vaultId: id }),
      () => s.vault.open({ actor: mallory, vaultId: id }),
      () => s.vault.heartbeat({ actor: mallory, vaultId: id }),
    ])
      outputs.push(
        await f().then(
          (v) => JSON.stringify({ ...v, content: undefined }),
          (e: Error) => `${e.message} ${e.stack ?? ''}`,
        ),
      );
    s.clock.set(at(2));
    outputs.push(JSON.stringify(await s.vault.check()));
    outputs.push(JSON.stringify(await s.vault.info(id)), JSON.stringify(await s.vault.list()));
    const o = await s.vault.open({ actor: bob, vaultId: id });
    expect(containsContent(o.content, CONTENT)).toBe(true); // the search does find it
    o.content.fill(0);
    outputs.push(JSON.stringify({ ...o, content: undefined }));
    await s.log.drain();
    for (const text of outputs) expect(containsContent(text, CONTENT), text).toBe(false);
    expect(filesContaining(s.home, CONTENT)).toEqual([]);
    expect(events(await readLog(join(s.home, 'log')), 'vault-released')).toHaveLength(1);
  });
});

describe('list and info', () => {
  it('filter by owner and beneficiary; never content', async () => {
    const s = await home();
    const a = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'a',
      unlockAt: at(1),
      beneficiaries: [bob.id],
    });
    const b = await s.vault.create({
      actor: bob,
      content: utf8('bob stuff'),
      publicNote: 'b',
      deadMan: 'P1D',
      beneficiaries: [carol.id],
    });
    const ids = (l: VaultInfo[]): string[] => l.map((v) => v.vault_id).sort();
    expect(ids(await s.vault.list())).toEqual([a.info.vault_id, b.info.vault_id].sort());
    expect(ids(await s.vault.list({ owner: bob.id }))).toEqual([b.info.vault_id]);
    expect(ids(await s.vault.list({ beneficiary: bob.id }))).toEqual([a.info.vault_id]);
    expect(Object.keys(await s.vault.info(a.info.vault_id)).sort()).toEqual(
      [
        'as_of',
        'beneficiaries',
        'created_at',
        'dead_man_interval',
        'deadline',
        'heartbeats',
        'last_heartbeat_at',
        'origin',
        'owner_id',
        'public_note',
        'release',
        'release_at',
        'secret_id',
        'status',
        'time_until_release_ms',
        'unlock_at',
        'vault_id',
      ].sort(),
    );
    s.clock.set(at(1));
    expect((await s.vault.info(a.info.vault_id)).status).toBe('due'); // reached, not yet checked
    expect((await refusal(s.vault.info('vlt_nothing_here'))).code).toBe('VAULT_NOT_FOUND');
    expect((await refusal(s.vault.info('../etc'))).code).toBe('INVALID_VAULT_ID');
  });

  it('a tampered record fails closed (STORE_CORRUPT)', async () => {
    const s = await home();
    const c = await s.vault.create({
      actor: alice,
      content: CONTENT,
      publicNote: 'n',
      unlockAt: at(1),
      beneficiaries: [bob.id],
    });
    const { writeFileSync } = await import('node:fs');
    const p = join(s.home, 'vault', 'vaults', c.info.vault_id, 'rec-000001.json');
    const text = readFileSync(p, 'utf8');
    writeFileSync(p, text.replace(bob.id, mallory.id));
    expect((await refusal(s.vault.info(c.info.vault_id))).code).toBe('STORE_CORRUPT');
  });
});
