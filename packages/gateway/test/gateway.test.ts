// The gateway core against real parts: an embedded audit log on disk, a keychain in a temp
// home, capsules issued by @tibet/sam, the file replay store, the real signer and HTTP
// adapters (the latter against a loopback stand-in registry), and test adapters that leak or
// block on purpose.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fromBase64Url,
  getProvider,
  mintToken,
  newActionId,
  toHex,
  tokenHash,
  utf8,
  verifyToken,
} from '@tibet/core';
import { seededRandom } from '@tibet/core/testing';
import { verifyLog } from '@tibet/continuityd';
import { issuanceErin, sealCapsule, type Capsule, type ExecRequest } from '@tibet/sam';
import {
  GatewayError,
  SignerAdapter,
  HttpEgressAdapter,
  openReceipt,
  type ExecResult,
  type Receipt,
} from '../src/index.js';
import { startRegistry } from './support/registry.js';
import {
  BlockingAdapter,
  LeakyAdapter,
  T0,
  alice,
  bot,
  cleanup,
  eve,
  fileOutputs,
  gw,
  gw2,
  leaks,
  logKey,
  makeWorld,
  present,
  mallory,
  materialFor,
  readLog,
  service,
  tokenFor,
  type World,
} from './fixtures/world.js';

const dirs: string[] = [];
const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
  cleanup(dirs);
});

async function world(o: Parameters<typeof makeWorld>[1] = {}): Promise<World> {
  const w = await makeWorld(dirs, o);
  worlds.push(w);
  return w;
}

const SIGN_ID = 'sec_sign_001';
const MSG = 'release v1.2.3 of acme-widget';

function signRequest(c: Capsule, o: Partial<ExecRequest> = {}): ExecRequest {
  return {
    actor_id: c.actor_id,
    action: c.target_action,
    constraints: Object.fromEntries(c.constraints.map((k) => [k.key, k.value])),
    payload: MSG,
    ...o,
  };
}

/** A world with a signing key (imported: the test knows the material) and a signer adapter. */
async function signingWorld(seed = 'sign'): Promise<{ w: World; material: Uint8Array }> {
  const w = await world({ seed, adapters: [new SignerAdapter()] });
  const material = materialFor(seed, 'signing-key');
  await w.addSecret(SIGN_ID, 'signing_key', material);
  return { w, material };
}

function expectDenied(r: ExecResult, verdict: string, w: World): Receipt {
  expect(r.receipt.status, JSON.stringify(r.receipt.events)).toBe('denied');
  expect(r.receipt.policy_verdict).toBe(verdict);
  expect(r.receipt.executed_action).toBeNull();
  expect(r.response).toBeNull();
  const last = r.receipt.events[r.receipt.events.length - 1]!;
  expect(last.action).toBe('sam-denied');
  expect(last.status).toBe('fail');
  expect(last.detail.startsWith(`${verdict}: `)).toBe(true);
  // the sealed receipt verifies and is the one returned
  const opened = openReceipt(r.receiptBytes, { directory: w.directory });
  expect(opened.receipt).toEqual(r.receipt);
  return r.receipt;
}

describe('exec: executed', () => {
  it('signs through the signer adapter; the receipt verifies; the log links every step', async () => {
    const { w, material } = await signingWorld();
    const { bytes, capsule } = await w.issue({
      secret_id: SIGN_ID,
      target_action: '/sign',
      constraints: [{ key: 'purpose', value: 'release' }],
    });
    const r = await present(w.gateway, bytes, signRequest(capsule));
    expect(r.receipt.status, JSON.stringify(r.receipt.events)).toBe('executed');
    expect(r.receipt.policy_verdict).toBe('allowed');

    // the signature is real and by the secret
    const resp = r.response as Record<string, string>;
    expect(resp['algorithm']).toBe('ed25519');
    const pub = fromBase64Url(resp['public_key']!.replace(/^ed25519:/, ''));
    expect(getProvider().ed25519(material).publicKey).toEqual(pub);
    expect(getProvider().ed25519Verify(pub, utf8(MSG), fromBase64Url(resp['signature']!))).toBe(
      true,
    );

    // the family's receipt fields and ours
    const rc = r.receipt;
    expect(rc).toMatchObject({
      sam_id: capsule.sam_id,
      ephemeral_id: capsule.ephemeral_id,
      requested_action: '/sign',
      status: 'executed',
      gateway_actor: gw.id,
      destroy_session_confirmed: true,
      policy_lane: null,
      receipt_required: true,
      runtime_adapter: 'signer',
      actor_id: bot.id,
      secret_id: SIGN_ID,
      session_id: `gsess:${capsule.ephemeral_id}`,
      capsule_action_id: capsule.action_id,
    });
    expect(rc.executed_action).toMatch(/sign/i);
    expect(rc.events.map((e) => e.action)).toEqual([
      'sam-received',
      'sam-validated',
      'sam-actor-match',
      'sam-actor-match',
      'sam-constraint-match',
      'sam-constraint-match',
      'sam-policy-lane',
      'sam-keychain-check',
      'sam-keychain-check',
      'sam-secret-proxied',
      'sam-session-opened',
      'sam-executed',
      'sam-session-destroyed',
      'sam-response-sealed',
    ]);
    expect(rc.events.every((e) => e.status === 'pass')).toBe(true);
    const opened = openReceipt(r.receiptBytes, { directory: w.directory });
    expect(opened.receipt).toEqual(rc);

    // the audit log: issued → the agent's signed request (parent issued) → received (parent
    // the request) ; proxied (parent issued) → executed
    await w.log.drain();
    const records = await readLog(join(w.home, 'log'));
    const by = (id: string | null) => records.find((x) => x.token.action_id === id)!;
    const issued = by(capsule.action_id);
    expect(issued.token.event).toBe('sam-issued');
    const received = by(rc.received_action_id);
    expect(received.token.event).toBe('sam-received');
    expect(received.token.actor).toBe(gw.id);
    const asked = by(received.token.parent_action_id);
    expect(asked.token).toMatchObject({
      event: 'sam-exec-requested',
      actor: bot.id,
      parent_action_id: capsule.action_id,
    });
    verifyToken(asked.token, bot.signingPublicKey);
    expect((received.token.erin as Record<string, unknown>)['agent_proof_action_id']).toBe(
      asked.token.action_id,
    );
    expect(received.causal.continuity_id).toBe(received.token.action_id);
    expect(received.index).toBeLessThan(by(rc.proxied_action_id).index);
    const proxied = by(rc.proxied_action_id);
    expect(proxied.token.event).toBe('secret-proxied');
    expect(proxied.token.parent_action_id).toBe(capsule.action_id);
    expect((proxied.token.erin as Record<string, unknown>)['session_id']).toBe(
      `gsess:${capsule.ephemeral_id}`,
    );
    expect((proxied.token.erin as Record<string, unknown>)['on_behalf_of']).toBe(bot.id);
    const executed = by(rc.receipt_action_id);
    expect(executed.index).toBe(r.logged.index);
    expect(executed.token.event).toBe('sam-executed');
    expect(executed.token.prev).toBe(tokenHash(received.token));
    expect(executed.token.parent_action_id).toBe(proxied.token.action_id);
    expect(executed.causal.continuity_id).toBe(received.token.action_id);
    const erin = executed.token.erin as Record<string, unknown>;
    expect(erin['receipt_sha256']).toBe(toHex(getProvider().sha256(r.receiptBytes)));
    expect(erin['events']).toEqual(rc.events);
    verifyToken(executed.token, gw.signingPublicKey);

    // the whole log verifies (hash chain, Merkle tree, signatures, causal links)
    await w.log.checkpoint();
    const report = await verifyLog(join(w.home, 'log'), {
      registry: w.directory,
      logPublicKey: logKey.signingPublicKey,
    });
    expect(report.ok, JSON.stringify(report.problems?.slice(0, 3))).toBe(true);

    // the replay store holds the id
    expect((await w.replay.get(capsule.ephemeral_id))?.received_action_id).toBe(
      received.token.action_id,
    );

    // no secret bytes anywhere: receipts, responses, log lines, every file in the home
    expect(
      leaks(
        [
          { label: 'receipt', data: r.receiptBytes },
          { label: 'receipt.json', data: JSON.stringify(rc) },
          { label: 'response', data: JSON.stringify(r.response) },
          ...fileOutputs(w.home),
        ],
        material,
      ),
    ).toEqual([]);
  });

  it('publishes over HTTP to a real loopback registry; the credential never comes back', async () => {
    const token = tokenFor('http', 'npm');
    const registry = await startRegistry({ token });
    try {
      const w = await world({ seed: 'http', adapters: [new HttpEgressAdapter()] });
      await w.addSecret('sec_npm_001', 'api_key', utf8(token));
      const { bytes } = await w.issue({
        secret_id: 'sec_npm_001',
        target_action: '/upload/npm',
        policy_lane: 'publish',
        constraints: [
          { key: 'registry', value: registry.origin },
          { key: 'host', value: registry.host },
        ],
        upstream_url: `${registry.origin}/acme-widget`,
        upstream_method: 'PUT',
      });
      const r = await present(w.gateway, bytes, {
        actor_id: bot.id,
        action: '/upload/npm',
        constraints: { registry: registry.origin, host: registry.host },
        payload: { body: { name: 'acme-widget', version: '1.2.3' } },
      });
      expect(r.receipt.status, JSON.stringify(r.receipt.events)).toBe('executed');
      expect(r.receipt.runtime_adapter).toBe('http-egress');
      expect(r.receipt.executed_action).toContain(`PUT ${registry.origin}/acme-widget`);
      // the registry got the credential, the agent did not
      expect(registry.requests).toHaveLength(1);
      expect(registry.requests[0]!.authorized).toBe(true);
      expect(registry.packages.has('acme-widget')).toBe(true);
      const resp = r.response as Record<string, unknown>;
      expect(resp['status']).toBe(201);
      expect(JSON.stringify(resp)).toContain('[REDACTED]'); // the registry echoed it
      await w.log.drain();
      expect(
        leaks(
          [
            { label: 'receipt', data: r.receiptBytes },
            { label: 'response', data: JSON.stringify(r.response) },
            ...fileOutputs(w.home),
          ],
          utf8(token),
        ),
      ).toEqual([]);
    } finally {
      await registry.close();
    }
  });

  it('masks the secret again when an adapter leaks it (defence in depth)', async () => {
    const adapter = new LeakyAdapter();
    const w = await world({ seed: 'leaky', adapters: [adapter] });
    const material = utf8(`sk-live-${toHex(materialFor('leaky', 'k'))}`);
    await w.addSecret('sec_leak_001', 'api_key', material);
    const { bytes, capsule } = await w.issue({
      secret_id: 'sec_leak_001',
      target_action: '/test/echo',
    });
    const r = await present(w.gateway, bytes, signRequest(capsule));
    expect(r.receipt.status).toBe('executed');
    expect(JSON.stringify(r.response)).toContain('[REDACTED]');
    expect(r.receipt.events.find((e) => e.action === 'sam-executed')!.detail).toContain(
      'masked secret material',
    );
    // the buffer the adapter held is zeros now
    expect(adapter.seen!.every((b) => b === 0)).toBe(true);
    await w.log.drain();
    expect(
      leaks(
        [
          { label: 'response', data: JSON.stringify(r.response) },
          { label: 'receipt', data: r.receiptBytes },
          ...fileOutputs(w.home),
        ],
        material,
      ),
    ).toEqual([]);
  });
});

describe('exec: every denial verdict', () => {
  it('sam-expired (the clock passed valid_until)', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({
      secret_id: SIGN_ID,
      target_action: '/sign',
      ttl_seconds: 60,
    });
    w.clock.advance(60_000);
    expectDenied(await present(w.gateway, bytes, signRequest(capsule)), 'sam-expired', w);
    // not consumed: nothing durable happened for it but the denial event
    expect(await w.replay.get(capsule.ephemeral_id)).toBeUndefined();
  });

  it('sam-not-yet-valid (issued in the future beyond the skew)', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    w.clock.set(new Date(Date.parse(T0) - 120_000));
    expectDenied(await present(w.gateway, bytes, signRequest(capsule)), 'sam-not-yet-valid', w);
  });

  it('a tampered capsule is never executed (bit flip, truncation, no capsule)', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    for (const bad of [
      (() => {
        const b = bytes.slice();
        b[Math.floor(b.length / 2)]! ^= 0x01;
        return b;
      })(),
      bytes.slice(0, bytes.length - 100),
      new Uint8Array(0),
    ]) {
      const r = await present(w.gateway, bad, signRequest(capsule));
      expect(['sam-bundle-invalid', 'sam-signature-invalid']).toContain(r.receipt.policy_verdict);
      expectDenied(r, r.receipt.policy_verdict, w);
      expect(r.receipt.sam_id).toBeNull();
      expect(r.receipt.received_action_id).toBeNull();
    }
    expect(await w.replay.get(capsule.ephemeral_id)).toBeUndefined();
    // the genuine capsule still works
    expect((await present(w.gateway, bytes, signRequest(capsule))).receipt.status).toBe('executed');
  });

  it('a capsule signed by an unregistered key is refused', async () => {
    const { w } = await signingWorld();
    const { capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    const forged = sealCapsule({ ...capsule, issuer_id: eve.id }, eve);
    const r = await present(w.gateway, forged, signRequest(capsule));
    expect(['sam-bundle-invalid', 'sam-signature-invalid']).toContain(r.receipt.policy_verdict);
    expectDenied(r, r.receipt.policy_verdict, w);
  });

  it('a capsule a registered actor forged (re-using a real issuance) is refused', async () => {
    const { w } = await signingWorld();
    const { capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    // mallory signs her own capsule for a wider target, naming the real sam-issued action
    const forged = sealCapsule(
      { ...capsule, issuer_id: mallory.id, constraints: [], intent: 'anything' },
      mallory,
    );
    const r = await present(w.gateway, forged, signRequest({ ...capsule, constraints: [] }));
    expectDenied(r, 'sam-bundle-invalid', w);
    expect(r.receipt.events.some((e) => e.detail.includes('is not the issuance'))).toBe(true);
    expect(await w.replay.get(capsule.ephemeral_id)).toBeUndefined();
  });

  it('sam-signature-invalid: a logged issuance by someone without authority over the secret', async () => {
    const { w } = await signingWorld();
    const { capsule: real } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    // mallory logs her own sam-issued token (she is a registered actor) and seals a capsule
    const actionId = newActionId(seededRandom('mallory'));
    const body = {
      ...real,
      issuer_id: mallory.id,
      sam_id: 'sam_aaaaaaaaaaaa',
      ephemeral_id: 'eph_aaaaaaaaaaaa',
    };
    const token = mintToken(
      {
        actor: mallory.id,
        actorClass: 'human',
        event: 'sam-issued',
        erachter: 'forged',
        erin: issuanceErin(body),
        prev: null,
        parent: null,
        actionId,
      },
      mallory,
      { clock: w.clock },
    );
    await w.audit.append(token, { objectId: body.sam_id, continuityId: body.sam_id });
    const forged = sealCapsule({ ...body, action_id: actionId, generation: 1 }, mallory);
    const r = await present(w.gateway, forged, signRequest(body));
    expectDenied(r, 'sam-signature-invalid', w);
    expect(r.receipt.proxied_action_id).toBeNull();
  });

  it('sam-actor-mismatch, sam-target-mismatch, sam-constraint-mismatch', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({
      secret_id: SIGN_ID,
      target_action: '/sign',
      constraints: [{ key: 'purpose', value: 'release' }],
    });
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule, { actor_id: mallory.id })),
      'sam-actor-mismatch',
      w,
    );
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule, { action: '/exec' })),
      'sam-target-mismatch',
      w,
    );
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule, { constraints: { purpose: 'other' } })),
      'sam-constraint-mismatch',
      w,
    );
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule, { constraints: {} })),
      'sam-constraint-mismatch',
      w,
    );
    // none of them consumed it
    expect((await present(w.gateway, bytes, signRequest(capsule))).receipt.status).toBe('executed');
  });

  it('sam-policy-lane-invalid (publish lane without a registry constraint)', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({
      secret_id: SIGN_ID,
      target_action: '/sign',
      policy_lane: 'publish',
    });
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-policy-lane-invalid',
      w,
    );
  });

  it('sam-keychain-denied: the secret was exposed after issuance', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    await w.kc.expose({
      actor: alice,
      secretId: SIGN_ID,
      reason: 'pasted in chat',
      exposure: 'chat-disclosed',
      evidence: 'chat log 42',
    });
    const rc = expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-keychain-denied',
      w,
    );
    expect(rc.events.some((e) => e.detail.includes('SECRET_EXPOSED'))).toBe(true);
    expect(rc.received_action_id).not.toBeNull();
    expect(rc.proxied_action_id).toBeNull();
    expect(rc.destroy_session_confirmed).toBe(false);
    // consumed before the keychain refused: it cannot be retried
    expectDenied(await present(w.gateway, bytes, signRequest(capsule)), 'sam-replayed', w);
  });

  it('sam-keychain-denied: rotation required (suspected exposure)', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    await w.kc.expose({
      actor: alice,
      secretId: SIGN_ID,
      reason: 'maybe leaked',
      exposure: 'suspected',
      evidence: 'odd login',
    });
    const rc = expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-keychain-denied',
      w,
    );
    expect(rc.events.some((e) => e.detail.includes('ROTATION_REQUIRED'))).toBe(true);
  });

  it('sam-keychain-denied: version mismatch after a rotation', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    await w.kc.rotate({ actor: alice, secretId: SIGN_ID, reason: 'scheduled rotation' });
    const rc = expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-keychain-denied',
      w,
    );
    expect(rc.events.some((e) => e.detail.includes('VERSION_MISMATCH'))).toBe(true);
    // the keychain logged its refusal too
    await w.log.drain();
    const records = await readLog(join(w.home, 'log'));
    expect(
      records.some((x) => x.token.event === 'secret-denied' && x.causal.continuity_id === SIGN_ID),
    ).toBe(true);
  });

  it('sam-secret-unavailable: the secret was destroyed', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    await w.kc.destroy({ actor: alice, secretId: SIGN_ID, reason: 'decommissioned' });
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-secret-unavailable',
      w,
    );
  });

  it('sam-replayed: the second use of a capsule', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    const first = await present(w.gateway, bytes, signRequest(capsule));
    expect(first.receipt.status).toBe('executed');
    const again = await Promise.all([
      present(w.gateway, bytes, signRequest(capsule)),
      present(w.gateway, bytes, signRequest(capsule)),
    ]);
    for (const r of again) {
      const rc = expectDenied(r, 'sam-replayed', w);
      expect(rc.events.some((e) => e.detail.includes(first.receipt.received_action_id!))).toBe(
        true,
      );
    }
    // and from another gateway process-equivalent over the same home
    const other = w.gatewayWith([new SignerAdapter()]);
    expectDenied(await present(other, bytes, signRequest(capsule)), 'sam-replayed', w);
  });

  it('concurrent first uses: exactly one executes', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    const rs = await Promise.all(
      Array.from({ length: 6 }, () => present(w.gateway, bytes, signRequest(capsule))),
    );
    expect(rs.filter((r) => r.receipt.status === 'executed')).toHaveLength(1);
    expect(rs.filter((r) => r.receipt.policy_verdict === 'sam-replayed')).toHaveLength(5);
  });

  it('sam-upstream-missing from the adapter (nothing to sign); the session is destroyed', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    const { payload: _p, ...req } = signRequest(capsule);
    const rc = expectDenied(await present(w.gateway, bytes, req), 'sam-upstream-missing', w);
    expect(rc.proxied_action_id).not.toBeNull();
    expect(rc.destroy_session_confirmed).toBe(true);
    expect(rc.events.map((e) => e.action)).toContain('sam-session-destroyed');
  });

  it('sam-gateway-proxy-failed: no adapter performs the target', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/nowhere' });
    expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-gateway-proxy-failed',
      w,
    );
    expect(await w.replay.get(capsule.ephemeral_id)).toBeUndefined();
  });

  it('sam-gateway-proxy-failed: the session timed out; the material is wiped under the adapter', async () => {
    const adapter = new BlockingAdapter();
    const w = await world({ seed: 'block', adapters: [adapter], sessionTimeoutMs: 150 });
    const material = materialFor('block', 'k');
    await w.addSecret('sec_block_001', 'api_key', material);
    const { bytes, capsule } = await w.issue({
      secret_id: 'sec_block_001',
      target_action: '/test/block',
    });
    const rc = expectDenied(
      await present(w.gateway, bytes, signRequest(capsule)),
      'sam-gateway-proxy-failed',
      w,
    );
    expect(rc.events.some((e) => e.detail.includes('timed out'))).toBe(true);
    expect(rc.destroy_session_confirmed).toBe(true);
    expect(adapter.seen!.length).toBe(32);
    expect(adapter.seen!.every((b) => b === 0)).toBe(true);
  });

  it('sam-bundle-invalid: a capsule encrypted to another gateway', async () => {
    const { w } = await signingWorld();
    const { issueCapsule } = await import('@tibet/sam');
    const { bytes, capsule } = await issueCapsule({
      keychain: w.kc,
      issuer: service,
      gateway: gw2.public,
      request: { secret_id: SIGN_ID, actor_id: bot.id, target_action: '/sign', intent: 'for gw2' },
    });
    expectDenied(await present(w.gateway, bytes, signRequest(capsule)), 'sam-bundle-invalid', w);
    // the gateway it is for executes it
    const two = w.gatewayWith([new SignerAdapter()], { identity: gw2 });
    expect((await present(two, bytes, signRequest(capsule))).receipt.status).toBe('executed');
  });
});

describe('exec: audit', () => {
  it('nothing executes (nor is consumed) when sam-received cannot be logged', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    await w.log.close();
    const err = await present(w.gateway, bytes, signRequest(capsule)).catch((e: unknown) => e);
    expect(GatewayError.is(err)).toBe(true);
    expect((err as GatewayError).code).toBe('AUDIT_FAILED');
    expect(await w.replay.get(capsule.ephemeral_id)).toBeUndefined();
  });

  it('every denial is itself an event: sam-denied, signed by the gateway, with its events', async () => {
    const { w } = await signingWorld();
    const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    const r = await present(w.gateway, bytes, signRequest(capsule, { actor_id: mallory.id }));
    await w.log.drain();
    const rec = (await readLog(join(w.home, 'log'))).find(
      (x) => x.token.action_id === r.receipt.receipt_action_id,
    )!;
    expect(rec.token.event).toBe('sam-denied');
    expect(rec.token.actor).toBe(gw.id);
    // before sam-received: its own line, under the capsule's issuance
    expect(rec.token.parent_action_id).toBe(capsule.action_id);
    expect((rec.token.erin as Record<string, unknown>)['policy_verdict']).toBe(
      'sam-actor-mismatch',
    );
    expect(
      rec.token.policy.some((p) => p.decision === 'deny' && p.rule === 'sam-actor-match'),
    ).toBe(true);
  });

  it('rejects bad arguments with TypeError', async () => {
    const { w } = await signingWorld();
    expect(() => w.gateway.exec('x' as unknown as Uint8Array, signRequest({} as Capsule))).toThrow(
      TypeError,
    );
    expect(() =>
      w.gateway.exec(new Uint8Array(1), { actor_id: bot.id } as unknown as ExecRequest),
    ).toThrow(/invalid ExecRequest/);
  });
});
