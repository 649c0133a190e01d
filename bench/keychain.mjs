#!/usr/bin/env node
/**
 * Keychain throughput with durable audit: add, reveal, rotate and delegate (active operator)
 * per second through `Keychain` with an embedded continuityd log on this machine's disk,
 * each beside its floor measured in the same run — the cryptography the operation does (the
 * HPKE, AEAD and Ed25519 work of its material and revision bundles and its token) plus the
 * fsyncs it must do, counted and multiplied by a bare fsync of a small file.
 *
 *   node bench/keychain.mjs
 *
 * Imports the BUILT packages by relative path (build first). Benchmarks are not tests:
 * nothing here asserts a timing; the exit status is 0 for a completed run, 124 when the
 * 3-minute watchdog stopped it, 66 when dist is missing. See bench/README.md, "Keychain".
 */
import { spawn } from 'node:child_process';
import { constants, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const CHILD_ENV = 'TIBET_KC_BENCH_CHILD';
const WATCHDOG_MS = 180_000;

// ---------------------------------------------------------------------------------------
// measuring
// ---------------------------------------------------------------------------------------

const now = () => process.hrtime.bigint();
const ROUNDS = 5;
const WARMUP_NS = 400e6;
const OP_BATCH_NS = 600e6;
const FSYNC_BATCH_NS = 300e6;
const PRIM_BATCH_NS = 100e6;

let _blackhole; // results land here so that no call can be optimised away

/** ns per call of an async function over at least `minNs`, and the process CPU time per call. */
async function batchAsync(fn, minNs) {
  globalThis.gc?.();
  const c0 = process.cpuUsage();
  const t0 = now();
  let n = 0;
  let t = 0;
  do {
    _blackhole = await fn();
    n++;
    t = Number(now() - t0);
  } while (t < minNs);
  const c = process.cpuUsage(c0);
  return { ns: t / n, cpuNs: ((c.user + c.system) * 1000) / n, n };
}

/** ns per call of a sync function, in chunks so the clock is read rarely. */
function batchSync(fn, minNs) {
  globalThis.gc?.();
  const t0 = now();
  let n = 0;
  let t = 0;
  do {
    for (let i = 0; i < 16; i++) _blackhole = fn();
    n += 16;
    t = Number(now() - t0);
  } while (t < minNs);
  return { ns: t / n, n };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------------------

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const f0 = (x) => intFmt.format(x);
function dur(ns) {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${ns.toFixed(0)} ns`;
}
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const out = (s = '') => process.stdout.write(s + '\n');

// ---------------------------------------------------------------------------------------

async function loadPackages() {
  try {
    const core = await import('../packages/core/dist/index.js');
    const testing = await import('../packages/core/dist/testing.js');
    const tza = await import('../packages/tza/dist/index.js');
    const cd = await import('../packages/continuityd/dist/index.js');
    const kc = await import('../packages/keychain/dist/index.js');
    return { core, testing, tza, cd, kc };
  } catch (e) {
    process.stderr.write(
      `cannot load the built packages (${e && e.code ? e.code : e}).\n` +
        'Build first: TURBO_TELEMETRY_DISABLED=1 npx -y pnpm@10.34.8 run build\n',
    );
    process.exit(66);
  }
}

/** A provider that counts the primitive calls made through it (for the call census). */
function countingProvider(p, c) {
  const cp = Object.create(p);
  const bump = (k) => (c[k] = (c[k] ?? 0) + 1);
  cp.ed25519 = (seed) => {
    const k = p.ed25519(seed);
    return { publicKey: k.publicKey, sign: (m) => (bump('ed25519 sign'), k.sign(m)) };
  };
  cp.ed25519Verify = (...a) => (bump('ed25519 verify'), p.ed25519Verify(...a));
  cp.x25519 = (sk) => {
    const k = p.x25519(sk);
    return { publicKey: k.publicKey, agree: (pk) => (bump('x25519 agree'), k.agree(pk)) };
  };
  cp.x25519Generate = () => (bump('x25519 keygen'), p.x25519Generate());
  cp.chacha20poly1305Seal = (...a) => (bump('hpke seal (aead)'), p.chacha20poly1305Seal(...a));
  cp.chacha20poly1305Open = (...a) => (bump('hpke open (aead)'), p.chacha20poly1305Open(...a));
  cp.xchacha20poly1305Seal = (...a) => (bump('xchacha seal'), p.xchacha20poly1305Seal(...a));
  cp.xchacha20poly1305Open = (...a) => (bump('xchacha open'), p.xchacha20poly1305Open(...a));
  cp.sha256 = (d) => (bump('sha256'), p.sha256(d));
  return cp;
}

/** Count FileHandle sync/datasync calls while `fn` runs. */
async function countingSyncs(tmp, fn) {
  const fh = await open(join(tmp, 'probe'), 'w');
  const proto = Object.getPrototypeOf(fh);
  await fh.close();
  const orig = { sync: proto.sync, datasync: proto.datasync };
  const c = { sync: 0, datasync: 0 };
  proto.sync = function () {
    c.sync++;
    return orig.sync.call(this);
  };
  proto.datasync = function () {
    c.datasync++;
    return orig.datasync.call(this);
  };
  try {
    await fn();
  } finally {
    proto.sync = orig.sync;
    proto.datasync = orig.datasync;
  }
  return c;
}

async function main() {
  const { core, testing, tza, cd, kc: K } = await loadPackages();
  const { getProvider, utf8, hpkeSeal, hpkeOpen, systemRandom, tokenSigningInput, wipe } = core;
  const { testIdentity } = testing;
  const { readTza, encodeCbor, SIGNATURE_AAD, TZA_FORMAT } = tza;
  const { AuditLog, EmbeddedClient } = cd;
  const { Keychain } = K;
  const p = getProvider();
  const root = mkdtempSync(join(os.tmpdir(), 'tibet-kc-bench-'));
  const started = Date.now();
  try {
    out(`keychain benchmark — ${new Date().toISOString()}`);
    const cpu = os.cpus();
    out(
      `${cpu[0]?.model ?? 'cpu'} ×${cpu.length}, Node ${process.version}, crypto backend ${p.name}, load avg ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    out(
      `store and log in ${root} (${os.platform()}), embedded audit log, every append fdatasync'd`,
    );
    out(
      `method: ${ROUNDS} interleaved rounds (operation batch ≥ ${OP_BATCH_NS / 1e6} ms, fsync batch ≥ ${FSYNC_BATCH_NS / 1e6} ms, each primitive ≥ ${PRIM_BATCH_NS / 1e6} ms), median per round; ±x% = half the min–max range`,
    );
    out();

    // ------------------------------------------------------------------- the set-up
    const cast = (provider) => {
      const o = provider ? { provider } : {};
      return {
        service: testIdentity('jis:bench:keychain', 'system', o),
        logKey: testIdentity('jis:bench:auditlog', 'system', o),
        alice: testIdentity('jis:bench:alice', 'human', o),
        bob: testIdentity('jis:bench:bob', 'human', o),
        bot: testIdentity('jis:bench:release-bot', 'mcp-server', o),
      };
    };
    async function world(dir, provider) {
      const c = cast(provider);
      const directory = new core.IdentityRegistry(provider ?? p);
      for (const who of Object.values(c)) directory.add(who);
      const log = await AuditLog.open({
        dir: join(dir, 'log'),
        signer: c.logKey,
        registry: directory,
        ...(provider ? { provider } : {}),
      });
      const kc = new Keychain({
        home: dir,
        audit: new EmbeddedClient(log),
        service: c.service,
        directory,
        ...(provider ? { provider } : {}),
      });
      return { ...c, log, kc };
    }
    const MATERIAL = utf8('pypi-AgEIcHlwaS5vcmcCJDQ1ZmM0-benchmark-token');
    const ops = (w, tag) => {
      let n = 0;
      let operator = w.bot.id;
      return {
        add: () =>
          w.kc.add({
            actor: w.alice,
            secretId: `sec_${tag}_add_${++n}`,
            type: 'pypi_token',
            issuer: 'pypi.org',
            scope: 'upload:acme-lib',
            material: MATERIAL,
            activeOperator: w.bot.id,
            reason: 'bench add',
          }),
        reveal: async () => {
          const r = await w.kc.reveal({
            actor: w.alice,
            secretId: `sec_${tag}_main`,
            reason: 'bench reveal',
          });
          wipe(r.material);
          return r;
        },
        rotate: () =>
          w.kc.rotate({
            actor: w.alice,
            secretId: `sec_${tag}_rot`,
            material: MATERIAL,
            reason: 'bench rotate',
          }),
        delegate: () => {
          operator = operator === w.bot.id ? w.bob.id : w.bot.id;
          return w.kc.delegate({
            actor: w.alice,
            secretId: `sec_${tag}_dlg`,
            role: 'active_operator',
            assignee: operator,
            reason: 'bench delegate',
          });
        },
      };
    };
    async function seed(w, tag) {
      for (const s of ['main', 'rot', 'dlg'])
        await w.kc.add({
          actor: w.alice,
          secretId: `sec_${tag}_${s}`,
          type: 'pypi_token',
          issuer: 'pypi.org',
          scope: 'upload:acme-lib',
          material: MATERIAL,
          activeOperator: w.bot.id,
          reason: 'bench seed',
        });
    }

    // ------------------------------------------------------------------- census
    // One pass with a counting provider and counted FileHandle syncs: what each operation
    // really calls (timed runs below use the plain provider).
    const censusDir = join(root, 'census');
    const counts = {};
    const cw = await world(censusDir, countingProvider(p, counts));
    await seed(cw, 'c');
    const cops = ops(cw, 'c');
    const census = {};
    const N = 5;
    for (const name of ['add', 'reveal', 'rotate', 'delegate']) {
      await cops[name]();
      for (const k of Object.keys(counts)) delete counts[k];
      const syncs = await countingSyncs(root, async () => {
        for (let i = 0; i < N; i++) await cops[name]();
      });
      census[name] = {
        ...Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / N])),
        'fsync (file/dir)': syncs.sync / N,
        'fdatasync (log)': syncs.datasync / N,
      };
    }
    await cw.log.close();

    // ------------------------------------------------------------------- real inputs
    const w = await world(join(root, 'timed'));
    await seed(w, 't');
    const tops = ops(w, 't');
    const matBytes = await w.kc.store.readMaterial('sec_t_main', 1);
    const revBytes = await w.kc.store.readRevision('sec_t_main', 1);
    const sigStructOf = (bytes) => {
      const parsed = readTza(bytes, { provider: p });
      const sig = parsed.signatures[0];
      const ss = encodeCbor([
        'Signature1',
        sig.protectedBytes,
        SIGNATURE_AAD,
        parsed.manifestBytes,
      ]);
      if (!p.ed25519Verify(sig.header.publicKey, ss, sig.signature))
        throw new Error('Sig_structure rebuilt wrongly');
      return { ss, sig: sig.signature, pub: sig.header.publicKey, manifest: parsed.manifest };
    };
    const matSig = sigStructOf(matBytes);
    const revSig = sigStructOf(revBytes);
    const bundleId = matSig.manifest.bundle_id;
    const info = encodeCbor(['tza/1 data key', bundleId]);
    const aad = encodeCbor([TZA_FORMAT, bundleId, 'material']);
    const dek = systemRandom(32);
    const nonce = systemRandom(24);
    const ct = p.xchacha20poly1305Seal(dek, nonce, MATERIAL, aad);
    const sealedKey = hpkeSeal(p, w.alice.encryptionPublicKey, dek, { info, random: systemRandom });
    const tokenInput = tokenSigningInput((await tops.delegate()).token);
    const tokenSig = w.alice.signer.sign(tokenInput);
    const ed = w.service.signer;

    const PRIM = {
      'Ed25519 sign, material bundle Sig_structure': () => ed.sign(matSig.ss),
      'Ed25519 sign, revision bundle Sig_structure': () => ed.sign(revSig.ss),
      'Ed25519 sign, token': () => w.alice.signer.sign(tokenInput),
      'Ed25519 verify, revision bundle': () => p.ed25519Verify(revSig.pub, revSig.ss, revSig.sig),
      'Ed25519 verify, material bundle': () => p.ed25519Verify(matSig.pub, matSig.ss, matSig.sig),
      'Ed25519 verify, token (by the log)': () =>
        p.ed25519Verify(w.alice.signingPublicKey, tokenInput, tokenSig),
      'HPKE seal, 32 B data key': () =>
        hpkeSeal(p, w.alice.encryptionPublicKey, dek, { info, random: systemRandom }),
      'HPKE open, 32 B data key': () =>
        hpkeOpen(p, w.alice.agreement, sealedKey.enc, sealedKey.ciphertext, { info }),
      'XChaCha20-Poly1305 seal, material': () => p.xchacha20poly1305Seal(dek, nonce, MATERIAL, aad),
      'XChaCha20-Poly1305 open, material': () => p.xchacha20poly1305Open(dek, nonce, ct, aad),
    };

    // the bare fsync: one small file, rewritten in place and fsync'd
    const fsyncFile = await open(
      join(root, 'fsync-probe'),
      constants.O_RDWR | constants.O_CREAT,
      0o600,
    );
    const small = new Uint8Array(256).fill(7);
    const bareFsync = async () => {
      await fsyncFile.write(small, 0, small.length, 0);
      await fsyncFile.sync();
    };
    const dirHandle = await open(root, constants.O_RDONLY);
    const dirFsync = () => dirHandle.sync();
    const appendFile = await open(
      join(root, 'append-probe'),
      constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
      0o600,
    );
    const line = new Uint8Array(2400).fill(0x61);
    line[line.length - 1] = 0x0a;
    const appendSync = async () => {
      await appendFile.write(line);
      await appendFile.datasync();
    };
    // what the store does per file: create (O_EXCL), write ~2 KB, fsync, close
    let fresh = 0;
    const newFileFsync = async () => {
      const fh = await open(
        join(root, `new-${++fresh}`),
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
        0o600,
      );
      try {
        await fh.writeFile(line);
        await fh.sync();
      } finally {
        await fh.close();
      }
    };

    // What each operation must do (keychain.ts, store.ts, log.ts). Fsyncs: new material file
    // + its folder, new revision file + its folder, the log append (fdatasync), HEAD temp file
    // + the folder after the rename. Not in the floor: the per-secret LOCK file's fsync
    // (a lock need not be durable), JSON/CBOR/tar work, SHA-256, file opens and renames —
    // they are what the keychain adds, so they show up as overhead above the floor.
    const FLOORS = {
      add: {
        what: 'import a 45 B pypi token: seal material (keychain + owner), revision, token, log',
        fsyncs: 7,
        prims: {
          'Ed25519 sign, material bundle Sig_structure': 1,
          'Ed25519 sign, revision bundle Sig_structure': 1,
          'Ed25519 sign, token': 1,
          'Ed25519 verify, token (by the log)': 1,
          'HPKE seal, 32 B data key': 2,
          'XChaCha20-Poly1305 seal, material': 1,
        },
      },
      reveal: {
        what: 'verify HEAD revision, new revision, token, log, then open the material as the owner',
        fsyncs: 5,
        prims: {
          'Ed25519 verify, revision bundle': 1,
          'Ed25519 sign, revision bundle Sig_structure': 1,
          'Ed25519 sign, token': 1,
          'Ed25519 verify, token (by the log)': 1,
          'Ed25519 verify, material bundle': 1,
          'HPKE open, 32 B data key': 1,
          'XChaCha20-Poly1305 open, material': 1,
        },
      },
      rotate: {
        what: 'verify HEAD revision, seal new material (keychain + owner), revision, token, log',
        fsyncs: 7,
        prims: {
          'Ed25519 verify, revision bundle': 1,
          'Ed25519 sign, material bundle Sig_structure': 1,
          'Ed25519 sign, revision bundle Sig_structure': 1,
          'Ed25519 sign, token': 1,
          'Ed25519 verify, token (by the log)': 1,
          'HPKE seal, 32 B data key': 2,
          'XChaCha20-Poly1305 seal, material': 1,
        },
      },
      delegate: {
        what: 'active operator (no reseal): verify HEAD revision, revision, token, log',
        fsyncs: 5,
        prims: {
          'Ed25519 verify, revision bundle': 1,
          'Ed25519 sign, revision bundle Sig_structure': 1,
          'Ed25519 sign, token': 1,
          'Ed25519 verify, token (by the log)': 1,
        },
      },
    };

    const summary = [];
    for (const [name, floor] of Object.entries(FLOORS)) {
      const fn = tops[name];
      // warm-up
      const w0 = now();
      while (Number(now() - w0) < WARMUP_NS) await fn();
      const prims = Object.keys(floor.prims);
      const rec = {
        op: [],
        cpu: [],
        fsync: [],
        dir: [],
        append: [],
        fresh: [],
        prim: Object.fromEntries(prims.map((k) => [k, []])),
        n: 0,
      };
      for (let r = 0; r < ROUNDS; r++) {
        const b = await batchAsync(fn, OP_BATCH_NS);
        rec.op.push(b.ns);
        rec.cpu.push(b.cpuNs);
        rec.n += b.n;
        rec.fsync.push((await batchAsync(bareFsync, FSYNC_BATCH_NS)).ns);
        for (const k of prims) rec.prim[k].push(batchSync(PRIM[k], PRIM_BATCH_NS).ns);
        if (r === 0 || r === ROUNDS - 1) {
          rec.dir.push((await batchAsync(dirFsync, FSYNC_BATCH_NS / 3)).ns);
          rec.append.push((await batchAsync(appendSync, FSYNC_BATCH_NS / 3)).ns);
          rec.fresh.push((await batchAsync(newFileFsync, FSYNC_BATCH_NS / 3)).ns);
        }
      }
      const opNs = median(rec.op);
      const spread = (Math.max(...rec.op) - Math.min(...rec.op)) / opNs;
      const fsyncNs = median(rec.fsync);
      const cryptoNs = prims.reduce((s, k) => s + floor.prims[k] * median(rec.prim[k]), 0);
      const floorNs = cryptoNs + floor.fsyncs * fsyncNs;
      const perRound = rec.op.map((o, r) => {
        const c = prims.reduce((s, k) => s + floor.prims[k] * rec.prim[k][r], 0);
        return o / (c + floor.fsyncs * rec.fsync[r]);
      });
      out(`${name}: ${floor.what}`);
      out(
        `  ${pad(`keychain.${name}`, 50)}${lpad(f0(1e9 / opNs), 8)} ops/s ${lpad(dur(opNs), 10)}/op  ±${lpad((spread * 50).toFixed(0), 2)}%   (${rec.n} ops timed; CPU ${dur(median(rec.cpu))}/op)`,
      );
      out('  floor (same run):');
      for (const k of prims) {
        const m = median(rec.prim[k]);
        out(
          `    ${pad(`${floor.prims[k]} × ${k}`, 52)}${lpad(dur(m), 10)}  = ${lpad(dur(floor.prims[k] * m), 10)}`,
        );
      }
      out(
        `    ${pad(`${floor.fsyncs} × bare fsync (256 B file, rewritten in place)`, 52)}${lpad(dur(fsyncNs), 10)}  = ${lpad(dur(floor.fsyncs * fsyncNs), 10)}`,
      );
      out(`  ${pad('crypto floor', 50)}${lpad('', 8)}       ${lpad(dur(cryptoNs), 10)}/op`);
      out(
        `  ${pad('floor (crypto + fsyncs)', 50)}${lpad(f0(1e9 / floorNs), 8)} ops/s ${lpad(dur(floorNs), 10)}/op`,
      );
      out(
        `  ${pad('overhead above the floor', 50)}${lpad('', 8)}       ${lpad(dur(opNs - floorNs), 10)}/op`,
      );
      const sorted = [...perRound].sort((a, b) => a - b);
      out(
        `  ${pad('ratio operation / floor', 50)}${lpad(`${(opNs / floorNs).toFixed(2)}×`, 8)}   (per round ${sorted[0].toFixed(2)}–${sorted.at(-1).toFixed(2)}×)`,
      );
      out(
        `  ${pad('ratio operation / crypto floor alone', 50)}${lpad(`${(opNs / cryptoNs).toFixed(1)}×`, 8)}`,
      );
      const c = census[name];
      const observedSyncs = c['fsync (file/dir)'] + c['fdatasync (log)'];
      out(
        `  observed per op (census): ${observedSyncs} fsyncs (${c['fsync (file/dir)']} sync + ${c['fdatasync (log)']} fdatasync; floor counts ${floor.fsyncs}), ` +
          `Ed25519 ${c['ed25519 sign'] ?? 0} sign / ${c['ed25519 verify'] ?? 0} verify, HPKE ${c['hpke seal (aead)'] ?? 0} seal / ${c['hpke open (aead)'] ?? 0} open, ` +
          `XChaCha ${c['xchacha seal'] ?? 0} seal / ${c['xchacha open'] ?? 0} open, X25519 ${c['x25519 keygen'] ?? 0} keygen / ${c['x25519 agree'] ?? 0} agree, SHA-256 ${c['sha256'] ?? 0}`,
      );
      const floorVerifies = prims
        .filter((k) => k.includes('verify'))
        .reduce((s, k) => s + floor.prims[k], 0);
      if ((c['ed25519 verify'] ?? 0) > floorVerifies)
        out(
          `  note: ${c['ed25519 verify']} Ed25519 verifies observed, ${floorVerifies} needed: openTza verifies each bundle signature twice (requireValid, then again for its report)`,
        );
      out(
        `  for scale (not in the floor): a directory fsync ${dur(median(rec.dir))}, a 2.4 KB append + fdatasync ${dur(median(rec.append))}, ` +
          `create + write 2.4 KB + fsync + close a new file ${dur(median(rec.fresh))}`,
      );
      out();
      summary.push({
        name,
        ops: 1e9 / opNs,
        floorOps: 1e9 / floorNs,
        ratio: opNs / floorNs,
        cryptoShare: cryptoNs / floorNs,
      });
    }

    out('summary (ops/s with durable audit; the floor is crypto + counted fsyncs, same run):');
    for (const s of summary)
      out(
        `  ${pad(s.name, 10)}${lpad(f0(s.ops), 6)} ops/s   floor ${lpad(f0(s.floorOps), 6)} ops/s   ratio ${s.ratio.toFixed(2)}×   (crypto is ${(s.cryptoShare * 100).toFixed(1)}% of the floor)`,
      );
    out(
      `done in ${((Date.now() - started) / 1000).toFixed(1)} s; load avg now ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    await fsyncFile.close();
    await dirHandle.close();
    await appendFile.close();
    await w.log.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// the parent: a watchdog (a timer inside a process hung in native code would never fire)
// ---------------------------------------------------------------------------------------

if (!process.env[CHILD_ENV]) {
  const child = spawn(process.execPath, ['--expose-gc', SELF, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  const dog = setTimeout(() => {
    process.stderr.write(`\nwatchdog: no result after ${WATCHDOG_MS / 1000} s, stopping\n`);
    child.kill('SIGKILL');
    process.exitCode = 124;
  }, WATCHDOG_MS);
  child.on('exit', (code, signal) => {
    clearTimeout(dog);
    process.exitCode ??= code ?? (signal ? 1 : 0);
  });
} else {
  await main();
}
