import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  IdentityRegistry,
  canonicalBytes,
  canonicalize,
  getProvider,
  toHex,
  utf8,
  type JsonValue,
} from '@tibet/core';
import { manualClock, seededRandom, testIdentity } from '@tibet/core/testing';
import { AuditLog, EmbeddedClient, segmentName, type AuditClient } from '@tibet/continuityd';
import { openTza, packTza } from '@tibet/tza';
import { Keychain, type Outcome } from '@tibet/keychain';
import { verifyKeychain, type KeychainProblem } from '../src/verify.js';

const service = testIdentity('jis:acme:keychain', 'system');
const logKey = testIdentity('jis:acme:auditlog', 'system');
const alice = testIdentity('jis:acme:alice', 'human');
const bob = testIdentity('jis:acme:bob', 'human');
const bot = testIdentity('jis:acme:release-bot', 'mcp-server');
const gw = testIdentity('jis:acme:gateway', 'gateway');
const T0 = '2026-11-28T12:00:00.000Z';
const at = (h: number): Date => new Date(Date.parse(T0) + h * 3_600_000);

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup() {
  const home = mkdtempSync(join(tmpdir(), 'tibet-kcv-'));
  dirs.push(home);
  const directory = new IdentityRegistry();
  for (const who of [service, alice, bob, bot, gw]) directory.add(who);
  const clock = manualClock(T0);
  const logDir = join(home, 'log');
  const log = await AuditLog.open({ dir: logDir, signer: logKey, registry: directory, clock });
  const audit: AuditClient = new EmbeddedClient(log);
  const kc = new Keychain({ home, audit, service, directory, clock, random: seededRandom(home) });
  return { home, logDir, log, audit, kc, clock, directory };
}

type Env = Awaited<ReturnType<typeof setup>>;

/**
 * Three secrets through every kind of operation: sec_pypi_1 (import, reveal, operator,
 * proxied use, denial, exposure, rotation, custodian change with reseal, use), sec_root_1
 * (generated, owner handoff offered and accepted, suspend, resume, policy change) and
 * sec_old_1 (revoked, archived, destroyed).
 */
async function story(e: Env) {
  const { kc, clock } = e;
  let h = 0;
  const tick = (): void => clock.set(at(++h));
  const p = 'sec_pypi_1';
  const o: Record<string, Outcome> = {};
  o['add'] = await kc.add({
    actor: alice,
    secretId: p,
    type: 'pypi_token',
    issuer: 'pypi.org',
    scope: 'upload:acme-lib',
    material: utf8('pypi-token-one'),
    reason: 'publish token',
  });
  tick();
  (await kc.reveal({ actor: alice, secretId: p, reason: 'check' })).material.fill(0);
  tick();
  await kc.delegate({
    actor: alice,
    secretId: p,
    role: 'active_operator',
    assignee: bot.id,
    reason: 'bot publishes',
  });
  tick();
  o['use'] = await kc.use({
    actor: gw,
    secretId: p,
    onBehalfOf: bot.id,
    targetAction: '/upload/pypi',
    lane: 'publish',
    reason: 'publish 1.0',
  });
  tick();
  await expect(
    kc.use({ actor: gw, secretId: p, onBehalfOf: bob.id, reason: 'bob tries' }),
  ).rejects.toMatchObject({ code: 'NOT_AUTHORIZED' });
  tick();
  await kc.expose({
    actor: bob,
    secretId: p,
    exposure: 'log-leaked',
    evidence: 'ci #1',
    reason: 'printed in CI',
  });
  tick();
  o['rotate'] = await kc.rotate({
    actor: alice,
    secretId: p,
    material: utf8('pypi-token-two'),
    reason: 'rotate after leak',
  });
  tick();
  await kc.delegate({
    actor: alice,
    secretId: p,
    role: 'custodian',
    assignee: bob.id,
    reason: 'bob keeps it',
  });
  tick();
  o['use2'] = await kc.use({
    actor: gw,
    secretId: p,
    onBehalfOf: bot.id,
    reason: 'publish 1.1',
  });
  const r = 'sec_root_1';
  tick();
  await kc.add({
    actor: alice,
    secretId: r,
    type: 'root_password',
    issuer: 'db01',
    scope: 'root',
    expiresAt: at(1000),
    reason: 'root password',
  });
  tick();
  await kc.delegate({ actor: alice, secretId: r, role: 'owner', assignee: bob.id, reason: 'bob' });
  tick();
  await kc.accept({ actor: bob, secretId: r, reason: 'mine' });
  tick();
  await kc.suspend({ actor: bob, secretId: r, reason: 'maintenance' });
  tick();
  await kc.resume({ actor: bob, secretId: r, reason: 'done' });
  tick();
  await kc.setPolicy({
    actor: bob,
    secretId: r,
    policy: { reveal: ['role:owner', alice.id] },
    reason: 'alice is on call',
  });
  const x = 'sec_old_1';
  tick();
  await kc.add({
    actor: alice,
    secretId: x,
    type: 'api_key',
    issuer: 'x',
    scope: 'y',
    material: utf8('old'),
    reason: 'r',
  });
  tick();
  await kc.revoke({ actor: alice, secretId: x, reason: 'unused' });
  tick();
  await kc.archive({ actor: alice, secretId: x, reason: 'unused' });
  tick();
  await kc.destroy({ actor: alice, secretId: x, reason: 'shred' });
  await e.log.drain();
  return { p, r, x, o };
}

function problemsOf(
  report: Awaited<ReturnType<typeof verifyKeychain>>,
  id: string,
): KeychainProblem[] {
  return report.secrets.find((s) => s.id === id)?.problems ?? [];
}

const segment = (e: Env): string => join(e.logDir, 'segments', segmentName(0));

function rewriteLines(e: Env, f: (lines: string[]) => string[]): void {
  const text = readFileSync(segment(e), 'utf8');
  const lines = text.split('\n').slice(0, -1);
  writeFileSync(
    segment(e),
    f(lines)
      .map((l) => `${l}\n`)
      .join(''),
  );
}

describe('verifyKeychain', () => {
  it('a keychain and its log that agree verify clean, through the client or the folder', async () => {
    const e = await setup();
    await story(e);
    const viaClient = await verifyKeychain(e.kc);
    expect(viaClient.secrets.map((s) => [s.id, s.problems])).toEqual([
      ['sec_old_1', []],
      ['sec_pypi_1', []],
      ['sec_root_1', []],
    ]);
    expect(viaClient).toMatchObject({ ok: true, log: { ok: true, problems: [] } });
    await e.log.checkpoint();
    await e.log.close();
    expect(await verifyKeychain(e.kc, { logDir: e.logDir })).toEqual(viaClient);
  });

  it('a changed revision file is reported at its revision, and breaks the link of the next', async () => {
    const e = await setup();
    const { p } = await story(e);
    await e.log.close();
    const file = join(e.home, 'keychain', 'secrets', p, 'rev-000004.tza');
    const bytes = readFileSync(file);
    const at = bytes.indexOf('"exposure_state":"in-use"');
    expect(at).toBeGreaterThan(0);
    bytes.write('"exposure_state":"sealed"', at); // one field, same length
    writeFileSync(file, bytes);
    const report = await verifyKeychain(e.kc, { logDir: e.logDir });
    expect(report.ok).toBe(false);
    expect(problemsOf(report, p).map((x) => [x.code, x.revision])).toEqual([
      ['REVISION_INVALID', 4],
      ['REVISION_CHAIN_BROKEN', 5],
    ]);
    expect(problemsOf(report, 'sec_root_1')).toEqual([]);
    expect(report.log.ok).toBe(true);
  });

  it('a revision re-signed with the service key but not matching the log: the differences', async () => {
    const e = await setup();
    const { r } = await story(e);
    await e.log.close();
    const head = (await e.kc.store.head(r))!;
    const opened = openTza(await e.kc.store.readRevision(r, head.revision), undefined, {
      trust: [service.signingPublicKey],
    });
    const state = JSON.parse(new TextDecoder().decode(opened.entries[0]!.data)) as Record<
      string,
      JsonValue
    >;
    state['owner_id'] = alice.id; // as if the handoff to bob had not happened
    const forged = packTza({
      kind: 'secret-state',
      meta: opened.manifest.meta,
      entries: [{ name: 'state.json', data: canonicalBytes(state), mediaType: 'application/json' }],
      signers: [service],
    });
    await e.kc.store.discardRevision(r, head.revision);
    await e.kc.store.writeRevision(r, head.revision, forged);
    await e.kc.store.commit(r, { ...head, sha256: toHex(getProvider().sha256(forged)) });
    const report = await verifyKeychain(e.kc, { logDir: e.logDir });
    const probs = problemsOf(report, r);
    expect(probs.map((x) => [x.code, x.revision])).toEqual([['STATE_MISMATCH', head.revision]]);
    expect(probs[0]!.differences).toEqual([
      { path: 'owner_id', stored: alice.id, replayed: bob.id },
    ]);
  });

  it('a deleted log event: the gap on the secret line, the revision it backed, the broken chain', async () => {
    const e = await setup();
    const { p, o } = await story(e);
    await e.log.checkpoint();
    await e.log.close();
    const gone = o['use']!;
    rewriteLines(e, (lines) => lines.filter((_, i) => i !== gone.receipt.index));
    const report = await verifyKeychain(e.kc, { logDir: e.logDir });
    expect(report.ok).toBe(false);
    expect(report.log.problems.map((x) => [x.code, x.index])).toEqual([
      ['LOG_INDEX_MISMATCH', gone.receipt.index],
      ['LOG_CHAIN_BROKEN', gone.receipt.index],
      ['LOG_TRUNCATED', e.log.durableSize - 1],
    ]);
    const probs = problemsOf(report, p);
    expect(probs.map((x) => [x.code, x.index ?? null, x.revision ?? null])).toEqual([
      ['EVENT_MISSING', gone.receipt.index + 1, null],
      ['REVISION_NOT_LOGGED', null, 4],
    ]);
    expect(probs[1]!.action_id).toBe(gone.token.action_id);
    // the other secrets' lines are intact
    expect(problemsOf(report, 'sec_root_1')).toEqual([]);
  });

  it('a changed log event: its signature, the chain after it, and the signed checkpoint', async () => {
    const e = await setup();
    const { p, o } = await story(e);
    await e.log.checkpoint();
    await e.log.close();
    const target = o['use']!.receipt.index;
    rewriteLines(e, (lines) =>
      lines.map((l, i) => {
        if (i !== target) return l;
        const rec = JSON.parse(l) as { token: { erin: Record<string, unknown> } };
        rec.token.erin['target_action'] = '/upload/evil';
        return canonicalize(rec);
      }),
    );
    const report = await verifyKeychain(e.kc, { logDir: e.logDir });
    expect(report.log.problems.map((x) => [x.code, x.index])).toEqual([
      ['LOG_CHAIN_BROKEN', target + 1],
      ['LOG_ROOT_MISMATCH', e.log.durableSize - 1],
    ]);
    const probs = problemsOf(report, p);
    expect(probs.map((x) => [x.code, x.index])).toEqual([
      ['EVENT_MISSING', target + 1], // the next event on the line (a denial) no longer names it
      ['EVENT_SIGNATURE_INVALID', target],
      // re-deciding the changed request gives other decisions than the token lists
      ['EVENT_DECISION_MISMATCH', target],
    ]);
  });

  it('a changed material bundle no longer matches its version digest', async () => {
    const e = await setup();
    const { p } = await story(e);
    await e.log.close();
    const state = await e.kc.state(p);
    const file = join(e.home, 'keychain', 'secrets', p, `material-00000${state.material_seq}.tza`);
    const bytes = readFileSync(file);
    bytes[bytes.length - 700]! ^= 1;
    writeFileSync(file, bytes);
    // the superseded bundle was shredded by the rotation: only the current one is checked
    expect(existsSync(join(e.home, 'keychain', 'secrets', p, 'material-000001.tza'))).toBe(false);
    const report = await verifyKeychain(e.kc, { logDir: e.logDir });
    expect(problemsOf(report, p).map((x) => [x.code, x.material_seq])).toEqual([
      ['MATERIAL_DIGEST_MISMATCH', state.material_seq],
    ]);
  });

  it('leftovers of a crash are warnings (recovery resolves them), not failures', async () => {
    const e = await setup();
    await e.kc.add({
      actor: alice,
      secretId: 'sec_y_1',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k'),
      reason: 'r',
    });
    // crashed after the event was durable, before HEAD moved
    const commit = e.kc.store.commit.bind(e.kc.store);
    e.kc.store.commit = () => Promise.reject(new Error('crash before HEAD'));
    await expect(
      e.kc.suspend({ actor: alice, secretId: 'sec_y_1', reason: 'pause' }),
    ).rejects.toThrow('crash before HEAD');
    e.kc.store.commit = commit;
    const r1 = await verifyKeychain(e.kc);
    expect(r1.ok).toBe(true);
    expect(problemsOf(r1, 'sec_y_1').map((x) => [x.code, x.severity, x.revision])).toEqual([
      ['REVISION_PENDING', 'warning', 2],
    ]);
    expect(problemsOf(r1, 'sec_y_1')[0]!.message).toContain('recovery makes it current');
    // recovery (any read through the keychain) makes it current: clean again
    expect((await e.kc.state('sec_y_1')).lifecycle_state).toBe('suspended');
    expect(await verifyKeychain(e.kc)).toMatchObject({ ok: true, secrets: [{ problems: [] }] });
    await e.log.close();
  });

  it('events signed by keys the registry does not know are reported', async () => {
    const e = await setup();
    await e.kc.add({
      actor: alice,
      secretId: 'sec_z_1',
      type: 'api_key',
      issuer: 'x',
      scope: 'y',
      material: utf8('k'),
      reason: 'r',
    });
    const only = new IdentityRegistry();
    only.add(service);
    const report = await verifyKeychain(e.kc, { registry: only });
    expect(problemsOf(report, 'sec_z_1').map((x) => [x.code, x.action_id])).toEqual([
      ['EVENT_SIGNATURE_INVALID', expect.stringMatching(/^act_/)],
    ]);
    await e.log.close();
  });
});
