#!/usr/bin/env node
/**
 * Where does the time go in one tza/1 operation? Runs it in a loop under `node --cpu-prof`
 * and summarises the profile: self time (the hottest functions) and inclusive time (which
 * calls cost what, as a share of the operation).
 *
 *   node bench/profile.mjs <pack|open|pack1m|open1m> [--backend node|noble] [--seconds 6] [--top 25]
 *   node bench/profile.mjs --summarize <file.cpuprofile> [--top 25]
 *
 * The raw profile is kept in bench/out/ (git-ignored); open it in Chrome DevTools or
 * speedscope for a flame graph. A watchdog kills the profiled process after 2 minutes.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const OUT = join(dirname(SELF), 'out', 'prof');
const CHILD_ENV = 'TIBET_PROFILE_CHILD';
const OPS = ['pack', 'open', 'pack1m', 'open1m'];

function parseArgs(argv) {
  const o = { op: undefined, backend: 'node', seconds: 6, top: 25, summarize: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--backend') o.backend = argv[++i];
    else if (a === '--seconds') o.seconds = Number(argv[++i]);
    else if (a === '--top') o.top = Number(argv[++i]);
    else if (a === '--summarize') o.summarize = argv[++i];
    else if (OPS.includes(a)) o.op = a;
    else {
      process.stderr.write(
        `unknown argument ${a}\nusage: node bench/profile.mjs <${OPS.join('|')}> [--backend node|noble] [--seconds 6] [--top 25]\n`,
      );
      process.exit(64);
    }
  }
  if (!o.summarize && !o.op) {
    process.stderr.write(
      `usage: node bench/profile.mjs <${OPS.join('|')}> [--backend node|noble] [--seconds 6] [--top 25]\n`,
    );
    process.exit(64);
  }
  if (!['node', 'noble'].includes(o.backend)) {
    process.stderr.write('--backend must be node or noble\n');
    process.exit(64);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));

if (opts.summarize) {
  summarize(opts.summarize, opts.top);
} else if (process.env[CHILD_ENV] === '1') {
  await child();
} else {
  mkdirSync(OUT, { recursive: true });
  const started = Date.now();
  const name = `${opts.op}-${opts.backend}-${started}.cpuprofile`;
  const cp = spawn(
    process.execPath,
    [
      '--cpu-prof',
      `--cpu-prof-dir=${OUT}`,
      `--cpu-prof-name=${name}`,
      '--cpu-prof-interval=100',
      SELF,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, [CHILD_ENV]: '1' } },
  );
  const timer = setTimeout(() => {
    process.stderr.write('profile watchdog: killing the profiled process after 120 s\n');
    cp.kill('SIGKILL');
  }, 120_000);
  cp.on('exit', (code) => {
    clearTimeout(timer);
    if (code !== 0) process.exit(code ?? 1);
    const file = join(OUT, name);
    try {
      statSync(file);
    } catch {
      const latest = readdirSync(OUT)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort()
        .pop();
      if (!latest) process.exit(1);
      return summarize(join(OUT, latest), opts.top);
    }
    summarize(file, opts.top);
  });
}

async function child() {
  const core = await import('../packages/core/dist/index.js');
  const tza = await import('../packages/tza/dist/index.js');
  const p = core.getProvider(opts.backend);
  const id = (n, c) => core.createIdentity({ id: `jis:bench:${n}`, actorClass: c, provider: p });
  const alice = id('alice', 'human');
  const bob = id('bob', 'machine');
  const signer = id('signer', 'system');
  const big = opts.op.endsWith('1m');
  const secret = core.systemRandom(big ? 1 << 20 : 256);
  const input = {
    kind: 'secret',
    entries: [
      { name: 'secret.bin', data: secret, sealed: true },
      {
        name: 'meta.json',
        data: core.utf8('{"service":"payments-db","note":"benchmark"}'),
        mediaType: 'application/json',
      },
    ],
    recipients: [alice, bob],
    signers: [signer],
  };
  const bundle = tza.packTza(input, { provider: p });
  const op = opts.op.startsWith('pack')
    ? () => tza.packTza(input, { provider: p })
    : () => {
        const o = tza.openTza(bundle, alice, { provider: p });
        o.destroy();
        return o;
      };
  // warm up so the profile shows optimised code, then the marked loop
  const w = process.hrtime.bigint();
  while (process.hrtime.bigint() - w < 500_000_000n) op();
  const n = profiledLoop(op, opts.seconds * 1e9);
  process.stderr.write(
    `${opts.op} (${opts.backend}): ${n} ops in ${opts.seconds} s under the profiler = ${(n / opts.seconds).toFixed(0)} ops/s (profiler overhead included)\n`,
  );
}

/** The loop whose subtree the summary reports on (found by name). */
function profiledLoop(op, ns) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  let sink;
  while (Number(process.hrtime.bigint() - t0) < ns) {
    sink = op();
    n++;
  }
  return sink ? n : n;
}

function summarize(file, top) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // sample weights from timeDeltas (µs): delta i+1 is the time spent in sample i
  const self = new Map();
  const deltas = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = i + 1 < deltas.length ? deltas[i + 1] : 0;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + Math.max(0, dt));
  }
  const key = (n) => {
    const cf = n.callFrame;
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    return `${cf.functionName || '(anonymous)'}${where ? ' ' + where : ''}`;
  };
  const loopIds = new Set(
    prof.nodes.filter((n) => n.callFrame.functionName === 'profiledLoop').map((n) => n.id),
  );
  const underLoop = (id) => {
    for (let x = id; x !== undefined; x = parent.get(x)) if (loopIds.has(x)) return true;
    return false;
  };
  let total = 0;
  let loop = 0;
  let gc = 0;
  const selfByFn = new Map();
  const inclByFn = new Map();
  for (const [id, t] of self) {
    total += t;
    const n = byId.get(id);
    if (n.callFrame.functionName === '(garbage collector)') gc += t;
    if (!underLoop(id)) continue;
    loop += t;
    const k = key(n);
    selfByFn.set(k, (selfByFn.get(k) ?? 0) + t);
    const seen = new Set();
    for (let x = id; x !== undefined && !loopIds.has(x); x = parent.get(x)) {
      const kk = key(byId.get(x));
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclByFn.set(kk, (inclByFn.get(kk) ?? 0) + t);
    }
  }
  const pct = (t, of) => `${((100 * t) / of).toFixed(1).padStart(5)}%`;
  const ms = (t) => `${(t / 1000).toFixed(0).padStart(6)} ms`;
  console.log(`profile ${file}`);
  console.log(
    `sampled ${ms(total)}; inside profiledLoop ${ms(loop)} (${pct(loop, total).trim()}); garbage collector ${ms(gc)} (${pct(gc, total).trim()} of all, not attributed to callers)`,
  );
  console.log(`\nself time, top ${top} (share of the loop):`);
  for (const [k, t] of [...selfByFn].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`  ${pct(t, loop)} ${ms(t)}  ${k}`);
  console.log(`\ninclusive time, top ${top} (share of the loop; a call counts once per stack):`);
  for (const [k, t] of [...inclByFn].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`  ${pct(t, loop)} ${ms(t)}  ${k}`);
}

function shortUrl(u) {
  const s = u.replace(/^file:\/\//, '');
  const m = /packages\/([^/]+)\/dist\/(.*)$/.exec(s);
  if (m) return `${m[1]}/${m[2]}`;
  const nm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(s);
  if (nm) return `${nm[1]}/${nm[2]}`;
  return s.startsWith('node:') ? s : basename(s);
}
