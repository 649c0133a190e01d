import { afterEach, describe, expect, it } from 'vitest';
import { utf8, verifyToken, type TibetToken } from '@tibet/core';
import { nodeIo, type LogIo } from '@tibet/continuityd';
import {
  SamError,
  checkCapsule,
  checkIssuance,
  inspectCapsule,
  issueCapsule,
  openCapsule,
  type CapsuleRequest,
} from '../src/index.js';
import {
  MATERIAL,
  SECRET_ID,
  alice,
  bob,
  bot,
  cleanup,
  containsSecret,
  filesContainingSecret,
  gw,
  mallory,
  service,
  setup,
} from './fixtures/helpers.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const REQ: CapsuleRequest = {
  secret_id: SECRET_ID,
  actor_id: bot.id,
  target_action: '/upload/npm',
  intent: 'publish acme-lib 1.2.0 — release approved in review #42',
  constraints: [{ key: 'registry', value: 'registry.npmjs.org' }],
  policy_lane: 'publish',
};

const code = (c: string) => (e: unknown) => SamError.is(e) && e.code === c;

describe('issueCapsule', () => {
  it('issues a capsule: bound to the version, logged durably before it is returned, opens and checks', async () => {
    const s = await setup(dirs);
    const before = (await s.records()).length;
    const head = await s.kc.store.head(SECRET_ID);
    const { bytes, capsule, token } = await issueCapsule({
      keychain: s.kc,
      issuer: alice,
      request: REQ,
    });
    expect(capsule).toMatchObject({
      secret_id: SECRET_ID,
      secret_version: 1,
      actor_id: bot.id,
      issuer_id: alice.id,
      target_action: '/upload/npm',
      policy_lane: 'publish',
      receipt_required: true,
      issued_at: '2026-11-28T12:00:00.000Z',
      valid_until: '2026-11-28T12:05:00.000Z',
      gateway_id: null,
      action_id: token.action_id,
      generation: token.generation,
    });
    expect(capsule.sam_id).toMatch(/^sam_[0-9a-f]{12}$/);
    expect(capsule.ephemeral_id).toMatch(/^eph_[0-9a-f]{12}$/);
    // the token: signed by the issuer, parent = the secret's current action, own line
    verifyToken(token, alice.signingPublicKey);
    expect(token).toMatchObject({
      event: 'sam-issued',
      actor: alice.id,
      erachter: REQ.intent,
      parent_action_id: head!.action_id,
      prev: null,
    });
    const recs = await s.records();
    expect(recs.length).toBe(before + 1);
    const rec = recs[recs.length - 1]!;
    expect(rec.token).toEqual(token);
    expect(rec.causal).toMatchObject({
      object_id: capsule.sam_id,
      continuity_id: capsule.sam_id,
      parent_object_id: SECRET_ID,
      parent_action_id: head!.action_id,
    });
    const parentRec = recs.find((r) => r.token.action_id === head!.action_id)!;
    expect(token.generation).toBe(parentRec.token.generation + 1);
    checkIssuance(capsule, token);
    expect(() => checkIssuance({ ...capsule, target_action: '/exec' }, token)).toThrow(
      /erin is not the capsule/,
    );
    // the bundle opens (signer pinned) and passes the checks for the right request
    const opened = await openCapsule(bytes, { directory: s.directory });
    expect(opened).toEqual({ capsule, format: 'tza' });
    const r = checkCapsule(
      capsule,
      { actor_id: bot.id, action: '/upload/npm', constraints: { registry: 'registry.npmjs.org' } },
      s.clock.now(),
    );
    expect(r.ok).toBe(true);
    // no secret anywhere: bundle, token, log files, keychain files
    expect(containsSecret(bytes, MATERIAL)).toBe(false);
    expect(containsSecret(JSON.stringify(token), MATERIAL)).toBe(false);
    expect(filesContainingSecret(s.home, MATERIAL)).toEqual([]);
    await s.close();
  });

  it('the custodian may issue too; a capsule is bound to the version current at issuance', async () => {
    const s = await setup(dirs);
    const a = await issueCapsule({ keychain: s.kc, issuer: service, request: REQ });
    expect(a.capsule.issuer_id).toBe(service.id);
    expect(a.token.policy.map((p) => p.rule)).toContain('sam.issuer');
    await s.kc.rotate({
      actor: alice,
      secretId: SECRET_ID,
      material: utf8('npm_rotated-value-000000000000'),
      reason: 'routine rotation',
    });
    const b = await issueCapsule({ keychain: s.kc, issuer: alice, request: REQ });
    expect(b.capsule.secret_version).toBe(2);
    expect(b.token.parent_action_id).toBe((await s.kc.store.head(SECRET_ID))!.action_id);
    await s.close();
  });

  it('refuses an issuer who is neither owner nor custodian; the refusal is on the record', async () => {
    const s = await setup(dirs);
    const n = (await s.records()).length;
    await expect(issueCapsule({ keychain: s.kc, issuer: bob, request: REQ })).rejects.toSatisfy(
      code('NOT_AUTHORIZED'),
    );
    const after = await s.records();
    expect(after.length).toBe(n + 1);
    const denial = after.at(-1)!.token;
    expect(denial).toMatchObject({
      event: 'sam-issue-denied',
      actor: service.id,
      parent_action_id: null,
    });
    verifyToken(denial, service.signingPublicKey);
    expect(denial.erin).toMatchObject({
      issuer_id: bob.id,
      actor_id: bot.id,
      secret_id: SECRET_ID,
      code: 'NOT_AUTHORIZED',
      verdict: 'sam-keychain-denied',
      agent_authenticated: false,
    });
    expect(after.at(-1)!.causal.object_id).toBe(SECRET_ID);
    // malformed input is not logged
    await expect(
      issueCapsule({ keychain: s.kc, issuer: alice, request: { ...REQ, intent: '' } }),
    ).rejects.toSatisfy(code('INVALID_REQUEST'));
    expect((await s.records()).length).toBe(n + 1);
    await s.close();
  });

  it('refuses what the keychain policy denies, with the keychain reason', async () => {
    const s = await setup(dirs, { policy: { targets: ['/upload/*'], lanes: ['publish'] } });
    const n = (await s.records()).length;
    // mallory is not the active operator
    const e1 = await issueCapsule({
      keychain: s.kc,
      issuer: alice,
      request: { ...REQ, actor_id: mallory.id },
    }).catch((e: unknown) => e);
    expect(SamError.is(e1) && e1.code).toBe('POLICY_DENIED');
    expect((e1 as SamError).verdict).toBe('sam-keychain-denied');
    expect((e1 as Error).message).toMatch(/not the active operator/);
    // target outside the policy
    const e2 = await issueCapsule({
      keychain: s.kc,
      issuer: alice,
      request: { ...REQ, target_action: '/exec' },
    }).catch((e: unknown) => e);
    expect((e2 as SamError).code).toBe('POLICY_DENIED');
    expect((e2 as Error).message).toMatch(/target \/exec not allowed/);
    // lane outside the policy
    await expect(
      issueCapsule({
        keychain: s.kc,
        issuer: alice,
        request: { ...REQ, policy_lane: 'proxy-egress' },
      }),
    ).rejects.toThrow(/lane proxy-egress not allowed/);
    // three refusals, three sam-issue-denied events (signed by the keychain), nothing issued
    const added = (await s.records()).slice(n).map((r) => r.token);
    expect(added.map((t) => t.event)).toEqual([
      'sam-issue-denied',
      'sam-issue-denied',
      'sam-issue-denied',
    ]);
    expect(added.every((t) => t.actor === service.id)).toBe(true);
    await s.close();
  });

  it('refuses an exposed secret and one that does not exist', async () => {
    const s = await setup(dirs);
    await expect(
      issueCapsule({ keychain: s.kc, issuer: alice, request: { ...REQ, secret_id: 'sec_nope' } }),
    ).rejects.toSatisfy(code('SECRET_NOT_FOUND'));
    await s.kc.expose({
      actor: bob,
      secretId: SECRET_ID,
      exposure: 'chat-disclosed',
      evidence: 'pasted in #ops',
      reason: 'saw it in chat',
    });
    const e = await issueCapsule({ keychain: s.kc, issuer: alice, request: REQ }).catch(
      (x: unknown) => x,
    );
    expect((e as SamError).code).toBe('SECRET_UNAVAILABLE');
    expect((e as SamError).verdict).toBe('sam-secret-unavailable');
    await s.close();
  });

  it('caps the lifetime by the secret policy (TTL_TOO_LONG); the default is min(300 s, cap)', async () => {
    const s = await setup(dirs, { policy: { max_capsule_ttl_s: 120 } });
    await expect(
      issueCapsule({ keychain: s.kc, issuer: alice, request: { ...REQ, ttl_seconds: 121 } }),
    ).rejects.toSatisfy(code('TTL_TOO_LONG'));
    const a = await issueCapsule({ keychain: s.kc, issuer: alice, request: REQ });
    expect(Date.parse(a.capsule.valid_until) - Date.parse(a.capsule.issued_at)).toBe(120_000);
    const b = await issueCapsule({
      keychain: s.kc,
      issuer: alice,
      request: { ...REQ, ttl_seconds: 30 },
    });
    expect(Date.parse(b.capsule.valid_until) - Date.parse(b.capsule.issued_at)).toBe(30_000);
    await s.close();
  });

  it('returns no capsule when the audit append fails', async () => {
    let fail = false;
    const io: LogIo = {
      ...nodeIo,
      datasync: async (fh) => {
        if (fail) throw new Error('EIO');
        return nodeIo.datasync(fh);
      },
    };
    const s = await setup(dirs, { io });
    fail = true;
    const e = await issueCapsule({ keychain: s.kc, issuer: alice, request: REQ }).catch(
      (x: unknown) => x,
    );
    expect(SamError.is(e) && e.code).toBe('AUDIT_FAILED');
    await s.close();
  });

  it('an issuer the log does not know cannot issue (the append is refused)', async () => {
    const s = await setup(dirs);
    // the keychain service is custodian; an unregistered identity claiming that id is refused
    const { testIdentity } = await import('@tibet/core/testing');
    const impostor = testIdentity(service.id, 'system', { seed: 'impostor' });
    await expect(
      issueCapsule({ keychain: s.kc, issuer: impostor, request: REQ }),
    ).rejects.toSatisfy(code('AUDIT_FAILED'));
    await s.close();
  });

  it('encrypts to a gateway: only it opens the capsule; the readable fields are the routing ones', async () => {
    const s = await setup(dirs);
    const req: CapsuleRequest = {
      ...REQ,
      intent: 'publish acme-lib 1.2.0 SECRET-INTENT-MARKER',
      notes: ['NOTE-MARKER'],
    };
    const { bytes, capsule } = await issueCapsule({
      keychain: s.kc,
      issuer: alice,
      request: req,
      gateway: gw.public,
    });
    expect(capsule.gateway_id).toBe(gw.id);
    const text = Buffer.from(bytes);
    expect(text.includes('SECRET-INTENT-MARKER')).toBe(false);
    expect(text.includes('NOTE-MARKER')).toBe(false);
    expect(text.includes('registry.npmjs.org')).toBe(false);
    expect((await openCapsule(bytes, { directory: s.directory, gateway: gw })).capsule).toEqual(
      capsule,
    );
    await expect(openCapsule(bytes, { directory: s.directory })).rejects.toSatisfy(
      code('NOT_A_RECIPIENT'),
    );
    await expect(openCapsule(bytes, { directory: s.directory, gateway: bob })).rejects.toSatisfy(
      code('NOT_A_RECIPIENT'),
    );
    const seen = inspectCapsule(bytes, { directory: s.directory });
    expect(seen).toMatchObject({ format: 'tza', encrypted: true, verified: true });
    expect(seen.capsule).toBeUndefined();
    expect(Object.keys(seen.readable).sort()).toEqual(
      [
        'action_id',
        'actor_id',
        'ephemeral_id',
        'gateway_id',
        'generation',
        'issued_at',
        'issuer_id',
        'policy_lane',
        'receipt_required',
        'sam_id',
        'secret_id',
        'secret_version',
        'target_action',
        'valid_until',
      ].sort(),
    );
    await s.close();
  });

  it('validates the request strictly (INVALID_REQUEST) before touching the keychain', async () => {
    const s = await setup(dirs);
    const n = (await s.records()).length;
    for (const bad of [
      { ...REQ, extra: 1 },
      { ...REQ, intent: '  ' },
      { ...REQ, actor_id: 'bot' },
      { ...REQ, target_action: '/upload/../exec' },
      { ...REQ, ttl_seconds: 0 },
      { ...REQ, constraints: [{ key: 'Registry', value: 'x' }] },
      { ...REQ, upstream_url: 'https://user:pw@example.com/' },
    ])
      await expect(issueCapsule({ keychain: s.kc, issuer: alice, request: bad })).rejects.toSatisfy(
        code('INVALID_REQUEST'),
      );
    expect((await s.records()).length).toBe(n);
    await s.close();
  });

  it('the log line of the capsule verifies with the issuer key (a third party can check it)', async () => {
    const s = await setup(dirs);
    const { capsule } = await issueCapsule({ keychain: s.kc, issuer: alice, request: REQ });
    const line = (await s.records()).filter((r) => r.causal.continuity_id === capsule.sam_id);
    expect(line.length).toBe(1);
    const t: TibetToken = line[0]!.token;
    expect(() => verifyToken(t, alice.signingPublicKey)).not.toThrow();
    await s.close();
  });
});
