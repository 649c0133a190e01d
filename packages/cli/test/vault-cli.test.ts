// `tibet vault` end to end: the built CLI as real child processes, a throwaway TIBET_HOME,
// the log in embedded mode (--log-as), and real time (vaults that release seconds ahead).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../../test/support/build-dist.js';

const root = join(import.meta.dirname, '..', '..', '..');
const tibetBin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
const tag = `${process.pid}-${Date.now().toString(36)}`;
const SECRET = `vault-cli-content-${'Z'.repeat(10)}-${tag}`;
const ALICE = 'jis:acme:alice';
const BOB = 'jis:acme:bob';
const MALLORY = 'jis:acme:mallory';
const LOG = ['--log-as', 'jis:acme:auditlog'];

let home: string;
let scratch: string;
/** Every output of every command, and whether it is an authorised open to stdout. */
const outputs: { args: string; text: string; open: boolean }[] = [];

interface Run {
  code: number | null;
  out: string;
  err: string;
}

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  TIBET_HOME: home,
  TIBET_PASSPHRASE: 'test passphrase',
  NO_COLOR: '1',
});

function tibet(args: string[], o: { input?: string; open?: boolean; log?: boolean } = {}): Run {
  const full = ['vault', ...args, ...(o.log === false ? [] : LOG)];
  const r = spawnSync(process.execPath, [tibetBin, ...full], {
    input: o.input ?? '',
    encoding: 'utf8',
    env: env(),
    timeout: 30_000,
  });
  outputs.push({ args: full.join(' '), text: r.stdout + r.stderr, open: o.open ?? false });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function json<T>(r: Run): T {
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as T;
}

function errorOf(r: Run): { code: string; message: string } {
  return (JSON.parse(r.out) as { error: { code: string; message: string } }).error;
}

const inSeconds = (s: number): string => new Date(Date.now() + s * 1000).toISOString();

async function until(when: string): Promise<void> {
  const ms = Date.parse(when) - Date.now() + 50;
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

beforeAll(() => {
  ensureBuilt(['core', 'tza', 'continuityd', 'keychain', 'vault', 'cli']);
  home = mkdtempSync(join(tmpdir(), 'tvault-'));
  scratch = mkdtempSync(join(tmpdir(), 'tvault-scratch-'));
  const run = (args: string[]): void => {
    const r = spawnSync(process.execPath, [tibetBin, ...args], { encoding: 'utf8', env: env() });
    expect(r.status, r.stderr).toBe(0);
  };
  run(['keychain', 'init', '--org', 'acme']);
  run(['vault', 'init', '--org', 'acme']);
  for (const id of [ALICE, BOB, MALLORY]) run(['id', 'create', id, '--class', 'human']);
}, 240_000);

afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('tibet vault', () => {
  it('every command has --help', () => {
    for (const c of ['', 'init', 'create', 'heartbeat', 'check', 'open', 'list', 'info', 'watch']) {
      const r = tibet([...(c ? [c] : []), '--help'], { log: false });
      expect(r.code, c).toBe(0);
      expect(r.out).toContain('Usage: tibet vault');
    }
    expect(tibet(['create', '--help'], { log: false }).out).toContain('--dead-man <duration>');
  });

  it('init again is safe', () => {
    const r = tibet(['init', '--org', 'acme', '--json'], { log: false });
    expect(json<{ created: boolean; identity: string }>(r)).toMatchObject({
      created: false,
      identity: 'jis:acme:vault',
    });
  });

  it('usage errors exit 2', () => {
    const base = ['create', '--as', ALICE, '--beneficiary', BOB, '--note', 'n'];
    expect(tibet([...base, '--dead-man', 'P1D']).code).toBe(2); // no content source
    expect(tibet([...base, '--from-stdin'], { input: SECRET }).code).toBe(2); // no trigger
    const both = tibet([...base, '--dead-man', 'P1D', '--from-stdin', '--secret', 'sec_x_1']);
    expect(both.code).toBe(2);
    const bad = tibet([...base, '--dead-man', 'P1M', '--from-stdin', '--json'], { input: SECRET });
    expect(bad.code).toBe(2);
    expect(errorOf(bad).code).toBe('INVALID_INPUT');
    expect(tibet(['info', 'NOT A VAULT']).code).toBe(2);
    expect(tibet(['open', 'vlt_x1234', '--as', BOB]).code).toBe(2); // no destination
    expect(tibet(['watch', '--interval', 'soon']).code).toBe(2);
  });

  it('release on a date: sealed, refused, released by check, opened by the beneficiary only', async () => {
    const unlockAt = inSeconds(8);
    const c = json<{ vault_id: string; status: string; secret_id: string; release_at: string }>(
      tibet(
        [
          'create',
          '--from-stdin',
          '--as',
          ALICE,
          '--beneficiary',
          BOB,
          '--unlock-at',
          unlockAt,
          '--note',
          'for bob, in eight seconds',
          '--id',
          'vlt_date_1',
          '--json',
        ],
        { input: SECRET },
      ),
    );
    expect(c).toMatchObject({ vault_id: 'vlt_date_1', status: 'sealed', release_at: unlockAt });

    const early = tibet(['open', 'vlt_date_1', '--as', BOB, '--stdout']);
    expect(early.code).toBe(1);
    expect(early.err).toContain('[NOT_RELEASED]');
    const hb = tibet(['heartbeat', 'vlt_date_1', '--as', ALICE, '--json']);
    expect(hb.code).toBe(2); // no dead-man switch on this vault
    expect(errorOf(hb).code).toBe('INVALID_INPUT');

    await until(unlockAt);
    const r = json<{ vaults: { vault_id: string; outcome: string; reason: string }[] }>(
      tibet(['check', '--json']),
    );
    expect(r.vaults).toContainEqual(
      expect.objectContaining({
        vault_id: 'vlt_date_1',
        outcome: 'released',
        reason: `unlock_at ${unlockAt} reached`,
      }),
    );
    const denied = tibet(['open', 'vlt_date_1', '--as', MALLORY, '--stdout', '--why', 'peek']);
    expect(denied.code).toBe(1);
    expect(denied.err).toContain('[NOT_BENEFICIARY]');

    const file = join(scratch, 'opened.txt');
    const o = json<{ event: string; file: string }>(
      tibet(['open', 'vlt_date_1', '--as', BOB, '--out', file, '--json']),
    );
    expect(o).toMatchObject({ event: 'vault-opened', file });
    expect(readFileSync(file, 'utf8')).toBe(SECRET);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = tibet(['open', 'vlt_date_1', '--as', BOB, '--stdout'], { open: true });
    expect(again.code).toBe(0);
    expect(again.out).toBe(SECRET);

    const info = json<{ status: string; release: { trigger: string } }>(
      tibet(['info', 'vlt_date_1', '--json']),
    );
    expect(info).toMatchObject({ status: 'released', release: { trigger: 'unlock_at' } });
    // the keychain shows the custody transition
    const show = spawnSync(
      process.execPath,
      [tibetBin, 'keychain', 'show', c.secret_id, '--json', ...LOG],
      { encoding: 'utf8', env: env() },
    );
    expect(show.status, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ owner_id: BOB });
  });

  it('dead-man: heartbeats by the owner only; the watcher releases after silence', async () => {
    json(
      tibet(
        [
          'create',
          '--from-stdin',
          '--as',
          ALICE,
          '--beneficiary',
          BOB,
          '--dead-man',
          'PT6S',
          '--note',
          'if alice is silent for 6 s',
          '--id',
          'vlt_dm_1',
          '--json',
        ],
        { input: SECRET },
      ),
    );
    const m = tibet(['heartbeat', 'vlt_dm_1', '--as', MALLORY, '--json']);
    expect(m.code).toBe(1);
    expect(errorOf(m).code).toBe('NOT_OWNER');
    const hb = json<{ event: string; deadline: string; heartbeats: number }>(
      tibet(['heartbeat', 'vlt_dm_1', '--as', ALICE, '--why', 'still here', '--json']),
    );
    expect(hb).toMatchObject({ event: 'vault-heartbeat', heartbeats: 1 });

    // a watcher (embedded log) prints NDJSON reports until it sees the release, then SIGTERM
    const w = spawn(
      process.execPath,
      [tibetBin, 'vault', 'watch', '--json', '--interval', '0.2', ...LOG],
      { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    let err = '';
    w.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const released = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no release seen: ${text} ${err}`)), 20_000);
      w.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('"vault_id":"vlt_dm_1","outcome":"released"')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    await released;
    const exited = new Promise<number | null>((r) => w.on('close', (code) => r(code)));
    w.kill('SIGTERM');
    expect(await exited).toBe(0);
    outputs.push({ args: 'watch', text: text + err, open: false });
    const reports = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { vaults: { vault_id: string; outcome: string }[] });
    const mine = reports.flatMap((r) => r.vaults.filter((v) => v.vault_id === 'vlt_dm_1'));
    expect(mine.filter((v) => v.outcome === 'released')).toHaveLength(1);

    const late = tibet(['heartbeat', 'vlt_dm_1', '--as', ALICE]);
    expect(late.code).toBe(1);
    expect(late.err).toContain('[ALREADY_RELEASED]');
    const list = json<{ vault_id: string; status: string }[]>(
      tibet(['list', '--owner', ALICE, '--json']),
    );
    expect(list.map((v) => [v.vault_id, v.status])).toEqual([
      ['vlt_date_1', 'released'],
      ['vlt_dm_1', 'released'],
    ]);
    expect(tibet(['list']).code).toBe(0);
    expect(tibet(['info', 'vlt_dm_1']).code).toBe(0);
  }, 60_000);

  it('the watcher inside the continuityd daemon (serve --watch-vaults) releases a vault on its date', async () => {
    const d = spawn(
      process.execPath,
      [
        tibetBin,
        'continuityd',
        'serve',
        '--as',
        'jis:acme:auditlog',
        '--watch-vaults',
        '0.2',
        '--json',
      ],
      { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    d.stdout.on('data', (b: Buffer) => (out += b.toString()));
    d.stderr.on('data', (b: Buffer) => (err += b.toString()));
    try {
      const t0 = Date.now();
      while (!out.includes('"socket"')) {
        if (Date.now() - t0 > 20_000 || d.exitCode !== null) throw new Error(`no daemon: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // through the daemon's socket (no --log-as): the same log the watcher writes to
      const c = tibet(
        [
          'create',
          '--as',
          ALICE,
          '--beneficiary',
          BOB,
          '--note',
          'released by the daemon',
          '--unlock-at',
          inSeconds(3),
          '--from-stdin',
          '--id',
          'vlt_daemon_1',
          '--json',
        ],
        { input: SECRET, log: false },
      );
      expect(c.code, c.err).toBe(0);
      // nobody else looks at the vault: the daemon's watcher releases it and says so
      while (!/vault vlt_daemon_1: released/.test(err)) {
        if (Date.now() - t0 > 30_000) throw new Error(`not released by the daemon: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const info = tibet(['info', 'vlt_daemon_1', '--json'], { log: false });
      expect(json<{ status: string }>(info).status).toBe('released');
      expect(err).toMatch(/vault vlt_daemon_1: released/);
    } finally {
      const exited = new Promise<number | null>((r) => d.on('close', (code) => r(code)));
      d.kill('SIGTERM');
      expect(await exited).toBe(0);
      outputs.push({ args: 'continuityd serve --watch-vaults', text: out + err, open: false });
    }
  }, 60_000);

  it('no output but an authorised open holds the content; the log and the vault files neither', () => {
    for (const o of outputs)
      if (!o.open) expect(o.text.includes(SECRET), `output of: ${o.args}`).toBe(false);
    const find = spawnSync('grep', ['-rl', SECRET, join(home, 'log'), join(home, 'vault')], {
      encoding: 'utf8',
    });
    expect(find.stdout).toBe('');
  });
});
