/**
 * Tests whose child processes or worker threads load a package's BUILT dist call
 * `ensureBuilt([...])` first: each listed package (in dependency order) is built with its
 * own `tsc -p tsconfig.build.json` when its dist is missing or older than its src, and a
 * package after a rebuilt one is rebuilt too. A lock folder keeps two test files from
 * building at once. tsc emits even when a file being edited elsewhere has a type error:
 * that is reported on stderr, and is fatal only when no dist comes out.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** `core` is packages/core; a name with a slash (`apps/demo`) is a folder of the root. */
function dirOf(pkg: string): string {
  return pkg.includes('/') ? join(ROOT, pkg) : join(ROOT, 'packages', pkg);
}

function entryOf(pkg: string): string {
  return join(dirOf(pkg), 'dist', pkg.includes('/') ? 'main.js' : 'index.js');
}

function stale(pkg: string): boolean {
  const src = join(dirOf(pkg), 'src');
  const dist = join(dirOf(pkg), 'dist');
  if (!existsSync(entryOf(pkg))) return true;
  for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) {
    if (!e.isFile() || !e.name.endsWith('.ts')) continue;
    const rel = relative(src, join(e.parentPath, e.name)).replace(/\.ts$/, '.js');
    const out = join(dist, rel);
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(join(e.parentPath, e.name)).mtimeMs)
      return true;
  }
  return false;
}

export function ensureBuilt(packages: readonly string[]): void {
  const lock = join(ROOT, 'node_modules', '.tibet-test-build.lock');
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() - started > 120_000) rmSync(lock, { recursive: true, force: true });
      execFileSync(process.execPath, ['-e', 'setTimeout(() => {}, 200)']);
    }
  }
  try {
    let rebuilt = false;
    for (const pkg of packages) {
      if (!rebuilt && !stale(pkg)) continue;
      rebuilt = true; // a dependent of a rebuilt package is rebuilt too
      try {
        execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], {
          cwd: dirOf(pkg),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (e) {
        const out = (e as { stdout?: Buffer }).stdout?.toString() ?? '';
        process.stderr.write(
          `[ensureBuilt] tsc reported errors in ${pkg} (output kept):\n${out}\n`,
        );
        if (!existsSync(entryOf(pkg))) throw e;
      }
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
