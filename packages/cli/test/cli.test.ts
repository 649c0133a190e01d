// The built `tibet` command end to end, as real child processes, with a throwaway
// TIBET_HOME. Needs the packages built (`pnpm run build`; test:all does it first).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const bin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
let home: string;
const SECRET = `pypi-${'Z'.repeat(12)}-cli-test-secret-${process.pid}`;
const children: ChildProcess[] = [];

function tibet(args: string[], o: { input?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input: o.input ?? '',
    encoding: 'utf8',
    env: {
      ...process.env,
      TIBET_HOME: home,
      TIBET_PASSPHRASE: 'test passphrase',
      NO_COLOR: '1',
      ...o.env,
    },
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  if (!existsSync(join(root, 'packages', 'cli', 'dist', 'main.js'))) {
    spawnSync('npx', ['-y', 'pnpm@10.34.8', 'run', 'build'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
    });
  }
  home = mkdtempSync(join(tmpdir(), 'tibet-cli-'));
  for (const [id, cls] of [
    ['jis:acme:alice', 'human'],
    ['jis:acme:bob', 'human'],
    ['jis:acme:carol', 'machine'],
    ['jis:acme:auditlog', 'system'],
  ]) {
    const r = tibet(['id', 'create', id!, '--class', cls!]);
    expect(r.code, r.err).toBe(0);
  }
}, 240_000);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('tibet (built CLI, child processes)', () => {
  it('--version, --help at every level, usage errors exit 2', () => {
    expect(tibet(['--version']).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    for (const args of [
      ['--help'],
      ['id', '--help'],
      ['tza', '--help'],
      ['tza', 'pack', '--help'],
      ['tza', 'verify', '--help'],
      ['continuityd', '--help'],
      ['continuityd', 'append', '--help'],
    ]) {
      const r = tibet(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.out).toMatch(/Usage: tibet/);
    }
    expect(tibet(['nonsense']).code).toBe(2);
    expect(tibet(['id', 'create', 'not-an-id', '--class', 'human']).code).toBe(2);
    expect(tibet(['id', 'create', 'jis:acme:x', '--class', 'wizard']).code).toBe(2);
  });

  it('completion: bash completes commands at every level, also through the tkc and tcbom aliases', () => {
    const script = tibet(['completion', 'bash']).out;
    expect(script).toContain('complete -o default -F _tibet_complete tcbom');
    const complete = (words: string[]) => {
      const r = spawnSync(
        'bash',
        [
          '-c',
          `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _tibet_complete; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8' },
      );
      return r.stdout.trim().split(/\s+/).filter(Boolean);
    };
    expect(complete(['tibet', 'ke'])).toEqual(['keychain']);
    expect(complete(['tibet', 'keychain', 're']).sort()).toEqual(['resume', 'reveal', 'revoke']);
    expect(complete(['tkc', 'ro'])).toEqual(['rotate']);
    expect(complete(['/usr/local/bin/tcbom', 'ti'])).toEqual(['timeline']);
    expect(complete(['tibet', 'vault', 'check', '--a'])).toContain('--at');
    expect(tibet(['completion', 'zsh']).out).toContain('bashcompinit');
    expect(tibet(['completion', 'fish']).code).toBe(2);
  });

  it('never takes a passphrase from nowhere: no TTY and no variable → exit 2', () => {
    const r = tibet(['id', 'create', 'jis:acme:nopass', '--class', 'human'], {
      env: { TIBET_PASSPHRASE: '' },
    });
    expect(r.code).toBe(2);
    expect(r.err).toContain('PASSPHRASE_REQUIRED');
  });

  it('id list/show/export; key files are mode 0600', () => {
    const list = JSON.parse(tibet(['id', 'list', '--json']).out) as { id: string }[];
    expect(list.map((x) => x.id)).toContain('jis:acme:alice');
    const key = join(home, 'identities', 'acme', 'alice.key.json');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    const pub = JSON.parse(tibet(['id', 'export', 'jis:acme:alice']).out) as { format: string };
    expect(pub.format).toBe('tibet-public-identity/1');
  });

  it('id import: trusts a checked public identity in another home; refuses forged or conflicting ones', () => {
    const pubFile = join(home, 'alice.pub.json');
    expect(tibet(['id', 'export', 'jis:acme:alice', '-o', pubFile]).code).toBe(0);
    const other = mkdtempSync(join(tmpdir(), 'tibet-cli-import-'));
    try {
      const inOther = (args: string[], input?: string) =>
        tibet(args, { env: { TIBET_HOME: other }, ...(input ? { input } : {}) });
      const r = inOther(['id', 'import', pubFile, '--json']);
      expect(r.code, r.err).toBe(0);
      expect((JSON.parse(r.out) as { id: string }).id).toBe('jis:acme:alice');
      expect(existsSync(join(other, 'identities', 'acme', 'alice.pub.json'))).toBe(true);
      expect(inOther(['id', 'import', pubFile]).code).toBe(0); // same keys: a no-op
      // a changed class breaks the self-signature
      const forged = JSON.parse(readFileSync(pubFile, 'utf8')) as Record<string, string>;
      forged['actor_class'] = 'system';
      const f = inOther(['id', 'import', '-'], JSON.stringify({ ...forged, id: 'jis:acme:zed' }));
      expect(f.code).toBe(1);
      expect(f.err).toMatch(/self-signature/);
      expect(existsSync(join(other, 'identities', 'acme', 'zed.pub.json'))).toBe(false);
      // another jis:acme:bob already lives there: the first home's bob is refused
      expect(inOther(['id', 'create', 'jis:acme:bob', '--class', 'human']).code).toBe(0);
      const before = readFileSync(join(other, 'identities', 'acme', 'bob.pub.json'), 'utf8');
      const c = inOther(['id', 'import', '-'], tibet(['id', 'export', 'jis:acme:bob']).out);
      expect(c.code).toBe(1);
      expect(c.err).toMatch(/other keys/);
      expect(readFileSync(join(other, 'identities', 'acme', 'bob.pub.json'), 'utf8')).toBe(before);
      expect(inOther(['id', 'import', '-'], '{not json').code).toBe(1);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
  it('tza pack → inspect → verify (trust, tamper) → open; exit codes as documented', () => {
    const out = join(home, 't.tza');
    const p = tibet(
      [
        'tza',
        'pack',
        '--kind',
        'secret',
        '--sealed',
        'token=-',
        '--meta',
        'scope=pypi',
        '--recipient',
        'jis:acme:alice',
        '--recipient',
        'jis:acme:bob',
        '--signer',
        'jis:acme:alice',
        '-o',
        out,
      ],
      { input: SECRET },
    );
    expect(p.code, p.err).toBe(0);
    const ins = JSON.parse(tibet(['tza', 'inspect', out, '--json']).out) as {
      kind: string;
      valid: boolean;
    };
    expect(ins).toMatchObject({ kind: 'secret', valid: true });
    expect(tibet(['tza', 'verify', out, '--trust', 'jis:acme:alice']).code).toBe(0);
    const untrusted = tibet(['tza', 'verify', out, '--trust', 'jis:acme:bob', '--json']);
    expect(untrusted.code).toBe(1);
    expect(JSON.parse(untrusted.out)).toMatchObject({ valid: false, code: 'SIGNER_UNTRUSTED' });
    const bytes = readFileSync(out);
    bytes[700] = bytes[700]! ^ 0x40;
    writeFileSync(join(home, 'bad.tza'), bytes);
    expect(tibet(['tza', 'verify', join(home, 'bad.tza')]).code).toBe(1);
    const opened = tibet([
      'tza',
      'open',
      out,
      '--as',
      'jis:acme:bob',
      '--entry',
      'token',
      '--stdout',
    ]);
    expect(opened.code, opened.err).toBe(0);
    expect(opened.out).toBe(SECRET);
    const denied = tibet([
      'tza',
      'open',
      out,
      '--as',
      'jis:acme:carol',
      '--entry',
      'token',
      '--stdout',
    ]);
    expect(denied.code).toBe(1);
    expect(denied.err).toContain('NOT_A_RECIPIENT');
    expect(tibet(['tza', 'open', out, '--as', 'jis:acme:bob']).code).toBe(2);
    const wrongPass = tibet(
      ['tza', 'open', out, '--as', 'jis:acme:bob', '--entry', 'token', '--stdout'],
      { env: { TIBET_PASSPHRASE: 'wrong' } },
    );
    expect(wrongPass.code).toBe(1);
    expect(wrongPass.err).toContain('PASSPHRASE_WRONG');
  });

  it('tza unpack and rewrap', () => {
    const src = join(home, 't.tza');
    const dir = join(home, 'unpacked');
    expect(tibet(['tza', 'unpack', src, dir, '--as', 'jis:acme:alice']).code).toBe(0);
    expect(readFileSync(join(dir, 'token'), 'utf8')).toBe(SECRET);
    expect(tibet(['tza', 'unpack', src, dir, '--as', 'jis:acme:alice']).code).toBe(1); // never overwrites
    const re = join(home, 'r.tza');
    expect(
      JSON.parse(
        tibet([
          'tza',
          'rewrap',
          src,
          '--as',
          'jis:acme:alice',
          '--add',
          'jis:acme:carol',
          '--remove',
          'jis:acme:bob',
          '--signer',
          'jis:acme:alice',
          '-o',
          re,
          '--json',
        ]).out,
      ) as unknown,
    ).toMatchObject({ out: re, rekeyed: false, recipients: ['jis:acme:alice', 'jis:acme:carol'] });
    expect(
      tibet(['tza', 'open', re, '--as', 'jis:acme:carol', '--entry', 'token', '--stdout']).out,
    ).toBe(SECRET);
    // --json with --out-dir: what was written, never the content
    const opened = tibet([
      'tza',
      'open',
      re,
      '--as',
      'jis:acme:carol',
      '--out-dir',
      join(home, 'unpacked', 'json'),
      '--json',
    ]);
    expect(opened.code, opened.err).toBe(0);
    expect(opened.out).not.toContain(SECRET);
    expect(JSON.parse(opened.out)).toMatchObject({
      entries: [{ name: 'token', size: SECRET.length }],
    });
    expect(
      tibet(['tza', 'open', re, '--as', 'jis:acme:carol', '--entry', 'token', '--stdout', '--json'])
        .code,
    ).toBe(2);
    expect(
      tibet(['tza', 'open', re, '--as', 'jis:acme:bob', '--entry', 'token', '--stdout']).code,
    ).toBe(1);
  });

  it('continuityd: a daemon, appends from several processes, checkpoint, LOCKED for a second writer', async () => {
    const sock = join(home, 'continuityd.sock');
    const d = spawn(
      process.execPath,
      [bin, 'continuityd', 'serve', '--as', 'jis:acme:auditlog', '--port', '0', '--json'],
      {
        env: { ...process.env, TIBET_HOME: home, TIBET_PASSPHRASE: 'test passphrase' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(d);
    const info = await new Promise<{ url: string }>((resolve, reject) => {
      let buf = '';
      d.stdout.on('data', (c: Buffer) => {
        buf += c.toString();
        try {
          resolve(JSON.parse(buf) as { url: string });
        } catch {
          // wait for the whole JSON
        }
      });
      d.on('exit', (code) => reject(new Error(`daemon exited ${code}`)));
    });
    expect(existsSync(sock)).toBe(true);
    const appends = await Promise.all(
      ['jis:acme:alice', 'jis:acme:bob', 'jis:acme:carol'].map(
        (who) =>
          new Promise<number | null>((resolve) => {
            const c = spawn(
              process.execPath,
              [
                bin,
                'continuityd',
                'append',
                '--as',
                who,
                '--event',
                'note',
                '--why',
                `hello from ${who}`,
              ],
              {
                env: { ...process.env, TIBET_HOME: home, TIBET_PASSPHRASE: 'test passphrase' },
                stdio: 'ignore',
              },
            );
            c.on('exit', resolve);
          }),
      ),
    );
    expect(appends).toEqual([0, 0, 0]);
    const head = JSON.parse(tibet(['continuityd', 'head', '--url', info.url, '--json']).out) as {
      size: number;
    };
    expect(head.size).toBe(3);
    expect(tibet(['continuityd', 'checkpoint']).out).toMatch(/^jis:acme:auditlog\/log\n3\n/);
    const second = tibet([
      'continuityd',
      'serve',
      '--as',
      'jis:acme:auditlog',
      '--no-socket',
      '--port',
      '0',
    ]);
    expect(second.code).toBe(1);
    expect(second.err).toContain('LOCKED');
    d.kill('SIGTERM');
    await new Promise((r) => d.on('exit', r));
  });

  it('no file under TIBET_HOME and no output holds the secret in the clear', () => {
    const hits: string[] = [];
    const walk = (dir: string): void => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (
          readFileSync(p).includes(Buffer.from(SECRET)) &&
          !p.includes(`${join(home, 'unpacked')}`)
        )
          hits.push(p);
      }
    };
    walk(home);
    expect(hits).toEqual([]);
  });
});

describe('tibet continuityd prove (embedded)', () => {
  it('exports a tlog-proof anyone can check offline with the log key', () => {
    for (let i = 0; i < 3; i++) {
      const r = tibet([
        'continuityd',
        'append',
        '--dir',
        join(home, 'log2'),
        '--log-as',
        'jis:acme:auditlog',
        '--as',
        'jis:acme:alice',
        '--event',
        'note',
        '--why',
        `n${i}`,
      ]);
      expect(r.code, r.err).toBe(0);
    }
    expect(
      tibet([
        'continuityd',
        'checkpoint',
        '--dir',
        join(home, 'log2'),
        '--log-as',
        'jis:acme:auditlog',
      ]).code,
    ).toBe(0);
    const proof = join(home, 'p1.tlog-proof');
    expect(
      tibet(['continuityd', 'prove', '1', '--dir', join(home, 'log2'), '-o', proof]).code,
    ).toBe(0);
    expect(readFileSync(proof, 'utf8')).toMatch(/^c2sp\.org\/tlog-proof@v1\nindex 1\n/);
    const keyFile = join(home, 'log2', 'log.json');
    const ok = tibet([
      'continuityd',
      'prove',
      '--check',
      proof,
      '--log-key',
      keyFile,
      '--entry',
      `${proof}.entry`,
      '--json',
    ]);
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ valid: true, index: 1, size: 3 });
    const bad = tibet([
      'continuityd',
      'prove',
      '--check',
      proof,
      '--log-key',
      keyFile,
      '--entry',
      keyFile,
      '--json',
    ]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({ valid: false, code: 'PROOF_INVALID' });
    // not yet covered by a checkpoint → exit 1 with a clear reason
    tibet([
      'continuityd',
      'append',
      '--dir',
      join(home, 'log2'),
      '--log-as',
      'jis:acme:auditlog',
      '--as',
      'jis:acme:alice',
      '--event',
      'note',
      '--why',
      'late',
    ]);
    const late = tibet(['continuityd', 'prove', '3', '--dir', join(home, 'log2')]);
    expect(late.code).toBe(1);
    expect(late.err).toContain('NOT_FOUND');
  });
});
