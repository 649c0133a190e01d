import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { utf8 } from '@tibet/core';
import { KeychainTimeline, timelineSourceFor, type SigningWay } from '../src/queries.js';
import { T0, alice, bob, bot, gw, makeDirectory, openWorld, service } from './fixtures/helpers.js';

const at = (h: number): Date => new Date(Date.parse(T0) + h * 3_600_000);
const iso = (h: number): string => at(h).toISOString();

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A release signing key, an hour per step:
 *  0 alice generates it                 1 alice reveals it (a plaintext copy of v1 exists)
 *  2 the release bot becomes operator   3 gateway signs for the bot (/sign/release)
 *  4 bob becomes custodian (resealed)   5 gateway signs for the bot (/sign/release)
 *  6 alice rotates (v2)                 7 gateway signs for the bot (/sign/nightly)
 */
async function setup() {
  const { log, audit, kc, clock } = await openWorld(
    dirs,
    'tibet-kcs-',
    makeDirectory([service, alice, bob, bot, gw]),
  );
  const id = 'sec_sign_1';
  const add = await kc.add({
    actor: alice,
    secretId: id,
    type: 'signing_key',
    issuer: 'acme release',
    scope: 'sign:releases',
    reason: 'release signing key',
  });
  clock.set(at(1));
  const reveal = await kc.reveal({ actor: alice, secretId: id, reason: 'back up the key' });
  reveal.material.fill(0);
  clock.set(at(2));
  const op = await kc.delegate({
    actor: alice,
    secretId: id,
    role: 'active_operator',
    assignee: bot.id,
    reason: 'the bot signs releases',
  });
  const sign = async (h: number, target: string) => {
    clock.set(at(h));
    const o = await kc.use({
      actor: gw,
      secretId: id,
      onBehalfOf: bot.id,
      targetAction: target,
      sessionId: `gsess:eph_${String(h).repeat(12)}`,
      reason: `sign at ${h}`,
    });
    o.material.fill(0);
    return o;
  };
  const s1 = await sign(3, '/sign/release');
  clock.set(at(4));
  const cust = await kc.delegate({
    actor: alice,
    secretId: id,
    role: 'custodian',
    assignee: bob.id,
    reason: 'bob keeps the release key',
  });
  const s2 = await sign(5, '/sign/release');
  clock.set(at(6));
  const rot = await kc.rotate({ actor: alice, secretId: id, reason: 'yearly rotation' });
  const s3 = await sign(7, '/sign/nightly');
  const timeline = new KeychainTimeline(timelineSourceFor(audit));
  return { log, kc, clock, timeline, id, add, reveal, op, s1, cust, s2, rot, s3 };
}

const ways = (list: SigningWay[]) =>
  list.map((w) => [w.how, w.role ?? null, w.from, w.to, w.version]);

describe('signing keys', () => {
  it('whoDidSign: the proxied signatures in a window, and reveals that put the key outside', async () => {
    const e = await setup();
    const w = await e.timeline.whoDidSign(e.id, at(2.5), at(6.5));
    expect(w.signed.map((a) => [a.on_behalf_of, a.actor, a.target_action, a.version])).toEqual([
      [bot.id, gw.id, '/sign/release', 1],
      [bot.id, gw.id, '/sign/release', 1],
    ]);
    expect(w.signed.map((a) => a.action_id)).toEqual([e.s1.token.action_id, e.s2.token.action_id]);
    expect(w.revealed).toEqual([]);
    expect(w.evidence.map((x) => [x.index, x.line_hash])).toEqual([
      [e.s1.receipt.index, e.s1.receipt.lineHash],
      [e.s2.receipt.index, e.s2.receipt.lineHash],
    ]);
    const all = await e.timeline.whoDidSign(e.id, at(0), at(8), { targetPrefix: '/sign/nightly' });
    expect(all.signed.map((a) => [a.action_id, a.version])).toEqual([[e.s3.token.action_id, 2]]);
    expect(all.revealed.map((a) => [a.actor, a.action_id])).toEqual([
      [alice.id, e.reveal.token.action_id],
    ]);
    await e.log.close();
  });

  it('whoCouldHaveSigned: custody and permission over the window, split where custody changed', async () => {
    const e = await setup();
    const w = await e.timeline.whoCouldHaveSigned(e.id, at(2.5), at(4.5));
    const by = new Map(w.actors.map((a) => [a.actor, a.ways]));
    expect([...by.keys()].sort()).toEqual([alice.id, bob.id, service.id, bot.id].sort());
    // alice: owner throughout (a sealed copy), may reveal throughout, and revealed v1 before
    expect(ways(by.get(alice.id)!)).toEqual([
      ['custody', 'owner', iso(2.5), iso(4.5), 1],
      ['reveal', 'owner', iso(2.5), iso(4.5), 1],
      ['custody-before', 'owner', iso(0), iso(2.5), 1],
      ['revealed-before', null, iso(1), iso(1), 1],
    ]);
    // the keychain was custodian until 04:00, bob after
    expect(ways(by.get(service.id)!)).toEqual([
      ['custody', 'custodian', iso(2.5), iso(4), 1],
      ['custody-before', 'custodian', iso(0), iso(2.5), 1],
    ]);
    expect(ways(by.get(bob.id)!)).toEqual([['custody', 'custodian', iso(4), iso(4.5), 1]]);
    // the bot could have it used for it (active operator) the whole window
    expect(ways(by.get(bot.id)!)).toEqual([['use', 'active_operator', iso(2.5), iso(4.5), 1]]);
    expect(by.get(bot.id)![0]!.rule).toBe('policy.use: role:active_operator');
    const cited = w.evidence.map((x) => x.action_id);
    for (const o of [e.add, e.reveal, e.op, e.cust]) expect(cited).toContain(o.token.action_id);
    await e.log.close();
  });

  it('after a rotation, earlier reveals of the old version no longer count', async () => {
    const e = await setup();
    const w = await e.timeline.whoCouldHaveSigned(e.id, at(6.5), at(7.5));
    const by = new Map(w.actors.map((a) => [a.actor, a.ways]));
    expect(ways(by.get(alice.id)!)).toEqual([
      ['custody', 'owner', iso(6.5), iso(7.5), 2],
      ['reveal', 'owner', iso(6.5), iso(7.5), 2],
      ['custody-before', 'owner', iso(6), iso(6.5), 2],
    ]);
    expect(by.has(service.id)).toBe(false);
    expect(w.note).toContain('service');
    await e.log.close();
  });

  it('an exposure makes anyone a possible signer until the key is rotated', async () => {
    const e = await setup();
    e.clock.set(at(8));
    const x = await e.kc.expose({
      actor: bob,
      secretId: e.id,
      exposure: 'git-leaked',
      evidence: 'commit 1a2b3c',
      reason: 'key committed to a public repo',
    });
    const w = await e.timeline.whoCouldHaveSigned(e.id, at(7.5), at(9));
    const anyone = w.actors.find((a) => a.actor === '*');
    expect(anyone && ways(anyone.ways)).toEqual([['exposed', null, iso(8), iso(9), 2]]);
    expect(anyone!.ways[0]!.rule).toBe('git-leaked');
    // policy-based ways stop at the leak
    const bot2 = w.actors.find((a) => a.actor === bot.id)!;
    expect(ways(bot2.ways)).toEqual([['use', 'active_operator', iso(7.5), iso(8), 2]]);
    expect(w.evidence.map((v) => v.action_id)).toContain(x.token.action_id);
    await e.log.close();
  });

  it('an actor named in the reveal policy holds a sealed copy: custody in the window and before it', async () => {
    const e = await setup();
    e.clock.set(at(8));
    const pol = await e.kc.setPolicy({
      actor: alice,
      secretId: e.id,
      policy: { reveal: ['role:owner', bob.id] },
      reason: 'bob may see the key',
    });
    e.clock.set(at(9));
    const w = await e.timeline.whoCouldHaveSigned(e.id, at(8.5), at(9.5));
    const bobWays = w.actors.find((a) => a.actor === bob.id)!.ways;
    // bob is custodian since 04:00; from 08:00 the policy names him too (a sealed copy either way)
    expect(bobWays.filter((x) => x.how === 'custody').map((x) => x.rule ?? x.role)).toEqual([
      'custodian',
    ]);
    // move custody away from bob: he still holds a copy through the policy
    e.clock.set(at(10));
    await e.kc.delegate({
      actor: alice,
      secretId: e.id,
      role: 'custodian',
      assignee: service.id,
      authorityMode: 'admin',
      reason: 'custody back to the keychain',
    });
    const w2 = await e.timeline.whoCouldHaveSigned(e.id, at(10.5), at(11), { anyType: true });
    const b2 = w2.actors.find((a) => a.actor === bob.id)!.ways;
    expect(b2.map((x) => [x.how, x.rule ?? x.role ?? null])).toEqual(
      expect.arrayContaining([
        ['custody', 'sealed copy: named in policy.reveal'],
        ['custody-before', 'sealed copy: named in policy.reveal'],
      ]),
    );
    expect(w2.evidence.map((x) => x.action_id)).toContain(pol.token.action_id);
    await e.log.close();
  });

  it('refuses the signing questions for a secret that is not a signing key', async () => {
    const e = await setup();
    await e.kc.add({
      actor: alice,
      secretId: 'sec_api_1',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k'),
      reason: 'r',
    });
    await expect(e.timeline.whoDidSign('sec_api_1', at(0), at(9))).rejects.toThrow(TypeError);
    await expect(e.timeline.whoCouldHaveSigned('sec_api_1', at(9), at(0))).rejects.toThrow(
      RangeError,
    );
    await e.log.close();
  });
});
