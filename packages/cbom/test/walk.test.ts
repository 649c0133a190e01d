import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry } from '@tibet/core';
import { listSegments } from '@tibet/continuityd';
import { CbomError, continuityBom, walk } from '../src/index.js';
import {
  CAST,
  PYPI_TOKEN,
  PYPI_TOKEN_V2,
  buildHome,
  cleanup,
  gw,
  leaks,
  type Home,
} from './fixtures/home.js';

const dirs: string[] = [];
afterEach(() => cleanup(dirs));

const ID = 'sec_pypi_001';

async function full(h: Home, extra: Partial<Parameters<typeof walk>[0]> = {}) {
  return walk({
    home: h.home,
    directory: h.directory,
    subject: ID,
    bundles: [h.capsule1, h.receipt, h.capsule2],
    now: new Date('2026-12-01T00:00:00Z'),
    ...extra,
  });
}

async function segmentFile(h: Home): Promise<string> {
  await h.close();
  return (await listSegments(h.logDir))[0]!.path;
}

describe('walk', () => {
  it('follows a secret across the log, capsules, a receipt and the store: everything verifies', async () => {
    const h = await buildHome(dirs);
    const g = await full(h);
    expect(g.problems).toEqual([]);
    const events = g.nodes.map((n) => n.event);
    // causal order: generation first (capsule 2 starts its own line, generation 1)
    expect(events).toEqual([
      'secret-imported',
      'sam-issued',
      'sam-issued',
      'secret-proxied',
      'secret-delegated',
      'sam-executed',
      'secret-exposed',
      'secret-denied',
      'secret-rotated',
      'secret-proxied',
    ]);
    const pos = new Map(g.nodes.map((n, i) => [n.action_id, i]));
    for (const e of g.edges) expect(pos.get(e.from)!).toBeLessThan(pos.get(e.to)!);
    for (const n of g.nodes) {
      expect(n.checks.signature).toBe('pass');
      expect(n.checks.chain).toBe('pass');
      expect(n.checks.inclusion).toBe(n.source.kind === 'log' ? 'pass' : 'warn');
    }
    // capsule 2 and the receipt exist only in bundles
    expect(
      g.nodes
        .filter((n) => n.source.kind === 'bundle')
        .map((n) => n.action_id)
        .sort(),
    ).toEqual([h.actions['capsule2'], h.actions['receipt']].sort());
    // causal links across lines: capsule → use → receipt; capsule 2 (bundle) → use 2
    const edge = (from: string, to: string) =>
      g.edges.find((e) => e.from === h.actions[from] && e.to === h.actions[to]);
    expect(edge('capsule1', 'use1')).toMatchObject({ kind: 'parent', status: 'ok' });
    expect(edge('use1', 'receipt')).toMatchObject({ kind: 'parent', status: 'ok' });
    expect(edge('capsule2', 'use2')).toMatchObject({ kind: 'parent', status: 'ok' });
    expect(edge('add', 'use1')).toMatchObject({ kind: 'prev', status: 'ok' });
    expect(edge('rotate', 'use2')).toMatchObject({ kind: 'prev', status: 'ok' });
    expect(g.edges.every((e) => e.status === 'ok')).toBe(true);
    // marks for the renderers
    const mark = (a: string) => g.nodes.find((n) => n.action_id === h.actions[a])!.mark;
    expect([
      mark('use1'),
      mark('custodian'),
      mark('expose'),
      mark('denied'),
      mark('rotate'),
    ]).toEqual(['proxied', 'custody', 'exposure', 'denied', 'rotation']);
    expect(g.nodes.find((n) => n.action_id === h.actions['custodian'])!.summary).toBe(
      'alice delegated custodian to bob (admin)',
    );
    // the secret, replayed; the store's revisions and material were read and verified
    expect(g.secrets).toMatchObject([
      {
        secret_id: ID,
        secret_type: 'pypi_token',
        version: 2,
        lifecycle_state: 'active',
        rotation_required: false,
      },
    ]);
    expect(g.bundles.filter((b) => b.kind === 'secret-state')).toHaveLength(6);
    expect(g.bundles.every((b) => b.status === 'pass')).toBe(true);
    // the log: checkpoint and an inclusion proof per log node
    expect(g.log).toMatchObject({ origin: 'jis:acme:auditlog/log', tree_size: 13 });
    const use1 = g.nodes.find((n) => n.action_id === h.actions['use1'])!;
    expect(use1.inclusion).toMatchObject({
      index: use1.source.kind === 'log' ? use1.source.index : -1,
      tree_size: 13,
    });
    expect(
      use1.source.kind === 'log' &&
        (JSON.parse(use1.source.line) as { token: { action_id: string } }).token.action_id,
    ).toBe(use1.action_id);
    // actors in first-appearance order with their keys
    expect(g.actors.map((a) => a.id)).toEqual([
      'jis:acme:alice',
      'jis:acme:release-bot',
      'jis:acme:gateway',
      'jis:acme:bob',
      'jis:acme:keychain',
    ]);
    expect(g.actors.every((a) => a.public_key !== null)).toBe(true);
    expect(continuityBom(g).verify.status).toBe('warn'); // events only in bundles are a warning
    // never a secret
    const all = JSON.stringify(g);
    expect(leaks(all, PYPI_TOKEN)).toEqual([]);
    expect(leaks(all, PYPI_TOKEN_V2)).toEqual([]);
    await h.close();
  });

  it('a parent that is nowhere is a missing edge and a problem, not a dropped event', async () => {
    const h = await buildHome(dirs);
    const g = await full(h, { bundles: [h.capsule1, h.receipt] });
    const use2 = g.nodes.find((n) => n.action_id === h.actions['use2'])!;
    expect(use2.checks.chain).toBe('fail');
    expect(g.edges.filter((e) => e.status !== 'ok')).toEqual([
      expect.objectContaining({
        from: h.actions['capsule2'],
        to: h.actions['use2'],
        kind: 'parent',
        status: 'missing',
      }),
    ]);
    expect(g.problems.map((p) => p.code)).toEqual(['PARENT_MISSING']);
    const v = continuityBom(g).verify;
    expect(v.status).toBe('fail');
    expect(v.checks.find((c) => c.name === 'transition-parent-link')!.status).toBe('fail');
    await h.close();
  });

  it('from an action: its causal past and future across lines', async () => {
    const h = await buildHome(dirs);
    const g = await full(h, { subject: h.actions['use1']! });
    expect(g.subject).toEqual({ kind: 'action', id: h.actions['use1'] });
    const ids = new Set(g.nodes.map((n) => n.action_id));
    // past: the creation before it on the line and the capsule it follows from
    expect(ids.has(h.actions['add']!)).toBe(true);
    expect(ids.has(h.actions['capsule1']!)).toBe(true);
    // future: the receipt (a bundle) and everything after it on the secret's line
    expect(ids.has(h.actions['receipt']!)).toBe(true);
    expect(ids.has(h.actions['rotate']!)).toBe(true);
    // not causally related: the other secret
    expect(ids.has(h.actions['sign-add']!)).toBe(false);
    await h.close();
  });

  it('from a capsule bundle (by file or by its sam id) and from the whole home', async () => {
    const h = await buildHome(dirs);
    const byFile = await full(h, { subject: h.capsule1 });
    expect(byFile.subject).toEqual({ kind: 'capsule', id: h.capsule1 });
    expect(byFile.nodes.map((n) => n.action_id)).toContain(h.actions['use1']);
    const bySam = await full(h, { subject: { kind: 'capsule', id: 'sam_ba9876543210' } });
    expect(bySam.subject.id).toBe(h.capsule2);
    expect(bySam.nodes.map((n) => n.action_id)).toContain(h.actions['use2']);
    const home = await full(h, { subject: 'home' });
    expect(home.secrets.map((s) => s.secret_id)).toEqual(['sec_pypi_001', 'sec_sign_1']);
    // every log line, plus the receipt and capsule 2 from their bundles
    expect(home.nodes).toHaveLength(home.log!.tree_size + 2);
    expect(home.nodes.filter((n) => n.source.kind === 'log')).toHaveLength(home.log!.tree_size);
    expect(home.problems).toEqual([]);
    await expect(full(h, { subject: 'act_0000000000000000' })).rejects.toSatisfy(
      (e) => CbomError.is(e) && e.code === 'SUBJECT_NOT_FOUND',
    );
    await expect(full(h, { subject: 'sec_nothing' })).rejects.toSatisfy(
      (e) => CbomError.is(e) && e.code === 'SUBJECT_NOT_FOUND',
    );
    await h.close();
  });

  it('an altered log line: its signature, the next link, the log chain and the checkpoint all report it', async () => {
    const h = await buildHome(dirs);
    const seg = await segmentFile(h);
    const text = readFileSync(seg, 'utf8');
    expect(text).toContain('bob keeps the publish token');
    writeFileSync(seg, text.replace(/bob keeps the publish token/g, 'bob keeps the publish tokeN'));
    const g = await full(h);
    const cust = g.nodes.find((n) => n.action_id === h.actions['custodian'])!;
    expect(cust.checks.signature).toBe('fail');
    expect(cust.checks.inclusion).toBe('fail');
    const codes = new Set(g.problems.map((p) => p.code));
    for (const c of ['SIGNATURE_INVALID', 'PREV_BROKEN', 'LOG_CHAIN_BROKEN', 'LOG_ROOT_MISMATCH'])
      expect(codes).toContain(c);
    expect(g.edges).toContainEqual(
      expect.objectContaining({
        from: h.actions['custodian'],
        to: h.actions['expose'],
        kind: 'prev',
        status: 'broken',
      }),
    );
    const v = continuityBom(g).verify;
    for (const name of ['content-truth', 'transition-parent-link', 'audit-context'])
      expect(v.checks.find((c) => c.name === name)!.status).toBe('fail');
  });

  it('a removed log line: the gap is shown where it is', async () => {
    const h = await buildHome(dirs);
    const seg = await segmentFile(h);
    const lines = readFileSync(seg, 'utf8').split('\n');
    const k = lines.findIndex((l) => l.includes(h.actions['expose']!));
    lines.splice(k, 1);
    writeFileSync(seg, lines.join('\n'));
    const g = await full(h);
    expect(g.nodes.map((n) => n.action_id)).not.toContain(h.actions['expose']);
    const denied = g.nodes.find((n) => n.action_id === h.actions['denied'])!;
    expect(denied.checks.chain).toBe('fail');
    const codes = g.problems.map((p) => p.code);
    for (const c of ['LOG_INDEX_MISMATCH', 'LOG_CHAIN_BROKEN', 'PREV_BROKEN', 'LOG_TRUNCATED'])
      expect(codes).toContain(c);
  });

  it('a changed store bundle and an unknown signer are reported', async () => {
    const h = await buildHome(dirs);
    await h.close();
    const sdir = join(h.home, 'keychain', 'secrets', ID);
    const rev = join(
      sdir,
      readdirSync(sdir).find((n) => n === 'rev-000003.tza')!,
    );
    const b = readFileSync(rev);
    b[b.length - 1100] = b[b.length - 1100]! ^ 0x01;
    writeFileSync(rev, b);
    const partial = new IdentityRegistry();
    for (const who of CAST) if (who !== gw) partial.add(who);
    const g = await full(h, { directory: partial });
    const codes = new Set(g.problems.map((p) => p.code));
    expect(codes).toContain('REVISION_INVALID');
    expect(codes).toContain('SIGNATURE_UNKNOWN_KEY');
    expect(
      g.nodes.filter((n) => n.actor === gw.id).every((n) => n.checks.signature === 'fail'),
    ).toBe(true);
    expect(g.actors.find((a) => a.id === gw.id)!.public_key).toBeNull();
  });
});
