#!/usr/bin/env node
// One command for every benchmark: `pnpm bench` (builds first). Each bench runs in its own
// process, in turn; pass `--quick` for a short indicative run. Benchmarks are not tests.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const quick = process.argv.includes('--quick');
const benches = [
  ['tza/1 sealed bundles', 'run.mjs', quick ? ['--quick'] : ['--backend', 'both']],
  ['continuityd audit log', 'continuityd.mjs', quick ? ['--quick'] : []],
  ['keychain', 'keychain.mjs', quick ? ['--quick'] : []],
  ['gateway: capsule verify + execute + receipt', 'gateway.mjs', quick ? ['--quick'] : []],
  ['cbom: walk, render, CycloneDX export', 'cbom.mjs', quick ? ['--quick'] : []],
  ['tibet cold start', 'cli.mjs', quick ? ['--quick'] : []],
];
let failed = 0;
for (const [title, file, args] of benches) {
  const path = join(import.meta.dirname, file);
  if (!existsSync(path)) continue;
  process.stdout.write(`\n######## ${title} (bench/${file})\n`);
  const r = spawnSync(process.execPath, [path, ...args], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
