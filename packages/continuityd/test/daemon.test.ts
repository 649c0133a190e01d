import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdentityRegistry, mintToken, type TibetToken } from '@tibet/core';
import { fixedClock, seededRandom, testIdentity } from '@tibet/core/testing';
import {
  AuditLog,
  DaemonClient,
  EmbeddedClient,
  serveLog,
  verifyCheckpoint,
  type AuditClient,
} from '@tibet/continuityd';

const logKey = testIdentity('jis:acme:continuityd', 'system');
const actors = [0, 1, 2, 3].map((i) => testIdentity(`jis:acme:agent-${i}`, 'mcp-server'));
const registry = new IdentityRegistry();
for (const a of actors) registry.add(a);
const clock = fixedClock('2026-11-28T12:00:00.000Z');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tibet-daemon-'));
  dirs.push(d);
  return d;
}

async function appendChains(client: AuditClient, perActor: number): Promise<void> {
  await Promise.all(
    actors.map(async (a, ai) => {
      const random = seededRandom(`chain-${ai}`);
      let prev: TibetToken | null = null;
      for (let i = 0; i < perActor; i++) {
        const t: TibetToken = mintToken(
          {
            actor: a.id,
            actorClass: 'mcp-server',
            event: 'secret-proxied',
            erachter: `call ${i}`,
            prev,
          },
          a,
          { clock, random },
        );
        await client.append(t);
        prev = t;
      }
    }),
  );
}

describe('continuityd daemon', () => {
  it('serves many writers over a Unix socket and loopback HTTP with the same interface', async () => {
    const dir = tmp();
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock, checkpointEvery: 0 });
    const d = await serveLog({ log, socketPath: join(dir, 'd.sock'), port: 0 });
    const viaSocket = new DaemonClient({ socketPath: d.socketPath! });
    const viaHttp = new DaemonClient({ host: '127.0.0.1', port: d.port! });
    await appendChains(viaSocket, 10);
    const head = await viaHttp.head();
    expect(head.size).toBe(40);
    const note = await viaHttp.checkpoint();
    verifyCheckpoint(note, log.origin, logKey.signingPublicKey);
    // an unregistered actor is refused with its code
    const stranger = testIdentity('jis:evil:mallory', 'external');
    await expect(
      viaHttp.append(
        mintToken(
          { actor: stranger.id, actorClass: 'external', event: 'x', erachter: 'y' },
          stranger,
          { clock },
        ),
      ),
    ).rejects.toMatchObject({ code: 'ACTOR_UNKNOWN' });
    // a forged signature is refused
    const good = mintToken(
      { actor: actors[0]!.id, actorClass: 'mcp-server', event: 'x', erachter: 'y' },
      actors[0]!,
      { clock },
    );
    await expect(viaSocket.append({ ...good, erachter: 'changed' })).rejects.toMatchObject({
      code: 'TOKEN_REJECTED',
    });
    await d.close();
    await log.close();
    // the embedded client speaks the same interface against the same folder
    const again = new EmbeddedClient(await AuditLog.open({ dir, signer: logKey, registry, clock }));
    expect((await again.head()).size).toBe(40);
    await again.close();
  });

  it('answers 503 with back-pressure instead of queueing without bound', async () => {
    const dir = tmp();
    const log = await AuditLog.open({ dir, signer: logKey, registry, clock });
    const d = await serveLog({ log, port: 0, maxInFlight: 1 });
    const c = new DaemonClient({ host: '127.0.0.1', port: d.port! });
    const toks = actors.map((a) =>
      mintToken({ actor: a.id, actorClass: 'mcp-server', event: 'x', erachter: 'y' }, a, { clock }),
    );
    const results = await Promise.allSettled(toks.map((t) => c.append(t)));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
    for (const r of refused) expect(r.reason).toMatchObject({ code: 'BACKPRESSURE' });
    await d.close();
    await log.close();
  });

  it('reports a clear error when the daemon is not there', async () => {
    const c = new DaemonClient({ socketPath: join(tmp(), 'nobody.sock') });
    await expect(c.head()).rejects.toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
  });
});
