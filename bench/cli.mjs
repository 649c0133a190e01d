#!/usr/bin/env node
/**
 * Cold start of the `tibet` command beside `node -e 0` (the floor: starting Node itself),
 * measured in the same run, alternating so that machine noise hits both alike:
 *
 *   node bench/cli.mjs [--quick]
 *
 * `tibet --version` must stay close to the floor (it loads one module); `--help` and a
 * command's `--help` load commander and every command's registration (not its work).
 * Reports medians and p90 over N runs and each as a ratio of the floor's median. Needs the
 * CLI built. Benchmarks are not tests: nothing here asserts a timing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
if (!existsSync(join(root, 'packages', 'cli', 'dist', 'main.js'))) {
  process.stderr.write('bench/cli: build first (pnpm run build)\n');
  process.exit(66);
}
const N = process.argv.includes('--quick') ? 7 : 25;
const cases = [
  ['node -e 0 (floor)', ['-e', '0']],
  ['tibet --version', [bin, '--version']],
  ['tibet --help', [bin, '--help']],
  ['tibet keychain --help', [bin, 'keychain', '--help']],
  ['tibet cbom --help', [bin, 'cbom', '--help']],
];
const times = cases.map(() => []);
for (let i = 0; i < N + 2; i++) {
  cases.forEach(([, args], k) => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, {
      stdio: 'ignore',
      env: { ...process.env, NO_COLOR: '1' },
    });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0 && k !== 4) throw new Error(`${args.join(' ')} exited ${r.status}`);
    if (i >= 2) times[k].push(ms); // two warm-up rounds (page cache)
  });
}
const q = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p * a.length))];
const floor = q(times[0], 0.5);
process.stdout.write(`tibet cold start, ${N} runs each (ms)\n`);
process.stdout.write(
  `${'command'.padEnd(26)} ${'median'.padStart(8)} ${'p90'.padStart(8)}  × floor\n`,
);
cases.forEach(([name], k) => {
  const med = q(times[k], 0.5);
  process.stdout.write(
    `${name.padEnd(26)} ${med.toFixed(1).padStart(8)} ${q(times[k], 0.9).toFixed(1).padStart(8)}  ${(med / floor).toFixed(2)}×\n`,
  );
});
