#!/usr/bin/env node
// The whole test suite, as CI runs it: build, type-check, lint (ESLint + Prettier), then
// every vitest test (including the consumer check that packs each package and imports it
// from a scratch project), ending with one line `N passed, N failed, N skipped` computed
// from vitest's own JSON report.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = {
  ...process.env,
  TURBO_TELEMETRY_DISABLED: '1',
  FORCE_COLOR: process.env.CI ? '0' : (process.env.FORCE_COLOR ?? ''),
};
const bin = (name) => join(import.meta.dirname, '..', 'node_modules', '.bin', name);

function step(title, cmd, args) {
  process.stderr.write(`\n== ${title}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

let failedSteps = 0;
for (const [title, cmd, args] of [
  [
    'build, type-check, lint',
    bin('turbo'),
    ['run', 'build', 'typecheck', 'lint', '--continue', '--output-logs=errors-only'],
  ],
  ['type-check of the root tests', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']],
  [
    'lint of the benchmarks and scripts',
    bin('eslint'),
    ['--max-warnings', '0', 'bench', 'scripts', 'eslint.config.js'],
  ],
  ['format (prettier --check)', bin('prettier'), ['--check', '.', '--log-level', 'warn']],
]) {
  if (step(title, cmd, args) !== 0) {
    failedSteps++;
    process.stderr.write(`!! ${title} failed\n`);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tibet-vitest-'));
const report = join(dir, 'report.json');
step('tests (vitest)', bin('vitest'), [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
]);
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  if (r.numFailedTestSuites > 0 && failed === 0) failed = r.numFailedTestSuites;
} catch (e) {
  process.stderr.write(`!! no vitest report: ${e.message}\n`);
  failed = Math.max(failed, 1);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (failedSteps) process.stderr.write(`!! ${failedSteps} non-test step(s) failed (see above)\n`);
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 || failedSteps > 0 || passed === 0 ? 1 : 0);
