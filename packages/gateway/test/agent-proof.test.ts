// Agents authenticate with their own identity key: every exec carries the agent's signed
// `sam-exec-requested` token (and every capsule request through the daemon its
// `sam-requested` token). Forged, foreign, stale, altered, replayed and missing proofs are
// denied with a sealed receipt; nothing is consumed and the secret is never touched.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mintToken, type TibetToken } from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import {
  inspectCapsule,
  mintExecProof,
  mintRequestProof,
  type Capsule,
  type ExecRequest,
} from '@tibet/sam';
import {
  GatewayClient,
  GatewayError,
  SignerAdapter,
  serveGateway,
  type ExecResult,
  type RunningGateway,
} from '../src/index.js';
import {
  bot,
  cleanup,
  eve,
  makeWorld,
  mallory,
  materialFor,
  readLog,
  service,
  type World,
} from './fixtures/world.js';

const dirs: string[] = [];
const worlds: World[] = [];
const daemons: RunningGateway[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close();
  for (const w of worlds.splice(0)) await w.close();
  cleanup(dirs);
});

const SIGN_ID = 'sec_sign_001';
/** Claims the bot's id with another key: never registered. */
const fakeBot = testIdentity(bot.id, 'mcp-server', { seed: 'not-the-bot' });

async function signing(o: { requireAgentProof?: boolean } = {}): Promise<{
  w: World;
  bytes: Uint8Array;
  capsule: Capsule;
  request: ExecRequest;
  g: World['gateway'];
}> {
  const w = await makeWorld(dirs, { seed: 'proof', adapters: [new SignerAdapter()] });
  worlds.push(w);
  await w.addSecret(SIGN_ID, 'signing_key', materialFor('proof', 'sign'));
  const { bytes, capsule } = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
  const request = { actor_id: bot.id, action: '/sign', constraints: {}, payload: 'manifest' };
  const g =
    o.requireAgentProof === undefined
      ? w.gateway
      : w.gatewayWith([new SignerAdapter()], { requireAgentProof: o.requireAgentProof });
  return { w, bytes, capsule, request, g };
}

function proofFor(
  w: World,
  bytes: Uint8Array,
  request: ExecRequest,
  agent = bot,
  o: Partial<{ clock: World['clock'] }> = {},
): TibetToken {
  const ref = inspectCapsule(bytes, { directory: w.directory }).readable;
  return mintExecProof(ref, request, agent, { clock: o.clock ?? w.clock });
}

async function expectUnauthenticated(
  w: World,
  capsule: Capsule,
  r: ExecResult,
  why: RegExp,
  verdict = 'sam-actor-unauthenticated',
): Promise<void> {
  expect(r.receipt.status).toBe('denied');
  expect(r.receipt.policy_verdict).toBe(verdict);
  expect(r.receipt.result_summary).toMatch(why);
  expect(r.receipt.received_action_id).toBeNull();
  expect(r.receipt.proxied_action_id).toBeNull();
  // nothing consumed: the agent can still present it properly
  expect(await w.replay.get(capsule.ephemeral_id)).toBeUndefined();
  await w.log.drain();
  const events = (await readLog(join(w.home, 'log'))).map((x) => x.token.event);
  expect(events).not.toContain('secret-proxied');
  expect(events).not.toContain('sam-exec-requested');
  expect(events.at(-1)).toBe('sam-denied');
}

describe('exec: proof of possession by the agent', () => {
  it('missing proof → sam-actor-unauthenticated; with the proof the same capsule executes', async () => {
    const { w, bytes, capsule, request } = await signing();
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request),
      /no proof of the agent/,
    );
    const r = await w.gateway.exec(bytes, request, proofFor(w, bytes, request));
    expect(r.receipt.status, JSON.stringify(r.receipt.events)).toBe('executed');
  });

  it('a forged signature (the bot’s id, another key) and a tampered signature are refused', async () => {
    const { w, bytes, capsule, request } = await signing();
    const forged = proofFor(w, bytes, request, fakeBot);
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, forged),
      /no key .* of jis:acme:release-bot is in the directory/,
    );
    const real = proofFor(w, bytes, request);
    const flipped = { ...real, erachter: `${real.erachter} (altered)` };
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, flipped),
      /signature does not verify/,
    );
  });

  it('a different agent’s key: mallory signs the bot’s request; eve (unregistered) signs her own', async () => {
    const { w, bytes, capsule, request } = await signing();
    // mallory's valid token, presented for a request by the bot
    const ref = inspectCapsule(bytes, { directory: w.directory }).readable;
    const asMallory = mintExecProof(ref, { ...request, actor_id: mallory.id }, mallory, {
      clock: w.clock,
    });
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, asMallory),
      /signed as jis:acme:mallory, the request is by jis:acme:release-bot/,
    );
    // mallory asks in her own name: authenticated, but the capsule is the bot's
    const own = { ...request, actor_id: mallory.id };
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, own, proofFor(w, bytes, own, mallory)),
      /mallory proved the request, the capsule is for jis:acme:release-bot/,
      'sam-actor-mismatch',
    );
    const byEve = { ...request, actor_id: eve.id };
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, byEve, proofFor(w, bytes, byEve, eve)),
      /no key .* of jis:acme:eve/,
    );
  });

  it('a stale proof (older than 120 s) and one from the future (beyond 30 s) are refused', async () => {
    const { w, bytes, capsule, request } = await signing();
    const old = proofFor(w, bytes, request);
    w.clock.advance(121_000);
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, old),
      /the proof is stale/,
    );
    const ahead = mintExecProof(
      inspectCapsule(bytes, { directory: w.directory }).readable,
      request,
      bot,
      { clock: { now: () => new Date(w.clock.now().getTime() + 31_000) } },
    );
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, ahead),
      /ahead of/,
    );
    // within the window: executes
    const fresh = proofFor(w, bytes, request);
    expect((await w.gateway.exec(bytes, request, fresh)).receipt.status).toBe('executed');
  });

  it('the request changed after signing (wrong digest), or the proof names another capsule', async () => {
    const { w, bytes, capsule, request } = await signing();
    const proof = proofFor(w, bytes, request);
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, { ...request, payload: 'another manifest' }, proof),
      /request_sha256 differs/,
    );
    const other = await w.issue({ secret_id: SIGN_ID, target_action: '/sign' });
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, proofFor(w, other.bytes, request)),
      /parent is not the capsule's action|names another capsule/,
    );
    // a token of the wrong event, signed by the bot
    const wrongEvent = mintToken(
      {
        actor: bot.id,
        actorClass: bot.actorClass,
        event: 'sam-requested',
        erachter: 'x',
        erin: proof.erin,
        parent: { action_id: capsule.action_id, generation: capsule.generation },
      },
      bot,
      { clock: w.clock },
    );
    await expectUnauthenticated(
      w,
      capsule,
      await w.gateway.exec(bytes, request, wrongEvent),
      /not sam-exec-requested/,
    );
  });

  it('a replayed proof is refused (sam-replayed); the causal chain reads request → received', async () => {
    const { w, bytes, capsule, request } = await signing();
    const proof = proofFor(w, bytes, request);
    const r = await w.gateway.exec(bytes, request, proof);
    expect(r.receipt.status).toBe('executed');
    const again = await w.gateway.exec(bytes, request, proof);
    expect(again.receipt.policy_verdict).toBe('sam-replayed');
    expect(again.receipt.result_summary).toContain(proof.action_id);
    await w.log.drain();
    const records = await readLog(join(w.home, 'log'));
    const asked = records.find((x) => x.token.action_id === proof.action_id)!;
    expect(asked.token.parent_action_id).toBe(capsule.action_id);
    expect(asked.causal.object_id).toBe(capsule.sam_id);
    const received = records.find((x) => x.token.action_id === r.receipt.received_action_id)!;
    expect(received.token.parent_action_id).toBe(proof.action_id);
    expect(records.filter((x) => x.token.event === 'sam-exec-requested')).toHaveLength(1);
  });

  it('requireAgentProof: false (weaker) executes without a proof and says so; a bad proof still fails', async () => {
    const { w, bytes, capsule, request, g } = await signing({ requireAgentProof: false });
    expect(g.requireAgentProof).toBe(false);
    const bad = proofFor(w, bytes, request, fakeBot);
    await expectUnauthenticated(w, capsule, await g.exec(bytes, request, bad), /no key/);
    const r = await g.exec(bytes, request);
    expect(r.receipt.status).toBe('executed');
    expect(r.receipt.events.some((e) => e.detail.includes('not authenticated'))).toBe(true);
  });
});

describe('daemon: requests and execs are signed by the agent', () => {
  async function daemon(): Promise<{ w: World; d: RunningGateway }> {
    const w = await makeWorld(dirs, { seed: 'proof-daemon', adapters: [new SignerAdapter()] });
    worlds.push(w);
    await w.addSecret(SIGN_ID, 'signing_key', materialFor('proof-daemon', 'sign'));
    const d = await serveGateway({
      gateway: w.gateway,
      socketPath: join(w.home, 'gateway.sock'),
      port: 0,
      issuer: service,
    });
    daemons.push(d);
    return { w, d };
  }
  const REQ = {
    secret_id: SIGN_ID,
    actor_id: bot.id,
    target_action: '/sign',
    intent: 'sign the release manifest',
  };

  it('an unsigned capsule request, a forged one, a changed one and a replayed one are refused and logged', async () => {
    const { w, d } = await daemon();
    const anon = new GatewayClient({ socketPath: d.socketPath! }, { directory: w.directory });
    const code = async (p: Promise<unknown>): Promise<(string | undefined)[]> => {
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      return GatewayError.is(e) ? [e.code, e.detailCode] : [String(e)];
    };
    expect(await code(anon.requestCapsule(REQ))).toEqual([
      'ISSUE_REFUSED',
      'AGENT_UNAUTHENTICATED',
    ]);
    const forged = mintRequestProof(REQ, fakeBot, { clock: w.clock });
    expect(await code(anon.requestCapsule(REQ, { proof: forged }))).toEqual([
      'ISSUE_REFUSED',
      'AGENT_UNAUTHENTICATED',
    ]);
    const signed = mintRequestProof(REQ, bot, { clock: w.clock });
    expect(
      await code(anon.requestCapsule({ ...REQ, target_action: '/exec' }, { proof: signed })),
    ).toEqual(['ISSUE_REFUSED', 'AGENT_UNAUTHENTICATED']);
    const ok = await anon.requestCapsule(REQ, { proof: signed });
    expect(ok.capsule.actor_id).toBe(bot.id);
    expect(await code(anon.requestCapsule(REQ, { proof: signed }))).toEqual([
      'ISSUE_REFUSED',
      'PROOF_REPLAYED',
    ]);
    await w.log.drain();
    const records = await readLog(join(w.home, 'log'));
    const issued = records.find((x) => x.token.action_id === ok.capsule.action_id)!;
    expect(issued.token.parent_action_id).toBe(signed.action_id);
    const denials = records.filter((x) => x.token.event === 'sam-issue-denied');
    expect(denials).toHaveLength(4);
    expect(denials.every((x) => x.token.actor === service.id)).toBe(true);
    expect(denials.map((x) => (x.token.erin as Record<string, unknown>)['code'])).toEqual([
      'AGENT_UNAUTHENTICATED',
      'AGENT_UNAUTHENTICATED',
      'AGENT_UNAUTHENTICATED',
      'PROOF_REPLAYED',
    ]);
  });

  it('happy path over the Unix socket and loopback HTTP; an exec without the agent’s proof is denied', async () => {
    const { w, d } = await daemon();
    const sock = new GatewayClient(
      { socketPath: d.socketPath! },
      { directory: w.directory, agent: bot, clock: w.clock },
    );
    const http = new GatewayClient(`http://127.0.0.1:${d.port}`, {
      directory: w.directory,
      agent: bot,
      clock: w.clock,
    });
    const anon = new GatewayClient(`http://127.0.0.1:${d.port}`, { directory: w.directory });
    const req = { actor_id: bot.id, action: '/sign', constraints: {}, payload: 'manifest' };
    const a = await sock.requestCapsule(REQ);
    const denied = await anon.exec(a.bytes, req);
    expect(denied.receipt.policy_verdict).toBe('sam-actor-unauthenticated');
    expect((await http.exec(a.bytes, req)).receipt.status).toBe('executed');
    const b = await sock.requestCapsule(REQ);
    expect((await sock.exec(b.bytes, req)).receipt.status).toBe('executed');
    // the agent's client refuses to sign for another actor
    await expect(sock.requestCapsule({ ...REQ, actor_id: mallory.id })).rejects.toThrow(RangeError);
  });
});
