import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTINUITY_BOM_FORMAT,
  VERIFY_CHECKS,
  continuityBom,
  renderMarkdown,
  renderText,
  shouldColor,
  walk,
} from '../src/index.js';
import { PYPI_TOKEN, PYPI_TOKEN_V2, buildHome, cleanup, leaks } from './fixtures/home.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const ESC = '\u001b[';

describe('Continuity BOM and renderers', () => {
  it('the four views, the verify check names, text with marks and arrows, Markdown', async () => {
    const h = await buildHome(dirs);
    const g = await walk({
      home: h.home,
      directory: h.directory,
      subject: 'sec_pypi_001',
      bundles: [h.capsule1, h.receipt],
    });
    const bom = continuityBom(g);
    expect(bom.format).toBe(CONTINUITY_BOM_FORMAT);
    expect(bom.version).toBe(1);
    expect(bom.verify.checks.map((c) => c.name)).toEqual([...VERIFY_CHECKS]);
    const check = (n: string) => bom.verify.checks.find((c) => c.name === n)!;
    expect(check('content-truth').status).toBe('pass');
    expect(check('manifest-present').status).toBe('pass');
    expect(check('manifest-verify').status).toBe('pass');
    expect(check('surface-tension').status).toBe('pass');
    expect(check('transition-required-fields').status).toBe('pass');
    expect(check('transition-current-view').status).toBe('pass');
    expect(check('transition-parent-link').status).toBe('fail'); // capsule 2 was not given
    expect(check('transition-authority').status).toBe('pass');
    expect(check('audit-context').status).toBe('warn'); // the receipt is only in a bundle
    expect(bom.inspect.secrets[0]).toMatchObject({
      secret_id: 'sec_pypi_001',
      owner_id: 'jis:acme:alice',
      custodian_id: 'jis:acme:bob',
      active_operator_id: 'jis:acme:release-bot',
      versions: [
        { version: 1, state: 'compromised' },
        { version: 2, state: 'active' },
      ],
    });
    expect(bom.authority.secrets[0]!.transitions.map((t) => [t.type, t.event])).toEqual([
      ['genesis', 'secret-imported'],
      ['supersede', 'secret-delegated'],
    ]);
    expect(bom.authority.secrets[0]!.status).toBe('active');
    const use = bom.timeline.find((t) => t.action_id === h.actions['use1'])!;
    expect(use.links).toEqual([
      { kind: 'prev', from: h.actions['add'], status: 'ok' },
      { kind: 'parent', from: h.actions['capsule1'], status: 'ok' },
    ]);

    const text = renderText(g, { color: false });
    expect(text).not.toContain(ESC);
    for (const s of ['!! EXPOSED', '<> ROTATED', 'xx DENIED', '-> PROXIED', '=> CUSTODY'])
      expect(text).toContain(s);
    expect(text).toContain(`<-- parent ${h.actions['capsule1']} sam-issued by release-bot`);
    expect(text).toMatch(/<-X parent MISSING: parent act_[0-9a-f]{16} of/);
    expect(text).toContain('PARENT_MISSING');
    expect(renderText(g, { color: true })).toContain(ESC);
    for (const view of ['inspect', 'authority', 'verify'] as const)
      expect(renderText(g, { view })).toContain('problems (1), never hidden');
    expect(renderText(g, { view: 'verify' })).toMatch(/FAIL {2}transition-parent-link/);

    const md = renderMarkdown(g);
    expect(md).toContain('| gen | time | actor | event | what | links | checks |');
    expect(md).toContain('**EXPOSED** secret-exposed');
    expect(md).toContain('parent **MISSING**');
    expect(renderMarkdown(g, { view: 'verify' })).toContain(
      '| transition-parent-link | **FAIL** |',
    );
    for (const out of [text, md, JSON.stringify(bom), renderMarkdown(g, { view: 'inspect' })]) {
      expect(leaks(out, PYPI_TOKEN)).toEqual([]);
      expect(leaks(out, PYPI_TOKEN_V2)).toEqual([]);
    }
    await h.close();
  });

  it('colour only on a TTY and never with NO_COLOR', () => {
    expect(shouldColor({ isTTY: true }, {})).toBe(true);
    expect(shouldColor({ isTTY: false }, {})).toBe(false);
    expect(shouldColor({ isTTY: true }, { NO_COLOR: '' })).toBe(false);
    expect(shouldColor({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
});
