// `tibet cbom` / `tcbom` end to end: the built CLI as real child processes over a real home
// built by the keychain (test fixtures of @tibet/cbom), with the cast's public identities
// in $TIBET_HOME/identities as `tibet id` keeps them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseActorId } from '@tibet/core';
import { ensureBuilt } from '../../../test/support/build-dist.js';
import {
  CAST,
  PYPI_TOKEN,
  PYPI_TOKEN_V2,
  buildHome,
  cleanup,
  leaks,
  tmp,
  type Home,
} from '../../cbom/test/fixtures/home.js';
import { validateCycloneDx } from '../../cbom/test/fixtures/validate.js';

const root = join(import.meta.dirname, '..', '..', '..');
const tibetBin = join(root, 'packages', 'cli', 'bin', 'tibet.js');
const tcbomBin = join(root, 'packages', 'cli', 'bin', 'tcbom.js');
const dirs: string[] = [];
let h: Home;

function run(bin: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, TIBET_HOME: h.home, NO_COLOR: '1', ...env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  ensureBuilt(['core', 'tza', 'continuityd', 'keychain', 'sam', 'gateway', 'vault', 'cbom', 'cli']);
  h = await buildHome(dirs);
  await h.close();
  for (const who of CAST) {
    const { org, name } = parseActorId(who.id);
    mkdirSync(join(h.home, 'identities', org), { recursive: true });
    writeFileSync(join(h.home, 'identities', org, `${name}.pub.json`), JSON.stringify(who.public));
  }
}, 180_000);
afterAll(() => cleanup(dirs));

describe('tibet cbom', () => {
  it('timeline as text, md, json and html; tcbom is the same command', () => {
    const t = run(tibetBin, [
      'cbom',
      'timeline',
      'sec_pypi_001',
      '--bundle',
      h.capsule1,
      '--bundle',
      h.receipt,
      '--bundle',
      h.capsule2,
    ]);
    expect(t.stderr).toBe('');
    expect(t.code).toBe(0);
    expect(t.stdout).toContain('Continuity BOM · secret sec_pypi_001');
    expect(t.stdout).toContain('!! EXPOSED');
    expect(t.stdout).toContain('no problems found');
    expect(t.stdout).not.toContain('\u001b[');
    const alias = run(tcbomBin, [
      'timeline',
      'sec_pypi_001',
      '--bundle',
      h.capsule1,
      '--bundle',
      h.receipt,
      '--bundle',
      h.capsule2,
    ]);
    expect(alias.stdout).toBe(
      t.stdout.replace(/generated \S+/, alias.stdout.match(/generated \S+/)![0]),
    );
    const md = run(tibetBin, ['cbom', 'timeline', 'sec_pypi_001', '--format', 'md']);
    expect(md.stdout).toContain('| gen | time | actor | event | what | links | checks |');
    expect(md.stdout).toContain('parent **MISSING**'); // capsule 2 not given
    const json = JSON.parse(
      run(tibetBin, ['cbom', 'inspect', 'sec_pypi_001', '--json']).stdout,
    ) as unknown;
    expect(json).toMatchObject({
      format: 'tibet-continuity-bom/1',
      version: 1,
      subject: { kind: 'secret' },
    });
    const html = run(tibetBin, ['cbom', 'timeline', 'sec_pypi_001', '--format', 'html']);
    expect(html.code).toBe(0);
    expect(html.stdout).toMatch(/^<!doctype html>/i);
    for (const out of [t.stdout, md.stdout, html.stdout, JSON.stringify(json)]) {
      expect(leaks(out, PYPI_TOKEN)).toEqual([]);
      expect(leaks(out, PYPI_TOKEN_V2)).toEqual([]);
    }
  });

  it('verify exits 1 on a failing check; export writes valid CycloneDX 1.6 and 1.7', async () => {
    const bad = run(tibetBin, ['cbom', 'verify', 'sec_pypi_001']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/FAIL {2}transition-parent-link/);
    const good = run(tibetBin, ['cbom', 'verify', 'sec_pypi_001', '--bundle', h.capsule2]);
    expect(good.code).toBe(0);
    for (const spec of ['1.6', '1.7'] as const) {
      const out = join(tmp(dirs), `cbom-${spec}.json`);
      const r = run(tibetBin, ['cbom', 'export', 'home', '--spec', spec, '--out', out]);
      expect(r.code).toBe(0);
      const text = readFileSync(out, 'utf8');
      expect(await validateCycloneDx(text, spec)).toBeNull();
      expect(leaks(text, PYPI_TOKEN)).toEqual([]);
      // never over an existing file
      expect(run(tibetBin, ['cbom', 'export', 'home', '--out', out]).code).toBe(2);
    }
    expect(run(tibetBin, ['cbom', 'timeline', '--format', 'pdf']).code).toBe(2);
    const none = run(tibetBin, ['cbom', 'timeline', 'act_0000000000000000', '--json']);
    expect(none.code).toBe(1);
    expect((JSON.parse(none.stdout) as { error: { code: string } }).error.code).toBe(
      'SUBJECT_NOT_FOUND',
    );
  });

  it('report writes a folder that --verify checks offline with the pinned log key', () => {
    const out = join(tmp(dirs), 'q');
    const w = run(tibetBin, [
      'cbom',
      'report',
      'sec_sign_1',
      '--from',
      '2026-11-28T14:00:00Z',
      '--to',
      '2026-11-28T19:00:00Z',
      '--out',
      out,
      '--json',
    ]);
    expect(w.code).toBe(0);
    const res = JSON.parse(w.stdout) as { signed: number; log_key: string };
    expect(res.signed).toBe(2);
    const v = run(tcbomBin, ['report', '--verify', out, '--log-key', res.log_key]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('verified');
    expect(run(tibetBin, ['cbom', 'report', '--verify', out]).code).toBe(1); // not pinned
    const ev = join(out, 'report.json');
    const d = JSON.parse(readFileSync(ev, 'utf8')) as { who_did_sign: { signed: unknown[] } };
    d.who_did_sign.signed = [];
    writeFileSync(ev, JSON.stringify(d));
    const t = run(tibetBin, [
      'cbom',
      'report',
      '--verify',
      out,
      '--log-key',
      res.log_key,
      '--json',
    ]);
    expect(t.code).toBe(1);
    expect((JSON.parse(t.stdout) as { checks: unknown[] }).checks).toContainEqual(
      expect.objectContaining({ name: 'who-did-sign', status: 'fail' }),
    );
    // any credential: "who could have used it, who did" (a publish token here)
    const other = join(tmp(dirs), 'x');
    const pypi = run(tibetBin, [
      'cbom',
      'report',
      'sec_pypi_001',
      '--from',
      '2026-11-28T12:00:00Z',
      '--to',
      '2026-11-29T00:00:00Z',
      '--out',
      other,
    ]);
    expect(pypi.code, pypi.stderr).toBe(0);
    expect(pypi.stderr).toMatch(/could have used it/);
    expect(readFileSync(join(other, 'report.md'), 'utf8')).toMatch(/^# Who could have used it/);
    expect(run(tibetBin, ['cbom', 'report', '--help']).stdout).toContain('--log-key');
  });
});
