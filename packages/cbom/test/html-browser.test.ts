/**
 * The HTML timeline in a real browser (Debian's chromium through playwright-core): a real
 * home's graph (cbom's walk() over a keychain and an AuditLog) rendered to a file, loaded
 * with every network request refused, and checked on the page: lanes, events, verification
 * marks, the side panel, tampered evidence shown as failed, a browser without Ed25519, the
 * live mode over server-sent events from a loopback server, and 10,000 events. Screenshots
 * go to packages/cbom/test/out/ (git-ignored).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { toBase64 } from '@tibet/core';
import { testIdentity } from '@tibet/core/testing';
import { liveEvent, renderHtml, type RenderHtmlOptions } from '../src/html.js';
import type { CausalGraph, GraphNode } from '../src/model.js';
import { browserAvailable, launchBrowser } from '../../../test/support/browser.js';
import { INJECTION, cleanup, clone, realHome, type RealHome } from './support/html-home.js';

const OUT = join(import.meta.dirname, 'out');
const available = browserAvailable();

interface Opened {
  page: Page;
  context: BrowserContext;
  /** every request the page made (file:// or http://) */
  requests: string[];
  /** requests refused because they left the page's own origin */
  refused: string[];
  errors: string[];
  dialogs: string[];
}

/** The little of a DOM element these tests read (the test tsconfig has no DOM lib). */
interface El {
  getAttribute(name: string): string | null;
  textContent: string | null;
}

interface PageResult {
  action_id: string;
  event: string;
  status: string;
  checks: Record<string, { status: string; reason: string }> | null;
}

declare const window: {
  tibetTimeline: {
    idle(): Promise<void>;
    results(): PageResult[];
    problems(): string[];
  };
};
declare const document: {
  scripts: { length: number };
  querySelectorAll(s: string): { length: number };
};

describe.skipIf(!available)('the HTML timeline in Chromium', () => {
  const dirs: string[] = [];
  let browser: Browser;
  let home: RealHome;
  let graph: CausalGraph;
  let work: string;

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'tibet-cbom-html-pages-'));
    dirs.push(work);
    [browser, home] = await Promise.all([launchBrowser(), realHome(dirs)]);
    graph = await home.graph();
  });
  afterAll(async () => {
    await browser?.close();
    await home?.close();
    cleanup(dirs);
  });

  /** Open a page (a file, or a URL) with every request outside `allow` refused. */
  async function open(
    target: { html: string; name: string } | { url: string; allow: string },
    init?: () => void,
  ): Promise<Opened> {
    const context = await browser.newContext({
      viewport: { width: 1600, height: 900 },
      colorScheme: 'dark',
    });
    const o: Opened = {
      page: await context.newPage(),
      context,
      requests: [],
      refused: [],
      errors: [],
      dialogs: [],
    };
    let url: string;
    if ('html' in target) {
      const file = join(work, `${target.name}.html`);
      writeFileSync(file, target.html);
      url = pathToFileURL(file).href;
    } else url = target.url;
    const allow = 'url' in target ? target.allow : url;
    await context.route('**/*', async (route) => {
      const u = route.request().url();
      if (u === url || u.startsWith(allow)) return route.continue();
      o.refused.push(u);
      return route.abort();
    });
    context.on('request', (r) => o.requests.push(r.url()));
    o.page.on('pageerror', (e) => o.errors.push(e.message));
    o.page.on('console', (m) => {
      if (m.type() === 'error') o.errors.push(m.text());
    });
    o.page.on('dialog', (d) => {
      o.dialogs.push(d.message());
      void d.dismiss();
    });
    if (init) await o.page.addInitScript(init);
    await o.page.goto(url);
    await o.page.evaluate(() => window.tibetTimeline.idle());
    return o;
  }

  const render = (g: CausalGraph, name: string, o?: RenderHtmlOptions) => ({
    html: renderHtml(g, o),
    name,
  });
  const statuses = async (p: Page, attr = 'data-status') =>
    Object.fromEntries(
      await p.$$eval(
        'g.ev',
        (els: El[], a: string) => els.map((e) => [e.getAttribute('data-id'), e.getAttribute(a)]),
        attr,
      ),
    ) as Record<string, string>;
  const byEvent = (g: CausalGraph, event: string): GraphNode =>
    g.nodes.find((n) => n.event === event)!;
  const shot = async (p: Page, name: string) => {
    const file = join(OUT, name);
    await p.screenshot({ path: file });
    const png = readFileSync(file);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(20_000);
  };

  it('draws a lane per actor and every event, all verified in the browser, offline', async () => {
    const o = await open(render(graph, 'timeline'));
    const p = o.page;
    expect(
      await p.$$eval('#lanes .lane', (els: El[]) => els.map((e) => e.getAttribute('data-actor'))),
    ).toEqual(graph.actors.map((a) => a.id));
    expect(await p.textContent('#lanes')).toContain('mcp-server');
    const st = await statuses(p);
    expect(Object.keys(st).sort()).toEqual(graph.nodes.map((n) => n.action_id).sort());
    expect(new Set(Object.values(st))).toEqual(new Set(['pass']));
    for (const a of ['data-signature', 'data-inclusion', 'data-checkpoint', 'data-chain'])
      expect(new Set(Object.values(await statuses(p, a))), a).toEqual(new Set(['pass']));
    expect(await p.textContent('#n-pass')).toBe(String(graph.nodes.length));
    expect(await p.textContent('#n-fail')).toBe('0');
    expect(await p.getAttribute('#summary', 'data-done')).toBe('yes');
    expect(await p.getAttribute('#cp', 'data-status')).toBe('pass');
    expect(await p.textContent('#cp')).toContain('signed by jis:acme:auditlog/log');
    // the badges, marks, arrows and highlights are drawn
    expect(
      await p.$$eval('g.ev .badge text', (els: El[]) => els.map((e) => e.textContent)),
    ).toEqual(graph.nodes.map(() => '\u2713'));
    expect(await p.locator('#edges path.edge.parent').count()).toBe(
      graph.edges.filter((e) => e.kind === 'parent').length,
    );
    expect(await p.locator('#edges path.edge.prev').count()).toBe(
      graph.edges.filter((e) => e.kind === 'prev').length,
    );
    expect(await p.locator('rect.band-exposure').count()).toBe(1);
    expect(await p.locator('rect.band-rotation').count()).toBe(1);
    expect(await p.locator('g.ev.mk-denied').count()).toBe(1);
    // lanes and events line up: each event sits in its actor's lane, left to right in causal order
    const boxes = await p.$$eval('g.ev', (els: El[]) =>
      els.map((e) => ({ id: e.getAttribute('data-id'), t: e.getAttribute('transform') })),
    );
    const xs = graph.nodes.map((n) => {
      const m = /translate\(([\d.]+),([\d.]+)\)/.exec(boxes.find((b) => b.id === n.action_id)!.t!)!;
      return {
        x: Number(m[1]),
        y: Number(m[2]),
        lane: graph.actors.findIndex((a) => a.id === n.actor),
      };
    });
    for (let i = 1; i < xs.length; i++) expect(xs[i]!.x).toBeGreaterThan(xs[i - 1]!.x);
    for (const a of xs) for (const b of xs) if (a.lane === b.lane) expect(a.y).toBe(b.y);
    await shot(p, 'timeline.png');

    // click an event: the panel shows its token, its proof and each check with the reason
    const exp = byEvent(graph, 'secret-exposed');
    await p.click(`g.ev[data-id="${exp.action_id}"]`);
    await expect.poll(() => p.isVisible('#panel')).toBe(true);
    expect(await p.textContent('#panel-title')).toBe('secret-exposed');
    expect(JSON.parse((await p.textContent('#p-token'))!)).toEqual(exp.token);
    expect((await p.textContent('#p-proof'))!.split('\n')).toEqual(exp.inclusion!.hashes);
    const checks = await p.$$eval('#p-checks li', (els: El[]) =>
      els.map((e) => [e.getAttribute('data-check'), e.getAttribute('data-status'), e.textContent]),
    );
    expect(checks.map((c) => c.slice(0, 2))).toEqual([
      ['signature', 'pass'],
      ['inclusion', 'pass'],
      ['checkpoint', 'pass'],
      ['chain', 'pass'],
    ]);
    expect(checks[0]![2]).toContain('Ed25519 signature by jis:acme:bob');
    expect(checks[1]![2]).toMatch(/line \d+ is in the log/);
    await shot(p, 'timeline-panel.png');

    // the keyboard walks the events; the injected reason is text, never markup
    const rot = byEvent(graph, 'secret-rotated');
    await p.click(`g.ev[data-id="${rot.action_id}"]`);
    expect(await p.textContent('.p-reason')).toBe(rot.reason);
    expect(rot.reason).toContain(INJECTION);
    await p.keyboard.press('ArrowLeft');
    expect(await p.textContent('#panel-title')).toBe('secret-exposed');
    await p.keyboard.press('Escape');
    expect(await p.isVisible('#panel')).toBe(false);
    // the page's three script elements (data, log lines, code) and nothing injected
    expect(
      await p.evaluate(() => [document.scripts.length, document.querySelectorAll('img').length]),
    ).toEqual([3, 0]);
    expect(o.dialogs).toEqual([]);
    // the CSP is in force: a script element added later (not the page's own) does not run
    const violated = await p.evaluate<string>(`new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective));
      const s = document.createElement('script');
      s.textContent = 'window.injected = 1';
      document.body.appendChild(s);
      setTimeout(() => resolve(window.injected ? 'ran' : 'silent'), 2000);
    })`);
    expect(violated).toBe('script-src-elem');
    expect(o.errors.filter((e) => !/Content Security Policy/.test(e))).toEqual([]);
    // nothing left the file: the only request was the page itself
    expect(o.refused).toEqual([]);
    expect(o.requests.filter((u) => !u.endsWith('/timeline.html'))).toEqual([]);
    await o.context.close();
  });

  it('shows tampering as failed: a changed token, a changed log line, a wrong log key', async () => {
    const g = clone(graph);
    const exp = byEvent(g, 'secret-exposed');
    exp.token.erachter = 'nothing was leaked';
    exp.reason = 'nothing was leaked';
    const del = byEvent(g, 'secret-delegated');
    if (del.source.kind !== 'log') throw new Error('expected a log event');
    del.source.line = del.source.line.replace(
      /"received_at":"2026-11-28T12:0/,
      '"received_at":"2026-11-28T13:0',
    );
    const rot = byEvent(g, 'secret-rotated'); // exp's successor on the secret's line
    const o = await open(render(g, 'tampered'));
    const p = o.page;
    const st = await statuses(p);
    const sig = await statuses(p, 'data-signature');
    const inc = await statuses(p, 'data-inclusion');
    expect(sig[exp.action_id]).toBe('fail');
    expect(inc[del.action_id]).toBe('fail');
    expect(sig[del.action_id]).toBe('pass');
    expect((await statuses(p, 'data-chain'))[rot.action_id]).toBe('fail');
    const failed = Object.keys(st)
      .filter((id) => st[id] === 'fail')
      .sort();
    expect(failed).toEqual([exp.action_id, del.action_id, rot.action_id].sort());
    expect(await p.textContent('#n-fail')).toBe('3');
    expect(await p.textContent(`g.ev[data-id="${exp.action_id}"] .badge text`)).toBe('\u2717');
    await p.click(`g.ev[data-id="${exp.action_id}"]`);
    expect(await p.getAttribute('#p-checks li[data-check="signature"]', 'data-status')).toBe(
      'fail',
    );
    expect(await p.textContent('#p-checks li[data-check="signature"]')).toContain(
      'does not verify',
    );
    await shot(p, 'timeline-tampered.png');
    await o.context.close();

    const w = clone(graph);
    w.log!.public_key = toBase64(testIdentity('jis:acme:impostor-log', 'system').signingPublicKey);
    const o2 = await open(render(w, 'wrong-log-key'));
    expect(await o2.page.getAttribute('#cp', 'data-status')).toBe('fail');
    expect(await o2.page.textContent('#cp')).toContain('no signature by jis:acme:auditlog/log');
    expect(new Set(Object.values(await statuses(o2.page, 'data-checkpoint')))).toEqual(
      new Set(['fail']),
    );
    expect(new Set(Object.values(await statuses(o2.page)))).toEqual(new Set(['fail']));
    expect(new Set(Object.values(await statuses(o2.page, 'data-signature')))).toEqual(
      new Set(['pass']),
    );
    expect(o.errors.concat(o2.errors)).toEqual([]);
    await o2.context.close();
  });

  it('never shows ✓ in a browser without Ed25519: every event "not checked"', async () => {
    const o = await open(render(graph, 'no-ed25519'), () => {
      const subtle = crypto.subtle;
      const importKey = subtle.importKey.bind(subtle);
      Object.defineProperty(subtle, 'importKey', {
        value: (...a: Parameters<typeof importKey>) =>
          (a[2] as { name?: string }).name === 'Ed25519'
            ? Promise.reject(new DOMException('Ed25519 is not supported', 'NotSupportedError'))
            : importKey(...a),
      });
    });
    const p = o.page;
    expect(new Set(Object.values(await statuses(p)))).toEqual(new Set(['unknown']));
    expect(await p.textContent('#n-pass')).toBe('0');
    expect(await p.isVisible('#nocrypto')).toBe(true);
    expect(await p.textContent('#nocrypto')).toContain('browser lacks Ed25519');
    await p.click(`g.ev[data-id="${graph.nodes[0]!.action_id}"]`);
    expect(await p.textContent('#p-checks li[data-check="signature"]')).toContain(
      'not checked (browser lacks Ed25519)',
    );
    expect(o.errors).toEqual([]);
    await o.context.close();
  });

  it('the browser’s Ed25519, behind the page’s checks, gives @tibet/core’s verdicts', async () => {
    const v = JSON.parse(
      readFileSync(
        join(import.meta.dirname, '../../core/test/vectors/ed25519-speccheck.json'),
        'utf8',
      ),
    ) as { cases: { case: number; message: string; public_key: string; signature: string }[] };
    const o = await open(render(graph, 'speccheck'));
    const accepted = await o.page.evaluate(
      `(async (cases) => {
        const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
        const out = [];
        for (const c of cases)
          if (await TibetVerify.edVerify(hex(c.public_key), hex(c.signature), hex(c.message))) out.push(c.case);
        return out;
      })(${JSON.stringify(v.cases)})`,
    );
    expect(accepted).toEqual([2, 3]);
    await o.context.close();
  });

  it('live: events pushed over server-sent events from loopback appear and verify', async () => {
    const pages: Record<string, string> = {
      '/': renderHtml(graph, { liveUrl: '/events', title: 'Live: sec_pypi_001' }),
      // the demo may start from nothing: no actors, no events, no checkpoint yet
      '/empty': renderHtml(
        { ...graph, nodes: [], edges: [], actors: [], secrets: [], log: null },
        { liveUrl: '/events' },
      ),
    };
    const waiting: ((r: ServerResponse) => void)[] = [];
    const streams: ServerResponse[] = [];
    const nextStream = () => new Promise<ServerResponse>((r) => waiting.push(r));
    const server: Server = createServer((req, res) => {
      const html = pages[req.url ?? ''];
      if (html !== undefined) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(html);
      } else if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        res.write(': hello\n\n');
        streams.push(res);
        waiting.shift()?.(res);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      let connected = nextStream();
      const o = await open({ url: `${origin}/`, allow: `${origin}/` });
      const p = o.page;
      let stream = await connected;
      await expect.poll(() => p.textContent('#live')).toContain('live');
      expect(await p.locator('g.ev').count()).toBe(graph.nodes.length);

      await home.more();
      const g2 = await home.graph();
      const fresh = g2.nodes.filter((n) => !graph.nodes.some((m) => m.action_id === n.action_id));
      expect(fresh).toHaveLength(2);
      for (const n of fresh) stream.write(liveEvent({ kind: 'node', value: n }));
      stream.write('data: not json\n\n');
      stream.write(`data: ${JSON.stringify({ action_id: 'nope' })}\n\n`);
      // their proofs are against the newer checkpoint: until it arrives they are "not checked"
      await expect.poll(() => p.locator('g.ev').count()).toBe(graph.nodes.length + 2);
      await p.evaluate(() => window.tibetTimeline.idle());
      for (const n of fresh)
        expect(await p.getAttribute(`g.ev[data-id="${n.action_id}"]`, 'data-status')).toBe(
          'unknown',
        );
      stream.write(liveEvent({ kind: 'log', value: g2.log! }));
      const allPass = async (q: Page) =>
        (await q.evaluate(() => window.tibetTimeline.results())).map((r) => r.status);
      await expect.poll(() => allPass(p)).toEqual(g2.nodes.map(() => 'pass'));
      for (const n of fresh)
        expect(await p.getAttribute(`g.ev[data-id="${n.action_id}"]`, 'data-inclusion')).toBe(
          'pass',
        );
      // the page derived the new prev links itself
      expect(await p.locator('#edges path.edge.prev').count()).toBe(
        g2.edges.filter((e) => e.kind === 'prev').length,
      );
      await expect.poll(() => p.textContent('#n-pass')).toBe(String(g2.nodes.length));
      const problems = await p.evaluate(() => window.tibetTimeline.problems());
      expect(problems).toEqual([
        'a live message that is not JSON was ignored',
        'a live event was ignored: no valid action_id',
      ]);
      await shot(p, 'timeline-live.png');
      expect(o.refused).toEqual([]);
      expect(o.errors).toEqual([]);
      expect(new Set(o.requests)).toEqual(new Set([`${origin}/`, `${origin}/events`]));
      await o.context.close();

      // from an empty page: events first (no key, no checkpoint: ?), then keys and checkpoint
      connected = nextStream();
      const e = await open({ url: `${origin}/empty`, allow: `${origin}/` });
      stream = await connected;
      await expect.poll(() => e.page.textContent('#live')).toContain('live');
      expect(await e.page.getAttribute('#cp', 'data-status')).toBe('unknown');
      for (const n of g2.nodes) stream.write(liveEvent({ kind: 'node', value: n }));
      await expect.poll(() => e.page.locator('g.ev').count()).toBe(g2.nodes.length);
      await e.page.evaluate(() => window.tibetTimeline.idle());
      expect(new Set(await allPass(e.page))).toEqual(new Set(['unknown']));
      expect(await e.page.locator('#lanes .lane-warn').count()).toBe(g2.actors.length);
      for (const a of g2.actors) stream.write(liveEvent({ kind: 'actor', value: a }));
      stream.write(liveEvent({ kind: 'log', value: g2.log! }));
      await expect.poll(() => allPass(e.page)).toEqual(g2.nodes.map(() => 'pass'));
      expect(await e.page.getAttribute('#cp', 'data-status')).toBe('pass');
      expect(await e.page.locator('#lanes .lane-warn').count()).toBe(0);
      expect(
        await e.page.$$eval('#lanes .lane', (els: El[]) =>
          els.map((x) => x.getAttribute('data-actor')),
        ),
      ).toEqual(g2.actors.map((a) => a.id));
      expect(e.errors).toEqual([]);
      expect(e.refused).toEqual([]);
      await e.context.close();
    } finally {
      for (const s of streams) s.end();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('stays responsive with 10,000 events: only the columns in view are drawn', async () => {
    const nodes: GraphNode[] = [];
    for (let i = 0; i < 10_000; i++) {
      const n = graph.nodes[i % graph.nodes.length]!;
      const id = `act_${i.toString(16).padStart(16, '0')}`;
      const source =
        n.source.kind === 'log'
          ? { ...n.source, line: n.source.line.replaceAll(n.action_id, id) }
          : n.source;
      nodes.push({ ...n, action_id: id, token: { ...n.token, action_id: id }, source });
    }
    const big: CausalGraph = { ...graph, nodes, edges: [] };
    const t0 = Date.now();
    const o = await open(render(big, 'big'));
    const ms = Date.now() - t0;
    const p = o.page;
    const drawn = await p.locator('g.ev').count();
    expect(drawn).toBeGreaterThan(10);
    expect(drawn).toBeLessThan(200);
    // every event was checked (copies under new ids: their signatures rightly fail)
    const res = await p.evaluate(() => window.tibetTimeline.results());
    expect(res).toHaveLength(10_000);
    expect(res.filter((r) => r.status === 'pending')).toHaveLength(0);
    expect(res.filter((r) => r.checks?.['signature']?.status === 'fail').length).toBeGreaterThan(
      9_900,
    );
    expect(await p.textContent('#n-total')).toBe('10000');
    // scroll to the end: the last events are drawn there
    await p.evaluate(() => {
      const v = (
        globalThis as unknown as {
          document: { getElementById(i: string): { scrollLeft: number; scrollWidth: number } };
        }
      ).document.getElementById('view');
      v.scrollLeft = v.scrollWidth;
    });
    await expect
      .poll(() => p.locator(`g.ev[data-id="${nodes[9_999]!.action_id}"]`).count())
      .toBe(1);
    expect(await p.locator('g.ev').count()).toBeLessThan(200);
    console.log(`10,000 events: loaded, drawn and verified in ${ms} ms`);
    expect(o.errors).toEqual([]);
    await o.context.close();
  });
});

it('a missing chromium skips loudly on a workstation and fails in CI', () => {
  const gone = join(tmpdir(), 'no-such-chromium-here');
  const said: string[] = [];
  const warn = (m: string) => said.push(m);
  expect(() => browserAvailable(gone, { CI: 'true' }, warn)).toThrow(/missing but CI is set/);
  expect(browserAvailable(gone, {}, warn)).toBe(false);
  expect(said.join('')).toMatch(/SKIPPING the browser tests: .*no-such-chromium-here is missing/);
});

// keep the out folder's .gitignore in place even when the browser tests are skipped
it('packages/cbom/test/out is git-ignored', () => {
  expect(readFileSync(join(OUT, '.gitignore'), 'utf8')).toMatch(/^\*$/m);
});
