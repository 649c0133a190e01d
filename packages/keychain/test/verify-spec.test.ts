import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, LIFECYCLE_STATES, apply, decide, type SecretState } from '@tibet/keychain';
import { cloneState, type ApplyInput, type Operation, type Request } from '../src/state.js';

const OWNER = 'jis:acme:alice';
const CUSTODIAN = 'jis:acme:keychain';
const OPERATOR = 'jis:acme:release-bot';
const AT = new Date('2026-11-28T12:00:00.000Z');

/**
 * A secret in `lifecycle`, as the keychain reaches it: `compromised` only follows a reported
 * leak, so it comes with that exposure and a rotation required.
 */
function stateIn(lifecycle: (typeof LIFECYCLE_STATES)[number]): SecretState {
  const leaked = lifecycle === 'compromised';
  return {
    secret_id: 'sec_doc_1',
    secret_type: 'api_key',
    issuer: 'x',
    scope: 'y',
    created_at: AT.toISOString(),
    expires_at: null,
    owner_id: OWNER,
    custodian_id: CUSTODIAN,
    active_operator_id: OPERATOR,
    last_access_action_id: null,
    last_rotation_action_id: null,
    exposure_state: leaked ? 'git-leaked' : 'sealed',
    rotation_required: leaked,
    notes: [],
    lifecycle_state: lifecycle,
    archived: false,
    version: 1,
    versions: [
      {
        version: 1,
        created_at: AT.toISOString(),
        material_sha256: '00'.repeat(32),
        state: lifecycle,
        retired_at: null,
        action_id: 'act_0000000000000001',
      },
    ],
    material_seq: 1,
    policy: { ...DEFAULT_POLICY },
    pending_handoff: {
      role: 'owner',
      assignee: 'jis:acme:bob',
      offered_by: OWNER,
      action_id: 'act_0000000000000002',
      authority_mode: 'admin',
    },
    exposure_evidence: null,
    public_key: null,
    transitions: [{ state: lifecycle, at: AT.toISOString(), action_id: 'act_0000000000000001' }],
  };
}

/** Each operation as an actor with the authority for it asks it. */
const REQUESTS: Record<Operation, Omit<Request, 'at'>> = {
  reveal: { op: 'reveal', actor: OWNER, actorClass: 'human' },
  use: { op: 'use', actor: 'jis:acme:gateway', actorClass: 'gateway', onBehalfOf: OPERATOR },
  delegate: {
    op: 'delegate',
    actor: OWNER,
    actorClass: 'human',
    role: 'custodian',
    assignee: 'jis:acme:carol',
  },
  accept: { op: 'accept', actor: 'jis:acme:bob', actorClass: 'human' },
  expose: { op: 'expose', actor: 'jis:acme:bob', actorClass: 'human', exposure: 'git-leaked' },
  rotate: { op: 'rotate', actor: OWNER, actorClass: 'human' },
  revoke: { op: 'revoke', actor: OWNER, actorClass: 'human' },
  archive: { op: 'archive', actor: OWNER, actorClass: 'human' },
  suspend: { op: 'suspend', actor: OWNER, actorClass: 'human' },
  resume: { op: 'resume', actor: OWNER, actorClass: 'human' },
  destroy: { op: 'destroy', actor: OWNER, actorClass: 'human' },
  policy: { op: 'policy', actor: OWNER, actorClass: 'human' },
};

/** The table `docs/keychain.md` must show: next lifecycle state, or the error code. */
function stateMachineTable(): string[][] {
  const rows: string[][] = [];
  for (const op of Object.keys(REQUESTS) as Operation[]) {
    const row: string[] = [op];
    for (const ls of LIFECYCLE_STATES) {
      const s = stateIn(ls);
      const req: Request = { ...REQUESTS[op], at: AT };
      const d = decide(s, req);
      if (!d.allowed) row.push(d.code!);
      else {
        const input: ApplyInput = { ...req, actionId: 'act_0000000000000003' };
        if (op === 'policy') input.policy = { ...DEFAULT_POLICY };
        row.push(`→ ${apply(s, input).lifecycle_state}`);
      }
    }
    rows.push(row);
  }
  return rows;
}

function docTable(): string[][] {
  const doc = readFileSync(join(import.meta.dirname, '../../../docs/keychain.md'), 'utf8');
  const start = doc.indexOf('<!-- state-machine-table -->');
  const end = doc.indexOf('<!-- /state-machine-table -->');
  expect(start).toBeGreaterThan(0);
  return doc
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim().replace(/`/g, '')),
    );
}

describe('docs/keychain.md', () => {
  it('shows the state machine as decide and apply implement it', () => {
    expect(docTable()).toEqual(stateMachineTable());
  });
});

describe('cloneState (what apply copies before changing a state)', () => {
  it('equals structuredClone and shares no container with the original', () => {
    for (const ls of LIFECYCLE_STATES) {
      const s = stateIn(ls);
      s.notes.push('a note');
      const c = cloneState(s);
      expect(c).toStrictEqual(structuredClone(s));
      // every nested container is a new one: changing the copy leaves the original as it was
      const before = structuredClone(s);
      c.notes.push('x');
      c.versions[0]!.state = 'destroyed';
      c.versions.push({ ...c.versions[0]! });
      c.policy.reveal.push('jis:acme:mallory');
      c.policy.use.length = 0;
      c.policy.targets.push('/x');
      c.policy.lanes.push('y');
      c.policy.max_capsule_ttl_s = 1;
      c.pending_handoff!.assignee = 'jis:acme:mallory';
      c.transitions[0]!.at = 'never';
      c.transitions.push({ ...c.transitions[0]! });
      expect(s).toStrictEqual(before);
    }
  });
});
