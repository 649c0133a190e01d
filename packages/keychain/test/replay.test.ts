/**
 * The replay shares what an event does not change between its states and compares with
 * specialised checks (queries.ts, `applyShared` in state.ts): these tests hold it to a
 * reference replay written the plain way — every state a full copy made by the public
 * `apply`, every comparison the RFC 8785 form of both sides — over a real keychain's events
 * (every operation) and over tampered copies of them: problems (codes, messages, order),
 * every step's state (to the member order), whether it applied, and what established each
 * tracked field must all be the same, and a replay must throw where the reference throws.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalize, utf8, type JsonValue } from '@tibet/core';
import {
  KeychainTimeline,
  lineGaps,
  replay,
  requestOf,
  secretLine,
  stateAfter,
  timelineSourceFor,
  type KeychainEvent,
  type Replay,
  type ReplayProblem,
  type TrackedField,
} from '../src/queries.js';
import {
  EVENT_OF,
  apply,
  decide,
  type ApplyInput,
  type Operation,
  type SecretPolicy,
  type SecretState,
} from '../src/state.js';
import { T0, alice, bob, bot, carol, gw, openWorld, readLog } from './fixtures/helpers.js';
import { join } from 'node:path';
import type { LogRecord } from '@tibet/continuityd';

const HOUR = 3_600_000;
const at = (h: number): Date => new Date(Date.parse(T0) + h * HOUR);

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const TRACKED: readonly TrackedField[] = [
  'owner_id',
  'custodian_id',
  'active_operator_id',
  'policy',
  'lifecycle_state',
  'exposure_state',
  'rotation_required',
  'expires_at',
  'pending_handoff',
  'version',
  'archived',
];
const OP_OF = new Map(
  (Object.entries(EVENT_OF) as [Operation, string][]).map(([op, ev]) => [ev, op]),
);
const GENESIS = new Set(['secret-created', 'secret-imported']);

/** The RFC 8785 comparison, throwing where canonicalize throws (a first, then b). */
function canonicallySame(a: unknown, b: unknown): boolean {
  return canonicalize(a) === canonicalize(b);
}

/** What the replay decided, in the plain way. */
interface Reference {
  problems: ReplayProblem[];
  steps: { action_id: string; state: SecretState | undefined; applied: boolean; est: string }[];
  state: SecretState | undefined;
  established: string;
}

function estOf(est: Partial<Record<TrackedField, KeychainEvent>>): string {
  return JSON.stringify(Object.entries(est).map(([k, v]) => [k, v.action_id]));
}

/** The replay as it was written before the sharing: full copies, canonical comparisons. */
function reference(events: readonly KeychainEvent[]): Reference {
  const out: Reference = { problems: [], steps: [], state: undefined, established: '' };
  const est: Partial<Record<TrackedField, KeychainEvent>> = {};
  const problem = (code: ReplayProblem['code'], e: KeychainEvent, message: string): void => {
    out.problems.push({ code, message, index: e.index, action_id: e.action_id });
  };
  const step = (e: KeychainEvent, state: SecretState | undefined, applied: boolean): void => {
    out.steps.push({ action_id: e.action_id, state, applied, est: estOf(est) });
  };
  for (const e of events) {
    const before = out.state;
    if (e.event === 'secret-denied') {
      step(e, before, false);
      continue;
    }
    if (GENESIS.has(e.event)) {
      if (before) {
        problem('EVENT_UNEXPECTED', e, `${e.event} ${e.action_id} on a secret that exists`);
        step(e, before, false);
        continue;
      }
      // (the genesis state and its GENESIS_INCOMPLETE problem are not what changed)
      out.problems.push(...replay([e]).problems);
      out.state = stateAfter(undefined, e);
      for (const f of TRACKED) est[f] = e;
      step(e, out.state, true);
      continue;
    }
    const op = OP_OF.get(e.event);
    if (!op) {
      problem('EVENT_UNEXPECTED', e, `unknown keychain event ${e.event} (${e.action_id})`);
      step(e, before, false);
      continue;
    }
    if (!before) {
      problem('GENESIS_MISSING', e, `${e.event} ${e.action_id} before the secret was created`);
      step(e, before, false);
      continue;
    }
    const d = decide(before, requestOf(e, op));
    if (!d.allowed)
      problem(
        'EVENT_NOT_ALLOWED',
        e,
        `${e.event} ${e.action_id} by ${e.actor} was not allowed by the state before it: ${d.reason}`,
      );
    else if (!canonicallySame(d.decisions, e.decisions))
      problem(
        'EVENT_DECISION_MISMATCH',
        e,
        `${e.event} ${e.action_id}: the decisions it lists are not the ones the state machine makes`,
      );
    let next: SecretState;
    try {
      const input: ApplyInput = { ...requestOf(e, op), actionId: e.action_id };
      const { erin } = e;
      if (typeof erin['evidence'] === 'string') input.evidence = erin['evidence'];
      if (op === 'policy' && typeof erin['policy'] === 'object' && erin['policy'] !== null)
        input.policy = erin['policy'] as unknown as SecretPolicy;
      if (op === 'rotate') {
        const sha = erin['material_sha256'];
        if (typeof sha === 'string') input.materialSha256 = sha;
        input.publicKey = typeof erin['public_key'] === 'string' ? erin['public_key'] : null;
      }
      next = apply(before, input);
      if (typeof erin['material_seq'] === 'number') next.material_seq = erin['material_seq'];
      if ('material_sha256' in erin && op !== 'destroy') {
        const cur = next.versions[next.versions.length - 1];
        if (cur) cur.material_sha256 = (erin['material_sha256'] as string | null) ?? null;
      }
      if ('public_key' in erin) next.public_key = (erin['public_key'] as string | null) ?? null;
    } catch (err) {
      problem('EVENT_UNEXPECTED', e, `${e.event} ${e.action_id} cannot be applied: ${String(err)}`);
      step(e, before, false);
      continue;
    }
    for (const f of TRACKED) if (!canonicallySame(before[f], next[f])) est[f] = e;
    out.state = next;
    step(e, next, true);
  }
  out.established = estOf(est);
  return out;
}

/** The replay and the reference agree on everything a replay answers. */
function expectSameAsReference(events: readonly KeychainEvent[]): Replay {
  const ref = reference(events);
  const r = replay(events);
  expect(r.problems).toEqual(ref.problems);
  expect(r.steps.map((s) => s.event.action_id)).toEqual(ref.steps.map((s) => s.action_id));
  expect(r.steps.map((s) => s.applied)).toEqual(ref.steps.map((s) => s.applied));
  expect(r.steps.map((s) => estOf(s.established))).toEqual(ref.steps.map((s) => s.est));
  // member order too: the states serialise alike (cbom prints them)
  expect(r.steps.map((s) => JSON.stringify(s.state))).toEqual(
    ref.steps.map((s) => JSON.stringify(s.state)),
  );
  expect(JSON.stringify(r.state)).toBe(JSON.stringify(ref.state));
  expect(estOf(r.established)).toBe(ref.established);
  // without its steps (what cbom's walk asks for): the same end, nothing per event
  const bare = replay(events, { steps: false });
  expect(bare.steps).toEqual([]);
  expect(bare.problems).toEqual(r.problems);
  expect(JSON.stringify(bare.state)).toBe(JSON.stringify(r.state));
  expect(estOf(bare.established)).toBe(estOf(r.established));
  expect(bare.genesis).toBe(r.genesis);
  expect(bare.secret_id).toBe(r.secret_id);
  return r;
}

/** A keychain whose secret goes through every operation, an hour per step. */
async function story(): Promise<KeychainEvent[]> {
  const { clock, log, audit, kc } = await openWorld(dirs, 'tibet-kcreplay-');
  const id = 'sec_replay_001';
  let h = 0;
  const next = (): void => clock.set(at(++h));
  const base = { actor: alice, secretId: id, reason: 'test' };
  await kc.add({
    ...base,
    type: 'api_key',
    issuer: 'example.org',
    scope: 'ci',
    material: utf8('replay-secret-material-0001'),
    notes: ['first note'],
  });
  next();
  await kc.reveal(base);
  next();
  await kc.delegate({ ...base, role: 'active_operator', assignee: bot.id });
  next();
  await kc.use({ ...base, actor: gw, onBehalfOf: bot.id, targetAction: '/deploy' });
  next();
  await kc.use({ ...base, actor: gw, onBehalfOf: bot.id, targetAction: '/deploy' });
  next();
  await expect(kc.use({ ...base, actor: gw, onBehalfOf: bob.id })).rejects.toMatchObject({
    code: 'NOT_AUTHORIZED',
  });
  next();
  await kc.setPolicy({ ...base, policy: { targets: ['/deploy*'], max_capsule_ttl_s: 120 } });
  next();
  await kc.setPolicy({ ...base, policy: { targets: ['/deploy*'] } }); // the same policy again
  next();
  await kc.suspend(base);
  next();
  await kc.resume(base);
  next();
  await kc.expose({ ...base, actor: bob, exposure: 'suspected', evidence: 'maybe' });
  next();
  await kc.rotate({ ...base, material: utf8('replay-secret-material-0002') });
  next();
  await kc.use({ ...base, actor: gw, onBehalfOf: bot.id, targetAction: '/deploy/x' });
  next();
  await kc.delegate({ ...base, role: 'owner', assignee: carol.id });
  next();
  await kc.accept({ ...base, actor: carol });
  next();
  await kc.expose({ ...base, actor: bob, exposure: 'log-leaked', evidence: 'ci log' });
  next();
  await kc.archive({ ...base, actor: carol });
  next();
  await kc.destroy({ ...base, actor: carol });
  const events = await new KeychainTimeline(timelineSourceFor(audit)).events(id);
  await log.close();
  return events;
}

/** A deep copy of the events (tokens included), to tamper with. */
function copy(events: readonly KeychainEvent[]): KeychainEvent[] {
  return structuredClone(events) as KeychainEvent[];
}

const by = (events: readonly KeychainEvent[], name: string, nth = 0): KeychainEvent =>
  events.filter((e) => e.event === name)[nth]!;

describe('replay', () => {
  it('agrees with a plain replay (full copies, canonical comparisons) on every operation', async () => {
    const events = await story();
    const r = expectSameAsReference(events);
    expect(r.problems).toEqual([]);
    expect(r.steps.filter((s) => s.applied)).toHaveLength(events.length - 1); // one denial
    expect(r.state?.lifecycle_state).toBe('destroyed');
    // a policy event that sets the same policy changes nothing: the first one established it
    const policies = events.filter((e) => e.event === 'secret-policy-changed');
    expect(r.established.policy?.action_id).toBe(policies[0]!.action_id);
    expect(r.established.owner_id?.action_id).toBe(by(events, 'secret-accepted').action_id);
    // and every prefix too
    for (let n = 1; n < events.length; n++) expectSameAsReference(events.slice(0, n));
  });

  it('shares unchanged parts between its states, yet no later event changes an earlier state', async () => {
    const events = await story();
    const r = replay(events);
    const uses = r.steps.filter((s) => s.event.event === 'secret-proxied');
    // two uses in a row: the second shares the policy and version list of the first
    expect(uses[1]!.state!.policy).toBe(uses[0]!.state!.policy);
    expect(uses[1]!.state!.versions).toBe(uses[0]!.state!.versions);
    // each step's state is what a replay of the events up to it ends with
    const snapshots = r.steps.map((s) => JSON.stringify(s.state));
    events.forEach((_, i) => {
      expect(JSON.stringify(replay(events.slice(0, i + 1)).state)).toBe(snapshots[i]);
    });
    // the public apply still returns a state of its own
    const s = r.steps[3]!.state!;
    const next = apply(s, { ...requestOf(events[3]!, 'use'), actionId: 'act_0000000000000001' });
    expect(next.policy).not.toBe(s.policy);
    expect(next.versions).not.toBe(s.versions);
    expect(next.versions[0]).not.toBe(s.versions[0]);
    expect(next.transitions).not.toBe(s.transitions);
    expect(next.notes).not.toBe(s.notes);
  });

  it('a material digest changed on one event changes that state only (the list is copied)', async () => {
    const events = copy(await story());
    const use = by(events, 'secret-proxied', 1);
    use.erin['material_sha256'] = 'f'.repeat(64);
    const r = expectSameAsReference(events);
    const i = events.indexOf(use);
    // (the step after it is a denial; the one after that records the digest again)
    expect(r.steps[i + 1]!.applied).toBe(false);
    expect(r.steps[i]!.state!.versions.at(-1)!.material_sha256).toBe('f'.repeat(64));
    expect(r.steps[i - 2]!.state!.versions.at(-1)!.material_sha256).not.toBe('f'.repeat(64));
    expect(r.steps[i + 2]!.state!.versions.at(-1)!.material_sha256).not.toBe('f'.repeat(64));
  });

  it('tampered decisions are reported as before, however deep or however shaped', async () => {
    const events = await story();
    const i = events.indexOf(by(events, 'secret-proxied', 1));
    const cases: [string, (ds: Record<string, JsonValue>[]) => JsonValue][] = [
      [
        'a detail',
        (ds) =>
          ds.map((d, j) => (j === 2 ? { ...d, detail: `${String(d['detail'] as string)}!` } : d)),
      ],
      ['a rule', (ds) => ds.map((d, j) => (j === 0 ? { ...d, rule: 'lifecycle2' } : d))],
      ['allow → deny', (ds) => ds.map((d, j) => (j === 1 ? { ...d, decision: 'deny' } : d))],
      ['an extra member', (ds) => ds.map((d, j) => (j === 3 ? { ...d, note: 'x' } : d))],
      [
        'a member missing',
        (ds) => ds.map(({ detail: _, ...d }, j) => (j === 0 ? d : { ...d, detail: _! })),
      ],
      ['a null detail', (ds) => ds.map((d, j) => (j === 0 ? { ...d, detail: null } : d))],
      ['one entry fewer', (ds) => ds.slice(1)],
      ['one entry more', (ds) => [...ds, ds[0]!]],
      ['an entry an array', (ds) => ds.map((d, j) => (j === 0 ? [d['rule']!] : d))],
      ['an entry null', (ds) => ds.map((d, j) => (j === 0 ? null : d))],
      ['not a list', (ds) => ({ ...ds })],
      // the same members in another order: the same canonical form, so no problem
      [
        'members reordered',
        (ds) =>
          ds.map((d) => ({ detail: d['detail']!, decision: d['decision']!, rule: d['rule']! })),
      ],
    ];
    for (const [what, change] of cases) {
      const t = copy(events);
      t[i]!.decisions = change(t[i]!.decisions as unknown as Record<string, JsonValue>[]) as never;
      const r = expectSameAsReference(t);
      const codes = r.problems.map((p) => [p.code, p.index]);
      if (what === 'members reordered') expect(codes, what).toEqual([]);
      else expect(codes, what).toEqual([['EVENT_DECISION_MISMATCH', t[i]!.index]]);
    }
    // a lone surrogate has no canonical form: the replay throws, as the plain one does
    const t = copy(events);
    (t[i]!.decisions[0] as { detail: string }).detail = 'x\ud800';
    let message = '';
    try {
      reference(t);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).not.toBe('');
    expect(() => replay(t)).toThrow(message);
  });

  it('a tampered policy or custody is reported and established as before', async () => {
    const events = await story();
    const policy = by(events, 'secret-policy-changed', 1);
    const p = events.indexOf(policy);
    // the second policy event now really changes a list deep inside the policy
    let t = copy(events);
    ((t[p]!.erin['policy'] as Record<string, JsonValue>)['reveal'] as string[]).push(
      'jis:acme:mallory',
    );
    let r = expectSameAsReference(t);
    expect(r.steps[p]!.established.policy?.action_id).toBe(policy.action_id);
    expect(r.steps[p]!.state!.policy.reveal).toContain('jis:acme:mallory');
    expect(r.steps[p - 1]!.state!.policy.reveal).not.toContain('jis:acme:mallory');
    // a policy whose lists are not lists: spread as apply spreads them
    t = copy(events);
    (t[p]!.erin['policy'] as Record<string, JsonValue>)['lanes'] = 'ab';
    r = expectSameAsReference(t);
    expect(r.steps[p]!.state!.policy.lanes).toEqual(['a', 'b']);
    // the offer names another assignee: carol's acceptance is no longer allowed
    t = copy(events);
    by(t, 'secret-delegated', 1).erin['target_assignee'] = bob.id;
    r = expectSameAsReference(t);
    expect(r.problems.map((x) => x.code)).toContain('EVENT_NOT_ALLOWED');
    // a time that is no time: the event cannot be applied (apply's RangeError), for a use too
    for (const name of ['secret-proxied', 'secret-suspended']) {
      t = copy(events);
      by(t, name).at = 'not a time';
      r = expectSameAsReference(t);
      expect(r.problems.map((x) => x.message).join('\n'), name).toMatch(
        /cannot be applied: RangeError/,
      );
    }
  });

  it('a creation event with a policy apply cannot copy: every later event fails as before', async () => {
    const events = await story();
    /** Replay and reference agree on every prefix, or both throw the same error. */
    const agree = (t: KeychainEvent[]): string[] =>
      t.map((_, n) => {
        const prefix = t.slice(0, n + 1);
        let refErr: unknown;
        try {
          reference(prefix);
        } catch (e) {
          refErr = e;
        }
        if (refErr === undefined)
          return expectSameAsReference(prefix)
            .problems.map((x) => x.code)
            .join();
        expect(() => replay(prefix)).toThrow((refErr as Error).message);
        return 'throws';
      });
    const bad: JsonValue[] = ['role:owner', null, 7, [], { reveal: ['role:owner'], use: 5 }];
    for (const policy of bad) {
      const t = copy(events);
      t[0]!.eromheen['policy'] = policy;
      agree(t);
    }
    // the lists are there but one is a number: the reveal and the delegation cannot be applied
    // (apply's copy fails), then the use throws in decide
    const t = copy(events);
    t[0]!.eromheen['policy'] = { reveal: ['role:owner'], use: 5, targets: [], lanes: [] };
    expect(agree(t).slice(0, 4)).toEqual([
      '',
      'EVENT_UNEXPECTED',
      'EVENT_UNEXPECTED,EVENT_UNEXPECTED',
      'throws',
    ]);
    // a lone surrogate inside the creation policy: no canonical form, both throw at the first
    // event after the creation (comparing the policy before and after it)
    const s = copy(events);
    (s[0]!.eromheen['policy'] as Record<string, JsonValue>)['lanes'] = ['\udc00'];
    expect(agree(s).slice(0, 3)).toEqual(['', 'throws', 'throws']);
  });

  it('denials, a second creation, an unknown event and events before the creation, as before', async () => {
    const events = await story();
    const t = copy(events);
    t.at(-1)!.event = 'secret-frobbed';
    const twice = [t[1]!, t[0]!, ...t.slice(1), { ...t[0]!, action_id: 'act_00000000000000ff' }];
    const r = expectSameAsReference(twice);
    expect(r.problems.map((x) => x.code)).toEqual([
      'GENESIS_MISSING',
      'EVENT_UNEXPECTED',
      'EVENT_UNEXPECTED',
    ]);
    // a creation event missing its policy: defaults assumed, reported
    const g = copy(events);
    delete g[0]!.eromheen['policy'];
    expect(expectSameAsReference(g).problems[0]!.code).toBe('GENESIS_INCOMPLETE');
  });
});

describe('secretLine', () => {
  /** secretLine as it was written before (filter, filter, sort, map): the reference. */
  function plainLine(records: readonly LogRecord[], id: string): KeychainEvent[] {
    const seen = new Set<number>();
    const mine = records
      .filter((r) => r.causal.object_id === id && r.causal.continuity_id === id)
      .filter((r) => (seen.has(r.index) ? false : (seen.add(r.index), true)))
      .sort((a, b) => a.index - b.index);
    return mine.map((r) => secretLine([r], id).events[0]!);
  }

  it('takes the first record of each index on the line, in index order, whatever order they come in', async () => {
    const { home, clock, log, kc } = await openWorld(dirs, 'tibet-kcline-');
    const base = { actor: alice, reason: 'test' };
    let h = 0;
    for (const id of ['sec_line_001', 'sec_line_002']) {
      clock.set(at(++h));
      await kc.add({
        ...base,
        secretId: id,
        type: 'api_key',
        issuer: 'example.org',
        scope: 'ci',
        material: utf8(`line-material-${id}`),
      });
    }
    for (let i = 0; i < 6; i++) {
      clock.set(at(++h));
      await kc.reveal({ ...base, secretId: i % 2 ? 'sec_line_001' : 'sec_line_002' });
    }
    clock.set(at(++h));
    await kc.rotate({ ...base, secretId: 'sec_line_001', material: utf8('line-material-2') });
    await log.close();
    const records = await readLog(join(home, 'log'));
    const id = 'sec_line_001';
    const own = records.filter((r) => r.causal.object_id === id);
    expect(own.length).toBeGreaterThan(4);
    // an object on another line, a later copy of an index (another token), reversed, shuffled
    const elsewhere = { ...own[1]!, causal: { ...own[1]!.causal, continuity_id: 'other' } };
    const again = { ...own[2]!, token: { ...own[2]!.token, erachter: 'a later copy' } };
    const orders: LogRecord[][] = [
      records,
      [...records].reverse(),
      [...records.slice(3), ...records.slice(0, 3)],
      [elsewhere, ...records, again],
      [again, ...records],
      [...records, again, elsewhere].reverse(),
      records.filter((_, i) => i % 2 === 0),
    ];
    for (const rs of orders) {
      const got = secretLine(rs, id);
      const want = plainLine(rs, id);
      expect(got.events).toEqual(want);
      expect(got.gaps).toEqual(lineGaps(want));
      expect(expectSameAsReference(got.events).problems).toEqual(replay(want).problems);
    }
    expect(secretLine(records, id).gaps).toEqual([]);
    expect(secretLine([again, ...records], id).events[2]!.reason).toBe('a later copy');
    expect(secretLine([again, ...records], id).gaps.length).toBeGreaterThan(0);
  });
});
