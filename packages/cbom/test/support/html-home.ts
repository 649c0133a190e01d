/**
 * A small real home for the HTML renderer's tests: a keychain over an embedded AuditLog (with
 * its TreeStore), a bot's request event as the parent of a proxied use, real signed tokens, a
 * real signed checkpoint, and the graph from cbom's own walk() (real RFC 9162 inclusion
 * proofs against that checkpoint).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityRegistry, mintToken, utf8, type Identity } from '@tibet/core';
import { manualClock, seededRandom, testIdentity } from '@tibet/core/testing';
import { AuditLog, EmbeddedClient, TreeStore } from '@tibet/continuityd';
import { Keychain } from '@tibet/keychain';
import { walk, type WalkResult } from '../../src/walk.js';

export const service = testIdentity('jis:acme:keychain', 'system');
export const logKey = testIdentity('jis:acme:auditlog', 'system');
export const alice = testIdentity('jis:acme:alice', 'human');
export const bob = testIdentity('jis:acme:bob', 'human');
export const bot = testIdentity('jis:acme:release-bot', 'mcp-server');
export const gw = testIdentity('jis:acme:gateway', 'gateway');
export const CAST: Identity[] = [service, alice, bob, bot, gw];

export interface RealHome {
  home: string;
  log: AuditLog;
  tree: TreeStore;
  kc: Keychain;
  directory: IdentityRegistry;
  /** Sign a checkpoint and walk the whole home (cbom's walk(): real proofs, real checkpoint). */
  graph(): Promise<WalkResult>;
  /** Two more events on the secret's line (for the live tests). */
  more(): Promise<void>;
  close(): Promise<void>;
}

/** The walks' `generated_at`. */
export const NOW = new Date('2026-11-28T13:00:00.000Z');

/** In the reason of the rotation: the page must show it as text and never run it. */
export const INJECTION = '</script><script>alert(1)</script><img src=x onerror=alert(2)>';

/** A home with one secret's story: add, delegate, use, a denial, exposure, rotation, use. */
export async function realHome(dirs: string[]): Promise<RealHome> {
  const home = mkdtempSync(join(tmpdir(), 'tibet-cbom-html-'));
  dirs.push(home);
  const directory = new IdentityRegistry();
  for (const who of CAST) directory.add(who);
  const clock = manualClock('2026-11-28T12:00:00.000Z');
  const logDir = join(home, 'log');
  const tree = await TreeStore.openForLog(logDir);
  const log = await AuditLog.open({
    dir: logDir,
    signer: logKey,
    registry: directory,
    clock,
    observers: [tree],
  });
  const kc = new Keychain({
    home,
    audit: new EmbeddedClient(log),
    service,
    directory,
    clock,
    random: seededRandom(home),
  });
  const tick = (): void => clock.advance(60_000);
  const id = 'sec_pypi_001';
  await kc.add({
    actor: alice,
    secretId: id,
    type: 'pypi_token',
    issuer: 'pypi.org',
    scope: 'upload:acme-lib',
    material: utf8('pypi-AgEIcHlwaS5vcmc-html-test-secret'),
    reason: 'publish token for acme-lib',
    source: 'stdin',
  });
  tick();
  await kc.delegate({
    actor: alice,
    secretId: id,
    role: 'active_operator',
    assignee: bot.id,
    reason: 'release bot publishes acme-lib',
  });
  tick();
  // the bot's request (as a SAM capsule's issuing event would be): the parent of the use
  const request = mintToken(
    {
      actor: bot.id,
      actorClass: 'mcp-server',
      event: 'sam-issued',
      erachter: 'publish acme-lib 1.2.0 to PyPI',
      erin: { secret_id: id, target_action: '/upload/pypi' },
    },
    bot,
    { clock, random: seededRandom('html-request') },
  );
  await log.append(request, { continuityId: 'sam_html_0001' });
  tick();
  await kc.use({
    actor: gw,
    secretId: id,
    onBehalfOf: bot.id,
    targetAction: '/upload/pypi',
    lane: 'publish',
    reason: 'publish acme-lib 1.2.0',
    parent: { action_id: request.action_id, generation: request.generation },
  });
  tick();
  await kc
    .use({ actor: gw, secretId: id, onBehalfOf: bob.id, reason: 'bob tries to publish' })
    .catch(() => undefined);
  tick();
  await kc.expose({
    actor: bob,
    secretId: id,
    exposure: 'log-leaked',
    evidence: 'ci log #4411 line 88',
    reason: 'token printed in CI log',
  });
  tick();
  await kc.rotate({
    actor: alice,
    secretId: id,
    material: utf8('pypi-NEW-html-test-secret'),
    reason: `rotate after CI leak ${INJECTION}`,
  });
  tick();

  return {
    home,
    log,
    tree,
    kc,
    directory,
    async graph() {
      await log.drain();
      await log.checkpoint();
      return walk({ home, directory, subject: 'home', now: NOW });
    },
    async more() {
      await kc.use({
        actor: gw,
        secretId: id,
        onBehalfOf: bot.id,
        targetAction: '/upload/pypi',
        reason: 'publish acme-lib 1.2.1 with the rotated token',
      });
      tick();
      await kc.use({
        actor: gw,
        secretId: id,
        onBehalfOf: bot.id,
        targetAction: '/upload/pypi',
        reason: 'publish acme-lib 1.2.2',
      });
      tick();
    },
    async close() {
      await log.close();
    },
  };
}

export function cleanup(dirs: string[]): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A deep copy (tests alter copies, never the original). */
export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
