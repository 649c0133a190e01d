import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mintToken, utf8, type Identity } from '@tibet/core';
import { ContinuityError } from '@tibet/continuityd';
import { type Outcome } from '@tibet/keychain';
import {
  AuditClientSource,
  KeychainTimeline,
  LogFolderSource,
  due,
  replay,
  timelineSourceFor,
  type Evidence,
} from '../src/queries.js';
import {
  T0,
  alice,
  bob,
  bot,
  carol,
  gw,
  makeDirectory,
  openWorld,
  service,
} from './fixtures/helpers.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (h: number): Date => new Date(Date.parse(T0) + h * HOUR);

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup() {
  const { home, log, audit, kc, clock } = await openWorld(
    dirs,
    'tibet-kcq-',
    makeDirectory([service, alice, bob, carol, bot, gw]),
  );
  const timeline = new KeychainTimeline(timelineSourceFor(audit));
  return { home, log, audit, kc, clock, timeline };
}

type Env = Awaited<ReturnType<typeof setup>>;

/** A capsule sealed by `who` on its own line: the parent a gateway's use names. */
async function capsule(env: Env, who: Identity, samId: string) {
  const t = mintToken(
    {
      actor: who.id,
      actorClass: who.actorClass,
      event: 'sam-sealed',
      erachter: 'publish acme-lib',
      erin: { sam_id: samId, secret_id: 'sec_pypi_001', target_action: '/upload/pypi' },
      eraan: [{ object_id: samId }],
    },
    who,
    { clock: env.clock },
  );
  await env.audit.append(t, { objectId: samId });
  return { action_id: t.action_id, generation: t.generation };
}

/** Where an outcome's event is in the log, as a query cites it. */
function cite(o: Outcome, event: string): Partial<Evidence> {
  return {
    index: o.receipt.index,
    action_id: o.token.action_id,
    line_hash: o.receipt.lineHash,
    event,
  };
}

/**
 * The story of one PyPI token, an hour per step from T0:
 *  0 alice imports (owner alice, custodian = keychain)   1 alice reveals
 *  2 alice makes the release bot active operator           3 gateway uses it for the bot (capsule 1)
 *  4 gateway for bob: denied                               5 bob reports it log-leaked
 *  6 gateway for the bot: denied (exposed)                 7 alice rotates
 *  8 gateway uses it for the bot (capsule 2)               9 alice offers ownership to carol
 * 10 carol accepts
 */
async function story(env: Env) {
  const { kc, clock } = env;
  const id = 'sec_pypi_001';
  const step = (h: number): void => clock.set(at(h));
  step(0);
  const add = await kc.add({
    actor: alice,
    secretId: id,
    type: 'pypi_token',
    issuer: 'pypi.org',
    scope: 'upload:acme-lib',
    material: utf8('pypi-AgEIcHlwaS5vcmc-original'),
    expiresAt: new Date(Date.parse(T0) + 90 * DAY),
    reason: 'publish token for acme-lib',
  });
  step(1);
  const reveal = await kc.reveal({ actor: alice, secretId: id, reason: 'check the token' });
  step(2);
  const delegate = await kc.delegate({
    actor: alice,
    secretId: id,
    role: 'active_operator',
    assignee: bot.id,
    reason: 'the release bot publishes acme-lib',
  });
  step(3);
  const cap1 = await capsule(env, bot, 'sam_0123456789ab');
  const use1 = await kc.use({
    actor: gw,
    secretId: id,
    onBehalfOf: bot.id,
    targetAction: '/upload/pypi',
    lane: 'publish',
    sessionId: 'gsess:eph_aaaaaaaaaaaa',
    parent: cap1,
    reason: 'publish acme-lib 1.2.0',
  });
  step(4);
  await expect(
    kc.use({ actor: gw, secretId: id, onBehalfOf: bob.id, reason: 'bob tries' }),
  ).rejects.toMatchObject({ code: 'NOT_AUTHORIZED' });
  step(5);
  const expose = await kc.expose({
    actor: bob,
    secretId: id,
    exposure: 'log-leaked',
    evidence: 'ci log #4411 line 88',
    reason: 'token printed in CI log',
  });
  step(6);
  await expect(
    kc.use({ actor: gw, secretId: id, onBehalfOf: bot.id, reason: 'publish again' }),
  ).rejects.toMatchObject({ code: 'SECRET_EXPOSED' });
  step(7);
  const rotate = await kc.rotate({
    actor: alice,
    secretId: id,
    material: utf8('pypi-AgEIcHlwaS5vcmc-rotated'),
    reason: 'rotate after the CI leak',
  });
  step(8);
  const cap2 = await capsule(env, bot, 'sam_ba9876543210');
  const use2 = await kc.use({
    actor: gw,
    secretId: id,
    onBehalfOf: bot.id,
    targetAction: '/upload/pypi',
    lane: 'publish',
    sessionId: 'gsess:eph_bbbbbbbbbbbb',
    parent: cap2,
    reason: 'publish acme-lib 1.2.1',
  });
  step(9);
  const offer = await kc.delegate({
    actor: alice,
    secretId: id,
    role: 'owner',
    assignee: carol.id,
    reason: 'carol takes over acme-lib releases',
  });
  step(10);
  const accept = await kc.accept({ actor: carol, secretId: id, reason: 'I take it' });
  return { id, add, reveal, delegate, use1, expose, rotate, use2, offer, accept, cap1, cap2 };
}

describe('timeline queries', () => {
  it('history: every event in causal order, denials included, each with its log position', async () => {
    const env = await setup();
    const s = await story(env);
    const h = await env.timeline.history(s.id);
    expect(h.entries.map((e) => [e.event, e.outcome, e.actor])).toEqual([
      ['secret-imported', 'applied', alice.id],
      ['secret-unsealed', 'applied', alice.id],
      ['secret-delegated', 'applied', alice.id],
      ['secret-proxied', 'applied', gw.id],
      ['secret-denied', 'denied', service.id],
      ['secret-exposed', 'applied', bob.id],
      ['secret-denied', 'denied', service.id],
      ['secret-rotated', 'applied', alice.id],
      ['secret-proxied', 'applied', gw.id],
      ['secret-delegated', 'applied', alice.id],
      ['secret-accepted', 'applied', carol.id],
    ]);
    expect(h.gaps).toEqual([]);
    expect(h.problems).toEqual([]);
    const denied = h.entries[4]!;
    expect(denied).toMatchObject({
      requested_by: gw.id,
      operation: 'use',
      code: 'NOT_AUTHORIZED',
      actor_class: 'system',
    });
    expect(denied.decisions.at(-1)).toMatchObject({
      rule: 'custody.active_operator',
      decision: 'deny',
    });
    const use = h.entries[3]!;
    expect(use).toMatchObject({
      action_id: s.use1.token.action_id,
      parent_action_id: s.cap1.action_id,
      on_behalf_of: bot.id,
      actor_class: 'gateway',
      at: at(3).toISOString(),
      exposure_state: 'in-use',
    });
    expect(use.decisions.map((d) => d.rule)).toEqual([
      'lifecycle',
      'exposure',
      'rotation',
      'policy.use',
      'policy.targets',
      'policy.lanes',
    ]);
    // the evidence is the log itself: index and line hash as the log's receipt gave them
    expect(h.evidence).toHaveLength(11);
    expect(h.evidence).toContainEqual(expect.objectContaining(cite(s.use1, 'secret-proxied')));
    expect(h.evidence).toContainEqual(expect.objectContaining(cite(s.add, 'secret-imported')));
    await env.log.close();
  });

  it('replaying the log reproduces the stored state exactly', async () => {
    const env = await setup();
    const s = await story(env);
    const r = await env.timeline.replay(s.id);
    expect(r.problems).toEqual([]);
    expect(r.state).toEqual(await env.kc.state(s.id));
    // and as of any time, the state the keychain had then
    const mid = await env.timeline.replay(s.id, at(5.5));
    expect(mid.state).toEqual(s.expose.state);
    await env.log.close();
  });

  it('whoCould reveal / use, as of several times, with the rules and the events behind them', async () => {
    const env = await setup();
    const s = await story(env);
    const t = env.timeline;

    const before = await t.whoCould(s.id, new Date(Date.parse(T0) - 1), 'reveal');
    expect(before).toMatchObject({ existed: false, actors: [], evidence: [] });

    // 00:30 — alice owns it; reveal is `role:owner`; use falls to the custodian (the keychain)
    const r1 = await t.whoCould(s.id, at(0.5), 'reveal');
    expect(r1.actors.map((a) => a.actor)).toEqual([alice.id]);
    expect(r1.actors[0]!.grants).toEqual([
      {
        rule: 'policy.reveal',
        entry: 'role:owner',
        role: 'owner',
        since_action_id: s.add.token.action_id,
      },
    ]);
    expect(r1.state).toMatchObject({
      owner_id: alice.id,
      custodian_id: service.id,
      active_operator_id: null,
      lifecycle_state: 'active',
      exposure_state: 'sealed',
      expired: false,
      resolved: { reveal: [{ entry: 'role:owner', actors: [alice.id] }] },
    });
    expect(r1.evidence).toHaveLength(1);
    expect(r1.evidence[0]).toMatchObject(cite(s.add, 'secret-imported'));
    expect(r1.evidence[0]!.why).toContain('owner_id');
    const u1 = await t.whoCould(s.id, at(0.5), 'use');
    expect(u1.actors.map((a) => a.actor)).toEqual([service.id]);
    expect(u1.actors[0]!.grants[0]).toMatchObject({ entry: 'role:custodian', role: 'custodian' });
    expect(u1.executors).toContain('gateway');

    // 02:30 — the bot is active operator: only it may have the secret used for it
    const u2 = await t.whoCould(s.id, at(2.5), 'use');
    expect(u2.actors.map((a) => a.actor)).toEqual([bot.id]);
    expect(u2.actors[0]!.grants).toEqual([
      {
        rule: 'policy.use',
        entry: 'role:active_operator',
        role: 'active_operator',
        since_action_id: s.delegate.token.action_id,
      },
      {
        rule: 'custody.active_operator',
        entry: bot.id,
        role: 'active_operator',
        since_action_id: s.delegate.token.action_id,
      },
    ]);
    expect(u2.refused).toEqual([
      expect.objectContaining({
        actor: service.id,
        rule: 'custody.active_operator',
        code: 'NOT_AUTHORIZED',
      }),
    ]);
    expect(u2.evidence.map((e) => e.action_id)).toContain(s.delegate.token.action_id);
    // with a target the policy does not allow... (the default allows any)
    const u2t = await t.whoCould(s.id, at(2.5), 'use', {
      targetAction: '/upload/pypi',
      lane: 'publish',
    });
    expect(u2t.actors[0]!.decisions.map((d) => d.rule)).toContain('policy.targets');

    // 05:30 — leaked: nobody, and the exposure event is why
    const r3 = await t.whoCould(s.id, at(5.5), 'reveal');
    expect(r3.actors).toEqual([]);
    expect(r3.blocked).toMatchObject({ rule: 'exposure', code: 'SECRET_EXPOSED' });
    expect(r3.state).toMatchObject({
      exposure_state: 'log-leaked',
      rotation_required: true,
      lifecycle_state: 'compromised',
    });
    expect(r3.evidence).toContainEqual(expect.objectContaining(cite(s.expose, 'secret-exposed')));

    // 07:30 — rotated: the bot again
    const u4 = await t.whoCould(s.id, at(7.5), 'use');
    expect(u4.actors.map((a) => a.actor)).toEqual([bot.id]);
    expect(u4.evidence).toContainEqual(expect.objectContaining(cite(s.rotate, 'secret-rotated')));

    // 09:30 — ownership offered to carol, not yet accepted: still alice
    const r5 = await t.whoCould(s.id, at(9.5), 'reveal');
    expect(r5.actors.map((a) => a.actor)).toEqual([alice.id]);
    expect(r5.state?.pending_handoff).toMatchObject({ role: 'owner', assignee: carol.id });

    // 10:30 — carol accepted: carol, established by her acceptance
    const r6 = await t.whoCould(s.id, at(10.5), 'reveal');
    expect(r6.actors.map((a) => a.actor)).toEqual([carol.id]);
    expect(r6.actors[0]!.grants[0]!.since_action_id).toBe(s.accept.token.action_id);
    expect(r6.evidence).toContainEqual(expect.objectContaining(cite(s.accept, 'secret-accepted')));

    // past expiry: nobody
    const late = await t.whoCould(s.id, new Date(Date.parse(T0) + 91 * DAY), 'reveal');
    expect(late.blocked).toMatchObject({ rule: 'expiry', code: 'SECRET_EXPIRED' });
    expect(late.state?.expired).toBe(true);
    await env.log.close();
  });

  it('whoCould resolves explicit ids and `*` in a changed policy', async () => {
    const env = await setup();
    const { kc, clock, timeline } = env;
    await kc.add({
      actor: alice,
      secretId: 'sec_api_7',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k'),
      reason: 'r',
    });
    clock.set(at(1));
    const pol = await kc.setPolicy({
      actor: alice,
      secretId: 'sec_api_7',
      policy: { reveal: ['role:owner', bob.id] },
      reason: 'bob debugs the integration',
    });
    clock.set(at(2));
    await kc.setPolicy({
      actor: alice,
      secretId: 'sec_api_7',
      policy: { reveal: ['*'] },
      reason: 'public test key',
    });
    const w0 = await timeline.whoCould('sec_api_7', at(0.5), 'reveal');
    expect(w0.actors.map((a) => a.actor)).toEqual([alice.id]);
    const w1 = await timeline.whoCould('sec_api_7', at(1.5), 'reveal');
    expect(w1.actors.map((a) => [a.actor, a.grants.map((g) => g.entry)])).toEqual([
      [alice.id, ['role:owner']],
      [bob.id, [bob.id]],
    ]);
    expect(w1.evidence).toContainEqual(expect.objectContaining(cite(pol, 'secret-policy-changed')));
    const w2 = await timeline.whoCould('sec_api_7', at(2.5), 'reveal');
    expect(w2.actors.map((a) => a.actor)).toEqual(['*']);
    await env.log.close();
  });

  it('whoDid and lastUsed: who revealed it, for whom it was used, who was refused', async () => {
    const env = await setup();
    const s = await story(env);
    const all = await env.timeline.whoDid(s.id);
    expect(all.accesses.map((a) => [a.action, a.actor, a.on_behalf_of, a.version])).toEqual([
      ['reveal', alice.id, null, 1],
      ['use', gw.id, bot.id, 1],
      ['use', gw.id, bot.id, 2],
    ]);
    expect(all.accesses[1]).toMatchObject({
      action_id: s.use1.token.action_id,
      parent_action_id: s.cap1.action_id,
      target_action: '/upload/pypi',
      lane: 'publish',
      session_id: 'gsess:eph_aaaaaaaaaaaa',
      index: s.use1.receipt.index,
      line_hash: s.use1.receipt.lineHash,
    });
    expect(all.actors).toContainEqual(
      expect.objectContaining({ actor: bot.id, as: 'principal', count: 2 }),
    );
    expect(all.denied.map((d) => [d.requested_by, d.code])).toEqual([
      [gw.id, 'NOT_AUTHORIZED'],
      [gw.id, 'SECRET_EXPOSED'],
    ]);
    expect(all.evidence).toHaveLength(5);
    const reveals = await env.timeline.whoDid(s.id, 'reveal');
    expect(reveals.accesses.map((a) => a.action_id)).toEqual([s.reveal.token.action_id]);
    expect(reveals.denied).toEqual([]);

    const last = await env.timeline.lastUsed(s.id);
    expect(last.last).toMatchObject({
      action: 'use',
      action_id: s.use2.token.action_id,
      at: at(8).toISOString(),
    });
    expect(last.last_reveal?.action_id).toBe(s.reveal.token.action_id);
    expect(last.state_agrees).toBe(true);
    expect((await env.kc.state(s.id)).last_access_action_id).toBe(s.use2.token.action_id);
    expect(last.evidence.map((e) => e.action_id)).toEqual([
      s.reveal.token.action_id,
      s.use2.token.action_id,
    ]);
    await env.log.close();
  });

  it('dependents: what relies on the current material since the last rotation', async () => {
    const env = await setup();
    const s = await story(env);
    const d = await env.timeline.dependents(s.id);
    expect(d.since).toMatchObject({
      action_id: s.rotate.token.action_id,
      event: 'secret-rotated',
      version: 2,
    });
    expect(d.active_operator).toEqual({
      actor: bot.id,
      since_action_id: s.delegate.token.action_id,
    });
    expect(d.principals.map((p) => [p.actor, p.count])).toEqual([[bot.id, 1]]);
    expect(d.gateways.map((p) => p.actor)).toEqual([gw.id]);
    expect(d.sessions).toEqual([
      {
        session_id: 'gsess:eph_bbbbbbbbbbbb',
        action_id: s.use2.token.action_id,
        at: at(8).toISOString(),
      },
    ]);
    expect(d.targets).toEqual([
      { target_action: '/upload/pypi', uses: 1, action_ids: [s.use2.token.action_id] },
    ]);
    expect(d.lanes).toEqual(['publish']);
    // the capsule that was the use's parent, described from the log
    expect(d.parents).toEqual([
      {
        action_id: s.cap2.action_id,
        actor: bot.id,
        event: 'sam-sealed',
        object_id: 'sam_ba9876543210',
        uses: [s.use2.token.action_id],
      },
    ]);
    expect(d.revealed_to).toEqual([]);
    expect(d.pending_handoff).toBeNull();
    expect(d.evidence.map((e) => e.action_id)).toEqual([
      s.delegate.token.action_id,
      s.rotate.token.action_id,
      s.use2.token.action_id,
    ]);
    await env.log.close();
  });

  it('dependents include a pending handoff and everything since creation when never rotated', async () => {
    const env = await setup();
    const { kc, clock, timeline } = env;
    const add = await kc.add({
      actor: alice,
      secretId: 'sec_gh_1',
      type: 'github_pat',
      issuer: 'github.com',
      scope: 'repo',
      material: utf8('ghp_x'),
      reason: 'r',
    });
    clock.set(at(1));
    const rev = await kc.reveal({ actor: alice, secretId: 'sec_gh_1', reason: 'configure CI' });
    clock.set(at(2));
    const offer = await kc.delegate({
      actor: alice,
      secretId: 'sec_gh_1',
      role: 'owner',
      assignee: bob.id,
      reason: 'bob owns CI now',
    });
    const d = await timeline.dependents('sec_gh_1');
    expect(d.since).toMatchObject({ action_id: add.token.action_id, event: 'secret-imported' });
    expect(d.revealed_to).toEqual([
      expect.objectContaining({
        actor: alice.id,
        as: 'revealer',
        action_ids: [rev.token.action_id],
      }),
    ]);
    expect(d.pending_handoff).toMatchObject({
      role: 'owner',
      assignee: bob.id,
      offered_by: alice.id,
      action_id: offer.token.action_id,
      at: at(2).toISOString(),
    });
    expect(d.evidence.map((e) => e.action_id)).toContain(offer.token.action_id);
    await env.log.close();
  });

  it('due: exposed, rotation required, expiring soon and expired, across secrets', async () => {
    const env = await setup();
    const { kc, clock, timeline } = env;
    const mk = (secretId: string, expiresAt: Date | null) =>
      kc.add({
        actor: alice,
        secretId,
        type: 'api_key',
        issuer: 'x',
        scope: 'y',
        material: utf8(secretId),
        expiresAt,
        reason: 'r',
      });
    const soon = await mk('sec_soon_1', new Date(Date.parse(T0) + 10 * DAY));
    const past = await mk('sec_past_1', new Date(Date.parse(T0) + 2 * HOUR));
    await mk('sec_fine_1', new Date(Date.parse(T0) + 365 * DAY));
    await mk('sec_never_1', null);
    await mk('sec_gone_1', new Date(Date.parse(T0) + HOUR));
    clock.set(at(1));
    const leak = await kc.expose({
      actor: bob,
      secretId: 'sec_never_1',
      exposure: 'chat-disclosed',
      evidence: 'pasted in #general',
      reason: 'pasted in chat',
    });
    await kc.destroy({ actor: alice, secretId: 'sec_gone_1', reason: 'not needed' });

    const now = at(3);
    const d = await timeline.due(now);
    expect(d.items.map((i) => [i.secret_id, i.reasons.map((r) => r.kind)])).toEqual([
      ['sec_never_1', ['exposed', 'rotation_required']],
      ['sec_past_1', ['expired']],
      ['sec_soon_1', ['expiring']],
    ]);
    const never = d.items[0]!;
    expect(never.reasons[0]!.detail).toBe('chat-disclosed: pasted in #general');
    expect(never.reasons[0]!.evidence).toEqual([
      expect.objectContaining(cite(leak, 'secret-exposed')),
    ]);
    expect(d.items[2]!.reasons[0]!.evidence).toEqual([
      expect.objectContaining(cite(soon, 'secret-imported')),
    ]);
    expect(d.items[1]!.reasons[0]!.evidence[0]!.action_id).toBe(past.token.action_id);
    expect(d.evidence).toHaveLength(3);
    // a narrower window drops the one expiring in 10 days
    expect((await timeline.due(now, { withinDays: 7 })).items.map((i) => i.secret_id)).toEqual([
      'sec_never_1',
      'sec_past_1',
    ]);
    // as of 00:30 (before the leak and the destruction) three are merely expiring
    expect(
      (await timeline.due(at(0.5))).items.map((i) => [i.secret_id, i.reasons.map((r) => r.kind)]),
    ).toEqual([
      ['sec_gone_1', ['expiring']],
      ['sec_past_1', ['expiring']],
      ['sec_soon_1', ['expiring']],
    ]);
    await env.log.close();
  });

  it('the log folder, the persisted index and an audit client all give the same answers', async () => {
    const env = await setup();
    const s = await story(env);
    const folder = new LogFolderSource(join(env.home, 'log'), { query: false });
    const viaFolder = await new KeychainTimeline(folder).history(s.id);
    expect(folder.lastMode).toBe('scan');
    expect(await folder.integrity()).toEqual([]);
    expect(await folder.secretIds()).toEqual([s.id]);
    // a query function that the source uses first (here: one that always has an answer)
    const calls: unknown[] = [];
    const indexed = new LogFolderSource(join(env.home, 'log'), {
      query: async (dir, q) => {
        calls.push(q);
        const all = await folder.scan();
        return all.records
          .filter(
            (r) =>
              (q.objectId === undefined || r.causal.object_id === q.objectId) &&
              (q.actionId === undefined || r.causal.action_id === q.actionId),
          )
          .map((record) => ({ index: record.index, record }));
      },
    });
    expect(await new KeychainTimeline(indexed).history(s.id)).toEqual(viaFolder);
    expect(indexed.lastMode).toBe('index');
    expect(calls).toContainEqual({ objectId: s.id });
    // an index that cannot answer (none built) falls back to the scan
    const broken = new LogFolderSource(join(env.home, 'log'), {
      query: () => Promise.reject(new ContinuityError('STATE_CORRUPT', 'no index')),
    });
    expect(await new KeychainTimeline(broken).history(s.id)).toEqual(viaFolder);
    expect(broken.lastMode).toBe('scan');
    // reading through the client (record by record)
    const viaClient = new AuditClientSource(env.audit);
    expect(await new KeychainTimeline(viaClient).history(s.id)).toEqual(viaFolder);
    expect(await viaClient.integrity()).toEqual([]);
    expect(await viaClient.byAction(s.cap1.action_id)).toMatchObject({
      causal: { object_id: 'sam_0123456789ab' },
    });
    await env.log.close();
  });

  it('the pure functions work on events alone, and time bounds the replay in causal order', async () => {
    const env = await setup();
    const s = await story(env);
    const events = await env.timeline.events(s.id);
    const upTo = replay(events, { until: at(6.5) });
    expect(upTo.steps.map((x) => x.event.event).at(-1)).toBe('secret-denied');
    expect(upTo.state?.exposure_state).toBe('log-leaked');
    expect(upTo.established.exposure_state?.action_id).toBe(s.expose.token.action_id);
    const d = due([{ secretId: s.id, events }], at(6.5));
    expect(d.items[0]!.reasons.map((r) => r.kind)).toEqual(['exposed', 'rotation_required']);
    expect(() => due([], at(1), { withinDays: -1 })).toThrow(RangeError);
    await env.log.close();
  });
});
