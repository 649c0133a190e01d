// `tibet keychain` / `tkc` end to end: the built CLI as real child processes, a throwaway
// TIBET_HOME, and a real continuityd daemon on its default socket. Needs the packages
// built (`pnpm run build`; test:all does it first).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as vocabulary from '@tibet/keychain';
import * as copies from '../src/commands/keychain.js';

const root = join(import.meta.dirname, '..', '..', '..');
const tibetBin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
const tkcBin = join(root, 'packages', 'cli', 'bin', 'tkc.js');
const tag = `${process.pid}-${Date.now().toString(36)}`;
const SECRET = `pypi-AgEI${'Q'.repeat(12)}-kc-cli-first-${tag}`;
const SECRET2 = `pypi-AgEI${'W'.repeat(12)}-kc-cli-second-${tag}`;
const ID = 'sec_pypi_001';
const ALICE = 'jis:acme:alice';
const BOB = 'jis:acme:bob';
const BOT = 'jis:acme:release-bot';

/** The family's SecretRecord fields (/work/shared/spec/family.md), in its order. */
const RECORD_FIELDS = [
  'secret_id',
  'secret_type',
  'issuer',
  'scope',
  'created_at',
  'expires_at',
  'owner_id',
  'custodian_id',
  'active_operator_id',
  'last_access_action_id',
  'last_rotation_action_id',
  'exposure_state',
  'rotation_required',
  'notes',
];
const REQUIRED_FIELDS = [
  'secret_id',
  'secret_type',
  'issuer',
  'scope',
  'created_at',
  'exposure_state',
  'rotation_required',
  'notes',
];

let home: string;
let scratch: string;
let daemon: ChildProcess | undefined;
/** Every output of every command, and whether it is an authorised reveal. */
const outputs: { args: string; text: string; reveal: boolean }[] = [];

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(bin: string, args: string[], o: { input?: string; reveal?: boolean } = {}): Run {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input: o.input ?? '',
    encoding: 'utf8',
    env: { ...process.env, TIBET_HOME: home, TIBET_PASSPHRASE: 'test passphrase', NO_COLOR: '1' },
    timeout: 30_000,
  });
  outputs.push({ args: args.join(' '), text: r.stdout + r.stderr, reveal: o.reveal ?? false });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const tkc = (args: string[], o: { input?: string; reveal?: boolean } = {}): Run =>
  run(tkcBin, args, o);
const tibet = (args: string[]): Run => run(tibetBin, args);
const json = <T>(r: Run): T => {
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as T;
};
const record = (): Record<string, unknown> =>
  json<Record<string, unknown>>(tkc(['show', ID, '--json']));

beforeAll(() => {
  if (!existsSync(join(root, 'packages', 'cli', 'dist', 'commands', 'keychain-actions.js'))) {
    spawnSync('npx', ['-y', 'pnpm@10.34.8', 'run', 'build'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
    });
  }
  home = mkdtempSync(join(tmpdir(), 'tkc-'));
  scratch = mkdtempSync(join(tmpdir(), 'tkc-scratch-'));
  for (const [id, cls] of [
    [ALICE, 'human'],
    [BOB, 'human'],
    [BOT, 'machine'],
  ] as const) {
    const r = tibet(['id', 'create', id, '--class', cls]);
    expect(r.code, r.err).toBe(0);
  }
}, 240_000);

afterAll(() => {
  daemon?.kill('SIGKILL');
  if (home) rmSync(home, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

async function startDaemon(): Promise<void> {
  const d = spawn(
    process.execPath,
    [tibetBin, 'continuityd', 'serve', '--as', 'jis:acme:auditlog', '--json'],
    {
      env: { ...process.env, TIBET_HOME: home, TIBET_PASSPHRASE: 'test passphrase' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  daemon = d;
  let log = '';
  d.stderr.on('data', (c: Buffer) => (log += c.toString()));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    d.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      log += c.toString();
      try {
        JSON.parse(buf);
        resolve();
      } catch {
        // wait for the whole JSON
      }
    });
    d.on('exit', (code) => reject(new Error(`daemon exited ${code}: ${log}`)));
  });
  d.on('exit', () => outputs.push({ args: 'continuityd serve', text: log, reveal: false }));
}

describe('tkc / tibet keychain (built CLI, child processes, a real daemon)', () => {
  it('the vocabulary copied for cheap registration matches @tibet/keychain', () => {
    expect(copies.SECRET_TYPES).toEqual(vocabulary.SECRET_TYPES);
    expect(copies.GENERATABLE_TYPES).toEqual(vocabulary.GENERATABLE_TYPES);
    expect(copies.CUSTODY_ROLES).toEqual(vocabulary.CUSTODY_ROLES);
    expect(copies.AUTHORITY_MODES).toEqual(vocabulary.AUTHORITY_MODES);
    expect(copies.REPORTABLE_EXPOSURES).toEqual(vocabulary.REPORTABLE_EXPOSURES);
  });

  it('tkc --help, subcommand help with exit codes, --version', () => {
    const h = tkc(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Usage: tibet keychain/);
    for (const c of [
      'init',
      'add',
      'reveal',
      'delegate',
      'expose',
      'rotate',
      'destroy',
      'show',
      'history',
      'who-could',
      'who-did',
      'last-used',
      'dependents',
      'verify',
    ]) {
      const r = tkc([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.out, c).toMatch(/Exit codes/);
    }
    expect(tibet(['keychain', '--help']).out).toMatch(/Usage: tibet keychain/);
    expect(tkc(['--version']).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(tkc(['nonsense']).code).toBe(2);
  });

  it('init makes the keychain and log identities (class system), once', async () => {
    const r = json<{ identities: { id: string; created: boolean }[] }>(
      tkc(['init', '--org', 'acme', '--json']),
    );
    expect(r.identities).toEqual([
      expect.objectContaining({ id: 'jis:acme:keychain', created: true }),
      expect.objectContaining({ id: 'jis:acme:auditlog', created: true }),
    ]);
    const again = tkc(['init', '--org', 'acme']);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/exists\s+jis:acme:keychain/);
    const shown = json<{ actor_class: string }>(
      tibet(['id', 'show', 'jis:acme:keychain', '--json']),
    );
    expect(shown.actor_class).toBe('system');
    await startDaemon();
  });

  it('add refuses without a source (exit 2) and never takes one from an argument', () => {
    const base = ['add', ID, '--type', 'pypi_token', '--issuer', 'pypi.org'];
    const acting = ['--scope', 'upload:acme-lib', '--as', ALICE, '--why', 'publish token'];
    const none = tkc([...base, ...acting]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/needs a source.*\[USAGE\]/);
    expect(tkc([...base, 'as-an-argument', ...acting, '--from-stdin']).code).toBe(2);
    expect(tkc([...base, ...acting, '--type', 'wizard_token', '--from-stdin']).err).toContain(
      'INVALID_SECRET_TYPE',
    );
  });

  it('add from stdin; show --json is the family SecretRecord exactly', () => {
    const r = tkc(
      [
        'add',
        ID,
        '--type',
        'pypi_token',
        '--issuer',
        'pypi.org',
        '--scope',
        'upload:acme-lib',
        '--expires',
        '2099-01-01T00:00:00Z',
        '--from-stdin',
        '--as',
        ALICE,
        '--why',
        'publish token for acme-lib',
        '--json',
      ],
      { input: SECRET },
    );
    const added = json<{ event: string; record: Record<string, unknown> }>(r);
    expect(added.event).toBe('secret-imported');
    const rec = record();
    expect(rec).toEqual(added.record);
    expect(Object.keys(rec)).toEqual(RECORD_FIELDS.filter((k) => k in rec));
    for (const k of REQUIRED_FIELDS) expect(rec).toHaveProperty(k);
    expect(rec).toEqual({
      secret_id: ID,
      secret_type: 'pypi_token',
      issuer: 'pypi.org',
      scope: 'upload:acme-lib',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
      expires_at: '2099-01-01T00:00:00.000Z',
      owner_id: ALICE,
      custodian_id: 'jis:acme:keychain',
      exposure_state: 'sealed',
      rotation_required: false,
      notes: [],
    });
    const listed = tkc(['list', '--json']);
    expect(listed.code).toBe(0);
    expect(
      listed.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([rec]);
  });

  it('reveal needs a destination; to --stdout it is exactly the input', () => {
    expect(tkc(['reveal', ID, '--as', ALICE, '--why', 'check']).code).toBe(2);
    const r = tkc(['reveal', ID, '--stdout', '--as', ALICE, '--why', 'debug the upload'], {
      reveal: true,
    });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(SECRET);
    expect(r.err).toMatch(/revealed sec_pypi_001\s+secret-unsealed/);
  });

  it('delegate to a bot; the bot may not reveal (exit 1 with the code)', () => {
    const d = json<{ event: string; record: { active_operator_id?: string } }>(
      tkc([
        'delegate',
        ID,
        '--role',
        'active_operator',
        '--to',
        BOT,
        '--as',
        ALICE,
        '--why',
        'the release bot publishes',
        '--json',
      ]),
    );
    expect(d.event).toBe('secret-delegated');
    expect(d.record.active_operator_id).toBe(BOT);
    const denied = tkc(['reveal', ID, '--stdout', '--as', BOT, '--why', 'curious']);
    expect(denied.code).toBe(1);
    expect(denied.out).toBe('');
    expect(denied.err).toMatch(/^error: .* \[POLICY_DENIED\]$/m);
    const asJson = tkc([
      'reveal',
      ID,
      '--out',
      join(scratch, 'never.txt'),
      '--as',
      BOT,
      '--why',
      'curious',
      '--json',
    ]);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.out)).toMatchObject({ error: { code: 'POLICY_DENIED' } });
    expect(existsSync(join(scratch, 'never.txt'))).toBe(false);
  });

  it('expose: rotation required, reveal refused until rotated', () => {
    const r = tkc([
      'expose',
      ID,
      '--state',
      'chat-disclosed',
      '--evidence',
      'pasted in #ops at 14:02',
      '--as',
      BOB,
      '--why',
      'saw it in the ops channel',
    ]);
    expect(r.code, r.err).toBe(0);
    expect(record()).toMatchObject({ exposure_state: 'chat-disclosed', rotation_required: true });
    const refused = tkc(['reveal', ID, '--stdout', '--as', ALICE, '--why', 'still need it']);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('[SECRET_EXPOSED]');
    expect(
      tkc(['expose', ID, '--state', 'on-fire', '--evidence', 'x', '--as', BOB, '--why', 'x']).code,
    ).toBe(2);
  });

  it('rotate from a file; the new version reveals, sealed again', () => {
    const file = join(scratch, 'new-token.txt');
    writeFileSync(file, SECRET2, { mode: 0o600 });
    const r = json<{ event: string; version: number }>(
      tkc(['rotate', ID, '--from-file', file, '--as', ALICE, '--why', 'leaked in chat', '--json']),
    );
    expect(r).toMatchObject({ event: 'secret-rotated', version: 2 });
    expect(record()).toMatchObject({ exposure_state: 'sealed', rotation_required: false });
    expect(
      tkc(['reveal', ID, '--stdout', '--as', ALICE, '--why', 'set it in CI'], { reveal: true }).out,
    ).toBe(SECRET2);
    expect(tkc(['rotate', ID, '--as', ALICE, '--why', 'no source']).code).toBe(2);
  });

  it('timeline queries answer from the log, with evidence; verify passes', () => {
    const hist = tkc(['history', ID, '--json']);
    expect(hist.code, hist.err).toBe(0);
    const entries = hist.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; index: number });
    expect(entries.map((e) => e.event)).toEqual([
      'secret-imported',
      'secret-unsealed',
      'secret-delegated',
      'secret-denied',
      'secret-denied',
      'secret-exposed',
      'secret-denied',
      'secret-rotated',
      'secret-unsealed',
    ]);
    const did = json<{ accesses: { action: string; actor: string }[]; evidence: unknown[] }>(
      tkc(['who-did', ID, '--json']),
    );
    expect(did.accesses.map((a) => `${a.action}:${a.actor}`)).toEqual([
      `reveal:${ALICE}`,
      `reveal:${ALICE}`,
    ]);
    expect(did.evidence.length).toBeGreaterThan(0);
    const could = json<{ actors: { actor: string }[] }>(
      tkc(['who-could', ID, '--action', 'reveal', '--json']),
    );
    expect(could.actors.map((a) => a.actor)).toEqual([ALICE]);
    expect(tkc(['last-used', ID]).out).toContain(`reveal by ${ALICE}`);
    expect(tkc(['dependents', ID]).code).toBe(0);
    const v = tkc(['verify', '--json']);
    expect(v.code, v.out + v.err).toBe(0);
    expect(JSON.parse(v.out)).toMatchObject({ ok: true });
    expect(tkc(['who-could', ID, '--at', 'yesterday']).code).toBe(2);
  });

  it('the log holds every event; embedded mode reads the same keychain', async () => {
    const head = json<{ size: number }>(tibet(['continuityd', 'head', '--json']));
    // imported, unsealed, delegated, 2 denied, exposed, denied, rotated, unsealed
    expect(head.size).toBe(9);
    daemon!.kill('SIGTERM');
    await new Promise((r) => daemon!.on('exit', r));
    const shown = tkc(['show', ID, '--log-as', 'jis:acme:auditlog']);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toMatch(/sec_pypi_001\s+pypi_token\s+v2 · active · sealed/);
  });

  it('the secrets are in no file under TIBET_HOME and in no output but the reveals', () => {
    const hits: string[] = [];
    const walk = (dir: string): void => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (st.isFile()) {
          const b = readFileSync(p);
          if (b.includes(Buffer.from(SECRET)) || b.includes(Buffer.from(SECRET2))) hits.push(p);
        }
      }
    };
    walk(home);
    expect(hits).toEqual([]);
    expect(existsSync(join(home, 'keychain', 'secrets', ID))).toBe(true);
    const leaks = outputs
      .filter((o) => !o.reveal && (o.text.includes(SECRET) || o.text.includes(SECRET2)))
      .map((o) => o.args);
    expect(leaks).toEqual([]);
    expect(outputs.filter((o) => o.reveal)).toHaveLength(2);
  });
});
