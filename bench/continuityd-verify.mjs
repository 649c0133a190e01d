#!/usr/bin/env node
/**
 * Whole-log verification at the issue's size: `verifyLog` over the 1,000,000-event log that
 * bench/keychain-scale.mjs builds (10,000 secrets × 100 events, real keychain events, 1.7 GiB
 * of segments, 1,000 signed checkpoints), beside the floor: bare Ed25519 verifications of the
 * same count, of the log's own signatures (same keys, same signing inputs), split over both
 * cores, keys imported before the clock starts.
 *
 *   node bench/keychain-scale.mjs            # once: builds the home (~6 min), then measures it
 *   node bench/continuityd-verify.mjs        # ~2.5 min: the floor, then verifyLog
 *   node bench/continuityd-verify.mjs --home DIR --sample N   (default sample 100,000)
 *
 * The floor cannot hold a million signing inputs in memory cheaply, so it verifies a sample
 * of the log's first N lines (their real keys, messages and signatures) round-robin until it
 * has done as many verifications as the log has lines. Imports the BUILT packages. Benchmarks
 * are not tests: nothing is asserted; exit 0 on a completed run, 66 when dist or the home is
 * missing, 64 for a bad option.
 */
import { existsSync, openSync, readSync, closeSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { bareVerifiesAllCores } from './lib.mjs';

const ROOT = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
for (let i = 0; i < args.length; i += 2)
  if (!['--home', '--sample'].includes(args[i]) || args[i + 1] === undefined) {
    process.stderr.write(`usage: node bench/continuityd-verify.mjs [--home DIR] [--sample N]\n`);
    process.exit(64);
  }
const home = opt('--home', join(os.tmpdir(), 'tibet-bench-keychain-scale', '10000x100', 'home'));
const SAMPLE = Number(opt('--sample', '100000'));
const logDir = join(home, 'log');
if (!existsSync(join(logDir, 'segments'))) {
  process.stderr.write(
    `no log at ${logDir}: build it first with \`node bench/keychain-scale.mjs\` (10,000 × 100 events)\n`,
  );
  process.exit(66);
}
let core, testing, cd;
try {
  core = await import(join(ROOT, 'packages/core/dist/index.js'));
  testing = await import(join(ROOT, 'packages/core/dist/testing.js'));
  cd = await import(join(ROOT, 'packages/continuityd/dist/index.js'));
} catch {
  process.stderr.write('build first: TURBO_TELEMETRY_DISABLED=1 npx -y pnpm@10.34.8 run build\n');
  process.exit(66);
}

// the cast of bench/keychain-scale.mjs (deterministic test identities)
const p = core.getProvider('node');
const id = (name, cls) => testing.testIdentity(`jis:bench:${name}`, cls, { provider: p });
const actors = [
  id('keychain', 'system'),
  id('security', 'human'),
  ...Array.from({ length: 40 }, (_, i) => id(`owner-${i}`, 'human')),
  ...Array.from({ length: 24 }, (_, i) => id(`release-bot-${i}`, 'mcp-server')),
  ...Array.from({ length: 4 }, (_, i) => id(`gateway-${i}`, 'gateway')),
];
const logKey = id('auditlog', 'system');
const registry = new core.IdentityRegistry(p);
for (const a of actors) registry.add(a);
const cores = os.availableParallelism();
const now = () => performance.now();
const fmt = (n) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------- the sample
const segDir = join(logDir, 'segments');
const segs = readdirSync(segDir)
  .filter((f) => f.endsWith('.jsonl'))
  .sort();
const sample = [];
{
  const fd = openSync(join(segDir, segs[0]), 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  let carry = '';
  while (sample.length < SAMPLE) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    pos += n;
    const parts = (carry + buf.toString('utf8', 0, n)).split('\n');
    carry = parts.pop();
    for (const line of parts) {
      if (sample.length >= SAMPLE) break;
      const t = JSON.parse(line).token;
      sample.push([t.actor, core.tokenSigningInput(t), core.fromBase64Url(t.signature)]);
    }
  }
  closeSync(fd);
}
const keys = actors.map((a) => [a.id, Buffer.from(a.signingPublicKey).toString('base64url')]);
process.stdout.write(
  `continuityd whole-log verify — ${segs.length} segments in ${logDir}\n` +
    `node ${process.version}, ${cores} cores, ${os.cpus()[0]?.model ?? ''}; sample of ${fmt(sample.length)} signatures\n`,
);

// ---------------------------------------------------------------- verifyLog
const c0 = process.cpuUsage();
const t0 = now();
const report = await cd.verifyLog(logDir, { registry, logPublicKey: logKey.signingPublicKey });
const vMs = now() - t0;
const cpu = process.cpuUsage(c0);
const N = report.stats.lines;
const vRate = (N / vMs) * 1000;

// ---------------------------------------------------------------- floor
// the sample, cycled to the log's line count, on all cores (bench/lib.mjs)
const fRate = await bareVerifiesAllCores(keys, sample, N, cores);
const fMs = (N / fRate) * 1000; // the timed part: after the workers are ready

const pct = (vRate / fRate) * 100;
process.stdout.write(
  `\nverifyLog of ${fmt(N)} lines: ${report.ok ? 'ok' : `PROBLEMS ${JSON.stringify(report.problemCounts)}`}, ` +
    `${fmt(report.stats.signaturesVerified)} signatures, ${fmt(report.stats.checkpoints)} checkpoints, ${report.stats.workers} workers\n` +
    `  verifyLog                        ${(vMs / 1000).toFixed(1)} s   ${fmt(vRate)} lines/s   (CPU ${((cpu.user + cpu.system) / N).toFixed(1)} µs/line, all threads)\n` +
    `  bare Ed25519 verifies, ${cores} cores   ${(fMs / 1000).toFixed(1)} s   ${fmt(fRate)} /s\n` +
    `  verifyLog / floor                ${pct.toFixed(0)} %   goal ≥ 80 %: ${pct >= 80 ? 'MET' : 'NOT MET'}\n` +
    `  load average now                 ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
);
process.exit(0);
