// The README's main-job command runs scripts/demo.mjs: keep it working. Needs the packages
// built (test:all builds first). The demo checks on its own that no file it wrote holds a
// token in the clear and exits non-zero otherwise.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

describe('the main-job demo', () => {
  it('runs end to end and leaves its outputs in demo-out/', () => {
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'demo.mjs')], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 180_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('VALID record');
    expect(r.stdout).toMatch(/No file in demo-out\/ holds either token in the clear\.\n\s+none/);
    const out = join(root, 'demo-out');
    expect(existsSync(join(out, 'pypi-token.tza'))).toBe(true);
    expect(readdirSync(out)).toContain('exposure.tlog-proof');
  }, 200_000);
});
