// Consumer check: pack each publishable package with pnpm, install the tarballs into a
// scratch project with npm, and import every export with plain Node (no source
// conditions, no workspace), then run the packed `tibet` binary.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
// every publishable package (not private) under packages/
const packages = readdirSync(join(root, 'packages')).filter((p) => {
  try {
    return !(
      JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')) as {
        private?: boolean;
      }
    ).private;
  } catch {
    return false;
  }
});
let scratch: string;

function pnpm(args: string[], cwd: string): string {
  return execFileSync('npx', ['-y', 'pnpm@10.34.8', ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'tibet-consumer-'));
  const tarballs: string[] = [];
  for (const p of packages) {
    pnpm(['pack', '--pack-destination', scratch], join(root, 'packages', p));
  }
  for (const f of readdirSync(scratch)) if (f.endsWith('.tgz')) tarballs.push(join(scratch, f));
  writeFileSync(
    join(scratch, 'package.json'),
    JSON.stringify({ name: 'scratch', private: true, type: 'module' }),
  );
  execFileSync(
    'npm',
    ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', ...tarballs],
    { cwd: scratch, stdio: 'pipe' },
  );
}, 240_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('packed packages, as a consumer sees them', () => {
  for (const p of packages) {
    it(`@tibet/${p}: every export imports with plain Node`, () => {
      const pkg = JSON.parse(readFileSync(join(root, 'packages', p, 'package.json'), 'utf8')) as {
        exports: Record<string, unknown>;
      };
      const subpaths = Object.keys(pkg.exports).filter((s) => s !== './package.json');
      const script = subpaths
        .map(
          (s) =>
            `const m${subpaths.indexOf(s)} = await import('@tibet/${p}${s === '.' ? '' : s.slice(1)}'); if (Object.keys(m${subpaths.indexOf(s)}).length === 0) throw new Error('empty ${s}');`,
        )
        .join('\n');
      const outp = execFileSync(
        'node',
        ['--input-type=module', '-e', `${script}\nconsole.log('ok')`],
        { cwd: scratch, encoding: 'utf8' },
      );
      expect(outp.trim()).toBe('ok');
    });
  }

  it('the packed tibet binary runs', () => {
    const v = execFileSync(join(scratch, 'node_modules', '.bin', 'tibet'), ['--version'], {
      encoding: 'utf8',
    });
    expect(v.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('tarballs hold dist and README, not src or tests', () => {
    for (const p of packages) {
      const list = execFileSync(
        'tar',
        [
          '-tzf',
          readdirSync(scratch)
            .filter((f) => f.includes(`tibet-${p}-`))
            .map((f) => join(scratch, f))[0]!,
        ],
        { encoding: 'utf8' },
      );
      expect(list).toContain('package/dist/index.js');
      expect(list).toContain('package/README.md');
      expect(list).not.toContain('package/src/');
      expect(list).not.toContain('package/test/');
    }
  });
});
