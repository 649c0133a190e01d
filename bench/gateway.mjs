#!/usr/bin/env node
/**
 * Gateway throughput with durable audit: capsule verify + execute + receipt per second through
 * `Gateway.exec` with the signer adapter (Ed25519), an embedded continuityd log and the file
 * replay store on this machine's disk — beside its floor measured in the same run: the
 * Ed25519 signs and verifies and the fsyncs one exec must do, each multiplied by its bare cost.
 *
 * One exec must (the agent's proof of possession included):
 *   verify  the capsule bundle's signature, the capsule's sam-issued token, the agent's
 *           sam-exec-requested proof, and (in the log) the four tokens it appends = 7 verifies
 *   sign    the agent's proof (agent side), sam-received, secret-proxied, the keychain
 *           revision, the signer adapter's signature, the receipt bundle,
 *           sam-executed                                                          = 7 signs
 *   fsync   the replay record (file + folder), the keychain revision and HEAD (file + folder
 *           each), four log appends (one fdatasync each when execs run one at a time)
 *                                                                                 = 10 fsyncs
 * The fsyncs actually made are counted too (FileHandle sync/datasync) and printed.
 *
 *   node bench/gateway.mjs [--execs N]
 *
 * Imports the BUILT packages by relative path (build first). Benchmarks are not tests: nothing
 * here asserts a timing; exit 0 for a completed run, 66 when dist is missing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import process from 'node:process';

const N = Number(process.argv[process.argv.indexOf('--execs') + 1]) || 200;
const now = () => process.hrtime.bigint();
const out = (s = '') => process.stdout.write(s + '\n');
const dur = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(1)} µs`);

async function load() {
  try {
    return {
      core: await import('../packages/core/dist/index.js'),
      testing: await import('../packages/core/dist/testing.js'),
      cd: await import('../packages/continuityd/dist/index.js'),
      kc: await import('../packages/keychain/dist/index.js'),
      sam: await import('../packages/sam/dist/index.js'),
      gw: await import('../packages/gateway/dist/index.js'),
    };
  } catch (e) {
    process.stderr.write(
      `cannot load the built packages (${e && e.code ? e.code : e}).\n` +
        'Build first: TURBO_TELEMETRY_DISABLED=1 npx -y pnpm@10.34.8 run build\n',
    );
    process.exit(66);
  }
}

/** Count FileHandle sync/datasync calls while `fn` runs. */
async function countingSyncs(dir, fn) {
  const fh = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(fh);
  await fh.close();
  const orig = { sync: proto.sync, datasync: proto.datasync };
  let n = 0;
  proto.sync = function () {
    n++;
    return orig.sync.call(this);
  };
  proto.datasync = function () {
    n++;
    return orig.datasync.call(this);
  };
  try {
    await fn();
  } finally {
    proto.sync = orig.sync;
    proto.datasync = orig.datasync;
  }
  return n;
}

async function main() {
  const { core, testing, cd, kc, sam, gw } = await load();
  const root = mkdtempSync(join(os.tmpdir(), 'tibet-gw-bench-'));
  try {
    const id = (name, cls) => testing.testIdentity(`jis:acme:${name}`, cls);
    const service = id('keychain', 'system');
    const logKey = id('auditlog', 'system');
    const alice = id('alice', 'human');
    const bot = id('release-bot', 'machine');
    const gwId = id('gateway', 'gateway');
    const directory = new core.IdentityRegistry();
    for (const x of [service, logKey, alice, bot, gwId]) directory.add(x);
    const log = await cd.AuditLog.open({
      dir: join(root, 'log'),
      signer: logKey,
      registry: directory,
    });
    const audit = new cd.EmbeddedClient(log);
    const keychain = new kc.Keychain({ home: root, audit, service, directory });
    await keychain.add({
      actor: alice,
      secretId: 'sec_sign_001',
      type: 'signing_key',
      issuer: 'acme',
      scope: 'release',
      activeOperator: bot.id,
      reason: 'bench',
      policy: { max_capsule_ttl_s: 3600 },
    });
    const gateway = new gw.Gateway({
      keychain,
      identity: gwId,
      directory,
      replayStore: new gw.FileReplayStore(root),
      adapters: [new gw.SignerAdapter()],
    });
    const request = { actor_id: bot.id, action: '/sign', constraints: {}, payload: 'manifest' };
    const issue = () =>
      sam.issueCapsule({
        keychain,
        issuer: service,
        request: {
          secret_id: 'sec_sign_001',
          actor_id: bot.id,
          target_action: '/sign',
          intent: 'bench',
          ttl_seconds: 3600,
        },
      });
    // the agent signs each exec request with its own key (proof of possession)
    const exec = (issued) =>
      gateway.exec(issued.bytes, request, sam.mintExecProof(issued.capsule, request, bot));
    // warm-up, and the fsyncs one exec makes
    for (let i = 0; i < 5; i++) await exec(await issue());
    const one = await issue();
    const syncsPerExec = await countingSyncs(root, () => exec(one));

    const capsules = [];
    for (let i = 0; i < N; i++) capsules.push(await issue());
    const t0 = now();
    for (const c of capsules) {
      const r = await exec(c);
      if (r.receipt.status !== 'executed') throw new Error(`denied: ${r.receipt.policy_verdict}`);
    }
    const execNs = Number(now() - t0) / N;

    // the floor's parts, measured here
    const p = core.getProvider();
    const key = p.ed25519(new Uint8Array(32).fill(7));
    const msg = new Uint8Array(600).fill(1);
    const sig = key.sign(msg);
    const per = (fn, n) => {
      const s = now();
      for (let i = 0; i < n; i++) fn();
      return Number(now() - s) / n;
    };
    const signNs = per(() => key.sign(msg), 2000);
    const verifyNs = per(() => p.ed25519Verify(key.publicKey, msg, sig), 2000);
    const fh = await open(join(root, 'fsync-probe'), 'w');
    const small = new Uint8Array(256).fill(2);
    const s = now();
    for (let i = 0; i < 100; i++) {
      await fh.write(small, 0, small.length, 0);
      await fh.sync();
    }
    const fsyncNs = Number(now() - s) / 100;
    await fh.close();
    const floorNs = 7 * signNs + 7 * verifyNs + 10 * fsyncNs;

    out(
      `gateway exec (signer adapter, embedded log, file replay store) — ${N} execs, one at a time`,
    );
    out(`  node ${process.version} · ${os.cpus()[0]?.model ?? 'cpu'} · ${os.platform()}`);
    out();
    out(
      `  exec                ${dur(execNs).padStart(10)}   ${(1e9 / execNs).toFixed(0).padStart(6)} /s`,
    );
    out(
      `  floor               ${dur(floorNs).padStart(10)}   ${(1e9 / floorNs).toFixed(0).padStart(6)} /s`,
    );
    out(`    7 × ed25519 sign    ${dur(signNs)}`);
    out(`    7 × ed25519 verify  ${dur(verifyNs)}`);
    out(`   10 × fsync           ${dur(fsyncNs)}   (counted per exec: ${syncsPerExec})`);
    out(`  exec / floor        ${(execNs / floorNs).toFixed(2)}×`);
    await log.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
