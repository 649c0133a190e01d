// `tibet gateway` end to end: the built CLI as real child processes in a throwaway
// TIBET_HOME, a real continuityd daemon, a real gateway daemon, and a loopback "registry"
// that needs the credential. The agent's commands hold no secret and no custodian key; every
// output and every file is searched for the secret.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureBuilt } from '../../../test/support/build-dist.js';

const root = join(import.meta.dirname, '..', '..', '..');
const tibetBin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
const tkcBin = join(root, 'packages', 'cli', 'bin', 'tkc.js');
const tag = `${process.pid}-${Date.now().toString(36)}`;
const TOKEN = `npm_${'Z'.repeat(8)}gw-cli-${tag}`;
const BOT = 'jis:acme:release-bot';

let home: string;
/** The agent's own TIBET_HOME: its identity key only (no secret, no custodian key). */
let agentHome: string;
let scratch: string;
let gwSocket = '';
let gwUrl = '';
const AGENT_PASS = 'the agent passphrase';
const daemons: ChildProcess[] = [];
let registry: Server;
let regHost = '';
const received: { auth: string | undefined; body: string }[] = [];
const outputs: { label: string; text: string }[] = [];
/** Each daemon's stderr so far, by label. */
const daemonErr: Record<string, string> = {};
const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(bin: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input: '',
    encoding: 'utf8',
    env: {
      ...process.env,
      TIBET_HOME: home,
      TIBET_PASSPHRASE: 'test passphrase',
      NO_COLOR: '1',
      ...env,
    },
    timeout: 30_000,
  });
  outputs.push({ label: args.join(' '), text: r.stdout + r.stderr });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const tibet = (args: string[], env?: Record<string, string>): Run => run(tibetBin, args, env);
/** The agent's side: its own home and passphrase (its identity key only). */
const agent = (args: string[]): Run =>
  run(tibetBin, args, { TIBET_HOME: agentHome, TIBET_PASSPHRASE: AGENT_PASS });
/** The agent's side, asynchronously (when this process must keep serving, e.g. the registry). */
function agentAsync(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [tibetBin, ...args], {
      env: { ...process.env, TIBET_HOME: agentHome, TIBET_PASSPHRASE: AGENT_PASS, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let o = '';
    let e = '';
    c.stdout.on('data', (b: Buffer) => (o += b.toString()));
    c.stderr.on('data', (b: Buffer) => (e += b.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(t);
      outputs.push({ label: args.join(' '), text: o + e });
      resolve({ code, out: o, err: e });
    });
  });
}
const json = <T>(r: Run): T => {
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as T;
};

async function startDaemon(args: string[], label: string): Promise<Record<string, unknown>> {
  const d = spawn(process.execPath, [tibetBin, ...args, '--json'], {
    env: { ...process.env, TIBET_HOME: home, TIBET_PASSPHRASE: 'test passphrase' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  daemons.push(d);
  let log = '';
  daemonErr[label] = '';
  d.stderr.on('data', (c: Buffer) => {
    log += c.toString();
    daemonErr[label] += c.toString();
  });
  d.on('exit', () => outputs.push({ label, text: log }));
  return new Promise((resolve, reject) => {
    let buf = '';
    d.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      log += c.toString();
      try {
        resolve(JSON.parse(buf) as Record<string, unknown>);
      } catch {
        // wait for the whole JSON
      }
    });
    d.on('exit', (code) => reject(new Error(`${label} exited ${code}: ${log}`)));
  });
}

beforeAll(async () => {
  ensureBuilt(['core', 'tza', 'continuityd', 'keychain', 'sam', 'gateway', 'vault', 'cbom', 'cli']);
  home = mkdtempSync(join(tmpdir(), 'tgw-'));
  agentHome = mkdtempSync(join(tmpdir(), 'tgw-agent-'));
  scratch = mkdtempSync(join(tmpdir(), 'tgw-scratch-'));
  registry = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      received.push({ auth: req.headers.authorization, body: Buffer.concat(parts).toString() });
      const ok = req.headers.authorization === `Bearer ${TOKEN}`;
      res.writeHead(ok ? 201 : 401, { 'content-type': 'application/json' });
      // a careless upstream that echoes the credential back
      res.end(JSON.stringify({ ok, echo: req.headers.authorization ?? null }));
    });
  });
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', () => r()));
  regHost = `127.0.0.1:${(registry.address() as AddressInfo).port}`;

  expect(tibet(['keychain', 'init', '--org', 'acme']).code).toBe(0);
  for (const [id, cls] of [
    ['jis:acme:alice', 'human'],
    ['jis:acme:gateway', 'gateway'],
  ] as const)
    expect(tibet(['id', 'create', id, '--class', cls]).code).toBe(0);
  // the agent creates its identity in its own home; the two homes exchange public identities
  expect(agent(['id', 'create', BOT, '--class', 'machine']).code).toBe(0);
  const imp = tibet([
    'id',
    'import',
    join(agentHome, 'identities', 'acme', 'release-bot.pub.json'),
  ]);
  expect(imp.code, imp.err).toBe(0);
  // the agent trusts its gateway (receipts) and its issuer, the keychain (capsules)
  for (const who of ['gateway', 'keychain']) {
    const back = agent(['id', 'import', join(home, 'identities', 'acme', `${who}.pub.json`)]);
    expect(back.code, back.err).toBe(0);
  }
  await startDaemon(['continuityd', 'serve', '--as', 'jis:acme:auditlog'], 'continuityd');
  const add = run(
    tkcBin,
    [
      'add',
      'sec_npm_001',
      '--type',
      'api_key',
      '--issuer',
      'npm',
      '--scope',
      'publish',
      '--from-env',
      'NPM_TOKEN',
      '--operator',
      BOT,
      '--as',
      'jis:acme:alice',
      '--why',
      'publish token',
    ],
    { NPM_TOKEN: TOKEN },
  );
  expect(add.code, add.err).toBe(0);
  const gk = run(tkcBin, [
    'generate',
    'sec_sign_001',
    '--type',
    'signing_key',
    '--issuer',
    'acme',
    '--scope',
    'release',
    '--operator',
    BOT,
    '--as',
    'jis:acme:alice',
    '--why',
    'release signing',
  ]);
  expect(gk.code, gk.err).toBe(0);
  const info = await startDaemon(
    [
      'gateway',
      'serve',
      '--as',
      'jis:acme:gateway',
      '--issuer',
      'jis:acme:keychain',
      '--port',
      '0',
    ],
    'gateway',
  );
  gwSocket = info['socket'] as string;
  gwUrl = info['url'] as string;
  expect(info['agent_proof_required']).toBe(true);
}, 300_000);

afterAll(async () => {
  for (const d of daemons) d.kill('SIGKILL');
  await new Promise<void>((r) => (registry ? registry.close(() => r()) : r()));
  if (home) rmSync(home, { recursive: true, force: true });
  if (agentHome) rmSync(agentHome, { recursive: true, force: true });
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('tibet gateway (built CLI, child processes, real daemons)', () => {
  it('--help with examples and exit codes for every subcommand', () => {
    const h = tibet(['gateway', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Examples:/);
    for (const c of ['serve', 'exec', 'request', 'health']) {
      const r = tibet(['gateway', c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.out, c).toMatch(/Exit codes/);
    }
    const sr = tibet(['sam', 'request', '--help']);
    expect(sr.code).toBe(0);
    expect(sr.out).toMatch(/--as <id>/);
    expect(sr.out).toMatch(/OWN identity key/);
    expect(tibet(['gateway', 'exec']).code).toBe(2);
  });

  it('request a capsule, sign through the gateway, then the replay is denied (exit 1)', () => {
    const up = json<{ gateway: string }>(
      agent(['gateway', 'health', '--socket', gwSocket, '--json']),
    );
    expect(up.gateway).toBe('jis:acme:gateway');
    const cap = join(scratch, 'sign.tza');
    const issued = json<{ sam_id: string; file: string }>(
      agent([
        'gateway',
        'request',
        'sec_sign_001',
        '--as',
        BOT,
        '--socket',
        gwSocket,
        '--action',
        '/sign',
        '--intent',
        'sign the release manifest',
        '-o',
        cap,
        '--json',
      ]),
    );
    expect(issued.sam_id).toMatch(/^sam_[0-9a-f]{12}$/);
    expect(statSync(cap).mode & 0o777).toBe(0o600);
    const receiptFile = join(scratch, 'sign-receipt.tza');
    const r = json<{
      status: string;
      receipt_verified: boolean;
      response: Record<string, string>;
      receipt: { sam_id: string; destroy_session_confirmed: boolean };
    }>(
      agent([
        'gateway',
        'exec',
        cap,
        '--as',
        BOT,
        '--gateway',
        gwUrl,
        '--payload',
        'manifest v1',
        '--receipt-out',
        receiptFile,
        '--json',
      ]),
    );
    expect(r.status).toBe('executed');
    expect(r.receipt_verified).toBe(true);
    expect(r.receipt.sam_id).toBe(issued.sam_id);
    expect(r.receipt.destroy_session_confirmed).toBe(true);
    expect(r.response['algorithm']).toBe('ed25519');
    expect(readFileSync(receiptFile).length).toBeGreaterThan(100);

    const again = agent(['gateway', 'exec', cap, '--socket', gwSocket, '--payload', 'manifest v1']);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/denied .*sam-replayed/);
  });

  it('publish over HTTP with the credential injected; the agent never sees it', async () => {
    const cap = join(scratch, 'npm.tza');
    json(
      agent([
        'gateway',
        'request',
        'sec_npm_001',
        '--as',
        BOT,
        '--socket',
        gwSocket,
        '--action',
        '/upload/npm',
        '--intent',
        'publish acme-widget',
        '--constraint',
        `host=${regHost}`,
        '--url',
        `http://${regHost}/acme-widget`,
        '--method',
        'PUT',
        '-o',
        cap,
        '--json',
      ]),
    );
    const payload = join(scratch, 'publish.json');
    writeFileSync(payload, JSON.stringify({ body: { name: 'acme-widget', version: '1.0.0' } }));
    const r = json<{ status: string; response: unknown }>(
      await agentAsync([
        'gateway',
        'exec',
        cap,
        '--socket',
        gwSocket,
        '--payload-file',
        payload,
        '--json',
      ]),
    );
    expect(r.status).toBe('executed');
    expect(received.at(-1)!.auth).toBe(`Bearer ${TOKEN}`);
    expect(JSON.stringify(r.response)).toContain('[REDACTED]');
  });

  it('denials exit 1 with the verdict; refusals of issuance carry the sam code', () => {
    const cap = join(scratch, 'sign2.tza');
    json(
      agent([
        'gateway',
        'request',
        'sec_sign_001',
        '--as',
        BOT,
        '--socket',
        gwSocket,
        '--action',
        '/sign',
        '--intent',
        'sign',
        '--constraint',
        'purpose=release',
        '-o',
        cap,
        '--json',
      ]),
    );
    const wrong = agent([
      'gateway',
      'exec',
      cap,
      '--gateway',
      gwUrl,
      '--constraint',
      'purpose=other',
      '--payload',
      'x',
      '--json',
    ]);
    expect(wrong.code).toBe(1);
    expect((JSON.parse(wrong.out) as { policy_verdict: string }).policy_verdict).toBe(
      'sam-constraint-mismatch',
    );
    const refused = agent([
      'sam',
      'request',
      'sec_sign_001',
      '--as',
      BOT,
      '--socket',
      gwSocket,
      '--action',
      '/sign',
      '--intent',
      'x',
      '--ttl',
      '3600',
      '-o',
      join(scratch, 'nope.tza'),
      '--json',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.out + refused.err).toMatch(/TTL_TOO_LONG/);
    // unsigned: the daemon requires the agent's proof
    const unsigned = agent([
      'gateway',
      'request',
      'sec_sign_001',
      '--actor',
      BOT,
      '--unsigned',
      '--socket',
      gwSocket,
      '--action',
      '/sign',
      '--intent',
      'x',
      '-o',
      join(scratch, 'nope2.tza'),
    ]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.out + unsigned.err).toMatch(/AGENT_UNAUTHENTICATED/);
    // an exec without the agent's proof: denied, sealed, exit 1
    const noProof = agent([
      'gateway',
      'exec',
      cap,
      '--unsigned',
      '--socket',
      gwSocket,
      '--constraint',
      'purpose=release',
      '--payload',
      'x',
      '--json',
    ]);
    expect(noProof.code).toBe(1);
    expect((JSON.parse(noProof.out) as { policy_verdict: string }).policy_verdict).toBe(
      'sam-actor-unauthenticated',
    );
    // the wrong passphrase for the agent's key: refused before anything is sent
    const badPass = run(
      tibetBin,
      ['gateway', 'exec', cap, '--as', BOT, '--socket', gwSocket, '--payload', 'x'],
      { TIBET_HOME: agentHome, TIBET_PASSPHRASE: 'wrong' },
    );
    expect(badPass.code).not.toBe(0);
    // no daemon there: a usage error
    expect(agent(['gateway', 'health', '--socket', join(scratch, 'none.sock')]).code).toBe(2);
  });

  /** An /exec capsule for the npm token, asked for on `socket`, running `argv`. */
  function execCapsule(socket: string, argv: string[], name: string): string {
    const cap = join(scratch, name);
    json(
      agent([
        'gateway',
        'request',
        'sec_npm_001',
        '--as',
        BOT,
        '--socket',
        socket,
        '--action',
        '/exec',
        '--intent',
        'run the publish command',
        '--constraint',
        `argv=${JSON.stringify(argv)}`,
        '-o',
        cap,
        '--json',
      ]),
    );
    return cap;
  }

  it('serve --help explains why /exec is off by default', () => {
    const h = tibet(['gateway', 'serve', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/\/exec is OFF by default/);
    expect(h.out).toMatch(/--exec-uid <n>/);
    expect(h.out).toMatch(/--allow-exec-same-user/);
    expect(h.out).toMatch(/\/proc\/<daemon pid>\/environ/);
  });

  it('without exec flags: no process adapter, and an /exec capsule is denied (no adapter)', () => {
    const h = json<{ adapters: string[]; exec_isolation: unknown }>(
      agent(['gateway', 'health', '--socket', gwSocket, '--json']),
    );
    expect(h.adapters).toEqual(['http-egress', 'signer']);
    expect(h.exec_isolation).toBeNull();
    const marker = join(scratch, 'exec-ran-without-adapter');
    const cap = execCapsule(
      gwSocket,
      [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`],
      'exec-off.tza',
    );
    const r = agent(['gateway', 'exec', cap, '--as', BOT, '--socket', gwSocket, '--json']);
    expect(r.code).toBe(1);
    const d = JSON.parse(r.out) as { policy_verdict: string; result_summary: string };
    expect(d.policy_verdict).toBe('sam-gateway-proxy-failed');
    expect(d.result_summary).toMatch(/no adapter performs \/exec/);
    expect(existsSync(marker)).toBe(false);
  });

  it('serve refuses exec flags that would not isolate (exit 2, nothing started)', () => {
    const base = ['gateway', 'serve', '--as', 'jis:acme:gateway', '--no-socket', '--port', '0'];
    const half = tibet([...base, '--exec-uid', String(NOBODY)]);
    expect(half.code).toBe(2);
    expect(half.err).toMatch(/--exec-uid and --exec-gid together/);
    expect(tibet([...base, '--exec-uid', 'nobody', '--exec-gid', '1']).code).toBe(2);
    const self = tibet([
      ...base,
      '--exec-uid',
      String(process.getuid!()),
      '--exec-gid',
      String(process.getgid!()),
    ]);
    expect(self.code).toBe(2);
    expect(self.err).toMatch(/the gateway's own uid/);
  });

  it('--allow-exec-same-user: a loud warning on stderr and exec_isolation "same-user"', async () => {
    const info = await startDaemon(
      [
        'gateway',
        'serve',
        '--as',
        'jis:acme:gateway',
        '--socket',
        join(scratch, 'gw-same.sock'),
        '--allow-exec-same-user',
      ],
      'gateway-same-user',
    );
    expect(info['exec_isolation']).toBe('same-user');
    // stderr and stdout are separate pipes: the warning may arrive after the JSON
    await vi.waitFor(() =>
      expect(daemonErr['gateway-same-user']).toMatch(
        /WARNING: \/exec commands run as this daemon's own OS user .*decrypt every secret/,
      ),
    );
    const h = json<{ adapters: string[]; exec_isolation: unknown }>(
      agent(['gateway', 'health', '--socket', info['socket'] as string, '--json']),
    );
    expect(h.adapters).toEqual(['http-egress', 'process', 'signer']);
    expect(h.exec_isolation).toBe('same-user');
    // the human form says it too
    expect(agent(['gateway', 'health', '--socket', info['socket'] as string]).out).toContain(
      '/exec runs as the gateway’s own user',
    );
  });

  if (!ROOT)
    console.warn(
      `\n*** SKIPPED: the --exec-uid test needs root to switch users (this runner is uid ` +
        `${process.getuid?.()}); CI runs the tests as root. ***\n`,
    );
  it.skipIf(!ROOT)(
    '--exec-uid/--exec-gid 65534: the /exec command runs as nobody and cannot read the gateway’s keys',
    async () => {
      const sock = join(scratch, 'gw-exec.sock');
      const info = await startDaemon(
        [
          'gateway',
          'serve',
          '--as',
          'jis:acme:gateway',
          '--issuer',
          'jis:acme:keychain',
          '--socket',
          sock,
          '--exec-uid',
          String(NOBODY),
          '--exec-gid',
          String(NOBODY),
        ],
        'gateway-exec-uid',
      );
      expect(info).toMatchObject({
        exec_isolation: 'separate-user',
        exec_uid: NOBODY,
        exec_gid: NOBODY,
      });
      expect(daemonErr['gateway-exec-uid']).not.toMatch(/WARNING/);
      const h = json<{ adapters: string[]; exec_isolation: unknown }>(
        agent(['gateway', 'health', '--socket', sock, '--json']),
      );
      expect(h.adapters).toEqual(['http-egress', 'process', 'signer']);
      expect(h.exec_isolation).toBe('separate-user');
      // the probe lives where nobody can read it
      const tools = mkdtempSync(join(tmpdir(), 'tgw-tools-'));
      chmodSync(tools, 0o755);
      const probe = join(tools, 'probe.cjs');
      writeFileSync(
        probe,
        `const fs = require('node:fs');
const t = (p) => { try { fs.readFileSync(p); return 'read'; } catch (e) { return e.code; } };
console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(),
  gatewayKey: t(process.argv[2]), keychainConfig: t(process.argv[3]),
  gatewayEnviron: t('/proc/' + process.ppid + '/environ'), ppid: process.ppid,
  secretLength: (process.env.TIBET_SECRET || '').length }));
console.log('token ' + process.env.TIBET_SECRET);
`,
        { mode: 0o644 },
      );
      const keyFile = join(home, 'identities', 'acme', 'gateway.key.json');
      expect(existsSync(keyFile)).toBe(true);
      const cap = execCapsule(
        sock,
        [process.execPath, probe, keyFile, join(home, 'keychain', 'config.json')],
        'exec-uid.tza',
      );
      let r;
      try {
        r = json<{
          status: string;
          response: { exit_code: number; stdout: string; stderr: string };
        }>(agent(['gateway', 'exec', cap, '--as', BOT, '--socket', sock, '--json']));
      } finally {
        rmSync(tools, { recursive: true, force: true });
      }
      expect(r.status).toBe('executed');
      expect(r.response.exit_code, r.response.stderr).toBe(0);
      const [probeLine, tokenLine] = r.response.stdout.split('\n');
      expect(JSON.parse(probeLine!)).toEqual({
        uid: NOBODY,
        gid: NOBODY,
        gatewayKey: 'EACCES',
        keychainConfig: 'EACCES',
        gatewayEnviron: 'EACCES',
        ppid: info['pid'],
        secretLength: TOKEN.length,
      });
      expect(tokenLine).toBe('token [REDACTED]');
    },
  );

  it('the secret appears in no output and no file', () => {
    const forms = [
      TOKEN,
      Buffer.from(TOKEN).toString('base64'),
      Buffer.from(TOKEN).toString('hex'),
    ];
    const hits: string[] = [];
    for (const o of outputs) for (const f of forms) if (o.text.includes(f)) hits.push(o.label);
    const walk = (d: string): void => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (st.isFile()) {
          const data = readFileSync(p);
          for (const x of forms) if (data.includes(Buffer.from(x))) hits.push(p);
        }
      }
    };
    walk(home);
    walk(agentHome);
    walk(scratch);
    expect(hits).toEqual([]);
  });
});
