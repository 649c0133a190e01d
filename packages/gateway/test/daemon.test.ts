// The gateway daemon on a real Unix socket and loopback HTTP, driven by GatewayClient and by
// raw HTTP requests; capsules issued by the daemon's issuer; /proxy to a real loopback registry.
import { request } from 'node:http';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { toBase64, utf8 } from '@tibet/core';
import {
  GatewayClient,
  GatewayError,
  HttpEgressAdapter,
  SignerAdapter,
  serveGateway,
  type RunningGateway,
} from '../src/index.js';
import { startRegistry, type StandInRegistry } from './support/registry.js';
import {
  BlockingAdapter,
  bot,
  cleanup,
  fileOutputs,
  leaks,
  makeWorld,
  materialFor,
  mallory,
  service,
  tokenFor,
  type World,
} from './fixtures/world.js';

const dirs: string[] = [];
const worlds: World[] = [];
const daemons: RunningGateway[] = [];
const registries: StandInRegistry[] = [];
/** Every body the daemon sent, to search for the secrets. */
const seen: { label: string; data: string }[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close();
  for (const r of registries.splice(0)) await r.close();
  for (const w of worlds.splice(0)) await w.close();
  cleanup(dirs);
});

async function raw(
  port: number,
  method: string,
  path: string,
  body: string | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          seen.push({ label: `${method} ${path}`, data: text });
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(text) as Record<string, unknown>,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function setup(o: { maxInFlight?: number; adapters?: 'block' } = {}): Promise<{
  w: World;
  d: RunningGateway;
  sock: GatewayClient;
  http: GatewayClient;
  registry: StandInRegistry;
  token: string;
  material: Uint8Array;
  blocking: BlockingAdapter;
}> {
  const token = tokenFor('daemon', 'npm');
  const registry = await startRegistry({ token });
  registries.push(registry);
  const blocking = new BlockingAdapter();
  const w = await makeWorld(dirs, {
    seed: 'daemon',
    adapters: [new SignerAdapter(), new HttpEgressAdapter(), blocking],
    ...(o.adapters === 'block' ? { sessionTimeoutMs: 1000 } : {}),
  });
  worlds.push(w);
  const material = materialFor('daemon', 'sign');
  await w.addSecret('sec_sign_001', 'signing_key', material);
  await w.addSecret('sec_npm_001', 'api_key', utf8(token));
  const d = await serveGateway({
    gateway: w.gateway,
    socketPath: join(w.home, 'gateway.sock'),
    port: 0,
    issuer: service,
    ...(o.maxInFlight ? { maxInFlight: o.maxInFlight } : {}),
  });
  daemons.push(d);
  return {
    w,
    d,
    sock: new GatewayClient(
      { socketPath: d.socketPath! },
      { directory: w.directory, agent: bot, clock: w.clock },
    ),
    http: new GatewayClient(`http://127.0.0.1:${d.port}`, {
      directory: w.directory,
      agent: bot,
      clock: w.clock,
    }),
    registry,
    token,
    material,
    blocking,
  };
}

describe('gateway daemon', () => {
  it('issues on the socket, executes over HTTP, denies the replay; receipts verify', async () => {
    const s = await setup();
    expect(statSync(s.d.socketPath!).mode & 0o777).toBe(0o600);
    const health = await s.http.health();
    expect(health).toMatchObject({
      ok: true,
      gateway: 'jis:acme:gateway',
      issuer: service.id,
      agent_proof_required: true,
    });
    expect(health.issues_here).toBe(false); // over HTTP
    expect((await s.sock.health()).issues_here).toBe(true);

    const issued = await s.sock.requestCapsule({
      secret_id: 'sec_sign_001',
      actor_id: bot.id,
      target_action: '/sign',
      intent: 'sign the release manifest',
    });
    expect(issued.capsule.issuer_id).toBe(service.id);
    const req = { actor_id: bot.id, action: '/sign', constraints: {}, payload: 'manifest' };
    const r = await s.http.exec(issued.bytes, req);
    expect(r.verified).toBe(true);
    expect(r.receipt.status).toBe('executed');
    expect((r.response as Record<string, unknown>)['algorithm']).toBe('ed25519');
    const again = await s.sock.exec(issued.bytes, req);
    expect(again.receipt.policy_verdict).toBe('sam-replayed');
    seen.push(
      { label: 'exec', data: JSON.stringify(r) },
      { label: 'again', data: JSON.stringify(again) },
    );

    // issuance over HTTP is refused by default; a refused issuance carries the sam code
    const err = await s.http
      .requestCapsule({
        secret_id: 'sec_sign_001',
        actor_id: bot.id,
        target_action: '/sign',
        intent: 'x',
      })
      .catch((e: unknown) => e);
    expect(GatewayError.is(err) && err.code).toBe('NOT_CONFIGURED');
    const asMallory = new GatewayClient(
      { socketPath: s.d.socketPath! },
      { directory: s.w.directory, agent: mallory, clock: s.w.clock },
    );
    const refused = await asMallory
      .requestCapsule({
        secret_id: 'sec_sign_001',
        actor_id: mallory.id,
        target_action: '/sign',
        intent: 'x',
      })
      .catch((e: unknown) => e);
    expect(GatewayError.is(refused) && refused.code).toBe('ISSUE_REFUSED');
    expect((refused as GatewayError).detailCode).toBe('POLICY_DENIED');
    const bad = await s.sock
      .call('POST', '/v1/capsules', { secret_id: 'sec_sign_001' })
      .catch((e: unknown) => e);
    expect(GatewayError.is(bad) && bad.code).toBe('INVALID_REQUEST');
  });

  it('POST /proxy: denied without X-Tibet-Capsule; with one, the request goes out with the credential', async () => {
    const s = await setup();
    const body = {
      agent_id: bot.id,
      intent: 'publish acme-widget',
      target_url: `${s.registry.origin}/acme-widget`,
      method: 'PUT',
      payload: { name: 'acme-widget' },
      headers: { 'x-agent': 'bot' },
    };
    const denied = await s.http.proxy(body);
    expect(denied.receipt.status).toBe('denied');
    expect(denied.receipt.policy_verdict).toBe('sam-bundle-invalid');
    expect(denied.receipt.result_summary).toContain('no capsule');
    expect(s.registry.requests).toHaveLength(0);

    const { bytes } = await s.sock.requestCapsule({
      secret_id: 'sec_npm_001',
      actor_id: bot.id,
      target_action: '/proxy/http',
      intent: 'publish acme-widget',
      // the proxy-egress lane: its host rule and the adapter's both compare URL.host, so a
      // registry on a non-default port works (the constraint pins the port)
      policy_lane: 'proxy-egress',
      upstream_url: `${s.registry.origin}/acme-widget`,
      upstream_method: 'PUT',
      constraints: [{ key: 'host', value: s.registry.host }],
    });
    const ok = await s.http.proxy(body, bytes);
    expect(ok.receipt.status, JSON.stringify(ok.receipt.events)).toBe('executed');
    expect(s.registry.requests).toHaveLength(1);
    expect(s.registry.requests[0]!.authorized).toBe(true);
    expect(s.registry.requests[0]!.headers['x-agent']).toBe('bot');
    seen.push({ label: 'proxy', data: JSON.stringify(ok) });
    await s.w.log.drain();
    expect(leaks([...seen, ...fileOutputs(s.w.home)], utf8(s.token))).toEqual([]);
    expect(leaks([...seen, ...fileOutputs(s.w.home)], s.material)).toEqual([]);
  });

  it('refuses browsers, foreign Host headers, non-JSON and oversized bodies, unknown routes', async () => {
    const s = await setup();
    const port = s.d.port!;
    const exec = JSON.stringify({
      capsule: 'AA==',
      request: { actor_id: bot.id, action: '/sign', constraints: {} },
    });
    expect(
      (await raw(port, 'POST', '/v1/exec', exec, { origin: 'https://evil.example' })).status,
    ).toBe(400);
    expect((await raw(port, 'POST', '/v1/exec', exec, { host: 'evil.example' })).status).toBe(400);
    expect(
      (await raw(port, 'POST', '/v1/exec', exec, { 'content-type': 'text/plain' })).status,
    ).toBe(400);
    expect((await raw(port, 'POST', '/v1/exec', '{nope')).json['error']).toMatchObject({
      code: 'INVALID_REQUEST',
    });
    const big = JSON.stringify({ capsule: toBase64(new Uint8Array(2 * 1024 * 1024)), request: {} });
    const tooBig = await raw(port, 'POST', '/v1/exec', big).catch((e: NodeJS.ErrnoException) => e);
    if ('status' in tooBig) expect(tooBig.status).toBe(400);
    else expect(['ECONNRESET', 'EPIPE']).toContain(tooBig.code);
    expect((await raw(port, 'GET', '/v1/nothing', undefined)).status).toBe(404);
    const badReq = JSON.stringify({ capsule: 'AA==', request: { actor_id: bot.id } });
    expect((await raw(port, 'POST', '/v1/exec', badReq)).json['error']).toMatchObject({
      code: 'INVALID_REQUEST',
    });
    // a capsule that does not open: 403 with a sealed denial
    const r = await raw(port, 'POST', '/v1/exec', exec);
    expect(r.status).toBe(403);
    expect(r.json['policy_verdict']).toBe('sam-bundle-invalid');
  });

  it('back-pressure: beyond maxInFlight the daemon answers 503 BACKPRESSURE', async () => {
    const s = await setup({ maxInFlight: 1, adapters: 'block' });
    const { bytes } = await s.sock.requestCapsule({
      secret_id: 'sec_sign_001',
      actor_id: bot.id,
      target_action: '/test/block',
      intent: 'block',
    });
    const first = s.sock.exec(bytes, { actor_id: bot.id, action: '/test/block', constraints: {} });
    await s.blocking.started;
    const err = await s.http
      .exec(bytes, { actor_id: bot.id, action: '/test/block', constraints: {} })
      .catch((e: unknown) => e);
    expect(GatewayError.is(err) && err.code).toBe('BACKPRESSURE');
    // the blocked exec ends at its session timeout, denied, its material wiped
    const r = await first;
    expect(r.receipt.policy_verdict).toBe('sam-gateway-proxy-failed');
    expect(r.receipt.destroy_session_confirmed).toBe(true);
  }, 40_000);
});
