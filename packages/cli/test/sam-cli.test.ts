// `tibet sam` end to end: the built CLI as real child processes, a throwaway TIBET_HOME,
// the audit log opened in embedded mode by each command (--log-as).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../../test/support/build-dist.js';

const root = join(import.meta.dirname, '..', '..', '..');
const tibetBin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
const tkcBin = join(root, 'packages', 'cli', 'bin', 'tkc.js');
const tag = `${process.pid}-${Date.now().toString(36)}`;
const SECRET = `npm_${'Z'.repeat(16)}-sam-cli-secret-${tag}`;
const ID = 'sec_npm_001';
const ALICE = 'jis:acme:alice';
const BOB = 'jis:acme:bob';
const BOT = 'jis:acme:release-bot';
const GW = 'jis:acme:gateway';
const LOG = ['--log-as', 'jis:acme:auditlog'];

let home: string;
let scratch: string;
const outputs: string[] = [];

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(bin: string, args: string[], input = ''): Run {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, TIBET_HOME: home, TIBET_PASSPHRASE: 'test passphrase', NO_COLOR: '1' },
    timeout: 30_000,
  });
  outputs.push(r.stdout + r.stderr);
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const tibet = (args: string[]): Run => run(tibetBin, args);
const json = <T>(r: Run, code = 0): T => {
  expect(r.code, r.err).toBe(code);
  return JSON.parse(r.out) as T;
};
const file = (name: string): string => join(scratch, name);

const ISSUE = [
  'sam',
  'issue',
  ID,
  '--for',
  BOT,
  '--action',
  '/upload/npm',
  '--intent',
  'publish acme-lib 1.2.0',
  '--lane',
  'publish',
  '--constraint',
  'registry=registry.npmjs.org',
  '--as',
  ALICE,
  ...LOG,
];

beforeAll(() => {
  ensureBuilt(['core', 'tza', 'continuityd', 'keychain', 'sam', 'cli']);
  home = mkdtempSync(join(tmpdir(), 'sam-cli-'));
  scratch = mkdtempSync(join(tmpdir(), 'sam-cli-out-'));
  for (const [id, cls] of [
    [ALICE, 'human'],
    [BOB, 'human'],
    [BOT, 'machine'],
    [GW, 'gateway'],
  ] as const) {
    const r = tibet(['id', 'create', id, '--class', cls]);
    expect(r.code, r.err).toBe(0);
  }
  expect(run(tkcBin, ['init', '--org', 'acme']).code).toBe(0);
  const add = run(
    tkcBin,
    [
      'add',
      ID,
      '--type',
      'api_key',
      '--issuer',
      'npmjs.org',
      '--scope',
      'publish:acme-lib',
      '--operator',
      BOT,
      '--from-stdin',
      '--as',
      ALICE,
      '--why',
      'npm token',
      ...LOG,
    ],
    SECRET,
  );
  expect(add.code, add.err).toBe(0);
}, 240_000);

afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('tibet sam (built CLI, child processes, embedded log)', () => {
  it('--help with examples and exit codes for every subcommand', () => {
    const h = tibet(['sam', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Examples:/);
    for (const c of ['issue', 'inspect', 'verify', 'to-tbz', 'from-tbz']) {
      const r = tibet(['sam', c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.out, c).toMatch(/Exit codes/);
      expect(r.out, c).toMatch(/\$ tibet sam/);
    }
  });

  it('issue → inspect → verify (pass, then each denial with exit 1)', () => {
    const issued = json<{ sam_id: string; action_id: string; file: string }>(
      tibet([...ISSUE, '-o', file('cap.tza'), '--json']),
    );
    expect(issued.sam_id).toMatch(/^sam_[0-9a-f]{12}$/);
    // the output file is never overwritten
    expect(tibet([...ISSUE, '-o', file('cap.tza')]).code).toBe(2);
    const seen = json<{ verified: boolean; capsule: { actor_id: string; action_id: string } }>(
      tibet(['sam', 'inspect', file('cap.tza'), '--json']),
    );
    expect(seen.verified).toBe(true);
    expect(seen.capsule).toMatchObject({ actor_id: BOT, action_id: issued.action_id });
    expect(tibet(['sam', 'inspect', file('cap.tza')]).out).toMatch(/verifies/);

    const ok = json<{ ok: boolean; events: { action: string; status: string }[] }>(
      tibet([
        'sam',
        'verify',
        file('cap.tza'),
        '--actor',
        BOT,
        '--action',
        '/upload/npm',
        '--constraint',
        'registry=registry.npmjs.org',
        '--json',
      ]),
    );
    expect(ok.ok).toBe(true);
    expect(ok.events.map((e) => e.action)).toEqual([
      'sam-received',
      'sam-validated',
      'sam-actor-match',
      'sam-constraint-match',
      'sam-constraint-match',
      'sam-policy-lane',
    ]);
    const human = tibet(['sam', 'verify', file('cap.tza')]);
    expect(human.code).toBe(0);
    expect(human.out).toMatch(/pass {2}sam-policy-lane/);

    const deny = (args: string[]): string => {
      const r = tibet(['sam', 'verify', file('cap.tza'), ...args, '--json']);
      return json<{ verdict: string }>(r, 1).verdict;
    };
    expect(deny(['--actor', BOB, '--action', '/upload/npm'])).toBe('sam-actor-mismatch');
    expect(deny(['--actor', BOT, '--action', '/upload/pypi'])).toBe('sam-target-mismatch');
    expect(deny(['--actor', BOT, '--action', '/upload/npm'])).toBe('sam-constraint-mismatch');
    expect(deny(['--at', '2099-01-01T00:00:00Z'])).toBe('sam-expired');
    expect(deny(['--at', '2001-01-01T00:00:00Z'])).toBe('sam-not-yet-valid');
    const text = tibet(['sam', 'verify', file('cap.tza'), '--actor', BOB]);
    expect(text.code).toBe(1);
    expect(text.out).toMatch(/FAIL {2}sam-actor-match/);
    expect(text.out).toMatch(/denied: sam-actor-mismatch/);
  });

  it('a tampered capsule does not verify (exit 1, sam-bundle-invalid or sam-signature-invalid)', () => {
    const bytes = readFileSync(file('cap.tza'));
    const t = Buffer.from(bytes);
    t[2048 + 20]! ^= 1;
    writeFileSync(file('tampered.tza'), t);
    const r = json<{ ok: boolean; verdict: string }>(
      tibet(['sam', 'verify', file('tampered.tza'), '--json']),
      1,
    );
    expect(r.verdict).toBe('sam-bundle-invalid');
    writeFileSync(file('cut.tza'), bytes.subarray(0, 1000));
    const cut = tibet(['sam', 'inspect', file('cut.tza')]);
    expect(cut.code).toBe(1);
    expect(cut.err).toMatch(/BUNDLE_INVALID/);
  });

  it('refusals: not owner/custodian, policy, ttl, bad input — each with its code', () => {
    const bob = tibet([...ISSUE.map((a) => (a === ALICE ? BOB : a)), '-o', file('b.tza')]);
    expect(bob.code).toBe(1);
    expect(bob.err).toMatch(/\[NOT_AUTHORIZED\]/);
    const mallory = tibet([...ISSUE.map((a) => (a === BOT ? BOB : a)), '-o', file('m.tza')]);
    expect(mallory.code).toBe(1);
    expect(mallory.err).toMatch(/not the active operator.*\[POLICY_DENIED\]/);
    const ttl = tibet([...ISSUE, '--ttl', '3600', '-o', file('t.tza'), '--json']);
    expect(ttl.code).toBe(1);
    expect(JSON.parse(ttl.out)).toMatchObject({ error: { code: 'TTL_TOO_LONG' } });
    expect(tibet([...ISSUE, '--ttl', 'soon', '-o', file('t.tza')]).code).toBe(2);
    const bad = tibet([...ISSUE, '--constraint', 'Bad Key=1', '-o', file('t.tza')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/INVALID_REQUEST/);
    for (const f of ['b.tza', 'm.tza', 't.tza'])
      expect(readdirSync(scratch).includes(f), f).toBe(false);
  });

  it('to-tbz and from-tbz round-trip through the family format', () => {
    expect(
      json<{ format: string }>(
        tibet(['sam', 'to-tbz', file('cap.tza'), '--as', ALICE, '-o', file('cap.tbz'), '--json']),
      ).format,
    ).toBe('tbz');
    expect(readFileSync(file('cap.tbz')).subarray(0, 3).toString('latin1')).toBe('TBZ');
    expect(tibet(['sam', 'verify', file('cap.tbz')]).code).toBe(0);
    expect(
      json<{ format: string }>(tibet(['sam', 'inspect', file('cap.tbz'), '--json'])).format,
    ).toBe('tbz');
    expect(tibet(['sam', 'to-tbz', file('cap.tza'), '--as', BOB, '-o', file('x.tbz')]).code).toBe(
      1,
    );
    expect(
      tibet(['sam', 'from-tbz', file('cap.tbz'), '--as', ALICE, '-o', file('back.tza')]).code,
    ).toBe(0);
    const a = json<{ capsule: unknown }>(tibet(['sam', 'inspect', file('cap.tza'), '--json']));
    const b = json<{ capsule: unknown }>(tibet(['sam', 'inspect', file('back.tza'), '--json']));
    expect(b.capsule).toEqual(a.capsule);
  });

  it('encrypted to a gateway: readable fields only, opened with --as-gateway', () => {
    const r = json<{ encrypted_to: string }>(
      tibet([...ISSUE, '--to-gateway', GW, '-o', file('gw.tza'), '--json']),
    );
    expect(r.encrypted_to).toBe(GW);
    expect(readFileSync(file('gw.tza')).includes('publish acme-lib')).toBe(false);
    const seen = json<{ encrypted: boolean; verified: boolean; capsule?: unknown }>(
      tibet(['sam', 'inspect', file('gw.tza'), '--json']),
    );
    expect(seen).toMatchObject({ encrypted: true, verified: true });
    expect(seen.capsule).toBeUndefined();
    const no = tibet(['sam', 'verify', file('gw.tza')]);
    expect(no.code).toBe(1);
    expect(no.err).toMatch(/NOT_A_RECIPIENT/);
    expect(tibet(['sam', 'verify', file('gw.tza'), '--as-gateway', GW]).code).toBe(0);
    expect(
      tibet([
        'sam',
        'to-tbz',
        file('gw.tza'),
        '--as-gateway',
        GW,
        '--as',
        ALICE,
        '-o',
        file('gw.tbz'),
      ]).code,
    ).toBe(1);
  });

  it('the secret appears in no output and no file', () => {
    const forms = [
      SECRET,
      Buffer.from(SECRET).toString('hex'),
      Buffer.from(SECRET).toString('base64').slice(0, 40),
    ];
    for (const o of outputs) for (const f of forms) expect(o.includes(f)).toBe(false);
    const walk = (d: string): string[] =>
      readdirSync(d).flatMap((n) => {
        const p = join(d, n);
        return statSync(p).isDirectory() ? walk(p) : [p];
      });
    for (const p of [...walk(home), ...walk(scratch)]) {
      const data = readFileSync(p);
      for (const f of forms) expect(data.includes(f), p).toBe(false);
    }
  });
});
