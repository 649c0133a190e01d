import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry, fromHex, utf8 } from '@tibet/core';
import { manualClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  DaemonClient,
  DiskIndex,
  EmbeddedClient,
  TreeStore,
  exportTlogProof,
  serveLog,
  verifyTlogProof,
  type AuditClient,
  type LogIndex,
} from '@tibet/continuityd';
import { Keychain } from '@tibet/keychain';
import {
  AuditClientSource,
  KeychainTimeline,
  LogFolderSource,
  secretLine,
  timelineSourceFor,
  type LogQueryFn,
} from '../src/queries.js';

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

function registry(): IdentityRegistry {
  const r = new IdentityRegistry();
  for (const who of [service, alice, bob, bot, gw]) r.add(who);
  return r;
}

/** A few operations on two secrets, an hour apart. */
async function work(kc: Keychain, clock: ReturnType<typeof manualClock>): Promise<void> {
  await kc.add({
    actor: alice,
    secretId: 'sec_a_1',
    type: 'api_key',
    issuer: 'x',
    scope: 'y',
    material: utf8('a'),
    reason: 'r',
  });
  await kc.add({
    actor: bob,
    secretId: 'sec_b_1',
    type: 'api_key',
    issuer: 'x',
    scope: 'y',
    material: utf8('b'),
    reason: 'r',
  });
  clock.set(at(1));
  await kc.delegate({
    actor: alice,
    secretId: 'sec_a_1',
    role: 'active_operator',
    assignee: bot.id,
    reason: 'bot',
  });
  clock.set(at(2));
  await kc.use({ actor: gw, secretId: 'sec_a_1', onBehalfOf: bot.id, reason: 'use' });
  await expect(
    kc.reveal({ actor: bob, secretId: 'sec_a_1', reason: 'peek' }),
  ).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  clock.set(at(3));
  await kc.rotate({ actor: bob, secretId: 'sec_b_1', material: utf8('b2'), reason: 'rotate' });
}

/**
 * Load a module of another package's source by path, without type-checking it here:
 * `queryLog` and `DiskIndex` are not exported by `@tibet/continuityd` (yet).
 */
async function sibling<T>(path: string): Promise<T> {
  const spec = new URL(path, import.meta.url).pathname;
  return (await import(spec)) as T;
}

describe('timeline sources', () => {
  it('reads through a daemon (loopback HTTP) the same timeline as from the folder', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tibet-kcd-'));
    dirs.push(home);
    const directory = registry();
    const clock = manualClock(T0);
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
      clock,
    });
    const daemon = await serveLog({ log, port: 0, host: '127.0.0.1' });
    try {
      const audit = new DaemonClient({ host: '127.0.0.1', port: daemon.port! });
      const kc = new Keychain({
        home,
        audit,
        service,
        directory,
        clock,
        random: seededRandom(home),
      });
      await work(kc, clock);
      const src = timelineSourceFor(audit);
      expect(src).toBeInstanceOf(AuditClientSource);
      const viaDaemon = new KeychainTimeline(src);
      const viaFolder = new KeychainTimeline(
        new LogFolderSource(join(home, 'log'), { query: false }),
      );
      expect(await src.secretIds()).toEqual(['sec_a_1', 'sec_b_1']);
      for (const id of ['sec_a_1', 'sec_b_1']) {
        expect(await viaDaemon.history(id)).toEqual(await viaFolder.history(id));
        expect((await viaDaemon.replay(id)).state).toEqual(await kc.state(id));
      }
      // later appends are read incrementally
      clock.set(at(4));
      await kc.suspend({ actor: alice, secretId: 'sec_a_1', reason: 'pause' });
      expect((await viaDaemon.history('sec_a_1')).entries.at(-1)?.event).toBe('secret-suspended');
      expect(await (src as AuditClientSource).integrity()).toEqual([]);
      expect((await viaDaemon.whoDid('sec_a_1')).denied).toEqual([
        expect.objectContaining({
          requested_by: bob.id,
          operation: 'reveal',
          code: 'POLICY_DENIED',
        }),
      ]);
    } finally {
      await daemon.close();
      await log.close();
    }
  });

  it('uses the persisted index (queryLog) when the log has one, and agrees with the scan', async () => {
    const { DiskIndex } = await sibling<{
      DiskIndex: new (dir: string, o?: Record<string, unknown>) => LogIndex;
    }>('../../continuityd/src/disk-index.ts');
    const { queryLog } = await sibling<{
      queryLog: (
        dir: string,
        q: Parameters<LogQueryFn>[1],
        o: { onLineRead: (i: number) => void },
      ) => ReturnType<LogQueryFn>;
    }>('../../continuityd/src/query.ts');
    const home = mkdtempSync(join(tmpdir(), 'tibet-kci-'));
    dirs.push(home);
    const directory = registry();
    const clock = manualClock(T0);
    const dir = join(home, 'log');
    const log = await AuditLog.open({
      dir,
      signer: logKey,
      registry: directory,
      clock,
      index: new DiskIndex(dir),
      checkpointEvery: 4,
    });
    const audit: AuditClient = new EmbeddedClient(log);
    const kc = new Keychain({ home, audit, service, directory, clock, random: seededRandom(home) });
    await work(kc, clock);
    await log.checkpoint();
    const lines: number[] = [];
    const indexed = new LogFolderSource(dir, {
      query: (d, q) => queryLog(d, q, { onLineRead: (i) => lines.push(i) }),
    });
    const scanned = new LogFolderSource(dir, { query: false });
    for (const id of ['sec_a_1', 'sec_b_1']) {
      const a = await new KeychainTimeline(indexed).history(id);
      expect(indexed.lastMode).toBe('index');
      expect(a).toEqual(await new KeychainTimeline(scanned).history(id));
    }
    // through the index, a secret's timeline reads only that secret's lines
    lines.length = 0;
    const b = await new KeychainTimeline(indexed).history('sec_b_1');
    expect(lines.sort((x, y) => x - y)).toEqual(b.entries.map((e) => e.index));
    expect(b.entries.length).toBeLessThan(log.durableSize);
    expect(
      (await indexed.byAction((await kc.state('sec_b_1')).last_rotation_action_id!))?.token.event,
    ).toBe('secret-rotated');
    await log.close();
  });

  it('hashes each event from the line it read, the same as re-encoding it, whatever its strings hold', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tibet-kch-'));
    dirs.push(home);
    const directory = registry();
    const clock = manualClock(T0);
    const dir = join(home, 'log');
    const log = await AuditLog.open({
      dir,
      signer: logKey,
      registry: directory,
      clock,
      index: new DiskIndex(dir),
    });
    const kc = new Keychain({
      home,
      audit: new EmbeddedClient(log),
      service,
      directory,
      clock,
      random: seededRandom(home),
    });
    await work(kc, clock);
    // reasons (in the causal block and the token) that look like the record's own members
    const tricky = [
      ',"index":7,"prev":null,"received_at":"2026-11-28T12:00:00.000Z","token":{',
      '"token":{"a":1},"v":"tibet-log/1"}',
      '\\",\\"index\\":1',
      '\u2028 é 🔑 \n\t',
    ];
    for (const [i, reason] of tricky.entries()) {
      clock.set(at(4 + i));
      await kc.use({ actor: gw, secretId: 'sec_a_1', onBehalfOf: bot.id, reason });
    }
    await log.checkpoint();
    const indexed = new LogFolderSource(dir);
    const records = await indexed.eventsFor('sec_a_1');
    expect(indexed.lastMode).toBe('index');
    expect(records.map((r) => r.token.erachter)).toEqual(expect.arrayContaining(tricky));
    const fromBytes = secretLine(records, 'sec_a_1', undefined, (r) => indexed.hashesOf(r));
    expect(records.every((r) => indexed.hashesOf(r) !== undefined)).toBe(true);
    // re-encoding each record: the hashes agree
    expect(fromBytes).toEqual(secretLine(records, 'sec_a_1'));
    expect(fromBytes.gaps).toEqual([]);
    // and so do the timelines read by scanning the folder and through the daemon-less client
    const scanned = new LogFolderSource(dir, { query: false });
    const viaScan = await scanned.eventsFor('sec_a_1');
    expect(viaScan.every((r) => scanned.hashesOf(r) !== undefined)).toBe(true);
    expect(await new KeychainTimeline(scanned).events('sec_a_1')).toEqual(fromBytes.events);
    expect(await new KeychainTimeline(indexed).events('sec_a_1')).toEqual(fromBytes.events);
    const client = new AuditClientSource(kc.audit);
    expect(await new KeychainTimeline(client).events('sec_a_1')).toEqual(fromBytes.events);
    // a record the source did not read has no known hashes
    expect(indexed.hashesOf(structuredClone(records[0]!))).toBeUndefined();
    await log.close();
  });

  it('attaches offline inclusion proofs to an answer, each verifying against the signed checkpoint', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tibet-kcp-'));
    dirs.push(home);
    const directory = registry();
    const clock = manualClock(T0);
    const dir = join(home, 'log');
    const log = await AuditLog.open({
      dir,
      signer: logKey,
      registry: directory,
      clock,
      observers: [await TreeStore.openForLog(dir)],
    });
    const kc = new Keychain({
      home,
      audit: new EmbeddedClient(log),
      service,
      directory,
      clock,
      random: seededRandom(home),
    });
    await work(kc, clock);
    await log.checkpoint();
    const timeline = new KeychainTimeline(timelineSourceFor(kc.audit), {
      prove: (i) => exportTlogProof(dir, i),
    });
    const answer = await timeline.withProofs(await timeline.whoCould('sec_a_1', at(2.5), 'use'));
    expect(answer.actors.map((a) => a.actor)).toEqual([bot.id]);
    expect(answer.evidence.length).toBeGreaterThan(1);
    for (const e of answer.evidence) {
      const v = verifyTlogProof(e.proof!, {
        leafHash: fromHex(e.leaf_hash!),
        logKeyName: log.origin,
        logPublicKey: logKey.signingPublicKey,
      });
      expect(v).toMatchObject({ index: e.index, size: log.durableSize });
    }
    // a proof of another line does not support this evidence
    const [first, second] = answer.evidence;
    expect(() =>
      verifyTlogProof(second!.proof!, {
        leafHash: fromHex(first!.leaf_hash!),
        logKeyName: log.origin,
        logPublicKey: logKey.signingPublicKey,
      }),
    ).toThrow();
    await expect(
      new KeychainTimeline(timelineSourceFor(kc.audit)).withProofs(answer),
    ).rejects.toThrow(TypeError);
    await log.close();
  });

  it('queryLog over a log without a built index still answers (it reads the unindexed lines)', async () => {
    const { queryLog } = await sibling<{ queryLog: LogQueryFn }>('../../continuityd/src/query.ts');
    const home = mkdtempSync(join(tmpdir(), 'tibet-kcs-'));
    dirs.push(home);
    const directory = registry();
    const clock = manualClock(T0);
    const log = await AuditLog.open({
      dir: join(home, 'log'),
      signer: logKey,
      registry: directory,
      clock,
    });
    const kc = new Keychain({
      home,
      audit: new EmbeddedClient(log),
      service,
      directory,
      clock,
      random: seededRandom(home),
    });
    await work(kc, clock);
    const src = new LogFolderSource(join(home, 'log'), { query: queryLog });
    const h = await new KeychainTimeline(src).history('sec_a_1');
    expect(src.lastMode).toBe('index');
    expect(h).toEqual(
      await new KeychainTimeline(new LogFolderSource(join(home, 'log'), { query: false })).history(
        'sec_a_1',
      ),
    );
    expect(h.entries.map((e) => e.event)).toEqual([
      'secret-imported',
      'secret-delegated',
      'secret-proxied',
      'secret-denied',
    ]);
    await log.close();
  });
});
