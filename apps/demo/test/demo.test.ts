// The README's main job: the whole scenario with real daemons, a stand-in registry and agent
// processes (`--fast`), its outputs, and that the token's bytes appear nowhere on the agent's
// side; then `--serve`: the live page in headless Chromium, growing as the scenario runs.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../../test/support/build-dist.js';
import { browserAvailable, launchBrowser } from '../../../test/support/browser.js';
import { filesUnder } from '../../../test/support/files.js';

const MAIN = join(import.meta.dirname, '..', 'dist', 'main.js');
const PACKAGES = [
  'core',
  'tza',
  'continuityd',
  'keychain',
  'sam',
  'gateway',
  'vault',
  'cbom',
  'cli',
];
const dirs: string[] = [];
const tok = () => `npm_${randomBytes(27).toString('base64url')}`;

/** Every way the token could show: raw, hex, base64, base64url. */
function containsSecret(b: Buffer, secrets: string[]): boolean {
  return secrets.some((s) => {
    const raw = Buffer.from(s);
    return [raw, raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')].some((f) =>
      b.includes(f),
    );
  });
}

beforeAll(() => {
  ensureBuilt([...PACKAGES, 'apps/demo']);
}, 300_000);

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the demo (--fast)', () => {
  const tokens = [tok(), tok()];
  let out: string;
  let stdout = '';
  let stderr = '';
  let status: number | null = null;

  beforeAll(() => {
    out = join(mkdtempSync(join(tmpdir(), 'tibet-demo-')), 'demo-out');
    dirs.push(join(out, '..'));
    const r = spawnSync(process.execPath, [MAIN, '--fast', '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', TIBET_DEMO_TOKENS: tokens.join(',') },
      timeout: 170_000,
    });
    stdout = r.stdout;
    stderr = r.stderr;
    status = r.status;
  }, 180_000);

  it('runs every act to the end and says so', () => {
    expect(status, stdout + stderr).toBe(0);
    for (let n = 1; n <= 8; n++) expect(stdout).toMatch(new RegExp(`^Act ${n}\\. `, 'm'));
    expect(stdout).toMatch(/agent side: \d+ files and \d+ outputs — neither token/);
    expect(stdout).toMatch(/Done in [\d.]+ s/);
  });

  it('the registry got the injected token — v1, then after the rotation only v2 — from the gateway', () => {
    const reqs = readFileSync(join(out, 'registry', 'requests.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { status: number; version: string; token_sha256_prefix: string },
      );
    const prefix = (t: string) => createHash('sha256').update(t).digest('hex').slice(0, 12);
    expect(
      reqs.filter((r) => r.status === 201).map((r) => [r.version, r.token_sha256_prefix]),
    ).toEqual([
      ['1.4.0', prefix(tokens[0]!)],
      ['1.4.1', prefix(tokens[1]!)],
    ]);
  });

  it('the denials of the script: another package, the replay, exposed, the old version', () => {
    expect(stdout).toMatch(/target \/upload\/npm\/acme-other not allowed/);
    expect(stdout).toMatch(/denied sam_\w+\s+sam-replayed/);
    expect(stdout).toMatch(/log-leaked and must be rotated first/);
    expect(stdout).toMatch(/VERSION_MISMATCH: issued for v1, the secret is at v2/);
    expect(stdout).toMatch(/is sealed until .*\[NOT_RELEASED\]/);
    expect(stdout).toMatch(/released: dead-man: no heartbeat since/);
    expect(stdout).toMatch(/Bob opened the vault: \d+ characters/);
    // the vault's whole story in `tibet cbom timeline` of the secret
    const story = stdout.slice(stdout.indexOf('$ tibet cbom timeline sec_root_001'));
    for (const e of [
      'secret-created',
      'vault-created',
      'vault-heartbeat',
      'vault-open-denied',
      'vault-released',
      'secret-delegated',
      'vault-opened',
      'secret-unsealed',
    ])
      expect(story.slice(0, story.indexOf('Act 8')), e).toContain(e);
  });

  it('leaves the outputs: HTML timeline, Continuity BOM, CycloneDX 1.6/1.7, report with tlog-proofs, receipts', () => {
    const html = readFileSync(join(out, 'timeline.html'), 'utf8');
    expect(html).toMatch(/^<!doctype html>/i);
    expect(html).not.toMatch(/(src|href)=["']?https?:/i);
    const bom = JSON.parse(readFileSync(join(out, 'continuity-bom.json'), 'utf8')) as object;
    expect(JSON.stringify(bom)).toContain('sec_npm_001');
    for (const v of ['1.6', '1.7']) {
      const cdx = JSON.parse(readFileSync(join(out, `cbom-${v}.cdx.json`), 'utf8')) as {
        bomFormat: string;
        specVersion: string;
      };
      expect(cdx).toMatchObject({ bomFormat: 'CycloneDX', specVersion: v });
    }
    expect(existsSync(join(out, 'report', 'report.json'))).toBe(true);
    const proofs = readdirSync(join(out, 'report', 'proofs'));
    expect(proofs.length).toBeGreaterThan(3);
    expect(readFileSync(join(out, 'report', 'proofs', proofs[0]!), 'utf8')).toMatch(
      /^c2sp\.org\/tlog-proof@v1\n/,
    );
    expect(readdirSync(join(out, 'receipts')).sort()).toEqual([
      'old-version-denied.tza',
      'publish-1.4.0.tza',
      'publish-1.4.1.tza',
      'replay-denied.tza',
    ]);
    expect(stdout).toMatch(/verified: every event proven under the pinned log key/);
  });

  it("the token's bytes appear nowhere on the agent's side, nor in any output file or the narration", () => {
    const agentFiles = filesUnder(join(out, 'agent'));
    expect(agentFiles.length).toBeGreaterThan(5);
    const leaks = filesUnder(out).filter((f) => containsSecret(readFileSync(f), tokens));
    expect(leaks).toEqual([]);
    expect(containsSecret(Buffer.from(stdout + stderr), tokens)).toBe(false);
    // the agent's commands are in the transcript too: none printed a token
    const agentLines = readFileSync(join(out, 'transcript.txt'), 'utf8');
    expect(agentLines).toMatch(/\[agent\] \$ tibet gateway exec/);
    expect(containsSecret(Buffer.from(agentLines), tokens)).toBe(false);
  });
});

describe('the demo --serve: the live view in Chromium', () => {
  it('the page loads, the timeline renders and grows as the scenario runs', async () => {
    if (!browserAvailable()) return;
    const out = join(mkdtempSync(join(tmpdir(), 'tibet-demo-live-')), 'demo-out');
    dirs.push(join(out, '..'));
    const child = spawn(process.execPath, [MAIN, '--fast', '--serve', '--out', out], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    const waitFor = async (re: RegExp, ms: number): Promise<RegExpMatchArray> => {
      const end = Date.now() + ms;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`the demo exited:\n${text}`);
        if (Date.now() > end) throw new Error(`timed out waiting for ${String(re)}:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const browser = await launchBrowser();
    try {
      const url = (await waitFor(/live view: (http:\/\/127\.0\.0\.1:\d+\/)/, 60_000))[1]!;
      const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(url)) external.push(r.url());
      });
      await page.goto(url);
      type Api = {
        results(): { action_id: string; event: string; status: string; checks: unknown }[];
        idle(): Promise<void>;
      };
      const count = () =>
        page.evaluate(
          () => (globalThis as unknown as { tibetTimeline: Api }).tibetTimeline.results().length,
        );
      // the acts start once the page is connected: it starts (almost) empty and grows
      const first = await count();
      await waitFor(/Done in [\d.]+ s/, 150_000);
      await page.waitForFunction(
        (n) => (globalThis as unknown as { tibetTimeline: Api }).tibetTimeline.results().length > n,
        first + 20,
        { timeout: 30_000 },
      );
      const results = await page.evaluate(async () => {
        const t = (globalThis as unknown as { tibetTimeline: Api }).tibetTimeline;
        await t.idle();
        return t.results();
      });
      expect(results.length).toBeGreaterThan(first + 20);
      expect(results.map((r) => r.event)).toContain('secret-rotated');
      // every event pushed live was verified in the page itself
      expect(JSON.stringify(results.filter((r) => r.status !== 'pass').slice(0, 2), null, 1)).toBe(
        '[]',
      );
      const shot = join(import.meta.dirname, 'out', 'live.png');
      await page.screenshot({ path: shot, fullPage: false });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
      expect(external).toEqual([]);
    } finally {
      await browser.close();
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }, 240_000);
});
