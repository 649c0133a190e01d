// The agent's proof of possession at issuance: `sam-requested`, signed with the agent's own
// key, verified against the directory, fresh, used once, logged as the parent of
// `sam-issued`; refusals on the record as `sam-issue-denied`. Also the exec proof's checks
// and the payload digest in `sam-issued`.
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalBytes, getProvider, toHex, verifyToken } from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import {
  AGENT_PROOF_MAX_AGE_MS,
  SamError,
  checkIssuance,
  execRequestDigest,
  issueCapsule,
  mintExecProof,
  mintRequestProof,
  verifyExecProof,
  type CapsuleRequest,
  type ExecRequest,
} from '../src/index.js';
import { SECRET_ID, alice, bot, cleanup, mallory, service, setup } from './fixtures/helpers.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const REQ: CapsuleRequest = {
  secret_id: SECRET_ID,
  actor_id: bot.id,
  target_action: '/upload/npm',
  intent: 'publish acme-lib 1.2.0',
  constraints: [{ key: 'registry', value: 'registry.npmjs.org' }],
  policy_lane: 'publish',
  upstream_payload: { body: 'PAYLOAD-MARKER-7f3a' },
};
const fakeBot = testIdentity(bot.id, 'mcp-server', { seed: 'not-the-bot' });

async function refusal(p: Promise<unknown>): Promise<SamError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!SamError.is(e)) throw new Error(`expected a SamError, got ${String(e)}`);
  return e;
}

describe('issueCapsule with the agent’s proof', () => {
  it('verifies it, logs it, and makes it the parent of sam-issued; the payload is a digest', async () => {
    const s = await setup(dirs);
    const n = (await s.records()).length;
    const proof = mintRequestProof(REQ, bot, { clock: s.clock });
    const r = await issueCapsule({
      keychain: s.kc,
      issuer: service,
      request: REQ,
      requestProof: proof,
      requireRequestProof: true,
    });
    expect(r.requestToken?.action_id).toBe(proof.action_id);
    const added = (await s.records()).slice(n);
    expect(added.map((x) => x.token.event)).toEqual(['sam-requested', 'sam-issued']);
    const [asked, issued] = added;
    verifyToken(asked!.token, bot.signingPublicKey);
    expect(asked!.token.actor).toBe(bot.id);
    expect(asked!.causal.object_id).toBe(SECRET_ID);
    expect(issued!.token.parent_action_id).toBe(proof.action_id);
    expect(issued!.token.generation).toBe(proof.generation + 1);
    expect(issued!.token.eraan).toContainEqual({
      action_id: proof.action_id,
      rel: 'requested-by',
      actor: bot.id,
    });
    // the payload is named by its digest, never copied into the log (request or issuance)
    const digest = toHex(getProvider().sha256(canonicalBytes(REQ.upstream_payload)));
    const erin = issued!.token.erin as Record<string, unknown>;
    expect(erin['upstream_payload_sha256']).toBe(digest);
    expect('upstream_payload' in erin).toBe(false);
    expect((asked!.token.erin as Record<string, unknown>)['upstream_payload_sha256']).toBe(digest);
    expect(JSON.stringify(added)).not.toContain('PAYLOAD-MARKER-7f3a');
    expect(r.capsule.upstream_payload).toEqual(REQ.upstream_payload);
    checkIssuance(r.capsule, issued!.token);
    await s.close();
  });

  it('refuses missing, forged, foreign, stale, future and altered proofs; every refusal is logged', async () => {
    const s = await setup(dirs);
    const n = (await s.records()).length;
    const issue = (proof: unknown, request = REQ): Promise<unknown> =>
      issueCapsule({
        keychain: s.kc,
        issuer: service,
        request,
        ...(proof !== undefined ? { requestProof: proof } : {}),
        requireRequestProof: true,
      });
    const cases: [string, unknown, RegExp, CapsuleRequest?][] = [
      ['missing', undefined, /no proof of the agent/],
      ['forged', mintRequestProof(REQ, fakeBot, { clock: s.clock }), /no key .* in the directory/],
      [
        'another agent',
        mintRequestProof({ ...REQ, actor_id: mallory.id }, mallory, { clock: s.clock }),
        /signed as jis:acme:mallory/,
      ],
      [
        'stale',
        mintRequestProof(REQ, bot, {
          clock: { now: () => new Date(s.clock.now().getTime() - AGENT_PROOF_MAX_AGE_MS - 1000) },
        }),
        /stale/,
      ],
      [
        'future',
        mintRequestProof(REQ, bot, {
          clock: { now: () => new Date(s.clock.now().getTime() + 31_000) },
        }),
        /ahead of/,
      ],
      [
        'altered',
        mintRequestProof(REQ, bot, { clock: s.clock }),
        /does not sign this capsule request/,
        { ...REQ, target_action: '/exec' },
      ],
      [
        'altered payload',
        mintRequestProof(REQ, bot, { clock: s.clock }),
        /does not sign this capsule request/,
        { ...REQ, upstream_payload: { body: 'other' } },
      ],
    ];
    for (const [label, proof, why, request] of cases) {
      const e = await refusal(issue(proof, request));
      expect(e.code, label).toBe('AGENT_UNAUTHENTICATED');
      expect(e.verdict, label).toBe('sam-actor-unauthenticated');
      expect(e.message, label).toMatch(why);
    }
    const added = (await s.records()).slice(n).map((x) => x.token);
    expect(added.map((t) => t.event)).toEqual(cases.map(() => 'sam-issue-denied'));
    expect(added.every((t) => t.actor === service.id && t.parent_action_id === null)).toBe(true);
    await s.close();
  });

  it('a replayed proof is refused (PROOF_REPLAYED); a refusal of a proved request is its child', async () => {
    const s = await setup(dirs);
    const proof = mintRequestProof(REQ, bot, { clock: s.clock });
    await issueCapsule({ keychain: s.kc, issuer: service, request: REQ, requestProof: proof });
    const e = await refusal(
      issueCapsule({ keychain: s.kc, issuer: service, request: REQ, requestProof: proof }),
    );
    expect(e.code).toBe('PROOF_REPLAYED');
    expect(e.verdict).toBe('sam-replayed');

    // authenticated, then refused by the keychain policy: request logged, denial its child
    const wrong = { ...REQ, target_action: '/exec', policy_lane: null };
    const p2 = mintRequestProof(wrong, bot, { clock: s.clock });
    const n = (await s.records()).length;
    const e2 = await refusal(
      issueCapsule({
        keychain: s.kc,
        issuer: mallory,
        request: wrong,
        requestProof: p2,
      }),
    );
    expect(e2.code).toBe('NOT_AUTHORIZED');
    const added = (await s.records()).slice(n).map((x) => x.token);
    expect(added.map((t) => t.event)).toEqual(['sam-requested', 'sam-issue-denied']);
    expect(added[1]!.parent_action_id).toBe(p2.action_id);
    expect((added[1]!.erin as Record<string, unknown>)['agent_authenticated']).toBe(true);
    await s.close();
  });

  it('an agent signs only for itself', () => {
    expect(() => mintRequestProof({ ...REQ, actor_id: alice.id }, bot)).toThrow(RangeError);
  });
});

describe('exec proofs', () => {
  const ref = {
    sam_id: 'sam_0123456789ab',
    ephemeral_id: 'eph_0123456789ab',
    action_id: 'act_0123456789abcdef',
    generation: 3,
    actor_id: bot.id,
  };
  const req: ExecRequest = { actor_id: bot.id, action: '/sign', constraints: {}, payload: 'm' };

  it('binds the capsule, the exact request (RFC 8785 digest) and the time', async () => {
    const s = await setup(dirs);
    const now = s.clock.now();
    const proof = mintExecProof(ref, req, bot, { clock: s.clock });
    expect(proof.parent_action_id).toBe(ref.action_id);
    expect(proof.generation).toBe(4);
    expect((proof.erin as Record<string, unknown>)['request_sha256']).toBe(execRequestDigest(req));
    // member order does not matter (canonical form); undefined members are absent
    expect(
      execRequestDigest({ constraints: {}, payload: 'm', action: '/sign', actor_id: bot.id }),
    ).toBe(execRequestDigest(req));
    expect(execRequestDigest({ ...req, upstream_url: undefined } as unknown as ExecRequest)).toBe(
      execRequestDigest(req),
    );
    const o = { directory: s.directory, now };
    expect(verifyExecProof(proof, ref, req, o).action_id).toBe(proof.action_id);
    const fail = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        return SamError.is(e) ? `${e.code}/${e.verdict ?? ''}` : String(e);
      }
      return 'ok';
    };
    const unauth = 'AGENT_UNAUTHENTICATED/sam-actor-unauthenticated';
    expect(fail(() => verifyExecProof(proof, ref, { ...req, payload: 'n' }, o))).toBe(unauth);
    expect(fail(() => verifyExecProof(proof, { ...ref, sam_id: 'sam_ffffffffffff' }, req, o))).toBe(
      unauth,
    );
    expect(fail(() => verifyExecProof(proof, { ...ref, generation: 4 }, req, o))).toBe(unauth);
    expect(
      fail(() =>
        verifyExecProof(proof, ref, req, {
          ...o,
          now: new Date(now.getTime() + AGENT_PROOF_MAX_AGE_MS + 1),
        }),
      ),
    ).toBe(unauth);
    expect(fail(() => verifyExecProof(undefined, ref, req, o))).toBe(unauth);
    expect(fail(() => verifyExecProof({ ...proof, signature: 'x' }, ref, req, o))).toBe(unauth);
    expect(fail(() => verifyExecProof(proof, { ...ref, actor_id: mallory.id }, req, o))).toBe(
      'AGENT_UNAUTHENTICATED/sam-actor-mismatch',
    );
    await s.close();
  });
});
