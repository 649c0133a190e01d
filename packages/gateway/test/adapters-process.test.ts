import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultAdapters, execIsolation } from '../src/adapters/index.js';
import { ProcessAdapter, type ProcessAdapterOptions } from '../src/adapters/process.js';
import { GatewayAdapterError, type AdapterResult } from '../src/adapters/types.js';
import { expectNoSecret, makeCapsule, makeInput } from './support/adapter-fixtures.js';

const SECRET = 'ghp_Zx9rT3stS3cretF0rTh3Pr0cessAdapter_1234';
const NODE = process.execPath;
const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

/**
 * The gateway's own user (allowSameUser, development only): what these tests check besides
 * the user switch (masking, environment, limits, kills) does not depend on who the child is.
 */
function same(o: ProcessAdapterOptions = {}): ProcessAdapter {
  return new ProcessAdapter({ allowSameUser: true, ...o });
}

function exec(script: string, constraints: Record<string, string> = {}) {
  return makeCapsule('/exec', {
    constraints: { argv: JSON.stringify([NODE, '-e', script]), ...constraints },
  });
}

function res(r: AdapterResult): Record<string, unknown> {
  return r.response as Record<string, unknown>;
}

async function refusal(p: Promise<AdapterResult>): Promise<GatewayAdapterError> {
  try {
    await p;
  } catch (e) {
    if (GatewayAdapterError.is(e)) return e;
    throw e;
  }
  throw new Error('expected the adapter to refuse');
}

/** Gone, or a zombie waiting for a reaper (it can no longer run or read anything). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tibet-gw-proc-'));
  process.env['TIBET_PARENT_CANARY'] = 'parent-only-value';
});
afterAll(() => {
  delete process.env['TIBET_PARENT_CANARY'];
  rmSync(dir, { recursive: true, force: true });
});

describe('process adapter (as the gateway’s own user, allowSameUser)', () => {
  it('gives the child the credential and masks it in every form on stdout and stderr', async () => {
    const script = `
      const s = process.env.TIBET_SECRET;
      const b = Buffer.from(s);
      console.log('raw=' + s);
      console.log('b64=' + b.toString('base64'));
      console.log('b64url=' + b.toString('base64url'));
      console.log('hex=' + b.toString('hex'));
      console.log('url=' + encodeURIComponent(s));
      console.error('err=' + s + ' len=' + s.length);
    `;
    const r = await same().execute(makeInput(exec(script), SECRET, 'github_pat'));
    expect(res(r)['exit_code']).toBe(0);
    expect(res(r)['signal']).toBeNull();
    expect(res(r)['stdout']).toBe(
      'raw=[REDACTED]\nb64=[REDACTED]\nb64url=[REDACTED]\nhex=[REDACTED]\nurl=[REDACTED]\n',
    );
    expect(res(r)['stderr']).toBe(`err=[REDACTED] len=${SECRET.length}\n`);
    expect(r.summary).toMatch(/^exit 0 /);
    expectNoSecret(r, SECRET);
  });

  it('masks a secret written in pieces across separate writes', async () => {
    const script = `
      const s = process.env.TIBET_SECRET;
      let i = 0;
      const step = () => {
        if (i >= s.length) return;
        process.stdout.write(s.slice(i, i + 3));
        i += 3;
        setTimeout(step, 2);
      };
      step();
    `;
    const r = await same().execute(makeInput(exec(script), SECRET, 'github_pat'));
    expect(res(r)['stdout']).toBe('[REDACTED]');
  });

  it("gives the child nothing of the gateway's environment but PATH, HOME and LANG", async () => {
    const script = `console.log(JSON.stringify(process.env))`;
    const r = await same({ env: { LANG: 'C.UTF-8' } }).execute(
      makeInput(exec(script, { env: 'NPM_TOKEN' }), SECRET, 'api_key'),
    );
    const env = JSON.parse(res(r)['stdout'] as string) as Record<string, string>;
    expect(Object.keys(env).sort()).toEqual(['HOME', 'LANG', 'NPM_TOKEN', 'PATH']);
    expect(env['NPM_TOKEN']).toBe('[REDACTED]');
    expect(env['TIBET_PARENT_CANARY']).toBeUndefined();
    expect(env['LANG']).toBe('C.UTF-8');
  });

  it('hands a binary secret over as hex when the capsule says so, and masks it', async () => {
    const seed = new Uint8Array(32).map((_, k) => (k * 37 + 11) & 0xff);
    const script = `console.log(process.env.TIBET_SECRET.length + ' ' + process.env.TIBET_SECRET)`;
    const r = await same().execute(
      makeInput(exec(script, { env_encoding: 'hex' }), seed, 'ssh_key'),
    );
    expect(res(r)['stdout']).toBe('64 [REDACTED]\n');
    expectNoSecret(r, seed);
  });

  it('refuses a secret that is not UTF-8 without env_encoding', async () => {
    const e = await refusal(
      same().execute(makeInput(exec('1'), Uint8Array.of(0xff, 0xfe, 1, 2), 'signing_key')),
    );
    expect(e.verdict).toBe('sam-secret-unavailable');
  });

  it('feeds stdin from the payload but lets the request change nothing else', async () => {
    const script = `let d='';process.stdin.on('data',c=>d+=c).on('end',()=>console.log(d.toUpperCase()))`;
    const r = await same().execute(
      makeInput(exec(script), SECRET, 'api_key', { request: { payload: { stdin: 'hello' } } }),
    );
    expect(res(r)['stdout']).toBe('HELLO\n');

    const e = await refusal(
      same().execute(
        makeInput(exec(script), SECRET, 'api_key', {
          request: { payload: { argv: ['/bin/sh', '-c', 'echo $TIBET_SECRET'] } },
        }),
      ),
    );
    expect(e.verdict).toBe('sam-constraint-mismatch');
    expect(e.message).toContain('may not change "argv"');
  });

  it.each([
    ['no argv', {}],
    ['argv that is not JSON', { argv: 'node -e 1' }],
    ['an empty argv', { argv: '[]' }],
    ['argv with a non-string', { argv: '["node", 1]' }],
    ['a loader variable as the secret variable', { argv: '["node"]', env: 'LD_PRELOAD' }],
    ['PATH as the secret variable', { argv: '["node"]', env: 'PATH' }],
    ['a relative cwd', { argv: '["node"]', cwd: 'tmp' }],
    ['an unknown env_encoding', { argv: '["node"]', env_encoding: 'rot13' }],
  ])('refuses a capsule with %s', async (_what, constraints: Record<string, string>) => {
    const e = await refusal(
      same().execute(makeInput(makeCapsule('/exec', { constraints }), SECRET, 'api_key')),
    );
    expect(e.code).toBe('ADAPTER_REFUSED');
    expect(e.verdict).toBe('sam-constraint-mismatch');
  });

  it('reports the exit code and the signal', async () => {
    const a = same();
    const r1 = await a.execute(makeInput(exec('process.exit(3)'), SECRET, 'api_key'));
    expect(res(r1)['exit_code']).toBe(3);
    expect(r1.summary).toMatch(/^exit 3 /);
    const r2 = await a.execute(
      makeInput(exec("process.kill(process.pid, 'SIGTERM')"), SECRET, 'api_key'),
    );
    expect(res(r2)['exit_code']).toBeNull();
    expect(res(r2)['signal']).toBe('SIGTERM');
    expect(r2.summary).toMatch(/^killed by SIGTERM/);
  });

  it('cuts output at the limit after masking', async () => {
    const script = `process.stdout.write('x'.repeat(5000) + process.env.TIBET_SECRET)`;
    const r = await same({ maxOutputBytes: 5004 }).execute(
      makeInput(exec(script), SECRET, 'api_key'),
    );
    expect(res(r)['stdout']).toBe(`${'x'.repeat(5000)}[RED`);
    expect(res(r)['stdout_truncated']).toBe(true);
    expect(res(r)['stderr_truncated']).toBe(false);
    expectNoSecret(r, SECRET.slice(0, 8));
  });

  it('kills the whole process group when the session signal fires', async () => {
    const pids = join(dir, 'abort-pids');
    const script = `
      const { spawn } = require('node:child_process');
      const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      require('node:fs').writeFileSync(${JSON.stringify(pids)}, process.pid + ' ' + g.pid);
      setInterval(() => {}, 1000);
    `;
    const ac = new AbortController();
    const p = same().execute(makeInput(exec(script), SECRET, 'api_key', { signal: ac.signal }));
    await vi.waitFor(() => expect(readFileSync(pids, 'utf8')).toMatch(/^\d+ \d+$/), {
      timeout: 10_000,
    });
    ac.abort();
    const e = await refusal(p);
    expect(e.code).toBe('ADAPTER_ABORTED');
    const [main, grand] = readFileSync(pids, 'utf8').split(' ').map(Number);
    await vi.waitFor(() => {
      expect(isGone(main!)).toBe(true);
      expect(isGone(grand!)).toBe(true);
    });
  });

  it('kills the process after its own time limit', async () => {
    const e = await refusal(
      same({ timeoutMs: 300 }).execute(
        makeInput(exec('setInterval(() => {}, 1000)'), SECRET, 'api_key'),
      ),
    );
    expect(e.code).toBe('ADAPTER_ABORTED');
    expect(e.verdict).toBe('sam-gateway-proxy-failed');
  });

  it('kills what the command left running when it exits', async () => {
    const pids = join(dir, 'leftover-pid');
    const script = `
      const { spawn } = require('node:child_process');
      const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      require('node:fs').writeFileSync(${JSON.stringify(pids)}, String(g.pid));
      g.unref();
    `;
    const r = await same().execute(makeInput(exec(script), SECRET, 'api_key'));
    expect(res(r)['exit_code']).toBe(0);
    const grand = Number(readFileSync(pids, 'utf8'));
    await vi.waitFor(() => expect(isGone(grand)).toBe(true));
  });

  it('reports a command that cannot be started', async () => {
    const c = makeCapsule('/exec', { constraints: { argv: '["/nonexistent/tibet-no-such-cmd"]' } });
    const e = await refusal(same().execute(makeInput(c, SECRET, 'api_key')));
    expect(e.code).toBe('ADAPTER_FAILED');
    expect(e.message).toContain('ENOENT');
  });

  it('accepts only /exec', () => {
    const a = same();
    expect(a.accepts(makeCapsule('/exec'))).toBe(true);
    expect(a.accepts(makeCapsule('/proxy/http'))).toBe(false);
  });
});

describe('process adapter: who runs the command', () => {
  it('refuses every exec without a uid unless allowSameUser, and spawns nothing', async () => {
    const marker = join(dir, 'spawned-without-uid');
    const script = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`;
    const a = new ProcessAdapter();
    expect(a.isolation().mode).toBe('refused');
    const e = await refusal(a.execute(makeInput(exec(script), SECRET, 'api_key')));
    expect(e.code).toBe('ADAPTER_REFUSED');
    expect(e.verdict).toBe('sam-gateway-proxy-failed');
    expect(e.message).toMatch(/not configured with another user .*allowSameUser/);
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses the gateway's own uid, or its own gid, unless allowSameUser", async () => {
    const uid = process.getuid!();
    const gid = process.getgid!();
    const other = uid === NOBODY ? NOBODY - 1 : NOBODY;
    const marker = join(dir, 'spawned-as-self');
    const script = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`;
    for (const [o, what] of [
      [{ uid, gid }, `uid ${uid}`],
      [{ uid, gid: other }, `uid ${uid}`],
      [{ uid: other, gid }, `gid ${gid}`],
    ] as const) {
      const a = new ProcessAdapter(o);
      expect(a.isolation()).toMatchObject({ mode: 'refused' });
      const e = await refusal(a.execute(makeInput(exec(script), SECRET, 'api_key')));
      expect(e.code).toBe('ADAPTER_REFUSED');
      expect(e.verdict).toBe('sam-gateway-proxy-failed');
      expect(e.message).toContain(`the gateway's own ${what}`);
    }
    expect(existsSync(marker)).toBe(false);
    const allowed = new ProcessAdapter({ uid, gid, allowSameUser: true });
    expect(allowed.isolation()).toEqual({ mode: 'same-user', uid, gid });
    const r = await allowed.execute(
      makeInput(exec('console.log(process.getuid())'), SECRET, 'api_key'),
    );
    expect(res(r)['stdout']).toBe(`${uid}\n`);
  });

  it('shows why: as the same user the command reads the gateway’s /proc environ', async () => {
    const script = `console.log(require('node:fs').readFileSync('/proc/${process.pid}/environ').length > 0)`;
    const r = await same().execute(makeInput(exec(script), SECRET, 'api_key'));
    expect(res(r)['stdout']).toBe('true\n');
  });

  it('validates uid and gid', () => {
    for (const bad of [-1, 1.5, 2 ** 32 - 1, Number.NaN]) {
      expect(() => new ProcessAdapter({ uid: bad, gid: 1 })).toThrow(RangeError);
      expect(() => new ProcessAdapter({ uid: 1, gid: bad })).toThrow(RangeError);
    }
    expect(() => new ProcessAdapter({ uid: NOBODY })).toThrow(/together/);
    expect(() => new ProcessAdapter({ gid: NOBODY })).toThrow(/together/);
    expect(() => new ProcessAdapter({ workRoot: 'tmp' })).toThrow(TypeError);
    expect(() => new ProcessAdapter({ allowSameUser: 'yes' as unknown as boolean })).toThrow(
      TypeError,
    );
  });

  it('defaultAdapters() has no process adapter unless a uid or allowSameUser is given', () => {
    const names = (l: { name: string }[]) => l.map((a) => a.name);
    expect(names(defaultAdapters())).toEqual(['http-egress', 'signer']);
    expect(execIsolation(defaultAdapters())).toBeNull();
    expect(() => defaultAdapters({ process: { timeoutMs: 1000 } })).toThrow(TypeError);
    const dev = defaultAdapters({ process: { allowSameUser: true } });
    expect(names(dev)).toEqual(['http-egress', 'process', 'signer']);
    expect(execIsolation(dev)).toBe('same-user');
    const sep = defaultAdapters({ process: { uid: NOBODY, gid: NOBODY } });
    expect(names(sep)).toEqual(['http-egress', 'process', 'signer']);
    expect(execIsolation(sep)).toBe(ROOT ? 'separate-user' : 'refused');
  });

  it.skipIf(ROOT)(
    'refuses another uid when the gateway is not root (it could not switch)',
    async () => {
      const a = new ProcessAdapter({ uid: NOBODY, gid: NOBODY });
      expect(a.isolation()).toMatchObject({
        mode: 'refused',
        reason: /needs the gateway to run as root/,
      });
      const e = await refusal(a.execute(makeInput(exec('1'), SECRET, 'api_key')));
      expect(e.verdict).toBe('sam-gateway-proxy-failed');
    },
  );
});

if (!ROOT) {
  console.warn(
    `\n*** SKIPPED: the process adapter's uid-switch tests need root (this runner is uid ` +
      `${process.getuid?.()}); they run in CI, which runs the tests as root. ***\n`,
  );
}

describe.skipIf(!ROOT)('process adapter as another user (uid/gid 65534; needs root)', () => {
  let shared: string;
  let privateFile: string;
  let publicFile: string;
  beforeAll(() => {
    // a world-searchable folder with a 0600 file of the gateway's user and a 0644 control
    shared = mkdtempSync(join(tmpdir(), 'tibet-gw-proc-uid-'));
    chmodSync(shared, 0o755);
    privateFile = join(shared, 'key.json');
    writeFileSync(privateFile, 'the gateway user’s private file', { mode: 0o600 });
    publicFile = join(shared, 'public.txt');
    writeFileSync(publicFile, 'readable', { mode: 0o644 });
  });
  afterAll(() => rmSync(shared, { recursive: true, force: true }));

  const nobody = (o: ProcessAdapterOptions = {}) =>
    new ProcessAdapter({ uid: NOBODY, gid: NOBODY, ...o });

  it('runs the command as the uid/gid with no supplementary groups and no capabilities', async () => {
    expect(nobody().isolation()).toEqual({ mode: 'separate-user', uid: NOBODY, gid: NOBODY });
    const script = `
      const fs = require('node:fs');
      const st = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').split('\\n')
        .map((l) => l.split(':\\t')).filter((p) => p.length === 2));
      console.log(JSON.stringify({ uid: process.getuid(), euid: process.geteuid(),
        gid: process.getgid(), egid: process.getegid(), groups: st.Groups.trim(),
        capEff: st.CapEff, capPrm: st.CapPrm, capAmb: st.CapAmb }));
    `;
    const r = await nobody().execute(makeInput(exec(script), SECRET, 'api_key'));
    expect(res(r)['exit_code'], String(res(r)['stderr'])).toBe(0);
    expect(JSON.parse(res(r)['stdout'] as string)).toEqual({
      uid: NOBODY,
      euid: NOBODY,
      gid: NOBODY,
      egid: NOBODY,
      groups: '', // setgroups(0, NULL): not even root's group 0
      capEff: '0000000000000000',
      capPrm: '0000000000000000',
      capAmb: '0000000000000000',
    });
  });

  it("cannot read the gateway user's 0600 file nor /proc/<gateway pid>/environ, yet gets the credential", async () => {
    const script = `
      const fs = require('node:fs');
      const tryRead = (p) => { try { fs.readFileSync(p); return 'read'; } catch (e) { return e.code; } };
      const s = process.env.TIBET_SECRET;
      console.log(JSON.stringify({
        privateFile: tryRead(${JSON.stringify(privateFile)}),
        publicFile: tryRead(${JSON.stringify(publicFile)}),
        environ: tryRead('/proc/${process.pid}/environ'),
        parentEnviron: tryRead('/proc/' + process.ppid + '/environ'),
        parentIsGateway: process.ppid === ${process.pid},
        secretLength: s.length,
        secretSha256: require('node:crypto').createHash('sha256').update(s).digest('hex'),
      }));
      console.log('echo ' + s);
      console.error('err ' + Buffer.from(s).toString('base64'));
    `;
    const r = await nobody().execute(makeInput(exec(script), SECRET, 'api_key'));
    const lines = (res(r)['stdout'] as string).split('\n');
    expect(JSON.parse(lines[0]!)).toEqual({
      privateFile: 'EACCES',
      publicFile: 'read',
      environ: 'EACCES',
      parentEnviron: 'EACCES',
      parentIsGateway: true,
      secretLength: SECRET.length,
      secretSha256: createHash('sha256').update(SECRET).digest('hex'),
    });
    expect(lines[1]).toBe('echo [REDACTED]');
    expect(res(r)['stderr']).toBe('err [REDACTED]\n');
    expectNoSecret(r, SECRET);
  });

  it('with allowSameUser and the gateway’s gid, still switches the uid (reported as same-user)', async () => {
    const gid = process.getgid!();
    const a = nobody({ gid, allowSameUser: true });
    expect(a.isolation()).toEqual({ mode: 'same-user', uid: NOBODY, gid });
    const script = `console.log(process.getuid() + ' ' + process.getgid() + ' ' + (process.env.HOME === process.cwd()))`;
    const r = await a.execute(makeInput(exec(script), SECRET, 'api_key'));
    expect(res(r)['stdout']).toBe(`${NOBODY} ${gid} true\n`);
  });

  it('works in a fresh private directory of its own (also its HOME), removed afterwards', async () => {
    const script = `
      const fs = require('node:fs');
      const st = fs.statSync('.');
      fs.writeFileSync('left-behind.txt', 'x');
      fs.mkdirSync('locked'); fs.writeFileSync('locked/f', 'x'); fs.chmodSync('locked', 0);
      fs.symlinkSync(${JSON.stringify(publicFile)}, 'link-to-gateway-file');
      fs.symlinkSync(${JSON.stringify(shared)}, 'link-to-gateway-dir');
      console.log(JSON.stringify({ cwd: process.cwd(), home: process.env.HOME,
        uid: st.uid, gid: st.gid, mode: (st.mode & 0o777).toString(8) }));
    `;
    const r = await nobody().execute(makeInput(exec(script), SECRET, 'api_key'));
    expect(res(r)['exit_code'], String(res(r)['stderr'])).toBe(0);
    const w = JSON.parse(res(r)['stdout'] as string) as Record<string, unknown>;
    expect(w['cwd']).toMatch(new RegExp(`^${tmpdir()}/tibet-exec-`));
    expect(w['home']).toBe(w['cwd']);
    expect(w).toMatchObject({ uid: NOBODY, gid: NOBODY, mode: '700' });
    expect(existsSync(w['cwd'] as string)).toBe(false);
    // the removal followed no symlink: the gateway's files are intact
    expect(readFileSync(publicFile, 'utf8')).toBe('readable');
    expect(existsSync(privateFile)).toBe(true);
  });

  it('refuses a working directory the user cannot reach, before spawning', async () => {
    // `dir` is the runner's 0700 temp folder
    const marker = join(shared, 'spawned-in-unreachable-cwd');
    const script = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`;
    const e = await refusal(
      nobody().execute(makeInput(exec(script, { cwd: dir }), SECRET, 'api_key')),
    );
    expect(e.code).toBe('ADAPTER_REFUSED');
    expect(e.verdict).toBe('sam-gateway-proxy-failed');
    expect(e.message).toContain(`uid ${NOBODY} cannot read the working directory`);
    const e2 = await refusal(
      nobody({ cwd: join(dir, 'sub') }).execute(makeInput(exec(script), SECRET, 'api_key')),
    );
    expect(e2.message).toMatch(/does not exist|cannot reach/);
    expect(existsSync(marker)).toBe(false);
    // a reachable one is used as is
    const r = await nobody().execute(
      makeInput(exec('console.log(process.cwd())', { cwd: shared }), SECRET, 'api_key'),
    );
    expect(res(r)['stdout']).toBe(`${shared}\n`);
  });

  it('still kills the whole process group of the other user when the session ends', async () => {
    const drop = mkdtempSync(join(tmpdir(), 'tibet-gw-proc-drop-'));
    chmodSync(drop, 0o777);
    const pids = join(drop, 'pids');
    const script = `
      const { spawn } = require('node:child_process');
      const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      require('node:fs').writeFileSync(${JSON.stringify(pids)}, process.pid + ' ' + g.pid);
      setInterval(() => {}, 1000);
    `;
    try {
      const ac = new AbortController();
      const p = nobody().execute(makeInput(exec(script), SECRET, 'api_key', { signal: ac.signal }));
      await vi.waitFor(() => expect(readFileSync(pids, 'utf8')).toMatch(/^\d+ \d+$/), {
        timeout: 10_000,
      });
      ac.abort();
      const e = await refusal(p);
      expect(e.code).toBe('ADAPTER_ABORTED');
      const [main, grand] = readFileSync(pids, 'utf8').split(' ').map(Number);
      await vi.waitFor(() => {
        expect(isGone(main!)).toBe(true);
        expect(isGone(grand!)).toBe(true);
      });
    } finally {
      rmSync(drop, { recursive: true, force: true });
    }
  });
});
