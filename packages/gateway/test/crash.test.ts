// The replay store under real processes: a gateway child SIGKILLed while its adapter holds
// the secret leaves the capsule consumed (a restarted gateway denies it as sam-replayed), and
// two gateway processes racing on one capsule execute it exactly once. The audit log is one
// continuityd daemon (served here, on a Unix socket) that the children write to.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serveLog, type RunningDaemon } from '@tibet/continuityd';
import { SignerAdapter } from '../src/index.js';
import {
  BlockingAdapter,
  T0,
  bot,
  cleanup,
  ensureBuilt,
  gw,
  makeWorld,
  present,
  materialFor,
  readLog,
  type World,
} from './fixtures/world.js';

const CHILD = join(import.meta.dirname, 'fixtures', 'gateway-child.mjs');
const dirs: string[] = [];
const worlds: World[] = [];
const daemons: RunningDaemon[] = [];
const children: ChildProcess[] = [];

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const c of children.splice(0))
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of daemons.splice(0)) await d.close();
  for (const w of worlds.splice(0)) await w.close();
  cleanup(dirs);
});
afterAll(() => cleanup(dirs));

interface Child {
  proc: ChildProcess;
  line(kind: string): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function spawnChild(cfg: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(proc);
  const seen = new Map<string, string>();
  const waiters = new Map<string, (rest: string) => void>();
  let buf = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const sp = line.indexOf(' ');
      const kind = sp < 0 ? line : line.slice(0, sp);
      const rest = sp < 0 ? '' : line.slice(sp + 1);
      seen.set(kind, rest);
      waiters.get(kind)?.(rest);
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => (stderr += d));
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stderr: string;
  }>((res) => proc.on('close', (code, signal) => res({ code, signal, stderr })));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 45_000);
  void exited.then(() => clearTimeout(timer));
  return {
    proc,
    exited,
    line: (kind) =>
      seen.has(kind)
        ? Promise.resolve(seen.get(kind)!)
        : new Promise((resolve, reject) => {
            waiters.set(kind, resolve);
            void exited.then((e) =>
              reject(
                new Error(`child exited (${e.code ?? e.signal}) before "${kind}": ${e.stderr}`),
              ),
            );
          }),
  };
}

async function setup(
  seed: string,
  target: string,
  type: string,
): Promise<{
  w: World;
  socketPath: string;
  capsulePath: string;
  request: Record<string, unknown>;
  ephemeralId: string;
}> {
  const w = await makeWorld(dirs, { seed, adapters: [new SignerAdapter()] });
  worlds.push(w);
  const socketPath = join(w.home, 'continuityd.sock');
  daemons.push(await serveLog({ log: w.log, socketPath }));
  await w.addSecret('sec_crash_001', type, materialFor(seed, 'k'));
  const { bytes, capsule } = await w.issue({ secret_id: 'sec_crash_001', target_action: target });
  const capsulePath = join(w.home, 'capsule.tza');
  writeFileSync(capsulePath, bytes);
  return {
    w,
    socketPath,
    capsulePath,
    request: { actor_id: bot.id, action: target, constraints: {}, payload: 'sign me' },
    ephemeralId: capsule.ephemeral_id,
  };
}

describe('replay store across processes', () => {
  it('a gateway SIGKILLed mid-execution leaves the capsule consumed: a restart denies the replay', async () => {
    const s = await setup('crash', '/test/block', 'api_key');
    const child = spawnChild({
      home: s.w.home,
      socketPath: s.socketPath,
      capsulePath: s.capsulePath,
      request: s.request,
      now: T0,
      mode: 'block',
    });
    await child.line('executing'); // the adapter holds the secret now
    child.proc.kill('SIGKILL');
    const e = await child.exited;
    expect(e.signal).toBe('SIGKILL');

    // the log has the killed attempt's sam-received and the keychain's secret-proxied, no outcome
    await s.w.log.drain();
    const records = await readLog(join(s.w.home, 'log'));
    const received = records.filter((r) => r.token.event === 'sam-received');
    expect(received).toHaveLength(1);
    expect(records.filter((r) => r.token.event === 'secret-proxied')).toHaveLength(1);
    expect(records.some((r) => r.token.event === 'sam-executed')).toBe(false);
    const rec = await s.w.replay.get(s.ephemeralId);
    expect(rec?.received_action_id).toBe(received[0]!.token.action_id);
    expect(rec?.gateway_id).toBe(gw.id);

    // a restarted gateway (here: a fresh one in this process over the same home and log)
    const restarted = s.w.gatewayWith([new BlockingAdapter()]);
    const bytes = new Uint8Array((await import('node:fs')).readFileSync(s.capsulePath));
    const r = await present(restarted, bytes, s.request as never);
    expect(r.receipt.status).toBe('denied');
    expect(r.receipt.policy_verdict).toBe('sam-replayed');
    expect(r.receipt.events.some((x) => x.detail.includes(received[0]!.token.action_id))).toBe(
      true,
    );
    // and a restarted gateway PROCESS too
    const again = spawnChild({
      home: s.w.home,
      socketPath: s.socketPath,
      capsulePath: s.capsulePath,
      request: s.request,
      now: T0,
      mode: 'block',
    });
    const result = JSON.parse(await again.line('result')) as Record<string, string>;
    expect(result['policy_verdict']).toBe('sam-replayed');
  }, 60_000);

  it('two gateway processes racing on one capsule: exactly one executes', async () => {
    const s = await setup('race', '/sign', 'signing_key');
    const kids = [0, 1, 2].map(() =>
      spawnChild({
        home: s.w.home,
        socketPath: s.socketPath,
        capsulePath: s.capsulePath,
        request: s.request,
        now: T0,
        mode: 'sign',
        waitForGo: true,
      }),
    );
    await Promise.all(kids.map((k) => k.line('ready')));
    for (const k of kids) k.proc.stdin!.write('go\n');
    const results = await Promise.all(
      kids.map(async (k) => JSON.parse(await k.line('result')) as Record<string, string>),
    );
    expect(results.filter((r) => r['status'] === 'executed')).toHaveLength(1);
    expect(results.filter((r) => r['policy_verdict'] === 'sam-replayed')).toHaveLength(2);
    await s.w.log.drain();
    const records = await readLog(join(s.w.home, 'log'));
    expect(records.filter((r) => r.token.event === 'secret-proxied')).toHaveLength(1);
    expect(records.filter((r) => r.token.event === 'sam-executed')).toHaveLength(1);
  }, 60_000);
});
